//! The daemon's HTTP endpoints: `/healthz`, `/readyz` and `/metrics`.
//!
//! `/healthz` answers while the process serves at all (a liveness probe restarts a hung
//! process, not a failing tenant). `/readyz` says whether the daemon is doing its job: the
//! config and desired state last loaded are valid, a run has finished, and the last run
//! neither failed nor was aborted by a safety guard; otherwise `503` with a short JSON reason.
//! Both read [`Readiness`], which the daemon updates.
//!
//! The endpoints face whatever can reach the port, so the server is bounded ([`HttpLimits`]):
//! a request head must arrive within a few seconds (this also closes idle keep-alive
//! connections), a request must be answered within a few more, a connection lives at most a
//! minute, heads are small, and at most a few hundred connections are served at once (more
//! wait in the kernel's backlog until a slot frees). The daemon's listeners share one
//! [`ConnectionBudget`], well below its open-file limit: idle clients can never take the
//! file descriptors a run needs for the history and for Studio. HTTP/1.1 only: Prometheus and kubelet
//! probes speak it, and it is the protocol whose limits hyper enforces here.
//!
//! Every answer carries the security headers ([`SECURITY_HEADERS`]), whoever wrote it: the
//! routes, the `408` of a request past its time, and the answers hyper writes on its own
//! before any route sees the request (`400` for garbage, `431` for a head too large, `414`),
//! which get them through the connection's writer ([`Headed`]).

use crate::model::run_status::RunStatus;
use crate::service::metrics::Metrics;
use axum::extract::Request;
use axum::extract::State;
use axum::http::{header, HeaderMap, HeaderName, HeaderValue, StatusCode};
use axum::response::IntoResponse;
use axum::routing::get;
use axum::{Json, Router};
use hyper::body::Incoming;
use hyper_util::rt::{TokioIo, TokioTimer};
use serde_json::{json, Value};
use std::convert::Infallible;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::{Arc, RwLock};
use std::task::{ready, Context, Poll};
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{watch, Semaphore};
use tower::ServiceExt;

/// The content security policy of every answer: nothing but the console's own style sheet
/// and images (its charts are inline SVG); the other endpoints load nothing at all.
pub(crate) const CONTENT_SECURITY_POLICY: &str =
    "default-src 'none'; style-src 'self'; img-src 'self' data:; \
     form-action 'self'; frame-ancestors 'none'; base-uri 'none'";

/// The headers every answer of every listener carries.
pub const SECURITY_HEADERS: [(&str, &str); 5] = [
    ("content-security-policy", CONTENT_SECURITY_POLICY),
    ("x-frame-options", "DENY"),
    ("cache-control", "no-store"),
    ("x-content-type-options", "nosniff"),
    ("referrer-policy", "no-referrer"),
];

/// Sets [`SECURITY_HEADERS`] on an answer.
pub fn add_security_headers(headers: &mut HeaderMap) {
    for (name, value) in SECURITY_HEADERS {
        headers.insert(
            HeaderName::from_static(name),
            HeaderValue::from_static(value),
        );
    }
}

/// What the daemon knows about its own health; `/readyz` is computed from it.
#[derive(Clone, Debug, Default)]
pub struct Readiness {
    /// The config file on disk is invalid (the daemon keeps the previous one): the message,
    /// with file and line.
    pub invalid_config: Option<String>,
    /// The desired state (roles file or SQL query) is invalid: the message, with file and line.
    pub invalid_desired: Option<String>,
    /// The last run, or the last attempt to start one; `None` until one has finished.
    pub last_run: Option<LastRun>,
    /// The schedule in effect now (a reload may change it), for "next run" on the console.
    pub schedule: Option<crate::service::daemon::Slots>,
    /// The history file was deleted, replaced or given a second name under the daemon: no run
    /// until that is undone.
    pub history_displaced: Option<crate::store::lock::Displaced>,
}

/// How the last run ended.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct LastRun {
    /// The run's id in the history; `None` when the run could not even be recorded or set up.
    pub id: Option<i64>,
    pub status: RunStatus,
    pub error: Option<String>,
}

impl Readiness {
    /// `None` when ready; otherwise the JSON reason served with `503`.
    pub fn not_ready(&self) -> Option<Value> {
        if let Some(d) = &self.history_displaced {
            return Some(json!({"ready": false, "reason": d.reason(), "detail": d.detail()}));
        }
        if let Some(e) = &self.invalid_config {
            return Some(json!({"ready": false, "reason": "invalid_config", "detail": e}));
        }
        if let Some(e) = &self.invalid_desired {
            return Some(json!({"ready": false, "reason": "invalid_desired_state", "detail": e}));
        }
        match &self.last_run {
            None => Some(json!({
                "ready": false,
                "reason": "starting",
                "detail": "the first run has not finished",
            })),
            Some(r) if matches!(r.status, RunStatus::Failed | RunStatus::Aborted) => Some(json!({
                "ready": false,
                "reason": format!("last_run_{}", r.status),
                "run_id": r.id,
                "detail": r.error,
            })),
            Some(_) => None,
        }
    }
}

