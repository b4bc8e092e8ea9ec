//! Who is calling: the operator's admin token and organizations' API keys.
//!
//! API keys are `mse_` + 43 base64url characters (256 random bits). Only their
//! SHA-256 is stored; a fast hash is right for keys of that entropy. Valid keys
//! are cached in memory for a short time so the hot path does not query the
//! database per request; revoking a key or disabling an organization through
//! this process evicts it at once. (With several nodes, the eviction will be
//! broadcast with PostgreSQL LISTEN/NOTIFY; until then the TTL bounds it.)

use std::time::{Duration, Instant};

use base64::Engine as _;
use dashmap::DashMap;
use msgengine_domain::{ApiKeyId, OrganizationId, Secret};
use msgengine_storage::driver::deadpool_postgres::Pool;
use msgengine_storage::repo::api_keys::{self, KeyIdentity};
use rand::RngCore;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use super::AppError;

const KEY_PREFIX: &str = "mse_";

/// An authenticated organization: every use case it calls is scoped to it,
/// and its audit rows name the key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Tenant {
    pub organization_id: OrganizationId,
    pub key_id: ApiKeyId,
}

/// A bearer token (the operator's admin token, the metrics scrape token),
/// kept only as its SHA-256 digest and compared in constant time.
pub struct TokenDigest {
    digest: [u8; 32],
}

impl TokenDigest {
    pub fn new(token: &Secret) -> Self {
        Self {
            digest: Sha256::digest(token.expose().as_bytes()).into(),
        }
    }

    /// Whether `presented` is the token.
    pub fn verify(&self, presented: &str) -> bool {
        let digest: [u8; 32] = Sha256::digest(presented.as_bytes()).into();
        bool::from(self.digest.ct_eq(&digest))
    }
}

/// A freshly issued API key: shown once, stored as its hash.
pub struct IssuedKey {
    pub key: Secret,
    pub prefix: String,
    pub hash: [u8; 32],
}

/// Generates a new API key.
pub fn issue_key() -> IssuedKey {
    let mut random = [0u8; 32];
    rand::rngs::OsRng.fill_bytes(&mut random);
    let key = format!(
        "{KEY_PREFIX}{}",
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(random)
    );
    let prefix = key.chars().take(KEY_PREFIX.len() + 8).collect();
    let hash = hash_key(&key);
    IssuedKey {
        key: Secret::new(key),
        prefix,
        hash,
    }
}

/// The stored form of a key.
pub fn hash_key(key: &str) -> [u8; 32] {
    Sha256::digest(key.as_bytes()).into()
}

/// Recently validated keys, by hash.
pub struct AuthCache {
    entries: DashMap<[u8; 32], (KeyIdentity, Instant)>,
    ttl: Duration,
}

impl AuthCache {
    /// `ttl`: how long a validated key is trusted without asking the database.
    pub fn new(ttl: Duration) -> Self {
        Self {
            entries: DashMap::new(),
            ttl,
        }
    }

    /// The organization `key` belongs to, or `None` for an unknown, revoked
    /// or disabled one.
    pub async fn authenticate(&self, pool: &Pool, key: &str) -> Result<Option<Tenant>, AppError> {
        let hash = hash_key(key);
        if let Some(entry) = self.entries.get(&hash) {
            if entry.1.elapsed() < self.ttl {
                return Ok(Some(tenant(entry.0)));
            }
        }
        let client = pool.get().await?;
        let identity = api_keys::find_identity(&client, &hash).await?;
        match identity {
            Some(id) => {
                self.entries.insert(hash, (id, Instant::now()));
            }
            None => {
                self.entries.remove(&hash);
            }
        }
        Ok(identity.map(tenant))
    }

    /// Evicts a revoked key.
    pub fn forget_key(&self, key_id: ApiKeyId) {
        self.entries.retain(|_, (id, _)| id.key_id != key_id);
    }

    /// Evicts every key of a disabled organization.
    pub fn forget_organization(&self, org: OrganizationId) {
        self.entries.retain(|_, (id, _)| id.organization_id != org);
    }
}

fn tenant(id: KeyIdentity) -> Tenant {
    Tenant {
        organization_id: id.organization_id,
        key_id: id.key_id,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn issued_keys_are_random_and_hash_to_what_is_stored() {
        let a = issue_key();
        let b = issue_key();
        assert_ne!(a.key.expose(), b.key.expose());
        assert!(a.key.expose().starts_with("mse_") && a.key.expose().len() == 47);
        assert_eq!(hash_key(a.key.expose()), a.hash);
        assert!(a.key.expose().starts_with(&a.prefix));
    }

    #[test]
    fn admin_token_verifies_only_the_exact_token() {
        let token = TokenDigest::new(&Secret::new("s3cret-admin-token-0123456789"));
        assert!(token.verify("s3cret-admin-token-0123456789"));
        assert!(!token.verify("s3cret-admin-token-012345678"));
        assert!(!token.verify(""));
    }
}
