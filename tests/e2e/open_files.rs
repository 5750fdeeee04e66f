//! Idle HTTP clients never starve runs of file descriptors: the daemon's listeners (here
//! `http.listen` and the console's own) share one connection budget well below the process's
//! open-file limit. The daemon runs under systemd's default limit of 1024; 1,100 clients keep
//! connections open and say nothing (reconnecting whenever the daemon closes one), and runs
//! asked for meanwhile succeed.

use crate::support::daemon::{wait_for, Daemon, YEARLY};
use crate::support::{user, Opts, Tenant};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tokio::io::AsyncReadExt;
use tokio::net::TcpStream;

const WAIT: Duration = Duration::from_secs(60);
const IDLE: usize = 1100;

/// The address of the `listening on ADDR (...)` line whose tail contains `what`.
async fn address(d: &Daemon, what: &str) -> SocketAddr {
    wait_for(
        &format!("the `listening on` line of {what}"),
        WAIT,
        || async {
            d.log().lines().find_map(|l| {
                let rest = l.split("listening on ").nth(1)?;
                rest.contains(what).then_some(())?;
                rest.split_whitespace().next()?.parse().ok()
            })
        },
    )
    .await
}

/// This test process holds the idle connections itself: it needs more than 1024 files.
fn raise_own_limit() {
    let mut l = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: plain calls on a struct we own.
    unsafe {
        assert_eq!(libc::getrlimit(libc::RLIMIT_NOFILE, &mut l), 0);
        l.rlim_cur = l.rlim_max;
        assert_eq!(libc::setrlimit(libc::RLIMIT_NOFILE, &l), 0);
    }
    assert!(
        l.rlim_cur > 2 * IDLE as u64,
        "hard limit {} too low",
        l.rlim_cur
    );
}

/// `(id, status)` of run `id` once it finished.
async fn finished(t: &Tenant, id: i64) -> String {
    wait_for(&format!("run {id} to finish"), WAIT, || async {
        let db = t.history().await;
        let status: Option<String> =
            sqlx::query_scalar("SELECT status FROM runs WHERE id = ? AND status != 'running'")
                .bind(id)
                .fetch_optional(&db)
                .await
                .ok()
                .flatten();
        db.close().await;
        status
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn runs_succeed_while_1100_idle_connections_wait() {
    raise_own_limit();
    let t = Tenant::start(vec![
        user(1, Some("ada@school.edu"), &["Admin"]),
        user(2, Some("bob@school.edu"), &[]),
    ])
    .await;
    std::fs::write(t.path("console-token"), "c0nsole-t0ken-long-enough").unwrap();
    t.write_config(&Opts {
        extra: format!("{YEARLY}console:\n  listen: 127.0.0.2:0\n  token_file: console-token\n"),
        ..Opts::default()
    });
    t.write_roles("users:\n  ada@school.edu: [Admin]\n");
    let d = Daemon::start(&t);
    let http = address(&d, "/healthz").await;
    let console = address(&d, "(console /console/)").await;
    assert_eq!(finished(&t, 1).await, "succeeded");
    // systemd's default soft limit, which the daemon can no longer raise.
    let pid = d.child.id().unwrap().to_string();
    let set = std::process::Command::new("prlimit")
        .args(["--pid", &pid, "--nofile=1024:1024"])
        .status()
        .expect("prlimit (util-linux) runs");
    assert!(set.success());

    let stop = Arc::new(AtomicBool::new(false));
    let mut clients = Vec::new();
    for i in 0..IDLE {
        let addr = if i % 2 == 0 { http } else { console };
        let stop = stop.clone();
        clients.push(tokio::spawn(async move {
            // Connected and silent; when the daemon closes it, connect again.
            while !stop.load(Ordering::Relaxed) {
                let Ok(Ok(mut s)) =
                    tokio::time::timeout(Duration::from_secs(2), TcpStream::connect(addr)).await
                else {
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                };
                let mut buf = [0u8; 64];
                let _ = tokio::time::timeout(Duration::from_secs(30), s.read(&mut buf)).await;
            }
        }));
    }
    tokio::time::sleep(Duration::from_secs(2)).await;

    for (id, roles) in [
        (
            2,
            "users:\n  ada@school.edu: [Admin]\n  bob@school.edu: [Admin]\n",
        ),
        (3, "users:\n  ada@school.edu: [Admin]\n"),
        (4, "users:\n  bob@school.edu: [Admin]\n"),
    ] {
        t.write_roles(roles);
        assert_eq!(finished(&t, id).await, "succeeded", "{}", d.log());
    }
    assert_eq!(t.holders("Admin"), ["bob@school.edu"]);
    let log = d.log();
    assert!(!log.contains("Too many open files"), "{log}");
    stop.store(true, Ordering::Relaxed);
    for c in clients {
        c.abort();
    }
}
