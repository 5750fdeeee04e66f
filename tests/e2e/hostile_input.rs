//! Hostile and careless input, end to end through the real binary: files that are not files
//! or are too large, YAML bombs, secrets written where they would be echoed, credentials in
//! URLs, a state folder under `umask 000`, a mistyped log level, and half-sent HTTP requests.
//!
//! Each case checks what an admin would see: the exit code, a message naming the file, key
//! and line, that nothing was sent to Studio, that a secret never appears in any output, and
//! file modes. Commands run under a generous deadline that only fails the test if the
//! process hangs; how long the bombs take is measured by a command (see RELIABILITY.md).

use crate::support::{assert_secret_absent, user, Opts, Run, Tenant, TOKEN};
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};

/// Longer than any of these commands takes; reached only if one hangs.
const HANG: Duration = Duration::from_secs(60);

async fn tenant() -> Tenant {
    let t = Tenant::start(vec![user(1, Some("alice@x.edu"), &["Admin"])]).await;
    t.write_roles("users:\n  alice@x.edu: [Admin]\n");
    t
}

/// Runs the binary, failing the test if it does not finish within [`HANG`].
async fn cli(t: &Tenant, args: &[&str]) -> Run {
    cli_env(t, args, &[]).await
}

async fn cli_env(t: &Tenant, args: &[&str], envs: &[(&str, &str)]) -> Run {
    tokio::time::timeout(HANG, t.cli_env(args, envs))
        .await
        .unwrap_or_else(|_| panic!("`{}` hung", args.join(" ")))
}

fn mkfifo(path: &Path) {
    let c = std::ffi::CString::new(path.to_str().unwrap()).unwrap();
    // SAFETY: a valid NUL-terminated path; mkfifo only creates a file.
    assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o600) }, 0);
}

fn mode(path: &Path) -> u32 {
    std::fs::metadata(path).unwrap().permissions().mode() & 0o777
}

/// One anchor of 1,000 roles, reused by `aliases` emails: the shape of the 435 KB and 2.2 MB
/// files that took 1.1 GB and over 16 GB before.
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

/// 200 KB of nested flow sequences (28 s to parse before).
fn nested_flow() -> String {
    format!("users: {}{}\n", "[".repeat(100_000), "]".repeat(100_000))
}

#[tokio::test]
async fn roles_files_that_are_not_regular_files_are_refused_without_hanging() {
    let t = tenant().await;
    let roles = t.path("roles.yaml");
    std::fs::remove_file(&roles).unwrap();
    mkfifo(&roles);
    let r = cli(&t, &["validate"]).await;
    assert_eq!(r.code, 1, "{r:?}");
    assert!(
        r.stderr.contains(&format!(
            "{}: the roles file is a FIFO (named pipe), not a regular file",
            roles.display()
        )),
        "{r:?}"
    );
    std::fs::remove_file(&roles).unwrap();
    std::os::unix::fs::symlink("/dev/zero", &roles).unwrap();
    let r = cli(&t, &["plan"]).await;
    assert_eq!(r.code, 1, "{r:?}");
    assert!(
        r.stderr.contains("the roles file is a character device"),
        "{r:?}"
    );
    assert_eq!(t.sim.stats().total, 0, "nothing is sent to Studio");
    // A ConfigMap-style link to a regular file is followed.
    std::fs::remove_file(&roles).unwrap();
    std::fs::create_dir(t.path("..data")).unwrap();
    std::fs::write(
        t.path("..data/roles.yaml"),
        "users:\n  alice@x.edu: [Admin]\n",
    )
    .unwrap();
    std::os::unix::fs::symlink("..data/roles.yaml", &roles).unwrap();
    let r = cli(&t, &["validate"]).await;
    assert_eq!(r.code, 0, "{r:?}");
}

#[tokio::test]
async fn a_roles_file_over_the_limit_is_refused_and_the_limit_is_configurable() {
    let t = tenant().await;
    let mut text = String::from("users:\n");
    for i in 0..100 {
        text += &format!("  u{i}@x.edu: []\n");
    }
    t.write_roles(&text);
    let small = Opts {
        source: "  yaml: roles.yaml\n  max_bytes: 1 KiB\n".into(),
        ..Opts::default()
    };
    t.write_config(&small);
    let r = cli(&t, &["validate"]).await;
    assert_eq!(r.code, 1, "{r:?}");
    assert!(
        r.stderr.contains(&format!(
            "{}: the roles file is 1.6 KiB, over the limit of 1 KiB; it is not read \
             (raise source.max_bytes to read a larger file)",
            t.path("roles.yaml").display()
        )),
        "{r:?}"
    );
    t.write_config(&Opts {
        source: "  yaml: roles.yaml\n  max_bytes: 2 KiB\n".into(),
        ..Opts::default()
    });
    let r = cli(&t, &["validate"]).await;
    assert_eq!(r.code, 0, "{r:?}");
}

