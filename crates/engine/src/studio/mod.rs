//! The Canvas Studio API client.
//!
//! Everything that crosses the network to Studio goes through [`StudioClient::send`], which
//! owns the cross-cutting rules once: the shared pace ([`pace`]), the bound on requests in
//! flight, authentication and its refresh on `401` ([`auth`]), retries with backoff and jitter
//! for `429` (and Canvas-style `403 Rate Limit Exceeded`), `5xx`, timeouts and broken
//! connections, the bounds on what arrives (bodies, `Retry-After`, page counts: see
//! [`untrusted`]), and the counting of every request for the run record and the metrics. The
//! endpoint methods below are thin. Whom the client trusts is [`tls`]'s; OAuth is [`oauth`]'s,
//! its token storage [`tokens`]'s; `validate --online` is [`online`]'s.

mod api;
pub mod auth;
pub(crate) mod oauth;
pub mod online;
pub(crate) mod pace;
pub mod tls;
pub mod tokens;
pub(crate) mod untrusted;

use crate::input::config::StudioConfig;
use crate::service::metrics::Metrics;
use api::{ErrorBody, Page, PutAnswer, PutBody};
pub use api::{StudioUser, UsersPage, WireAction};
use auth::Auth;
use pace::Pace;
use rand::Rng;

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::Semaphore;
use untrusted::{read_body, Body};
use url::Url;

/// The largest page Studio serves.
pub const PER_PAGE: u32 = 50;

/// The endpoints the client calls, as they are labelled in metrics.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Endpoint {
    SearchByRole,
    SearchByEmail,
    GetUser,
    PutRoles,
    Token,
    Ping,
    ApiDocs,
}

