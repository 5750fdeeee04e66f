//! `history`: the runs, one run's actions and pending emails, one person's trail (`--email`),
//! or the approvals, as a table, JSON or CSV. It reads the history without the Studio token
//! (the config's secrets are not read), so an admin without access to the token can still
//! see what happened.

use super::fail;
use crate::exit::Exit;
use crate::render::{self, Format};
use std::path::Path;
use studio_role_sync_engine::config::Config;
use studio_role_sync_engine::email_address;
use studio_role_sync_engine::history::parse_time;

/// What `history` shows.
pub enum HistoryQuery {
    /// The latest runs.
    Runs,
    /// One run with its actions and pending emails.
    Run(i64),
    /// One person's trail, from `since` (as written on the command line) on.
    Email {
        email: String,
        since: Option<String>,
    },
}

/// `history`: the runs, one run, or one person's trail; `limit` bounds runs or trail entries.
pub async fn history(config_path: &Path, limit: u32, what: HistoryQuery, format: Format) -> Exit {
    let config = match Config::load_without_secrets(config_path) {
        Ok(c) => c,
        Err(e) => return fail(e),
    };
    crate::logging::init(config.log.format, "warn");
    // An empty or malformed address would only ever show an empty trail: say why instead.
    if let HistoryQuery::Email { email: raw, .. } = &what {
        if let Err(problem) = email_address::check(raw) {
            return fail(format!("--email: {} {problem}", email_address::shown(raw)));
        }
    }
    let since = match &what {
        HistoryQuery::Email {
            since: Some(text), ..
        } => match parse_time(text, chrono::Utc::now()) {
            Ok(t) => Some(t),
            Err(e) => return fail(format!("--since: {e}")),
        },
        _ => None,
    };
    let history = match super::open_history_to_read(&config).await {
        Ok(h) => h,
        Err(code) => return code,
    };
    let text =
        match what {
            HistoryQuery::Runs => match history.runs(limit).await {
                Ok(runs) => {
                    let ids: Vec<i64> = runs.iter().map(|r| r.id).collect();
                    history
                        .approvals_of_runs(&ids)
                        .await
                        .map(|approvals| render::render_runs(&runs, &approvals, format))
                }
                Err(e) => Err(e),
            },
            HistoryQuery::Email { email, .. } => history
                .email_trail(&email, since, limit)
                .await
                .map(|entries| {
                    render::render_trail(&email_address::normalize(&email), &entries, format)
                }),
            HistoryQuery::Run(id) => match history.run(id).await {
                Ok(None) => return fail(format!("no run {id} in {}", config.history.display())),
                Ok(Some(r)) => match (
                    history.actions(id).await,
                    history.pending(id).await,
                    history.approvals_of_runs(&[id]).await,
                ) {
                    (Ok(a), Ok(p), Ok(ap)) => {
                        let mut text = render::render_run_detail(&r, &a, &p, &ap, format);
                        // JSON and CSV readers find it in `run_actions.flapping`.
                        if format == Format::Table {
                            let flapping = history.flapping_actions(id).await.unwrap_or_default();
                            text.push_str(&render::flapping::render_flapping_rows(&flapping));
                        }
                        Ok(text)
                    }
                    (Err(e), _, _) | (_, Err(e), _) | (_, _, Err(e)) => Err(e),
                },
                Err(e) => Err(e),
            },
        };
    history.close().await;
    match text {
        Ok(t) => {
            print!("{t}");
            Exit::Success
        }
        Err(e) => fail(e),
    }
}

/// `history --approvals`: the approvals (`approve`, saved plans), newest first.
pub async fn history_approvals(config_path: &Path, limit: u32, format: Format) -> Exit {
    let config = match Config::load_without_secrets(config_path) {
        Ok(c) => c,
        Err(e) => return fail(e),
    };
    crate::logging::init(config.log.format, "warn");
    let history = match super::open_history_to_read(&config).await {
        Ok(h) => h,
        Err(code) => return code,
    };
    let rows = history.approvals(limit).await;
    history.close().await;
    match rows {
        Ok(rows) => {
            print!("{}", render::render_approvals(&rows, format));
            Exit::Success
        }
        Err(e) => fail(e),
    }
}
