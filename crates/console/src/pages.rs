//! The pages: each handler checks its parameters ([`params`](crate::params)), reads the
//! history, and renders its template ([`views`](crate::views)). A bad parameter is a `400`
//! page saying which and why; a history that cannot be read is a `500` page that says so
//! (the details go to the log, not to the reader).

use crate::advice::{explain, reason_words, typo_hint};
use crate::params::{self, BadParam};
use crate::strip::Strip;
use crate::views::*;
use crate::{charts, remedy, Console};
use askama::Template;
use axum::extract::{Path, RawQuery, State};
use axum::http::{header, StatusCode};
use axum::response::{Html, IntoResponse, Redirect, Response};
use chrono::{DateTime, Duration, Utc};
use std::sync::Arc;
use studio_role_sync_engine::history::{history_time, HistoryError, TrailEvent};
use studio_role_sync_engine::run_status::RunStatus;

type Shared = State<Arc<Console>>;

const RUNS_PER_PAGE: u32 = 50;
/// Entries of a person's trail shown (newest first).
const TRAIL_LIMIT: u32 = 500;
/// Runs after an aborted one looked at, to say what became of it.
const AFTERWARDS_RUNS: u32 = 50;
/// Flapping runs of one person named on their page.
const PERSON_FLAPPING: u32 = 20;
/// Domains of the listed emails read for the typo hint, the most used first.
const LISTED_DOMAINS: u32 = 200;
/// Days the charts cover when the filter gives no range.
const DEFAULT_CHART_DAYS: i64 = 30;

/// A page with `status`, `title` and `message`.
pub fn error_page(status: StatusCode, title: &str, message: &str) -> Response {
    let html = ErrorPage {
        title,
        message,
        strip: Strip::default(),
    }
    .render()
    .unwrap_or_else(|_| "error".into());
    (status, Html(html)).into_response()
}

fn bad_request(e: BadParam) -> Response {
    error_page(StatusCode::BAD_REQUEST, "Bad request", &e.0)
}

fn unreadable(e: HistoryError) -> Response {
    tracing::error!(error = %e, "console: cannot read the history");
    error_page(
        StatusCode::INTERNAL_SERVER_ERROR,
        "The history cannot be read",
        "The history database could not be read just now; the daemon's log says why.",
    )
}

fn page(t: impl Template) -> Response {
    match t.render() {
        Ok(html) => Html(html).into_response(),
        Err(e) => {
            tracing::error!(error = %e, "console: cannot render a page");
            error_page(
                StatusCode::INTERNAL_SERVER_ERROR,
                "Internal error",
                "This page could not be drawn.",
            )
        }
    }
}

pub async fn to_console() -> Redirect {
    Redirect::to("/console/")
}

pub async fn not_found() -> Response {
    error_page(
        StatusCode::NOT_FOUND,
        "Not found",
        "There is no such page in the console.",
    )
}

pub async fn style() -> Response {
    (
        [(header::CONTENT_TYPE, "text/css; charset=utf-8")],
        include_str!("../static/console.css"),
    )
        .into_response()
}

