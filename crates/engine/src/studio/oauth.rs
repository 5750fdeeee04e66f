//! OAuth2 with rotating refresh tokens: one refresh-token lineage per history, shared safely
//! by every process that uses it (the daemon, an admin's `plan` or `export`, `auth login`).
//!
//! Studio's refresh tokens are single use: every refresh answers a new one and kills the old.
//! Two processes that spend the same refresh token lock one of them out, and a process that
//! loses the newest one locks everyone out. So:
//! - **the store is the truth**: before refreshing, a process re-reads the stored tokens;
//!   when another process has already rotated them it uses that access token (or that
//!   refresh token) instead of its own copy. The same happens on a `401` and on
//!   `invalid_grant`: the other process may have rotated the token;
//! - **one refresh at a time across processes**: a refresh happens only under the store's
//!   refresh lease (a row with owner and expiry, see `history/tokens.rs`); a process that
//!   finds it taken waits, re-reading the store, and usually finds the new token there. A
//!   holder that crashed blocks the others for at most [`LEASE`];
//! - **durable before use**: the rotated refresh token is stored (and the lease given back,
//!   in one transaction) before the new access token is used, so a crash at any moment leaves
//!   the newest token on disk;
//! - **a new seed wins, a spent one never comes back**: a stored chain is preferred over the
//!   configured seed unless the admin has put a new seed in place since (its SHA-256
//!   fingerprint differs from the one the chain grew from; see `tokens.rs` for fingerprints
//!   written by older versions).
//!
//! Within a process one mutex serialises token work, so concurrent requests cause one read
//! of the store and at most one refresh. Secrets stay in `SecretString` throughout.

use super::auth::Token;
use super::tokens::{seed_match, SeedMatch, StoredTokens, TokenStore};
use super::untrusted::{self, read_body, MAX_TOKEN_BODY};
use super::{Endpoint, StudioError};
use crate::input::config::OAuthConfig;
use crate::service::metrics::Metrics;
use secrecy::{ExposeSecret, SecretString};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::Mutex;

/// At most this long before the access token expires it is refreshed, so no request carries
/// a dying token.
const EXPIRY_MARGIN: Duration = Duration::from_secs(60);
/// How long the refresh lease lasts: the refresh (all its attempts) is cut off a little
/// before, so a lease never outlives its refresh; a crashed holder blocks the others this long.
pub(crate) const LEASE: Duration = Duration::from_secs(90);
/// Part of the lease kept free at its end, so the holder's last write lands within it.
const LEASE_SLACK: Duration = Duration::from_secs(5);
/// How often a process waiting for the lease looks at the store again.
const LEASE_POLL: Duration = Duration::from_millis(100);

pub struct OAuth {
    config: OAuthConfig,
    store: Arc<dyn TokenStore>,
    metrics: Metrics,
    /// This process's name on the refresh lease.
    owner: String,
    state: Mutex<State>,
}

struct Access {
    value: SecretString,
    expires_at: chrono::DateTime<chrono::Utc>,
    /// Lifetime when issued, for the refresh margin.
    ttl: Duration,
}

struct State {
    access: Option<Access>,
    refresh: Option<SecretString>,
    /// The fingerprint of the seed the chain grew from (written with every rotation).
    fingerprint: String,
    /// The configured seed is new and not spent yet: the next refresh spends it.
    seed_pending: bool,
    /// The stored chain's fingerprint came from an older version and may or may not be this
    /// seed's: if Studio refuses the chain, the seed is tried once.
    seed_fallback: bool,
    /// Access tokens Studio answered `401` to: never adopted again from the store.
    refused: Vec<SecretString>,
    generation: u64,
}

impl State {
    /// The access token, unless it is about to expire.
    fn usable(&self) -> Option<Token> {
        let a = self.access.as_ref()?;
        (a.expires_at - margin(a.ttl) > chrono::Utc::now()).then(|| Token {
            value: a.value.clone(),
            generation: self.generation,
        })
    }

    fn was_refused(&self, token: &SecretString) -> bool {
        self.refused
            .iter()
            .any(|r| r.expose_secret() == token.expose_secret())
    }
}

/// What the token endpoint answered, validated.
struct TokenAnswer {
    access_token: SecretString,
    ttl: Duration,
    refresh_token: Option<SecretString>,
}

/// Why a token request failed.
enum Refused {
    /// `invalid_grant`: the refresh token (or code) is spent, revoked or expired.
    InvalidGrant(String),
    Other(StudioError),
}

