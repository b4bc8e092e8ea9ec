//! Provider connections, one generic implementation for the three channels:
//! list, create, read, update (a JSON merge patch), delete and test. Each
//! change commits with its audit row, then evicts this node's cached
//! webhook connection and reloads the organization's routes, in that order
//! and only here.

use msgengine_domain::provider::{self, ProviderSpec};
use msgengine_domain::text::clean_untrusted;
use msgengine_domain::ProviderId;
use msgengine_storage::repo::providers as repo;
use msgengine_storage::repo::GenericClient;
use serde_json::{json, Map, Value};

pub use msgengine_providers::{Check, CheckStatus, TestReport};
pub use msgengine_storage::repo::providers::ProviderRecord;

use super::audit::Record;
use super::error::not_found;
use super::{App, AppError, Tenant};

/// Most characters of a probe's message shown (it can carry provider text).
const MAX_PROBE_TEXT_CHARS: usize = 600;

/// A provider change's audit row: the channel and type always, never a value.
async fn audit<S: ProviderSpec>(
    client: &impl GenericClient,
    tenant: Tenant,
    action: &str,
    id: ProviderId,
    spec: &S,
    changed_fields: &[String],
    extra: Value,
) -> Result<(), AppError> {
    let mut details = json!({"channel": S::CHANNEL, "providerType": spec.provider_type()});
    if let (Some(base), Value::Object(extra)) = (details.as_object_mut(), extra) {
        base.extend(extra);
    }
    Record::by_tenant(tenant, action, "provider")
        .target(id.0)
        .changed(changed_fields)
        .details(details)
        .append(client)
        .await
}

impl App {
    /// After a committed change: this node forgets the cached connection
    /// and the organization's routes are reloaded.
    async fn provider_changed(&self, tenant: Tenant, id: Option<ProviderId>) {
        if let Some(id) = id {
            self.inner.connections.forget(id);
        }
        self.engine()
            .providers_changed(tenant.organization_id)
            .await;
    }

    pub async fn list_providers<S: ProviderSpec>(
        &self,
        tenant: Tenant,
    ) -> Result<Vec<ProviderRecord<S>>, AppError> {
        let client = self.pool().get().await?;
        Ok(repo::list::<S>(&client, self.ring(), tenant.organization_id).await?)
    }

    pub async fn provider<S: ProviderSpec>(
        &self,
        tenant: Tenant,
        id: ProviderId,
    ) -> Result<ProviderRecord<S>, AppError> {
        let client = self.pool().get().await?;
        repo::get::<S>(&client, self.ring(), tenant.organization_id, id, false)
            .await
            .map_err(not_found("provider"))
    }

    /// Creates a connection from its spec (the channel's fields, camelCase),
    /// within the organization's connection cap.
    pub async fn create_provider<S: ProviderSpec>(
        &self,
        tenant: Tenant,
        body: Map<String, Value>,
    ) -> Result<ProviderRecord<S>, AppError> {
        let spec: S = provider::from_object(body)?;
        let id = ProviderId::new();
        let mut client = self.pool().get().await?;
        let tx = client.transaction().await?;
        // Under the organization's lock, so concurrent creates cannot pass the cap together.
        let live = repo::lock_and_count_live(&tx, tenant.organization_id).await?;
        let limit = self.inner.config.max_providers_per_org;
        if live >= i64::from(limit) {
            return Err(AppError::conflict(
                "provider_limit_reached",
                format!(
                    "this organization has {live} provider connections, the most allowed is \
                     {limit}; delete one first"
                ),
            ));
        }
        let record = repo::insert(&tx, self.ring(), tenant.organization_id, id, &spec).await?;
        let fields = provider::field_names(&spec);
        audit(
            &tx,
            tenant,
            "provider.create",
            id,
            &spec,
            &fields,
            json!({}),
        )
        .await?;
        tx.commit().await?;
        self.provider_changed(tenant, None).await;
        Ok(record)
    }

    /// Applies a JSON merge patch (RFC 7396): fields left out keep their
    /// value (secrets included), `null` clears an optional field, and the
    /// merged result is validated like a create. A patch that moves where
    /// credentials are sent must carry them again.
    pub async fn update_provider<S: ProviderSpec>(
        &self,
        tenant: Tenant,
        id: ProviderId,
        patch: Map<String, Value>,
    ) -> Result<ProviderRecord<S>, AppError> {
        let org = tenant.organization_id;
        let mut client = self.pool().get().await?;
        let tx = client.transaction().await?;
        let before = repo::get::<S>(&tx, self.ring(), org, id, true)
            .await
            .map_err(not_found("provider"))?;
        let mut merged = provider::to_object(&before.spec);
        provider::merge_patch(&mut merged, &patch);
        let after: S = provider::from_object(merged)?;
        // A stored key is never presented to a host the key holder did not enter it for.
        provider::check_destination_change(&before.spec, &after, &patch)?;
        let changed = provider::changed_fields(&before.spec, &after);
        if changed.is_empty() {
            return Ok(before);
        }
        let record = repo::update(&tx, self.ring(), org, id, &after).await?;
        audit(
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
        self.provider_changed(tenant, Some(id)).await;
        Ok(record)
    }

    pub async fn delete_provider<S: ProviderSpec>(
        &self,
        tenant: Tenant,
        id: ProviderId,
    ) -> Result<(), AppError> {
        let org = tenant.organization_id;
        let mut client = self.pool().get().await?;
        let tx = client.transaction().await?;
        let record = repo::get::<S>(&tx, self.ring(), org, id, true)
            .await
            .map_err(not_found("provider"))?;
        repo::delete::<S>(&tx, org, id).await?;
        audit(
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
        self.provider_changed(tenant, Some(id)).await;
        Ok(())
    }

    /// Checks the connection's configuration, then makes a live,
    /// side-effect-free call to its provider. No database connection is held
    /// while the provider is called.
    pub async fn test_provider<S: ProviderSpec>(
        &self,
        tenant: Tenant,
        id: ProviderId,
    ) -> Result<TestReport, AppError> {
        let record = self.provider::<S>(tenant, id).await?;
        let mut report = self
            .inner
            .probes
            .test(&record.spec.clone().into_any())
            .await;
        // A probe's message can carry the provider's own text: untrusted.
        for check in &mut report.checks {
            check.message = clean_untrusted(&check.message, MAX_PROBE_TEXT_CHARS);
        }
        let client = self.pool().get().await?;
        let outcome = json!({"ok": report.ok});
        audit(
            &client,
            tenant,
            "provider.test",
            id,
            &record.spec,
            &[],
            outcome,
        )
        .await?;
        Ok(report)
    }
}
