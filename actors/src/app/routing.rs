//! An organization's routing rules: list, read, create, replace, delete.
//! A write parses and validates the rule against the organization's
//! providers and its other rules (channel fallbacks may not loop) under the
//! organization's lock, commits with its audit row, then has the router
//! reload the organization, so the next message is routed by the new rules.
//! A valid rule that leaves messages without a usable provider is stored,
//! and the answer carries `warnings` saying which.

use std::collections::HashMap;

use msgengine_domain::message::OutboundMessage;
use msgengine_domain::provider::{
    EmailProviderSpec, ProviderSpec, SmsProviderSpec, WhatsappProviderSpec,
};
use msgengine_domain::routing::coverage::{self, Warning};
use msgengine_domain::routing::quiet::QuietHours;
use msgengine_domain::routing::rules::{self, ProviderFacts, MAX_RULES};
use msgengine_domain::routing::simulate::Simulation;
use msgengine_domain::routing::{MessageRouting, Plan, RouteCandidate, RoutingRule};
use msgengine_domain::ProviderId;
use msgengine_storage::repo::providers as providers_repo;
use msgengine_storage::repo::quiet_hours as quiet_repo;
use msgengine_storage::repo::routing_rules as repo;
use msgengine_storage::repo::GenericClient;
use serde_json::{json, Value};
use uuid::Uuid;

pub use msgengine_storage::repo::routing_rules::RuleRecord;

use super::audit::Record;
use super::error::not_found;
use super::{App, AppError, Tenant};

/// A written rule and what it leaves unroutable.
pub struct RuleWrite {
    pub record: RuleRecord,
    pub warnings: Vec<Warning>,
}

/// What a rule is checked against: every live connection's channel and
/// weight, and the active ones as route candidates.
struct Providers {
    facts: HashMap<ProviderId, ProviderFacts>,
    active: Vec<RouteCandidate>,
}

async fn providers(
    app: &App,
    client: &impl GenericClient,
    tenant: Tenant,
) -> Result<Providers, AppError> {
    let mut out = Providers {
        facts: HashMap::new(),
        active: Vec::new(),
    };
    collect::<EmailProviderSpec>(app, client, tenant, &mut out).await?;
    collect::<SmsProviderSpec>(app, client, tenant, &mut out).await?;
    collect::<WhatsappProviderSpec>(app, client, tenant, &mut out).await?;
    Ok(out)
}

async fn collect<S: ProviderSpec>(
    app: &App,
    client: &impl GenericClient,
    tenant: Tenant,
    out: &mut Providers,
) -> Result<(), AppError> {
    let records = providers_repo::list::<S>(client, app.ring(), tenant.organization_id).await?;
    for record in &records {
        out.facts.insert(
            record.id,
            ProviderFacts {
                channel: S::CHANNEL,
                weight: record.spec.routing().weight,
            },
        );
    }
    let active = records.iter().filter(|r| r.spec.is_active());
    out.active.extend(
        active
            .enumerate()
            .map(|(order, r)| crate::router::candidate(r, order)),
    );
    Ok(())
}

/// Top-level fields of the rule body that differ (for the audit row).
fn changed_fields(before: &RoutingRule, after: &RoutingRule) -> Vec<String> {
    let (Ok(Value::Object(a)), Ok(Value::Object(b))) =
        (serde_json::to_value(before), serde_json::to_value(after))
    else {
        return Vec::new();
    };
    let mut keys: Vec<String> = a
        .keys()
        .chain(b.keys())
        .filter(|k| a.get(*k) != b.get(*k))
        .cloned()
        .collect();
    keys.sort();
    keys.dedup();
    keys
}

impl App {
    pub async fn routing_rules(&self, tenant: Tenant) -> Result<Vec<RuleRecord>, AppError> {
        let client = self.pool().get().await?;
        Ok(repo::list(&client, tenant.organization_id).await?)
    }

    pub async fn routing_rule(&self, tenant: Tenant, id: Uuid) -> Result<RuleRecord, AppError> {
        let client = self.pool().get().await?;
        repo::get(&client, tenant.organization_id, id)
            .await
            .map_err(not_found("routing rule"))
    }

    /// Creates a rule, within the organization's cap of [`MAX_RULES`].
    pub async fn create_routing_rule(
        &self,
        tenant: Tenant,
        body: Value,
    ) -> Result<RuleWrite, AppError> {
        self.write_rule(tenant, None, body).await
    }

    /// Replaces a rule whole (every field as in a create).
    pub async fn replace_routing_rule(
        &self,
        tenant: Tenant,
        id: Uuid,
        body: Value,
    ) -> Result<RuleWrite, AppError> {
        self.write_rule(tenant, Some(id), body).await
    }

