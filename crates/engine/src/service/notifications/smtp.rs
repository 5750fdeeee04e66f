//! The email channel: one plain-text message per notice over SMTP, with `lettre` (rustls).
//!
//! `smtps://host[:465]` speaks TLS from the first byte; `smtp://host[:587]` must upgrade with
//! STARTTLS (required: a server that does not offer it is refused), except to a loopback host
//! (a relay on the same machine), which is plain. A user name and password in the URL
//! (percent-encoded) log in. The URL is never logged.

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
}

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
        if !url.username().is_empty() {
            let decode = |s: &str| {
                percent_encoding::percent_decode_str(s)
                    .decode_utf8_lossy()
                    .into_owned()
            };
            builder = builder.credentials(Credentials::new(
                decode(url.username()),
                decode(url.password().unwrap_or_default()),
            ));
        }
        let transport = builder.timeout(Some(timeout)).build();
        let mailbox = |a: &str| {
            a.parse::<Mailbox>()
                .map_err(|e| format!("notify.email: {a:?} is not an address: {e}"))
        };
        Ok(Email {
            transport,
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
            .map_err(|e| format!("SMTP: {e}"))
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
    let title = super::Event::parse(notice.event)
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
    let _ = writeln!(out, "{}\n", notice.message);
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
