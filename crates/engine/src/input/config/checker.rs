//! The [`Checker`] that turns each section as written into its checked form: it knows the
//! file's path and text, so every error names the key and the line it is on.
//!
//! Each section adds its own `impl Checker` block in its file; this one holds what they share.

use super::secrets::Env;
use super::ConfigError;
use std::path::Path;

pub(super) struct Checker<'a> {
    pub(super) path: &'a Path,
    pub(super) text: &'a str,
    /// Where `*_env` secrets are read; `None`: secrets are not read (an empty placeholder
    /// stands in), for commands that only read the history.
    pub(super) env: Option<Env<'a>>,
}

impl Checker<'_> {
    /// An error at `key` (`["studio", "burst"]`), on that key's line. A list entry is a key
    /// `[n]` (`sources[2].sql`), found on its list's line.
    pub(super) fn error(&self, key: &[&str], message: impl Into<String>) -> ConfigError {
        ConfigError::at_key(self.path, self.text, key, message)
    }

    /// As [`error`](Self::error), with the key path as owned strings.
    pub(super) fn error_at(&self, key: &[String], message: impl Into<String>) -> ConfigError {
        let key: Vec<&str> = key.iter().map(String::as_str).collect();
        self.error(&key, message)
    }

    /// Whether secrets (and other files read only to reach Studio) are read.
    pub(super) fn reads_secrets(&self) -> bool {
        self.env.is_some()
    }

    /// Checks that a config number lies in `min..=max` (NaN and infinities never do), naming
    /// the key and its line otherwise.
    pub(super) fn in_range<T>(
        &self,
        key: &[&str],
        value: T,
        min: T,
        max: T,
    ) -> Result<(), ConfigError>
    where
        T: PartialOrd + std::fmt::Display + Copy,
    {
        if value >= min && value <= max {
            Ok(())
        } else {
            Err(self.error(
                key,
                format!("must be between {min} and {max} (got {value})"),
            ))
        }
    }
}
