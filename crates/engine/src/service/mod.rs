//! The service layer: the long-running daemon around the runs.
//!
//! The [`daemon`] repeats a run on its schedule and on edits; [`http`] serves health,
//! readiness and [`metrics`]; [`notifications`] tell people when a run needs them; and
//! [`shutdown`] is the one cancellation every part of a run checks. On a PostgreSQL history,
//! [`leadership`] says whether this daemon is the one that talks to Studio.

pub mod daemon;
pub mod http;
pub mod leadership;
pub mod metrics;
pub(crate) mod notifications;
pub mod shutdown;
