//! The operator's API: organizations and their API keys. Authenticated by the
//! admin token (`Authorization: Bearer <MSGENGINE_ADMIN_TOKEN>`). The use
//! cases are `msgengine_actors::app::admin`.

use actix_web::{web, HttpResponse};
use chrono::{DateTime, Utc};
use msgengine_actors::app::admin::{ApiKey, Organization, RateLimit};
use msgengine_domain::{ApiKeyId, OrganizationId};
use serde::{Deserialize, Serialize};

use crate::auth::Admin;
use crate::error::ApiError;
use crate::extract::{page_limit, parse_id, Json, OptionalJson};
use crate::state::AppState;

/// An organization as the admin API shows it.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub struct OrganizationView {
    id: OrganizationId,
    name: String,
    is_active: bool,
    created_at: DateTime<Utc>,
    updated_at: DateTime<Utc>,
    disabled_at: Option<DateTime<Utc>>,
}

impl From<Organization> for OrganizationView {
    fn from(o: Organization) -> Self {
        Self {
            id: o.id,
            name: o.name,
            is_active: o.is_active,
            created_at: o.created_at,
            updated_at: o.updated_at,
            disabled_at: o.disabled_at,
        }
    }
}

/// An API key's record (never the key).
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ApiKeyView {
    id: ApiKeyId,
    name: String,
    prefix: String,
    created_at: DateTime<Utc>,
    revoked_at: Option<DateTime<Utc>>,
}

impl From<ApiKey> for ApiKeyView {
    fn from(k: ApiKey) -> Self {
        Self {
            id: k.id,
            name: k.name,
            prefix: k.prefix,
            created_at: k.created_at,
            revoked_at: k.revoked_at,
        }
    }
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct CreateOrganization {
    name: String,
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct CreateApiKey {
    #[serde(default)]
    name: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ListQuery {
    /// At most this many (1-500, default 100).
    limit: Option<i64>,
    /// Continue after this organization id (the previous page's `nextAfter`).
    after: Option<uuid::Uuid>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct OrganizationList {
    organizations: Vec<OrganizationView>,
    next_after: Option<OrganizationId>,
}

/// A key just issued: the key itself, shown this once.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct IssuedKeyView<'a> {
    id: ApiKeyId,
    key: &'a str,
    name: String,
    prefix: String,
    created_at: DateTime<Utc>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct ApiKeyList {
    api_keys: Vec<ApiKeyView>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct RateLimitView {
    organization_id: OrganizationId,
    messages_per_second: i32,
    burst: i32,
}

fn organization_id(path: &str) -> Result<OrganizationId, ApiError> {
    Ok(OrganizationId(parse_id(path, "organization")?))
}

pub async fn create_organization(
    _: Admin,
    state: web::Data<AppState>,
    Json(body): Json<CreateOrganization>,
) -> Result<HttpResponse, ApiError> {
    let org = state.app.create_organization(&body.name).await?;
    Ok(HttpResponse::Created().json(OrganizationView::from(org)))
}

pub async fn list_organizations(
    _: Admin,
    state: web::Data<AppState>,
    query: web::Query<ListQuery>,
) -> Result<HttpResponse, ApiError> {
    let limit = page_limit(query.limit)?;
    let page = state
        .app
        .list_organizations(query.after.map(OrganizationId), limit)
        .await?;
    Ok(HttpResponse::Ok().json(OrganizationList {
        organizations: page.organizations.into_iter().map(Into::into).collect(),
        next_after: page.next_after,
    }))
}

pub async fn get_organization(
    _: Admin,
    state: web::Data<AppState>,
    path: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let org = state.app.organization(organization_id(&path)?).await?;
    Ok(HttpResponse::Ok().json(OrganizationView::from(org)))
}

/// `POST /api/admin/organizations/{id}/disable`: its keys stop working and
/// its sends stop at once (`App::set_organization_active`).
pub async fn disable_organization(
    _: Admin,
    state: web::Data<AppState>,
    path: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let id = organization_id(&path)?;
    let org = state.app.set_organization_active(id, false).await?;
    Ok(HttpResponse::Ok().json(OrganizationView::from(org)))
}

/// `POST /api/admin/organizations/{id}/enable`: its keys work again and its
/// parked messages are due again (scheduled ones at their `sendAt`).
pub async fn enable_organization(
    _: Admin,
    state: web::Data<AppState>,
    path: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let id = organization_id(&path)?;
    let org = state.app.set_organization_active(id, true).await?;
    Ok(HttpResponse::Ok().json(OrganizationView::from(org)))
}

pub async fn issue_api_key(
    _: Admin,
    state: web::Data<AppState>,
    path: web::Path<String>,
    OptionalJson(body): OptionalJson<CreateApiKey>,
) -> Result<HttpResponse, ApiError> {
    let org = organization_id(&path)?;
    let name = body.unwrap_or_default().name;
    let issued = state.app.issue_api_key(org, name.as_deref()).await?;
    Ok(HttpResponse::Created().json(IssuedKeyView {
        id: issued.record.id,
        key: issued.key.expose(),
        name: issued.record.name,
        prefix: issued.record.prefix,
        created_at: issued.record.created_at,
    }))
}

pub async fn list_api_keys(
    _: Admin,
    state: web::Data<AppState>,
    path: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let keys = state.app.api_keys(organization_id(&path)?).await?;
    Ok(HttpResponse::Ok().json(ApiKeyList {
        api_keys: keys.into_iter().map(Into::into).collect(),
    }))
}

pub async fn revoke_api_key(
    _: Admin,
    state: web::Data<AppState>,
    path: web::Path<(String, String)>,
) -> Result<HttpResponse, ApiError> {
    let org = organization_id(&path.0)?;
    let key = ApiKeyId(parse_id(&path.1, "API key")?);
    state.app.revoke_api_key(org, key).await?;
    Ok(HttpResponse::NoContent().finish())
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RateLimitBody {
    /// Sustained admission rate, messages per second (1-1000000).
    messages_per_second: i32,
    /// Messages admitted at once (1-1000000); at least 1000 to allow full batches.
    /// Defaults to `messagesPerSecond` (and at least 1000).
    #[serde(default)]
    burst: Option<i32>,
}

/// `PUT /api/admin/organizations/{id}/rate-limit`: the organization's
/// admission rate, effective at once.
pub async fn set_rate_limit(
    _: Admin,
    state: web::Data<AppState>,
    path: web::Path<String>,
    Json(body): Json<RateLimitBody>,
) -> Result<HttpResponse, ApiError> {
    let id = organization_id(&path)?;
    let limit = RateLimit::new(body.messages_per_second, body.burst)?;
    state.app.set_rate_limit(id, limit).await?;
    Ok(HttpResponse::Ok().json(RateLimitView {
        organization_id: id,
        messages_per_second: limit.messages_per_second,
        burst: limit.burst,
    }))
}
