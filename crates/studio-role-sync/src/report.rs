//! What people read: the plan as a diff, run summaries, the history as a table, JSON or CSV,
//! and the export of current holders as a roles file.
//!
//! Pure formatting: every function takes data and returns text, so the commands stay thin and
//! the output is easy to test.

use std::collections::BTreeMap;
use std::fmt::Write;
use studio_role_sync_engine::apply::Outcome;
use studio_role_sync_engine::history::{ActionRow, PendingRow, RunRecord};
use studio_role_sync_engine::plan::{ActionKind, GuardTrip, PendingReason, Plan};
use studio_role_sync_engine::reconcile::RunReport;
use studio_role_sync_engine::roles::ManagedRoles;

/// The plan, grouped by role, in the style of `terraform plan`.
pub fn render_plan(plan: &Plan, managed: &ManagedRoles, guard: Option<&GuardTrip>) -> String {
    let mut out = String::new();
    if plan.is_empty() {
        out.push_str("No changes. Studio's managed roles match the desired state.\n");
    } else {
        let _ = writeln!(out, "Studio role changes:");
        let mut current_role = None;
        for a in &plan.actions {
            if current_role != Some(a.role) {
                current_role = Some(a.role);
                let _ = writeln!(out, "\n  role {}", managed.name(a.role));
            }
            let sign = match a.kind {
                ActionKind::Add => '+',
                ActionKind::Remove => '-',
            };
            let email = a.email.as_deref().unwrap_or("(no email)");
            let _ = writeln!(out, "    {sign} {email:<40} user {}", a.user_id);
        }
    }
    let reported: Vec<_> = plan.pending.iter().collect();
    if !reported.is_empty() {
        let _ = writeln!(out, "\nLeft alone this run:");
        for p in reported {
            let mark = match p.reason {
                PendingReason::NotInStudio => "pending",
                PendingReason::Ambiguous => "ambiguous",
                PendingReason::NoEmail => "no email",
                PendingReason::Protected => "protected",
                PendingReason::Exclusive => "exclusive",
            };
            let _ = writeln!(out, "    ~ {:<40} {mark}: {}", p.email, p.detail);
        }
    }
    let _ = writeln!(
        out,
        "\nPlan: {} to add, {} to remove, {} pending.",
        plan.adds(),
        plan.removes(),
        plan.pending_emails()
    );
    if let Some(g) = guard {
        let _ = writeln!(
            out,
            "\nSafety guard: {g}.\nA run would abort before sending anything (exit 3)."
        );
    }
    out
}

/// The end of an `apply`: what was done, and where to look.
pub fn render_run(report: &RunReport) -> String {
    let r = &report.record;
    let mut out = String::new();
    if let Some(e) = &report.error {
        let _ = writeln!(out, "Run {} failed: {e}", r.id);
    } else if let Some(g) = &report.guard {
        let _ = writeln!(
            out,
            "Run {} aborted by a safety guard, nothing was sent: {g}",
            r.id
        );
    } else {
        let _ = writeln!(
            out,
            "Run {} {}: {} added, {} removed, {} failed, {} pending ({} API requests).",
            r.id, r.status, r.adds_applied, r.removes_applied, r.failed, r.pending, r.api_requests
        );
    }
    let failures: Vec<_> = report
        .outcomes
        .iter()
        .filter(|o| o.outcome == Outcome::Failed)
        .collect();
    for o in failures.iter().take(20) {
        let _ = writeln!(
            out,
            "  failed: {} {} user {} ({}): {}",
            o.action.kind.as_str(),
            o.action.email.as_deref().unwrap_or("-"),
            o.action.user_id,
            o.http_status
                .map_or("no answer".to_string(), |s| s.to_string()),
            o.detail.as_deref().unwrap_or("")
        );
    }
    if failures.len() > 20 {
        let _ = writeln!(out, "  ... and {} more failed actions", failures.len() - 20);
    }
    if r.failed > 0 || report.error.is_some() {
        let _ = writeln!(out, "Details: studio-role-sync history --run {}", r.id);
    }
    out
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    Table,
    Json,
    Csv,
}

