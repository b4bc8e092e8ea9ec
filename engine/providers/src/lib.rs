//! Provider adapters behind per-channel seams.
//!
//! Modules in layers, each naming only those above it in this list (a
//! workspace test, `engine/tests/layering.rs`, fails on an import cycle):
//!
//! - [`address`]: which addresses provider calls (HTTP and SMTP) may reach
//!   ([`AddressPolicy`]), checked after DNS resolution at connect time.
//! - [`send`]: the [`Sender`] seam the provider actors call for one delivery
//!   attempt, its receipt and its classified [`ProviderError`]: pure types.
//! - [`http`]: the shared HTTP client ([`ProviderClient`]) and the helpers
//!   every HTTP adapter uses (`Retry-After`, status classification, bounded
//!   body reads, redaction).
//! - The other seams' traits and types: [`webhook`] (each provider's
//!   signature scheme and status vocabulary, turned into engine events),
//!   [`manage`] (domain verification and stats for email, templates and
//!   media for WhatsApp, status lookups: the operations beside sending) and
//!   [`probe`] (the [`ConnectionProbe`] behind
//!   `POST /api/{channel}/providers/{id}/test`).
//! - [`descriptor`]: what each adapter plugs in (sender, webhook handler,
//!   management operations, connection probe) as one [`Descriptor`] value.
//! - One folder per adapter, each with its `Descriptor`: [`sandbox`] (every
//!   channel, no network), [`mailgun`], [`sendgrid`], [`mailjet`] (email,
//!   sharing [`esp`]) and [`smtp`] (SMTP submission); [`twilio_sms`],
//!   [`africastalking`] and [`termii`] (SMS); [`gupshup`], [`aisensy`],
//!   [`meta_cloud`], [`interakt`] and [`twilio_whatsapp`] (WhatsApp);
//!   [`twilio`] holds what the two Twilio adapters share.
//! - [`registry`]: the one list of descriptors and every lookup in it:
//!   [`sender_for`], [`webhook_handler_for`], the `*_admin_for` functions
//!   and [`ProviderRegistry`] (connection tests). Adding a provider type:
//!   see `docs/providers.md` ("Adding a provider type").
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
pub mod probe;
pub mod registry;
pub mod sandbox;
pub mod send;
pub mod sendgrid;
pub mod smtp;
pub mod termii;
pub mod twilio;
pub mod twilio_sms;
pub mod twilio_whatsapp;
pub mod webhook;

pub use address::AddressPolicy;
pub use descriptor::{AnyAdmin, Descriptor, ProviderDescriptor, ProviderKey};
pub use http::{http_client, parse_retry_after, try_http_client, ProviderClient};
pub use probe::{Check, CheckStatus, ConnectionProbe, TestReport};
pub use registry::{
    email_admin_for, sender_for, sender_for_connection, sms_admin_for, webhook_handler_for,
    whatsapp_admin_for, ProviderRegistry,
};
pub use reqwest;
pub use send::{
    FailureKind, ProviderError, SendReceipt, Sender, SenderContext, UnsupportedProvider,
};
