//! The engine of studio-role-sync, which keeps the roles of Canvas Studio users equal to what
//! an institution declares in a YAML file or a SQL table. It knows no command line: it prints
//! nothing and has no exit codes; the `studio-role-sync` binary does that.
//!
//! A run flows: [`config`] → [`desired`] state → [`studio`] read of the [`current`] state →
//! [`plan`] (a pure diff, plus safety guards) → [`apply`] (batched, rate-limited) → [`history`]
//! (SQLite). Which Studio account an email is comes only from what Studio reports during the
//! run ([`identity`]); what counts as an email is decided once ([`email`]).
//! [`reconcile`] strings one run together; [`daemon`] repeats it on a schedule and on
//! edits.

pub mod apply;
pub mod approval;
pub mod config;
pub mod current;
pub mod daemon;
pub mod desired;
pub mod email;
pub mod flapping;
pub mod history;
pub mod http;
pub mod identity;
pub mod input_file;
pub mod lock;
pub mod metrics;
pub mod notify;
pub mod plan;
pub mod read;
pub mod recheck;
pub mod reconcile;
pub mod roles;
pub mod run_report;
pub mod run_status;
pub mod safety;
pub mod saved_plan;
pub mod shutdown;
pub mod sql_query;
pub mod state_files;
pub mod studio;
pub mod yaml_guard;
pub mod yaml_lines;
