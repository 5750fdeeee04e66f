//! Tests of the whole loader (defaults, paths, unknown keys, lines across sections) and the
//! fixtures every section's tests share: a good config and loaders that take the environment
//! as a map, never `set_var` (tests run in parallel in one process).

use super::*;
use std::time::Duration;

/// The smallest good config; tests edit it with `replace`.
pub(super) const GOOD: &str = "studio:\n  base_url: https://school.instructuremedia.com\n  token_env: CONFIG_TEST_TOKEN\nroles:\n  managed: [Admin]\nsource:\n  yaml: roles.yaml\n";

/// The environment every test sees, plus `extra`.
const ENV: [(&str, &str); 2] = [("CONFIG_TEST_TOKEN", "t0ken"), ("CONFIG_TEST_SECRET", "s")];

/// Loads `text` as `/etc/srs/config.yaml` with [`ENV`].
pub(super) fn load(text: &str) -> Result<Config, ConfigError> {
    load_with_env(text, &[])
}

/// Loads `text` as `/etc/srs/config.yaml` with [`ENV`] and `extra` (which wins).
pub(super) fn load_with_env(text: &str, extra: &[(&str, &str)]) -> Result<Config, ConfigError> {
    let env = |name: &str| {
        extra
            .iter()
            .chain(ENV.iter())
            .find(|(n, _)| *n == name)
            .map(|(_, v)| v.to_string())
    };
    Config::from_text_with_env(Path::new("/etc/srs/config.yaml"), text, &env)
}

#[test]
fn good_config_resolves_paths_and_defaults() {
    let c = load(GOOD).unwrap();
    assert_eq!(c.roles_file(), Some(Path::new("/etc/srs/roles.yaml")));
    assert_eq!(c.history, Path::new("/etc/srs/state/history.db"));
    assert_eq!(c.studio.batch_size, 50);
    assert_eq!(c.timezone, chrono_tz::UTC);
    assert!(
        !format!("{c:?}").contains("t0ken"),
        "Debug must not show secrets"
    );
}

#[test]
fn unknown_key_names_its_line() {
    let e = load(&GOOD.replace("  managed:", "  manged: [X]\n  managed:")).unwrap_err();
    assert_eq!(e.line, Some(5));
    assert!(e.to_string().contains("unknown field `manged`"), "{e}");
    assert!(e.to_string().starts_with("/etc/srs/config.yaml:5:"), "{e}");
}

#[test]
fn bad_values_name_key_and_line() {
    let e = load(&GOOD.replace("[Admin]", "[]")).unwrap_err();
    assert_eq!(
        (e.line, e.message.contains("roles.managed")),
        (Some(5), true),
        "{e}"
    );
    let e = load(&format!("{GOOD}schedule: \"every day\"\n")).unwrap_err();
    assert_eq!(e.line, Some(8), "{e}");
    let e = load(&GOOD.replace("CONFIG_TEST_TOKEN", "CONFIG_TEST_UNSET_VAR")).unwrap_err();
    assert_eq!(e.line, Some(3), "{e}");
    assert!(
        e.message
            .starts_with("studio.token_env: the environment variable named here is not set"),
        "{e}"
    );
    let e = load(&format!("{GOOD}safety:\n  max_removal_ratio: 2\n")).unwrap_err();
    assert_eq!(e.line, Some(9), "{e}");
}

#[test]
fn secrets_come_from_the_env_given_and_are_skipped_without_one() {
    let blank = load_with_env(GOOD, &[("CONFIG_TEST_TOKEN", "  ")]).unwrap_err();
    assert!(blank.message.contains("not set or is empty"), "{blank}");
    // Without an environment at all (commands that only read the history), no secret is read.
    let c = Config::parse(Path::new("/etc/srs/config.yaml"), GOOD, None).unwrap();
    let AuthConfig::Token { token, .. } = &c.studio.auth else {
        panic!("token auth")
    };
    use secrecy::ExposeSecret;
    assert_eq!(token.expose_secret(), "");
}

#[test]
fn identity_settings_are_checked_with_their_line() {
    let c = load(GOOD).unwrap();
    assert_eq!(c.verify.full_every, Duration::from_secs(24 * 3600));
    let text = GOOD.replace("[Admin]\n", "[Admin, Sub, Cap]\n  exclusive: [[Admin, Sub]]\n")
        + "safety:\n  roles:\n    Admin: {max_removals: 2}\n    Cap:\n      max_removal_ratio: 0.5\nverify:\n  full_every: 12h\n";
    let c = load(&text).unwrap();
    assert_eq!(
        c.roles.managed.conflict(c.roles.managed.all()),
        Some((0, 1))
    );
    assert_eq!(c.safety.roles[&0].max_removals, Some(2));
    assert_eq!(c.safety.roles[&2].max_removal_ratio, Some(0.5));
    assert_eq!(c.verify.full_every, Duration::from_secs(12 * 3600));
    for (from, to, line, message) in [
        (
            "[[Admin, Sub]]",
            "[[Admin, Teacher]]",
            6,
            "\"Teacher\" is not in roles.managed",
        ),
        ("[[Admin, Sub]]", "[[Admin]]", 6, "at least two roles"),
        (
            "    Admin: {",
            "    Admn: {",
            11,
            "\"Admn\" is not in roles.managed",
        ),
        (
            "{max_removals: 2}",
            "{max_removal: 2}",
            11,
            "unknown field `max_removal`",
        ),
        ("0.5", "1.5", 13, "must be between 0 and 1"),
        ("12h", "soon", 15, "not a duration"),
        ("12h", "0s", 15, "between 1s and 366d"),
    ] {
        let e = load(&text.replace(from, to)).unwrap_err();
        assert_eq!(e.line, Some(line), "{to}: {e}");
        assert!(e.to_string().contains(message), "{to}: {e}");
    }
}

#[test]
fn yaml_bombs_in_the_config_are_refused_with_their_line() {
    let e = load(&GOOD.replace("[Admin]", "&r [Admin]\n  protected: *r")).unwrap_err();
    assert_eq!(e.line, Some(5), "{e}");
    assert!(e.message.contains("YAML anchor"), "{e}");
    let deep = format!(
        "{GOOD}timezone: {}{}\n",
        "[".repeat(50_000),
        "]".repeat(50_000)
    );
    let e = load(&deep).unwrap_err();
    assert_eq!(e.line, Some(8), "{e}");
}
