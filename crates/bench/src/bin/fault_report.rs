//! The reliability figures in RELIABILITY.md, from one command:
//!
//! ```text
//! cargo run -p bench --release --bin fault_report
//! ```
//!
//! Each scenario starts the Studio simulator in this process with one fault injected, then runs
//! the daemon's library (`Config::from_text`, `History::open`, `reconcile::Engine`) against it
//! over real HTTP on 127.0.0.1, with a real SQLite history, until the tenant converges or the
//! scenario's point is made. The `kill -9` scenario runs the apply in a child process (this
//! same executable) and kills it with SIGKILL. Nothing leaves the machine.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};
use studio_role_sync_engine::config::Config;
use studio_role_sync_engine::history::History;
use studio_role_sync_engine::metrics::Metrics;
use studio_role_sync_engine::reconcile::{Engine, RunRequest, Trigger};
use studio_role_sync_engine::run_report::RunReport;
use studio_role_sync_engine::shutdown::CancellationToken;
use studio_sim::{Faults, Sim, SimConfig, SimStats, SimUser};

const TOKEN: &str = "fault-report-token";

/// The parts of the config a scenario changes.
#[derive(Clone)]
struct Knobs {
    requests_per_second: f64,
    burst: u32,
    concurrency: usize,
    batch_size: usize,
    timeout_seconds: f64,
    max_retries: u32,
    max_removals: usize,
}

impl Default for Knobs {
    fn default() -> Self {
        Knobs {
            requests_per_second: 100.0,
            burst: 10,
            concurrency: 4,
            batch_size: 50,
            timeout_seconds: 5.0,
            max_retries: 5,
            max_removals: 100,
        }
    }
}

/// One simulated tenant, a folder with config, roles file and history, and the runs made.
struct Lab {
    sim: Sim,
    dir: tempfile::TempDir,
    knobs: Knobs,
    desired: BTreeSet<String>,
    started: Instant,
    runs: Vec<RunReport>,
    /// Client-side retries and 429s over every run.
    retries: i64,
}

impl Lab {
    async fn new(faults: Faults, users: Vec<SimUser>, knobs: Knobs) -> Lab {
        Lab::with_sim(
            SimConfig {
                token: Some(TOKEN.into()),
                faults,
                ..SimConfig::default()
            },
            users,
            knobs,
        )
        .await
    }

    async fn with_sim(config: SimConfig, users: Vec<SimUser>, knobs: Knobs) -> Lab {
        let sim = Sim::start(config, users).await.expect("simulator starts");
        let dir = tempfile::tempdir().expect("temp dir");
        std::fs::write(dir.path().join("token"), TOKEN).expect("token file");
        Lab {
            sim,
            dir,
            knobs,
            desired: BTreeSet::new(),
            started: Instant::now(),
            runs: Vec::new(),
            retries: 0,
        }
    }

    fn config_path(&self) -> PathBuf {
        self.dir.path().join("studio-role-sync.yaml")
    }

    fn config_text(&self) -> String {
        let k = &self.knobs;
        format!(
            "studio:\n  base_url: {}\n  token_file: token\n  requests_per_second: {}\n  burst: {}\n  \
             concurrency: {}\n  batch_size: {}\n  timeout_seconds: {}\n  max_retries: {}\n\
             roles:\n  managed: [Admin]\n  remove_unlisted: true\n  protected: []\n\
             safety:\n  max_removals: {}\n  max_removal_ratio: 1.0\n\
             source:\n  yaml: roles.yaml\n\
             history: state/history.db\n\
             http:\n  listen: 127.0.0.1:0\n",
            self.sim.base_url(),
            k.requests_per_second,
            k.burst,
            k.concurrency,
            k.batch_size,
            k.timeout_seconds,
            k.max_retries,
            k.max_removals,
        )
    }

    /// Writes the config and a roles file granting `Admin` to `emails`.
    fn want_admins(&mut self, emails: impl IntoIterator<Item = String>) {
        self.desired = emails.into_iter().collect();
        let mut text = String::from("users:\n");
        for e in &self.desired {
            text.push_str(&format!("  {e}: [Admin]\n"));
        }
        std::fs::write(self.dir.path().join("roles.yaml"), text).expect("roles file");
        std::fs::write(self.config_path(), self.config_text()).expect("config file");
    }

    /// One `apply`, as the command does it: load, open history, mark dead runs, run.
    async fn apply(&mut self) -> &RunReport {
        let report = apply_once(&self.config_path()).await;
        self.retries += report.record.retries;
        self.runs.push(report);
        self.runs.last().expect("just pushed")
    }

