//! Several daemons on one PostgreSQL history, end to end: the real binary, real PostgreSQL,
//! the simulator over HTTP. Exactly one daemon talks to Studio; a standby takes over from a
//! leader killed (`kill -9`) or frozen (`SIGSTOP`) in the middle of an apply, and the frozen
//! one sends nothing once it wakes; PostgreSQL restarting is survived; two tenants share one
//! database in two schemas; a SQLite history is copied in.
//!
//! The two daemons of a tenant carry different Studio tokens, so the simulator's log tells
//! who sent each request. Needs `STUDIO_ROLE_SYNC_TEST_POSTGRES_URL` (`.ci/run` sets it):
//! without it each test is reported *ignored*, never passed; with `CI=true` it fails. The
//! test that restarts PostgreSQL also needs `STUDIO_ROLE_SYNC_TEST_RESTART_POSTGRES=1` (it
//! would disturb anyone else's tests on the server). The tests run one at a time; each drops
//! its own schema.

mod support;

use libtest_mimic::{Completion, Failed, Trial};
use sqlx::{Connection, Executor, PgConnection};
use std::future::Future;
use std::path::PathBuf;
use std::time::{Duration, Instant};
use studio_sim::{Faults, SimConfig, SimUser};
use support::daemon::{wait_for, Daemon};
use support::{numbered_admins, people, Opts, PgSchema, Run, Tenant, TOKEN};

const PG_ENV: &str = "STUDIO_ROLE_SYNC_TEST_POSTGRES_URL";
/// Set to `1` to let a test restart the local PostgreSQL server.
const RESTART_ENV: &str = "STUDIO_ROLE_SYNC_TEST_RESTART_POSTGRES";
/// The variable the configs name (`history.url_env`).
const URL_VAR: &str = "SRS_HA_HISTORY_URL";
/// The second daemon's Studio token.
const TOKEN_B: &str = "daemon-b-token-5ecret";
/// A short lease, so a test fails over in seconds.
const LEASE: Duration = Duration::from_secs(3);
/// What a standby may take, at most, to lead after the leader died: the lease, a renew
/// interval (lease/3), and slack for a loaded machine.
const TAKEOVER: Duration = Duration::from_secs(3 + 1 + 3);

fn main() -> std::process::ExitCode {
    let mut args = libtest_mimic::Arguments::from_args();
    // One at a time: one test restarts the PostgreSQL server the others use.
    args.test_threads = Some(1);
    let trials = vec![
        trial(
            "two_daemons_exactly_one_talks_to_studio",
            two_daemons_exactly_one_talks_to_studio,
        ),
        trial(
            "kill_9_of_the_leader_mid_apply",
            kill_9_of_the_leader_mid_apply,
        ),
        trial(
            "a_leader_frozen_past_its_lease_sends_nothing_after_it_wakes",
            a_leader_frozen_past_its_lease_sends_nothing_after_it_wakes,
        ),
        trial(
            "a_one_shot_apply_is_refused_while_a_daemon_leads",
            a_one_shot_apply_is_refused_while_a_daemon_leads,
        ),
        trial(
            "two_tenants_in_two_schemas_side_by_side",
            two_tenants_in_two_schemas_side_by_side,
        ),
        trial(
            "a_sqlite_history_with_real_runs_is_copied",
            a_sqlite_history_with_real_runs_is_copied,
        ),
        Trial::ignorable_test("postgresql_restarted_during_a_run", || {
            let Some(url) = url() else {
                return support::unavailable(format!("set {PG_ENV} to run against PostgreSQL"));
            };
            // It restarts the server every other PostgreSQL test uses: only when asked.
            if std::env::var(RESTART_ENV).as_deref() != Ok("1") {
                return support::unavailable(format!(
                    "set {RESTART_ENV}=1 to let this test restart the local PostgreSQL server \
                     (.ci/run does)"
                ));
            }
            if !can_restart_postgres() {
                return support::unavailable(
                    "restarting PostgreSQL needs root and a local cluster (pg_ctlcluster)",
                );
            }
            block_on(postgresql_restarted_during_a_run(url));
            Ok(Completion::Completed)
        }),
    ];
    libtest_mimic::run(&args, trials).exit_code()
}

fn url() -> Option<String> {
    std::env::var(PG_ENV).ok().filter(|u| !u.trim().is_empty())
}

fn block_on<F: Future<Output = ()>>(f: F) {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("a runtime")
        .block_on(f)
}

