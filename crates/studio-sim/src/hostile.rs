//! Hostile answers: what a broken proxy, a misconfigured gateway or a malicious server may
//! send instead of Studio's answer. The fault mode [`Faults::hostile_rate`](super::Faults)
//! answers that share of API requests with one of these, chosen at random (seeded), *before*
//! the handler runs, so nothing was applied when the client sees one.
//!
//! Each answer is one way a client could crash, hang or run out of memory: `Retry-After`
//! values that are not numbers a `Duration` can hold, HTML where JSON is expected, `null`,
//! wrong JSON types, absurd page counts, nesting past any parser's stack, and a body far
//! larger than any real answer (streamed lazily, with the bytes actually sent counted in
//! [`SimStats::hostile_body_bytes`](super::SimStats)).

use std::sync::Arc;

use axum::body::{Body, Bytes};
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use futures::StreamExt;

use super::Shared;

/// Size of the huge body: far above any bound a client should set.
pub const HUGE_BODY_BYTES: u64 = 1024 * 1024 * 1024;
const CHUNK: usize = 64 * 1024;

/// How many absurd `Retry-After` answers come first in the list.
const N_RETRY_AFTER: usize = 10;

/// The `Retry-After` values no client can take at face value.
pub const ABSURD_RETRY_AFTER: [&str; N_RETRY_AFTER] = [
    "inf",
    "-inf",
    "NaN",
    "1e308",
    "-5",
    "99999999999999999999999",
    "18446744073709551615",
    "Fri, 31 Dec 9999 23:59:59 GMT",
    "soon",
    "",
];

/// How many different hostile answers there are.
pub fn count() -> usize {
    N_RETRY_AFTER + 9
}

/// The index of the answer that is not rate limiting: HTML page, `null`, wrong types, a
/// negative page count, deep nesting, a number out of range, the huge body (in that order).
pub fn non_throttling() -> Vec<usize> {
    let base = N_RETRY_AFTER;
    vec![
        base,
        base + 1,
        base + 2,
        base + 3,
        base + 4,
        base + 5,
        base + 6,
        HUGE,
    ]
}

/// The index of the Canvas-style `403` rate limit answer.
pub const CANVAS_403: usize = N_RETRY_AFTER + 7;
/// The index of the huge body.
pub const HUGE: usize = N_RETRY_AFTER + 8;

/// Hostile answer number `which` (modulo [`count`]).
pub(crate) fn answer(shared: &Arc<Shared>, which: usize) -> Response {
    let which = which % count();
    if let Some(value) = ABSURD_RETRY_AFTER.get(which) {
        let mut r = super::api::error(StatusCode::TOO_MANY_REQUESTS, "slow down");
        if let Ok(v) = HeaderValue::from_str(value) {
            r.headers_mut().insert(header::RETRY_AFTER, v);
        }
        return r;
    }
    let json = |status: StatusCode, body: String| {
        (status, [(header::CONTENT_TYPE, "application/json")], body).into_response()
    };
    match which - ABSURD_RETRY_AFTER.len() {
        0 => (
            StatusCode::BAD_GATEWAY,
            [(header::CONTENT_TYPE, "text/html")],
            "<html><head><title>502 Bad Gateway</title></head><body><center><h1>502 Bad Gateway</h1></center><hr><center>nginx</center></body></html>",
        )
            .into_response(),
        1 => json(StatusCode::OK, "null".into()),
        2 => json(StatusCode::OK, r#"{"users": "none", "meta": []}"#.into()),
        3 => json(
            StatusCode::OK,
            r#"{"users": [{"id": "seven", "email": 5, "role_names": {"Admin": true}}]}"#.into(),
        ),
        4 => json(
            StatusCode::OK,
            r#"{"users": [], "meta": {"current_page": 1, "last_page": -1}}"#.into(),
        ),
        5 => json(StatusCode::OK, format!("{}{}", "[".repeat(100_000), "]".repeat(100_000))),
        6 => json(StatusCode::OK, r#"{"users": [{"id": 1e400}]}"#.into()),
        // Canvas LMS's throttling answer, with its header.
        7 => {
            let mut r = (StatusCode::FORBIDDEN, "403 Forbidden (Rate Limit Exceeded)").into_response();
            r.headers_mut()
                .insert("x-rate-limit-remaining", HeaderValue::from_static("0.0"));
            r
        }
        _ => huge_body(shared.clone()),
    }
}

/// A `200` whose JSON never ends: `{"users": [` and then spaces, up to [`HUGE_BODY_BYTES`].
fn huge_body(shared: Arc<Shared>) -> Response {
    let chunks = HUGE_BODY_BYTES / CHUNK as u64;
    let spaces = Bytes::from(vec![b' '; CHUNK]);
    let stream = futures::stream::iter(0..chunks).map(move |i| {
        shared.control().stats.hostile_body_bytes += CHUNK as u64;
        let chunk = if i == 0 {
            let mut first = b"{\"users\": [".to_vec();
            first.resize(CHUNK, b' ');
            Bytes::from(first)
        } else {
            spaces.clone()
        };
        Ok::<_, std::io::Error>(chunk)
    });
    (
        StatusCode::OK,
        [(header::CONTENT_TYPE, "application/json")],
        Body::from_stream(stream),
    )
        .into_response()
}
