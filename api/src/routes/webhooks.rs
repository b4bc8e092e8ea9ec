//! Inbound provider webhooks: `POST /api/webhooks/{channel}/{providerId}`
//! (and Meta's `GET` verify-token handshake on the WhatsApp path).
//!
//! The provider id in the URL picks the connection; the connection's own
//! secret then authenticates the request with the provider's signature
//! scheme (providers crate, `webhook`). A bad or missing signature is 401 and
//! writes nothing. Verified events are recorded once (a replay changes
//! nothing), applied to their message without ever moving it backwards, kept
//! for later when the message is not known yet, and bounces, complaints and
//! unsubscribes put the recipient on the organization's suppression list.
//!
//! Where a signature leaves part of the body uncovered (Mailgun signs only
//! its timestamp and token), the handler names a single-use nonce: it is
//! claimed in `webhook_nonces` (shared by every node) before the body is
//! parsed, and a second request carrying it with a different body is a 401.
//! Meta's GET handshake answers a wrong verify token with 403, as Meta
//! documents.

use std::sync::Arc;
use std::time::{Duration, Instant};

use actix_web::http::StatusCode;
use actix_web::{web, HttpRequest, HttpResponse};
use chrono::Utc;
use dashmap::DashMap;
use msgengine_actors::inbound::IngestError;
use msgengine_actors::metrics::{
    provider_label, record_reported_transition, WEBHOOKS_RECEIVED, WEBHOOKS_REJECTED,
    WEBHOOK_EVENTS,
};
use msgengine_actors::suppress::normalize;
use msgengine_domain::provider::{
    AnyProviderSpec, EmailProviderSpec, ProviderSpec, SmsProviderSpec, WhatsappProviderSpec,
};
use msgengine_domain::{Channel, OrganizationId, ProviderId};
use msgengine_providers::webhook::{
    webhook_handler_for, InboundWebhook, Nonce, WebhookError, WebhookEvent, WebhookReply,
};
use msgengine_storage::repo::webhook_events::{EventRow, Ingested};
use msgengine_storage::repo::webhook_nonces::NonceUse;
use msgengine_storage::StoreError;
use serde_json::json;

use crate::error::ApiError;
use crate::extract::parse_id;
use crate::state::AppState;

/// How long a webhook waits for room in the writer's queue before a 503.
const WEBHOOK_QUEUE_WAIT: std::time::Duration = std::time::Duration::from_secs(5);

/// Largest webhook body accepted (SendGrid batches up to ~768 KB).
pub const MAX_WEBHOOK_BYTES: usize = 2 * 1024 * 1024;

fn channel(segment: &str) -> Result<Channel, ApiError> {
    segment
        .parse::<Channel>()
        .map_err(|_| ApiError::not_found("webhook"))
}

/// The connection behind a webhook URL, any organization: from the cache
/// while fresh, else from the database (one query and a decryption, which at
/// thousands of callbacks a second was a second round trip per webhook).
async fn connection(
    state: &AppState,
    channel: Channel,
    id: ProviderId,
) -> Result<(OrganizationId, Arc<AnyProviderSpec>), ApiError> {
    if let Some(found) = state.webhook_connections.get(channel, id) {
        return Ok(found);
    }
    use msgengine_storage::repo::providers::get_for_webhook;
    let client = state.pool.get().await?;
    let found = match channel {
        Channel::Email => get_for_webhook::<EmailProviderSpec>(&client, &state.ring, id)
            .await
            .map(|r| (r.organization_id, r.spec.into_any())),
        Channel::Sms => get_for_webhook::<SmsProviderSpec>(&client, &state.ring, id)
            .await
            .map(|r| (r.organization_id, r.spec.into_any())),
        Channel::Whatsapp => get_for_webhook::<WhatsappProviderSpec>(&client, &state.ring, id)
            .await
            .map(|r| (r.organization_id, r.spec.into_any())),
    };
    match found {
        Ok((org, spec)) => Ok(state.webhook_connections.put(channel, id, org, spec)),
        Err(StoreError::NotFound) => Err(ApiError::not_found("webhook")),
        Err(e) => Err(e.into()),
    }
}

