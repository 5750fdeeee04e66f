//! The email channel: one plain-text message per notice over SMTP, with `lettre` (rustls).
//!
//! `smtps://host[:465]` speaks TLS from the first byte; `smtp://host[:587]` must upgrade with
//! STARTTLS (required: a server that does not offer it is refused), except to a loopback host
//! (a relay on the same machine), which is plain. A user name and password in the URL
//! (percent-encoded) log in. The URL is never logged.
//!
//! A failed delivery is logged as what failed ([`describe`]): the server's reply code and a
//! bounded, escaped start of its text, or "connection refused", "timed out". The text is
//! the server's, so it is cleaned first: a server that echoes the `AUTH` line would
//! otherwise put the base64 credentials into the log.

use super::Notice;
use crate::input::config::EmailConfig;
use lettre::message::header::ContentType;
use lettre::message::Mailbox;
use lettre::transport::smtp::authentication::Credentials;
use lettre::transport::smtp::client::Tls;
use lettre::{AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor};
use secrecy::ExposeSecret;
use std::fmt::Write;
use std::time::Duration;
use url::Url;

pub(super) struct Email {
    transport: AsyncSmtpTransport<Tokio1Executor>,
    from: Mailbox,
    to: Vec<Mailbox>,
    /// The user name and password as sent, and as `AUTH PLAIN` / `AUTH LOGIN` encode them:
    /// never shown, whatever the server echoes.
    secrets: Vec<String>,
    timeout: Duration,
}

/// How much of a server's reply text a log line keeps.
const REPLY_CHARS: usize = 120;

impl Email {
    pub(super) fn new(config: &EmailConfig, timeout: Duration) -> Result<Email, String> {
        // Validated when the config loaded; errors here never show the URL.
        let url = Url::parse(config.smtp_url.expose_secret())
            .map_err(|_| "notify.email: the SMTP URL is not a URL".to_string())?;
        let host = url.host_str().unwrap_or_default().to_string();
        let loopback = is_loopback_host(&host);
        // lettre wants a bare IPv6 address, without the URL's brackets.
        let host = host
            .trim_start_matches('[')
            .trim_end_matches(']')
            .to_string();
        let smtp_err = |e: lettre::transport::smtp::Error| format!("SMTP setup: {e}");
        let mut builder = match url.scheme() {
            "smtps" => AsyncSmtpTransport::<Tokio1Executor>::relay(&host).map_err(smtp_err)?,
            "smtp" if loopback => {
                AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(&host).tls(Tls::None)
            }
            "smtp" => {
                AsyncSmtpTransport::<Tokio1Executor>::starttls_relay(&host).map_err(smtp_err)?
            }
            _ => return Err("notify.email: the SMTP URL must be smtp:// or smtps://".into()),
        };
        if let Some(port) = url.port() {
            builder = builder.port(port);
        }
        let mut secrets = Vec::new();
        if !url.username().is_empty() {
            let decode = |s: &str| {
                percent_encoding::percent_decode_str(s)
                    .decode_utf8_lossy()
                    .into_owned()
            };
            let (user, password) = (
                decode(url.username()),
                decode(url.password().unwrap_or_default()),
            );
            secrets = secret_forms(&user, &password);
            builder = builder.credentials(Credentials::new(user, password));
        }
        let transport = builder.timeout(Some(timeout)).build();
        let mailbox = |a: &str| {
            a.parse::<Mailbox>()
                .map_err(|e| format!("notify.email: {a:?} is not an address: {e}"))
        };
        Ok(Email {
            transport,
            secrets,
            timeout,
            from: mailbox(&config.from)?,
            to: config
                .to
                .iter()
                .map(|a| mailbox(a))
                .collect::<Result<_, _>>()?,
        })
    }

    pub(super) async fn send(&self, notice: &Notice) -> Result<(), String> {
        let mut builder = Message::builder()
            .from(self.from.clone())
            .subject(subject(notice))
            .header(ContentType::TEXT_PLAIN);
        for to in &self.to {
            builder = builder.to(to.clone());
        }
        let message = builder
            .body(text(notice))
            .map_err(|e| format!("cannot build the message: {e}"))?;
        self.transport
            .send(message)
            .await
            .map(|_| ())
            .map_err(|e| format!("SMTP: {}", describe(&e, &self.secrets, self.timeout)))
    }
}

/// The forms a credential takes on the wire: as typed, and base64 as `AUTH PLAIN` and
/// `AUTH LOGIN` send it. Short ones are left out (they would blank ordinary words).
fn secret_forms(user: &str, password: &str) -> Vec<String> {
    use base64::Engine as _;
    let b64 = |s: &str| base64::engine::general_purpose::STANDARD.encode(s);
    let mut v = vec![
        b64(&format!("\0{user}\0{password}")),
        b64(&format!("{user}\0{user}\0{password}")),
        b64(user),
        b64(password),
        password.to_string(),
    ];
    // The base64 of a longer string starts like the base64 of its first 3n bytes.
    v.retain(|s| s.len() >= 4);
    v.sort_by_key(|s| std::cmp::Reverse(s.len()));
    v
}