/// The runs list.
pub fn render_runs(runs: &[RunRecord], format: Format) -> String {
    match format {
        Format::Json => serde_json::to_string_pretty(runs).expect("serialisable") + "\n",
        Format::Csv => csv(
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
            ],
            runs.iter().map(|r| {
                vec![
                    r.id.to_string(),
                    r.started_at.clone(),
                    r.finished_at.clone().unwrap_or_default(),
                    r.trigger.clone(),
                    (r.dry_run as u8).to_string(),
                    r.status.clone(),
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
                ]
            }),
        ),
        Format::Table => {
            if runs.is_empty() {
                return "No runs recorded yet.\n".into();
            }
            table(
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
                        r.status.clone(),
                        format!("{}/{}", r.adds_applied, r.adds_planned),
                        format!("{}/{}", r.removes_applied, r.removes_planned),
                        r.failed.to_string(),
                        r.pending.to_string(),
                        r.api_requests.to_string(),
                        r.verification.clone().unwrap_or_else(|| "-".into()),
                        r.error
                            .as_deref()
                            .map(|e| truncate(e, 60))
                            .unwrap_or_default(),
                    ]
                }),
            ) + "ADDS and REMOVES are applied/planned. VERIFY: full (every desired holder's email searched) \
                 or incremental. Details of one run: history --run ID\n"
        }
    }
}