#[tokio::test]
async fn yaml_bombs_are_refused_with_their_line_and_nothing_is_sent() {
    let t = tenant().await;
    for (name, text, line, what) in [
        (
            "anchor, 435 KB",
            anchor_bomb(18_600),
            2,
            "`&r` is a YAML anchor",
        ),
        (
            "anchor, 2.2 MB",
            anchor_bomb(95_400),
            2,
            "`&r` is a YAML anchor",
        ),
        (
            "nested flow, 200 KB",
            nested_flow(),
            1,
            "YAML nested deeper than 32 levels",
        ),
        (
            "alias alone",
            "users:\n  a@x.edu: [Admin]\n  b@x.edu: *r\n".into(),
            3,
            "`*r` is a YAML alias",
        ),
    ] {
        t.write_roles(&text);
        for command in ["validate", "plan"] {
            let r = cli(&t, &[command]).await;
            assert_eq!(r.code, 1, "{name}: {r:?}");
            let expected = format!("{}:{line}: {what}", t.path("roles.yaml").display());
            assert!(r.stderr.contains(&expected), "{name}: {expected}\n{r:?}");
        }
    }
    assert_eq!(t.sim.stats().total, 0, "nothing is sent to Studio");
}

#[tokio::test]
async fn config_files_are_bounded_too() {
    let t = tenant().await;
    let config = t.config_path();
    // An anchor in the config.
    let text = t
        .config_text(&Opts::default())
        .replace("  managed: [Admin, CaptionEditor]", "  managed: &m [Admin]");
    std::fs::write(&config, text).unwrap();
    let r = cli(&t, &["validate"]).await;
    assert_eq!(r.code, 1, "{r:?}");
    assert!(r.stderr.contains(":11: `&m` is a YAML anchor"), "{r:?}");
    // Too large.
    let big = format!(
        "{}# {}\n",
        t.config_text(&Opts::default()),
        "x".repeat(2 << 20)
    );
    std::fs::write(&config, big).unwrap();
    let r = cli(&t, &["validate"]).await;
    assert_eq!(r.code, 1, "{r:?}");
    assert!(
        r.stderr
            .contains("the config file is 2.0 MiB, over the limit of 1 MiB"),
        "{r:?}"
    );
    // A FIFO.
    std::fs::remove_file(&config).unwrap();
    mkfifo(&config);
    let r = cli(&t, &["validate"]).await;
    assert_eq!(r.code, 1, "{r:?}");
    assert!(
        r.stderr
            .contains("the config file is a FIFO (named pipe), not a regular file"),
        "{r:?}"
    );
}

#[tokio::test]
async fn a_mistyped_log_level_is_an_error_with_its_line() {
    let t = tenant().await;
    t.write_config(&Opts {
        extra: "log:\n  level: warning\n".into(),
        ..Opts::default()
    });
    let r = cli(&t, &["validate"]).await;
    assert_eq!(r.code, 1, "{r:?}");
    assert!(
        r.stderr.contains(&format!(
            "{}:23: log.level: \"warning\" is not a log level (did you mean \"warn\"?)",
            t.config_path().display()
        )),
        "{r:?}"
    );
}

