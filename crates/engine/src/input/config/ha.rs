//! `ha:` several daemons on one PostgreSQL history, of which exactly one leads (talks to
//! Studio); the others stand by.
//!
//! Only `lease` for now: how long a term lasts without renewal. The leader renews every
//! lease/3 and a standby takes over within `lease` + lease/3 of a leader's death; a shorter
//! lease fails over faster but costs more statements and tolerates shorter database hiccups.
//! The lease itself is `store::lease`; the timing is `service::leadership`.

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
    use super::super::tests::{load, load_with_env, GOOD};
    use super::*;

    /// `GOOD` with its history in PostgreSQL (the URL from the test environment's `PG_URL`).
    fn on_postgres(extra: &str) -> Result<crate::input::config::Config, super::super::ConfigError> {
        load_with_env(
            &format!("{GOOD}history:\n  url_env: PG_URL\n{extra}"),
            &[("PG_URL", "postgres://srs@db.example/srs")],
        )
    }

    #[test]
    fn lease_defaults_to_15s_and_ha_applies_to_postgres_only() {
        assert_eq!(on_postgres("").unwrap().ha, None);
        let c = on_postgres("ha: {}\n").unwrap();
        assert_eq!(
            c.ha,
            Some(HaConfig {
                lease: DEFAULT_LEASE
            })
        );
        let c = on_postgres("ha:\n  lease: 5s\n").unwrap();
        assert_eq!(c.ha.unwrap().lease, Duration::from_secs(5));
        let e = load(&format!("{GOOD}ha:\n  lease: 5s\n")).unwrap_err();
        assert!(
            e.message.contains("applies to a PostgreSQL history only"),
            "{e}"
        );
    }

    #[test]
    fn bad_leases_name_the_key_and_line() {
        for (lease, message) in [
            ("2s", "ha.lease: must be between 3s and 10m"),
            ("11m", "ha.lease: must be between 3s and 10m"),
            ("soon", "ha.lease: \"soon\" is not a duration"),
        ] {
            let e = on_postgres(&format!("ha:\n  lease: {lease}\n")).unwrap_err();
            assert_eq!(e.line, Some(11), "{e}");
            assert!(e.message.starts_with(message), "{lease}: {e}");
        }
        let e = on_postgres("ha:\n  leese: 5s\n").unwrap_err();
        assert!(e.message.contains("unknown field `leese`"), "{e}");
    }
}
