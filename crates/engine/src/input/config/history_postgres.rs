//! `history:` on PostgreSQL (issue 20): the URL of the database and the schema the history
//! lives in, instead of a SQLite `path`.
//! ```yaml
//! history:
//!   url_env: HISTORY_URL      # or url_file: /run/secrets/history-url, or url: postgres://host/db
//!   schema: studio_role_sync  # the default; one schema per tenant
//! ```
//! The URL is a secret (it usually holds a password), read by the same readers as the SQL
//! source's (`secrets.rs`); `url` written in the config is accepted only without a password.
//! No message echoes a URL. `schema` goes into SQL as an identifier, so it is held to a plain
//! lower-case name rather than quoted.

use super::checker::Checker;
use super::ConfigError;
use secrecy::{ExposeSecret, SecretString};
use std::path::{Path, PathBuf};

/// The schema used when none is written.
pub const DEFAULT_SCHEMA: &str = "studio_role_sync";

/// The history on PostgreSQL. `Debug` shows no URL (`SecretString` is redacted).
#[derive(Debug)]
pub struct PostgresHistory {
    /// `postgres://` or `postgresql://`; read even by commands that read no other secret.
    pub url: SecretString,
    /// The key the URL came from (`history.url_env`, ...), for messages about it.
    pub url_origin: String,
    /// A plain identifier (`[a-z_][a-z0-9_]{0,62}`), safe to write unquoted into SQL.
    pub schema: String,
}

/// The PostgreSQL keys of `history` as written.
#[derive(Default)]
pub(super) struct RawPostgres {
    pub(super) url: Option<String>,
    pub(super) url_env: Option<String>,
    pub(super) url_file: Option<PathBuf>,
    pub(super) schema: Option<String>,
}

impl RawPostgres {
    /// Whether any URL key is written.
    pub(super) fn has_url(&self) -> bool {
        self.url.is_some() || self.url_env.is_some() || self.url_file.is_some()
    }
}

impl Checker<'_> {
    /// Checks the PostgreSQL keys and reads the URL; `None` when no URL key is written.
    pub(super) fn history_postgres(
        &self,
        raw: RawPostgres,
        resolve: &dyn Fn(&Path) -> PathBuf,
    ) -> Result<Option<PostgresHistory>, ConfigError> {
        if !raw.has_url() {
            return match raw.schema {
                Some(_) => Err(self.error(
                    &["history", "schema"],
                    "applies to a PostgreSQL history only: set url_env, url_file or url too",
                )),
                None => Ok(None),
            };
        }
        let schema = raw.schema.unwrap_or_else(|| DEFAULT_SCHEMA.into());
        check_schema(&schema).map_err(|m| self.error(&["history", "schema"], m))?;
        // The history's URL is read even by commands that read no other secret (`approve`,
        // `trigger`, `history`): without it there is no history to read or write.
        let process_env: super::secrets::Env<'_> = &super::secrets::process_env;
        let reader = Checker {
            path: self.path,
            text: self.text,
            env: Some(self.env.unwrap_or(process_env)),
        };
        // Named by key, not by value: see `secrets.rs`.
        let (url, key) = match (raw.url, raw.url_env, raw.url_file) {
            (Some(url), None, None) => {
                check_url(&url, true).map_err(|m| self.error(&["history", "url"], m))?;
                (SecretString::from(url), "url")
            }
            (None, Some(var), None) => {
                (reader.secret_env(&["history", "url_env"], &var)?, "url_env")
            }
            (None, None, Some(file)) => (
                reader.secret_file(&["history", "url_file"], &resolve(&file))?,
                "url_file",
            ),
            _ => {
                return Err(self.error(&["history"], "set exactly one of url_env, url_file or url"))
            }
        };
        // (Never empty: read above even where other secrets are not.)
        if !url.expose_secret().is_empty() {
            check_url(url.expose_secret(), false)
                .map_err(|m| self.error(&["history", key], format!("the URL named here {m}")))?;
        }
        Ok(Some(PostgresHistory {
            url,
            url_origin: format!("history.{key}"),
            schema,
        }))
    }
}

/// `[a-z_][a-z0-9_]{0,62}`: PostgreSQL's limit is 63 bytes, and lower case needs no quotes.
fn check_schema(schema: &str) -> Result<(), String> {
    let mut chars = schema.chars();
    let first_ok = chars
        .next()
        .is_some_and(|c| c.is_ascii_lowercase() || c == '_');
    let rest_ok = chars.all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_');
    if first_ok && rest_ok && schema.len() <= 63 && !schema.starts_with("pg_") {
        Ok(())
    } else {
        Err("must be a plain name: lower-case letters, digits and _, \
             not starting with a digit or pg_, at most 63 characters"
            .into())
    }
}

