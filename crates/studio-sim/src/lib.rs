//! In-process simulator of the Canvas Studio public user API.
//!
//! The `demo` command, the integration tests and the benchmarks talk to this server over real
//! HTTP on 127.0.0.1, so the client code under test is exactly the code that talks to a real
//! tenant. The simulator owns:
//!
//! * a user store with the indexes a large tenant needs (by id, by role, by lower-cased email)
//!   so that benchmarks with 200,000 users and tens of thousands of requests stay cheap
//!   (`state.rs`);
//! * the `/api/public/v1/users/...` endpoints with the validation the vendor documents
//!   (400/401/404/422, atomic `PUT /users/roles` batches) and the awkward behaviour a real
//!   tenant may show: loose (prefix) email matching, duplicate emails, users without email,
//!   accounts recreated under a new id (`api.rs`);
//! * fault injection, applied in a fixed order so tests can reason about it: server-side rate
//!   limit (429 + `Retry-After`), latency, random 5xx, then after the real handler a cut
//!   connection or a malformed 200 body. Faults use a seeded RNG so runs are reproducible
//!   (`faults.rs`);
//! * an OAuth2 token endpoint with single-use rotating refresh tokens and expiring access
//!   tokens, plus an auto-approving authorize endpoint that, like Studio's, refuses `http` and
//!   `localhost` redirect URIs and does not echo `state` (`oauth.rs`);
//! * hostile answers (absurd `Retry-After`, HTML, `null`, wrong JSON types, a huge body), a
//!   Canvas-style `403` rate limit, `GET /ping` and the API schema `GET /api/public/apidocs`
//!   (`hostile.rs`, `faults.rs`, `api.rs`), and serving over HTTPS (`tls.rs`);
//! * request statistics (per kind, per status class, peak concurrency) so tests and
//!   benchmarks can assert how many calls a sync made, and a request log with the email each
//!   account had when a `PUT /users/roles` reached it (`admin.rs`);
//! * Studio's role model when configured ([`SimConfig::exclusive`]): an add that would give a
//!   user two roles of one exclusive group is refused with `422` (the vendor does not document
//!   this answer; refusing is the safe model, as a client must not count on Studio fixing it);
//! * `/sim/users/{id}`: edits behind the tool's back, as a Studio admin makes them (`admin.rs`).
//!
//! The [`Sim`] handle is the only way in: it starts the server, lets tests inspect and mutate
//! the store behind the server's back (as Studio admins do), and stops the server when it is
//! dropped or [`Sim::stop`] is called. All locks are `std` locks that are never held across an
//! `.await`.

mod admin;
mod api;
mod faults;
pub mod hostile;
mod oauth;
mod state;
#[cfg(test)]
mod tests;
pub mod tls;

use std::collections::BTreeSet;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, RwLock, RwLockReadGuard, RwLockWriteGuard};
use std::time::Duration;

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

pub use admin::{SimAction, SimRequest};
use faults::Control;
use oauth::OAuthState;
use state::Store;

/// One Studio user as the simulator stores it.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct SimUser {
    pub id: u64,
    pub full_name: String,
    pub email: Option<String>,
    pub role_names: Vec<String>,
}

/// Fault injection settings. All rates are probabilities in `0.0..=1.0`.
#[derive(Clone, Debug, Default)]
pub struct Faults {
    /// Share of requests answered 500/502/503 (chosen at random) before doing anything.
    pub error_rate: f64,
    /// Server-side limit in requests per second (token bucket, burst = max(1, rate)). Requests
    /// over it get `429` with `Retry-After: <whole seconds, >= 1>`. `None`, a non-positive or a
    /// non-finite rate means no limit.
    pub rate_limit: Option<f64>,
    /// Added to every request (tokio sleep) before answering.
    pub latency: Duration,
    /// Share of successful requests whose connection is cut: the client receives `200`
    /// headers, then the body stream fails.
    pub drop_rate: f64,
    /// Share of successful requests answered `200` with a body that is not valid JSON.
    pub malformed_rate: f64,
    /// Share of API requests answered, before the handler, with a hostile answer (see
    /// `hostile.rs`): absurd `Retry-After`, HTML, `null`, wrong JSON types, a huge body.
    pub hostile_rate: f64,
    /// Always this hostile answer (an index into the list of `hostile.rs`), not a random one.
    pub hostile_answer: Option<usize>,
    /// The rate limit answers like Canvas LMS: `403 Forbidden (Rate Limit Exceeded)` with
    /// `X-Rate-Limit-Remaining: 0.0`, instead of `429`.
    pub throttle_with_403: bool,
}

