//! Pure resilience policy for provider calls: backoff ([`backoff`]), the
//! retry policy over classified errors ([`retry`], its types also reachable
//! as `backoff::*`), the circuit breaker ([`breaker`]) and rolling health
//! statistics ([`health`]).
//!
//! Nothing here reads a clock or a random number generator: times and random
//! draws are arguments, so the actors own the side effects and the tests are
//! deterministic.

pub mod backoff;
pub mod breaker;
pub mod health;
pub mod retry;

pub use backoff::{clamp_retry_after, Backoff};
pub use breaker::{BreakerConfig, BreakerState, CircuitBreaker};
pub use health::{HealthSnapshot, HealthStats};
pub use retry::{ErrorClass, RetryDecision, RetryPolicy};