/// Connections behind webhook URLs, kept for [`WebhookConnections::TTL`]. A
/// change through this server's provider API evicts its entry at once; a
/// change made through another node is seen within the TTL.
#[derive(Default)]
pub struct WebhookConnections {
    entries: DashMap<(Channel, ProviderId), Cached>,
}

struct Cached {
    org: OrganizationId,
    spec: Arc<AnyProviderSpec>,
    at: Instant,
}

impl WebhookConnections {
    /// How long a cached connection is used without asking the database.
    pub const TTL: Duration = Duration::from_secs(5);

    fn get(
        &self,
        channel: Channel,
        id: ProviderId,
    ) -> Option<(OrganizationId, Arc<AnyProviderSpec>)> {
        let entry = self.entries.get(&(channel, id))?;
        (entry.at.elapsed() < Self::TTL).then(|| (entry.org, entry.spec.clone()))
    }

    fn put(
        &self,
        channel: Channel,
        id: ProviderId,
        org: OrganizationId,
        spec: AnyProviderSpec,
    ) -> (OrganizationId, Arc<AnyProviderSpec>) {
        let spec = Arc::new(spec);
        self.entries.insert(
            (channel, id),
            Cached {
                org,
                spec: spec.clone(),
                at: Instant::now(),
            },
        );
        (org, spec)
    }

    /// Evicts a connection that was changed or deleted.
    pub fn forget(&self, id: ProviderId) {
        self.entries.retain(|(_, cached), _| *cached != id);
    }
}

/// The URL as the provider called it (Twilio signs it): scheme and host as
/// this server was reached (honouring `Forwarded` / `X-Forwarded-*` from a
/// proxy in front), path and query.
fn called_url(req: &HttpRequest) -> String {
    let info = req.connection_info();
    format!("{}://{}{}", info.scheme(), info.host(), req.uri())
}

/// The request's headers in the providers crate's (`http` 1) type.
fn header_map(req: &HttpRequest) -> msgengine_providers::reqwest::header::HeaderMap {
    use msgengine_providers::reqwest::header::{HeaderName, HeaderValue};
    let mut out =
        msgengine_providers::reqwest::header::HeaderMap::with_capacity(req.headers().len());
    for (name, value) in req.headers() {
        if let (Ok(n), Ok(v)) = (
            HeaderName::from_bytes(name.as_str().as_bytes()),
            HeaderValue::from_bytes(value.as_bytes()),
        ) {
            out.append(n, v);
        }
    }
    out
}

/// Counts a refused webhook (`reason`: `signature`, `stale`, `replayed`,
/// `unknown_provider`, `malformed`).
fn count_rejected(channel: Channel, reason: &'static str) {
    metrics::counter!(WEBHOOKS_REJECTED, "channel" => channel.as_str(), "reason" => reason)
        .increment(1);
}

fn rejected_reason(e: &WebhookError) -> &'static str {
    match e {
        WebhookError::Unauthorized(_) => "signature",
        WebhookError::Stale(_) => "stale",
        WebhookError::Malformed(_) => "malformed",
    }
}

/// Counts an accepted webhook, its events by result, and the delivered and
/// failed messages its events moved.
fn count_received(channel: Channel, provider: &'static str, done: &Ingested) {
    let ch = channel.as_str();
    metrics::counter!(WEBHOOKS_RECEIVED, "channel" => ch, "provider" => provider).increment(1);
    for (result, n) in [
        ("applied", done.applied),
        ("duplicate", done.duplicates),
        ("unmatched", done.unmatched),
    ] {
        metrics::counter!(WEBHOOK_EVENTS, "channel" => ch, "provider" => provider, "result" => result)
            .increment(n as u64);
    }
    for t in &done.transitions {
        record_reported_transition(channel, provider, t.message_id, t.from, t.to);
    }
}

