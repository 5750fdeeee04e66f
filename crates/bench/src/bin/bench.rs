//! The performance benchmark: `cargo run -p bench --release --bin bench [-- --help]`.
//!
//! Everything runs in this process: the Studio simulator (over real HTTP on 127.0.0.1, with
//! injected latency and an optional server rate limit), the real `Engine` (config, roles file,
//! SQLite history in a temporary folder), and a deliberately naive client for comparison.
//!
//! Scenarios:
//! * `planner`: 1,000,000 desired grants: parse + validate the roles file, build the current
//!   state, plan. CPU time and peak RSS.
//! * `first`, `steady`, `drift`: a 200,000-user tenant, 3 managed roles, 20,000 desired grants:
//!   the first run (cold cache, half the desired users already hold their roles, some holders
//!   to remove), a second run with nothing to change, and a run after 5% drift (grants removed
//!   and added behind the daemon's back, grants added for new emails and dropped from the file).
//! * `ratelimit`: a smaller first run where the configured rate (client and server) is below
//!   what the latency allows a single connection (`concurrency / latency` > rate > `1/latency`).
//!
//! For each run: the requests the server received, against the lower bound of docs/contracts.md
//! ("Requests per run") computed independently from the simulator's state before the run; the
//! achieved request rate against the configured limit; wall time; CPU time; peak RSS (VmHWM,
//! reset through `/proc/self/clear_refs` before each scenario; the simulator lives in the same
//! process and is included). The naive strategy (list holders page by page, one email search
//! per desired user, one PUT per action, one request at a time) runs against an identical copy
//! of the tenant: its request count is exact; its time is measured on a sample of searches and
//! PUTs and extrapolated (labelled "est.").

use clap::Parser;
use std::collections::{HashMap, HashSet};
use std::fmt::Write as _;
use std::num::NonZeroU32;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};
use studio_role_sync_engine::config::Config;
use studio_role_sync_engine::current::CurrentState;
use studio_role_sync_engine::desired::{yaml, DesiredState};
use studio_role_sync_engine::email_address::normalize as normalize_email;
use studio_role_sync_engine::history::History;
use studio_role_sync_engine::metrics::Metrics;
use studio_role_sync_engine::plan::{check_guards, plan, Policy};
use studio_role_sync_engine::reconcile::{Engine, RunRequest, Trigger, VerifyRequest};
use studio_role_sync_engine::roles::{ManagedRoles, RoleSet};
use studio_role_sync_engine::shutdown::CancellationToken;
use studio_role_sync_engine::studio::StudioUser;
use studio_sim::{sample_population, Faults, Sim, SimConfig, SimUser};

const TOKEN: &str = "bench-token";
const ROLE_NAMES: [&str; 5] = [
    "Admin",
    "CaptionEditor",
    "SubAccountAdmin",
    "Teacher",
    "Student",
];
const PER_PAGE: usize = 50;

#[derive(Parser, Debug, Clone)]
#[command(about = "studio-role-sync benchmark: request counts, rate, time and memory")]
struct Args {
    /// Scenarios to run, comma separated.
    #[arg(
        long,
        value_delimiter = ',',
        default_value = "planner,first,steady,full,drift,ratelimit"
    )]
    scenarios: Vec<String>,
    /// Studio users in the main tenant.
    #[arg(long, default_value_t = 200_000)]
    users: usize,
    /// Managed roles (1..=5).
    #[arg(long, default_value_t = 3)]
    roles: usize,
    /// Desired grants (email, role) in the main scenarios.
    #[arg(long, default_value_t = 20_000)]
    grants: usize,
    /// Server latency added to every request, in milliseconds.
    #[arg(long, default_value_t = 50)]
    latency_ms: u64,
    /// Client `requests_per_second` in the main scenarios.
    #[arg(long, default_value_t = 1000.0)]
    client_rps: f64,
    /// Server rate limit in the main scenarios (default: none).
    #[arg(long)]
    server_rps: Option<f64>,
    /// Client `concurrency` in the main scenarios.
    #[arg(long, default_value_t = 64)]
    concurrency: usize,
    /// Client `batch_size`.
    #[arg(long, default_value_t = 50)]
    batch_size: usize,
    /// Drift of the `drift` scenario, in percent of the desired grants.
    #[arg(long, default_value_t = 5.0)]
    drift_percent: f64,
    /// Searches and PUTs the naive strategy makes for real before extrapolating (0: skip it).
    #[arg(long, default_value_t = 200)]
    naive_sample: usize,
    /// Studio users in the rate-limit scenario.
    #[arg(long, default_value_t = 20_000)]
    rl_users: usize,
    /// Desired grants in the rate-limit scenario.
    #[arg(long, default_value_t = 2_000)]
    rl_grants: usize,
    /// Configured rate of the rate-limit scenario (client `requests_per_second`).
    #[arg(long, default_value_t = 50.0)]
    rl_rps: f64,
    /// Server rate limit of the rate-limit scenario (default: `--rl-rps`).
    #[arg(long)]
    rl_server_rps: Option<f64>,
    /// Latency of the rate-limit scenario, in milliseconds.
    #[arg(long, default_value_t = 50)]
    rl_latency_ms: u64,
    /// Client `concurrency` in the rate-limit scenario.
    #[arg(long, default_value_t = 8)]
    rl_concurrency: usize,
    /// Desired grants of the planner-only scenario.
    #[arg(long, default_value_t = 1_000_000)]
    planner_grants: usize,
    /// Seed of the population and the drift.
    #[arg(long, default_value_t = 7)]
    seed: u64,
}

