//! The leader lease on real PostgreSQL (issue 20): several contenders on one schema, exactly
//! one leads; a dead leader is replaced within lease + one renew interval; a graceful stop
//! hands over at once; an old term's writes are refused by the fence; a leader cut off from
//! PostgreSQL knows it lost before its lease ends; two schemas are two leases.
//!
//! Needs a server: set `STUDIO_ROLE_SYNC_TEST_POSTGRES_URL` (`.ci/run` does). Without it, or
//! when the server cannot be reached, every test is reported *ignored* with the reason, never
//! passed; with `CI=true` they fail instead (so this binary has its own harness). Each test
//! works in its own schema, created with the lease's migration and dropped at the end.

mod support;

use libtest_mimic::{Completion, Trial};
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::{Connection, Executor, PgConnection, PgPool, Row};
use std::future::Future;
use std::str::FromStr;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;
use studio_role_sync_engine::leadership::{LeaderState, Leadership};
use studio_role_sync_engine::lease::{fence, Epoch, FenceError, Lease};
use studio_role_sync_engine::metrics::Metrics;
use studio_role_sync_engine::shutdown::CancellationToken;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::watch;
use tokio::time::Instant;

const PG_ENV: &str = "STUDIO_ROLE_SYNC_TEST_POSTGRES_URL";
const MIGRATION: &str = include_str!("../migrations/postgres/0002_leader_lease.sql");

fn main() -> std::process::ExitCode {
    let args = libtest_mimic::Arguments::from_args();
    let trials = vec![
        trial(
            "two_contenders_exactly_one_leads",
            two_contenders_exactly_one_leads,
        ),
        trial(
            "a_dead_leader_is_replaced_within_lease_and_one_renew",
            a_dead_leader_is_replaced_within_lease_and_one_renew,
        ),
        trial(
            "a_graceful_stop_hands_over_at_once",
            a_graceful_stop_hands_over_at_once,
        ),
        trial(
            "a_write_of_an_old_term_is_refused",
            a_write_of_an_old_term_is_refused,
        ),
        trial(
            "a_fenced_write_holds_off_a_takeover_until_it_commits",
            a_fenced_write_holds_off_a_takeover_until_it_commits,
        ),
        trial(
            "a_leader_whose_postgres_hangs_knows_it_lost_before_its_lease_ends",
            a_leader_whose_postgres_hangs_knows_it_lost_before_its_lease_ends,
        ),
        trial(
            "a_leader_whose_connection_drops_knows_it_lost_before_its_lease_ends",
            a_leader_whose_connection_drops_knows_it_lost_before_its_lease_ends,
        ),
        trial("two_schemas_are_two_leases", two_schemas_are_two_leases),
    ];
    libtest_mimic::run(&args, trials).exit_code()
}

/// One test on a fresh runtime; ignored (failed under `CI=true`) without a reachable server.
fn trial<F, Fut>(name: &str, body: F) -> Trial
where
    F: FnOnce(String) -> Fut + Send + 'static,
    Fut: Future<Output = ()>,
{
    Trial::ignorable_test(name, move || {
        let Some(url) = std::env::var(PG_ENV).ok().filter(|u| !u.trim().is_empty()) else {
            return support::unavailable(format!("set {PG_ENV} to run against PostgreSQL"));
        };
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .expect("a runtime");
        // The error only, never the URL: it may carry a password.
        if let Err(e) = rt.block_on(PgConnection::connect(&url)) {
            return support::unavailable(format!("cannot reach PostgreSQL ({PG_ENV}): {e}"));
        }
        rt.block_on(body(url));
        Ok(Completion::Completed)
    })
}

static SCHEMAS: AtomicU32 = AtomicU32::new(0);

/// A schema of this test's own, holding the lease table.
struct Schema {
    url: String,
    name: String,
}

impl Schema {
    async fn create(url: &str) -> Schema {
        let name = format!(
            "srs_lease_{}_{}",
            std::process::id(),
            SCHEMAS.fetch_add(1, Ordering::SeqCst)
        );
        let mut c = PgConnection::connect(url).await.unwrap();
        c.execute(format!("DROP SCHEMA IF EXISTS {name} CASCADE; CREATE SCHEMA {name}; SET search_path TO {name}").as_str())
            .await
            .unwrap();
        sqlx::raw_sql(MIGRATION).execute(&mut c).await.unwrap();
        c.execute("CREATE TABLE writes (epoch BIGINT NOT NULL)")
            .await
            .unwrap();
        Schema {
            url: url.to_string(),
            name,
        }
    }

