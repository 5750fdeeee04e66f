//! What arrives from Studio, bounded and validated before the client uses it.
//!
//! A header or a body is input from the network like any other: a `Retry-After` of `inf`,
//! an `expires_in` of `1e308` or a body of a gigabyte must end as a sane number or a clear
//! error, never as a panic (`Duration::from_secs_f64` panics on both), an endless wait or
//! unbounded memory. Every such value goes through one function here.

use std::time::{Duration, SystemTime};

/// A `Retry-After` beyond this is no instruction a client can follow (a typo, a bug, or a
/// hostile server): it is ignored and the default pause applies. The pace caps what it honours
/// much lower (see `pace.rs`).
pub(crate) const MAX_PLAUSIBLE_RETRY_AFTER: Duration = Duration::from_secs(24 * 3600);

/// Largest body of an API answer read into memory: a page is 50 users, a `PUT` answer at most
/// `batch_size` (1000) users; real answers are far below this.
pub(crate) const MAX_API_BODY: usize = 8 * 1024 * 1024;
/// Largest body of a token endpoint answer.
pub(crate) const MAX_TOKEN_BODY: usize = 64 * 1024;
/// Largest part of an error body kept (only its start is ever shown).
pub(crate) const MAX_ERROR_BODY: usize = 64 * 1024;

/// Access tokens shorter-lived than this are treated as living this long.
pub(crate) const MIN_TOKEN_LIFETIME: Duration = Duration::from_secs(1);
/// Access tokens are refreshed at least this often, whatever `expires_in` says.
pub(crate) const MAX_TOKEN_LIFETIME: Duration = Duration::from_secs(24 * 3600);
/// Lifetime assumed when the token endpoint gives none, or none usable (public clients see
/// `7200`); a token that dies earlier is refreshed on its first `401`.
pub(crate) const DEFAULT_TOKEN_LIFETIME: Duration = Duration::from_secs(7200);
/// Longest token (access or refresh) accepted from the token endpoint.
pub(crate) const MAX_TOKEN_LENGTH: usize = 8 * 1024;

/// The wait a `Retry-After` value asks for: delay-seconds (whole, or with a fraction) or an
/// HTTP-date. `None` when absent, unreadable, negative, not finite or beyond
/// [`MAX_PLAUSIBLE_RETRY_AFTER`].
pub fn retry_after(value: &str, now: SystemTime) -> Option<Duration> {
    let value = value.trim();
    if value.is_empty() || value.len() > 64 {
        return None;
    }
    let wait = if value.bytes().all(|b| b.is_ascii_digit()) {
        // Whole seconds; an overflowing integer is unreadable.
        Duration::from_secs(value.parse::<u64>().ok()?)
    } else if let Ok(seconds) = value.parse::<f64>() {
        if !(seconds.is_finite() && seconds >= 0.0) {
            return None;
        }
        if seconds > MAX_PLAUSIBLE_RETRY_AFTER.as_secs_f64() {
            return None;
        }
        Duration::from_secs_f64(seconds)
    } else {
        let at = httpdate::parse_http_date(value).ok()?;
        // A date in the past means "now".
        at.duration_since(now).unwrap_or(Duration::ZERO)
    };
    (wait <= MAX_PLAUSIBLE_RETRY_AFTER).then_some(wait)
}

/// The lifetime an `expires_in` value gives an access token, bounded to
/// [`MIN_TOKEN_LIFETIME`]..=[`MAX_TOKEN_LIFETIME`]. A number or a numeric string counts;
/// anything else (absent, `null`, text, an object, not finite) gives
/// [`DEFAULT_TOKEN_LIFETIME`]. The flag is false when a value was there but unusable.
pub(crate) fn token_lifetime(value: Option<&serde_json::Value>) -> (Duration, bool) {
    let seconds = match value {
        None | Some(serde_json::Value::Null) => return (DEFAULT_TOKEN_LIFETIME, true),
        Some(serde_json::Value::Number(n)) => n.as_f64(),
        Some(serde_json::Value::String(s)) if s.len() <= 64 => s.trim().parse::<f64>().ok(),
        Some(_) => None,
    };
    match seconds.filter(|s| s.is_finite()) {
        Some(s) => {
            let bounded = s.clamp(
                MIN_TOKEN_LIFETIME.as_secs_f64(),
                MAX_TOKEN_LIFETIME.as_secs_f64(),
            );
            (Duration::from_secs_f64(bounded), true)
        }
        None => (DEFAULT_TOKEN_LIFETIME, false),
    }
}

/// A token from the token endpoint, if it can go into an `Authorization` header and the
/// history as it is: 1 to [`MAX_TOKEN_LENGTH`] visible ASCII characters.
pub(crate) fn token_text(value: Option<&serde_json::Value>) -> Option<&str> {
    let text = value?.as_str()?;
    let ok = !text.is_empty()
        && text.len() <= MAX_TOKEN_LENGTH
        && text.bytes().all(|b| b.is_ascii_graphic());
    ok.then_some(text)
}

/// A body read with a bound: its first bytes, and whether more followed.
pub struct Body {
    pub bytes: Vec<u8>,
    /// The body was longer than the bound (or said so in `Content-Length`); `bytes` holds
    /// at most the bound.
    pub truncated: bool,
}

