//! Notifications: telling people when the daemon needs them, and when it no longer does.
//!
//! `grant_expiring` is not a condition: a run that planned tells, once per grant (the
//! history's `grant_reminders`), of the grants that end within `notify.grant_expiring_days`
//! ([`Notifier::remind_ending`]).
//!
//! A finished run (not a dry run, not an interrupted one) is in zero or more *conditions*:
//! `guard_tripped`, `run_failed`, `auth_failing`, `run_partial`, `flapping`. Messages follow
//! the transitions, not the runs: one when a condition starts, at most one reminder a day
//! while it lasts, and one `recovered` ("back to normal") when the last one ends. The set of
//! conditions already notified lives in the history (`notify_conditions`), so a restart, or
//! a one-shot `apply` between two daemon runs, never sends the same message twice.
//!
//! Deciding is pure ([`conditions`], [`step`]) and happens after the run is recorded; sending
//! happens in background tasks ([`Notifier`]) with a time limit per attempt, a few retries
//! with back-off, and a bound on messages in flight: a webhook or mail server that is down
//! is logged and counted in `studio_role_sync_notifications_total{outcome="failed"}`, and never
//! fails or delays a run. A message holds what the history holds (run, status, counts, the
//! run's error, emails of flapping changes), never a token or a URL from the config.

mod smtp;
mod webhook;

use crate::input::config::Config;
use crate::model::run_status::RunStatus;
use crate::service::metrics::Metrics;
use crate::store::history::notifications::StoredCondition;
use crate::store::history::History;
use crate::sync::run_report::RunReport;
use chrono::{DateTime, Utc};
use serde::Serialize;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::Semaphore;

/// At most one reminder per condition in this period.
pub(crate) const REMIND_EVERY: Duration = Duration::from_secs(24 * 3600);
/// Messages being delivered at once; more are dropped (and counted): a stuck server must not
/// pile up tasks.
const MAX_IN_FLIGHT: u32 = 16;
/// A message's text is cut here: a run's error can be long, a body must stay small.
const MAX_MESSAGE_CHARS: usize = 2000;
/// Flapping changes named in a message; the rest are counted.
const MAX_FLAPPING_NAMED: usize = 10;
/// Ending grants named in one `grant_expiring` message; the rest are counted.
const MAX_ENDING_NAMED: usize = 20;

/// What a message is about.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub(crate) enum Event {
    GuardTripped,
    RunFailed,
    AuthFailing,
    RunPartial,
    Flapping,
    /// Back to normal: the last condition ended.
    Recovered,
    /// Grants end within `notify.grant_expiring_days` (once per grant; not a condition).
    GrantExpiring,
}

impl Event {
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Event::GuardTripped => "guard_tripped",
            Event::RunFailed => "run_failed",
            Event::AuthFailing => "auth_failing",
            Event::RunPartial => "run_partial",
            Event::Flapping => "flapping",
            Event::Recovered => "recovered",
            Event::GrantExpiring => "grant_expiring",
        }
    }

    /// For a subject line or a chat title.
    pub(crate) fn title(self) -> &'static str {
        match self {
            Event::GuardTripped => "safety guard tripped",
            Event::RunFailed => "run failed",
            Event::AuthFailing => "authentication failing",
            Event::RunPartial => "some changes failed",
            Event::Flapping => "flapping changes",
            Event::Recovered => "back to normal",
            Event::GrantExpiring => "grants ending soon",
        }
    }

    /// Any event by its name, for the channels' titles (`parse` knows only conditions).
    fn named(s: &str) -> Option<Event> {
        [Event::Recovered, Event::GrantExpiring]
            .into_iter()
            .find(|e| e.as_str() == s)
            .or_else(|| Event::parse(s))
    }

    fn parse(s: &str) -> Option<Event> {
        [
            Event::GuardTripped,
            Event::RunFailed,
            Event::AuthFailing,
            Event::RunPartial,
            Event::Flapping,
        ]
        .into_iter()
        .find(|e| e.as_str() == s)
    }
}

/// The run's counts, as every message carries them.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct Summary {
    pub adds_planned: i64,
    pub removes_planned: i64,
    pub adds_applied: i64,
    pub removes_applied: i64,
    pub failed: i64,
    pub pending: i64,
    pub flapping: i64,
}

