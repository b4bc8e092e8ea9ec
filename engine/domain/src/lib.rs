//! msgengine's domain: identifiers, channels, provider configuration and its
//! validation, and the small value types the other crates share.
//!
//! This crate does no I/O. Everything here is pure and unit-tested, so the
//! storage, provider, actor and HTTP layers can rely on a value that exists
//! being valid.

pub mod channel;
pub mod ids;
pub mod provider;
pub mod secret;
pub mod validate;

pub use channel::Channel;
pub use ids::{ApiKeyId, OrganizationId, ProviderId};
pub use secret::Secret;
pub use validate::ValidationError;