fn refused(e: WebhookError) -> ApiError {
    tracing::warn!(error = %e, "webhook refused");
    match e {
        WebhookError::Unauthorized(m) => {
            ApiError::new(StatusCode::UNAUTHORIZED, "invalid_signature", m)
        }
        WebhookError::Stale(m) => ApiError::new(StatusCode::UNAUTHORIZED, "stale_webhook", m),
        WebhookError::Malformed(m) => ApiError::bad_request("malformed_webhook", m),
    }
}

/// Claims a verified request's nonce: a repeat with another body is a
/// replayed signature (401); the same body again is a provider's retry.
async fn claim_nonce(
    state: &AppState,
    provider: ProviderId,
    nonce: &Nonce,
    body: &[u8],
) -> Result<(), ApiError> {
    use sha2::{Digest, Sha256};
    let digest = Sha256::digest(body);
    let used = state
        .engine
        .claim_webhook_nonce(provider, &nonce.value, &digest, nonce.expires_at)
        .await?;
    match used {
        NonceUse::First | NonceUse::Repeat => Ok(()),
        NonceUse::Replayed => Err(ApiError::new(
            StatusCode::UNAUTHORIZED,
            "replayed_webhook",
            "this signature was already used with a different body",
        )),
    }
}

/// Most characters kept of a webhook's reason text.
const MAX_EVENT_REASON_CHARS: usize = 500;
/// Most characters kept of an id, status word, code or recipient in a webhook.
const MAX_EVENT_WORD_CHARS: usize = 256;
/// Most characters kept of an event id (ids derived from several fields
/// run longer; a cut id could make two events look like one).
const MAX_EVENT_ID_CHARS: usize = 1024;

/// The storage shape of a parsed event. Every text field came from the
/// provider's payload (untrusted even once its signature checked out): it is
/// cleaned of control characters, NUL included, and capped here, the one
/// place webhook text becomes a row.
fn event_row(e: WebhookEvent) -> EventRow {
    use msgengine_domain::text::{clean_untrusted as clean, clean_untrusted_opt as clean_opt};
    EventRow {
        event_id: clean(&e.event_id, MAX_EVENT_ID_CHARS),
        provider_message_id: clean_opt(e.provider_message_id, MAX_EVENT_WORD_CHARS),
        message_id: e
            .message_id
            .as_deref()
            .and_then(|id| uuid::Uuid::parse_str(id).ok()),
        state: e.state,
        engagement: e.engagement.map(|k| k.as_str().to_owned()),
        raw_status: clean(&e.raw_status, MAX_EVENT_WORD_CHARS),
        recipient: clean_opt(e.recipient, MAX_EVENT_WORD_CHARS),
        error_code: clean_opt(e.error_code, MAX_EVENT_WORD_CHARS),
        reason: clean_opt(e.reason, MAX_EVENT_REASON_CHARS),
        suppress: e.suppress.map(|s| s.as_str().to_owned()),
        occurred_at: e.occurred_at,
    }
}