/// OAuth2 settings of the simulated developer key.
#[derive(Clone, Debug)]
pub struct SimOAuth {
    pub client_id: String,
    pub client_secret: String,
    /// The seed refresh token: the one valid refresh token when the server starts.
    pub refresh_token: String,
    /// Lifetime of issued access tokens (millisecond precision).
    pub access_ttl: Duration,
}

/// How a simulator is started.
#[derive(Clone, Debug)]
pub struct SimConfig {
    /// A static access token that is always accepted (`None`: only OAuth-issued tokens).
    pub token: Option<String>,
    /// More static access tokens, each accepted like `token`: several clients (two daemons)
    /// told apart by the token each request carried ([`SimRequest::token`]).
    pub more_tokens: Vec<String>,
    /// Role names the server knows; any other role in a request is answered `422`.
    pub known_roles: Vec<String>,
    /// Enables the OAuth endpoints when set.
    pub oauth: Option<SimOAuth>,
    /// Initial fault settings (see [`Sim::set_faults`]).
    pub faults: Faults,
    /// Seed of the RNG that decides faults, so runs are reproducible.
    pub seed: u64,
    /// Groups of roles a user can hold only one of (Studio's admin levels, caption roles only
    /// on non-admins). An add that breaks a group is refused with `422`. Empty: no rule.
    pub exclusive: Vec<Vec<String>>,
}

impl Default for SimConfig {
    fn default() -> Self {
        SimConfig {
            token: Some("sim-token".to_string()),
            more_tokens: Vec::new(),
            known_roles: [
                "Admin",
                "SubAccountAdmin",
                "CaptionEditor",
                "Teacher",
                "Student",
            ]
            .iter()
            .map(|r| r.to_string())
            .collect(),
            oauth: None,
            faults: Faults::default(),
            seed: 1,
            exclusive: Vec::new(),
        }
    }
}

/// Counts of requests the server received, including those answered with a fault.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SimStats {
    /// `GET /users/search` with a `role` parameter (with or without `email`).
    pub search_by_role: u64,
    /// `GET /users/search` with `email` and no `role`.
    pub search_by_email: u64,
    /// `GET /users/search` with neither.
    pub search_other: u64,
    pub get_user: u64,
    pub put_roles: u64,
    /// Actions in `PUT /users/roles` batches that were applied.
    pub put_actions: u64,
    pub token: u64,
    pub authorize: u64,
    pub status_429: u64,
    pub status_5xx: u64,
    pub status_401: u64,
    pub status_4xx_other: u64,
    pub dropped: u64,
    pub malformed: u64,
    /// Hostile answers sent, and the bytes of huge bodies actually sent (the client stops
    /// reading a body that exceeds its bound).
    pub hostile: u64,
    pub hostile_body_bytes: u64,
    /// TLS handshakes that failed (HTTPS only): e.g. a client that does not trust the CA.
    pub tls_handshake_failures: u64,
    /// `GET /ping` and `GET /api/public/apidocs`.
    pub ping: u64,
    pub apidocs: u64,
    pub total: u64,
    /// Highest number of requests being handled at once.
    pub max_in_flight: u64,
}

/// State shared by the handle and the server.
pub(crate) struct Shared {
    /// `token` and `more_tokens`.
    pub(crate) static_tokens: Vec<String>,
    pub(crate) known_roles: BTreeSet<String>,
    pub(crate) exclusive: Vec<BTreeSet<String>>,
    store: RwLock<Store>,
    control: Mutex<Control>,
    oauth: Mutex<OAuthState>,
    apidocs: Mutex<Option<serde_json::Value>>,
    in_flight: AtomicU64,
    max_in_flight: AtomicU64,
}

impl Shared {
    pub(crate) fn store(&self) -> RwLockReadGuard<'_, Store> {
        self.store.read().unwrap_or_else(|e| e.into_inner())
    }

    pub(crate) fn store_mut(&self) -> RwLockWriteGuard<'_, Store> {
        self.store.write().unwrap_or_else(|e| e.into_inner())
    }

    pub(crate) fn control(&self) -> MutexGuard<'_, Control> {
        self.control.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub(crate) fn oauth(&self) -> MutexGuard<'_, OAuthState> {
        self.oauth.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn enter(&self) {
        let now = self.in_flight.fetch_add(1, Ordering::SeqCst) + 1;
        self.max_in_flight.fetch_max(now, Ordering::SeqCst);
    }

    fn leave(&self) {
        self.in_flight.fetch_sub(1, Ordering::SeqCst);
    }
}

