//! The pages: each handler checks its parameters ([`params`](crate::params)), reads the
//! history, and renders its template ([`views`](crate::views)). A bad parameter is a `400`
//! page saying which and why; a history that cannot be read is a `500` page that says so
//! (the details go to the log, not to the reader).

use crate::params::{self, BadParam};
use crate::views::*;
use crate::{charts, Console};
use askama::Template;
use axum::extract::{Path, RawQuery, State};
use axum::http::{header, StatusCode};
use axum::response::{Html, IntoResponse, Redirect, Response};
use chrono::{DateTime, Duration, Utc};
use std::sync::Arc;
use studio_role_sync_engine::history::{history_time, HistoryError};
use studio_role_sync_engine::run_status::RunStatus;

type Shared = State<Arc<Console>>;

const RUNS_PER_PAGE: u32 = 50;
/// Entries of a person's trail shown (newest first).
const TRAIL_LIMIT: u32 = 500;
/// Days the charts cover when the filter gives no range.
const DEFAULT_CHART_DAYS: i64 = 30;

/// A page with `status`, `title` and `message`.
pub fn error_page(status: StatusCode, title: &str, message: &str) -> Response {
    let html = ErrorPage { title, message }
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
    let offset = (q.page - 1) * RUNS_PER_PAGE;
    let (chart_from_text, chart_to_text) = (history_time(chart_from), history_time(chart_to));
    let (total, runs, days) = match tokio::try_join!(
        c.history.count_runs(&q.filter),
        c.history.runs_filtered(&q.filter, offset, RUNS_PER_PAGE),
        c.history.day_stats(&chart_from_text, &chart_to_text),
    ) {
        Ok(r) => r,
        Err(e) => return unreadable(e),
    };
    let pages = ((total.max(1) as u64).div_ceil(u64::from(RUNS_PER_PAGE))) as u32;
    let link = |page: u32| {
        let mut parts: Vec<String> = q
            .shown
            .iter()
            .filter(|(n, v)| n != "page" && !v.trim().is_empty())
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
        parts.push(format!("page={page}"));
        format!("/console/?{}", parts.join("&"))
    };
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
        rows: runs.iter().map(RunRow::new).collect(),
        total,
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
        to: date(q.to),
        chart_range: format!(
            "{} to {} (apply runs only)",
            chart_from.format("%Y-%m-%d %H:%M"),
            chart_to.format("%Y-%m-%d %H:%M")
        ),
        chart_changes: charts::changes_per_day(&days),
        chart_duration: charts::duration_per_day(&days),
        chart_pending: charts::pending_per_day(&days),
    })
}

/// One run: its facts, its actions, what it left alone and why.
pub async fn run(
    State(c): Shared,
    id: Result<Path<i64>, axum::extract::rejection::PathRejection>,
) -> Response {
    let Ok(Path(id)) = id else {
        return bad_request(BadParam("a run id is a whole number".into()));
    };
    let (record, actions, pending) = match tokio::try_join!(
        c.history.run(id),
        c.history.actions(id),
        c.history.pending(id)
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
    let approve = (record.status == RunStatus::Aborted && !record.dry_run)
        .then(|| format!("studio-role-sync approve {}", record.id));
    page(RunPage {
        run: RunRow::new(&record),
        finished: record
            .finished_at
            .as_deref()
            .map(short_time)
            .unwrap_or_else(|| "not yet".into()),
        error: record.error.clone(),
        approve,
        actions: actions.iter().map(ActionView::new).collect(),
        pending: pending.iter().map(LeftAloneView::new).collect(),
    })
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
    let entries = match c.history.email_trail(&email, since, TRAIL_LIMIT).await {
        Ok(e) => e,
        Err(e) => return unreadable(e),
    };
    page(PersonPage {
        email: studio_role_sync_engine::email_address::normalize(&email),
        since: since.map(history_time).unwrap_or_default(),
        truncated: entries.len() as u32 >= TRAIL_LIMIT,
        limit: TRAIL_LIMIT,
        entries: entries.iter().map(TrailView::new).collect(),
    })
}

/// Who is left alone now, for how long, and when they were last checked.
pub async fn pending(State(c): Shared, RawQuery(query): RawQuery) -> Response {
    if let Err(e) = params::pairs(query.as_deref(), &[]) {
        return bad_request(e);
    }
    let now = Utc::now();
    let rows = match c.history.pending_now().await {
        Ok(r) => r,
        Err(e) => return unreadable(e),
    };
    let at = |t: &Option<String>| t.as_deref().map(short_time).unwrap_or_else(|| "-".into());
    page(PendingPage {
        as_of: "As of the latest run that read Studio.".into(),
        rows: rows
            .iter()
            .map(|p| PendingView {
                person_href: person_href(&p.email),
                email: p.email.clone(),
                reason: p.reason.clone(),
                since: short_time(&p.since),
                age: DateTime::parse_from_rfc3339(&p.since)
                    .map(|s| age((now - s.with_timezone(&Utc)).num_seconds()))
                    .unwrap_or_else(|_| "-".into()),
                last_check: at(&p.last_checked_at),
                next_check: at(&p.next_check_at),
                detail: p.detail.clone().unwrap_or_default(),
            })
            .collect(),
    })
}

/// Health now: the last run, the guards, Studio authentication, the next scheduled run.
pub async fn health(State(c): Shared, RawQuery(query): RawQuery) -> Response {
    if let Err(e) = params::pairs(query.as_deref(), &[]) {
        return bad_request(e);
    }
    let ((latest, tripped), auth) =
        match tokio::try_join!(c.history.latest_real_runs(), c.history.auth_records()) {
            Ok(r) => r,
            Err(e) => return unreadable(e),
        };
    let now = Utc::now();
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
            command: Some(format!("studio-role-sync approve {}", t.id)),
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
    let auth_failed = latest
        .as_ref()
        .filter(|r| r.status == RunStatus::Failed)
        .and_then(|r| r.error.clone())
        .filter(|e| {
            let e = e.to_lowercase();
            e.contains("401") || e.contains("403") || e.contains("token") || e.contains("auth")
        });
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
    items.push(match c.schedule.as_ref().and_then(|s| s.next_after(now)) {
        Some(next) => HealthItem {
            name: "Next scheduled run",
            state: "ok",
            value: format!(
                "{} (in {})",
                next.format("%Y-%m-%d %H:%M:%S"),
                age((next - now).num_seconds())
            ),
            href: None,
            detail: None,
            command: None,
        },
        None => HealthItem {
            name: "Next scheduled run",
            state: "warn",
            value: "unknown".into(),
            href: None,
            detail: None,
            command: None,
        },
    });
    page(HealthPage { items })
}
