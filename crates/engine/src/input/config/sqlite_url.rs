//! A relative SQLite file in `source.sql`'s URL (`sqlite://roles.db`, `sqlite:roles.db`) is,
//! like every other path in the config, relative to the config file's folder, not to the
//! working folder. The URL is a secret, so it is rewritten without ever being shown.

use secrecy::{ExposeSecret, SecretString};
use std::path::{Path, PathBuf};

/// `url` with a relative SQLite file made absolute by `resolve`; any other URL unchanged.
pub(super) fn resolve_sqlite_path(
    url: SecretString,
    resolve: &dyn Fn(&Path) -> PathBuf,
) -> SecretString {
    let text = url.expose_secret();
    let Some(rest) = text
        .strip_prefix("sqlite://")
        .or_else(|| text.strip_prefix("sqlite:"))
    else {
        return url;
    };
    let (file, query) = rest
        .split_once('?')
        .map_or((rest, None), |(f, q)| (f, Some(q)));
    if file.is_empty() || file.starts_with('/') || file.starts_with(":memory:") {
        return url;
    }
    let absolute = resolve(Path::new(file));
    let query = query.map(|q| format!("?{q}")).unwrap_or_default();
    SecretString::from(format!("sqlite://{}{query}", absolute.display()))
}

#[cfg(test)]
mod tests {
    use super::super::tests::{load_with_env, GOOD};
    use super::super::SourceConfig;
    use secrecy::ExposeSecret;

    #[test]
    fn relative_sqlite_files_resolve_from_the_config_folder() {
        let text = GOOD.replace(
            "  yaml: roles.yaml\n",
            "  sql:\n    url_env: CONFIG_TEST_SQL_URL\n    query: SELECT email, role FROM g\n",
        );
        for (given, expected) in [
            (
                "sqlite://hr/roles.db?mode=ro",
                "sqlite:///etc/srs/hr/roles.db?mode=ro",
            ),
            ("sqlite:roles.db", "sqlite:///etc/srs/roles.db"),
            ("sqlite:///abs/roles.db", "sqlite:///abs/roles.db"),
            ("postgres://db/hr", "postgres://db/hr"),
        ] {
            let c = load_with_env(&text, &[("CONFIG_TEST_SQL_URL", given)]).unwrap();
            let SourceConfig::Sql(sql) = &c.source else {
                panic!("sql source")
            };
            assert_eq!(sql.url.expose_secret(), expected);
        }
    }
}
