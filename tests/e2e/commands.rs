//! The core run end to end: the real binary against the simulator over HTTP, with a real
//! SQLite history. Each test reads like what an admin would do and see.

use crate::support::{assert_secret_absent, count, run_row, user, Opts, Tenant, TOKEN};

/// A small institution with each awkward case real tenants have.
fn institution() -> Vec<studio_sim::SimUser> {
    vec![
        user(1, Some("ada@school.edu"), &["Admin"]),
        user(2, Some("Grace@School.edu"), &["Admin", "Teacher"]),
        user(3, Some("alan@school.edu"), &["Admin", "Teacher"]),
        user(4, Some("edsger@school.edu"), &["Teacher"]),
        user(5, Some("edsger@school.edu.old"), &[]),
        user(6, None, &["Admin"]),
        user(7, Some("sam@school.edu"), &[]),
        user(8, Some("SAM@school.edu"), &[]),
        user(9, Some("breakglass@school.edu"), &["Admin"]),
        user(10, Some("barbara@school.edu"), &["CaptionEditor"]),
    ]
}

const ROLES: &str = "users:\n  ada@school.edu: [Admin]\n  ' grace@school.edu ': [Admin, CaptionEditor]\n  EDSGER@school.edu: [Admin]\n  barbara@school.edu: []\n  newhire@school.edu: [Admin]\n  sam@school.edu: [Admin]\n";

fn safe_opts() -> Opts {
    Opts {
        protected: "[breakglass@school.edu]",
        ..Opts::default()
    }
}

#[tokio::test]
async fn apply_converges_and_a_second_apply_sends_nothing() {
    let t = Tenant::start(institution()).await;
    t.write_config(&safe_opts());
    t.write_roles(ROLES);

    let run = t.cli(&["apply"]).await;
    assert_eq!(run.code, 0, "{run:?}");
    assert!(
        run.stdout.contains("2 added") || run.stdout.contains("3 added"),
        "{run:?}"
    );
    // Desired holders hold their roles; alan (unlisted) lost Admin but kept Teacher.
    assert_eq!(
        t.holders("Admin"),
        vec![
            "Grace@School.edu",
            "ada@school.edu",
            "breakglass@school.edu",
            "edsger@school.edu",
            "user 6"
        ]
    );
    assert_eq!(t.holders("CaptionEditor"), vec!["Grace@School.edu"]);
    assert_eq!(t.sim.user(3).unwrap().role_names, vec!["Teacher"]);
    // The partial match edsger@school.edu.old was not touched.
    assert!(t.sim.user(5).unwrap().role_names.is_empty());
    // The ambiguous sam accounts were skipped.
    assert!(
        t.sim.user(7).unwrap().role_names.is_empty()
            && t.sim.user(8).unwrap().role_names.is_empty()
    );

    let puts = t.sim.stats().put_roles;
    assert!(puts >= 1);
    let again = t.cli(&["apply"]).await;
    assert_eq!(again.code, 0, "{again:?}");
    assert_eq!(
        t.sim.stats().put_roles,
        puts,
        "a converged tenant gets no PUT"
    );
    let plan = t.cli(&["plan"]).await;
    assert_eq!(plan.code, 0, "no changes: exit 0 {plan:?}");
    assert!(plan.stdout.contains("No changes"), "{plan:?}");

    let db = t.history().await;
    // adds: grace CaptionEditor, edsger Admin; removes: alan Admin, barbara CaptionEditor.
    assert_eq!(
        run_row(&db, 1).await,
        ("succeeded".into(), 2, 2, 0, 2, run_row(&db, 1).await.5)
    );
    assert_eq!(count(&db, "SELECT COUNT(*) FROM run_actions WHERE run_id = 1 AND outcome = 'applied' AND http_status = 200").await, 4);
    assert_eq!(
        count(&db, "SELECT COUNT(*) FROM runs WHERE status = 'succeeded'").await,
        3
    );
    assert_eq!(
        count(&db, "SELECT COUNT(*) FROM runs WHERE dry_run = 1").await,
        1
    );
    assert_eq!(
        count(&db, "SELECT COUNT(*) FROM run_actions WHERE run_id > 1").await,
        0
    );
    assert_eq!(
        count(&db, "SELECT COUNT(*) FROM runs WHERE finished_at IS NULL").await,
        0
    );
    let pending: Vec<(String, String)> =
        sqlx::query_as("SELECT email, reason FROM run_pending WHERE run_id = 1 ORDER BY email")
            .fetch_all(&db)
            .await
            .unwrap();
    assert_eq!(
        pending,
        vec![
            ("breakglass@school.edu".into(), "protected".into()),
            ("newhire@school.edu".into(), "not_in_studio".into()),
            ("sam@school.edu".into(), "ambiguous".into()),
            ("user 6".into(), "no_email".into()),
        ]
    );
    // api_requests is the real count the simulator received for that run.
    assert!(run_row(&db, 1).await.5 >= 5);
}

