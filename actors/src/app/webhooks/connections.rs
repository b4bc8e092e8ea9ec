//! The connections behind webhook URLs, cached for a few seconds: at
//! thousands of callbacks a second a database query and a decryption per
//! webhook was a second round trip each.

use std::sync::Arc;
use std::time::{Duration, Instant};

use dashmap::DashMap;
use msgengine_domain::provider::{
    AnyProviderSpec, EmailProviderSpec, ProviderSpec, SmsProviderSpec, WhatsappProviderSpec,
};
use msgengine_domain::{Channel, OrganizationId, ProviderId};
use msgengine_storage::crypto::KeyRing;
use msgengine_storage::repo::providers::get_for_webhook;
use msgengine_storage::repo::GenericClient;
use msgengine_storage::StoreError;

/// Connections behind webhook URLs, kept for [`WebhookConnections::TTL`]. A
/// change through this node's use cases evicts its entry at once; a change
/// made through another node is seen within the TTL.
#[derive(Default)]
pub struct WebhookConnections {
    entries: DashMap<(Channel, ProviderId), Cached>,
}

struct Cached {
    org: OrganizationId,
    spec: Arc<AnyProviderSpec>,
    at: Instant,
}

impl WebhookConnections {
    /// How long a cached connection is used without asking the database.
    pub const TTL: Duration = Duration::from_secs(5);

    pub(crate) fn get(
        &self,
        channel: Channel,
        id: ProviderId,
    ) -> Option<(OrganizationId, Arc<AnyProviderSpec>)> {
        let entry = self.entries.get(&(channel, id))?;
        (entry.at.elapsed() < Self::TTL).then(|| (entry.org, entry.spec.clone()))
    }

    pub(crate) fn put(
        &self,
        channel: Channel,
        id: ProviderId,
        org: OrganizationId,
        spec: AnyProviderSpec,
    ) -> (OrganizationId, Arc<AnyProviderSpec>) {
        let spec = Arc::new(spec);
        self.entries.insert(
            (channel, id),
            Cached {
                org,
                spec: spec.clone(),
                at: Instant::now(),
            },
        );
        (org, spec)
    }

    /// Evicts a connection that was changed or deleted.
    pub fn forget(&self, id: ProviderId) {
        self.entries.retain(|(_, cached), _| *cached != id);
    }
}

/// The connection `id` of `channel`, any organization, from the database.
pub(crate) async fn load(
    client: &impl GenericClient,
    ring: &KeyRing,
    channel: Channel,
    id: ProviderId,
) -> Result<(OrganizationId, AnyProviderSpec), StoreError> {
    async fn one<S: ProviderSpec>(
        client: &impl GenericClient,
        ring: &KeyRing,
        id: ProviderId,
    ) -> Result<(OrganizationId, AnyProviderSpec), StoreError> {
        let record = get_for_webhook::<S>(client, ring, id).await?;
        Ok((record.organization_id, record.spec.into_any()))
    }
    match channel {
        Channel::Email => one::<EmailProviderSpec>(client, ring, id).await,
        Channel::Sms => one::<SmsProviderSpec>(client, ring, id).await,
        Channel::Whatsapp => one::<WhatsappProviderSpec>(client, ring, id).await,
    }
}
