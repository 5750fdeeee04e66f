//! `log`: the log format and level. The level is checked here rather than left to
//! `EnvFilter`, which reads a misspelt level as a target name and silences everything else.

use super::checker::Checker;
use super::ConfigError;
use serde::Deserialize;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    Pretty,
    Json,
}

#[derive(Debug)]
pub struct LogConfig {
    pub format: LogFormat,
    pub level: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawLog {
    #[serde(default = "default_log_format")]
    format: LogFormat,
    #[serde(default = "default_log_level")]
    level: String,
}

impl Default for RawLog {
    fn default() -> Self {
        RawLog {
            format: default_log_format(),
            level: default_log_level(),
        }
    }
}

fn default_log_format() -> LogFormat {
    LogFormat::Pretty
}
fn default_log_level() -> String {
    "info".into()
}

impl Checker<'_> {
    pub(super) fn log(&self, raw: RawLog) -> Result<LogConfig, ConfigError> {
        check_log_level(&raw.level).map_err(|m| self.error(&["log", "level"], m))?;
        Ok(LogConfig {
            format: raw.format,
            level: raw.level,
        })
    }
}

/// Checks `log.level`: a level, or `EnvFilter` directives (`info,studio_role_sync=debug`)
/// whose every level is a real one. `EnvFilter` alone reads a bare word such as `warning` as
/// the name of a *target*, which silences everything else: so every bare word must be a level.
pub fn check_log_level(level: &str) -> Result<(), String> {
    const LEVELS: [&str; 6] = ["error", "warn", "info", "debug", "trace", "off"];
    let usage = "use one of error, warn, info, debug, trace, off, \
                 or directives such as \"info,studio_role_sync=debug\"";
    if level.trim().is_empty() {
        return Err(format!("must not be empty; {usage}"));
    }
    for directive in level.split(',').map(str::trim) {
        let word = directive
            .rsplit_once('=')
            .map_or(directive, |(_, l)| l)
            .trim()
            .to_ascii_lowercase();
        if LEVELS.contains(&word.as_str()) {
            continue;
        }
        let hint = LEVELS
            .iter()
            .find(|l| !word.is_empty() && (l.starts_with(&word) || word.starts_with(*l)))
            .map(|l| format!(" (did you mean {l:?}?)"))
            .unwrap_or_default();
        return Err(if directive == level.trim() {
            format!("{level:?} is not a log level{hint}; {usage}")
        } else {
            format!("{directive:?} in {level:?} is not a log level directive{hint}; {usage}")
        });
    }
    tracing_subscriber::EnvFilter::try_new(level)
        .map(|_| ())
        .map_err(|e| format!("{level:?} is not a valid filter: {e}; {usage}"))
}

#[cfg(test)]
mod tests {
    use super::super::tests::{load, GOOD};
    use super::check_log_level;

    #[test]
    fn log_levels_are_checked() {
        for good in [
            "info",
            "WARN",
            "off",
            "info,studio_role_sync=debug",
            "warn,sqlx=error",
        ] {
            assert_eq!(check_log_level(good), Ok(()), "{good}");
        }
        let e = check_log_level("warning").unwrap_err();
        assert!(
            e.starts_with("\"warning\" is not a log level (did you mean \"warn\"?)"),
            "{e}"
        );
        for bad in ["", "verbose", "info,studio_role_sync", "info,x=loud", "x=="] {
            assert!(check_log_level(bad).is_err(), "{bad}");
        }
        let e = load(&format!("{GOOD}log:\n  level: warning\n")).unwrap_err();
        assert_eq!(e.line, Some(9), "{e}");
        assert!(e.message.starts_with("log.level: \"warning\""), "{e}");
    }
}