fn trial<F, Fut>(name: &'static str, test: F) -> Trial
where
    F: FnOnce(String) -> Fut + Send + 'static,
    Fut: Future<Output = ()>,
{
    Trial::ignorable_test(name, move || -> Result<Completion, Failed> {
        let Some(url) = url() else {
            return support::unavailable(format!("set {PG_ENV} to run against PostgreSQL"));
        };
        block_on(test(url));
        Ok(Completion::Completed)
    })
}

fn can_restart_postgres() -> bool {
    // SAFETY: geteuid has no preconditions.
    let root = unsafe { libc::geteuid() } == 0;
    root && std::path::Path::new("/usr/bin/pg_ctlcluster").exists()
        && std::path::Path::new("/etc/postgresql").is_dir()
}

/// This file's schemas: `support::PgSchema`, named by test, read with `count`.
type Schema = PgSchema;

impl Schema {
    fn new(url: &str, tag: &str) -> Schema {
        PgSchema {
            url: url.to_string(),
            name: format!("srs_ha_{tag}_{}", std::process::id()),
        }
    }

    async fn connect(&self) -> PgConnection {
        PgConnection::connect(&self.url)
            .await
            .expect("PostgreSQL answers")
    }

    async fn count(&self, sql: &str) -> i64 {
        let mut c = self.connect().await;
        c.execute(format!("SET search_path = {}", self.name).as_str())
            .await
            .unwrap();
        sqlx::query_scalar(sql).fetch_one(&mut c).await.unwrap()
    }
}

/// One tenant (one simulator) whose daemons share one PostgreSQL schema: daemon `a` uses
/// [`TOKEN`], daemon `b` [`TOKEN_B`].
struct Shared {
    tenant: Tenant,
    schema: Schema,
}

impl Shared {
    async fn start(url: &str, tag: &str, users: Vec<SimUser>, opts: &Opts) -> Shared {
        let tenant = Tenant::start_with(
            SimConfig {
                token: Some(TOKEN.into()),
                more_tokens: vec![TOKEN_B.into()],
                ..SimConfig::default()
            },
            users,
        )
        .await;
        std::fs::write(tenant.path("token_b"), TOKEN_B).unwrap();
        let shared = Shared {
            tenant,
            schema: Schema::new(url, tag),
        };
        shared.configure(opts);
        shared
    }

    fn config(&self, which: &str) -> PathBuf {
        self.tenant.path(&format!("config-{which}.yaml"))
    }

    /// Writes both daemons' configs, and the default one, which one-shot commands use (with
    /// daemon `b`'s token, so that what a command sends is told apart from daemon `a`).
    fn configure(&self, opts: &Opts) {
        let pg = format!(
            "history:\n  url_env: {URL_VAR}\n  schema: {}\nha:\n  lease: {}s\n",
            self.schema.name,
            LEASE.as_secs()
        );
        let text = self
            .tenant
            .config_text(opts)
            .replace("history: state/history.db\n", &pg);
        let text_b = text.replace("  token_file: token\n", "  token_file: token_b\n");
        std::fs::write(self.config("a"), &text).unwrap();
        std::fs::write(self.config("b"), &text_b).unwrap();
        std::fs::write(self.tenant.config_path(), &text_b).unwrap();
    }

    fn daemon(&self, which: &str) -> Daemon {
        Daemon::start_config(&self.config(which), &[(URL_VAR, self.schema.url.clone())])
    }

    async fn cli(&self, args: &[&str]) -> Run {
        self.tenant
            .cli_env(args, &[(URL_VAR, self.schema.url.as_str())])
            .await
    }

    /// The `PUT /users/roles` the simulator answered, by the token that sent them.
    fn puts_by(&self, token: &str) -> usize {
        self.tenant
            .sim
            .requests()
            .iter()
            .filter(|r| r.method == "PUT" && r.token.as_deref() == Some(token))
            .count()
    }
}

/// `studio_role_sync_leader` on `daemon`'s `/metrics` (`None` while it does not answer).
async fn leader_gauge(base: &str) -> Option<u8> {
    let text = reqwest::get(format!("{base}/metrics"))
        .await
        .ok()?
        .text()
        .await
        .ok()?;
    text.lines()
        .find(|l| l.starts_with("studio_role_sync_leader "))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse::<f64>().ok())
        .map(|v| v as u8)
}

/// Waits until `daemon` (at `base`) reports it leads.
async fn wait_leads(base: &str, within: Duration) {
    wait_for(&format!("{base} to lead"), within, || async {
        (leader_gauge(base).await == Some(1)).then_some(())
    })
    .await;
}

/// An apply of many single-change batches, each slowed down: there is a middle to kill in.
fn slow_apply() -> Opts {
    Opts {
        batch_size: 1,
        concurrency: 1,
        extra: support::daemon::YEARLY.into(),
        ..Opts::default()
    }
}

