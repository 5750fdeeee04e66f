//! Request accounting and fault injection.
//!
//! Two middlewares:
//! * [`count_mw`] wraps every route (API and OAuth): it counts the request by kind, tracks
//!   concurrency and counts the final status.
//! * [`fault_mw`] wraps the `/api/public/v1` routes only, applying faults in a fixed order:
//!   rate limit (429), latency, random 5xx, then the real handler, then a cut connection or a
//!   malformed body in place of a successful response.
//!
//! The fault decisions come from one seeded RNG behind the control mutex so a run with the same
//! seed and the same request order makes the same decisions.

use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::body::{Body, Bytes};
use axum::extract::{Request, State};
use axum::http::{header, HeaderValue, Method, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

use super::{Faults, Shared, SimStats};

/// Mutable server-wide control state: stats, fault settings, RNG and rate-limit bucket.
pub(crate) struct Control {
    pub(crate) stats: SimStats,
    pub(crate) log: super::admin::RequestLog,
    faults: Faults,
    rng: StdRng,
    bucket: Option<Bucket>,
}

struct Bucket {
    rate: f64,
    burst: f64,
    tokens: f64,
    last: Instant,
}

impl Bucket {
    fn new(rate: Option<f64>) -> Option<Bucket> {
        let rate = rate.filter(|r| r.is_finite() && *r > 0.0)?;
        let burst = rate.max(1.0);
        Some(Bucket {
            rate,
            burst,
            tokens: burst,
            last: Instant::now(),
        })
    }

    /// Takes one token, or returns the whole seconds (>= 1) until one is available.
    fn take(&mut self, now: Instant) -> Result<(), u64> {
        let elapsed = now.saturating_duration_since(self.last).as_secs_f64();
        self.last = now;
        self.tokens = (self.tokens + elapsed * self.rate).min(self.burst);
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            Ok(())
        } else {
            let wait = ((1.0 - self.tokens) / self.rate).ceil();
            Err((wait as u64).max(1))
        }
    }
}

/// What to do with a request before the handler runs.
enum Admission {
    RateLimited(u64),
    Hostile(usize),
    Proceed {
        latency: Duration,
        error: Option<StatusCode>,
    },
}

/// What to do with a successful response.
enum Outcome {
    Keep,
    Drop,
    Malformed(&'static str),
}

const MALFORMED_BODIES: &[&str] = &[
    "{\"users\":[{\"id\":1,\"full_name\":\"Ann",
    "<html><body><h1>502 Bad Gateway</h1></body></html>",
    "{\"users\": [], \"meta\": {\"current_page\": 1,}}",
    "",
];

impl Control {
    pub(crate) fn new(faults: Faults, seed: u64) -> Control {
        Control {
            stats: SimStats::default(),
            log: Default::default(),
            bucket: Bucket::new(faults.rate_limit),
            faults,
            rng: StdRng::seed_from_u64(seed),
        }
    }

    pub(crate) fn set_faults(&mut self, faults: Faults) {
        self.bucket = Bucket::new(faults.rate_limit);
        self.faults = faults;
    }

    fn chance(&mut self, rate: f64) -> bool {
        // Rates <= 0 (or NaN) never fire and draw nothing, so enabling one fault does not
        // change the decisions of the others for a given seed.
        if rate.is_nan() || rate <= 0.0 {
            return false;
        }
        self.rng.random::<f64>() < rate
    }

    fn admit(&mut self) -> Admission {
        if let Some(bucket) = &mut self.bucket {
            if let Err(secs) = bucket.take(Instant::now()) {
                return Admission::RateLimited(secs);
            }
        }
        if self.chance(self.faults.hostile_rate) {
            self.stats.hostile += 1;
            let which = match self.faults.hostile_answer {
                Some(which) => which,
                None => self.rng.random_range(0..super::hostile::count()),
            };
            return Admission::Hostile(which);
        }
        let error = if self.chance(self.faults.error_rate) {
            let codes = [
                StatusCode::INTERNAL_SERVER_ERROR,
                StatusCode::BAD_GATEWAY,
                StatusCode::SERVICE_UNAVAILABLE,
            ];
            Some(codes[self.rng.random_range(0..codes.len())])
        } else {
            None
        };
        Admission::Proceed {
            latency: self.faults.latency,
            error,
        }
    }