    async fn write_rule(
        &self,
        tenant: Tenant,
        id: Option<Uuid>,
        body: Value,
    ) -> Result<RuleWrite, AppError> {
        let org = tenant.organization_id;
        let mut rule = RoutingRule::parse(body)?;
        let mut client = self.pool().get().await?;
        let tx = client.transaction().await?;
        let count = repo::lock_and_count(&tx, org).await?;
        let known = providers(self, &tx, tenant).await?;
        rule.validate(&|p| known.facts.get(&p).copied())?;
        let others = repo::list(&tx, org).await?;
        let before = match id {
            Some(id) => Some(
                others
                    .iter()
                    .find(|r| r.id == id)
                    .ok_or_else(|| AppError::not_found("routing rule"))?,
            ),
            None if count >= MAX_RULES => {
                return Err(AppError::conflict(
                    "rule_limit_reached",
                    format!(
                        "this organization has {count} routing rules, the most allowed is \
                         {MAX_RULES}; delete one first"
                    ),
                ))
            }
            None => None,
        };
        let set: Vec<&RoutingRule> = others
            .iter()
            .filter(|r| Some(r.id) != id)
            .map(|r| &r.rule)
            .chain(std::iter::once(&rule))
            .collect();
        rules::check_channel_cycles(&set)?;
        let details = json!({"channel": rule.matcher.channel, "strategy": rule.strategy.as_str()});
        let record = match (id, before) {
            (Some(id), Some(before)) => {
                let changed = changed_fields(&before.rule, &rule);
                if changed.is_empty() {
                    let record = before.clone();
                    drop(tx);
                    let warnings = coverage::rule_warnings(&record.rule, &known.active);
                    return Ok(RuleWrite { record, warnings });
                }
                let record = repo::replace(&tx, org, id, &rule).await?;
                Record::by_tenant(tenant, "routing_rule.update", "routing_rule")
                    .target(id)
                    .changed(&changed)
                    .details(details)
                    .append(&tx)
                    .await?;
                record
            }
            _ => {
                let id = Uuid::now_v7();
                let record = repo::insert(&tx, org, id, &rule).await?;
                Record::by_tenant(tenant, "routing_rule.create", "routing_rule")
                    .target(id)
                    .details(details)
                    .append(&tx)
                    .await?;
                record
            }
        };
        tx.commit().await?;
        self.engine().providers_changed(org).await;
        let warnings = coverage::rule_warnings(&record.rule, &known.active);
        Ok(RuleWrite { record, warnings })
    }

    pub async fn delete_routing_rule(&self, tenant: Tenant, id: Uuid) -> Result<(), AppError> {
        let org = tenant.organization_id;
        let mut client = self.pool().get().await?;
        let tx = client.transaction().await?;
        if !repo::delete(&tx, org, id).await? {
            return Err(AppError::not_found("routing rule"));
        }
        Record::by_tenant(tenant, "routing_rule.delete", "routing_rule")
            .target(id)
            .append(&tx)
            .await?;
        tx.commit().await?;
        self.engine().providers_changed(org).await;
        Ok(())
    }
}

impl App {
    /// Plans a hypothetical message exactly as a send would be planned now
    /// (the organization's rules, providers and their live state), without
    /// storing or sending anything.
    pub async fn simulate_route(
        &self,
        tenant: Tenant,
        body: Value,
    ) -> Result<(Simulation, Plan), AppError> {
        let sim = Simulation::parse(body, chrono::Utc::now())?;
        let org = tenant.organization_id;
        self.engine().routes().ensure(org).await?;
        let message = OutboundMessage {
            id: sim.message_id,
            organization_id: org,
            channel: sim.channel,
            to: sim.to.clone(),
            from: None,
            subject: None,
            text: String::new(),
            html: None,
            metadata: None,
            extras: None,
            routing: Some(Box::new(MessageRouting {
                category: sim.category,
                tags: sim.tags.clone(),
                plan: None,
            })),
        };
        let plan = self.engine().routes().table().plan(&message, sim.at);
        Ok((sim, plan))
    }
}

pub use msgengine_storage::repo::quiet_hours::QuietRecord;

impl App {
    /// The organization's quiet hours (`None`: none set).
    pub async fn quiet_hours(&self, tenant: Tenant) -> Result<Option<QuietRecord>, AppError> {
        let client = self.pool().get().await?;
        Ok(quiet_repo::get(&client, tenant.organization_id).await?)
    }

    /// Sets the organization's quiet hours (replacing any); they apply to
    /// the next message accepted.
    pub async fn put_quiet_hours(
        &self,
        tenant: Tenant,
        body: Value,
    ) -> Result<QuietRecord, AppError> {
        let quiet = QuietHours::parse(body)?;
        let org = tenant.organization_id;
        let mut client = self.pool().get().await?;
        let tx = client.transaction().await?;
        let record = quiet_repo::put(&tx, org, &quiet).await?;
        Record::by_tenant(tenant, "routing.quiet_hours.set", "quiet_hours")
            .details(
                json!({"from": quiet.from, "to": quiet.to, "appliesTo": quiet.applies_to,
                            "timeZone": quiet.time_zone.name()}),
            )
            .append(&tx)
            .await?;
        tx.commit().await?;
        self.engine().providers_changed(org).await;
        Ok(record)
    }

    pub async fn delete_quiet_hours(&self, tenant: Tenant) -> Result<(), AppError> {
        let org = tenant.organization_id;
        let mut client = self.pool().get().await?;
        let tx = client.transaction().await?;
        if !quiet_repo::delete(&tx, org).await? {
            return Err(AppError::not_found("quiet hours"));
        }
        Record::by_tenant(tenant, "routing.quiet_hours.delete", "quiet_hours")
            .append(&tx)
            .await?;
        tx.commit().await?;
        self.engine().providers_changed(org).await;
        Ok(())
    }
}