/// Reads at most `limit` bytes of a response body, then stops (dropping the connection rather
/// than reading the rest).
pub(crate) async fn read_body(
    mut response: reqwest::Response,
    limit: usize,
) -> Result<Body, reqwest::Error> {
    if response.content_length().is_some_and(|n| n > limit as u64) {
        return Ok(Body {
            bytes: Vec::new(),
            truncated: true,
        });
    }
    let mut bytes = Vec::new();
    while let Some(chunk) = response.chunk().await? {
        let room = limit - bytes.len();
        if chunk.len() > room {
            bytes.extend_from_slice(&chunk[..room]);
            return Ok(Body {
                bytes,
                truncated: true,
            });
        }
        bytes.extend_from_slice(&chunk);
    }
    Ok(Body {
        bytes,
        truncated: false,
    })
}

/// The largest number of pages the client follows for one listing: 100,000 pages of 50 is
/// five million users, beyond any tenant. A larger `last_page` is a malformed answer.
pub(crate) const MAX_PAGES: u32 = 100_000;

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use serde_json::json;

    fn now() -> SystemTime {
        SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000)
    }

    #[test]
    fn retry_after_values() {
        let secs = |s: u64| Some(Duration::from_secs(s));
        assert_eq!(retry_after("3", now()), secs(3));
        assert_eq!(retry_after(" 0 ", now()), secs(0));
        assert_eq!(retry_after("1.5", now()), Some(Duration::from_millis(1500)));
        assert_eq!(retry_after("86400", now()), secs(86400));
        for absurd in [
            "inf",
            "-inf",
            "NaN",
            "1e308",
            "-5",
            "-0.5",
            "86401",
            "99999999999999999999999",
            "18446744073709551615",
            "soon",
            "",
            "0x10",
            "5 seconds",
        ] {
            assert_eq!(retry_after(absurd, now()), None, "{absurd:?}");
        }
        // HTTP-dates: in the future, in the past, too far ahead, the obsolete forms.
        let later = httpdate::fmt_http_date(now() + Duration::from_secs(30));
        assert_eq!(retry_after(&later, now()), secs(30));
        let earlier = httpdate::fmt_http_date(now() - Duration::from_secs(30));
        assert_eq!(retry_after(&earlier, now()), secs(0));
        let far = httpdate::fmt_http_date(now() + Duration::from_secs(10 * 86400));
        assert_eq!(retry_after(&far, now()), None);
        assert_eq!(retry_after("Fri, 31 Dec 9999 23:59:59 GMT", now()), None);
        assert!(retry_after("Sunday, 06-Nov-94 08:49:37 GMT", now()).is_some());
    }

    #[test]
    fn token_lifetimes() {
        let life = |v: serde_json::Value| token_lifetime(Some(&v));
        assert_eq!(life(json!(7200)), (Duration::from_secs(7200), true));
        assert_eq!(life(json!("3600")), (Duration::from_secs(3600), true));
        assert_eq!(life(json!(1.5)), (Duration::from_millis(1500), true));
        assert_eq!(life(json!(-5)), (MIN_TOKEN_LIFETIME, true));
        assert_eq!(life(json!(0)), (MIN_TOKEN_LIFETIME, true));
        assert_eq!(life(json!(1e308)), (MAX_TOKEN_LIFETIME, true));
        assert_eq!(life(json!(u64::MAX)), (MAX_TOKEN_LIFETIME, true));
        assert_eq!(token_lifetime(None), (DEFAULT_TOKEN_LIFETIME, true));
        assert_eq!(life(json!(null)), (DEFAULT_TOKEN_LIFETIME, true));
        for bad in [
            json!("soon"),
            json!("inf"),
            json!("NaN"),
            json!([1]),
            json!({}),
        ] {
            assert_eq!(life(bad.clone()), (DEFAULT_TOKEN_LIFETIME, false), "{bad}");
        }
    }

    #[test]
    fn tokens_must_fit_a_header() {
        assert_eq!(
            token_text(Some(&json!("abc.DEF-123_~+/="))),
            Some("abc.DEF-123_~+/=")
        );
        for bad in [
            json!(""),
            json!("a b"),
            json!("a\nb"),
            json!("é"),
            json!(5),
            json!(null),
            json!("x".repeat(MAX_TOKEN_LENGTH + 1)),
        ] {
            assert_eq!(token_text(Some(&bad)), None, "{bad}");
        }
    }

    proptest! {
        #[test]
        fn retry_after_never_panics_and_stays_bounded(s in ".{0,80}") {
            if let Some(d) = retry_after(&s, now()) {
                prop_assert!(d <= MAX_PLAUSIBLE_RETRY_AFTER);
            }
        }

        #[test]
        fn numeric_retry_after_never_panics(x in proptest::num::f64::ANY) {
            let _ = retry_after(&x.to_string(), now());
            let _ = retry_after(&format!("{x:e}"), now());
        }

        #[test]
        fn token_lifetime_is_always_bounded(x in proptest::num::f64::ANY, s in ".{0,40}") {
            for v in [serde_json::Number::from_f64(x).map(serde_json::Value::Number), Some(json!(s)), Some(json!(x.to_string()))]
                .into_iter()
                .flatten()
            {
                let (d, _) = token_lifetime(Some(&v));
                prop_assert!(d >= MIN_TOKEN_LIFETIME && d <= MAX_TOKEN_LIFETIME);
            }
        }
    }
}
