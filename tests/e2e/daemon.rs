//! The `daemon` command, end to end: the real binary as a service against the simulator.
//!
//! Each test starts its own simulated tenant and daemon (`http.listen: 127.0.0.1:0`; the bound
//! port is read from the `listening on ADDR` log line), and checks what an admin would see:
//! roles in Studio, rows in the history, HTTP answers, exit codes.

use crate::support::daemon::{wait_for_history, Daemon, YEARLY};
use crate::support::{admins, count, user, Opts, Tenant};
use sqlx::{Row, SqlitePool};
use std::future::Future;
use std::time::Duration;
use studio_sim::{Faults, SimUser};

/// Deadline for one awaited condition.
const WAIT: Duration = Duration::from_secs(15);

/// Polls `check` until it gives a value; panics with `what` after [`WAIT`].
async fn wait_for<T, F, Fut>(what: &str, check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    crate::support::daemon::wait_for(what, WAIT, check).await
}

/// `(id, trigger, status)` of every run, oldest first.
async fn runs(db: &SqlitePool) -> Vec<(i64, String, String)> {
    sqlx::query("SELECT id, trigger, status FROM runs ORDER BY id")
        .fetch_all(db)
        .await
        .expect("runs query")
        .iter()
        .map(|r| (r.get(0), r.get(1), r.get(2)))
        .collect()
}

async fn get(url: &str) -> (u16, String) {
    let r = reqwest::get(url).await.expect("daemon answers HTTP");
    (r.status().as_u16(), r.text().await.unwrap())
}

async fn readyz(base: &str) -> (u16, serde_json::Value) {
    let (status, body) = get(&format!("{base}/readyz")).await;
    (
        status,
        serde_json::from_str(&body).expect("readyz answers JSON"),
    )
}

/// Waits until `/readyz` answers `status` with `reason` (when given) and returns the body.
async fn wait_ready(base: &str, status: u16, reason: Option<&str>) -> serde_json::Value {
    wait_for(&format!("/readyz {status} {reason:?}"), || async {
        let (s, body) = readyz(base).await;
        (s == status && reason.is_none_or(|r| body["reason"] == r)).then_some(body)
    })
    .await
}

fn population(n: u64) -> (Vec<SimUser>, Vec<String>) {
    let emails: Vec<String> = (1..=n).map(|i| format!("user{i}@school.edu")).collect();
    let users = emails
        .iter()
        .zip(1..)
        .map(|(e, id)| user(id, Some(e), &[]))
        .collect();
    (users, emails)
}

/// A tenant whose Studio is slow enough (one request at a time, 150 ms each) that a run of
/// `n` adds is still in flight when the test acts.
async fn slow_tenant(n: u64, schedule: &str) -> (Tenant, Vec<String>) {
    let (users, emails) = population(n);
    let t = Tenant::start(users).await;
    t.write_config(&Opts {
        batch_size: 1,
        concurrency: 1,
        extra: format!("schedule: \"{schedule}\"\n"),
        ..Opts::default()
    });
    let refs: Vec<&str> = emails.iter().map(String::as_str).collect();
    t.write_roles(&admins(&refs));
    t.sim.set_faults(Faults {
        latency: Duration::from_millis(150),
        ..Faults::default()
    });
    (t, emails)
}