#[derive(Clone)]
pub struct HttpState {
    pub readiness: Arc<RwLock<Readiness>>,
    pub metrics: Metrics,
}

pub fn router(state: HttpState) -> Router {
    Router::new()
        .route(
            "/healthz",
            get(|| async { Json(json!({"status": "alive"})) }),
        )
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics))
        .with_state(state)
}

async fn readyz(State(s): State<HttpState>) -> impl IntoResponse {
    let r = s
        .readiness
        .read()
        .unwrap_or_else(|e| e.into_inner())
        .clone();
    match r.not_ready() {
        Some(body) => (StatusCode::SERVICE_UNAVAILABLE, Json(body)),
        None => {
            let last = r.last_run.unwrap_or_default();
            (
                StatusCode::OK,
                Json(json!({
                    "ready": true,
                    "last_run": {"id": last.id, "status": last.status},
                })),
            )
        }
    }
}

async fn metrics(State(s): State<HttpState>) -> impl IntoResponse {
    (
        [(
            header::CONTENT_TYPE,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        s.metrics.render(),
    )
}

/// How much the HTTP endpoints give any one client.
#[derive(Clone, Copy, Debug)]
pub struct HttpLimits {
    /// A request head (request line and headers) must arrive within this, counted from when
    /// the server starts waiting for it: a half-sent request, or an idle keep-alive
    /// connection, is closed after it.
    pub header_read_timeout: Duration,
    /// A request must be answered within this (`408` otherwise).
    pub request_timeout: Duration,
    /// A connection is closed after this, whatever it is doing (a client that never reads
    /// its answer cannot hold a slot).
    pub connection_lifetime: Duration,
    /// Connections served at once; more wait in the listen backlog.
    pub max_connections: usize,
    /// Largest request head, in bytes (`431` beyond).
    pub max_header_bytes: usize,
}

impl Default for HttpLimits {
    fn default() -> Self {
        HttpLimits {
            header_read_timeout: Duration::from_secs(5),
            request_timeout: Duration::from_secs(10),
            connection_lifetime: Duration::from_secs(60),
            max_connections: 512,
            max_header_bytes: 16 * 1024,
        }
    }
}

/// Binds `listen`, logs `listening on ADDR` with the address actually bound (so port `0`
/// works), and serves within [`HttpLimits::default`] until `shutdown` resolves.
pub async fn serve(
    listen: SocketAddr,
    state: HttpState,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<(SocketAddr, tokio::task::JoinHandle<()>)> {
    serve_with_limits(listen, state, HttpLimits::default(), shutdown).await
}

/// As [`serve`], within `limits`.
pub(crate) async fn serve_with_limits(
    listen: SocketAddr,
    state: HttpState,
    limits: HttpLimits,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<(SocketAddr, tokio::task::JoinHandle<()>)> {
    let what = "(/healthz, /readyz, /metrics)";
    serve_router(listen, router(state), what, limits, shutdown).await
}

/// Extra routes the daemon serves beside its own (the binary hands it its console this
/// way, so the engine knows nothing of what they are). They are built once the daemon's state
/// exists, and served on `http.listen` or on a listener of their own, through the same bounded
/// accept loop either way.
pub struct HttpExtension {
    /// Its own listener; `None`: merged into the router of `http.listen`.
    pub listen: Option<SocketAddr>,
    /// What the `listening on` log line names, e.g. `console (/console/)`.
    pub name: String,
    pub build: Box<dyn FnOnce(&HttpState) -> Router + Send>,
}

/// Connections served at once by every listener that shares it; one more waits in the
/// kernel's backlog (costing this process no file descriptor) until a slot frees.
#[derive(Clone, Debug)]
pub(crate) struct ConnectionBudget {
    slots: Arc<Semaphore>,
    size: usize,
}

impl ConnectionBudget {
    /// Largest budget, whatever the open-file limit.
    pub const MAX: usize = 512;

    pub fn new(size: usize) -> ConnectionBudget {
        let size = size.max(1);
        ConnectionBudget {
            slots: Arc::new(Semaphore::new(size)),
            size,
        }
    }

    /// The budget for a process that may open `open_files` files: a quarter of them, at
    /// most [`Self::MAX`], so that three quarters stay for runs (the history, Studio,
    /// notifications) whatever the clients do.
    pub fn within(open_files: u64) -> ConnectionBudget {
        ConnectionBudget::new((open_files / 4).clamp(8, Self::MAX as u64) as usize)
    }

    pub fn size(&self) -> usize {
        self.size
    }
}

/// Binds `listen`, logs `listening on ADDR WHAT`, and serves `router` within `limits` until
/// `shutdown` resolves, with a connection budget of its own (`limits.max_connections`).
pub async fn serve_router(
    listen: SocketAddr,
    router: Router,
    what: &str,
    limits: HttpLimits,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<(SocketAddr, tokio::task::JoinHandle<()>)> {
    let budget = ConnectionBudget::new(limits.max_connections);
    serve_router_within(listen, router, what, limits, budget, shutdown).await
}

/// As [`serve_router`], with connections counted against `budget`, which other listeners
/// may share.
pub(crate) async fn serve_router_within(
    listen: SocketAddr,
    router: Router,
    what: &str,
    limits: HttpLimits,
    budget: ConnectionBudget,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<(SocketAddr, tokio::task::JoinHandle<()>)> {
    let listener = tokio::net::TcpListener::bind(listen).await?;
    let bound = listener.local_addr()?;
    tracing::info!("listening on {bound} {what}");
    let (stop_tx, stop) = watch::channel(false);
    tokio::spawn(async move {
        shutdown.await;
        let _ = stop_tx.send(true);
    });
    let task = tokio::spawn(accept_loop(listener, router, limits, budget, stop));
    Ok((bound, task))
}

/// Accepts while a connection slot is free; on shutdown, stops accepting, lets each
/// connection finish its request, and returns when all are closed.
async fn accept_loop(
    listener: TcpListener,
    router: Router,
    limits: HttpLimits,
    budget: ConnectionBudget,
    mut stop: watch::Receiver<bool>,
) {
    let slots = budget.slots;
    loop {
        let permit = tokio::select! {
            p = slots.clone().acquire_owned() => p.expect("the semaphore is never closed"),
            _ = stopped(&mut stop) => break,
        };
        let stream = tokio::select! {
            r = listener.accept() => match r {
                Ok((stream, _)) => stream,
                Err(e) => {
                    // Out of file descriptors, or a connection reset before accept: pause, go on.
                    tracing::warn!(error = %e, "HTTP endpoint cannot accept a connection");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            },
            _ = stopped(&mut stop) => break,
        };
        let router = router.clone();
        let stop = stop.clone();
        tokio::spawn(async move {
            serve_connection(stream, router, limits, stop).await;
            drop(permit);
        });
    }
    drop(listener);
    // Every slot back: every connection closed (those of the listeners sharing the budget
    // too: they stop at the same time).
    let _ = slots.acquire_many(budget.size as u32).await;
}

/// Resolves once shutdown is asked for (at once if it already was).
async fn stopped(stop: &mut watch::Receiver<bool>) {
    let _ = stop.wait_for(|s| *s).await;
}

async fn serve_connection(
    stream: TcpStream,
    router: Router,
    limits: HttpLimits,
    mut stop: watch::Receiver<bool>,
) {
    let service = hyper::service::service_fn(move |request: Request<Incoming>| {
        let router = router.clone();
        async move {
            let answer = tokio::time::timeout(limits.request_timeout, router.oneshot(request));
            let mut response = match answer.await {
                Ok(Ok(response)) => response,
                Ok(Err(never)) => match never {},
                Err(_) => (StatusCode::REQUEST_TIMEOUT, "request timed out\n").into_response(),
            };
            add_security_headers(response.headers_mut());
            Ok::<_, Infallible>(response)
        }
    });
    let conn = hyper::server::conn::http1::Builder::new()
        .timer(TokioTimer::new())
        .header_read_timeout(limits.header_read_timeout)
        .max_buf_size(limits.max_header_bytes.max(8192))
        .serve_connection(TokioIo::new(Headed::new(stream)), service);
    tokio::pin!(conn);
    let lifetime = tokio::time::sleep(limits.connection_lifetime);
    tokio::pin!(lifetime);
    tokio::select! {
        _ = conn.as_mut() => return,
        _ = &mut lifetime => {}
        _ = stopped(&mut stop) => {}
    }
    // Finish the request in progress, if any, then close; a client that stalls is dropped.
    conn.as_mut().graceful_shutdown();
    let _ = tokio::time::timeout(limits.request_timeout, conn).await;
}

/// A connection's stream that puts [`SECURITY_HEADERS`] into the answers hyper writes on
/// its own (a request it could not parse never reaches a route). Such an answer is the one
/// head hyper writes without them: every other answer got them in `serve_connection`.
/// Writes are not vectored, so hyper hands each answer over as one buffer, head first.
pub(crate) struct Headed<T> {
    io: T,
    /// A rewritten head still being written, how much of it is written, and how many bytes
    /// of hyper's buffer it stands for.
    out: Vec<u8>,
    written: usize,
    owed: usize,
}

impl<T> Headed<T> {
    pub(crate) fn new(io: T) -> Headed<T> {
        Headed {
            io,
            out: Vec::new(),
            written: 0,
            owed: 0,
        }
    }
}

/// `buf` with the security headers after its status line, when it is an answer head that
/// lacks them.
fn with_headers(buf: &[u8]) -> Option<Vec<u8>> {
    if !buf.starts_with(b"HTTP/1.") {
        return None;
    }
    let head_end = buf.windows(4).position(|w| w == b"\r\n\r\n")?;
    let head = buf[..head_end].to_ascii_lowercase();
    if head.windows(23).any(|w| w == b"\r\nx-content-type-options") {
        return None;
    }
    let line_end = buf.windows(2).position(|w| w == b"\r\n")? + 2;
    let mut out = Vec::with_capacity(buf.len() + 400);
    out.extend_from_slice(&buf[..line_end]);
    for (name, value) in SECURITY_HEADERS {
        out.extend_from_slice(format!("{name}: {value}\r\n").as_bytes());
    }
    out.extend_from_slice(&buf[line_end..]);
    Some(out)
}

impl<T: AsyncRead + Unpin> AsyncRead for Headed<T> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.io).poll_read(cx, buf)
    }
}

impl<T: AsyncWrite + Unpin> AsyncWrite for Headed<T> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        let this = &mut *self;
        if this.out.is_empty() {
            match with_headers(buf) {
                Some(out) => {
                    this.out = out;
                    this.written = 0;
                    this.owed = buf.len();
                }
                None => return Pin::new(&mut this.io).poll_write(cx, buf),
            }
        }
        // hyper asks again with the same bytes until they are taken: they are, once the
        // rewritten head is out.
        while this.written < this.out.len() {
            let n = ready!(Pin::new(&mut this.io).poll_write(cx, &this.out[this.written..]))?;
            if n == 0 {
                return Poll::Ready(Err(std::io::ErrorKind::WriteZero.into()));
            }
            this.written += n;
        }
        this.out.clear();
        Poll::Ready(Ok(this.owed))
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.io).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.io).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(status: RunStatus) -> Option<LastRun> {
        Some(LastRun {
            id: Some(7),
            status,
            error: Some("boom".into()),
        })
    }

    /// With every slot taken by half-sent requests, a new connection waits in the backlog
    /// until the header timeout frees a slot, then is answered.
    #[tokio::test]
    async fn connection_slots_free_up_after_the_header_timeout() {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let limits = HttpLimits {
            header_read_timeout: Duration::from_millis(300),
            max_connections: 2,
            ..HttpLimits::default()
        };
        let state = HttpState {
            readiness: Arc::default(),
            metrics: Metrics::new(),
        };
        let listen = "127.0.0.1:0".parse().unwrap();
        let (addr, task) = serve_with_limits(listen, state, limits, std::future::pending::<()>())
            .await
            .unwrap();
        let mut held = Vec::new();
        for _ in 0..2 {
            let mut s = TcpStream::connect(addr).await.unwrap();
            s.write_all(b"GET /healthz HTTP/1.1\r\n").await.unwrap();
            held.push(s);
        }
        let started = std::time::Instant::now();
        let mut s = TcpStream::connect(addr).await.unwrap();
        s.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
            .await
            .unwrap();
        let mut answer = String::new();
        s.read_to_string(&mut answer).await.unwrap();
        assert!(answer.starts_with("HTTP/1.1 200 OK"), "{answer}");
        assert!(
            started.elapsed() >= Duration::from_millis(200),
            "answered before a slot was free"
        );
        for mut h in held {
            let mut rest = Vec::new();
            let _ = h.read_to_end(&mut rest).await;
        }
        task.abort();
    }

    #[test]
    fn readiness_reasons_in_order() {
        let mut r = Readiness::default();
        assert_eq!(r.not_ready().unwrap()["reason"], "starting");
        r.last_run = run(RunStatus::Succeeded);
        assert!(r.not_ready().is_none());
        r.last_run = run(RunStatus::Partial);
        assert!(r.not_ready().is_none(), "a partial run still did its job");
        r.last_run = run(RunStatus::Failed);
        let why = r.not_ready().unwrap();
        assert_eq!(why["reason"], "last_run_failed");
        assert_eq!(why["run_id"], 7);
        r.last_run = run(RunStatus::Aborted);
        assert_eq!(r.not_ready().unwrap()["reason"], "last_run_aborted");
        r.invalid_desired = Some("roles.yaml:3: bad".into());
        assert_eq!(r.not_ready().unwrap()["reason"], "invalid_desired_state");
        r.invalid_config = Some("c.yaml:1: bad".into());
        assert_eq!(r.not_ready().unwrap()["reason"], "invalid_config");
    }
}
