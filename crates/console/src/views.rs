//! What each page shows, as plain strings ready for its template (`templates/*.html`, checked
//! when compiled; askama escapes every `{{ value }}`, so an email or a Studio detail holding
//! HTML is shown as text). The formatting lives here, so the templates stay logic-free.

use crate::advice::{reason_words, Advice};
use crate::remedy::{Afterwards, RoleRisk};
use crate::strip::Strip;
use askama::Template;
use chrono::{DateTime, Utc};
use percent_encoding::{utf8_percent_encode, NON_ALPHANUMERIC};
use studio_role_sync_engine::change::ChangeKind;
use studio_role_sync_engine::history::{ActionRow, PendingRow, RunRecord, TrailEntry, TrailEvent};
use studio_role_sync_engine::run_status::RunStatus;

/// `2025-03-01T10:00:00.123Z` as `2025-03-01 10:00:00`.
pub fn short_time(t: &str) -> String {
    t.get(..19).unwrap_or(t).replace('T', " ")
}

/// The person page of `email`.
pub fn person_href(email: &str) -> String {
    format!(
        "/console/person?email={}",
        utf8_percent_encode(email, NON_ALPHANUMERIC)
    )
}

pub fn run_href(id: i64) -> String {
    format!("/console/runs/{id}")
}

#[derive(Template)]
#[template(path = "error.html")]
pub struct ErrorPage<'a> {
    pub title: &'a str,
    pub message: &'a str,
    pub strip: Strip,
}

pub struct Choice {
    pub value: &'static str,
    pub selected: bool,
}

/// A run's duration in words, `-` while it runs.
fn duration(r: &RunRecord) -> String {
    let (Some(end), Ok(start)) = (
        r.finished_at
            .as_deref()
            .and_then(|f| DateTime::parse_from_rfc3339(f).ok()),
        DateTime::parse_from_rfc3339(&r.started_at),
    ) else {
        return "-".into();
    };
    let ms = (end - start).num_milliseconds().max(0);
    if ms < 10_000 {
        format!("{:.1}s", ms as f64 / 1000.0)
    } else {
        age(ms / 1000)
    }
}

/// A row of the runs table: status first, then when, how long, what changed, who asked.
pub struct RunRow {
    pub id: i64,
    pub href: String,
    pub started: String,
    pub ago: String,
    pub duration: String,
    pub trigger: String,
    /// Who asked (`trigger --by alice`, `SIGHUP`, `approve`), or empty.
    pub who: String,
    pub dry_run: bool,
    pub status: String,
    /// `+2 −121`: applied, or planned for a dry run or a stopped run.
    pub changes: String,
    pub adds: String,
    pub removes: String,
    pub failed: i64,
    pub pending: i64,
    pub requests: i64,
    pub verify: String,
    pub error: String,
}

impl RunRow {
    pub fn new(r: &RunRecord, now: DateTime<Utc>, who: Option<&str>) -> RunRow {
        let planned_only = r.dry_run || r.status == RunStatus::Aborted;
        let (adds, removes) = if planned_only {
            (r.adds_planned, r.removes_planned)
        } else {
            (r.adds_applied, r.removes_applied)
        };
        let mut changes = match (adds, removes) {
            (0, 0) => "none".to_string(),
            (a, 0) => format!("+{a}"),
            (0, d) => format!("\u{2212}{d}"),
            (a, d) => format!("+{a} \u{2212}{d}"),
        };
        if planned_only && adds + removes > 0 {
            changes.push_str(if r.dry_run { " planned" } else { " not sent" });
        }
        if r.failed > 0 {
            changes.push_str(&format!(", {} failed", r.failed));
        }
        RunRow {
            id: r.id,
            href: run_href(r.id),
            started: short_time(&r.started_at),
            ago: crate::strip::ago(&r.started_at, now),
            duration: duration(r),
            trigger: r.trigger.clone(),
            who: who.unwrap_or_default().to_string(),
            dry_run: r.dry_run,
            status: r.status.to_string(),
            changes,
            adds: format!("{}/{}", r.adds_applied, r.adds_planned),
            removes: format!("{}/{}", r.removes_applied, r.removes_planned),
            failed: r.failed,
            pending: r.pending,
            requests: r.api_requests,
            verify: r.verification.clone().unwrap_or_else(|| "-".into()),
            error: r
                .error
                .as_deref()
                .map(|e| e.chars().take(300).collect())
                .unwrap_or_default(),
        }
    }
}