/// The runs list with its filter, the charts of the filtered days, and paging.
pub async fn runs(State(c): Shared, RawQuery(query): RawQuery) -> Response {
    let now = Utc::now();
    let q = match params::runs_query(query.as_deref(), now) {
        Ok(q) => q,
        Err(e) => return bad_request(e),
    };
    // The charts cover the filter's range, or the last 30 days; at most 400 days.
    let chart_to = q.to.unwrap_or(now).min(now + Duration::days(1));
    let chart_from = q
        .from
        .unwrap_or(chart_to - Duration::days(DEFAULT_CHART_DAYS))
        .max(chart_to - Duration::days(params::MAX_CHART_DAYS));
    // The days drawn: from the first day of the range to the last day it touches.
    let chart_days = charts::Days {
        first: chart_from.date_naive(),
        last: (chart_to - Duration::milliseconds(1))
            .date_naive()
            .max(chart_from.date_naive()),
    };
    let offset = (q.page - 1) * RUNS_PER_PAGE;
    let (total, folded, runs, days, strip) = match tokio::try_join!(
        c.history.count_runs(&q.filter),
        c.history.count_folded_runs(&q.filter),
        c.history.runs_filtered(&q.filter, offset, RUNS_PER_PAGE),
        c.history.day_stats(
            chart_days.first,
            chart_days.last,
            q.filter.status,
            q.filter.trigger.as_deref()
        ),
        c.strip(now),
    ) {
        Ok(r) => r,
        Err(e) => return unreadable(e),
    };
    let ids: Vec<i64> = runs.iter().map(|r| r.id).collect();
    let who = match c.history.requested_by(&ids).await {
        Ok(w) => w,
        Err(e) => return unreadable(e),
    };
    let who_of = |id: i64| who.iter().find(|(i, _)| *i == id).map(|(_, w)| w.as_str());
    let pages = ((total.max(1) as u64).div_ceil(u64::from(RUNS_PER_PAGE))) as u32;
    let link_with = |page: u32, view: Option<&str>| {
        let mut parts: Vec<String> = q
            .shown
            .iter()
            .filter(|(n, v)| n != "page" && !v.trim().is_empty())
            .filter(|(n, _)| view.is_none() || n != "view")
            .map(|(n, v)| {
                format!(
                    "{n}={}",
                    percent_encoding::utf8_percent_encode(
                        v.trim(),
                        percent_encoding::NON_ALPHANUMERIC
                    )
                )
            })
            .collect();
        if let Some(v) = view {
            parts.push(format!("view={v}"));
        }
        parts.push(format!("page={page}"));
        format!("/console/?{}", parts.join("&"))
    };
    let link = |page: u32| link_with(page, None);
    let choices = |all: &[&'static str], chosen: &Option<String>| {
        all.iter()
            .map(|v| Choice {
                value: v,
                selected: chosen.as_deref() == Some(*v),
            })
            .collect()
    };
    let date = |t: Option<DateTime<Utc>>| {
        t.map(|t| t.format("%Y-%m-%d").to_string())
            .unwrap_or_default()
    };
    page(RunsPage {
        rows: runs
            .iter()
            .map(|r| {
                let mut row = RunRow::new(r, now, who_of(r.id));
                row.local = c.local(&r.started_at);
                row
            })
            .collect(),
        total,
        folded,
        page: q.page,
        pages,
        prev: (q.page > 1).then(|| link(q.page - 1)),
        next: (q.page < pages).then(|| link(q.page + 1)),
        status_options: choices(
            &params::statuses(),
            &q.filter.status.map(|s| s.as_str().to_string()),
        ),
        trigger_options: choices(params::TRIGGERS, &q.filter.trigger),
        from: date(q.from),
        // The form's "to" is a day included: the day given, never the one before.
        to: q
            .to_day
            .map(|d| d.format("%Y-%m-%d").to_string())
            .unwrap_or_default(),
        // Whole days: the totals are kept per UTC day.
        chart_range: format!(
            "{} to {} (UTC days), runs that applied{}",
            chart_days.first.format("%Y-%m-%d"),
            chart_days.last.format("%Y-%m-%d"),
            match (q.filter.status, q.filter.trigger.as_deref()) {
                (None, None) => String::new(),
                (Some(s), None) => format!(", status {s}"),
                (None, Some(t)) => format!(", trigger {t}"),
                (Some(s), Some(t)) => format!(", status {s}, trigger {t}"),
            }
        ),
        chart_changes: charts::changes_per_day(&days, chart_days),
        chart_duration: charts::duration_per_day(&days, chart_days),
        chart_pending: charts::pending_per_day(&days, chart_days),
        strip,
        changes_only: q.filter.changes_only,
        all_href: link_with(1, Some("all")),
        changes_href: link_with(1, Some("changes")),
    })
}