fn slow(t: &Tenant) {
    t.sim.set_faults(Faults {
        latency: Duration::from_millis(150),
        ..Faults::default()
    });
}

async fn two_daemons_exactly_one_talks_to_studio(url: String) {
    let opts = Opts {
        extra: "schedule: \"*/2 * * * * *\"\n".into(),
        ..Opts::default()
    };
    let s = Shared::start(&url, "one", people(6), &opts).await;
    s.tenant.write_roles(&numbered_admins(1, 3));
    let a = s.daemon("a");
    let b = s.daemon("b");
    let (base_a, base_b) = (
        a.base_url(Duration::from_secs(20)).await,
        b.base_url(Duration::from_secs(20)).await,
    );
    let leader = wait_for("a leader", Duration::from_secs(20), || async {
        match (leader_gauge(&base_a).await, leader_gauge(&base_b).await) {
            (Some(1), Some(0)) => Some((TOKEN, base_a.clone(), base_b.clone())),
            (Some(0), Some(1)) => Some((TOKEN_B, base_b.clone(), base_a.clone())),
            _ => None,
        }
    })
    .await;
    let (token, leader_base, standby_base) = leader;
    // A minute of scheduled runs, with an edit in the middle.
    tokio::time::sleep(Duration::from_secs(30)).await;
    s.tenant.write_roles(&numbered_admins(1, 5));
    tokio::time::sleep(Duration::from_secs(30)).await;
    let requests = s.tenant.sim.requests();
    let mut senders: Vec<&str> = requests.iter().filter_map(|r| r.token.as_deref()).collect();
    senders.sort_unstable();
    senders.dedup();
    assert_eq!(
        senders,
        [token],
        "every request of the minute came from the leader\n--- a\n{}\n--- b\n{}",
        a.log(),
        b.log()
    );
    assert_eq!(
        s.tenant.holders("Admin"),
        (1..=5)
            .map(|i| format!("u{i}@example.edu"))
            .collect::<Vec<_>>()
    );
    assert_eq!(leader_gauge(&leader_base).await, Some(1));
    assert_eq!(leader_gauge(&standby_base).await, Some(0));
    let runs = s.schema.count("SELECT COUNT(*) FROM runs").await;
    assert!(runs >= 10, "scheduled runs went on: {runs}");
}

/// Starts `a` and waits until it leads, starts `b`, and waits until `a` has sent `puts`
/// changes of its (slow) apply; returns both with their HTTP base URLs.
async fn leader_mid_apply(s: &Shared, puts: usize) -> (Daemon, String, Daemon, String) {
    let a = s.daemon("a");
    let base_a = a.base_url(Duration::from_secs(20)).await;
    wait_leads(&base_a, Duration::from_secs(20)).await;
    let b = s.daemon("b");
    let base_b = b.base_url(Duration::from_secs(20)).await;
    wait_for(
        "the leader in the middle of its apply",
        Duration::from_secs(30),
        || async { (s.puts_by(TOKEN) >= puts).then_some(()) },
    )
    .await;
    assert_eq!(leader_gauge(&base_b).await, Some(0), "b stands by");
    (a, base_a, b, base_b)
}

async fn kill_9_of_the_leader_mid_apply(url: String) {
    let s = Shared::start(&url, "kill", people(30), &slow_apply()).await;
    s.tenant.write_roles(&numbered_admins(1, 30));
    slow(&s.tenant);
    let (a, _, b, base_b) = leader_mid_apply(&s, 5).await;
    a.signal("-KILL");
    let killed = Instant::now();
    wait_leads(&base_b, TAKEOVER).await;
    let took = killed.elapsed();
    assert!(took <= TAKEOVER, "took over in {took:?}");
    wait_for("Studio converged", Duration::from_secs(60), || async {
        (s.tenant.holders("Admin").len() == 30).then_some(())
    })
    .await;
    assert!(s.puts_by(TOKEN_B) > 0, "the new leader finished the work");
    let twice = s
        .schema
        .count(
            "SELECT COUNT(*) FROM (SELECT user_id, role, action FROM run_actions \
             WHERE outcome = 'applied' GROUP BY user_id, role, action HAVING COUNT(*) > 1) d",
        )
        .await;
    assert_eq!(twice, 0, "no change recorded applied twice\n{}", b.log());
    let interrupted = s
        .schema
        .count(
            "SELECT COUNT(*) FROM runs WHERE status = 'interrupted' \
             AND error LIKE 'leadership lost%'",
        )
        .await;
    assert_eq!(interrupted, 1, "the dead leader's run\n{}", b.log());
    let running = s
        .schema
        .count("SELECT COUNT(*) FROM runs WHERE status = 'running'")
        .await;
    assert_eq!(running, 0);
}

