//! The input layer: what the institution declares and the rules it is read by.
//!
//! The config file ([`config`]), the desired state from a roles file or a SQL table
//! ([`desired`], guarded by [`sql_query`] and [`yaml_guard`], read through [`input_file`]),
//! what counts as an email ([`email_address`]), the managed roles ([`roles`]) and the safety
//! limits ([`safety_limits`]). Nothing here talks to Studio or writes anything: every layer
//! below reads what this one has checked.

pub mod config;
pub mod desired;
pub mod email_address;
pub(crate) mod input_file;
pub mod roles;
pub mod safety_limits;
pub(crate) mod sql_query;
pub(crate) mod yaml_guard;
pub mod yaml_lines;
