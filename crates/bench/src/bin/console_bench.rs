//! The console on a year of history: `cargo run -p bench --release --bin console_bench [-- --help]`.
//!
//! Builds (or reuses, `--db`) a history of a year of 15-minute runs written through the
//! engine's own `History` API: most runs change nothing; a new hire waits about two days in
//! `not_in_studio` before being added; leavers are removed; one Canvas admin is re-granted
//! every fourth run (flapping: thousands of actions for one email); a few email-less holders
//! and an ambiguous email are left alone all year; 1% of runs fail before reading Studio and a
//! few are stopped by a guard with 30 planned removals. Then it serves the console over real
//! HTTP on 127.0.0.1 (the daemon's own accept loop, a read-only connection) and times every
//! page from a client, sequentially: median, p95 and max of `--repeat` requests each.
//!
//! For comparison: the lower bound is the same stack answering the static style sheet (no
//! database); the naive figure is the person and date-filtered pages on a copy of the history
//! without the email and time indexes (what the trail would cost as a table scan).

use clap::Parser;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};
use studio_role_sync_console::{router, ConsoleOptions};
use studio_role_sync_engine::change::{ChangeKind, Outcome};
use studio_role_sync_engine::history::{
    AccountSeen, ActionRow, Clock, DesiredSeen, History, PendingRow, RunRecord,
};
use studio_role_sync_engine::http::{serve_router, HttpLimits};
use studio_role_sync_engine::run_status::RunStatus;

#[derive(Parser, Debug)]
#[command(about = "Times every console page on a year-sized history")]
struct Args {
    /// Runs to generate (35,040 is a year of 15-minute runs).
    #[arg(long, default_value_t = 35_040)]
    runs: usize,
    /// Use this history instead of generating one (e.g. the soak benchmark's).
    #[arg(long)]
    db: Option<PathBuf>,
    /// Requests per page.
    #[arg(long, default_value_t = 30)]
    repeat: usize,
    /// Skip the comparison without indexes.
    #[arg(long)]
    no_naive: bool,
}

const NO_EMAIL: [&str; 3] = ["user 9001", "user 9002", "user 9003"];
const AMBIGUOUS: &str = "shared@school.edu";
const FLAPPING: &str = "canvas.admin@school.edu";

fn pending(email: &str, reason: &str) -> PendingRow {
    PendingRow {
        email: email.into(),
        reason: reason.into(),
        user_id: None,
        detail: Some(format!("{reason}: left alone this run")),
    }
}

fn action(email: &str, action: ChangeKind, outcome: Outcome, status: Option<i64>) -> ActionRow {
    let id = email.len() as i64 * 7919 + 11;
    ActionRow {
        email: Some(email.into()),
        user_id: id,
        role: "Admin".into(),
        action,
        outcome,
        http_status: status,
        detail: (outcome == Outcome::Failed)
            .then(|| "Studio answered 422: role not assignable".into()),
        source: None,
        until: None,
        reason: None,
    }
}

