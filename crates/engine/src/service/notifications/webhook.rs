//! The webhook channel: one HTTPS POST of JSON per message.
//!
//! Three bodies: the tool's own (`format: json`, every field of [`Notice`]), a Slack incoming
//! webhook's `{"text": ...}`, and a Teams incoming webhook's MessageCard. The URL is a secret:
//! it is never logged, and errors are shown without it (`reqwest::Error::without_url`).
//! Redirects are not followed (a redirect could carry the body elsewhere), the answer's body
//! is not read, and every attempt has a time limit.
//!
//! The message carries text from outside (Studio emails, errors), so each chat format gets
//! it escaped its own way ([`slack_text`], [`teams_text`]): an email spelled
//! `<!channel> <https://evil.example|approve>` must arrive as text, not as a ping and a
//! disguised link. The JSON format is data for programs and keeps the message as it is.

use super::Notice;
use crate::input::config::{WebhookConfig, WebhookFormat};
use secrecy::{ExposeSecret, SecretString};
use serde_json::{json, Value};
use std::time::Duration;

pub(super) struct Webhook {
    client: reqwest::Client,
    url: SecretString,
    format: WebhookFormat,
}

impl Webhook {
    pub(super) fn new(config: &WebhookConfig, timeout: Duration) -> Result<Webhook, String> {
        let client = reqwest::Client::builder()
            .timeout(timeout)
            .connect_timeout(timeout)
            .redirect(reqwest::redirect::Policy::none())
            .user_agent(concat!("studio-role-sync/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| e.without_url().to_string())?;
        Ok(Webhook {
            client,
            url: config.url.clone(),
            format: config.format,
        })
    }

    pub(super) async fn send(&self, notice: &Notice) -> Result<(), String> {
        let response = self
            .client
            .post(self.url.expose_secret())
            .json(&body(notice, self.format))
            .send()
            .await
            .map_err(|e| crate::studio::describe(&e.without_url()))?;
        let status = response.status();
        if status.is_success() {
            Ok(())
        } else {
            Err(format!("the webhook answered HTTP {status}"))
        }
    }
}

/// The JSON body of `notice` for `format`.
pub(super) fn body(notice: &Notice, format: WebhookFormat) -> Value {
    let title = format!(
        "studio-role-sync: {}{}",
        if notice.reminder { "still: " } else { "" },
        super::Event::named(notice.event)
            .map_or_else(|| super::Event::Recovered.title(), |e| e.title())
    );
    let s = &notice.summary;
    let counts = format!(
        "run {} ({}, {}): {} added, {} removed, {} failed, {} pending, {} flapping",
        notice.run_id,
        notice.trigger,
        notice.status,
        s.adds_applied,
        s.removes_applied,
        s.failed,
        s.pending,
        s.flapping
    );
    match format {
        WebhookFormat::Json => serde_json::to_value(notice).unwrap_or(Value::Null),
        WebhookFormat::Slack => json!({
            "text": format!("*{title}*\n{}\n_{counts}_", slack_text(&notice.message)),
        }),
        WebhookFormat::Teams => json!({
            "@type": "MessageCard",
            "@context": "https://schema.org/extensions",
            "summary": title,
            "themeColor": if notice.event == "recovered" { "2EB886" } else { "D00000" },
            "title": title,
            "text": teams_text(&notice.message),
            "sections": [{
                "facts": [
                    {"name": "event", "value": notice.event},
                    {"name": "run", "value": notice.run_id.to_string()},
                    {"name": "status", "value": notice.status},
                    {"name": "counts", "value": counts},
                    {"name": "since", "value": notice.since},
                ]
            }],
        }),
    }
}

/// Slack's mrkdwn reads `<...>` as a mention, a channel ping or a link, and `&` as the start
/// of an entity: Slack's own rule is to escape these three, and nothing else is needed.
/// Control characters are shown, not obeyed.
pub(super) fn slack_text(text: &str) -> String {
    let text = crate::email_address::escaped(text);
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            c => out.push(c),
        }
    }
    out
}

/// A Teams MessageCard's text is Markdown that also reads a little HTML: every Markdown
/// punctuation character is backslash-escaped, and `<`, `>`, `&` become entities, so links,
/// emphasis and tags from outside arrive as the characters they are.
pub(super) fn teams_text(text: &str) -> String {
    let text = crate::email_address::escaped(text);
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '\\' | '`' | '*' | '_' | '{' | '}' | '[' | ']' | '(' | ')' | '#' | '+' | '-' | '.'
            | '!' | '|' | '~' => {
                out.push('\\');
                out.push(c);
            }
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::service::notifications::Summary;

    fn notice() -> Notice {
        Notice {
            event: "guard_tripped",
            run_id: 7,
            status: crate::model::run_status::RunStatus::Aborted,
            trigger: "schedule".into(),
            message: "Run 7 was stopped".into(),
            summary: Summary {
                removes_planned: 30,
                ..Summary::default()
            },
            reminder: false,
            since: "2026-01-01T00:00:00.000Z".into(),
            at: "2026-01-01T00:00:00.000Z".into(),
        }
    }

    #[test]
    fn bodies() {
        let j = body(&notice(), WebhookFormat::Json);
        assert_eq!(j["event"], "guard_tripped");
        assert_eq!(j["run_id"], 7);
        assert_eq!(j["status"], "aborted");
        assert_eq!(j["summary"]["removes_planned"], 30);
        let s = body(&notice(), WebhookFormat::Slack);
        let text = s["text"].as_str().unwrap();
        assert!(text.contains("safety guard tripped") && text.contains("Run 7 was stopped"));
        let t = body(&notice(), WebhookFormat::Teams);
        assert_eq!(t["@type"], "MessageCard");
        assert_eq!(t["text"], "Run 7 was stopped");
    }

    #[test]
    fn outside_text_arrives_as_text() {
        let evil = "<!channel> <https://evil.example/approve|click> & *bold*\nfake";
        assert_eq!(
            slack_text(evil),
            "&lt;!channel&gt; &lt;https://evil.example/approve|click&gt; &amp; *bold*\\nfake"
        );
        assert_eq!(
            teams_text("[click](https://evil.example) <b>&"),
            "\\[click\\]\\(https://evil\\.example\\) &lt;b&gt;&amp;"
        );
    }
}
