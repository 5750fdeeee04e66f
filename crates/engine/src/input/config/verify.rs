//! `verify`: how often a run is a full verification (every account read back from Studio)
//! rather than a run that trusts the last known state.

use super::checker::Checker;
use super::ConfigError;
use serde::Deserialize;
use std::time::Duration;

/// `verify`: how often a run is a full verification.
#[derive(Debug, Clone, Copy)]
pub struct VerifyConfig {
    /// A run is a full verification when the last one started at least this long ago.
    pub full_every: Duration,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawVerify {
    #[serde(default = "default_full_every")]
    full_every: String,
}

impl Default for RawVerify {
    fn default() -> Self {
        RawVerify {
            full_every: default_full_every(),
        }
    }
}

fn default_full_every() -> String {
    "24h".into()
}

impl Checker<'_> {
    pub(super) fn verify(&self, raw: RawVerify) -> Result<VerifyConfig, ConfigError> {
        const MAX: Duration = Duration::from_secs(366 * 24 * 3600);
        let key = ["verify", "full_every"];
        let full_every = humantime::parse_duration(raw.full_every.trim()).map_err(|e| {
            self.error(
                &key,
                format!(
                    "{:?} is not a duration such as 24h, 12h or 7d: {e}",
                    raw.full_every
                ),
            )
        })?;
        if full_every < Duration::from_secs(1) || full_every > MAX {
            return Err(self.error(&key, "must be between 1s and 366d"));
        }
        Ok(VerifyConfig { full_every })
    }
}