/// One run: its facts, the cause and next step of a failure, the risk and the remedies of a
/// run a guard stopped (and what became of it), flapping, its actions and who it left alone.
pub async fn run(
    State(c): Shared,
    id: Result<Path<i64>, axum::extract::rejection::PathRejection>,
    RawQuery(query): RawQuery,
) -> Response {
    if let Err(e) = params::pairs(query.as_deref(), &[]) {
        return bad_request(e);
    }
    let Ok(Path(id)) = id else {
        return bad_request(BadParam("a run id is a whole number".into()));
    };
    let now = Utc::now();
    let ids = [id];
    let (record, actions, pending, context, approvals, strip) = match tokio::try_join!(
        c.history.run(id),
        c.history.actions(id),
        c.history.pending(id),
        c.history.run_context(id),
        c.history.approvals_of_runs(&ids),
        c.strip(now),
    ) {
        Ok(r) => r,
        Err(e) => return unreadable(e),
    };
    let Some(record) = record else {
        return error_page(
            StatusCode::NOT_FOUND,
            "No such run",
            &format!("There is no run {id} in the history."),
        );
    };
    let user_ids = actions
        .iter()
        .map(|a| a.user_id)
        .chain(pending.iter().filter_map(|p| p.user_id))
        .collect();
    let twins = pending
        .iter()
        .filter(|p| p.reason == "ambiguous")
        .map(|p| p.email.as_str());
    let (names, ambiguous) = match names_and_twins(&c, user_ids, twins).await {
        Ok(n) => n,
        Err(e) => return unreadable(e),
    };
    let aborted = record.status == RunStatus::Aborted;
    let (afterwards, risks) = if aborted {
        let later = match c.history.runs_after(id, AFTERWARDS_RUNS).await {
            Ok(l) => l,
            Err(e) => return unreadable(e),
        };
        let approval = approvals
            .iter()
            .find(|a| a.run_id == Some(id) && a.kind == "approve");
        (
            Some(remedy::afterwards(
                &record,
                context.guard.as_deref(),
                approval,
                &later,
                &c.command,
            )),
            remedy::risks(&actions, &context.role_holders, &names),
        )
    } else {
        (None, Vec::new())
    };
    let flapping_actions = if context.flapping > 0 {
        match tokio::try_join!(
            c.history.flapping_actions(id),
            c.history.flapping_streak(id)
        ) {
            Ok(f) => Some(f),
            Err(e) => return unreadable(e),
        }
    } else {
        None
    };
    let is_flapping = |a: &studio_role_sync_engine::history::ActionRow| {
        flapping_actions.as_ref().is_some_and(|(f, _)| {
            f.iter()
                .any(|(e, r, k)| *e == a.email && *r == a.role && *k == a.action)
        })
    };
    let who = context.requested_by.as_deref();
    let mut run_row = RunRow::new(&record, now, who);
    run_row.local = c.local(&record.started_at);
    page(RunPage {
        left_alone_summary: left_alone_summary(
            pending.iter().map(|p| p.reason.as_str()),
            record.pending,
        ),
        run: run_row,
        finished: record
            .finished_at
            .as_deref()
            .map(short_time)
            .unwrap_or_else(|| "not yet".into()),
        advice: record
            .error
            .as_deref()
            .filter(|_| matches!(record.status, RunStatus::Failed | RunStatus::Partial))
            .map(|e| explain(e, &c.base_url)),
        error: record.error.clone(),
        risks,
        afterwards,
        used_approval: remedy::used_approval(id, &approvals),
        flapping: flapping_actions.as_ref().map(|(f, streak)| {
            format!(
                "Flapping: {} change(s) of this run were undone in Studio after an earlier run \
                 applied them ({streak} run(s) in a row found flapping). Something in Studio \
                 (a person, another tool, an SSO rule) changes these roles behind the tool: find \
                 it, or change the desired state; see docs/operations.md §15.",
                f.len()
            )
        }),
        actions: actions
            .iter()
            .map(|a| {
                let mut v = ActionView::new(a, is_flapping(a));
                v.name = names.get(&a.user_id).cloned();
                // Why a stopped run sent nothing is said once, above: not on every row.
                if aborted && v.detail.starts_with("not sent: ") {
                    v.detail.clear();
                }
                v
            })
            .collect(),
        pending: pending
            .iter()
            .map(|p| {
                let mut v = LeftAloneView::new(p, &names);
                v.accounts = ambiguous.get(&p.email).cloned().unwrap_or_default();
                v
            })
            .collect(),
        strip,
    })
}

