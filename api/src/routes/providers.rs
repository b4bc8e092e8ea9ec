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

use actix_web::{web, HttpResponse};
use msgengine_domain::provider::{self, ProviderSpec};
use msgengine_domain::ProviderId;
use msgengine_storage::repo::audit::{self, Actor, NewAuditEntry};
use msgengine_storage::repo::providers::{self as repo, ProviderRecord};
use serde_json::{json, Map, Value};

use crate::auth::Tenant;
use crate::error::ApiError;
use crate::extract::{parse_id, Json};
use crate::routes::admin::not_found;
use crate::state::AppState;

/// The response body for one provider connection.
pub fn render<S: ProviderSpec>(record: &ProviderRecord<S>) -> Value {
    let mut object = Map::new();
    object.insert("id".into(), json!(record.id));
    object.insert("organizationId".into(), json!(record.organization_id));
    object.insert("channel".into(), json!(S::CHANNEL));
    object.extend(provider::redacted_view(&record.spec));
    object.insert("createdAt".into(), json!(record.created_at));
    object.insert("updatedAt".into(), json!(record.updated_at));
    Value::Object(object)
}

async fn record_audit<S: ProviderSpec>(
    client: &impl msgengine_storage::repo::GenericClient,
    tenant: Tenant,
    action: &str,
    id: ProviderId,
    spec: &S,
    changed_fields: &[String],
    details: Value,
) -> Result<(), ApiError> {
    let mut all_details = json!({"channel": S::CHANNEL, "providerType": spec.provider_type()});
    if let (Some(base), Value::Object(extra)) = (all_details.as_object_mut(), details) {
        base.extend(extra);
    }
    audit::append(
        client,
        &NewAuditEntry {
            organization_id: tenant.organization_id,
            actor: Actor::ApiKey(tenant.key_id),
            action,
            target_type: "provider",
            target_id: Some(id.0),
            changed_fields,
            details: all_details,
        },
    )
    .await?;
    Ok(())
}

pub async fn list<S: ProviderSpec>(
    tenant: Tenant,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let client = state.pool.get().await?;
    let records = repo::list::<S>(&client, &state.ring, tenant.organization_id).await?;
    let providers: Vec<Value> = records.iter().map(render).collect();
    Ok(HttpResponse::Ok().json(json!({ "providers": providers })))
}

pub async fn create<S: ProviderSpec>(
    tenant: Tenant,
    state: web::Data<AppState>,
    Json(body): Json<Map<String, Value>>,
) -> Result<HttpResponse, ApiError> {
    let spec: S = provider::from_object(body)?;
    let id = ProviderId::new();
    let mut client = state.pool.get().await?;
    let tx = client.transaction().await?;
    // Under the organization's lock, so concurrent creates cannot pass the cap together.
    let live = repo::lock_and_count_live(&tx, tenant.organization_id).await?;
    let limit = state.limits.max_providers_per_org;
    if live >= i64::from(limit) {
        return Err(ApiError::conflict(
            "provider_limit_reached",
            format!(
                "this organization has {live} provider connections, the most allowed is {limit}; \
                 delete one first"
            ),
        ));
    }
    let record = repo::insert(&tx, &state.ring, tenant.organization_id, id, &spec).await?;
    record_audit(
        &tx,
        tenant,
        "provider.create",
        id,
        &spec,
        &provider::field_names(&spec),
        json!({}),
    )
    .await?;
    tx.commit().await?;
    state.engine.providers_changed(tenant.organization_id).await;
    Ok(HttpResponse::Created().json(render(&record)))
}

pub async fn get<S: ProviderSpec>(
    tenant: Tenant,
    state: web::Data<AppState>,
    path: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let id = ProviderId(parse_id(&path, "provider")?);
    let client = state.pool.get().await?;
    let record = repo::get::<S>(&client, &state.ring, tenant.organization_id, id, false)
        .await
        .map_err(not_found("provider"))?;
    Ok(HttpResponse::Ok().json(render(&record)))
}

pub async fn update<S: ProviderSpec>(
    tenant: Tenant,
    state: web::Data<AppState>,
    path: web::Path<String>,
    Json(patch): Json<Map<String, Value>>,
) -> Result<HttpResponse, ApiError> {
    let id = ProviderId(parse_id(&path, "provider")?);
    let mut client = state.pool.get().await?;
    let tx = client.transaction().await?;
    let before = repo::get::<S>(&tx, &state.ring, tenant.organization_id, id, true)
        .await
        .map_err(not_found("provider"))?;
    let mut merged = provider::to_object(&before.spec);
    provider::merge_patch(&mut merged, &patch);
    let after: S = provider::from_object(merged)?;
    // Moving the connection elsewhere needs its secrets in this request: a
    // stored key is never presented to a host the key holder did not enter it for.
    provider::check_destination_change(&before.spec, &after, &patch)?;
    let changed = provider::changed_fields(&before.spec, &after);
    if changed.is_empty() {
        return Ok(HttpResponse::Ok().json(render(&before)));
    }
    let record = repo::update(&tx, &state.ring, tenant.organization_id, id, &after).await?;
    record_audit(
        &tx,
        tenant,
        "provider.update",
        id,
        &after,
        &changed,
        json!({}),
    )
    .await?;
    tx.commit().await?;
    state.webhook_connections.forget(id);
    state.engine.providers_changed(tenant.organization_id).await;
    Ok(HttpResponse::Ok().json(render(&record)))
}

pub async fn delete<S: ProviderSpec>(
    tenant: Tenant,
    state: web::Data<AppState>,
    path: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let id = ProviderId(parse_id(&path, "provider")?);
    let mut client = state.pool.get().await?;
    let tx = client.transaction().await?;
    let record = repo::get::<S>(&tx, &state.ring, tenant.organization_id, id, true)
        .await
        .map_err(not_found("provider"))?;
    repo::delete::<S>(&tx, tenant.organization_id, id).await?;
    record_audit(
        &tx,
        tenant,
        "provider.delete",
        id,
        &record.spec,
        &[],
        json!({}),
    )
    .await?;
    tx.commit().await?;
    state.webhook_connections.forget(id);
    state.engine.providers_changed(tenant.organization_id).await;
    Ok(HttpResponse::NoContent().finish())
}

pub async fn test<S: ProviderSpec>(
    tenant: Tenant,
    state: web::Data<AppState>,
    path: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let id = ProviderId(parse_id(&path, "provider")?);
    let record = {
        let client = state.pool.get().await?;
        repo::get::<S>(&client, &state.ring, tenant.organization_id, id, false)
            .await
            .map_err(not_found("provider"))?
    };
    // No connection is held while the provider is called.
    let mut report = state.registry.test(&record.spec.clone().into_any()).await;
    // A probe's message can carry the provider's own text: untrusted.
    for check in &mut report.checks {
        check.message = msgengine_domain::text::clean_untrusted(&check.message, 600);
    }
    let client = state.pool.get().await?;
    record_audit(
        &client,
        tenant,
        "provider.test",
        id,
        &record.spec,
        &[],
        json!({"ok": report.ok}),
    )
    .await?;
    Ok(HttpResponse::Ok().json(report))
}
