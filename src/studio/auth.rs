//! Authentication to Studio: a static access token, or OAuth2 with rotating refresh tokens.
//!
//! Studio's refresh tokens are single use: every refresh answers a new one and kills the old.
//! A daemon that loses the newest one is locked out, so [`OAuth`] keeps three promises:
//! - one refresh at a time: requests that need a token wait on one lock, and a `401` for a
//!   token that was already replaced does not refresh again (no stampede, no double use);
//! - the rotated refresh token is written to the history database *before* the new access
//!   token is used, so a crash at any moment leaves the newest token on disk;
//! - a stored token is preferred over the configured seed, unless the admin has put a new seed
//!   in place since (its fingerprint differs from the one the stored chain grew from).
//!
//! Secrets stay in `SecretString` from the config to the `Authorization` header.

use super::{Endpoint, StudioError};
use crate::config::OAuthConfig;
use crate::history::{History, StoredTokens};
use crate::metrics::Metrics;
use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;
use std::hash::{Hash, Hasher};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::Mutex;

/// At most this long before the access token expires it is refreshed, so no request carries
/// a dying token.
const EXPIRY_MARGIN: Duration = Duration::from_secs(60);

/// An access token handed to one request, with the generation it belongs to.
pub struct Token {
    value: SecretString,
    generation: u64,
}

impl Token {
    pub fn secret(&self) -> &str {
        self.value.expose_secret()
    }
}

#[derive(Clone)]
pub enum Auth {
    Static(Arc<StaticToken>),
    OAuth(Arc<OAuth>),
}

/// A long-lived token. When it came from a file, a `401` re-reads the file: a rotated
/// Kubernetes Secret (or any file an admin rewrote) is picked up without a restart.
pub struct StaticToken {
    current: std::sync::RwLock<(SecretString, u64)>,
    file: Option<PathBuf>,
}

impl StaticToken {
    pub fn new(token: SecretString, file: Option<PathBuf>) -> StaticToken {
        StaticToken {
            current: std::sync::RwLock::new((token, 0)),
            file,
        }
    }

    fn get(&self) -> Token {
        let (value, generation) = self
            .current
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone();
        Token { value, generation }
    }

    /// Re-reads the token file; true when it now holds a token other than the refused one.
    fn reload(&self, refused: &Token) -> bool {
        let Some(file) = &self.file else { return false };
        // The same bounded reader as at load; a file that cannot be read keeps the old token.
        let Ok(text) = crate::input_file::read_text(file, crate::input_file::SECRET_MAX_BYTES)
        else {
            return false;
        };
        let fresh = text.trim();
        let mut current = self.current.write().unwrap_or_else(|e| e.into_inner());
        if current.1 != refused.generation {
            return true; // another request already picked up a new token
        }
        if fresh.is_empty() || fresh == current.0.expose_secret() {
            return false;
        }
        // The key, not the path: what is written there is never echoed (it may be the secret).
        tracing::info!("the file named by studio.token_file changed; using the new token");
        *current = (SecretString::from(fresh.to_string()), current.1 + 1);
        true
    }
}

impl Auth {
    pub async fn access_token(&self, http: &reqwest::Client) -> Result<Token, StudioError> {
        match self {
            Auth::Static(t) => Ok(t.get()),
            Auth::OAuth(o) => o.access_token(http).await,
        }
    }

    /// Studio answered `401` to `token`. True when another token is worth a try: OAuth
    /// forgets the refused token (unless it was already replaced) and refreshes on the next
    /// request; a token file is re-read.
    pub async fn rejected(&self, token: &Token) -> bool {
        match self {
            Auth::Static(t) => t.reload(token),
            Auth::OAuth(o) => {
                let mut state = o.state.lock().await;
                if state.generation == token.generation {
                    state.access = None;
                }
                true
            }
        }
    }

    /// What an admin should check when the credentials are refused.
    pub fn hint(&self) -> String {
        match self {
            Auth::Static(_) => "check the token named by studio.token_env or studio.token_file".into(),
            Auth::OAuth(_) => "the access token was refused right after a refresh; check the developer key in Studio".into(),
        }
    }
}

pub struct OAuth {
    config: OAuthSettings,
    history: History,
    metrics: Metrics,
    state: Mutex<State>,
}

