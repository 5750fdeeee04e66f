//! OAuth2 with rotating refresh tokens, against the simulator's token endpoint: expiry,
//! rotation, durable storage, one refresh at a time, a refused refresh, `auth login`, and
//! secret hygiene.

mod common;

use common::{count, user, Opts, Tenant};
use std::time::Duration;
use studio_role_sync::sim::{Faults, SimConfig, SimOAuth};

const CLIENT_SECRET: &str = "client-secret-c0ffee";
const SEED: &str = "seed-refresh-token-beef";

fn oauth_sim(ttl: Duration, faults: Faults) -> SimConfig {
    SimConfig {
        token: None,
        oauth: Some(SimOAuth {
            client_id: "srs-client".into(),
            client_secret: CLIENT_SECRET.into(),
            refresh_token: SEED.into(),
            access_ttl: ttl,
        }),
        faults,
        ..SimConfig::default()
    }
}

fn oauth_opts(extra_auth: &str) -> Opts {
    Opts {
        auth: format!("  oauth:\n    client_id: srs-client\n    client_secret_env: SRS_CLIENT_SECRET\n{extra_auth}"),
        ..Opts::default()
    }
}

const SEEDED: &str = "    refresh_token_env: SRS_REFRESH_TOKEN\n";

fn env() -> Vec<(&'static str, &'static str)> {
    vec![
        ("SRS_CLIENT_SECRET", CLIENT_SECRET),
        ("SRS_REFRESH_TOKEN", SEED),
    ]
}

fn population(n: u64) -> Vec<studio_role_sync::sim::SimUser> {
    (1..=n)
        .map(|i| {
            user(
                i,
                Some(&format!("u{i}@school.edu")),
                if i % 2 == 0 { &["Admin"] } else { &[] },
            )
        })
        .collect()
}

fn roles_for_all(n: u64) -> String {
    let mut s = String::from("users:\n");
    for i in 1..=n {
        s += &format!("  u{i}@school.edu: [Admin]\n");
    }
    s
}

#[tokio::test]
async fn a_run_outlives_several_access_tokens_and_a_second_process_uses_the_stored_token() {
    // 1 s tokens, 60 ms per request, one request at a time: a run of ~50 requests needs several.
    let faults = Faults {
        latency: Duration::from_millis(60),
        ..Faults::default()
    };
    let t = Tenant::start_with(
        oauth_sim(Duration::from_millis(1000), faults),
        population(60),
    )
    .await;
    t.write_config(&Opts {
        concurrency: 1,
        batch_size: 1,
        ..oauth_opts(SEEDED)
    });
    t.write_roles(&roles_for_all(60));
    let run = t.cli_env(&["apply"], &env()).await;
    assert_eq!(run.code, 0, "{run:?}");
    assert_eq!(t.holders("Admin").len(), 60);
    let refreshes = t.sim.refresh_count();
    assert!(
        refreshes >= 3,
        "expected several refreshes, got {refreshes}"
    );
    assert_eq!(
        t.sim.stats().status_401,
        0,
        "tokens are refreshed before they expire"
    );

    // The seed is spent; a new process starts from the token stored in the history.
    let rotated = t.sim.current_refresh_token().unwrap();
    assert_ne!(rotated, SEED);
    let db = t.history().await;
    let stored: String = sqlx::query_scalar("SELECT refresh_token FROM oauth_tokens")
        .fetch_one(&db)
        .await
        .unwrap();
    assert_eq!(stored, rotated, "the newest refresh token is on disk");
    let again = t.cli_env(&["plan"], &env()).await;
    assert_eq!(again.code, 0, "{again:?}");
}

#[tokio::test]
async fn concurrent_401s_cause_one_refresh() {
    use studio_role_sync::history::{History, StoredTokens};
    let t = Tenant::start_with(
        oauth_sim(Duration::from_secs(3600), Faults::default()),
        population(10),
    )
    .await;
    t.write_config(&oauth_opts(SEEDED));
    // A stored access token that Studio no longer accepts, with a valid refresh token.
    let history = History::open(&t.history_path()).await.unwrap();
    let fingerprint =
        studio_role_sync::studio::auth::fingerprint(&secrecy::SecretString::from(SEED.to_string()));
    history
        .save_tokens(
            "srs-client",
            &StoredTokens {
                refresh_token: SEED.to_string().into(),
                access_token: Some("revoked-access-token".to_string().into()),
                expires_at: Some(chrono::Utc::now() + chrono::Duration::hours(1)),
                seed_fingerprint: fingerprint,
            },
        )
        .await
        .unwrap();
    std::env::set_var("SRS_CLIENT_SECRET", CLIENT_SECRET);
    std::env::set_var("SRS_REFRESH_TOKEN", SEED);
    let config = studio_role_sync::config::Config::load(&t.config_path()).unwrap();
    let metrics = studio_role_sync::metrics::Metrics::new();
    let client = studio_role_sync::reconcile::make_client(&config, &history, &metrics)
        .await
        .unwrap();
    let pages = futures::future::join_all((0..8).map(|_| client.users_with_role("Admin", 1))).await;
    assert!(
        pages.iter().all(|p| p.is_ok()),
        "every request succeeded after the refresh"
    );
    assert!(
        t.sim.stats().status_401 >= 4,
        "the requests really raced on the revoked token"
    );
    assert_eq!(t.sim.refresh_count(), 1, "one refresh for all the 401s");
}

