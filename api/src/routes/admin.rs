//! The operator's API: organizations and their API keys. Authenticated by the
//! admin token (`Authorization: Bearer <MSGENGINE_ADMIN_TOKEN>`).

use actix_web::{web, HttpResponse};
use chrono::{DateTime, Utc};
use msgengine_domain::validate;
use msgengine_domain::{ApiKeyId, OrganizationId};
use msgengine_storage::repo::api_keys::{self, ApiKey, NewApiKey};
use msgengine_storage::repo::audit::{self, Actor, NewAuditEntry};
use msgengine_storage::repo::messages;
use msgengine_storage::repo::organizations::{self, Organization};
use msgengine_storage::StoreError;
use serde::{Deserialize, Serialize};
use serde_json::json;

use crate::auth::{issue_key, Admin};
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

pub async fn create_organization(
    _: Admin,
    state: web::Data<AppState>,
    Json(body): Json<CreateOrganization>,
) -> Result<HttpResponse, ApiError> {
    let name = body.name.trim();
    validate::text("name", name, 200)?;
    let client = state.pool.get().await?;
    let org = organizations::insert(&client, OrganizationId::new(), name).await?;
    Ok(HttpResponse::Created().json(OrganizationView::from(org)))
}

pub async fn list_organizations(
    _: Admin,
    state: web::Data<AppState>,
    query: web::Query<ListQuery>,
) -> Result<HttpResponse, ApiError> {
    let limit = page_limit(query.limit)?;
    let client = state.pool.get().await?;
    let orgs = organizations::list(&client, query.after.map(OrganizationId), limit).await?;
    let next_after = (orgs.len() as i64 == limit)
        .then(|| orgs.last().map(|o| o.id))
        .flatten();
    let views: Vec<OrganizationView> = orgs.into_iter().map(Into::into).collect();
    Ok(HttpResponse::Ok().json(json!({"organizations": views, "nextAfter": next_after})))
}

pub async fn get_organization(
    _: Admin,
    state: web::Data<AppState>,
    path: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let id = OrganizationId(parse_id(&path, "organization")?);
    let client = state.pool.get().await?;
    let org = organizations::get(&client, id)
        .await
        .map_err(not_found("organization"))?;
    Ok(HttpResponse::Ok().json(OrganizationView::from(org)))
}

/// `POST /api/admin/organizations/{id}/disable`: its keys stop working, and
/// its sends stop at once: its unfinished messages are parked out of the
/// scheduler's way (in the same transaction), this node's provider actors
/// hand its waiting jobs back to the database, and nothing of it is
/// dispatched or claimed until it is enabled again.
pub async fn disable_organization(
    _: Admin,
    state: web::Data<AppState>,
    path: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let id = OrganizationId(parse_id(&path, "organization")?);
    let org = set_active(&state, id, false).await?;
    state.auth.forget_organization(id);
    state.engine.organization_changed(id, false);
    Ok(HttpResponse::Ok().json(OrganizationView::from(org)))
}

/// `POST /api/admin/organizations/{id}/enable`: its keys work again and its
/// parked messages are due again (scheduled ones at their `sendAt`).
pub async fn enable_organization(
    _: Admin,
    state: web::Data<AppState>,
    path: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let id = OrganizationId(parse_id(&path, "organization")?);
    let org = set_active(&state, id, true).await?;
    state.engine.organization_changed(id, true);
    Ok(HttpResponse::Ok().json(OrganizationView::from(org)))
}

/// Disables or enables an organization, parks or unparks its messages and
/// writes the audit row, in one transaction.
async fn set_active(
    state: &AppState,
    id: OrganizationId,
    active: bool,
) -> Result<Organization, ApiError> {
    let mut client = state.pool.get().await?;
    let tx = client.transaction().await?;
    let org = if active {
        organizations::enable(&tx, id).await
    } else {
        organizations::disable(&tx, id).await
    }
    .map_err(not_found("organization"))?;
    if active {
        messages::unpark_organization(&tx, id.0).await?;
    } else {
        messages::park_organization(&tx, id.0).await?;
    }
    audit::append(
        &tx,
        &NewAuditEntry {
            organization_id: id,
            actor: Actor::Admin,
            action: if active {
                "organization.enable"
            } else {
                "organization.disable"
            },
            target_type: "organization",
            target_id: Some(id.0),
            changed_fields: &["isActive".to_owned()],
            details: json!({}),
        },
    )
    .await?;
    tx.commit().await?;
    Ok(org)
}

