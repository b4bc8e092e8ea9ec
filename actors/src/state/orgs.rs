//! Which organizations are active, as dispatch sees it.
//!
//! A disabled organization's messages must stop at once, including those
//! already claimed or waiting in a provider actor, so dispatch and the
//! provider actors check this view before every hand-over and attempt (a
//! dashmap lookup). It is filled when an organization's routes load, set by
//! this node's disable/enable use case ([`crate::Engine::organization_changed`])
//! and refreshed from the database every few seconds by the scheduler, so a
//! change made through another node arrives too. An organization not in the
//! view counts as active: dispatch loads its routes (and its flag) first.

use std::sync::Arc;

use dashmap::DashMap;
use msgengine_domain::OrganizationId;
use msgengine_storage::driver::deadpool_postgres::Pool;
use msgengine_storage::repo::organizations;
use msgengine_storage::StoreError;

/// The organizations' active flags this node knows.
#[derive(Clone, Default)]
pub struct ActiveOrgs {
    flags: Arc<DashMap<OrganizationId, bool>>,
}

impl ActiveOrgs {
    /// Whether `org` may send (true when unknown).
    pub fn is_active(&self, org: OrganizationId) -> bool {
        self.flags.get(&org).map(|f| *f).unwrap_or(true)
    }

    /// Records `org`'s flag.
    pub fn set(&self, org: OrganizationId, active: bool) {
        self.flags.insert(org, active);
    }

    /// Reads the flag of every organization in the view again.
    pub async fn refresh(&self, pool: &Pool) -> Result<(), StoreError> {
        let ids: Vec<uuid::Uuid> = self.flags.iter().map(|e| e.key().0).collect();
        if ids.is_empty() {
            return Ok(());
        }
        let client = pool.get().await?;
        for (org, active) in organizations::active_flags(&client, &ids).await? {
            self.flags.insert(org, active);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unknown_organizations_count_as_active_until_told() {
        let orgs = ActiveOrgs::default();
        let org = OrganizationId::new();
        assert!(orgs.is_active(org));
        orgs.set(org, false);
        assert!(!orgs.is_active(org));
        orgs.set(org, true);
        assert!(orgs.is_active(org));
    }
}