/// What failed, for the log: the reply code and a cleaned start of the server's text, or
/// the connection's problem in words.
pub(super) fn describe(
    e: &lettre::transport::smtp::Error,
    secrets: &[String],
    timeout: Duration,
) -> String {
    if let Some(code) = e.status() {
        let text = std::error::Error::source(e)
            .map(|s| s.to_string())
            .unwrap_or_default();
        return format!("the server answered {code}: {}", reply_text(&text, secrets));
    }
    if e.is_timeout() {
        return format!("timed out after {} s", timeout.as_secs_f64());
    }
    let mut source = std::error::Error::source(e);
    while let Some(s) = source {
        if let Some(io) = s.downcast_ref::<std::io::Error>() {
            use std::io::ErrorKind as K;
            return match io.kind() {
                K::ConnectionRefused => "connection refused".into(),
                K::ConnectionReset | K::ConnectionAborted | K::BrokenPipe => {
                    "the server closed the connection".into()
                }
                K::TimedOut => format!("timed out after {} s", timeout.as_secs_f64()),
                _ => format!(
                    "connection failed: {}",
                    reply_text(&io.to_string(), secrets)
                ),
            };
        }
        source = s.source();
    }
    let what = if e.is_tls() {
        "TLS failed"
    } else if e.is_response() {
        "the server's reply was unreadable"
    } else {
        "sending failed"
    };
    format!("{what}: {}", reply_text(&e.to_string(), secrets))
}

/// A server's text as a log line may hold it: every credential form blanked, any other long
/// base64-looking word too (an echoed `AUTH` line we could not match), control characters
/// escaped, at most [`REPLY_CHARS`] characters.
fn reply_text(text: &str, secrets: &[String]) -> String {
    let mut text = text.to_string();
    for s in secrets {
        text = text.replace(s.as_str(), "[hidden]");
    }
    let words: Vec<String> = text
        .split_whitespace()
        .map(|w| {
            let b64 = w.len() >= 12
                && w.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"+/=".contains(&b))
                && w.bytes().any(|b| b.is_ascii_digit() || b"+/=".contains(&b));
            if b64 {
                "[hidden]".to_string()
            } else {
                w.to_string()
            }
        })
        .collect();
    let line = crate::email_address::escaped(&words.join(" ")).into_owned();
    if line.chars().count() > REPLY_CHARS {
        line.chars().take(REPLY_CHARS).collect::<String>() + "…"
    } else {
        line
    }
}

/// `localhost` or a loopback address. `smtp:` is not a scheme the URL parser knows, so it
/// leaves the host as text: parsed here.
fn is_loopback_host(host: &str) -> bool {
    let bare = host.trim_start_matches('[').trim_end_matches(']');
    bare.eq_ignore_ascii_case("localhost")
        || bare
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
}

pub(super) fn subject(notice: &Notice) -> String {
    let title = super::Event::named(notice.event)
        .map_or_else(|| super::Event::Recovered.title(), |e| e.title());
    format!(
        "[studio-role-sync] {}{title}: run {} ({})",
        if notice.reminder { "still: " } else { "" },
        notice.run_id,
        notice.status
    )
}

pub(super) fn text(notice: &Notice) -> String {
    let s = &notice.summary;
    let mut out = String::new();
    // Plain text, but a newline or an escape from outside must not draw or hide a line.
    let _ = writeln!(out, "{}\n", crate::email_address::escaped(&notice.message));
    let _ = writeln!(out, "event:    {}", notice.event);
    let _ = writeln!(out, "run:      {} ({})", notice.run_id, notice.trigger);
    let _ = writeln!(out, "status:   {}", notice.status);
    let _ = writeln!(out, "since:    {}", notice.since);
    let _ = writeln!(
        out,
        "planned:  {} to add, {} to remove",
        s.adds_planned, s.removes_planned
    );
    let _ = writeln!(
        out,
        "applied:  {} added, {} removed, {} failed, {} pending, {} flapping",
        s.adds_applied, s.removes_applied, s.failed, s.pending, s.flapping
    );
    let _ = writeln!(
        out,
        "\nDetails: studio-role-sync history --run {}",
        notice.run_id
    );
    out
}

#[cfg(test)]
mod tests {
    #[test]
    fn loopback_hosts() {
        for h in ["127.0.0.1", "localhost", "[::1]", "127.1.2.3"] {
            assert!(super::is_loopback_host(h), "{h}");
        }
        for h in ["mail.example.com", "10.0.0.1", "[2001:db8::1]"] {
            assert!(!super::is_loopback_host(h), "{h}");
        }
    }
}
