//! `/api/routing/rules`: the organization's routing rules, evaluated in
//! `priority` order (first match wins, then the channel's default: every
//! active provider by priority). A write answers the stored rule and
//! `warnings` for messages it leaves without a usable provider. The use
//! cases are `msgengine_actors::app::routing`.

use actix_web::{web, HttpResponse};
use chrono::{DateTime, Utc};
use msgengine_actors::app::routing::{QuietRecord, RuleRecord, RuleWrite};
use msgengine_domain::routing::plan::{Choice, Reason};
use msgengine_domain::routing::quiet::QuietHours;
use msgengine_domain::routing::{Category, Fallback, RoutingRule, Strategy, Warning};
use msgengine_domain::{Channel, ProviderId};
use serde::Serialize;
use serde_json::Value;
use std::collections::BTreeMap;
use uuid::Uuid;

use crate::auth::Tenant;
use crate::error::ApiError;
use crate::extract::{parse_id, Json};
use crate::state::AppState;

/// One stored rule: its id, the rule as written (defaults filled in), and when.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct RuleView {
    id: Uuid,
    #[serde(flatten)]
    rule: RoutingRule,
    created_at: DateTime<Utc>,
    updated_at: DateTime<Utc>,
}

impl From<RuleRecord> for RuleView {
    fn from(r: RuleRecord) -> Self {
        Self {
            id: r.id,
            rule: r.rule,
            created_at: r.created_at,
            updated_at: r.updated_at,
        }
    }
}

/// A written rule, with what it leaves unroutable.
#[derive(Serialize)]
struct RuleWritten {
    #[serde(flatten)]
    rule: RuleView,
    warnings: Vec<Warning>,
}

impl From<RuleWrite> for RuleWritten {
    fn from(w: RuleWrite) -> Self {
        Self {
            rule: w.record.into(),
            warnings: w.warnings,
        }
    }
}

#[derive(Serialize)]
struct RuleList {
    rules: Vec<RuleView>,
}

fn id(path: &str) -> Result<Uuid, ApiError> {
    parse_id(path, "routing rule")
}

pub async fn list(tenant: Tenant, state: web::Data<AppState>) -> Result<HttpResponse, ApiError> {
    let rules = state.app.routing_rules(*tenant).await?;
    Ok(HttpResponse::Ok().json(RuleList {
        rules: rules.into_iter().map(Into::into).collect(),
    }))
}

pub async fn create(
    tenant: Tenant,
    state: web::Data<AppState>,
    Json(body): Json<Value>,
) -> Result<HttpResponse, ApiError> {
    let written = state.app.create_routing_rule(*tenant, body).await?;
    Ok(HttpResponse::Created().json(RuleWritten::from(written)))
}

pub async fn get(
    tenant: Tenant,
    state: web::Data<AppState>,
    path: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let rule = state.app.routing_rule(*tenant, id(&path)?).await?;
    Ok(HttpResponse::Ok().json(RuleView::from(rule)))
}

pub async fn replace(
    tenant: Tenant,
    state: web::Data<AppState>,
    path: web::Path<String>,
    Json(body): Json<Value>,
) -> Result<HttpResponse, ApiError> {
    let written = state
        .app
        .replace_routing_rule(*tenant, id(&path)?, body)
        .await?;
    Ok(HttpResponse::Ok().json(RuleWritten::from(written)))
}

pub async fn delete(
    tenant: Tenant,
    state: web::Data<AppState>,
    path: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    state.app.delete_routing_rule(*tenant, id(&path)?).await?;
    Ok(HttpResponse::NoContent().finish())
}

/// One provider's place in a plan, with the reason in words.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct ChoiceView {
    provider_id: ProviderId,
    name: String,
    reason: Reason,
    explanation: String,
}

pub(crate) fn choices(list: &[Choice]) -> Vec<ChoiceView> {
    list.iter()
        .map(|c| ChoiceView {
            provider_id: c.provider_id,
            name: c.name.to_string(),
            reason: c.reason.clone(),
            explanation: c.explanation(),
        })
        .collect()
}

/// The plan a hypothetical message would get.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct SimulatedView {
    channel: Channel,
    to: String,
    at: DateTime<Utc>,
    category: Category,
    tags: BTreeMap<String, String>,
    message_id: Uuid,
    rule: String,
    rule_id: Option<Uuid>,
    strategy: Strategy,
    candidates: Vec<ChoiceView>,
    excluded: Vec<ChoiceView>,
    fallback: Fallback,
}

pub async fn simulate(
    tenant: Tenant,
    state: web::Data<AppState>,
    Json(body): Json<Value>,
) -> Result<HttpResponse, ApiError> {
    let (sim, plan) = state.app.simulate_route(*tenant, body).await?;
    Ok(HttpResponse::Ok().json(SimulatedView {
        channel: sim.channel,
        to: sim.to,
        at: sim.at,
        category: sim.category,
        tags: sim.tags,
        message_id: sim.message_id.0,
        candidates: choices(&plan.candidates),
        excluded: choices(&plan.excluded),
        rule: plan.decider.rule,
        rule_id: plan.decider.rule_id,
        strategy: plan.decider.strategy,
        fallback: plan.fallback,
    }))
}

/// The organization's quiet hours.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct QuietView {
    #[serde(flatten)]
    quiet: QuietHours,
    updated_at: DateTime<Utc>,
}

impl From<QuietRecord> for QuietView {
    fn from(r: QuietRecord) -> Self {
        Self {
            quiet: r.quiet,
            updated_at: r.updated_at,
        }
    }
}

pub async fn get_quiet_hours(
    tenant: Tenant,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    match state.app.quiet_hours(*tenant).await? {
        Some(record) => Ok(HttpResponse::Ok().json(QuietView::from(record))),
        None => Err(ApiError::not_found("quiet hours")),
    }
}

pub async fn put_quiet_hours(
    tenant: Tenant,
    state: web::Data<AppState>,
    Json(body): Json<Value>,
) -> Result<HttpResponse, ApiError> {
    let record = state.app.put_quiet_hours(*tenant, body).await?;
    Ok(HttpResponse::Ok().json(QuietView::from(record)))
}

pub async fn delete_quiet_hours(
    tenant: Tenant,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    state.app.delete_quiet_hours(*tenant).await?;
    Ok(HttpResponse::NoContent().finish())
}
