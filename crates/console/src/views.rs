//! What each page shows, as plain strings ready for its template (`templates/*.html`, checked
//! when compiled; askama escapes every `{{ value }}`, so an email or a Studio detail holding
//! HTML is shown as text). The formatting lives here, so the templates stay logic-free.

use crate::advice::{reason_words, Advice, Typo};
use crate::remedy::{Afterwards, RoleRisk};
use crate::strip::Strip;
use askama::Template;
use chrono::{DateTime, Utc};
use percent_encoding::{utf8_percent_encode, NON_ALPHANUMERIC};
use studio_role_sync_engine::change::ChangeKind;
use studio_role_sync_engine::history::{
    action_reason, ActionRow, AppliedChange, PendingRow, Person, RunRecord, TrailColumns,
    TrailEntry,
};
use studio_role_sync_engine::run_status::RunStatus;

pub use studio_role_sync_engine::history::short_time;

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

/// A Studio account as people name it: `Ada Lovelace (Studio user 7)`, or `Studio user 7`
/// when the history has no name for it.
pub fn account_label(user_id: i64, name: Option<&str>) -> String {
    match name {
        Some(n) => format!("{n} (Studio user {user_id})"),
        None => format!("Studio user {user_id}"),
    }
}

/// An account left alone for having no email (`no_email`): the plan names it `user 7`, the
/// page names it as [`account_label`] does, with the name Studio gave it.
pub fn no_email_label(
    reason: &str,
    user_id: Option<i64>,
    names: &std::collections::HashMap<i64, String>,
) -> Option<String> {
    let id = user_id.filter(|_| reason == "no_email")?;
    Some(account_label(id, names.get(&id).map(String::as_str)))
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

/// The most of a run's error the runs list shows; the run's page has all of it.
const RUN_ERROR_CHARS: usize = 300;

/// `text` cut to at most `max` characters (not bytes), at the last space if there is one in
/// the last fifth, with "…" saying it goes on; unchanged when it fits.
pub fn shortened(text: &str, max: usize) -> String {
    let Some((end, _)) = text.char_indices().nth(max) else {
        return text.to_string();
    };
    let kept = &text[..end];
    let kept = match kept.rfind(char::is_whitespace) {
        Some(space) if kept[space..].chars().count() <= max / 5 => &kept[..space],
        _ => kept,
    };
    format!("{}…", kept.trim_end())
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
    /// The start as the history wrote it (RFC 3339 UTC), for `<time datetime>`.
    pub started_iso: String,
    /// The start in the schedule's time zone, offered as the `<time>`'s title.
    pub local: String,
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
            started_iso: r.started_at.clone(),
            local: String::new(),
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
                .map(|e| shortened(e, RUN_ERROR_CHARS))
                .unwrap_or_default(),
        }
    }
}

#[derive(Template)]
#[template(path = "runs.html")]
pub struct RunsPage {
    pub rows: Vec<RunRow>,
    pub total: i64,
    /// Runs in the filter's range that retention folded into daily totals: not in `total`
    /// nor the rows, still in the charts.
    pub folded: i64,
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
    pub why: String,
    pub flapping: bool,
    pub role: String,
    pub action: String,
    pub email: String,
    pub person_href: Option<String>,
    pub user_id: i64,
    /// The name Studio gave the account, when the history has it.
    pub name: Option<String>,
    pub outcome: String,
    pub http: String,
    pub detail: String,
}