    /// Connections with `search_path` = this schema, through `port` when given (a proxy).
    fn options(&self, port: Option<u16>) -> PgConnectOptions {
        let o = PgConnectOptions::from_str(&self.url)
            .unwrap()
            .options([("search_path", self.name.as_str())]);
        match port {
            Some(p) => o.host("127.0.0.1").port(p),
            None => o,
        }
    }

    async fn pool(&self) -> PgPool {
        self.pool_via(None).await
    }

    async fn pool_via(&self, port: Option<u16>) -> PgPool {
        PgPoolOptions::new()
            .max_connections(3)
            .acquire_timeout(Duration::from_secs(2))
            .connect_with(self.options(port))
            .await
            .unwrap()
    }

    /// The lease row as the database sees it now: (holder, epoch, seconds until it expires).
    async fn row(&self) -> (String, i64, f64) {
        let mut c = PgConnection::connect_with(&self.options(None))
            .await
            .unwrap();
        let r = sqlx::query(
            "SELECT holder, epoch, extract(epoch FROM expires_at - now())::float8 AS left_s FROM leader_lease",
        )
        .fetch_one(&mut c)
        .await
        .unwrap();
        (r.get("holder"), r.get("epoch"), r.get("left_s"))
    }

    async fn writes(&self) -> Vec<i64> {
        let mut c = PgConnection::connect_with(&self.options(None))
            .await
            .unwrap();
        sqlx::query_scalar("SELECT epoch FROM writes ORDER BY epoch")
            .fetch_all(&mut c)
            .await
            .unwrap()
    }

    async fn drop(self) {
        let mut c = PgConnection::connect(&self.url).await.unwrap();
        c.execute(format!("DROP SCHEMA {} CASCADE", self.name).as_str())
            .await
            .unwrap();
    }
}

/// A running [`Leadership`] with what it needs to be stopped or killed.
struct Daemon {
    leadership: Leadership,
    metrics: Metrics,
    stop: CancellationToken,
    task: tokio::task::JoinHandle<()>,
}

fn start(pool: PgPool, lease: Duration) -> Daemon {
    let metrics = Metrics::new();
    let stop = CancellationToken::new();
    let (leadership, task) = Leadership::spawn(
        Lease::new(pool, lease),
        metrics.clone(),
        stop.clone(),
        studio_role_sync_engine::history::WriteTerm::default(),
    );
    Daemon {
        leadership,
        metrics,
        stop,
        task,
    }
}

/// Waits until `d` leads (its epoch), failing after `within`.
async fn leads_within(d: &Daemon, within: Duration) -> Epoch {
    let mut w = d.leadership.watch();
    let state = tokio::time::timeout(
        within,
        w.wait_for(|s| matches!(s, LeaderState::Leader { .. })),
    )
    .await
    .unwrap_or_else(|_| panic!("no leadership within {within:?}"))
    .unwrap()
    .clone();
    match state {
        LeaderState::Leader { epoch, .. } => epoch,
        LeaderState::Standby { .. } => unreachable!(),
    }
}

/// Waits until `d` says it no longer leads, failing after `within`.
async fn standby_within(d: &Daemon, within: Duration) {
    let mut w = d.leadership.watch();
    tokio::time::timeout(
        within,
        w.wait_for(|s| matches!(s, LeaderState::Standby { .. })),
    )
    .await
    .unwrap_or_else(|_| panic!("still leader after {within:?}"))
    .unwrap();
}

fn gauge(m: &Metrics) -> &'static str {
    let text = m.render();
    if text.contains("\nstudio_role_sync_leader 1\n") {
        "leader"
    } else if text.contains("\nstudio_role_sync_leader 0\n") {
        "standby"
    } else {
        panic!("no studio_role_sync_leader gauge in\n{text}")
    }
}

