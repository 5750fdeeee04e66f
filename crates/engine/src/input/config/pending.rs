//! `pending`: how often an email that Studio does not know yet is searched again.
//!
//! The back-off itself is `crate::model::recheck`; this file owns the keys, their defaults and
//! their ranges. `recheck_max` is the promise made to users: a person who appears in Studio gets
//! their role within `recheck_max` plus one schedule slot.
//!
//! A default gives way to a key that is set: `recheck_max: 30s` alone lowers the default
//! `recheck_min` to 30s (and `recheck_min: 2d` alone raises `recheck_max`), so only two keys
//! that are both written can conflict.

use super::checker::Checker;
use super::ConfigError;
use crate::model::recheck::Backoff;
use serde::Deserialize;
use std::time::Duration;

/// `pending` as written in the file.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
#[derive(Default)]
pub(super) struct RawPending {
    #[serde(default)]
    recheck_min: Option<String>,
    #[serde(default)]
    recheck_max: Option<String>,
}

/// `pending`, checked.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PendingConfig {
    /// The wait after the first search that did not find an email.
    pub recheck_min: Duration,
    /// The longest wait between two searches of a pending email.
    pub recheck_max: Duration,
}

impl Default for PendingConfig {
    fn default() -> Self {
        let b = Backoff::default();
        PendingConfig {
            recheck_min: b.min,
            recheck_max: b.max,
        }
    }
}

impl PendingConfig {
    pub fn backoff(&self) -> Backoff {
        Backoff {
            min: self.recheck_min,
            max: self.recheck_max,
        }
    }
}

impl Checker<'_> {
    pub(super) fn pending(&self, raw: RawPending) -> Result<PendingConfig, ConfigError> {
        check(raw).map_err(|(k, m)| self.error(&["pending", k], m))
    }
}

/// Checks `pending`; an error is (the key, what is wrong).
fn check(raw: RawPending) -> Result<PendingConfig, (&'static str, String)> {
    const MAX: Duration = Duration::from_secs(30 * 24 * 3600);
    let parse = |key: &'static str, text: &str| {
        let d = humantime::parse_duration(text.trim()).map_err(|e| {
            (
                key,
                format!("{text:?} is not a duration such as 15m, 6h or 24h: {e}"),
            )
        })?;
        if d < Duration::from_secs(1) || d > MAX {
            return Err((key, "must be between 1s and 30d".to_string()));
        }
        Ok(d)
    };
    let defaults = Backoff::default();
    let min = raw
        .recheck_min
        .as_deref()
        .map(|t| parse("recheck_min", t))
        .transpose()?;
    let max = raw
        .recheck_max
        .as_deref()
        .map(|t| parse("recheck_max", t))
        .transpose()?;
    let (recheck_min, recheck_max) = match (min, max) {
        (Some(min), Some(max)) if min > max => {
            return Err((
                "recheck_min",
                format!(
                    "{} is longer than pending.recheck_max ({})",
                    raw.recheck_min.unwrap_or_default().trim(),
                    raw.recheck_max.unwrap_or_default().trim()
                ),
            ));
        }
        (Some(min), Some(max)) => (min, max),
        (Some(min), None) => (min, defaults.max.max(min)),
        (None, Some(max)) => (defaults.min.min(max), max),
        (None, None) => (defaults.min, defaults.max),
    };
    Ok(PendingConfig {
        recheck_min,
        recheck_max,
    })
}
