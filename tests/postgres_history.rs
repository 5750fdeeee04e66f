//! Every command on a PostgreSQL history gives the answers it gives on a SQLite file: the
//! same scenario (plan, apply, a removal guard, approve, apply, trigger, export) runs
//! through the real binary against two identical simulated tenants, one with each history,
//! and every `history` view is compared, times aside.
//!
//! Needs PostgreSQL: `STUDIO_ROLE_SYNC_TEST_POSTGRES_URL` (`.ci/run` sets it). Without it the
//! test is reported *ignored*, never passed; with `CI=true` it fails instead. Its schema is
//! dropped at the end.

mod support;

use libtest_mimic::{Completion, Trial};
use serde_json::Value;
use sqlx::{Connection, PgConnection};
use support::{admins, people, Opts, PgSchema, Run, Tenant};

const PG_ENV: &str = "STUDIO_ROLE_SYNC_TEST_POSTGRES_URL";
/// The variable the PostgreSQL config names (`history.url_env`).
const URL_VAR: &str = "SRS_TEST_HISTORY_URL";

fn main() -> std::process::ExitCode {
    let args = libtest_mimic::Arguments::from_args();
    let trials = vec![Trial::ignorable_test(
        "every_command_answers_the_same_on_postgres_as_on_sqlite",
        || {
            let Some(url) = std::env::var(PG_ENV).ok().filter(|u| !u.trim().is_empty()) else {
                return support::unavailable(format!("set {PG_ENV} to run against PostgreSQL"));
            };
            tokio::runtime::Builder::new_multi_thread()
                .enable_all()
                .build()
                .expect("a runtime")
                .block_on(same_answers(url));
            Ok(Completion::Completed)
        },
    )];
    libtest_mimic::run(&args, trials).exit_code()
}

/// One tenant and how its commands reach its history.
struct Side {
    tenant: Tenant,
    /// `(URL_VAR, url)` for the PostgreSQL side; none for SQLite.
    env: Vec<(&'static str, String)>,
}

impl Side {
    async fn cli(&self, args: &[&str]) -> Run {
        let env: Vec<(&str, &str)> = self.env.iter().map(|(k, v)| (*k, v.as_str())).collect();
        self.tenant.cli_env(args, &env).await
    }

    fn configure(&self, opts: &Opts, schema: Option<&str>) {
        let mut text = self.tenant.config_text(opts);
        if let Some(schema) = schema {
            text = text.replace(
                "history: state/history.db\n",
                &format!("history:\n  url_env: {URL_VAR}\n  schema: {schema}\n"),
            );
        }
        std::fs::write(self.tenant.config_path(), text).unwrap();
    }
}

/// Every RFC 3339 time (and a duration in seconds) replaced: what differs between two runs
/// of the same scenario.
fn without_times(v: Value) -> Value {
    match v {
        Value::String(s) if chrono::DateTime::parse_from_rfc3339(&s).is_ok() => {
            Value::String("<time>".into())
        }
        Value::Array(a) => Value::Array(a.into_iter().map(without_times).collect()),
        Value::Object(o) => Value::Object(
            o.into_iter()
                .map(|(k, v)| match k.as_str() {
                    "seconds" | "duration_seconds" => (k, Value::Null),
                    _ => (k, without_times(v)),
                })
                .collect(),
        ),
        other => other,
    }
}

async fn json(side: &Side, args: &[&str]) -> Value {
    let run = side.cli(args).await;
    assert_eq!(run.code, 0, "{args:?}: {run:?}");
    without_times(serde_json::from_str(&run.stdout).unwrap_or_else(|e| {
        panic!("{args:?} prints JSON ({e}): {}", run.stdout);
    }))
}

async fn same_answers(url: String) {
    let schema = format!("srs_cmds_{}", std::process::id());
    let _drop = PgSchema {
        url: url.clone(),
        name: schema.clone(),
    };
    let users = || {
        let mut u = people(5);
        u[3].role_names = vec!["Admin".into()];
        u[4].role_names = vec!["Admin".into()];
        u
    };
    let sqlite = Side {
        tenant: Tenant::start(users()).await,
        env: vec![],
    };
    let postgres = Side {
        tenant: Tenant::start(users()).await,
        env: vec![(URL_VAR, url.clone())],
    };
    let roles = admins(&["u1@example.edu", "u2@example.edu", "u9@example.edu"]);
    let guarded = Opts {
        max_removals: 1,
        ..Opts::default()
    };
    for (side, schema) in [(&sqlite, None), (&postgres, Some(schema.as_str()))] {
        side.configure(&guarded, schema);
        side.tenant.write_roles(&roles);
        assert_eq!(side.cli(&["validate"]).await.code, 0);
        // u1, u2 to add; u4, u5 to remove: two removals trip the guard (max 1).
        let plan = side.cli(&["plan"]).await;
        assert_eq!(
            plan.code, 3,
            "the plan would trip the removal guard: {plan:?}"
        );
        let aborted = side.cli(&["apply"]).await;
        assert_eq!(aborted.code, 3, "the removal guard stops it: {aborted:?}");
        let approve = side.cli(&["approve", "2", "--by", "alice"]).await;
        assert_eq!(approve.code, 0, "{approve:?}");
        let applied = side.cli(&["apply"]).await;
        assert_eq!(
            applied.code, 0,
            "the approved plan goes through: {applied:?}"
        );
        let mut holders = side.tenant.holders("Admin");
        holders.sort();
        assert_eq!(holders, ["u1@example.edu", "u2@example.edu"]);
        // No daemon takes the request: the same refusal on both.
        let trigger = side.cli(&["trigger", "--by", "bob"]).await;
        assert_eq!(trigger.code, 1, "{trigger:?}");
    }

    for args in [
        &["history", "--format", "json"][..],
        &["history", "--run", "2", "--format", "json"],
        &["history", "--run", "3", "--format", "json"],
        &["history", "--approvals", "--format", "json"],
        &["history", "--email", "u9@example.edu", "--format", "json"],
        &["history", "--email", "u4@example.edu", "--format", "json"],
    ] {
        assert_eq!(
            json(&postgres, args).await,
            json(&sqlite, args).await,
            "{args:?}: PostgreSQL and SQLite differ"
        );
    }
    let exported = |run: Run| {
        assert_eq!(run.code, 0, "{run:?}");
        // The comments (the tenant's URL, the time) are the only lines that differ.
        run.stdout
            .lines()
            .filter(|l| !l.starts_with('#'))
            .collect::<Vec<_>>()
            .join("\n")
    };
    assert_eq!(
        exported(postgres.cli(&["export"]).await),
        exported(sqlite.cli(&["export"]).await)
    );

    // The PostgreSQL side kept its history in the schema, and every one-shot command handed
    // its lease back: nobody leads now.
    let mut c = PgConnection::connect(&url).await.unwrap();
    let runs: i64 = sqlx::query_scalar(&format!("SELECT COUNT(*) FROM {schema}.runs"))
        .fetch_one(&mut c)
        .await
        .unwrap();
    assert_eq!(
        runs, 3,
        "the plan, the aborted apply and the approved apply"
    );
    let live: i64 = sqlx::query_scalar(&format!(
        "SELECT COUNT(*) FROM {schema}.leader_lease WHERE expires_at > now()"
    ))
    .fetch_one(&mut c)
    .await
    .unwrap();
    assert_eq!(
        live, 0,
        "a one-shot command releases the lease when it ends"
    );
    assert!(
        !postgres.tenant.history_path().exists(),
        "no SQLite file beside a PostgreSQL history"
    );
}