/// One message, whatever the channel.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Notice {
    pub event: &'static str,
    pub run_id: i64,
    /// The run's status: `aborted`, `failed`, `partial`, `succeeded`.
    pub status: RunStatus,
    pub trigger: String,
    pub message: String,
    pub summary: Summary,
    /// True for the daily reminder of a condition that goes on.
    pub reminder: bool,
    /// When the condition started (for `recovered`: when the first one that ended started).
    pub since: String,
    pub at: String,
}

/// The conditions a finished run is in, each with its message. Empty for a run that went
/// well, and for runs that say nothing about health (dry runs, interrupted runs: see
/// [`Notifier::after_run`]).
pub(crate) fn conditions(report: &RunReport, config: &Config) -> Vec<(Event, String)> {
    let after_runs = config.flapping.after_runs;
    let r = &report.record;
    let id = r.id;
    let mut out = Vec::new();
    match r.status {
        RunStatus::Failed if report.auth_failed() => out.push((
            Event::AuthFailing,
            format!(
                "Run {id}: Studio refused the credentials, nothing was changed: {}. Replace the \
                 token (or run `studio-role-sync auth login` again for OAuth).",
                r.error.as_deref().unwrap_or("authentication failed")
            ),
        )),
        RunStatus::Failed => out.push((
            Event::RunFailed,
            format!(
                "Run {id} failed: {}. Details: `studio-role-sync history --run {id}`.",
                r.error.as_deref().unwrap_or("unknown error")
            ),
        )),
        RunStatus::Aborted => out.push((
            Event::GuardTripped,
            format!(
                "Run {id} was stopped by a safety guard, nothing was sent to Studio: {}. Review \
                 the removals with `studio-role-sync plan`; see \"When a safety guard trips\" in \
                 the operations guide.",
                report
                    .guard
                    .as_ref()
                    .map_or_else(|| "see the history".to_string(), |g| g.to_string())
            ),
        )),
        RunStatus::Partial => out.push((
            Event::RunPartial,
            format!(
                "Run {id} finished, but {} of its changes failed ({} added, {} removed). \
                 Details: `studio-role-sync history --run {id}`.",
                r.failed, r.adds_applied, r.removes_applied
            ),
        )),
        _ => {}
    }
    if !report.flapping.is_empty() {
        let named: Vec<String> = report
            .flapping
            .iter()
            .take(MAX_FLAPPING_NAMED)
            .map(|a| {
                format!(
                    "{} {} {} {}",
                    a.kind.as_str(),
                    config.roles.managed.name(a.role),
                    if a.kind == crate::model::change::ChangeKind::Add {
                        "to"
                    } else {
                        "from"
                    },
                    a.email.as_deref().unwrap_or("(no email)")
                )
            })
            .collect();
        let more = report.flapping.len().saturating_sub(MAX_FLAPPING_NAMED);
        let more = if more > 0 {
            format!(" and {more} more")
        } else {
            String::new()
        };
        let what = if report.flapping_left_alone {
            "left alone this run (flapping.reapply: false)"
        } else {
            "applied again"
        };
        out.push((
            Event::Flapping,
            format!(
                "Run {id}: {} change(s) made in {after_runs} consecutive runs keep being undone \
                 in Studio, {what}: {}{more}. Likely cause: a Canvas LMS admin gets Studio's \
                 Admin role by inheritance; list them in the roles file or remove the Canvas \
                 admin role (operations guide: \"Flapping\").",
                report.flapping.len(),
                named.join(", ")
            ),
        ));
    }
    out
}

/// A message to send, decided by [`step`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Outgoing {
    pub event: Event,
    pub message: String,
    pub reminder: bool,
    pub since: String,
}

