//! The soak benchmark: a year of 15-minute runs, compressed, on a tenant with 1,000 pending
//! emails and a little drift every day (`cargo run -p bench --release --bin soak [-- --help]`).
//!
//! The real `Engine` runs against the simulator over real HTTP on 127.0.0.1 with a real SQLite
//! history, as the daemon would, except for time: the history has a manual [`Clock`] that the
//! loop sets to each slot's time, so back-off, full verifications (`verify.full_every`) and
//! retention (`history.keep_noop_runs`) behave as over a real year; the daemon's own prune
//! runs after each run.
//!
//! Each day, before its first run: `--drift` pending students appear in Studio (the next search
//! of them gives them their role), `--drift` new students join the source (pending), and one
//! admin leaves the source while a new one joins. Reported: history size (file and pages in
//! use) at the end, run duration p50/p99 over the first and the last 7 days, requests per run,
//! peak RSS. The naive strategy (the previous version: every pending email searched on every
//! run, its row copied into every run) runs `--naive-days` days against an identical tenant; its
//! requests are measured, its history size per run too (the old `run_pending` table, filled with
//! the same rows), and the year extrapolated ("est.").
//!
//! `--history-url postgres://…` runs the same soak a second time, in the same process, with the
//! history in a fresh PostgreSQL schema (`--schema`, dropped at the end) instead of the SQLite
//! file, as a daemon with `ha` runs it: the engine's writes fenced by a held lease's epoch (the
//! lease renewed once a simulated day, outside the timed runs). Both are reported side by side:
//! run duration, SQL statements per run (each statement sqlx sends, counted from its
//! `sqlx::query` events, the same way on both databases) and the history's size
//! (`History::size`: a SQLite file's pages in use; a schema's tables with indexes and TOAST).

use clap::Parser;
use secrecy::SecretString;
use sqlx::sqlite::SqliteConnectOptions;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use studio_role_sync_engine::config::Config;
use studio_role_sync_engine::history::{Clock, History, WriteTerm};
use studio_role_sync_engine::lease::{Epoch, Lease};
use studio_role_sync_engine::metrics::Metrics;
use studio_role_sync_engine::reconcile::{Engine, RunRequest, Trigger};
use studio_role_sync_engine::shutdown::CancellationToken;
use studio_sim::{Sim, SimConfig, SimUser};

const TOKEN: &str = "soak-token";
const SLOT_MINUTES: i64 = 15;

#[derive(Parser, Debug, Clone)]
#[command(about = "studio-role-sync soak: a year of 15-minute runs, compressed")]
struct Args {
    /// Simulated days.
    #[arg(long, default_value_t = 365)]
    days: i64,
    /// Emails pending (in the source, not in Studio) at any time.
    #[arg(long, default_value_t = 1000)]
    pending: usize,
    /// Admins holding their role.
    #[arg(long, default_value_t = 200)]
    admins: usize,
    /// Students appearing in Studio, and new students in the source, per day.
    #[arg(long, default_value_t = 5)]
    drift: usize,
    /// Days the naive strategy runs (its year is extrapolated).
    #[arg(long, default_value_t = 1)]
    naive_days: i64,
    /// Where the soak's history ends up (kept for timing the console's pages on it).
    #[arg(long, default_value = "target/soak/history.db")]
    out: PathBuf,
    /// Also run the soak with the history on this PostgreSQL database (`postgres://…`), and
    /// compare it with SQLite.
    #[arg(long)]
    history_url: Option<String>,
    /// The PostgreSQL schema for `--history-url` (must not exist; dropped at the end).
    /// Default: `srs_soak_<pid>`.
    #[arg(long)]
    schema: Option<String>,
}

/// Where the soak's history lives.
enum Backend {
    Sqlite,
    Postgres { url: SecretString, schema: String },
}

impl Backend {
    fn name(&self) -> &'static str {
        match self {
            Backend::Sqlite => "SQLite",
            Backend::Postgres { .. } => "PostgreSQL",
        }
    }
}

