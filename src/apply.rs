//! Applying a plan: batches of `PUT /users/roles`, sent concurrently, each action ending with
//! a recorded outcome.
//!
//! Studio may refuse a whole batch for one bad action (`404` for an unknown user, `422`), so
//! a refused batch is split in halves and retried until the bad actions are isolated: one
//! stale user id costs about `2·log2(batch)` extra requests, not the batch. An action refused
//! with `404` whose user id came from the cache is re-resolved by email once. Studio's answer
//! (the updated users) is checked against what was asked: an action it did not take is
//! `failed`, not `applied`. A circuit breaker stops sending when the server is down, and a
//! shutdown stops sending new batches while the ones in flight finish.

use crate::current::StudioUser;
use crate::plan::{ActionKind, RoleAction};
use crate::roles::ManagedRoles;
use crate::shutdown::Shutdown;
use crate::studio::read::search_email;
use crate::studio::{StudioClient, StudioError, WireAction};
use futures::future::BoxFuture;
use futures::{stream, FutureExt, StreamExt};
use std::collections::HashSet;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Mutex;

/// Consecutive batches lost to an outage (after their retries) that open the breaker.
const BREAKER_THRESHOLD: u32 = 3;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Outcome {
    Applied,
    Failed,
    Skipped,
}

impl Outcome {
    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Applied => "applied",
            Outcome::Failed => "failed",
            Outcome::Skipped => "skipped",
        }
    }
}

#[derive(Clone, Debug)]
pub struct ActionOutcome {
    /// The action as finally sent (its user id may have been re-resolved).
    pub action: RoleAction,
    pub planned_user_id: u64,
    pub outcome: Outcome,
    pub http_status: Option<u16>,
    pub detail: Option<String>,
}

/// Why an apply stopped before sending every batch.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Stopped {
    /// The server kept failing: the breaker opened.
    Outage(String),
    /// Authentication failed: nothing more can be sent.
    Auth(String),
    Shutdown,
}

#[derive(Default)]
pub struct ApplyReport {
    pub outcomes: Vec<ActionOutcome>,
    pub stopped: Option<Stopped>,
    /// Cached emails whose user id turned out wrong, and ids found for them.
    pub stale_cache: Vec<String>,
    pub resolved: Vec<(String, u64)>,
}

pub struct Applier<'a> {
    pub client: &'a StudioClient,
    pub managed: &'a ManagedRoles,
    /// User ids the read took from the cache: a `404` for one of them is worth a new search.
    pub from_cache: &'a HashSet<u64>,
    pub batch_size: usize,
    pub concurrency: usize,
    pub shutdown: Shutdown,
}

struct Shared {
    outage_streak: AtomicU32,
    stopped: Mutex<Option<Stopped>>,
    stale_cache: Mutex<Vec<String>>,
    resolved: Mutex<Vec<(String, u64)>>,
}

