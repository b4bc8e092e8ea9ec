//! The organizations' suppression lists, held in memory for the accept path
//! and for dispatch, which checks again before a job reaches a provider
//! actor (a scheduled message or a retry may wait while a recipient opts out).
//!
//! Checking every recipient against PostgreSQL would add a query to every
//! send request; the list is instead loaded once per organization (on its
//! first send), kept up to date by this node's own changes (the API and
//! inbound webhooks go through [`Suppressions::add`] / [`Suppressions::remove`])
//! and reloaded every [`RELOAD_AFTER`] so another node's additions arrive
//! too. A recipient is normalised before it is stored or looked up.

use std::collections::HashMap;
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use dashmap::DashMap;
use msgengine_domain::{Channel, OrganizationId};
use msgengine_storage::driver::deadpool_postgres::Pool;
use msgengine_storage::repo::suppressions;
use msgengine_storage::StoreError;

/// How long a loaded list is trusted before it is read again.
pub const RELOAD_AFTER: Duration = Duration::from_secs(60);

/// The key a recipient is suppressed under: a lower-case email address, or
/// an E.164 number (`+` and digits).
pub fn normalize(recipient: &str) -> String {
    let r = recipient.trim();
    if r.contains('@') {
        return r.to_lowercase();
    }
    let digits: String = r.chars().filter(char::is_ascii_digit).collect();
    if digits.is_empty() {
        return r.to_owned();
    }
    format!("+{digits}")
}

/// Whether `recipient` can be a suppression key for `channel`.
pub fn fits_channel(channel: Channel, normalized: &str) -> bool {
    match channel {
        Channel::Email => normalized.contains('@'),
        Channel::Sms | Channel::Whatsapp => normalized.starts_with('+'),
    }
}

struct OrgList {
    reasons: RwLock<HashMap<String, String>>,
    loaded: RwLock<Instant>,
}

/// Every organization's list this node has loaded.
#[derive(Clone, Default)]
pub struct Suppressions {
    lists: Arc<DashMap<OrganizationId, Arc<OrgList>>>,
}

impl Suppressions {
    async fn list(&self, pool: &Pool, org: OrganizationId) -> Result<Arc<OrgList>, StoreError> {
        if let Some(list) = self.lists.get(&org).map(|l| Arc::clone(&l)) {
            let fresh = list
                .loaded
                .read()
                .map(|at| at.elapsed() < RELOAD_AFTER)
                .unwrap_or(false);
            if fresh {
                return Ok(list);
            }
        }
        let client = pool.get().await?;
        let rows = suppressions::all_recipients(&client, org).await?;
        let list = Arc::new(OrgList {
            reasons: RwLock::new(rows.into_iter().collect()),
            loaded: RwLock::new(Instant::now()),
        });
        self.lists.insert(org, Arc::clone(&list));
        Ok(list)
    }

    /// The reason each of `recipients` is suppressed (`None` when it is not),
    /// in order; `None` at all (nothing allocated) when the organization's
    /// list is empty, the common case.
    pub async fn check(
        &self,
        pool: &Pool,
        org: OrganizationId,
        recipients: impl Iterator<Item = &str>,
    ) -> Result<Option<Vec<Option<String>>>, StoreError> {
        let list = self.list(pool, org).await?;
        let reasons = match list.reasons.read() {
            Ok(r) => r,
            Err(poisoned) => poisoned.into_inner(),
        };
        if reasons.is_empty() {
            return Ok(None);
        }
        Ok(Some(
            recipients
                .map(|r| reasons.get(&normalize(r)).cloned())
                .collect(),
        ))
    }

    /// Records a suppression made on this node (already stored).
    pub fn add(&self, org: OrganizationId, recipient: &str, reason: &str) {
        if let Some(list) = self.lists.get(&org) {
            if let Ok(mut reasons) = list.reasons.write() {
                reasons.insert(normalize(recipient), reason.to_owned());
            }
        }
    }

    /// Records a removal made on this node (already stored).
    pub fn remove(&self, org: OrganizationId, recipient: &str) {
        if let Some(list) = self.lists.get(&org) {
            if let Ok(mut reasons) = list.reasons.write() {
                reasons.remove(&normalize(recipient));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn normalizes_emails_and_numbers() {
        assert_eq!(normalize(" Alice@Example.COM "), "alice@example.com");
        assert_eq!(normalize("+234 803 123 4567"), "+2348031234567");
        assert_eq!(normalize("2348031234567"), "+2348031234567");
        assert_eq!(normalize("whatsapp:+2348031234567"), "+2348031234567");
        assert!(fits_channel(Channel::Email, "a@b.c"));
        assert!(fits_channel(Channel::Sms, "+1"));
        assert!(!fits_channel(Channel::Whatsapp, "a@b.c"));
    }
}
