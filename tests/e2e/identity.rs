//! Identity safety end to end: the real binary against the simulator over HTTP, with Studio
//! edited behind the tool's back (`/sim/users/{id}`, as a Studio admin would), and the
//! simulator's request log read per request: a role is only ever added to an account whose
//! email, at the moment the request reached Studio, is the desired email.

use crate::support::{count, run_row, user, Opts, Tenant, TOKEN};
use serde_json::json;
use std::collections::HashMap;
use std::time::{Duration, Instant};
use studio_sim::{SimConfig, SimRequest};

/// `PATCH /sim/users/{id}`: an edit in the Studio UI.
async fn studio_admin_edits(t: &Tenant, id: u64, edit: serde_json::Value) {
    let r = reqwest::Client::new()
        .patch(format!("{}/sim/users/{id}", t.sim.base_url()))
        .bearer_auth(TOKEN)
        .json(&edit)
        .send()
        .await
        .expect("sim answers");
    assert!(r.status().is_success(), "{}", r.status());
}

/// `PUT /sim/users/{id}`: an account created in Studio.
async fn studio_creates(t: &Tenant, id: u64, email: &str, roles: &[&str]) {
    let r = reqwest::Client::new()
        .put(format!("{}/sim/users/{id}", t.sim.base_url()))
        .bearer_auth(TOKEN)
        .json(&json!({"full_name": format!("User {id}"), "email": email, "role_names": roles}))
        .send()
        .await
        .expect("sim answers");
    assert!(r.status().is_success(), "{}", r.status());
}

/// Every add the simulator received went to an account whose email at that moment was a
/// desired email that should hold the role. `desired` maps emails (lower case) to roles.
fn assert_adds_reached_the_right_accounts(log: &[SimRequest], desired: &HashMap<&str, &[&str]>) {
    let mut adds = 0;
    for r in log.iter().filter(|r| r.method == "PUT") {
        for a in r.actions.iter().filter(|a| a.action == "add") {
            adds += 1;
            let email = a.email_then.as_deref().map(str::to_lowercase);
            let ok = email
                .as_deref()
                .and_then(|e| desired.get(e))
                .is_some_and(|roles| roles.contains(&a.role.as_str()));
            assert!(
                ok,
                "request {} sent add {} to user {} whose email was then {:?}",
                r.seq, a.role, a.user_id, a.email_then
            );
        }
    }
    assert!(adds > 0, "the check saw no add at all");
}

fn roles_text(desired: &HashMap<&str, &[&str]>) -> String {
    let mut lines: Vec<String> = desired
        .iter()
        .map(|(e, r)| format!("  {e}: [{}]\n", r.join(", ")))
        .collect();
    lines.sort();
    format!("users:\n{}", lines.concat())
}

#[tokio::test]
async fn a_renamed_account_never_gets_the_role_of_its_old_email() {
    let t = Tenant::start(vec![
        user(7001, Some("alice@school.edu"), &[]),
        user(7003, Some("bob@school.edu"), &["Teacher"]),
        user(9, Some("keeper@school.edu"), &["Admin"]),
    ])
    .await;
    let desired: HashMap<&str, &[&str]> = [
        ("alice@school.edu", &["Admin"][..]),
        ("bob@school.edu", &["Admin", "CaptionEditor"][..]),
        ("keeper@school.edu", &["Admin"][..]),
    ]
    .into_iter()
    .collect();
    t.write_roles(&roles_text(&desired));
    let run = t.cli(&["apply"]).await;
    assert_eq!(run.code, 0, "{run:?}");
    assert_eq!(t.sim.user(7001).unwrap().role_names, ["Admin"]);

    // In Studio: both accounts are renamed and lose their roles; new accounts take the emails.
    for (old, new, former) in [
        (7001, 7002, "alice.former@school.edu"),
        (7003, 7004, "bob.former@school.edu"),
    ] {
        let email = t.sim.user(old).unwrap().email.unwrap();
        studio_admin_edits(&t, old, json!({"email": former, "role_names": []})).await;
        studio_creates(&t, new, &email, &[]).await;
    }
    t.sim.clear_requests();
    for _ in 0..2 {
        let run = t.cli(&["apply"]).await;
        assert_eq!(run.code, 0, "{run:?}");
    }
    let log = t.sim.requests();
    assert_adds_reached_the_right_accounts(&log, &desired);
    assert!(
        log.iter()
            .flat_map(|r| &r.actions)
            .all(|a| a.user_id != 7001 && a.user_id != 7003),
        "nothing was sent to the renamed accounts: {log:?}"
    );
    assert_eq!(t.sim.user(7002).unwrap().role_names, ["Admin"]);
    assert_eq!(
        t.sim.user(7004).unwrap().role_names,
        ["Admin", "CaptionEditor"]
    );
    assert!(t.sim.user(7001).unwrap().role_names.is_empty());
    let db = t.history().await;
    assert_eq!(
        count(&db, "SELECT COUNT(*) FROM run_actions WHERE run_id = 2 AND action = 'add' AND user_id IN (7002, 7004)").await,
        3
    );
}