/// Ambiguous emails whose accounts are named on a page, at most.
const NAMED_TWINS: usize = 50;

/// The names Studio gave the accounts `user_ids`, and the accounts (`Name (Studio user 7)`)
/// of the `ambiguous` emails (the first [`NAMED_TWINS`]): what the run page and the left-alone
/// page put beside ids and shared emails.
async fn names_and_twins<'a>(
    c: &Console,
    mut user_ids: Vec<i64>,
    ambiguous: impl Iterator<Item = &'a str>,
) -> Result<
    (
        std::collections::HashMap<i64, String>,
        std::collections::HashMap<String, Vec<String>>,
    ),
    HistoryError,
> {
    user_ids.sort_unstable();
    user_ids.dedup();
    let names = c.history.names_of(&user_ids).await?;
    let mut twins = std::collections::HashMap::new();
    for email in ambiguous.take(NAMED_TWINS) {
        let accounts = c.history.accounts_of(email).await?;
        twins.insert(
            email.to_string(),
            accounts.iter().map(account_words).collect(),
        );
    }
    Ok((names, twins))
}

/// `Ada Lovelace (Studio user 7)`.
fn account_words(a: &studio_role_sync_engine::history::AccountSeen) -> String {
    account_label(a.user_id, a.full_name.as_deref())
}

/// Whether a left-alone `reason` counts as pending (waits for Studio: no account yet, or
/// several), as a run's `pending` and the runs list's "Pending" column count; the other
/// reasons are rules of the config.
fn counts_as_pending(reason: &str) -> bool {
    matches!(reason, "not_in_studio" | "ambiguous")
}

/// `10: 7 pending (6 no Studio account yet, 1 several Studio accounts share this email), 3 by
/// rule (protected email (roles.protected))`, of the left-alone `reasons` of which `pending`
/// count as pending: the count the runs list shows as "pending" is the first part, so the
/// two agree in words.
fn left_alone_summary<'a>(reasons: impl Iterator<Item = &'a str>, pending: i64) -> String {
    let mut by_reason: Vec<(&str, usize)> = Vec::new();
    let mut all = 0i64;
    for r in reasons {
        all += 1;
        match by_reason.iter_mut().find(|(k, _)| *k == r) {
            Some((_, n)) => *n += 1,
            None => by_reason.push((r, 1)),
        }
    }
    // The most common reason first; ties by reason, so the words do not depend on row order.
    by_reason.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(b.0)));
    let part = |pending_kind: bool| {
        by_reason
            .iter()
            .filter(|(k, _)| counts_as_pending(k) == pending_kind)
            .map(|(k, n)| format!("{n} {}", reason_words(k)))
            .collect::<Vec<_>>()
            .join(", ")
    };
    let others = all - pending;
    match (pending, others) {
        (0, 0) => "0".into(),
        (p, 0) => format!("{p} pending ({})", part(true)),
        (0, o) => format!("{o} by rule ({})", part(false)),
        (p, o) => format!(
            "{all}: {p} pending ({}), {o} by rule ({})",
            part(true),
            part(false)
        ),
    }
}