/// SQL statements sent by the history so far: sqlx emits one `sqlx::query` event per
/// statement on both databases, counted here and never printed.
static STATEMENTS: AtomicU64 = AtomicU64::new(0);

struct CountStatements;

impl<S: tracing::Subscriber> tracing_subscriber::Layer<S> for CountStatements {
    fn register_callsite(
        &self,
        meta: &'static tracing::Metadata<'static>,
    ) -> tracing::subscriber::Interest {
        if meta.target() == "sqlx::query" {
            tracing::subscriber::Interest::always()
        } else {
            tracing::subscriber::Interest::never()
        }
    }

    fn enabled(
        &self,
        meta: &tracing::Metadata<'_>,
        _: tracing_subscriber::layer::Context<'_, S>,
    ) -> bool {
        meta.target() == "sqlx::query"
    }

    fn on_event(&self, _: &tracing::Event<'_>, _: tracing_subscriber::layer::Context<'_, S>) {
        STATEMENTS.fetch_add(1, Ordering::Relaxed);
    }
}

/// A daemon with `ha` writes under its lease's epoch; the soak holds one for its whole run.
const SOAK_LEASE: Duration = Duration::from_secs(600);

fn status_kb(field: &str) -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix(field))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0)
}

/// The tenant and its source as they drift.
struct Tenant {
    sim: Sim,
    dir: PathBuf,
    admins: Vec<String>,
    /// Students in the source, oldest first; those not yet in Studio are pending.
    students: Vec<String>,
    next_student: usize,
    next_admin: usize,
    next_id: u64,
}

impl Tenant {
    async fn start(dir: &Path, args: &Args) -> Tenant {
        let admins: Vec<String> = (0..args.admins)
            .map(|i| format!("admin{i}@school.edu"))
            .collect();
        let users: Vec<SimUser> = admins
            .iter()
            .zip(1..)
            .map(|(e, id)| SimUser {
                id,
                full_name: format!("Admin {id}"),
                email: Some(e.clone()),
                role_names: vec!["Admin".into()],
            })
            .collect();
        let config = SimConfig {
            token: Some(TOKEN.into()),
            ..SimConfig::default()
        };
        let sim = Sim::start(config, users).await.expect("simulator starts");
        let mut t = Tenant {
            sim,
            dir: dir.to_path_buf(),
            admins,
            students: (0..args.pending)
                .map(|i| format!("student{i}@school.edu"))
                .collect(),
            next_student: args.pending,
            next_admin: args.admins,
            next_id: 1_000_000,
        };
        t.write_roles();
        t
    }

    fn write_roles(&mut self) {
        let mut text = String::from("users:\n");
        for a in &self.admins {
            text.push_str(&format!("  {a}: [Admin]\n"));
        }
        for s in &self.students {
            text.push_str(&format!("  {s}: [CaptionEditor]\n"));
        }
        std::fs::write(self.dir.join("roles.yaml"), text).expect("write roles");
    }

    fn new_user(&mut self, email: &str) {
        self.next_id += 1;
        self.sim.add_user(SimUser {
            id: self.next_id,
            full_name: email.into(),
            email: Some(email.into()),
            role_names: vec![],
        });
    }

    /// A day's drift: some pending students log in, new ones are listed, one admin changes.
    fn drift(&mut self, n: usize) {
        // The oldest students appear in Studio; they stay in the source (now with their role).
        let appearing: Vec<String> = self.students.iter().take(n).cloned().collect();
        for s in &appearing {
            self.new_user(s);
        }
        self.students.drain(..n.min(self.students.len()));
        for _ in 0..n {
            self.students
                .push(format!("student{}@school.edu", self.next_student));
            self.next_student += 1;
        }
        self.admins.remove(0);
        let admin = format!("admin{}@school.edu", self.next_admin);
        self.next_admin += 1;
        self.new_user(&admin);
        self.admins.push(admin);
        self.write_roles();
    }
}

