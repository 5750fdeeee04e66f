//! Reliability: the daemon against a misbehaving Studio (the simulator's fault injection), over
//! real HTTP, with the real binary and a real SQLite history.
//!
//! Each test is one fault from RELIABILITY.md; `cargo run -p bench --release --bin fault_report`
//! prints the figures for all of them.

use crate::support::{
    count, faulty_tenant, numbered_admins, people, run_row, user, Opts, Tenant, TOKEN,
};
use std::time::{Duration, Instant};
use studio_sim::{Faults, SimConfig, SimUser};

fn expected_admins(from: u64, to: u64) -> Vec<String> {
    let mut v: Vec<String> = (from..=to).map(|i| format!("u{i}@example.edu")).collect();
    v.sort();
    v
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn converges_under_5xx_and_a_server_rate_limit_well_under_the_configured_one() {
    let server_rate = 20.0;
    let t = faulty_tenant(
        Faults {
            error_rate: 0.10,
            rate_limit: Some(server_rate),
            ..Faults::default()
        },
        people(120),
    )
    .await;
    // The config allows 5x what the server does.
    t.write_config(&Opts {
        requests_per_second: 100.0,
        batch_size: 5,
        max_retries: 4,
        ..Opts::default()
    });
    t.write_roles(&numbered_admins(1, 80));
    let started = Instant::now();
    let run = t.cli(&["apply"]).await;
    let seconds = started.elapsed().as_secs_f64();
    assert_eq!(run.code, 0, "{run:?}");
    assert_eq!(t.holders("Admin"), expected_admins(1, 80));
    let s = t.sim.stats();
    let share = s.status_429 as f64 / s.total as f64;
    eprintln!(
        "requests {} (429: {}, share {:.1}%; 5xx: {}), {:.1} s, {:.1} req/s against a server limit of {server_rate}",
        s.total,
        s.status_429,
        share * 100.0,
        s.status_5xx,
        seconds,
        s.total as f64 / seconds
    );
    assert!(share < 0.10, "429 share {share:.3} of {} requests", s.total);
    let db = t.history().await;
    let (status, adds, _, failed, _, requests) = run_row(&db, 1).await;
    assert_eq!((status.as_str(), adds, failed), ("succeeded", 80, 0));
    assert_eq!(
        requests as u64, s.total,
        "every request the server saw is counted"
    );
    let throttled = count(&db, "SELECT throttled FROM runs WHERE id = 1").await;
    assert_eq!(throttled as u64, s.status_429);
}

/// Users 1..=8 want `Admin`; users 100 and 101 hold it and are not listed (two removals).
/// User 3 also holds `SubAccountAdmin`, which this config does not manage and which, in
/// Studio's role model, excludes `Admin`: Studio refuses the batch that adds `Admin` to user 3.
fn conflicting_population() -> Vec<SimUser> {
    let mut users = people(8);
    users[2].role_names = vec!["SubAccountAdmin".into()];
    users.push(user(100, Some("old1@example.edu"), &["Admin"]));
    users.push(user(101, Some("old2@example.edu"), &["Admin"]));
    users
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_batch_is_bisected_and_the_other_actions_applied() {
    let t = Tenant::start_with(
        SimConfig {
            token: Some(TOKEN.into()),
            exclusive: vec![vec!["Admin".into(), "SubAccountAdmin".into()]],
            ..SimConfig::default()
        },
        conflicting_population(),
    )
    .await;
    t.write_config(&Opts {
        managed: "[Admin]",
        ..Opts::default()
    });
    t.write_roles(&numbered_admins(1, 8));

    let run = t.cli(&["apply"]).await;
    assert_eq!(run.code, 4, "partial: {run:?}");
    let mut want = expected_admins(1, 8);
    want.retain(|e| e != "u3@example.edu");
    assert_eq!(t.holders("Admin"), want, "the 9 good actions were applied");
    let s = t.sim.stats();
    // One batch of 10 split until the bad action is alone: at most 2·ceil(log2 10) + 1 PUTs.
    assert!(s.put_roles <= 9, "{} PUTs", s.put_roles);
    let db = t.history().await;
    let (status, adds, removes, failed, _, _) = run_row(&db, 1).await;
    assert_eq!(
        (status.as_str(), adds, removes, failed),
        ("partial", 7, 2, 1)
    );
    let (outcome, http, detail): (String, Option<i64>, String) = sqlx::query_as(
        "SELECT outcome, http_status, detail FROM run_actions WHERE run_id = 1 AND email = 'u3@example.edu'",
    )
    .fetch_one(&db)
    .await
    .unwrap();
    assert_eq!((outcome.as_str(), http), ("failed", Some(422)));
    assert!(detail.contains("excludes Admin"), "{detail}");
    assert_eq!(
        count(
            &db,
            "SELECT COUNT(*) FROM run_actions WHERE run_id = 1 AND outcome = 'applied'"
        )
        .await,
        9
    );
    assert_eq!(
        count(
            &db,
            "SELECT COUNT(*) FROM run_actions WHERE run_id = 1 AND outcome = 'planned'"
        )
        .await,
        0,
        "every action ends with an outcome"
    );

    // An admin takes SubAccountAdmin away in Studio: the next run retries by itself.
    t.sim.set_roles(3, vec![]);
    let run = t.cli(&["apply"]).await;
    assert_eq!(run.code, 0, "{run:?}");
    assert_eq!(t.holders("Admin"), expected_admins(1, 8));
    let (status, adds, ..) = run_row(&db, 2).await;
    assert_eq!((status.as_str(), adds), ("succeeded", 1));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_that_is_down_fails_the_run_fast_with_a_clear_error() {
    let t = faulty_tenant(
        Faults {
            error_rate: 1.0,
            ..Faults::default()
        },
        people(20),
    )
    .await;
    t.write_config(&Opts {
        max_retries: 2,
        ..Opts::default()
    });
    t.write_roles(&numbered_admins(1, 20));
    let started = Instant::now();
    let run = t.cli(&["apply"]).await;
    assert_eq!(run.code, 1, "{run:?}");
    assert!(started.elapsed() < Duration::from_secs(5));
    assert!(run.stderr.contains("reading Studio failed"), "{run:?}");
    assert!(t.sim.stats().total <= 3 * 2, "{:?}", t.sim.stats());
    let db = t.history().await;
    let (status, ..) = run_row(&db, 1).await;
    assert_eq!(status, "failed");
    let error: String = sqlx::query_scalar("SELECT error FROM runs WHERE id = 1")
        .fetch_one(&db)
        .await
        .unwrap();
    assert!(error.contains("Studio answered 50"), "{error}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_that_goes_down_during_apply_trips_the_circuit_breaker() {
    let t = faulty_tenant(
        Faults {
            latency: Duration::from_millis(30),
            ..Faults::default()
        },
        people(40),
    )
    .await;
    t.write_config(&Opts {
        batch_size: 1,
        concurrency: 2,
        max_retries: 1,
        ..Opts::default()
    });
    t.write_roles(&numbered_admins(1, 40));
    let apply = {
        let bin = env!("CARGO_BIN_EXE_studio-role-sync");
        let config = t.config_path();
        tokio::spawn(async move {
            tokio::process::Command::new(bin)
                .arg("--config")
                .arg(config)
                .arg("apply")
                .env_remove("RUST_LOG")
                .output()
                .await
                .unwrap()
        })
    };
    wait_for(|| t.sim.stats().put_roles >= 4).await;
    t.sim.set_faults(Faults {
        error_rate: 1.0,
        ..Faults::default()
    });
    let out = apply.await.unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("Studio is failing"), "{stderr}");
    let s = t.sim.stats();
    assert!(
        s.put_roles < 20,
        "stopped early: {} PUTs of 40",
        s.put_roles
    );
    let db = t.history().await;
    let (status, adds, ..) = run_row(&db, 1).await;
    assert_eq!(status, "failed");
    assert!((4..40).contains(&adds), "{adds}");
    let error: String = sqlx::query_scalar("SELECT error FROM runs WHERE id = 1")
        .fetch_one(&db)
        .await
        .unwrap();
    assert!(error.contains("batches in a row failed"), "{error}");
    assert!(
        count(
            &db,
            "SELECT COUNT(*) FROM run_actions WHERE run_id = 1 AND outcome = 'skipped'"
        )
        .await
            > 0
    );
    assert_eq!(
        count(
            &db,
            "SELECT COUNT(*) FROM run_actions WHERE run_id = 1 AND outcome = 'planned'"
        )
        .await,
        0,
        "every action ends with an outcome"
    );

    // The server comes back: the next run finishes the job.
    t.sim.set_faults(Faults::default());
    let run = t.cli(&["apply"]).await;
    assert_eq!(run.code, 0, "{run:?}");
    assert_eq!(t.holders("Admin"), expected_admins(1, 40));
}

async fn wait_for(mut ready: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(15);
    while !ready() {
        assert!(Instant::now() < deadline, "timed out waiting");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_during_apply_then_the_next_run_marks_it_interrupted_and_converges() {
    let t = faulty_tenant(
        Faults {
            latency: Duration::from_millis(40),
            ..Faults::default()
        },
        people(30),
    )
    .await;
    t.write_config(&Opts {
        batch_size: 1,
        concurrency: 2,
        ..Opts::default()
    });
    t.write_roles(&numbered_admins(1, 30));
    let mut child = tokio::process::Command::new(env!("CARGO_BIN_EXE_studio-role-sync"))
        .arg("--config")
        .arg(t.config_path())
        .arg("apply")
        .env_remove("RUST_LOG")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    wait_for(|| t.sim.stats().put_roles >= 5).await;
    child.start_kill().unwrap(); // SIGKILL
    let status = child.wait().await.unwrap();
    assert!(!status.success());
    // Requests the dead process left in flight finish (or not) before the next run reads.
    wait_for(|| t.sim.in_flight() == 0).await;
    let stats = t.sim.stats();
    let (sent, applied_before) = (stats.put_roles, stats.put_actions);
    // One action per batch; of what was sent, only the (at most 2) batches in flight at the
    // kill may be lost; and the kill came before the last batch.
    assert!(
        applied_before <= sent && applied_before + 2 >= sent && sent >= 5 && applied_before < 30,
        "sent {sent}, applied {applied_before}"
    );

    {
        // The file opens cleanly, and the dead run is still `running`.
        let history = studio_role_sync_engine::history::History::open(&t.history_path())
            .await
            .expect("history opens after kill -9");
        let run = history.run(1).await.unwrap().unwrap();
        assert_eq!(run.status.as_str(), "running");
        history.close().await;
    }

    let run = t.cli(&["apply"]).await;
    assert_eq!(run.code, 0, "{run:?}");
    assert_eq!(t.holders("Admin"), expected_admins(1, 30));
    assert_eq!(
        t.sim.stats().put_actions,
        30,
        "every action was applied exactly once over both runs"
    );
    let db = t.history().await;
    let (status, ..) = run_row(&db, 1).await;
    assert_eq!(status, "interrupted");
    let (status, adds, ..) = run_row(&db, 2).await;
    assert_eq!(status, "succeeded");
    assert_eq!(
        adds as u64,
        30 - applied_before,
        "nothing applied by run 1 was sent again"
    );
    let integrity: String = sqlx::query_scalar("PRAGMA integrity_check")
        .fetch_one(&db)
        .await
        .unwrap();
    assert_eq!(integrity, "ok");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_json_from_the_server_is_a_clear_error() {
    let t = faulty_tenant(
        Faults {
            malformed_rate: 1.0,
            ..Faults::default()
        },
        people(5),
    )
    .await;
    t.write_config(&Opts {
        max_retries: 1,
        ..Opts::default()
    });
    t.write_roles(&numbered_admins(1, 5));
    let run = t.cli(&["apply"]).await;
    assert_eq!(run.code, 1, "{run:?}");
    assert!(
        run.stderr.contains("not the expected JSON") && run.stderr.contains("search_by_role"),
        "{run:?}"
    );
    let db = t.history().await;
    let (status, ..) = run_row(&db, 1).await;
    assert_eq!(status, "failed");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn converges_through_cut_connections_and_malformed_bodies() {
    let t = faulty_tenant(
        Faults {
            drop_rate: 0.1,
            malformed_rate: 0.1,
            ..Faults::default()
        },
        people(60),
    )
    .await;
    t.write_config(&Opts {
        batch_size: 5,
        max_retries: 5,
        ..Opts::default()
    });
    t.write_roles(&numbered_admins(1, 60));
    let run = t.cli(&["apply"]).await;
    assert_eq!(run.code, 0, "{run:?}");
    assert_eq!(t.holders("Admin"), expected_admins(1, 60));
    let s = t.sim.stats();
    assert!(s.dropped + s.malformed > 0, "{s:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_slower_than_the_timeout_is_a_clear_error() {
    let t = faulty_tenant(
        Faults {
            latency: Duration::from_millis(1500),
            ..Faults::default()
        },
        people(3),
    )
    .await;
    t.write_config(&Opts {
        timeout_seconds: 0.3,
        max_retries: 1,
        ..Opts::default()
    });
    t.write_roles(&numbered_admins(1, 3));
    let run = t.cli(&["apply"]).await;
    assert_eq!(run.code, 1, "{run:?}");
    assert!(run.stderr.contains("timed out"), "{run:?}");
}
