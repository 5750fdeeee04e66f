//! The store layer: what outlives a process.
//!
//! The run [`history`] (SQLite, a contract admins read), the one-instance [`lock`], and the
//! permissions and placement of the files the daemon keeps ([`state_files`]); on a PostgreSQL
//! history, the leader [`lease`] that lets exactly one of several daemons talk to Studio.

pub mod history;
pub mod lease;
pub mod lock;
pub(crate) mod state_files;
