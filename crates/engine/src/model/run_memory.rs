//! What the history remembers between runs for the sync layer: when a held grant was first
//! seen missing from the sources (the grace period, `sync::grace`), and which emails were
//! found on several Studio accounts (`sync::identity`). The sync layer decides these facts;
//! the store only keeps them, so they are defined here, below both.

use chrono::{DateTime, Utc};

/// When a held grant was first seen missing from the sources (from the history).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MissingSince {
    pub at: DateTime<Utc>,
    /// Runs (not dry runs) that saw it missing before this one.
    pub runs: u32,
}

/// What the history should remember about ambiguity after a run's read.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct AmbiguityUpdate {
    /// Emails seen on several accounts this run, with the accounts' ids (sorted).
    pub remember: Vec<(String, Vec<u64>)>,
    /// Emails a search of this run found on exactly one account: resolved.
    pub forget: Vec<String>,
}