async fn two_contenders_exactly_one_leads(url: String) {
    let s = Schema::create(&url).await;
    let pool = s.pool().await;
    // The statement alone: two acquisitions at once, one wins.
    let (a, b) = (
        Lease::new(pool.clone(), Duration::from_secs(30)),
        Lease::new(pool.clone(), Duration::from_secs(30)),
    );
    let (ea, eb) = tokio::join!(a.acquire(), b.acquire());
    let (ea, eb) = (ea.unwrap(), eb.unwrap());
    assert!(
        ea.is_some() != eb.is_some(),
        "exactly one wins: {ea:?} {eb:?}"
    );
    let winner = if ea.is_some() { &a } else { &b };
    assert_eq!(
        winner.acquire().await.unwrap(),
        ea.or(eb),
        "taking back our live lease is a renewal"
    );
    let info = b.leader().await.unwrap().expect("a live leader");
    assert_eq!(info.holder, winner.holder().id());
    assert_eq!(info.pid, i64::from(std::process::id()));
    let message = info.to_string();
    assert!(
        message.starts_with(&format!(
            "the daemon on {} (pid {}) leads since 20",
            info.host, info.pid
        )),
        "{message}"
    );
    winner.release(ea.or(eb).unwrap()).await.unwrap();
    assert_eq!(b.leader().await.unwrap(), None);

    // Two daemons over several renewals: at every look, exactly one leads.
    let lease = Duration::from_secs(3);
    let (d1, d2) = (start(pool.clone(), lease), start(pool.clone(), lease));
    tokio::time::sleep(Duration::from_millis(500)).await;
    let deadline = Instant::now() + lease * 2;
    while Instant::now() < deadline {
        let leading = [&d1, &d2]
            .iter()
            .filter(|d| d.leadership.is_leader_now().is_some())
            .count();
        assert_eq!(leading, 1);
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let mut gauges = [gauge(&d1.metrics), gauge(&d2.metrics)];
    gauges.sort();
    assert_eq!(gauges, ["leader", "standby"]);
    for d in [d1, d2] {
        d.stop.cancel();
        d.task.await.unwrap();
    }
    s.drop().await;
}

async fn a_dead_leader_is_replaced_within_lease_and_one_renew(url: String) {
    let s = Schema::create(&url).await;
    let lease = Duration::from_secs(3);
    let first = start(s.pool().await, lease);
    let old = leads_within(&first, lease).await;
    let second = start(s.pool().await, lease);
    tokio::time::sleep(lease / 2).await;
    assert_eq!(second.leadership.is_leader_now(), None);
    // A crash: the task is gone without releasing (its last renewal was before now).
    first.task.abort();
    let died = Instant::now();
    let new = leads_within(&second, lease * 3).await;
    let took = died.elapsed();
    assert!(
        took <= lease + lease / 3 + Duration::from_millis(700),
        "took over after {took:?}"
    );
    assert!(new > old, "the epoch grows: {old} then {new}");
    assert_eq!(
        first.leadership.is_leader_now(),
        None,
        "the dead leader's own deadline passed first"
    );
    assert_eq!(gauge(&second.metrics), "leader");
    assert!(second
        .metrics
        .render()
        .contains("studio_role_sync_leader_changes_total 1"));
    second.stop.cancel();
    second.task.await.unwrap();
    s.drop().await;
}

async fn a_graceful_stop_hands_over_at_once(url: String) {
    let s = Schema::create(&url).await;
    let pool = s.pool().await;
    let long = Duration::from_secs(60);
    let (a, b) = (
        Lease::new(pool.clone(), long),
        Lease::new(pool.clone(), long),
    );
    let e1 = a.acquire().await.unwrap().unwrap();
    assert_eq!(b.acquire().await.unwrap(), None);
    a.release(e1).await.unwrap();
    let e2 = b
        .acquire()
        .await
        .unwrap()
        .expect("free at once after a release");
    assert_eq!(e2.get(), e1.get() + 1);
    assert!(
        !a.renew(e1).await.unwrap(),
        "a released term cannot be renewed"
    );
    b.release(e2).await.unwrap();

    // The task: a cancelled leader releases, and a standby leads at its next try, long
    // before the 9s lease would have expired.
    let lease = Duration::from_secs(9);
    let first = start(pool.clone(), lease);
    leads_within(&first, lease).await;
    let second = start(pool.clone(), lease);
    tokio::time::sleep(Duration::from_millis(300)).await;
    first.stop.cancel();
    first.task.await.unwrap();
    assert_eq!(gauge(&first.metrics), "standby");
    let stopped = Instant::now();
    leads_within(&second, lease).await;
    assert!(
        stopped.elapsed() < lease / 3 + Duration::from_millis(700),
        "{:?}",
        stopped.elapsed()
    );
    second.stop.cancel();
    second.task.await.unwrap();
    assert_eq!(a.leader().await.unwrap(), None, "the last one released too");
    s.drop().await;
}

async fn fenced_write(pool: &PgPool, epoch: Epoch) -> Result<(), FenceError> {
    let mut tx = pool.begin().await?;
    fence(&mut tx, epoch).await?;
    sqlx::query("INSERT INTO writes (epoch) VALUES ($1)")
        .bind(epoch.get())
        .execute(&mut *tx)
        .await?;
    tx.commit().await?;
    Ok(())
}

async fn a_write_of_an_old_term_is_refused(url: String) {
    let s = Schema::create(&url).await;
    let pool = s.pool().await;
    let (a, b) = (
        Lease::new(pool.clone(), Duration::from_secs(60)),
        Lease::new(pool.clone(), Duration::from_secs(60)),
    );
    let old = a.acquire().await.unwrap().unwrap();
    fenced_write(&pool, old).await.unwrap();
    a.release(old).await.unwrap();
    let new = b.acquire().await.unwrap().unwrap();
    match fenced_write(&pool, old).await {
        Err(FenceError::LeadershipLost(e)) => assert_eq!(e, old),
        other => panic!("the old term's write went on: {other:?}"),
    }
    fenced_write(&pool, new).await.unwrap();
    assert_eq!(
        s.writes().await,
        vec![old.get(), new.get()],
        "the refused write left nothing"
    );
    let lost = FenceError::LeadershipLost(old).to_string();
    assert!(lost.starts_with("leadership lost"), "{lost}");

    // An expired term is refused too, even with nobody else there yet.
    let short = Lease::new(pool.clone(), Duration::from_millis(300));
    b.release(new).await.unwrap();
    let e = short.acquire().await.unwrap().unwrap();
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(matches!(
        fenced_write(&pool, e).await,
        Err(FenceError::LeadershipLost(_))
    ));
    assert!(
        !short.renew(e).await.unwrap(),
        "a lapsed lease is not renewed"
    );
    let again = short.acquire().await.unwrap().unwrap();
    assert!(again > e, "taking a lapsed lease back is a new term");
    s.drop().await;
}

async fn a_fenced_write_holds_off_a_takeover_until_it_commits(url: String) {
    let s = Schema::create(&url).await;
    let pool = s.pool().await;
    let leader = Lease::new(pool.clone(), Duration::from_secs(1));
    let epoch = leader.acquire().await.unwrap().unwrap();
    let mut tx = pool.begin().await.unwrap();
    fence(&mut tx, epoch).await.unwrap();
    // The lease expires while the fenced transaction is open: the takeover must wait.
    tokio::time::sleep(Duration::from_millis(1300)).await;
    let contender = Lease::new(pool.clone(), Duration::from_secs(30));
    let takeover = tokio::spawn(async move { contender.acquire().await });
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(
        !takeover.is_finished(),
        "the takeover went through a fenced transaction"
    );
    sqlx::query("INSERT INTO writes (epoch) VALUES ($1)")
        .bind(epoch.get())
        .execute(&mut *tx)
        .await
        .unwrap();
    tx.commit().await.unwrap();
    let next = takeover
        .await
        .unwrap()
        .unwrap()
        .expect("taken over once the write committed");
    assert!(next > epoch);
    assert_eq!(s.writes().await, vec![epoch.get()]);
    assert!(matches!(
        fenced_write(&pool, epoch).await,
        Err(FenceError::LeadershipLost(_))
    ));
    s.drop().await;
}

/// What the proxy does with the bytes between a pool and PostgreSQL.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Link {
    Pass,
    /// Bytes are read and held: statements hang (a partition, a frozen server).
    Hang,
    /// Every connection is closed and new ones refused.
    Cut,
}

