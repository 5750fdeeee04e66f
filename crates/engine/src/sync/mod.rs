//! The sync layer: one run, from the two states to the changes sent.
//!
//! [`read`] asks Studio for the [`current`] state and settles which account each email is
//! ([`identity`], with the back-off of [`recheck`](crate::model::recheck)); [`plan`] is the
//! pure difference with its guards, and its [`digest`](crate::model::digest) names a plan for
//! a person's consent (an approval or a [`saved_plan`]);
//! [`flapping`] notices grants that come and go; [`apply`] sends the changes in batches;
//! [`reconcile`] strings one run together and records it in the store; how it ended is a
//! [`run_report`] with a [`RunStatus`](crate::model::run_status::RunStatus).

pub(crate) mod apply;
pub mod current;
pub(crate) mod flapping;
pub(crate) mod grace;
pub(crate) mod identity;
pub mod plan;
pub mod read;
pub mod reconcile;
pub mod run_report;
pub mod saved_plan;
