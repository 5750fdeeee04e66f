//! What people-in-the-loop cost the daemon: the history poll it makes every 2 s (run requests
//! and new approvals), and the plan digest every run computes. Figures in BENCHMARKS.md.
//!
//! The poll runs against a real SQLite history (WAL, in a temporary folder) filled far past a
//! long life: `--approvals` consumed approvals and `--requests` taken run requests (the daemon
//! deletes taken requests after 30 days, so a real table holds a month's). It is compared with
//! its lower bound (`SELECT 1` on the same pool) and with the naive form of the same query,
//! which cannot use the partial indexes (`+column` turns index use off in SQLite): a scan.
//!
//! `cargo run --release -p bench --bin approvals_bench`

use clap::Parser;
use sqlx::sqlite::SqliteConnectOptions;
use std::time::{Duration, Instant};
use studio_role_sync_engine::change::{ChangeKind, PlannedAction};
use studio_role_sync_engine::digest;
use studio_role_sync_engine::history::History;

#[derive(Parser)]
struct Args {
    /// Approvals in the history, all consumed.
    #[arg(long, default_value_t = 10_000)]
    approvals: usize,
    /// Run requests in the history, all taken.
    #[arg(long, default_value_t = 100_000)]
    requests: usize,
    /// Polls timed.
    #[arg(long, default_value_t = 2_000)]
    polls: usize,
    /// Actions in the plans whose digest is timed.
    #[arg(long, value_delimiter = ',', default_value = "20000,200000")]
    actions: Vec<usize>,
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    sorted[((sorted.len() - 1) as f64 * p).round() as usize]
}

async fn time<F, Fut>(n: usize, mut f: F) -> (Duration, Duration)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = ()>,
{
    let mut v = Vec::with_capacity(n);
    for _ in 0..n {
        let t = Instant::now();
        f().await;
        v.push(t.elapsed());
    }
    v.sort();
    (percentile(&v, 0.5), percentile(&v, 0.99))
}

#[tokio::main]
async fn main() {
    let args = Args::parse();
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("history.db");
    let h = History::open(&path).await.expect("history");

    let fill = Instant::now();
    let run = h.start_run("schedule", false).await.unwrap();
    for _ in 0..args.approvals {
        let id = h
            .insert_approval(
                "saved_plan",
                None,
                "bench",
                "sha256:0",
                1,
                Some("plan.json"),
            )
            .await
            .unwrap();
        h.consume_approval(id, "applied", run, None).await.unwrap();
    }
    let pool = sqlx::SqlitePool::connect_with(SqliteConnectOptions::new().filename(&path))
        .await
        .expect("second pool");
    // Requests in bulk (one statement): taking them one by one would only slow the filling.
    sqlx::query(
        "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < ?) \
         INSERT INTO run_requests (requested_at, requested_by, taken_at) \
         SELECT '2026-01-01T00:00:00.000Z', 'bench', '2099-01-01T00:00:00.000Z' FROM n",
    )
    .bind(args.requests as i64)
    .execute(&pool)
    .await
    .unwrap();
    println!(
        "history: {} consumed approvals, {} taken run requests (filled in {:.1} s)",
        args.approvals,
        args.requests,
        fill.elapsed().as_secs_f64()
    );

    let (p50, p99) = time(args.polls, || async {
        assert_eq!(h.poll_requests().await.unwrap(), (None, false));
    })
    .await;
    println!(
        "poll (History::poll_requests, partial indexes): median {:.1} µs, p99 {:.1} µs; every 2 s that is {:.4}% of one core",
        p50.as_secs_f64() * 1e6,
        p99.as_secs_f64() * 1e6,
        100.0 * p50.as_secs_f64() / 2.0
    );
    let (b50, b99) = time(args.polls, || async {
        let _: i64 = sqlx::query_scalar("SELECT 1")
            .fetch_one(&pool)
            .await
            .unwrap();
    })
    .await;
    println!(
        "lower bound (SELECT 1 on a pool): median {:.1} µs, p99 {:.1} µs",
        b50.as_secs_f64() * 1e6,
        b99.as_secs_f64() * 1e6
    );
    let naive_n = (args.polls / 10).max(10);
    let (n50, n99) = time(naive_n, || async {
        let _: (Option<i64>, i64) = sqlx::query_as(
            "SELECT (SELECT MAX(id) FROM approvals WHERE +status = 'pending' AND +kind = 'approve'), \
             EXISTS (SELECT 1 FROM run_requests WHERE +taken_at IS NULL)",
        )
        .fetch_one(&pool)
        .await
        .unwrap();
    })
    .await;
    println!(
        "naive (same query, no index: a scan): median {:.1} µs, p99 {:.1} µs",
        n50.as_secs_f64() * 1e6,
        n99.as_secs_f64() * 1e6
    );

    for &n in &args.actions {
        let actions: Vec<PlannedAction> = (0..n)
            .map(|i| PlannedAction {
                user_id: (n - i) as i64,
                email: Some(format!("user{}@school.edu", n - i)),
                role: if i % 3 == 0 { "Admin" } else { "CaptionEditor" }.into(),
                action: if i % 2 == 0 {
                    ChangeKind::Add
                } else {
                    ChangeKind::Remove
                },
            })
            .collect();
        let t = Instant::now();
        let d = digest::digest(&actions);
        let digest_time = t.elapsed();
        // Lower bound: SHA-256 over the same canonical bytes, already built and sorted.
        let bytes: Vec<u8> = actions
            .iter()
            .flat_map(|a| {
                format!(
                    "{}\t{}\t{}\t{}\n",
                    a.user_id,
                    a.email.as_deref().unwrap_or(""),
                    a.role,
                    a.action
                )
                .into_bytes()
            })
            .collect();
        let t = Instant::now();
        use sha2::Digest;
        let _ = sha2::Sha256::digest(&bytes);
        let hash_only = t.elapsed();
        println!(
            "digest of {n} actions: {:.1} ms ({} bytes hashed; SHA-256 of those bytes alone {:.1} ms) {}",
            digest_time.as_secs_f64() * 1e3,
            bytes.len(),
            hash_only.as_secs_f64() * 1e3,
            digest::short(&d)
        );
    }
    h.close().await;
}
