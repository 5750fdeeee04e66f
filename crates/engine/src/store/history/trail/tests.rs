//! The trail against a real history file: streaks joined across runs that never read Studio,
//! broken by a run that planned without the email, by a new reason, and bounded by `since`
//! and `limit`.

use super::*;
use crate::model::change::{ChangeKind, Outcome};
use crate::store::history::backends::{self, history_tests};
use crate::store::history::{ActionRow, PendingRow, RunRecord};

struct Fixture {
    h: History,
}

fn fixture(h: History) -> Fixture {
    Fixture { h }
}

fn pending(email: &str, reason: &str) -> PendingRow {
    PendingRow {
        email: email.into(),
        reason: reason.into(),
        user_id: None,
        detail: Some(format!("{reason} detail")),
    }
}

fn add(email: &str, outcome: Outcome) -> ActionRow {
    ActionRow {
        email: Some(email.into()),
        user_id: 42,
        role: "Admin".into(),
        action: ChangeKind::Add,
        outcome,
        http_status: Some(200),
        detail: None,
        source: None,
        until: None,
        reason: None,
    }
}

impl Fixture {
    /// A run that planned: `actions` and `pending` recorded, finished with `status`.
    async fn planned(&self, status: &str, actions: &[ActionRow], pending: &[PendingRow]) -> i64 {
        let id = self.h.start_run("schedule", false).await.unwrap();
        let update = crate::store::history::PendingUpdate {
            rows: pending,
            searched: &[],
            backoff: crate::model::recheck::Backoff::default(),
        };
        self.h.record_plan(id, actions, &update).await.unwrap();
        self.h
            .finish_run(&RunRecord {
                id,
                status: RunStatus::parse(status).expect("a status"),
                pending: pending.len() as i64,
                adds_planned: actions.len() as i64,
                ..Default::default()
            })
            .await
            .unwrap();
        id
    }

    /// A run that failed before planning (Studio unreachable).
    async fn failed_early(&self) -> i64 {
        let id = self.h.start_run("schedule", false).await.unwrap();
        self.h
            .finish_run(&RunRecord {
                id,
                status: RunStatus::Failed,
                error: Some("reading Studio failed".into()),
                ..Default::default()
            })
            .await
            .unwrap();
        id
    }
}

/// `(kind, newest run, oldest run, runs)` of each entry, for compact assertions.
fn shape(entries: &[TrailEntry]) -> Vec<(&'static str, i64, i64, i64)> {
    entries
        .iter()
        .map(|e| match &e.event {
            TrailEvent::Action { .. } => ("action", e.run_id, e.run_id, 1),
            TrailEvent::LeftAlone {
                first_run_id, runs, ..
            } => ("left_alone", e.run_id, *first_run_id, *runs),
        })
        .collect()
}

#[test]
fn times_parse_as_dates_rfc3339_or_durations_back() {
    let now = DateTime::parse_from_rfc3339("2025-03-10T12:00:00Z")
        .unwrap()
        .with_timezone(&Utc);
    let at = |s| history_time(parse_time(s, now).unwrap());
    assert_eq!(at("2025-03-01"), "2025-03-01T00:00:00.000Z");
    assert_eq!(at("2025-03-01T08:30:00+01:00"), "2025-03-01T07:30:00.000Z");
    assert_eq!(at("7d"), "2025-03-03T12:00:00.000Z");
    assert_eq!(at(" 12h "), "2025-03-10T00:00:00.000Z");
    let e = parse_time("last tuesday", now).unwrap_err();
    assert!(e.contains("\"last tuesday\" is not a time"), "{e}");
}

#[test]
fn gaps_join_only_over_runs_that_never_planned() {
    assert!(only_silent_between(&[], 3, 4));
    assert!(only_silent_between(&[5, 6], 4, 7));
    assert!(!only_silent_between(&[5], 4, 7));
    assert!(!only_silent_between(&[2, 8], 4, 7));
}

/// The trail reads through the indexes, whatever the size of the history: the plans name
/// them, and neither scans a table nor sorts.
#[tokio::test]
async fn the_trail_queries_use_the_email_and_time_indexes() {
    let (h, _dir) = backends::sqlite().await;
    let f = fixture(h);
    let plan = |sql: &'static str| {
        let pool = f.h.sqlite_pool();
        async move {
            let rows: Vec<(i64, i64, i64, String)> = Sql::new(format!("EXPLAIN QUERY PLAN {sql}"))
                .bind("ada@x.edu")
                .bind(1)
                .bind(10)
                .fetch_all(&pool)
                .await
                .unwrap();
            rows.into_iter().map(|r| r.3).collect::<Vec<_>>().join("; ")
        }
    };
    let actions = plan(TRAIL_ACTIONS).await;
    assert!(
        actions.contains("SEARCH a USING INDEX run_actions_email (email=?)")
            && actions.contains("SEARCH r USING INTEGER PRIMARY KEY")
            && !actions.contains("TEMP B-TREE"),
        "{actions}"
    );
    let since = plan(FIRST_RUN_SINCE).await;
    assert!(
        since.contains("SEARCH runs USING COVERING INDEX runs_started_at (started_at>?)")
            || since.contains("SEARCH runs USING INDEX runs_started_at (started_at>?)"),
        "{since}"
    );
}