#[tokio::test]
async fn a_refused_refresh_fails_the_run_with_the_re_seed_message() {
    let t = Tenant::start_with(
        oauth_sim(Duration::from_secs(60), Faults::default()),
        population(4),
    )
    .await;
    t.write_config(&oauth_opts(SEEDED));
    t.write_roles(&roles_for_all(4));
    let run = t
        .cli_env(
            &["apply"],
            &[
                ("SRS_CLIENT_SECRET", CLIENT_SECRET),
                ("SRS_REFRESH_TOKEN", "an-old-spent-token"),
            ],
        )
        .await;
    assert_eq!(run.code, 1, "{run:?}");
    assert!(
        run.stderr.contains("invalid_grant") && run.stderr.contains("auth login"),
        "{run:?}"
    );
    assert_eq!(t.sim.stats().put_roles, 0);
    assert!(!run.stderr.contains("an-old-spent-token"));
}

#[tokio::test]
async fn auth_login_stores_tokens_that_later_runs_use() {
    let t = Tenant::start_with(
        oauth_sim(Duration::from_secs(60), Faults::default()),
        population(6),
    )
    .await;
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let redirect = format!("    redirect_uri: http://127.0.0.1:{port}/callback\n");
    t.write_config(&oauth_opts(&redirect));
    t.write_roles(&roles_for_all(6));

    let mut child = tokio::process::Command::new(env!("CARGO_BIN_EXE_studio-role-sync"))
        .arg("--config")
        .arg(t.config_path())
        .args(["auth", "login"])
        .env("SRS_CLIENT_SECRET", CLIENT_SECRET)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    use tokio::io::AsyncBufReadExt;
    let mut lines = tokio::io::BufReader::new(child.stdout.take().unwrap()).lines();
    let url = loop {
        let line = tokio::time::timeout(Duration::from_secs(10), lines.next_line())
            .await
            .unwrap()
            .unwrap()
            .expect("authorize URL printed");
        if let Some(u) = line.trim().strip_prefix("http") {
            break format!("http{u}");
        }
    };
    assert!(
        url.contains("/api/public/oauth/authorize?client_id=srs-client"),
        "{url}"
    );
    // The admin's browser: Studio approves and redirects to the loopback listener.
    let mut answer = None;
    for _ in 0..50 {
        match reqwest::get(&url).await {
            Ok(r) => {
                answer = Some(r.text().await.unwrap());
                break;
            }
            Err(_) => tokio::time::sleep(Duration::from_millis(100)).await,
        }
    }
    assert!(answer.unwrap().contains("authorized"));
    let status = tokio::time::timeout(Duration::from_secs(10), child.wait())
        .await
        .unwrap()
        .unwrap();
    assert!(status.success());

    // No seed configured: the run uses the tokens `auth login` stored.
    let run = t
        .cli_env(&["apply"], &[("SRS_CLIENT_SECRET", CLIENT_SECRET)])
        .await;
    assert_eq!(run.code, 0, "{run:?}");
    assert_eq!(t.holders("Admin").len(), 6);
}

#[tokio::test]
async fn no_secret_in_debug_logs_or_history_rows_outside_the_token_table() {
    let t = Tenant::start_with(
        oauth_sim(Duration::from_millis(800), Faults::default()),
        population(20),
    )
    .await;
    t.write_config(&Opts {
        concurrency: 1,
        ..oauth_opts(SEEDED)
    });
    t.write_roles(&roles_for_all(20));
    let mut logs = String::new();
    for command in ["validate", "plan", "apply", "history", "export"] {
        let mut e = env();
        e.push(("RUST_LOG", "trace"));
        let run = t.cli_env(&[command], &e).await;
        logs += &run.stdout;
        logs += &run.stderr;
    }
    let db = t.history().await;
    let tokens: Vec<(String, Option<String>)> =
        sqlx::query_as("SELECT refresh_token, access_token FROM oauth_tokens")
            .fetch_all(&db)
            .await
            .unwrap();
    let mut secrets = vec![
        CLIENT_SECRET.to_string(),
        SEED.to_string(),
        t.sim.current_refresh_token().unwrap(),
    ];
    secrets.extend(tokens.iter().filter_map(|(_, a)| a.clone()));
    let rows: Vec<String> = sqlx::query_scalar(
        "SELECT COALESCE(error,'') || trigger || status FROM runs UNION ALL \
         SELECT COALESCE(email,'') || role || action || outcome || COALESCE(detail,'') FROM run_actions UNION ALL \
         SELECT email || reason || COALESCE(detail,'') FROM run_pending UNION ALL SELECT email FROM user_cache",
    )
    .fetch_all(&db)
    .await
    .unwrap();
    let everything = rows.join("\n");
    for s in &secrets {
        assert!(!logs.contains(s.as_str()), "secret in logs");
        assert!(!everything.contains(s.as_str()), "secret in history rows");
    }
    assert!(count(&db, "SELECT COUNT(*) FROM runs").await >= 2);
}
