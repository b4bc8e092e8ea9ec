//! The operator's use cases: organizations, their API keys and their
//! admission rate.

use msgengine_domain::{validate, ApiKeyId, OrganizationId, Secret, ValidationError};
use msgengine_storage::repo::api_keys::{self, NewApiKey};
use msgengine_storage::repo::{messages, organizations};
use serde_json::json;

pub use msgengine_storage::repo::api_keys::ApiKey;
pub use msgengine_storage::repo::organizations::Organization;

use super::audit::Record;
use super::error::not_found;
use super::{App, AppError};

/// A page of organizations, by id.
pub struct OrganizationPage {
    pub organizations: Vec<Organization>,
    /// Pass as `after` for the next page; `None` on the last.
    pub next_after: Option<OrganizationId>,
}

/// A key just issued: `key` is shown this once and never again.
pub struct IssuedApiKey {
    pub record: ApiKey,
    pub key: Secret,
}

/// An organization's admission rate.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RateLimit {
    pub messages_per_second: i32,
    pub burst: i32,
}

impl RateLimit {
    const RANGE: std::ops::RangeInclusive<i32> = 1..=1_000_000;

    /// Checks the numbers; `burst` defaults to the rate, and at least 1,000
    /// so a full batch is admitted.
    pub fn new(messages_per_second: i32, burst: Option<i32>) -> Result<Self, ValidationError> {
        if !Self::RANGE.contains(&messages_per_second) {
            return Err(ValidationError::new(
                "messagesPerSecond",
                "out_of_range",
                "messagesPerSecond must be between 1 and 1000000",
            ));
        }
        let burst = burst.unwrap_or(messages_per_second.max(1000));
        if !Self::RANGE.contains(&burst) {
            return Err(ValidationError::new(
                "burst",
                "out_of_range",
                "burst must be between 1 and 1000000",
            ));
        }
        Ok(Self {
            messages_per_second,
            burst,
        })
    }
}

impl App {
    pub async fn create_organization(&self, name: &str) -> Result<Organization, AppError> {
        let name = name.trim();
        validate::text("name", name, 200)?;
        let client = self.pool().get().await?;
        Ok(organizations::insert(&client, OrganizationId::new(), name).await?)
    }

    pub async fn list_organizations(
        &self,
        after: Option<OrganizationId>,
        limit: i64,
    ) -> Result<OrganizationPage, AppError> {
        let client = self.pool().get().await?;
        let organizations = organizations::list(&client, after, limit).await?;
        let next_after = (organizations.len() as i64 == limit)
            .then(|| organizations.last().map(|o| o.id))
            .flatten();
        Ok(OrganizationPage {
            organizations,
            next_after,
        })
    }

    pub async fn organization(&self, id: OrganizationId) -> Result<Organization, AppError> {
        let client = self.pool().get().await?;
        organizations::get(&client, id)
            .await
            .map_err(not_found("organization"))
    }

    /// Disables or enables an organization. Disabled: its keys stop working
    /// and its sends stop at once: its unfinished messages are parked out of
    /// the scheduler's way (in the same transaction), this node's provider
    /// actors hand its waiting jobs back to the database, and nothing of it
    /// is dispatched or claimed until it is enabled again. Enabled: its
    /// parked messages are due again (scheduled ones at their `sendAt`).
    pub async fn set_organization_active(
        &self,
        id: OrganizationId,
        active: bool,
    ) -> Result<Organization, AppError> {
        let mut client = self.pool().get().await?;
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
        let action = if active {
            "organization.enable"
        } else {
            "organization.disable"
        };
        let changed = ["isActive".to_owned()];
        Record::by_admin(id, action, "organization")
            .target(id.0)
            .changed(&changed)
            .append(&tx)
            .await?;
        tx.commit().await?;
        if !active {
            self.inner.auth.forget_organization(id);
        }
        self.engine().organization_changed(id, active);
        Ok(org)
    }

    /// Issues a key for an active organization.
    pub async fn issue_api_key(
        &self,
        org: OrganizationId,
        name: Option<&str>,
    ) -> Result<IssuedApiKey, AppError> {
        let name = name.unwrap_or_default().trim();
        validate::opt_text("name", (!name.is_empty()).then_some(name), 100)?;
        let issued = super::auth::issue_key();
        let mut client = self.pool().get().await?;
        let tx = client.transaction().await?;
        let found = organizations::get(&tx, org)
            .await
            .map_err(not_found("organization"))?;
        if !found.is_active {
            return Err(AppError::conflict(
                "organization_disabled",
                "the organization is disabled; its keys cannot be used",
            ));
        }
        let new = NewApiKey {
            id: ApiKeyId::new(),
            organization_id: org,
            name,
            prefix: &issued.prefix,
            key_hash: &issued.hash,
        };
        let record = api_keys::insert(&tx, &new).await?;
        Record::by_admin(org, "api_key.issue", "api_key")
            .target(record.id.0)
            .details(json!({"prefix": record.prefix}))
            .append(&tx)
            .await?;
        tx.commit().await?;
        Ok(IssuedApiKey {
            record,
            key: issued.key,
        })
    }

    pub async fn api_keys(&self, org: OrganizationId) -> Result<Vec<ApiKey>, AppError> {
        let client = self.pool().get().await?;
        organizations::get(&client, org)
            .await
            .map_err(not_found("organization"))?;
        Ok(api_keys::list(&client, org).await?)
    }

    /// Revokes a key; this node stops accepting it at once.
    pub async fn revoke_api_key(&self, org: OrganizationId, key: ApiKeyId) -> Result<(), AppError> {
        let mut client = self.pool().get().await?;
        let tx = client.transaction().await?;
        let revoked = api_keys::revoke(&tx, org, key)
            .await
            .map_err(not_found("API key"))?;
        let changed = ["revokedAt".to_owned()];
        Record::by_admin(org, "api_key.revoke", "api_key")
            .target(revoked.id.0)
            .changed(&changed)
            .details(json!({"prefix": revoked.prefix}))
            .append(&tx)
            .await?;
        tx.commit().await?;
        self.inner.auth.forget_key(key);
        Ok(())
    }

    /// Sets an organization's admission rate, effective at once.
    pub async fn set_rate_limit(
        &self,
        org: OrganizationId,
        limit: RateLimit,
    ) -> Result<(), AppError> {
        let mut client = self.pool().get().await?;
        let tx = client.transaction().await?;
        organizations::set_rate_limit(&tx, org, limit.messages_per_second, limit.burst)
            .await
            .map_err(not_found("organization"))?;
        let changed = ["burst".to_owned(), "messagesPerSecond".to_owned()];
        Record::by_admin(org, "organization.rate_limit", "organization")
            .target(org.0)
            .changed(&changed)
            .details(json!({"messagesPerSecond": limit.messages_per_second, "burst": limit.burst}))
            .append(&tx)
            .await?;
        tx.commit().await?;
        self.engine().limits_changed(org).await;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rate_limits_are_checked_and_burst_defaults_to_a_full_batch() {
        assert_eq!(
            RateLimit::new(10, None),
            Ok(RateLimit {
                messages_per_second: 10,
                burst: 1000
            })
        );
        assert_eq!(RateLimit::new(5000, None).map(|l| l.burst), Ok(5000));
        assert_eq!(RateLimit::new(5000, Some(7)).map(|l| l.burst), Ok(7));
        assert_eq!(
            RateLimit::new(0, None).map_err(|e| e.field),
            Err("messagesPerSecond".to_owned())
        );
        assert_eq!(
            RateLimit::new(1, Some(1_000_001)).map_err(|e| e.field),
            Err("burst".to_owned())
        );
    }
}
