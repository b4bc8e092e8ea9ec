//! `POST /api/messaging/send` and `GET /api/messaging/status/{messageId}`.
//!
//! A send is one message or a batch of up to 1,000, validated all-or-nothing
//! (the first invalid message's error names it, e.g. `messages[3].to`, and
//! nothing is stored). The 202 answer comes only after the messages are
//! committed (group commit across concurrent requests). `Idempotency-Key`:
//! a repeat with the same key and body returns the original answer and
//! creates nothing; the same key with another body is a 409.

use actix_web::http::StatusCode;
use actix_web::{web, HttpRequest, HttpResponse};
use chrono::Utc;
use msgengine_actors::{AcceptError, IdempotencyKey};
use msgengine_domain::send::parse_send_request;
use msgengine_domain::Channel;
use msgengine_storage::repo::messages;
use serde_json::{json, Value};
use sha2::{Digest, Sha256};

use crate::auth::Tenant;
use crate::error::ApiError;
use crate::extract::{parse_id, Json};
use crate::routes::admin::not_found;
use crate::state::AppState;

pub async fn send(
    tenant: Tenant,
    state: web::Data<AppState>,
    req: HttpRequest,
    Json(body): Json<Value>,
) -> Result<HttpResponse, ApiError> {
    let idempotency = idempotency_key(&req, &body)?;
    let request = parse_send_request(&body, Utc::now()).inspect_err(|_| count_invalid(&body))?;
    let accepted = state
        .engine
        .accept(tenant.organization_id, request, idempotency)
        .await
        .map_err(accept_error)?;
    let mut response = HttpResponse::Accepted();
    if accepted.replayed {
        response.insert_header(("Idempotent-Replayed", "true"));
    }
    Ok(response.json(accepted.body))
}

/// Counts the messages of a request refused as invalid, under their channel
/// when it is one (a message with no valid channel has no series to count in).
fn count_invalid(body: &Value) {
    let channel_of = |m: &Value| m.get("channel")?.as_str()?.parse::<Channel>().ok();
    let channels: Vec<Channel> = match body.get("messages").and_then(Value::as_array) {
        Some(messages) => messages.iter().filter_map(channel_of).collect(),
        None => channel_of(body).into_iter().collect(),
    };
    for channel in channels {
        msgengine_actors::metrics::record_refused(channel, "invalid", 1);
    }
}

fn idempotency_key(req: &HttpRequest, body: &Value) -> Result<Option<IdempotencyKey>, ApiError> {
    let Some(value) = req.headers().get("Idempotency-Key") else {
        return Ok(None);
    };
    let key = value
        .to_str()
        .ok()
        .map(str::trim)
        .filter(|k| (1..=255).contains(&k.len()) && k.bytes().all(|b| b.is_ascii_graphic()))
        .ok_or_else(|| {
            ApiError::bad_request(
                "invalid_idempotency_key",
                "Idempotency-Key must be 1-255 visible ASCII characters",
            )
            .with_field("Idempotency-Key")
        })?;
    // The hash of the parsed body (object keys sorted), so formatting does not matter.
    let canonical = serde_json::to_vec(body).unwrap_or_default();
    Ok(Some(IdempotencyKey {
        key: key.to_owned(),
        request_hash: Sha256::digest(&canonical).to_vec(),
    }))
}

fn accept_error(e: AcceptError) -> ApiError {
    match e {
        AcceptError::RateLimited { retry_after } => ApiError::new(
            StatusCode::TOO_MANY_REQUESTS,
            "rate_limited",
            "over the organization's send rate; retry after the Retry-After delay",
        )
        .with_retry_after(retry_after.as_secs_f64().ceil() as u64),
        AcceptError::OverBurst { burst } => ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "batch_over_burst",
            format!("this organization accepts at most {burst} messages in one request"),
        )
        .with_field("messages"),
        AcceptError::NoProvider { channel, index } => ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "no_provider",
            format!("no active {channel} provider is configured for this organization"),
        )
        .with_field(match index {
            Some(i) => format!("messages[{i}].channel"),
            None => "channel".to_owned(),
        }),
        AcceptError::IdempotencyConflict => ApiError::conflict(
            "idempotency_key_reused",
            "this Idempotency-Key was already used with a different request body",
        )
        .with_field("Idempotency-Key"),
        AcceptError::Suppressed { reason } => ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "recipient_suppressed",
            msgengine_actors::engine::suppressed_reason(&reason),
        )
        .with_field("to"),
        AcceptError::Store(e) => e.into(),
    }
}

/// Orders a history by `at`, keeping the stored order among equal times.
/// Entries are appended in the order they are written, and a provider's
/// webhook can be written before the engine's own `sending`/`sent` batch
/// for the same message; every entry's `at` is when its fact was recorded
/// (the provider cannot report a send before it was asked), so time order
/// is the order things happened.
fn in_time_order(events: &mut serde_json::Value) {
    if let Some(list) = events.as_array_mut() {
        list.sort_by_cached_key(|e| {
            e.get("at")
                .and_then(serde_json::Value::as_str)
                .and_then(|t| chrono::DateTime::parse_from_rfc3339(t).ok())
        });
    }
}

pub async fn status(
    tenant: Tenant,
    state: web::Data<AppState>,
    path: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let id = parse_id(&path, "message")?;
    let client = state.pool.get().await?;
    let mut m = messages::get_status(&client, tenant.organization_id.0, id)
        .await
        .map_err(not_found("message"))?;
    in_time_order(&mut m.events);
    Ok(HttpResponse::Ok().json(json!({
        "id": m.id,
        "channel": m.channel,
        "status": m.state,
        "to": m.recipient,
        "providerId": m.provider_id,
        "providerMessageId": m.provider_message_id,
        "attemptCount": m.attempt_count,
        "attempts": m.attempts,
        "events": m.events,
        "metadata": m.metadata,
        "sendAt": m.send_at,
        "createdAt": m.created_at,
        "updatedAt": m.updated_at,
    })))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn history_is_shown_in_time_order_stable_among_equal_times() {
        let mut events = json!([
            {"state": "accepted", "at": "2026-01-01T00:00:00.1Z"},
            {"state": "queued", "at": "2026-01-01T00:00:00.1Z"},
            {"state": "sent", "at": "2026-01-01T00:00:00.300Z", "providerAt": "2026-01-01T00:00:00Z"},
            {"state": "sending", "at": "2026-01-01T00:00:00.15Z"},
            {"state": "sent", "at": "2026-01-01T00:00:00.2Z"},
        ]);
        in_time_order(&mut events);
        let states: Vec<&str> = events
            .as_array()
            .map(|l| l.iter().filter_map(|e| e["state"].as_str()).collect())
            .unwrap_or_default();
        assert_eq!(states, ["accepted", "queued", "sending", "sent", "sent"]);
    }
}