/// One person's trail, the same as `history --email`.
pub async fn person(State(c): Shared, RawQuery(query): RawQuery) -> Response {
    let (email, since) = match params::person_query(query.as_deref(), Utc::now()) {
        Ok(q) => q,
        Err(e) => return bad_request(e),
    };
    let Some(email) = email else {
        return bad_request(BadParam(
            "give an email: /console/person?email=ADDRESS".into(),
        ));
    };
    let normalized = studio_role_sync_engine::email_address::normalize(&email);
    let (entries, flapping, known, strip) = match tokio::try_join!(
        c.history.email_trail(&email, since, TRAIL_LIMIT),
        c.history.flapping_of_email(&normalized, PERSON_FLAPPING),
        c.history.person(&normalized),
        c.strip(Utc::now()),
    ) {
        Ok(e) => e,
        Err(e) => return unreadable(e),
    };
    let last_flapped = match flapping.first() {
        Some((run, _, _)) => match c.history.run(*run).await {
            Ok(r) => r.map(|r| (r.id, r.started_at)),
            Err(e) => return unreadable(e),
        },
        None => None,
    };
    let mut user_ids: Vec<i64> = entries
        .iter()
        .filter_map(|e| match &e.event {
            TrailEvent::Action { user_id, .. } => Some(*user_id),
            TrailEvent::LeftAlone { user_id, .. } => *user_id,
        })
        .collect();
    user_ids.sort_unstable();
    user_ids.dedup();
    page(PersonPage {
        who: Who::new(&known),
        user_ids: user_ids
            .iter()
            .map(|i| i.to_string())
            .collect::<Vec<_>>()
            .join(", "),
        flapping: flapping_note(&flapping, last_flapped, Utc::now()),
        strip,
        email: normalized,
        since: since.map(history_time).unwrap_or_default(),
        truncated: entries.len() as u32 >= TRAIL_LIMIT,
        limit: TRAIL_LIMIT,
        entries: entries
            .iter()
            .map(|e| {
                let flapped = match &e.event {
                    TrailEvent::Action { role, action, .. } => flapping
                        .iter()
                        .any(|(r, ro, a)| *r == e.run_id && ro == role && a == action),
                    TrailEvent::LeftAlone { .. } => false,
                };
                let mut v = TrailView::new(e, flapped);
                v.local = match &e.event {
                    TrailEvent::LeftAlone {
                        first_run_id,
                        first_started_at,
                        ..
                    } if *first_run_id != e.run_id => format!(
                        "{} to {}",
                        c.local(first_started_at),
                        c.local(&e.started_at)
                    ),
                    _ => c.local(&e.started_at),
                };
                v
            })
            .collect(),
    })
}

/// A person's flapping in words: each role changed back (and after which of the tool's
/// changes), the runs, and the newest (`last`: its id and start) with how long ago, so a note
/// about flapping that stopped does not read as if it went on. `flapping`: newest first.
fn flapping_note(
    flapping: &[(i64, String, studio_role_sync_engine::change::ChangeKind)],
    last: Option<(i64, String)>,
    now: DateTime<Utc>,
) -> Option<String> {
    if flapping.is_empty() {
        return None;
    }
    let mut changes: Vec<String> = Vec::new();
    let mut runs: Vec<i64> = Vec::new();
    for (run, role, action) in flapping {
        let change = format!("{role} after the tool's {action}");
        if !changes.contains(&change) {
            changes.push(change);
        }
        if !runs.contains(run) {
            runs.push(*run);
        }
    }
    let last = last
        .map(|(id, at)| format!("; last in run {id}, {} ago", crate::strip::ago(&at, now)))
        .unwrap_or_default();
    Some(format!(
        "Flapping: Studio changed back this person's {}, in {} run(s) (runs {}){last}. Someone or \
         something in Studio undid the tool's changes: find out who, or change the desired \
         state; see docs/operations.md §15.",
        changes.join(", and "),
        runs.len(),
        runs.iter()
            .map(i64::to_string)
            .collect::<Vec<_>>()
            .join(", ")
    ))
}