// ---- process measurements ----------------------------------------------------------------

/// Resets the peak RSS (VmHWM) to the current RSS.
fn reset_peak_rss() {
    let _ = std::fs::write("/proc/self/clear_refs", "5");
}

fn status_kb(field: &str) -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix(field))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0)
}

fn rss_mb() -> f64 {
    status_kb("VmRSS:") as f64 / 1024.0
}

fn peak_rss_mb() -> f64 {
    status_kb("VmHWM:") as f64 / 1024.0
}

/// User + system CPU time of the whole process (every thread), in seconds.
fn cpu_seconds() -> f64 {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    let after = stat.rsplit_once(')').map_or("", |(_, rest)| rest);
    let fields: Vec<&str> = after.split_whitespace().collect();
    // After the command name: state is field 3, utime 14, stime 15 (1-based, man 5 proc).
    let ticks = |i: usize| fields.get(i - 3).and_then(|v| v.parse::<f64>().ok());
    match (ticks(14), ticks(15)) {
        (Some(u), Some(s)) => (u + s) / 100.0, // CLK_TCK is 100 on Linux
        _ => 0.0,
    }
}

struct Probe {
    wall: Instant,
    cpu: f64,
    base_rss: f64,
}

impl Probe {
    fn start() -> Probe {
        reset_peak_rss();
        Probe {
            wall: Instant::now(),
            cpu: cpu_seconds(),
            base_rss: rss_mb(),
        }
    }

    fn wall(&self) -> f64 {
        self.wall.elapsed().as_secs_f64()
    }

    fn cpu(&self) -> f64 {
        cpu_seconds() - self.cpu
    }
}

// ---- workload ----------------------------------------------------------------------------

/// A tenant and a desired state, built from the sample population.
struct Workload {
    roles: Vec<String>,
    /// The Studio users before the first run.
    users: Vec<SimUser>,
    /// Desired users in file order: Studio email as written, role indexes.
    desired: Vec<(String, Vec<usize>)>,
    /// Unused users with a unique email (by index into `users`), for drift.
    spare: Vec<usize>,
}

impl Workload {
    /// `grants` desired grants over users with a unique email (alternately 2 roles and 1);
    /// the first half of the desired users already hold their roles, the second half nothing;
    /// `grants / 40` other users hold a managed role they must lose.
    fn new(n: usize, roles: usize, grants: usize, seed: u64) -> Workload {
        use rand::seq::SliceRandom;
        use rand::SeedableRng;
        let roles: Vec<String> = ROLE_NAMES[..roles.clamp(1, 5)]
            .iter()
            .map(|r| r.to_string())
            .collect();
        let r = roles.len();
        let mut users = sample_population(n, &[], &[], seed);
        let mut count: HashMap<String, usize> = HashMap::new();
        for u in &users {
            if let Some(e) = &u.email {
                *count.entry(normalize_email(e)).or_default() += 1;
            }
        }
        let mut eligible: Vec<usize> = (0..users.len())
            .filter(|&i| {
                users[i]
                    .email
                    .as_ref()
                    .is_some_and(|e| count[&normalize_email(e)] == 1)
            })
            .collect();
        eligible.shuffle(&mut rand::rngs::StdRng::seed_from_u64(seed ^ 0x5eed));

        let mut desired = Vec::new();
        let mut left = grants;
        let mut next = eligible.into_iter();
        let mut chosen = Vec::new();
        for j in 0.. {
            if left == 0 {
                break;
            }
            let Some(i) = next.next() else { break };
            let mut want = vec![j % r];
            if j % 2 == 0 && r > 1 && left > 1 {
                want.push((j + 1) % r);
            }
            left -= want.len();
            desired.push((users[i].email.clone().expect("eligible"), want));
            chosen.push(i);
        }
        let half = desired.len() / 2;
        for (k, &i) in chosen.iter().enumerate().take(half) {
            users[i].role_names = desired[k].1.iter().map(|&x| roles[x].clone()).collect();
        }
        for k in 0..grants / 40 {
            let Some(i) = next.next() else { break };
            users[i].role_names = vec![roles[k % r].clone()];
        }
        Workload {
            roles,
            users,
            desired,
            spare: next.collect(),
        }
    }