/// A `postgres://` URL; `written` (the `url` key, in the config itself) also without a
/// password. Messages never repeat the URL.
fn check_url(text: &str, written: bool) -> Result<(), String> {
    let url = url::Url::parse(text.trim()).map_err(|e| format!("is not a URL ({e})"))?;
    if !matches!(url.scheme(), "postgres" | "postgresql") {
        return Err("must be a postgres:// or postgresql:// URL".into());
    }
    let password_in_query = url.query_pairs().any(|(k, _)| k == "password");
    if written && (url.password().is_some() || password_in_query) {
        return Err(
            "holds a password: a config file is no place for one; name an \
                    environment variable with url_env or a file with url_file instead"
                .into(),
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::super::secrets::Env;
    use super::super::Config;
    use secrecy::ExposeSecret;
    use std::path::Path;

    const BASE: &str = "studio:\n  base_url: https://school.instructuremedia.com\n  token_env: T\nroles:\n  managed: [Admin]\nsource:\n  yaml: roles.yaml\n";
    const SECRET: &str = "hunter2-s3cr3t";

    fn env(name: &str) -> Option<String> {
        match name {
            "T" => Some("token".into()),
            "HISTORY_URL" => Some(format!("postgres://srs:{SECRET}@db.example/srs")),
            "MYSQL_URL" => Some(format!("mysql://srs:{SECRET}@db.example/srs")),
            _ => None,
        }
    }

    fn parse(history: &str) -> Result<Config, super::super::ConfigError> {
        let e: Env = &env;
        Config::from_text_with_env(
            Path::new("/etc/srs/c.yaml"),
            &format!("{BASE}history:\n{history}"),
            e,
        )
    }

    #[test]
    fn url_env_reads_the_url_and_the_default_schema() {
        let c = parse("  url_env: HISTORY_URL\n  keep_changes: 2y\n").unwrap();
        let pg = c.history_postgres.as_ref().unwrap();
        assert_eq!(
            pg.url.expose_secret(),
            format!("postgres://srs:{SECRET}@db.example/srs")
        );
        assert_eq!(pg.schema, "studio_role_sync");
        assert_eq!(pg.url_origin, "history.url_env");
        // Retention applies to both backends; the SQLite path keeps its default.
        assert!(c.retention.keep_changes.is_some());
        assert_eq!(c.history, Path::new("/etc/srs/state/history.db"));
        assert!(
            !format!("{c:?}").contains(SECRET),
            "Debug shows the password"
        );
    }

    #[test]
    fn url_file_and_url_without_password() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("url");
        std::fs::write(&file, format!("postgresql://srs:{SECRET}@db/srs\n")).unwrap();
        let c = parse(&format!(
            "  url_file: {}\n  schema: tenant_7\n",
            file.display()
        ))
        .unwrap();
        let pg = c.history_postgres.unwrap();
        assert_eq!(
            pg.url.expose_secret(),
            format!("postgresql://srs:{SECRET}@db/srs")
        );
        assert_eq!(pg.schema, "tenant_7");
        let c = parse("  url: postgres://srs@db.example/srs?sslmode=require\n").unwrap();
        assert!(c.history_postgres.is_some());
        assert!(parse("  path: h.db\n").unwrap().history_postgres.is_none());
    }

    #[test]
    fn a_written_url_with_a_password_is_refused_without_echoing_it() {
        for url in [
            format!("postgres://srs:{SECRET}@db/srs"),
            format!("postgres://srs@db/srs?password={SECRET}"),
        ] {
            let e = parse(&format!("  url: {url}\n")).unwrap_err();
            assert!(
                e.message.starts_with("history.url: holds a password"),
                "{e}"
            );
            assert!(e.message.contains("url_env"), "{e}");
            assert_eq!(e.line, Some(9), "{e}");
            assert!(!e.to_string().contains(SECRET), "{e}");
        }
    }

    #[test]
    fn exactly_one_url_key() {
        let e = parse("  url_env: HISTORY_URL\n  url: postgres://db/srs\n").unwrap_err();
        assert!(
            e.message
                .contains("exactly one of url_env, url_file or url"),
            "{e}"
        );
        assert_eq!(e.line, Some(8), "{e}");
        let e = parse("  url_env: NOT_SET\n").unwrap_err();
        assert!(e.message.starts_with("history.url_env"), "{e}");
    }

    #[test]
    fn only_postgres_urls_and_never_echoed() {
        let e = parse("  url_env: MYSQL_URL\n").unwrap_err();
        assert!(e.message.contains("postgres:// or postgresql://"), "{e}");
        assert_eq!(e.line, Some(9), "{e}");
        assert!(!e.to_string().contains(SECRET), "{e}");
        let e = parse("  url: sqlite://h.db\n").unwrap_err();
        assert!(e.message.contains("postgres://"), "{e}");
        let e = parse("  url: db.example/srs\n").unwrap_err();
        assert!(e.message.contains("is not a URL"), "{e}");
        assert!(!e.message.contains("db.example"), "{e}");
    }

    #[test]
    fn schema_is_a_plain_identifier() {
        for bad in [
            "Tenant",
            "1tenant",
            "a-b",
            "a;drop",
            "pg_temp",
            "\"x\"",
            &"a".repeat(64),
        ] {
            let e = parse(&format!("  url: postgres://db/srs\n  schema: '{bad}'\n")).unwrap_err();
            assert!(
                e.message
                    .starts_with("history.schema: must be a plain name"),
                "{bad}: {e}"
            );
            assert_eq!(e.line, Some(10), "{e}");
        }
        for good in ["_t", "t", "tenant_42", &"a".repeat(63)] {
            parse(&format!("  url: postgres://db/srs\n  schema: {good}\n")).unwrap();
        }
        let e = parse("  path: h.db\n  schema: tenant\n").unwrap_err();
        assert!(
            e.message
                .starts_with("history.schema: applies to a PostgreSQL"),
            "{e}"
        );
    }

    #[test]
    fn path_with_a_url_is_refused() {
        let e = parse("  path: h.db\n  url_env: HISTORY_URL\n").unwrap_err();
        assert!(e.message.starts_with("history.path"), "{e}");
        assert_eq!(e.line, Some(9), "{e}");
    }
}
