//! `/api/webhook-endpoint`: the organization's own webhook endpoint, which
//! receives its messages' status events (delivered by
//! `msgengine_actors::outbound`, signed with the endpoint's secret).
//!
//! The secret is sealed under the key ring and never read back: a `PUT`
//! without one generates `whsec_…` and answers it once; later reads show only
//! `{isSet, last4}`.

use actix_web::http::StatusCode;
use actix_web::{web, HttpResponse};
use base64::Engine as _;
use chrono::{DateTime, Utc};
use msgengine_domain::message::MessageState;
use msgengine_domain::validate as v;
use msgengine_storage::repo::audit::{self, Actor, NewAuditEntry};
use msgengine_storage::repo::org_webhooks::{self, Endpoint, EndpointChange};
use rand::RngCore;
use serde::{Deserialize, Serialize};
use serde_json::json;

use msgengine_actors::outbound::Targets;

use crate::auth::Tenant;
use crate::error::ApiError;
use crate::extract::Json;
use crate::state::AppState;

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct PutBody {
    url: String,
    #[serde(default)]
    secret: Option<String>,
    #[serde(default)]
    enabled: Option<bool>,
    /// Message states to receive; absent or null: every state.
    #[serde(default)]
    events: Option<Vec<String>>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct EndpointView {
    id: uuid::Uuid,
    url: String,
    secret: serde_json::Value,
    enabled: bool,
    events: Option<Vec<String>>,
    created_at: DateTime<Utc>,
    updated_at: DateTime<Utc>,
}

impl From<Endpoint> for EndpointView {
    fn from(e: Endpoint) -> Self {
        Self {
            id: e.id,
            url: e.url,
            secret: json!({"isSet": true, "last4": e.secret_last4}),
            enabled: e.enabled,
            events: e.events,
            created_at: e.created_at,
            updated_at: e.updated_at,
        }
    }
}

/// A fresh signing secret: `whsec_` + 43 base64url characters (256 bits).
fn generate_secret() -> String {
    let mut random = [0u8; 32];
    rand::rngs::OsRng.fill_bytes(&mut random);
    format!(
        "whsec_{}",
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(random)
    )
}

fn validate(body: &PutBody, targets: Targets) -> Result<(), ApiError> {
    v::http_url("url", &body.url)?;
    if targets.refuses_literal(&body.url) {
        return Err(v::ValidationError::new(
            "url",
            "private_address",
            "url points at a private, loopback or link-local address; webhook endpoints must be reachable on the public internet",
        )
        .into());
    }
    if let Some(secret) = &body.secret {
        v::secret("secret", secret)?;
        if secret.chars().count() < 16 {
            return Err(v::ValidationError::new(
                "secret",
                "invalid_secret",
                "secret must be at least 16 characters",
            )
            .into());
        }
    }
    if let Some(events) = &body.events {
        for (i, state) in events.iter().enumerate() {
            if state.parse::<MessageState>().is_err() {
                return Err(v::ValidationError::new(
                    format!("events[{i}]"),
                    "invalid_event",
                    "events lists message states (queued, sending, sent, delivered, read, failed, bounced, rejected, expired, …)",
                )
                .into());
            }
        }
    }
    Ok(())
}

fn audit_entry(tenant: &Tenant, action: &'static str) -> NewAuditEntry<'static> {
    NewAuditEntry {
        organization_id: tenant.organization_id,
        actor: Actor::ApiKey(tenant.key_id),
        action,
        target_type: "webhook_endpoint",
        target_id: None,
        changed_fields: &[],
        details: json!({}),
    }
}

/// `PUT /api/webhook-endpoint`: creates or replaces the endpoint.
pub async fn put(
    tenant: Tenant,
    state: web::Data<AppState>,
    Json(body): Json<PutBody>,
) -> Result<HttpResponse, ApiError> {
    validate(&body, state.engine.webhook_targets())?;
    let org = tenant.organization_id;
    let mut client = state.pool.get().await?;
    let tx = client.transaction().await?;
    let exists = org_webhooks::get(&tx, org).await?.is_some();
    let generated = (!exists && body.secret.is_none()).then(generate_secret);
    let secret = body.secret.as_deref().or(generated.as_deref());
    let (stored, created) = org_webhooks::put(
        &tx,
        &state.ring,
        org,
        &EndpointChange {
            url: &body.url,
            secret,
            enabled: body.enabled.unwrap_or(true),
            events: body.events.as_deref(),
        },
    )
    .await?;
    let action = if created {
        "webhook_endpoint.create"
    } else {
        "webhook_endpoint.update"
    };
    audit::append(&tx, &audit_entry(&tenant, action)).await?;
    tx.commit().await?;
    let mut view =
        serde_json::to_value(EndpointView::from(stored)).map_err(|_| ApiError::internal())?;
    if let (Some(secret), Some(obj)) = (generated, view.as_object_mut()) {
        // Shown this once; only its last four characters are ever shown again.
        obj.insert("signingSecret".into(), json!(secret));
    }
    let status = if created {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    Ok(HttpResponse::build(status).json(view))
}

/// `GET /api/webhook-endpoint`.
pub async fn get(tenant: Tenant, state: web::Data<AppState>) -> Result<HttpResponse, ApiError> {
    let client = state.pool.get().await?;
    match org_webhooks::get(&client, tenant.organization_id).await? {
        Some(e) => Ok(HttpResponse::Ok().json(EndpointView::from(e))),
        None => Err(ApiError::not_found("webhook endpoint")),
    }
}

/// `DELETE /api/webhook-endpoint`: removes it with its pending deliveries.
pub async fn delete(tenant: Tenant, state: web::Data<AppState>) -> Result<HttpResponse, ApiError> {
    let mut client = state.pool.get().await?;
    let tx = client.transaction().await?;
    if !org_webhooks::delete(&tx, tenant.organization_id).await? {
        return Err(ApiError::not_found("webhook endpoint"));
    }
    audit::append(&tx, &audit_entry(&tenant, "webhook_endpoint.delete")).await?;
    tx.commit().await?;
    Ok(HttpResponse::NoContent().finish())
}

/// `POST /api/webhook-endpoint/test`: queues a `test` event.
pub async fn test(tenant: Tenant, state: web::Data<AppState>) -> Result<HttpResponse, ApiError> {
    let event_id = uuid::Uuid::new_v4();
    let payload = json!({
        "id": event_id,
        "type": "test",
        "messageId": null,
        "status": null,
        "providerId": null,
        "providerMessageId": null,
        "metadata": null,
        "occurredAt": Utc::now(),
        "reason": "test event requested through the API",
    });
    let client = state.pool.get().await?;
    if !org_webhooks::enqueue(&client, tenant.organization_id, event_id, &payload).await? {
        return Err(ApiError::not_found("webhook endpoint"));
    }
    Ok(HttpResponse::Accepted().json(json!({"eventId": event_id, "status": "queued"})))
}
