//! The words every layer shares: one role change ([`change`]), how a run ends
//! ([`run_status`]), which guard stopped it ([`guard_kind`]), the plan's [`digest`], and what
//! the history remembers for the next run ([`run_memory`], the [`recheck`] back-off).
//!
//! They live below the layers so that the store can record what the sync layer decides
//! without importing it: `sync` uses `store`, never the other way round.

pub mod change;
pub mod digest;
pub(crate) mod guard_kind;
pub mod history_place;
pub(crate) mod recheck;
pub(crate) mod run_memory;
pub mod run_status;
mod stored_text;
pub(crate) use stored_text::stored_as_text;
