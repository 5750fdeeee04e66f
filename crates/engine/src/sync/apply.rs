//! Applying a plan: batches of `PUT /users/roles`, sent concurrently, each action ending with
//! a recorded outcome.
//!
//! Studio may refuse a whole batch for one bad action (`404` for an unknown user, `422`), so
//! a refused batch is split in halves and retried until the bad actions are isolated: one
//! stale user id costs about `2·log2(batch)` extra requests, not the batch. Studio's answer
//! (the updated users) is checked against what was asked: an action it did not take is
//! `failed`, not `applied`, and so is an action on a user whose email in the answer is not the
//! email the action was for (the account's email changed since the read): that is logged as
//! an error, and a role added that way is removed again at once. A plan comes in phases
//! (removes that make room in an exclusive group first); a phase is sent only after the one
//! before it came back. A circuit breaker stops sending when the server is down, and a
//! shutdown stops sending new batches while the ones in flight finish.

use crate::input::email_address;
use crate::input::roles::ManagedRoles;
use crate::model::change::{Change, ChangeKind, ChangeResult, Outcome};
use crate::service::shutdown::CancellationToken;
use crate::studio::StudioUser;
use crate::studio::{StudioClient, StudioError, WireAction};
use futures::future::BoxFuture;
use futures::{stream, FutureExt, StreamExt};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Mutex;

/// Consecutive batches lost to an outage (after their retries) that open the breaker.
const BREAKER_THRESHOLD: u32 = 3;

/// Why an apply stopped before sending every batch.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Stopped {
    /// The server kept failing: the breaker opened.
    Outage(String),
    /// Authentication failed: nothing more can be sent.
    Auth(String),
    Shutdown,
    /// This daemon no longer leads (its lease ended): the new leader finishes the work.
    LeadershipLost(String),
}

#[derive(Default)]
pub(crate) struct ApplyReport {
    pub outcomes: Vec<ChangeResult>,
    pub stopped: Option<Stopped>,
}

pub(crate) struct Applier<'a> {
    pub client: &'a StudioClient,
    pub managed: &'a ManagedRoles,
    pub batch_size: usize,
    pub concurrency: usize,
    pub shutdown: CancellationToken,
}

struct Shared {
    outage_streak: AtomicU32,
    stopped: Mutex<Option<Stopped>>,
}

