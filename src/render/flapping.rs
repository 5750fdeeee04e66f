//! The flapping changes of a run, under its plan: the changes the tool made in every recent
//! run because something in Studio keeps undoing them, with the likely cause, so the person
//! reading `plan` or `apply` learns of the fight without reading the history.

use std::fmt::Write;
use studio_role_sync_engine::change::ChangeKind;
use studio_role_sync_engine::config::Config;
use studio_role_sync_engine::email_address::escaped;
use studio_role_sync_engine::run_report::RunReport;

/// Empty when nothing flaps.
pub fn render_flapping(report: &RunReport, config: &Config) -> String {
    let mut out = String::new();
    if report.flapping.is_empty() {
        return out;
    }
    let runs = config.flapping.after_runs;
    let _ = writeln!(
        out,
        "\nFlapping: applied in {runs} consecutive runs, and undone in Studio each time{}:",
        if report.flapping_left_alone {
            " (left alone: flapping.reapply is false)"
        } else {
            ""
        }
    );
    for a in &report.flapping {
        let sign = match a.kind {
            ChangeKind::Add => '+',
            ChangeKind::Remove => '-',
        };
        let _ = writeln!(
            out,
            "    ! {sign} {:<38} role {:<16} flapping",
            escaped(a.email.as_deref().unwrap_or("(no email)")),
            config.roles.managed.name(a.role)
        );
    }
    let _ = writeln!(
        out,
        "Something else in Studio keeps changing these back. Most often a Canvas LMS admin gets \
         Studio's Admin role by inheritance: list that person in the roles file, or take away \
         the Canvas admin role (docs/operations.md, \"Flapping\")."
    );
    out
}

/// The flapping actions of a recorded run (`history --run ID`), as `(email, role, action)`.
pub fn render_flapping_rows(rows: &[(Option<String>, String, ChangeKind)]) -> String {
    let mut out = String::new();
    if rows.is_empty() {
        return out;
    }
    let _ = writeln!(
        out,
        "\nFlapping in this run (made in every recent run, undone in Studio each time):"
    );
    for (email, role, action) in rows {
        let _ = writeln!(
            out,
            "    ! {action:<6} {:<38} role {role}",
            escaped(email.as_deref().unwrap_or("(no email)"))
        );
    }
    out
}
