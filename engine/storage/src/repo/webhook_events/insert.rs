//! Recording events once: one multi-row insert, replays do nothing.

use std::collections::{HashMap, HashSet};

use msgengine_domain::message::MessageState;
use uuid::Uuid;

use super::IngestJob;
use crate::error::StoreError;

/// Inserts every event (replays do nothing) and returns the ids of those
/// that were new, per provider.
pub(super) async fn insert_events(
    tx: &deadpool_postgres::Transaction<'_>,
    jobs: &[IngestJob<'_>],
    total: usize,
) -> Result<HashMap<Uuid, HashSet<String>>, StoreError> {
    let stmt = tx
        .prepare_cached(
            "INSERT INTO webhook_events (provider_id, event_id, organization_id, provider_message_id,
                                         message_id, state, engagement, raw_status, recipient,
                                         error_code, reason, suppress, occurred_at, closed_at)
             SELECT u.*, CASE WHEN u.pmid IS NULL AND u.mid IS NULL THEN now() END
               FROM unnest($1::uuid[], $2::text[], $3::uuid[], $4::text[], $5::uuid[],
                           $6::text[], $7::text[], $8::text[], $9::text[], $10::text[],
                           $11::text[], $12::text[], $13::timestamptz[])
                    AS u(provider, event, org, pmid, mid, state, engagement, raw, recipient,
                         code, reason, suppress, occurred)
             ON CONFLICT (provider_id, event_id) DO NOTHING
             RETURNING provider_id, event_id",
        )
        .await?;
    let mut providers = Vec::with_capacity(total);
    let mut event_ids = Vec::with_capacity(total);
    let mut orgs = Vec::with_capacity(total);
    let mut pmids = Vec::with_capacity(total);
    let mut message_ids = Vec::with_capacity(total);
    let mut states = Vec::with_capacity(total);
    let mut engagements = Vec::with_capacity(total);
    let mut raw = Vec::with_capacity(total);
    let mut recipients = Vec::with_capacity(total);
    let mut codes = Vec::with_capacity(total);
    let mut reasons = Vec::with_capacity(total);
    let mut suppress = Vec::with_capacity(total);
    let mut occurred = Vec::with_capacity(total);
    for job in jobs {
        for e in job.events {
            providers.push(job.provider.0);
            event_ids.push(e.event_id.as_str());
            orgs.push(job.org.0);
            pmids.push(e.provider_message_id.as_deref());
            message_ids.push(e.message_id);
            states.push(e.state.map(MessageState::as_str));
            engagements.push(e.engagement.as_deref());
            raw.push(e.raw_status.as_str());
            recipients.push(e.recipient.as_deref());
            codes.push(e.error_code.as_deref());
            reasons.push(e.reason.as_deref());
            suppress.push(e.suppress.as_deref());
            occurred.push(e.occurred_at);
        }
    }
    let rows = tx
        .query(
            &stmt,
            &[
                &providers,
                &event_ids,
                &orgs,
                &pmids,
                &message_ids,
                &states,
                &engagements,
                &raw,
                &recipients,
                &codes,
                &reasons,
                &suppress,
                &occurred,
            ],
        )
        .await?;
    let mut fresh: HashMap<Uuid, HashSet<String>> = HashMap::new();
    for row in &rows {
        fresh
            .entry(row.try_get(0)?)
            .or_default()
            .insert(row.try_get(1)?);
    }
    Ok(fresh)
}