history_tests! {
    async fn a_streak_is_one_entry_across_runs_that_never_read_studio(h: History) {
        let f = fixture(h);
        let ada = || pending("ada@x.edu", "not_in_studio");
        f.planned("succeeded", &[], &[ada()]).await; // 1
        f.failed_early().await; // 2: Studio down, says nothing about ada
        f.planned(
            "succeeded",
            &[],
            &[ada(), pending("bob@x.edu", "ambiguous")],
        )
        .await; // 3
        f.planned("succeeded", &[add("ada@x.edu", Outcome::Applied)], &[])
            .await; // 4: found and added
        f.planned("succeeded", &[], &[]).await; // 5
        let trail = f.h.email_trail(" Ada@X.edu ", None, 100).await.unwrap();
        assert_eq!(
            shape(&trail),
            vec![("action", 4, 4, 1), ("left_alone", 3, 1, 2)],
            "{trail:#?}"
        );
        let TrailEvent::LeftAlone {
            reason,
            detail,
            first_started_at,
            ..
        } = &trail[1].event
        else {
            unreachable!()
        };
        assert_eq!(reason, "not_in_studio");
        assert_eq!(detail.as_deref(), Some("not_in_studio detail"));
        assert!(first_started_at < &trail[1].started_at);
        assert_eq!(trail[0].run_status, RunStatus::Succeeded);
        assert_eq!(trail[0].trigger, "schedule");
    }

    async fn a_run_that_planned_without_the_email_or_a_new_reason_ends_a_streak(h: History) {
        let f = fixture(h);
        let p = |reason| pending("ada@x.edu", reason);
        f.planned("succeeded", &[], &[p("not_in_studio")]).await; // 1
        f.planned("succeeded", &[], &[p("not_in_studio")]).await; // 2
        f.planned("succeeded", &[], &[]).await; // 3: ada not pending (left the roles file)
        f.planned("succeeded", &[], &[p("not_in_studio")]).await; // 4
        f.planned("aborted", &[], &[p("ambiguous")]).await; // 5
        f.planned("partial", &[], &[p("not_in_studio")]).await; // 6
        f.planned("succeeded", &[], &[p("not_in_studio")]).await; // 7
        let trail = f.h.email_trail("ada@x.edu", None, 100).await.unwrap();
        assert_eq!(
            shape(&trail),
            vec![
                ("left_alone", 7, 6, 2),
                ("left_alone", 5, 5, 1),
                ("left_alone", 4, 4, 1),
                ("left_alone", 2, 1, 2),
            ]
        );
        assert_eq!(trail[1].run_status, RunStatus::Aborted);
    }

    async fn since_and_limit_bound_the_trail(h: History) {
        let f = fixture(h);
        for day in 1..=3 {
            let id = f
                .planned("succeeded", &[add("ada@x.edu", Outcome::Failed)], &[])
                .await;
            Sql::new("UPDATE runs SET started_at = ? WHERE id = ?")
                .bind(format!("2025-03-0{day}T10:00:00.000Z"))
                .bind(id)
                .execute(&f.h.db)
                .await
                .unwrap();
        }
        let all = f.h.email_trail("ada@x.edu", None, 100).await.unwrap();
        assert_eq!(
            all.iter().map(|e| e.run_id).collect::<Vec<_>>(),
            vec![3, 2, 1]
        );
        let two = f.h.email_trail("ada@x.edu", None, 2).await.unwrap();
        assert_eq!(two.iter().map(|e| e.run_id).collect::<Vec<_>>(), vec![3, 2]);
        let third = DateTime::parse_from_rfc3339(&all[0].started_at)
            .unwrap()
            .with_timezone(&Utc);
        let since =
            f.h.email_trail("ada@x.edu", Some(third), 100)
                .await
                .unwrap();
        assert_eq!(since.len(), 1);
        assert_eq!(since[0].run_id, 3);
        let future = third + chrono::Duration::days(1);
        assert!(f
            .h
            .email_trail("ada@x.edu", Some(future), 100)
            .await
            .unwrap()
            .is_empty());
        assert!(f
            .h
            .email_trail("nobody@x.edu", None, 100)
            .await
            .unwrap()
            .is_empty());
    }
}
