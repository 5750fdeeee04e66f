//! The client against a server that answers absurdly (the simulator's hostile fault mode):
//! `Retry-After` values no `Duration` can hold, HTML error pages, `null`, wrong JSON types,
//! absurd page counts, nesting past any stack, a gigabyte body, and Canvas-style `403` rate
//! limits. Nothing may crash (exit 101), hang, or take unbounded memory; every run ends with
//! a recorded status; and once the server behaves, the tenant converges.

use crate::support::{count, numbered_admins, people, Opts, Tenant, TOKEN};
use std::time::Instant;
use studio_sim::hostile;
use studio_sim::{Faults, SimConfig, SimUser};

async fn tenant(faults: Faults, users: Vec<SimUser>) -> Tenant {
    Tenant::start_with(
        SimConfig {
            token: Some(TOKEN.into()),
            faults,
            seed: 7,
            ..SimConfig::default()
        },
        users,
    )
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn absurd_answers_never_crash_the_client_and_it_converges_once_studio_behaves() {
    let t = tenant(
        Faults {
            hostile_rate: 0.3,
            ..Faults::default()
        },
        people(60),
    )
    .await;
    t.write_config(&Opts {
        batch_size: 5,
        concurrency: 2,
        max_retries: 3,
        ..Opts::default()
    });
    t.write_roles(&numbered_admins(1, 40));
    for _ in 0..4 {
        let run = t.cli(&["apply"]).await;
        assert!(
            [0, 1, 4].contains(&run.code),
            "an ordinary exit code: {run:?}"
        );
        assert!(!run.stderr.contains("panicked"), "{run:?}");
        let db = t.history().await;
        assert_eq!(
            count(&db, "SELECT COUNT(*) FROM runs WHERE status = 'running'").await,
            0,
            "every run is recorded with its outcome"
        );
    }
    let hostile = t.sim.stats().hostile;
    assert!(hostile >= 10, "the server was hostile ({hostile} answers)");
    let db = t.history().await;
    assert!(
        count(&db, "SELECT SUM(throttled) FROM runs").await > 0,
        "the absurd 429s were taken as throttling"
    );
    // Studio behaves again: the next run converges.
    t.sim.set_faults(Faults::default());
    let run = t.cli(&["apply"]).await;
    assert_eq!(run.code, 0, "{run:?}");
    let mut want: Vec<String> = (1..=40).map(|i| format!("u{i}@example.edu")).collect();
    want.sort();
    assert_eq!(t.holders("Admin"), want);
}

/// Runs `plan` and samples the child's peak resident memory (`VmHWM`, MiB) while it runs.
async fn plan_with_peak_rss(t: &Tenant) -> (crate::support::Run, u64) {
    let mut child = tokio::process::Command::new(env!("CARGO_BIN_EXE_studio-role-sync"))
        .arg("--config")
        .arg(t.config_path())
        .arg("plan")
        .env_remove("RUST_LOG")
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("binary runs");
    let status_file = format!("/proc/{}/status", child.id().unwrap());
    let mut peak_kib = 0u64;
    let mut stdout = child.stdout.take().unwrap();
    let mut stderr = child.stderr.take().unwrap();
    let output = tokio::spawn(async move {
        use tokio::io::AsyncReadExt;
        let (mut out, mut err) = (Vec::new(), Vec::new());
        let _ = tokio::join!(stdout.read_to_end(&mut out), stderr.read_to_end(&mut err));
        (out, err)
    });
    let status = loop {
        if let Ok(text) = std::fs::read_to_string(&status_file) {
            let hwm = text
                .lines()
                .find_map(|l| l.strip_prefix("VmHWM:"))
                .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok());
            peak_kib = peak_kib.max(hwm.unwrap_or(0));
        }
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    };
    let (out, err) = output.await.unwrap();
    let run = crate::support::Run {
        code: status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out).into_owned(),
        stderr: String::from_utf8_lossy(&err).into_owned(),
    };
    (run, peak_kib / 1024)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_broken_answer_ends_in_a_clear_error_in_bounded_time_and_memory() {
    let t = tenant(Faults::default(), people(10)).await;
    t.write_config(&Opts {
        max_retries: 1,
        ..Opts::default()
    });
    t.write_roles(&numbered_admins(1, 5));
    let (normal, baseline_rss) = plan_with_peak_rss(&t).await;
    assert_eq!(normal.code, 2, "{normal:?}");
    for which in hostile::non_throttling() {
        t.sim.set_faults(Faults {
            hostile_rate: 1.0,
            hostile_answer: Some(which),
            ..Faults::default()
        });
        t.sim.reset_stats();
        let started = Instant::now();
        let (run, peak_rss) = plan_with_peak_rss(&t).await;
        let seconds = started.elapsed().as_secs_f64();
        assert_eq!(run.code, 1, "answer {which}: {run:?}");
        assert!(
            run.stderr.contains("error: ") && run.stderr.contains("search_by_role"),
            "answer {which}: the error names what failed: {run:?}"
        );
        assert!(!run.stderr.contains("panicked"), "{run:?}");
        assert!(seconds < 30.0, "answer {which}: took {seconds:.1} s");
        let stats = t.sim.stats();
        if which == hostile::HUGE {
            // Two attempts of a 1 GiB body: the client stops reading at its 8 MiB bound (the
            // server got a little further, into the socket buffers), and its memory stays low.
            assert!(run.stderr.contains("larger than 8 MiB"), "{run:?}");
            let mib = stats.hostile_body_bytes / (1024 * 1024);
            eprintln!(
                "huge body: {mib} MiB of 2 x 1024 MiB sent, client peak RSS {peak_rss} MiB \
                 ({baseline_rss} MiB for the same plan against a well-behaved server)"
            );
            assert!(mib < 256, "{mib} MiB were sent");
            assert!(
                peak_rss < baseline_rss + 40,
                "peak RSS {peak_rss} MiB, {baseline_rss} MiB normally"
            );
        }
    }
    // Nothing was sent to change roles, and the runs are recorded failed.
    assert!(t.holders("Admin").is_empty());
    let db = t.history().await;
    assert_eq!(
        count(&db, "SELECT COUNT(*) FROM runs WHERE status = 'failed'").await as usize,
        hostile::non_throttling().len()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_canvas_style_403_rate_limit_is_treated_like_429() {
    let t = tenant(
        Faults {
            rate_limit: Some(10.0),
            throttle_with_403: true,
            ..Faults::default()
        },
        people(60),
    )
    .await;
    t.write_config(&Opts {
        requests_per_second: 100.0,
        batch_size: 2,
        max_retries: 1,
        ..Opts::default()
    });
    t.write_roles(&numbered_admins(1, 30));
    let run = t.cli(&["apply"]).await;
    assert_eq!(run.code, 0, "{run:?}");
    assert_eq!(t.holders("Admin").len(), 30);
    let forbidden = t.sim.stats().status_4xx_other;
    assert!(forbidden > 0, "the server throttled with 403");
    let db = t.history().await;
    assert_eq!(
        count(&db, "SELECT throttled FROM runs").await as u64,
        forbidden,
        "each 403 was a throttle, not a failure"
    );
}