#[tokio::test]
async fn plan_shows_the_diff_sends_no_put_and_is_recorded_as_a_dry_run() {
    let t = Tenant::start(institution()).await;
    t.write_config(&safe_opts());
    t.write_roles(ROLES);
    let plan = t.cli(&["plan"]).await;
    assert_eq!(plan.code, 2, "changes: exit 2 {plan:?}");
    assert_eq!(t.sim.stats().put_roles, 0);
    for line in [
        "role Admin",
        "+ edsger@school.edu",
        "- alan@school.edu",
        "role CaptionEditor",
        "+ grace@school.edu",
        "- barbara@school.edu",
    ] {
        assert!(plan.stdout.contains(line), "missing {line:?} in {plan:?}");
    }
    assert!(
        plan.stdout.contains("newhire@school.edu") && plan.stdout.contains("pending"),
        "{plan:?}"
    );
    assert!(
        plan.stdout
            .contains("Plan: 2 to add, 2 to remove, 2 pending."),
        "{plan:?}"
    );
    let db = t.history().await;
    assert_eq!(count(&db, "SELECT COUNT(*) FROM runs WHERE dry_run = 1 AND status = 'succeeded' AND adds_planned = 2 AND removes_planned = 2").await, 1);
    assert_eq!(
        count(
            &db,
            "SELECT COUNT(*) FROM run_actions WHERE outcome = 'planned'"
        )
        .await,
        4
    );
}

#[tokio::test]
async fn safety_guards_abort_before_anything_is_sent() {
    let users: Vec<_> = (1..=10)
        .map(|i| user(i, Some(&format!("admin{i}@school.edu")), &["Admin"]))
        .collect();
    let t = Tenant::start(users).await;
    let keep_three = "users:\n  admin1@school.edu: [Admin]\n  admin2@school.edu: [Admin]\n  admin3@school.edu: [Admin]\n";

    // max_removals: 7 planned > 5.
    t.write_config(&Opts {
        max_removals: 5,
        max_removal_ratio: 1.0,
        ..Opts::default()
    });
    t.write_roles(keep_three);
    let run = t.cli(&["apply"]).await;
    assert_eq!(run.code, 3, "{run:?}");
    assert!(run.stdout.contains("max_removals"), "{run:?}");
    assert_eq!(t.sim.stats().put_roles, 0);
    assert_eq!(t.holders("Admin").len(), 10);

    // max_removal_ratio: 7 of 10 > 50%.
    t.write_config(&Opts {
        max_removals: 100,
        max_removal_ratio: 0.5,
        ..Opts::default()
    });
    let run = t.cli(&["apply"]).await;
    assert_eq!(run.code, 3, "{run:?}");
    assert!(run.stdout.contains("max_removal_ratio"), "{run:?}");

    // A plan reports the guard with the same exit code.
    let plan = t.cli(&["plan"]).await;
    assert_eq!(plan.code, 3, "{plan:?}");

    // An empty roles file never revokes everyone, whatever the limits.
    t.write_config(&Opts {
        max_removals: 1000,
        max_removal_ratio: 1.0,
        ..Opts::default()
    });
    t.write_roles("# truncated\n");
    let run = t.cli(&["apply"]).await;
    assert_eq!(run.code, 3, "{run:?}");
    assert!(run.stdout.contains("grants no role"), "{run:?}");
    assert_eq!(t.sim.stats().put_roles, 0, "no PUT for any tripped guard");
    assert_eq!(t.holders("Admin").len(), 10);

    let db = t.history().await;
    assert_eq!(
        count(
            &db,
            "SELECT COUNT(*) FROM runs WHERE status = 'aborted' AND dry_run = 0"
        )
        .await,
        3
    );
    assert_eq!(count(&db, "SELECT COUNT(*) FROM run_actions a JOIN runs r ON r.id = a.run_id WHERE r.dry_run = 0 AND a.outcome = 'skipped' AND a.detail LIKE 'not sent: safety guard%'").await, 7 + 7 + 10);
    let error: String = sqlx::query_scalar("SELECT error FROM runs WHERE id = 1")
        .fetch_one(&db)
        .await
        .unwrap();
    assert!(error.contains("7 removals planned"), "{error}");

    // Add-only mode never removes, so an empty file is fine there.
    t.write_config(&Opts {
        remove_unlisted: false,
        max_removals: 0,
        ..Opts::default()
    });
    t.write_roles("users:\n  admin1@school.edu: [Admin, CaptionEditor]\n");
    let run = t.cli(&["apply"]).await;
    assert_eq!(run.code, 0, "{run:?}");
    assert_eq!(t.holders("Admin").len(), 10);
    assert_eq!(t.holders("CaptionEditor"), vec!["admin1@school.edu"]);
}