async fn engine(
    dir: &Path,
    sim: &Sim,
    clock: &Clock,
    backend: &Backend,
) -> (Engine, History, Option<(Lease, Epoch)>) {
    std::fs::write(dir.join("token"), TOKEN).expect("write token");
    let text = format!(
        "studio:\n  base_url: {}\n  token_file: token\n  requests_per_second: 10000\n  burst: 100\n  \
         concurrency: 8\n  batch_size: 50\n  timeout_seconds: 60\n  max_retries: 5\n\
         roles:\n  managed: [Admin, CaptionEditor]\n  remove_unlisted: true\n  protected: []\n\
         safety:\n  max_removals: 10\n  max_removal_ratio: 0.5\n\
         source:\n  yaml: roles.yaml\n\
         history:\n  path: history.db\n  keep_noop_runs: 30d\n  keep_changes: forever\n\
         pending:\n  recheck_max: 24h\n\
         http:\n  listen: 127.0.0.1:0\n",
        sim.base_url(),
    );
    let path = dir.join("studio-role-sync.yaml");
    std::fs::write(&path, &text).expect("write config");
    let config = Config::from_text(&path, &text).expect("soak config is valid");
    let (history, lease) = match backend {
        Backend::Sqlite => (
            History::open(&config.history).await.expect("history opens"),
            None,
        ),
        Backend::Postgres { url, schema } => {
            let history = History::open_postgres(url, schema)
                .await
                .expect("PostgreSQL history opens");
            let pool = history.postgres_pool().expect("a PostgreSQL pool").clone();
            let lease = Lease::new(pool, SOAK_LEASE);
            let epoch = lease
                .acquire()
                .await
                .expect("lease")
                .expect("the fresh schema's lease is free");
            let term = WriteTerm::default();
            term.set(Some(epoch));
            (history.with_write_term(term), Some((lease, epoch)))
        }
    };
    let history = history.with_clock(clock.clone());
    let e = Engine::new(Arc::new(config), history.clone(), Metrics::new())
        .await
        .expect("engine starts");
    (e, history, lease)
}

/// Durations (s) and requests of each run of a stretch of days.
#[derive(Default)]
struct Stretch {
    seconds: Vec<f64>,
    requests: Vec<i64>,
    statements: Vec<u64>,
}

impl Stretch {
    fn pct(&self, p: f64) -> f64 {
        let mut v = self.seconds.clone();
        v.sort_by(f64::total_cmp);
        if v.is_empty() {
            return 0.0;
        }
        v[((v.len() - 1) as f64 * p).round() as usize]
    }

    fn requests_per_run(&self) -> f64 {
        self.requests.iter().sum::<i64>() as f64 / self.requests.len().max(1) as f64
    }

    fn statements_per_run(&self) -> f64 {
        self.statements.iter().sum::<u64>() as f64 / self.statements.len().max(1) as f64
    }
}

struct Outcome {
    first: Stretch,
    last: Stretch,
    runs: i64,
    statuses: std::collections::BTreeMap<String, u64>,
    file_bytes: u64,
    used_bytes: u64,
    /// The history's size before the first run (its empty tables and indexes).
    empty_bytes: u64,
    /// The naive strategy's old `run_pending` rows, bytes per run.
    old_rows_bytes_per_run: Option<f64>,
    wall: f64,
    /// Seconds and statements of every run, prune included.
    all: Stretch,
}

fn file_size(path: &Path) -> u64 {
    let wal = PathBuf::from(format!("{}-wal", path.display()));
    std::fs::metadata(path).map_or(0, |m| m.len()) + std::fs::metadata(wal).map_or(0, |m| m.len())
}