    fn converged(&self) -> bool {
        let holders: BTreeSet<String> = self
            .sim
            .holders("Admin")
            .into_iter()
            .filter_map(|u| u.email.map(|e| e.to_lowercase()))
            .collect();
        holders == self.desired
    }

    /// Applies until converged (at most `max_runs`).
    async fn converge(&mut self, max_runs: usize) {
        for _ in 0..max_runs {
            self.apply().await;
            if self.converged() {
                break;
            }
        }
    }

    fn row(&self, name: &str, fault: &str) -> Row {
        let s = self.sim.stats();
        Row {
            name: name.into(),
            fault: fault.into(),
            statuses: self
                .runs
                .iter()
                .map(|r| r.record.status.to_string())
                .collect::<Vec<_>>()
                .join(" → "),
            converged: self.converged(),
            stats: s,
            retries: self.retries,
            seconds: self.started.elapsed().as_secs_f64(),
            note: self
                .runs
                .iter()
                .find_map(|r| r.record.error.clone())
                .unwrap_or_default(),
        }
    }
}

async fn apply_once(config_path: &Path) -> RunReport {
    let text = std::fs::read_to_string(config_path).expect("config");
    let config = Arc::new(Config::from_text(config_path, &text).expect("valid config"));
    let history = History::open(&config.history).await.expect("history opens");
    history.mark_interrupted().await.expect("mark interrupted");
    let engine = Engine::new(config, history.clone(), Metrics::new())
        .await
        .expect("client");
    let report = engine
        .run(RunRequest::new(Trigger::Manual), CancellationToken::new())
        .await
        .expect("history writes");
    history.close().await;
    report
}

struct Row {
    name: String,
    fault: String,
    statuses: String,
    converged: bool,
    stats: SimStats,
    retries: i64,
    seconds: f64,
    note: String,
}

/// `n` users `u{i}@example.edu` (ids 1..=n) holding no role.
fn people(n: u64) -> Vec<SimUser> {
    (1..=n)
        .map(|i| person(i, &format!("u{i}@example.edu")))
        .collect()
}

fn person(id: u64, email: &str) -> SimUser {
    SimUser {
        id,
        full_name: format!("User {id}"),
        email: Some(email.into()),
        role_names: Vec::new(),
    }
}

fn emails(from: u64, to: u64) -> impl Iterator<Item = String> {
    (from..=to).map(|i| format!("u{i}@example.edu"))
}

/// A converging scenario: 300 users, 120 of them should get `Admin`.
async fn converging(name: &str, fault: &str, faults: Faults, knobs: Knobs) -> Row {
    let mut lab = Lab::new(faults, people(300), knobs).await;
    lab.want_admins(emails(1, 120));
    lab.converge(5).await;
    lab.row(name, fault)
}

/// Users 1..=8 want `Admin`; users 100 and 101 hold it unlisted (two removals). With
/// `conflict`, user 3 holds `SubAccountAdmin` (not managed here), which Studio's role model
/// says excludes `Admin`: the simulator refuses (`422`) any batch adding `Admin` to user 3.
async fn admins_lab(conflict: bool) -> Lab {
    let mut users = people(8);
    if conflict {
        users[2].role_names.push("SubAccountAdmin".into());
    }
    let mut holder = person(100, "old1@example.edu");
    holder.role_names.push("Admin".into());
    users.push(holder.clone());
    holder.id = 101;
    holder.email = Some("old2@example.edu".into());
    users.push(holder);
    let mut lab = Lab::with_sim(
        SimConfig {
            token: Some(TOKEN.into()),
            exclusive: vec![vec!["Admin".into(), "SubAccountAdmin".into()]],
            ..SimConfig::default()
        },
        users,
        Knobs::default(),
    )
    .await;
    lab.want_admins(emails(1, 8));
    lab
}

async fn refused_batch() -> Row {
    let mut lab = admins_lab(true).await;
    lab.apply().await;
    let puts = lab.sim.stats().put_roles;
    // An admin takes SubAccountAdmin away in Studio; the next run retries by itself.
    lab.sim.set_roles(3, vec![]);
    lab.apply().await;
    let mut row = lab.row("refused batch", "1 of 10 actions 422s");
    row.note = format!(
        "batch of 10 bisected: {puts} PUTs in run 1, 9 applied + 1 failed (422, partial, exit 4); \
         run 2 applied it"
    );
    row
}