/// Who is left alone now, for how long, and when they were last checked.
pub async fn pending(State(c): Shared, RawQuery(query): RawQuery) -> Response {
    if let Err(e) = params::pairs(query.as_deref(), &[]) {
        return bad_request(e);
    }
    let now = Utc::now();
    let (rows, domains, strip) = match tokio::try_join!(
        c.history.pending_now(),
        c.history.listed_domains(LISTED_DOMAINS),
        c.strip(now)
    ) {
        Ok(r) => r,
        Err(e) => return unreadable(e),
    };
    let emails: Vec<&str> = rows.iter().map(|p| p.email.as_str()).collect();
    let no_email = rows
        .iter()
        .filter(|p| p.reason == "no_email")
        .filter_map(|p| p.user_id)
        .collect();
    let ambiguous = rows
        .iter()
        .filter(|p| p.reason == "ambiguous")
        .map(|p| p.email.as_str());
    let (waits, (names, mut twins)) = match tokio::try_join!(
        c.history.desired_of(&emails),
        names_and_twins(&c, no_email, ambiguous)
    ) {
        Ok(w) => w,
        Err(e) => return unreadable(e),
    };
    let pending_count = rows.iter().filter(|p| counts_as_pending(&p.reason)).count() as i64;
    let at = |t: &Option<String>| t.as_deref().map(short_time).unwrap_or_else(|| "-".into());
    page(PendingPage {
        as_of: "As of the latest run that read Studio.".into(),
        summary: left_alone_summary(rows.iter().map(|p| p.reason.as_str()), pending_count),
        rows: rows
            .iter()
            .map(|p| PendingView {
                person_href: person_href(&p.email),
                email: no_email_label(&p.reason, p.user_id, &names)
                    .unwrap_or_else(|| p.email.clone()),
                typo: (p.reason == "not_in_studio")
                    .then(|| typo_hint(&p.email, &domains))
                    .flatten(),
                reason: reason_words(&p.reason).to_string(),
                waits_for: waits.get(&p.email).cloned().unwrap_or_default(),
                accounts: twins.remove(p.email.as_str()).unwrap_or_default(),
                since: short_time(&p.since),
                since_iso: p.since.clone(),
                since_local: c.local(&p.since),
                age: DateTime::parse_from_rfc3339(&p.since)
                    .map(|s| age((now - s.with_timezone(&Utc)).num_seconds()))
                    .unwrap_or_else(|_| "-".into()),
                last_check: at(&p.last_checked_at),
                next_check: at(&p.next_check_at),
                detail: p.detail.clone().unwrap_or_default(),
            })
            .collect(),
        strip,
    })
}