    fn roles_yaml(&self) -> String {
        roles_yaml(&self.roles, &self.desired)
    }
}

fn roles_yaml(roles: &[String], desired: &[(String, Vec<usize>)]) -> String {
    let mut text = String::with_capacity(desired.len() * 48 + 8);
    text.push_str("users:\n");
    for (email, want) in desired {
        let names: Vec<&str> = want.iter().map(|&i| roles[i].as_str()).collect();
        let _ = writeln!(text, "  {email}: [{}]", names.join(", "));
    }
    text
}

// ---- the lower bound ---------------------------------------------------------------------

#[derive(Clone, Copy, Debug, Default)]
struct Bound {
    listing: u64,
    searches: u64,
    actions: u64,
    puts: u64,
}

impl Bound {
    fn total(&self) -> u64 {
        self.listing + self.searches + self.puts
    }
}

/// The lower bound of docs/contracts.md, from the simulator's state (not from the engine): one listing page
/// per 50 holders of each managed role (at least one), one search per desired email that
/// needs a role added and is no holder's email, per desired email remembered as ambiguous,
/// and (full verification) per desired email a holder has; one PUT per `batch` actions of the
/// true difference.
fn lower_bound(
    sim: &Sim,
    managed: &ManagedRoles,
    desired: &DesiredState,
    ambiguous: &HashSet<String>,
    full: bool,
    batch: usize,
) -> Bound {
    let mut b = Bound::default();
    let mut holds: HashMap<u64, (Option<String>, RoleSet)> = HashMap::new();
    for role in managed.names() {
        let holders = sim.holders(role);
        b.listing += holders.len().div_ceil(PER_PAGE).max(1) as u64;
        for u in holders {
            let set = managed.set_of(u.role_names.iter().map(String::as_str));
            holds.insert(u.id, (u.email.as_deref().map(normalize_email), set));
        }
    }
    let holder_emails: HashSet<&str> = holds.values().filter_map(|(e, _)| e.as_deref()).collect();
    let mut decided = HashSet::new();
    for (email, want) in &desired.users {
        let held = holder_emails.contains(email.as_str());
        if ambiguous.contains(email) || (!want.is_empty() && !held) || (full && held) {
            b.searches += 1;
        }
        match sim.users_with_email(email).as_slice() {
            [u] => {
                decided.insert(u.id);
                let has = managed.set_of(u.role_names.iter().map(String::as_str));
                b.actions += (want.minus(has).len() + has.minus(*want).len()) as u64;
            }
            many => decided.extend(many.iter().map(|u| u.id)),
        }
    }
    for (id, (email, set)) in &holds {
        if email.is_some() && !decided.contains(id) {
            b.actions += set.len() as u64;
        }
    }
    b.puts = b.actions.div_ceil(batch as u64);
    b
}

// ---- the engine under test ---------------------------------------------------------------

struct Setup {
    latency_ms: u64,
    client_rps: f64,
    server_rps: Option<f64>,
    concurrency: usize,
    batch_size: usize,
}

async fn start_sim(users: Vec<SimUser>, s: &Setup) -> Sim {
    let config = SimConfig {
        token: Some(TOKEN.into()),
        faults: Faults {
            latency: Duration::from_millis(s.latency_ms),
            rate_limit: s.server_rps,
            ..Faults::default()
        },
        ..SimConfig::default()
    };
    Sim::start(config, users).await.expect("simulator starts")
}

async fn make_engine(dir: &Path, sim: &Sim, roles: &[String], s: &Setup) -> Engine {
    std::fs::write(dir.join("token"), TOKEN).expect("write token");
    let burst = ((s.client_rps / 20.0) as u32).max(1);
    let text = format!(
        "studio:\n  base_url: {}\n  token_file: token\n  requests_per_second: {}\n  burst: {burst}\n  \
         concurrency: {}\n  batch_size: {}\n  timeout_seconds: 60\n  max_retries: 5\n\
         roles:\n  managed: [{}]\n  remove_unlisted: true\n  protected: []\n\
         safety:\n  max_removals: 100000000\n  max_removal_ratio: 1.0\n\
         source:\n  yaml: roles.yaml\n\
         history: history.db\n\
         http:\n  listen: 127.0.0.1:0\n",
        sim.base_url(),
        s.client_rps,
        s.concurrency,
        s.batch_size,
        roles.join(", ")
    );
    let path = dir.join("studio-role-sync.yaml");
    std::fs::write(&path, &text).expect("write config");
    let config = Config::from_text(&path, &text).expect("bench config is valid");
    let history = History::open(&config.history).await.expect("history opens");
    Engine::new(Arc::new(config), history, Metrics::new())
        .await
        .expect("engine starts")
}

