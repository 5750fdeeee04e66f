//! `notify:` where messages about the daemon's health go: a webhook, email, or both.
//!
//! Both addresses are secrets: a Slack or Teams webhook URL lets anyone post, and an SMTP URL
//! holds a password. They come from `*_env` / `*_file` (a literal `url:` is accepted for a
//! webhook, as the contract says, and treated as a secret all the same), are held as
//! `SecretString`, and no message here ever echoes them: errors name the key, never the value.

use super::checker::Checker;
use super::urls::is_loopback;
use super::ConfigError;
use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;
use std::path::{Path, PathBuf};
use std::time::Duration;
use url::Url;

/// The most recipients one message is sent to.
pub(super) const MAX_RECIPIENTS: usize = 50;

#[derive(Debug, Default)]
pub struct NotifyConfig {
    pub webhook: Option<WebhookConfig>,
    pub email: Option<EmailConfig>,
    /// One delivery attempt's limit (connect, send, answer).
    pub timeout: Duration,
    /// Attempts after the first, with doubling back-off, before a message is given up.
    pub retries: u32,
    /// `grant_expiring` goes out this many days before a grant's `until` (its last day), once
    /// per grant; `plan` lists the grants ending within it. 0: neither.
    pub grant_expiring_days: u32,
}

impl NotifyConfig {
    /// Whether any channel is configured.
    pub fn is_enabled(&self) -> bool {
        self.webhook.is_some() || self.email.is_some()
    }
}

/// The body a webhook receives.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum WebhookFormat {
    /// The tool's own JSON: `event`, `run_id`, `status`, `message`, `summary`, ...
    Json,
    /// A Slack incoming webhook: `{"text": ...}`.
    Slack,
    /// A Microsoft Teams incoming webhook: a MessageCard.
    Teams,
}

#[derive(Debug)]
pub struct WebhookConfig {
    pub url: SecretString,
    pub format: WebhookFormat,
}