/// A year of runs, written through the engine.
async fn generate(path: &Path, runs: usize) -> (usize, usize) {
    // The year before now, a run every 15 minutes, each 2 to 9 seconds long plus a second per
    // change: the history's clock stands at each start and end as the run writes them.
    let year_start = chrono::Utc::now() - chrono::Duration::days(365);
    let clock = Clock::manual(year_start);
    let h = History::open(path)
        .await
        .expect("history opens")
        .with_clock(clock.clone());
    let (mut actions_written, mut pending_written) = (0, 0);
    for i in 0..runs {
        let started = year_start + chrono::Duration::seconds(i as i64 * 900);
        clock.set(started);
        let id = h.start_run("schedule", false).await.unwrap();
        let ends = |changes: i64| {
            clock.set(started + chrono::Duration::seconds(2 + (id * 7919) % 8 + changes));
        };
        if i % 100 == 57 {
            // Studio unreachable: the run fails before planning.
            let record = RunRecord {
                id,
                status: RunStatus::Failed,
                error: Some("reading Studio failed: connection refused".into()),
                ..Default::default()
            };
            ends(0);
            h.finish_run(&record).await.unwrap();
            continue;
        }
        let mut left: Vec<PendingRow> = NO_EMAIL.iter().map(|e| pending(e, "no_email")).collect();
        left.push(pending(AMBIGUOUS, "ambiguous"));
        // Four new hires at a time, each waiting ~two days (192 runs) before Studio knows them.
        let mut planned = Vec::new();
        for k in 0..4 {
            let cohort = (i + k * 48) / 192;
            let email = format!("newhire{cohort}.{k}@school.edu");
            if (i + k * 48) % 192 == 191 {
                planned.push(action(&email, ChangeKind::Add, Outcome::Applied, Some(200)));
            } else {
                left.push(pending(&email, "not_in_studio"));
            }
        }
        if i % 4 == 0 {
            planned.push(action(
                FLAPPING,
                ChangeKind::Add,
                Outcome::Applied,
                Some(200),
            ));
        }
        if i % 50 == 13 {
            planned.push(action(
                &format!("leaver{i}@school.edu"),
                ChangeKind::Remove,
                Outcome::Applied,
                Some(200),
            ));
        }
        if i % 500 == 99 {
            planned.push(action(
                &format!("odd{i}@school.edu"),
                ChangeKind::Add,
                Outcome::Failed,
                Some(422),
            ));
        }
        let aborted = i % 2000 == 1999;
        if aborted {
            planned = (0..30)
                .map(|n| {
                    let mut a = action(
                        &format!("staff{n}@school.edu"),
                        ChangeKind::Remove,
                        Outcome::Skipped,
                        None,
                    );
                    a.detail =
                        Some("not sent: safety guard: 30 removals planned, at most 25".into());
                    a
                })
                .collect();
        }
        let planned_rows: Vec<ActionRow> = planned
            .iter()
            .map(|a| ActionRow {
                outcome: if aborted {
                    Outcome::Skipped
                } else {
                    Outcome::Planned
                },
                http_status: None,
                ..a.clone()
            })
            .collect();
        h.record_plan(
            id,
            &planned_rows,
            &studio_role_sync_engine::history::PendingUpdate {
                rows: &left,
                ..Default::default()
            },
        )
        .await
        .unwrap();
        if !aborted && !planned.is_empty() {
            h.record_outcomes(id, &planned).await.unwrap();
        }
        // Who people are (names, roles held, desired roles), as a run records it: 200 staff
        // holding Admin, the Canvas admin, the two accounts of the ambiguous email; the staff
        // and the new hires listed. Only changes are written.
        let holder = |n: i64, email: &str, name: String, held: &str| AccountSeen {
            user_id: n,
            full_name: Some(name),
            email: Some(email.into()),
            held: held.into(),
        };
        let mut accounts: Vec<AccountSeen> = (0..200)
            .map(|n| {
                holder(
                    10_000 + n,
                    &format!("staff{n}@school.edu"),
                    format!("Staff Member {n}"),
                    "Admin",
                )
            })
            .collect();
        accounts.push(holder(
            FLAPPING.len() as i64 * 7919 + 11,
            FLAPPING,
            "Canvas Admin".into(),
            if i % 4 == 0 { "" } else { "Admin" },
        ));
        for twin in [9_100, 9_101] {
            accounts.push(holder(
                twin,
                AMBIGUOUS,
                format!("Shared Account {twin}"),
                "",
            ));
        }
        let mut desired: Vec<DesiredSeen> = (0..200)
            .map(|n| DesiredSeen {
                email: format!("staff{n}@school.edu"),
                roles: "Admin (roles.yaml)".into(),
            })
            .collect();
        desired.extend(
            left.iter()
                .filter(|p| p.reason != "no_email")
                .map(|p| DesiredSeen {
                    email: p.email.clone(),
                    roles: "Admin (roles.yaml)".into(),
                }),
        );
        h.record_people(id, &accounts, &desired).await.unwrap();
        let count = |kind: ChangeKind, outcome: Outcome| {
            planned
                .iter()
                .filter(|a| a.action == kind && a.outcome == outcome)
                .count() as i64
        };
        let record = RunRecord {
            id,
            status: if aborted {
                RunStatus::Aborted
            } else if planned.iter().any(|a| a.outcome == Outcome::Failed) {
                RunStatus::Partial
            } else {
                RunStatus::Succeeded
            },
            desired_users: Some(2_000),
            adds_planned: planned
                .iter()
                .filter(|a| a.action == ChangeKind::Add)
                .count() as i64,
            removes_planned: planned
                .iter()
                .filter(|a| a.action == ChangeKind::Remove)
                .count() as i64,
            adds_applied: count(ChangeKind::Add, Outcome::Applied),
            removes_applied: count(ChangeKind::Remove, Outcome::Applied),
            failed: planned
                .iter()
                .filter(|a| a.outcome == Outcome::Failed)
                .count() as i64,
            pending: left.len() as i64,
            api_requests: 45 + planned.len() as i64,
            error: aborted.then(|| "safety guard: 30 removals planned, at most 25".into()),
            ..Default::default()
        };
        ends(record.adds_planned + record.removes_planned);
        h.finish_run(&record).await.unwrap();
        actions_written += planned.len();
        pending_written += left.len();
        if i % 5000 == 4999 {
            eprintln!("  {} runs written", i + 1);
        }
    }
    h.close().await;
    (actions_written, pending_written)
}