#[derive(Template)]
#[template(path = "runs.html")]
pub struct RunsPage {
    pub rows: Vec<RunRow>,
    pub total: i64,
    pub page: u32,
    pub pages: u32,
    pub prev: Option<String>,
    pub next: Option<String>,
    pub status_options: Vec<Choice>,
    pub trigger_options: Vec<Choice>,
    pub from: String,
    pub to: String,
    pub chart_range: String,
    pub chart_changes: String,
    pub chart_duration: String,
    pub chart_pending: String,
    pub strip: Strip,
    /// The "changes only" view (the default) rather than every run.
    pub changes_only: bool,
    pub all_href: String,
    pub changes_href: String,
}

pub struct ActionView {
    /// Why the run planned it, in words.
    pub why: &'static str,
    pub flapping: bool,
    pub role: String,
    pub action: String,
    pub email: String,
    pub person_href: Option<String>,
    pub user_id: i64,
    pub outcome: String,
    pub http: String,
    pub detail: String,
}

impl ActionView {
    pub fn new(a: &ActionRow, flapping: bool) -> ActionView {
        ActionView {
            why: match (a.action, flapping) {
                (ChangeKind::Add, true) => {
                    "re-granted: removed in Studio behind the tool (flapping)"
                }
                (_, true) => "removed again: re-granted in Studio behind the tool (flapping)",
                (ChangeKind::Add, _) => "in the desired state, not held in Studio",
                _ => "held in Studio, not in the desired state",
            },
            flapping,
            role: a.role.clone(),
            action: a.action.to_string(),
            email: a.email.clone().unwrap_or_else(|| "(no email)".into()),
            person_href: a.email.as_deref().map(person_href),
            user_id: a.user_id,
            outcome: a.outcome.to_string(),
            http: a.http_status.map(|s| s.to_string()).unwrap_or_default(),
            detail: a.detail.clone().unwrap_or_default(),
        }
    }
}

pub struct LeftAloneView {
    pub email: String,
    pub person_href: Option<String>,
    pub reason: String,
    pub detail: String,
}

impl LeftAloneView {
    pub fn new(p: &PendingRow) -> LeftAloneView {
        LeftAloneView {
            person_href: Some(person_href(&p.email)),
            email: p.email.clone(),
            reason: reason_words(&p.reason).to_string(),
            detail: p.detail.clone().unwrap_or_default(),
        }
    }
}

#[derive(Template)]
#[template(path = "run.html")]
pub struct RunPage {
    pub run: RunRow,
    pub finished: String,
    pub error: Option<String>,
    /// The error's cause and next step (a failed run).
    pub advice: Option<Advice>,
    /// A stopped run: the risk per role, and its state since.
    pub risks: Vec<RoleRisk>,
    pub afterwards: Option<Afterwards>,
    /// A run that sent an approved or saved plan says so.
    pub used_approval: Option<(String, Option<String>)>,
    /// Flapping in this run: how many runs in a row, and the changes.
    pub flapping: Option<String>,
    pub actions: Vec<ActionView>,
    pub pending: Vec<LeftAloneView>,
    pub strip: Strip,
}

pub struct TrailView {
    pub kind: &'static str,
    pub runs: String,
    pub run_href: String,
    pub when: String,
    pub trigger: String,
    pub mode: &'static str,
    pub status: String,
    pub what: String,
    pub outcome: String,
    pub http: String,
    pub detail: String,
}

