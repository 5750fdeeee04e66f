//! `safety`: the limits of the planner's whole-run guards (how many removals, and what share
//! of current holders, a run may make), overall and per managed role.

use super::checker::Checker;
use super::ConfigError;
use crate::input::roles::ManagedRoles;
use crate::input::safety_limits::{RoleLimits, SafetyLimits};
use serde::Deserialize;
use std::collections::BTreeMap;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawSafety {
    #[serde(default = "default_max_removals")]
    max_removals: usize,
    #[serde(default = "default_max_ratio")]
    max_removal_ratio: f64,
    #[serde(default)]
    roles: BTreeMap<String, RawRoleLimits>,
}

impl Default for RawSafety {
    fn default() -> Self {
        RawSafety {
            max_removals: default_max_removals(),
            max_removal_ratio: default_max_ratio(),
            roles: BTreeMap::new(),
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
        Ok(SafetyLimits {
            max_removals: raw.max_removals,
            max_removal_ratio: raw.max_removal_ratio,
            roles,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::super::tests::{load, GOOD};

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
