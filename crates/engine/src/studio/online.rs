//! `validate --online`: what can only be checked against the tenant itself, before the first
//! run: reachability, TLS and the token (`GET /api/public/v1/ping`), and whether every role in
//! `roles.managed` exists there.
//!
//! The role values are not in Studio's documentation; the tenant's own API schema
//! (`GET /api/public/apidocs`, a Swagger/OpenAPI document) may list them as the `enum` of a
//! `role` parameter or property. The schema's shape is not documented either, so it is read
//! defensively: any `enum` under something named `role` or `role_names`, anywhere in the
//! document, counts. When the schema is absent or lists no roles, each managed role is tried
//! with one listing request instead (Studio answers `422` to an unknown role). The result is
//! data; the command renders it.

use super::{Endpoint, StudioClient, StudioError};
use crate::input::roles::ManagedRoles;
use std::collections::BTreeSet;
use std::time::{Duration, Instant};

/// At most this many role values are taken from the schema.
const MAX_ROLE_VALUES: usize = 10_000;

/// What the online check found.
#[derive(Debug)]
pub struct OnlineReport {
    /// Time of the ping request (token refresh included).
    pub ping: Duration,
    pub roles: RoleCheck,
}

/// How `roles.managed` was checked against the tenant.
#[derive(Debug, PartialEq, Eq)]
pub enum RoleCheck {
    /// The schema lists the role values.
    Listed {
        values: BTreeSet<String>,
        /// Managed roles not among them, each with a value that differs only in letter case.
        unknown: Vec<(String, Option<String>)>,
    },
    /// The schema did not list them (`note` says why); each role was tried with a listing.
    Probed { note: String, unknown: Vec<String> },
}

impl RoleCheck {
    /// Managed roles the tenant does not know.
    pub fn unknown(&self) -> Vec<&str> {
        match self {
            RoleCheck::Listed { unknown, .. } => unknown.iter().map(|(r, _)| r.as_str()).collect(),
            RoleCheck::Probed { unknown, .. } => unknown.iter().map(String::as_str).collect(),
        }
    }
}

/// Pings the tenant, then checks the managed roles.
pub async fn check(
    client: &StudioClient,
    managed: &ManagedRoles,
) -> Result<OnlineReport, StudioError> {
    let started = Instant::now();
    let url = client.api_url("ping")?;
    client
        .send_with(Endpoint::Ping, |http| http.get(url.clone()), |_| Ok(()))
        .await?;
    let ping = started.elapsed();
    let roles = match schema_roles(client).await {
        Ok(values) => {
            let unknown = managed
                .names()
                .iter()
                .filter(|r| !values.contains(*r))
                .map(|r| {
                    let near = values.iter().find(|v| v.eq_ignore_ascii_case(r)).cloned();
                    (r.clone(), near)
                })
                .collect();
            RoleCheck::Listed { values, unknown }
        }
        Err(note) => {
            let mut unknown = Vec::new();
            for role in managed.names() {
                match client.users_with_role(role, 1).await {
                    Ok(_) => {}
                    Err(e) if e.status() == Some(422) => unknown.push(role.clone()),
                    Err(e) => return Err(e),
                }
            }
            RoleCheck::Probed { note, unknown }
        }
    };
    Ok(OnlineReport { ping, roles })
}

/// The role values the tenant's schema lists, or why there are none.
async fn schema_roles(client: &StudioClient) -> Result<BTreeSet<String>, String> {
    let url = client.api_url("../apidocs").map_err(|e| e.to_string())?;
    let doc = client
        .send_with(
            Endpoint::ApiDocs,
            |http| http.get(url.clone()),
            |bytes| Ok(serde_json::from_slice::<serde_json::Value>(bytes).ok()),
        )
        .await
        .map_err(|e| {
            format!("the tenant's API schema (/api/public/apidocs) could not be read: {e}")
        })?
        .ok_or("the tenant's API schema (/api/public/apidocs) is not JSON")?;
    let values = role_values(&doc);
    if values.is_empty() {
        return Err("the tenant's API schema (/api/public/apidocs) lists no role values".into());
    }
    Ok(values)
}

/// Every string `enum` value under a parameter named `role`, or a property named `role` or
/// `role_names`, anywhere in a Swagger/OpenAPI document.
pub(crate) fn role_values(doc: &serde_json::Value) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    walk(doc, &mut out);
    out
}

fn walk(v: &serde_json::Value, out: &mut BTreeSet<String>) {
    // serde_json refuses documents nested deeper than 128, so this recursion is bounded.
    match v {
        serde_json::Value::Object(map) => {
            if map.get("name").and_then(|n| n.as_str()) == Some("role") {
                enums(v, out);
            }
            for (key, child) in map {
                if key == "role" || key == "role_names" {
                    enums(child, out);
                }
                walk(child, out);
            }
        }
        serde_json::Value::Array(items) => items.iter().for_each(|i| walk(i, out)),
        _ => {}
    }
}

/// The string values of `enum`, `items.enum`, `schema.enum` or `schema.items.enum`.
fn enums(v: &serde_json::Value, out: &mut BTreeSet<String>) {
    for path in [
        &["enum"][..],
        &["items", "enum"],
        &["schema", "enum"],
        &["schema", "items", "enum"],
    ] {
        let found = path.iter().try_fold(v, |node, key| node.get(key));
        if let Some(serde_json::Value::Array(values)) = found {
            for value in values.iter().filter_map(|x| x.as_str()) {
                if out.len() >= MAX_ROLE_VALUES {
                    return;
                }
                out.insert(value.to_string());
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn role_values_are_found_where_schemas_put_them() {
        let swagger = json!({
            "swagger": "2.0",
            "paths": {"/users/search": {"get": {"parameters": [
                {"name": "role", "in": "query", "type": "string", "enum": ["Admin", "Teacher"]},
                {"name": "email", "in": "query", "type": "string"}
            ]}}},
            "definitions": {"Change": {"properties": {
                "role": {"type": "string", "enum": ["CaptionEditor"]},
                "action": {"enum": ["add", "remove"]}
            }}, "User": {"properties": {"role_names": {"type": "array", "items": {"enum": ["Student"]}}}}}
        });
        let values: Vec<String> = role_values(&swagger).into_iter().collect();
        assert_eq!(values, ["Admin", "CaptionEditor", "Student", "Teacher"]);
        let openapi3 = json!({"paths": {"/users/search": {"get": {"parameters": [
            {"name": "role", "in": "query", "schema": {"type": "string", "enum": ["Admin"]}}
        ]}}}});
        assert_eq!(role_values(&openapi3).len(), 1);
        for nothing in [
            json!(null),
            json!("pong"),
            json!([1, 2]),
            json!({"role": 5}),
            json!({"name": "role", "enum": [1, null]}),
        ] {
            assert!(role_values(&nothing).is_empty(), "{nothing}");
        }
    }
}