pub async fn receive(
    state: web::Data<AppState>,
    req: HttpRequest,
    path: web::Path<(String, String)>,
    body: web::Bytes,
) -> Result<HttpResponse, ApiError> {
    let (channel_segment, id_segment) = path.into_inner();
    let channel = channel(&channel_segment)?;
    let unknown = |e: ApiError| {
        if e.status == StatusCode::NOT_FOUND {
            count_rejected(channel, "unknown_provider");
        }
        e
    };
    let provider = ProviderId(parse_id(&id_segment, "webhook").map_err(unknown)?);
    let (org, spec) = connection(&state, channel, provider)
        .await
        .map_err(unknown)?;
    let handler = webhook_handler_for(&spec)
        .map_err(|e| ApiError::new(StatusCode::NOT_FOUND, "webhooks_unsupported", e.to_string()))
        .map_err(unknown)?;
    let provider_label = provider_label(channel, spec.provider_type());
    let url = called_url(&req);
    let headers = header_map(&req);
    let inbound = InboundWebhook {
        method: req.method().as_str(),
        url: &url,
        headers: &headers,
        query: req.query_string(),
        body: &body,
    };
    let now = Utc::now();
    let counted = |e: WebhookError| {
        count_rejected(channel, rejected_reason(&e));
        refused(e)
    };
    handler.verify(&inbound, now).map_err(counted)?;
    if let Some(nonce) = handler.nonce(&inbound) {
        claim_nonce(&state, provider, &nonce, &body)
            .await
            .inspect_err(|e| {
                if e.status == StatusCode::UNAUTHORIZED {
                    tracing::warn!(provider = %provider.0, "replayed webhook signature refused");
                    count_rejected(channel, "replayed");
                }
            })?;
    }
    let events = handler.parse(&inbound, now).map_err(counted)?;
    let rows: Vec<EventRow> = events.into_iter().map(event_row).collect();
    let suppress: Vec<(String, String)> = rows
        .iter()
        .filter_map(|e| Some((normalize(e.recipient.as_deref()?), e.suppress.clone()?)))
        .collect();
    // Group-committed with other webhooks. A provider retries a webhook it
    // could not deliver: when the writer's queue stays full past the wait,
    // answer 503 with Retry-After rather than hold the request.
    let received = rows.len();
    let done = state
        .engine
        .ingest_webhook(org, provider, rows, suppress, WEBHOOK_QUEUE_WAIT)
        .await
        .map_err(|e| match e {
            IngestError::Busy => ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "busy",
                "too many webhooks are being written; retry shortly",
            )
            .with_retry_after(1),
            IngestError::Unavailable(_) => ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "unavailable",
                "the webhook could not be stored now; retry shortly",
            )
            .with_retry_after(5),
            // Its own data cannot be stored: a retry would fail the same way.
            IngestError::Rejected(_) => ApiError::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                "unstorable_webhook",
                "the webhook carries a value that cannot be stored",
            ),
        })?;
    count_received(channel, provider_label, &done);
    tracing::debug!(
        provider = %provider.0,
        recorded = done.recorded,
        duplicates = done.duplicates,
        applied = done.applied,
        unmatched = done.unmatched,
        "webhook received"
    );
    Ok(HttpResponse::Ok().json(json!({
        "received": received,
        "duplicates": done.duplicates,
        "applied": done.applied,
        "pending": done.unmatched,
    })))
}

/// Meta's subscription handshake: `hub.mode=subscribe&hub.verify_token=…&hub.challenge=…`.
pub async fn handshake(
    state: web::Data<AppState>,
    req: HttpRequest,
    path: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let provider = ProviderId(parse_id(&path, "webhook")?);
    let (_, spec) = connection(&state, Channel::Whatsapp, provider).await?;
    let handler = webhook_handler_for(&spec)
        .map_err(|e| ApiError::new(StatusCode::NOT_FOUND, "webhooks_unsupported", e.to_string()))?;
    let url = called_url(&req);
    let headers = header_map(&req);
    let inbound = InboundWebhook {
        method: "GET",
        url: &url,
        headers: &headers,
        query: req.query_string(),
        body: &[],
    };
    match handler.handshake(&inbound) {
        Some(Ok(WebhookReply::Challenge(text))) => Ok(HttpResponse::Ok()
            .content_type("text/plain; charset=utf-8")
            .body(text)),
        Some(Ok(WebhookReply::Ok)) => Ok(HttpResponse::Ok().json(json!({}))),
        // Meta's documented answer to a verify token that does not match.
        Some(Err(WebhookError::Unauthorized(m))) => {
            tracing::warn!(provider = %provider.0, "webhook handshake refused: {m}");
            Err(ApiError::new(
                StatusCode::FORBIDDEN,
                "verify_token_mismatch",
                m,
            ))
        }
        Some(Err(e)) => Err(refused(e)),
        None => Err(ApiError::new(
            StatusCode::METHOD_NOT_ALLOWED,
            "method_not_allowed",
            "this provider has no GET handshake; it posts its webhooks",
        )),
    }
}