#[tokio::test]
async fn secrets_pasted_into_env_and_file_keys_are_never_echoed() {
    let t = tenant().await;
    let pasted = "9f8e7d6c-pasted-token";
    for (auth, at) in [
        (format!("  token_env: {pasted}\n"), ":3: studio.token_env: "),
        (
            format!("  token_file: {pasted}\n"),
            ":3: studio.token_file: ",
        ),
        (
            format!("  oauth:\n    client_id: c\n    client_secret_env: {pasted}\n"),
            ":5: studio.oauth.client_secret_env: ",
        ),
    ] {
        t.write_config(&Opts {
            auth: auth.clone(),
            ..Opts::default()
        });
        for command in ["validate", "plan", "export"] {
            let r = cli(&t, &[command]).await;
            assert_eq!(r.code, 1, "{r:?}");
            assert!(
                !r.stderr.contains(pasted) && !r.stdout.contains(pasted),
                "{r:?}"
            );
            assert!(
                r.stderr
                    .contains(&format!("{}{at}", t.config_path().display())),
                "{at}: {r:?}"
            );
        }
    }
    // A token file that is a FIFO: refused at once, its path not shown.
    mkfifo(&t.path("fifo-token"));
    t.write_config(&Opts {
        auth: "  token_file: fifo-token\n".into(),
        ..Opts::default()
    });
    let r = cli(&t, &["validate"]).await;
    assert_eq!(r.code, 1, "{r:?}");
    assert!(
        r.stderr.contains(
            ":3: studio.token_file: the file named here is a FIFO (named pipe), not a regular file"
        ),
        "{r:?}"
    );
    assert_secret_absent(&r.stderr, "fifo-token", "a FIFO as token_file");
}

#[tokio::test]
async fn credentials_in_base_url_are_refused_and_never_printed() {
    let t = tenant().await;
    let text = t
        .config_text(&Opts::default())
        .replace("http://", "http://admin:hunter2@");
    std::fs::write(t.config_path(), text).unwrap();
    for command in ["validate", "export", "plan"] {
        let r = cli(&t, &[command]).await;
        assert_eq!(r.code, 1, "{r:?}");
        assert!(
            r.stderr.contains(":2: studio.base_url: ")
                && r.stderr
                    .contains("holds a user name or password (not shown here)"),
            "{r:?}"
        );
        assert!(
            !r.stderr.contains("hunter2") && !r.stdout.contains("hunter2"),
            "{r:?}"
        );
    }
    assert_eq!(t.sim.stats().total, 0);
}

#[tokio::test]
async fn state_is_private_whatever_the_umask() {
    let t = tenant().await;
    // `umask 000` for the binary, through the shell.
    let out = tokio::process::Command::new("sh")
        .arg("-c")
        .arg("umask 000; exec \"$0\" --config \"$1\" apply")
        .arg(env!("CARGO_BIN_EXE_studio-role-sync"))
        .arg(t.config_path())
        .env_remove("RUST_LOG")
        .output()
        .await
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    let state = t.path("state");
    assert_eq!(mode(&state), 0o700);
    assert_eq!(mode(&t.history_path()), 0o600);
    assert_eq!(mode(&t.path("state/history.db.lock")), 0o600);
    for entry in std::fs::read_dir(&state).unwrap() {
        let p = entry.unwrap().path();
        assert_eq!(mode(&p), 0o600, "{}", p.display());
    }

    // An existing history (and its lock file) left readable by others is tightened, loudly.
    std::fs::set_permissions(t.history_path(), PermissionsExt::from_mode(0o644)).unwrap();
    std::fs::set_permissions(
        t.path("state/history.db.lock"),
        PermissionsExt::from_mode(0o666),
    )
    .unwrap();
    let r = cli(&t, &["plan"]).await;
    assert_eq!(r.code, 0, "{r:?}");
    assert_eq!(mode(&t.history_path()), 0o600);
    assert_eq!(mode(&t.path("state/history.db.lock")), 0o600);
    assert!(
        r.stderr.contains(
            "history.db was readable or writable by others (mode 0644); tightened to 0600"
        ) && r
            .stderr
            .contains("history.db.lock was readable or writable by others (mode 0666)"),
        "{r:?}"
    );
    // `history` reads the same file, and tightens it too.
    std::fs::set_permissions(t.history_path(), PermissionsExt::from_mode(0o640)).unwrap();
    let r = cli(&t, &["history"]).await;
    assert_eq!(r.code, 0, "{r:?}");
    assert_eq!(mode(&t.history_path()), 0o600);
    assert!(r.stderr.contains("(mode 0640); tightened to 0600"), "{r:?}");
}

/// The real daemon, its stderr collected, and the address it serves.
struct Daemon {
    _child: tokio::process::Child,
    log: Arc<Mutex<String>>,
}