/// The transition from the conditions already notified (`stored`) to those of run `run_id`
/// (`now_in`): the new stored set, and the messages to send.
pub(crate) fn step(
    stored: Vec<StoredCondition>,
    now_in: &[(Event, String)],
    run_id: i64,
    now: DateTime<Utc>,
) -> (Vec<StoredCondition>, Vec<Outgoing>) {
    let at = now.to_rfc3339_opts(chrono::SecondsFormat::Millis, true);
    let remind = chrono::Duration::from_std(REMIND_EVERY).unwrap_or(chrono::Duration::MAX);
    let mut next = Vec::new();
    let mut send = Vec::new();
    for (event, message) in now_in {
        let before = stored
            .iter()
            .find(|c| Event::parse(&c.condition) == Some(*event));
        match before {
            None => {
                send.push(Outgoing {
                    event: *event,
                    message: message.clone(),
                    reminder: false,
                    since: at.clone(),
                });
                next.push(StoredCondition {
                    condition: event.as_str().into(),
                    since: at.clone(),
                    since_run_id: Some(run_id),
                    last_sent: at.clone(),
                    last_run_id: Some(run_id),
                });
            }
            Some(c) => {
                let due = DateTime::parse_from_rfc3339(&c.last_sent)
                    .map(|t| now - t.with_timezone(&Utc) >= remind)
                    .unwrap_or(true);
                if due {
                    send.push(Outgoing {
                        event: *event,
                        message: format!("Still going on since {}: {message}", c.since),
                        reminder: true,
                        since: c.since.clone(),
                    });
                }
                next.push(StoredCondition {
                    last_sent: if due { at.clone() } else { c.last_sent.clone() },
                    last_run_id: Some(run_id),
                    ..c.clone()
                });
            }
        }
    }
    // Conditions stored under a name this version does not know are dropped silently.
    let ended: Vec<&StoredCondition> = stored
        .iter()
        .filter(|c| {
            Event::parse(&c.condition).is_some_and(|e| !now_in.iter().any(|(n, _)| *n == e))
        })
        .collect();
    if now_in.is_empty() && !ended.is_empty() {
        let over: Vec<String> = ended
            .iter()
            .map(|c| {
                let title = Event::parse(&c.condition).map_or("?", Event::title);
                format!("{title} (since {})", c.since)
            })
            .collect();
        send.push(Outgoing {
            event: Event::Recovered,
            message: format!(
                "Back to normal: run {run_id} went well. Over: {}.",
                over.join(", ")
            ),
            reminder: false,
            since: ended
                .iter()
                .map(|c| c.since.clone())
                .min()
                .unwrap_or_else(|| at.clone()),
        });
    }
    (next, send)
}

fn cut(text: &str) -> String {
    if text.chars().count() <= MAX_MESSAGE_CHARS {
        return text.to_string();
    }
    let mut s: String = text.chars().take(MAX_MESSAGE_CHARS).collect();
    s.push('…');
    s
}

/// Sends messages for runs, in the background. Cheap to clone.
#[derive(Clone)]
pub struct Notifier {
    inner: Arc<Inner>,
}

struct Inner {
    config: Arc<Config>,
    metrics: Metrics,
    slots: Arc<Semaphore>,
    webhook: Option<webhook::Webhook>,
    email: Option<smtp::Email>,
}

impl Notifier {
    /// A notifier for `config.notify`; `None` when no channel is configured.
    pub fn new(config: Arc<Config>, metrics: Metrics) -> Option<Notifier> {
        let n = &config.notify;
        if !n.is_enabled() {
            return None;
        }
        let webhook = n
            .webhook
            .as_ref()
            .and_then(|w| match webhook::Webhook::new(w, n.timeout) {
                Ok(w) => Some(w),
                Err(e) => {
                    tracing::error!(error = %e, "notify.webhook: cannot set up the client; webhook notifications are off");
                    None
                }
            });
        let email = n
            .email
            .as_ref()
            .and_then(|e| match smtp::Email::new(e, n.timeout) {
                Ok(m) => Some(m),
                Err(err) => {
                    tracing::error!(error = %err, "notify.email: cannot set up SMTP; email notifications are off");
                    None
                }
            });
        Some(Notifier {
            inner: Arc::new(Inner {
                config,
                metrics,
                slots: Arc::new(Semaphore::new(MAX_IN_FLIGHT as usize)),
                webhook,
                email,
            }),
        })
    }

    /// Decides what run `report` changes in the notified conditions, records that, and sends
    /// the messages in the background. Never fails the run: problems are logged.
    pub async fn after_run(&self, history: &History, report: &RunReport) {
        let r = &report.record;
        if r.dry_run || matches!(r.status, RunStatus::Interrupted | RunStatus::Running) {
            return;
        }
        let now_in = conditions(report, &self.inner.config);
        let run_id = r.id;
        let step = history
            .notify_step(|stored| step(stored, &now_in, run_id, Utc::now()))
            .await;
        let outgoing = match step {
            Ok(o) => o,
            Err(e) => {
                tracing::error!(error = %e, "cannot record the notification state; nothing sent");
                return;
            }
        };
        self.remind_ending(history, report).await;
        let at = crate::store::history::now();
        for o in outgoing {
            let notice = Notice {
                event: o.event.as_str(),
                run_id,
                status: r.status,
                trigger: r.trigger.clone(),
                message: cut(&o.message),
                summary: Summary {
                    adds_planned: r.adds_planned,
                    removes_planned: r.removes_planned,
                    adds_applied: r.adds_applied,
                    removes_applied: r.removes_applied,
                    failed: r.failed,
                    pending: r.pending,
                    flapping: report.flapping.len() as i64,
                },
                reminder: o.reminder,
                since: o.since,
                at: at.clone(),
            };
            self.send(notice);
        }
    }