#[tokio::test]
async fn bad_input_is_refused_with_file_and_line_and_nothing_is_sent() {
    let t = Tenant::start(institution()).await;
    let cases: &[(&str, &str, &str)] = &[
        (
            "users:\n  ada@school.edu: [Admin]\n  bob@school.edu: [Teacher]\n",
            "roles.yaml:3:",
            "\"Teacher\" is not in roles.managed",
        ),
        (
            "users:\n  ada@school.edu: [Admin]\n  not-an-email: [Admin]\n",
            "roles.yaml:3:",
            "is not an email address",
        ),
        (
            "users:\n  ada@school.edu: [Admin]\n\n  ADA@School.edu: [CaptionEditor]\n",
            "roles.yaml:4:",
            "listed twice",
        ),
        (
            "users:\n  ada@school.edu: Admin\n",
            "roles.yaml:2:",
            "expected a sequence",
        ),
        (
            "users:\n  ada@school.edu: [Admin, [x]]\n",
            "roles.yaml:2:",
            "expected a role, or {role: ..., until: YYYY-MM-DD, reason: ...}",
        ),
        (
            "user:\n  ada@school.edu: [Admin]\n",
            "roles.yaml:1:",
            "unknown field `user`",
        ),
    ];
    for (roles, location, message) in cases {
        t.write_roles(roles);
        for command in ["validate", "plan", "apply"] {
            let run = t.cli(&[command]).await;
            assert_eq!(run.code, 1, "{command} {roles:?} {run:?}");
            assert!(
                run.stderr.contains(location) && run.stderr.contains(message),
                "{command} {roles:?}: {run:?}"
            );
            assert!(run.stderr.contains("nothing was sent to Studio"), "{run:?}");
        }
    }
    assert_eq!(t.sim.stats().total, 0, "no request reached Studio");

    t.write_roles(ROLES);
    let config_cases: &[(&str, &str, &str)] = &[
        (
            "  batch_size: 50\n",
            "  batch_sise: 50\n",
            "unknown field `batch_sise`",
        ),
        (
            "  managed: [Admin, CaptionEditor]\n",
            "  managed: []\n",
            "roles.managed: must list at least one role",
        ),
        (
            "http://127.0.0.1",
            "http://studio.example.edu",
            "plain http is only allowed for loopback hosts",
        ),
        (
            "  token_file: token\n",
            "  token_env: SRS_TEST_UNSET_TOKEN\n",
            "studio.token_env: the environment variable named here is not set",
        ),
    ];
    let good = t.config_text(&Opts::default());
    for (from, to, message) in config_cases {
        assert!(good.contains(from), "fixture has {from:?}");
        std::fs::write(t.config_path(), good.replacen(from, to, 1)).unwrap();
        let line = good
            .lines()
            .position(|l| from.contains(l.trim()) || l.contains(from.trim()))
            .unwrap()
            + 1;
        let run = t.cli(&["apply"]).await;
        assert_eq!(run.code, 1, "{run:?}");
        let location = format!("studio-role-sync.yaml:{line}:");
        assert!(
            run.stderr.contains(&location) && run.stderr.contains(message),
            "want {location} {message}: {run:?}"
        );
    }
    assert_eq!(t.sim.stats().total, 0, "no request reached Studio");
}