impl Daemon {
    async fn start(t: &Tenant) -> (Daemon, String) {
        let mut child = tokio::process::Command::new(env!("CARGO_BIN_EXE_studio-role-sync"))
            .arg("--config")
            .arg(t.config_path())
            .arg("daemon")
            .env_remove("RUST_LOG")
            .env_remove("NOTIFY_SOCKET")
            .env("NO_COLOR", "1")
            .stderr(std::process::Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .unwrap();
        let log = Arc::new(Mutex::new(String::new()));
        let mut lines = BufReader::new(child.stderr.take().unwrap()).lines();
        let sink = log.clone();
        tokio::spawn(async move {
            while let Ok(Some(line)) = lines.next_line().await {
                let mut log = sink.lock().unwrap();
                log.push_str(&line);
                log.push('\n');
            }
        });
        let d = Daemon { _child: child, log };
        let addr = poll("the `listening on` line", || {
            d.log().lines().find_map(|l| {
                l.split("listening on ")
                    .nth(1)
                    .and_then(|r| r.split_whitespace().next())
                    .map(str::to_string)
            })
        })
        .await;
        (d, addr)
    }

    fn log(&self) -> String {
        self.log.lock().unwrap().clone()
    }
}

/// Polls `check` every 100 ms for up to 30 s.
async fn poll<T>(what: &str, mut check: impl FnMut() -> Option<T>) -> T {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    loop {
        if let Some(v) = check() {
            return v;
        }
        assert!(tokio::time::Instant::now() < deadline, "timed out: {what}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

async fn get(addr: &str, path: &str) -> (u16, String) {
    let r = reqwest::get(format!("http://{addr}{path}")).await.unwrap();
    (r.status().as_u16(), r.text().await.unwrap())
}

#[tokio::test]
async fn readyz_never_shows_a_secret_written_in_the_config() {
    let t = tenant().await;
    t.write_config(&Opts {
        extra: "schedule: \"0 0 0 1 1 *\"\n".into(),
        ..Opts::default()
    });
    let (d, addr) = Daemon::start(&t).await;
    let mut ready = None;
    for _ in 0..300 {
        if get(&addr, "/readyz").await.0 == 200 {
            ready = Some(());
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(ready.is_some(), "{}", d.log());
    // The admin pastes the token itself where the variable's name belongs.
    t.write_config(&Opts {
        auth: format!("  token_env: {TOKEN}\n"),
        extra: "schedule: \"0 0 0 1 1 *\"\n".into(),
        ..Opts::default()
    });
    let mut body = String::new();
    for _ in 0..300 {
        let (status, b) = get(&addr, "/readyz").await;
        if status == 503 {
            body = b;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(body.contains("invalid_config"), "{body}\n{}", d.log());
    assert!(body.contains("studio.token_env"), "{body}");
    assert!(!body.contains(TOKEN), "{body}");
    let (_, metrics) = get(&addr, "/metrics").await;
    assert!(!metrics.contains(TOKEN));
    assert_secret_absent(&d.log(), TOKEN, "the daemon's log");
}

#[tokio::test]
async fn half_sent_requests_are_closed_and_do_not_block_healthz() {
    let t = tenant().await;
    t.write_config(&Opts {
        extra: "schedule: \"0 0 0 1 1 *\"\n".into(),
        ..Opts::default()
    });
    let (d, addr) = Daemon::start(&t).await;
    // 250 requests that never finish their headers.
    let started = tokio::time::Instant::now();
    let mut held = Vec::new();
    for _ in 0..250 {
        let mut s = tokio::net::TcpStream::connect(&addr).await.unwrap();
        s.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Slow: ")
            .await
            .unwrap();
        held.push(s);
    }
    let (status, body) = tokio::time::timeout(Duration::from_secs(2), get(&addr, "/healthz"))
        .await
        .expect("/healthz answers while 250 requests are half-sent");
    assert_eq!((status, body.as_str()), (200, "{\"status\":\"alive\"}"));
    // The server closes every one of them (read returns 0, or the connection is reset)
    // once the 5 s header timeout has passed (20 s: slack for a loaded machine).
    let closed = futures::future::join_all(held.into_iter().map(|mut s| async move {
        let mut buf = [0u8; 512];
        tokio::time::timeout(Duration::from_secs(20), async {
            loop {
                match s.read(&mut buf).await {
                    Ok(0) | Err(_) => return,
                    Ok(_) => continue,
                }
            }
        })
        .await
        .is_ok()
    }))
    .await;
    assert_eq!(closed.iter().filter(|c| **c).count(), 250, "{}", d.log());
    let took = started.elapsed();
    assert!(
        took >= Duration::from_millis(4500),
        "closed after {took:?}: before the header timeout?"
    );
    let (status, _) = get(&addr, "/healthz").await;
    assert_eq!(status, 200);
}
