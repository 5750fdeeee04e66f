//! The hostile-input figures in RELIABILITY.md, from one command:
//!
//! ```text
//! cargo run -p bench --release --bin hostile_input_report
//! ```
//!
//! Each input case writes a config and a roles file into a temporary folder and runs the
//! `validate` code path (the engine's `Config::load` and `load_desired`, as
//! `studio-role-sync validate` calls them) in a child process: this same executable, re-run
//! with `--case DIR`, so that its wall time and peak memory (`VmHWM`, which starts afresh at
//! exec) are its own. A child that runs over 120 s is killed
//! and reported as such. The HTTP case serves the daemon's endpoints in this process
//! (`http::serve`, default limits), holds 250 half-sent requests open, and times `/healthz`
//! and the server closing them. Nothing leaves the machine.

use std::io::{Read, Write};
use std::path::Path;
use std::time::{Duration, Instant};

/// A roles file built on one anchor of 1,000 roles reused by `aliases` emails: the shape of
/// the files that took 1.1 GB (435 KB) and over 16 GB (2.2 MB) before.
fn anchor_bomb(aliases: usize) -> String {
    let mut text = format!(
        "users:\n  a@x.edu: &r [{}]\n",
        vec!["Admin"; 1000].join(", ")
    );
    for i in 0..aliases {
        text += &format!("  user{i:06}@x.edu: *r\n");
    }
    text
}

/// The same emails written out, one line each: what a normal file of that size costs.
fn plain(users: usize) -> String {
    let mut text = String::from("users:\n");
    for i in 0..users {
        text += &format!("  user{i:06}@x.edu: [Admin]\n");
    }
    text
}

enum Roles {
    Text(String),
    Fifo,
    DevZero,
}

struct Case {
    name: &'static str,
    roles: Roles,
}

/// The cases, each built only when its turn comes (their texts add up to 75 MB).
fn cases() -> impl Iterator<Item = Case> {
    let text = |name, text: fn() -> String| {
        move || Case {
            name,
            roles: Roles::Text(text()),
        }
    };
    let all: Vec<Box<dyn Fn() -> Case>> = vec![
        Box::new(text("anchor reused 18,600 times", || anchor_bomb(18_600))),
        Box::new(text("anchor reused 95,400 times", || anchor_bomb(95_400))),
        Box::new(text("nested flow sequences", || {
            format!("users: {}{}\n", "[".repeat(100_000), "]".repeat(100_000))
        })),
        Box::new(|| Case {
            name: "FIFO",
            roles: Roles::Fifo,
        }),
        Box::new(|| Case {
            name: "link to /dev/zero",
            roles: Roles::DevZero,
        }),
        Box::new(text("over source.max_bytes (70 MB)", || plain(2_500_000))),
        Box::new(text("valid, for comparison: 100,000 users", || {
            plain(100_000)
        })),
    ];
    all.into_iter().map(|make| make())
}

fn write_case(dir: &Path, case: &Case) -> u64 {
    std::fs::write(dir.join("token"), "hostile-input-report").unwrap();
    std::fs::write(
        dir.join("config.yaml"),
        "studio:\n  base_url: https://school.instructuremedia.com\n  token_file: token\n\
         roles:\n  managed: [Admin]\nsource:\n  yaml: roles.yaml\nhistory: state/history.db\n",
    )
    .unwrap();
    let roles = dir.join("roles.yaml");
    match &case.roles {
        Roles::Text(t) => {
            std::fs::write(&roles, t).unwrap();
            t.len() as u64
        }
        Roles::Fifo => {
            let c = std::ffi::CString::new(roles.to_str().unwrap()).unwrap();
            // SAFETY: a valid NUL-terminated path; mkfifo only creates a file.
            assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o600) }, 0);
            0
        }
        Roles::DevZero => {
            std::os::unix::fs::symlink("/dev/zero", &roles).unwrap();
            0
        }
    }
}

/// What `studio-role-sync validate` does, without its printing: load the config, then the
/// desired state; an error is printed as the command prints it, with exit code 1.
async fn validate(config: &Path) -> i32 {
    use studio_role_sync_engine::{config::Config, reconcile::load_desired};
    let loaded = match Config::load(config) {
        Ok(config) => load_desired(&config)
            .await
            .map(drop)
            .map_err(|e| e.to_string()),
        Err(e) => Err(e.to_string()),
    };
    match loaded {
        Ok(()) => 0,
        Err(e) => {
            eprintln!("error: {e}");
            1
        }
    }
}

/// Child: `validate` on the folder's config; the exit code is the command's. Its peak memory
/// (`VmHWM`, which starts afresh at exec) goes to stdout for the parent.
fn child(dir: &Path) -> ! {
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let code = runtime.block_on(validate(&dir.join("config.yaml")));
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let hwm = status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .unwrap_or("0 kB");
    eprintln!("peak {}", hwm.trim());
    std::process::exit(code)
}