impl Applier<'_> {
    /// Sends every action, phase after phase (see [`crate::sync::plan::Plan::phases`]); `on_batch`
    /// sees each batch's outcomes as they come back (the run hands them to the history
    /// writer). It must not block: the batches in flight are only driven while this loop
    /// waits on them.
    pub(crate) async fn apply<F>(&self, phases: Vec<Vec<Change>>, mut on_batch: F) -> ApplyReport
    where
        F: FnMut(&[ChangeResult]),
    {
        let shared = Shared {
            outage_streak: AtomicU32::new(0),
            stopped: Mutex::new(None),
        };
        let mut outcomes = Vec::new();
        for actions in phases {
            self.apply_phase(actions, &shared, &mut on_batch, &mut outcomes)
                .await;
        }
        ApplyReport {
            outcomes,
            stopped: shared.stopped(),
        }
    }

    async fn apply_phase<F>(
        &self,
        actions: Vec<Change>,
        shared: &Shared,
        on_batch: &mut F,
        outcomes: &mut Vec<ChangeResult>,
    ) where
        F: FnMut(&[ChangeResult]),
    {
        let batches: Vec<Vec<Change>> = actions
            .chunks(self.batch_size.max(1))
            .map(<[_]>::to_vec)
            .collect();
        let mut results = stream::iter(batches)
            .map(|batch| async move {
                if self.shutdown.is_cancelled() {
                    shared.stop(Stopped::Shutdown);
                }
                if let Some(why) = shared.stopped() {
                    return skipped(batch, &why);
                }
                self.send(batch, shared).await
            })
            .buffer_unordered(self.concurrency.max(1));
        while let Some(batch) = results.next().await {
            on_batch(&batch);
            outcomes.extend(batch);
        }
    }

    fn send<'s>(
        &'s self,
        batch: Vec<Change>,
        shared: &'s Shared,
    ) -> BoxFuture<'s, Vec<ChangeResult>> {
        async move {
            let wire: Vec<WireAction> = batch
                .iter()
                .map(|c| WireAction::of(c, self.managed))
                .collect();
            match self.client.put_roles(&wire).await {
                Ok(users) => {
                    shared.outage_streak.store(0, Ordering::Relaxed);
                    let mut outcomes: Vec<ChangeResult> =
                        batch.into_iter().map(|a| self.verify(a, &users)).collect();
                    self.undo_misdirected_adds(&mut outcomes, &users).await;
                    outcomes
                }
                // The client's gate asked before this batch (and each retry of it) whether
                // this process still leads (docs/operations.md, high availability).
                Err(StudioError::NotLeading(why)) => {
                    shared.stop(Stopped::LeadershipLost(why.clone()));
                    skipped(batch, &Stopped::LeadershipLost(why))
                }
                Err(e) if e.is_fatal() => {
                    shared.stop(Stopped::Auth(e.to_string()));
                    failed(batch, &e)
                }
                Err(e) if matches!(e.status(), Some(404 | 422)) && batch.len() > 1 => {
                    let mut left = batch;
                    let right = left.split_off(left.len() / 2);
                    tracing::debug!(status = e.status(), size = left.len() + right.len(), "batch refused; splitting it");
                    let (mut a, b) = futures::join!(self.send(left, shared), self.send(right, shared));
                    a.extend(b);
                    a
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

    /// An add that reached an account whose email is not the one intended gave a role to
    /// the wrong person: it is removed again at once (one PUT for the batch), rather than at
    /// the next run. Failing to do so is said in the action's detail.
    async fn undo_misdirected_adds(&self, outcomes: &mut [ChangeResult], users: &[StudioUser]) {
        let role_held = |o: &ChangeResult| {
            let role = self.managed.name(o.change.role);
            users
                .iter()
                .find(|u| u.id == o.change.user_id)
                .is_some_and(|u| u.role_names.iter().any(|r| r == role))
        };
        let undo: Vec<usize> = (0..outcomes.len())
            .filter(|&i| {
                let o = &outcomes[i];
                o.change.kind == ChangeKind::Add
                    && o.outcome == Outcome::Failed
                    && o.detail
                        .as_deref()
                        .is_some_and(|d| d.starts_with(MISDIRECTED))
                    && role_held(o)
            })
            .collect();
        if undo.is_empty() {
            return;
        }
        let wire: Vec<WireAction> = undo
            .iter()
            .map(|&i| {
                let undo = Change {
                    kind: ChangeKind::Remove,
                    ..outcomes[i].change.clone()
                };
                WireAction::of(&undo, self.managed)
            })
            .collect();
        let note = match self.client.put_roles(&wire).await {
            Ok(_) => "; the role was removed from that account again at once".to_string(),
            Err(e) => format!(
                "; removing the role from that account again failed ({e}): the next run removes it"
            ),
        };
        for i in undo {
            let o = &mut outcomes[i];
            if let Some(d) = &mut o.detail {
                d.push_str(&note);
            }
            tracing::error!(
                email = o.change.email.as_deref().unwrap_or("-"),
                user_id = o.change.user_id,
                role = self.managed.name(o.change.role),
                "{}",
                o.detail.as_deref().unwrap_or_default()
            );
        }
    }

    /// Checks Studio's answer: the user must now hold (or not hold) the role.
    fn verify(&self, action: Change, users: &[StudioUser]) -> ChangeResult {
        let role = self.managed.name(action.role);
        let (outcome, detail) = match users.iter().find(|u| u.id == action.user_id) {
            None => (
                Outcome::Applied,
                Some(
                    "Studio accepted the batch but did not return this user; not verified"
                        .to_string(),
                ),
            ),
            Some(u) if !same_email(u.email.as_deref(), action.email.as_deref()) => {
                let detail = format!(
                    "{MISDIRECTED}: Studio's answer shows user {} with email {}, not {}: the \
                     account's email changed after this run read it",
                    u.id,
                    u.email
                        .as_deref()
                        .map_or("(none)".into(), |e| format!("{e:?}")),
                    action.email.as_deref().unwrap_or("(none)")
                );
                tracing::error!(user_id = u.id, role, "{detail}");
                (Outcome::Failed, Some(detail))
            }
            Some(u) => {
                let holds = u.role_names.iter().any(|r| r == role);
                match (action.kind, holds) {
                    (ChangeKind::Add, true) | (ChangeKind::Remove, false) => {
                        (Outcome::Applied, None)
                    }
                    (ChangeKind::Add, false) => (
                        Outcome::Failed,
                        Some(format!(
                            "Studio answered 200 but the user does not hold {role}"
                        )),
                    ),
                    (ChangeKind::Remove, true) => (
                        Outcome::Failed,
                        Some(format!(
                            "Studio answered 200 but the user still holds {role}"
                        )),
                    ),
                }
            }
        };
        ChangeResult {
            change: action,
            outcome,
            http_status: Some(200),
            detail,
        }
    }
}

/// How the detail of an action that reached the wrong account starts.
const MISDIRECTED: &str = "WRONG ACCOUNT";

/// Whether Studio's email for a user is the email an action was planned for.
fn same_email(studio: Option<&str>, intended: Option<&str>) -> bool {
    match (studio, intended) {
        (Some(s), Some(i)) => email_address::normalize(s) == email_address::normalize(i),
        _ => false,
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

fn failed(batch: Vec<Change>, error: &StudioError) -> Vec<ChangeResult> {
    batch
        .into_iter()
        .map(|change| ChangeResult {
            change,
            outcome: Outcome::Failed,
            http_status: error.status(),
            detail: Some(error.to_string()),
        })
        .collect()
}

fn skipped(batch: Vec<Change>, why: &Stopped) -> Vec<ChangeResult> {
    let detail = match why {
        Stopped::Outage(_) => "not sent: Studio was failing (circuit breaker open)",
        Stopped::Auth(_) => "not sent: authentication failed",
        Stopped::Shutdown => "not sent: the daemon was shutting down",
        Stopped::LeadershipLost(_) => "not sent: this daemon no longer leads",
    };
    batch
        .into_iter()
        .map(|change| ChangeResult {
            change,
            outcome: Outcome::Skipped,
            http_status: None,
            detail: Some(detail.to_string()),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::input::config::{AuthConfig, StudioConfig};
    use crate::service::metrics::Metrics;
    use crate::studio::auth::Auth;
    use std::time::Duration;

    fn client() -> StudioClient {
        let token = || "t".to_string().into();
        let studio = StudioConfig {
            base_url: "http://127.0.0.1:9".parse().unwrap(),
            auth: AuthConfig::Token {
                token: token(),
                file: None,
            },
            requests_per_second: 10.0,
            burst: 1,
            concurrency: 1,
            batch_size: 50,
            timeout: Duration::from_secs(1),
            max_retries: 0,
            extra_roots: Default::default(),
        };
        StudioClient::new(
            &studio,
            Auth::Static(std::sync::Arc::new(crate::studio::auth::StaticToken::new(
                token(),
                None,
            ))),
            Metrics::new(),
        )
        .unwrap()
    }

    fn action(user_id: u64, kind: ChangeKind) -> Change {
        Change {
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
            email: Some(format!("U{id}@X.edu")),
            role_names: roles.iter().map(|r| r.to_string()).collect(),
        }
    }

    #[test]
    fn verify_fails_an_action_studio_did_not_take() {
        let client = client();
        let managed = ManagedRoles::new(vec!["Admin".into()]);
        let applier = Applier {
            client: &client,
            managed: &managed,
            batch_size: 50,
            concurrency: 1,
            shutdown: CancellationToken::new(),
        };
        let users = [
            studio_user(1, &["Admin"]),
            studio_user(2, &[]),
            studio_user(3, &["Admin", "Teacher"]),
            studio_user(4, &["Teacher"]),
        ];
        let cases = [
            (action(1, ChangeKind::Add), Outcome::Applied),
            (action(2, ChangeKind::Add), Outcome::Failed),
            (action(3, ChangeKind::Remove), Outcome::Failed),
            (action(4, ChangeKind::Remove), Outcome::Applied),
        ];
        for (a, want) in cases {
            let o = applier.verify(a.clone(), &users);
            assert_eq!(o.outcome, want, "{a:?}: {:?}", o.detail);
            assert_eq!(o.http_status, Some(200));
            if want == Outcome::Failed {
                assert!(o.detail.unwrap().contains("Studio answered 200 but"));
            }
        }
        // The account's email is not the action's: failed, whatever the roles say.
        let renamed = StudioUser {
            email: Some("someone.else@x.edu".into()),
            ..studio_user(1, &["Admin"])
        };
        let o = applier.verify(action(1, ChangeKind::Add), &[renamed]);
        assert_eq!(o.outcome, Outcome::Failed);
        let detail = o.detail.unwrap();
        assert!(
            detail.starts_with(MISDIRECTED)
                && detail.contains("\"someone.else@x.edu\", not u1@x.edu"),
            "{detail}"
        );
    }
}