    /// `grant_expiring`: one message naming the grants of the run's plan that end within
    /// `notify.grant_expiring_days` and were not reminded of yet; the history records them
    /// first, so each grant is named once.
    async fn remind_ending(&self, history: &History, report: &RunReport) {
        let Some(plan) = &report.plan else { return };
        if plan.ending.is_empty() {
            return;
        }
        let config = &self.inner.config;
        let managed = &config.roles.managed;
        let keys: Vec<_> = plan
            .ending
            .iter()
            .map(|e| {
                (
                    e.email.clone(),
                    managed.name(e.role).to_string(),
                    e.until.to_string(),
                )
            })
            .collect();
        let today = crate::desired::Calendar::now(config.timezone)
            .today
            .to_string();
        let due = match history
            .grant_reminders_due(report.record.id, &today, &keys)
            .await
        {
            Ok(due) if due.is_empty() => return,
            Ok(due) => due,
            Err(e) => {
                tracing::error!(error = %e, "cannot record the grant_expiring reminders; nothing sent");
                return;
            }
        };
        let named: Vec<String> = due
            .iter()
            .take(MAX_ENDING_NAMED)
            .map(|&i| {
                let e = &plan.ending[i];
                let reason = e
                    .reason
                    .as_deref()
                    .map(|r| format!("; reason: {r}"))
                    .unwrap_or_default();
                format!(
                    "{} of {} {} (until {}{reason})",
                    managed.name(e.role),
                    e.email,
                    e.when(),
                    e.until
                )
            })
            .collect();
        let more = due.len().saturating_sub(MAX_ENDING_NAMED);
        let more = if more > 0 {
            format!("; and {more} more")
        } else {
            String::new()
        };
        let r = &report.record;
        let at = crate::store::history::now();
        self.send(Notice {
            event: Event::GrantExpiring.as_str(),
            run_id: r.id,
            status: r.status,
            trigger: r.trigger.clone(),
            message: cut(&format!(
                "{} grant(s) end soon and will be removed after their last day: {}{more}. To \
                 keep one, give it a later `until` in its source.",
                due.len(),
                named.join("; ")
            )),
            summary: Summary {
                adds_planned: r.adds_planned,
                removes_planned: r.removes_planned,
                adds_applied: r.adds_applied,
                removes_applied: r.removes_applied,
                failed: r.failed,
                pending: r.pending,
                flapping: report.flapping.len() as i64,
            },
            reminder: false,
            since: at.clone(),
            at,
        });
    }

    /// Sends `notice` on every channel in a background task.
    pub fn send(&self, notice: Notice) {
        let inner = self.inner.clone();
        let Ok(permit) = inner.slots.clone().try_acquire_owned() else {
            tracing::error!(
                event = notice.event,
                "too many notifications in flight; this one is dropped"
            );
            for channel in self.channels() {
                inner.metrics.notification(channel, notice.event, "dropped");
            }
            return;
        };
        tracing::info!(
            event = notice.event,
            run_id = notice.run_id,
            reminder = notice.reminder,
            "sending notification"
        );
        tokio::spawn(async move {
            let webhook = async {
                if let Some(w) = &inner.webhook {
                    let result = retrying(&inner, || w.send(&notice)).await;
                    inner.record("webhook", &notice, result);
                }
            };
            let email = async {
                if let Some(m) = &inner.email {
                    let result = retrying(&inner, || m.send(&notice)).await;
                    inner.record("email", &notice, result);
                }
            };
            tokio::join!(webhook, email);
            drop(permit);
        });
    }