struct Measured {
    seconds: f64,
    peak_mb: f64,
    outcome: String,
}

/// Parent: runs the child for `dir`, waits for it, kills it at 120 s. Peak memory is the
/// child's own `VmHWM` (unknown, 0, for a killed child).
fn measure(dir: &Path) -> Measured {
    let started = Instant::now();
    let mut child = std::process::Command::new(std::env::current_exe().unwrap())
        .arg("--case")
        .arg(dir)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut stderr = child.stderr.take().unwrap();
    let reader = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = stderr.read_to_string(&mut s);
        s
    });
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break Some(status);
        }
        if started.elapsed() > Duration::from_secs(120) {
            let _ = child.kill();
            let _ = child.wait();
            break None;
        }
        std::thread::sleep(Duration::from_millis(1));
    };
    let seconds = started.elapsed().as_secs_f64();
    let stderr = reader.join().unwrap_or_default();
    let peak_kb = stderr
        .lines()
        .find_map(|l| {
            l.strip_prefix("peak ")?
                .strip_suffix(" kB")?
                .parse::<f64>()
                .ok()
        })
        .unwrap_or(0.0);
    let outcome = match status.and_then(|s| s.code()) {
        None => "killed after 120 s".to_string(),
        Some(0) => "exit 0 (valid)".to_string(),
        Some(code) => {
            let line = stderr
                .lines()
                .map(str::trim)
                .rfind(|l| !l.is_empty() && !l.starts_with("peak "))
                .unwrap_or("");
            let line = line.trim_start_matches("error: ");
            let line = line.replace(&format!("{}/", dir.display()), "");
            format!("exit {code}: {line}")
        }
    };
    Measured {
        seconds,
        peak_mb: peak_kb / 1024.0,
        outcome,
    }
}

/// 250 half-sent requests against the daemon's endpoints with the default limits.
fn http_case() -> String {
    use studio_role_sync_engine::http::{serve, HttpState};
    let runtime = tokio::runtime::Runtime::new().unwrap();
    runtime.block_on(async {
        let state = HttpState {
            readiness: Default::default(),
            metrics: studio_role_sync_engine::metrics::Metrics::new(),
        };
        let (addr, _task) = serve(
            "127.0.0.1:0".parse().unwrap(),
            state,
            std::future::pending::<()>(),
        )
        .await
        .unwrap();
        let started = Instant::now();
        let mut held = Vec::new();
        for _ in 0..250 {
            let mut s = std::net::TcpStream::connect(addr).unwrap();
            s.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Slow: ")
                .unwrap();
            held.push(s);
        }
        let probe = Instant::now();
        let mut s = std::net::TcpStream::connect(addr).unwrap();
        s.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
            .unwrap();
        let mut answer = String::new();
        s.read_to_string(&mut answer).unwrap();
        let healthz_ms = probe.elapsed().as_secs_f64() * 1000.0;
        let status = answer.lines().next().unwrap_or("").to_string();
        let closer = tokio::task::spawn_blocking(move || {
            let mut last = Duration::ZERO;
            for mut s in held {
                s.set_read_timeout(Some(Duration::from_secs(60))).unwrap();
                let mut buf = [0u8; 64];
                let closed = matches!(s.read(&mut buf), Ok(0) | Err(_));
                if !closed {
                    return None;
                }
                last = started.elapsed();
            }
            Some(last)
        });
        match closer.await.unwrap() {
            Some(last) => format!(
                "`/healthz` answered `{status}` in {healthz_ms:.1} ms while 250 requests were \
                 half-sent; the server closed all 250 within {:.1} s of the first one opening \
                 (header-read timeout 5 s)",
                last.as_secs_f64()
            ),
            None => "a half-sent request was still open after 60 s".to_string(),
        }
    })
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if args.len() == 3 && args[1] == "--case" {
        child(Path::new(&args[2]));
    }
    println!("| roles file | size | wall ms | peak RSS MB | outcome |");
    println!("|---|---:|---:|---:|---|");
    for case in cases() {
        let dir = tempfile::tempdir().unwrap();
        let size = write_case(dir.path(), &case);
        let name = case.name;
        drop(case); // the text is on disk: the child is measured, not the parent
        let m = measure(dir.path());
        let size = match size {
            0 => "-".to_string(),
            n if n >= 1_000_000 => format!("{:.1} MB", n as f64 / 1e6),
            n => format!("{} KB", n / 1000),
        };
        println!(
            "| {} | {size} | {:.0} | {:.0} | {} |",
            name,
            m.seconds * 1000.0,
            m.peak_mb,
            m.outcome
        );
        let _ = std::io::stdout().flush();
    }
    println!();
    println!("HTTP: {}", http_case());
}