/// Runs `days` days of 15-minute slots. `naive`: every run searches every pending email (a
/// manual run ignores the back-off) and its pending rows are copied into an old-style table.
async fn soak(args: &Args, dir: &Path, days: i64, naive: bool, backend: &Backend) -> Outcome {
    let started = Instant::now();
    let start = chrono::DateTime::parse_from_rfc3339("2026-01-01T00:00:00Z")
        .expect("a time")
        .with_timezone(&chrono::Utc);
    let clock = Clock::manual(start);
    let mut tenant = Tenant::start(dir, args).await;
    let (engine, history, lease) = engine(dir, &tenant.sim, &clock, backend).await;
    let (size, free) = history.size().await.expect("size");
    let empty_bytes = size - free;
    let old = if naive {
        let pool = sqlx::SqlitePool::connect_with(
            SqliteConnectOptions::new()
                .filename(dir.join("old_rows.db"))
                .create_if_missing(true),
        )
        .await
        .expect("old rows db");
        sqlx::query(
            "CREATE TABLE run_pending (id INTEGER PRIMARY KEY AUTOINCREMENT, run_id INTEGER NOT NULL, \
             email TEXT NOT NULL, reason TEXT NOT NULL, user_id INTEGER, detail TEXT)",
        )
        .execute(&pool)
        .await
        .expect("old table");
        sqlx::query("CREATE INDEX run_pending_run ON run_pending (run_id)")
            .execute(&pool)
            .await
            .expect("old index");
        Some(pool)
    } else {
        None
    };
    let retention = engine.config.retention;
    let trigger = if naive {
        Trigger::Manual
    } else {
        Trigger::Schedule
    };
    let mut out = Outcome {
        first: Stretch::default(),
        last: Stretch::default(),
        runs: 0,
        statuses: Default::default(),
        file_bytes: 0,
        used_bytes: 0,
        empty_bytes,
        old_rows_bytes_per_run: None,
        wall: 0.0,
        all: Stretch::default(),
    };
    let slots = 24 * 60 / SLOT_MINUTES;
    for day in 0..days {
        if day > 0 {
            tenant.drift(args.drift);
        }
        if let Some((lease, epoch)) = &lease {
            // The daemon renews every lease/3 on its own timer, not per run: not counted.
            let before = STATEMENTS.load(Ordering::Relaxed);
            assert!(lease.renew(*epoch).await.expect("renew"), "lease kept");
            STATEMENTS.store(before, Ordering::Relaxed);
        }
        tenant.sim.clear_requests();
        for slot in 0..slots {
            clock.set(
                start
                    + chrono::Duration::days(day)
                    + chrono::Duration::minutes(slot * SLOT_MINUTES),
            );
            let t0 = Instant::now();
            let statements0 = STATEMENTS.load(Ordering::Relaxed);
            let report = engine
                .run(RunRequest::new(trigger), CancellationToken::new())
                .await
                .expect("run recorded");
            let seconds = t0.elapsed().as_secs_f64();
            let r = &report.record;
            *out.statuses.entry(r.status.to_string()).or_default() += 1;
            out.runs += 1;
            for (stretch, wanted) in [(&mut out.first, day < 7), (&mut out.last, day >= days - 7)] {
                if wanted {
                    stretch.seconds.push(seconds);
                    stretch.requests.push(r.api_requests);
                }
            }
            if let Some(old) = &old {
                // One transaction per run, as the previous version wrote them.
                let mut tx = old.begin().await.expect("old tx");
                for p in history.pending(r.id).await.expect("pending rows") {
                    sqlx::query("INSERT INTO run_pending (run_id, email, reason, user_id, detail) VALUES (?, ?, ?, ?, ?)")
                        .bind(r.id)
                        .bind(&p.email)
                        .bind(&p.reason)
                        .bind(p.user_id)
                        .bind(&p.detail)
                        .execute(&mut *tx)
                        .await
                        .expect("old row");
                }
                tx.commit().await.expect("old commit");
            } else {
                history.prune(&retention).await.expect("prune");
            }
            out.all.seconds.push(seconds);
            out.all.requests.push(r.api_requests);
            let statements = STATEMENTS.load(Ordering::Relaxed) - statements0;
            out.all.statements.push(statements);
            for (stretch, wanted) in [(&mut out.first, day < 7), (&mut out.last, day >= days - 7)] {
                if wanted {
                    stretch.statements.push(statements);
                }
            }
        }
        if day % 5 == 4 || day == days - 1 {
            let (used, _) = history.size().await.expect("size");
            eprintln!(
                "{}{}: day {}: {} runs, history {:.1} MB in use, {:.0} s so far",
                backend.name(),
                if naive { " (naive)" } else { "" },
                day + 1,
                out.runs,
                used as f64 / 1e6,
                started.elapsed().as_secs_f64()
            );
        }
    }
    let (total, free) = history.size().await.expect("size");
    out.used_bytes = total - free;
    sqlx_checkpoint(&history).await;
    out.file_bytes = match backend {
        Backend::Sqlite => file_size(&dir.join("history.db")),
        Backend::Postgres { .. } => total,
    };
    if let Some(old) = old {
        let pages: i64 = sqlx::query_scalar("PRAGMA page_count")
            .fetch_one(&old)
            .await
            .expect("pages");
        let size: i64 = sqlx::query_scalar("PRAGMA page_size")
            .fetch_one(&old)
            .await
            .expect("page size");
        out.old_rows_bytes_per_run = Some((pages * size) as f64 / out.runs as f64);
    }
    history.close().await;
    out.wall = started.elapsed().as_secs_f64();
    out
}