async fn sqlite(path: &Path, read_only: bool) -> sqlx::SqlitePool {
    let options = sqlx::sqlite::SqliteConnectOptions::new()
        .filename(path)
        .read_only(read_only);
    sqlx::SqlitePool::connect_with(options)
        .await
        .expect("sqlite opens")
}

async fn serve(path: &Path) -> SocketAddr {
    let app = router(ConsoleOptions {
        history: History::open_read_only(path),
        credentials: None,
        schedule: None,
        studio_auth: "access token from studio.token_file".into(),
        readiness: None,
        base_url: "https://myschool.instructuremedia.com".into(),
        config_path: None,
    });
    let (addr, _task) = serve_router(
        "127.0.0.1:0".parse().unwrap(),
        app,
        "(console bench)",
        HttpLimits::default(),
        std::future::pending::<()>(),
    )
    .await
    .expect("listens");
    addr
}

struct Timing {
    median: Duration,
    p95: Duration,
    max: Duration,
    bytes: usize,
}

async fn time_page(
    client: &reqwest::Client,
    addr: SocketAddr,
    path: &str,
    repeat: usize,
) -> Timing {
    let url = format!("http://{addr}{path}");
    let mut times = Vec::with_capacity(repeat);
    let mut bytes = 0;
    // One request first to warm the connection and SQLite's page cache.
    let first = client.get(&url).send().await.expect("answer");
    assert!(first.status().is_success(), "{path}: {}", first.status());
    let _ = first.bytes().await;
    for _ in 0..repeat {
        let started = Instant::now();
        let answer = client.get(&url).send().await.expect("answer");
        assert!(answer.status().is_success(), "{path}: {}", answer.status());
        bytes = answer.bytes().await.expect("body").len();
        times.push(started.elapsed());
    }
    times.sort();
    Timing {
        median: times[times.len() / 2],
        p95: times[(times.len() * 95 / 100).min(times.len() - 1)],
        max: times[times.len() - 1],
        bytes,
    }
}

fn ms(d: Duration) -> String {
    format!("{:.1}", d.as_secs_f64() * 1000.0)
}

