//! The plan as a diff in the style of `terraform plan`, and the end of an `apply`: what was
//! done and where to look. Both are read by a person deciding whether to go on, so the plan
//! is grouped by role and the outcome names the failed actions and the command for details.
//! Every string from outside (emails, details, errors) is [`escaped`]: an email ending in
//! `ESC[8m` must not hide the rest of the plan, nor a newline draw a line of it.

use std::fmt::Write;
use studio_role_sync_engine::change::{ChangeKind, Outcome};
use studio_role_sync_engine::email_address::escaped;
use studio_role_sync_engine::plan::{GuardTrip, PendingReason, Plan};
use studio_role_sync_engine::roles::ManagedRoles;
use studio_role_sync_engine::run_report::RunReport;

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
                ChangeKind::Add => '+',
                ChangeKind::Remove => '-',
            };
            let email = escaped(a.email.as_deref().unwrap_or("(no email)"));
            let from = a
                .email
                .as_deref()
                .map(|e| plan.sources_of(e, a.role))
                .unwrap_or_default();
            let ended = a
                .email
                .as_deref()
                .filter(|_| a.kind == ChangeKind::Remove)
                .and_then(|e| plan.ended_of(e, a.role));
            let from = if let Some((until, reason)) = ended {
                let reason = reason
                    .map(|r| format!("; {}", escaped(&r)))
                    .unwrap_or_default();
                format!("  its grant ended (until {until}{reason})")
            } else if from.is_empty() {
                String::new()
            } else {
                let names: Vec<String> = from
                    .iter()
                    .map(|s| escaped(s.as_str()).into_owned())
                    .collect();
                format!("  from {}", names.join(", "))
            };
            let _ = writeln!(out, "    {sign} {email:<40} user {}{from}", a.user_id);
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
                PendingReason::NoEmailInDirectory => "no email in directory",
            };
            let _ = writeln!(
                out,
                "    ~ {:<40} {mark}: {}",
                escaped(&p.email),
                escaped(&p.detail)
            );
        }
    }
    if !plan.waiting.is_empty() {
        let _ = writeln!(
            out,
            "\nMissing from the sources, kept until safety.remove_after has passed:"
        );
        for w in &plan.waiting {
            let email = w.action.email.as_deref().unwrap_or("(no email)");
            let role = managed.name(w.action.role);
            let _ = writeln!(out, "    ~ {email:<40} {role}: {}", w.left);
        }
    }
    if !plan.ending.is_empty() {
        let _ = writeln!(
            out,
            "\nGrants that end soon (removed after their last day; notify.grant_expiring_days):"
        );
        for e in &plan.ending {
            let role = managed.name(e.role);
            let reason = e
                .reason
                .as_deref()
                .map(|r| format!("; {}", escaped(r)))
                .unwrap_or_default();
            let _ = writeln!(
                out,
                "    ~ {:<40} {role}: {} (until {}{reason})",
                escaped(&e.email),
                e.when(),
                e.until
            );
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
            "\nSafety guard: {}.\nA run would abort before sending anything (exit 3).",
            escaped(&g.to_string())
        );
    }
    out
}

/// After a `plan` a guard stopped: how to let exactly these changes through, when an
/// approval can (never for the empty-desired-state refusal).
pub fn render_guard_help(report: &RunReport, saving: bool) -> String {
    match &report.guard {
        Some(g) if g.approvable() => format!(
            "If these changes are right, let exactly them through:\n  \
             studio-role-sync approve {}        (the daemon, or the next apply, sends them if the plan is still the same)\n{}",
            report.record.id,
            if saving {
                ""
            } else {
                "  studio-role-sync plan --out FILE, then apply FILE   (without a daemon)\n"
            }
        ),
        _ => String::new(),
    }
}

/// The end of an `apply`: what was done, and where to look.
pub fn render_run(report: &RunReport) -> String {
    let r = &report.record;
    let mut out = String::new();
    if let Some(a) = &report.approval {
        match &a.lifted {
            Some(g) => {
                let _ = writeln!(out, "Approved: {} lifted the guard ({g}).", a.approved);
            }
            None => {
                let _ = writeln!(out, "Approved: {} (no guard tripped).", a.approved);
            }
        }
    }
    if let Some(e) = &report.error {
        let _ = writeln!(out, "Run {} failed: {}", r.id, escaped(&e.to_string()));
    } else if let Some(g) = &report.guard {
        let _ = writeln!(
            out,
            "Run {} aborted by a safety guard, nothing was sent: {}",
            r.id,
            escaped(&g.to_string())
        );
        if g.approvable() {
            let _ = writeln!(
                out,
                "If these changes are right, let exactly them through: studio-role-sync approve {}",
                r.id
            );
        }
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
            o.change.kind.as_str(),
            escaped(o.change.email.as_deref().unwrap_or("-")),
            o.change.user_id,
            o.http_status
                .map_or("no answer".to_string(), |s| s.to_string()),
            escaped(o.detail.as_deref().unwrap_or(""))
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