impl Endpoint {
    pub fn as_str(self) -> &'static str {
        match self {
            Endpoint::SearchByRole => "search_by_role",
            Endpoint::SearchByEmail => "search_by_email",
            Endpoint::GetUser => "get_user",
            Endpoint::PutRoles => "put_roles",
            Endpoint::Token => "token",
            Endpoint::Ping => "ping",
            Endpoint::ApiDocs => "apidocs",
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum StudioError {
    #[error("Studio refused the credentials (401 Unauthorized) for {endpoint}: {hint}")]
    Unauthorized {
        endpoint: &'static str,
        hint: String,
    },
    #[error("Studio answered {status} to {endpoint}: {message}")]
    Status {
        endpoint: &'static str,
        status: u16,
        message: String,
    },
    #[error("cannot reach Studio ({endpoint}) after {attempts} attempt(s): {message}")]
    Unreachable {
        endpoint: &'static str,
        attempts: u32,
        message: String,
    },
    #[error("Studio sent a response to {endpoint} that is not the expected JSON after {attempts} attempt(s): {message}")]
    Malformed {
        endpoint: &'static str,
        attempts: u32,
        message: String,
    },
    #[error("{0}")]
    Auth(String),
    /// A change not sent: the [`ChangeGate`] refused it (this process no longer leads).
    #[error("not sent: {0}")]
    NotLeading(String),
}

/// Asked before every attempt of a request that changes Studio (`PUT /users/roles`), the first
/// and each retry: a process that may have lost the right to change Studio while it waited (a
/// daemon whose lease ended, paused past it) finds out before it sends, not after.
pub trait ChangeGate: Send + Sync {
    fn may_change(&self) -> futures::future::BoxFuture<'_, Result<(), String>>;
}

impl StudioError {
    /// The HTTP status behind the error, if Studio answered one.
    pub fn status(&self) -> Option<u16> {
        match self {
            StudioError::Status { status, .. } => Some(*status),
            StudioError::Unauthorized { .. } => Some(401),
            _ => None,
        }
    }

    /// Errors that mean the server (or the way to it) is failing, not the request.
    pub fn is_outage(&self) -> bool {
        matches!(
            self,
            StudioError::Unreachable { .. } | StudioError::Malformed { .. }
        ) || self.status().is_some_and(|s| s >= 500 || s == 429)
    }

    /// Errors that make every further request pointless: stop the run.
    pub fn is_fatal(&self) -> bool {
        matches!(
            self,
            StudioError::Unauthorized { .. } | StudioError::Auth(_)
        )
    }
}

/// Retries granted to `429` answers on top of `max_retries`: being told to wait is not a fault.
const EXTRA_RETRIES_FOR_429: u32 = 30;
/// New tokens tried for one request after `401`s: another process sharing the token lineage
/// may rotate it (revoking the one in hand) between a retry and its answer, but a token that
/// keeps being refused is a credential problem, not a race.
const MAX_REAUTHENTICATIONS: u32 = 3;
/// The longest `Retry-After` of a `5xx` answer that is waited for before a retry.
const MAX_5XX_RETRY_AFTER: Duration = Duration::from_secs(30);

#[derive(Clone)]
pub struct StudioClient {
    inner: Arc<Inner>,
    /// `None`: this process alone changes Studio.
    gate: Option<Arc<dyn ChangeGate>>,
}

struct Inner {
    http: reqwest::Client,
    api: Url,
    auth: Auth,
    pace: Pace,
    in_flight: Semaphore,
    max_retries: u32,
    metrics: Metrics,
    counters: Counters,
}

/// Totals since the client was made; a run reads them before and after.
#[derive(Default)]
struct Counters {
    requests: AtomicU64,
    retries: AtomicU64,
    throttled: AtomicU64,
}

/// A snapshot of [`Counters`].
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct RequestCounts {
    pub requests: u64,
    pub retries: u64,
    pub throttled: u64,
}

impl RequestCounts {
    pub fn since(self, earlier: RequestCounts) -> RequestCounts {
        RequestCounts {
            requests: self.requests - earlier.requests,
            retries: self.retries - earlier.retries,
            throttled: self.throttled - earlier.throttled,
        }
    }
}

impl StudioClient {
    /// The client `studio:` configures, authenticating with `auth` (see
    /// [`Auth::from_config`]).
    pub fn new(
        studio: &StudioConfig,
        auth: Auth,
        metrics: Metrics,
    ) -> Result<StudioClient, StudioError> {
        let http = tls::http_client(studio)?;
        let mut api = studio.base_url.clone();
        api.set_path(&format!(
            "{}/api/public/v1/",
            api.path().trim_end_matches('/')
        ));
        Ok(StudioClient {
            inner: Arc::new(Inner {
                http,
                api,
                auth,
                pace: Pace::new(studio.requests_per_second, studio.burst),
                in_flight: Semaphore::new(studio.concurrency.max(1)),
                max_retries: studio.max_retries,
                metrics,
                counters: Counters::default(),
            }),
            gate: None,
        })
    }

    /// The same client, asking `gate` before every attempt to change Studio.
    pub fn gated(mut self, gate: Arc<dyn ChangeGate>) -> StudioClient {
        self.gate = Some(gate);
        self
    }

    pub fn counts(&self) -> RequestCounts {
        let c = &self.inner.counters;
        RequestCounts {
            requests: c.requests.load(Ordering::Relaxed),
            retries: c.retries.load(Ordering::Relaxed),
            throttled: c.throttled.load(Ordering::Relaxed),
        }
    }

    pub fn http(&self) -> &reqwest::Client {
        &self.inner.http
    }

    /// `path` under the API root (`…/api/public/v1/`); `../x` reaches `…/api/public/x`.
    pub fn api_url(&self, path: &str) -> Result<Url, StudioError> {
        self.inner
            .api
            .join(path)
            .map_err(|e| StudioError::Unreachable {
                endpoint: "client",
                attempts: 0,
                message: format!("cannot build the URL of {path}: {e}"),
            })
    }

    /// One page of `GET /users/search` for a role.
    pub async fn users_with_role(&self, role: &str, page: u32) -> Result<UsersPage, StudioError> {
        let page_s = page.to_string();
        let per_page = PER_PAGE.to_string();
        let query = [("role", role), ("page", &page_s), ("per_page", &per_page)];
        self.search(Endpoint::SearchByRole, &query).await
    }

    /// One page of `GET /users/search` for an email (the server may match loosely).
    pub async fn users_with_email(&self, email: &str, page: u32) -> Result<UsersPage, StudioError> {
        let page_s = page.to_string();
        let per_page = PER_PAGE.to_string();
        let query = [("email", email), ("page", &page_s), ("per_page", &per_page)];
        self.search(Endpoint::SearchByEmail, &query).await
    }

    async fn search(
        &self,
        endpoint: Endpoint,
        query: &[(&str, &str)],
    ) -> Result<UsersPage, StudioError> {
        let url = self.inner.api.join("users/search").expect("static path");
        let page: Page = self
            .send(endpoint, |http| http.get(url.clone()).query(query))
            .await?;
        let last_page = page.meta.and_then(|m| m.last_page).unwrap_or(1).max(1);
        // A hostile or broken `last_page` must not become millions of requests.
        if last_page > untrusted::MAX_PAGES {
            return Err(StudioError::Malformed {
                endpoint: endpoint.as_str(),
                attempts: 1,
                message: format!(
                    "meta.last_page is {last_page}, more than the {} pages this tool follows",
                    untrusted::MAX_PAGES
                ),
            });
        }
        Ok(UsersPage {
            users: page.users,
            last_page,
        })
    }

    /// `PUT /users/roles` with one batch; Studio answers the updated users.
    pub async fn put_roles(&self, actions: &[WireAction]) -> Result<Vec<StudioUser>, StudioError> {
        let url = self.inner.api.join("users/roles").expect("static path");
        let body = PutBody { actions };
        let answer: PutAnswer = self
            .send(Endpoint::PutRoles, |http| http.put(url.clone()).json(&body))
            .await?;
        Ok(answer.users)
    }

    /// Sends a request built by `build`, with pace, auth, retries and counting; parses the
    /// JSON answer as `T`. Every retry decision is taken here, in one place.
    pub async fn send<T, F>(&self, endpoint: Endpoint, build: F) -> Result<T, StudioError>
    where
        T: serde::de::DeserializeOwned,
        F: Fn(&reqwest::Client) -> reqwest::RequestBuilder,
    {
        self.send_with(endpoint, build, |bytes| {
            serde_json::from_slice::<T>(bytes).map_err(|e| e.to_string())
        })
        .await
    }

    /// As [`send`](Self::send), with the answer's body (at most [`untrusted::MAX_API_BODY`]
    /// bytes) decoded by `decode`; a decoding error is a malformed answer, retried.
    pub async fn send_with<T, F, D>(
        &self,
        endpoint: Endpoint,
        build: F,
        decode: D,
    ) -> Result<T, StudioError>
    where
        F: Fn(&reqwest::Client) -> reqwest::RequestBuilder,
        D: Fn(&[u8]) -> Result<T, String>,
    {
        let inner = &*self.inner;
        let name = endpoint.as_str();
        let mut failures = 0u32;
        let mut throttles = 0u32;
        let mut reauthentications = 0u32;
        loop {
            let attempts = failures + throttles + 1;
            if let (Endpoint::PutRoles, Some(gate)) = (endpoint, &self.gate) {
                gate.may_change().await.map_err(StudioError::NotLeading)?;
            }
            match self.attempt(name, &build, &decode, attempts).await? {
                Attempt::Done(value) => {
                    inner.pace.succeeded();
                    return Ok(value);
                }
                Attempt::Fatal(error) => return Err(error),
                Attempt::Rejected(token) => {
                    if reauthentications >= MAX_REAUTHENTICATIONS
                        || !inner.auth.rejected(&token).await
                    {
                        return Err(StudioError::Unauthorized {
                            endpoint: name,
                            hint: inner.auth.hint(),
                        });
                    }
                    reauthentications += 1;
                }
                Attempt::Throttled {
                    retry_after,
                    sent_at,
                } => {
                    throttles += 1;
                    inner.counters.throttled.fetch_add(1, Ordering::Relaxed);
                    inner.pace.throttled(retry_after, sent_at);
                    if throttles > inner.max_retries + EXTRA_RETRIES_FOR_429 {
                        return Err(StudioError::Status {
                            endpoint: name,
                            status: 429,
                            message: "rate limited (429) too many times".into(),
                        });
                    }
                    inner.counters.retries.fetch_add(1, Ordering::Relaxed);
                    tracing::debug!(
                        endpoint = name,
                        ?retry_after,
                        "429 from Studio; slowing down"
                    );
                }
                Attempt::Transient { error, floor } => {
                    failures += 1;
                    if failures > inner.max_retries {
                        return Err(error);
                    }
                    tracing::debug!(endpoint = name, error = %error, "transient failure; retrying");
                    self.backoff_at_least(failures, floor).await;
                }
            }
        }
    }

    /// One try of a request: waits for a slot and the pace, sends, reads and classifies.
    async fn attempt<T, F, D>(
        &self,
        name: &'static str,
        build: &F,
        decode: &D,
        attempts: u32,
    ) -> Result<Attempt<T>, StudioError>
    where
        F: Fn(&reqwest::Client) -> reqwest::RequestBuilder,
        D: Fn(&[u8]) -> Result<T, String>,
    {
        let inner = &*self.inner;
        let _slot = inner
            .in_flight
            .acquire()
            .await
            .expect("semaphore never closed");
        inner.pace.acquire().await;
        let token = inner.auth.access_token(&inner.http).await?;
        inner.counters.requests.fetch_add(1, Ordering::Relaxed);
        let sent_at = tokio::time::Instant::now();
        let unreachable = |e: &reqwest::Error| StudioError::Unreachable {
            endpoint: name,
            attempts,
            message: describe(e),
        };
        let response = match build(&inner.http).bearer_auth(token.secret()).send().await {
            Ok(r) => r,
            Err(e) => {
                inner.metrics.request(name, None);
                // A request that cannot be built, or a certificate that is not trusted, fails
                // the same way every time.
                return Ok(if e.is_builder() || tls::is_certificate_error(&e) {
                    Attempt::Fatal(unreachable(&e))
                } else {
                    Attempt::Transient {
                        error: unreachable(&e),
                        floor: Duration::ZERO,
                    }
                });
            }
        };
        let status = response.status().as_u16();
        inner.metrics.request(name, Some(status));
        let retry_after = retry_after(&response);
        let rate_limit_spent = rate_limit_spent(&response);
        let limit = if (200..300).contains(&status) {
            untrusted::MAX_API_BODY
        } else {
            untrusted::MAX_ERROR_BODY
        };
        let body = read_body(response, limit).await;
        let status_error = |body: &Result<Body, reqwest::Error>| StudioError::Status {
            endpoint: name,
            status,
            message: body
                .as_ref()
                .map(|b| error_message(&b.bytes))
                .unwrap_or_default(),
        };
        let malformed = |message: String| Attempt::Transient {
            error: StudioError::Malformed {
                endpoint: name,
                attempts,
                message,
            },
            floor: Duration::ZERO,
        };
        Ok(match (status, body) {
            (200..=299, Ok(body)) if body.truncated => malformed(format!(
                "the answer is larger than {} MiB",
                untrusted::MAX_API_BODY / (1024 * 1024)
            )),
            (200..=299, Ok(body)) => match decode(&body.bytes) {
                Ok(value) => Attempt::Done(value),
                Err(message) => malformed(message),
            },
            (200..=299, Err(e)) => Attempt::Transient {
                error: unreachable(&e),
                floor: Duration::ZERO,
            },
            (401, _) => Attempt::Rejected(token),
            (429, _) => Attempt::Throttled {
                retry_after,
                sent_at,
            },
            // Canvas LMS throttles with `403 Rate Limit Exceeded`; Studio may do the same.
            (403, body) if rate_limit_spent || says_rate_limited(&body) => Attempt::Throttled {
                retry_after,
                sent_at,
            },
            // A `503` may say when to come back; wait at least that (bounded).
            (408 | 500..=599, body) => Attempt::Transient {
                error: status_error(&body),
                floor: retry_after.unwrap_or_default().min(MAX_5XX_RETRY_AFTER),
            },
            (_, body) => Attempt::Fatal(status_error(&body)),
        })
    }

    /// Exponential backoff with jitter (see [`backoff_delay`]), and at least `floor`.
    async fn backoff_at_least(&self, failures: u32, floor: Duration) {
        self.inner.counters.retries.fetch_add(1, Ordering::Relaxed);
        tokio::time::sleep(backoff_delay(failures).max(floor)).await;
    }
}

/// What one try of a request came to; [`StudioClient::send`] decides what follows.
enum Attempt<T> {
    Done(T),
    /// Not worth another try.
    Fatal(StudioError),
    /// `401` for this token: refresh it (OAuth) or re-read its file, and try once more.
    Rejected(auth::Token),
    /// `429`: the whole client slows down and waits.
    Throttled {
        retry_after: Option<Duration>,
        sent_at: tokio::time::Instant,
    },
    /// A server error, a timeout, a cut connection or a malformed body: retried with backoff
    /// (waiting at least `floor`) up to `max_retries`, then `error` is the answer.
    Transient {
        error: StudioError,
        floor: Duration,
    },
}

/// Exponential backoff with jitter: 100 ms, 200 ms, 400 ms ... capped at 10 s, each drawn
/// from the upper half of its range so that concurrent retries spread out.
/// The wait before retry number `failures` (1-based) after a failure.
fn backoff_delay(failures: u32) -> Duration {
    let cap = Duration::from_millis(100 * 2u64.pow(failures.saturating_sub(1).min(7)))
        .min(Duration::from_secs(10));
    rand::rng().random_range(cap / 2..=cap)
}

fn retry_after(response: &reqwest::Response) -> Option<Duration> {
    let value = response
        .headers()
        .get(reqwest::header::RETRY_AFTER)?
        .to_str()
        .ok()?;
    untrusted::retry_after(value, std::time::SystemTime::now())
}

/// `X-Rate-Limit-Remaining: 0` (Canvas LMS sends it, as a float, with its `403`s).
fn rate_limit_spent(response: &reqwest::Response) -> bool {
    response
        .headers()
        .get("x-rate-limit-remaining")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<f64>().ok())
        .is_some_and(|left| left <= 0.0)
}

/// A `403` body that says it is a rate limit (Canvas: "403 Forbidden (Rate Limit Exceeded)").
fn says_rate_limited(body: &Result<Body, reqwest::Error>) -> bool {
    body.as_ref().is_ok_and(|b| {
        String::from_utf8_lossy(&b.bytes[..b.bytes.len().min(4096)])
            .to_ascii_lowercase()
            .contains("rate limit exceeded")
    })
}

/// The `error` of a JSON error body, or the start of the body (an HTML page, say), as one
/// short line.
fn error_message(body: &[u8]) -> String {
    let text = match serde_json::from_slice::<ErrorBody>(body) {
        Ok(ErrorBody {
            error: serde_json::Value::String(s),
        }) => s,
        Ok(ErrorBody { error }) => error.to_string(),
        Err(_) => String::from_utf8_lossy(&body[..body.len().min(600)]).into_owned(),
    };
    let line: String = text
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ")
        .chars()
        .filter(|c| !c.is_control())
        .take(200)
        .collect();
    line
}

/// A reqwest error without its URL's query (it holds emails) and with its cause chain; a
/// certificate problem says how to trust a private CA.
pub(crate) fn describe(e: &reqwest::Error) -> String {
    let kind = if e.is_timeout() {
        "timed out"
    } else if e.is_connect() {
        "connection failed"
    } else if e.is_body() || e.is_decode() {
        "response cut off"
    } else {
        "request failed"
    };
    let mut message = kind.to_string();
    let mut source = std::error::Error::source(e);
    while let Some(s) = source {
        message.push_str(": ");
        message.push_str(&s.to_string());
        source = s.source();
    }
    tls::explain(message)
}