async fn renamed_account() -> Row {
    let mut lab = admins_lab(false).await;
    lab.apply().await;
    // In Studio, account 3 is renamed and loses Admin; a new account takes its email.
    lab.sim.set_roles(3, vec![]);
    lab.sim.set_email(3, Some("u3.former@example.edu"));
    lab.sim.add_user(person(500, "u3@example.edu"));
    lab.sim.reset_stats();
    lab.sim.clear_requests();
    lab.started = Instant::now();
    lab.runs.clear();
    lab.apply().await;
    let s = lab.sim.stats();
    let to_old = lab
        .sim
        .requests()
        .iter()
        .flat_map(|r| &r.actions)
        .filter(|a| a.user_id == 3)
        .count();
    let mut row = lab.row("renamed account", "email moved to a new account");
    row.note = format!(
        "{} email search, {} PUT: the new account got Admin; actions sent to the renamed one: {to_old}",
        s.search_by_email, s.put_roles
    );
    row
}

async fn down_from_start() -> Row {
    let mut lab = Lab::new(
        Faults {
            error_rate: 1.0,
            ..Faults::default()
        },
        people(50),
        Knobs {
            max_retries: 3,
            ..Knobs::default()
        },
    )
    .await;
    lab.want_admins(emails(1, 50));
    lab.apply().await;
    lab.row("server down", "every request 5xx")
}