#[tokio::test]
async fn a_wrong_token_is_a_clear_error_and_never_shown() {
    let t = Tenant::start(institution()).await;
    t.write_roles(ROLES);
    std::fs::write(t.path("token"), "wrong-token-value-42").unwrap();
    let run = t.cli_env(&["apply"], &[("RUST_LOG", "debug")]).await;
    assert_eq!(run.code, 1, "{run:?}");
    assert!(run.stderr.contains("401"), "{run:?}");
    assert_eq!(t.sim.stats().put_roles, 0);
    assert_secret_absent(
        &format!("{}{}", run.stdout, run.stderr),
        "wrong-token-value-42",
        "a refused token",
    );
    let db = t.history().await;
    assert_eq!(run_row(&db, 1).await.0, "failed");
}

#[tokio::test]
async fn secrets_never_reach_output_or_history() {
    let t = Tenant::start(institution()).await;
    t.write_config(&safe_opts());
    t.write_roles(ROLES);
    for command in ["validate", "plan", "apply", "history", "export"] {
        let run = t.cli_env(&[command], &[("RUST_LOG", "trace")]).await;
        assert_secret_absent(&format!("{}{}", run.stdout, run.stderr), TOKEN, command);
    }
    let bytes = std::fs::read(t.history_path()).unwrap();
    let wal = std::fs::read(t.path("state/history.db-wal")).unwrap_or_default();
    for b in [bytes, wal] {
        assert!(
            !b.windows(TOKEN.len()).any(|w| w == TOKEN.as_bytes()),
            "token in the history file"
        );
    }
    use std::os::unix::fs::PermissionsExt;
    assert_eq!(
        std::fs::metadata(t.history_path())
            .unwrap()
            .permissions()
            .mode()
            & 0o777,
        0o600
    );
}

#[tokio::test]
async fn history_reads_as_table_json_and_csv() {
    let t = Tenant::start(institution()).await;
    t.write_config(&safe_opts());
    t.write_roles(ROLES);
    assert_eq!(t.cli(&["apply"]).await.code, 0);
    assert_eq!(t.cli(&["plan"]).await.code, 0);

    let table = t.cli(&["history"]).await;
    assert_eq!(table.code, 0, "{table:?}");
    assert!(table.stdout.starts_with("RUN"), "{table:?}");
    assert!(
        table.stdout.contains("manual   apply  succeeded  2/2"),
        "{table:?}"
    );

    let json = t
        .cli(&["history", "--format", "json", "--limit", "1"])
        .await;
    let runs: serde_json::Value = serde_json::from_str(&json.stdout).expect("valid JSON");
    assert_eq!(runs.as_array().unwrap().len(), 1);
    assert_eq!(runs[0]["id"], 2);
    assert_eq!(runs[0]["dry_run"], true);

    let csv = t.cli(&["history", "--format", "csv"]).await;
    let mut lines = csv.stdout.lines();
    assert!(lines
        .next()
        .unwrap()
        .starts_with("id,started_at,finished_at,trigger,dry_run,status"));
    assert_eq!(lines.count(), 2);

    let detail = t.cli(&["history", "--run", "1"]).await;
    for needle in [
        "edsger@school.edu",
        "applied",
        "not_in_studio",
        "newhire@school.edu",
        "ambiguous",
    ] {
        assert!(detail.stdout.contains(needle), "{needle}: {detail:?}");
    }
    let detail = t.cli(&["history", "--run", "1", "--format", "json"]).await;
    let v: serde_json::Value = serde_json::from_str(&detail.stdout).unwrap();
    assert_eq!(v["actions"].as_array().unwrap().len(), 4);
    assert_eq!(v["pending"].as_array().unwrap().len(), 4);

    let missing = t.cli(&["history", "--run", "99"]).await;
    assert_eq!(missing.code, 1);
    assert!(missing.stderr.contains("no run 99"), "{missing:?}");
}

