//! The organization's suppression list. Bounces, complaints and unsubscribes
//! reported by providers add to it on their own (webhook ingest); these use
//! cases list, add and remove entries, and keep this node's in-memory list
//! (checked at accept) in step with each committed change.

use msgengine_domain::validate::{self as v, ValidationError};

use msgengine_storage::repo::suppressions;
pub use msgengine_storage::repo::suppressions::Suppression;
use serde_json::json;

use super::audit::Record;
use super::{App, AppError, Tenant};
use crate::state::suppress::normalize;

/// Why a recipient is suppressed.
pub const REASONS: [&str; 4] = ["bounce", "complaint", "unsubscribe", "manual"];

/// Longest cursor (a recipient) accepted.
const MAX_CURSOR_CHARS: usize = 320;

/// A page of suppressions, by recipient.
pub struct SuppressionPage {
    pub suppressions: Vec<Suppression>,
    /// Pass as `after` for the next page; `None` on the last.
    pub next_after: Option<String>,
}

/// What to add.
pub struct NewSuppression<'a> {
    pub recipient: &'a str,
    /// One of [`REASONS`]; `manual` when absent.
    pub reason: Option<&'a str>,
    pub note: Option<&'a str>,
}

/// An email address or E.164 number, normalised; a validation error naming `field` otherwise.
pub fn recipient(field: &str, raw: &str) -> Result<String, ValidationError> {
    let raw = raw.trim();
    if raw.contains('@') {
        v::email(field, raw)?;
        Ok(normalize(raw))
    } else {
        v::e164(field, raw)
    }
}

impl App {
    pub async fn suppressions(
        &self,
        tenant: Tenant,
        after: Option<&str>,
        limit: i64,
    ) -> Result<SuppressionPage, AppError> {
        // The cursor is a recipient: bounded, and never a NUL (PostgreSQL refuses it in text).
        if let Some(after) = after {
            if after.chars().count() > MAX_CURSOR_CHARS || after.contains(char::is_control) {
                return Err(AppError::bad_request(
                    "invalid_query",
                    "after must be the nextAfter of the previous page",
                )
                .with_field("after"));
            }
        }
        let client = self.pool().get().await?;
        let page = suppressions::list(&client, tenant.organization_id, after, limit).await?;
        let next_after = (page.len() as i64 == limit)
            .then(|| page.last().map(|s| s.recipient.clone()))
            .flatten();
        Ok(SuppressionPage {
            suppressions: page,
            next_after,
        })
    }

    /// Adds a recipient; `true` with the entry when it was not there before.
    pub async fn add_suppression(
        &self,
        tenant: Tenant,
        new: NewSuppression<'_>,
    ) -> Result<(Suppression, bool), AppError> {
        let recipient = recipient("recipient", new.recipient)?;
        let reason = new.reason.unwrap_or("manual");
        if !REASONS.contains(&reason) {
            return Err(ValidationError::new(
                "reason",
                "invalid_reason",
                "reason is one of bounce, complaint, unsubscribe, manual",
            )
            .into());
        }
        if let Some(note) = new.note {
            v::text("note", note, 500)?;
        }
        let org = tenant.organization_id;
        let mut client = self.pool().get().await?;
        let tx = client.transaction().await?;
        let (stored, fresh) =
            suppressions::add(&tx, org, &recipient, reason, None, new.note).await?;
        if fresh {
            Record::by_tenant(tenant, "suppression.add", "suppression")
                .details(json!({"reason": reason}))
                .append(&tx)
                .await?;
        }
        tx.commit().await?;
        self.engine()
            .suppressions()
            .add(org, &stored.recipient, &stored.reason);
        Ok((stored, fresh))
    }

    /// One entry; a recipient that is not a valid address is simply not found.
    pub async fn suppression(&self, tenant: Tenant, raw: &str) -> Result<Suppression, AppError> {
        let recipient =
            recipient("recipient", raw).map_err(|_| AppError::not_found("suppression"))?;
        let client = self.pool().get().await?;
        suppressions::get(&client, tenant.organization_id, &recipient)
            .await?
            .ok_or_else(|| AppError::not_found("suppression"))
    }

    pub async fn remove_suppression(&self, tenant: Tenant, raw: &str) -> Result<(), AppError> {
        let recipient =
            recipient("recipient", raw).map_err(|_| AppError::not_found("suppression"))?;
        let org = tenant.organization_id;
        let mut client = self.pool().get().await?;
        let tx = client.transaction().await?;
        if !suppressions::remove(&tx, org, &recipient).await? {
            return Err(AppError::not_found("suppression"));
        }
        Record::by_tenant(tenant, "suppression.remove", "suppression")
            .append(&tx)
            .await?;
        tx.commit().await?;
        self.engine().suppressions().remove(org, &recipient);
        Ok(())
    }
}