pub async fn issue_api_key(
    _: Admin,
    state: web::Data<AppState>,
    path: web::Path<String>,
    OptionalJson(body): OptionalJson<CreateApiKey>,
) -> Result<HttpResponse, ApiError> {
    let org_id = OrganizationId(parse_id(&path, "organization")?);
    let name = body.unwrap_or_default().name.unwrap_or_default();
    let name = name.trim();
    validate::opt_text("name", (!name.is_empty()).then_some(name), 100)?;
    let issued = issue_key();
    let mut client = state.pool.get().await?;
    let tx = client.transaction().await?;
    let org = organizations::get(&tx, org_id)
        .await
        .map_err(not_found("organization"))?;
    if !org.is_active {
        return Err(ApiError::conflict(
            "organization_disabled",
            "the organization is disabled; its keys cannot be used",
        ));
    }
    let key = api_keys::insert(
        &tx,
        &NewApiKey {
            id: ApiKeyId::new(),
            organization_id: org_id,
            name,
            prefix: &issued.prefix,
            key_hash: &issued.hash,
        },
    )
    .await?;
    audit::append(
        &tx,
        &NewAuditEntry {
            organization_id: org_id,
            actor: Actor::Admin,
            action: "api_key.issue",
            target_type: "api_key",
            target_id: Some(key.id.0),
            changed_fields: &[],
            details: json!({"prefix": key.prefix}),
        },
    )
    .await?;
    tx.commit().await?;
    Ok(HttpResponse::Created().json(json!({
        "id": key.id,
        "key": issued.key.expose(),
        "name": key.name,
        "prefix": key.prefix,
        "createdAt": key.created_at,
    })))
}

pub async fn list_api_keys(
    _: Admin,
    state: web::Data<AppState>,
    path: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let org_id = OrganizationId(parse_id(&path, "organization")?);
    let client = state.pool.get().await?;
    organizations::get(&client, org_id)
        .await
        .map_err(not_found("organization"))?;
    let keys: Vec<ApiKeyView> = api_keys::list(&client, org_id)
        .await?
        .into_iter()
        .map(Into::into)
        .collect();
    Ok(HttpResponse::Ok().json(json!({"apiKeys": keys})))
}

pub async fn revoke_api_key(
    _: Admin,
    state: web::Data<AppState>,
    path: web::Path<(String, String)>,
) -> Result<HttpResponse, ApiError> {
    let org_id = OrganizationId(parse_id(&path.0, "organization")?);
    let key_id = ApiKeyId(parse_id(&path.1, "API key")?);
    let mut client = state.pool.get().await?;
    let tx = client.transaction().await?;
    let key = api_keys::revoke(&tx, org_id, key_id)
        .await
        .map_err(not_found("API key"))?;
    audit::append(
        &tx,
        &NewAuditEntry {
            organization_id: org_id,
            actor: Actor::Admin,
            action: "api_key.revoke",
            target_type: "api_key",
            target_id: Some(key.id.0),
            changed_fields: &["revokedAt".to_owned()],
            details: json!({"prefix": key.prefix}),
        },
    )
    .await?;
    tx.commit().await?;
    state.auth.forget_key(key_id);
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
    let id = OrganizationId(parse_id(&path, "organization")?);
    let range = 1..=1_000_000;
    if !range.contains(&body.messages_per_second) {
        return Err(ApiError::from(msgengine_domain::ValidationError::new(
            "messagesPerSecond",
            "out_of_range",
            "messagesPerSecond must be between 1 and 1000000",
        )));
    }
    let burst = body.burst.unwrap_or(body.messages_per_second.max(1000));
    if !range.contains(&burst) {
        return Err(ApiError::from(msgengine_domain::ValidationError::new(
            "burst",
            "out_of_range",
            "burst must be between 1 and 1000000",
        )));
    }
    let mut client = state.pool.get().await?;
    let tx = client.transaction().await?;
    organizations::set_rate_limit(&tx, id, body.messages_per_second, burst)
        .await
        .map_err(not_found("organization"))?;
    audit::append(
        &tx,
        &NewAuditEntry {
            organization_id: id,
            actor: Actor::Admin,
            action: "organization.rate_limit",
            target_type: "organization",
            target_id: Some(id.0),
            changed_fields: &["burst".to_owned(), "messagesPerSecond".to_owned()],
            details: json!({"messagesPerSecond": body.messages_per_second, "burst": burst}),
        },
    )
    .await?;
    tx.commit().await?;
    state.engine.limits_changed(id).await;
    Ok(HttpResponse::Ok().json(json!({
        "organizationId": id,
        "messagesPerSecond": body.messages_per_second,
        "burst": burst,
    })))
}

/// Maps `NotFound` to a 404 naming `what`; other errors pass through.
pub(crate) fn not_found(what: &'static str) -> impl Fn(StoreError) -> ApiError {
    move |e| match e {
        StoreError::NotFound => ApiError::not_found(what),
        other => other.into(),
    }
}
