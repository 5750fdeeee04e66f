//! The words every layer shares: one role change ([`change`]) and how a run ends
//! ([`run_status`]).
//!
//! They live below the layers so that the store can record what the sync layer decides
//! without importing it: `sync` uses `store`, never the other way round.

pub mod change;
pub mod history_place;
pub mod run_status;
mod stored_text;
pub(crate) use stored_text::stored_as_text;
