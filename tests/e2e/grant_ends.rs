//! Grants that end (`{role, until, reason}` in the roles file): a grant past its last day is
//! removed by the next run, at once (an end is declared, `safety.remove_after` does not delay
//! it), with its end and reason in the history; an `until` already past when the file was
//! written, or not a date, is refused with its line and nothing is sent.
//!
//! "When the file was written" is its modification time: a file written days ago whose grant
//! has since ended is set so here, as time would have.

use crate::support::{count, user, Opts, Tenant};
use std::time::{Duration, SystemTime};

fn day(offset: i64) -> String {
    (chrono::Utc::now().date_naive() + chrono::Duration::days(offset)).to_string()
}

/// Makes the roles file look written `days` ago.
fn written_days_ago(t: &Tenant, days: u64) {
    let f = std::fs::File::options()
        .write(true)
        .open(t.path("roles.yaml"))
        .unwrap();
    f.set_modified(SystemTime::now() - Duration::from_secs(days * 24 * 3600))
        .unwrap();
}

fn roles(bob_until: &str) -> String {
    format!(
        "users:\n  ada@school.edu: [Admin]\n  bob@school.edu: [{{role: Admin, until: {bob_until}, reason: \"visiting admin, ticket 4411\"}}]\n"
    )
}

async fn tenant() -> Tenant {
    let t = Tenant::start(vec![
        user(1, Some("ada@school.edu"), &["Admin"]),
        user(2, Some("bob@school.edu"), &[]),
    ])
    .await;
    // A grace period that would hold a missing grant for a long time: an expiry ignores it.
    let text = t
        .config_text(&Opts::default())
        .replace("safety:\n", "safety:\n  remove_after: 5 runs\n");
    std::fs::write(t.config_path(), text).unwrap();
    t
}

#[tokio::test]
async fn a_grant_past_its_until_is_removed_on_the_next_run_without_waiting() {
    let t = tenant().await;
    t.write_roles(&roles(&day(1)));
    let plan = t.cli(&["plan"]).await;
    assert_eq!(plan.code, 2, "{plan:?}");
    assert!(
        plan.stdout.contains("+ bob@school.edu")
            && plan.stdout.contains("expires in 1 day")
            && plan.stdout.contains("visiting admin, ticket 4411"),
        "{plan:?}"
    );
    let first = t.cli(&["apply"]).await;
    assert_eq!(first.code, 0, "{first:?}");
    assert_eq!(t.holders("Admin"), ["ada@school.edu", "bob@school.edu"]);

    // Two days on: the same grant, written back then, ended yesterday.
    t.write_roles(&roles(&day(-1)));
    written_days_ago(&t, 3);
    let validate = t.cli(&["validate"]).await;
    assert_eq!(validate.code, 0, "an ended grant is no error: {validate:?}");
    assert!(
        validate.stdout.contains("1 grant(s) have ended"),
        "{validate:?}"
    );
    let plan = t.cli(&["plan"]).await;
    assert!(
        plan.stdout.contains("- bob@school.edu")
            && plan.stdout.contains(&format!(
                "its grant ended (until {}; visiting admin, ticket 4411)",
                day(-1)
            )),
        "{plan:?}"
    );
    assert!(!plan.stdout.contains("removal in"), "no wait: {plan:?}");
    let run = t.cli(&["apply"]).await;
    assert_eq!(run.code, 0, "{run:?}");
    assert_eq!(t.holders("Admin"), ["ada@school.edu"]);

    let db = t.history().await;
    assert_eq!(
        count(&db, &format!("SELECT COUNT(*) FROM run_actions WHERE email = 'bob@school.edu' AND action = 'remove' AND outcome = 'applied' AND until = '{}' AND reason = 'visiting admin, ticket 4411'", day(-1))).await,
        1
    );
    let trail = t.cli(&["history", "--email", "bob@school.edu"]).await;
    assert_eq!(trail.code, 0, "{trail:?}");
    assert!(
        trail
            .stdout
            .contains(&format!("its grant ended (until {})", day(-1)))
            && trail.stdout.contains(&format!("until {})", day(1)))
            && trail.stdout.contains("reason: visiting admin, ticket 4411"),
        "{trail:?}"
    );
}

