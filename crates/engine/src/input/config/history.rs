//! `history`: where the run history lives and how long its records are kept.
//!
//! Written either as a path (the form every existing config uses, kept working) or as a
//! mapping with the retention keys:
//! ```yaml
//! history: state/history.db
//! # or
//! history:
//!   path: state/history.db
//!   keep_noop_runs: 30d     # runs that changed nothing: summarised per day after this age
//!   keep_changes: forever   # runs that changed, failed, aborted or were interrupted
//! ```
//! or, instead of `path`, a PostgreSQL database (`history_postgres.rs`), with the same
//! retention keys.

use super::checker::Checker;
use super::history_postgres::{PostgresHistory, RawPostgres};
use super::ConfigError;
use serde::Deserialize;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// `history` as written: a path, or a mapping. Kept as YAML until checked, so that a wrong
/// key in the mapping gets its own message (an untagged enum would only say "no variant").
#[derive(Deserialize)]
#[serde(transparent)]
pub(super) struct RawHistory(serde_yaml::Value);

impl Default for RawHistory {
    fn default() -> Self {
        RawHistory(serde_yaml::Value::String("state/history.db".into()))
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawHistoryMapping {
    path: Option<PathBuf>,
    #[serde(default = "default_keep_noop")]
    keep_noop_runs: String,
    #[serde(default = "default_keep_changes")]
    keep_changes: String,
    // PostgreSQL (`history_postgres.rs`); listed here, since `deny_unknown_fields` does not
    // work with `flatten`.
    url: Option<String>,
    url_env: Option<String>,
    url_file: Option<PathBuf>,
    schema: Option<String>,
}

/// `history` checked: the SQLite path (not yet resolved; the default when PostgreSQL holds
/// the history), the retention, and the PostgreSQL keys still to check.
type Checked = (PathBuf, RetentionConfig, RawPostgres);

fn default_path() -> PathBuf {
    "state/history.db".into()
}

fn default_keep_noop() -> String {
    "30d".into()
}

fn default_keep_changes() -> String {
    "forever".into()
}

/// How long runs are kept.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RetentionConfig {
    /// Runs that succeeded without a change older than this are folded into `run_days`.
    pub keep_noop_runs: Duration,
    /// Every other run (and its actions) older than this is deleted; `None`: kept forever.
    pub keep_changes: Option<Duration>,
}

impl Default for RetentionConfig {
    fn default() -> Self {
        RetentionConfig {
            keep_noop_runs: Duration::from_secs(30 * 24 * 3600),
            keep_changes: None,
        }
    }
}

impl Checker<'_> {
    /// Checks `history`: its path (not yet resolved), its retention, and PostgreSQL if named.
    pub(super) fn history(
        &self,
        raw: RawHistory,
        resolve: &dyn Fn(&Path) -> PathBuf,
    ) -> Result<(PathBuf, RetentionConfig, Option<PostgresHistory>), ConfigError> {
        let (path, retention, postgres) = check(raw).map_err(|(k, m)| match k {
            "" => self.error(&["history"], m),
            k => self.error(&["history", k], m),
        })?;
        let postgres = self.history_postgres(postgres, resolve)?;
        Ok((path, retention, postgres))
    }
}

