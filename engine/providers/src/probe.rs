//! What a connection test is made of: the [`ConnectionProbe`] an adapter
//! offers for its provider type (a real, authenticated, side-effect-free
//! call to the provider) and the [`Check`]s and [`TestReport`] it answers
//! with. [`ProviderRegistry`](crate::registry::ProviderRegistry), in the
//! registry, runs them for `POST /api/{channel}/providers/{id}/test`.
//!
//! Pure types and a trait: this module depends on no adapter and on no
//! lookup, so the adapters and [`crate::descriptor`] can name them.

use async_trait::async_trait;
use msgengine_domain::provider::AnyProviderSpec;
use serde::Serialize;

/// The outcome of one check.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum CheckStatus {
    Passed,
    Failed,
    Skipped,
}

/// One named check of a provider connection, with what it found in words.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Check {
    /// `configuration` or `connection`.
    pub name: &'static str,
    pub status: CheckStatus,
    pub message: String,
}

/// Everything a test of a connection found. `ok` is false when any check failed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct TestReport {
    pub ok: bool,
    pub checks: Vec<Check>,
}

/// A live, authenticated, read-only call to a provider (an account or domain
/// lookup, never a send) that tells whether the credentials work.
#[async_trait]
pub trait ConnectionProbe: Send + Sync {
    async fn probe(&self, spec: &AnyProviderSpec) -> Check;
}