    fn channels(&self) -> Vec<&'static str> {
        let mut v = Vec::new();
        if self.inner.webhook.is_some() {
            v.push("webhook");
        }
        if self.inner.email.is_some() {
            v.push("email");
        }
        v
    }

    /// Waits until the messages in flight are delivered or given up, at most `within`: for a
    /// one-shot command about to exit. True when none is left.
    pub async fn flush(&self, within: Duration) -> bool {
        tokio::time::timeout(within, self.inner.slots.acquire_many(MAX_IN_FLIGHT))
            .await
            .is_ok_and(|p| p.is_ok())
    }

    /// The longest one message can take on one channel, every retry included.
    pub fn longest_delivery(&self) -> Duration {
        let n = &self.inner.config.notify;
        let mut total = n.timeout * (n.retries + 1);
        for attempt in 0..n.retries {
            total += backoff(attempt);
        }
        total
    }
}

impl Inner {
    fn record(&self, channel: &str, notice: &Notice, result: Result<(), (u32, String)>) {
        match result {
            Ok(()) => {
                tracing::info!(
                    channel,
                    event = notice.event,
                    run_id = notice.run_id,
                    "notification sent"
                );
                self.metrics.notification(channel, notice.event, "sent");
            }
            Err((attempts, error)) => {
                tracing::error!(channel, event = notice.event, run_id = notice.run_id, attempts, error = %error, "notification could not be delivered; given up");
                self.metrics.notification(channel, notice.event, "failed");
            }
        }
    }
}

/// The wait before retry `attempt` (0-based): 1 s, 2 s, 4 s, ... at most 30 s.
fn backoff(attempt: u32) -> Duration {
    Duration::from_secs(1u64 << attempt.min(5)).min(Duration::from_secs(30))
}

/// Tries `send` once and up to `notify.retries` more times; the error is the last one.
async fn retrying<F, Fut>(inner: &Inner, mut send: F) -> Result<(), (u32, String)>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<(), String>>,
{
    let n = &inner.config.notify;
    let mut attempt = 0;
    loop {
        // Each attempt is bounded here too, whatever the transport does.
        let result = match tokio::time::timeout(n.timeout, send()).await {
            Ok(r) => r,
            Err(_) => Err(format!("timed out after {} s", n.timeout.as_secs_f64())),
        };
        match result {
            Ok(()) => return Ok(()),
            Err(e) if attempt >= n.retries => return Err((attempt + 1, e)),
            Err(e) => {
                tracing::warn!(error = %e, attempt = attempt + 1, "notification attempt failed; retrying");
                tokio::time::sleep(backoff(attempt)).await;
                attempt += 1;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(h: i64) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339("2026-01-01T00:00:00Z")
            .unwrap()
            .with_timezone(&Utc)
            + chrono::Duration::hours(h)
    }

    fn c(e: Event) -> (Event, String) {
        (e, format!("{} happened", e.as_str()))
    }

    #[test]
    fn transitions_reminders_and_recovery() {
        // A guard trips: one message.
        let (s, out) = step(vec![], &[c(Event::GuardTripped)], 1, t(0));
        assert_eq!(out.len(), 1);
        assert_eq!(
            (out[0].event, out[0].reminder),
            (Event::GuardTripped, false)
        );
        // Trips again an hour later: nothing.
        let (s, out) = step(s, &[c(Event::GuardTripped)], 2, t(1));
        assert!(out.is_empty(), "{out:?}");
        // A day after the message: one reminder, then nothing for another day.
        let (s, out) = step(s, &[c(Event::GuardTripped)], 3, t(24));
        assert_eq!((out.len(), out[0].reminder), (1, true));
        let (s, out) = step(s, &[c(Event::GuardTripped)], 4, t(30));
        assert!(out.is_empty());
        // It turns into a partial run: that is new; the guard ending is no recovery.
        let (s, out) = step(s, &[c(Event::RunPartial)], 5, t(31));
        assert_eq!(out.len(), 1);
        assert_eq!(out[0].event, Event::RunPartial);
        // A good run: back to normal, once.
        let (s, out) = step(s, &[], 6, t(32));
        assert_eq!(out.len(), 1);
        assert_eq!(out[0].event, Event::Recovered);
        assert!(
            out[0].message.contains("some changes failed"),
            "{}",
            out[0].message
        );
        assert!(s.is_empty());
        let (_, out) = step(s, &[], 7, t(33));
        assert!(out.is_empty());
    }

    #[test]
    fn backoff_doubles_and_is_capped() {
        assert_eq!(backoff(0), Duration::from_secs(1));
        assert_eq!(backoff(2), Duration::from_secs(4));
        assert_eq!(backoff(9), Duration::from_secs(30));
    }
}