impl OAuth {
    /// Sets up OAuth from the stored tokens, or the seed when there are none (or a new seed).
    pub async fn new(
        config: &OAuthConfig,
        store: Arc<dyn TokenStore>,
        metrics: Metrics,
    ) -> Result<OAuth, StudioError> {
        let seed_fp = config
            .seed_refresh_token
            .as_ref()
            .map(super::tokens::fingerprint)
            .unwrap_or_default();
        let stored = store
            .load(&config.client_id)
            .await
            .map_err(|e| StudioError::Auth(format!("cannot read stored OAuth tokens: {e}")))?;
        let mut state = State {
            access: None,
            refresh: None,
            fingerprint: seed_fp.clone(),
            seed_pending: false,
            seed_fallback: false,
            refused: Vec::new(),
            generation: 1,
        };
        match (&config.seed_refresh_token, stored) {
            (None, Some(s)) => adopt_stored(&mut state, s),
            (None, None) => {}
            (Some(_), None) => state.seed_pending = true,
            (Some(seed), Some(s)) => match seed_match(&s.seed_fingerprint, seed) {
                SeedMatch::Same => {
                    adopt_stored(&mut state, s);
                    // An older version's fingerprint is rewritten as SHA-256 at the next rotation.
                    state.fingerprint = seed_fp;
                }
                SeedMatch::NewSeed => {
                    tracing::info!("a new OAuth seed token is configured; it replaces the stored token at the next refresh");
                    state.seed_pending = true;
                }
                SeedMatch::Unknown => {
                    tracing::warn!(
                        "the stored OAuth token was written by an older version, which fingerprinted the seed \
                         differently; keeping the stored token (the configured seed is tried only if Studio refuses it)"
                    );
                    adopt_stored(&mut state, s);
                    state.fingerprint = seed_fp;
                    state.seed_fallback = true;
                }
            },
        }
        let owner = format!("pid {} {:08x}", std::process::id(), rand::random::<u32>());
        Ok(OAuth {
            config: config.clone(),
            store,
            metrics,
            owner,
            state: Mutex::new(state),
        })
    }

    /// A valid access token: the one in hand, one another process stored, or a fresh one.
    pub(super) async fn access_token(&self, http: &reqwest::Client) -> Result<Token, StudioError> {
        let mut state = self.state.lock().await;
        if let Some(token) = state.usable() {
            return Ok(token);
        }
        // Another process may have refreshed already: then its access token will do.
        self.sync(&mut state).await?;
        if let Some(token) = state.usable() {
            return Ok(token);
        }
        self.refresh_under_lease(&mut state, http).await
    }

    /// Studio answered `401` to `token`: forget it (unless it was already replaced), so the
    /// next request re-reads the store and refreshes only if no other process has.
    pub(super) async fn rejected(&self, token: &Token) {
        let mut state = self.state.lock().await;
        if !state.was_refused(&token.value) {
            state.refused.push(token.value.clone());
            // Only the last few matter: the store holds one access token at a time.
            if state.refused.len() > 8 {
                state.refused.remove(0);
            }
        }
        if state.generation == token.generation {
            state.access = None;
        }
    }

    /// Takes what the store holds when another process rotated the chain.
    async fn sync(&self, state: &mut State) -> Result<(), StudioError> {
        let Some(stored) = self.load().await? else {
            return Ok(());
        };
        if state.seed_pending {
            // Our seed is new: only a chain grown from it (another process spent it) counts.
            if stored.seed_fingerprint != state.fingerprint {
                return Ok(());
            }
            state.seed_pending = false;
        }
        let same_chain = state
            .refresh
            .as_ref()
            .is_some_and(|r| r.expose_secret() == stored.refresh_token.expose_secret());
        if !same_chain {
            state.refresh = Some(stored.refresh_token);
            state.fingerprint = stored.seed_fingerprint;
            state.seed_fallback = false;
        }
        if let (Some(value), Some(expires_at)) = (stored.access_token, stored.expires_at) {
            let known = state
                .access
                .as_ref()
                .is_some_and(|a| a.value.expose_secret() == value.expose_secret());
            if !known && !state.was_refused(&value) {
                let left = (expires_at - chrono::Utc::now())
                    .to_std()
                    .unwrap_or_default();
                state.access = Some(Access {
                    value,
                    expires_at,
                    ttl: left,
                });
                state.generation += 1;
            }
        }
        Ok(())
    }

    async fn load(&self) -> Result<Option<StoredTokens>, StudioError> {
        self.store
            .load(&self.config.client_id)
            .await
            .map_err(|e| StudioError::Auth(format!("cannot read stored OAuth tokens: {e}")))
    }

