//! The console's screenshots in docs/console/, from a realistic two-week history:
//! `cargo run -p bench --release --bin console_screens [-- --out docs/console]`.
//!
//! The real `Engine` runs every hour for two weeks against the simulator over HTTP, with a
//! manual clock (so the history's dates are those two weeks, ending now) and the institution
//! changing between runs: new hires who have no Studio account yet and log in days later,
//! leavers, a typo'd email, an email two accounts share, Studio down for a night, a guard trip
//! that alice approved, a bad merge of the roles file that would remove 121 of 152 Admins
//! (stopped, then superseded once the file was restored), a Canvas admin re-granted in Studio
//! behind the tool (flapping), `trigger --by bob`, and an invalid roles file for a morning.
//! Each run's `finished_at` is its start plus the wall time it really took.
//!
//! Then the console serves that file on 127.0.0.1 and headless Chromium takes each page
//! (`chromium --headless --screenshot`), 1280×900, and the runs list at 400 px.
//! `--serve` keeps the console up instead (to look around), printing its address.

use chrono::{DateTime, Duration, DurationRound, Utc};
use clap::Parser;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;
use studio_role_sync_console::{router, ConsoleOptions};
use studio_role_sync_engine::config::Config;
use studio_role_sync_engine::daemon::Slots;
use studio_role_sync_engine::history::{Clock, History};
use studio_role_sync_engine::http::{serve_router, HttpLimits};
use studio_role_sync_engine::metrics::Metrics;
use studio_role_sync_engine::reconcile::{Engine, RunRequest, Trigger};
use studio_role_sync_engine::shutdown::CancellationToken;
use studio_sim::{Faults, Sim, SimConfig, SimUser};

const TOKEN: &str = "screens-token";
const ADMINS: usize = 152;
const FIRST: &[&str] = &[
    "Ada", "Grace", "Alan", "Edsger", "Barbara", "Donald", "Frances", "John", "Margaret", "Ken",
    "Radia", "Tim", "Hedy", "Linus", "Shafi", "Niklaus", "Leslie", "Karen", "Dennis", "Sophie",
];
const LAST: &[&str] = &[
    "Lovelace",
    "Hopper",
    "Turing",
    "Dijkstra",
    "Liskov",
    "Knuth",
    "Allen",
    "McCarthy",
    "Hamilton",
    "Thompson",
    "Perlman",
    "Berners-Lee",
    "Lamarr",
    "Torvalds",
    "Goldwasser",
    "Wirth",
    "Lamport",
    "Jones",
    "Ritchie",
    "Wilson",
];

#[derive(Parser)]
struct Args {
    /// Where the PNGs go.
    #[arg(long, default_value = "docs/console")]
    out: PathBuf,
    /// Keep serving the console after the history is built, instead of taking screenshots.
    #[arg(long)]
    serve: bool,
    /// The browser to take the screenshots with.
    #[arg(long, default_value = "chromium")]
    chromium: String,
}

fn name(i: usize) -> String {
    format!(
        "{} {}",
        FIRST[i % FIRST.len()],
        LAST[(i / FIRST.len()) % LAST.len()]
    )
}

fn admin(i: usize) -> String {
    format!("admin{i:03}@school.edu")
}

/// The institution and its roles file, as they change over the two weeks.
struct Tenant {
    sim: Sim,
    dir: PathBuf,
    admins: Vec<String>,
    captioners: Vec<String>,
    /// Listed, with no Studio account yet (they log in later).
    new_hires: Vec<String>,
    next_id: u64,
}