/// An error is (the key under `history`, or "" for `history` itself, and the message).
fn check(raw: RawHistory) -> Result<Checked, (&'static str, String)> {
    let m: RawHistoryMapping = match raw.0 {
        serde_yaml::Value::String(p) if !p.trim().is_empty() => {
            return Ok((p.into(), RetentionConfig::default(), RawPostgres::default()))
        }
        v @ serde_yaml::Value::Mapping(_) => {
            serde_yaml::from_value(v).map_err(|e| ("", e.to_string()))?
        }
        _ => {
            return Err((
                "",
                "must be a path, or a mapping with path (or url_env, url_file or url), \
                 keep_noop_runs and keep_changes"
                    .into(),
            ))
        }
    };
    const MIN: Duration = Duration::from_secs(3600);
    const MAX: Duration = Duration::from_secs(100 * 366 * 24 * 3600);
    let parse = |key: &'static str, text: &str| {
        let d = humantime::parse_duration(text.trim()).map_err(|e| {
            (
                key,
                format!("{text:?} is not a duration such as 30d or 1y, nor forever: {e}"),
            )
        })?;
        if !(MIN..=MAX).contains(&d) {
            return Err((key, "must be between 1h and 100y, or forever".to_string()));
        }
        Ok(d)
    };
    let keep_noop_runs = parse("keep_noop_runs", &m.keep_noop_runs)?;
    let keep_changes = match m.keep_changes.trim() {
        "forever" => None,
        text => Some(parse("keep_changes", text)?),
    };
    let postgres = RawPostgres {
        url: m.url,
        url_env: m.url_env,
        url_file: m.url_file,
        schema: m.schema,
    };
    let path = match m.path {
        Some(_) if postgres.has_url() => {
            return Err((
                "path",
                "names a SQLite history, and url_env, url_file or url a PostgreSQL one: \
                 keep one"
                    .into(),
            ))
        }
        Some(p) if p.as_os_str().is_empty() => return Err(("path", "must not be empty".into())),
        Some(p) => p,
        None => default_path(),
    };
    Ok((
        path,
        RetentionConfig {
            keep_noop_runs,
            keep_changes,
        },
        postgres,
    ))
}

#[cfg(test)]
mod tests {
    use super::super::Config;
    use std::path::Path;
    use std::time::Duration;

    const BASE: &str = "studio:\n  base_url: https://school.instructuremedia.com\n  token_env: T\nroles:\n  managed: [Admin]\nsource:\n  yaml: roles.yaml\n";

    fn parse(extra: &str) -> Result<Config, super::super::ConfigError> {
        Config::parse(
            Path::new("/etc/srs/c.yaml"),
            &format!("{BASE}{extra}"),
            None,
        )
    }

    #[test]
    fn history_as_a_path_or_a_mapping_and_pending_backoff() {
        let c = parse("history: /var/lib/srs/h.db\n").unwrap();
        assert_eq!(c.history, Path::new("/var/lib/srs/h.db"));
        assert_eq!(c.retention, super::RetentionConfig::default());
        assert_eq!(c.pending.recheck_max, Duration::from_secs(24 * 3600));
        let c = parse("history:\n  path: h.db\n  keep_noop_runs: 7d\n  keep_changes: 2y\npending:\n  recheck_max: 6h\n").unwrap();
        assert_eq!(c.history, Path::new("/etc/srs/h.db"));
        assert_eq!(c.retention.keep_noop_runs, Duration::from_secs(7 * 86400));
        assert!(c.retention.keep_changes.is_some());
        assert_eq!(c.pending.recheck_max, Duration::from_secs(6 * 3600));
        let e = parse("history:\n  path: h.db\n  keep_forever: 1d\n").unwrap_err();
        assert!(e.message.contains("keep_forever"), "{e}");
        assert_eq!(e.line, Some(8), "{e}");
        let e = parse("history:\n  keep_noop_runs: 1s\n").unwrap_err();
        assert_eq!(e.line, Some(9), "{e}");
        assert!(e.message.starts_with("history.keep_noop_runs"), "{e}");
        let e = parse("pending:\n  recheck_max: soon\n").unwrap_err();
        assert_eq!(e.line, Some(9), "{e}");
        let e = parse("pending:\n  recheck_min: 2d\n  recheck_max: 1d\n").unwrap_err();
        assert!(e.message.starts_with("pending.recheck_min"), "{e}");
        // A default gives way to the key that is set; only two set keys conflict.
        let c = parse("pending:\n  recheck_max: 30s\n").unwrap();
        assert_eq!(c.pending.recheck_min, Duration::from_secs(30));
        assert_eq!(c.pending.recheck_max, Duration::from_secs(30));
        let c = parse("pending:\n  recheck_min: 2d\n").unwrap();
        assert_eq!(c.pending.recheck_min, Duration::from_secs(2 * 86400));
        assert_eq!(c.pending.recheck_max, Duration::from_secs(2 * 86400));
        let c = parse("pending:\n  recheck_min: 1m\n").unwrap();
        assert_eq!(c.pending.recheck_max, Duration::from_secs(24 * 3600));
        let e = parse("pending:\n  wait: 1d\n").unwrap_err();
        assert!(e.message.contains("wait"), "{e}");
    }
}