#[tokio::test]
async fn an_email_that_changes_between_the_read_and_the_put_fails_loudly_and_is_undone() {
    let t = Tenant::start_with(
        SimConfig {
            token: Some(TOKEN.into()),
            ..SimConfig::default()
        },
        vec![user(1, Some("ada@school.edu"), &[])],
    )
    .await;
    t.write_roles("users:\n  ada@school.edu: [Admin]\n");
    // Every request waits 400 ms in the simulator before it is handled: time to rename the
    // account once the PUT has arrived and before Studio applies it.
    t.sim.set_faults(studio_sim::Faults {
        latency: Duration::from_millis(400),
        ..Default::default()
    });
    let config = t.config_path();
    let apply = tokio::spawn(async move {
        tokio::process::Command::new(env!("CARGO_BIN_EXE_studio-role-sync"))
            .arg("--config")
            .arg(config)
            .arg("apply")
            .output()
            .await
            .unwrap()
    });
    let deadline = Instant::now() + Duration::from_secs(20);
    while t.sim.stats().put_roles == 0 {
        assert!(Instant::now() < deadline, "no PUT arrived");
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    t.sim.set_email(1, Some("ada.former@school.edu"));
    let out = apply.await.unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(4), "{stdout}\n{stderr}");
    assert!(
        stderr.contains("WRONG ACCOUNT"),
        "logged as an error: {stderr}"
    );
    assert!(stdout.contains("WRONG ACCOUNT"), "{stdout}");
    assert!(
        t.sim.user(1).unwrap().role_names.is_empty(),
        "the role was taken back at once"
    );
    let db = t.history().await;
    let (outcome, detail): (String, String) =
        sqlx::query_as("SELECT outcome, detail FROM run_actions WHERE run_id = 1")
            .fetch_one(&db)
            .await
            .unwrap();
    assert_eq!(outcome, "failed");
    assert!(
        detail.contains("\"ada.former@school.edu\", not ada@school.edu")
            && detail.contains("removed from that account again at once"),
        "{detail}"
    );
}

#[tokio::test]
async fn an_ambiguous_email_stays_ambiguous_until_one_account_has_it() {
    let t = Tenant::start(vec![
        user(1, Some("twin@school.edu"), &["Admin"]),
        user(2, Some("Twin@School.edu"), &[]),
        user(3, Some("solo@school.edu"), &["Admin"]),
    ])
    .await;
    t.write_roles("users:\n  twin@school.edu: [Admin]\n  solo@school.edu: [Admin]\n");
    for run in 1..=3 {
        let out = t.cli(&["apply"]).await;
        assert_eq!(out.code, 0, "ambiguity is not a failure: {out:?}");
        assert!(
            out.stdout
                .contains("ambiguous: Studio users 1, 2 share this email"),
            "run {run}: {out:?}"
        );
    }
    let db = t.history().await;
    assert_eq!(
        count(&db, "SELECT COUNT(DISTINCT run_id) FROM run_pending WHERE email = 'twin@school.edu' AND reason = 'ambiguous'").await,
        3,
        "reported on every run"
    );
    assert_eq!(
        count(&db, "SELECT COUNT(*) FROM ambiguous_emails WHERE email = 'twin@school.edu' AND user_ids = '1,2'").await,
        1
    );

    // The email's roles change: neither twin is touched.
    t.write_roles("users:\n  twin@school.edu: [Admin, CaptionEditor]\n  solo@school.edu: []\n");
    t.sim.clear_requests();
    let out = t.cli(&["apply"]).await;
    assert_eq!(out.code, 0, "{out:?}");
    assert!(out.stdout.contains("ambiguous"), "{out:?}");
    let touched: Vec<u64> = t
        .sim
        .requests()
        .iter()
        .flat_map(|r| r.actions.iter().map(|a| a.user_id))
        .collect();
    assert_eq!(touched, [3], "only solo lost a role");
    assert_eq!(t.sim.user(1).unwrap().role_names, ["Admin"]);
    assert!(t.sim.user(2).unwrap().role_names.is_empty());

    // In Studio the second account gets its own email: the next search finds one account.
    studio_admin_edits(&t, 2, json!({"email": "twin.second@school.edu"})).await;
    let out = t.cli(&["apply"]).await;
    assert_eq!(out.code, 0, "{out:?}");
    assert_eq!(
        t.sim.user(1).unwrap().role_names,
        ["Admin", "CaptionEditor"]
    );
    assert!(t.sim.user(2).unwrap().role_names.is_empty());
    assert_eq!(count(&db, "SELECT COUNT(*) FROM ambiguous_emails").await, 0);
}

