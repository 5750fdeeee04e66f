//! The API's own types, as Studio sends and takes them (`/api/public/v1/users/...`): a user,
//! a page of users, one action of `PUT /users/roles`, an error body. They live with the client
//! that speaks the API; the rest of the engine turns them into its own types (the current
//! state) as soon as they arrive.

use crate::input::roles::ManagedRoles;
use crate::model::change::{Change, ChangeKind};
use serde::{Deserialize, Serialize};

/// A Studio user as the client reads it from the API.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct StudioUser {
    pub id: u64,
    #[serde(default)]
    pub full_name: Option<String>,
    #[serde(default)]
    pub email: Option<String>,
    #[serde(default)]
    pub role_names: Vec<String>,
}

#[derive(Debug, Deserialize)]
pub(super) struct Page {
    pub users: Vec<StudioUser>,
    #[serde(default)]
    pub meta: Option<PageMeta>,
}

#[derive(Debug, Deserialize)]
pub(super) struct PageMeta {
    #[serde(default)]
    pub last_page: Option<u32>,
}

/// One users page and the number of the last page.
#[derive(Debug)]
pub struct UsersPage {
    pub users: Vec<StudioUser>,
    pub last_page: u32,
}

/// One action of `PUT /users/roles`, as sent.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct WireAction {
    pub user_id: u64,
    pub action: ChangeKind,
    pub role: String,
}

impl WireAction {
    /// The one conversion of a change to what Studio takes.
    pub(crate) fn of(change: &Change, managed: &ManagedRoles) -> WireAction {
        WireAction {
            user_id: change.user_id,
            action: change.kind,
            role: managed.name(change.role).to_string(),
        }
    }
}

#[derive(Serialize)]
pub(super) struct PutBody<'a> {
    pub actions: &'a [WireAction],
}

#[derive(Deserialize)]
pub(super) struct PutAnswer {
    #[serde(default)]
    pub users: Vec<StudioUser>,
}

/// What Studio sent in an error body, if it was the documented `{"error": "..."}`.
#[derive(Deserialize)]
pub(super) struct ErrorBody {
    pub error: serde_json::Value,
}