async fn a_leader_frozen_past_its_lease_sends_nothing_after_it_wakes(url: String) {
    let s = Shared::start(&url, "stop", people(30), &slow_apply()).await;
    s.tenant.write_roles(&numbered_admins(1, 30));
    slow(&s.tenant);
    let (a, _, b, base_b) = leader_mid_apply(&s, 5).await;
    a.signal("-STOP");
    let frozen = Instant::now();
    wait_leads(&base_b, TAKEOVER).await;
    // Frozen for three leases, then woken in the middle of the new leader's apply.
    tokio::time::sleep((LEASE * 3).saturating_sub(frozen.elapsed())).await;
    let before_wake = s.puts_by(TOKEN);
    a.signal("-CONT");
    wait_for("Studio converged", Duration::from_secs(60), || async {
        (s.tenant.holders("Admin").len() == 30).then_some(())
    })
    .await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(
        s.puts_by(TOKEN),
        before_wake,
        "the old leader sent a change after it woke\n--- a\n{}",
        a.log()
    );
    wait_for(
        "the old leader's run ended",
        Duration::from_secs(20),
        || async {
            let n = s
                .schema
                .count(
                    "SELECT COUNT(*) FROM runs WHERE status = 'interrupted' \
                 AND error LIKE 'leadership lost%'",
                )
                .await;
            (n == 1).then_some(())
        },
    )
    .await;
    assert!(
        a.log().contains("no longer leads"),
        "the woken daemon says it lost the lease\n{}",
        a.log()
    );
    drop(b);
}

async fn a_one_shot_apply_is_refused_while_a_daemon_leads(url: String) {
    let opts = Opts {
        extra: support::daemon::YEARLY.into(),
        ..Opts::default()
    };
    let s = Shared::start(&url, "once", people(3), &opts).await;
    s.tenant.write_roles(&numbered_admins(1, 1));
    let a = s.daemon("a");
    let base = a.base_url(Duration::from_secs(20)).await;
    wait_leads(&base, Duration::from_secs(20)).await;
    wait_for("the takeover run", Duration::from_secs(20), || async {
        (s.tenant.holders("Admin").len() == 1).then_some(())
    })
    .await;
    // Something to do: the daemon (which watches the file) may well do it; the command not.
    s.tenant.write_roles(&numbered_admins(1, 3));
    let run = s.cli(&["apply"]).await;
    assert_eq!(run.code, 1, "{run:?}");
    assert!(
        run.stderr.contains("leads since") && run.stderr.contains("studio-role-sync trigger"),
        "the refusal names the leader: {run:?}"
    );
    let by_command = s
        .tenant
        .sim
        .requests()
        .iter()
        .filter(|r| r.token.as_deref() == Some(TOKEN_B))
        .count();
    assert_eq!(by_command, 0, "the refused apply sent no request to Studio");
}

async fn two_tenants_in_two_schemas_side_by_side(url: String) {
    let opts = Opts {
        extra: "schedule: \"*/2 * * * * *\"\n".into(),
        ..Opts::default()
    };
    let one = Shared::start(&url, "tenant1", people(4), &opts).await;
    let two = Shared::start(&url, "tenant2", people(4), &opts).await;
    one.tenant.write_roles(&numbered_admins(1, 2));
    two.tenant.write_roles(&numbered_admins(3, 4));
    let a = one.daemon("a");
    let b = two.daemon("a");
    let (base_a, base_b) = (
        a.base_url(Duration::from_secs(20)).await,
        b.base_url(Duration::from_secs(20)).await,
    );
    wait_leads(&base_a, Duration::from_secs(20)).await;
    wait_leads(&base_b, Duration::from_secs(20)).await;
    wait_for("both converged", Duration::from_secs(30), || async {
        (one.tenant.holders("Admin") == ["u1@example.edu", "u2@example.edu"]
            && two.tenant.holders("Admin") == ["u3@example.edu", "u4@example.edu"])
        .then_some(())
    })
    .await;
    // Each schema holds its own tenant's changes only.
    async fn own(s: &Shared, users: &str) -> i64 {
        let sql = format!(
            "SELECT COUNT(*) FROM run_actions WHERE outcome = 'applied' AND email IN ({users})"
        );
        s.schema.count(&sql).await
    }
    assert_eq!(own(&one, "'u1@example.edu', 'u2@example.edu'").await, 2);
    assert_eq!(own(&one, "'u3@example.edu', 'u4@example.edu'").await, 0);
    assert_eq!(own(&two, "'u3@example.edu', 'u4@example.edu'").await, 2);
    assert_eq!(own(&two, "'u1@example.edu', 'u2@example.edu'").await, 0);
    assert_eq!(leader_gauge(&base_a).await, Some(1));
    assert_eq!(leader_gauge(&base_b).await, Some(1));
}

