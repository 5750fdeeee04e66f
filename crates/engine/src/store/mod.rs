//! The store layer: what outlives a process.
//!
//! The run [`history`] (SQLite, a contract admins read), the one-instance [`lock`], and the
//! permissions and placement of the files the daemon keeps ([`state_files`]).

pub mod history;
pub mod lock;
pub(crate) mod state_files;
