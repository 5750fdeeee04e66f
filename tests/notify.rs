//! Notifications and flapping, end to end: the real binary as a daemon against the simulator,
//! with real receivers on 127.0.0.1 started here: a webhook receiver (an axum server in this
//! process) and a real SMTP server (Python's `aiosmtpd`, from PyPI, writing a maildir).
//!
//! Tests that need the SMTP server are reported *ignored* when `python3 -m aiosmtpd` cannot
//! start (`pip install aiosmtpd`), never passed; with `CI=true` they fail instead. That is
//! decided at run time, so this binary has its own harness (`libtest-mimic`), with the usual
//! filters and flags.

mod support;

use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::post;
use axum::{Json, Router};
use libtest_mimic::{Completion, Trial};
use serde_json::Value;
use sqlx::{Row, SqlitePool};
use std::future::Future;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use support::daemon::{wait_for_history, Daemon, YEARLY};
use support::{admins, assert_secret_absent, user, Opts, Tenant};

/// Deadline for one awaited condition.
const WAIT: Duration = Duration::from_secs(20);

// ---- the daemon -------------------------------------------------------------------------

impl Daemon {
    /// SIGTERM, then the exit code.
    async fn stop(&mut self) -> Option<i32> {
        self.signal("-TERM");
        match tokio::time::timeout(WAIT, self.child.wait()).await {
            Ok(status) => status.expect("wait works").code(),
            Err(_) => panic!("daemon did not exit\n{}", self.log()),
        }
    }
}

/// Polls `check` until it gives a value; panics with `what` after [`WAIT`].
async fn wait_for<T, F, Fut>(what: &str, check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    support::daemon::wait_for(what, WAIT, check).await
}

/// `status` of every finished run, oldest first.
async fn statuses(db: &SqlitePool) -> Vec<String> {
    sqlx::query("SELECT status FROM runs WHERE status != 'running' ORDER BY id")
        .fetch_all(db)
        .await
        .expect("runs query")
        .iter()
        .map(|r| r.get(0))
        .collect()
}

/// Waits until `n` runs have finished; returns their statuses.
async fn wait_runs(db: &SqlitePool, n: usize) -> Vec<String> {
    wait_for(&format!("{n} finished runs"), || async {
        let s = statuses(db).await;
        (s.len() >= n).then_some(s)
    })
    .await
}

async fn metrics(base: &str) -> String {
    reqwest::get(format!("{base}/metrics"))
        .await
        .expect("daemon answers")
        .text()
        .await
        .unwrap()
}

// ---- the receivers ----------------------------------------------------------------------

/// A webhook receiver on 127.0.0.1: keeps every JSON body it is sent.
struct Receiver {
    url: String,
    bodies: Arc<Mutex<Vec<Value>>>,
}

impl Receiver {
    async fn start() -> Receiver {
        let bodies = Arc::new(Mutex::new(Vec::new()));
        async fn hook(State(b): State<Arc<Mutex<Vec<Value>>>>, Json(v): Json<Value>) -> StatusCode {
            b.lock().unwrap().push(v);
            StatusCode::NO_CONTENT
        }
        let app = Router::new()
            .route("/hook/s3cret-path", post(hook))
            .with_state(bodies.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move { axum::serve(listener, app).await });
        Receiver {
            url: format!("http://{addr}/hook/s3cret-path"),
            bodies,
        }
    }

    fn events(&self) -> Vec<String> {
        self.bodies
            .lock()
            .unwrap()
            .iter()
            .map(|b| b["event"].as_str().unwrap_or("?").to_string())
            .collect()
    }

    fn bodies(&self) -> Vec<Value> {
        self.bodies.lock().unwrap().clone()
    }
}

/// A real SMTP server (aiosmtpd) on a free port of 127.0.0.1, delivering into a maildir.
struct Smtp {
    _child: tokio::process::Child,
    port: u16,
    maildir: tempfile::TempDir,
}

