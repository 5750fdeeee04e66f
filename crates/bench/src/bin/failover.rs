//! How long a PostgreSQL history's daemons go without a leader when the leader dies (`kill -9`)
//! or stops (SIGTERM): the failover benchmark of issue 20. Figures in BENCHMARKS.md.
//!
//! Real parts only: the simulator over HTTP on 127.0.0.1, `--daemons` real release binaries
//! (`daemon`, each with its own folder and `http.listen` port) on one fresh schema of a real
//! PostgreSQL, configured with `ha.lease`. Who leads is read as an operator would, from each
//! daemon's `/metrics` gauge `studio_role_sync_leader`, polled every `--poll-ms`. Each kill:
//! the leader is killed with SIGKILL, the time until another daemon reports 1 is measured, and
//! the killed one is started again and waits as a standby before the next kill. Two pauses
//! drawn at random (seeded) in `[0, lease/3)` set the phases that decide a takeover's time:
//! one before the restart (where the standby's tries fall against the leader's renewals: a
//! standby restarted at once would try just after each renewal, always the best case) and one
//! before the kill (where in the renew interval the leader dies), so the figures cover the
//! spread the bound `lease + lease/3` allows. Then `--stops`
//! graceful stops (SIGTERM releases the lease) are timed the same way. Each lease gets its own
//! schema, dropped at the end; the lease row's epoch is checked against the takeovers counted.
//! The schema is created before the daemons start: daemons started at once on a missing
//! schema race to create it, and one exits (see BENCHMARKS.md).
//!
//! ```sh
//! cargo build --release -p studio-role-sync -p bench
//! target/release/failover                      # --lease 15 --lease 5 --kills 20 --stops 5
//! ```

use clap::Parser;
use rand::{Rng, SeedableRng};
use std::fs::OpenOptions;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};
use studio_sim::{Sim, SimConfig, SimUser};

const TOKEN: &str = "failover-token";

#[derive(Parser)]
#[command(about = "studio-role-sync failover: time without a leader after kill -9 / SIGTERM")]
struct Args {
    /// The studio-role-sync binary (a release build).
    #[arg(long, default_value = "target/release/studio-role-sync")]
    exe: PathBuf,
    /// The PostgreSQL database the daemons share (a fresh schema is created and dropped in it).
    #[arg(
        long,
        env = "STUDIO_ROLE_SYNC_TEST_POSTGRES_URL",
        hide_env_values = true,
        default_value = "postgres://postgres@127.0.0.1:5432/test"
    )]
    postgres_url: String,
    /// `ha.lease` in seconds; repeat to measure several (each on its own schema).
    #[arg(long = "lease", default_values_t = [15u64, 5])]
    leases: Vec<u64>,
    /// Leaders killed (SIGKILL) per lease.
    #[arg(long, default_value_t = 20)]
    kills: usize,
    /// Leaders stopped gracefully (SIGTERM) per lease, after the kills.
    #[arg(long, default_value_t = 5)]
    stops: usize,
    /// Daemons sharing the schema.
    #[arg(long, default_value_t = 2)]
    daemons: usize,
    /// How often each daemon's /metrics is read while waiting for a new leader.
    #[arg(long, default_value_t = 50)]
    poll_ms: u64,
}

/// One daemon process: its config, port and log file; started again after each kill.
struct Daemon {
    config: PathBuf,
    port: u16,
    log: PathBuf,
    child: Option<Child>,
}