/// An email that is not desired is no reason to keep a role, twins or not: every account
/// with it loses the role (no account with that email should hold it), while a desired email
/// shared by twins is left alone.
#[tokio::test]
async fn twins_of_an_email_that_is_not_desired_both_lose_the_role() {
    let t = Tenant::start(vec![
        user(1, Some("gone@school.edu"), &["Admin"]),
        user(2, Some("Gone@School.edu"), &["Admin"]),
        user(3, Some("twin@school.edu"), &["Admin"]),
        user(4, Some("twin@school.edu"), &[]),
        user(5, Some("solo@school.edu"), &["Admin"]),
    ])
    .await;
    t.write_roles("users:\n  twin@school.edu: [Admin]\n  solo@school.edu: [Admin]\n");
    let out = t.cli(&["apply"]).await;
    assert_eq!(out.code, 0, "{out:?}");
    assert!(t.sim.user(1).unwrap().role_names.is_empty(), "{out:?}");
    assert!(t.sim.user(2).unwrap().role_names.is_empty(), "{out:?}");
    assert_eq!(t.sim.user(3).unwrap().role_names, ["Admin"], "left alone");
    assert!(t.sim.user(4).unwrap().role_names.is_empty(), "left alone");
    assert!(
        out.stdout.contains("Run 1 succeeded: 0 added, 2 removed")
            && out
                .stdout
                .contains("ambiguous: Studio users 3, 4 share this email"),
        "{out:?}"
    );
}

#[tokio::test]
async fn a_full_verification_finds_a_twin_hidden_behind_a_holder() {
    let t = Tenant::start(vec![user(1, Some("ada@school.edu"), &["Admin"])]).await;
    t.write_roles("users:\n  ada@school.edu: [Admin]\n");
    assert_eq!(t.cli(&["apply"]).await.code, 0);
    // A second account with ada's email appears; an incremental run matches the holder.
    t.sim.add_user(user(2, Some("ADA@school.edu"), &[]));
    t.sim.reset_stats();
    assert_eq!(t.cli(&["apply"]).await.code, 0);
    assert_eq!(t.sim.stats().search_by_email, 0);

    // A day later (the last full verification moved back in time), the run is a full one.
    let db_path = t.history_path();
    let rw = sqlx::SqlitePool::connect(&format!("sqlite://{}", db_path.display()))
        .await
        .unwrap();
    sqlx::query(
        "UPDATE runs SET started_at = '2000-01-01T00:00:00.000Z' WHERE verification = 'full'",
    )
    .execute(&rw)
    .await
    .unwrap();
    rw.close().await;
    t.write_roles("users:\n  ada@school.edu: [Admin, CaptionEditor]\n");
    let out = t.cli(&["apply"]).await;
    assert_eq!(out.code, 0, "{out:?}");
    assert!(
        out.stdout.contains("ambiguous: Studio users 1, 2"),
        "{out:?}"
    );
    assert_eq!(t.sim.user(1).unwrap().role_names, ["Admin"], "not acted on");
    let history = t.cli(&["history"]).await;
    let kinds: Vec<&str> = history
        .stdout
        .lines()
        .filter(|l| l.starts_with(|c: char| c.is_ascii_digit()))
        .filter_map(|l| {
            l.split_whitespace()
                .find(|w| *w == "full" || *w == "incremental")
        })
        .collect();
    assert_eq!(kinds, ["full", "incremental", "full"], "{history:?}");
    let db = t.history().await;
    assert_eq!(
        count(
            &db,
            "SELECT COUNT(*) FROM runs WHERE id = 3 AND verification = 'full'"
        )
        .await,
        1
    );
    // `plan --full` asks for one whatever the schedule.
    let plan = t.cli(&["plan", "--full"]).await;
    assert_eq!(plan.code, 0, "{plan:?}");
    assert_eq!(
        count(
            &db,
            "SELECT COUNT(*) FROM runs WHERE id = 4 AND dry_run = 1 AND verification = 'full'"
        )
        .await,
        1
    );
}

