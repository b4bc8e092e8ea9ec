//! `/api/webhook-endpoint`: the organization's own webhook endpoint, which
//! receives its messages' status events (delivered by
//! `msgengine_actors::outbound`, signed with the endpoint's secret).
//!
//! The secret is sealed under the key ring and never read back: a `PUT`
//! without one generates `whsec_…` and answers it once; later reads show only
//! `{isSet, last4}`. The use cases are `msgengine_actors::app::endpoints`.

use actix_web::http::StatusCode;
use actix_web::{web, HttpResponse};
use chrono::{DateTime, Utc};
use msgengine_actors::app::endpoints::{Endpoint, EndpointSpec};
use serde::{Deserialize, Serialize};

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
struct SecretView {
    is_set: bool,
    last4: String,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct EndpointView {
    /// Only on the answer that generated it: shown this once.
    #[serde(skip_serializing_if = "Option::is_none")]
    signing_secret: Option<String>,
    id: uuid::Uuid,
    url: String,
    secret: SecretView,
    enabled: bool,
    events: Option<Vec<String>>,
    created_at: DateTime<Utc>,
    updated_at: DateTime<Utc>,
}

impl From<Endpoint> for EndpointView {
    fn from(e: Endpoint) -> Self {
        Self {
            signing_secret: None,
            id: e.id,
            url: e.url,
            secret: SecretView {
                is_set: true,
                last4: e.secret_last4,
            },
            enabled: e.enabled,
            events: e.events,
            created_at: e.created_at,
            updated_at: e.updated_at,
        }
    }
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct TestQueued {
    event_id: uuid::Uuid,
    status: &'static str,
}

/// `PUT /api/webhook-endpoint`: creates or replaces the endpoint.
pub async fn put(
    tenant: Tenant,
    state: web::Data<AppState>,
    Json(body): Json<PutBody>,
) -> Result<HttpResponse, ApiError> {
    let spec = EndpointSpec {
        url: &body.url,
        secret: body.secret.as_deref(),
        enabled: body.enabled,
        events: body.events.as_deref(),
    };
    let done = state.app.put_endpoint(*tenant, spec).await?;
    let mut view = EndpointView::from(done.endpoint);
    view.signing_secret = done.generated_secret;
    let status = if done.created {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    Ok(HttpResponse::build(status).json(view))
}

/// `GET /api/webhook-endpoint`.
pub async fn get(tenant: Tenant, state: web::Data<AppState>) -> Result<HttpResponse, ApiError> {
    let endpoint = state.app.endpoint(*tenant).await?;
    Ok(HttpResponse::Ok().json(EndpointView::from(endpoint)))
}

/// `DELETE /api/webhook-endpoint`: removes it with its pending deliveries.
pub async fn delete(tenant: Tenant, state: web::Data<AppState>) -> Result<HttpResponse, ApiError> {
    state.app.delete_endpoint(*tenant).await?;
    Ok(HttpResponse::NoContent().finish())
}

/// `POST /api/webhook-endpoint/test`: queues a `test` event.
pub async fn test(tenant: Tenant, state: web::Data<AppState>) -> Result<HttpResponse, ApiError> {
    let event_id = state.app.test_endpoint(*tenant).await?;
    Ok(HttpResponse::Accepted().json(TestQueued {
        event_id,
        status: "queued",
    }))
}
