//! Inbound provider webhooks: `POST /api/webhooks/{channel}/{providerId}`
//! (and Meta's `GET` verify-token handshake on the WhatsApp path).
//!
//! The provider id in the URL picks the connection ([`connections`]); the
//! connection's own secret then authenticates the request with the
//! provider's signature scheme (the providers crate's `webhook` handlers). A
//! bad or missing signature is refused and writes nothing. Verified events
//! are cleaned ([`events`]), recorded once (a replay changes nothing),
//! applied to their message without ever moving it backwards, kept for
//! later when the message is not known yet; bounces, complaints and
//! unsubscribes put the recipient on the organization's suppression list.
//!
//! Where a signature leaves part of the body uncovered (Mailgun signs only
//! its timestamp and token), the handler names a single-use nonce: it is
//! claimed in `webhook_nonces` (shared by every node) before the body is
//! parsed, and a second request carrying it with a different body is
//! refused. Meta's GET handshake answers a wrong verify token with 403, as
//! Meta documents.

mod connections;
mod events;

use std::sync::Arc;
use std::time::Duration;

use chrono::Utc;
use msgengine_domain::provider::AnyProviderSpec;
use msgengine_domain::{Channel, OrganizationId, ProviderId};
use msgengine_providers::registry::webhook_handler_for;
use msgengine_providers::reqwest::header::{HeaderMap, HeaderName, HeaderValue};
use msgengine_providers::webhook::{
    InboundWebhook, Nonce, WebhookError, WebhookHandler, WebhookReply,
};
use msgengine_storage::repo::webhook_nonces::NonceUse;
use msgengine_storage::StoreError;

pub use connections::WebhookConnections;

use super::{App, AppError, ErrorKind};
use crate::metrics::provider_label;
use crate::writers::inbound::IngestError;

/// How long a webhook waits for room in the writer's queue before `busy`.
const QUEUE_WAIT: Duration = Duration::from_secs(5);

/// Largest webhook body accepted (SendGrid batches up to ~768 KB).
pub const MAX_WEBHOOK_BYTES: usize = 2 * 1024 * 1024;

/// A provider's request as it arrived.
pub struct WebhookRequest<'a> {
    pub method: &'a str,
    /// The URL as the provider called it (Twilio signs it): scheme and host
    /// as this server was reached, path and query.
    pub url: &'a str,
    /// Header names and raw values, in order.
    pub headers: Vec<(&'a str, &'a [u8])>,
    pub query: &'a str,
    pub body: &'a [u8],
}

/// What a webhook did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Received {
    /// Events the webhook carried.
    pub received: usize,
    /// Events already recorded earlier (a provider's retry).
    pub duplicates: usize,
    /// Events that moved their message.
    pub applied: usize,
    /// Events kept until their message is known.
    pub pending: usize,
}

/// The answer to a subscription handshake.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Handshake {
    /// Echo this text back, as `text/plain`.
    Challenge(String),
    /// An empty success.
    Ok,
}

fn refused(e: WebhookError) -> AppError {
    tracing::warn!(error = %e, "webhook refused");
    match e {
        WebhookError::Unauthorized(m) => {
            AppError::new(ErrorKind::Unauthorized, "invalid_signature", m)
        }
        WebhookError::Stale(m) => AppError::new(ErrorKind::Unauthorized, "stale_webhook", m),
        WebhookError::Malformed(m) => AppError::bad_request("malformed_webhook", m),
    }
}

fn ingest_error(e: IngestError) -> AppError {
    match e {
        IngestError::Busy => {
            AppError::unavailable("busy", "too many webhooks are being written; retry shortly")
                .with_retry_after(1)
        }
        IngestError::Unavailable(_) => AppError::unavailable(
            "unavailable",
            "the webhook could not be stored now; retry shortly",
        )
        .with_retry_after(5),
        // Its own data cannot be stored: a retry would fail the same way.
        IngestError::Rejected(_) => AppError::unprocessable(
            "unstorable_webhook",
            "the webhook carries a value that cannot be stored",
        ),
    }
}

fn header_map(headers: &[(&str, &[u8])]) -> HeaderMap {
    let mut out = HeaderMap::with_capacity(headers.len());
    for (name, value) in headers {
        if let (Ok(n), Ok(v)) = (
            HeaderName::from_bytes(name.as_bytes()),
            HeaderValue::from_bytes(value),
        ) {
            out.append(n, v);
        }
    }
    out
}

/// A connection's webhook handler: the URL's connection, any organization.
struct Target {
    org: OrganizationId,
    spec: Arc<AnyProviderSpec>,
    handler: Box<dyn WebhookHandler>,
}

