//! The `/api/public/v1` handlers and the router.
//!
//! Validation follows the vendor documentation: 400 for a missing parameter, 401 without a
//! valid bearer token, 404 for unknown users, 422 for invalid parameters. Where the vendor is
//! silent the simulator picks the behaviour a client must survive: email search is a
//! case-insensitive prefix match, and a `PUT /users/roles` batch with one unknown user is
//! refused as a whole.

use std::collections::HashSet;
use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{Path, RawQuery, Request, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post, put};
use axum::{Json, Router};
use serde::Serialize;
use serde_json::{json, Value};

use super::admin::{LoggedActions, SimAction};
use super::state::email_key;
use super::{faults, oauth, Shared, SimUser};

/// A JSON error answer `{"error": message}`.
pub(crate) fn error(status: StatusCode, message: &str) -> Response {
    (status, Json(json!({ "error": message }))).into_response()
}

/// A refused request: status and message, turned into [`error`] at the handler's edge.
struct ApiError(StatusCode, String);

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        error(self.0, &self.1)
    }
}

/// The user object as the API shows it.
#[derive(Serialize)]
struct UserOut<'a> {
    id: u64,
    full_name: &'a str,
    display_name: &'a str,
    email: Option<&'a str>,
    role_names: &'a [String],
}

impl<'a> From<&'a SimUser> for UserOut<'a> {
    fn from(u: &'a SimUser) -> Self {
        UserOut {
            id: u.id,
            full_name: &u.full_name,
            display_name: &u.full_name,
            email: u.email.as_deref(),
            role_names: &u.role_names,
        }
    }
}

#[derive(Serialize)]
struct Meta {
    current_page: u64,
    last_page: u64,
    total_count: u64,
}

#[derive(Serialize)]
struct SearchOut<'a> {
    users: Vec<UserOut<'a>>,
    meta: Meta,
}

#[derive(Serialize)]
struct UsersOut<'a> {
    users: Vec<UserOut<'a>>,
}

pub(crate) fn router(shared: Arc<Shared>) -> Router {
    let v1 = Router::new()
        .route("/ping", get(ping))
        .route("/users/search", get(search))
        .route("/users/roles", put(put_roles))
        .route("/users/{user_id}", get(get_user))
        // Layers added later run first: faults, then authentication, then the handler.
        .route_layer(middleware::from_fn_with_state(shared.clone(), auth_mw))
        .route_layer(middleware::from_fn_with_state(
            shared.clone(),
            faults::fault_mw,
        ));
    let oauth = Router::new()
        .route("/token", post(oauth::token))
        .route("/authorize", get(oauth::authorize));
    // Behind the tool's back: authenticated, but neither counted nor logged.
    let admin =
        super::admin::router().route_layer(middleware::from_fn_with_state(shared.clone(), auth_mw));
    Router::new()
        .nest("/api/public/v1", v1)
        .nest("/api/public/oauth", oauth)
        .route("/api/public/apidocs", get(apidocs))
        .fallback(not_found)
        .layer(middleware::from_fn_with_state(
            shared.clone(),
            faults::count_mw,
        ))
        .nest("/sim", admin)
        .with_state(shared)
}

async fn ping() -> &'static str {
    "pong"
}

async fn apidocs(State(shared): State<Arc<Shared>>) -> Response {
    let doc = shared
        .apidocs
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .clone();
    match doc {
        Some(doc) => Json(doc).into_response(),
        None => error(StatusCode::NOT_FOUND, "not found"),
    }
}

/// A Swagger 2.0 description of the user API, in the shape a Rails app's generated docs have:
/// the `role` parameter of the search lists the tenant's roles as its `enum`.
pub(crate) fn swagger(known_roles: &[String]) -> Value {
    json!({
        "swagger": "2.0",
        "info": {"title": "Canvas Studio public API", "version": "v1"},
        "basePath": "/api/public/v1",
        "paths": {
            "/users/search": {"get": {
                "summary": "Search users by role and/or email",
                "parameters": [
                    {"name": "role", "in": "query", "type": "string", "enum": known_roles},
                    {"name": "email", "in": "query", "type": "string"},
                    {"name": "page", "in": "query", "type": "integer"},
                    {"name": "per_page", "in": "query", "type": "integer", "maximum": 50}
                ]
            }},
            "/users/roles": {"put": {
                "summary": "Add or remove roles",
                "parameters": [{"name": "body", "in": "body", "schema": {"$ref": "#/definitions/RoleActions"}}]
            }}
        },
        "definitions": {
            "RoleActions": {"type": "object", "properties": {"actions": {"type": "array", "items": {
                "type": "object",
                "properties": {
                    "user_id": {"type": "integer"},
                    "action": {"type": "string", "enum": ["add", "remove"]},
                    "role": {"type": "string", "enum": known_roles}
                }
            }}}}
        }
    })
}

