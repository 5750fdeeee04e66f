//! How a run ends, as `runs.status` records it: one enum instead of strings matched in a
//! dozen places.
//!
//! The text of each status is a contract (users query `runs.status`; docs/contracts.md), so
//! the enum is stored and serialized as exactly that text. Which status a run gets is decided
//! once, by the run itself; the binary turns a status into an exit code.

use serde::{Deserialize, Serialize};

/// The status of a run, as `runs.status` says it.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum RunStatus {
    /// Started and not finished yet (or its process died: see `interrupted`).
    #[default]
    Running,
    /// Every planned change was made (or there was none to make).
    Succeeded,
    /// It finished, but some changes failed.
    Partial,
    /// It could not do its work: bad input, Studio unreachable or refusing the credentials,
    /// or a history it could not write.
    Failed,
    /// A safety guard stopped it before anything was sent.
    Aborted,
    /// A shutdown stopped it, or its process died before it finished.
    Interrupted,
}

impl RunStatus {
    /// Every status, in the order people read them.
    pub const ALL: [RunStatus; 6] = [
        RunStatus::Running,
        RunStatus::Succeeded,
        RunStatus::Partial,
        RunStatus::Failed,
        RunStatus::Aborted,
        RunStatus::Interrupted,
    ];

    /// The text `runs.status` holds.
    pub fn as_str(self) -> &'static str {
        match self {
            RunStatus::Running => "running",
            RunStatus::Succeeded => "succeeded",
            RunStatus::Partial => "partial",
            RunStatus::Failed => "failed",
            RunStatus::Aborted => "aborted",
            RunStatus::Interrupted => "interrupted",
        }
    }

    /// The status whose text is `text`, if any.
    pub fn parse(text: &str) -> Option<RunStatus> {
        RunStatus::ALL.into_iter().find(|s| s.as_str() == text)
    }
}

crate::model::stored_as_text!(RunStatus, RunStatus::parse);

impl std::fmt::Display for RunStatus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_text_is_the_contract_and_reads_back() {
        let texts: Vec<&str> = RunStatus::ALL.iter().map(|s| s.as_str()).collect();
        assert_eq!(
            texts,
            [
                "running",
                "succeeded",
                "partial",
                "failed",
                "aborted",
                "interrupted"
            ]
        );
        for s in RunStatus::ALL {
            assert_eq!(RunStatus::parse(s.as_str()), Some(s));
            assert_eq!(serde_json::to_value(s).unwrap(), s.as_str());
        }
        assert_eq!(RunStatus::parse("done"), None);
    }
}