impl App {
    /// Authenticates, parses and records one provider webhook for connection
    /// `provider` (the URL's raw segment) of `channel`.
    pub async fn receive_webhook(
        &self,
        channel: Channel,
        provider: &str,
        request: WebhookRequest<'_>,
    ) -> Result<Received, AppError> {
        let unknown = |e: AppError| {
            if e.kind == ErrorKind::NotFound {
                events::count_rejected(channel, "unknown_provider");
            }
            e
        };
        let id = parse_provider(provider).map_err(unknown)?;
        let target = self.webhook_target(channel, id).await.map_err(unknown)?;
        let headers = header_map(&request.headers);
        let inbound = InboundWebhook {
            method: request.method,
            url: request.url,
            headers: &headers,
            query: request.query,
            body: request.body,
        };
        let now = Utc::now();
        let counted = |e: WebhookError| {
            events::count_rejected(channel, events::rejected_reason(&e));
            refused(e)
        };
        target.handler.verify(&inbound, now).map_err(counted)?;
        if let Some(nonce) = target.handler.nonce(&inbound) {
            self.claim_nonce(id, &nonce, request.body)
                .await
                .inspect_err(|e| {
                    if e.kind == ErrorKind::Unauthorized {
                        tracing::warn!(provider = %id.0, "replayed webhook signature refused");
                        events::count_rejected(channel, "replayed");
                    }
                })?;
        }
        let parsed = target.handler.parse(&inbound, now).map_err(counted)?;
        let label = provider_label(channel, target.spec.provider_type());
        self.ingest(channel, label, target.org, id, parsed).await
    }

    /// Group-commits the events with other webhooks. A provider retries a
    /// webhook it could not deliver: when the writer's queue stays full past
    /// the wait, the answer is `busy` (retry) rather than a held request.
    async fn ingest(
        &self,
        channel: Channel,
        label: &'static str,
        org: OrganizationId,
        id: ProviderId,
        parsed: Vec<msgengine_providers::webhook::WebhookEvent>,
    ) -> Result<Received, AppError> {
        let received = parsed.len();
        let rows = events::rows(parsed);
        let suppress = events::suppressions(&rows);
        let receipts = events::final_receipts(&rows);
        let done = self
            .engine()
            .ingest_webhook(org, id, rows, suppress, QUEUE_WAIT)
            .await
            .map_err(ingest_error)?;
        events::count_received(channel, label, &done);
        if done.recorded > 0 {
            // Replays (nothing recorded) do not count twice toward the ratio.
            self.engine().record_receipts(id, &receipts);
        }
        tracing::debug!(
            provider = %id.0,
            recorded = done.recorded,
            duplicates = done.duplicates,
            applied = done.applied,
            unmatched = done.unmatched,
            "webhook received"
        );
        Ok(Received {
            received,
            duplicates: done.duplicates,
            applied: done.applied,
            pending: done.unmatched,
        })
    }

    /// Meta's subscription handshake
    /// (`hub.mode=subscribe&hub.verify_token=…&hub.challenge=…`).
    pub async fn webhook_handshake(
        &self,
        provider: &str,
        request: WebhookRequest<'_>,
    ) -> Result<Handshake, AppError> {
        let id = parse_provider(provider)?;
        let target = self.webhook_target(Channel::Whatsapp, id).await?;
        let headers = header_map(&request.headers);
        let inbound = InboundWebhook {
            method: "GET",
            url: request.url,
            headers: &headers,
            query: request.query,
            body: &[],
        };
        match target.handler.handshake(&inbound) {
            Some(Ok(WebhookReply::Challenge(text))) => Ok(Handshake::Challenge(text)),
            Some(Ok(WebhookReply::Ok)) => Ok(Handshake::Ok),
            // Meta's documented answer to a verify token that does not match.
            Some(Err(WebhookError::Unauthorized(m))) => {
                tracing::warn!(provider = %id.0, "webhook handshake refused: {m}");
                Err(AppError::new(
                    ErrorKind::Forbidden,
                    "verify_token_mismatch",
                    m,
                ))
            }
            Some(Err(e)) => Err(refused(e)),
            None => Err(AppError::new(
                ErrorKind::MethodNotAllowed,
                "method_not_allowed",
                "this provider has no GET handshake; it posts its webhooks",
            )),
        }
    }

    /// The connection behind a webhook URL and its handler: from the cache
    /// while fresh, else from the database.
    async fn webhook_target(&self, channel: Channel, id: ProviderId) -> Result<Target, AppError> {
        let (org, spec) = match self.inner.connections.get(channel, id) {
            Some(found) => found,
            None => {
                let client = self.pool().get().await?;
                match connections::load(&client, self.ring(), channel, id).await {
                    Ok((org, spec)) => self.inner.connections.put(channel, id, org, spec),
                    Err(StoreError::NotFound) => return Err(AppError::not_found("webhook")),
                    Err(e) => return Err(e.into()),
                }
            }
        };
        let handler = webhook_handler_for(&spec).map_err(|e| {
            AppError::new(ErrorKind::NotFound, "webhooks_unsupported", e.to_string())
        })?;
        Ok(Target { org, spec, handler })
    }

    /// Claims a verified request's nonce: a repeat with another body is a
    /// replayed signature (refused); the same body again is a provider's retry.
    async fn claim_nonce(
        &self,
        id: ProviderId,
        nonce: &Nonce,
        body: &[u8],
    ) -> Result<(), AppError> {
        use sha2::{Digest, Sha256};
        let digest = Sha256::digest(body);
        let used = self
            .engine()
            .claim_webhook_nonce(id, &nonce.value, &digest, nonce.expires_at)
            .await?;
        match used {
            NonceUse::First | NonceUse::Repeat => Ok(()),
            NonceUse::Replayed => Err(AppError::new(
                ErrorKind::Unauthorized,
                "replayed_webhook",
                "this signature was already used with a different body",
            )),
        }
    }
}

/// A connection id from a URL segment; a malformed one is not found.
fn parse_provider(segment: &str) -> Result<ProviderId, AppError> {
    uuid::Uuid::parse_str(segment)
        .map(ProviderId)
        .map_err(|_| AppError::not_found("webhook"))
}