async fn not_found() -> Response {
    error(StatusCode::NOT_FOUND, "not found")
}

pub(crate) fn bearer(headers: &HeaderMap) -> Option<&str> {
    let value = headers.get(header::AUTHORIZATION)?.to_str().ok()?.trim();
    let (scheme, token) = value.split_once(' ')?;
    scheme
        .eq_ignore_ascii_case("bearer")
        .then(|| token.trim())
        .filter(|t| !t.is_empty())
}

async fn auth_mw(State(shared): State<Arc<Shared>>, req: Request, next: Next) -> Response {
    let ok = match bearer(req.headers()) {
        None => false,
        Some(token) => {
            shared.static_tokens.iter().any(|t| t == token)
                || shared.oauth().access_token_valid(token)
        }
    };
    if !ok {
        let mut response = error(StatusCode::UNAUTHORIZED, "unauthorized");
        response.headers_mut().insert(
            header::WWW_AUTHENTICATE,
            header::HeaderValue::from_static("Bearer"),
        );
        return response;
    }
    next.run(req).await
}

/// Parses an optional integer parameter that must be within `min..=max`.
fn int_param(
    value: Option<&str>,
    default: u64,
    min: u64,
    max: u64,
    name: &str,
) -> Result<u64, ApiError> {
    let Some(raw) = value else {
        return Ok(default);
    };
    match raw.trim().parse::<u64>() {
        Ok(v) if (min..=max).contains(&v) => Ok(v),
        _ => Err(ApiError(
            StatusCode::UNPROCESSABLE_ENTITY,
            if max == u64::MAX {
                format!("{name} must be an integer >= {min}")
            } else {
                format!("{name} must be an integer between {min} and {max}")
            },
        )),
    }
}

async fn search(State(shared): State<Arc<Shared>>, RawQuery(query): RawQuery) -> Response {
    let mut role: Option<String> = None;
    let mut email: Option<String> = None;
    let mut page: Option<String> = None;
    let mut per_page: Option<String> = None;
    for (k, v) in url::form_urlencoded::parse(query.as_deref().unwrap_or("").as_bytes()) {
        let slot = match &*k {
            "role" => &mut role,
            "email" => &mut email,
            "page" => &mut page,
            "per_page" => &mut per_page,
            _ => continue,
        };
        if slot.is_none() {
            *slot = Some(v.into_owned());
        }
    }
    // An empty value counts as missing.
    let role = role.filter(|r| !r.trim().is_empty());
    let email = email.map(|e| email_key(&e)).filter(|e| !e.is_empty());
    if role.is_none() && email.is_none() {
        return error(StatusCode::BAD_REQUEST, "role or email is required");
    }
    let per_page = match int_param(per_page.as_deref(), 20, 1, 50, "per_page") {
        Ok(v) => v,
        Err(e) => return e.into_response(),
    };
    let page = match int_param(page.as_deref(), 1, 1, u64::MAX, "page") {
        Ok(v) => v,
        Err(e) => return e.into_response(),
    };
    if let Some(role) = &role {
        if !shared.known_roles.contains(role) {
            return error(
                StatusCode::UNPROCESSABLE_ENTITY,
                &format!("unknown role: {role}"),
            );
        }
    }
    let found = shared
        .store()
        .search(role.as_deref(), email.as_deref(), page, per_page);
    let last_page = found.total.div_ceil(per_page).max(1);
    Json(SearchOut {
        users: found.users.iter().map(UserOut::from).collect(),
        meta: Meta {
            current_page: page,
            last_page,
            total_count: found.total,
        },
    })
    .into_response()
}

async fn get_user(State(shared): State<Arc<Shared>>, Path(user_id): Path<String>) -> Response {
    let user = user_id
        .trim()
        .parse::<u64>()
        .ok()
        .and_then(|id| shared.store().get(id).cloned());
    match user {
        Some(user) => Json(UserOut::from(&user)).into_response(),
        None => error(StatusCode::NOT_FOUND, "user not found"),
    }
}

enum Op {
    Add,
    Remove,
}

