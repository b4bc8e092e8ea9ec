//! The background writers, each serving many organizations at once on the
//! database runtime ([`crate::dbrt`]), and what keeps one store fault from
//! spreading ([`bulkhead`]).
//!
//! - [`commit`]: the group commit of accepted messages;
//! - [`outcome`]: batched status writes (attempt outcomes);
//! - [`inbound`]: the group commit of inbound provider webhooks.

pub mod bulkhead;
pub mod commit;
pub mod inbound;
pub mod outcome;