impl Smtp {
    async fn start() -> Result<Smtp, String> {
        let maildir = tempfile::tempdir().map_err(|e| e.to_string())?;
        let port = free_port();
        let mut child = tokio::process::Command::new("python3")
            .args(["-m", "aiosmtpd", "-n", "-l"])
            .arg(format!("127.0.0.1:{port}"))
            .args(["-c", "aiosmtpd.handlers.Mailbox"])
            .arg(maildir.path().join("mail"))
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .map_err(|e| format!("cannot run python3: {e}"))?;
        let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
        loop {
            if tokio::net::TcpStream::connect(("127.0.0.1", port))
                .await
                .is_ok()
            {
                return Ok(Smtp {
                    _child: child,
                    port,
                    maildir,
                });
            }
            if let Ok(Some(status)) = child.try_wait() {
                let mut err = String::new();
                if let Some(mut e) = child.stderr.take() {
                    use tokio::io::AsyncReadExt;
                    let _ = e.read_to_string(&mut err).await;
                }
                let last = err.lines().last().unwrap_or_default().to_string();
                return Err(format!("`python3 -m aiosmtpd` exited ({status}): {last}"));
            }
            if tokio::time::Instant::now() > deadline {
                return Err("`python3 -m aiosmtpd` did not listen within 10 s".into());
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    fn url(&self) -> String {
        format!("smtp://127.0.0.1:{}", self.port)
    }

    /// The messages delivered so far (their raw text), oldest first.
    fn messages(&self) -> Vec<String> {
        let mut files: Vec<PathBuf> = ["new", "cur"]
            .iter()
            .filter_map(|d| std::fs::read_dir(self.maildir.path().join("mail").join(d)).ok())
            .flatten()
            .filter_map(|e| e.ok().map(|e| e.path()))
            .collect();
        files.sort_by_key(|p| std::fs::metadata(p).and_then(|m| m.modified()).ok());
        files
            .iter()
            .filter_map(|p| std::fs::read_to_string(p).ok())
            .collect()
    }

    fn subjects(&self) -> Vec<String> {
        self.messages()
            .iter()
            .filter_map(|m| {
                m.lines()
                    .find_map(|l| l.strip_prefix("Subject: ").map(str::to_string))
            })
            .collect()
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

// ---- the tests --------------------------------------------------------------------------

/// `PATCH /sim/users/{id}`: Admin given back behind the tool's back, as Canvas does for its
/// account admins.
async fn canvas_gives_admin_back(t: &Tenant, id: u64) {
    let r = reqwest::Client::new()
        .patch(format!("{}/sim/users/{id}", t.sim.base_url()))
        .bearer_auth(support::TOKEN)
        .json(&serde_json::json!({"role_names": ["Admin"]}))
        .send()
        .await
        .expect("sim answers");
    assert!(r.status().is_success(), "{}", r.status());
}

const THREE: [&str; 3] = ["alice@school.edu", "bob@school.edu", "carol@school.edu"];

/// A guard trip sends one webhook and one email; tripping again (after an edit, and after a
/// restart) sends nothing; the run that goes through sends "back to normal" once.
async fn guard_trip_notifies_once_and_recovery_says_back_to_normal(smtp: Smtp) {
    let hook = Receiver::start().await;
    let t = Tenant::start(vec![
        user(1, Some(THREE[0]), &["Admin"]),
        user(2, Some(THREE[1]), &["Admin"]),
        user(3, Some(THREE[2]), &["Admin"]),
    ])
    .await;
    t.write_config(&Opts {
        max_removals: 1,
        extra: format!(
            "{YEARLY}notify:\n  webhook:\n    url_env: TEST_WEBHOOK_URL\n  email:\n    smtp_url_env: TEST_SMTP_URL\n    from: studio-role-sync@school.edu\n    to: [media-admins@school.edu]\n"
        ),
        ..Opts::default()
    });
    t.write_roles(&admins(&THREE));
    let envs = [
        ("TEST_WEBHOOK_URL", hook.url.clone()),
        ("TEST_SMTP_URL", smtp.url()),
    ];
    let start = |t: &Tenant| Daemon::start_with_env(t, &envs);
    let mut d = start(&t);
    let db = wait_for_history(&t, "notify_conditions", WAIT).await;
    assert_eq!(wait_runs(&db, 1).await, ["succeeded"]);

    // Two of three Admins would go: more than max_removals.
    t.write_roles(&admins(&THREE[..1]));
    assert_eq!(wait_runs(&db, 2).await[1], "aborted");
    wait_for("the guard_tripped webhook", || async {
        (!hook.events().is_empty()).then_some(())
    })
    .await;
    wait_for("the guard_tripped email", || async {
        (!smtp.messages().is_empty()).then_some(())
    })
    .await;
    let body = &hook.bodies()[0];
    assert_eq!(body["event"], "guard_tripped", "{body}");
    assert_eq!(body["run_id"], 2, "{body}");
    assert_eq!(body["status"], "aborted", "{body}");
    assert_eq!(body["summary"]["removes_planned"], 2, "{body}");
    let message = body["message"].as_str().unwrap();
    assert!(message.contains("safety guard"), "{message}");
    let mail = &smtp.messages()[0];
    assert!(
        mail.contains("Subject: [studio-role-sync] safety guard tripped: run 2 (aborted)"),
        "{mail}"
    );
    assert!(mail.contains("To: media-admins@school.edu"), "{mail}");

    // Tripping again, after an edit and after a restart: no message.
    t.write_roles(&format!("{}# still wrong\n", admins(&THREE[..1])));
    assert_eq!(wait_runs(&db, 3).await[2], "aborted");
    assert_eq!(d.stop().await, Some(0));
    let d2 = start(&t);
    assert_eq!(wait_runs(&db, 4).await[3], "aborted");

    // Fixed: back to normal, once.
    t.write_roles(&admins(&THREE));
    assert_eq!(wait_runs(&db, 5).await[4], "succeeded");
    wait_for("the recovered webhook", || async {
        (hook.events().len() >= 2).then_some(())
    })
    .await;
    wait_for("the recovered email", || async {
        (smtp.messages().len() >= 2).then_some(())
    })
    .await;
    assert_eq!(hook.events(), ["guard_tripped", "recovered"]);
    let recovered = &hook.bodies()[1];
    assert_eq!(recovered["run_id"], 5, "{recovered}");
    assert_eq!(recovered["status"], "succeeded", "{recovered}");
    assert!(
        recovered["message"]
            .as_str()
            .unwrap()
            .contains("Back to normal"),
        "{recovered}"
    );
    let subjects = smtp.subjects();
    assert_eq!(subjects.len(), 2, "{subjects:?}");
    assert!(
        subjects[1].contains("back to normal: run 5"),
        "{subjects:?}"
    );
    // No message carries the webhook's secret path or the SMTP URL.
    for m in smtp.messages() {
        assert!(!m.contains("s3cret-path"), "{m}");
    }
    assert!(!d2.log().contains("s3cret-path"), "{}", d2.log());
    let db = t.history().await;
    let open: i64 = support::count(&db, "SELECT COUNT(*) FROM notify_conditions").await;
    assert_eq!(open, 0);
}

/// A role given back behind the daemon's back (as Canvas does for its admins) is removed in
/// three consecutive runs: the third is flapping in the history, in `plan`, in the metrics
/// and in a webhook message.
async fn a_role_regranted_in_three_runs_is_flapping() {
    let hook = Receiver::start().await;
    let t = Tenant::start(vec![
        user(1, Some("alice@school.edu"), &["Admin"]),
        user(2, Some("canvasadmin@school.edu"), &["Admin"]),
    ])
    .await;
    t.write_config(&Opts {
        extra: format!("{YEARLY}notify:\n  webhook:\n    url_env: TEST_WEBHOOK_URL\n"),
        ..Opts::default()
    });
    t.write_roles(&admins(&["alice@school.edu"]));
    let d = Daemon::start_with_env(&t, &[("TEST_WEBHOOK_URL", hook.url.clone())]);
    let base = d.base_url(WAIT).await;
    let db = wait_for_history(&t, "notify_conditions", WAIT).await;
    let regrant = || canvas_gives_admin_back(&t, 2);
    for run in 1..=3 {
        if run > 1 {
            regrant().await;
            t.write_roles(&format!("{}# edit {run}\n", admins(&["alice@school.edu"])));
        }
        assert_eq!(wait_runs(&db, run).await[run - 1], "succeeded");
        assert_eq!(t.holders("Admin"), ["alice@school.edu"]);
    }
    let flapping: Vec<(i64, String, String, String, i64)> = sqlx::query_as(
        "SELECT run_id, email, role, action, flapping FROM run_actions ORDER BY run_id",
    )
    .fetch_all(&db)
    .await
    .unwrap();
    let expected: Vec<_> = (1..=3)
        .map(|run| {
            (
                run,
                "canvasadmin@school.edu".to_string(),
                "Admin".to_string(),
                "remove".to_string(),
                (run == 3) as i64,
            )
        })
        .collect();
    assert_eq!(flapping, expected);
    let flagged: i64 = support::count(&db, "SELECT flapping FROM runs WHERE id = 3").await;
    assert_eq!(flagged, 1);
    let shown = t.cli(&["history", "--run", "3"]).await;
    assert_eq!(shown.code, 0, "{shown:?}");
    assert!(
        shown.stdout.contains("Flapping in this run")
            && shown
                .stdout
                .lines()
                .any(|l| l.contains("remove") && l.contains("canvasadmin@school.edu")),
        "{shown:?}"
    );

    wait_for("the flapping webhook", || async {
        (!hook.events().is_empty()).then_some(())
    })
    .await;
    let body = &hook.bodies()[0];
    assert_eq!(body["event"], "flapping", "{body}");
    assert_eq!(body["run_id"], 3, "{body}");
    assert_eq!(body["summary"]["flapping"], 1, "{body}");
    let message = body["message"].as_str().unwrap();
    assert!(
        message.contains("remove Admin from canvasadmin@school.edu") && message.contains("Canvas"),
        "{message}"
    );
    let m = metrics(&base).await;
    assert!(m.contains("studio_role_sync_flapping_actions 1"), "{m}");

    // Given back once more: `plan` (while the daemon runs) shows the fight.
    regrant().await;
    let plan = t
        .cli_env(&["plan"], &[("TEST_WEBHOOK_URL", hook.url.as_str())])
        .await;
    assert_eq!(plan.code, 2, "{plan:?}");
    assert!(
        plan.stdout
            .contains("Flapping: applied in 3 consecutive runs"),
        "{plan:?}"
    );
    assert!(
        plan.stdout
            .lines()
            .any(|l| l.contains("canvasadmin@school.edu") && l.contains("flapping")),
        "{plan:?}"
    );
    assert!(plan.stdout.contains("Canvas LMS admin"), "{plan:?}");
}

/// With `flapping.reapply: false`, a flapping change is left alone (recorded skipped,
/// flapping) and later runs keep leaving it alone. One-shot `apply` notifies too, once, and
/// has delivered the message by the time it exits.
async fn leave_alone_keeps_a_flapping_change_unsent() {
    let hook = Receiver::start().await;
    let t = Tenant::start(vec![
        user(1, Some("alice@school.edu"), &["Admin"]),
        user(2, Some("canvasadmin@school.edu"), &["Admin"]),
    ])
    .await;
    t.write_config(&Opts {
        extra: "flapping:\n  after_runs: 2\n  reapply: false\nnotify:\n  webhook:\n    url_env: TEST_WEBHOOK_URL\n".into(),
        ..Opts::default()
    });
    t.write_roles(&admins(&["alice@school.edu"]));
    let regrant = || canvas_gives_admin_back(&t, 2);
    let envs = [("TEST_WEBHOOK_URL", hook.url.as_str())];
    let first = t.cli_env(&["apply"], &envs).await;
    assert_eq!(first.code, 0, "{first:?}");
    for _ in 0..2 {
        regrant().await;
        let run = t.cli_env(&["apply"], &envs).await;
        assert_eq!(run.code, 0, "{run:?}");
        assert!(
            run.stdout.contains("left alone: flapping.reapply is false"),
            "{run:?}"
        );
        assert_eq!(
            t.holders("Admin"),
            ["alice@school.edu", "canvasadmin@school.edu"]
        );
        // Delivered before `apply` exited; the second flapping run sends nothing more.
        assert_eq!(hook.events(), ["flapping"]);
    }
    let body = &hook.bodies()[0];
    assert_eq!(
        (body["run_id"].as_i64(), body["trigger"].as_str()),
        (Some(2), Some("manual")),
        "{body}"
    );
    assert!(
        body["message"].as_str().unwrap().contains("left alone"),
        "{body}"
    );
    let db = t.history().await;
    let rows: Vec<(i64, String, i64)> =
        sqlx::query_as("SELECT run_id, outcome, flapping FROM run_actions ORDER BY run_id")
            .fetch_all(&db)
            .await
            .unwrap();
    assert_eq!(
        rows,
        [
            (1, "applied".to_string(), 0),
            (2, "skipped".to_string(), 1),
            (3, "skipped".to_string(), 1)
        ]
    );
}

/// A Studio email built to look like Slack markup: the flapping alert that names it reaches
/// a real receiver with `<`, `>` and `&` escaped, so Slack shows it as text (no @channel ping,
/// no disguised link).
async fn a_flapping_alert_reaches_slack_with_the_email_escaped() {
    const EVIL: &str = "<!channel> <https://evil.example/approve|click to approve run>";
    let hook = Receiver::start().await;
    let t = Tenant::start(vec![
        user(1, Some("alice@school.edu"), &["Admin"]),
        user(2, Some(EVIL), &["Admin"]),
    ])
    .await;
    t.write_config(&Opts {
        extra: "flapping:\n  after_runs: 2\n  reapply: false\nnotify:\n  webhook:\n    url_env: TEST_WEBHOOK_URL\n    format: slack\n".into(),
        ..Opts::default()
    });
    t.write_roles(&admins(&["alice@school.edu"]));
    let envs = [("TEST_WEBHOOK_URL", hook.url.as_str())];
    assert_eq!(t.cli_env(&["apply"], &envs).await.code, 0);
    canvas_gives_admin_back(&t, 2).await;
    let run = t.cli_env(&["apply"], &envs).await;
    assert_eq!(run.code, 0, "{run:?}");
    let bodies = hook.bodies();
    assert_eq!(bodies.len(), 1, "{bodies:?}");
    let text = bodies[0]["text"].as_str().expect("a Slack body");
    assert!(
        text.contains("&lt;!channel&gt; &lt;https://evil.example/approve|click to approve run&gt;"),
        "{text}"
    );
    assert!(!text.contains('<') && !text.contains('>'), "{text}");
}

/// A grant that ends within `notify.grant_expiring_days`: one `grant_expiring` message naming
/// it, its end and its reason (escaped for Slack), and no second one on the next runs.
async fn a_grant_ending_soon_is_reminded_of_once() {
    let hook = Receiver::start().await;
    let t = Tenant::start(vec![
        user(1, Some("alice@school.edu"), &["Admin"]),
        user(2, Some("ta@school.edu"), &[]),
    ])
    .await;
    t.write_config(&Opts {
        extra: "notify:\n  webhook:\n    url_env: TEST_WEBHOOK_URL\n    format: slack\n  grant_expiring_days: 7\n".into(),
        ..Opts::default()
    });
    let until = (chrono::Utc::now().date_naive() + chrono::Duration::days(3)).to_string();
    let far = (chrono::Utc::now().date_naive() + chrono::Duration::days(30)).to_string();
    t.write_roles(&format!(
        "users:\n  alice@school.edu: [Admin, {{role: CaptionEditor, until: {far}}}]\n  ta@school.edu: [{{role: CaptionEditor, until: {until}, reason: \"MED101 TA <!channel>\"}}]\n"
    ));
    let envs = [("TEST_WEBHOOK_URL", hook.url.as_str())];
    let run = t.cli_env(&["apply"], &envs).await;
    assert_eq!(run.code, 0, "{run:?}");
    let bodies = hook.bodies();
    assert_eq!(bodies.len(), 1, "{bodies:?}");
    let text = bodies[0]["text"].as_str().expect("a Slack body");
    assert!(
        text.contains("grants ending soon")
            && text.contains(&format!(
                "CaptionEditor of ta@school.edu expires in 3 days (until {until}; reason: MED101 TA &lt;!channel&gt;)"
            )),
        "{text}"
    );
    assert!(
        !text.contains("alice@school.edu"),
        "ends in 30 days: {text}"
    );
    for _ in 0..2 {
        let again = t.cli_env(&["apply"], &envs).await;
        assert_eq!(again.code, 0, "{again:?}");
    }
    assert_eq!(
        hook.bodies().len(),
        1,
        "once per grant: {:?}",
        hook.bodies()
    );
    let db = t.history().await;
    let rows: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM grant_reminders")
        .fetch_one(&db)
        .await
        .unwrap();
    assert_eq!(rows, 1);
}

/// A webhook nobody answers: the runs go on and end as they would, and the failure is logged
/// (without the URL) and counted.
async fn an_undeliverable_webhook_never_fails_a_run() {
    let dead = format!("http://127.0.0.1:{}/hook/s3cret-path", free_port());
    let t = Tenant::start(vec![
        user(1, Some(THREE[0]), &["Admin"]),
        user(2, Some(THREE[1]), &["Admin"]),
        user(3, Some(THREE[2]), &["Admin"]),
    ])
    .await;
    t.write_config(&Opts {
        max_removals: 1,
        extra: format!(
            "{YEARLY}notify:\n  webhook:\n    url: {dead}\n  retries: 1\n  timeout_seconds: 2\n"
        ),
        ..Opts::default()
    });
    t.write_roles(&admins(&THREE[..1]));
    let d = Daemon::start(&t);
    let base = d.base_url(WAIT).await;
    let db = wait_for_history(&t, "notify_conditions", WAIT).await;
    assert_eq!(wait_runs(&db, 1).await, ["aborted"]);
    let failed = "studio_role_sync_notifications_total{channel=\"webhook\",event=\"guard_tripped\",outcome=\"failed\"} 1";
    wait_for("the failed delivery in /metrics", || async {
        metrics(&base).await.contains(failed).then_some(())
    })
    .await;
    // The next run is not held back and succeeds; its message fails too.
    t.write_roles(&admins(&THREE));
    assert_eq!(wait_runs(&db, 2).await, ["aborted", "succeeded"]);
    let recovered = "studio_role_sync_notifications_total{channel=\"webhook\",event=\"recovered\",outcome=\"failed\"} 1";
    wait_for("the failed recovered delivery", || async {
        metrics(&base).await.contains(recovered).then_some(())
    })
    .await;
    let log = d.log();
    assert!(log.contains("notification could not be delivered"), "{log}");
    assert_secret_absent(&log, "s3cret-path", "the webhook URL");
}

/// An SMTP server on 127.0.0.1 that refuses every login and echoes the `AUTH` line in its
/// reply, as some do: the base64 credentials are in what it says.
async fn echoing_smtp_server() -> u16 {
    use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            tokio::spawn(async move {
                let (read, mut write) = stream.into_split();
                let mut lines = BufReader::new(read).lines();
                let _ = write.write_all(b"220 echo.test ESMTP\r\n").await;
                while let Ok(Some(line)) = lines.next_line().await {
                    let verb = line.get(..4).unwrap_or("").to_ascii_uppercase();
                    let reply = match verb.as_str() {
                        "EHLO" => "250-echo.test\r\n250 AUTH PLAIN LOGIN\r\n".to_string(),
                        "AUTH" => format!("535 5.7.8 Authentication failed for {line}\r\n"),
                        "QUIT" => "221 bye\r\n".to_string(),
                        _ => "250 ok\r\n".to_string(),
                    };
                    if write.write_all(reply.as_bytes()).await.is_err() || verb == "QUIT" {
                        break;
                    }
                }
            });
        }
    });
    port
}

/// A failed email delivery is logged as the reply code and a cleaned text, never with the
/// credentials the server echoed; a server that is not there is "connection refused".
async fn smtp_failures_are_logged_without_the_echoed_credentials() {
    let echo = echoing_smtp_server().await;
    let dead = free_port();
    for (port, expected) in [
        (echo, "the server answered 535"),
        (dead, "connection refused"),
    ] {
        let t = Tenant::start(vec![
            user(1, Some(THREE[0]), &["Admin"]),
            user(2, Some(THREE[1]), &["Admin"]),
            user(3, Some(THREE[2]), &["Admin"]),
        ])
        .await;
        t.write_config(&Opts {
            max_removals: 1,
            extra: "notify:\n  email:\n    smtp_url_env: TEST_SMTP_URL\n    from: srs@school.edu\n    to: [admins@school.edu]\n  retries: 0\n".into(),
            ..Opts::default()
        });
        t.write_roles(&admins(&THREE[..1]));
        let url = format!("smtp://mailer:Pa55w0rd-s3cret@127.0.0.1:{port}");
        let run = t
            .cli_env(&["apply"], &[("TEST_SMTP_URL", url.as_str())])
            .await;
        assert_eq!(run.code, 3, "the guard trips: {run:?}");
        let log = format!("{}{}", run.stdout, run.stderr);
        assert!(
            log.contains("notification could not be delivered") && log.contains(expected),
            "{expected}: {log}"
        );
        // AUTH PLAIN of mailer / Pa55w0rd-s3cret, whole and as LOGIN's parts.
        for secret in [
            "AG1haWxlcgBQYTU1dzByZC1zM2NyZXQ=",
            "bWFpbGVy",
            "UGE1NXcwcmQtczNjcmV0",
            "Pa55w0rd-s3cret",
        ] {
            assert!(!log.contains(secret), "{secret} in the log: {log}");
        }
        assert!(!log.contains("error sending request"), "{log}");
    }
}

// ---- the harness ------------------------------------------------------------------------

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("a runtime")
}

/// A test that needs no external server.
fn trial<F, Fut>(name: &str, body: F) -> Trial
where
    F: FnOnce() -> Fut + Send + 'static,
    Fut: Future<Output = ()>,
{
    Trial::test(name, move || {
        runtime().block_on(body());
        Ok(())
    })
}

/// A test that needs the SMTP server: ignored with the reason when it cannot start, failed
/// instead under `CI=true`.
fn smtp_trial<F, Fut>(name: &str, body: F) -> Trial
where
    F: FnOnce(Smtp) -> Fut + Send + 'static,
    Fut: Future<Output = ()>,
{
    Trial::ignorable_test(name, move || {
        let rt = runtime();
        let smtp = match rt.block_on(Smtp::start()) {
            Ok(s) => s,
            Err(why) => {
                let reason = format!("no SMTP server: {why} (pip install aiosmtpd)");
                return support::unavailable(reason);
            }
        };
        rt.block_on(body(smtp));
        Ok(Completion::Completed)
    })
}

fn main() -> std::process::ExitCode {
    let args = libtest_mimic::Arguments::from_args();
    let trials = vec![
        smtp_trial(
            "guard_trip_notifies_once_and_recovery_says_back_to_normal",
            guard_trip_notifies_once_and_recovery_says_back_to_normal,
        ),
        trial(
            "a_role_regranted_in_three_runs_is_flapping",
            a_role_regranted_in_three_runs_is_flapping,
        ),
        trial(
            "leave_alone_keeps_a_flapping_change_unsent",
            leave_alone_keeps_a_flapping_change_unsent,
        ),
        trial(
            "a_flapping_alert_reaches_slack_with_the_email_escaped",
            a_flapping_alert_reaches_slack_with_the_email_escaped,
        ),
        trial(
            "smtp_failures_are_logged_without_the_echoed_credentials",
            smtp_failures_are_logged_without_the_echoed_credentials,
        ),
        trial(
            "a_grant_ending_soon_is_reminded_of_once",
            a_grant_ending_soon_is_reminded_of_once,
        ),
        trial(
            "an_undeliverable_webhook_never_fails_a_run",
            an_undeliverable_webhook_never_fails_a_run,
        ),
    ];
    libtest_mimic::run(&args, trials).exit_code()
}