/// The parts of `studio.oauth` a refresh needs.
#[derive(Clone)]
pub struct OAuthSettings {
    pub client_id: String,
    pub client_secret: SecretString,
    pub token_url: url::Url,
    pub seed: Option<SecretString>,
}

impl From<&OAuthConfig> for OAuthSettings {
    fn from(c: &OAuthConfig) -> Self {
        OAuthSettings {
            client_id: c.client_id.clone(),
            client_secret: c.client_secret.clone(),
            token_url: c.token_url.clone(),
            seed: c.seed_refresh_token.clone(),
        }
    }
}

struct State {
    access: Option<(SecretString, chrono::DateTime<chrono::Utc>)>,
    refresh: Option<SecretString>,
    seed_fingerprint: String,
    /// Lifetime of the current access token, for the refresh margin.
    ttl: Duration,
    generation: u64,
}

#[derive(Deserialize)]
struct TokenAnswer {
    access_token: String,
    #[serde(default)]
    expires_in: Option<f64>,
    #[serde(default)]
    refresh_token: Option<String>,
}

#[derive(Deserialize)]
struct TokenError {
    error: String,
    #[serde(default)]
    error_description: Option<String>,
}

/// A fingerprint of a seed token: tells whether the admin replaced it, reveals nothing.
pub fn fingerprint(secret: &SecretString) -> String {
    let mut h = std::collections::hash_map::DefaultHasher::new();
    "studio-role-sync seed".hash(&mut h);
    secret.expose_secret().hash(&mut h);
    format!("{:016x}", h.finish())
}

impl OAuth {
    /// Sets up OAuth from the stored tokens, or the seed when there are none (or a new seed).
    pub async fn new(
        config: OAuthSettings,
        history: History,
        metrics: Metrics,
    ) -> Result<OAuth, StudioError> {
        let seed_fingerprint = config.seed.as_ref().map(fingerprint).unwrap_or_default();
        let stored = history
            .load_tokens(&config.client_id)
            .await
            .map_err(|e| StudioError::Auth(format!("cannot read stored OAuth tokens: {e}")))?;
        let state = match stored {
            Some(s) if config.seed.is_none() || s.seed_fingerprint == seed_fingerprint => {
                let access = s.access_token.zip(s.expires_at);
                State {
                    access,
                    refresh: Some(s.refresh_token),
                    seed_fingerprint: s.seed_fingerprint,
                    ttl: EXPIRY_MARGIN * 10,
                    generation: 1,
                }
            }
            _ => State {
                access: None,
                refresh: config.seed.clone(),
                seed_fingerprint,
                ttl: EXPIRY_MARGIN * 10,
                generation: 1,
            },
        };
        Ok(OAuth {
            config,
            history,
            metrics,
            state: Mutex::new(state),
        })
    }

    async fn access_token(&self, http: &reqwest::Client) -> Result<Token, StudioError> {
        let mut state = self.state.lock().await;
        if let Some((value, expires_at)) = &state.access {
            // Refresh a little before expiry: a tenth of the lifetime, at most a minute.
            if *expires_at - margin(state.ttl) > chrono::Utc::now() {
                return Ok(Token {
                    value: value.clone(),
                    generation: state.generation,
                });
            }
        }
        let refresh = state.refresh.clone().ok_or_else(|| {
            StudioError::Auth(
                "no OAuth refresh token: run `studio-role-sync auth login` once, or set studio.oauth.refresh_token_env".into(),
            )
        })?;
        let form = [
            ("grant_type", "refresh_token"),
            ("refresh_token", refresh.expose_secret()),
        ];
        let answer = self.token_request(http, &form).await?;
        self.adopt(&mut state, answer, None).await
    }

