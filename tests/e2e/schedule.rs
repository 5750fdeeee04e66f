//! The schedule inside the daemon, end to end: a `schedule` the daemon cannot follow is refused
//! like any other config error (by `validate` and by `daemon` at start, naming the key and its
//! line, before anything reaches Studio); an edited schedule replaces the running one; and a
//! daemon idle between slots stops at once on SIGTERM: its scheduler stops with the daemon's
//! one cancellation.

use crate::support::daemon::{wait_for, wait_for_history, Daemon, YEARLY};
use crate::support::{admins, count, user, Opts, Tenant};
use std::time::Duration;

/// Deadline for one awaited condition.
const WAIT: Duration = Duration::from_secs(15);
/// How long an idle daemon may take to exit on SIGTERM: well under the 30 s a run in flight
/// is given, so a scheduler that kept the daemon waiting would fail this.
const PROMPT: Duration = Duration::from_secs(10);

#[tokio::test]
async fn an_invalid_schedule_is_refused_by_validate_and_by_the_daemon_naming_key_and_line() {
    let t = Tenant::start(vec![user(1, Some("alice@school.edu"), &[])]).await;
    t.write_roles(&admins(&["alice@school.edu"]));
    for (schedule, why) in [
        ("*/15 * * * *", "has 5 fields"),
        ("0 61 * * * *", "is not a valid cron expression"),
        ("0 0 0 30 2 *", "never fires"),
    ] {
        let opts = Opts {
            extra: format!("schedule: \"{schedule}\"\n"),
            ..Opts::default()
        };
        t.write_config(&opts);
        let line = 1 + t
            .config_text(&opts)
            .lines()
            .position(|l| l.starts_with("schedule:"))
            .expect("the schedule line");
        let at = format!("studio-role-sync.yaml:{line}: schedule: ");
        for command in ["validate", "daemon"] {
            let run = t.cli(&[command]).await;
            assert_eq!(run.code, 1, "{command} with {schedule:?}: {run:?}");
            assert!(
                run.stderr.contains(&at) && run.stderr.contains(why),
                "{command} names the key, its line and why ({at}…{why}): {run:?}"
            );
        }
    }
    assert!(t.sim.requests().is_empty(), "nothing reached Studio");
    assert!(!t.history_path().exists(), "no history was opened");
}

#[tokio::test]
async fn sigterm_while_idle_between_slots_stops_the_daemon_promptly() {
    let t = Tenant::start(vec![
        user(1, Some("alice@school.edu"), &[]),
        user(2, Some("bob@school.edu"), &[]),
    ])
    .await;
    t.write_config(&Opts {
        extra: YEARLY.into(),
        ..Opts::default()
    });
    t.write_roles(&admins(&["alice@school.edu"]));
    let mut d = Daemon::start(&t);
    let db = wait_for_history(&t, "runs", WAIT).await;
    // Idle: the startup run is over and the next slot is months away.
    wait_for("the startup run to succeed", WAIT, || async {
        let done = "SELECT COUNT(*) FROM runs WHERE status = 'succeeded'";
        (count(&db, done).await == 1).then_some(())
    })
    .await;
    assert_eq!(t.holders("Admin"), vec!["alice@school.edu"]);
    let requests = t.sim.requests().len();

    d.signal("-TERM");
    assert_eq!(d.wait_exit(PROMPT).await, Some(0), "{}", d.log());
    let log = d.log();
    let stopping = log.find("SIGTERM received").expect("the signal is logged");
    let stopped = log.find("daemon stopped").expect("the stop is logged");
    assert!(stopping < stopped, "{log}");
    assert!(!log.contains("ERROR"), "a clean stop logs no error:\n{log}");
    assert_eq!(count(&db, "SELECT COUNT(*) FROM runs").await, 1, "{log}");
    assert_eq!(
        t.sim.requests().len(),
        requests,
        "nothing sent after SIGTERM"
    );
}

/// A new schedule written while the daemon runs takes over at once (the old one is stopped
/// through its own token), and the daemon still stops promptly on SIGTERM.
#[tokio::test]
async fn an_edited_schedule_replaces_the_running_one_and_stops_with_the_daemon() {
    let t = Tenant::start(vec![user(1, Some("alice@school.edu"), &[])]).await;
    let yearly = Opts {
        extra: YEARLY.into(),
        ..Opts::default()
    };
    t.write_config(&yearly);
    t.write_roles(&admins(&["alice@school.edu"]));
    let mut d = Daemon::start(&t);
    let db = wait_for_history(&t, "runs", WAIT).await;
    wait_for("the startup run to succeed", WAIT, || async {
        let done = "SELECT COUNT(*) FROM runs WHERE status = 'succeeded'";
        (count(&db, done).await == 1).then_some(())
    })
    .await;

    t.write_config(&Opts {
        extra: "schedule: \"* * * * * *\"\n".into(),
        ..yearly
    });
    wait_for("two scheduled runs on the new schedule", WAIT, || async {
        let scheduled = "SELECT COUNT(*) FROM runs WHERE trigger = 'schedule'";
        (count(&db, scheduled).await >= 2).then_some(())
    })
    .await;
    assert!(d.log().contains("new schedule in effect"), "{}", d.log());

    d.signal("-TERM");
    assert_eq!(d.wait_exit(PROMPT).await, Some(0), "{}", d.log());
    assert!(d.log().contains("daemon stopped"), "{}", d.log());
    let running = "SELECT COUNT(*) FROM runs WHERE status = 'running'";
    assert_eq!(count(&db, running).await, 0);
}