impl Applier<'_> {
    /// Sends every action; `on_batch` sees each batch's outcomes as they come back (the run
    /// hands them to the history writer). It must not block: the batches in flight are only
    /// driven while this loop waits on them.
    pub async fn apply<F>(&self, actions: Vec<RoleAction>, mut on_batch: F) -> ApplyReport
    where
        F: FnMut(&[ActionOutcome]),
    {
        let shared = Shared {
            outage_streak: AtomicU32::new(0),
            stopped: Mutex::new(None),
            stale_cache: Mutex::new(Vec::new()),
            resolved: Mutex::new(Vec::new()),
        };
        let batches: Vec<Vec<RoleAction>> = actions
            .chunks(self.batch_size.max(1))
            .map(<[_]>::to_vec)
            .collect();
        let mut results = stream::iter(batches)
            .map(|batch| {
                let shared = &shared;
                async move {
                    if self.shutdown.is_shutdown() {
                        shared.stop(Stopped::Shutdown);
                    }
                    if let Some(why) = shared.stopped() {
                        return skipped(batch, &why);
                    }
                    self.send(batch, shared, false).await
                }
            })
            .buffer_unordered(self.concurrency.max(1));
        let mut outcomes = Vec::new();
        while let Some(batch) = results.next().await {
            on_batch(&batch);
            outcomes.extend(batch);
        }
        drop(results);
        ApplyReport {
            outcomes,
            stopped: shared.stopped(),
            stale_cache: shared.stale_cache.into_inner().unwrap_or_default(),
            resolved: shared.resolved.into_inner().unwrap_or_default(),
        }
    }

    fn send<'s>(
        &'s self,
        batch: Vec<RoleAction>,
        shared: &'s Shared,
        re_resolved: bool,
    ) -> BoxFuture<'s, Vec<ActionOutcome>> {
        async move {
            let wire: Vec<WireAction> = batch
                .iter()
                .map(|a| WireAction { user_id: a.user_id, action: a.kind.as_str(), role: self.managed.name(a.role).to_string() })
                .collect();
            match self.client.put_roles(&wire).await {
                Ok(users) => {
                    shared.outage_streak.store(0, Ordering::Relaxed);
                    batch.into_iter().map(|a| self.verify(a, &users)).collect()
                }
                Err(e) if e.is_fatal() => {
                    shared.stop(Stopped::Auth(e.to_string()));
                    failed(batch, &e)
                }
                Err(e) if matches!(e.status(), Some(404 | 422)) && batch.len() > 1 => {
                    let mut left = batch;
                    let right = left.split_off(left.len() / 2);
                    tracing::debug!(status = e.status(), size = left.len() + right.len(), "batch refused; splitting it");
                    let (mut a, b) = futures::join!(self.send(left, shared, re_resolved), self.send(right, shared, re_resolved));
                    a.extend(b);
                    a
                }
                Err(e) if e.status() == Some(404) && !re_resolved && self.from_cache.contains(&batch[0].user_id) => {
                    self.re_resolve(batch.into_iter().next().expect("one action"), shared, e).await
                }
                Err(e) => {
                    if e.is_outage() && shared.outage_streak.fetch_add(1, Ordering::Relaxed) + 1 >= BREAKER_THRESHOLD {
                        shared.stop(Stopped::Outage(format!(
                            "{BREAKER_THRESHOLD} batches in a row failed ({e}); stopped sending the rest"
                        )));
                    }
                    failed(batch, &e)
                }
            }
        }
        .boxed()
    }

    /// The cached user id is gone (`404`): search the email once and retry with the id found.
    async fn re_resolve(
        &self,
        action: RoleAction,
        shared: &Shared,
        error: StudioError,
    ) -> Vec<ActionOutcome> {
        let planned = action.user_id;
        let Some(email) = action.email.clone() else {
            return failed(vec![action], &error);
        };
        shared
            .stale_cache
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(email.clone());
        let found = match search_email(self.client, &email).await {
            Ok(found) => found,
            Err(e) => return failed(vec![action], &e),
        };
        match found.as_slice() {
            [user] => {
                tracing::info!(email = %email, old_id = planned, new_id = user.id, "cached user id was stale; re-resolved by email");
                shared
                    .resolved
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .push((email, user.id));
                let retried = RoleAction {
                    user_id: user.id,
                    ..action
                };
                let mut out = self.send(vec![retried], shared, true).await;
                for o in &mut out {
                    o.planned_user_id = planned;
                }
                out
            }
            others => {
                let detail = if others.is_empty() {
                    "user not found (404), and no Studio user has this email any more".to_string()
                } else {
                    format!(
                        "user not found (404), and {} Studio users now share this email",
                        others.len()
                    )
                };
                vec![ActionOutcome {
                    planned_user_id: planned,
                    action,
                    outcome: Outcome::Failed,
                    http_status: Some(404),
                    detail: Some(detail),
                }]
            }
        }
    }

    /// Checks Studio's answer: the user must now hold (or not hold) the role.
    fn verify(&self, action: RoleAction, users: &[StudioUser]) -> ActionOutcome {
        let role = self.managed.name(action.role);
        let planned_user_id = action.user_id;
        let (outcome, detail) = match users.iter().find(|u| u.id == action.user_id) {
            None => (
                Outcome::Applied,
                Some(
                    "Studio accepted the batch but did not return this user; not verified"
                        .to_string(),
                ),
            ),
            Some(u) => {
                let holds = u.role_names.iter().any(|r| r == role);
                match (action.kind, holds) {
                    (ActionKind::Add, true) | (ActionKind::Remove, false) => {
                        (Outcome::Applied, None)
                    }
                    (ActionKind::Add, false) => (
                        Outcome::Failed,
                        Some(format!(
                            "Studio answered 200 but the user does not hold {role}"
                        )),
                    ),
                    (ActionKind::Remove, true) => (
                        Outcome::Failed,
                        Some(format!(
                            "Studio answered 200 but the user still holds {role}"
                        )),
                    ),
                }
            }
        };
        ActionOutcome {
            action,
            planned_user_id,
            outcome,
            http_status: Some(200),
            detail,
        }
    }
}

