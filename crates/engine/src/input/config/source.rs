//! `source` / `sources`: where the desired roles come from. One source (`source:`) or several
//! (`sources:`, whose union is the desired state): a YAML roles file or a CSV file (each with
//! its size limit), a SQL query (its URL a secret, the query checked to only read, a statement
//! timeout) or an LDAP directory (`ldap.rs`).

use super::checker::Checker;
pub use super::ldap::{LdapGroup, LdapMembers, LdapNested, LdapSourceConfig};
use super::sqlite_url::resolve_sqlite_path;
use super::ConfigError;
use crate::desired::SourceName;
use crate::roles::ManagedRoles;
use secrecy::SecretString;
use serde::Deserialize;
use std::path::{Path, PathBuf};
use std::time::Duration;

#[derive(Debug)]
pub enum SourceConfig {
    Yaml(YamlSourceConfig),
    Sql(SqlSourceConfig),
    Csv(CsvSourceConfig),
    Ldap(LdapSourceConfig),
}

impl SourceConfig {
    /// The name grants of this source show (`roles.yaml`, `grants.csv`, `sql`, `ldap`).
    pub fn name(&self) -> SourceName {
        match self {
            SourceConfig::Yaml(y) => crate::desired::yaml::file_name(&y.path.to_string_lossy()),
            SourceConfig::Csv(c) => crate::desired::yaml::file_name(&c.path.to_string_lossy()),
            SourceConfig::Sql(_) => SourceName::new("sql"),
            SourceConfig::Ldap(_) => SourceName::new("ldap"),
        }
    }
}

#[derive(Debug)]
pub struct YamlSourceConfig {
    pub path: PathBuf,
    /// A larger roles file is refused unread (`source.max_bytes`).
    pub max_bytes: u64,
}

/// `csv: grants.csv`: rows `email,role[,until,reason]` under a header.
#[derive(Debug)]
pub struct CsvSourceConfig {
    pub path: PathBuf,
    /// A larger file is refused unread (`max_bytes`, as for the roles file).
    pub max_bytes: u64,
    /// The name its grants show, unique among `sources`.
    pub name: SourceName,
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

/// One source as written: exactly one kind, and the roles file's or CSV file's size limit.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawSource {
    yaml: Option<PathBuf>,
    sql: Option<RawSql>,
    csv: Option<PathBuf>,
    ldap: Option<super::ldap::RawLdap>,
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

/// The most sources one config may list.
const MAX_SOURCES: usize = 16;

impl Checker<'_> {
    /// `source:` (one) or `sources:` (a list): exactly one of the two keys.
    pub(super) fn sources(
        &self,
        one: Option<RawSource>,
        many: Option<Vec<RawSource>>,
        resolve: &dyn Fn(&Path) -> PathBuf,
        managed: &ManagedRoles,
    ) -> Result<Vec<SourceConfig>, ConfigError> {
        let sources = match (one, many) {
            (Some(raw), None) => {
                vec![self.source(raw, &["source".to_string()], resolve, managed)?]
            }
            (None, Some(list)) => {
                if list.is_empty() || list.len() > MAX_SOURCES {
                    return Err(self.error(
                        &["sources"],
                        format!("list between 1 and {MAX_SOURCES} sources"),
                    ));
                }
                let mut out = Vec::with_capacity(list.len());
                for (i, raw) in list.into_iter().enumerate() {
                    let at = ["sources".to_string(), format!("[{}]", i + 1)];
                    out.push(self.source(raw, &at, resolve, managed)?);
                }
                out
            }
            (Some(_), Some(_)) => {
                return Err(self.error(
                    &["sources"],
                    "set either source (one) or sources (a list), not both",
                ))
            }
            (None, None) => {
                let mut e = self.error(
                    &["source"],
                    "missing: set source (yaml, sql, ldap or csv) or sources (a list of them)",
                );
                // A key that is not there has no line: point where the file's mapping starts,
                // as serde does for any other missing key.
                e.line = e.line.or(Some(1));
                return Err(e);
            }
        };
        let mut names = std::collections::HashSet::new();
        for (i, s) in sources.iter().enumerate() {
            if !names.insert(s.name()) {
                return Err(self.error(
                    &["sources"],
                    format!(
                        "source {} ({}) has the name of an earlier one: list each file once, \
                         and at most one sql and one ldap source",
                        i + 1,
                        s.name()
                    ),
                ));
            }
        }
        Ok(sources)
    }

