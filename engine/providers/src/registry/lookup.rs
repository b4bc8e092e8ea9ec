//! The seams the rest of the engine calls, each a lookup of the connection's
//! provider type in the registry's list: its sender, its webhook handler,
//! its management operations. None of them names a provider.

use std::sync::Arc;

use msgengine_domain::provider::AnyProviderSpec;

use super::{descriptor_for, unsupported};
use crate::descriptor::AnyAdmin;
use crate::http::ProviderClient;
use crate::manage::{EmailAdmin, SmsAdmin, WhatsappAdmin};
use crate::send::{Sender, SenderContext, UnsupportedProvider};
use crate::webhook::WebhookHandler;

/// [`sender_for`] with a [`SenderContext`]: the adapter registered for the
/// spec's provider type builds it.
pub fn sender_for_connection(
    spec: &AnyProviderSpec,
    http: &ProviderClient,
    context: &SenderContext,
) -> Result<Arc<dyn Sender>, UnsupportedProvider> {
    let descriptor = descriptor_for(spec)?;
    descriptor
        .sender(spec, http, context)
        .ok_or_else(|| unsupported(spec))
}

/// Builds the sender for a connection. `http` is shared (connection pooling).
///
/// Missing or malformed credentials do not fail here (specs are validated
/// when stored); the sender then answers every send with a permanent
/// `msgengine_misconfigured` error naming the field. Every provider type
/// has an adapter (a registry test checks it); the `Result` stays for a
/// type added to the domain before its adapter.
pub fn sender_for(
    spec: &AnyProviderSpec,
    http: &ProviderClient,
) -> Result<Arc<dyn Sender>, UnsupportedProvider> {
    sender_for_connection(spec, http, &SenderContext::default())
}

/// The webhook handler for a connection (its secrets included), from the
/// adapter registered for its provider type; a type without one answers
/// [`UnsupportedProvider`] (the endpoint then refuses with 404).
pub fn webhook_handler_for(
    spec: &AnyProviderSpec,
) -> Result<Box<dyn WebhookHandler>, UnsupportedProvider> {
    let descriptor = descriptor_for(spec)?;
    descriptor
        .webhook_handler(spec)
        .ok_or_else(|| unsupported(spec))
}

/// The management operations of a connection, of whichever channel, from
/// the adapter registered for its provider type.
fn admin_for(
    spec: &AnyProviderSpec,
    http: &ProviderClient,
) -> Result<AnyAdmin, UnsupportedProvider> {
    let descriptor = descriptor_for(spec)?;
    descriptor
        .admin(spec, http)
        .ok_or_else(|| unsupported(spec))
}

/// Email management for a connection; [`UnsupportedProvider`] for a
/// provider type without it (or a connection on another channel).
pub fn email_admin_for(
    spec: &AnyProviderSpec,
    http: &ProviderClient,
) -> Result<Arc<dyn EmailAdmin>, UnsupportedProvider> {
    match admin_for(spec, http)? {
        AnyAdmin::Email(admin) => Ok(admin),
        _ => Err(unsupported(spec)),
    }
}

/// WhatsApp management for a connection; [`UnsupportedProvider`] for a
/// provider type without it (or a connection on another channel).
pub fn whatsapp_admin_for(
    spec: &AnyProviderSpec,
    http: &ProviderClient,
) -> Result<Arc<dyn WhatsappAdmin>, UnsupportedProvider> {
    match admin_for(spec, http)? {
        AnyAdmin::Whatsapp(admin) => Ok(admin),
        _ => Err(unsupported(spec)),
    }
}

/// SMS management for a connection; [`UnsupportedProvider`] for a provider
/// type without it (or a connection on another channel).
pub fn sms_admin_for(
    spec: &AnyProviderSpec,
    http: &ProviderClient,
) -> Result<Arc<dyn SmsAdmin>, UnsupportedProvider> {
    match admin_for(spec, http)? {
        AnyAdmin::Sms(admin) => Ok(admin),
        _ => Err(unsupported(spec)),
    }
}