#[tokio::test]
async fn each_role_has_its_own_removal_guard() {
    let mut users: Vec<_> = (1..=8)
        .map(|i| user(i, Some(&format!("admin{i}@school.edu")), &["Admin"]))
        .collect();
    users.extend(
        (100..160).map(|i| user(i, Some(&format!("cap{i}@school.edu")), &["CaptionEditor"])),
    );
    let t = Tenant::start(users).await;
    let opts = Opts {
        max_removals: 25,
        max_removal_ratio: 0.25,
        ..Opts::default()
    };
    t.write_config(&opts);
    let mut roles = String::from("users:\n");
    for i in 100..160 {
        roles.push_str(&format!("  cap{i}@school.edu: [CaptionEditor]\n"));
    }
    t.write_roles(&roles);
    let run = t.cli(&["apply"]).await;
    assert_eq!(run.code, 3, "{run:?}");
    assert!(
        run.stdout
            .contains("role Admin: 8 of its 8 holders would lose it (100%)"),
        "{run:?}"
    );
    assert_eq!(t.sim.stats().put_roles, 0, "no PUT");
    assert_eq!(t.holders("Admin").len(), 8);
    let db = t.history().await;
    assert_eq!(run_row(&db, 1).await.0, "aborted");

    // A per-role override allows it, for that role only.
    let text = t.config_text(&opts).replace(
        "safety:\n",
        "safety:\n  roles:\n    Admin: {max_removal_ratio: 1.0}\n",
    );
    std::fs::write(t.config_path(), text).unwrap();
    let run = t.cli(&["apply"]).await;
    assert_eq!(run.code, 0, "{run:?}");
    assert!(t.holders("Admin").is_empty());
}

#[tokio::test]
async fn careless_lines_are_errors_with_their_line_and_nothing_is_sent() {
    let t = Tenant::start(vec![user(1, Some("ada@school.edu"), &["Admin"])]).await;
    let opts = Opts {
        managed: "[Admin, CaptionEditor, SubAccountAdmin]",
        protected: "[]\n  exclusive: [[Admin, SubAccountAdmin]]",
        ..Opts::default()
    };
    t.write_config(&opts);
    let long = format!("{}@school.edu", "a".repeat(70_000));
    let cases: Vec<(String, &str)> = vec![
        (
            "  ada@school.edu:\n".into(),
            "ada@school.edu: the key has no value",
        ),
        (
            "  ada@school.edu: null\n".into(),
            "ada@school.edu: the key has no value",
        ),
        (
            "  ada@school.edu: ~\n".into(),
            "ada@school.edu: the key has no value",
        ),
        (
            "  mailto:ada@school.edu: [Admin]\n".into(),
            "scheme \"mailto:\"",
        ),
        ("  <ada@school.edu>: [Admin]\n".into(), "angle brackets"),
        (
            "  ada\u{200B}@school.edu: [Admin]\n".into(),
            "U+200B ZERO WIDTH SPACE at position 4",
        ),
        (
            "  \"ada@school.edu\\u202e\": [Admin]\n".into(),
            "U+202E RIGHT-TO-LEFT OVERRIDE",
        ),
        (
            "  \"ada @school.edu\": [Admin]\n".into(),
            "U+0020 SPACE at position 4",
        ),
        (
            format!("  {long}: [Admin]\n"),
            "bytes long; an address may have at most 254",
        ),
        (
            "  ada@school.edu: [Admin, SubAccountAdmin]\n".into(),
            "Admin and SubAccountAdmin are mutually exclusive",
        ),
    ];
    for (line, message) in &cases {
        t.write_roles(&format!("users:\n  bob@school.edu: [Admin]\n{line}"));
        for command in ["validate", "plan", "apply"] {
            let run = t.cli(&[command]).await;
            assert_eq!(run.code, 1, "{command} {line:?}: {run:?}");
            assert!(
                run.stderr.contains("roles.yaml:3:") && run.stderr.contains(message),
                "{command} {line:?}: {run:?}"
            );
            assert!(run.stderr.len() < 2000, "the message is bounded");
        }
    }
    assert_eq!(t.sim.stats().total, 0, "no request reached Studio");
    assert!(t.sim.requests().is_empty());
    assert_eq!(t.sim.user(1).unwrap().role_names, ["Admin"]);
}

