//! What finding flapping changes costs a run on a long history (BENCHMARKS.md, "Flapping").
//!
//! Builds a history file of `--runs` daemon runs (default a year of 15-minute runs) with
//! `--actions` applied changes each (and one plan-only dry run every 50 runs), then times
//! `History::repeated_actions` (what every run with planned changes calls) against the naive
//! query that groups every applied change in the history, and the notification state step
//! that every finished run makes.
//!
//! `cargo run -p bench --release --bin flapping_history -- [--runs N] [--actions K]`

use clap::Parser;
use std::time::{Duration, Instant};
use studio_role_sync_engine::change::{ChangeKind, Outcome};
use studio_role_sync_engine::history::{ActionRow, History, PendingUpdate, RunRecord};

#[derive(Parser)]
struct Args {
    /// Runs in the history (35,040 = a year of runs every 15 minutes).
    #[arg(long, default_value_t = 35_040)]
    runs: u32,
    /// Applied changes recorded per run.
    #[arg(long, default_value_t = 5)]
    actions: u32,
    /// Timed calls of each query.
    #[arg(long, default_value_t = 200)]
    calls: u32,
}

fn row(user_id: i64, action: ChangeKind) -> ActionRow {
    ActionRow {
        email: Some(format!("user{user_id}@school.edu")),
        user_id,
        role: "Admin".into(),
        action,
        outcome: Outcome::Applied,
        http_status: Some(200),
        detail: None,
        source: None,
        until: None,
        reason: None,
    }
}

#[tokio::main]
async fn main() {
    let args = Args::parse();
    let dir = tempfile::tempdir().expect("temp dir");
    let history = History::open(&dir.path().join("history.db"))
        .await
        .expect("history opens");
    let built = Instant::now();
    let mut last = 0;
    for i in 0..args.runs as i64 {
        let dry = i % 50 == 49;
        let id = history.start_run("schedule", dry).await.unwrap();
        // One change that comes back every run (user 1), the rest spread over 10,000 users.
        let mut rows = vec![row(1, ChangeKind::Remove)];
        for k in 1..args.actions as i64 {
            rows.push(row(2 + (i * 7 + k * 13) % 10_000, ChangeKind::Add));
        }
        history
            .record_plan(id, &rows, &PendingUpdate::default())
            .await
            .unwrap();
        history
            .finish_run(&RunRecord {
                id,
                status: studio_role_sync_engine::run_status::RunStatus::Succeeded,
                dry_run: dry,
                ..Default::default()
            })
            .await
            .unwrap();
        last = id;
    }
    let build = built.elapsed();
    let before = last + 1;

    let found = history
        .repeated_actions(before, 2)
        .await
        .unwrap()
        .map_or(0, |s| s.len());
    let repeated = time(args.calls, || async {
        std::hint::black_box(history.repeated_actions(before, 2).await.unwrap());
    })
    .await;
    // The naive way: every change ever applied, grouped, then the last runs picked out.
    let pool = sqlx::SqlitePool::connect_with(
        sqlx::sqlite::SqliteConnectOptions::new()
            .filename(dir.path().join("history.db"))
            .read_only(true),
    )
    .await
    .expect("read-only pool");
    let naive = time(args.calls.min(20), || async {
        let rows: Vec<(i64, String, String, i64)> = sqlx::query_as(
            "SELECT user_id, role, action, MAX(run_id) FROM run_actions WHERE outcome = 'applied' \
             GROUP BY user_id, role, action",
        )
        .fetch_all(&pool)
        .await
        .unwrap();
        std::hint::black_box(rows);
    })
    .await;
    let step = time(args.calls, || async {
        history.notify_step(|stored| (stored, ())).await.unwrap();
    })
    .await;
    let size = std::fs::metadata(dir.path().join("history.db"))
        .map(|m| m.len())
        .unwrap_or(0);
    println!(
        "history: {} runs x {} actions ({:.1} MB), built in {:.1} s",
        args.runs,
        args.actions,
        size as f64 / 1e6,
        build.as_secs_f64()
    );
    println!(
        "repeated_actions (previous 2 runs):   {:>9.3} ms per call ({found} repeated)",
        ms(repeated)
    );
    println!(
        "naive (group every applied change):   {:>9.3} ms per call",
        ms(naive)
    );
    println!(
        "notify_step (read + write the state): {:>9.3} ms per call",
        ms(step)
    );
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

/// The mean time of `calls` calls of `f`.
async fn time<F, Fut>(calls: u32, mut f: F) -> Duration
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = ()>,
{
    f().await; // warm the cache
    let start = Instant::now();
    for _ in 0..calls {
        f().await;
    }
    start.elapsed() / calls.max(1)
}
