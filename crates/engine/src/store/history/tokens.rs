//! The history database as the OAuth client's [`TokenStore`]: table `oauth_tokens` (the
//! newest tokens per client id) and table `oauth_refresh_lease` (who may refresh now).
//!
//! The lease is a row, not a long SQLite write transaction: a refresh waits on the network,
//! and holding the database's write lock that long would stall every run recording its
//! actions. Taking the lease is one atomic upsert that succeeds only when the row is free,
//! lapsed or already ours; SQLite serialises writers, so exactly one process wins.

use super::db::Sql;
use super::{now, History, StoredTokens};
use crate::studio::tokens::{TokenStore, TokenStoreError};
use chrono::{DateTime, SecondsFormat, Utc};
use futures::future::BoxFuture;
use futures::FutureExt;
use secrecy::{ExposeSecret, SecretString};
use std::time::Duration;

fn unix_ms() -> i64 {
    Utc::now().timestamp_millis()
}

impl History {
    fn token_error(&self, e: impl Into<super::HistoryFailure>) -> TokenStoreError {
        TokenStoreError(self.err(e).to_string())
    }

    pub async fn load_tokens(
        &self,
        client_id: &str,
    ) -> Result<Option<StoredTokens>, TokenStoreError> {
        let row: Option<(String, Option<String>, Option<String>, String)> = Sql::new(
            "SELECT refresh_token, access_token, expires_at, seed_fingerprint FROM oauth_tokens WHERE client_id = ?",
        )
        .bind(client_id)
        .fetch_optional(&self.db)
        .await
        .map_err(|e| self.token_error(e))?;
        Ok(row.map(|(refresh, access, expires, seed)| StoredTokens {
            refresh_token: SecretString::from(refresh),
            access_token: access.map(SecretString::from),
            expires_at: expires
                .and_then(|e| DateTime::parse_from_rfc3339(&e).ok())
                .map(|e| e.with_timezone(&Utc)),
            seed_fingerprint: seed,
        }))
    }

    /// Stores the newest tokens and gives back `owner`'s lease, in one transaction.
    pub async fn save_tokens(
        &self,
        client_id: &str,
        tokens: &StoredTokens,
        owner: &str,
    ) -> Result<(), TokenStoreError> {
        let mut tx = self.begin_write().await.map_err(|e| self.token_error(e))?;
        Sql::new(
            "INSERT INTO oauth_tokens (client_id, refresh_token, access_token, expires_at, seed_fingerprint, updated_at) \
             VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (client_id) DO UPDATE SET refresh_token = excluded.refresh_token, \
             access_token = excluded.access_token, expires_at = excluded.expires_at, \
             seed_fingerprint = excluded.seed_fingerprint, updated_at = excluded.updated_at",
        )
        .bind(client_id)
        .bind(tokens.refresh_token.expose_secret())
        .bind(tokens.access_token.as_ref().map(|t| t.expose_secret().to_string()))
        .bind(tokens.expires_at.map(|t| t.to_rfc3339_opts(SecondsFormat::Millis, true)))
        .bind(&tokens.seed_fingerprint)
        .bind(now())
        .execute(&mut tx)
        .await
        .map_err(|e| self.token_error(e))?;
        Sql::new("DELETE FROM oauth_refresh_lease WHERE client_id = ? AND owner = ?")
            .bind(client_id)
            .bind(owner)
            .execute(&mut tx)
            .await
            .map_err(|e| self.token_error(e))?;
        tx.commit().await.map_err(|e| self.token_error(e))
    }

    pub async fn try_refresh_lease(
        &self,
        client_id: &str,
        owner: &str,
        ttl: Duration,
    ) -> Result<bool, TokenStoreError> {
        let now = unix_ms();
        let until = now.saturating_add(i64::try_from(ttl.as_millis()).unwrap_or(i64::MAX));
        let r = Sql::new(
            "INSERT INTO oauth_refresh_lease (client_id, owner, expires_at) VALUES (?, ?, ?) \
             ON CONFLICT (client_id) DO UPDATE SET owner = excluded.owner, expires_at = excluded.expires_at \
             WHERE oauth_refresh_lease.expires_at <= ? OR oauth_refresh_lease.owner = excluded.owner",
        )
        .bind(client_id)
        .bind(owner)
        .bind(until)
        .bind(now)
        .execute(&self.db)
        .await
        .map_err(|e| self.token_error(e))?;
        Ok(r == 1)
    }

    pub async fn release_refresh_lease(
        &self,
        client_id: &str,
        owner: &str,
    ) -> Result<(), TokenStoreError> {
        Sql::new("DELETE FROM oauth_refresh_lease WHERE client_id = ? AND owner = ?")
            .bind(client_id)
            .bind(owner)
            .execute(&self.db)
            .await
            .map_err(|e| self.token_error(e))?;
        Ok(())
    }
}

impl TokenStore for History {
    fn load<'a>(
        &'a self,
        client_id: &'a str,
    ) -> BoxFuture<'a, Result<Option<StoredTokens>, TokenStoreError>> {
        self.load_tokens(client_id).boxed()
    }

    fn try_lease<'a>(
        &'a self,
        client_id: &'a str,
        owner: &'a str,
        ttl: Duration,
    ) -> BoxFuture<'a, Result<bool, TokenStoreError>> {
        self.try_refresh_lease(client_id, owner, ttl).boxed()
    }

    fn release<'a>(
        &'a self,
        client_id: &'a str,
        owner: &'a str,
    ) -> BoxFuture<'a, Result<(), TokenStoreError>> {
        self.release_refresh_lease(client_id, owner).boxed()
    }

    fn save<'a>(
        &'a self,
        client_id: &'a str,
        tokens: &'a StoredTokens,
        owner: &'a str,
    ) -> BoxFuture<'a, Result<(), TokenStoreError>> {
        self.save_tokens(client_id, tokens, owner).boxed()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn one_lease_holder_at_a_time_across_connections_and_a_lapsed_lease_is_taken() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("history.db");
        // Two pools on one file: as two processes see it.
        let a = History::open(&path).await.unwrap();
        let b = History::open(&path).await.unwrap();
        let long = Duration::from_secs(60);
        assert!(a.try_refresh_lease("c", "a", long).await.unwrap());
        assert!(!b.try_refresh_lease("c", "b", long).await.unwrap());
        assert!(
            a.try_refresh_lease("c", "a", long).await.unwrap(),
            "re-entrant"
        );
        // Another client id has its own lease.
        assert!(b.try_refresh_lease("other", "b", long).await.unwrap());
        // Saving gives the lease back in the same transaction.
        let tokens = StoredTokens {
            refresh_token: SecretString::from("r1".to_string()),
            access_token: None,
            expires_at: None,
            seed_fingerprint: String::new(),
        };
        a.save_tokens("c", &tokens, "a").await.unwrap();
        assert!(b.try_refresh_lease("c", "b", long).await.unwrap());
        // A holder that died: its lease lapses.
        b.release_refresh_lease("c", "b").await.unwrap();
        assert!(b
            .try_refresh_lease("c", "dead", Duration::from_millis(50))
            .await
            .unwrap());
        assert!(!a.try_refresh_lease("c", "a", long).await.unwrap());
        // ... and is taken once it lapses (polled, not slept: a loaded machine runs late).
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        while !a.try_refresh_lease("c", "a", long).await.unwrap() {
            assert!(
                std::time::Instant::now() < deadline,
                "the lease never lapsed"
            );
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        let stored = b.load_tokens("c").await.unwrap().unwrap();
        assert_eq!(stored.refresh_token.expose_secret(), "r1");
    }
}
