//! msgengine's domain: identifiers, channels, provider configuration and its
//! validation, the message lifecycle ([`lifecycle`]: states, the moves
//! allowed, initial and outcome events, provider reports) and history
//! ([`message`]), send-body
//! validation ([`send`]), and the pure policies the actors run: retries,
//! circuit breaking and health ([`resilience`]) and routing ([`routing`]),
//! and the cleaning of untrusted provider text ([`text`]).
//!
//! This crate does no I/O. Everything here is pure and unit-tested, so the
//! storage, provider, actor and HTTP layers can rely on a value that exists
//! being valid.

pub mod channel;
pub mod ids;
pub mod lifecycle;
pub mod message;
pub mod provider;
pub mod resilience;
pub mod routing;
pub mod secret;
pub mod send;
pub mod state;
pub mod text;
pub mod validate;

pub use channel::Channel;
pub use ids::{ApiKeyId, MessageId, OrganizationId, ProviderId};
pub use secret::Secret;
pub use validate::ValidationError;