    /// One source; `at` is where it stands (`source`, or `sources` and `[n]`), for messages.
    fn source(
        &self,
        raw: RawSource,
        at: &[String],
        resolve: &dyn Fn(&Path) -> PathBuf,
        managed: &ManagedRoles,
    ) -> Result<SourceConfig, ConfigError> {
        let key = |rest: &[&str]| -> Vec<String> {
            at.iter()
                .cloned()
                .chain(rest.iter().map(|s| s.to_string()))
                .collect()
        };
        let file_kind = raw.yaml.is_some() || raw.csv.is_some();
        if raw.max_bytes.is_some() && !file_kind {
            return Err(self.error_at(
                &key(&["max_bytes"]),
                "limits the size of the roles or CSV file: only for a `yaml` or `csv` source",
            ));
        }
        let kinds = [
            raw.yaml.is_some(),
            raw.sql.is_some(),
            raw.csv.is_some(),
            raw.ldap.is_some(),
        ];
        if kinds.iter().filter(|k| **k).count() != 1 {
            return Err(self.error_at(at, "set exactly one of yaml, sql, ldap or csv"));
        }
        if let Some(file) = raw.yaml {
            return Ok(SourceConfig::Yaml(YamlSourceConfig {
                path: resolve(&file),
                max_bytes: self.max_bytes(raw.max_bytes, &key(&["max_bytes"]))?,
            }));
        }
        if let Some(file) = raw.csv {
            let path = resolve(&file);
            return Ok(SourceConfig::Csv(CsvSourceConfig {
                name: crate::desired::yaml::file_name(&path.to_string_lossy()),
                path,
                max_bytes: self.max_bytes(raw.max_bytes, &key(&["max_bytes"]))?,
            }));
        }
        if let Some(sql) = raw.sql {
            return Ok(SourceConfig::Sql(self.sql(sql, &key(&["sql"]), resolve)?));
        }
        let ldap = raw.ldap.expect("one kind is set");
        Ok(SourceConfig::Ldap(self.ldap(
            ldap,
            &key(&["ldap"]),
            resolve,
            managed,
        )?))
    }