impl Shared {
    fn stop(&self, why: Stopped) {
        let mut s = self.stopped.lock().unwrap_or_else(|e| e.into_inner());
        if s.is_none() {
            tracing::warn!(reason = ?why, "apply stops sending");
            *s = Some(why);
        }
    }

    fn stopped(&self) -> Option<Stopped> {
        self.stopped
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }
}

fn failed(batch: Vec<RoleAction>, error: &StudioError) -> Vec<ActionOutcome> {
    batch
        .into_iter()
        .map(|action| ActionOutcome {
            planned_user_id: action.user_id,
            action,
            outcome: Outcome::Failed,
            http_status: error.status(),
            detail: Some(error.to_string()),
        })
        .collect()
}

fn skipped(batch: Vec<RoleAction>, why: &Stopped) -> Vec<ActionOutcome> {
    let detail = match why {
        Stopped::Outage(_) => "not sent: Studio was failing (circuit breaker open)",
        Stopped::Auth(_) => "not sent: authentication failed",
        Stopped::Shutdown => "not sent: the daemon was shutting down",
    };
    batch
        .into_iter()
        .map(|action| ActionOutcome {
            planned_user_id: action.user_id,
            action,
            outcome: Outcome::Skipped,
            http_status: None,
            detail: Some(detail.to_string()),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::metrics::Metrics;
    use crate::studio::auth::Auth;
    use crate::studio::ClientSettings;
    use std::time::Duration;

    fn client() -> StudioClient {
        let settings = ClientSettings {
            base_url: "http://127.0.0.1:9".parse().unwrap(),
            requests_per_second: 10.0,
            burst: 1,
            concurrency: 1,
            timeout: Duration::from_secs(1),
            max_retries: 0,
            extra_roots: Default::default(),
        };
        StudioClient::new(
            &settings,
            Auth::Static(std::sync::Arc::new(crate::studio::auth::StaticToken::new(
                "t".to_string().into(),
                None,
            ))),
            Metrics::new(),
        )
        .unwrap()
    }

    fn action(user_id: u64, kind: ActionKind) -> RoleAction {
        RoleAction {
            user_id,
            email: Some(format!("u{user_id}@x.edu")),
            role: 0,
            kind,
        }
    }

    fn studio_user(id: u64, roles: &[&str]) -> StudioUser {
        StudioUser {
            id,
            full_name: None,
            email: None,
            role_names: roles.iter().map(|r| r.to_string()).collect(),
        }
    }

    #[test]
    fn verify_fails_an_action_studio_did_not_take() {
        let client = client();
        let managed = ManagedRoles::new(vec!["Admin".into()]);
        let from_cache = HashSet::new();
        let applier = Applier {
            client: &client,
            managed: &managed,
            from_cache: &from_cache,
            batch_size: 50,
            concurrency: 1,
            shutdown: Shutdown::never(),
        };
        let users = [
            studio_user(1, &["Admin"]),
            studio_user(2, &[]),
            studio_user(3, &["Admin", "Teacher"]),
            studio_user(4, &["Teacher"]),
        ];
        let cases = [
            (action(1, ActionKind::Add), Outcome::Applied),
            (action(2, ActionKind::Add), Outcome::Failed),
            (action(3, ActionKind::Remove), Outcome::Failed),
            (action(4, ActionKind::Remove), Outcome::Applied),
        ];
        for (a, want) in cases {
            let o = applier.verify(a.clone(), &users);
            assert_eq!(o.outcome, want, "{a:?}: {:?}", o.detail);
            assert_eq!(o.http_status, Some(200));
            if want == Outcome::Failed {
                assert!(o.detail.unwrap().contains("Studio answered 200 but"));
            }
        }
    }
}