impl ActionView {
    pub fn new(a: &ActionRow, flapping: bool) -> ActionView {
        ActionView {
            why: action_reason(a.action, a.source.as_deref(), flapping),
            flapping,
            role: a.role.clone(),
            action: a.action.to_string(),
            email: a.email.clone().unwrap_or_else(|| "(no email)".into()),
            person_href: a.email.as_deref().map(person_href),
            user_id: a.user_id,
            name: None,
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
    /// An ambiguous email's accounts: `Ada Lovelace (Studio user 7)`.
    pub accounts: Vec<String>,
}

impl LeftAloneView {
    /// `names`: the names Studio gave accounts, for an account without an email.
    pub fn new(p: &PendingRow, names: &std::collections::HashMap<i64, String>) -> LeftAloneView {
        LeftAloneView {
            person_href: Some(person_href(&p.email)),
            email: no_email_label(&p.reason, p.user_id, names).unwrap_or_else(|| p.email.clone()),
            reason: reason_words(&p.reason).to_string(),
            detail: p.detail.clone().unwrap_or_default(),
            accounts: Vec::new(),
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
    /// The left-alone count in words: pending (as the runs list counts) and by rule.
    pub left_alone_summary: String,
    pub strip: Strip,
}

/// A trail entry: the columns `history --email` prints too (one rendering, in the engine).
pub struct TrailView {
    pub kind: &'static str,
    pub run_href: String,
    pub c: TrailColumns,
    /// The run's start (RFC 3339 UTC) and in the schedule's time zone, for `<time>`.
    pub iso: String,
    pub local: String,
}

impl TrailView {
    pub fn new(e: &TrailEntry, flapping: bool) -> TrailView {
        TrailView {
            kind: e.kind(),
            run_href: run_href(e.run_id),
            c: e.columns(flapping),
            iso: e.started_at.clone(),
            local: String::new(),
        }
    }
}

/// Who a person is, as the latest run that planned saw them: their Studio accounts (name, id,
/// what each held) and whether they are in the desired state.
pub struct Who {
    /// `as of run N`, linked; `None` before any run recorded people.
    pub as_of: Option<(i64, String)>,
    pub accounts: Vec<AccountView>,
    /// `Admin (roles.yaml)`, with `listed since run 40` when the history saw it start.
    pub desired: Option<String>,
    pub listed_since: Option<(i64, String)>,
}

pub struct AccountView {
    pub name: String,
    pub user_id: i64,
    pub held: String,
}

/// The managed roles an account holds after run `run`: `held` (as the run read it, before its
/// changes) with the changes it applied folded in. `Admin (granted by run 4)`, and
/// `no managed role; Editor removed by run 4`.
fn held_after(held: &str, user_id: i64, applied: &[AppliedChange], run: Option<i64>) -> String {
    let mut roles: Vec<(String, bool)> = held
        .split(", ")
        .filter(|r| !r.is_empty())
        .map(|r| (r.to_string(), false))
        .collect();
    let mut removed: Vec<&str> = Vec::new();
    for c in applied.iter().filter(|c| c.user_id == user_id) {
        let at = roles.iter().position(|(r, _)| *r == c.role);
        match (c.action, at) {
            (ChangeKind::Add, None) => roles.push((c.role.clone(), true)),
            (ChangeKind::Remove, Some(i)) => {
                roles.remove(i);
                removed.push(&c.role);
            }
            _ => {}
        }
    }
    let by = run.map(|r| format!(" by run {r}")).unwrap_or_default();
    let mut out = if roles.is_empty() {
        "no managed role".to_string()
    } else {
        roles
            .iter()
            .map(|(r, granted)| {
                if *granted {
                    format!("{r} (granted{by})")
                } else {
                    r.clone()
                }
            })
            .collect::<Vec<_>>()
            .join(", ")
    };
    if !removed.is_empty() {
        out.push_str(&format!("; {} removed{by}", removed.join(", ")));
    }
    out
}

impl Who {
    pub fn new(p: &Person) -> Who {
        Who {
            as_of: p.as_of_run.map(|r| (r, run_href(r))),
            accounts: p
                .accounts
                .iter()
                .map(|a| AccountView {
                    name: a.full_name.clone().unwrap_or_else(|| "(no name)".into()),
                    user_id: a.user_id,
                    held: held_after(&a.held, a.user_id, &p.applied, p.as_of_run),
                })
                .collect(),
            desired: p.desired.as_ref().map(|(roles, _)| {
                if roles.is_empty() {
                    "listed, with no managed role".into()
                } else {
                    roles.clone()
                }
            }),
            listed_since: p
                .desired
                .as_ref()
                .and_then(|(_, since)| *since)
                .map(|r| (r, run_href(r))),
        }
    }
}

#[derive(Template)]
#[template(path = "person.html")]
pub struct PersonPage {
    pub who: Who,
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
    /// The roles (and sources) the email waits for, as the latest run's desired state says.
    pub waits_for: String,
    /// An ambiguous email's accounts: `Ada Lovelace (Studio user 7)`.
    pub accounts: Vec<String>,
    pub since: String,
    /// `since` as written (RFC 3339), and in the schedule's time zone (the tooltip).
    pub since_iso: String,
    pub since_local: String,
    pub age: String,
    pub last_check: String,
    pub next_check: String,
    pub detail: String,
    /// When the domain is a rare near miss of the one most listed emails use.
    pub typo: Option<Typo>,
}

#[derive(Template)]
#[template(path = "pending.html")]
pub struct PendingPage {
    pub rows: Vec<PendingView>,
    pub as_of: String,
    /// The count in words, as a run's page says it: pending (as the runs list counts) and
    /// by rule.
    pub summary: String,
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
    fn long_errors_are_cut_with_an_ellipsis() {
        assert_eq!(shortened("short", 300), "short");
        let exact = "é".repeat(300);
        assert_eq!(shortened(&exact, 300), exact, "300 characters fit");
        // Multi-byte characters: cut between characters, never inside one.
        let long = "é".repeat(301);
        assert_eq!(shortened(&long, 300), format!("{}…", "é".repeat(300)));
        let words = "cannot reach Studio ".repeat(20);
        let cut = shortened(&words, 300);
        assert!(cut.ends_with("Studio…"), "at a word's end: {cut}");
        assert!(cut.chars().count() <= 301, "{cut}");
    }

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

    #[test]
    fn held_roles_are_those_after_the_runs_changes() {
        let change = |user_id, role: &str, action| AppliedChange {
            user_id,
            role: role.into(),
            action,
        };
        let applied = [
            change(2, "Admin", ChangeKind::Add),
            change(2, "Editor", ChangeKind::Remove),
            change(3, "Teacher", ChangeKind::Add),
        ];
        assert_eq!(
            held_after("", 2, &applied[..1], Some(1)),
            "Admin (granted by run 1)"
        );
        assert_eq!(
            held_after("Editor, Viewer", 2, &applied, Some(4)),
            "Viewer, Admin (granted by run 4); Editor removed by run 4"
        );
        assert_eq!(
            held_after("Editor", 2, &applied[1..2], Some(4)),
            "no managed role; Editor removed by run 4"
        );
        assert_eq!(held_after("", 5, &applied, Some(4)), "no managed role");
    }
}
