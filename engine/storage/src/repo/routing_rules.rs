//! An organization's routing rules. The rule is stored whole as the domain
//! type's JSON; the columns beside it (name, priority, enabled, channel) are
//! copies for ordering and listing. The caller validates before writing.

use chrono::{DateTime, Utc};
use deadpool_postgres::GenericClient;
use msgengine_domain::routing::RoutingRule;
use msgengine_domain::OrganizationId;
use uuid::Uuid;

use crate::error::StoreError;

/// A stored rule.
#[derive(Debug, Clone, PartialEq)]
pub struct RuleRecord {
    pub id: Uuid,
    pub rule: RoutingRule,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

const COLUMNS: &str = "id, rule, created_at, updated_at";

fn from_row(row: &tokio_postgres::Row) -> Result<RuleRecord, StoreError> {
    let rule: serde_json::Value = row.try_get("rule")?;
    let rule = serde_json::from_value(rule)
        .map_err(|e| StoreError::Corrupt(format!("routing rule: {e}")))?;
    Ok(RuleRecord {
        id: row.try_get("id")?,
        rule,
        created_at: row.try_get("created_at")?,
        updated_at: row.try_get("updated_at")?,
    })
}

fn encode(rule: &RoutingRule) -> Result<serde_json::Value, StoreError> {
    serde_json::to_value(rule).map_err(|e| StoreError::Corrupt(format!("routing rule: {e}")))
}

/// The organization's rules in evaluation order (priority, then id).
pub async fn list(
    client: &impl GenericClient,
    org: OrganizationId,
) -> Result<Vec<RuleRecord>, StoreError> {
    let stmt = client
        .prepare_cached(&format!(
            "SELECT {COLUMNS} FROM routing_rules WHERE organization_id = $1 ORDER BY priority, id"
        ))
        .await?;
    client
        .query(&stmt, &[&org.0])
        .await?
        .iter()
        .map(from_row)
        .collect()
}

/// One rule.
pub async fn get(
    client: &impl GenericClient,
    org: OrganizationId,
    id: Uuid,
) -> Result<RuleRecord, StoreError> {
    let stmt = client
        .prepare_cached(&format!(
            "SELECT {COLUMNS} FROM routing_rules WHERE organization_id = $1 AND id = $2"
        ))
        .await?;
    let row = client
        .query_opt(&stmt, &[&org.0, &id])
        .await?
        .ok_or(StoreError::NotFound)?;
    from_row(&row)
}

/// Takes the organization's row lock (the one provider changes take too),
/// so a rule set is validated against providers and rules that cannot
/// change until the transaction ends; answers how many rules it has.
pub async fn lock_and_count(
    client: &impl GenericClient,
    org: OrganizationId,
) -> Result<i64, StoreError> {
    super::organizations::lock(client, org).await?;
    let count = client
        .prepare_cached("SELECT count(*) FROM routing_rules WHERE organization_id = $1")
        .await?;
    Ok(client.query_one(&count, &[&org.0]).await?.try_get(0)?)
}

pub async fn insert(
    client: &impl GenericClient,
    org: OrganizationId,
    id: Uuid,
    rule: &RoutingRule,
) -> Result<RuleRecord, StoreError> {
    let stmt = client
        .prepare_cached(&format!(
            "INSERT INTO routing_rules (id, organization_id, name, priority, enabled, channel, rule)
             VALUES ($1, $2, $3, $4, $5, $6, $7) RETURNING {COLUMNS}"
        ))
        .await?;
    let row = client
        .query_one(
            &stmt,
            &[
                &id,
                &org.0,
                &rule.name,
                &rule.priority,
                &rule.enabled,
                &rule.matcher.channel.as_str(),
                &encode(rule)?,
            ],
        )
        .await?;
    from_row(&row)
}

/// Replaces a rule; `NotFound` when the organization has no such rule.
pub async fn replace(
    client: &impl GenericClient,
    org: OrganizationId,
    id: Uuid,
    rule: &RoutingRule,
) -> Result<RuleRecord, StoreError> {
    let stmt = client
        .prepare_cached(&format!(
            "UPDATE routing_rules
                SET name = $3, priority = $4, enabled = $5, channel = $6, rule = $7,
                    updated_at = now()
              WHERE organization_id = $1 AND id = $2
          RETURNING {COLUMNS}"
        ))
        .await?;
    let row = client
        .query_opt(
            &stmt,
            &[
                &org.0,
                &id,
                &rule.name,
                &rule.priority,
                &rule.enabled,
                &rule.matcher.channel.as_str(),
                &encode(rule)?,
            ],
        )
        .await?
        .ok_or(StoreError::NotFound)?;
    from_row(&row)
}

/// Deletes a rule; `false` when there was none.
pub async fn delete(
    client: &impl GenericClient,
    org: OrganizationId,
    id: Uuid,
) -> Result<bool, StoreError> {
    let stmt = client
        .prepare_cached("DELETE FROM routing_rules WHERE organization_id = $1 AND id = $2")
        .await?;
    Ok(client.execute(&stmt, &[&org.0, &id]).await? > 0)
}