impl TrailView {
    pub fn new(e: &TrailEntry) -> TrailView {
        let mut v = TrailView {
            kind: e.kind(),
            runs: e.run_id.to_string(),
            run_href: run_href(e.run_id),
            when: short_time(&e.started_at),
            trigger: e.trigger.clone(),
            mode: if e.dry_run { "plan" } else { "apply" },
            status: e.run_status.to_string(),
            what: String::new(),
            outcome: String::new(),
            http: String::new(),
            detail: String::new(),
        };
        match &e.event {
            TrailEvent::Action {
                role,
                action,
                outcome,
                http_status,
                detail,
                ..
            } => {
                v.what = format!(
                    "{action} {role}: {}",
                    if *action == ChangeKind::Add {
                        "in the desired state, not held in Studio"
                    } else {
                        "held in Studio, not in the desired state"
                    }
                );
                v.outcome = outcome.to_string();
                v.http = http_status.map(|s| s.to_string()).unwrap_or_default();
                v.detail = detail.clone().unwrap_or_default();
            }
            TrailEvent::LeftAlone {
                reason,
                detail,
                first_run_id,
                first_started_at,
                runs,
                ..
            } => {
                if *first_run_id != e.run_id {
                    v.runs = format!("{first_run_id}–{}", e.run_id);
                    v.when = format!(
                        "{} to {}",
                        short_time(first_started_at),
                        short_time(&e.started_at)
                    );
                    // Trigger, mode and status differ across the folded runs: claim none.
                    v.trigger = "various".into();
                    v.mode = "-";
                    v.status = "-".into();
                }
                v.what = format!("left alone: {}", reason_words(reason));
                v.outcome = if *runs == 1 {
                    "1 run".into()
                } else {
                    format!("{runs} runs")
                };
                v.detail = detail.clone().unwrap_or_default();
            }
        }
        v
    }
}

#[derive(Template)]
#[template(path = "person.html")]
pub struct PersonPage {
    pub email: String,
    pub since: String,
    pub entries: Vec<TrailView>,
    pub limit: u32,
    pub truncated: bool,
    /// Flapping seen for this person: the runs and what to do.
    pub flapping: Option<String>,
    /// The Studio user ids seen for this email.
    pub user_ids: String,
    pub strip: Strip,
}

pub struct PendingView {
    pub email: String,
    pub person_href: String,
    pub reason: String,
    pub since: String,
    pub age: String,
    pub last_check: String,
    pub next_check: String,
    pub detail: String,
    /// `user15@school.edu?` when the domain is a near miss of the one most emails use.
    pub typo: Option<String>,
}

#[derive(Template)]
#[template(path = "pending.html")]
pub struct PendingPage {
    pub rows: Vec<PendingView>,
    pub as_of: String,
    pub strip: Strip,
}

pub struct HealthItem {
    pub name: &'static str,
    /// `ok`, `warn` or `bad`.
    pub state: &'static str,
    pub value: String,
    pub href: Option<String>,
    pub detail: Option<String>,
    pub command: Option<String>,
}

#[derive(Template)]
#[template(path = "health.html")]
pub struct HealthPage {
    pub items: Vec<HealthItem>,
    pub strip: Strip,
}

/// A duration in words, at most two units: `3d 4h`, `12m`, `40s`.
pub fn age(seconds: i64) -> String {
    let s = seconds.max(0);
    let (d, h, m) = (s / 86_400, s % 86_400 / 3600, s % 3600 / 60);
    match (d, h, m) {
        (0, 0, 0) => format!("{s}s"),
        (0, 0, m) => format!("{m}m"),
        (0, h, m) => format!("{h}h {m}m"),
        (d, h, _) => format!("{d}d {h}h"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ages_and_links() {
        assert_eq!(age(40), "40s");
        assert_eq!(age(720), "12m");
        assert_eq!(age(3 * 3600 + 60), "3h 1m");
        assert_eq!(age(400 * 86_400 + 7200), "400d 2h");
        assert_eq!(
            person_href("<script>@x.edu"),
            "/console/person?email=%3Cscript%3E%40x%2Eedu"
        );
        assert_eq!(
            short_time("2025-03-01T10:00:00.123Z"),
            "2025-03-01 10:00:00"
        );
    }
}
