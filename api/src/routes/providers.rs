//! Provider registry routes, one generic implementation for the three channels:
//! `GET/POST /api/{channel}/providers`, `GET/PUT/DELETE /api/{channel}/providers/{id}`,
//! `POST /api/{channel}/providers/{id}/test`.
//!
//! Bodies are the channel's spec in camelCase. `PUT` is a JSON merge patch
//! (RFC 7396): fields left out keep their value (secrets included, since a
//! client cannot read them back), `null` clears an optional field; the merged
//! result is validated exactly like a create. Secrets are write-only: responses
//! show `{"isSet": bool, "last4": ...}` in their place. A patch that changes
//! where credentials are sent (`baseUrl`, the SMTP host, an account id in the
//! request path…) must carry those credentials again (422 naming the secret).
//! The use cases are `msgengine_actors::app::providers`.

use actix_web::{web, HttpResponse};
use chrono::{DateTime, Utc};
use msgengine_actors::app::providers::{ProviderRecord, TestReport};
use msgengine_domain::provider::{self, ProviderSpec};
use msgengine_domain::{Channel, OrganizationId, ProviderId};
use serde::Serialize;
use serde_json::{Map, Value};

use crate::auth::Tenant;
use crate::error::ApiError;
use crate::extract::{parse_id, Json};
use crate::state::AppState;

/// One provider connection, its secrets redacted.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ProviderView {
    id: ProviderId,
    organization_id: OrganizationId,
    channel: Channel,
    /// The spec's fields, secrets as `{"isSet", "last4"}`.
    #[serde(flatten)]
    spec: Map<String, Value>,
    created_at: DateTime<Utc>,
    updated_at: DateTime<Utc>,
}

impl<S: ProviderSpec> From<&ProviderRecord<S>> for ProviderView {
    fn from(record: &ProviderRecord<S>) -> Self {
        Self {
            id: record.id,
            organization_id: record.organization_id,
            channel: S::CHANNEL,
            spec: provider::redacted_view(&record.spec),
            created_at: record.created_at,
            updated_at: record.updated_at,
        }
    }
}

#[derive(Serialize)]
struct ProviderList {
    providers: Vec<ProviderView>,
}

fn id(path: &str) -> Result<ProviderId, ApiError> {
    Ok(ProviderId(parse_id(path, "provider")?))
}

pub async fn list<S: ProviderSpec>(
    tenant: Tenant,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let records = state.app.list_providers::<S>(*tenant).await?;
    let providers = records.iter().map(ProviderView::from).collect();
    Ok(HttpResponse::Ok().json(ProviderList { providers }))
}

pub async fn create<S: ProviderSpec>(
    tenant: Tenant,
    state: web::Data<AppState>,
    Json(body): Json<Map<String, Value>>,
) -> Result<HttpResponse, ApiError> {
    let record = state.app.create_provider::<S>(*tenant, body).await?;
    Ok(HttpResponse::Created().json(ProviderView::from(&record)))
}

pub async fn get<S: ProviderSpec>(
    tenant: Tenant,
    state: web::Data<AppState>,
    path: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let record = state.app.provider::<S>(*tenant, id(&path)?).await?;
    Ok(HttpResponse::Ok().json(ProviderView::from(&record)))
}

pub async fn update<S: ProviderSpec>(
    tenant: Tenant,
    state: web::Data<AppState>,
    path: web::Path<String>,
    Json(patch): Json<Map<String, Value>>,
) -> Result<HttpResponse, ApiError> {
    let record = state
        .app
        .update_provider::<S>(*tenant, id(&path)?, patch)
        .await?;
    Ok(HttpResponse::Ok().json(ProviderView::from(&record)))
}

pub async fn delete<S: ProviderSpec>(
    tenant: Tenant,
    state: web::Data<AppState>,
    path: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    state.app.delete_provider::<S>(*tenant, id(&path)?).await?;
    Ok(HttpResponse::NoContent().finish())
}

pub async fn test<S: ProviderSpec>(
    tenant: Tenant,
    state: web::Data<AppState>,
    path: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let report: TestReport = state.app.test_provider::<S>(*tenant, id(&path)?).await?;
    Ok(HttpResponse::Ok().json(report))
}