struct Measured {
    name: String,
    bound: Bound,
    by_role: u64,
    by_email: u64,
    puts: u64,
    total: u64,
    throttled: u64,
    max_in_flight: u64,
    actions_applied: i64,
    wall: f64,
    cpu: f64,
    base_rss: f64,
    peak_rss: f64,
    limit: f64,
    naive: Option<Naive>,
    /// When each kind of request was under way (sampled).
    phases: String,
}

impl Measured {
    fn rate(&self) -> f64 {
        self.total as f64 / self.wall
    }
}

async fn measured_run(
    name: &str,
    engine: &Engine,
    sim: &Sim,
    limit: f64,
    verify: VerifyRequest,
) -> Measured {
    let managed = &engine.config.roles.managed;
    let roles_file = engine.config.roles_file().expect("yaml source");
    let text = std::fs::read_to_string(roles_file).expect("roles file");
    let desired = yaml::parse("roles.yaml", &text, managed).expect("valid roles");
    let ambiguous = engine.history.ambiguous_emails().await.expect("history");
    // Full when asked, or when none ran yet (the bench's runs are minutes apart, not a day).
    let full = verify == VerifyRequest::Now
        || engine
            .history
            .last_full_verification()
            .await
            .expect("history")
            .is_none();
    let bound = lower_bound(
        sim,
        managed,
        &desired,
        &ambiguous,
        full,
        engine.config.studio.batch_size,
    );
    drop((desired, ambiguous, text));
    sim.reset_stats();
    let probe = Probe::start();
    let done = std::sync::atomic::AtomicBool::new(false);
    let (report, phases) = tokio::join!(
        async {
            let r = engine
                .run(
                    RunRequest {
                        verify,
                        ..RunRequest::new(Trigger::Manual)
                    },
                    CancellationToken::new(),
                )
                .await;
            done.store(true, std::sync::atomic::Ordering::Relaxed);
            r
        },
        timeline(sim, &done)
    );
    let report = report.expect("history works");
    assert_eq!(
        report.record.verification.as_deref(),
        Some(if full { "full" } else { "incremental" }),
        "{name}: the bound assumed the other kind of run"
    );
    let wall = probe.wall();
    let cpu = probe.cpu();
    let peak_rss = peak_rss_mb();
    let st = sim.stats();
    assert!(
        report.error.is_none() && report.guard.is_none() && report.record.failed == 0,
        "{name}: run did not succeed: {:?} {:?} failed={}",
        report.error,
        report.guard,
        report.record.failed
    );
    Measured {
        name: name.into(),
        bound,
        by_role: st.search_by_role,
        by_email: st.search_by_email,
        puts: st.put_roles,
        total: st.total,
        throttled: st.status_429,
        max_in_flight: st.max_in_flight,
        actions_applied: report.record.adds_applied + report.record.removes_applied,
        wall,
        cpu,
        base_rss: probe.base_rss,
        peak_rss,
        limit,
        naive: None,
        phases,
    }
}

/// When each kind of request was seen first and last, sampling the simulator's counters every
/// 5 ms: `list a-b, search c-d, put e-f` in seconds from the start of the run.
async fn timeline(sim: &Sim, done: &std::sync::atomic::AtomicBool) -> String {
    let start = Instant::now();
    let mut spans: [Option<(f64, f64)>; 3] = [None; 3];
    let mut last = [0u64; 3];
    while !done.load(std::sync::atomic::Ordering::Relaxed) {
        tokio::time::sleep(Duration::from_millis(5)).await;
        let s = sim.stats();
        let now = start.elapsed().as_secs_f64();
        for (k, v) in [s.search_by_role, s.search_by_email, s.put_roles]
            .into_iter()
            .enumerate()
        {
            if v != last[k] {
                last[k] = v;
                let span = spans[k].get_or_insert((now, now));
                span.1 = now;
            }
        }
    }
    let mut out = Vec::new();
    for (name, span) in ["list", "search", "put"].iter().zip(spans) {
        if let Some((a, b)) = span {
            out.push(format!("{name} {a:.2}–{b:.2}"));
        }
    }
    out.join(", ")
}

// ---- the naive strategy ------------------------------------------------------------------

#[derive(Clone, Copy, Debug)]
struct Naive {
    requests: u64,
    /// Seconds: listing measured in full, searches and PUTs measured on a sample and scaled.
    seconds: f64,
    sampled: u64,
}

#[derive(serde::Deserialize)]
struct NaivePage {
    users: Vec<StudioUser>,
    meta: NaiveMeta,
}

#[derive(serde::Deserialize)]
struct NaiveMeta {
    last_page: u64,
}

struct NaiveClient {
    http: reqwest::Client,
    api: String,
    pace: governor::DefaultDirectRateLimiter,
}