/// Handle of a running simulator. The server stops when the handle is dropped or
/// [`Sim::stop`] is called.
pub struct Sim {
    shared: Arc<Shared>,
    addr: SocketAddr,
    https: bool,
    shutdown: Option<oneshot::Sender<()>>,
    task: Option<JoinHandle<()>>,
}

impl std::fmt::Debug for Sim {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Sim")
            .field("addr", &self.addr)
            .finish_non_exhaustive()
    }
}

impl Sim {
    /// Starts a simulator on `127.0.0.1` with a free port.
    pub async fn start(config: SimConfig, users: Vec<SimUser>) -> std::io::Result<Sim> {
        Self::start_on(
            SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), 0),
            config,
            users,
        )
        .await
    }

    /// Starts a simulator on `addr`.
    pub async fn start_on(
        addr: SocketAddr,
        config: SimConfig,
        users: Vec<SimUser>,
    ) -> std::io::Result<Sim> {
        Self::start_inner(addr, config, users, None).await
    }

    /// Starts a simulator on `127.0.0.1` with a free port, served over HTTPS with `identity`
    /// (see [`Sim::base_url`]).
    pub async fn start_tls(
        config: SimConfig,
        users: Vec<SimUser>,
        identity: tls::TlsIdentity,
    ) -> std::io::Result<Sim> {
        let addr = SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), 0);
        Self::start_inner(addr, config, users, Some(identity)).await
    }

    async fn start_inner(
        addr: SocketAddr,
        config: SimConfig,
        users: Vec<SimUser>,
        identity: Option<tls::TlsIdentity>,
    ) -> std::io::Result<Sim> {
        let listener = tokio::net::TcpListener::bind(addr).await?;
        let mut addr = listener.local_addr()?;
        if addr.ip().is_unspecified() {
            addr.set_ip(IpAddr::V4(Ipv4Addr::LOCALHOST));
        }
        let shared = Arc::new(Shared {
            static_tokens: config
                .token
                .iter()
                .chain(&config.more_tokens)
                .cloned()
                .collect(),
            known_roles: config.known_roles.iter().cloned().collect(),
            exclusive: config
                .exclusive
                .iter()
                .map(|g| g.iter().cloned().collect())
                .collect(),
            store: RwLock::new(Store::new(users)),
            control: Mutex::new(Control::new(config.faults.clone(), config.seed)),
            oauth: Mutex::new(OAuthState::new(config.oauth.clone())),
            apidocs: Mutex::new(Some(api::swagger(&config.known_roles))),
            in_flight: AtomicU64::new(0),
            max_in_flight: AtomicU64::new(0),
        });
        let app = api::router(shared.clone());
        let (tx, rx) = oneshot::channel::<()>();
        let https = identity.is_some();
        let task = match identity {
            None => spawn_server(listener, app, rx),
            Some(identity) => spawn_server(
                tls::TlsListener::new(listener, &identity, shared.clone())?,
                app,
                rx,
            ),
        };
        tracing::debug!(%addr, https, "studio simulator listening");
        Ok(Sim {
            shared,
            addr,
            https,
            shutdown: Some(tx),
            task: Some(task),
        })
    }

    /// `http://127.0.0.1:PORT` (`https://` when served over TLS), without trailing slash and
    /// without the `/api` path.
    pub fn base_url(&self) -> String {
        let scheme = if self.https { "https" } else { "http" };
        format!("{scheme}://{}", self.addr)
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// All users, sorted by id.
    pub fn users(&self) -> Vec<SimUser> {
        self.shared.store().all()
    }

    pub fn user(&self, id: u64) -> Option<SimUser> {
        self.shared.store().get(id).cloned()
    }

    /// Users whose email equals `email` exactly (trimmed, case-insensitive), sorted by id.
    pub fn users_with_email(&self, email: &str) -> Vec<SimUser> {
        self.shared.store().with_email(email)
    }

    /// Users holding `role`, sorted by id.
    pub fn holders(&self, role: &str) -> Vec<SimUser> {
        self.shared.store().holders(role)
    }

    /// Adds a user (or replaces the user with the same id), as if Studio created it.
    pub fn add_user(&self, user: SimUser) {
        self.shared.store_mut().insert(user);
    }

    /// Sets a user's roles behind the API's back, as an admin in the Studio UI would.
    ///
    /// # Panics
    /// If no user has this id.
    pub fn set_roles(&self, id: u64, roles: Vec<String>) {
        if !self.shared.store_mut().set_roles(id, roles) {
            panic!("Sim::set_roles: no user with id {id}");
        }
    }

    /// Replaces the account with a new one (fresh id, same name, email and roles); the old id
    /// then answers 404. Returns the new id.
    ///
    /// # Panics
    /// If no user has this id.
    pub fn recreate_user(&self, id: u64) -> u64 {
        match self.shared.store_mut().recreate(id) {
            Some(new_id) => new_id,
            None => panic!("Sim::recreate_user: no user with id {id}"),
        }
    }

    /// Changes an account's email behind the API's back (`None` removes it), as an admin in
    /// the Studio UI would; `PATCH /sim/users/{id}` does the same over HTTP.
    ///
    /// # Panics
    /// If no user has this id.
    pub fn set_email(&self, id: u64, email: Option<&str>) {
        let mut store = self.shared.store_mut();
        let Some(mut user) = store.get(id).cloned() else {
            panic!("Sim::set_email: no user with id {id}");
        };
        user.email = email.map(str::to_string);
        store.insert(user);
    }

    /// The API requests answered so far (oldest first; at most the last 200,000).
    pub fn requests(&self) -> Vec<SimRequest> {
        self.shared.control().log.all()
    }

    /// Empties the request log.
    pub fn clear_requests(&self) {
        self.shared.control().log.clear();
    }

    pub fn stats(&self) -> SimStats {
        let mut stats = self.shared.control().stats.clone();
        stats.max_in_flight = self.shared.max_in_flight.load(Ordering::SeqCst);
        stats
    }

    /// Requests being handled right now: 0 once everything a client sent has been answered
    /// (or dropped), e.g. after a killed client's last requests settle.
    pub fn in_flight(&self) -> u64 {
        self.shared.in_flight.load(Ordering::SeqCst)
    }

    pub fn reset_stats(&self) {
        self.shared.control().stats = SimStats::default();
        self.shared.max_in_flight.store(
            self.shared.in_flight.load(Ordering::SeqCst),
            Ordering::SeqCst,
        );
    }

    /// Replaces the fault settings; the rate-limit bucket starts full again.
    pub fn set_faults(&self, faults: Faults) {
        self.shared.control().set_faults(faults);
    }

    /// An authorization code valid for one `authorization_code` exchange.
    pub fn issue_auth_code(&self) -> String {
        self.shared.oauth().issue_code()
    }

    /// The one refresh token currently valid (`None` without OAuth).
    pub fn current_refresh_token(&self) -> Option<String> {
        self.shared.oauth().current_refresh_token()
    }

    /// Number of successful `refresh_token` grants.
    pub fn refresh_count(&self) -> u64 {
        self.shared.oauth().refresh_count
    }

    /// Refresh grants refused with `invalid_grant` (a spent, revoked or unknown token).
    pub fn invalid_grants(&self) -> u64 {
        self.shared.oauth().invalid_grants
    }

    /// Like Doorkeeper (the Rails OAuth server): a refresh revokes the access tokens issued
    /// before it, so a process still holding one gets `401`. Off by default.
    pub fn revoke_access_on_refresh(&self, revoke: bool) {
        self.shared.oauth().revoke_on_refresh = revoke;
    }

    /// Accept `http` loopback redirect URIs at the authorize step (Studio does not; off by
    /// default), for the `auth login` loopback listener.
    pub fn allow_loopback_redirects(&self, allow: bool) {
        self.shared.oauth().loopback_redirects = allow;
    }

    /// The `expires_in` the token endpoint answers (any JSON, absurd values included);
    /// `None`: the configured access token lifetime.
    pub fn set_token_expires_in(&self, value: Option<serde_json::Value>) {
        self.shared.oauth().expires_in = value;
    }

    /// The document `GET /api/public/apidocs` serves; `None`: `404`. By default a Swagger 2.0
    /// document whose `role` parameter lists the known roles as its `enum`.
    pub fn set_apidocs(&self, doc: Option<serde_json::Value>) {
        *self
            .shared
            .apidocs
            .lock()
            .unwrap_or_else(|e| e.into_inner()) = doc;
    }

    /// Stops accepting connections, lets requests in progress finish (up to 5 s), and returns.
    pub async fn stop(mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        if let Some(mut task) = self.task.take() {
            if tokio::time::timeout(Duration::from_secs(5), &mut task)
                .await
                .is_err()
            {
                task.abort();
            }
        }
    }
}