/// `history --email`: a person who was not in Studio for two runs, then was found and given
/// the role, reads as one left-alone entry for both runs and the add, newest first.
#[tokio::test]
async fn history_email_shows_a_persons_trail() {
    let t = Tenant::start(institution()).await;
    t.write_config(&safe_opts());
    t.write_roles(ROLES);
    assert_eq!(t.cli(&["apply"]).await.code, 0);
    assert_eq!(t.cli(&["plan"]).await.code, 0);
    t.sim
        .add_user(user(20, Some("newhire@school.edu"), &["Teacher"]));
    assert_eq!(t.cli(&["apply"]).await.code, 0);

    let table = t.cli(&["history", "--email", " NewHire@School.edu "]).await;
    assert_eq!(table.code, 0, "{table:?}");
    let lines: Vec<&str> = table.stdout.lines().collect();
    assert!(lines[0].starts_with("RUN"), "{table:?}");
    assert!(lines[1].starts_with("3  "), "{table:?}");
    assert!(
        lines[1].contains("add Admin (from roles.yaml)") && lines[1].contains("applied  200"),
        "{table:?}"
    );
    assert!(lines[2].starts_with("1-2  "), "{table:?}");
    assert!(
        lines[2].contains("left alone: no Studio account yet") && lines[2].contains(" 2 runs "),
        "{table:?}"
    );

    let json = t
        .cli(&[
            "history",
            "--email",
            "newhire@school.edu",
            "--format",
            "json",
        ])
        .await;
    let v: serde_json::Value = serde_json::from_str(&json.stdout).expect("valid JSON");
    assert_eq!(v["email"], "newhire@school.edu");
    let entries = v["entries"].as_array().unwrap();
    assert_eq!(entries.len(), 2);
    assert_eq!(entries[0]["kind"], "action");
    assert_eq!(entries[0]["outcome"], "applied");
    assert_eq!(entries[1]["kind"], "left_alone");
    assert_eq!(entries[1]["reason"], "not_in_studio");
    assert_eq!(
        (
            entries[1]["first_run_id"].as_i64(),
            entries[1]["run_id"].as_i64()
        ),
        (Some(1), Some(2))
    );
    assert_eq!(entries[1]["dry_run"], true, "run 2 was a plan");

    let csv = t
        .cli(&[
            "history",
            "--email",
            "newhire@school.edu",
            "--format",
            "csv",
        ])
        .await;
    assert_eq!(csv.stdout.lines().count(), 3, "{csv:?}");

    let later = t
        .cli(&[
            "history",
            "--email",
            "newhire@school.edu",
            "--since",
            "2999-01-01",
        ])
        .await;
    assert_eq!(later.code, 0, "{later:?}");
    assert!(later
        .stdout
        .contains("No action and no left-alone run recorded for newhire@school.edu"));
    let bad = t
        .cli(&[
            "history",
            "--email",
            "newhire@school.edu",
            "--since",
            "yesterday-ish",
        ])
        .await;
    assert_eq!(bad.code, 1);
    assert!(
        bad.stderr
            .contains("--since: \"yesterday-ish\" is not a time"),
        "{bad:?}"
    );
    // An empty or malformed address is refused like anywhere else, not read as "no trail".
    for (arg, why) in [
        ("", "\"\" is empty"),
        ("  ", "is empty"),
        ("not-an-email", "\"not-an-email\""),
        ("mailto:newhire@school.edu", "scheme"),
    ] {
        let bad = t.cli(&["history", "--email", arg]).await;
        assert_eq!(bad.code, 1, "{arg:?}: {bad:?}");
        assert!(bad.stderr.contains("error: --email: "), "{arg:?}: {bad:?}");
        assert!(bad.stderr.contains(why), "{arg:?}: {bad:?}");
        assert!(bad.stdout.is_empty(), "{arg:?}: {bad:?}");
    }
}

