//! Reading the current state from Studio with as few requests as the API allows.
//!
//! The lower bound of a run is one listing page per 50 holders of each managed role, plus one
//! email search per desired email that [`identity::emails_to_search`] says must be searched
//! (it needs a role added and no holder has it, it was once found ambiguous, or this is a full
//! verification). So: every role's first page goes out at once, the remaining pages go out
//! concurrently as soon as the first page tells how many there are, then the searches.
//! Nothing comes from a cache: every account the planner can act on was reported by Studio
//! during this run, with its email.
//!
//! A read can be hundreds of requests long, so it watches the shutdown signal: when it comes,
//! the requests in flight are dropped (a read changes nothing in Studio) and no more go out.

use crate::input::desired::DesiredState;
use crate::studio::StudioUser;
use crate::studio::{StudioClient, StudioError, UsersPage};
use crate::sync::current::CurrentState;

use crate::input::roles::ManagedRoles;
use crate::service::shutdown::CancellationToken;
use crate::sync::identity::{self, SearchInputs, Verification};
use futures::{stream, StreamExt, TryStreamExt};
use std::collections::HashSet;

/// The current state and how it was obtained.
#[derive(Debug, Default)]
pub(crate) struct ReadOutcome {
    pub current: CurrentState,
    /// Desired emails searched by email this run, sorted.
    pub searched: Vec<String>,
}

/// Why a read did not finish.
#[derive(Debug, thiserror::Error)]
pub(crate) enum ReadError {
    #[error("{0}")]
    Studio(#[from] StudioError),
    #[error("stopped by a shutdown while reading Studio; nothing was sent")]
    Stopped,
}

/// What a read needs to know besides the client: see [`SearchInputs`].
pub(crate) struct ReadInputs<'a> {
    pub managed: &'a ManagedRoles,
    pub desired: &'a DesiredState,
    pub ambiguous: &'a HashSet<String>,
    /// `not_in_studio` emails whose back-off has not run out (see `recheck`).
    pub resting: &'a HashSet<String>,
    pub verification: Verification,
    pub concurrency: usize,
}

/// Reads the holders of every managed role, then searches the desired emails the run must
/// look up (see [`identity::emails_to_search`]); stops at once on `shutdown`.
pub(crate) async fn read_current(
    client: &StudioClient,
    inputs: &ReadInputs<'_>,
    shutdown: &CancellationToken,
) -> Result<ReadOutcome, ReadError> {
    tokio::select! {
        biased;
        _ = shutdown.cancelled() => Err(ReadError::Stopped),
        read = read_all(client, inputs) => Ok(read?),
    }
}

async fn read_all(
    client: &StudioClient,
    inputs: &ReadInputs<'_>,
) -> Result<ReadOutcome, StudioError> {
    let (managed, concurrency) = (inputs.managed, inputs.concurrency);
    let mut current = CurrentState::default();
    for user in list_holders(client, managed, concurrency).await? {
        current.add_user(managed, &user);
    }
    let searched = identity::emails_to_search(&SearchInputs {
        desired: inputs.desired,
        listed: &current,
        ambiguous: inputs.ambiguous,
        resting: inputs.resting,
        verification: inputs.verification,
    });
    let results: Vec<(String, Vec<StudioUser>)> = stream::iter(searched.iter().cloned())
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
    Ok(ReadOutcome { current, searched })
}

/// Every user holding at least one managed role (a user holding two appears twice).
pub async fn list_holders(
    client: &StudioClient,
    managed: &ManagedRoles,
    concurrency: usize,
) -> Result<Vec<StudioUser>, StudioError> {
    let firsts: Vec<(&str, UsersPage)> = stream::iter(managed.names())
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
pub(crate) async fn search_email(
    client: &StudioClient,
    email: &str,
) -> Result<Vec<StudioUser>, StudioError> {
    let wanted = crate::input::email_address::normalize(email);
    let mut found = Vec::new();
    let mut page = 1;
    loop {
        let answer = client.users_with_email(&wanted, page).await?;
        found.extend(answer.users.into_iter().filter(|u| {
            u.email
                .as_deref()
                .map(crate::input::email_address::normalize)
                .as_deref()
                == Some(wanted.as_str())
        }));
        if page >= answer.last_page {
            return Ok(found);
        }
        page += 1;
    }
}
