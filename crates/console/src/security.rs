//! Who may read the console, and the headers every answer carries.
//!
//! Credentials are kept as SHA-256 digests and compared in constant time (`subtle`), so
//! neither the secret's content nor its length leaks through timing. A missing or wrong
//! `Authorization` gets `401` with the challenge a browser understands (basic) or a program
//! expects (bearer). The style sheet is public (it is in the repository) and served without
//! credentials, so a browser given the password in its prompt also styles the 401 page.
//!
//! A secret from a file (`token_file`, `password_file`) is read again when a request comes
//! and the last read is older than [`RECHECK`]: a rotated password works within seconds, and
//! the old one stops working, without a restart. A file that cannot be read (mid-rotation,
//! say) keeps the last secret read, with a warning.

use axum::extract::{Request, State};
use axum::http::{header, HeaderValue, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use base64::Engine as _;
use secrecy::ExposeSecret;
use sha2::{Digest, Sha256};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use studio_role_sync_engine::config::ConsoleAuth;
use subtle::ConstantTimeEq;

/// Largest `Authorization` value looked at (a token or a basic pair is far smaller).
const MAX_AUTHORIZATION: usize = 4096;

/// How old the secret read from a file may be when a request is checked against it.
pub const RECHECK: Duration = Duration::from_secs(2);

/// The expected credentials, as digests.
pub struct Credentials {
    /// The secret's file, when it came from one; read again after [`RECHECK`].
    file: Option<PathBuf>,
    current: Mutex<(Kind, Instant)>,
}

#[derive(Clone)]
enum Kind {
    Bearer([u8; 32]),
    Basic {
        user: Option<String>,
        password: [u8; 32],
    },
}

fn digest(secret: &[u8]) -> [u8; 32] {
    Sha256::digest(secret).into()
}

impl Credentials {
    pub fn new(auth: &ConsoleAuth) -> Credentials {
        let kind = match auth {
            ConsoleAuth::Token(t) => Kind::Bearer(digest(t.expose_secret().as_bytes())),
            ConsoleAuth::Password { user, password } => Kind::Basic {
                user: user.clone(),
                password: digest(password.expose_secret().as_bytes()),
            },
        };
        Credentials {
            file: None,
            current: Mutex::new((kind, Instant::now())),
        }
    }

    /// As [`Credentials::new`], with the secret read again from `file` when it is older than
    /// [`RECHECK`].
    pub fn reading(mut self, file: Option<PathBuf>) -> Credentials {
        self.file = file;
        self
    }

    /// The credentials now in force, read again from the file when due.
    fn kind(&self) -> Kind {
        let mut current = self.current.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(file) = self
            .file
            .as_ref()
            .filter(|_| current.1.elapsed() >= RECHECK)
        {
            current.1 = Instant::now();
            match studio_role_sync_engine::config::read_secret_file(file) {
                Ok(secret) => {
                    let fresh = digest(secret.expose_secret().as_bytes());
                    match &mut current.0 {
                        Kind::Bearer(d) | Kind::Basic { password: d, .. } => *d = fresh,
                    }
                }
                Err(e) => tracing::warn!(
                    file = %file.display(),
                    "the console's secret file {e}: the last secret read stays in force"
                ),
            }
        }
        current.0.clone()
    }

    /// Whether an `Authorization` header value proves the reader may read.
    fn accepts(&self, authorization: &[u8]) -> bool {
        if authorization.len() > MAX_AUTHORIZATION {
            return false;
        }
        let Ok(value) = std::str::from_utf8(authorization) else {
            return false;
        };
        let (scheme, rest) = value.trim().split_once(' ').unwrap_or((value, ""));
        match &self.kind() {
            Kind::Bearer(expected) if scheme.eq_ignore_ascii_case("bearer") => {
                bool::from(digest(rest.trim().as_bytes()).ct_eq(expected))
            }
            Kind::Basic { user, password } if scheme.eq_ignore_ascii_case("basic") => {
                let Ok(pair) = base64::engine::general_purpose::STANDARD.decode(rest.trim()) else {
                    return false;
                };
                let Some(colon) = pair.iter().position(|&b| b == b':') else {
                    return false;
                };
                let password_ok = bool::from(digest(&pair[colon + 1..]).ct_eq(password));
                let user_ok = user
                    .as_ref()
                    .is_none_or(|u| bool::from(u.as_bytes().ct_eq(&pair[..colon])));
                password_ok & user_ok
            }
            _ => false,
        }
    }

    fn challenge(&self) -> &'static str {
        match self.kind() {
            Kind::Bearer(_) => "Bearer realm=\"studio-role-sync console\"",
            Kind::Basic { .. } => "Basic realm=\"studio-role-sync console\", charset=\"UTF-8\"",
        }
    }
}

