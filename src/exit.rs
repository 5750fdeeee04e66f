//! The contract's exit codes (docs/contracts.md, "Exit codes"), and the one mapping from
//! how a run ended to its code. They belong to the command line, not to the engine: the
//! engine decides a run's [`RunStatus`]; what a shell sees is decided here, from that status.

use studio_role_sync_engine::run_report::RunReport;
use studio_role_sync_engine::run_status::RunStatus;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Exit {
    Success = 0,
    Error = 1,
    Changes = 2,
    Aborted = 3,
    Partial = 4,
    /// A shutdown (SIGTERM, SIGINT) stopped the run before it finished.
    Interrupted = 5,
}

impl Exit {
    /// The code of a `plan` or `apply`: its status, and for a dry run that succeeded,
    /// whether there are changes.
    pub fn of_run(report: &RunReport) -> Exit {
        match report.record.status {
            RunStatus::Failed | RunStatus::Running => Exit::Error,
            RunStatus::Aborted => Exit::Aborted,
            RunStatus::Partial => Exit::Partial,
            RunStatus::Interrupted => Exit::Interrupted,
            RunStatus::Succeeded
                if report.record.dry_run && report.plan.as_ref().is_some_and(|p| !p.is_empty()) =>
            {
                Exit::Changes
            }
            RunStatus::Succeeded => Exit::Success,
        }
    }
}

impl From<Exit> for std::process::ExitCode {
    fn from(code: Exit) -> Self {
        std::process::ExitCode::from(code as u8)
    }
}