impl NaiveClient {
    async fn search(&self, query: &[(&str, &str)]) -> NaivePage {
        self.pace.until_ready().await;
        self.http
            .get(format!("{}/users/search", self.api))
            .query(query)
            .bearer_auth(TOKEN)
            .send()
            .await
            .and_then(|r| r.error_for_status())
            .expect("naive search")
            .json()
            .await
            .expect("naive search JSON")
    }

    async fn put(&self, user_id: u64, action: &str, role: &str) {
        self.pace.until_ready().await;
        let body =
            serde_json::json!({"actions": [{"user_id": user_id, "action": action, "role": role}]});
        self.http
            .put(format!("{}/users/roles", self.api))
            .json(&body)
            .bearer_auth(TOKEN)
            .send()
            .await
            .and_then(|r| r.error_for_status())
            .expect("naive put");
    }
}

/// One request at a time: list every holder page by page, search every desired email, one PUT
/// per action. Searches and PUTs beyond `sample` are not sent; their time is extrapolated from
/// the sample, their number is exact (`bound.actions` is the true difference).
async fn naive(
    users: Vec<SimUser>,
    setup: &Setup,
    managed: &ManagedRoles,
    desired_text: &str,
    bound: Bound,
    sample: usize,
) -> Naive {
    let sim = start_sim(users, setup).await;
    let desired = yaml::parse("roles.yaml", desired_text, managed).expect("valid roles");
    let quota = governor::Quota::per_second(
        NonZeroU32::new(setup.client_rps.round().max(1.0) as u32).expect("positive"),
    );
    let client = NaiveClient {
        http: reqwest::Client::new(),
        api: format!("{}/api/public/v1", sim.base_url()),
        pace: governor::RateLimiter::direct(quota),
    };
    let per_page = PER_PAGE.to_string();

    let t = Instant::now();
    let mut listing = 0u64;
    let mut holders: HashMap<u64, (Option<String>, RoleSet)> = HashMap::new();
    for role in managed.names() {
        let mut page = 1u64;
        loop {
            let p = page.to_string();
            let answer = client
                .search(&[("role", role), ("page", &p), ("per_page", &per_page)])
                .await;
            listing += 1;
            for u in answer.users {
                let set = managed.set_of(u.role_names.iter().map(String::as_str));
                holders.insert(u.id, (u.email.as_deref().map(normalize_email), set));
            }
            if page >= answer.meta.last_page {
                break;
            }
            page += 1;
        }
    }
    let t_list = t.elapsed().as_secs_f64();

    let mut emails: Vec<(&String, &RoleSet)> = desired.users.iter().collect();
    emails.sort_by_key(|(e, _)| *e);
    let t = Instant::now();
    let mut actions: Vec<(u64, &'static str, usize)> = Vec::new();
    let mut searched = 0u64;
    for (email, want) in emails.iter().take(sample) {
        let answer = client
            .search(&[("email", email.as_str()), ("per_page", &per_page)])
            .await;
        searched += 1;
        let exact: Vec<&StudioUser> = answer
            .users
            .iter()
            .filter(|u| u.email.as_deref().map(normalize_email).as_deref() == Some(email))
            .collect();
        if let [u] = exact.as_slice() {
            let has = managed.set_of(u.role_names.iter().map(String::as_str));
            actions.extend(want.minus(has).iter().map(|r| (u.id, "add", r)));
            actions.extend(has.minus(**want).iter().map(|r| (u.id, "remove", r)));
        }
    }
    let t_search = t.elapsed().as_secs_f64();
    for (id, (email, set)) in &holders {
        if actions.len() >= sample {
            break;
        }
        if email
            .as_ref()
            .is_some_and(|e| !desired.users.contains_key(e))
        {
            actions.extend(set.iter().map(|r| (*id, "remove", r)));
        }
    }
    let t = Instant::now();
    let mut put = 0u64;
    for (id, action, role) in actions.iter().take(sample) {
        client.put(*id, action, managed.name(*role)).await;
        put += 1;
    }
    let t_put = t.elapsed().as_secs_f64();
    sim.stop().await;

    let n_search = desired.users.len() as u64;
    let per = |t: f64, n: u64| if n == 0 { 0.0 } else { t / n as f64 };
    Naive {
        requests: listing + n_search + bound.actions,
        seconds: t_list
            + per(t_search, searched) * n_search as f64
            + per(t_put, put).max(per(t_search, searched)) * bound.actions as f64,
        sampled: searched + put,
    }
}

// ---- scenarios ---------------------------------------------------------------------------

async fn main_scenarios(args: &Args, want: &HashSet<&str>, out: &mut Vec<Measured>) {
    let setup = Setup {
        latency_ms: args.latency_ms,
        client_rps: args.client_rps,
        server_rps: args.server_rps,
        concurrency: args.concurrency,
        batch_size: args.batch_size,
    };
    let mut w = Workload::new(args.users, args.roles, args.grants, args.seed);
    eprintln!(
        "main tenant: {} users, roles {:?}, {} desired users ({} grants)",
        w.users.len(),
        w.roles,
        w.desired.len(),
        args.grants
    );
    let dir = tempfile::tempdir().expect("temp dir");
    std::fs::write(dir.path().join("roles.yaml"), w.roles_yaml()).expect("roles");
    let sim = start_sim(std::mem::take(&mut w.users), &setup).await;
    let engine = make_engine(dir.path(), &sim, &w.roles, &setup).await;
    let managed = engine.config.roles.managed.clone();
    let limit = args
        .server_rps
        .unwrap_or(f64::INFINITY)
        .min(args.client_rps);

    let run = |name: &'static str, verify: VerifyRequest| {
        let engine = &engine;
        let sim = &sim;
        let setup = &setup;
        let managed = &managed;
        let dir = dir.path().to_path_buf();
        let sample = args.naive_sample;
        async move {
            let snapshot = (sample > 0).then(|| sim.users());
            let mut m = measured_run(name, engine, sim, limit, verify).await;
            eprintln!(
                "{name}: {} requests in {:.2} s ({})",
                m.total, m.wall, m.phases
            );
            if let Some(users) = snapshot {
                let text = std::fs::read_to_string(dir.join("roles.yaml")).expect("roles");
                let n = naive(users, setup, managed, &text, m.bound, sample).await;
                eprintln!(
                    "{name}: naive {} requests, est. {:.0} s",
                    n.requests, n.seconds
                );
                m.naive = Some(n);
            }
            m
        }
    };

    let later = ["steady", "full", "drift"];
    if want.contains("first") || later.iter().any(|s| want.contains(s)) {
        let m = run("first run (a full verification)", VerifyRequest::WhenDue).await;
        out.push(m);
    }
    if want.contains("steady") || want.contains("drift") {
        let m = run("steady state (no change)", VerifyRequest::WhenDue).await;
        out.push(m);
    }
    if want.contains("full") {
        let m = run("full verification (no change)", VerifyRequest::Now).await;
        out.push(m);
    }
    if want.contains("drift") {
        drift(&sim, &mut w, args.drift_percent, args.grants, dir.path());
        let name: &'static str = "5% drift";
        let m = run(name, VerifyRequest::WhenDue).await;
        out.push(m);
    }
    engine.history.close().await;
    sim.stop().await;
}