/// Lets a request through when no credentials are configured (loopback only, by the config
/// check) or when its `Authorization` proves them.
pub async fn authenticate(
    State(credentials): State<Arc<Option<Credentials>>>,
    request: Request,
    next: Next,
) -> Response {
    let Some(credentials) = credentials.as_ref() else {
        return next.run(request).await;
    };
    if request.uri().path() == "/console/style.css" {
        return next.run(request).await;
    }
    let given = request.headers().get(header::AUTHORIZATION);
    if given.is_some_and(|v| credentials.accepts(v.as_bytes())) {
        return next.run(request).await;
    }
    let mut answer = crate::pages::error_page(
        StatusCode::UNAUTHORIZED,
        "Sign-in needed",
        "This console needs the token or password its config names (console.token_file, \
         console.password_file, or their _env forms).",
    )
    .into_response();
    answer.headers_mut().insert(
        header::WWW_AUTHENTICATE,
        HeaderValue::from_static(credentials.challenge()),
    );
    answer
}

/// The security headers, on every answer (pages, errors, the style sheet): the engine's
/// set, which its listeners also put on every answer, so the router carries them wherever
/// it is served.
pub async fn headers(request: Request, next: Next) -> Response {
    let mut answer = next.run(request).await;
    studio_role_sync_engine::http::add_security_headers(answer.headers_mut());
    answer
}

#[cfg(test)]
mod tests {
    use super::*;
    use secrecy::SecretString;

    fn basic(pair: &str) -> Vec<u8> {
        format!(
            "Basic {}",
            base64::engine::general_purpose::STANDARD.encode(pair)
        )
        .into_bytes()
    }

    #[test]
    fn bearer_and_basic_accept_only_the_right_secret() {
        let bearer = Credentials::new(&ConsoleAuth::Token(SecretString::from("s3cret")));
        assert!(bearer.accepts(b"Bearer s3cret"));
        assert!(bearer.accepts(b"bearer  s3cret "));
        assert!(!bearer.accepts(b"Bearer s3cre"));
        assert!(!bearer.accepts(b"Bearer s3cret2"));
        assert!(!bearer.accepts(&basic("x:s3cret")));
        assert!(!bearer.accepts(b"s3cret"));
        assert!(!bearer.accepts(&[b'B'; 5000]));
        let any_user = Credentials::new(&ConsoleAuth::Password {
            user: None,
            password: SecretString::from("pw:with:colons"),
        });
        assert!(any_user.accepts(&basic("alice:pw:with:colons")));
        assert!(!any_user.accepts(&basic("alice:pw")));
        assert!(!any_user.accepts(b"Basic !!!not base64"));
        assert!(!any_user.accepts(b"Bearer pw:with:colons"));
        let named = Credentials::new(&ConsoleAuth::Password {
            user: Some("media".into()),
            password: SecretString::from("pw"),
        });
        assert!(named.accepts(&basic("media:pw")));
        assert!(!named.accepts(&basic("other:pw")));
    }
}
