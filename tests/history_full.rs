//! A history that stops taking writes in the middle of a run: the real binary, the simulator,
//! and the history on a small tmpfs that the test fills to the last byte while the first
//! `PUT /users/roles` is in flight.
//!
//! The run keeps sending (Studio's state does not depend on the history), but it is not
//! `succeeded`: it is recorded `failed`, says how many outcomes it could not record, and
//! exits 1. A daemon whose run lost the disk even for the run's end records that run `failed`
//! (with the write error) before its next run, which succeeds: no pooled connection keeps the
//! history locked after the failed writes (`store/history/pool.rs`). Mounting a tmpfs needs root (`CAP_SYS_ADMIN`); where the mount is refused the test
//! is reported *ignored* with the reason, never passed, and with `CI=true` it fails instead.
//! That is decided when the test runs, so this binary has its own harness (`libtest-mimic`).

mod support;

use libtest_mimic::{Completion, Trial};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};
use studio_sim::Faults;
use support::daemon::{wait_for, Daemon, YEARLY};
use support::{count, run_row, user, Opts, Tenant};
use tokio::io::{AsyncBufReadExt, BufReader};

fn main() -> std::process::ExitCode {
    let args = libtest_mimic::Arguments::from_args();
    let trials = vec![
        trial(
            "a_history_that_fills_up_mid_run_fails_the_run",
            history_fills_up_mid_run,
        ),
        trial(
            "a_daemon_run_whose_end_cannot_be_written_is_recorded_failed_once_the_disk_allows",
            daemon_run_end_unwritable,
        ),
    ];
    libtest_mimic::run(&args, trials).exit_code()
}