/// Serves `app` on `listener` until `stop` fires (or its sender is dropped).
fn spawn_server<L>(listener: L, app: axum::Router, stop: oneshot::Receiver<()>) -> JoinHandle<()>
where
    L: axum::serve::Listener,
    L::Addr: std::fmt::Debug,
{
    tokio::spawn(async move {
        let server = axum::serve(listener, app).with_graceful_shutdown(async move {
            // A send or a dropped sender both mean "stop".
            let _ = stop.await;
        });
        if let Err(e) = server.await {
            tracing::warn!(error = %e, "studio simulator stopped with an error");
        }
    })
}

impl Drop for Sim {
    fn drop(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
    }
}

const GIVEN_NAMES: &[&str] = &[
    "Ann", "Bob", "Chloé", "Dmitri", "Eve", "Farah", "Gustavo", "Hana", "Ivan", "Jun", "Kofi",
    "Lena", "Mateo", "Nia", "Oskar", "Priya", "Quinn", "Rosa", "Sven", "Tariq", "Uma", "Viktor",
    "Wen", "Xavier", "Yara", "Zoë",
];
const FAMILY_NAMES: &[&str] = &[
    "Adams", "Baker", "Chen", "Dubois", "Evans", "Fischer", "García", "Haddad", "Ito", "Jensen",
    "Kowalski", "López", "Müller", "Nguyen", "O'Brien", "Patel", "Quispe", "Rossi", "Smith",
    "Tanaka", "Usman", "Varga", "Wójcik", "Xu", "Yilmaz", "Zhang",
];

