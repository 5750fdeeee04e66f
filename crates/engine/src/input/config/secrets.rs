//! Secrets named by `*_env` (an environment variable) or `*_file` (a file): read into
//! `SecretString`, whose `Debug` is redacted. Messages name the key, never the value written
//! there: an admin may have pasted the secret itself instead of a name or a path.
//!
//! The environment is a parameter ([`Env`]) rather than `std::env` directly, so tests pass a
//! map instead of changing the environment of a process whose other tests run in parallel.

use super::checker::Checker;
use super::ConfigError;
use secrecy::SecretString;
use std::path::Path;

/// Where `*_env` keys are looked up: [`process_env`] in the program, a map in tests.
pub type Env<'a> = &'a dyn Fn(&str) -> Option<String>;

/// The process environment, as an [`Env`].
pub fn process_env(name: &str) -> Option<String> {
    std::env::var(name).ok()
}

/// The secret in `file` as a `*_file` key reads it (bounded, trimmed, not empty), for a
/// reader that reads it again after the config loaded (the console's rotated password).
/// The error says what is wrong with the file, never its content.
pub fn read_secret_file(file: &Path) -> Result<SecretString, String> {
    let value =
        crate::input::input_file::read_text(file, crate::input::input_file::SECRET_MAX_BYTES)
            .map_err(|e| e.to_string())?;
    let value = value.trim();
    if value.is_empty() {
        return Err("is empty".into());
    }
    Ok(SecretString::from(value.to_string()))
}

impl Checker<'_> {
    /// The value of the environment variable that `key` names.
    pub(super) fn secret_env(&self, key: &[&str], var: &str) -> Result<SecretString, ConfigError> {
        self.optional_secret_env(var).ok_or_else(|| {
            self.error(
                key,
                "the environment variable named here is not set or is empty \
                 (write the variable's name here, never the secret itself)",
            )
        })
    }

    /// The value of `var`, trimmed; `None` when unset or blank.
    pub(super) fn optional_secret_env(&self, var: &str) -> Option<SecretString> {
        let Some(env) = self.env else {
            return Some(SecretString::from(String::new()));
        };
        env(var)
            .map(|v| v.trim().to_string())
            .filter(|v| !v.is_empty())
            .map(SecretString::from)
    }

    /// The secret in the file that `key` names, read with the bounded reader.
    pub(super) fn secret_file(
        &self,
        key: &[&str],
        file: &Path,
    ) -> Result<SecretString, ConfigError> {
        if !self.reads_secrets() {
            return Ok(SecretString::from(String::new()));
        }
        let value =
            crate::input::input_file::read_text(file, crate::input::input_file::SECRET_MAX_BYTES)
                .map_err(|e| {
                let hint = if e.is_not_found() {
                    " (a relative path is resolved from the config file's folder)"
                } else {
                    ""
                };
                self.error(key, format!("the file named here {e}{hint}"))
            })?;
        let value = value.trim();
        if value.is_empty() {
            return Err(self.error(key, "the file named here is empty"));
        }
        Ok(SecretString::from(value.to_string()))
    }
}

#[cfg(test)]
mod tests {
    use super::super::tests::{load, GOOD};

    #[test]
    fn secrets_written_in_the_wrong_place_are_never_echoed() {
        // The token itself pasted where a variable name or a path belongs.
        let pasted = "sk_live_9f8e7d6c5b4a";
        for auth in [
            format!("  token_env: {pasted}\n"),
            format!("  token_file: {pasted}\n"),
            format!("  oauth:\n    client_id: c\n    client_secret_env: {pasted}\n"),
            format!("  oauth:\n    client_id: c\n    client_secret_file: /{pasted}\n"),
            format!("  oauth:\n    client_id: c\n    client_secret_env: CONFIG_TEST_TOKEN\n    refresh_token_file: {pasted}\n"),
        ] {
            let text = GOOD.replace("  token_env: CONFIG_TEST_TOKEN\n", &auth);
            let e = load(&text).unwrap_err();
            assert!(!e.to_string().contains(pasted), "{e}");
            assert!(e.line.is_some() && e.message.contains("named here"), "{e}");
        }
        let sql = GOOD.replace(
            "  yaml: roles.yaml\n",
            &format!("  sql:\n    url_file: {pasted}\n    query: SELECT 1\n"),
        );
        let e = load(&sql).unwrap_err();
        assert!(!e.to_string().contains(pasted), "{e}");
        assert_eq!(e.line, Some(8), "{e}");
    }
}