    /// Stores then adopts a token answer; `seed_fingerprint` replaces the chain's when given.
    async fn adopt(
        &self,
        state: &mut State,
        answer: TokenAnswer,
        seed_fingerprint: Option<String>,
    ) -> Result<Token, StudioError> {
        let ttl = answer.expires_in.unwrap_or(7200.0).max(1.0);
        let expires_at = chrono::Utc::now() + chrono::Duration::milliseconds((ttl * 1000.0) as i64);
        let access = SecretString::from(answer.access_token);
        let refresh = answer
            .refresh_token
            .map(SecretString::from)
            .or_else(|| state.refresh.clone());
        let fingerprint = seed_fingerprint.unwrap_or_else(|| state.seed_fingerprint.clone());
        if let Some(refresh) = &refresh {
            let stored = StoredTokens {
                refresh_token: refresh.clone(),
                access_token: Some(access.clone()),
                expires_at: Some(expires_at),
                seed_fingerprint: fingerprint.clone(),
            };
            // Durable before use: a crash after this line leaves the newest refresh token.
            self.history
                .save_tokens(&self.config.client_id, &stored)
                .await
                .map_err(|e| {
                    StudioError::Auth(format!(
                        "cannot store the rotated OAuth token in the history database: {e}"
                    ))
                })?;
        }
        state.refresh = refresh;
        state.access = Some((access.clone(), expires_at));
        state.seed_fingerprint = fingerprint;
        state.ttl = Duration::from_secs_f64(ttl);
        state.generation += 1;
        tracing::info!(
            expires_in_seconds = ttl,
            "obtained a new Studio access token"
        );
        Ok(Token {
            value: access,
            generation: state.generation,
        })
    }

    async fn token_request(
        &self,
        http: &reqwest::Client,
        grant: &[(&str, &str)],
    ) -> Result<TokenAnswer, StudioError> {
        let mut form: Vec<(&str, &str)> = grant.to_vec();
        form.push(("client_id", &self.config.client_id));
        form.push(("client_secret", self.config.client_secret.expose_secret()));
        let mut last_error = String::new();
        for attempt in 0..4u32 {
            if attempt > 0 {
                tokio::time::sleep(Duration::from_millis(250 * 2u64.pow(attempt))).await;
            }
            let sent = http
                .post(self.config.token_url.clone())
                .form(&form)
                .send()
                .await;
            let response = match sent {
                Ok(r) => r,
                Err(e) => {
                    self.metrics.request(Endpoint::Token.as_str(), None);
                    last_error = format!("cannot reach the token endpoint: {}", e.without_url());
                    continue;
                }
            };
            let status = response.status().as_u16();
            self.metrics.request(Endpoint::Token.as_str(), Some(status));
            let body = response.bytes().await.unwrap_or_default();
            if (200..300).contains(&status) {
                return serde_json::from_slice(&body).map_err(|e| {
                    StudioError::Auth(format!(
                        "the token endpoint answered JSON without a token: {e}"
                    ))
                });
            }
            if status >= 500 || status == 429 {
                last_error = format!("the token endpoint answered {status}");
                continue;
            }
            let error = serde_json::from_slice::<TokenError>(&body).ok();
            let code = error.as_ref().map(|e| e.error.as_str()).unwrap_or("");
            let description = error
                .as_ref()
                .and_then(|e| e.error_description.clone())
                .unwrap_or_default();
            return Err(StudioError::Auth(match code {
                "invalid_grant" => format!(
                    "Studio refused the OAuth refresh token (invalid_grant{}). It was revoked, expired, or \
                     already used by another copy of this daemon. To re-seed: run `studio-role-sync auth login`, \
                     or put a new refresh token where studio.oauth.refresh_token_env/_file points (a new seed \
                     replaces the stored token)",
                    if description.is_empty() { String::new() } else { format!(": {description}") }
                ),
                "invalid_client" => "Studio refused the OAuth client (invalid_client): check studio.oauth.client_id and the client secret".into(),
                other => format!("the token endpoint answered {status} {other} {description}"),
            }));
        }
        Err(StudioError::Auth(last_error))
    }

    /// Exchanges an authorization code (from `auth login`) and stores the tokens.
    pub async fn exchange_code(
        &self,
        http: &reqwest::Client,
        code: &str,
        redirect_uri: &str,
    ) -> Result<(), StudioError> {
        let form = [
            ("grant_type", "authorization_code"),
            ("code", code),
            ("redirect_uri", redirect_uri),
        ];
        let answer = self.token_request(http, &form).await?;
        if answer.refresh_token.is_none() {
            return Err(StudioError::Auth(
                "the token endpoint answered no refresh token".into(),
            ));
        }
        let mut state = self.state.lock().await;
        let seed = state.seed_fingerprint.clone();
        self.adopt(&mut state, answer, Some(seed)).await.map(|_| ())
    }
}

fn margin(ttl: Duration) -> chrono::Duration {
    chrono::Duration::from_std((ttl / 10).min(EXPIRY_MARGIN)).unwrap_or_default()
}
