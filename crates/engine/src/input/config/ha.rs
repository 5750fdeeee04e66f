//! `ha:` several daemons on one PostgreSQL history, of which exactly one leads (talks to
//! Studio); the others stand by.
//!
//! Only `lease` for now: how long a term lasts without renewal. The leader renews every
//! lease/3 and a standby takes over within `lease` + lease/3 of a leader's death; a shorter
//! lease fails over faster but costs more statements and tolerates shorter database hiccups.
//! The lease itself is `store::lease`; the timing is `service::leadership`.
// TODO(issue 20): refuse `ha` without a PostgreSQL `history:` once that key (history.rs) lands.

use super::checker::Checker;
use super::ConfigError;
use serde::Deserialize;
use std::time::Duration;

/// The lease when `ha:` is written without one.
pub const DEFAULT_LEASE: Duration = Duration::from_secs(15);
/// Shorter leases renew every second or faster and fail over on any database hiccup.
const MIN_LEASE: Duration = Duration::from_secs(3);
/// Longer ones leave Studio unsynced for too long after a leader dies.
const MAX_LEASE: Duration = Duration::from_secs(600);

/// `ha`, checked.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct HaConfig {
    /// How long a term lasts without renewal (the database's clock).
    pub lease: Duration,
}

/// `ha` as written in the file.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawHa {
    #[serde(default)]
    lease: Option<String>,
}

impl Checker<'_> {
    pub(super) fn ha(&self, raw: RawHa) -> Result<HaConfig, ConfigError> {
        let Some(text) = raw.lease else {
            return Ok(HaConfig {
                lease: DEFAULT_LEASE,
            });
        };
        let lease = humantime::parse_duration(text.trim()).map_err(|e| {
            self.error(
                &["ha", "lease"],
                format!("{text:?} is not a duration such as 15s or 1m: {e}"),
            )
        })?;
        if !(MIN_LEASE..=MAX_LEASE).contains(&lease) {
            return Err(self.error(&["ha", "lease"], "must be between 3s and 10m"));
        }
        Ok(HaConfig { lease })
    }
}

#[cfg(test)]
mod tests {
    use super::super::tests::{load, GOOD};
    use super::*;

    #[test]
    fn lease_defaults_to_15s_and_ha_is_off_without_the_key() {
        assert_eq!(load(GOOD).unwrap().ha, None);
        let c = load(&format!("{GOOD}ha: {{}}\n")).unwrap();
        assert_eq!(
            c.ha,
            Some(HaConfig {
                lease: DEFAULT_LEASE
            })
        );
        let c = load(&format!("{GOOD}ha:\n  lease: 5s\n")).unwrap();
        assert_eq!(c.ha.unwrap().lease, Duration::from_secs(5));
    }

    #[test]
    fn bad_leases_name_the_key_and_line() {
        for (lease, message) in [
            ("2s", "ha.lease: must be between 3s and 10m"),
            ("11m", "ha.lease: must be between 3s and 10m"),
            ("soon", "ha.lease: \"soon\" is not a duration"),
        ] {
            let e = load(&format!("{GOOD}ha:\n  lease: {lease}\n")).unwrap_err();
            assert_eq!(e.line, Some(9), "{e}");
            assert!(e.message.starts_with(message), "{lease}: {e}");
        }
        let e = load(&format!("{GOOD}ha:\n  leese: 5s\n")).unwrap_err();
        assert!(e.message.contains("unknown field `leese`"), "{e}");
    }
}
