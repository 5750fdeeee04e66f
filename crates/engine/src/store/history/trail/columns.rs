//! One rendering of a trail entry for people: the columns that `history --email` prints and
//! the console's person page shows, so the two never say different things about the same run
//! (they once had two copies of the time format and the range dash, which differed).
//!
//! Everything is plain words: a left-alone reason is said as a person would ("no Studio
//! account yet", not `not_in_studio`; the JSON and CSV keep the code), and every action says
//! why the run planned it. A folded left-alone range claims only what is true of all its
//! runs: its trigger, mode and run status are not one value, so none is shown.

use super::{TrailEntry, TrailEvent};
use crate::model::change::ChangeKind;

/// A history time (`2025-03-01T10:00:00.123Z`) as people read it: `2025-03-01 10:00:00`
/// (UTC; pages and tables say so once, in a header or footer).
pub fn short_time(t: &str) -> String {
    t.get(..19).unwrap_or(t).replace('T', " ")
}

/// A left-alone reason (`run_pending.reason`) in plain words.
pub fn reason_words(reason: &str) -> &'static str {
    match reason {
        "not_in_studio" => "no Studio account yet",
        "ambiguous" => "several Studio accounts share this email",
        "no_email" => "Studio account without an email",
        "no_email_in_directory" => "no email in the directory",
        "protected" => "protected email (roles.protected)",
        "exclusive" => "excluded by a role it holds (roles.exclusive)",
        "flapping" => "flapping: changed back in Studio",
        "remove_after" => "missing from the sources: removal waits (safety.remove_after)",
        _ => "left alone",
    }
}

/// Why a run planned an action, in words. `source` is the sources that gave an added grant;
/// `flapping` whether the change undid one made in Studio behind the tool.
pub fn action_reason(action: ChangeKind, source: Option<&str>, flapping: bool) -> String {
    match (action, flapping, source) {
        (ChangeKind::Add, true, _) => {
            "re-granted: removed in Studio behind the tool (flapping)".into()
        }
        (_, true, _) => "removed again: re-granted in Studio behind the tool (flapping)".into(),
        (ChangeKind::Add, false, Some(from)) => format!("listed in {from}, not held in Studio"),
        (ChangeKind::Add, false, None) => "in the desired state, not held in Studio".into(),
        // Not "listed by no source": the email may well be listed, for another role.
        _ => "held in Studio; no source grants this role".into(),
    }
}

/// What a left-alone reason means for the person, in words.
pub fn left_alone_why(reason: &str) -> &'static str {
    match reason {
        "not_in_studio" => "granted once the person has a Studio account (first login)",
        "ambiguous" => "no account is touched until one account has this email",
        "no_email" | "no_email_in_directory" => "an account without an email is never touched",
        "protected" => "the tool never changes a protected email",
        "exclusive" => "the exclusive role wins; this one is not granted",
        "flapping" => "flapping.reapply is false: the change waits for a person",
        "remove_after" => "removed once missing for safety.remove_after",
        _ => "",
    }
}

/// A trail entry as columns of text, in the order both renderings show them.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TrailColumns {
    /// `9`, or `2-8` for a folded left-alone range.
    pub runs: String,
    /// The run's start, or `FIRST to LAST` for a range.
    pub when: String,
    /// The trigger, mode and run status: `-` for a range (its runs differ).
    pub trigger: String,
    pub mode: &'static str,
    pub status: String,
    /// `add Admin (from roles.yaml)`, or `left alone: no Studio account yet`.
    pub what: String,
    /// Why, in words.
    pub why: String,
    /// `applied`, `failed`..., or `7 runs` for a range.
    pub outcome: String,
    pub http: String,
    pub detail: String,
}

