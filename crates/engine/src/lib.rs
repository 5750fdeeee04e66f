//! The engine of studio-role-sync, which keeps the roles of Canvas Studio users equal to what
//! an institution declares in a YAML file or a SQL table. It knows no command line: it prints
//! nothing and has no exit codes; the `studio-role-sync` binary does that.
//!
//! Its folders are layers that follow the data of a run:
//!
//! ```text
//! input/    config, desired state (roles file or SQL), email rules, roles, safety limits
//!   ↓
//! studio/   the Studio client: OAuth, pacing, untrusted replies
//!   ↓
//! sync/     read → current state → plan (+ guards, digest) → consent → apply; reconcile = one run
//!   ↓
//! store/    history (SQLite), the instance lock, state files
//!   ↓
//! service/  daemon (schedule, edits), http, metrics, notifications, shutdown
//! ```
//!
//! Which Studio account an email is comes only from what Studio reports during the run; what
//! counts as an email is decided once ([`email_address`]). The modules below are the API the
//! binary, the console, the benchmarks and the tests use; everything else is `pub(crate)`.

mod input;
mod model;
mod service;
mod store;
pub mod studio;
mod sync;

// One role change, as every layer names it.
pub use model::{change, digest, history_place, run_status};
// What the institution declares.
pub use input::{config, desired, email_address, roles, safety_limits, yaml_lines};
// One run: read, plan, consent, apply, and the run itself.
pub use sync::{current, plan, read, reconcile, run_report, saved_plan};
// What outlives a process.
pub use store::{history, lock};
// Which of several daemons on one PostgreSQL history talks to Studio.
pub use store::lease;
// The daemon around the runs.
pub use service::leadership;
pub use service::{daemon, http, metrics, shutdown};
