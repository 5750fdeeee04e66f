//! `source`: where the desired roles come from, a YAML roles file (with its size limit) or a
//! SQL query (its URL a secret, the query checked to only read, a statement timeout).

use super::checker::Checker;
use super::sqlite_url::resolve_sqlite_path;
use super::ConfigError;
use secrecy::SecretString;
use serde::Deserialize;
use std::path::{Path, PathBuf};
use std::time::Duration;

#[derive(Debug)]
pub enum SourceConfig {
    Yaml(YamlSourceConfig),
    Sql(SqlSourceConfig),
}

#[derive(Debug)]
pub struct YamlSourceConfig {
    pub path: PathBuf,
    /// A larger roles file is refused unread (`source.max_bytes`).
    pub max_bytes: u64,
}

#[derive(Debug)]
pub struct SqlSourceConfig {
    /// The connection URL, a secret: it usually holds a password.
    pub url: SecretString,
    /// Where the URL came from (`env STUDIO_DB_URL`, `file /run/...`), for messages.
    pub url_origin: String,
    pub query: String,
    pub statement_timeout: Duration,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawSource {
    yaml: Option<PathBuf>,
    sql: Option<RawSql>,
    /// Bytes, or a size such as `64 MiB`; checked in `Checker::max_bytes`.
    max_bytes: Option<serde_yaml::Value>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawSql {
    url_env: Option<String>,
    url_file: Option<PathBuf>,
    query: String,
    #[serde(default = "default_statement_timeout")]
    statement_timeout_seconds: f64,
}

fn default_statement_timeout() -> f64 {
    60.0
}

impl Checker<'_> {
    pub(super) fn source(
        &self,
        raw: RawSource,
        resolve: &dyn Fn(&Path) -> PathBuf,
    ) -> Result<SourceConfig, ConfigError> {
        if raw.max_bytes.is_some() && raw.yaml.is_none() {
            return Err(self.error(
                &["source", "max_bytes"],
                "limits the size of the roles file: only for a `yaml` source",
            ));
        }
        match (raw.yaml, raw.sql) {
            (Some(file), None) => Ok(SourceConfig::Yaml(YamlSourceConfig {
                path: resolve(&file),
                max_bytes: self.max_bytes(raw.max_bytes)?,
            })),
            (None, Some(sql)) => Ok(SourceConfig::Sql(self.sql(sql, resolve)?)),
            _ => Err(self.error(&["source"], "set exactly one of yaml or sql")),
        }
    }

    fn sql(
        &self,
        sql: RawSql,
        resolve: &dyn Fn(&Path) -> PathBuf,
    ) -> Result<SqlSourceConfig, ConfigError> {
        let k = |key: &'static str| ["source", "sql", key];
        let (url, url_origin) = match (sql.url_env, sql.url_file) {
            // Named by key, not by value: see `secrets.rs`.
            (Some(var), None) => (
                self.secret_env(&k("url_env"), &var)?,
                "source.sql.url_env".to_string(),
            ),
            (None, Some(file)) => (
                self.secret_file(&k("url_file"), &resolve(&file))?,
                "source.sql.url_file".to_string(),
            ),
            _ => {
                return Err(self.error(&["source", "sql"], "set exactly one of url_env or url_file"))
            }
        };
        if sql.query.trim().is_empty() {
            return Err(self.error(&k("query"), "must not be empty"));
        }
        if !(sql.statement_timeout_seconds > 0.0 && sql.statement_timeout_seconds <= 3600.0) {
            return Err(self.error(
                &k("statement_timeout_seconds"),
                format!(
                    "must be more than 0 and at most 3600 (got {})",
                    sql.statement_timeout_seconds
                ),
            ));
        }
        let config = SqlSourceConfig {
            url: resolve_sqlite_path(url, resolve),
            url_origin,
            query: sql.query,
            statement_timeout: Duration::from_secs_f64(sql.statement_timeout_seconds),
        };
        // One query that only reads, in the dialect the URL names (desired/sql/statement.rs).
        use secrecy::ExposeSecret;
        crate::input::sql_query::check_query(config.url.expose_secret(), &config.query)
            .map_err(|m| self.error(&k("query"), m))?;
        Ok(config)
    }

    /// `source.max_bytes`: bytes, or a size with a unit; at most
    /// [`ROLES_FILE_MAX_MAX_BYTES`](crate::input::input_file::ROLES_FILE_MAX_MAX_BYTES).
    fn max_bytes(&self, raw: Option<serde_yaml::Value>) -> Result<u64, ConfigError> {
        use crate::input::input_file::{human_bytes, parse_size, ROLES_FILE_MAX_MAX_BYTES as MAX};
        let Some(raw) = raw else {
            return Ok(crate::input::input_file::ROLES_FILE_DEFAULT_MAX_BYTES);
        };
        let bytes = match &raw {
            serde_yaml::Value::Number(n) => n.as_u64(),
            serde_yaml::Value::String(s) => parse_size(s),
            _ => None,
        };
        match bytes {
            Some(b) if (1024..=MAX).contains(&b) => Ok(b),
            _ => Err(self.error(
                &["source", "max_bytes"],
                format!(
                    "must be a size between 1 KiB and {}, in bytes or with a unit \
                     (e.g. 64 MiB, 200 MB)",
                    human_bytes(MAX)
                ),
            )),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::tests::{load, GOOD};
    use super::SourceConfig;

    #[test]
    fn statement_timeouts_out_of_range_name_key_and_line() {
        let sql = |timeout: &str| {
            GOOD.replace(
                "  yaml: roles.yaml\n",
                &format!("  sql:\n    url_env: CONFIG_TEST_TOKEN\n    query: SELECT email, role FROM g\n    statement_timeout_seconds: {timeout}\n"),
            )
        };
        for timeout in [".inf", ".nan", "0", "1e9"] {
            let e = load(&sql(timeout)).unwrap_err();
            assert_eq!(e.line, Some(10), "{timeout}: {e}");
            assert!(e.message.contains("statement_timeout_seconds"), "{e}");
        }
    }

    #[test]
    fn roles_file_size_limit() {
        let c = load(GOOD).unwrap();
        let SourceConfig::Yaml(y) = &c.source else {
            panic!("yaml source")
        };
        assert_eq!(y.max_bytes, 64 << 20);
        for (given, bytes) in [("200 MB", 200_000_000), ("1048576", 1 << 20), ("2 GiB", 0)] {
            let text = GOOD.replace(
                "roles.yaml\n",
                &format!("roles.yaml\n  max_bytes: {given}\n"),
            );
            match load(&text) {
                Ok(c) => {
                    let SourceConfig::Yaml(y) = &c.source else {
                        panic!("yaml source")
                    };
                    assert_eq!(y.max_bytes, bytes, "{given}");
                }
                Err(e) => {
                    assert_eq!(bytes, 0, "{given}: {e}");
                    assert_eq!(e.line, Some(8), "{e}");
                    assert!(e.message.contains("between 1 KiB and 1 GiB"), "{e}");
                }
            }
        }
    }
}