#[tokio::test]
async fn scheduled_runs_are_recorded_and_endpoints_answer() {
    let t = Tenant::start(vec![
        user(1, Some("alice@school.edu"), &[]),
        user(2, Some("bob@school.edu"), &["Admin"]),
    ])
    .await;
    t.write_config(&Opts {
        extra: "schedule: \"*/2 * * * * *\"\n".into(),
        ..Opts::default()
    });
    t.write_roles(&admins(&["alice@school.edu", "nobody@school.edu"]));
    let mut d = Daemon::start(&t);
    let base = d.base_url(WAIT).await;
    let db = wait_for_history(&t, "runs", WAIT).await;

    let all = wait_for("two scheduled runs", || async {
        let all = runs(&db).await;
        let scheduled = all
            .iter()
            .filter(|(_, trigger, status)| trigger == "schedule" && status == "succeeded")
            .count();
        (scheduled >= 2).then_some(all)
    })
    .await;
    assert_eq!(
        all[0].1, "startup",
        "the first run is the startup run: {all:?}"
    );
    assert_eq!(all[0].2, "succeeded", "{all:?}");
    assert_eq!(t.holders("Admin"), vec!["alice@school.edu"]);
    let log = d.log();
    assert!(
        log.lines()
            .any(|l| l.contains("run finished") && l.contains("run_id=1")),
        "run lines carry the run id:\n{log}"
    );

    let (status, body) = get(&format!("{base}/healthz")).await;
    assert_eq!(status, 200, "{body}");
    let (status, body) = readyz(&base).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["ready"], true);

    let (status, metrics) = get(&format!("{base}/metrics")).await;
    assert_eq!(status, 200);
    for expected in [
        "studio_role_sync_runs_total{status=\"succeeded\"}",
        "studio_role_sync_actions_total{action=\"add\",outcome=\"applied\"} 1",
        "studio_role_sync_actions_total{action=\"remove\",outcome=\"applied\"} 1",
        "studio_role_sync_api_requests_total{endpoint=",
        "status=\"200\"}",
        "studio_role_sync_run_duration_seconds_count",
        "studio_role_sync_pending_users 1",
        "studio_role_sync_seconds_since_last_success ",
        "studio_role_sync_config_valid 1",
    ] {
        assert!(metrics.contains(expected), "no {expected} in\n{metrics}");
    }

    d.signal("-TERM");
    assert_eq!(d.wait_exit(WAIT).await, Some(0), "{}", d.log());
    assert_eq!(
        count(&db, "SELECT COUNT(*) FROM runs WHERE status = 'running'").await,
        0
    );
}

#[tokio::test]
async fn edits_are_applied_at_once_and_bad_edits_are_kept_out() {
    let t = Tenant::start(vec![
        user(1, Some("alice@school.edu"), &[]),
        user(2, Some("carol@school.edu"), &[]),
    ])
    .await;
    let opts = Opts {
        extra: YEARLY.into(),
        ..Opts::default()
    };
    t.write_config(&opts);
    t.write_roles(&admins(&["alice@school.edu"]));
    let mut d = Daemon::start(&t);
    let base = d.base_url(WAIT).await;
    wait_ready(&base, 200, None).await;
    let db = wait_for_history(&t, "runs", WAIT).await;
    assert_eq!(t.holders("Admin"), vec!["alice@school.edu"]);

    // A good edit is applied without waiting for the (yearly) schedule.
    t.write_roles(&admins(&["alice@school.edu", "carol@school.edu"]));
    wait_for("carol to become an admin", || async {
        (t.holders("Admin").len() == 2).then_some(())
    })
    .await;
    let reload_runs = wait_for("the reload run recorded", || async {
        let all = runs(&db).await;
        let done = all
            .iter()
            .any(|(_, trigger, status)| trigger == "reload" && status == "succeeded");
        done.then_some(all)
    })
    .await;
    let before = reload_runs.len();

    // A bad edit (line 3 is not an email) that would also drop carol: reported, not applied.
    t.write_roles("users:\n  alice@school.edu: [Admin]\n  not-an-email: [Admin]\n");
    let body = wait_ready(&base, 503, Some("invalid_desired_state")).await;
    let detail = body["detail"].as_str().unwrap_or_default().to_string();
    assert!(detail.contains("roles.yaml:3"), "{body}");
    assert!(d.log().contains("roles.yaml:3"), "{}", d.log());
    let (_, metrics) = get(&format!("{base}/metrics")).await;
    assert!(
        metrics.contains("studio_role_sync_config_valid 0"),
        "{metrics}"
    );
    assert_eq!(
        t.holders("Admin"),
        vec!["alice@school.edu", "carol@school.edu"]
    );
    assert_eq!(runs(&db).await.len(), before, "no run from a bad file");

    // A bad config edit: reported with the config file's name, the previous config kept.
    std::fs::write(t.config_path(), "studio: [\n").unwrap();
    let body = wait_ready(&base, 503, Some("invalid_config")).await;
    assert!(
        body["detail"]
            .as_str()
            .is_some_and(|d| d.contains("studio-role-sync.yaml")),
        "{body}"
    );
    assert_eq!(runs(&db).await.len(), before);

    // Fixing both files brings the daemon back, and the fixed roles file is applied.
    t.write_config(&opts);
    t.write_roles(&admins(&["carol@school.edu"]));
    wait_for("alice to lose the role", || async {
        (t.holders("Admin") == vec!["carol@school.edu"]).then_some(())
    })
    .await;
    wait_ready(&base, 200, None).await;

    d.signal("-TERM");
    assert_eq!(d.wait_exit(WAIT).await, Some(0), "{}", d.log());
}

