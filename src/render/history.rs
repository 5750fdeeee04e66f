//! The run history for `history`: the runs list and one run with its actions and pending
//! emails, each as a table (people), JSON (programs: the history's own column names) or CSV
//! (spreadsheets: one row per action or pending email, so a run's detail is one sheet).

use super::table;
use std::fmt::Write;
use studio_role_sync_engine::email_address::escaped;
use studio_role_sync_engine::history::{ActionRow, ApprovalRow, PendingRow, RunRecord};
use studio_role_sync_engine::run_status::RunStatus;

/// How `history` prints: a table for people, JSON or CSV for programs.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    Table,
    Json,
    Csv,
}

/// The runs list; `approvals` are those of (or used by) these runs.
pub fn render_runs(runs: &[RunRecord], approvals: &[ApprovalRow], format: Format) -> String {
    let note = |r: &RunRecord| super::approvals::note(r.id, approvals);
    match format {
        Format::Json => {
            // Each run as the history's columns, plus `approval` when it has one.
            let v: Vec<serde_json::Value> = runs
                .iter()
                .map(|r| {
                    let mut v = serde_json::to_value(r).expect("serialisable");
                    let n = note(r);
                    if !n.is_empty() {
                        v["approval"] = serde_json::Value::String(n);
                    }
                    v
                })
                .collect();
            serde_json::to_string_pretty(&v).expect("serialisable") + "\n"
        }
        Format::Csv => table::csv(
            &[
                "id",
                "started_at",
                "finished_at",
                "trigger",
                "dry_run",
                "status",
                "desired_users",
                "adds_planned",
                "removes_planned",
                "adds_applied",
                "removes_applied",
                "failed",
                "pending",
                "api_requests",
                "error",
                "verification",
                "approval",
            ],
            runs.iter().map(|r| {
                vec![
                    r.id.to_string(),
                    r.started_at.clone(),
                    r.finished_at.clone().unwrap_or_default(),
                    r.trigger.clone(),
                    (r.dry_run as u8).to_string(),
                    r.status.to_string(),
                    r.desired_users.map(|d| d.to_string()).unwrap_or_default(),
                    r.adds_planned.to_string(),
                    r.removes_planned.to_string(),
                    r.adds_applied.to_string(),
                    r.removes_applied.to_string(),
                    r.failed.to_string(),
                    r.pending.to_string(),
                    r.api_requests.to_string(),
                    r.error.clone().unwrap_or_default(),
                    r.verification.clone().unwrap_or_default(),
                    note(r),
                ]
            }),
        ),
        Format::Table => {
            if runs.is_empty() {
                return "No runs recorded yet.\n".into();
            }
            table::table(
                &[
                    "RUN",
                    "STARTED (UTC)",
                    "TRIGGER",
                    "MODE",
                    "STATUS",
                    "ADDS",
                    "REMOVES",
                    "FAILED",
                    "PENDING",
                    "REQUESTS",
                    "VERIFY",
                    "APPROVAL",
                    "ERROR",
                ],
                runs.iter().map(|r| {
                    vec![
                        r.id.to_string(),
                        r.started_at
                            .get(..19)
                            .unwrap_or(&r.started_at)
                            .replace('T', " "),
                        r.trigger.clone(),
                        if r.dry_run { "plan" } else { "apply" }.into(),
                        r.status.to_string(),
                        format!("{}/{}", r.adds_applied, r.adds_planned),
                        format!("{}/{}", r.removes_applied, r.removes_planned),
                        r.failed.to_string(),
                        r.pending.to_string(),
                        r.api_requests.to_string(),
                        r.verification.clone().unwrap_or_else(|| "-".into()),
                        note(r),
                        r.error
                            .as_deref()
                            .map(|e| table::truncate(e, 60))
                            .unwrap_or_default(),
                    ]
                }),
            ) + "ADDS and REMOVES are applied/planned. VERIFY: full (every desired holder's email searched) \
                 or incremental. Details of one run: history --run ID\n"
        }
    }
}