/// A trial that needs a tmpfs: ignored with the reason where it cannot be mounted, failing
/// under `CI=true`.
fn trial<F, Fut>(name: &'static str, test: F) -> Trial
where
    F: FnOnce() -> Fut + Send + 'static,
    Fut: std::future::Future<Output = Result<(), String>>,
{
    Trial::ignorable_test(name, move || {
        let ran = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("a runtime")
            .block_on(test());
        match ran {
            Ok(()) => Ok(Completion::Completed),
            Err(why) => {
                let reason = format!("cannot mount a tmpfs for the history ({why}): run as root");
                support::unavailable(reason)
            }
        }
    })
}

/// A small tmpfs, unmounted when dropped (also when the test panics).
struct Tmpfs(PathBuf);

impl Tmpfs {
    fn mount(at: &Path) -> Result<Tmpfs, String> {
        let out = std::process::Command::new("mount")
            .args(["-t", "tmpfs", "-o", "size=8m,mode=0700", "tmpfs"])
            .arg(at)
            .output()
            .map_err(|e| format!("mount: {e}"))?;
        if !out.status.success() {
            return Err(String::from_utf8_lossy(&out.stderr).trim().to_string());
        }
        Ok(Tmpfs(at.to_path_buf()))
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = std::process::Command::new("umount")
            .arg("-l")
            .arg(&self.0)
            .status();
    }
}

/// Writes zeros to `path` until the file system refuses one more byte.
fn fill(path: &Path) {
    let mut f = std::fs::File::create(path).expect("filler file");
    let mut chunk = 1 << 20;
    let zeros = vec![0u8; chunk];
    while chunk > 0 {
        match f.write(&zeros[..chunk]) {
            Ok(0) | Err(_) => chunk /= 2,
            Ok(_) => {}
        }
    }
    let _ = f.sync_all();
}

/// `Err` with the reason when the tmpfs cannot be mounted.
async fn history_fills_up_mid_run() -> Result<(), String> {
    let t = Tenant::start(vec![
        user(1, Some("ann@x.edu"), &[]),
        user(2, Some("bob@x.edu"), &[]),
        user(3, Some("cyd@x.edu"), &[]),
    ])
    .await;
    let state = t.path("state");
    std::fs::create_dir(&state).unwrap();
    // Dropped before the tenant's folder.
    let _mount = Tmpfs::mount(&state)?;
    t.write_config(&Opts {
        batch_size: 1,
        concurrency: 1,
        ..Opts::default()
    });
    t.write_roles("users:\n  ann@x.edu: [Admin]\n  bob@x.edu: [Admin]\n  cyd@x.edu: [Admin]\n");
    // Every request takes a while: time to fill the disk under the first PUT, and to free it
    // again before the second one comes back.
    t.sim.set_faults(Faults {
        latency: Duration::from_millis(1500),
        ..Faults::default()
    });

    let mut child = tokio::process::Command::new(env!("CARGO_BIN_EXE_studio-role-sync"))
        .arg("--config")
        .arg(t.config_path())
        .arg("apply")
        .env_remove("RUST_LOG")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("binary starts");
    let filler = state.join("filler");
    let deadline = Instant::now() + Duration::from_secs(60);
    while t.sim.stats().put_roles == 0 {
        assert!(Instant::now() < deadline, "no PUT reached Studio");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    fill(&filler);

    // The first batch's outcome cannot be written; as soon as the run says so, the disk has
    // room again, well before the next batch comes back.
    let mut lines = BufReader::new(child.stderr.take().unwrap()).lines();
    let mut stderr = String::new();
    let said = tokio::time::timeout(Duration::from_secs(30), async {
        while let Some(line) = lines.next_line().await.unwrap() {
            stderr.push_str(&line);
            stderr.push('\n');
            if line.contains("cannot record outcomes") {
                return true;
            }
        }
        false
    })
    .await;
    std::fs::remove_file(&filler).unwrap();
    assert_eq!(said, Ok(true), "the run did not say: {stderr}");
    while let Some(line) = lines.next_line().await.unwrap() {
        stderr.push_str(&line);
        stderr.push('\n');
    }
    let status = tokio::time::timeout(Duration::from_secs(60), child.wait())
        .await
        .expect("the run ends")
        .unwrap();
    assert!(stderr.contains("database or disk is full"), "{stderr}");

    // Studio got every change: the history does not hold the run back.
    assert_eq!(t.holders("Admin"), ["ann@x.edu", "bob@x.edu", "cyd@x.edu"]);
    // But the run is not `succeeded`, and the exit code says so.
    assert_eq!(status.code(), Some(1), "{stderr}");
    let db = t.history().await;
    let (run_status, ..) = run_row(&db, 1).await;
    assert_eq!(run_status, "failed", "{stderr}");
    let error: String = sqlx::query_scalar("SELECT error FROM runs WHERE id = 1")
        .fetch_one(&db)
        .await
        .unwrap();
    assert!(
        error.contains("could not record the outcome of 1 change"),
        "{error}"
    );
    assert!(error.contains("database or disk is full"), "{error}");
    assert_eq!(
        count(
            &db,
            "SELECT COUNT(*) FROM run_actions WHERE run_id = 1 AND outcome = 'planned'"
        )
        .await,
        1
    );
    db.close().await;

    // With room again, the next run finds nothing to do and succeeds.
    t.sim.set_faults(Faults::default());
    let puts = t.sim.stats().put_roles;
    let again = t.cli(&["apply"]).await;
    assert_eq!(again.code, 0, "{again:?}");
    assert_eq!(t.sim.stats().put_roles, puts);
    let db = t.history().await;
    assert_eq!(run_row(&db, 2).await.0, "succeeded");
    db.close().await;
    Ok(())
}

/// The daemon's startup run loses the disk under its first `PUT` and keeps no room until it
/// ends, so not even its end can be written: it stays `running` in the history. Once the disk
/// has room, the next run first records it `failed` (not left `running` until a restart), then
/// runs as usual.
async fn daemon_run_end_unwritable() -> Result<(), String> {
    let t = Tenant::start(vec![
        user(1, Some("ann@x.edu"), &[]),
        user(2, Some("bob@x.edu"), &[]),
    ])
    .await;
    let state = t.path("state");
    std::fs::create_dir(&state).unwrap();
    let _mount = Tmpfs::mount(&state)?;
    t.write_config(&Opts {
        batch_size: 1,
        concurrency: 1,
        extra: YEARLY.to_string(),
        ..Opts::default()
    });
    t.write_roles("users:\n  ann@x.edu: [Admin]\n  bob@x.edu: [Admin]\n");
    t.sim.set_faults(Faults {
        latency: Duration::from_millis(1500),
        ..Faults::default()
    });
    let daemon = Daemon::start(&t);
    let filler = state.join("filler");
    wait_for("the first PUT", Duration::from_secs(60), || async {
        (t.sim.stats().put_roles > 0).then_some(())
    })
    .await;
    fill(&filler);
    wait_for(
        "the daemon to say the run did not finish",
        Duration::from_secs(60),
        || async {
            daemon
                .log()
                .contains("the run did not finish")
                .then_some(())
        },
    )
    .await;
    std::fs::remove_file(&filler).unwrap();
    let log = daemon.log();
    assert!(log.contains("database or disk is full"), "{log}");
    let db = t.history().await;
    assert_eq!(run_row(&db, 1).await.0, "running", "{log}");

    // Room again: the next run records the stuck one first.
    t.sim.set_faults(Faults::default());
    daemon.signal("-HUP");
    wait_for("run 2 to succeed", Duration::from_secs(60), || async {
        let status: Option<String> = sqlx::query_scalar("SELECT status FROM runs WHERE id = 2")
            .fetch_optional(&db)
            .await
            .ok()
            .flatten();
        (status.as_deref() == Some("succeeded")).then_some(())
    })
    .await;
    let (status, ..) = run_row(&db, 1).await;
    assert_eq!(status, "failed", "{}", daemon.log());
    let (error, finished): (String, Option<String>) =
        sqlx::query_as("SELECT error, finished_at FROM runs WHERE id = 1")
            .fetch_one(&db)
            .await
            .unwrap();
    assert!(
        error.contains("could not record the end of this run"),
        "{error}"
    );
    // With the reason the write failed.
    assert!(error.contains("database or disk is full"), "{error}");
    assert!(finished.is_some());
    assert!(
        daemon.log().contains("now recorded failed"),
        "{}",
        daemon.log()
    );
    assert_eq!(t.holders("Admin"), ["ann@x.edu", "bob@x.edu"]);
    db.close().await;
    Ok(())
}