    /// Waits for the refresh lease (re-reading the store meanwhile: the holder usually stores
    /// a token this process can use), then refreshes.
    async fn refresh_under_lease(
        &self,
        state: &mut State,
        http: &reqwest::Client,
    ) -> Result<Token, StudioError> {
        let give_up = tokio::time::Instant::now() + LEASE * 2;
        let mut waited = false;
        loop {
            if self.try_lease().await? {
                break;
            }
            if !waited {
                tracing::debug!("another process is refreshing the OAuth token; waiting for it");
                waited = true;
            }
            if tokio::time::Instant::now() > give_up {
                return Err(StudioError::Auth(format!(
                    "another process has held the OAuth refresh lock for over {} s (table oauth_refresh_lease)",
                    (LEASE * 2).as_secs()
                )));
            }
            tokio::time::sleep(LEASE_POLL).await;
            self.sync(state).await?;
            if let Some(token) = state.usable() {
                return Ok(token);
            }
        }
        let result = tokio::time::timeout(LEASE - LEASE_SLACK, self.refresh_leased(state, http))
            .await
            .unwrap_or_else(|_| {
                Err(StudioError::Auth(format!(
                    "the OAuth token refresh did not finish within {} s",
                    (LEASE - LEASE_SLACK).as_secs()
                )))
            });
        if result.is_err() {
            // A stored rotation gave the lease back already; this only matters on failure.
            if let Err(e) = self
                .store
                .release(&self.config.client_id, &self.owner)
                .await
            {
                tracing::warn!(error = %e, "cannot give back the OAuth refresh lease; it lapses by itself");
            }
        }
        result
    }

    async fn try_lease(&self) -> Result<bool, StudioError> {
        self.store
            .try_lease(&self.config.client_id, &self.owner, LEASE)
            .await
            .map_err(|e| StudioError::Auth(format!("cannot take the OAuth refresh lease: {e}")))
    }

    /// The refresh itself, holding the lease: the store is read once more (the previous
    /// holder may have just finished), then the newest refresh token is spent.
    async fn refresh_leased(
        &self,
        state: &mut State,
        http: &reqwest::Client,
    ) -> Result<Token, StudioError> {
        self.sync(state).await?;
        if let Some(token) = state.usable() {
            self.store
                .release(&self.config.client_id, &self.owner)
                .await
                .map_err(|e| StudioError::Auth(e.to_string()))?;
            return Ok(token);
        }
        let mut tried_seed = false;
        let mut tried_stored = Vec::<SecretString>::new();
        loop {
            let (refresh, from_seed) = if state.seed_pending {
                (self.config.seed_refresh_token.clone(), true)
            } else {
                (state.refresh.clone(), false)
            };
            let refresh = refresh.ok_or_else(|| {
                StudioError::Auth(
                    "no OAuth refresh token: run `studio-role-sync auth login` once, or set studio.oauth.refresh_token_env"
                        .into(),
                )
            })?;
            let form = [
                ("grant_type", "refresh_token"),
                ("refresh_token", refresh.expose_secret()),
            ];
            match self.token_request(http, &form).await {
                Ok(answer) => {
                    state.seed_pending = false;
                    state.seed_fallback = false;
                    return self.adopt(state, answer).await;
                }
                Err(Refused::Other(e)) => return Err(e),
                Err(Refused::InvalidGrant(description)) => {
                    tried_seed |= from_seed;
                    tried_stored.push(refresh.clone());
                    // Another process (an older version without the lease, or one whose lease
                    // lapsed) may have rotated the token meanwhile: take what the store holds.
                    // A refused seed (an old one left in an admin's environment) also falls
                    // back to the stored chain rather than locking this process out.
                    if let Some(stored) = self.load().await? {
                        let fresh = !tried_stored
                            .iter()
                            .any(|t| t.expose_secret() == stored.refresh_token.expose_secret());
                        if fresh && tried_stored.len() < 4 {
                            if from_seed && stored.seed_fingerprint != state.fingerprint {
                                tracing::warn!("Studio refused the configured OAuth seed token (spent or revoked); using the stored token");
                            } else {
                                tracing::info!("the OAuth refresh token was rotated by another process; using the newest one");
                            }
                            state.seed_pending = false;
                            state.refresh = Some(stored.refresh_token);
                            state.fingerprint = stored.seed_fingerprint;
                            continue;
                        }
                    }
                    if state.seed_fallback
                        && !tried_seed
                        && self.config.seed_refresh_token.is_some()
                    {
                        tracing::warn!(
                            "Studio refused the stored OAuth token; trying the configured seed"
                        );
                        state.seed_pending = true;
                        state.seed_fallback = false;
                        continue;
                    }
                    return Err(invalid_grant_error(&description));
                }
            }
        }
    }