/// Changes `percent` of the desired grants: a quarter removed in Studio behind the daemon's
/// back, a quarter granted in Studio to users who should not have them, a quarter new in the
/// roles file for emails never seen, a quarter dropped from the roles file.
fn drift(sim: &Sim, w: &mut Workload, percent: f64, grants: usize, dir: &Path) {
    let quarter = ((grants as f64 * percent / 100.0) / 4.0).round() as usize;
    let half = w.desired.len() / 2;
    let r = w.roles.len();
    let id_of = |email: &str| sim.users_with_email(email)[0].id;
    // 1. removed behind the back: desired users that hold their roles lose one.
    for (email, want) in w.desired[..half].iter().take(quarter) {
        let keep: Vec<String> = want[1..].iter().map(|&i| w.roles[i].clone()).collect();
        sim.set_roles(id_of(email), keep);
    }
    // 2. granted behind the back to spare users.
    let mut spare = std::mem::take(&mut w.spare).into_iter();
    for k in 0..quarter {
        let i = spare.next().expect("spare user");
        sim.set_roles(i as u64 + 1, vec![w.roles[k % r].clone()]);
    }
    // 3. new desired grants for emails never seen.
    for k in 0..quarter {
        let i = spare.next().expect("spare user");
        let email = sim.user(i as u64 + 1).and_then(|u| u.email).expect("email");
        w.desired.push((email, vec![k % r]));
    }
    // 4. grants dropped from the file: single-role users that hold their role, taken from the
    //    end of the first half (untouched by step 1).
    let mut dropped = 0;
    let mut k = half;
    while dropped < quarter && k > quarter {
        k -= 1;
        if w.desired[k].1.len() == 1 {
            w.desired.remove(k);
            dropped += 1;
        }
    }
    w.spare = spare.collect();
    std::fs::write(dir.join("roles.yaml"), w.roles_yaml()).expect("roles");
}