async fn a_sqlite_history_with_real_runs_is_copied(url: String) {
    let t = Tenant::start(people(4)).await;
    t.write_roles(&numbered_admins(1, 2));
    assert_eq!(t.cli(&["apply"]).await.code, 0);
    t.write_roles(&numbered_admins(2, 3));
    assert_eq!(t.cli(&["apply"]).await.code, 0);
    let before = t.cli(&["history", "--format", "json"]).await;
    assert_eq!(before.code, 0, "{before:?}");
    let schema = Schema::new(&url, "copy");
    let sqlite_config = std::fs::read_to_string(t.config_path()).unwrap();
    let pg_config = sqlite_config.replace(
        "history: state/history.db\n",
        &format!(
            "history:\n  url_env: {URL_VAR}\n  schema: {}\n",
            schema.name
        ),
    );
    std::fs::write(t.config_path(), pg_config).unwrap();
    let env = [(URL_VAR, url.as_str())];
    let from = t.history_path();
    let from = from.to_str().unwrap();
    let copy = t.cli_env(&["copy-history", "--from", from], &env).await;
    assert_eq!(copy.code, 0, "{copy:?}");
    assert!(copy.stdout.contains("runs"), "{copy:?}");
    let after = t.cli_env(&["history", "--format", "json"], &env).await;
    assert_eq!(after.stdout, before.stdout, "the same runs, times and all");
    // A second copy into the same schema is refused: it is not empty.
    let again = t.cli_env(&["copy-history", "--from", from], &env).await;
    assert_eq!(again.code, 1, "{again:?}");
    assert!(again.stderr.contains("not empty"), "{again:?}");
    // And the next run goes on from the copied ids.
    t.write_roles(&numbered_admins(1, 4));
    assert_eq!(t.cli_env(&["apply"], &env).await.code, 0);
    assert_eq!(schema.count("SELECT MAX(id) FROM runs").await, 3);
    assert_eq!(t.holders("Admin").len(), 4);
}

async fn postgresql_restarted_during_a_run(url: String) {
    let opts = Opts {
        batch_size: 1,
        concurrency: 1,
        extra: "schedule: \"*/2 * * * * *\"\n".into(),
        ..Opts::default()
    };
    let s = Shared::start(&url, "restart", people(20), &opts).await;
    s.tenant.write_roles(&numbered_admins(1, 20));
    slow(&s.tenant);
    let mut a = s.daemon("a");
    let base = a.base_url(Duration::from_secs(20)).await;
    wait_leads(&base, Duration::from_secs(20)).await;
    wait_for("a run in progress", Duration::from_secs(30), || async {
        (s.puts_by(TOKEN) >= 3).then_some(())
    })
    .await;
    let cluster = std::fs::read_dir("/etc/postgresql")
        .unwrap()
        .filter_map(|e| e.ok())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .next()
        .expect("a PostgreSQL cluster");
    let restart = std::process::Command::new("pg_ctlcluster")
        .args(["--skip-systemctl-redirect", &cluster, "main", "restart"])
        .status()
        .expect("pg_ctlcluster runs");
    assert!(restart.success());
    wait_for("PostgreSQL back", Duration::from_secs(60), || {
        let url = url.clone();
        async move { PgConnection::connect(&url).await.ok().map(|_| ()) }
    })
    .await;
    // The daemon goes on by itself: it leads again and Studio converges.
    wait_for("Studio converged", Duration::from_secs(90), || async {
        (s.tenant.holders("Admin").len() == 20).then_some(())
    })
    .await;
    s.tenant.sim.set_faults(Faults::default());
    s.tenant.write_roles(&numbered_admins(1, 19));
    wait_for(
        "a run after the restart succeeded",
        Duration::from_secs(60),
        || async { (s.tenant.holders("Admin").len() == 19).then_some(()) },
    )
    .await;
    assert!(
        s.schema
            .count("SELECT COUNT(*) FROM runs WHERE status = 'succeeded'")
            .await
            >= 1,
        "{}",
        a.log()
    );
    assert!(
        a.child.try_wait().unwrap().is_none(),
        "the daemon is still running"
    );
}
