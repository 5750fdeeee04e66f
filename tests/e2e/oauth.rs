//! OAuth2 with rotating refresh tokens, against the simulator's token endpoint: expiry,
//! rotation, durable storage, one refresh at a time (in a process and across processes
//! sharing one history), a refused refresh, seed fingerprints from older versions, absurd
//! token answers, `auth login` (pasted address and loopback listener), and secret hygiene.

use crate::support::{assert_secret_absent, count, user, Opts, Tenant};
use sqlx::Row;
use std::time::{Duration, Instant};
use studio_sim::{Faults, SimConfig, SimOAuth};

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

fn population(n: u64) -> Vec<studio_sim::SimUser> {
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

/// A config whose secrets come from files in the tenant folder (library tests must not set
/// environment variables).
fn oauth_files(t: &Tenant, seed: &str) -> Opts {
    std::fs::write(t.path("client-secret"), CLIENT_SECRET).unwrap();
    std::fs::write(t.path("seed"), seed).unwrap();
    Opts {
        auth: "  oauth:\n    client_id: srs-client\n    client_secret_file: client-secret\n    refresh_token_file: seed\n".into(),
        ..Opts::default()
    }
}

async fn store_tokens(history: &History, refresh: &str, access: Option<&str>, fingerprint: &str) {
    history
        .save_tokens(
            "srs-client",
            &StoredTokens {
                refresh_token: refresh.to_string().into(),
                access_token: access.map(|a| a.to_string().into()),
                expires_at: access.map(|_| chrono::Utc::now() + chrono::Duration::hours(1)),
                seed_fingerprint: fingerprint.to_string(),
            },
            "test",
        )
        .await
        .unwrap();
}

fn seed_fingerprint() -> String {
    studio_role_sync_engine::studio::auth::fingerprint(&secrecy::SecretString::from(
        SEED.to_string(),
    ))
}

use studio_role_sync_engine::history::{History, StoredTokens};
use studio_role_sync_engine::studio::tokens::TokenStore;

#[tokio::test]
async fn concurrent_401s_cause_one_refresh() {
    let t = Tenant::start_with(
        oauth_sim(Duration::from_secs(3600), Faults::default()),
        population(10),
    )
    .await;
    t.write_config(&oauth_files(&t, SEED));
    // A stored access token that Studio no longer accepts, with a valid refresh token.
    let history = History::open(&t.history_path()).await.unwrap();
    store_tokens(
        &history,
        SEED,
        Some("revoked-access-token"),
        &seed_fingerprint(),
    )
    .await;
    let config = studio_role_sync_engine::config::Config::load(&t.config_path()).unwrap();
    let metrics = studio_role_sync_engine::metrics::Metrics::new();
    let client = studio_role_sync_engine::reconcile::make_client(&config, &history, &metrics)
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

/// A daemon process with the OAuth secrets in its environment, its log in a file.
struct DaemonProcess {
    child: tokio::process::Child,
}

impl DaemonProcess {
    fn start(t: &Tenant) -> DaemonProcess {
        let log = std::fs::File::create(t.path("daemon.log")).unwrap();
        let child = tokio::process::Command::new(env!("CARGO_BIN_EXE_studio-role-sync"))
            .arg("--config")
            .arg(t.config_path())
            .arg("daemon")
            .envs(env())
            .env_remove("RUST_LOG")
            .env_remove("NOTIFY_SOCKET")
            .env_remove("WATCHDOG_USEC")
            .env("NO_COLOR", "1")
            .stdout(std::process::Stdio::null())
            .stderr(log)
            .kill_on_drop(true)
            .spawn()
            .expect("daemon starts");
        DaemonProcess { child }
    }

    async fn stop(mut self) -> Option<i32> {
        let pid = self.child.id().unwrap().to_string();
        std::process::Command::new("kill")
            .args(["-TERM", &pid])
            .status()
            .unwrap();
        tokio::time::timeout(Duration::from_secs(30), self.child.wait())
            .await
            .expect("daemon stops")
            .unwrap()
            .code()
    }
}

/// `(status, error)` of the daemon's runs (not the dry runs of `plan`), oldest first.
async fn daemon_runs(t: &Tenant) -> Vec<(String, Option<String>)> {
    if !t.history_path().exists() {
        return Vec::new();
    }
    let db = t.history().await;
    let rows = sqlx::query("SELECT status, error FROM runs WHERE dry_run = 0 ORDER BY id")
        .fetch_all(&db)
        .await
        .unwrap_or_default();
    db.close().await;
    rows.iter().map(|r| (r.get(0), r.get(1))).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn plan_and_export_beside_an_oauth_daemon_never_lock_it_out() {
    // 2-second access tokens; like Doorkeeper, each refresh also revokes the access tokens
    // issued before it, so every process must pick up what another one rotated.
    let t = Tenant::start_with(
        oauth_sim(
            Duration::from_secs(2),
            Faults {
                latency: Duration::from_millis(20),
                ..Faults::default()
            },
        ),
        population(30),
    )
    .await;
    t.sim.revoke_access_on_refresh(true);
    t.write_config(&Opts {
        extra: "schedule: \"* * * * * *\"\n".into(),
        ..oauth_opts(SEEDED)
    });
    t.write_roles(&roles_for_all(30));
    let daemon = DaemonProcess::start(&t);
    // Once it runs (it holds the history's instance lock from then on) ...
    let deadline = Instant::now() + Duration::from_secs(15);
    while daemon_runs(&t).await.is_empty() {
        assert!(Instant::now() < deadline, "the daemon did not start a run");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // ... an admin runs plan and export beside it, again and again, over several token lifetimes.
    let until = Instant::now() + Duration::from_secs(14);
    let mut commands = 0;
    while Instant::now() < until {
        let plan = t.cli_env(&["plan"], &env()).await;
        assert!(plan.code == 0 || plan.code == 2, "{plan:?}");
        let export = t.cli_env(&["export"], &env()).await;
        assert_eq!(export.code, 0, "{export:?}");
        assert!(export.stdout.contains("u2@school.edu"), "{export:?}");
        commands += 2;
    }
    let runs = daemon_runs(&t).await;
    let code = daemon.stop().await;
    let log = std::fs::read_to_string(t.path("daemon.log")).unwrap();
    assert_eq!(code, Some(0), "{log}");
    let finished: Vec<_> = runs.iter().filter(|(s, _)| s != "running").collect();
    assert!(
        finished.len() >= 5,
        "the daemon kept running: {runs:?}\n{log}"
    );
    assert!(
        finished.iter().all(|(s, _)| s == "succeeded"),
        "every daemon run succeeded: {runs:?}\n{log}"
    );
    eprintln!(
        "{} daemon runs, {commands} plan/export commands beside it, {} refreshes, {} 401s, {} invalid_grant",
        finished.len(),
        t.sim.refresh_count(),
        t.sim.stats().status_401,
        t.sim.invalid_grants()
    );
    assert_eq!(t.holders("Admin").len(), 30);
    assert_eq!(
        t.sim.invalid_grants(),
        0,
        "no refresh token was spent twice"
    );
    assert!(
        t.sim.refresh_count() >= 5,
        "tokens were rotated over and over ({} refreshes, {commands} commands)",
        t.sim.refresh_count()
    );
    // Later, an apply authenticates with the lineage they all shared.
    let apply = t.cli_env(&["apply"], &env()).await;
    assert_eq!(apply.code, 0, "{apply:?}");
    assert_eq!(t.sim.invalid_grants(), 0);
}

#[tokio::test]
async fn a_fingerprint_from_an_older_version_never_sends_the_daemon_back_to_a_spent_seed() {
    let t = Tenant::start_with(
        oauth_sim(Duration::from_secs(3600), Faults::default()),
        population(6),
    )
    .await;
    t.write_config(&oauth_opts(SEEDED));
    t.write_roles(&roles_for_all(6));
    // An older version spent the seed: the chain on disk holds the only valid refresh token,
    // and its seed fingerprint is a DefaultHasher value this toolchain may compute otherwise.
    let client = reqwest::Client::new();
    let answer: serde_json::Value = client
        .post(format!("{}/api/public/oauth/token", t.sim.base_url()))
        .form(&[
            ("grant_type", "refresh_token"),
            ("refresh_token", SEED),
            ("client_id", "srs-client"),
            ("client_secret", CLIENT_SECRET),
        ])
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let rotated = answer["refresh_token"].as_str().unwrap().to_string();
    let history = History::open(&t.history_path()).await.unwrap();
    store_tokens(&history, &rotated, None, "0123456789abcdef").await;
    history.close().await;

    let run = t.cli_env(&["apply"], &env()).await;
    assert_eq!(run.code, 0, "{run:?}");
    assert_eq!(t.holders("Admin").len(), 6);
    assert_eq!(t.sim.invalid_grants(), 0, "the spent seed was not tried");
    let db = t.history().await;
    let stored: String = sqlx::query_scalar("SELECT seed_fingerprint FROM oauth_tokens")
        .fetch_one(&db)
        .await
        .unwrap();
    assert_eq!(stored, seed_fingerprint(), "rewritten as SHA-256");
}

#[tokio::test]
async fn a_spent_seed_left_in_an_admins_environment_falls_back_to_the_stored_chain() {
    let t = Tenant::start_with(
        oauth_sim(Duration::from_secs(3600), Faults::default()),
        population(4),
    )
    .await;
    t.write_config(&oauth_opts(SEEDED));
    t.write_roles(&roles_for_all(4));
    // The daemon was re-seeded with a new token and runs on its chain; an admin's shell still
    // holds the old seed, which was spent long ago.
    let first = t.cli_env(&["apply"], &env()).await;
    assert_eq!(first.code, 0, "{first:?}");
    let db = History::open(&t.history_path()).await.unwrap();
    let stored = db.load_tokens("srs-client").await.unwrap().unwrap();
    use secrecy::ExposeSecret;
    let other_seed = studio_role_sync_engine::studio::auth::fingerprint(
        &secrecy::SecretString::from("the-new-seed".to_string()),
    );
    store_tokens(&db, stored.refresh_token.expose_secret(), None, &other_seed).await;
    db.close().await;
    let run = t.cli_env(&["plan"], &env()).await;
    assert_eq!(run.code, 0, "{run:?}");
    assert_eq!(t.sim.invalid_grants(), 1, "the old seed was tried once");
    assert!(
        run.stderr.contains("refused the configured OAuth seed"),
        "{run:?}"
    );
}

#[tokio::test]
async fn a_refresh_lease_left_by_a_crashed_process_lapses() {
    let t = Tenant::start_with(
        oauth_sim(Duration::from_secs(3600), Faults::default()),
        population(4),
    )
    .await;
    t.write_config(&oauth_opts(SEEDED));
    t.write_roles(&roles_for_all(4));
    // A process died holding the lease, 2 s before it lapses.
    let history = History::open(&t.history_path()).await.unwrap();
    assert!(history
        .try_refresh_lease("srs-client", "pid 999999 dead", Duration::from_secs(2))
        .await
        .unwrap());
    history.close().await;
    let started = Instant::now();
    let run = t.cli_env(&["apply"], &env()).await;
    assert_eq!(run.code, 0, "{run:?}");
    assert!(
        started.elapsed() >= Duration::from_millis(1500),
        "it waited for the lease to lapse"
    );
    assert_eq!(t.sim.refresh_count(), 1);
    assert_eq!(t.sim.invalid_grants(), 0);
}

/// A token store through which "another process" (an older version that refreshes without
/// the lease) spends the stored refresh token right after the client has read it under the
/// lease: the client's refresh then gets `invalid_grant`, and the store holds the newer token.
struct RotatedBehindItsBack {
    history: History,
    token_url: String,
    leased: std::sync::atomic::AtomicBool,
    done: std::sync::atomic::AtomicBool,
}

type StoreResult<'a, T> = futures::future::BoxFuture<
    'a,
    Result<T, studio_role_sync_engine::studio::tokens::TokenStoreError>,
>;

impl studio_role_sync_engine::studio::tokens::TokenStore for RotatedBehindItsBack {
    fn load<'a>(&'a self, client_id: &'a str) -> StoreResult<'a, Option<StoredTokens>> {
        use std::sync::atomic::Ordering::SeqCst;
        Box::pin(async move {
            let stored = self.history.load(client_id).await?;
            if self.leased.load(SeqCst) && !self.done.swap(true, SeqCst) {
                use secrecy::ExposeSecret;
                let old = stored.as_ref().unwrap();
                let answer: serde_json::Value = reqwest::Client::new()
                    .post(&self.token_url)
                    .form(&[
                        ("grant_type", "refresh_token"),
                        ("refresh_token", old.refresh_token.expose_secret()),
                        ("client_id", "srs-client"),
                        ("client_secret", CLIENT_SECRET),
                    ])
                    .send()
                    .await
                    .unwrap()
                    .json()
                    .await
                    .unwrap();
                store_tokens(
                    &self.history,
                    answer["refresh_token"].as_str().unwrap(),
                    None,
                    &old.seed_fingerprint,
                )
                .await;
            }
            Ok(stored)
        })
    }

    fn try_lease<'a>(
        &'a self,
        client_id: &'a str,
        owner: &'a str,
        ttl: Duration,
    ) -> StoreResult<'a, bool> {
        Box::pin(async move {
            let taken = self.history.try_lease(client_id, owner, ttl).await?;
            self.leased
                .fetch_or(taken, std::sync::atomic::Ordering::SeqCst);
            Ok(taken)
        })
    }

    fn release<'a>(&'a self, client_id: &'a str, owner: &'a str) -> StoreResult<'a, ()> {
        self.history.release(client_id, owner)
    }

    fn save<'a>(
        &'a self,
        client_id: &'a str,
        tokens: &'a StoredTokens,
        owner: &'a str,
    ) -> StoreResult<'a, ()> {
        self.history.save(client_id, tokens, owner)
    }
}

