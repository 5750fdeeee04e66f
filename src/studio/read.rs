//! Reading the current state from Studio with as few requests as the API allows.
//!
//! The lower bound of a run is one listing page per 50 holders of each managed role, plus one
//! email search per desired email whose user id is not known. So: every role's first page goes
//! out at once, and the remaining pages go out concurrently as soon as the first page tells how
//! many there are; a desired email is searched only when it is neither a holder's email nor in
//! the user-id cache. A cached id that is not among the holders holds no managed role (every
//! holder was listed), so a cache hit needs no request at all.

use super::{StudioClient, StudioError};
use crate::current::{CurrentState, StudioUser};
use crate::desired::{normalize_email, DesiredState};
use crate::roles::ManagedRoles;
use futures::{stream, StreamExt, TryStreamExt};
use std::collections::{HashMap, HashSet};

/// The current state and how it was obtained.
#[derive(Debug, Default)]
pub struct ReadOutcome {
    pub current: CurrentState,
    /// User ids taken from the cache rather than from Studio this run.
    pub from_cache: HashSet<u64>,
    /// Desired emails searched by email this run.
    pub searched: usize,
}

/// Reads the holders of every managed role, then resolves the desired emails still unknown.
pub async fn read_current(
    client: &StudioClient,
    managed: &ManagedRoles,
    desired: &DesiredState,
    cache: &HashMap<String, u64>,
    concurrency: usize,
) -> Result<ReadOutcome, StudioError> {
    let mut current = CurrentState::default();
    for user in list_holders(client, managed, concurrency).await? {
        current.add_user(managed, &user);
    }

    let mut from_cache = HashSet::new();
    let mut to_search = Vec::new();
    for (email, want) in &desired.users {
        // An email that should hold nothing and is no holder needs no lookup.
        if want.is_empty() || current.knows_email(email) {
            continue;
        }
        match cache.get(email) {
            // The id is no holder (its email would be known): it holds no managed role.
            Some(&id) if !current.users.contains_key(&id) => {
                let cached = StudioUser {
                    id,
                    full_name: None,
                    email: Some(email.clone()),
                    role_names: Vec::new(),
                };
                current.add_user(managed, &cached);
                from_cache.insert(id);
            }
            _ => to_search.push(email.clone()),
        }
    }
    to_search.sort();
    let searched = to_search.len();
    let results: Vec<(String, Vec<StudioUser>)> = stream::iter(to_search)
        .map(|email| async move {
            let found = search_email(client, &email).await?;
            Ok::<_, StudioError>((email, found))
        })
        .buffer_unordered(concurrency.max(1))
        .try_collect()
        .await?;
    for (email, found) in results {
        current.add_search(managed, &email, &found);
    }
    Ok(ReadOutcome {
        current,
        from_cache,
        searched,
    })
}

/// Every user holding at least one managed role (a user holding two appears twice).
pub async fn list_holders(
    client: &StudioClient,
    managed: &ManagedRoles,
    concurrency: usize,
) -> Result<Vec<StudioUser>, StudioError> {
    let firsts: Vec<(&str, super::UsersPage)> = stream::iter(managed.names())
        .map(|role| async move {
            Ok::<_, StudioError>((role.as_str(), client.users_with_role(role, 1).await?))
        })
        .buffered(concurrency.max(1))
        .try_collect()
        .await?;
    let mut users = Vec::new();
    let mut rest = Vec::new();
    for (role, page) in firsts {
        rest.extend((2..=page.last_page).map(|p| (role, p)));
        users.extend(page.users);
    }
    let pages: Vec<Vec<StudioUser>> = stream::iter(rest)
        .map(|(role, p)| async move {
            Ok::<_, StudioError>(client.users_with_role(role, p).await?.users)
        })
        .buffer_unordered(concurrency.max(1))
        .try_collect()
        .await?;
    users.extend(pages.into_iter().flatten());
    Ok(users)
}

/// The Studio users whose email is exactly `email` (trimmed, case-insensitive): the server's
/// search may also return partial matches, which are dropped here.
pub async fn search_email(
    client: &StudioClient,
    email: &str,
) -> Result<Vec<StudioUser>, StudioError> {
    let wanted = normalize_email(email);
    let mut found = Vec::new();
    let mut page = 1;
    loop {
        let answer = client.users_with_email(&wanted, page).await?;
        found.extend(answer.users.into_iter().filter(|u| {
            u.email.as_deref().map(normalize_email).as_deref() == Some(wanted.as_str())
        }));
        if page >= answer.last_page {
            return Ok(found);
        }
        page += 1;
    }
}
