//! `safety.remove_after`: a grant missing from the sources waits before it is removed. Each
//! `apply` is a new process, so every step also shows that the waiting is read back from the
//! history, not kept in memory.

use crate::support::{count, user, Opts, Tenant};

const ALL: &str =
    "users:\n  ada@school.edu: [Admin]\n  bob@school.edu: [Admin]\n  cy@school.edu: [Admin]\n";
const NO_BOB: &str = "users:\n  ada@school.edu: [Admin]\n  cy@school.edu: [Admin]\n";

async fn tenant(remove_after: &str) -> Tenant {
    let t = Tenant::start(vec![
        user(1, Some("ada@school.edu"), &["Admin"]),
        user(2, Some("bob@school.edu"), &["Admin"]),
        user(3, Some("cy@school.edu"), &["Admin"]),
    ])
    .await;
    let text = t.config_text(&Opts::default()).replace(
        "safety:\n",
        &format!("safety:\n  remove_after: {remove_after}\n"),
    );
    std::fs::write(t.config_path(), text).unwrap();
    t
}

#[tokio::test]
async fn a_grant_missing_for_one_run_waits_and_goes_after_the_period() {
    let t = tenant("2 runs").await;
    t.write_roles(NO_BOB);
    let plan = t.cli(&["plan"]).await;
    assert_eq!(plan.code, 0, "nothing to send yet: {plan:?}");
    assert!(
        plan.stdout.contains("bob@school.edu") && plan.stdout.contains("removal in 2 runs"),
        "{plan:?}"
    );
    let first = t.cli(&["apply"]).await;
    assert_eq!(first.code, 0, "{first:?}");
    assert_eq!(t.holders("Admin").len(), 3, "missing for one run: kept");
    // A dry run does not count as a run that saw it missing.
    let plan = t.cli(&["plan"]).await;
    assert!(plan.stdout.contains("removal in 1 run"), "{plan:?}");
    let second = t.cli(&["apply"]).await;
    assert_eq!(second.code, 0, "{second:?}");
    assert_eq!(
        t.holders("Admin").len(),
        3,
        "missing for two runs: still kept"
    );
    let plan = t.cli(&["plan"]).await;
    assert_eq!(plan.code, 2, "the removal is due: {plan:?}");
    assert!(plan.stdout.contains("- bob@school.edu"), "{plan:?}");
    let third = t.cli(&["apply"]).await;
    assert_eq!(third.code, 0, "{third:?}");
    assert_eq!(t.holders("Admin"), vec!["ada@school.edu", "cy@school.edu"]);

    let db = t.history().await;
    assert_eq!(
        count(&db, "SELECT COUNT(*) FROM run_actions WHERE email = 'bob@school.edu' AND action = 'remove' AND outcome = 'applied'").await,
        1
    );
    assert_eq!(
        count(&db, "SELECT COUNT(*) FROM run_pending WHERE email = 'bob@school.edu' AND reason = 'remove_after'").await,
        4,
        "two runs and two plans reported it waiting"
    );
    // Removed: nothing is waiting any more.
    let again = t.cli(&["apply"]).await;
    assert_eq!(again.code, 0, "{again:?}");
    let db = t.history().await;
    assert_eq!(count(&db, "SELECT COUNT(*) FROM missing_grants").await, 0);
}

#[tokio::test]
async fn a_grant_that_comes_back_in_time_is_untouched_and_its_wait_starts_over() {
    let t = tenant("2 runs").await;
    t.write_roles(NO_BOB);
    assert_eq!(t.cli(&["apply"]).await.code, 0);
    assert_eq!(t.cli(&["apply"]).await.code, 0);
    // Back before the third run: nothing happens, and nothing is waiting.
    t.write_roles(ALL);
    let back = t.cli(&["apply"]).await;
    assert_eq!(back.code, 0, "{back:?}");
    assert_eq!(t.holders("Admin").len(), 3);
    let db = t.history().await;
    assert_eq!(count(&db, "SELECT COUNT(*) FROM missing_grants").await, 0);
    assert_eq!(
        count(
            &db,
            "SELECT COUNT(*) FROM run_actions WHERE action = 'remove'"
        )
        .await,
        0
    );
    // Missing again: the whole period again.
    t.write_roles(NO_BOB);
    let plan = t.cli(&["plan"]).await;
    assert!(plan.stdout.contains("removal in 2 runs"), "{plan:?}");
    assert_eq!(t.cli(&["apply"]).await.code, 0);
    assert_eq!(t.holders("Admin").len(), 3);
}

#[tokio::test]
async fn a_time_period_shows_hours_and_keeps_the_grant() {
    let t = tenant("6h").await;
    t.write_roles(NO_BOB);
    assert_eq!(t.cli(&["apply"]).await.code, 0);
    let plan = t.cli(&["plan"]).await;
    assert_eq!(plan.code, 0, "{plan:?}");
    assert!(plan.stdout.contains("removal in 6h"), "{plan:?}");
    assert_eq!(t.holders("Admin").len(), 3);
}

#[tokio::test]
async fn a_bad_period_names_the_key_and_line() {
    let t = tenant("soon").await;
    t.write_roles(ALL);
    let run = t.cli(&["validate"]).await;
    assert_eq!(run.code, 1, "{run:?}");
    assert!(run.stderr.contains("safety.remove_after"), "{run:?}");
    assert!(run.stderr.contains("15"), "the line of the key: {run:?}");
}