/// One run with its actions and pending emails.
pub fn render_run_detail(
    run: &RunRecord,
    actions: &[ActionRow],
    pending: &[PendingRow],
    format: Format,
) -> String {
    match format {
        Format::Json => {
            let v = serde_json::json!({ "run": run, "actions": actions, "pending": pending });
            serde_json::to_string_pretty(&v).expect("serialisable") + "\n"
        }
        Format::Csv => csv(
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
                        a.action.clone(),
                        a.outcome.clone(),
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
            let mut out = render_runs(std::slice::from_ref(run), Format::Table);
            if let Some(e) = &run.error {
                let _ = writeln!(out, "\nError: {e}");
            }
            if actions.is_empty() {
                out.push_str("\nNo actions.\n");
            } else {
                out.push('\n');
                out += &table(
                    &[
                        "ROLE", "ACTION", "EMAIL", "USER", "OUTCOME", "HTTP", "DETAIL",
                    ],
                    actions.iter().map(|a| {
                        vec![
                            a.role.clone(),
                            a.action.clone(),
                            a.email.clone().unwrap_or_default(),
                            a.user_id.to_string(),
                            a.outcome.clone(),
                            a.http_status.map(|s| s.to_string()).unwrap_or_default(),
                            a.detail
                                .as_deref()
                                .map(|d| truncate(d, 70))
                                .unwrap_or_default(),
                        ]
                    }),
                );
            }
            if !pending.is_empty() {
                out.push('\n');
                out += &table(
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

/// The current holders of the managed roles as a roles file `validate` accepts. Holders
/// without an email cannot be written (they are listed in a comment).
pub fn render_export(
    holders: &[studio_role_sync_engine::current::StudioUser],
    managed: &ManagedRoles,
    base_url: &str,
) -> String {
    let mut by_email: BTreeMap<String, Vec<usize>> = BTreeMap::new();
    let mut no_email = Vec::new();
    for u in holders {
        let roles = managed.set_of(u.role_names.iter().map(String::as_str));
        match u
            .email
            .as_deref()
            .map(studio_role_sync_engine::desired::normalize_email)
            .filter(|e| !e.is_empty())
        {
            Some(e) => {
                let entry = by_email.entry(e).or_default();
                for r in roles.iter() {
                    if !entry.contains(&r) {
                        entry.push(r);
                    }
                }
            }
            None => no_email.push(u.id),
        }
    }
    let mut out = String::new();
    let _ = writeln!(
        out,
        "# Holders of the managed roles {managed} in {base_url},"
    );
    let _ = writeln!(
        out,
        "# exported by studio-role-sync at {}.",
        studio_role_sync_engine::history::now()
    );
    if !no_email.is_empty() {
        no_email.sort_unstable();
        no_email.dedup();
        let ids: Vec<String> = no_email.iter().map(u64::to_string).collect();
        let _ = writeln!(
            out,
            "# Not listed (no email, never touched by a sync): users {}",
            ids.join(", ")
        );
    }
    if by_email.is_empty() {
        out.push_str("users: {}\n");
        return out;
    }
    out.push_str("users:\n");
    for (email, mut roles) in by_email {
        roles.sort_unstable();
        let names: Vec<&str> = roles.iter().map(|r| managed.name(*r)).collect();
        let _ = writeln!(out, "  {}: [{}]", yaml_key(&email), names.join(", "));
    }
    out
}

/// Quotes a YAML key when it needs it.
fn yaml_key(s: &str) -> String {
    if s.chars()
        .all(|c| c.is_ascii_alphanumeric() || "@._-+".contains(c))
        && !s.starts_with(['-', '.'])
    {
        s.to_string()
    } else {
        serde_json::to_string(s).expect("string")
    }
}

fn truncate(s: &str, max: usize) -> String {
    let s = s.replace('\n', " ");
    if s.chars().count() <= max {
        s
    } else {
        s.chars().take(max - 1).collect::<String>() + "…"
    }
}

fn table(headers: &[&str], rows: impl Iterator<Item = Vec<String>>) -> String {
    let rows: Vec<Vec<String>> = rows.collect();
    let mut widths: Vec<usize> = headers.iter().map(|h| h.len()).collect();
    for row in &rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let mut out = String::new();
    let line = |out: &mut String, cells: Vec<&str>| {
        let mut l = String::new();
        for (i, (cell, w)) in cells.iter().zip(&widths).enumerate() {
            if i + 1 == cells.len() {
                l.push_str(cell);
            } else {
                let _ = write!(l, "{cell:<w$}  ", w = *w);
            }
        }
        out.push_str(l.trim_end());
        out.push('\n');
    };
    line(&mut out, headers.to_vec());
    for row in &rows {
        line(&mut out, row.iter().map(String::as_str).collect());
    }
    out
}

fn csv(headers: &[&str], rows: impl Iterator<Item = Vec<String>>) -> String {
    let field = |s: &str| {
        if s.contains([',', '"', '\n', '\r']) {
            format!("\"{}\"", s.replace('"', "\"\""))
        } else {
            s.to_string()
        }
    };
    let mut out = headers.join(",") + "\n";
    for row in rows {
        out += &row.iter().map(|c| field(c)).collect::<Vec<_>>().join(",");
        out.push('\n');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn csv_quotes() {
        let s = csv(
            &["a", "b"],
            vec![vec!["x,y".to_string(), "say \"hi\"".to_string()]].into_iter(),
        );
        assert_eq!(s, "a,b\n\"x,y\",\"say \"\"hi\"\"\"\n");
    }

    #[test]
    fn export_round_trips_through_validation() {
        let managed = ManagedRoles::new(vec!["Admin".into(), "CaptionEditor".into()]);
        let u = |id, email: Option<&str>, roles: &[&str]| {
            studio_role_sync_engine::current::StudioUser {
                id,
                full_name: None,
                email: email.map(Into::into),
                role_names: roles.iter().map(|r| r.to_string()).collect(),
            }
        };
        let text = render_export(
            &[
                u(1, Some("B@x.edu"), &["Admin", "Teacher"]),
                u(1, Some("B@x.edu"), &["Admin", "CaptionEditor"]),
                u(2, None, &["Admin"]),
            ],
            &managed,
            "https://x",
        );
        assert!(text.contains("users 2"), "{text}");
        let d = studio_role_sync_engine::desired::yaml::parse("export", &text, &managed).unwrap();
        assert_eq!(d.users["b@x.edu"].len(), 2);
    }
}
