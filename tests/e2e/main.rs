//! The end-to-end tests: the real `studio-role-sync` binary (one-shot and as a daemon)
//! against the Studio simulator over HTTP on 127.0.0.1, with a real SQLite history. One test
//! binary, one module per topic; the shared fixtures are in [`support`].
//!
//! Tests with their own libtest-mimic harness, which report a test `ignored` when the server
//! it needs is missing (`sql_source`, `notify`, `console`), are separate binaries beside this
//! folder and share the same `support` module.

#[path = "../support/mod.rs"]
mod support;

mod approvals;
mod commands;
mod daemon;
mod grant_ends;
mod hostile;
mod hostile_input;
mod identity;
mod long_life;
mod oauth;
mod online;
mod open_files;
mod outside_text;
mod reliability;
mod remove_after;
mod request_counts;
mod schedule;
mod tls;