#[tokio::test]
async fn first_run_failing_makes_the_daemon_not_ready() {
    let t = Tenant::start(vec![user(1, Some("alice@school.edu"), &[])]).await;
    t.write_config(&Opts {
        extra: YEARLY.into(),
        ..Opts::default()
    });
    // Valid YAML, but an unmanaged role: the desired state is invalid from the start.
    t.write_roles("users:\n  alice@school.edu: [Teacher]\n");
    let mut d = Daemon::start(&t);
    let base = d.base_url(WAIT).await;
    let body = wait_ready(&base, 503, Some("invalid_desired_state")).await;
    assert!(
        body["detail"]
            .as_str()
            .is_some_and(|d| d.contains("roles.yaml:2")),
        "{body}"
    );
    let db = wait_for_history(&t, "runs", WAIT).await;
    wait_for("the failed startup run", || async {
        let all = runs(&db).await;
        (all.first().map(|r| r.2.as_str()) == Some("failed")).then_some(())
    })
    .await;
    assert!(t.holders("Admin").is_empty());

    // A fixed file while Studio is down: the run fails, and readiness says so.
    t.sim.set_faults(Faults {
        error_rate: 1.0,
        ..Faults::default()
    });
    t.write_roles(&admins(&["alice@school.edu"]));
    let body = wait_ready(&base, 503, Some("last_run_failed")).await;
    assert!(body["run_id"].as_i64().is_some(), "{body}");
    assert!(t.holders("Admin").is_empty());

    // Studio back, next edit: ready again.
    t.sim.set_faults(Faults::default());
    t.write_roles(&admins(&["alice@school.edu", "ghost@school.edu"]));
    wait_ready(&base, 200, None).await;
    assert_eq!(t.holders("Admin"), vec!["alice@school.edu"]);

    d.signal("-INT");
    assert_eq!(d.wait_exit(WAIT).await, Some(0), "{}", d.log());
}

#[tokio::test]
async fn a_second_instance_is_refused() {
    let t = Tenant::start(vec![user(1, Some("alice@school.edu"), &[])]).await;
    t.write_config(&Opts {
        extra: YEARLY.into(),
        ..Opts::default()
    });
    t.write_roles(&admins(&["alice@school.edu"]));
    let mut d = Daemon::start(&t);
    let base = d.base_url(WAIT).await;
    wait_ready(&base, 200, None).await;

    for command in ["daemon", "apply"] {
        let twin = t.cli(&[command]).await;
        assert_eq!(twin.code, 1, "{command}: {twin:?}");
        assert!(
            twin.stderr.contains("already using the history database"),
            "{command}: {twin:?}"
        );
    }

    d.signal("-TERM");
    assert_eq!(d.wait_exit(WAIT).await, Some(0), "{}", d.log());
    // The lock went with the process.
    let after = t.cli(&["apply"]).await;
    assert_eq!(after.code, 0, "{after:?}");
}

