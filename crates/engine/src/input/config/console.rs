//! `console:`, the read-only history console the daemon serves. Off unless this section is
//! present.
//!
//! The console shows who holds which role and why, so who may see it is checked here, when
//! the config loads, not left to a deployment: off loopback it needs a bearer token or a
//! basic-auth password (from `*_env` / `*_file`, never written in the config), and since it
//! speaks plain http, it needs `behind_tls_proxy: true` to say that a proxy in front of it
//! terminates TLS. On loopback (an SSH tunnel, `kubectl port-forward`) it may go without.

use super::checker::Checker;
use secrecy::SecretString;
use serde::Deserialize;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

/// The console's settings, checked.
#[derive(Debug)]
pub struct ConsoleConfig {
    /// Its own listener; `None`: served on `http.listen` beside `/healthz` and `/metrics`.
    pub listen: Option<SocketAddr>,
    /// Who may read it; `None` only on a loopback listener.
    pub auth: Option<ConsoleAuth>,
    /// A proxy in front terminates TLS (required for a listener off loopback).
    pub behind_tls_proxy: bool,
    /// The `token_file` or `password_file` the secret in `auth` came from (resolved): the
    /// console reads it again, so a rotated secret works without a restart.
    pub secret_file: Option<PathBuf>,
}

/// How a reader proves they may read. The secrets are `SecretString`: redacted in `Debug`.
#[derive(Debug)]
pub enum ConsoleAuth {
    /// `Authorization: Bearer <token>`.
    Token(SecretString),
    /// `Authorization: Basic` with this password, and this user name when one is set.
    Password {
        user: Option<String>,
        password: SecretString,
    },
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawConsole {
    listen: Option<String>,
    token_env: Option<String>,
    token_file: Option<PathBuf>,
    password_env: Option<String>,
    password_file: Option<PathBuf>,
    user: Option<String>,
    #[serde(default)]
    behind_tls_proxy: bool,
}

impl Checker<'_> {
    /// `console:` checked against the address it will be served on (`http_listen` unless it
    /// has its own).
    pub(super) fn console(
        &self,
        raw: RawConsole,
        http_listen: SocketAddr,
        resolve: &dyn Fn(&Path) -> PathBuf,
    ) -> Result<ConsoleConfig, super::ConfigError> {
        let key = |k: &'static str| ["console", k];
        let listen = match &raw.listen {
            None => None,
            Some(text) => Some(text.parse::<SocketAddr>().map_err(|_| {
                self.error(&key("listen"), format!("{text:?} is not an address:port"))
            })?),
        };
        let secret_file = raw
            .token_file
            .as_deref()
            .or(raw.password_file.as_deref())
            .map(resolve);
        let auth = match (
            raw.token_env,
            raw.token_file,
            raw.password_env,
            raw.password_file,
        ) {
            (None, None, None, None) => None,
            (Some(var), None, None, None) => Some(ConsoleAuth::Token(
                self.secret_env(&key("token_env"), &var)?,
            )),
            (None, Some(file), None, None) => Some(ConsoleAuth::Token(
                self.secret_file(&key("token_file"), &resolve(&file))?,
            )),
            (None, None, Some(var), None) => Some(ConsoleAuth::Password {
                user: None,
                password: self.secret_env(&key("password_env"), &var)?,
            }),
            (None, None, None, Some(file)) => Some(ConsoleAuth::Password {
                user: None,
                password: self.secret_file(&key("password_file"), &resolve(&file))?,
            }),
            _ => {
                return Err(self.error(
                    &["console"],
                    "set at most one of token_env, token_file, password_env or password_file",
                ))
            }
        };
        let auth = match (auth, raw.user) {
            (Some(ConsoleAuth::Password { password, .. }), Some(user)) => {
                if user.is_empty()
                    || user.len() > 128
                    || user.contains(':')
                    || user.chars().any(char::is_control)
                {
                    return Err(self.error(
                        &key("user"),
                        "must be 1 to 128 characters, without `:` or control characters",
                    ));
                }
                Some(ConsoleAuth::Password {
                    user: Some(user),
                    password,
                })
            }
            (_, Some(_)) => {
                return Err(self.error(
                    &key("user"),
                    "is the basic-auth user name: it goes with password_env or password_file",
                ))
            }
            (auth, None) => auth,
        };
        let served_on = listen.unwrap_or(http_listen);
        let (where_key, where_shown) = match listen {
            Some(_) => (key("listen"), "console.listen"),
            None => (
                ["http", "listen"],
                "http.listen: the console has no listen of its own",
            ),
        };
        if !served_on.ip().is_loopback() {
            if auth.is_none() {
                return Err(self.error(
                    &where_key,
                    format!(
                        "the console would be served on {served_on} ({where_shown}), off loopback, \
                         without authentication: set console.token_file (or token_env, \
                         password_file, password_env), or listen on 127.0.0.1 and reach it \
                         through an SSH tunnel or kubectl port-forward"
                    ),
                ));
            }
            if !raw.behind_tls_proxy {
                return Err(self.error(
                    &where_key,
                    format!(
                        "the console would be served on {served_on} ({where_shown}), off loopback, \
                         over plain http: its token would cross the network in clear. Put a \
                         reverse proxy that terminates TLS in front of it and set \
                         console.behind_tls_proxy: true, or listen on 127.0.0.1"
                    ),
                ));
            }
        }
        if listen.is_some_and(|l| l == http_listen) {
            return Err(self.error(
                &key("listen"),
                "is http.listen: leave console.listen out to serve the console there",
            ));
        }
        Ok(ConsoleConfig {
            listen,
            secret_file,
            auth,
            behind_tls_proxy: raw.behind_tls_proxy,
        })
    }
}