impl Tenant {
    async fn start(dir: &Path) -> Tenant {
        let mut users: Vec<SimUser> = (0..ADMINS)
            .map(|i| SimUser {
                id: 1000 + i as u64,
                full_name: name(i),
                email: Some(admin(i)),
                role_names: vec!["Admin".into()],
            })
            .collect();
        let captioners: Vec<String> = (0..12)
            .map(|i| format!("captioner{i}@school.edu"))
            .collect();
        users.extend(captioners.iter().enumerate().map(|(i, e)| SimUser {
            id: 2000 + i as u64,
            full_name: name(i + 7),
            email: Some(e.clone()),
            role_names: vec!["CaptionEditor".into()],
        }));
        // Two accounts share one email: left alone, named on the pages.
        for (id, n) in [(3001, "Sam Rivera"), (3002, "Sam Rivera (guest)")] {
            users.push(SimUser {
                id,
                full_name: n.into(),
                email: Some("sam.rivera@school.edu".into()),
                role_names: vec![],
            });
        }
        // A Canvas admin, not in the roles file: Studio re-grants Admin behind the tool later.
        users.push(SimUser {
            id: 3100,
            full_name: "Canvas Admin".into(),
            email: Some("canvas.admin@school.edu".into()),
            role_names: vec![],
        });
        let sim = Sim::start(
            SimConfig {
                token: Some(TOKEN.into()),
                ..SimConfig::default()
            },
            users,
        )
        .await
        .expect("simulator starts");
        let t = Tenant {
            sim,
            dir: dir.to_path_buf(),
            admins: (0..ADMINS).map(admin).collect(),
            captioners,
            new_hires: vec!["new.hire1@school.edu".into(), "user15@shcool.edu".into()],
            next_id: 5000,
        };
        t.write_roles(ADMINS);
        t
    }

    /// The roles file with the first `admins` admins (all of them normally).
    fn write_roles(&self, admins: usize) {
        let mut text = String::from("users:\n");
        for a in self.admins.iter().take(admins) {
            text.push_str(&format!("  {a}: [Admin]\n"));
        }
        for c in self.captioners.iter().chain(&self.new_hires) {
            text.push_str(&format!("  {c}: [CaptionEditor]\n"));
        }
        text.push_str("  sam.rivera@school.edu: [CaptionEditor]\n");
        std::fs::write(self.dir.join("roles.yaml"), text).expect("write roles");
    }

    /// A new hire is listed today; the oldest one logs in to Studio.
    fn new_day(&mut self, day: i64) {
        let email = format!("new.hire{}@school.edu", day + 2);
        if let Some(first) = self
            .new_hires
            .iter()
            .position(|e| e.starts_with("new.hire"))
        {
            let arrived = self.new_hires.remove(first);
            self.next_id += 1;
            self.sim.add_user(SimUser {
                id: self.next_id,
                full_name: name(self.next_id as usize),
                email: Some(arrived),
                role_names: vec![],
            });
        }
        self.new_hires.push(email);
        // A captioner leaves every few days.
        if day % 4 == 3 && !self.captioners.is_empty() {
            self.captioners.remove(0);
        }
        self.write_roles(ADMINS);
    }
}

async fn engine(dir: &Path, sim: &Sim, clock: &Clock) -> (Engine, History) {
    std::fs::write(dir.join("token"), TOKEN).expect("write token");
    let text = format!(
        "studio:\n  base_url: {}\n  token_file: token\n  requests_per_second: 10000\n  burst: 100\n  \
         concurrency: 8\n  batch_size: 50\n  timeout_seconds: 10\n  max_retries: 1\n\
         roles:\n  managed: [Admin, CaptionEditor]\n  remove_unlisted: true\n  protected: []\n\
         safety:\n  max_removals: 10\n  max_removal_ratio: 0.25\n\
         source:\n  yaml: roles.yaml\n\
         history:\n  path: history.db\n\
         http:\n  listen: 127.0.0.1:0\n",
        sim.base_url(),
    );
    let path = dir.join("studio-role-sync.yaml");
    std::fs::write(&path, &text).expect("write config");
    let config = Config::from_text(&path, &text).expect("the config is valid");
    let history = History::open(&config.history)
        .await
        .expect("history opens")
        .with_clock(clock.clone());
    let e = Engine::new(Arc::new(config), history.clone(), Metrics::new())
        .await
        .expect("engine starts");
    (e, history)
}

