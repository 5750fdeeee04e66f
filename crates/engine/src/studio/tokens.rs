//! Where the OAuth client keeps its tokens, as a small trait: the client needs a durable place
//! shared by every process of one installation, not SQLite itself.
//!
//! [`TokenStore`] is implemented by [`History`](crate::store::history::History) (table
//! `oauth_tokens`, and the lease table `oauth_refresh_lease`). Its four operations are exactly
//! what a safe refresh needs (see `studio/oauth.rs`): read the newest tokens, take and give
//! back the refresh lease, and store a rotated token (giving the lease back in the same
//! transaction, so a waiting process never sees the lease free and the old token stored).
//!
//! The seed fingerprint tells whether the admin configured a new seed since the stored chain
//! began. It is SHA-256 (stable forever); fingerprints written by older versions came from
//! `DefaultHasher`, whose output Rust may change between releases, so they are recognised and
//! handled by [`SeedMatch`] rather than compared blindly.

use futures::future::BoxFuture;
use secrecy::{ExposeSecret, SecretString};
use sha2::{Digest, Sha256};
use std::time::Duration;

/// The OAuth tokens as stored.
pub struct StoredTokens {
    pub refresh_token: SecretString,
    pub access_token: Option<SecretString>,
    pub expires_at: Option<chrono::DateTime<chrono::Utc>>,
    /// The fingerprint of the seed the chain grew from ([`fingerprint`]), `""` when none.
    pub seed_fingerprint: String,
}

impl std::fmt::Debug for StoredTokens {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StoredTokens")
            .field("expires_at", &self.expires_at)
            .finish_non_exhaustive()
    }
}

/// A token store failed (the message names the store and the cause, never a token).
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct TokenStoreError(pub String);

/// Durable token storage shared by every process of one installation.
pub trait TokenStore: Send + Sync {
    /// The newest tokens of `client_id`, if any were stored.
    fn load<'a>(
        &'a self,
        client_id: &'a str,
    ) -> BoxFuture<'a, Result<Option<StoredTokens>, TokenStoreError>>;

    /// Takes the refresh lease of `client_id` for `ttl` when it is free, lapsed, or already
    /// `owner`'s; true when `owner` holds it now.
    fn try_lease<'a>(
        &'a self,
        client_id: &'a str,
        owner: &'a str,
        ttl: Duration,
    ) -> BoxFuture<'a, Result<bool, TokenStoreError>>;

    /// Gives the lease back if `owner` holds it.
    fn release<'a>(
        &'a self,
        client_id: &'a str,
        owner: &'a str,
    ) -> BoxFuture<'a, Result<(), TokenStoreError>>;

    /// Stores the newest tokens and, in the same transaction, gives back `owner`'s lease.
    /// Returns once they are durable.
    fn save<'a>(
        &'a self,
        client_id: &'a str,
        tokens: &'a StoredTokens,
        owner: &'a str,
    ) -> BoxFuture<'a, Result<(), TokenStoreError>>;
}

const FINGERPRINT_DOMAIN: &[u8] = b"studio-role-sync seed\0";
const SHA256_PREFIX: &str = "sha256:";

/// A fingerprint of a seed token: tells whether the admin replaced it, reveals nothing.
pub fn fingerprint(secret: &SecretString) -> String {
    let mut h = Sha256::new();
    h.update(FINGERPRINT_DOMAIN);
    h.update(secret.expose_secret().as_bytes());
    let digest = h.finalize();
    let mut out = String::with_capacity(SHA256_PREFIX.len() + 64);
    out.push_str(SHA256_PREFIX);
    for b in digest {
        out.push_str(&format!("{b:02x}"));
    }
    out
}

/// The fingerprint versions up to 0.1 stored (16 hex digits from `DefaultHasher`). Only used
/// to recognise those rows: its output may differ between Rust releases.
fn legacy_fingerprint(secret: &SecretString) -> String {
    use std::hash::{Hash, Hasher};
    #[allow(deprecated)]
    let mut h = std::collections::hash_map::DefaultHasher::new();
    "studio-role-sync seed".hash(&mut h);
    secret.expose_secret().hash(&mut h);
    format!("{:016x}", h.finish())
}

/// How a stored chain relates to the configured seed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum SeedMatch {
    /// The chain grew from this seed: the seed is spent, use the chain.
    Same,
    /// The admin configured another seed since: use the seed.
    NewSeed,
    /// An older version stored the fingerprint and this build cannot tell (its hash may have
    /// changed with the toolchain): keep the chain, and try the seed only if Studio refuses it.
    Unknown,
}

/// Compares a stored fingerprint with the configured seed.
pub(crate) fn seed_match(stored: &str, seed: &SecretString) -> SeedMatch {
    if stored.starts_with(SHA256_PREFIX) {
        if stored == fingerprint(seed) {
            SeedMatch::Same
        } else {
            SeedMatch::NewSeed
        }
    } else if stored.is_empty() {
        // The chain came from `auth login` without a seed configured: a seed now is new.
        SeedMatch::NewSeed
    } else if stored == legacy_fingerprint(seed) {
        SeedMatch::Same
    } else {
        SeedMatch::Unknown
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(v: &str) -> SecretString {
        SecretString::from(v.to_string())
    }

    #[test]
    fn fingerprints_are_sha256_and_stable() {
        let f = fingerprint(&s("seed"));
        assert_eq!(f.len(), 7 + 64);
        // Fixed forever: a change here would make an upgraded daemon re-spend a spent seed.
        assert_eq!(
            f,
            "sha256:041aed3de64cbd8fa8e1d87442e4f83673cadea94cbf53b510f16a830aa2790b"
        );
        assert_ne!(f, fingerprint(&s("seed2")));
        assert!(!f.contains("seed"));
    }

    #[test]
    fn stored_fingerprints_are_matched_with_a_migration_path() {
        let seed = s("seed");
        assert_eq!(seed_match(&fingerprint(&seed), &seed), SeedMatch::Same);
        assert_eq!(
            seed_match(&fingerprint(&s("other")), &seed),
            SeedMatch::NewSeed
        );
        assert_eq!(seed_match("", &seed), SeedMatch::NewSeed);
        assert_eq!(
            seed_match(&legacy_fingerprint(&seed), &seed),
            SeedMatch::Same
        );
        // An old row this toolchain hashes differently: never a reason to re-spend the seed.
        assert_eq!(seed_match("0123456789abcdef", &seed), SeedMatch::Unknown);
    }
}