async fn down_mid_apply() -> Row {
    let mut lab = Lab::new(
        Faults {
            latency: Duration::from_millis(30),
            ..Faults::default()
        },
        people(100),
        Knobs {
            batch_size: 1,
            concurrency: 2,
            max_retries: 2,
            ..Knobs::default()
        },
    )
    .await;
    lab.want_admins(emails(1, 100));
    let path = lab.config_path();
    let sim = &lab.sim;
    let (report, ()) = tokio::join!(apply_once(&path), async {
        while sim.stats().put_roles < 5 {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        sim.set_faults(Faults {
            error_rate: 1.0,
            ..Faults::default()
        });
    });
    let puts = lab.sim.stats().put_roles;
    lab.retries += report.record.retries;
    lab.runs.push(report);
    lab.sim.set_faults(Faults::default());
    lab.apply().await;
    let mut row = lab.row("down during apply", "all 5xx after 5 PUTs");
    let first = &lab.runs[0].record;
    row.note = format!(
        "breaker opened after {puts} of 100 PUTs ({} applied, {} failed, rest skipped): {}; \
         next run converged",
        first.adds_applied,
        first.failed,
        first
            .error
            .as_ref()
            .map(ToString::to_string)
            .unwrap_or_default()
    );
    row
}

async fn kill_9() -> Row {
    let mut lab = Lab::new(
        Faults {
            latency: Duration::from_millis(30),
            ..Faults::default()
        },
        people(60),
        Knobs {
            batch_size: 1,
            concurrency: 2,
            ..Knobs::default()
        },
    )
    .await;
    lab.want_admins(emails(1, 60));
    let mut child = std::process::Command::new(std::env::current_exe().expect("own path"))
        .arg("--child-apply")
        .arg(lab.config_path())
        .spawn()
        .expect("child starts");
    while lab.sim.stats().put_roles < 10 {
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    child.kill().expect("SIGKILL"); // std's kill is SIGKILL on Unix
    child.wait().expect("child reaped");
    tokio::time::sleep(Duration::from_millis(200)).await;
    let before = lab.sim.stats().put_actions;
    let history = History::open(&lab.dir.path().join("state/history.db"))
        .await
        .expect("history opens after kill -9");
    let dead = history.run(1).await.expect("read").expect("run 1");
    history.close().await;
    lab.apply().await;
    let after = lab.sim.stats().put_actions;
    let history = History::open(&lab.dir.path().join("state/history.db"))
        .await
        .expect("history opens");
    let marked = history.run(1).await.expect("read").expect("run 1").status;
    history.close().await;
    let mut row = lab.row("kill -9 during apply", "SIGKILL after 10 PUTs");
    row.statuses = format!("{} (killed) → {marked}; {}", dead.status, row.statuses);
    row.note = format!(
        "history opened cleanly; {before} actions applied before the kill, {} by the next run, \
         {after} in all for 60 wanted (none sent twice)",
        after - before
    );
    row
}

async fn malformed_all() -> Row {
    let mut lab = Lab::new(
        Faults {
            malformed_rate: 1.0,
            ..Faults::default()
        },
        people(10),
        Knobs {
            max_retries: 2,
            ..Knobs::default()
        },
    )
    .await;
    lab.want_admins(emails(1, 10));
    lab.apply().await;
    lab.row("malformed JSON", "every 200 body broken")
}

async fn too_slow() -> Row {
    let mut lab = Lab::new(
        Faults {
            latency: Duration::from_millis(1500),
            ..Faults::default()
        },
        people(10),
        Knobs {
            timeout_seconds: 0.3,
            max_retries: 2,
            ..Knobs::default()
        },
    )
    .await;
    lab.want_admins(emails(1, 10));
    lab.apply().await;
    lab.row("timeouts", "latency 1.5 s > timeout 0.3 s")
}

/// Every answer hostile for one run (absurd `Retry-After`, HTML, `null`, wrong types, deep
/// nesting, a 1 GiB body, Canvas 403s), then Studio behaves.
async fn hostile_then_behaves() -> Row {
    let mut lab = Lab::new(
        Faults {
            hostile_rate: 1.0,
            ..Faults::default()
        },
        people(20),
        Knobs {
            max_retries: 3,
            ..Knobs::default()
        },
    )
    .await;
    lab.want_admins(emails(1, 20));
    lab.apply().await;
    let hostile = lab.sim.stats();
    lab.sim.set_faults(Faults::default());
    lab.apply().await;
    let mut row = lab.row("all answers hostile, then not", "100% hostile in run 1");
    row.note = format!(
        "run 1: {} hostile answers ({} MiB of 1 GiB bodies sent before the client stopped reading), \
         no crash, recorded failed: {}; run 2 converged",
        hostile.hostile,
        hostile.hostile_body_bytes / (1024 * 1024),
        lab.runs[0].record.error.clone().unwrap_or_default()
    );
    row
}

/// A daemon and two admins' processes (separate history connections and OAuth clients, as
/// separate processes have) sharing one history and one refresh-token lineage, with 2 s access
/// tokens that a refresh revokes (as Doorkeeper does), for 15 s.
async fn shared_oauth_lineage() -> Row {
    use studio_sim::SimOAuth;
    let sim = Sim::start(
        SimConfig {
            token: None,
            oauth: Some(SimOAuth {
                client_id: "report".into(),
                client_secret: "report-secret".into(),
                refresh_token: "report-seed".into(),
                access_ttl: Duration::from_secs(2),
            }),
            faults: Faults {
                latency: Duration::from_millis(10),
                ..Faults::default()
            },
            ..SimConfig::default()
        },
        people(60),
    )
    .await
    .expect("simulator starts");
    sim.revoke_access_on_refresh(true);
    let dir = tempfile::tempdir().expect("temp dir");
    let write =
        |name: &str, text: &str| std::fs::write(dir.path().join(name), text).expect("write");
    write("secret", "report-secret");
    write("seed", "report-seed");
    let mut roles = String::from("users:\n");
    for e in emails(1, 30) {
        roles.push_str(&format!("  {e}: [Admin]\n"));
    }
    write("roles.yaml", &roles);
    let config = format!(
        "studio:\n  base_url: {}\n  oauth:\n    client_id: report\n    client_secret_file: secret\n    \
         refresh_token_file: seed\n  requests_per_second: 100\n  concurrency: 4\n\
         roles:\n  managed: [Admin]\nsafety:\n  max_removals: 100\n  max_removal_ratio: 1.0\n\
         source:\n  yaml: roles.yaml\nhistory: state/history.db\n",
        sim.base_url()
    );
    write("studio-role-sync.yaml", &config);
    let path = dir.path().join("studio-role-sync.yaml");
    let started = Instant::now();
    let until = started + Duration::from_secs(15);
    // One process: its own history connection and client; runs until `until`.
    let process = |dry_run: bool| {
        let path = path.clone();
        async move {
            let config = Arc::new(Config::load(&path).expect("valid config"));
            let history = History::open(&config.history).await.expect("history");
            let engine = Engine::new(config, history.clone(), Metrics::new())
                .await
                .expect("client");
            let mut statuses = Vec::new();
            while Instant::now() < until {
                let report = engine
                    .run(
                        RunRequest {
                            dry_run,
                            ..RunRequest::new(Trigger::Schedule)
                        },
                        CancellationToken::new(),
                    )
                    .await
                    .expect("history writes");
                statuses.push(report.record.status.to_string());
                tokio::time::sleep(Duration::from_millis(300)).await;
            }
            history.close().await;
            statuses
        }
    };
    let (daemon, admin1, admin2) = tokio::join!(process(false), process(true), process(true));
    let all: Vec<&String> = daemon.iter().chain(&admin1).chain(&admin2).collect();
    let failed = all.iter().filter(|s| s.as_str() != "succeeded").count();
    let s = sim.stats();
    let holders = sim.holders("Admin").len();
    Row {
        name: "OAuth shared by 3 clients".into(),
        fault: "2 s tokens; a refresh revokes older access tokens".into(),
        statuses: format!(
            "{} runs, {} not succeeded",
            all.len(),
            failed
        ),
        converged: holders == 30,
        retries: 0,
        seconds: started.elapsed().as_secs_f64(),
        note: format!(
            "{} daemon runs and {} dry runs of two admins' processes (each client with its own history connection) in 15 s; {} refreshes, {} refused \
             (invalid_grant), {} requests answered 401",
            daemon.len(),
            admin1.len() + admin2.len(),
            sim.refresh_count(),
            sim.invalid_grants(),
            s.status_401
        ),
        stats: s,
    }
}

fn child_apply(config: &str) {
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    rt.block_on(apply_once(Path::new(config)));
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if let [_, flag, config] = args.as_slice() {
        if flag == "--child-apply" {
            child_apply(config);
            return;
        }
    }
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");
    rt.block_on(report());
}

async fn report() {
    let k = Knobs::default();
    let mut rows = Vec::new();
    let scenarios = "300 users, 120 to add; config: 100 req/s, concurrency 4, batch 50";
    eprintln!("running the fault scenarios ({scenarios})...");
    rows.push(converging("baseline", "none", Faults::default(), k.clone()).await);
    rows.push(
        converging(
            "latency",
            "+100 ms per request",
            Faults {
                latency: Duration::from_millis(100),
                ..Faults::default()
            },
            k.clone(),
        )
        .await,
    );
    rows.push(
        converging(
            "5xx",
            "10% 500/502/503",
            Faults {
                error_rate: 0.10,
                ..Faults::default()
            },
            k.clone(),
        )
        .await,
    );
    for limit in [20.0, 10.0] {
        rows.push(
            converging(
                "rate limit",
                &format!("server {limit} req/s (config 100)"),
                Faults {
                    rate_limit: Some(limit),
                    ..Faults::default()
                },
                k.clone(),
            )
            .await,
        );
    }
    rows.push(
        converging(
            "5xx + rate limit",
            "10% 5xx, server 20 req/s",
            Faults {
                error_rate: 0.10,
                rate_limit: Some(20.0),
                ..Faults::default()
            },
            k.clone(),
        )
        .await,
    );
    rows.push(
        converging(
            "cut connections",
            "10% of 200s cut mid-body",
            Faults {
                drop_rate: 0.10,
                ..Faults::default()
            },
            k.clone(),
        )
        .await,
    );
    rows.push(
        converging(
            "malformed bodies",
            "10% of 200s not JSON",
            Faults {
                malformed_rate: 0.10,
                ..Faults::default()
            },
            k.clone(),
        )
        .await,
    );
    rows.push(
        converging(
            "hostile answers",
            "20% hostile (absurd Retry-After, HTML, null, wrong types, 1 GiB body, 403)",
            Faults {
                hostile_rate: 0.20,
                ..Faults::default()
            },
            k.clone(),
        )
        .await,
    );
    rows.push(
        converging(
            "Canvas-style 403",
            "server 20 req/s, throttles with 403",
            Faults {
                rate_limit: Some(20.0),
                throttle_with_403: true,
                ..Faults::default()
            },
            k.clone(),
        )
        .await,
    );
    rows.push(refused_batch().await);
    rows.push(renamed_account().await);
    rows.push(down_from_start().await);
    rows.push(down_mid_apply().await);
    rows.push(kill_9().await);
    rows.push(malformed_all().await);
    rows.push(too_slow().await);
    rows.push(hostile_then_behaves().await);
    rows.push(shared_oauth_lineage().await);

    println!("Scenarios marked * use: {scenarios}.\n");
    println!(
        "| scenario | fault | runs (status) | converged | requests | 429 (share) | 5xx | other 4xx | retries | seconds |"
    );
    println!("|---|---|---|---|---:|---:|---:|---:|---:|---:|");
    for (i, r) in rows.iter().enumerate() {
        let star = if i < 10 { " *" } else { "" };
        let s = &r.stats;
        let share = if s.total == 0 {
            0.0
        } else {
            100.0 * s.status_429 as f64 / s.total as f64
        };
        println!(
            "| {}{star} | {} | {} | {} | {} | {} ({share:.1}%) | {} | {} | {} | {:.1} |",
            r.name,
            r.fault,
            r.statuses,
            if r.converged { "yes" } else { "no" },
            s.total,
            s.status_429,
            s.status_5xx,
            s.status_4xx_other,
            r.retries,
            r.seconds,
        );
    }
    println!("\nWhat the daemon recorded:\n");
    for r in &rows {
        if !r.note.is_empty() {
            println!("- **{}**: {}", r.name, r.note);
        }
    }
}
