//! Provider adapters behind per-channel seams.
//!
//! - [`send`]: the [`Sender`] seam the provider actors call for one delivery
//!   attempt, its receipt and its classified [`ProviderError`], and
//!   [`sender_for`], which picks the adapter for a connection's spec.
//! - [`http`]: the shared HTTP client ([`ProviderClient`]) and the helpers
//!   every HTTP adapter uses (`Retry-After`, status classification, bounded
//!   body reads, redaction).
//! - [`address`]: which addresses provider calls (HTTP and SMTP) may reach
//!   ([`AddressPolicy`]), checked after DNS resolution at connect time.
//! - One folder per adapter: [`sandbox`] (every channel, no network),
//!   [`mailgun`], [`sendgrid`], [`mailjet`] (email, sharing [`esp`]) and
//!   [`smtp`] (SMTP submission); [`twilio_sms`], [`africastalking`] and
//!   [`termii`] (SMS); [`gupshup`], [`aisensy`], [`meta_cloud`], [`interakt`]
//!   and [`twilio_whatsapp`] (WhatsApp); [`twilio`] holds what the two
//!   Twilio adapters share.
//! - [`descriptor`] and [`registry`]: what each adapter plugs in (sender,
//!   webhook handler, management operations, connection probe) as one
//!   [`Descriptor`] value in its folder, and the one list of them every seam
//!   below looks its adapter up in. Adding a provider type: see
//!   `docs/providers.md` ("Adding a provider type").
//! - [`test_registry`]: the connection-test seam behind
//!   `POST /api/{channel}/providers/{id}/test`.
//! - [`manage`]: domain verification and stats (email), templates and media
//!   (WhatsApp), status lookups: the operations beside sending.
//! - [`webhook`]: the inbound-webhook seam: each provider's signature scheme
//!   and status vocabulary, turned into engine events.
//!
//! Invariant shared by every adapter: secrets (API keys, tokens, account SIDs)
//! never appear in a [`ProviderError`], in `Debug` output or in logs; an
//! adapter scrubs them from provider-supplied text before returning it.

pub mod address;
pub mod africastalking;
pub mod aisensy;
pub mod descriptor;
pub mod esp;
pub mod gupshup;
pub mod http;
pub mod interakt;
pub mod mailgun;
pub mod mailjet;
pub mod manage;
pub mod meta_cloud;
pub mod registry;
pub mod sandbox;
pub mod send;
pub mod sendgrid;
pub mod smtp;
pub mod termii;
pub mod test_registry;
pub mod twilio;
pub mod twilio_sms;
pub mod twilio_whatsapp;
pub mod webhook;

pub use address::AddressPolicy;
pub use descriptor::{AnyAdmin, Descriptor, ProviderDescriptor, ProviderKey};
pub use http::{http_client, parse_retry_after, try_http_client, ProviderClient};
pub use reqwest;
pub use send::{
    sender_for, sender_for_connection, FailureKind, ProviderError, SendReceipt, Sender,
    SenderContext, UnsupportedProvider,
};
pub use test_registry::{Check, CheckStatus, ConnectionProbe, ProviderRegistry, TestReport};