#[tokio::test]
async fn careless_sql_rows_are_errors_with_their_row() {
    let t = Tenant::start(vec![user(1, Some("ada@school.edu"), &["Admin"])]).await;
    let db = t.path("hr.db");
    let pool = sqlx::SqlitePool::connect(&format!("sqlite://{}?mode=rwc", db.display()))
        .await
        .unwrap();
    sqlx::query("CREATE TABLE grants (email TEXT, role TEXT)")
        .execute(&pool)
        .await
        .unwrap();
    for (email, role) in [
        ("bob@school.edu", "Admin"),
        ("mailto:ada@school.edu", "Admin"),
        ("ada\u{200B}@school.edu", "Admin"),
        ("<ada@school.edu>", "Admin"),
    ] {
        sqlx::query("INSERT INTO grants VALUES (?, ?)")
            .bind(email)
            .bind(role)
            .execute(&pool)
            .await
            .unwrap();
    }
    pool.close().await;
    t.write_config(&Opts {
        source: "  sql:\n    url_env: IDENTITY_TEST_SQL_URL\n    query: SELECT email, role FROM grants\n".into(),
        ..Opts::default()
    });
    let url = format!("sqlite://{}", db.display());
    let run = t
        .cli_env(&["apply"], &[("IDENTITY_TEST_SQL_URL", url.as_str())])
        .await;
    assert_eq!(run.code, 1, "{run:?}");
    for needle in [
        "row 2: \"mailto:ada@school.edu\" starts with the scheme",
        "row 3: \"ada\\u{200b}@school.edu\" contains U+200B ZERO WIDTH SPACE at position 4",
        "row 4: \"<ada@school.edu>\" has angle brackets",
    ] {
        assert!(run.stderr.contains(needle), "{needle}: {run:?}");
    }
    assert_eq!(t.sim.stats().total, 0);
}

#[tokio::test]
async fn a_move_between_exclusive_roles_converges_in_one_run() {
    let exclusive = vec![vec![
        "Admin".to_string(),
        "SubAccountAdmin".to_string(),
        "CaptionEditor".to_string(),
    ]];
    let t = Tenant::start_with(
        SimConfig {
            token: Some(TOKEN.into()),
            exclusive: exclusive.clone(),
            ..SimConfig::default()
        },
        vec![
            user(1, Some("mover@school.edu"), &["Admin", "Teacher"]),
            user(2, Some("captioner@school.edu"), &["CaptionEditor"]),
            user(3, Some("stays@school.edu"), &["Admin"]),
            user(4, Some("new@school.edu"), &[]),
        ],
    )
    .await;
    t.write_config(&Opts {
        managed: "[Admin, SubAccountAdmin, CaptionEditor]",
        protected: "[]\n  exclusive: [[Admin, SubAccountAdmin, CaptionEditor]]",
        ..Opts::default()
    });
    t.write_roles(
        "users:\n  mover@school.edu: [SubAccountAdmin]\n  captioner@school.edu: [Admin]\n  stays@school.edu: [Admin]\n  new@school.edu: [CaptionEditor]\n",
    );
    let plan = t.cli(&["plan"]).await;
    assert_eq!(plan.code, 2, "{plan:?}");
    t.sim.clear_requests();
    let run = t.cli(&["apply"]).await;
    assert_eq!(run.code, 0, "{run:?}");
    assert!(
        run.stdout.contains("3 added, 2 removed, 0 failed"),
        "{run:?}"
    );
    assert_eq!(
        t.sim.user(1).unwrap().role_names,
        ["Teacher", "SubAccountAdmin"]
    );
    assert_eq!(t.sim.user(2).unwrap().role_names, ["Admin"]);
    assert_eq!(t.sim.user(4).unwrap().role_names, ["CaptionEditor"]);
    // The removes went out (and were answered) before the adds; nothing was refused.
    let requests = t.sim.requests();
    let puts: Vec<&SimRequest> = requests.iter().filter(|r| r.method == "PUT").collect();
    assert_eq!(puts.len(), 2, "{puts:?}");
    assert!(puts.iter().all(|r| r.status == 200));
    assert!(puts[0].actions.iter().all(|a| a.action == "remove"));
    let db = t.history().await;
    assert_eq!(
        count(
            &db,
            "SELECT COUNT(*) FROM run_actions WHERE outcome = 'failed'"
        )
        .await,
        0
    );
    // Converged: the next plan has nothing to do.
    let plan = t.cli(&["plan"]).await;
    assert_eq!(plan.code, 0, "{plan:?}");
}
