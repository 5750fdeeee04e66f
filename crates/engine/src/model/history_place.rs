//! Where the history is: a SQLite file on this machine, or a schema in PostgreSQL that
//! several daemons (and tenants) share. The config says which ([`crate::config::Config`]'s
//! `history_place`); the store opens it; commands and the daemon pass it between them.

use secrecy::SecretString;
use std::path::PathBuf;

#[derive(Clone, Debug)]
pub enum HistoryPlace {
    /// A SQLite file (the default): one writer, by its instance lock.
    File(PathBuf),
    /// A PostgreSQL schema: one leader at a time, by its lease.
    Postgres {
        /// Secret (it may carry a password): redacted in `Debug`, never shown.
        url: SecretString,
        schema: String,
    },
}