async fn sqlx_checkpoint(history: &History) {
    // The file's size on disk after the WAL is folded back (what `ls -l` shows when idle).
    let _ = history.checkpoint().await;
}

fn main() {
    let args = Args::parse();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    rt.block_on(async {
        use tracing_subscriber::layer::SubscriberExt;
        tracing::subscriber::set_global_default(
            tracing_subscriber::registry().with(CountStatements),
        )
        .expect("the statement counter is the only subscriber");
        let dir = tempfile::tempdir().expect("temp dir");
        let ours_dir = dir.path().join("ours");
        let naive_dir = dir.path().join("naive");
        let pg_dir = dir.path().join("postgres");
        for d in [&ours_dir, &naive_dir, &pg_dir] {
            std::fs::create_dir_all(d).expect("dir");
        }
        let ours = soak(&args, &ours_dir, args.days, false, &Backend::Sqlite).await;
        let peak_rss = status_kb("VmHWM:") as f64 / 1024.0;
        let pg = match &args.history_url {
            Some(url) => {
                let schema = args
                    .schema
                    .clone()
                    .unwrap_or_else(|| format!("srs_soak_{}", std::process::id()));
                let pool = fresh_schema(url, &schema).await;
                let backend = Backend::Postgres {
                    url: SecretString::from(url.clone()),
                    schema: schema.clone(),
                };
                let outcome = soak(&args, &pg_dir, args.days, false, &backend).await;
                drop_schema(&pool, &schema).await;
                Some(outcome)
            }
            None => None,
        };
        let naive = soak(&args, &naive_dir, args.naive_days, true, &Backend::Sqlite).await;
        if let Some(parent) = args.out.parent() {
            std::fs::create_dir_all(parent).expect("out dir");
        }
        std::fs::copy(ours_dir.join("history.db"), &args.out).expect("keep the history");
        report(&args, &ours, &naive, peak_rss);
        if let Some(pg) = &pg {
            compare(&ours, pg);
        }
    });
}

/// A connection to `url` on which `schema` does not exist yet (the soak must start empty).
async fn fresh_schema(url: &str, schema: &str) -> sqlx::PgPool {
    let pool = sqlx::PgPool::connect(url)
        .await
        .unwrap_or_else(|e| panic!("cannot connect to --history-url: {e}"));
    let exists: bool =
        sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM pg_namespace WHERE nspname = $1)")
            .bind(schema)
            .fetch_one(&pool)
            .await
            .expect("read the schemas");
    assert!(!exists, "schema {schema} exists; choose another --schema");
    pool
}

async fn drop_schema(pool: &sqlx::PgPool, schema: &str) {
    if let Err(e) = sqlx::query(&format!("DROP SCHEMA IF EXISTS \"{schema}\" CASCADE"))
        .execute(pool)
        .await
    {
        eprintln!("cannot drop schema {schema}: {e}");
    }
}

