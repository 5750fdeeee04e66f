//! Approvals as people read them: the list (`history --approvals`), and the short note a run
//! carries in `history` (its plan was approved; it used or refused an approval).

use super::{table, Format};
use studio_role_sync_engine::digest;
use studio_role_sync_engine::history::ApprovalRow;

/// What `approvals` say about run `run_id`, e.g. `approved by alice: applied in run 7`.
pub fn note(run_id: i64, approvals: &[ApprovalRow]) -> String {
    let mut parts = Vec::new();
    for a in approvals {
        if a.run_id == Some(run_id) && a.kind == "approve" {
            parts.push(match (a.status.as_str(), a.used_by_run) {
                ("pending", _) => format!("approved by {}: pending", a.approved_by),
                (status, Some(r)) => format!("approved by {}: {status} in run {r}", a.approved_by),
                (status, None) => format!("approved by {}: {status}", a.approved_by),
            });
        }
        if a.used_by_run == Some(run_id) {
            let what = match a.kind.as_str() {
                "saved_plan" => format!(
                    "saved plan {} ({})",
                    a.plan_file.as_deref().unwrap_or("-"),
                    a.approved_by
                ),
                _ => format!(
                    "approval {} of run {} ({})",
                    a.id,
                    a.run_id.unwrap_or_default(),
                    a.approved_by
                ),
            };
            parts.push(match a.status.as_str() {
                "applied" => format!("sent the {what}"),
                "superseded" => format!("the {what} superseded"),
                _ => format!("refused the {what}"),
            });
        }
    }
    parts.join("; ")
}

/// `history --approvals`.
pub fn render_approvals(rows: &[ApprovalRow], format: Format) -> String {
    let cells = |a: &ApprovalRow| {
        vec![
            a.id.to_string(),
            a.kind.clone(),
            a.run_id.map(|r| r.to_string()).unwrap_or_default(),
            a.approved_by.clone(),
            a.approved_at.clone(),
            a.digest.clone(),
            a.actions.to_string(),
            a.status.clone(),
            a.used_by_run.map(|r| r.to_string()).unwrap_or_default(),
            a.used_at.clone().unwrap_or_default(),
            a.plan_file.clone().unwrap_or_default(),
            a.detail.clone().unwrap_or_default(),
        ]
    };
    match format {
        Format::Json => serde_json::to_string_pretty(rows).expect("serialisable") + "\n",
        Format::Csv => table::csv(
            &[
                "id",
                "kind",
                "run_id",
                "approved_by",
                "approved_at",
                "digest",
                "actions",
                "status",
                "used_by_run",
                "used_at",
                "plan_file",
                "detail",
            ],
            rows.iter().map(cells),
        ),
        Format::Table => {
            if rows.is_empty() {
                return "No approvals recorded yet.\n".into();
            }
            table::table(
                &[
                    "ID", "KIND", "RUN", "BY", "AT (UTC)", "DIGEST", "ACTIONS", "STATUS",
                    "USED BY", "DETAIL",
                ],
                rows.iter().map(|a| {
                    vec![
                        a.id.to_string(),
                        a.kind.clone(),
                        a.run_id
                            .map(|r| r.to_string())
                            .unwrap_or_else(|| a.plan_file.clone().unwrap_or_default()),
                        a.approved_by.clone(),
                        a.approved_at
                            .get(..19)
                            .unwrap_or(&a.approved_at)
                            .replace('T', " "),
                        digest::short(&a.digest).to_string(),
                        a.actions.to_string(),
                        a.status.clone(),
                        a.used_by_run
                            .map(|r| format!("run {r}"))
                            .unwrap_or_default(),
                        a.detail
                            .as_deref()
                            .map(|d| table::truncate(d, 90))
                            .unwrap_or_default(),
                    ]
                }),
            ) + "RUN: the aborted run whose plan was approved. Details of a run: history --run ID\n"
        }
    }
}
