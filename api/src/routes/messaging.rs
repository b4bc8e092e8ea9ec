//! `POST /api/messaging/send` and `GET /api/messaging/status/{messageId}`.
//!
//! A send is one message or a batch of up to 1,000, validated all-or-nothing
//! (the first invalid message's error names it, e.g. `messages[3].to`, and
//! nothing is stored). The 202 answer comes only after the messages are
//! committed (group commit across concurrent requests). `Idempotency-Key`:
//! a repeat with the same key and body returns the original answer and
//! creates nothing; the same key with another body is a 409. The use cases
//! are `msgengine_actors::app::messaging`.

use std::collections::BTreeMap;

use actix_web::{web, HttpRequest, HttpResponse};
use chrono::{DateTime, Utc};
use msgengine_actors::app::messaging::{MessageStatus, IDEMPOTENCY_HEADER};
use msgengine_domain::message::{fallback_steps, Attempt, MessageEvent, MessageState, Step};
use msgengine_domain::routing::{Category, MessageRouting, Strategy};
use msgengine_domain::{Channel, MessageId};
use serde::Serialize;
use serde_json::Value;

use crate::auth::Tenant;
use crate::error::ApiError;
use crate::extract::{parse_id, Json};
use crate::routes::routing::{choices, ChoiceView};
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
    /// How the message was routed, and why (`null` for messages accepted
    /// before routing plans were stored).
    routing: Option<RoutingView>,
    send_at: Option<DateTime<Utc>>,
    created_at: DateTime<Utc>,
    updated_at: DateTime<Utc>,
}

/// A message's routing: what it carried, the rule that decided, every
/// provider's place with the reason in words, and each fallback taken.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct RoutingView {
    category: Category,
    tags: BTreeMap<String, String>,
    rule: Option<String>,
    rule_id: Option<uuid::Uuid>,
    strategy: Option<Strategy>,
    candidates: Vec<ChoiceView>,
    excluded: Vec<ChoiceView>,
    steps: Vec<StepView>,
}

#[derive(Serialize)]
struct StepView {
    #[serde(flatten)]
    step: Step,
    explanation: String,
}

impl RoutingView {
    fn new(routing: MessageRouting, attempts: &[Attempt]) -> Self {
        let plan = routing.plan.as_ref();
        let steps = fallback_steps(attempts)
            .into_iter()
            .map(|step| StepView {
                explanation: step.explanation(plan),
                step,
            })
            .collect();
        Self {
            category: routing.category,
            rule: plan.map(|p| p.decider.rule.clone()),
            rule_id: plan.and_then(|p| p.decider.rule_id),
            strategy: plan.map(|p| p.decider.strategy),
            candidates: plan.map_or_else(Vec::new, |p| choices(&p.candidates)),
            excluded: plan.map_or_else(Vec::new, |p| choices(&p.excluded)),
            steps,
            tags: routing.tags,
        }
    }
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
            events: m.events,
            routing: m.routing.map(|r| RoutingView::new(r, &m.attempts)),
            attempts: m.attempts,
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