/// One validated action, or the error answer for the batch.
fn parse_action(shared: &Shared, value: &Value) -> Result<(u64, Op, String), ApiError> {
    let bad = |m: &str| Err(ApiError(StatusCode::BAD_REQUEST, m.to_string()));
    let invalid = |m: String| Err(ApiError(StatusCode::UNPROCESSABLE_ENTITY, m));
    let Some(obj) = value.as_object() else {
        return bad("each action must be an object");
    };
    let (Some(user_id), Some(action), Some(role)) =
        (obj.get("user_id"), obj.get("action"), obj.get("role"))
    else {
        return bad("user_id, action and role are required");
    };
    if user_id.is_null() || action.is_null() || role.is_null() {
        return bad("user_id, action and role are required");
    }
    let Some(user_id) = user_id.as_u64() else {
        return invalid(format!("invalid user_id: {user_id}"));
    };
    let op = match action.as_str() {
        Some("add") => Op::Add,
        Some("remove") => Op::Remove,
        _ => return invalid(format!("invalid action: {action}")),
    };
    let Some(role) = role.as_str() else {
        return invalid(format!("invalid role: {role}"));
    };
    if !shared.known_roles.contains(role) {
        return invalid(format!("unknown role: {role}"));
    }
    Ok((user_id, op, role.to_string()))
}

async fn put_roles(State(shared): State<Arc<Shared>>, body: Bytes) -> Response {
    let Ok(value) = serde_json::from_slice::<Value>(&body) else {
        return error(StatusCode::BAD_REQUEST, "actions is required");
    };
    let actions = match value.get("actions") {
        Some(Value::Array(a)) if !a.is_empty() => a,
        _ => return error(StatusCode::BAD_REQUEST, "actions is required"),
    };
    let mut parsed = Vec::with_capacity(actions.len());
    for action in actions {
        match parse_action(&shared, action) {
            Ok(p) => parsed.push(p),
            Err(e) => return e.into_response(),
        }
    }
    let (updated, logged): (Vec<SimUser>, Vec<SimAction>) = {
        let mut store = shared.store_mut();
        let logged: Vec<SimAction> = parsed
            .iter()
            .map(|(id, op, role)| SimAction {
                user_id: *id,
                action: match op {
                    Op::Add => "add",
                    Op::Remove => "remove",
                }
                .to_string(),
                role: role.clone(),
                email_then: store.get(*id).and_then(|u| u.email.clone()),
            })
            .collect();
        let refuse = |status, message: &str| {
            let mut response = error(status, message);
            response
                .extensions_mut()
                .insert(LoggedActions(logged.clone()));
            response
        };
        if parsed.iter().any(|(id, _, _)| !store.contains(*id)) {
            drop(store);
            return refuse(StatusCode::NOT_FOUND, "the user(s) was not found");
        }
        if let Some(message) = exclusivity_violation(&shared, &store, &parsed) {
            drop(store);
            return refuse(StatusCode::UNPROCESSABLE_ENTITY, &message);
        }
        for (id, op, role) in &parsed {
            match op {
                Op::Add => store.add_role(*id, role),
                Op::Remove => store.remove_role(*id, role),
            }
        }
        let mut seen = HashSet::new();
        let updated = parsed
            .iter()
            .filter(|(id, _, _)| seen.insert(*id))
            .filter_map(|(id, _, _)| store.get(*id).cloned())
            .collect();
        (updated, logged)
    };
    shared.control().stats.put_actions += parsed.len() as u64;
    let mut response = Json(UsersOut {
        users: updated.iter().map(UserOut::from).collect(),
    })
    .into_response();
    response.extensions_mut().insert(LoggedActions(logged));
    response
}

/// The first add of the batch, taken in order, that would give a user two roles of one
/// exclusive group (the batch is refused as a whole, like any invalid batch).
fn exclusivity_violation(
    shared: &Shared,
    store: &super::state::Store,
    parsed: &[(u64, Op, String)],
) -> Option<String> {
    if shared.exclusive.is_empty() {
        return None;
    }
    let mut roles: std::collections::HashMap<u64, Vec<String>> = Default::default();
    for (id, op, role) in parsed {
        let held = roles.entry(*id).or_insert_with(|| {
            store
                .get(*id)
                .map(|u| u.role_names.clone())
                .unwrap_or_default()
        });
        match op {
            Op::Remove => held.retain(|r| r != role),
            Op::Add => {
                let clash = held.iter().find(|h| {
                    *h != role
                        && shared
                            .exclusive
                            .iter()
                            .any(|g| g.contains(role) && g.contains(*h))
                });
                if let Some(h) = clash {
                    return Some(format!(
                        "user {id} holds {h}, which excludes {role}: remove it first"
                    ));
                }
                if !held.contains(role) {
                    held.push(role.clone());
                }
            }
        }
    }
    None
}
