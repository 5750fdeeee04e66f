//! One person's audit trail for `history --email`: a table for people (one line per entry,
//! a left-alone streak as "runs A–B"), JSON (the engine's entries, `kind` tagged) or CSV (one
//! row per entry, the columns of both kinds side by side).

use super::table;
use super::Format;
use studio_role_sync_engine::history::{TrailEntry, TrailEvent};

const CSV_COLUMNS: &[&str] = &[
    "run_id",
    "started_at",
    "trigger",
    "dry_run",
    "run_status",
    "kind",
    "role",
    "action",
    "outcome",
    "user_id",
    "http_status",
    "reason",
    "first_run_id",
    "first_started_at",
    "runs",
    "detail",
];

/// The trail of `email`, newest first.
pub fn render_trail(email: &str, entries: &[TrailEntry], format: Format) -> String {
    match format {
        Format::Json => {
            let v = serde_json::json!({ "email": email, "entries": entries });
            serde_json::to_string_pretty(&v).expect("serialisable") + "\n"
        }
        Format::Csv => table::csv(CSV_COLUMNS, entries.iter().map(csv_row)),
        Format::Table => {
            if entries.is_empty() {
                return format!("No action and no left-alone run recorded for {email}.\n");
            }
            table::table(
                &[
                    "RUN",
                    "STARTED (UTC)",
                    "TRIGGER",
                    "MODE",
                    "STATUS",
                    "WHAT",
                    "WHY",
                    "OUTCOME",
                    "HTTP",
                    "DETAIL",
                ],
                entries.iter().map(table_row),
            ) + "WHAT is an action (role and add/remove), or \"left alone\" with the reason; \
                   RUN A-B: every run from A to B that read Studio left it alone (their \
                   trigger, mode and status differ, so none is shown).\n"
        }
    }
}

/// The columns the console's person page shows too (one rendering, in the engine).
fn table_row(e: &TrailEntry) -> Vec<String> {
    let c = e.columns(false);
    vec![
        c.runs,
        c.when,
        c.trigger,
        c.mode.into(),
        c.status,
        c.what,
        c.why,
        c.outcome,
        c.http,
        table::truncate(&c.detail, 70),
    ]
}

fn csv_row(e: &TrailEntry) -> Vec<String> {
    let opt = |v: Option<i64>| v.map(|n| n.to_string()).unwrap_or_default();
    let mut row = vec![
        e.run_id.to_string(),
        e.started_at.clone(),
        e.trigger.clone(),
        (e.dry_run as u8).to_string(),
        e.run_status.to_string(),
        e.kind().to_string(),
    ];
    match &e.event {
        TrailEvent::Action {
            role,
            action,
            outcome,
            user_id,
            http_status,
            detail,
            ..
        } => row.extend([
            role.clone(),
            action.to_string(),
            outcome.to_string(),
            user_id.to_string(),
            opt(*http_status),
            String::new(),
            String::new(),
            String::new(),
            String::new(),
            detail.clone().unwrap_or_default(),
        ]),
        TrailEvent::LeftAlone {
            reason,
            detail,
            user_id,
            first_run_id,
            first_started_at,
            runs,
        } => row.extend([
            String::new(),
            String::new(),
            String::new(),
            opt(*user_id),
            String::new(),
            reason.clone(),
            first_run_id.to_string(),
            first_started_at.clone(),
            runs.to_string(),
            detail.clone().unwrap_or_default(),
        ]),
    }
    row
}

#[cfg(test)]
mod tests {
    use super::*;
    use studio_role_sync_engine::change::{ChangeKind, Outcome};
    use studio_role_sync_engine::run_status::RunStatus;

    fn entries() -> Vec<TrailEntry> {
        vec![
            TrailEntry {
                run_id: 9,
                started_at: "2025-03-02T10:00:00.000Z".into(),
                trigger: "schedule".into(),
                dry_run: false,
                run_status: RunStatus::Succeeded,
                event: TrailEvent::Action {
                    role: "Admin".into(),
                    action: ChangeKind::Add,
                    outcome: Outcome::Applied,
                    user_id: 7,
                    http_status: Some(200),
                    detail: None,
                    source: None,
                    until: None,
                    reason: None,
                },
            },
            TrailEntry {
                run_id: 8,
                started_at: "2025-03-02T09:45:00.000Z".into(),
                trigger: "schedule".into(),
                dry_run: false,
                run_status: RunStatus::Succeeded,
                event: TrailEvent::LeftAlone {
                    reason: "not_in_studio".into(),
                    detail: Some("no Studio user has this email".into()),
                    user_id: None,
                    first_run_id: 2,
                    first_started_at: "2025-03-01T10:00:00.000Z".into(),
                    runs: 7,
                },
            },
        ]
    }

    #[test]
    fn a_streak_reads_as_a_range_of_runs() {
        let t = render_trail("ada@x.edu", &entries(), Format::Table);
        let lines: Vec<&str> = t.lines().collect();
        assert!(lines[1].starts_with("9  "), "{t}");
        assert!(lines[1].contains("add Admin") && lines[1].contains("applied  200"));
        assert!(lines[2].starts_with("2-8  2025-03-01 10:00:00 to 2025-03-02 09:45:00"));
        assert!(
            lines[2]
                .split_whitespace()
                .collect::<Vec<_>>()
                .join(" ")
                .contains("09:45:00 - - - left alone: no Studio account yet")
                && lines[2].contains("7 runs"),
            "{t}"
        );
    }

    #[test]
    fn json_and_csv_carry_every_field() {
        let j: serde_json::Value =
            serde_json::from_str(&render_trail("ada@x.edu", &entries(), Format::Json)).unwrap();
        assert_eq!(j["email"], "ada@x.edu");
        assert_eq!(j["entries"][0]["kind"], "action");
        assert_eq!(j["entries"][0]["http_status"], 200);
        assert_eq!(j["entries"][1]["kind"], "left_alone");
        assert_eq!(j["entries"][1]["first_run_id"], 2);
        let csv = render_trail("ada@x.edu", &entries(), Format::Csv);
        let lines: Vec<&str> = csv.lines().collect();
        assert_eq!(lines[0].split(',').count(), CSV_COLUMNS.len());
        assert_eq!(
            lines[2],
            "8,2025-03-02T09:45:00.000Z,schedule,0,succeeded,left_alone,,,,,,not_in_studio,2,\
             2025-03-01T10:00:00.000Z,7,no Studio user has this email"
        );
    }

    #[test]
    fn an_empty_trail_says_so() {
        let t = render_trail("ada@x.edu", &[], Format::Table);
        assert_eq!(
            t,
            "No action and no left-alone run recorded for ada@x.edu.\n"
        );
    }
}