#[tokio::test]
async fn on_invalid_grant_the_store_is_read_again_and_a_token_rotated_elsewhere_is_used() {
    use studio_role_sync_engine::config::{AuthConfig, OAuthConfig, StudioConfig};
    use studio_role_sync_engine::studio::auth::{Auth, OAuth};
    let t = Tenant::start_with(
        oauth_sim(Duration::from_secs(3600), Faults::default()),
        population(4),
    )
    .await;
    let history = History::open(&t.history_path()).await.unwrap();
    store_tokens(&history, SEED, None, &seed_fingerprint()).await;
    let store = std::sync::Arc::new(RotatedBehindItsBack {
        history: history.clone(),
        token_url: format!("{}/api/public/oauth/token", t.sim.base_url()),
        leased: Default::default(),
        done: Default::default(),
    });
    let token_url: url::Url = format!("{}/api/public/oauth/token", t.sim.base_url())
        .parse()
        .unwrap();
    let oauth = OAuthConfig {
        client_id: "srs-client".into(),
        client_secret: CLIENT_SECRET.to_string().into(),
        seed_refresh_token: None,
        authorize_url: token_url.join("authorize").unwrap(),
        token_url,
        redirect_uri: None,
    };
    let store: std::sync::Arc<dyn TokenStore> = store;
    let metrics = studio_role_sync_engine::metrics::Metrics::new();
    let oauth = OAuth::new(&oauth, store, metrics.clone()).await.unwrap();
    let studio = StudioConfig {
        base_url: t.sim.base_url().parse().unwrap(),
        auth: AuthConfig::Token {
            token: "unused: the client is given OAuth below".to_string().into(),
            file: None,
        },
        requests_per_second: 100.0,
        burst: 10,
        concurrency: 2,
        batch_size: 50,
        timeout: Duration::from_secs(5),
        max_retries: 1,
        extra_roots: Default::default(),
    };
    let client = studio_role_sync_engine::studio::StudioClient::new(
        &studio,
        Auth::OAuth(std::sync::Arc::new(oauth)),
        metrics,
    )
    .unwrap();
    let page = client.users_with_role("Admin", 1).await;
    assert!(page.is_ok(), "{page:?}");
    assert_eq!(t.sim.invalid_grants(), 1, "its first refresh was refused");
    assert_eq!(
        t.sim.refresh_count(),
        2,
        "the other process's, then its own"
    );
    let stored = history.load_tokens("srs-client").await.unwrap().unwrap();
    use secrecy::ExposeSecret;
    assert_eq!(
        Some(stored.refresh_token.expose_secret().to_string()),
        t.sim.current_refresh_token(),
        "the newest token is on disk"
    );
}