async fn ratelimit_scenario(args: &Args, out: &mut Vec<Measured>) {
    let setup = Setup {
        latency_ms: args.rl_latency_ms,
        client_rps: args.rl_rps,
        server_rps: Some(args.rl_server_rps.unwrap_or(args.rl_rps)),
        concurrency: args.rl_concurrency,
        batch_size: args.batch_size,
    };
    let mut w = Workload::new(args.rl_users, args.roles, args.rl_grants, args.seed + 1);
    let dir = tempfile::tempdir().expect("temp dir");
    std::fs::write(dir.path().join("roles.yaml"), w.roles_yaml()).expect("roles");
    let sim = start_sim(std::mem::take(&mut w.users), &setup).await;
    let engine = make_engine(dir.path(), &sim, &w.roles, &setup).await;
    let name = format!(
        "rate-limited first run ({} users, {} grants, {} rps, {} ms, concurrency {})",
        args.rl_users, args.rl_grants, args.rl_rps, args.rl_latency_ms, args.rl_concurrency
    );
    let m = measured_run(&name, &engine, &sim, args.rl_rps, VerifyRequest::WhenDue).await;
    eprintln!(
        "{name}: {} requests in {:.2} s ({})",
        m.total, m.wall, m.phases
    );
    out.push(m);
    engine.history.close().await;
    sim.stop().await;
}

struct PlannerResult {
    grants: usize,
    desired_users: usize,
    current_users: usize,
    actions: usize,
    pending: usize,
    parse: (f64, f64),
    current: (f64, f64),
    plan: (f64, f64),
    base_rss: f64,
    /// Peak RSS after parsing, after building the current state, after planning.
    peak_rss: [f64; 3],
}

/// 1,000,000 grants: `grants / 2` emails with 2 roles each. The current state holds them with
/// 5% drift: every 20th desired user holds only the first role, every 20th (offset 1) holds
/// nothing (found by search), and `grants / 40` other users hold a role to remove.
fn planner_scenario(grants: usize) -> PlannerResult {
    let managed = ManagedRoles::new(vec!["Admin".into(), "CaptionEditor".into()]);
    let roles: Vec<String> = managed.names().to_vec();
    let n = grants / 2;
    let desired_list: Vec<(String, Vec<usize>)> = (0..n)
        .map(|i| (format!("user{i}@example.edu"), vec![0, 1]))
        .collect();
    let text = roles_yaml(&roles, &desired_list);
    drop(desired_list);
    let both = vec!["Admin".to_string(), "CaptionEditor".to_string()];
    let seen: Vec<(StudioUser, bool)> = (0..n + grants / 40)
        .map(|i| {
            let role_names = match (i >= n, i % 20) {
                (true, _) => vec![roles[i % 2].clone()],
                (false, 0) => vec!["Admin".to_string()],
                (false, 1) => Vec::new(),
                _ => both.clone(),
            };
            let searched = role_names.is_empty();
            let user = StudioUser {
                id: i as u64 + 1,
                full_name: None,
                email: Some(format!("User{i}@Example.edu")),
                role_names,
            };
            (user, searched)
        })
        .collect();
    eprintln!(
        "planner: roles file {:.1} MB, {} users read",
        text.len() as f64 / 1e6,
        seen.len()
    );

    let probe = Probe::start();
    let desired = yaml::parse("roles.yaml", &text, &managed).expect("valid roles");
    let parse = (probe.wall(), probe.cpu());
    let peak_parse = peak_rss_mb();

    let (w, c) = (Instant::now(), cpu_seconds());
    let mut current = CurrentState::default();
    for (user, searched) in &seen {
        if *searched {
            let email = normalize_email(user.email.as_deref().unwrap_or_default());
            current.add_search(&managed, &email, std::slice::from_ref(user));
        } else {
            current.add_user(&managed, user);
        }
    }
    let current_t = (w.elapsed().as_secs_f64(), cpu_seconds() - c);
    let peak_current = peak_rss_mb();

    let (w, c) = (Instant::now(), cpu_seconds());
    let policy = Policy {
        remove_unlisted: true,
        protected: HashSet::new(),
        managed: managed.clone(),
    };
    let the_plan = plan(&desired, &current, &policy);
    let safety = studio_role_sync_engine::safety_limits::SafetyLimits {
        max_removals: usize::MAX,
        max_removal_ratio: 1.0,
        roles: Default::default(),
        remove_after: None,
    };
    check_guards(&the_plan, &desired, &policy, &safety).expect("guards pass");
    let plan_t = (w.elapsed().as_secs_f64(), cpu_seconds() - c);
    PlannerResult {
        grants: desired.grants(),
        desired_users: desired.users.len(),
        current_users: current.users.len(),
        actions: the_plan.actions.len(),
        pending: the_plan.pending.len(),
        parse,
        current: current_t,
        plan: plan_t,
        base_rss: probe.base_rss,
        peak_rss: [peak_parse, peak_current, peak_rss_mb()],
    }
}

// ---- report ------------------------------------------------------------------------------