/// Builds the two weeks; returns the runs of note (approved, bad merge, flapping).
async fn build(dir: &Path) -> Vec<(String, String)> {
    let now = Utc::now()
        .duration_trunc(Duration::hours(1))
        .expect("an hour");
    let start = now - Duration::days(14);
    let clock = Clock::manual(start);
    let mut tenant = Tenant::start(dir).await;
    let (engine, history) = engine(dir, &tenant.sim, &clock).await;
    let pool = sqlx::SqlitePool::connect(&format!("sqlite://{}", dir.join("history.db").display()))
        .await
        .expect("a second connection");
    let mut notes = Vec::new();
    let run = |at: DateTime<Utc>, trigger: Trigger| {
        clock.set(at);
        let engine = &engine;
        let pool = &pool;
        async move {
            let t0 = Instant::now();
            let report = engine
                .run(RunRequest::new(trigger), CancellationToken::new())
                .await
                .expect("run recorded");
            // The manual clock stood still during the run: its real duration is the wall time.
            let ms = t0.elapsed().as_millis() as i64 + 350;
            let end = (at + Duration::milliseconds(ms))
                .to_rfc3339_opts(chrono::SecondsFormat::Millis, true);
            sqlx::query("UPDATE runs SET finished_at = ? WHERE id = ? AND finished_at IS NOT NULL")
                .bind(end)
                .bind(report.record.id)
                .execute(pool)
                .await
                .expect("duration");
            report.record.id
        }
    };
    for day in 0..14i64 {
        if day > 0 {
            tenant.new_day(day);
        }
        for hour in 0..24i64 {
            let at = start + Duration::days(day) + Duration::hours(hour);
            if at >= now {
                break;
            }
            match (day, hour) {
                // Studio down for a night.
                (3, 2) => tenant.sim.set_faults(Faults {
                    error_rate: 1.0,
                    ..Faults::default()
                }),
                (3, 5) => tenant.sim.set_faults(Faults::default()),
                // Twelve captioners leave at once: the removal guard stops the run; alice
                // checks and approves it, and the next run applies it.
                (5, 10) => {
                    for i in 0..12 {
                        tenant.sim.add_user(SimUser {
                            id: 4000 + i,
                            full_name: format!("Former Captioner {i}"),
                            email: Some(format!("former{i}@school.edu")),
                            role_names: vec!["CaptionEditor".into()],
                        });
                    }
                }
                // A bad merge of the roles file keeps 31 of 152 admins.
                (8, 14) => tenant.write_roles(31),
                (8, 16) => tenant.write_roles(ADMINS),
                // An invalid roles file for a morning.
                (12, 9) => std::fs::write(
                    dir.join("roles.yaml"),
                    "users:\n  admin000@school.edu: [Admin]\n  not-an-email: [Admin]\n  admin001@school.edu: [Admni]\n",
                )
                .expect("write roles"),
                (12, 11) => tenant.write_roles(ADMINS),
                _ => {}
            }
            // Day 10, from 8:00 to 20:00: Studio gives the Canvas admin Admin back after
            // every run (Canvas admin inheritance), so every run removes it again.
            if day == 10 && (8..20).contains(&hour) {
                tenant.sim.set_roles(3100, vec!["Admin".into()]);
            }
            let id = run(at, Trigger::Schedule).await;
            match (day, hour) {
                (5, 10) => {
                    history
                        .approve(id, "alice (ticket 4711)")
                        .await
                        .expect("approved");
                    // `approve` stamps the wall clock; alice approved 15 minutes after the trip.
                    sqlx::query("UPDATE approvals SET approved_at = ? WHERE run_id = ?")
                        .bind(
                            (at + Duration::minutes(15))
                                .to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
                        )
                        .bind(id)
                        .execute(&pool)
                        .await
                        .expect("approval time");
                    notes.push(("approved".into(), format!("/console/runs/{id}")));
                    let applied = run(at + Duration::minutes(20), Trigger::Manual).await;
                    history
                        .set_requested_by(applied, "approve")
                        .await
                        .expect("who");
                }
                (8, 14) => notes.push(("bad-merge".into(), format!("/console/runs/{id}"))),
                (12, 15) => {
                    let by = run(at + Duration::minutes(7), Trigger::Manual).await;
                    history
                        .set_requested_by(by, "trigger --by bob")
                        .await
                        .expect("who");
                }
                _ => {}
            }
        }
    }
    // The durations were written beside the engine: count the charts' days again.
    history
        .recount_days(start.date_naive(), now.date_naive())
        .await
        .expect("day totals");
    notes.push((
        "person".into(),
        "/console/person?email=canvas.admin%40school.edu".into(),
    ));
    notes
}