/// A TCP proxy on 127.0.0.1 in front of PostgreSQL whose link can hang or be cut.
struct Proxy {
    port: u16,
    link: watch::Sender<Link>,
}

impl Proxy {
    async fn start(upstream: &str) -> Proxy {
        let target = {
            let o = PgConnectOptions::from_str(upstream).unwrap();
            format!("{}:{}", o.get_host(), o.get_port())
        };
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let (link, rx) = watch::channel(Link::Pass);
        let mut cut = rx.clone();
        tokio::spawn(async move {
            loop {
                let client = tokio::select! {
                    c = listener.accept() => match c { Ok((c, _)) => c, Err(_) => return },
                    _ = cut.wait_for(|l| *l == Link::Cut) => return,
                };
                let Ok(server) = tokio::net::TcpStream::connect(&target).await else {
                    continue;
                };
                let (cr, cw) = client.into_split();
                let (sr, sw) = server.into_split();
                tokio::spawn(pipe(cr, sw, rx.clone()));
                tokio::spawn(pipe(sr, cw, rx.clone()));
            }
        });
        Proxy { port, link }
    }
}

async fn pipe(
    mut from: tokio::net::tcp::OwnedReadHalf,
    mut to: tokio::net::tcp::OwnedWriteHalf,
    mut link: watch::Receiver<Link>,
) {
    let mut buf = vec![0u8; 16 * 1024];
    loop {
        let n = tokio::select! {
            r = from.read(&mut buf) => match r { Ok(0) | Err(_) => return, Ok(n) => n },
            _ = link.wait_for(|l| *l == Link::Cut) => return,
        };
        match link.wait_for(|l| *l != Link::Hang).await.map(|l| *l) {
            Ok(Link::Pass) => {}
            _ => return,
        }
        if to.write_all(&buf[..n]).await.is_err() {
            return;
        }
    }
}