    fn sql(
        &self,
        sql: RawSql,
        at: &[String],
        resolve: &dyn Fn(&Path) -> PathBuf,
    ) -> Result<SqlSourceConfig, ConfigError> {
        let k = |key: &str| -> Vec<String> {
            let mut v = at.to_vec();
            v.push(key.to_string());
            v
        };
        let shown = |key: &str| k(key).join(".").replace(".[", "[");
        let (url, url_origin) = match (sql.url_env, sql.url_file) {
            // Named by key, not by value: see `secrets.rs`.
            (Some(var), None) => (
                self.secret_env(&strs(&k("url_env")), &var)?,
                shown("url_env"),
            ),
            (None, Some(file)) => (
                self.secret_file(&strs(&k("url_file")), &resolve(&file))?,
                shown("url_file"),
            ),
            _ => return Err(self.error_at(at, "set exactly one of url_env or url_file")),
        };
        if sql.query.trim().is_empty() {
            return Err(self.error_at(&k("query"), "must not be empty"));
        }
        if !(sql.statement_timeout_seconds > 0.0 && sql.statement_timeout_seconds <= 3600.0) {
            return Err(self.error_at(
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
            .map_err(|m| self.error_at(&k("query"), m))?;
        Ok(config)
    }

    /// `max_bytes`: bytes, or a size with a unit; at most
    /// [`ROLES_FILE_MAX_MAX_BYTES`](crate::input::input_file::ROLES_FILE_MAX_MAX_BYTES).
    fn max_bytes(
        &self,
        raw: Option<serde_yaml::Value>,
        key: &[String],
    ) -> Result<u64, ConfigError> {
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
            _ => Err(self.error_at(
                key,
                format!(
                    "must be a size between 1 KiB and {}, in bytes or with a unit \
                     (e.g. 64 MiB, 200 MB)",
                    human_bytes(MAX)
                ),
            )),
        }
    }
}

/// `&[String]` as the `&[&str]` the shared checks take.
pub(super) fn strs(key: &[String]) -> Vec<&str> {
    key.iter().map(String::as_str).collect()
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
        let SourceConfig::Yaml(y) = &c.sources[0] else {
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
                    let SourceConfig::Yaml(y) = &c.sources[0] else {
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

    const LDAP: &str = "    url: ldaps://ldap.school.edu\n    bind_dn: cn=sync,dc=school,dc=edu\n    password_env: CONFIG_TEST_SECRET\n    base_dn: dc=school,dc=edu\n    groups:\n      - {dn: \"cn=media,dc=school,dc=edu\", roles: [Admin]}\n      - {filter: \"(departmentNumber=4411)\", roles: [Admin]}\n";

    fn several(rest: &str) -> String {
        GOOD.replace(
            "source:\n  yaml: roles.yaml\n",
            &format!(
                "sources:\n  - yaml: roles.yaml\n  - csv: grants.csv\n    max_bytes: 1 MiB\n{rest}"
            ),
        )
    }

    #[test]
    fn several_sources_are_read_in_order_with_their_names() {
        let c = load(&several(&format!(
            "  - ldap:\n{}",
            LDAP.replace("\n    ", "\n      ")
                .replacen("    url", "      url", 1)
        )))
        .unwrap();
        let names: Vec<String> = c.sources.iter().map(|s| s.name().to_string()).collect();
        assert_eq!(names, ["roles.yaml", "grants.csv", "ldap"]);
        let SourceConfig::Ldap(l) = &c.sources[2] else {
            panic!("ldap")
        };
        assert_eq!(l.email_attribute, "mail");
        assert_eq!(l.groups.len(), 2);
        assert_eq!(l.page_size, 500);
        assert!(!format!("{c:?}").contains("\"s\""), "no password in Debug");
        assert_eq!(c.source_files().len(), 2);
    }

    #[test]
    fn a_bad_entry_of_sources_is_named_by_its_place() {
        let e = load(&several(
            "  - sql:\n      url_env: CONFIG_TEST_TOKEN\n      query: SELECT 1\n      statement_timeout_seconds: 0\n")).unwrap_err();
        assert!(
            e.message
                .starts_with("sources[3].sql.statement_timeout_seconds: "),
            "{e}"
        );
        assert_eq!(e.line, Some(6), "the line of sources: {e}");
        let e = load(&several("  - csv: other/grants.csv\n")).unwrap_err();
        assert!(
            e.message
                .contains("source 3 (grants.csv) has the name of an earlier one"),
            "{e}"
        );
        let both = GOOD.replace("source:\n", "sources: [{csv: a.csv}]\nsource:\n");
        assert!(load(&both).unwrap_err().message.contains("not both"));
    }

    #[test]
    fn ldap_in_clear_only_on_loopback_or_with_starttls() {
        let ldap = |url: &str, extra: &str| {
            GOOD.replace(
                "  yaml: roles.yaml\n",
                &format!(
                    "  ldap:\n{}{extra}",
                    LDAP.replace("ldaps://ldap.school.edu", url)
                ),
            )
        };
        let e = load(&ldap("ldap://ldap.school.edu", "")).unwrap_err();
        assert!(e.message.contains("in clear"), "{e}");
        assert!(load(&ldap("ldap://ldap.school.edu", "    starttls: true\n")).is_ok());
        load(&ldap("ldap://127.0.0.1:3890", "")).unwrap();
        let e = load(&ldap("ldaps://ldap.school.edu", "    starttls: true\n")).unwrap_err();
        assert!(e.message.contains("TLS already"), "{e}");
        let e = load(&ldap("ldaps://ldap.school.edu", "    nested: deep\n")).unwrap_err();
        assert!(e.message.contains("unknown variant"), "{e}");
        let bad = LDAP.replace("(departmentNumber=4411)", "departmentNumber=4411)");
        let e =
            load(&GOOD.replace("  yaml: roles.yaml\n", &format!("  ldap:\n{bad}"))).unwrap_err();
        assert!(
            e.message.starts_with("source.ldap.groups[2]: filter"),
            "{e}"
        );
        let bad = LDAP.replace(
            "roles: [Admin]}\n      - {filter",
            "roles: [Teacher]}\n      - {filter",
        );
        let e =
            load(&GOOD.replace("  yaml: roles.yaml\n", &format!("  ldap:\n{bad}"))).unwrap_err();
        assert!(
            e.message.contains("\"Teacher\" is not in roles.managed"),
            "{e}"
        );
    }
}