/// Runs the binary with the config file `config` (in the tenant's folder) and `args`.
async fn cli_with_config(t: &Tenant, config: &str, args: &[&str]) -> crate::support::Run {
    let out = tokio::time::timeout(
        WAIT,
        tokio::process::Command::new(env!("CARGO_BIN_EXE_studio-role-sync"))
            .arg("--config")
            .arg(t.path(config))
            .args(args)
            .env_remove("RUST_LOG")
            .kill_on_drop(true)
            .output(),
    )
    .await
    .unwrap_or_else(|_| panic!("{args:?} with {config} did not finish"))
    .unwrap();
    crate::support::Run {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

/// A second daemon, and an apply, with the config file `config` are refused: the lock is held.
async fn refused_as_second(t: &Tenant, config: &str) {
    for command in ["daemon", "apply"] {
        let twin = cli_with_config(t, config, &[command]).await;
        assert_eq!(twin.code, 1, "{config} {command}: {twin:?}");
        assert!(
            twin.stderr.contains("already using the history database"),
            "{config} {command}: {twin:?}"
        );
    }
}

/// One daemon per history file, whatever path names it: a second daemon (or apply) through a
/// symlink or a hard link to the running daemon's history is refused, and `trigger` through
/// either name reaches the running daemon.
#[tokio::test]
async fn a_second_instance_through_a_symlink_or_a_hard_link_is_refused() {
    let t = Tenant::start(vec![user(1, Some("alice@school.edu"), &[])]).await;
    let opts = Opts {
        extra: YEARLY.into(),
        ..Opts::default()
    };
    t.write_config(&opts);
    t.write_roles(&admins(&["alice@school.edu"]));
    let mut d = Daemon::start(&t);
    let base = d.base_url(WAIT).await;
    wait_ready(&base, 200, None).await;

    std::fs::create_dir(t.path("elsewhere")).unwrap();
    std::os::unix::fs::symlink(t.path("state"), t.path("elsewhere/state-link")).unwrap();
    std::os::unix::fs::symlink(t.history_path(), t.path("elsewhere/history-link.db")).unwrap();
    let write_config = |config: &str, history: &str| {
        let text = t
            .config_text(&opts)
            .replace("history: state/history.db", &format!("history: {history}"));
        std::fs::write(t.path(config), text).unwrap();
    };
    for (config, history) in [
        ("symlinked-folder.yaml", "elsewhere/state-link/history.db"),
        ("symlink.yaml", "elsewhere/history-link.db"),
    ] {
        write_config(config, history);
        refused_as_second(&t, config).await;
        let asked = cli_with_config(&t, config, &["trigger", "--by", "tester"]).await;
        assert_eq!(asked.code, 0, "{config} trigger: {asked:?}");
        assert!(asked.stdout.contains("The daemon"), "{asked:?}");
    }

    // A hard link: the same lock. It would also give SQLite a second journal (runs lost at a
    // checkpoint), so every command that writes the history refuses it, through either name,
    // and says what to do.
    std::fs::hard_link(t.history_path(), t.path("elsewhere/hard-link.db")).unwrap();
    write_config("hard-link.yaml", "elsewhere/hard-link.db");
    refused_as_second(&t, "hard-link.yaml").await;
    for config in ["hard-link.yaml", "studio-role-sync.yaml"] {
        let asked = cli_with_config(&t, config, &["trigger", "--by", "tester"]).await;
        assert_eq!(asked.code, 1, "{config} trigger: {asked:?}");
        assert!(
            asked.stderr.contains("the file has 2 hard links"),
            "{config}: {asked:?}"
        );
    }
    std::fs::remove_file(t.path("elsewhere/hard-link.db")).unwrap();
    let asked = t.cli(&["trigger", "--by", "tester"]).await;
    assert_eq!(asked.code, 0, "{asked:?}");

    d.signal("-TERM");
    assert_eq!(d.wait_exit(WAIT).await, Some(0), "{}", d.log());
}

/// A daemon on a yearly schedule whose startup run made alice (of alice and bob) an Admin,
/// ready: the start of the tests that then move the history file under it.
async fn alice_admin_daemon() -> (Tenant, Daemon, String) {
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
    let d = Daemon::start(&t);
    let base = d.base_url(WAIT).await;
    wait_ready(&base, 200, None).await;
    assert_eq!(t.holders("Admin"), vec!["alice@school.edu"]);
    (t, d, base)
}

/// A history deleted (or moved away) under the running daemon: `/readyz` fails with the
/// reason, the log says so at ERROR, no run is made into the lost file; moved back, runs
/// resume.
#[tokio::test]
async fn a_history_deleted_under_the_daemon_stops_runs_until_it_is_back() {
    let (t, mut d, base) = alice_admin_daemon().await;

    let aside = t.path("aside.db");
    std::fs::rename(t.history_path(), &aside).unwrap();
    let body = wait_ready(&base, 503, Some("history_missing")).await;
    assert!(
        body["detail"]
            .as_str()
            .unwrap()
            .contains("was deleted under the running daemon"),
        "{body}"
    );
    wait_for("the ERROR line", || async {
        d.log()
            .lines()
            .any(|l| l.contains("ERROR") && l.contains("deleted under the running daemon"))
            .then_some(())
    })
    .await;
    // A change and a request to run: nothing happens while the file is gone.
    t.write_roles(&admins(&["alice@school.edu", "bob@school.edu"]));
    d.signal("-HUP");
    wait_for("the skipped run", || async {
        d.log()
            .contains("not running: the history database is not in place")
            .then_some(())
    })
    .await;
    assert_eq!(t.holders("Admin"), vec!["alice@school.edu"]);
    // Another file in its place is not it either.
    std::fs::write(t.history_path(), b"").unwrap();
    wait_ready(&base, 503, Some("history_missing")).await;
    std::fs::remove_file(t.history_path()).unwrap();

    // Back in place: ready, and the next run goes to the right file.
    std::fs::rename(&aside, t.history_path()).unwrap();
    d.signal("-HUP");
    wait_for("bob's role", || async {
        (t.holders("Admin").len() == 2).then_some(())
    })
    .await;
    wait_ready(&base, 200, None).await;
    assert!(
        d.log().contains("back in place; runs resume"),
        "{}",
        d.log()
    );
    let db = t.history().await;
    assert!(
        runs(&db).await.len() >= 2,
        "the runs are in the file on disk"
    );
    d.signal("-TERM");
    assert_eq!(d.wait_exit(WAIT).await, Some(0), "{}", d.log());
}

/// A hard link made to the history while the daemon runs: SQLite would keep a journal per
/// name, so the daemon refuses to run (`/readyz` says why, ERROR in the log) until the extra
/// name is gone, then runs resume.
#[tokio::test]
async fn a_hard_link_made_under_the_daemon_stops_runs_until_it_is_removed() {
    let (t, mut d, base) = alice_admin_daemon().await;

    let other = t.path("other.db");
    std::fs::hard_link(t.history_path(), &other).unwrap();
    let body = wait_ready(&base, 503, Some("history_hard_linked")).await;
    let detail = body["detail"].as_str().unwrap();
    assert!(detail.contains("has 2 hard links"), "{body}");
    assert!(
        detail.contains("no run until the extra name is removed"),
        "{body}"
    );
    wait_for("the ERROR line", || async {
        d.log()
            .lines()
            .any(|l| l.contains("ERROR") && l.contains("has 2 hard links"))
            .then_some(())
    })
    .await;
    // A change and a request to run: no run while the file has two names.
    let db = t.history().await;
    let before = runs(&db).await.len();
    t.write_roles(&admins(&["alice@school.edu", "bob@school.edu"]));
    d.signal("-HUP");
    wait_for("the skipped run", || async {
        d.log()
            .contains("not running: the history database is not in place or has another name")
            .then_some(())
    })
    .await;
    assert_eq!(t.holders("Admin"), vec!["alice@school.edu"]);
    assert_eq!(runs(&db).await.len(), before, "no run was recorded");

    // One name again: ready, and the next run happens.
    std::fs::remove_file(&other).unwrap();
    d.signal("-HUP");
    wait_for("bob's role", || async {
        (t.holders("Admin").len() == 2).then_some(())
    })
    .await;
    wait_ready(&base, 200, None).await;
    assert!(
        d.log().contains("one name again; runs resume"),
        "{}",
        d.log()
    );
    assert!(runs(&db).await.len() > before, "the run is recorded");
    db.close().await;
    d.signal("-TERM");
    assert_eq!(d.wait_exit(WAIT).await, Some(0), "{}", d.log());
}

#[tokio::test]
async fn sigterm_lets_the_batch_finish_and_records_the_truth() {
    let (t, emails) = slow_tenant(12, "* * * * * *").await;
    let mut d = Daemon::start(&t);
    let db = wait_for_history(&t, "runs", WAIT).await;
    wait_for("the run to be half way", || async {
        (t.holders("Admin").len() >= 2).then_some(())
    })
    .await;
    d.signal("-TERM");
    assert_eq!(d.wait_exit(WAIT).await, Some(0), "{}", d.log());

    let log = d.log();
    assert!(log.contains("scheduled slot skipped"), "{log}");
    assert_eq!(
        count(&db, "SELECT COUNT(*) FROM runs WHERE status = 'running'").await,
        0
    );
    let all = runs(&db).await;
    assert_eq!(all.len(), 1, "no run started after SIGTERM: {all:?}");
    let (status, adds, ..) = crate::support::run_row(&db, all[0].0).await;
    let holders = t.holders("Admin").len() as i64;
    assert!(holders < emails.len() as i64, "stopped before the end");
    assert_eq!(status, "interrupted");
    assert_eq!(adds, holders, "history records exactly what Studio got");
    assert_eq!(
        count(
            &db,
            "SELECT COUNT(*) FROM run_actions WHERE outcome = 'applied'"
        )
        .await,
        holders
    );
}

#[tokio::test]
async fn a_killed_daemon_is_followed_by_one_that_marks_its_run_interrupted() {
    let (t, emails) = slow_tenant(12, "0 0 0 1 1 *").await;
    let mut d = Daemon::start(&t);
    let db = wait_for_history(&t, "runs", WAIT).await;
    wait_for("the run to be half way", || async {
        (!t.holders("Admin").is_empty()).then_some(())
    })
    .await;
    d.signal("-KILL");
    assert_eq!(d.wait_exit(WAIT).await, None, "killed by the signal");
    assert_eq!(runs(&db).await[0].2, "running", "a dead run is left behind");

    t.sim.set_faults(Faults::default());
    let mut next = Daemon::start(&t);
    let base = next.base_url(WAIT).await;
    wait_ready(&base, 200, None).await;
    let all = runs(&db).await;
    assert_eq!(all[0].2, "interrupted", "{all:?}");
    assert_eq!(all[1].1, "startup", "{all:?}");
    assert_eq!(all[1].2, "succeeded", "{all:?}");
    assert_eq!(
        t.holders("Admin").len(),
        emails.len(),
        "the next run finishes the job"
    );

    next.signal("-TERM");
    assert_eq!(next.wait_exit(WAIT).await, Some(0), "{}", next.log());
}

#[tokio::test]
async fn json_log_lines_of_a_run_carry_its_id() {
    let t = Tenant::start(vec![user(1, Some("alice@school.edu"), &[])]).await;
    t.write_config(&Opts {
        extra: format!("{YEARLY}log:\n  format: json\n"),
        ..Opts::default()
    });
    t.write_roles(&admins(&["alice@school.edu", "ghost@school.edu"]));
    let mut d = Daemon::start(&t);
    let base = d.base_url(WAIT).await;
    wait_ready(&base, 200, None).await;
    d.signal("-TERM");
    assert_eq!(d.wait_exit(WAIT).await, Some(0), "{}", d.log());

    let lines: Vec<serde_json::Value> = d
        .log()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}")))
        .collect();
    let of_run: Vec<&serde_json::Value> = lines
        .iter()
        .filter(|l| l["span"]["name"] == "run")
        .collect();
    let messages: Vec<&str> = of_run
        .iter()
        .filter_map(|l| l["fields"]["message"].as_str())
        .collect();
    for expected in ["run started", "run finished"] {
        assert!(messages.contains(&expected), "{messages:?}");
    }
    assert!(
        of_run
            .iter()
            .any(|l| l["fields"]["email"] == "ghost@school.edu"),
        "the pending email's line is in the run: {messages:?}"
    );
    for l in of_run {
        assert_eq!(l["span"]["run_id"], 1, "{l}");
    }
}

/// The log grows with changes, not with runs × pending emails: an email left alone is logged
/// when it starts and when it ends, and each run writes one summary line.
#[tokio::test]
async fn pending_emails_are_logged_when_they_start_and_end_not_every_run() {
    let t = Tenant::start(vec![user(1, Some("alice@school.edu"), &[])]).await;
    t.write_config(&Opts {
        extra: YEARLY.into(),
        ..Opts::default()
    });
    let ghosts: Vec<String> = (1..=20).map(|i| format!("ghost{i}@school.edu")).collect();
    let mut desired: Vec<&str> = ghosts.iter().map(String::as_str).collect();
    desired.push("alice@school.edu");
    t.write_roles(&admins(&desired));
    let mut d = Daemon::start(&t);
    let db = wait_for_history(&t, "runs", WAIT).await;
    let finished = |n: usize| {
        let db = db.clone();
        async move {
            wait_for(&format!("{n} finished runs"), || async {
                let done = runs(&db).await.iter().filter(|r| r.2 != "running").count();
                (done >= n).then_some(())
            })
            .await
        }
    };
    finished(1).await;
    for n in 2..=3 {
        d.signal("-HUP");
        finished(n).await;
    }
    let ghost_lines = |log: &str, ghost: &str| {
        log.lines()
            .filter(|l| l.contains(&format!("{ghost}@school.edu")))
            .count()
    };
    let summary = |log: &str| log.matches("emails left alone").count();
    wait_for("three summary lines", || async {
        (summary(&d.log()) == 3).then_some(())
    })
    .await;
    let log = d.log();
    for i in 1..=20 {
        assert_eq!(ghost_lines(&log, &format!("ghost{i}")), 1, "{log}");
    }
    assert!(
        log.contains("left_alone=20") && log.contains("by_reason=not_in_studio=20"),
        "{log}"
    );
    assert_eq!(log.matches("new=20").count(), 1, "{log}");
    assert_eq!(log.matches("new=0").count(), 2, "{log}");

    // ghost1 is no longer desired: its end is logged once, nothing else about the others.
    desired.retain(|e| *e != "ghost1@school.edu");
    t.write_roles(&admins(&desired));
    wait_for("the fourth summary line", || async {
        (summary(&d.log()) == 4).then_some(())
    })
    .await;
    let log = d.log();
    assert_eq!(ghost_lines(&log, "ghost1"), 2, "{log}");
    assert!(
        log.lines()
            .any(|l| l.contains("ghost1@school.edu") && l.contains("no longer left alone")),
        "{log}"
    );
    assert_eq!(ghost_lines(&log, "ghost2"), 1, "{log}");
    assert!(log.contains("ended=1"), "{log}");
    d.signal("-TERM");
    assert_eq!(d.wait_exit(WAIT).await, Some(0), "{}", d.log());
}

/// A graceful stop while the run reads Studio: recorded `interrupted`, logged as that, and
/// not as an ERROR "run failed" that would page whoever watches errors.
#[tokio::test]
async fn sigterm_while_reading_is_logged_as_an_interruption_not_an_error() {
    let t = Tenant::start(vec![user(1, Some("alice@school.edu"), &[])]).await;
    t.write_config(&Opts {
        concurrency: 1,
        extra: YEARLY.into(),
        ..Opts::default()
    });
    let ghosts: Vec<String> = (1..=200).map(|i| format!("ghost{i}@school.edu")).collect();
    let desired: Vec<&str> = ghosts.iter().map(String::as_str).collect();
    t.write_roles(&admins(&desired));
    t.sim.set_faults(Faults {
        latency: Duration::from_millis(100),
        ..Faults::default()
    });
    let mut d = Daemon::start(&t);
    let db = wait_for_history(&t, "runs", WAIT).await;
    wait_for("the run reading Studio", || async {
        d.log().contains("reading Studio").then_some(())
    })
    .await;
    d.signal("-TERM");
    assert_eq!(d.wait_exit(WAIT).await, Some(0), "{}", d.log());
    assert_eq!(runs(&db).await[0].2, "interrupted");
    let log = d.log();
    assert!(log.contains("run interrupted by the shutdown"), "{log}");
    assert!(
        !log.lines().any(|l| l.contains("ERROR")),
        "no ERROR line for a graceful stop:\n{log}"
    );
}
