//! An aborted run, the risk before the remedy: per role, how many held it when the run read
//! Studio and how many would lose it; then the remedies in the order they usually apply
//! (restore the input first, then approve), with the `approve` command only where `approve`
//! would accept it; and what became of the run afterwards (approved and applied, refused,
//! superseded by a later run).
//!
//! The same rules as `approve` itself decide whether the command is shown
//! ([`GuardKind::approvable`]), so the page never suggests a command that is then refused.

use crate::views::{account_label, person_href, run_href, short_time};
use std::collections::HashMap;
use std::path::Path;
use studio_role_sync_engine::change::ChangeKind;
use studio_role_sync_engine::config::DEFAULT_CONFIG_PATH;
use studio_role_sync_engine::history::{ActionRow, ApprovalRow, RunRecord};
use studio_role_sync_engine::plan::GuardKind;
use studio_role_sync_engine::run_status::RunStatus;

/// `studio-role-sync`, with `--config PATH` when `config` is not the default path.
pub fn command(config: Option<&Path>) -> String {
    match config {
        Some(p) if p != Path::new(DEFAULT_CONFIG_PATH) => {
            format!(
                "studio-role-sync --config {}",
                shell_quote(&p.to_string_lossy())
            )
        }
        _ => "studio-role-sync".into(),
    }
}

/// `s` as one shell word: as is when plainly safe, else in single quotes.
fn shell_quote(s: &str) -> String {
    let plain = !s.is_empty()
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || "/._-+:=@,".contains(c));
    if plain {
        s.to_string()
    } else {
        format!("'{}'", s.replace('\'', "'\\''"))
    }
}

/// One managed role's risk in a run a guard stopped.
pub struct RoleRisk {
    pub role: String,
    /// Holders when the run read Studio; empty for runs recorded before it was kept.
    pub holders: String,
    pub removals: usize,
    /// `80%` of the holders; empty when the holders are unknown.
    pub share: String,
    /// The people who would lose it, each once: the email (linked to their page), or for an
    /// account without one, `Name (Studio user 7)`.
    pub people: Vec<(String, Option<String>)>,
}

/// The planned removals by role, beside each role's holders (`holders`: from the history;
/// `names`: the names Studio gave the accounts).
pub fn risks(
    actions: &[ActionRow],
    holders: &[(String, usize)],
    names: &HashMap<i64, String>,
) -> Vec<RoleRisk> {
    let mut out: Vec<RoleRisk> = Vec::new();
    for a in actions.iter().filter(|a| a.action == ChangeKind::Remove) {
        let email = a
            .email
            .clone()
            .unwrap_or_else(|| account_label(a.user_id, names.get(&a.user_id).map(String::as_str)));
        let person = (email, a.email.as_deref().map(person_href));
        match out.iter_mut().find(|r| r.role == a.role) {
            Some(r) => {
                r.removals += 1;
                r.people.push(person);
            }
            None => out.push(RoleRisk {
                role: a.role.clone(),
                holders: String::new(),
                removals: 1,
                share: String::new(),
                people: vec![person],
            }),
        }
    }
    for r in &mut out {
        if let Some((_, n)) = holders.iter().find(|(role, _)| *role == r.role) {
            r.holders = n.to_string();
            if *n > 0 {
                r.share = format!("{:.0}%", r.removals as f64 * 100.0 / *n as f64);
            }
        }
    }
    out
}

/// What the page says a stopped run's state is now, and whether to offer `approve`.
pub struct Afterwards {
    /// `ok`, `warn` or `bad`.
    pub state: &'static str,
    pub text: String,
    pub href: Option<String>,
    /// The full `approve` command, when `approve` would accept it now.
    pub approve: Option<String>,
    /// Why there is no approve command, when a guard stopped the run but it cannot be approved.
    pub not_approvable: Option<String>,
}

