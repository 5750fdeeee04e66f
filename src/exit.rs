//! The contract's exit codes (docs/contracts.md, "Exit codes"), and the one mapping
//! from how a run ended to its code. They belong to the command line, not to the engine: the
//! engine reports how a run ended ([`RunReport`]); what a shell sees is decided here.

use studio_role_sync_engine::reconcile::RunReport;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Exit {
    Success = 0,
    Error = 1,
    Changes = 2,
    Aborted = 3,
    Partial = 4,
}

impl Exit {
    /// The code of a `plan` or `apply`: an error first, then a tripped guard, failed actions,
    /// and (for a dry run) whether there are changes.
    pub fn of_run(report: &RunReport) -> Exit {
        if report.error.is_some() {
            Exit::Error
        } else if report.guard.is_some() {
            Exit::Aborted
        } else if report.record.failed > 0 {
            Exit::Partial
        } else if report.record.dry_run && report.plan.as_ref().is_some_and(|p| !p.is_empty()) {
            Exit::Changes
        } else {
            Exit::Success
        }
    }
}

impl From<Exit> for std::process::ExitCode {
    fn from(code: Exit) -> Self {
        std::process::ExitCode::from(code as u8)
    }
}
