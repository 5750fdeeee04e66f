//! The status strip at the top of every page: did the last scheduled run work, when is the
//! next one, and which problems are open now, each with its next step.
//!
//! It is computed for every page from one bounded read ([`History::status_facts`]) and the
//! daemon's live readiness (inputs valid, the schedule in effect since the last reload), so
//! that an admin who lands on any page sees the state first and a problem is never only on
//! a page they did not open.
//!
//! [`History::status_facts`]: studio_role_sync_engine::history::History::status_facts

use crate::advice::{explain, is_auth_error, Advice};
use crate::views::{age, run_href, short_time};
use crate::Console;
use chrono::{DateTime, Duration, Utc};
use studio_role_sync_engine::history::{history_time, HistoryError, StatusFacts};
use studio_role_sync_engine::http::Readiness;
use studio_role_sync_engine::run_status::RunStatus;

/// An email pending longer than this is a problem worth a look (a typo, a person who left).
const PENDING_LONG_DAYS: i64 = 7;

/// The strip, ready for `base.html`.
#[derive(Clone, Debug, Default)]
pub struct Strip {
    /// `ok`, `warn` or `bad`.
    pub last_state: &'static str,
    pub last: String,
    pub last_href: Option<String>,
    pub next: String,
    pub problems: Vec<Problem>,
    /// The schedule's time zone (`Europe/Paris`), offered on every time; empty without one.
    pub timezone: String,
    /// On a history several daemons share: which one leads now (empty: a history file).
    pub leader: String,
}

/// One open problem and what to do about it.
#[derive(Clone, Debug, Default)]
pub struct Problem {
    /// `warn` or `bad`.
    pub state: &'static str,
    /// Stable, for tests and styles: `guard`, `inputs`, `history`, `failing`, `flapping`,
    /// `pending`, `auth`.
    pub kind: &'static str,
    pub text: String,
    pub next: String,
    pub href: Option<String>,
    /// The error as the daemon wrote it, shown below the advice when no run page has it.
    pub raw: Option<String>,
}

impl Console {
    /// The strip as of `now`.
    pub(crate) async fn strip(&self, now: DateTime<Utc>) -> Result<Strip, HistoryError> {
        let before = history_time(now - Duration::days(PENDING_LONG_DAYS));
        let facts = self.history.status_facts(&before).await?;
        Ok(self.strip_from(&facts, now))
    }

    fn strip_from(&self, f: &StatusFacts, now: DateTime<Utc>) -> Strip {
        let mut s = Strip {
            last_state: "warn",
            last: "Last scheduled run: none yet".into(),
            timezone: self
                .timezone()
                .map(|z| z.name().to_string())
                .unwrap_or_default(),
            ..Strip::default()
        };
        if let Some(r) = &f.last_scheduled {
            s.last_state = match r.status {
                RunStatus::Succeeded | RunStatus::Running => "ok",
                RunStatus::Partial | RunStatus::Interrupted => "warn",
                RunStatus::Failed | RunStatus::Aborted => "bad",
            };
            let changes = r.adds_applied + r.removes_applied;
            s.last = format!(
                "Last scheduled run {}: {} {} ago, {}",
                r.id,
                r.status,
                ago(&r.started_at, now),
                match changes {
                    0 => "no change".to_string(),
                    1 => "1 change".to_string(),
                    n => format!("{n} changes"),
                }
            );
            s.last_href = Some(run_href(r.id));
        }
        s.next = self.next_run(now);
        if let Some(l) = &f.leader {
            s.leader = format!("Leader: {l} (epoch {})", l.epoch);
        } else if self.history.is_postgres() {
            s.leader = "Leader: none now: no daemon holds the lease; a standby takes it \
                        within the lease time"
                .into();
        }

        let readiness = self
            .readiness
            .as_ref()
            .map(|r| r.read().unwrap_or_else(|e| e.into_inner()).clone());
        if let Some(r) = &readiness {
            if let Some(e) = &r.invalid_config {
                s.problems.push(Problem {
                    state: "bad",
                    kind: "inputs",
                    text: format!("The config file is invalid: {e}"),
                    next: "Fix the file at the line named; the daemon keeps using the previous \
                           config until then."
                        .into(),
                    href: Some("/console/health".into()),
                    raw: None,
                });
            }
            if let Some(d) = &r.history_displaced {
                s.problems.push(Problem {
                    state: "bad",
                    kind: "history",
                    text: format!("The history file cannot be used: {}", d.detail()),
                    next: d.remedy().into(),
                    href: Some("/console/health".into()),
                    raw: None,
                });
            }
            if let Some(error) = unrecorded_failure(r) {
                let (kind, advice) = self.failure_advice(error);
                s.problems.push(Problem {
                    state: "bad",
                    kind,
                    text: format!(
                        "The last run failed before it could be recorded: {}",
                        advice.what
                    ),
                    next: advice.next,
                    href: Some("/console/health".into()),
                    raw: Some(error.to_string()),
                });
            }
            if let Some(e) = &r.invalid_desired {
                s.problems.push(Problem {
                    state: "bad",
                    kind: "inputs",
                    text: format!("The roles file (desired state) is invalid: {e}"),
                    next: "Fix it at the line named; until then runs use the last valid desired \
                           state, or send nothing if there was none."
                        .into(),
                    href: Some("/console/health".into()),
                    raw: None,
                });
            }
        }
        if let Some(latest) = f.recent.first() {
            if latest.status == RunStatus::Aborted {
                let empty = latest.guard.as_deref() == Some("empty_desired");
                s.problems.push(Problem {
                    state: "bad",
                    kind: "guard",
                    text: format!(
                        "A safety guard stopped run {} before any change was sent{}.",
                        latest.id,
                        if empty {
                            ": the desired state grants no role"
                        } else {
                            ""
                        }
                    ),
                    next: if empty {
                        "Restore the roles file or fix the source; an approval cannot lift this."
                            .into()
                    } else {
                        "Open the run to see who would lose a role; restore the roles file or \
                         the source, or approve the plan if it is intended."
                            .into()
                    },
                    href: Some(run_href(latest.id)),
                    raw: None,
                });
            }
            let failing = f.streak(|r| r.status == RunStatus::Failed);
            if failing > 0 {
                let error = f
                    .latest
                    .as_ref()
                    .and_then(|r| r.error.clone())
                    .unwrap_or_default();
                let (kind, advice) = self.failure_advice(&error);
                s.problems.push(Problem {
                    state: "bad",
                    kind,
                    text: format!(
                        "{} failing: {}",
                        if failing == 1 {
                            format!("Run {} is", latest.id)
                        } else if failing >= f.recent.len() {
                            format!("The last {failing}+ runs are")
                        } else {
                            format!("The last {failing} runs are")
                        },
                        advice.what
                    ),
                    next: advice.next,
                    href: Some(run_href(latest.id)),
                    raw: None,
                });
            } else if latest.status == RunStatus::Partial {
                s.problems.push(Problem {
                    state: "warn",
                    kind: "failing",
                    text: format!("Run {} finished, but some actions failed.", latest.id),
                    next: "Open the run to see Studio's answer per action; the next run tries \
                           them again."
                        .into(),
                    href: Some(run_href(latest.id)),
                    raw: None,
                });
            }
            let flapping = f.streak(|r| r.flapping > 0);
            if flapping > 0 {
                s.problems.push(Problem {
                    state: "warn",
                    kind: "flapping",
                    text: format!(
                        "Flapping: run {} re-applied {} change(s) that something in Studio keeps \
                         undoing ({} run(s) in a row).",
                        latest.id, latest.flapping, flapping
                    ),
                    next: "Find who or what changes these roles in Studio behind the tool, or \
                           fix the desired state; see docs/operations.md §15."
                        .into(),
                    href: Some(run_href(latest.id)),
                    raw: None,
                });
            }
        }
        if f.pending_old > 0 {
            s.problems.push(Problem {
                state: "warn",
                kind: "pending",
                text: format!(
                    "{} email(s) have had no Studio account for more than {PENDING_LONG_DAYS} days.",
                    f.pending_old
                ),
                next: "Check them for typos, or whether these people ever log in to Studio."
                    .into(),
                href: Some("/console/pending".into()),
                raw: None,
            });
        }
        s
    }