#[tokio::test]
async fn absurd_expires_in_values_are_bounded() {
    let t = Tenant::start_with(
        oauth_sim(Duration::from_secs(3600), Faults::default()),
        population(4),
    )
    .await;
    t.write_config(&oauth_opts(SEEDED));
    t.write_roles(&roles_for_all(4));
    for value in [
        serde_json::json!("inf"),
        serde_json::json!(1e308),
        serde_json::json!(-5),
        serde_json::json!(null),
        serde_json::json!("soon"),
        serde_json::json!([7200]),
        serde_json::json!(u64::MAX),
        serde_json::json!("3600"),
    ] {
        t.sim.set_token_expires_in(Some(value.clone()));
        // Each command starts with no usable access token in hand for at most a minute.
        let db_path = t.history_path();
        if db_path.exists() {
            let history = History::open(&db_path).await.unwrap();
            if let Some(s) = history.load_tokens("srs-client").await.unwrap() {
                use secrecy::ExposeSecret;
                store_tokens(
                    &history,
                    s.refresh_token.expose_secret(),
                    None,
                    &s.seed_fingerprint,
                )
                .await;
            }
            history.close().await;
        }
        let run = t.cli_env(&["plan"], &env()).await;
        assert!(
            run.code == 0 || run.code == 2,
            "expires_in {value}: {run:?}"
        );
    }
    assert!(t.sim.refresh_count() >= 8);
    assert_eq!(t.sim.invalid_grants(), 0);
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
    assert_secret_absent(&run.stderr, "an-old-spent-token", "a refused refresh");
}