/// Health now: the last run, the guards, Studio authentication, the next scheduled run.
pub async fn health(State(c): Shared, RawQuery(query): RawQuery) -> Response {
    if let Err(e) = params::pairs(query.as_deref(), &[]) {
        return bad_request(e);
    }
    let now = Utc::now();
    let ((latest, tripped), auth, strip) = match tokio::try_join!(
        c.history.latest_real_runs(),
        c.history.auth_records(),
        c.strip(now)
    ) {
        Ok(r) => r,
        Err(e) => return unreadable(e),
    };
    let tripped_guard = match &tripped {
        Some(t) => match c.history.run_context(t.id).await {
            Ok(ctx) => ctx.guard,
            Err(e) => return unreadable(e),
        },
        None => None,
    };
    let mut items = Vec::new();
    let readiness = c
        .readiness
        .as_ref()
        .map(|r| r.read().unwrap_or_else(|e| e.into_inner()).clone());
    if let Some(r) = &readiness {
        let (state, value, detail) = match (&r.invalid_config, &r.invalid_desired) {
            (Some(e), _) => (
                "bad",
                "the config file on disk is invalid: the daemon keeps the previous one",
                Some(e.clone()),
            ),
            (None, Some(e)) => (
                "bad",
                "the desired state is invalid: nothing from it is applied",
                Some(e.clone()),
            ),
            (None, None) => ("ok", "config and desired state are valid", None),
        };
        items.push(HealthItem {
            name: "Inputs",
            state,
            value: value.into(),
            href: None,
            detail,
            command: None,
        });
    }
    let unrecorded = readiness
        .as_ref()
        .and_then(crate::strip::unrecorded_failure);
    if let Some(error) = unrecorded {
        let (_, advice) = c.failure_advice(error);
        items.push(HealthItem {
            name: "Last run attempt",
            state: "bad",
            value: format!(
                "failed before it could be recorded: {} Next step: {}",
                advice.what, advice.next
            ),
            href: None,
            detail: Some(error.to_string()),
            command: None,
        });
    }
    items.push(match &latest {
        None => HealthItem {
            name: "Last run",
            state: "warn",
            value: "no run recorded yet".into(),
            href: None,
            detail: None,
            command: None,
        },
        Some(r) => HealthItem {
            name: "Last run",
            state: match r.status {
                RunStatus::Succeeded | RunStatus::Running => "ok",
                RunStatus::Partial | RunStatus::Interrupted => "warn",
                RunStatus::Failed | RunStatus::Aborted => "bad",
            },
            value: format!(
                "run {} {} at {} ({})",
                r.id,
                r.status,
                short_time(&r.started_at),
                r.trigger
            ),
            href: Some(run_href(r.id)),
            detail: r.error.clone(),
            command: None,
        },
    });
    items.push(match (&latest, &tripped) {
        (Some(l), Some(t)) if l.id == t.id => HealthItem {
            name: "Safety guards",
            state: "bad",
            value: format!("tripped in run {}: nothing was sent", t.id),
            href: Some(run_href(t.id)),
            detail: t.error.clone(),
            // Only where `approve` accepts it; the run page says what to do otherwise.
            command: tripped_guard
                .as_deref()
                .filter(|g| {
                    studio_role_sync_engine::plan::GuardKind::parse(g)
                        .is_some_and(|k| k.approvable())
                })
                .map(|_| format!("{} approve {} --by NAME", c.command, t.id)),
        },
        (_, Some(t)) => HealthItem {
            name: "Safety guards",
            state: "ok",
            value: format!(
                "not tripped; last tripped in run {} at {}",
                t.id,
                short_time(&t.started_at)
            ),
            href: Some(run_href(t.id)),
            detail: None,
            command: None,
        },
        (_, None) => HealthItem {
            name: "Safety guards",
            state: "ok",
            value: "never tripped".into(),
            href: None,
            detail: None,
            command: None,
        },
    });
    // The newest failure: one the history could not record is newer than its last run.
    let auth_failed = unrecorded
        .map(str::to_string)
        .or_else(|| {
            latest
                .as_ref()
                .filter(|r| r.status == RunStatus::Failed)
                .and_then(|r| r.error.clone())
        })
        .filter(|e| crate::advice::is_auth_error(e));
    let mut auth_detail: Vec<String> = auth
        .iter()
        .map(|a| {
            format!(
                "OAuth client {}: tokens last rotated {}, access token valid until {}",
                a.client_id,
                short_time(&a.updated_at),
                a.access_expires_at
                    .as_deref()
                    .map(short_time)
                    .unwrap_or_else(|| "unknown".into())
            )
        })
        .collect();
    if let Some(e) = &auth_failed {
        auth_detail.insert(0, e.clone());
    }
    items.push(HealthItem {
        name: "Studio authentication",
        state: if auth_failed.is_some() { "bad" } else { "ok" },
        value: if auth_failed.is_some() {
            format!(
                "failing ({}): the last run could not authenticate",
                c.studio_auth
            )
        } else {
            c.studio_auth.clone()
        },
        href: None,
        detail: (!auth_detail.is_empty()).then(|| auth_detail.join("; ")),
        command: None,
    });
    items.push(HealthItem {
        name: "Next scheduled run",
        state: "ok",
        value: c.next_run(now),
        href: None,
        detail: None,
        command: None,
    });
    page(HealthPage { items, strip })
}