#[tokio::test]
async fn an_until_already_past_when_the_file_is_written_is_refused_with_its_line() {
    let t = tenant().await;
    t.write_roles(&roles(&day(-1)));
    for cmd in ["validate", "apply"] {
        let run = t.cli(&[cmd]).await;
        assert_eq!(run.code, 1, "{run:?}");
        assert!(
            run.stderr
                .contains("roles.yaml:3: bob@school.edu: Admin until")
                && run
                    .stderr
                    .contains("had already ended when the file was last changed"),
            "{run:?}"
        );
    }
    assert_eq!(t.holders("Admin"), ["ada@school.edu"], "nothing sent");

    t.write_roles("users:\n  ada@school.edu: [Admin]\n  bob@school.edu: [{role: Admin, until: 2027-02-30}]\n  cy@school.edu: [{role: Admin, untill: 2099-01-01}]\n");
    let run = t.cli(&["validate"]).await;
    assert_eq!(run.code, 1, "{run:?}");
    assert!(
        run.stderr
            .contains("roles.yaml:3: bob@school.edu: until \"2027-02-30\" is not a date")
            && run
                .stderr
                .contains("roles.yaml:4: cy@school.edu: unknown key \"untill\""),
        "{run:?}"
    );
    let db = t.history().await;
    assert_eq!(
        count(&db, "SELECT COUNT(*) FROM run_actions").await,
        0,
        "nothing planned"
    );
}

#[tokio::test]
async fn a_csv_grant_ends_the_same_way() {
    let t = Tenant::start(vec![
        user(1, Some("ada@school.edu"), &["Admin"]),
        user(2, Some("bob@school.edu"), &["CaptionEditor"]),
    ])
    .await;
    t.write_config(&Opts {
        source: "  csv: grants.csv\n".into(),
        ..Opts::default()
    });
    let csv = |until: &str| {
        format!("email,role,until,reason\r\nada@school.edu,Admin,,\r\nbob@school.edu,CaptionEditor,{until},\"MED101 TA, fall\"\r\n")
    };
    std::fs::write(t.path("grants.csv"), csv(&day(-2))).unwrap();
    let run = t.cli(&["apply"]).await;
    assert_eq!(run.code, 1, "written today with a past end: {run:?}");
    assert!(
        run.stderr
            .contains("grants.csv:3: bob@school.edu: CaptionEditor until"),
        "{run:?}"
    );
    assert_eq!(
        t.holders("CaptionEditor"),
        ["bob@school.edu"],
        "nothing sent"
    );
    let f = std::fs::File::options()
        .write(true)
        .open(t.path("grants.csv"))
        .unwrap();
    f.set_modified(SystemTime::now() - Duration::from_secs(5 * 24 * 3600))
        .unwrap();
    let run = t.cli(&["apply"]).await;
    assert_eq!(run.code, 0, "{run:?}");
    assert!(t.holders("CaptionEditor").is_empty());
    assert_eq!(t.holders("Admin"), ["ada@school.edu"]);
}

#[tokio::test]
async fn a_file_dated_in_the_future_never_refuses_a_current_grant() {
    let t = tenant().await;
    t.write_roles(&roles(&day(0)));
    // Written where the clock is ahead: its modification time is days from now.
    let f = std::fs::File::options()
        .write(true)
        .open(t.path("roles.yaml"))
        .unwrap();
    f.set_modified(SystemTime::now() + Duration::from_secs(3 * 24 * 3600))
        .unwrap();
    let run = t.cli(&["apply"]).await;
    assert_eq!(run.code, 0, "{run:?}");
    assert_eq!(t.holders("Admin"), ["ada@school.edu", "bob@school.edu"]);
    let plan = t.cli(&["plan"]).await;
    assert!(plan.stdout.contains("expires today"), "{plan:?}");
}
