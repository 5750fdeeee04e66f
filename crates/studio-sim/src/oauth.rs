//! OAuth2 endpoints of the simulated tenant (`/api/public/oauth/...`).
//!
//! Shaped after what matters to an unattended daemon: there is exactly one valid refresh token
//! at a time, each refresh grant replaces it (single use, rotation), and access tokens expire
//! after a configurable time with millisecond precision (tests use TTLs like 1.5 s). The
//! authorize endpoint approves every request at once, so the authorization-code flow can run
//! without a browser; like Studio's it refuses `http` and `localhost` redirect URIs (unless a
//! test allows loopback ones) and does not echo `state`. Optionally a refresh revokes the
//! access tokens issued before it (as Doorkeeper does), and `expires_in` can be any JSON
//! value, absurd ones included. Without `SimConfig::oauth`, both endpoints answer 404.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::Instant;

use axum::body::Bytes;
use axum::extract::{RawQuery, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::json;

use super::api::error;
use super::{Shared, SimOAuth};

pub(crate) struct OAuthState {
    config: Option<SimOAuth>,
    refresh_token: Option<String>,
    access: HashMap<String, Instant>,
    codes: HashSet<String>,
    pub(crate) refresh_count: u64,
    pub(crate) invalid_grants: u64,
    pub(crate) revoke_on_refresh: bool,
    pub(crate) loopback_redirects: bool,
    pub(crate) expires_in: Option<serde_json::Value>,
    seq: u64,
}

impl OAuthState {
    pub(crate) fn new(config: Option<SimOAuth>) -> OAuthState {
        OAuthState {
            refresh_token: config.as_ref().map(|c| c.refresh_token.clone()),
            config,
            access: HashMap::new(),
            codes: HashSet::new(),
            refresh_count: 0,
            invalid_grants: 0,
            revoke_on_refresh: false,
            loopback_redirects: false,
            expires_in: None,
            seq: 0,
        }
    }

    fn fresh(&mut self, prefix: &str) -> String {
        self.seq += 1;
        format!("{prefix}-{}-{:016x}", self.seq, rand::random::<u64>())
    }

    pub(crate) fn issue_code(&mut self) -> String {
        let code = self.fresh("sim-code");
        self.codes.insert(code.clone());
        code
    }

    pub(crate) fn current_refresh_token(&self) -> Option<String> {
        self.config.as_ref().and(self.refresh_token.clone())
    }

    pub(crate) fn access_token_valid(&self, token: &str) -> bool {
        self.access
            .get(token)
            .is_some_and(|expiry| *expiry > Instant::now())
    }

    /// Issues a new access token and a new refresh token that replaces the current one.
    fn issue_tokens(&mut self, config: &SimOAuth) -> serde_json::Value {
        let now = Instant::now();
        if self.revoke_on_refresh {
            self.access.clear();
        }
        self.access.retain(|_, expiry| *expiry > now);
        let access = self.fresh("sim-access");
        let refresh = self.fresh("sim-refresh");
        self.access.insert(access.clone(), now + config.access_ttl);
        self.refresh_token = Some(refresh.clone());
        json!({
            "access_token": access,
            "token_type": "Bearer",
            "expires_in": self.expires_in.clone().unwrap_or_else(|| json!(config.access_ttl.as_secs().max(1))),
            "refresh_token": refresh,
        })
    }
}

/// Decodes standard base64 (with or without padding).
fn base64_decode(input: &str) -> Option<Vec<u8>> {
    let mut out = Vec::with_capacity(input.len() * 3 / 4);
    let mut acc: u32 = 0;
    let mut bits = 0;
    for c in input.trim().bytes().filter(|&c| c != b'=') {
        let v = match c {
            b'A'..=b'Z' => c - b'A',
            b'a'..=b'z' => c - b'a' + 26,
            b'0'..=b'9' => c - b'0' + 52,
            b'+' | b'-' => 62,
            b'/' | b'_' => 63,
            _ => return None,
        } as u32;
        acc = (acc << 6) | v;
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push((acc >> bits) as u8);
            acc &= (1 << bits) - 1;
        }
    }
    Some(out)
}

/// Client credentials from HTTP Basic, else from the form fields.
fn client_credentials(
    headers: &HeaderMap,
    form: &HashMap<String, String>,
) -> Option<(String, String)> {
    if let Some(value) = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
    {
        let (scheme, rest) = value.trim().split_once(' ')?;
        if scheme.eq_ignore_ascii_case("basic") {
            let decoded = String::from_utf8(base64_decode(rest)?).ok()?;
            let (id, secret) = decoded.split_once(':')?;
            return Some((id.to_string(), secret.to_string()));
        }
    }
    Some((
        form.get("client_id")?.clone(),
        form.get("client_secret")?.clone(),
    ))
}

