//! `flapping:` when a change the tool keeps making counts as a fight with something else in
//! Studio, and whether to go on making it.
//!
//! Kept apart from `safety` because it changes nothing by default: it only decides what is
//! *reported* (and, with `reapply: false`, what is left alone).

use super::checker::Checker;
use super::ConfigError;
use serde::Deserialize;

/// The same change applied in this many consecutive runs is flapping (the default).
pub(super) const DEFAULT_AFTER_RUNS: u32 = 3;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FlappingConfig {
    /// An action applied in this many consecutive runs (this one included) is flapping.
    pub after_runs: u32,
    /// True (the default): keep the desired state, i.e. apply a flapping action again.
    /// False: leave it alone (recorded `skipped`) and report it.
    pub reapply: bool,
}

impl Default for FlappingConfig {
    fn default() -> Self {
        FlappingConfig {
            after_runs: DEFAULT_AFTER_RUNS,
            reapply: true,
        }
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawFlapping {
    #[serde(default = "default_after_runs")]
    after_runs: u32,
    #[serde(default = "yes")]
    reapply: bool,
}

impl Default for RawFlapping {
    fn default() -> Self {
        RawFlapping {
            after_runs: DEFAULT_AFTER_RUNS,
            reapply: true,
        }
    }
}

fn default_after_runs() -> u32 {
    DEFAULT_AFTER_RUNS
}
fn yes() -> bool {
    true
}

impl Checker<'_> {
    pub(super) fn flapping(&self, raw: RawFlapping) -> Result<FlappingConfig, ConfigError> {
        // Two runs is the least that can show a repeat; a hundred is weeks of a daemon.
        self.in_range(&["flapping", "after_runs"], raw.after_runs, 2, 100)?;
        Ok(FlappingConfig {
            after_runs: raw.after_runs,
            reapply: raw.reapply,
        })
    }
}