#[derive(Debug)]
pub struct EmailConfig {
    /// `smtp://[user:password@]host[:587]` (STARTTLS, required unless the host is loopback)
    /// or `smtps://[user:password@]host[:465]` (TLS from the first byte).
    pub smtp_url: SecretString,
    pub from: String,
    pub to: Vec<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawNotify {
    webhook: Option<RawWebhook>,
    email: Option<RawEmail>,
    #[serde(default = "default_timeout")]
    timeout_seconds: f64,
    #[serde(default = "default_retries")]
    retries: u32,
    #[serde(default = "default_grant_expiring_days")]
    grant_expiring_days: u32,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawWebhook {
    url: Option<String>,
    url_env: Option<String>,
    url_file: Option<PathBuf>,
    #[serde(default = "default_format")]
    format: WebhookFormat,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawEmail {
    smtp_url_env: Option<String>,
    smtp_url_file: Option<PathBuf>,
    from: String,
    to: Vec<String>,
}

fn default_timeout() -> f64 {
    10.0
}
fn default_retries() -> u32 {
    3
}
/// A week: a term's TA is told before the weekend that ends the grant.
pub(super) fn default_grant_expiring_days() -> u32 {
    7
}
fn default_format() -> WebhookFormat {
    WebhookFormat::Json
}

impl Checker<'_> {
    pub(super) fn notify(
        &self,
        raw: Option<RawNotify>,
        resolve: &dyn Fn(&Path) -> PathBuf,
    ) -> Result<NotifyConfig, ConfigError> {
        let Some(raw) = raw else {
            return Ok(NotifyConfig {
                timeout: Duration::from_secs_f64(default_timeout()),
                retries: default_retries(),
                grant_expiring_days: default_grant_expiring_days(),
                ..NotifyConfig::default()
            });
        };
        self.in_range(
            &["notify", "timeout_seconds"],
            raw.timeout_seconds,
            0.1,
            120.0,
        )?;
        self.in_range(&["notify", "retries"], raw.retries, 0, 10)?;
        self.in_range(
            &["notify", "grant_expiring_days"],
            raw.grant_expiring_days,
            0,
            366,
        )?;
        let webhook = raw.webhook.map(|w| self.webhook(w, resolve)).transpose()?;
        let email = raw.email.map(|e| self.email(e, resolve)).transpose()?;
        if webhook.is_none() && email.is_none() {
            return Err(self.error(
                &["notify"],
                "set `webhook`, `email` or both (or leave `notify` out)",
            ));
        }
        Ok(NotifyConfig {
            webhook,
            email,
            timeout: Duration::from_secs_f64(raw.timeout_seconds),
            retries: raw.retries,
            grant_expiring_days: raw.grant_expiring_days,
        })
    }

    fn webhook(
        &self,
        raw: RawWebhook,
        resolve: &dyn Fn(&Path) -> PathBuf,
    ) -> Result<WebhookConfig, ConfigError> {
        let k = |key: &'static str| ["notify", "webhook", key];
        let (url, key) = match (raw.url, raw.url_env, raw.url_file) {
            (Some(url), None, None) => (SecretString::from(url.trim().to_string()), k("url")),
            (None, Some(var), None) => (self.secret_env(&k("url_env"), &var)?, k("url_env")),
            (None, None, Some(file)) => (
                self.secret_file(&k("url_file"), &resolve(&file))?,
                k("url_file"),
            ),
            _ => {
                return Err(self.error(
                    &["notify", "webhook"],
                    "set exactly one of url, url_env or url_file",
                ))
            }
        };
        if self.reads_secrets() {
            check_webhook_url(url.expose_secret()).map_err(|m| self.error(&key, m))?;
        }
        Ok(WebhookConfig {
            url,
            format: raw.format,
        })
    }

    fn email(
        &self,
        raw: RawEmail,
        resolve: &dyn Fn(&Path) -> PathBuf,
    ) -> Result<EmailConfig, ConfigError> {
        let k = |key: &'static str| ["notify", "email", key];
        let (smtp_url, key) = match (raw.smtp_url_env, raw.smtp_url_file) {
            (Some(var), None) => (
                self.secret_env(&k("smtp_url_env"), &var)?,
                k("smtp_url_env"),
            ),
            (None, Some(file)) => (
                self.secret_file(&k("smtp_url_file"), &resolve(&file))?,
                k("smtp_url_file"),
            ),
            _ => {
                return Err(self.error(
                    &["notify", "email"],
                    "set exactly one of smtp_url_env or smtp_url_file",
                ))
            }
        };
        if self.reads_secrets() {
            check_smtp_url(smtp_url.expose_secret()).map_err(|m| self.error(&key, m))?;
        }
        let address = |key: &[&str], a: &str| {
            let a = a.trim();
            if crate::input::email_address::is_valid(&crate::input::email_address::normalize(a)) {
                Ok(a.to_string())
            } else {
                Err(self.error(key, format!("{a:?} is not an email address")))
            }
        };
        let from = address(&k("from"), &raw.from)?;
        if raw.to.is_empty() || raw.to.len() > MAX_RECIPIENTS {
            return Err(self.error(
                &k("to"),
                format!("list between 1 and {MAX_RECIPIENTS} addresses"),
            ));
        }
        let to = raw
            .to
            .iter()
            .map(|a| address(&k("to"), a))
            .collect::<Result<_, _>>()?;
        Ok(EmailConfig { smtp_url, from, to })
    }
}

/// A webhook URL: https, or plain http to a loopback host; no user name or password in it.
/// The messages never show the URL: it is a secret.
fn check_webhook_url(given: &str) -> Result<(), String> {
    let url = Url::parse(given).map_err(|_| {
        "is not a URL (its text is not shown: a webhook URL is a secret)".to_string()
    })?;
    if !url.username().is_empty() || url.password().is_some() {
        return Err("the URL holds a user name or password (not shown): put the secret in the URL's path or query, as Slack and Teams do".into());
    }
    match url.scheme() {
        "https" if url.host_str().is_some() => Ok(()),
        "http" if is_loopback(&url) => Ok(()),
        "http" => Err("plain http is only allowed for a loopback host; use https://".into()),
        _ => Err("must be an https:// URL".into()),
    }
}

/// An SMTP URL: `smtps://` (TLS), or `smtp://` (STARTTLS, which is required unless the host is
/// loopback). Its text is never shown: it usually holds a password.
pub(crate) fn check_smtp_url(given: &str) -> Result<(), String> {
    let url = Url::parse(given).map_err(|_| {
        "is not a URL such as smtp://user:password@mail.myschool.edu:587 (its text is not shown: it may hold a password)"
            .to_string()
    })?;
    if !matches!(url.scheme(), "smtp" | "smtps") {
        return Err("must start with smtp:// (STARTTLS) or smtps:// (TLS)".into());
    }
    if url.host_str().is_none_or(str::is_empty) {
        return Err("has no host".into());
    }
    if url.query().is_some() || (url.path() != "" && url.path() != "/") {
        return Err("must be smtp[s]://[user:password@]host[:port], without a path or query (STARTTLS is always required off loopback)".into());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn webhook_urls() {
        assert!(check_webhook_url("https://hooks.slack.com/services/T/B/x").is_ok());
        assert!(check_webhook_url("http://127.0.0.1:8080/hook").is_ok());
        let e = check_webhook_url("http://hooks.example.com/secret-path").unwrap_err();
        assert!(e.contains("loopback") && !e.contains("secret-path"), "{e}");
        let e = check_webhook_url("https://u:hunter2@example.com/").unwrap_err();
        assert!(!e.contains("hunter2"), "{e}");
        let e = check_webhook_url("not a url hunter2").unwrap_err();
        assert!(!e.contains("hunter2"), "{e}");
    }

    #[test]
    fn sections_load_with_their_defaults_and_name_key_and_line() {
        use super::super::tests::{load, load_with_env, GOOD};
        let c = load(GOOD).unwrap();
        assert!(!c.notify.is_enabled());
        assert_eq!((c.flapping.after_runs, c.flapping.reapply), (3, true));

        let text = format!(
            "{GOOD}notify:\n  webhook:\n    url_env: HOOK\n    format: slack\n  email:\n    smtp_url_env: SMTP\n    from: srs@x.edu\n    to: [a@x.edu]\nflapping:\n  after_runs: 4\n  reapply: false\n"
        );
        let hook = "https://hooks.slack.com/services/T0/B0/hunter2";
        let smtp = "smtps://u:hunter2@mail.x.edu";
        let c = load_with_env(&text, &[("HOOK", hook), ("SMTP", smtp)]).unwrap();
        let w = c.notify.webhook.as_ref().unwrap();
        assert_eq!(w.format, WebhookFormat::Slack);
        assert_eq!(c.notify.email.as_ref().unwrap().to, ["a@x.edu"]);
        assert_eq!((c.flapping.after_runs, c.flapping.reapply), (4, false));
        assert!(
            !format!("{c:?}").contains("hunter2"),
            "Debug shows no secret"
        );

        // A plain-http webhook off loopback: named by key and line, the URL not shown.
        let plain = "http://hooks.example.com/hunter2";
        let e = load_with_env(&text, &[("HOOK", plain), ("SMTP", smtp)]).unwrap_err();
        assert_eq!(e.line, Some(10), "{e}");
        assert!(
            e.to_string().contains("notify.webhook.url_env") && !e.to_string().contains("hunter2"),
            "{e}"
        );
        // The SMTP URL's variable unset.
        let e = load_with_env(&text, &[("HOOK", hook)]).unwrap_err();
        assert!(e.to_string().contains("notify.email.smtp_url_env"), "{e}");
        // Out of range, unknown key.
        let e = load_with_env(
            &text.replace("after_runs: 4", "after_runs: 1"),
            &[("HOOK", hook), ("SMTP", smtp)],
        )
        .unwrap_err();
        assert!(
            e.to_string()
                .contains("flapping.after_runs: must be between 2 and 100"),
            "{e}"
        );
        let e = load(&format!(
            "{GOOD}notify:\n  webhok:\n    url: https://x.edu/\n"
        ))
        .unwrap_err();
        assert!(e.to_string().contains("unknown field `webhok`"), "{e}");
        let e = load(&format!("{GOOD}notify:\n  retries: 3\n")).unwrap_err();
        assert!(
            e.to_string().contains("set `webhook`, `email` or both"),
            "{e}"
        );
    }

    #[test]
    fn smtp_urls() {
        assert!(check_smtp_url("smtp://mail.example.com:587").is_ok());
        assert!(check_smtp_url("smtps://u:p@mail.example.com").is_ok());
        let e = check_smtp_url("http://u:hunter2@mail.example.com").unwrap_err();
        assert!(e.contains("smtp://") && !e.contains("hunter2"), "{e}");
        assert!(check_smtp_url("smtp://mail.example.com/x?tls=none").is_err());
    }
}
