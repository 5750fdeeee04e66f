//! What people read, rendered from the engine's data: the plan and a run's outcome
//! ([`plan`]) with its [`flapping`] changes, the history as a table, JSON or CSV ([`history`]),
//! one person's audit trail ([`trail`]), the current holders as a roles file ([`export`]), and
//! approvals ([`approvals`]).
//!
//! Pure formatting: every function takes data and returns text, so the commands stay thin and
//! the output is tested without a terminal. Tables and CSV are drawn by `comfy-table` and
//! `csv` ([`table`]); only the layout choices are ours.

pub mod approvals;
pub mod export;
pub mod flapping;
pub mod history;
pub mod plan;
mod table;
pub mod trail;

pub use approvals::render_approvals;
pub use export::render_export;
pub use flapping::render_flapping;
pub use history::{render_run_detail, render_runs, Format};
pub use plan::{render_guard_help, render_plan, render_run};
pub use trail::render_trail;