#[tokio::main]
async fn main() {
    let args = Args::parse();
    let dir = tempfile::tempdir().expect("temp dir");
    let path = match &args.db {
        Some(p) => p.clone(),
        None => {
            let p = dir.path().join("history.db");
            eprintln!("writing {} runs through the engine's History...", args.runs);
            let started = Instant::now();
            let (a, p_rows) = generate(&p, args.runs).await;
            eprintln!(
                "  done in {:.0} s: {a} actions, {p_rows} left-alone rows",
                started.elapsed().as_secs_f64()
            );
            p
        }
    };
    let db = sqlite(&path, true).await;
    let counts: (i64, i64, i64, Option<i64>) = sqlx::query_as(
        "SELECT (SELECT COUNT(*) FROM runs), (SELECT COUNT(*) FROM run_actions), \
         (SELECT COUNT(*) FROM run_pending), (SELECT MAX(id) FROM runs WHERE status = 'aborted')",
    )
    .fetch_one(&db)
    .await
    .unwrap();
    // The people and runs to open: this benchmark's own when it wrote the history; with `--db`
    // (the soak's history, whose old no-op runs are folded away), found in that history.
    let (busiest, longest, newest_span, any_run): (String, String, String, i64) = if args
        .db
        .is_some()
    {
        sqlx::query_as(
            "SELECT COALESCE((SELECT email FROM run_actions WHERE email IS NOT NULL GROUP BY email ORDER BY COUNT(*) DESC LIMIT 1), ''), \
                    COALESCE((SELECT email FROM pending_spans ORDER BY first_run_id LIMIT 1), ''), \
                    COALESCE((SELECT email FROM pending_spans ORDER BY id DESC LIMIT 1), ''), \
                    (SELECT MAX(id) FROM runs)",
        )
        .fetch_one(&db)
        .await
        .unwrap()
    } else {
        (
            FLAPPING.into(),
            AMBIGUOUS.into(),
            "newhire90.1@school.edu".into(),
            counts.0 / 2,
        )
    };
    let size = std::fs::metadata(&path).map(|m| m.len()).unwrap_or(0);
    db.close().await;
    let last_page = (counts.0 as u64).div_ceil(50);
    let aborted = counts.3.unwrap_or(any_run);
    let person = |email: &str| format!("/console/person?email={}", email.replace('@', "%40"));
    let year_ago = (chrono::Utc::now() - chrono::Duration::days(366)).format("%Y-%m-%d");
    let pages: Vec<(&str, String)> = vec![
        ("runs, page 1 (30-day charts)", "/console/".into()),
        ("runs, last page", format!("/console/?page={last_page}")),
        ("runs, status=failed", "/console/?status=failed".into()),
        (
            "runs, a year (366-day charts)",
            format!("/console/?from={year_ago}"),
        ),
        (
            "one run (aborted, 30 actions)",
            format!("/console/runs/{aborted}"),
        ),
        ("one run (no-op)", format!("/console/runs/{any_run}")),
        ("person: the most actions", person(&busiest)),
        ("person: left alone longest", person(&longest)),
        ("person: newest left alone", person(&newest_span)),
        (
            "person: unknown",
            "/console/person?email=nobody%40school.edu".into(),
        ),
        ("pending", "/console/pending".into()),
        ("health", "/console/health".into()),
    ];
    let client = reqwest::Client::new();
    let addr = serve(&path).await;
    println!(
        "history: {} runs, {} actions, {} left-alone rows, {:.0} MiB; {} requests per page, sequential, release build\n",
        counts.0,
        counts.1,
        counts.2,
        size as f64 / 1048576.0,
        args.repeat
    );
    println!("| page | median ms | p95 ms | max ms | bytes |");
    println!("|---|---:|---:|---:|---:|");
    let floor = time_page(&client, addr, "/console/style.css", args.repeat).await;
    println!(
        "| lower bound: the style sheet (same stack, no database) | {} | {} | {} | {} |",
        ms(floor.median),
        ms(floor.p95),
        ms(floor.max),
        floor.bytes
    );
    let mut worst = Duration::ZERO;
    for (name, page) in &pages {
        let t = time_page(&client, addr, page, args.repeat).await;
        worst = worst.max(t.p95);
        println!(
            "| {name} | {} | {} | {} | {} |",
            ms(t.median),
            ms(t.p95),
            ms(t.max),
            t.bytes
        );
    }
    println!("\nslowest page, p95: {} ms", ms(worst));
    year_of_charts(&path, args.repeat).await;
    if args.no_naive {
        return;
    }
    // Naive: the same history without the indexes on email and time.
    let naive = dir.path().join("naive.db");
    std::fs::copy(&path, &naive).expect("copy");
    let pool = sqlite(&naive, false).await;
    for index in [
        "run_actions_email",
        "pending_spans_email",
        "runs_started_at",
    ] {
        sqlx::query(&format!("DROP INDEX IF EXISTS {index}"))
            .execute(&pool)
            .await
            .unwrap();
    }
    pool.close().await;
    let addr = serve(&naive).await;
    println!("\nnaive: the same history without the email and time indexes\n");
    println!("| page | median ms | p95 ms | max ms | bytes |");
    println!("|---|---:|---:|---:|---:|");
    for (name, page) in pages
        .iter()
        .filter(|(n, _)| n.starts_with("person") || n.contains("year"))
    {
        let t = time_page(&client, addr, page, args.repeat.min(10)).await;
        println!(
            "| {name} | {} | {} | {} | {} |",
            ms(t.median),
            ms(t.p95),
            ms(t.max),
            t.bytes
        );
    }
}