impl TrailEntry {
    /// This entry's columns; `flapping` when the history marked its action flapping.
    pub fn columns(&self, flapping: bool) -> TrailColumns {
        let mut c = TrailColumns {
            runs: self.run_id.to_string(),
            when: short_time(&self.started_at),
            trigger: self.trigger.clone(),
            mode: if self.dry_run { "plan" } else { "apply" },
            status: self.run_status.to_string(),
            what: String::new(),
            why: String::new(),
            outcome: String::new(),
            http: String::new(),
            detail: String::new(),
        };
        match &self.event {
            TrailEvent::Action {
                role,
                action,
                outcome,
                http_status,
                detail,
                source,
                until,
                reason,
                ..
            } => {
                c.what = match (source, until) {
                    (Some(from), Some(u)) => format!("{action} {role} (from {from}, until {u})"),
                    (Some(from), None) => format!("{action} {role} (from {from})"),
                    (None, Some(u)) => format!("{action} {role} (until {u})"),
                    (None, None) => format!("{action} {role}"),
                };
                c.why = match (*action, until) {
                    // A removed grant that carries an end is one that ended.
                    (ChangeKind::Remove, Some(u)) if !flapping => {
                        format!("its grant ended (until {u})")
                    }
                    _ => action_reason(*action, source.as_deref(), flapping),
                };
                if let Some(r) = reason {
                    c.why = format!("{}; reason: {r}", c.why);
                }
                c.outcome = outcome.to_string();
                c.http = http_status.map(|s| s.to_string()).unwrap_or_default();
                c.detail = detail.clone().unwrap_or_default();
            }
            TrailEvent::LeftAlone {
                reason,
                detail,
                first_run_id,
                first_started_at,
                runs,
                ..
            } => {
                if *first_run_id != self.run_id {
                    c.runs = format!("{first_run_id}-{}", self.run_id);
                    c.when = format!(
                        "{} to {}",
                        short_time(first_started_at),
                        short_time(&self.started_at)
                    );
                    // The folded runs differ in trigger, mode and status: claim none.
                    c.trigger = "-".into();
                    c.mode = "-";
                    c.status = "-".into();
                }
                c.what = format!("left alone: {}", reason_words(reason));
                c.why = left_alone_why(reason).into();
                c.outcome = if *runs == 1 {
                    "1 run".into()
                } else {
                    format!("{runs} runs")
                };
                c.detail = detail.clone().unwrap_or_default();
            }
        }
        c
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::run_status::RunStatus;

    fn streak() -> TrailEntry {
        TrailEntry {
            run_id: 8,
            started_at: "2025-03-02T09:45:00.000Z".into(),
            trigger: "schedule".into(),
            dry_run: false,
            run_status: RunStatus::Succeeded,
            event: TrailEvent::LeftAlone {
                reason: "not_in_studio".into(),
                detail: None,
                user_id: None,
                first_run_id: 2,
                first_started_at: "2025-03-01T10:00:00.000Z".into(),
                runs: 7,
            },
        }
    }

    #[test]
    fn a_range_claims_only_what_all_its_runs_share() {
        let c = streak().columns(false);
        assert_eq!(c.runs, "2-8");
        assert_eq!(c.when, "2025-03-01 10:00:00 to 2025-03-02 09:45:00");
        assert_eq!(
            (c.trigger.as_str(), c.mode, c.status.as_str()),
            ("-", "-", "-")
        );
        assert_eq!(c.what, "left alone: no Studio account yet");
        assert_eq!(c.outcome, "7 runs");
    }

    #[test]
    fn every_action_says_why() {
        assert_eq!(
            action_reason(ChangeKind::Add, Some("roles.yaml"), false),
            "listed in roles.yaml, not held in Studio"
        );
        assert_eq!(
            action_reason(ChangeKind::Remove, None, false),
            "held in Studio; no source grants this role"
        );
        assert!(action_reason(ChangeKind::Remove, None, true).contains("(flapping)"));
        assert_eq!(
            short_time("2025-03-01T10:00:00.123Z"),
            "2025-03-01 10:00:00"
        );
    }
}