    /// A failed run's problem kind (`auth` when Studio refused the credentials, else
    /// `failing`) and its advice; an authentication failure names how the daemon signs in.
    pub(crate) fn failure_advice(&self, error: &str) -> (&'static str, Advice) {
        let mut advice = explain(error, &self.base_url);
        if is_auth_error(error) {
            advice.next = format!("{} ({})", advice.next, self.studio_auth);
            ("auth", advice)
        } else {
            ("failing", advice)
        }
    }

    /// "Next run": from the schedule the daemon follows now (a reload may have changed it).
    /// The schedule the daemon follows now (after a reload too), else the one read at start.
    fn slots(&self) -> Option<studio_role_sync_engine::daemon::Slots> {
        self.readiness
            .as_ref()
            .and_then(|r| r.read().unwrap_or_else(|e| e.into_inner()).schedule.clone())
            .or_else(|| self.schedule.clone())
    }

    /// The schedule's time zone: the institution's local time, offered beside UTC.
    pub(crate) fn timezone(&self) -> Option<chrono_tz::Tz> {
        self.slots().map(|s| s.timezone())
    }

    /// A history time in the schedule's time zone (`2025-03-01 11:00:00 CET`), for the
    /// `title` of a `<time>`; the time itself, in UTC, when there is no schedule.
    pub(crate) fn local(&self, t: &str) -> String {
        match (self.timezone(), DateTime::parse_from_rfc3339(t)) {
            (Some(z), Ok(at)) => format!(
                "{} ({})",
                at.with_timezone(&z).format("%Y-%m-%d %H:%M:%S %Z"),
                z.name()
            ),
            _ => format!("{} UTC", short_time(t)),
        }
    }

    pub(crate) fn next_run(&self, now: DateTime<Utc>) -> String {
        let live = self
            .readiness
            .as_ref()
            .and_then(|r| r.read().unwrap_or_else(|e| e.into_inner()).schedule.clone());
        match live.as_ref().or(self.schedule.as_ref()) {
            None => "Next run: as the daemon's schedule says".into(),
            Some(slots) => match slots.next_after(now) {
                Some(next) => format!(
                    "Next run in {} ({}Z)",
                    age((next - now).num_seconds()),
                    next.format("%Y-%m-%d %H:%M:%S")
                ),
                None => "Next run: the schedule has no further slot".into(),
            },
        }
    }
}

/// The error of the daemon's last run when it failed before the history had it (the Studio
/// client could not be set up, a panic): no run page shows it, so the strip and the health
/// page do. A later recorded run replaces it.
pub(crate) fn unrecorded_failure(r: &Readiness) -> Option<&str> {
    r.last_run
        .as_ref()
        .filter(|l| l.id.is_none() && l.status == RunStatus::Failed)
        .map(|l| {
            l.error
                .as_deref()
                .unwrap_or("the run failed; see the daemon's log")
        })
}

/// `12m` since the history time `t`.
pub fn ago(t: &str, now: DateTime<Utc>) -> String {
    DateTime::parse_from_rfc3339(t)
        .map(|s| age((now - s.with_timezone(&Utc)).num_seconds()))
        .unwrap_or_else(|_| short_time(t))
}
