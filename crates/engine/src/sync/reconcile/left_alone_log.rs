//! What the log says about emails a run leaves alone (pending: not in Studio, ambiguous, ...).
//!
//! The log, like the history, grows with changes, not with runs × pending emails: 800 emails
//! waiting for their Studio account would otherwise be 800 INFO lines (about 200 KiB) in every
//! 15-minute run. So an email is logged at INFO when it starts being left alone and when it
//! stops, each run writes one summary line (counts by reason, how many are new), and the
//! per-email detail of every run is at DEBUG.

use crate::store::history::PendingChanges;
use crate::sync::plan::PendingEmail;
use std::collections::BTreeMap;

/// Logs run `pending` (this run's left-alone emails) and `changes` (which spans it opened and
/// closed in the history).
pub(crate) fn log_left_alone(pending: &[PendingEmail], changes: &PendingChanges) {
    for p in pending {
        tracing::debug!(email = %p.email, reason = p.reason.as_str(), "{}", p.detail);
    }
    for (email, reason, detail) in &changes.started {
        tracing::info!(
            email = %email,
            reason = %reason,
            "left alone from this run on: {}",
            detail.as_deref().unwrap_or(reason)
        );
    }
    for (email, reason) in &changes.ended {
        tracing::info!(email = %email, reason = %reason, "no longer left alone");
    }
    if pending.is_empty() && changes.ended.is_empty() {
        return;
    }
    let mut by_reason: BTreeMap<&str, usize> = BTreeMap::new();
    for p in pending {
        *by_reason.entry(p.reason.as_str()).or_default() += 1;
    }
    let by_reason = by_reason
        .iter()
        .map(|(reason, n)| format!("{reason}={n}"))
        .collect::<Vec<_>>()
        .join(" ");
    tracing::info!(
        left_alone = pending.len(),
        by_reason = %by_reason,
        new = changes.started.len(),
        ended = changes.ended.len(),
        "emails left alone (each is logged when it starts and ends; per run at debug)"
    );
}
