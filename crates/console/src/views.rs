//! What each page shows, as plain strings ready for its template (`templates/*.html`, checked
//! when compiled; askama escapes every `{{ value }}`, so an email or a Studio detail holding
//! HTML is shown as text). The formatting lives here, so the templates stay logic-free.

use askama::Template;
use percent_encoding::{utf8_percent_encode, NON_ALPHANUMERIC};
use studio_role_sync_engine::history::{ActionRow, PendingRow, RunRecord, TrailEntry, TrailEvent};

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
}

pub struct Choice {
    pub value: &'static str,
    pub selected: bool,
}

/// A row of the runs table: the columns of `history`.
pub struct RunRow {
    pub id: i64,
    pub href: String,
    pub started: String,
    pub trigger: String,
    pub mode: &'static str,
    pub status: String,
    pub adds: String,
    pub removes: String,
    pub failed: i64,
    pub pending: i64,
    pub requests: i64,
    pub verify: String,
    pub error: String,
}

impl RunRow {
    pub fn new(r: &RunRecord) -> RunRow {
        RunRow {
            id: r.id,
            href: run_href(r.id),
            started: short_time(&r.started_at),
            trigger: r.trigger.clone(),
            mode: if r.dry_run { "plan" } else { "apply" },
            status: r.status.to_string(),
            adds: format!("{}/{}", r.adds_applied, r.adds_planned),
            removes: format!("{}/{}", r.removes_applied, r.removes_planned),
            failed: r.failed,
            pending: r.pending,
            requests: r.api_requests,
            verify: r.verification.clone().unwrap_or_else(|| "-".into()),
            error: r
                .error
                .as_deref()
                .map(|e| e.chars().take(160).collect())
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
}

pub struct ActionView {
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
    pub fn new(a: &ActionRow) -> ActionView {
        ActionView {
            role: a.role.clone(),
            action: a.action.clone(),
            email: a.email.clone().unwrap_or_else(|| "(no email)".into()),
            person_href: a.email.as_deref().map(person_href),
            user_id: a.user_id,
            outcome: a.outcome.clone(),
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
            reason: p.reason.clone(),
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
    pub approve: Option<String>,
    pub actions: Vec<ActionView>,
    pub pending: Vec<LeftAloneView>,
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
                v.what = format!("{action} {role}");
                v.outcome = outcome.clone();
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
                }
                v.what = format!("left alone: {reason}");
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
}

#[derive(Template)]
#[template(path = "pending.html")]
pub struct PendingPage {
    pub rows: Vec<PendingView>,
    pub as_of: String,
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