/// An auditor who may only read the history runs every read command: `history`, `--run`,
/// `--email`, `--approvals`, in every format. As root (which ignores file modes) the commands
/// run as `nobody`; otherwise the file is made read-only.
#[tokio::test]
async fn every_history_read_works_on_a_read_only_history() {
    use std::os::unix::fs::PermissionsExt;
    let t = Tenant::start(institution()).await;
    t.write_config(&safe_opts());
    t.write_roles(ROLES);
    assert_eq!(t.cli(&["apply"]).await.code, 0);
    // The apply folded its journal into the file: a reader of the file alone sees its runs.
    let wal = t.path("state/history.db-wal");
    assert!(
        std::fs::metadata(&wal).map_or(true, |m| m.len() == 0),
        "apply left its writes in {}",
        wal.display()
    );
    let before = std::fs::read(t.history_path()).unwrap();
    let mode = |p: std::path::PathBuf, m: u32| {
        std::fs::set_permissions(p, std::fs::Permissions::from_mode(m)).unwrap()
    };
    mode(t.dir.path().to_path_buf(), 0o755);
    mode(t.path("state"), 0o555);
    mode(t.history_path(), 0o444);
    mode(t.config_path(), 0o644);
    let root = std::process::Command::new("id")
        .arg("-u")
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
        .unwrap();
    let bin = env!("CARGO_BIN_EXE_studio-role-sync");
    let config = t.config_path();
    for args in [
        vec!["history"],
        vec!["history", "--format", "json"],
        vec!["history", "--run", "1", "--format", "csv"],
        vec!["history", "--email", "newhire@school.edu"],
        vec!["history", "--approvals"],
    ] {
        let mut cmd = if root {
            let mut c = tokio::process::Command::new("setpriv");
            c.args(["--reuid=65534", "--regid=65534", "--clear-groups", bin]);
            c
        } else {
            tokio::process::Command::new(bin)
        };
        let out = cmd
            .arg("--config")
            .arg(&config)
            .args(&args)
            .env_remove("RUST_LOG")
            .output()
            .await
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(0), "{args:?}: {stderr}");
        assert!(!stderr.contains("readonly database"), "{args:?}: {stderr}");
        assert!(!stderr.contains("may be missing"), "{args:?}: {stderr}");
        assert!(!out.stdout.is_empty(), "{args:?}");
    }
    if root {
        // A journal the auditor cannot read (the service's, 0600) may hold newer runs: the
        // read still works, from the file, and says what it may be missing.
        mode(t.path("state"), 0o755);
        std::fs::write(&wal, b"not folded in yet").unwrap();
        mode(wal.clone(), 0o600);
        let out = tokio::process::Command::new("setpriv")
            .args(["--reuid=65534", "--regid=65534", "--clear-groups", bin])
            .arg("--config")
            .arg(&config)
            .arg("history")
            .output()
            .await
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(0), "{stderr}");
        assert!(
            stderr.contains("the newest runs may be missing"),
            "{stderr}"
        );
        assert!(stderr.contains("history.db-wal"), "{stderr}");
        std::fs::remove_file(&wal).unwrap();
    }
    assert_eq!(
        std::fs::read(t.history_path()).unwrap(),
        before,
        "not changed"
    );
    mode(t.path("state"), 0o700);
}

#[tokio::test]
async fn export_prints_a_roles_file_that_validates() {
    let t = Tenant::start(institution()).await;
    let export = t.cli(&["export"]).await;
    assert_eq!(export.code, 0, "{export:?}");
    assert!(
        export.stdout.contains("ada@school.edu: [Admin]"),
        "{export:?}"
    );
    assert!(
        export
            .stdout
            .contains("barbara@school.edu: [CaptionEditor]"),
        "{export:?}"
    );
    assert!(
        export.stdout.contains("users 6"),
        "no-email holder noted: {export:?}"
    );
    t.write_roles(&export.stdout);
    let validate = t.cli(&["validate"]).await;
    assert_eq!(validate.code, 0, "{validate:?}");
    // Applying the export changes nothing.
    let plan = t.cli(&["plan"]).await;
    assert_eq!(plan.code, 0, "{plan:?}");
}