/// A deterministic sample population for demo and benchmarks: `n` users with ids `1..=n`,
/// emails `user{i}@example.edu` (mixed case for some), some users with no email (every 97th),
/// a few duplicate-email pairs, and roles: `holders_per_role[k]` users hold `roles[k]` (spread
/// over ids).
///
/// Details, so callers can rely on them:
/// * user `i` has no email when `i % 97 == 0`;
/// * every 7th user (`i % 7 == 3`) has the mixed-case form `User{i}@Example.EDU`;
/// * duplicate pairs: `max(1, n / 1000)` (at most 50) pairs when `n >= 4`: the first user `i`
///   of a pair gets `user{i}@example.edu` (lower case) and the second user gets the same
///   address in upper case, so the address matches two accounts. Which users (both with an
///   email) are paired is chosen from `seed`;
/// * the holders of each role are chosen from `seed` among all users (including users without
///   email); a count larger than `n` means every user; roles without a count get no holders.
pub fn sample_population(
    n: usize,
    roles: &[&str],
    holders_per_role: &[usize],
    seed: u64,
) -> Vec<SimUser> {
    let mut rng = StdRng::seed_from_u64(seed);
    let mut users: Vec<SimUser> = (1..=n as u64)
        .map(|i| {
            let g = GIVEN_NAMES[(i as usize) % GIVEN_NAMES.len()];
            let f = FAMILY_NAMES[(i as usize / GIVEN_NAMES.len()) % FAMILY_NAMES.len()];
            let email = if i % 97 == 0 {
                None
            } else if i % 7 == 3 {
                Some(format!("User{i}@Example.EDU"))
            } else {
                Some(format!("user{i}@example.edu"))
            };
            SimUser {
                id: i,
                full_name: format!("{g} {f}"),
                email,
                role_names: Vec::new(),
            }
        })
        .collect();

    if n >= 4 {
        let pairs = (n / 1000).clamp(1, 50);
        let mut used = BTreeSet::new();
        let mut made = 0;
        let mut attempts = 0;
        while made < pairs && attempts < pairs * 100 {
            attempts += 1;
            let a = rng.random_range(0..n);
            let b = rng.random_range(0..n);
            if a == b || used.contains(&a) || used.contains(&b) {
                continue;
            }
            let (Some(ea), Some(_)) = (&users[a].email, &users[b].email) else {
                continue;
            };
            let canonical = ea.to_lowercase();
            // Same address, other letter case: only a case-insensitive comparison pairs them.
            let twin = canonical.to_uppercase();
            users[a].email = Some(canonical);
            users[b].email = Some(twin);
            used.insert(a);
            used.insert(b);
            made += 1;
        }
    }

    for (k, role) in roles.iter().enumerate() {
        let count = holders_per_role.get(k).copied().unwrap_or(0).min(n);
        if count == 0 {
            continue;
        }
        let mut picked: Vec<usize> = rand::seq::index::sample(&mut rng, n, count).into_vec();
        picked.sort_unstable();
        for idx in picked {
            users[idx].role_names.push(role.to_string());
        }
    }
    users
}
