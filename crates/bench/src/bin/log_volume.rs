//! How much the daemon logs per unchanged run: the log must grow with changes, not with runs ×
//! pending emails. Figures in BENCHMARKS.md.
//!
//! The real binary runs as a daemon (JSON logs at INFO, as in production) against the
//! simulator, with a roles file of `--pending` emails Studio does not know. After the first
//! run (which logs each of them once, as they start being left alone), `--runs` more runs are
//! asked for with SIGHUP, each changing nothing, and the bytes the daemon wrote to stderr are
//! counted per run. `--per-email` also turns on the per-email lines (now at DEBUG) that the
//! daemon used to write at INFO on every run: the old behaviour's figure.
//!
//! `cargo build -p studio-role-sync && cargo run -p bench --bin log_volume -- --exe target/debug/studio-role-sync`

use clap::Parser;
use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};
use studio_sim::{Sim, SimConfig, SimUser};

#[derive(Parser)]
struct Args {
    /// The studio-role-sync binary to measure.
    #[arg(long, default_value = "target/debug/studio-role-sync")]
    exe: PathBuf,
    /// Desired emails that Studio does not know (left alone, `not_in_studio`).
    #[arg(long, default_value_t = 800)]
    pending: usize,
    /// Unchanged runs measured after the first.
    #[arg(long, default_value_t = 10)]
    runs: usize,
    /// Also log the per-email lines at INFO, as the daemon did before (the old figure).
    #[arg(long)]
    per_email: bool,
}

const TOKEN: &str = "log-volume-token";

#[tokio::main]
async fn main() {
    let args = Args::parse();
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
    let dir = tempfile::tempdir().expect("temp dir");
    std::fs::write(dir.path().join("token"), TOKEN).unwrap();
    let mut roles = String::from("users:\n  ada@school.edu: [Admin]\n");
    for i in 0..args.pending {
        roles.push_str(&format!("  new.hire{i}@school.edu: [Admin]\n"));
    }
    std::fs::write(dir.path().join("roles.yaml"), roles).unwrap();
    let config = dir.path().join("config.yaml");
    std::fs::write(
        &config,
        format!(
            "studio:\n  base_url: {}\n  token_file: token\n  requests_per_second: 1000\n  burst: 100\n\
             roles:\n  managed: [Admin]\nsource:\n  yaml: roles.yaml\n\
             schedule: \"0 0 0 1 1 *\"\nhistory: state/history.db\n\
             http:\n  listen: 127.0.0.1:0\nlog:\n  format: json\n  level: info\n",
            sim.base_url()
        ),
    )
    .unwrap();

    let mut cmd = Command::new(&args.exe);
    cmd.arg("--config")
        .arg(&config)
        .arg("daemon")
        .env_remove("NOTIFY_SOCKET")
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    if args.per_email {
        cmd.env(
            "RUST_LOG",
            "info,sqlx=warn,hyper=warn,reqwest=warn,tokio_cron_scheduler=warn,\
             studio_role_sync_engine::sync::reconcile::left_alone_log=debug",
        );
    } else {
        cmd.env_remove("RUST_LOG");
    }
    let mut child = cmd.spawn().unwrap_or_else(|e| {
        panic!(
            "cannot start {} ({e}); build it first: cargo build -p studio-role-sync",
            args.exe.display()
        )
    });
    // Each line's byte count, and whether it ends a run.
    let (tx, rx) = mpsc::channel::<(usize, bool)>();
    let stderr = child.stderr.take().unwrap();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines() {
            let Ok(line) = line else { break };
            let _ = tx.send((line.len() + 1, line.contains("\"run finished\"")));
        }
    });
    let wait_run = |label: &str| -> usize {
        let deadline = Instant::now() + Duration::from_secs(120);
        let mut bytes = 0;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match rx.recv_timeout(left) {
                Ok((n, end)) => {
                    bytes += n;
                    if end {
                        return bytes;
                    }
                }
                Err(_) => panic!("{label}: no `run finished` line within 120 s"),
            }
        }
    };
    let first = wait_run("first run");
    let mut per_run = Vec::with_capacity(args.runs);
    for i in 0..args.runs {
        // SAFETY: kill(2) on our own child's pid.
        unsafe { libc::kill(child.id() as i32, libc::SIGHUP) };
        per_run.push(wait_run(&format!("run {}", i + 2)));
    }
    unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
    let _ = child.wait();
    per_run.sort_unstable();
    let mean = per_run.iter().sum::<usize>() as f64 / per_run.len().max(1) as f64;
    println!(
        "log_volume: {} pending emails, JSON at INFO{}",
        args.pending,
        if args.per_email {
            " + per-email lines (the old behaviour)"
        } else {
            ""
        }
    );
    println!("  first run (every email starts being left alone): {first} bytes");
    println!(
        "  unchanged runs ({}): mean {:.0} bytes, min {}, max {} per run",
        per_run.len(),
        mean,
        per_run.first().unwrap_or(&0),
        per_run.last().unwrap_or(&0)
    );
    println!(
        "  a year of 15-minute runs: {:.1} MiB",
        mean * 4.0 * 24.0 * 365.0 / (1024.0 * 1024.0)
    );
}