/// The year of charts' data alone, two ways on the same file: the day totals the console
/// reads (`run_day_totals`), and the naive way it read before them, aggregating every run of
/// the year (which also misses the days retention folded into `run_days`).
async fn year_of_charts(path: &Path, repeat: usize) {
    let db = sqlite(path, true).await;
    let from = (chrono::Utc::now() - chrono::Duration::days(366))
        .format("%Y-%m-%d")
        .to_string();
    let totals = "SELECT day, SUM(runs), SUM(adds_applied), SUM(removes_applied), SUM(failed), \
        MAX(CASE WHEN status IN ('succeeded', 'partial') THEN pending_max END), \
        SUM(CASE WHEN status IN ('succeeded', 'partial') THEN seconds_total END) \
          / SUM(CASE WHEN status IN ('succeeded', 'partial') THEN runs END), \
        MAX(CASE WHEN status IN ('succeeded', 'partial') THEN seconds_max END), \
        SUM(CASE WHEN status IN ('failed', 'aborted', 'interrupted') THEN runs ELSE 0 END) \
        FROM run_day_totals WHERE day >= ?1 GROUP BY day ORDER BY day";
    let every_run = "SELECT substr(started_at, 1, 10) AS day, COUNT(*), SUM(adds_applied), \
        SUM(removes_applied), SUM(failed), MAX(pending), AVG(seconds), MAX(seconds), SUM(bad) FROM ( \
          SELECT started_at, adds_applied, removes_applied, failed, \
            CASE WHEN status IN ('succeeded', 'partial') THEN pending END AS pending, \
            CASE WHEN status IN ('succeeded', 'partial') \
              THEN (julianday(finished_at) - julianday(started_at)) * 86400.0 END AS seconds, \
            CASE WHEN status IN ('failed', 'aborted', 'interrupted') THEN 1 ELSE 0 END AS bad \
          FROM runs WHERE id >= (SELECT id FROM runs WHERE started_at >= ?1 ORDER BY started_at LIMIT 1) \
            AND +started_at >= ?1 AND dry_run = FALSE) GROUP BY day ORDER BY day";
    println!("\nthe year of charts' data alone (366 days, SQL only, {repeat} queries each)\n");
    println!("| query | median ms | p95 ms | days |");
    println!("|---|---:|---:|---:|");
    for (name, sql) in [
        (
            "day totals (`run_day_totals`, what the console reads)",
            totals,
        ),
        ("naive: aggregate every run of the year", every_run),
    ] {
        let mut times = Vec::with_capacity(repeat);
        let mut days = 0;
        for _ in 0..repeat.max(1) {
            let started = Instant::now();
            days = sqlx::query(sql)
                .bind(&from)
                .fetch_all(&db)
                .await
                .expect("the query runs")
                .len();
            times.push(started.elapsed());
        }
        times.sort();
        println!(
            "| {name} | {} | {} | {days} |",
            ms(times[times.len() / 2]),
            ms(times[(times.len() * 95 / 100).min(times.len() - 1)])
        );
    }
    db.close().await;
}