#[cfg(test)]
mod tests {
    use crate::input::config::{Config, ConfigError, ConsoleAuth};
    use secrecy::ExposeSecret;

    /// A config with a `console:` section (indented body), in a folder holding `token`.
    fn load(console: &str) -> Result<Config, ConfigError> {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("token"), "studio-t0ken\n").unwrap();
        std::fs::write(dir.path().join("console-token"), "c0nsole\n").unwrap();
        let text = format!(
            "studio:\n  base_url: https://school.instructuremedia.com\n  token_file: token\n\
             roles:\n  managed: [Admin]\nsource:\n  yaml: roles.yaml\nhttp:\n  listen: 127.0.0.1:9464\n\
             console:\n{console}"
        );
        Config::from_text(&dir.path().join("config.yaml"), &text)
    }

    #[test]
    fn off_unless_configured_and_on_loopback_without_auth() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("token"), "t").unwrap();
        let text = "studio:\n  base_url: https://s.instructuremedia.com\n  token_file: token\n\
                    roles:\n  managed: [Admin]\nsource:\n  yaml: roles.yaml\n";
        let c = Config::from_text(&dir.path().join("c.yaml"), text).unwrap();
        assert!(c.console.is_none());
        let c = load("  listen: 127.0.0.1:9465\n").unwrap().console.unwrap();
        assert_eq!(c.listen, Some("127.0.0.1:9465".parse().unwrap()));
        assert!(c.auth.is_none());
        let c = load("  behind_tls_proxy: false\n")
            .unwrap()
            .console
            .unwrap();
        assert_eq!(c.listen, None, "served on http.listen");
    }

    #[test]
    fn off_loopback_it_needs_auth_and_a_tls_proxy() {
        let e = load("  listen: 0.0.0.0:9465\n").unwrap_err();
        assert_eq!(e.line, Some(11), "{e}");
        assert!(e.message.contains("without authentication"), "{e}");
        let e = load("  listen: 0.0.0.0:9465\n  token_file: console-token\n").unwrap_err();
        assert!(e.message.contains("over plain http"), "{e}");
        assert!(e.message.contains("behind_tls_proxy: true"), "{e}");
        let c =
            load("  listen: 0.0.0.0:9465\n  token_file: console-token\n  behind_tls_proxy: true\n")
                .unwrap()
                .console
                .unwrap();
        match c.auth {
            Some(ConsoleAuth::Token(t)) => assert_eq!(t.expose_secret(), "c0nsole"),
            other => panic!("{other:?}"),
        }
        // On http.listen: the same rules, naming http.listen.
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("token"), "t").unwrap();
        let text = "studio:\n  base_url: https://s.instructuremedia.com\n  token_file: token\n\
                    roles:\n  managed: [Admin]\nsource:\n  yaml: roles.yaml\n\
                    http:\n  listen: 0.0.0.0:9464\nconsole: {}\n";
        let e = Config::from_text(&dir.path().join("c.yaml"), text).unwrap_err();
        assert_eq!(e.line, Some(9), "{e}");
        assert!(e.message.starts_with("http.listen: the console"), "{e}");
    }

    #[test]
    fn basic_auth_user_and_exclusive_secrets() {
        let c = load("  password_file: console-token\n  user: media-admins\n")
            .unwrap()
            .console
            .unwrap();
        assert!(matches!(
            c.auth,
            Some(ConsoleAuth::Password { user: Some(ref u), .. }) if u == "media-admins"
        ));
        assert!(
            !format!("{c:?}").contains("c0nsole"),
            "Debug shows no secret"
        );
        let e = load("  token_file: console-token\n  password_file: console-token\n").unwrap_err();
        assert!(e.message.contains("at most one of"), "{e}");
        let e = load("  token_file: console-token\n  user: x\n").unwrap_err();
        assert!(e.message.contains("goes with password_env"), "{e}");
        let e = load("  token_file: missing\n").unwrap_err();
        assert!(e.message.starts_with("console.token_file:"), "{e}");
        let e = load("  listen: 127.0.0.1:9464\n").unwrap_err();
        assert!(e.message.contains("leave console.listen out"), "{e}");
        let e = load("  listn: 127.0.0.1:1\n").unwrap_err();
        assert!(e.message.contains("unknown field `listn`"), "{e}");
    }
}
