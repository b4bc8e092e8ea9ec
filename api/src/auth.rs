//! Authentication: the operator's admin token and organizations' API keys.
//!
//! API keys are `mse_` + 43 base64url characters (256 random bits). Only their
//! SHA-256 is stored; a fast hash is right for keys of that entropy. Valid keys
//! are cached in memory for a short time so the hot path does not query the
//! database per request; revoking a key or disabling an organization through
//! this process evicts it at once. (With several nodes, the eviction will be
//! broadcast with PostgreSQL LISTEN/NOTIFY; until then the TTL bounds it.)

use std::future::{ready, Ready};
use std::time::{Duration, Instant};

use actix_web::dev::Payload;
use actix_web::http::header;
use actix_web::{web, FromRequest, HttpRequest};
use base64::Engine as _;
use dashmap::DashMap;
use msgengine_domain::{ApiKeyId, OrganizationId, Secret};
use msgengine_storage::repo::api_keys::{self, KeyIdentity};
use msgengine_storage::StoreError;
use rand::RngCore;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use crate::error::ApiError;
use crate::state::AppState;

const KEY_PREFIX: &str = "mse_";

/// The operator token, kept only as a digest and compared in constant time.
pub struct AdminToken {
    digest: [u8; 32],
}

impl AdminToken {
    pub fn new(token: &Secret) -> Self {
        Self {
            digest: Sha256::digest(token.expose().as_bytes()).into(),
        }
    }

    fn verify(&self, presented: &str) -> bool {
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

    /// The identity of `key`, or `None` for an unknown, revoked or disabled one.
    pub async fn authenticate(
        &self,
        pool: &deadpool_postgres::Pool,
        key: &str,
    ) -> Result<Option<KeyIdentity>, StoreError> {
        let hash = hash_key(key);
        if let Some(entry) = self.entries.get(&hash) {
            if entry.1.elapsed() < self.ttl {
                return Ok(Some(entry.0));
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
        Ok(identity)
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

use msgengine_storage::driver::deadpool_postgres;

fn bearer(req: &HttpRequest) -> Result<&str, ApiError> {
    let value = req
        .headers()
        .get(header::AUTHORIZATION)
        .ok_or_else(|| ApiError::unauthorized("missing Authorization: Bearer <key> header"))?;
    let text = value
        .to_str()
        .map_err(|_| ApiError::unauthorized("malformed Authorization header"))?;
    let (scheme, token) = text
        .split_once(' ')
        .ok_or_else(|| ApiError::unauthorized("Authorization must be `Bearer <key>`"))?;
    if !scheme.eq_ignore_ascii_case("bearer") || token.trim().is_empty() {
        return Err(ApiError::unauthorized(
            "Authorization must be `Bearer <key>`",
        ));
    }
    Ok(token.trim())
}

fn state(req: &HttpRequest) -> Result<web::Data<AppState>, ApiError> {
    req.app_data::<web::Data<AppState>>()
        .cloned()
        .ok_or_else(ApiError::internal)
}

/// Extractor: the request carries the operator token.
pub struct Admin;

impl FromRequest for Admin {
    type Error = ApiError;
    type Future = Ready<Result<Self, ApiError>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        ready((|| {
            let token = bearer(req)?;
            if state(req)?.admin.verify(token) {
                Ok(Admin)
            } else {
                Err(ApiError::unauthorized("invalid admin token"))
            }
        })())
    }
}

/// Extractor: the request carries a valid API key; everything the handler
/// does is scoped to this organization.
#[derive(Debug, Clone, Copy)]
pub struct Tenant {
    pub organization_id: OrganizationId,
    pub key_id: ApiKeyId,
}

impl FromRequest for Tenant {
    type Error = ApiError;
    type Future = std::pin::Pin<Box<dyn std::future::Future<Output = Result<Self, ApiError>>>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        let token = bearer(req).map(str::to_owned);
        let state = state(req);
        Box::pin(async move {
            let token = token?;
            let state = state?;
            match state.auth.authenticate(&state.pool, &token).await? {
                Some(id) => Ok(Tenant {
                    organization_id: id.organization_id,
                    key_id: id.key_id,
                }),
                None => Err(ApiError::unauthorized("unknown or revoked API key")),
            }
        })
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
        let token = AdminToken::new(&Secret::new("s3cret-admin-token-0123456789"));
        assert!(token.verify("s3cret-admin-token-0123456789"));
        assert!(!token.verify("s3cret-admin-token-012345678"));
        assert!(!token.verify(""));
    }
}