    /// Stores then adopts a token answer (the store gives the lease back in the same write).
    async fn adopt(&self, state: &mut State, answer: TokenAnswer) -> Result<Token, StudioError> {
        let expires_at = chrono::Utc::now()
            + chrono::Duration::from_std(answer.ttl).unwrap_or(chrono::Duration::hours(1));
        let refresh = answer.refresh_token.or_else(|| state.refresh.clone());
        if let Some(refresh) = &refresh {
            let stored = StoredTokens {
                refresh_token: refresh.clone(),
                access_token: Some(answer.access_token.clone()),
                expires_at: Some(expires_at),
                seed_fingerprint: state.fingerprint.clone(),
            };
            // Durable before use: a crash after this line leaves the newest refresh token.
            self.store
                .save(&self.config.client_id, &stored, &self.owner)
                .await
                .map_err(|e| {
                    StudioError::Auth(format!(
                        "cannot store the rotated OAuth token in the history database: {e}"
                    ))
                })?;
        }
        state.refresh = refresh;
        state.access = Some(Access {
            value: answer.access_token.clone(),
            expires_at,
            ttl: answer.ttl,
        });
        state.generation += 1;
        tracing::info!(
            expires_in_seconds = answer.ttl.as_secs_f64(),
            "obtained a new Studio access token"
        );
        Ok(Token {
            value: answer.access_token,
            generation: state.generation,
        })
    }

    async fn token_request(
        &self,
        http: &reqwest::Client,
        grant: &[(&str, &str)],
    ) -> Result<TokenAnswer, Refused> {
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
                    last_error =
                        format!("cannot reach the token endpoint: {}", super::describe(&e));
                    if super::tls::is_certificate_error(&e) {
                        break;
                    }
                    continue;
                }
            };
            let status = response.status().as_u16();
            self.metrics.request(Endpoint::Token.as_str(), Some(status));
            let body = match read_body(response, MAX_TOKEN_BODY).await {
                Ok(b) => b,
                Err(e) => {
                    last_error = format!(
                        "the token endpoint's answer was cut off: {}",
                        super::describe(&e)
                    );
                    continue;
                }
            };
            if (200..300).contains(&status) {
                if body.truncated {
                    return Err(Refused::Other(StudioError::Auth(format!(
                        "the token endpoint answered more than {MAX_TOKEN_BODY} bytes"
                    ))));
                }
                return parse_answer(&body.bytes).map_err(|m| {
                    Refused::Other(StudioError::Auth(format!(
                        "the token endpoint answered {status} without a usable token: {m}"
                    )))
                });
            }
            if status >= 500 || status == 429 {
                last_error = format!("the token endpoint answered {status}");
                continue;
            }
            let error: Option<serde_json::Value> = serde_json::from_slice(&body.bytes).ok();
            let field = |k: &str| {
                error
                    .as_ref()
                    .and_then(|e| e.get(k))
                    .and_then(|v| v.as_str())
                    .map(|s| s.chars().take(200).collect::<String>())
                    .unwrap_or_default()
            };
            let (code, description) = (field("error"), field("error_description"));
            return Err(match code.as_str() {
                "invalid_grant" => Refused::InvalidGrant(description),
                "invalid_client" => Refused::Other(StudioError::Auth(
                    "Studio refused the OAuth client (invalid_client): check studio.oauth.client_id and the client secret".into(),
                )),
                other => Refused::Other(StudioError::Auth(format!(
                    "the token endpoint answered {status} {other} {description}"
                ))),
            });
        }
        Err(Refused::Other(StudioError::Auth(last_error)))
    }

    /// Exchanges an authorization code (from `auth login`) and stores the tokens: the new
    /// chain replaces any stored one (after any refresh in progress elsewhere has finished).
    pub async fn exchange_code(
        &self,
        http: &reqwest::Client,
        code: &str,
        redirect_uri: &str,
    ) -> Result<(), StudioError> {
        let mut state = self.state.lock().await;
        let give_up = tokio::time::Instant::now() + LEASE * 2;
        while !self.try_lease().await? {
            if tokio::time::Instant::now() > give_up {
                return Err(StudioError::Auth(
                    "another process holds the OAuth refresh lock".into(),
                ));
            }
            tokio::time::sleep(LEASE_POLL).await;
        }
        let form = [
            ("grant_type", "authorization_code"),
            ("code", code),
            ("redirect_uri", redirect_uri),
        ];
        let result = match self.token_request(http, &form).await {
            Ok(answer) if answer.refresh_token.is_none() => Err(StudioError::Auth(
                "the token endpoint answered no refresh token".into(),
            )),
            Ok(answer) => {
                // The configured seed (if any) is not spent by a login: it stays "known", so
                // the login's chain is preferred until the admin configures another seed.
                state.seed_pending = false;
                state.seed_fallback = false;
                self.adopt(&mut state, answer).await.map(|_| ())
            }
            Err(Refused::InvalidGrant(d)) => Err(StudioError::Auth(format!(
                "Studio refused the authorization code (invalid_grant{}): codes are single use and expire within minutes; run `auth login` again",
                if d.is_empty() { String::new() } else { format!(": {d}") }
            ))),
            Err(Refused::Other(e)) => Err(e),
        };
        if result.is_err() {
            let _ = self
                .store
                .release(&self.config.client_id, &self.owner)
                .await;
        }
        result
    }
}