/// `pending.recheck_max` set alone is taken (the default `recheck_min` gives way to it) by
/// `validate` and `plan`; two keys that are both set and conflict are refused naming the line.
#[tokio::test]
async fn recheck_max_alone_works_and_two_set_keys_that_conflict_are_refused() {
    let t = Tenant::start(vec![user(1, Some("ann@x.edu"), &[])]).await;
    t.write_roles(&crate::support::admins(&["ann@x.edu"]));
    t.write_config(&Opts {
        extra: "pending:\n  recheck_max: 30s\n".into(),
        ..Opts::default()
    });
    let validate = t.cli(&["validate"]).await;
    assert_eq!(validate.code, 0, "{validate:?}");
    let plan = t.cli(&["plan"]).await;
    assert_eq!(plan.code, 2, "{plan:?}");

    let both = Opts {
        extra: "pending:\n  recheck_min: 1h\n  recheck_max: 30s\n".into(),
        ..Opts::default()
    };
    t.write_config(&both);
    let line = t
        .config_text(&both)
        .lines()
        .position(|l| l.contains("recheck_min"))
        .unwrap()
        + 1;
    for command in ["validate", "plan", "apply"] {
        let refused = t.cli(&[command]).await;
        assert_eq!(refused.code, 1, "{command}: {refused:?}");
        assert!(
            refused
                .stderr
                .contains(&format!("{}:{line}:", t.config_path().display())),
            "{command} names the line: {refused:?}"
        );
        assert!(
            refused.stderr.contains("pending.recheck_min"),
            "{command}: {refused:?}"
        );
    }
    assert_eq!(t.sim.stats().put_roles, 0, "nothing sent");
}

/// SIGTERM while a one-shot `apply` waits for Studio's answer to its first batch: that batch
/// finishes, nothing more is sent, the run is recorded `interrupted`, and the exit code is 5.
#[tokio::test]
async fn sigterm_stops_a_one_shot_apply_after_the_batch_in_flight() {
    let t = Tenant::start(
        (1..=6)
            .map(|i| user(i, Some(&format!("u{i}@x.edu")), &[]))
            .collect(),
    )
    .await;
    t.write_config(&Opts {
        batch_size: 1,
        concurrency: 1,
        ..Opts::default()
    });
    t.write_roles(&crate::support::admins(
        &(1..=6)
            .map(|i| format!("u{i}@x.edu"))
            .collect::<Vec<_>>()
            .iter()
            .map(String::as_str)
            .collect::<Vec<_>>(),
    ));
    // Each request is held a while: the signal comes while the first PUT is in flight.
    t.sim.set_faults(studio_sim::Faults {
        latency: std::time::Duration::from_millis(1500),
        ..studio_sim::Faults::default()
    });
    let mut child = tokio::process::Command::new(env!("CARGO_BIN_EXE_studio-role-sync"))
        .arg("--config")
        .arg(t.config_path())
        .arg("apply")
        .env_remove("RUST_LOG")
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("binary starts");
    crate::support::daemon::wait_for(
        "the first PUT",
        std::time::Duration::from_secs(60),
        || async { (t.sim.stats().put_roles > 0).then_some(()) },
    )
    .await;
    let pid = child.id().unwrap().to_string();
    assert!(std::process::Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .unwrap()
        .success());
    let out = tokio::time::timeout(std::time::Duration::from_secs(60), async {
        let mut stderr = String::new();
        tokio::io::AsyncReadExt::read_to_string(child.stderr.as_mut().unwrap(), &mut stderr)
            .await
            .unwrap();
        (child.wait().await.unwrap(), stderr)
    })
    .await
    .expect("apply ends after SIGTERM");
    let (status, stderr) = out;
    assert_eq!(status.code(), Some(5), "{stderr}");
    // The batch in flight was answered and recorded; nothing was sent after the signal.
    assert_eq!(t.sim.stats().put_roles, 1, "{stderr}");
    assert_eq!(t.holders("Admin").len(), 1);
    let db = t.history().await;
    let (run_status, adds, ..) = run_row(&db, 1).await;
    assert_eq!(run_status, "interrupted", "{stderr}");
    assert_eq!(adds, 1, "the history records exactly what Studio got");
    db.close().await;
}

#[tokio::test]
async fn a_run_left_running_is_marked_interrupted_by_the_next_apply() {
    let t = Tenant::start(institution()).await;
    t.write_config(&safe_opts());
    t.write_roles(ROLES);
    {
        let h = studio_role_sync_engine::history::History::open(&t.history_path())
            .await
            .unwrap();
        h.start_run("schedule", false).await.unwrap();
        h.close().await;
    }
    let run = t.cli(&["apply"]).await;
    assert_eq!(run.code, 0, "{run:?}");
    let db = t.history().await;
    assert_eq!(run_row(&db, 1).await.0, "interrupted");
    assert_eq!(run_row(&db, 2).await.0, "succeeded");
}