fn machine() -> String {
    let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let model = cpuinfo
        .lines()
        .find_map(|l| l.strip_prefix("model name"))
        .map(|v| v.trim_start_matches([' ', '\t', ':']).to_string())
        .unwrap_or_else(|| "unknown CPU".into());
    let mem = std::fs::read_to_string("/proc/meminfo")
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix("MemTotal:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<f64>().ok())
        .map_or("?".into(), |kb| format!("{:.0} GiB", kb / 1024.0 / 1024.0));
    let cpus = std::thread::available_parallelism().map_or(0, |n| n.get());
    format!("{cpus} CPUs ({model}), {mem} RAM")
}

fn pct(a: f64, b: f64) -> String {
    if b == 0.0 {
        "-".into()
    } else {
        format!("{:.1}%", 100.0 * a / b)
    }
}

fn print_report(args: &Args, runs: &[Measured], planner: Option<&PlannerResult>) {
    println!("\n## Results\n");
    println!("Machine: {}", machine());
    println!(
        "Main tenant: {} users, {} managed roles, {} desired grants, latency {} ms, client {} rps, \
         server limit {}, concurrency {}, batch {}.\n",
        args.users,
        args.roles,
        args.grants,
        args.latency_ms,
        args.client_rps,
        args.server_rps.map_or("none".into(), |r| format!("{r} rps")),
        args.concurrency,
        args.batch_size
    );
    if !runs.is_empty() {
        println!(
            "| scenario | requests (list + search + PUT) | lower bound (list + search + PUT) | requests / bound | actions | wall s | rate rps | rate / limit | 429s | peak in flight | CPU s | RSS before → peak MB |"
        );
        println!("|---|---|---|---|---|---|---|---|---|---|---|---|");
        for m in runs {
            let b = m.bound;
            println!(
                "| {} | {} ({} + {} + {}) | {} ({} + {} + {}) | {} | {} | {:.2} | {:.0} | {} | {} | {} | {:.2} | {:.0} → {:.0} |",
                m.name,
                m.total,
                m.by_role,
                m.by_email,
                m.puts,
                b.total(),
                b.listing,
                b.searches,
                b.puts,
                pct(m.total as f64, b.total() as f64),
                m.actions_applied,
                m.wall,
                m.rate(),
                if m.limit.is_finite() { pct(m.rate(), m.limit) } else { "-".into() },
                m.throttled,
                m.max_in_flight,
                m.cpu,
                m.base_rss,
                m.peak_rss
            );
        }
        if runs.iter().any(|m| m.naive.is_some()) {
            println!(
                "\nNaive strategy (same tenant state, one request at a time; time est. from {} sampled searches/PUTs per scenario):\n",
                args.naive_sample
            );
            println!("| scenario | naive requests | ours | naive / ours (requests) | naive time s (est.) | ours s | naive / ours (time) |");
            println!("|---|---|---|---|---|---|---|");
            for m in runs {
                if let Some(n) = m.naive {
                    println!(
                        "| {} | {} | {} | {:.1}× | {:.0} | {:.2} | {:.0}× |",
                        m.name,
                        n.requests,
                        m.total,
                        n.requests as f64 / m.total as f64,
                        n.seconds,
                        m.wall,
                        n.seconds / m.wall
                    );
                    let _ = n.sampled;
                }
            }
        }
    }
    if let Some(p) = planner {
        println!(
            "\nPlanner only: {} grants ({} desired users), {} users in the current state → {} actions, {} pending\n",
            p.grants, p.desired_users, p.current_users, p.actions, p.pending
        );
        println!("| step | wall s | CPU s | peak RSS so far MB |");
        println!("|---|---|---|---|");
        println!(
            "| (before: roles file text and the users read, in memory) | | | {:.0} |",
            p.base_rss
        );
        println!(
            "| parse + validate roles file | {:.2} | {:.2} | {:.0} |",
            p.parse.0, p.parse.1, p.peak_rss[0]
        );
        println!(
            "| build current state | {:.2} | {:.2} | {:.0} |",
            p.current.0, p.current.1, p.peak_rss[1]
        );
        println!(
            "| plan + guards | {:.2} | {:.2} | {:.0} |",
            p.plan.0, p.plan.1, p.peak_rss[2]
        );
        println!(
            "| total | {:.2} | {:.2} | {:.0} (+{:.0}) |",
            p.parse.0 + p.current.0 + p.plan.0,
            p.parse.1 + p.current.1 + p.plan.1,
            p.peak_rss[2],
            p.peak_rss[2] - p.base_rss
        );
    }
}

fn main() {
    let args = Args::parse();
    let want: HashSet<&str> = args.scenarios.iter().map(String::as_str).collect();
    let planner = want
        .contains("planner")
        .then(|| planner_scenario(args.planner_grants));
    let runtime = tokio::runtime::Runtime::new().expect("tokio runtime");
    let mut runs = Vec::new();
    runtime.block_on(async {
        if ["first", "steady", "full", "drift"]
            .iter()
            .any(|s| want.contains(s))
        {
            main_scenarios(&args, &want, &mut runs).await;
        }
        if want.contains("ratelimit") {
            ratelimit_scenario(&args, &mut runs).await;
        }
    });
    print_report(&args, &runs, planner.as_ref());
}