fn adopt_stored(state: &mut State, s: StoredTokens) {
    state.access = s
        .access_token
        .zip(s.expires_at)
        .map(|(value, expires_at)| Access {
            value,
            expires_at,
            ttl: (expires_at - chrono::Utc::now())
                .to_std()
                .unwrap_or_default(),
        });
    state.refresh = Some(s.refresh_token);
    state.fingerprint = s.seed_fingerprint;
}

/// Validates a token endpoint answer: a usable access token, a bounded lifetime, and a
/// refresh token if one is given.
fn parse_answer(body: &[u8]) -> Result<TokenAnswer, String> {
    let value: serde_json::Value =
        serde_json::from_slice(body).map_err(|e| format!("not JSON ({e})"))?;
    if !value.is_object() {
        return Err("not a JSON object".into());
    }
    let access = untrusted::token_text(value.get("access_token"))
        .ok_or("access_token is missing or not a plain token")?;
    let refresh = match value.get("refresh_token") {
        None | Some(serde_json::Value::Null) => None,
        given => Some(untrusted::token_text(given).ok_or("refresh_token is not a plain token")?),
    };
    let (ttl, usable) = untrusted::token_lifetime(value.get("expires_in"));
    if !usable {
        tracing::warn!(
            assumed_seconds = ttl.as_secs(),
            "the token endpoint's expires_in is not a number; assuming the usual lifetime"
        );
    }
    Ok(TokenAnswer {
        access_token: SecretString::from(access.to_string()),
        ttl,
        refresh_token: refresh.map(|r| SecretString::from(r.to_string())),
    })
}

fn invalid_grant_error(description: &str) -> StudioError {
    StudioError::Auth(format!(
        "Studio refused the OAuth refresh token (invalid_grant{}). It was revoked or expired, or spent by a \
         process that does not share this history database. To re-seed: run `studio-role-sync auth login`, \
         or put a new refresh token where studio.oauth.refresh_token_env/_file points (a new seed \
         replaces the stored token)",
        if description.is_empty() { String::new() } else { format!(": {description}") }
    ))
}

fn margin(ttl: Duration) -> chrono::Duration {
    chrono::Duration::from_std((ttl / 10).min(EXPIRY_MARGIN)).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn token_answers_are_validated() {
        let ok =
            parse_answer(br#"{"access_token":"a1","expires_in":"1e308","refresh_token":"r1"}"#)
                .ok()
                .unwrap();
        assert_eq!(ok.access_token.expose_secret(), "a1");
        assert_eq!(ok.ttl, untrusted::MAX_TOKEN_LIFETIME);
        assert!(ok.refresh_token.is_some());
        let no_refresh =
            parse_answer(br#"{"access_token":"a1","refresh_token":null,"expires_in":-3}"#)
                .ok()
                .unwrap();
        assert!(no_refresh.refresh_token.is_none());
        assert_eq!(no_refresh.ttl, untrusted::MIN_TOKEN_LIFETIME);
        for bad in [
            &b"null"[..],
            b"[]",
            b"<html>oops</html>",
            br#"{"access_token":null}"#,
            br#"{"access_token":42}"#,
            br#"{"access_token":"a b"}"#,
            br#"{"access_token":"a","refresh_token":7}"#,
        ] {
            assert!(
                parse_answer(bad).is_err(),
                "{}",
                String::from_utf8_lossy(bad)
            );
        }
    }
}