impl Daemon {
    fn start(&mut self, exe: &Path, url: &str) {
        let log = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.log)
            .expect("daemon log file");
        let child = Command::new(exe)
            .arg("--config")
            .arg(&self.config)
            .arg("daemon")
            .env("SRS_HISTORY_URL", url)
            .env_remove("RUST_LOG")
            .env_remove("NOTIFY_SOCKET")
            .env("NO_COLOR", "1")
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .unwrap_or_else(|e| {
                panic!(
                    "cannot start {} ({e}); build it first: cargo build --release -p studio-role-sync",
                    exe.display()
                )
            });
        self.child = Some(child);
    }

    fn kill9(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// SIGTERM; the process is reaped later by [`Daemon::reap`].
    fn terminate(&self) {
        if let Some(c) = &self.child {
            // SAFETY: kill(2) on our own child's pid.
            unsafe { libc::kill(c.id() as i32, libc::SIGTERM) };
        }
    }

    /// Waits (bounded) for a terminated daemon to exit; SIGKILL after `within`.
    async fn reap(&mut self, within: Duration) {
        let deadline = Instant::now() + within;
        while let Some(c) = &mut self.child {
            if matches!(c.try_wait(), Ok(Some(_))) || Instant::now() > deadline {
                self.kill9();
                break;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// The daemon's `studio_role_sync_leader` gauge; `None` when it does not answer (yet).
    async fn leads(&self, http: &reqwest::Client) -> Option<bool> {
        self.child.as_ref()?;
        let text = http
            .get(format!("http://127.0.0.1:{}/metrics", self.port))
            .send()
            .await
            .ok()?
            .text()
            .await
            .ok()?;
        text.lines().find_map(|l| {
            let rest = l.strip_prefix("studio_role_sync_leader")?;
            if !(rest.starts_with(' ') || rest.starts_with('{')) {
                return None;
            }
            let value: f64 = rest.split_whitespace().last()?.parse().ok()?;
            Some(value == 1.0)
        })
    }

    fn log_tail(&self) -> String {
        let text = std::fs::read_to_string(&self.log).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(15)..].join("\n")
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        self.kill9();
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port")
        .port()
}

/// The daemons of one lease, and what was seen while polling them.
struct Cluster {
    daemons: Vec<Daemon>,
    http: reqwest::Client,
    poll: Duration,
    /// Polls in which two daemons reported leading at once (must stay 0).
    overlaps: u64,
}

impl Cluster {
    /// Polls every daemon until exactly one other than `not` reports leading, within
    /// `within`; returns its index.
    async fn leader(&mut self, not: Option<usize>, within: Duration) -> Result<usize, String> {
        let deadline = Instant::now() + within;
        loop {
            let mut leading = Vec::new();
            for (i, d) in self.daemons.iter().enumerate() {
                if d.leads(&self.http).await == Some(true) {
                    leading.push(i);
                }
            }
            if leading.len() > 1 {
                self.overlaps += 1;
            }
            if let Some(&i) = leading.iter().find(|&&i| Some(i) != not) {
                return Ok(i);
            }
            if Instant::now() > deadline {
                return Err(format!(
                    "no daemon led within {within:?}; last lines of each log:\n{}",
                    self.daemons
                        .iter()
                        .map(Daemon::log_tail)
                        .collect::<Vec<_>>()
                        .join("\n---\n")
                ));
            }
            tokio::time::sleep(self.poll).await;
        }
    }

    /// Waits until daemon `i` answers /metrics as a standby (gauge 0).
    async fn standby(&self, i: usize, within: Duration) -> Result<(), String> {
        let deadline = Instant::now() + within;
        while self.daemons[i].leads(&self.http).await != Some(false) {
            if Instant::now() > deadline {
                return Err(format!(
                    "daemon {i} did not stand by within {within:?}:\n{}",
                    self.daemons[i].log_tail()
                ));
            }
            tokio::time::sleep(self.poll).await;
        }
        Ok(())
    }
}

/// Seconds without a leader, per kill and per graceful stop, for one lease.
struct Round {
    lease: u64,
    kills: Vec<f64>,
    stops: Vec<f64>,
    overlaps: u64,
    epoch: i64,
}

fn pct(v: &[f64], p: f64) -> f64 {
    let mut v = v.to_vec();
    v.sort_by(f64::total_cmp);
    if v.is_empty() {
        return f64::NAN;
    }
    v[((v.len() - 1) as f64 * p).round() as usize]
}

async fn round(args: &Args, sim: &Sim, lease: u64, schema: &str) -> Result<Round, String> {
    let dir = tempfile::tempdir().expect("temp dir");
    let mut daemons = Vec::new();
    for n in 0..args.daemons {
        let home = dir.path().join(format!("daemon{n}"));
        std::fs::create_dir_all(&home).expect("daemon dir");
        std::fs::write(home.join("token"), TOKEN).expect("token");
        std::fs::write(
            home.join("roles.yaml"),
            "users:\n  ada@school.edu: [Admin]\n  new.hire@school.edu: [Admin]\n",
        )
        .expect("roles");
        let port = free_port();
        let config = home.join("config.yaml");
        std::fs::write(
            &config,
            format!(
                "studio:\n  base_url: {}\n  token_file: token\nroles:\n  managed: [Admin]\n\
                 source:\n  yaml: roles.yaml\nschedule: \"0 */5 * * * *\"\n\
                 history:\n  url_env: SRS_HISTORY_URL\n  schema: {schema}\n\
                 ha:\n  lease: {lease}s\nhttp:\n  listen: 127.0.0.1:{port}\n",
                sim.base_url()
            ),
        )
        .expect("config");
        daemons.push(Daemon {
            config,
            port,
            log: home.join("daemon.log"),
            child: None,
        });
    }
    let http = reqwest::Client::builder()
        .timeout(Duration::from_millis(500))
        .build()
        .expect("http client");
    let mut c = Cluster {
        daemons,
        http,
        poll: Duration::from_millis(args.poll_ms),
        overlaps: 0,
    };
    for d in &mut c.daemons {
        d.start(&args.exe, &args.postgres_url);
    }
    let lease_d = Duration::from_secs(lease);
    let bound = lease_d + lease_d / 3;
    // Generous: a takeover that misses the bound is measured, not cut off.
    let wait = 3 * bound + Duration::from_secs(30);
    let mut leader = c.leader(None, wait).await?;
    for i in 0..args.daemons {
        if i != leader {
            c.standby(i, wait).await?;
        }
    }
    let mut out = Round {
        lease,
        kills: Vec::new(),
        stops: Vec::new(),
        overlaps: 0,
        epoch: 0,
    };
    let mut rng = rand::rngs::StdRng::seed_from_u64(20 + lease);
    let mut phase = || (lease_d / 3).mul_f64(rng.random::<f64>());
    for k in 0..args.kills + args.stops {
        tokio::time::sleep(Duration::from_secs(1) + phase()).await;
        let graceful = k >= args.kills;
        let t0 = Instant::now();
        if graceful {
            c.daemons[leader].terminate();
        } else {
            c.daemons[leader].kill9();
        }
        let next = c.leader(Some(leader), wait).await?;
        let seconds = t0.elapsed().as_secs_f64();
        eprintln!(
            "lease {lease}s: {} {}: daemon {next} leads after {seconds:.2} s",
            if graceful { "stop" } else { "kill" },
            k + 1
        );
        if graceful {
            out.stops.push(seconds);
            c.daemons[leader].reap(Duration::from_secs(30)).await;
        } else {
            out.kills.push(seconds);
        }
        tokio::time::sleep(phase()).await;
        c.daemons[leader].start(&args.exe, &args.postgres_url);
        c.standby(leader, wait).await?;
        leader = next;
    }
    for d in &mut c.daemons {
        d.terminate();
    }
    for d in &mut c.daemons {
        d.reap(Duration::from_secs(30)).await;
    }
    out.overlaps = c.overlaps;
    Ok(out)
}

/// Creates the (new) schema, as an operator does before starting the daemons.
async fn create_schema(url: &str, schema: &str) -> Result<(), String> {
    let pool = sqlx::PgPool::connect(url)
        .await
        .map_err(|e| format!("cannot connect to the PostgreSQL URL: {e}"))?;
    let created = sqlx::query(&format!("CREATE SCHEMA \"{schema}\""))
        .execute(&pool)
        .await
        .map_err(|e| format!("cannot create schema {schema}: {e}"));
    pool.close().await;
    created.map(|_| ())
}

/// The lease row's epoch (one per term), then the schema dropped.
async fn epoch_and_drop(url: &str, schema: &str) -> i64 {
    let pool = match sqlx::PgPool::connect(url).await {
        Ok(p) => p,
        Err(e) => {
            eprintln!("cannot connect to drop schema {schema}: {e}");
            return -1;
        }
    };
    let epoch: i64 = sqlx::query_scalar(&format!(
        "SELECT COALESCE(MAX(epoch), -1) FROM \"{schema}\".leader_lease"
    ))
    .fetch_one(&pool)
    .await
    .unwrap_or(-1);
    if let Err(e) = sqlx::query(&format!("DROP SCHEMA IF EXISTS \"{schema}\" CASCADE"))
        .execute(&pool)
        .await
    {
        eprintln!("cannot drop schema {schema}: {e}");
    }
    pool.close().await;
    epoch
}

fn main() {
    let args = Args::parse();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    rt.block_on(async {
        let admin = SimUser {
            id: 1,
            full_name: "Ada Admin".into(),
            email: Some("ada@school.edu".into()),
            role_names: vec!["Admin".into()],
        };
        let sim = Sim::start(
            SimConfig {
                token: Some(TOKEN.into()),
                ..SimConfig::default()
            },
            vec![admin],
        )
        .await
        .expect("simulator starts");
        let started = Instant::now();
        let mut rounds = Vec::new();
        for &lease in &args.leases {
            let schema = format!("srs_failover_{}_{lease}", std::process::id());
            let result = match create_schema(&args.postgres_url, &schema).await {
                Ok(()) => round(&args, &sim, lease, &schema).await,
                Err(e) => Err(e),
            };
            let epoch = epoch_and_drop(&args.postgres_url, &schema).await;
            match result {
                Ok(mut r) => {
                    r.epoch = epoch;
                    rounds.push(r);
                }
                Err(e) => {
                    eprintln!("lease {lease}s: {e}");
                    std::process::exit(1);
                }
            }
        }
        report(&args, &rounds, started.elapsed().as_secs_f64());
    });
}

fn report(args: &Args, rounds: &[Round], wall: f64) {
    println!(
        "failover: {} daemons on one PostgreSQL schema, /metrics polled every {} ms; took {wall:.0} s",
        args.daemons, args.poll_ms
    );
    println!();
    println!("| lease | bound (lease + lease/3) | kill -9: p50 / p99 / max s (n) | kills within the bound | SIGTERM: p50 / max s (n) | terms (epoch) / expected | two leaders seen |");
    println!("|---|---|---|---|---|---|---|");
    for r in rounds {
        let bound = r.lease as f64 * 4.0 / 3.0;
        let within = r.kills.iter().filter(|&&s| s <= bound).count();
        println!(
            "| {}s | {:.1} s | {:.2} / {:.2} / {:.2} ({}) | {}/{} | {:.2} / {:.2} ({}) | {} / {} | {} |",
            r.lease,
            bound,
            pct(&r.kills, 0.5),
            pct(&r.kills, 0.99),
            pct(&r.kills, 1.0),
            r.kills.len(),
            within,
            r.kills.len(),
            pct(&r.stops, 0.5),
            pct(&r.stops, 1.0),
            r.stops.len(),
            r.epoch,
            1 + r.kills.len() + r.stops.len(),
            r.overlaps
        );
    }
}