/// The same soak on both databases, side by side.
fn compare(sqlite: &Outcome, pg: &Outcome) {
    println!();
    println!("| history | took s | run p50 / p99 ms, all runs | first 7 days | last 7 days | SQL statements per run (all / first 7 d / last 7 d) | history size: empty / after the soak |");
    println!("|---|---|---|---|---|---|---|");
    for (name, o) in [("SQLite", sqlite), ("PostgreSQL (fenced by a lease)", pg)] {
        println!(
            "| {name} | {:.0} | {:.1} / {:.1} | {:.1} / {:.1} | {:.1} / {:.1} | {:.1} / {:.1} / {:.1} | {:.2} MB / {:.2} MB |",
            o.wall,
            o.all.pct(0.5) * 1e3,
            o.all.pct(0.99) * 1e3,
            o.first.pct(0.5) * 1e3,
            o.first.pct(0.99) * 1e3,
            o.last.pct(0.5) * 1e3,
            o.last.pct(0.99) * 1e3,
            o.all.statements_per_run(),
            o.first.statements_per_run(),
            o.last.statements_per_run(),
            o.empty_bytes as f64 / 1e6,
            o.used_bytes as f64 / 1e6,
        );
    }
    println!(
        "PostgreSQL / SQLite: run p50 {:.2}×, statements per run {:.2}×, size {:.2}×; statuses on PostgreSQL: {:?}",
        pg.all.pct(0.5) / sqlite.all.pct(0.5).max(1e-9),
        pg.all.statements_per_run() / sqlite.all.statements_per_run().max(1e-9),
        pg.used_bytes as f64 / (sqlite.used_bytes as f64).max(1.0),
        pg.statuses
    );
}

fn report(args: &Args, ours: &Outcome, naive: &Outcome, peak_rss: f64) {
    let mb = |b: f64| b / 1e6;
    let year_runs = 365.0 * (24 * 60 / SLOT_MINUTES) as f64;
    let scale = year_runs / ours.runs as f64;
    println!(
        "soak: {} days × {} runs/day = {} runs; {} pending emails, {} admins, drift {}/day; took {:.0} s",
        args.days,
        24 * 60 / SLOT_MINUTES,
        ours.runs,
        args.pending,
        args.admins,
        args.drift,
        ours.wall
    );
    println!("statuses: {:?}", ours.statuses);
    println!("history kept at {}", args.out.display());
    println!();
    println!("| strategy | history after the soak (file / in use) | a year (est.) | run p50 / p99 ms, first 7 days | last 7 days | requests per run (first 7 d / last 7 d) | peak RSS MB |");
    println!("|---|---|---|---|---|---|---|");
    println!(
        "| spans + back-off + retention | {:.1} MB / {:.1} MB | {:.1} MB | {:.1} / {:.1} | {:.1} / {:.1} | {:.1} / {:.1} | {:.0} |",
        mb(ours.file_bytes as f64),
        mb(ours.used_bytes as f64),
        mb(ours.used_bytes as f64) * scale.max(1.0),
        ours.first.pct(0.5) * 1e3,
        ours.first.pct(0.99) * 1e3,
        ours.last.pct(0.5) * 1e3,
        ours.last.pct(0.99) * 1e3,
        ours.first.requests_per_run(),
        ours.last.requests_per_run(),
        peak_rss
    );
    let per_run = naive.old_rows_bytes_per_run.unwrap_or(0.0);
    println!(
        "| naive (copy per run, search every run), {} days | {:.1} MB of run_pending rows ({:.0} KiB per run) | {:.0} MB (est.) | {:.1} / {:.1} | n/a | {:.1} / n/a | n/a |",
        args.naive_days,
        mb(per_run * naive.runs as f64),
        per_run / 1024.0,
        mb(per_run * year_runs),
        naive.first.pct(0.5) * 1e3,
        naive.first.pct(0.99) * 1e3,
        naive.first.requests_per_run(),
    );
    let growth = ours.last.pct(0.5) / ours.first.pct(0.5).max(1e-9) - 1.0;
    println!();
    println!(
        "run duration p50, last 7 days vs first 7: {:+.1} %; requests per run, naive / ours (last 7 d): {:.0}×",
        growth * 100.0,
        naive.first.requests_per_run() / ours.last.requests_per_run().max(1e-9)
    );
}