/// `auth login` as a child process with its stdin and stdout piped, and the authorize URL it
/// printed.
async fn start_login(
    t: &Tenant,
) -> (
    tokio::process::Child,
    tokio::io::Lines<tokio::io::BufReader<tokio::process::ChildStdout>>,
    String,
) {
    use tokio::io::AsyncBufReadExt;
    let mut child = tokio::process::Command::new(env!("CARGO_BIN_EXE_studio-role-sync"))
        .arg("--config")
        .arg(t.config_path())
        .args(["auth", "login"])
        .env("SRS_CLIENT_SECRET", CLIENT_SECRET)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
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
    (child, lines, url)
}

/// The admin's browser: Studio approves and redirects; the address it ends on.
async fn approve(url: &str) -> reqwest::Response {
    let browser = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    browser.get(url).send().await.unwrap()
}

#[tokio::test]
async fn auth_login_with_a_pasted_address_as_against_a_real_tenant() {
    let t = Tenant::start_with(
        oauth_sim(Duration::from_secs(60), Faults::default()),
        population(6),
    )
    .await;
    // An https page the admin names; Studio (like the simulator) refuses http and localhost.
    t.write_config(&oauth_opts(
        "    redirect_uri: https://www.myschool.edu/studio-role-sync\n",
    ));
    t.write_roles(&roles_for_all(6));
    let (mut child, _lines, url) = start_login(&t).await;
    let redirected = approve(&url).await;
    assert_eq!(redirected.status(), 302);
    let address = redirected.headers()["location"]
        .to_str()
        .unwrap()
        .to_string();
    assert!(
        address.starts_with("https://www.myschool.edu/studio-role-sync?code="),
        "{address}"
    );
    assert!(!address.contains("state="), "Studio does not echo state");
    // The admin pastes the address from the browser's address bar.
    use tokio::io::AsyncWriteExt;
    let mut stdin = child.stdin.take().unwrap();
    stdin
        .write_all(format!("{address}\n").as_bytes())
        .await
        .unwrap();
    let out = tokio::time::timeout(Duration::from_secs(10), child.wait_with_output())
        .await
        .unwrap()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // No seed configured: the run uses the tokens `auth login` stored.
    let run = t
        .cli_env(&["apply"], &[("SRS_CLIENT_SECRET", CLIENT_SECRET)])
        .await;
    assert_eq!(run.code, 0, "{run:?}");
    assert_eq!(t.holders("Admin").len(), 6);
}