    fn after_success(&mut self) -> Outcome {
        if self.chance(self.faults.drop_rate) {
            self.stats.dropped += 1;
            Outcome::Drop
        } else if self.chance(self.faults.malformed_rate) {
            self.stats.malformed += 1;
            let body = MALFORMED_BODIES[self.rng.random_range(0..MALFORMED_BODIES.len())];
            Outcome::Malformed(body)
        } else {
            Outcome::Keep
        }
    }
}

/// The request kinds counted in [`SimStats`].
#[derive(Clone, Copy)]
enum Kind {
    SearchByRole,
    SearchByEmail,
    SearchOther,
    GetUser,
    PutRoles,
    Token,
    Authorize,
    Ping,
    ApiDocs,
    Other,
}

fn classify(method: &Method, path: &str, query: Option<&str>) -> Kind {
    let path = path.trim_end_matches('/');
    if let Some(rest) = path.strip_prefix("/api/public/v1/users/") {
        if rest == "search" {
            let mut role = false;
            let mut email = false;
            for (k, v) in url::form_urlencoded::parse(query.unwrap_or("").as_bytes()) {
                if v.trim().is_empty() {
                    continue;
                }
                match &*k {
                    "role" => role = true,
                    "email" => email = true,
                    _ => {}
                }
            }
            return match (role, email) {
                (true, _) => Kind::SearchByRole,
                (false, true) => Kind::SearchByEmail,
                (false, false) => Kind::SearchOther,
            };
        }
        if rest == "roles" && method == Method::PUT {
            return Kind::PutRoles;
        }
        if !rest.is_empty() && !rest.contains('/') && method == Method::GET {
            return Kind::GetUser;
        }
        return Kind::Other;
    }
    match path {
        "/api/public/oauth/token" => Kind::Token,
        "/api/public/oauth/authorize" => Kind::Authorize,
        "/api/public/v1/ping" => Kind::Ping,
        "/api/public/apidocs" => Kind::ApiDocs,
        _ => Kind::Other,
    }
}

/// Decrements the in-flight count when the request is done (or its future dropped).
struct InFlight(Arc<Shared>);

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.leave();
    }
}

/// Counts every request and its final status; tracks concurrency.
pub(crate) async fn count_mw(
    State(shared): State<Arc<Shared>>,
    req: Request,
    next: Next,
) -> Response {
    let kind = classify(req.method(), req.uri().path(), req.uri().query());
    let (method, path, query) = (
        req.method().to_string(),
        req.uri().path().to_string(),
        req.uri().query().map(str::to_string),
    );
    let token = super::api::bearer(req.headers()).map(str::to_string);
    {
        let mut control = shared.control();
        let s = &mut control.stats;
        s.total += 1;
        match kind {
            Kind::SearchByRole => s.search_by_role += 1,
            Kind::SearchByEmail => s.search_by_email += 1,
            Kind::SearchOther => s.search_other += 1,
            Kind::GetUser => s.get_user += 1,
            Kind::PutRoles => s.put_roles += 1,
            Kind::Token => s.token += 1,
            Kind::Authorize => s.authorize += 1,
            Kind::Ping => s.ping += 1,
            Kind::ApiDocs => s.apidocs += 1,
            Kind::Other => {}
        }
    }
    shared.enter();
    let _guard = InFlight(shared.clone());
    let mut response = next.run(req).await;
    let status = response.status();
    let actions = response
        .extensions_mut()
        .remove::<super::admin::LoggedActions>()
        .map(|a| a.0)
        .unwrap_or_default();
    {
        let mut control = shared.control();
        control.log.push(super::admin::SimRequest {
            seq: 0,
            method,
            path,
            query,
            status: status.as_u16(),
            actions,
            token,
        });
        let s = &mut control.stats;
        if status == StatusCode::TOO_MANY_REQUESTS {
            s.status_429 += 1;
        } else if status.is_server_error() {
            s.status_5xx += 1;
        } else if status == StatusCode::UNAUTHORIZED {
            s.status_401 += 1;
        } else if status.is_client_error() {
            s.status_4xx_other += 1;
        }
    }
    response
}

/// Applies the configured faults around an API handler.
pub(crate) async fn fault_mw(
    State(shared): State<Arc<Shared>>,
    req: Request,
    next: Next,
) -> Response {
    let admission = shared.control().admit();
    match admission {
        Admission::RateLimited(secs) => {
            let canvas = shared.control().faults.throttle_with_403;
            let mut response = if canvas {
                let mut r =
                    (StatusCode::FORBIDDEN, "403 Forbidden (Rate Limit Exceeded)").into_response();
                r.headers_mut()
                    .insert("x-rate-limit-remaining", HeaderValue::from_static("0.0"));
                r
            } else {
                super::api::error(StatusCode::TOO_MANY_REQUESTS, "rate limit exceeded")
            };
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(secs));
            return response;
        }
        Admission::Hostile(which) => return super::hostile::answer(&shared, which),
        Admission::Proceed { latency, error } => {
            if !latency.is_zero() {
                tokio::time::sleep(latency).await;
            }
            if let Some(code) = error {
                let message = code
                    .canonical_reason()
                    .unwrap_or("server error")
                    .to_lowercase();
                return super::api::error(code, &message);
            }
        }
    }
    let response = next.run(req).await;
    if !response.status().is_success() {
        return response;
    }
    let outcome = shared.control().after_success();
    match outcome {
        Outcome::Keep => response,
        Outcome::Drop => {
            let chunks: Vec<Result<Bytes, std::io::Error>> = vec![
                Ok(Bytes::from_static(b"{\"users\":[{\"id\":")),
                Err(std::io::Error::new(
                    std::io::ErrorKind::ConnectionReset,
                    "simulated connection drop",
                )),
            ];
            (
                StatusCode::OK,
                [(header::CONTENT_TYPE, "application/json")],
                Body::from_stream(futures::stream::iter(chunks)),
            )
                .into_response()
        }
        Outcome::Malformed(body) => (
            StatusCode::OK,
            [(header::CONTENT_TYPE, "application/json")],
            body,
        )
            .into_response(),
    }
}
