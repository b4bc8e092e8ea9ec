//! The organization's own webhook endpoint, which receives its messages'
//! status events (delivered by [`crate::outbound`], signed with the
//! endpoint's secret). The secret is sealed under the key ring and never
//! read back: a create without one generates `whsec_…`, returned once.

use base64::Engine as _;
use chrono::Utc;
use msgengine_domain::message::MessageState;
use msgengine_domain::validate::{self as v, ValidationError};
use msgengine_storage::repo::org_webhooks::{self, EndpointChange};
use rand::RngCore;
use serde_json::json;

pub use msgengine_storage::repo::org_webhooks::Endpoint;

use super::audit::Record;
use super::{App, AppError, Tenant};
use crate::outbound::Targets;

/// The endpoint wanted.
pub struct EndpointSpec<'a> {
    pub url: &'a str,
    /// At least 16 characters; absent on create: one is generated.
    pub secret: Option<&'a str>,
    /// Default true.
    pub enabled: Option<bool>,
    /// Message states to receive; `None`: every state.
    pub events: Option<&'a [String]>,
}

/// The endpoint stored by a put.
pub struct PutEndpoint {
    pub endpoint: Endpoint,
    /// Whether it was created (not replaced).
    pub created: bool,
    /// The secret generated for it, shown this once.
    pub generated_secret: Option<String>,
}

/// A fresh signing secret: `whsec_` + 43 base64url characters (256 bits).
fn generate_secret() -> String {
    let mut random = [0u8; 32];
    rand::rngs::OsRng.fill_bytes(&mut random);
    format!(
        "whsec_{}",
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(random)
    )
}

fn validate(spec: &EndpointSpec<'_>, targets: Targets) -> Result<(), ValidationError> {
    v::http_url("url", spec.url)?;
    if targets.refuses_literal(spec.url) {
        return Err(ValidationError::new(
            "url",
            "private_address",
            "url points at a private, loopback or link-local address; webhook endpoints must be reachable on the public internet",
        ));
    }
    if let Some(secret) = spec.secret {
        v::secret("secret", secret)?;
        if secret.chars().count() < 16 {
            return Err(ValidationError::new(
                "secret",
                "invalid_secret",
                "secret must be at least 16 characters",
            ));
        }
    }
    for (i, state) in spec.events.unwrap_or_default().iter().enumerate() {
        if state.parse::<MessageState>().is_err() {
            return Err(ValidationError::new(
                format!("events[{i}]"),
                "invalid_event",
                "events lists message states (queued, sending, sent, delivered, read, failed, bounced, rejected, expired, …)",
            ));
        }
    }
    Ok(())
}

impl App {
    /// Creates or replaces the endpoint.
    pub async fn put_endpoint(
        &self,
        tenant: Tenant,
        spec: EndpointSpec<'_>,
    ) -> Result<PutEndpoint, AppError> {
        validate(&spec, self.engine().webhook_targets())?;
        let org = tenant.organization_id;
        let mut client = self.pool().get().await?;
        let tx = client.transaction().await?;
        let exists = org_webhooks::get(&tx, org).await?.is_some();
        let generated_secret = (!exists && spec.secret.is_none()).then(generate_secret);
        let change = EndpointChange {
            url: spec.url,
            secret: spec.secret.or(generated_secret.as_deref()),
            enabled: spec.enabled.unwrap_or(true),
            events: spec.events,
        };
        let (endpoint, created) = org_webhooks::put(&tx, self.ring(), org, &change).await?;
        let action = if created {
            "webhook_endpoint.create"
        } else {
            "webhook_endpoint.update"
        };
        Record::by_tenant(tenant, action, "webhook_endpoint")
            .append(&tx)
            .await?;
        tx.commit().await?;
        Ok(PutEndpoint {
            endpoint,
            created,
            generated_secret,
        })
    }

    pub async fn endpoint(&self, tenant: Tenant) -> Result<Endpoint, AppError> {
        let client = self.pool().get().await?;
        org_webhooks::get(&client, tenant.organization_id)
            .await?
            .ok_or_else(|| AppError::not_found("webhook endpoint"))
    }

    /// Removes the endpoint with its pending deliveries.
    pub async fn delete_endpoint(&self, tenant: Tenant) -> Result<(), AppError> {
        let mut client = self.pool().get().await?;
        let tx = client.transaction().await?;
        if !org_webhooks::delete(&tx, tenant.organization_id).await? {
            return Err(AppError::not_found("webhook endpoint"));
        }
        Record::by_tenant(tenant, "webhook_endpoint.delete", "webhook_endpoint")
            .append(&tx)
            .await?;
        tx.commit().await?;
        Ok(())
    }

    /// Queues a `test` event for the endpoint; its id.
    pub async fn test_endpoint(&self, tenant: Tenant) -> Result<uuid::Uuid, AppError> {
        let event_id = uuid::Uuid::new_v4();
        let payload = json!({
            "id": event_id,
            "type": "test",
            "messageId": null,
            "status": null,
            "providerId": null,
            "providerMessageId": null,
            "metadata": null,
            "occurredAt": Utc::now(),
            "reason": "test event requested through the API",
        });
        let client = self.pool().get().await?;
        if !org_webhooks::enqueue(&client, tenant.organization_id, event_id, &payload).await? {
            return Err(AppError::not_found("webhook endpoint"));
        }
        Ok(event_id)
    }
}