/// One run with its actions, pending emails and approvals.
pub fn render_run_detail(
    run: &RunRecord,
    actions: &[ActionRow],
    pending: &[PendingRow],
    approvals: &[ApprovalRow],
    format: Format,
) -> String {
    match format {
        Format::Json => {
            let v = serde_json::json!({
                "run": run, "actions": actions, "pending": pending, "approvals": approvals
            });
            serde_json::to_string_pretty(&v).expect("serialisable") + "\n"
        }
        Format::Csv => table::csv(
            &[
                "run_id",
                "kind",
                "email",
                "user_id",
                "role",
                "action",
                "outcome",
                "http_status",
                "detail",
            ],
            actions
                .iter()
                .map(|a| {
                    vec![
                        run.id.to_string(),
                        "action".into(),
                        a.email.clone().unwrap_or_default(),
                        a.user_id.to_string(),
                        a.role.clone(),
                        a.action.to_string(),
                        a.outcome.to_string(),
                        a.http_status.map(|s| s.to_string()).unwrap_or_default(),
                        a.detail.clone().unwrap_or_default(),
                    ]
                })
                .chain(pending.iter().map(|p| {
                    vec![
                        run.id.to_string(),
                        "pending".into(),
                        p.email.clone(),
                        p.user_id.map(|u| u.to_string()).unwrap_or_default(),
                        String::new(),
                        String::new(),
                        p.reason.clone(),
                        String::new(),
                        p.detail.clone().unwrap_or_default(),
                    ]
                })),
        ),
        Format::Table => {
            let mut out = render_runs(std::slice::from_ref(run), approvals, Format::Table);
            if let Some(e) = &run.error {
                let _ = writeln!(out, "\nError: {}", escaped(e));
            }
            for a in approvals {
                let _ = writeln!(
                    out,
                    "\nApproval {}: {} by {} at {} (digest {}, {} actions): {}{}{}",
                    a.id,
                    if a.kind == "saved_plan" {
                        "saved plan"
                    } else {
                        "approve"
                    },
                    escaped(&a.approved_by),
                    a.approved_at,
                    studio_role_sync_engine::digest::short(&a.digest),
                    a.actions,
                    a.status,
                    a.used_by_run
                        .map(|r| format!(" by run {r}"))
                        .unwrap_or_default(),
                    a.detail
                        .as_deref()
                        .map(|d| format!(": {}", escaped(d)))
                        .unwrap_or_default()
                );
            }
            let approvable = run
                .error
                .as_deref()
                .is_some_and(|e| e.starts_with("safety guard:") && !e.contains("grants no role"));
            if run.status == RunStatus::Aborted
                && approvable
                && !approvals.iter().any(|a| a.run_id == Some(run.id))
            {
                let _ = writeln!(
                    out,
                    "\nIf these changes are right, let exactly them through: studio-role-sync approve {}",
                    run.id
                );
            }
            if actions.is_empty() {
                out.push_str("\nNo actions.\n");
            } else {
                out.push('\n');
                out += &table::table(
                    &[
                        "ROLE", "ACTION", "EMAIL", "USER", "OUTCOME", "HTTP", "DETAIL",
                    ],
                    actions.iter().map(|a| {
                        vec![
                            a.role.clone(),
                            a.action.to_string(),
                            a.email.clone().unwrap_or_default(),
                            a.user_id.to_string(),
                            a.outcome.to_string(),
                            a.http_status.map(|s| s.to_string()).unwrap_or_default(),
                            a.detail
                                .as_deref()
                                .map(|d| table::truncate(d, 70))
                                .unwrap_or_default(),
                        ]
                    }),
                );
            }
            if !pending.is_empty() {
                out.push('\n');
                out += &table::table(
                    &["LEFT ALONE", "REASON", "DETAIL"],
                    pending.iter().map(|p| {
                        vec![
                            p.email.clone(),
                            p.reason.clone(),
                            p.detail.clone().unwrap_or_default(),
                        ]
                    }),
                );
            }
            out
        }
    }
}