/// RFC 6749 allows the Basic credentials to be form-encoded; accept both spellings.
fn matches(given: &str, expected: &str) -> bool {
    given == expected
        || url::form_urlencoded::parse(format!("x={given}").as_bytes())
            .next()
            .is_some_and(|(_, v)| v == expected)
}

fn oauth_json(status: StatusCode, body: serde_json::Value) -> Response {
    let mut response = (status, Json(body)).into_response();
    response
        .headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}

pub(crate) async fn token(
    State(shared): State<Arc<Shared>>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let form: HashMap<String, String> = url::form_urlencoded::parse(&body)
        .map(|(k, v)| (k.into_owned(), v.into_owned()))
        .collect();
    let mut state = shared.oauth();
    let Some(config) = state.config.clone() else {
        return error(StatusCode::NOT_FOUND, "not found");
    };
    let client_ok = client_credentials(&headers, &form).is_some_and(|(id, secret)| {
        matches(&id, &config.client_id) && matches(&secret, &config.client_secret)
    });
    if !client_ok {
        return oauth_json(StatusCode::UNAUTHORIZED, json!({"error": "invalid_client"}));
    }
    let invalid_grant = || oauth_json(StatusCode::BAD_REQUEST, json!({"error": "invalid_grant"}));
    match form.get("grant_type").map(String::as_str) {
        Some("refresh_token") => {
            let Some(given) = form.get("refresh_token") else {
                return oauth_json(StatusCode::BAD_REQUEST, json!({"error": "invalid_request"}));
            };
            if state.refresh_token.as_deref() != Some(given.as_str()) {
                state.invalid_grants += 1;
                return invalid_grant();
            }
            state.refresh_count += 1;
            oauth_json(StatusCode::OK, state.issue_tokens(&config))
        }
        Some("authorization_code") => {
            let Some(code) = form.get("code") else {
                return oauth_json(StatusCode::BAD_REQUEST, json!({"error": "invalid_request"}));
            };
            if !state.codes.remove(code) {
                return invalid_grant();
            }
            oauth_json(StatusCode::OK, state.issue_tokens(&config))
        }
        _ => oauth_json(
            StatusCode::BAD_REQUEST,
            json!({"error": "unsupported_grant_type"}),
        ),
    }
}

pub(crate) async fn authorize(
    State(shared): State<Arc<Shared>>,
    RawQuery(query): RawQuery,
) -> Response {
    let params: HashMap<String, String> =
        url::form_urlencoded::parse(query.as_deref().unwrap_or("").as_bytes())
            .map(|(k, v)| (k.into_owned(), v.into_owned()))
            .collect();
    let mut state = shared.oauth();
    let Some(config) = state.config.clone() else {
        return error(StatusCode::NOT_FOUND, "not found");
    };
    if params.get("client_id") != Some(&config.client_id) {
        return error(StatusCode::BAD_REQUEST, "invalid_client");
    }
    if params.get("response_type").is_some_and(|t| t != "code") {
        return error(StatusCode::BAD_REQUEST, "unsupported_response_type");
    }
    let Some(mut redirect) = params
        .get("redirect_uri")
        .and_then(|r| url::Url::parse(r).ok())
    else {
        return error(StatusCode::BAD_REQUEST, "invalid_request");
    };
    // Studio refuses `http` and `localhost` redirect URIs.
    let local = match redirect.host() {
        Some(url::Host::Domain(d)) => d.eq_ignore_ascii_case("localhost"),
        Some(url::Host::Ipv4(ip)) => ip.is_loopback(),
        Some(url::Host::Ipv6(ip)) => ip.is_loopback(),
        None => true,
    };
    let allowed = if state.loopback_redirects {
        redirect.scheme() == "https" || (redirect.scheme() == "http" && local)
    } else {
        redirect.scheme() == "https" && !local
    };
    if !allowed {
        return error(StatusCode::BAD_REQUEST, "invalid redirect_uri");
    }
    let code = state.issue_code();
    drop(state);
    // Like Studio, `state` is not echoed.
    redirect.query_pairs_mut().append_pair("code", &code);
    let location =
        HeaderValue::from_str(redirect.as_str()).unwrap_or_else(|_| HeaderValue::from_static("/"));
    (StatusCode::FOUND, [(header::LOCATION, location)]).into_response()
}