#[tokio::test]
async fn auth_login_refuses_an_address_from_another_login_and_takes_the_bare_code() {
    let t = Tenant::start_with(
        oauth_sim(Duration::from_secs(60), Faults::default()),
        population(2),
    )
    .await;
    t.write_config(&oauth_opts(
        "    redirect_uri: https://www.myschool.edu/cb\n",
    ));
    t.write_roles(&roles_for_all(2));
    let (mut child, _lines, url) = start_login(&t).await;
    let address = approve(&url).await.headers()["location"]
        .to_str()
        .unwrap()
        .to_string();
    let code = url::Url::parse(&address)
        .unwrap()
        .query_pairs()
        .find(|(k, _)| k == "code")
        .unwrap()
        .1
        .into_owned();
    use tokio::io::AsyncWriteExt;
    let mut stdin = child.stdin.take().unwrap();
    // A state that is not this login's is refused; then the bare code is accepted.
    stdin
        .write_all(format!("{address}&state=someone-elses\n{code}\n").as_bytes())
        .await
        .unwrap();
    let out = tokio::time::timeout(Duration::from_secs(10), child.wait_with_output())
        .await
        .unwrap()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(stderr.contains("another `auth login`"), "{stderr}");
    assert!(!stderr.contains(&code), "the code is not echoed");
}

#[tokio::test]
async fn auth_login_with_the_loopback_listener() {
    let t = Tenant::start_with(
        oauth_sim(Duration::from_secs(60), Faults::default()),
        population(6),
    )
    .await;
    t.sim.allow_loopback_redirects(true);
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let redirect = format!("    redirect_uri: http://127.0.0.1:{port}/callback\n");
    t.write_config(&oauth_opts(&redirect));
    t.write_roles(&roles_for_all(6));
    let (mut child, _lines, url) = start_login(&t).await;
    // The browser follows the redirect to the listener (no state comes back).
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
         SELECT email || reason || COALESCE(detail,'') FROM run_pending",
    )
    .fetch_all(&db)
    .await
    .unwrap();
    let everything = rows.join("\n");
    for s in &secrets {
        assert_secret_absent(&logs, s, "the commands' trace logs");
        assert!(!everything.contains(s.as_str()), "secret in history rows");
    }
    assert!(count(&db, "SELECT COUNT(*) FROM runs").await >= 2);
}
