//! The audit trail: what the use cases record, and the organization's read of it.

use msgengine_storage::repo::audit::{self, Actor, NewAuditEntry};
use msgengine_storage::repo::GenericClient;
use serde_json::Value;
use uuid::Uuid;

pub use msgengine_storage::repo::audit::AuditEntry;

use super::{App, AppError, Tenant};

/// One audit row being written: who, what verb, on what. Field names only,
/// never values.
pub(crate) struct Record<'a> {
    pub actor: Actor,
    pub organization: msgengine_domain::OrganizationId,
    pub action: &'a str,
    pub target_type: &'a str,
    pub target_id: Option<Uuid>,
    pub changed_fields: &'a [String],
    pub details: Value,
}

impl<'a> Record<'a> {
    /// An action taken by `tenant`'s API key.
    pub fn by_tenant(tenant: Tenant, action: &'a str, target_type: &'a str) -> Self {
        Self {
            actor: Actor::ApiKey(tenant.key_id),
            organization: tenant.organization_id,
            action,
            target_type,
            target_id: None,
            changed_fields: &[],
            details: Value::Object(Default::default()),
        }
    }

    /// An action taken by the operator on `organization`.
    pub fn by_admin(
        organization: msgengine_domain::OrganizationId,
        action: &'a str,
        target_type: &'a str,
    ) -> Self {
        Self {
            actor: Actor::Admin,
            organization,
            action,
            target_type,
            target_id: None,
            changed_fields: &[],
            details: Value::Object(Default::default()),
        }
    }

    pub fn target(mut self, id: Uuid) -> Self {
        self.target_id = Some(id);
        self
    }

    pub fn changed(mut self, fields: &'a [String]) -> Self {
        self.changed_fields = fields;
        self
    }

    pub fn details(mut self, details: Value) -> Self {
        self.details = details;
        self
    }

    /// Appends the row; pass the use case's transaction so it commits with the change.
    pub async fn append(self, client: &impl GenericClient) -> Result<(), AppError> {
        audit::append(
            client,
            &NewAuditEntry {
                organization_id: self.organization,
                actor: self.actor,
                action: self.action,
                target_type: self.target_type,
                target_id: self.target_id,
                changed_fields: self.changed_fields,
                details: self.details,
            },
        )
        .await?;
        Ok(())
    }
}

/// A page of the audit trail, newest first.
pub struct AuditPage {
    pub entries: Vec<AuditEntry>,
    /// Pass as `before` for the next page; `None` on the last.
    pub next_before: Option<i64>,
}

impl App {
    /// The organization's audit trail, newest first, `limit` entries older
    /// than entry `before`.
    pub async fn audit_trail(
        &self,
        tenant: Tenant,
        before: Option<i64>,
        limit: i64,
    ) -> Result<AuditPage, AppError> {
        let client = self.pool().get().await?;
        let entries = audit::list(&client, tenant.organization_id, before, limit).await?;
        let next_before = (entries.len() as i64 == limit)
            .then(|| entries.last().map(|e| e.id))
            .flatten();
        Ok(AuditPage {
            entries,
            next_before,
        })
    }
}
