//! Authentication to Studio: a static access token, or OAuth2 with rotating refresh tokens
//! (`oauth.rs`, which keeps one refresh-token lineage per history across processes).
//!
//! A `401` for a token that was already replaced does not refresh again (no stampede, no
//! double use): every token handed out carries the generation it belongs to.
//!
//! Secrets stay in `SecretString` from the config to the `Authorization` header.

pub use super::oauth::OAuth;
pub use super::tokens::fingerprint;
use super::tokens::TokenStore;
use super::StudioError;
use crate::input::config::AuthConfig;
use crate::service::metrics::Metrics;
use secrecy::{ExposeSecret, SecretString};
use std::path::PathBuf;
use std::sync::Arc;

/// An access token handed to one request, with the generation it belongs to.
pub struct Token {
    pub(super) value: SecretString,
    pub(super) generation: u64,
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
        let Ok(text) =
            crate::input::input_file::read_text(file, crate::input::input_file::SECRET_MAX_BYTES)
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
    /// The authentication `studio:` configures: a static token, or OAuth whose tokens live in
    /// `store` (the history, shared by every process of the installation).
    pub async fn from_config(
        auth: &AuthConfig,
        store: Arc<dyn TokenStore>,
        metrics: &Metrics,
    ) -> Result<Auth, StudioError> {
        Ok(match auth {
            AuthConfig::Token { token, file } => {
                Auth::Static(Arc::new(StaticToken::new(token.clone(), file.clone())))
            }
            AuthConfig::OAuth(oauth) => {
                Auth::OAuth(Arc::new(OAuth::new(oauth, store, metrics.clone()).await?))
            }
        })
    }

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
                o.rejected(token).await;
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