async fn serve(path: &Path) -> std::net::SocketAddr {
    let app = router(ConsoleOptions {
        history: History::open_read_only(path),
        credentials: None,
        // The runs above were hourly; the strip says when the next one is due.
        schedule: Some(Slots::new("0 0 * * * *", chrono_tz::America::Chicago).expect("a schedule")),
        studio_auth: "access token from studio.token_file".into(),
        readiness: None,
        base_url: "https://myschool.instructuremedia.com".into(),
        config_path: Some("/etc/studio-role-sync/studio-role-sync.yaml".into()),
    });
    let (addr, _task) = serve_router(
        "127.0.0.1:0".parse().expect("an address"),
        app,
        "(console screens)",
        HttpLimits::default(),
        std::future::pending::<()>(),
    )
    .await
    .expect("listens");
    addr
}

fn shoot(chromium: &str, url: &str, file: &Path, width: u32, height: u32) {
    let status = std::process::Command::new(chromium)
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--hide-scrollbars",
            &format!("--screenshot={}", file.display()),
            &format!("--window-size={width},{height}"),
            url,
        ])
        .stderr(std::process::Stdio::null())
        .status()
        .expect("chromium starts");
    assert!(status.success(), "chromium failed on {url}");
    println!("{} <- {url}", file.display());
}

#[tokio::main]
async fn main() {
    let args = Args::parse();
    // A fixed folder, so the errors on the pages name a plausible path, not a random one.
    let dir = std::env::temp_dir().join("studio-role-sync");
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("a temporary folder");
    let notes = build(&dir).await;
    let addr = serve(&dir.join("history.db")).await;
    let base = format!("http://{addr}");
    if args.serve {
        println!("console on {base}/console/ (Ctrl-C to stop)");
        for (what, path) in &notes {
            println!("  {what}: {base}{path}");
        }
        std::future::pending::<()>().await;
    }
    std::fs::create_dir_all(&args.out).expect("the output folder");
    let page = |what: &str| {
        notes
            .iter()
            .find(|(w, _)| w == what)
            .map(|(_, p)| p.clone())
            .expect("a noted page")
    };
    let shots = [
        ("runs", "/console/".to_string(), 1280, 900),
        ("charts", "/console/".to_string(), 1280, 2400),
        ("run-aborted", page("bad-merge"), 1280, 1100),
        ("run", page("approved"), 1280, 1100),
        ("person", page("person"), 1280, 900),
        ("pending", "/console/pending".to_string(), 1280, 700),
        ("health", "/console/health".to_string(), 1280, 700),
        ("phone", "/console/?view=all".to_string(), 400, 900),
    ];
    let chromium = args.chromium.clone();
    let out = args.out.clone();
    tokio::task::spawn_blocking(move || {
        for (file, path, w, h) in shots {
            shoot(
                &chromium,
                &format!("{base}{path}"),
                &out.join(format!("{file}.png")),
                w,
                h,
            );
        }
    })
    .await
    .expect("screenshots");
}
