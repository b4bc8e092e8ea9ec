//! `POST /api/messaging/send` and `GET /api/messaging/status/{messageId}`.
//!
//! A send is one message or a batch of up to 1,000, validated all-or-nothing
//! (the first invalid message's error names it, e.g. `messages[3].to`, and
//! nothing is stored). The 202 answer comes only after the messages are
//! committed (group commit across concurrent requests). `Idempotency-Key`:
//! a repeat with the same key and body returns the original answer and
//! creates nothing; the same key with another body is a 409. The use cases
//! are `msgengine_actors::app::messaging`.

use actix_web::{web, HttpRequest, HttpResponse};
use chrono::{DateTime, Utc};
use msgengine_actors::app::messaging::{MessageStatus, IDEMPOTENCY_HEADER};
use msgengine_domain::message::{Attempt, MessageEvent, MessageState};
use msgengine_domain::{Channel, MessageId};
use serde::Serialize;
use serde_json::Value;

use crate::auth::Tenant;
use crate::error::ApiError;
use crate::extract::{parse_id, Json};
use crate::state::AppState;

pub async fn send(
    tenant: Tenant,
    state: web::Data<AppState>,
    req: HttpRequest,
    Json(body): Json<Value>,
) -> Result<HttpResponse, ApiError> {
    let key = req.headers().get(IDEMPOTENCY_HEADER).map(|v| v.as_bytes());
    let accepted = state.app.send(*tenant, &body, key).await?;
    let mut response = HttpResponse::Accepted();
    if accepted.replayed {
        response.insert_header(("Idempotent-Replayed", "true"));
    }
    Ok(response.json(&accepted.body))
}

/// A message's status and history.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct StatusView {
    id: uuid::Uuid,
    channel: Channel,
    status: MessageState,
    to: String,
    provider_id: Option<uuid::Uuid>,
    provider_message_id: Option<String>,
    attempt_count: i32,
    attempts: Vec<Attempt>,
    events: Vec<MessageEvent>,
    metadata: Option<Value>,
    send_at: Option<DateTime<Utc>>,
    created_at: DateTime<Utc>,
    updated_at: DateTime<Utc>,
}

impl From<MessageStatus> for StatusView {
    fn from(m: MessageStatus) -> Self {
        Self {
            id: m.id,
            channel: m.channel,
            status: m.state,
            to: m.recipient,
            provider_id: m.provider_id,
            provider_message_id: m.provider_message_id,
            attempt_count: m.attempt_count,
            attempts: m.attempts,
            events: m.events,
            metadata: m.metadata,
            send_at: m.send_at,
            created_at: m.created_at,
            updated_at: m.updated_at,
        }
    }
}

pub async fn status(
    tenant: Tenant,
    state: web::Data<AppState>,
    path: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let id = MessageId(parse_id(&path, "message")?);
    let status = state.app.message_status(*tenant, id).await?;
    Ok(HttpResponse::Ok().json(StatusView::from(status)))
}