/// A leader through a proxy loses PostgreSQL (`how`): it must say it lost while the row in
/// the database still shows its live lease, so nobody could have taken over yet.
async fn cut_off_leader(url: String, how: Link) {
    let s = Schema::create(&url).await;
    let proxy = Proxy::start(&url).await;
    let lease = Duration::from_secs(6);
    let leader = start(s.pool_via(Some(proxy.port)).await, lease);
    let epoch = leads_within(&leader, lease).await;
    // Past one renewal, so the local deadline comes from a renewal, not the acquisition.
    tokio::time::sleep(lease / 3 + Duration::from_millis(200)).await;
    assert_eq!(leader.leadership.is_leader_now(), Some(epoch));
    proxy.link.send_replace(how);
    standby_within(&leader, lease * 2).await;
    let (holder, row_epoch, left) = s.row().await;
    assert_eq!(row_epoch, epoch.get());
    assert!(
        left > 0.0,
        "the leader noticed only after its lease expired ({left:.2}s left)"
    );
    assert_eq!(leader.leadership.is_leader_now(), None);
    assert_eq!(gauge(&leader.metrics), "standby");
    let other = Lease::new(s.pool().await, lease);
    assert_eq!(
        other.acquire().await.unwrap(),
        None,
        "still {holder}'s until it expires"
    );
    tokio::time::sleep(Duration::from_secs_f64(left) + Duration::from_millis(100)).await;
    assert!(other.acquire().await.unwrap().unwrap() > epoch);
    leader.stop.cancel();
    leader.task.await.unwrap();
    s.drop().await;
}

async fn a_leader_whose_postgres_hangs_knows_it_lost_before_its_lease_ends(url: String) {
    cut_off_leader(url, Link::Hang).await;
}

async fn a_leader_whose_connection_drops_knows_it_lost_before_its_lease_ends(url: String) {
    cut_off_leader(url, Link::Cut).await;
}

async fn two_schemas_are_two_leases(url: String) {
    let (s1, s2) = (Schema::create(&url).await, Schema::create(&url).await);
    let (p1, p2) = (s1.pool().await, s2.pool().await);
    let long = Duration::from_secs(60);
    let (a, b) = (Lease::new(p1.clone(), long), Lease::new(p2.clone(), long));
    let ea = a.acquire().await.unwrap().expect("leads tenant 1");
    let eb = b
        .acquire()
        .await
        .unwrap()
        .expect("leads tenant 2, although tenant 1 has a leader");
    assert_eq!(Lease::new(p1.clone(), long).acquire().await.unwrap(), None);
    assert_eq!(Lease::new(p2.clone(), long).acquire().await.unwrap(), None);
    // One tenant's fence knows nothing of the other's terms.
    fenced_write(&p1, ea).await.unwrap();
    a.release(ea).await.unwrap();
    assert!(b.renew(eb).await.unwrap(), "tenant 2's lease is untouched");
    assert_eq!(b.leader().await.unwrap().map(|l| l.epoch), Some(eb));
    assert_eq!(a.leader().await.unwrap(), None);
    assert_eq!(
        (s1.writes().await, s2.writes().await),
        (vec![ea.get()], vec![])
    );
    s1.drop().await;
    s2.drop().await;
}