#[tokio::test]
async fn the_example_config_and_roles_file_validate() {
    let dir = tempfile::tempdir().unwrap();
    // The workspace root is this package's root.
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    for f in ["studio-role-sync.yaml", "roles.yaml"] {
        std::fs::copy(root.join("config").join(f), dir.path().join(f)).unwrap();
    }
    let out = tokio::process::Command::new(env!("CARGO_BIN_EXE_studio-role-sync"))
        .arg("--config")
        .arg(dir.path().join("studio-role-sync.yaml"))
        .arg("validate")
        .env("STUDIO_TOKEN", "example")
        .output()
        .await
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{stdout} {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains("3 users, 3 grants"), "{stdout}");
}

#[tokio::test]
async fn a_rewritten_token_file_is_picked_up_without_a_restart() {
    use studio_role_sync_engine::studio::StudioError;
    let t = Tenant::start(institution()).await;
    std::fs::write(t.path("token"), "old-revoked-token").unwrap();
    let config = studio_role_sync_engine::config::Config::load(&t.config_path()).unwrap();
    let history = studio_role_sync_engine::history::History::open(&t.history_path())
        .await
        .unwrap();
    let metrics = studio_role_sync_engine::metrics::Metrics::new();
    let client = studio_role_sync_engine::reconcile::make_client(&config, &history, &metrics)
        .await
        .unwrap();

    // The file still holds the refused token: one request, a clear error, no blind retry.
    let refused = client.users_with_role("Admin", 1).await;
    assert!(
        matches!(refused, Err(StudioError::Unauthorized { .. })),
        "{refused:?}"
    );
    assert_eq!(t.sim.stats().status_401, 1);

    // The secret is rotated in place (a Kubernetes Secret update): the next 401 re-reads it.
    std::fs::write(t.path("token"), TOKEN).unwrap();
    let page = client
        .users_with_role("Admin", 1)
        .await
        .expect("the new token works");
    assert_eq!(page.users.len(), 5);
    assert_eq!(t.sim.stats().status_401, 2);
    assert!(client.users_with_role("Admin", 1).await.is_ok());
    assert_eq!(t.sim.stats().status_401, 2, "the new token is kept");
}

#[tokio::test]
async fn completions_and_man_page_come_from_the_command_line_definition() {
    let run = |args: &'static [&'static str]| async move {
        tokio::process::Command::new(env!("CARGO_BIN_EXE_studio-role-sync"))
            .args(args)
            .output()
            .await
            .unwrap()
    };
    let man = run(&["man"]).await;
    assert!(man.status.success());
    let man = String::from_utf8_lossy(&man.stdout);
    assert!(man.contains(".TH studio-role-sync 1"), "{man}");
    for command in ["validate", "plan", "apply", "daemon", "history", "export"] {
        assert!(man.contains(command), "man page lacks {command}");
    }
    // `demo` exists only in a build with the simulator (the default `demo` feature).
    assert_eq!(man.contains("demo"), cfg!(feature = "demo"), "{man}");
    let bash = run(&["completions", "bash"]).await;
    assert!(bash.status.success());
    let bash = String::from_utf8_lossy(&bash.stdout);
    assert!(
        bash.contains("complete -F") && bash.contains("--format"),
        "{bash}"
    );
}

/// The README's first command: the whole tool against the built-in simulator.
#[cfg(feature = "demo")]
#[tokio::test]
async fn demo_converges_the_simulated_tenant() {
    let out = tokio::process::Command::new(env!("CARGO_BIN_EXE_studio-role-sync"))
        .arg("demo")
        .output()
        .await
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{stdout}");
    for needle in [
        "+ edsger@demo.edu",
        "- alan@demo.edu",
        "Plan: 2 to add, 1 to remove, 2 pending.",
        "No changes. Studio's managed roles match the desired state.",
        "(exit code 2)",
    ] {
        assert!(stdout.contains(needle), "{needle}: {stdout}");
    }
}
