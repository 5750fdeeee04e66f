//! `safety`: the limits of the planner's whole-run guards (how many removals, and what share
//! of current holders, a run may make), overall and per managed role.

use super::checker::Checker;
use super::ConfigError;
use crate::input::roles::ManagedRoles;
use crate::input::safety_limits::{RemoveAfter, RoleLimits, SafetyLimits};
use serde::Deserialize;
use std::collections::BTreeMap;
use std::time::Duration;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawSafety {
    #[serde(default = "default_max_removals")]
    max_removals: usize,
    #[serde(default = "default_max_ratio")]
    max_removal_ratio: f64,
    #[serde(default)]
    roles: BTreeMap<String, RawRoleLimits>,
    remove_after: Option<String>,
}

impl Default for RawSafety {
    fn default() -> Self {
        RawSafety {
            max_removals: default_max_removals(),
            max_removal_ratio: default_max_ratio(),
            roles: BTreeMap::new(),
            remove_after: None,
        }
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawRoleLimits {
    max_removals: Option<usize>,
    max_removal_ratio: Option<f64>,
}

fn default_max_removals() -> usize {
    25
}
fn default_max_ratio() -> f64 {
    0.25
}

impl Checker<'_> {
    pub(super) fn safety(
        &self,
        raw: RawSafety,
        managed: &ManagedRoles,
    ) -> Result<SafetyLimits, ConfigError> {
        let ratio = |key: &[&str], r: f64| {
            if (0.0..=1.0).contains(&r) {
                Ok(r)
            } else {
                Err(self.error(key, "must be between 0 and 1 (a share of current holders)"))
            }
        };
        self.in_range(
            &["safety", "max_removals"],
            raw.max_removals,
            0,
            1_000_000_000,
        )?;
        ratio(&["safety", "max_removal_ratio"], raw.max_removal_ratio)?;
        let mut roles = BTreeMap::new();
        for (name, limits) in raw.roles {
            let Some(index) = managed.index(&name) else {
                return Err(self.error(
                    &["safety", "roles", &name],
                    format!("{name:?} is not in roles.managed {managed}"),
                ));
            };
            if let Some(r) = limits.max_removal_ratio {
                ratio(&["safety", "roles", &name, "max_removal_ratio"], r)?;
            }
            roles.insert(
                index,
                RoleLimits {
                    max_removals: limits.max_removals,
                    max_removal_ratio: limits.max_removal_ratio,
                },
            );
        }
        let remove_after = match raw.remove_after.as_deref().map(str::trim) {
            None | Some("off") => None,
            Some(text) => Some(
                parse_remove_after(text).map_err(|m| self.error(&["safety", "remove_after"], m))?,
            ),
        };
        Ok(SafetyLimits {
            max_removals: raw.max_removals,
            max_removal_ratio: raw.max_removal_ratio,
            roles,
            remove_after,
        })
    }
}

/// `2 runs`, `1 run` or a duration such as `6h`; at most 1,000 runs or 90 days (a grant
/// missing longer than that is not a hiccup of a source).
fn parse_remove_after(text: &str) -> Result<RemoveAfter, String> {
    const MAX_RUNS: u32 = 1000;
    const MAX_TIME: Duration = Duration::from_secs(90 * 24 * 3600);
    let runs = text
        .strip_suffix("runs")
        .or_else(|| text.strip_suffix("run"))
        .map(str::trim);
    if let Some(n) = runs {
        return match n.parse::<u32>() {
            Ok(n @ 1..=MAX_RUNS) => Ok(RemoveAfter::Runs(n)),
            _ => Err(format!(
                "{text:?}: the number of runs must be a whole number from 1 to {MAX_RUNS}"
            )),
        };
    }
    let d = humantime::parse_duration(text).map_err(|e| {
        format!("{text:?} is neither a number of runs (2 runs) nor a duration (6h): {e}")
    })?;
    if d < Duration::from_secs(60) || d > MAX_TIME {
        return Err(format!("{text:?} must be between 1m and 90d"));
    }
    Ok(RemoveAfter::Time(d))
}

#[cfg(test)]
mod tests {
    use super::super::tests::{load, GOOD};
    use super::*;

    #[test]
    fn remove_after_reads_runs_and_durations_and_names_its_line() {
        assert_eq!(parse_remove_after("2 runs"), Ok(RemoveAfter::Runs(2)));
        assert_eq!(parse_remove_after("1 run"), Ok(RemoveAfter::Runs(1)));
        assert_eq!(
            parse_remove_after("6h"),
            Ok(RemoveAfter::Time(Duration::from_secs(6 * 3600)))
        );
        for bad in ["0 runs", "-1 runs", "two runs", "6 parsecs", "1s", "400d"] {
            assert!(parse_remove_after(bad).is_err(), "{bad}");
        }
        let c = load(&format!("{GOOD}safety:\n  remove_after: 3 runs\n")).unwrap();
        assert_eq!(c.safety.remove_after, Some(RemoveAfter::Runs(3)));
        assert_eq!(load(GOOD).unwrap().safety.remove_after, None);
        let e = load(&format!("{GOOD}safety:\n  remove_after: soon\n")).unwrap_err();
        assert_eq!(e.line, Some(9), "{e}");
        assert!(e.message.contains("safety.remove_after"), "{e}");
    }

    #[test]
    fn removal_limits_out_of_range_name_key_and_line() {
        for ratio in [".nan", ".inf", "-0.1", "2"] {
            let e = load(&format!("{GOOD}safety:\n  max_removal_ratio: {ratio}\n")).unwrap_err();
            assert_eq!(e.line, Some(9), "{ratio}: {e}");
        }
        let e = load(&format!("{GOOD}safety:\n  max_removals: 9999999999999\n")).unwrap_err();
        assert!(e.message.contains("safety.max_removals"), "{e}");
    }
}
