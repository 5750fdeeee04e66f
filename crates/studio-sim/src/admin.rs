//! What happens behind the tool's back, and the record of what the tool sent.
//!
//! `/sim/users/{id}` lets a test (or a person trying the demo) do what a Studio admin does in
//! the Studio UI: change an account's email or roles (`PATCH`), or create or replace an
//! account (`PUT`). These routes sit outside `/api/public/v1`: they are not counted in the
//! request statistics and not logged, so a test's edits never blur what the tool did.
//!
//! The request log keeps every API request the server answered, with, for each
//! `PUT /users/roles` action, the email the account had *when the request arrived*: a test
//! can prove that no add was ever sent to an account whose email was not the desired one,
//! rather than only look at the final state.

use std::collections::VecDeque;
use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::patch;
use axum::{Json, Router};
use serde::Deserialize;

use super::api::error;
use super::{Shared, SimUser};

/// The most requests the log keeps; older ones are dropped (and counted).
pub(crate) const LOG_CAPACITY: usize = 200_000;

/// One API request the simulator answered.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SimRequest {
    /// Order of arrival at the log (answers, so concurrent requests may interleave).
    pub seq: u64,
    pub method: String,
    pub path: String,
    pub query: Option<String>,
    pub status: u16,
    /// The actions of a `PUT /users/roles` that reached the handler.
    pub actions: Vec<SimAction>,
    /// The bearer token the request carried, if any (test tokens: which client sent it).
    pub token: Option<String>,
}

/// One action of a `PUT /users/roles`, as received.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SimAction {
    pub user_id: u64,
    pub action: String,
    pub role: String,
    /// The account's email when the request arrived (`None`: no such account, or no email).
    pub email_then: Option<String>,
}

/// Actions a handler hands to the logging middleware (as a response extension).
#[derive(Clone)]
pub(crate) struct LoggedActions(pub(crate) Vec<SimAction>);

#[derive(Default)]
pub(crate) struct RequestLog {
    entries: VecDeque<SimRequest>,
    next_seq: u64,
    pub(crate) dropped: u64,
}

impl RequestLog {
    pub(crate) fn push(&mut self, mut r: SimRequest) {
        r.seq = self.next_seq;
        self.next_seq += 1;
        if self.entries.len() == LOG_CAPACITY {
            self.entries.pop_front();
            self.dropped += 1;
        }
        self.entries.push_back(r);
    }

    pub(crate) fn all(&self) -> Vec<SimRequest> {
        self.entries.iter().cloned().collect()
    }

    pub(crate) fn clear(&mut self) {
        self.entries.clear();
    }
}

/// The `/sim` routes; the caller adds authentication.
pub(crate) fn router() -> Router<Arc<Shared>> {
    Router::new().route("/users/{user_id}", patch(edit_user).put(put_user))
}

/// `PATCH /sim/users/{id}`: the fields given replace the account's.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Edit {
    /// `null` removes the email.
    #[serde(default, with = "double_option")]
    email: Option<Option<String>>,
    role_names: Option<Vec<String>>,
    full_name: Option<String>,
}

mod double_option {
    use serde::{Deserialize, Deserializer};
    pub fn deserialize<'de, D: Deserializer<'de>>(
        d: D,
    ) -> Result<Option<Option<String>>, D::Error> {
        Option::<String>::deserialize(d).map(Some)
    }
}

fn parse_id(raw: &str) -> Option<u64> {
    raw.trim().parse().ok()
}

fn not_found() -> Response {
    error(StatusCode::NOT_FOUND, "user not found")
}

async fn edit_user(
    State(shared): State<Arc<Shared>>,
    Path(user_id): Path<String>,
    body: Bytes,
) -> Response {
    let Some(id) = parse_id(&user_id) else {
        return not_found();
    };
    let edit: Edit = match serde_json::from_slice(&body) {
        Ok(e) => e,
        Err(e) => return error(StatusCode::UNPROCESSABLE_ENTITY, &e.to_string()),
    };
    let mut store = shared.store_mut();
    let Some(mut user) = store.get(id).cloned() else {
        return not_found();
    };
    if let Some(email) = edit.email {
        user.email = email;
    }
    if let Some(roles) = edit.role_names {
        user.role_names = roles;
    }
    if let Some(name) = edit.full_name {
        user.full_name = name;
    }
    store.insert(user.clone());
    Json(user).into_response()
}

/// `PUT /sim/users/{id}`: creates the account, or replaces it.
async fn put_user(
    State(shared): State<Arc<Shared>>,
    Path(user_id): Path<String>,
    body: Bytes,
) -> Response {
    #[derive(Deserialize)]
    #[serde(deny_unknown_fields)]
    struct New {
        #[serde(default)]
        full_name: String,
        email: Option<String>,
        #[serde(default)]
        role_names: Vec<String>,
    }
    let Some(id) = parse_id(&user_id) else {
        return not_found();
    };
    let new: New = match serde_json::from_slice(&body) {
        Ok(n) => n,
        Err(e) => return error(StatusCode::UNPROCESSABLE_ENTITY, &e.to_string()),
    };
    let user = SimUser {
        id,
        full_name: new.full_name,
        email: new.email,
        role_names: new.role_names,
    };
    shared.store_mut().insert(user.clone());
    Json(user).into_response()
}