/// What became of aborted run `run` (stopped by `guard`), given its approval and the real
/// runs after it (oldest first); `command` is [`command`]'s result.
pub fn afterwards(
    run: &RunRecord,
    guard: Option<&str>,
    approval: Option<&ApprovalRow>,
    later: &[RunRecord],
    command: &str,
) -> Afterwards {
    let mut a = Afterwards {
        state: "bad",
        text: "Nothing has happened since: the guard still stops this plan.".into(),
        href: None,
        approve: None,
        not_approvable: None,
    };
    if let Some(ap) = approval {
        let by = format!(
            "approved by {} at {}",
            ap.approved_by,
            short_time(&ap.approved_at)
        );
        (a.state, a.text) = match (ap.status.as_str(), ap.used_by_run) {
            ("applied", Some(used)) => ("ok", format!("{by}; applied in run {used}.")),
            ("pending", _) => ("warn", format!("{by}; waiting for the next run.")),
            (status, Some(used)) => (
                "warn",
                format!(
                    "{by}; {status} by run {used}{}",
                    ap.detail
                        .as_deref()
                        .map(|d| format!(": {d}"))
                        .unwrap_or_else(|| ".".into())
                ),
            ),
            (status, None) => ("warn", format!("{by}; {status}.")),
        };
        a.href = ap.used_by_run.map(run_href);
        return a;
    }
    if let Some(next) = later
        .iter()
        .find(|r| matches!(r.status, RunStatus::Succeeded | RunStatus::Partial))
    {
        let changes = next.adds_planned + next.removes_planned;
        a.state = "ok";
        a.text = if changes == 0 {
            format!("Superseded by run {}: nothing to do.", next.id)
        } else {
            format!(
                "Superseded by run {}, which planned {changes} other change(s).",
                next.id
            )
        };
        a.href = Some(run_href(next.id));
        return a;
    }
    if let Some(newest) = later.iter().rev().find(|r| r.status == RunStatus::Aborted) {
        a.text = format!(
            "Run {} was stopped by a guard too: act on the newest stopped run.",
            newest.id
        );
        a.href = Some(run_href(newest.id));
        return a;
    }
    match guard {
        Some(kind) if GuardKind::parse(kind).is_some_and(GuardKind::approvable) && !run.dry_run => {
            a.approve = Some(format!("{command} approve {} --by NAME", run.id));
        }
        Some("empty_desired") => {
            a.not_approvable = Some(
                "An approval never lifts this guard: an empty roles file and a failed query look \
                 the same. Restore the roles file or fix the source; the next run then goes \
                 through by itself."
                    .into(),
            );
        }
        _ if run.dry_run => {
            a.not_approvable = Some(
                "This was a dry run (`plan`): nothing is approved from it. Run `apply`, or let \
                 the daemon run, and approve that run if the plan is intended."
                    .into(),
            );
        }
        _ => {
            a.not_approvable = Some(
                "Only the removal guards (safety.max_removals, max_removal_ratio, per role) can \
                 be approved; restore the input so the plan changes."
                    .into(),
            );
        }
    }
    a
}

/// What a run says of the approval it used, if it sent an approved or saved plan.
pub fn used_approval(run_id: i64, approvals: &[ApprovalRow]) -> Option<(String, Option<String>)> {
    let ap = approvals
        .iter()
        .find(|a| a.used_by_run == Some(run_id) && a.status == "applied")?;
    let when = short_time(&ap.approved_at);
    Some(match (ap.kind.as_str(), ap.run_id) {
        ("approve", Some(of)) => (
            format!(
                "This run sent an approved plan: run {of}'s plan, approved by {} at {when}.",
                ap.approved_by
            ),
            Some(run_href(of)),
        ),
        _ => (
            format!(
                "This run sent a saved plan{}, approved by {} at {when}.",
                ap.plan_file
                    .as_deref()
                    .map(|f| format!(" ({f})"))
                    .unwrap_or_default(),
                ap.approved_by
            ),
            None,
        ),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(id: i64, status: &str, changes: i64) -> RunRecord {
        RunRecord {
            id,
            status: RunStatus::parse(status).expect("a status"),
            adds_planned: changes,
            ..Default::default()
        }
    }

    #[test]
    fn the_command_names_a_config_that_is_not_the_default() {
        assert_eq!(command(None), "studio-role-sync");
        assert_eq!(
            command(Some(Path::new(DEFAULT_CONFIG_PATH))),
            "studio-role-sync"
        );
        assert_eq!(
            command(Some(Path::new("/etc/srs/it's.yaml"))),
            "studio-role-sync --config '/etc/srs/it'\\''s.yaml'"
        );
    }

    #[test]
    fn approve_is_offered_only_where_it_works() {
        let aborted = run(5, "aborted", 0);
        let a = afterwards(&aborted, Some("max_removal_ratio"), None, &[], "srs");
        assert_eq!(a.approve.as_deref(), Some("srs approve 5 --by NAME"));
        let a = afterwards(&aborted, Some("empty_desired"), None, &[], "srs");
        assert!(a.approve.is_none());
        assert!(a.not_approvable.unwrap().contains("Restore the roles file"));
        let later = [run(6, "succeeded", 0)];
        let a = afterwards(&aborted, Some("max_removals"), None, &later, "srs");
        assert!(a.approve.is_none());
        assert_eq!(a.text, "Superseded by run 6: nothing to do.");
        let again = [run(6, "failed", 0), run(7, "aborted", 0)];
        let a = afterwards(&aborted, Some("max_removals"), None, &again, "srs");
        assert!(a.approve.is_none() && a.text.starts_with("Run 7 was stopped"));
    }

    #[test]
    fn risks_list_each_removal_once_by_role() {
        let remove = |email: &str, role: &str| ActionRow {
            email: (!email.is_empty()).then(|| email.into()),
            user_id: 1,
            role: role.into(),
            action: ChangeKind::Remove,
            outcome: studio_role_sync_engine::change::Outcome::Skipped,
            http_status: None,
            detail: None,
            source: None,
            until: None,
            reason: None,
        };
        let r = risks(
            &[
                remove("a@x.edu", "Admin"),
                remove("b@x.edu", "Admin"),
                remove("c@x.edu", "Editor"),
                remove("", "Editor"),
            ],
            &[("Admin".into(), 2), ("Editor".into(), 4)],
            &HashMap::from([(1, "Ada Lovelace".to_string())]),
        );
        assert_eq!(
            (r[0].role.as_str(), r[0].removals, r[0].share.as_str()),
            ("Admin", 2, "100%")
        );
        assert_eq!((r[1].holders.as_str(), r[1].share.as_str()), ("4", "50%"));
        assert_eq!(
            r[1].people[1],
            ("Ada Lovelace (Studio user 1)".to_string(), None),
            "an account without an email, by name and id"
        );
    }
}
