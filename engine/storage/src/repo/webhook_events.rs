//! Provider events received through verified webhooks: recorded once
//! (replays change nothing), applied to their message as the domain's
//! lifecycle decides (`lifecycle::merge_reports`: the state a group reaches,
//! never backwards, and the history entries), and kept until matched when
//! the message is not known yet.
//!
//! Late matching is fair between organizations and bounded: each round
//! ([`retry_unmatched`]) visits the organizations with open events in random
//! order and takes at most a quota of each one's newest, within a total; an
//! event still unmatched after the matching window is closed (`closed_at`)
//! and leaves the scan, and an event that names no message at all (an
//! opt-out reply) is closed as it is recorded. Suppressions an event asks for
//! do not depend on a match: the webhook writer adds them with the events.

use std::collections::{HashMap, HashSet};

use chrono::{DateTime, Utc};
use deadpool_postgres::GenericClient;
use msgengine_domain::lifecycle::{merge_reports, ProviderReport};
use msgengine_domain::message::{MessageEvent, MessageState};
use msgengine_domain::{OrganizationId, ProviderId};
use tokio_postgres::types::Json;
use uuid::Uuid;

use crate::error::StoreError;

/// One event to record (the storage shape of the providers crate's
/// `WebhookEvent`).
#[derive(Debug, Clone, PartialEq)]
pub struct EventRow {
    pub event_id: String,
    pub provider_message_id: Option<String>,
    pub message_id: Option<Uuid>,
    pub state: Option<MessageState>,
    /// `opened`, `clicked`, `complained`, `unsubscribed`, `deferred`.
    pub engagement: Option<String>,
    pub raw_status: String,
    pub recipient: Option<String>,
    pub error_code: Option<String>,
    pub reason: Option<String>,
    /// `bounce`, `complaint`, `unsubscribe`.
    pub suppress: Option<String>,
    pub occurred_at: DateTime<Utc>,
}

impl EventRow {
    /// The event as the lifecycle reads a provider's report.
    pub fn report(&self) -> ProviderReport<'_> {
        ProviderReport {
            state: self.state,
            engagement: self.engagement.as_deref(),
            raw_status: &self.raw_status,
            reason: self.reason.as_deref(),
            error_code: self.error_code.as_deref(),
            occurred_at: self.occurred_at,
        }
    }
}

/// A message's state as an applied event group found and left it (for metrics).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Transition {
    pub message_id: Uuid,
    pub from: MessageState,
    pub to: MessageState,
}

/// What one ingest did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Ingested {
    /// Events seen for the first time.
    pub recorded: usize,
    /// Events already recorded (replays): nothing changed.
    pub duplicates: usize,
    /// New events applied to a message.
    pub applied: usize,
    /// New events whose message is not known (yet): kept for later.
    pub unmatched: usize,
    /// The state of each message the new events were applied to, before and after.
    pub transitions: Vec<Transition>,
}

/// One webhook request's events, for [`ingest_many`].
#[derive(Debug, Clone, Copy)]
pub struct IngestJob<'a> {
    pub org: OrganizationId,
    pub provider: ProviderId,
    pub events: &'a [EventRow],
}

/// Records `events` of one provider connection and applies the new ones, in
/// the caller's transaction.
pub async fn ingest(
    tx: &deadpool_postgres::Transaction<'_>,
    org: OrganizationId,
    provider: ProviderId,
    events: &[EventRow],
) -> Result<Ingested, StoreError> {
    let mut out = ingest_many(
        tx,
        &[IngestJob {
            org,
            provider,
            events,
        }],
    )
    .await?;
    Ok(out.pop().unwrap_or_default())
}

/// Records the events of many webhook requests and applies the new ones, in
/// the caller's transaction, with a fixed number of statements whatever the
/// number of requests and events (one multi-row insert, one update per kind
/// of message reference, one mark, one outbound enqueue). The answer has one
/// [`Ingested`] per job, in order. An event that appears twice (a replay, or
/// the same event in two requests of the group) counts as new for the first
/// job that carries it and as a duplicate for the others.
pub async fn ingest_many(
    tx: &deadpool_postgres::Transaction<'_>,
    jobs: &[IngestJob<'_>],
) -> Result<Vec<Ingested>, StoreError> {
    let mut out = vec![Ingested::default(); jobs.len()];
    let total: usize = jobs.iter().map(|j| j.events.len()).sum();
    if total == 0 {
        return Ok(out);
    }
    // Claimed by the first job that carries them.
    let mut unclaimed = insert_events(tx, jobs, total).await?;
    let mut fresh: Vec<Fresh<'_>> = Vec::with_capacity(total);
    for (job_index, job) in jobs.iter().enumerate() {
        for e in job.events {
            let new = unclaimed
                .get_mut(&job.provider.0)
                .is_some_and(|ids| ids.remove(e.event_id.as_str()));
            if new {
                fresh.push(Fresh {
                    job: job_index,
                    org: job.org,
                    provider: job.provider,
                    event: e,
                });
                out[job_index].recorded += 1;
            } else {
                out[job_index].duplicates += 1;
            }
        }
    }
    let applied = apply(tx, &fresh).await?;
    for (group, transition) in applied {
        let first = group.first().map_or(0, |f| f.job);
        out[first].transitions.push(transition);
        for f in group {
            out[f.job].applied += 1;
        }
    }
    for o in &mut out {
        o.unmatched = o.recorded - o.applied;
    }
    Ok(out)
}

/// Inserts every event (replays do nothing) and returns the ids of those
/// that were new, per provider.
async fn insert_events(
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

/// A newly recorded event and the job it came in.
#[derive(Debug, Clone, Copy)]
struct Fresh<'a> {
    job: usize,
    org: OrganizationId,
    provider: ProviderId,
    event: &'a EventRow,
}

/// How an event names its message: our id when known, else the provider's.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
enum MessageRef<'a> {
    Ours(OrganizationId, Uuid),
    Providers(OrganizationId, ProviderId, &'a str),
}

/// Applies new events to their messages: every event of one message in one
/// update (the history gets all of them in time order, the state the
/// furthest they reach), all messages in two statements. Returns, per
/// message updated, the events applied to it and its transition.
async fn apply<'a>(
    tx: &deadpool_postgres::Transaction<'_>,
    fresh: &[Fresh<'a>],
) -> Result<Vec<(Vec<Fresh<'a>>, Transition)>, StoreError> {
    let mut groups: HashMap<MessageRef<'a>, Vec<Fresh<'a>>> = HashMap::new();
    for f in fresh {
        let key = match (&f.event.message_id, &f.event.provider_message_id) {
            (Some(id), _) => MessageRef::Ours(f.org, *id),
            (None, Some(p)) => MessageRef::Providers(f.org, f.provider, p.as_str()),
            (None, None) => continue,
        };
        groups.entry(key).or_default().push(*f);
    }
    if groups.is_empty() {
        return Ok(Vec::new());
    }
    // Sorted by message reference so concurrent writers lock in one order.
    let mut groups: Vec<(MessageRef<'a>, Vec<Fresh<'a>>)> = groups.into_iter().collect();
    groups.sort_by(|a, b| ref_order(&a.0).cmp(&ref_order(&b.0)));
    // What the reports of each message decide (the lifecycle's merge):
    // the state they reach and the history they append.
    let recorded_at = Utc::now();
    let merged: Vec<(Option<&'static str>, Vec<MessageEvent>)> = groups
        .iter()
        .map(|(_, g)| {
            let provider = g.first().map_or(ProviderId(Uuid::nil()), |f| f.provider);
            let reports: Vec<ProviderReport<'_>> = g.iter().map(|f| f.event.report()).collect();
            let (state, history) = merge_reports(provider, &reports, recorded_at);
            (state.map(MessageState::as_str), history)
        })
        .collect();

    // (group index, message id, old state, new state) per updated message.
    let mut updated: Vec<(usize, Uuid, MessageState, MessageState)> = Vec::new();
    let mut ours = OursColumns::default();
    let mut theirs = TheirsColumns::default();
    for (i, ((key, group), (state, history))) in groups.iter().zip(&merged).enumerate() {
        let idx = i32::try_from(i).map_err(|_| StoreError::Corrupt("too many groups".into()))?;
        match key {
            MessageRef::Ours(org, id) => {
                ours.idx.push(idx);
                ours.id.push(*id);
                ours.org.push(org.0);
                ours.state.push(*state);
                ours.history.push(Json(history.as_slice()));
                ours.pmid.push(
                    group
                        .iter()
                        .find_map(|f| f.event.provider_message_id.as_deref()),
                );
            }
            MessageRef::Providers(org, provider, pmid) => {
                theirs.idx.push(idx);
                theirs.provider.push(provider.0);
                theirs.pmid.push(pmid);
                theirs.org.push(org.0);
                theirs.state.push(*state);
                theirs.history.push(Json(history.as_slice()));
            }
        }
    }
    if !ours.idx.is_empty() {
        let sql = format!(
            "WITH v AS (SELECT * FROM unnest($1::int4[], $2::uuid[], $3::uuid[], $4::text[],
                                            $5::jsonb[], $6::text[])
                                   AS v(idx, id, org, state, history, pmid)),
                  old AS (SELECT m.id, m.state, v.idx FROM messages m
                            JOIN v ON m.id = v.id AND m.organization_id = v.org
                           ORDER BY m.id FOR UPDATE OF m)
             {APPLY_TO_OLD}"
        );
        update_locked(
            tx,
            &sql,
            &[
                &ours.idx,
                &ours.id,
                &ours.org,
                &ours.state,
                &ours.history,
                &ours.pmid,
            ],
            &mut updated,
        )
        .await?;
    }
    if !theirs.idx.is_empty() {
        let sql = format!(
            "WITH v AS (SELECT * FROM unnest($1::int4[], $2::uuid[], $3::text[], $4::uuid[],
                                            $5::text[], $6::jsonb[])
                                   AS v(idx, provider, pmid, org, state, history)),
                  old AS (SELECT m.id, m.state, v.idx FROM messages m
                            JOIN v ON m.provider_id = v.provider
                                  AND m.provider_message_id = v.pmid
                                  AND m.organization_id = v.org
                           ORDER BY m.id FOR UPDATE OF m)
             {APPLY_TO_OLD}"
        );
        update_locked(
            tx,
            &sql,
            &[
                &theirs.idx,
                &theirs.provider,
                &theirs.pmid,
                &theirs.org,
                &theirs.state,
                &theirs.history,
            ],
            &mut updated,
        )
        .await?;
    }
    if updated.is_empty() {
        return Ok(Vec::new());
    }

    // Mark the applied events with their message, and queue the
    // organizations' outbound notifications, in this same transaction.
    let mark = tx
        .prepare_cached(
            "UPDATE webhook_events w SET applied_at = now(), message_id = u.message_id
               FROM unnest($1::uuid[], $2::text[], $3::uuid[]) AS u(provider_id, event_id, message_id)
              WHERE w.provider_id = u.provider_id AND w.event_id = u.event_id",
        )
        .await?;
    let mut mark_provider = Vec::new();
    let mut mark_event = Vec::new();
    let mut mark_message = Vec::new();
    let mut outbound_ids = Vec::with_capacity(updated.len());
    let mut outbound_events = Vec::with_capacity(updated.len());
    let mut out = Vec::with_capacity(updated.len());
    // A message matched twice (one provider id on two messages) is applied
    // to both; its events count once.
    let mut counted = vec![false; groups.len()];
    for (idx, id, from, to) in updated {
        let Some((_, group)) = groups.get(idx) else {
            return Err(StoreError::Corrupt(format!("unknown group {idx}")));
        };
        for f in group {
            mark_provider.push(f.provider.0);
            mark_event.push(f.event.event_id.as_str());
            mark_message.push(id);
        }
        outbound_ids.push(id);
        outbound_events.push(merged[idx].1.as_slice());
        let transition = Transition {
            message_id: id,
            from,
            to,
        };
        if counted[idx] {
            out.push((Vec::new(), transition));
        } else {
            counted[idx] = true;
            out.push((group.clone(), transition));
        }
    }
    tx.execute(&mark, &[&mark_provider, &mark_event, &mark_message])
        .await?;
    crate::repo::org_webhooks::enqueue_outcomes(tx, &outbound_ids, &outbound_events).await?;
    Ok(out)
}

/// The update both kinds of reference share, given CTEs `v` (the groups:
/// `idx, state, history`, `pmid` when known) and `old` (the locked messages
/// and their group's `idx`). The provider's id fills an empty one only.
const APPLY_TO_OLD: &str = "UPDATE messages m SET
         state = CASE WHEN v.state IS NOT NULL AND msgengine_can_advance(m.state, v.state)
                      THEN v.state ELSE m.state END,
         provider_message_id = COALESCE(m.provider_message_id, v.pmid),
         events = m.events || v.history, updated_at = now()
       FROM old JOIN v ON v.idx = old.idx
      WHERE m.id = old.id
   RETURNING v.idx, m.id, old.state, m.state";

/// Runs one of the group updates and collects its `(group, message, from, to)` rows.
async fn update_locked(
    tx: &deadpool_postgres::Transaction<'_>,
    sql: &str,
    params: &[&(dyn tokio_postgres::types::ToSql + Sync)],
    updated: &mut Vec<(usize, Uuid, MessageState, MessageState)>,
) -> Result<(), StoreError> {
    let stmt = tx.prepare_cached(sql).await?;
    for row in tx.query(&stmt, params).await? {
        updated.push(updated_row(&row)?);
    }
    Ok(())
}

#[derive(Default)]
struct OursColumns<'a> {
    idx: Vec<i32>,
    id: Vec<Uuid>,
    org: Vec<Uuid>,
    state: Vec<Option<&'static str>>,
    history: Vec<Json<&'a [MessageEvent]>>,
    pmid: Vec<Option<&'a str>>,
}

#[derive(Default)]
struct TheirsColumns<'a> {
    idx: Vec<i32>,
    provider: Vec<Uuid>,
    pmid: Vec<&'a str>,
    org: Vec<Uuid>,
    state: Vec<Option<&'static str>>,
    history: Vec<Json<&'a [MessageEvent]>>,
}

/// A stable order of message references (ours by id first, then the
/// provider's by provider and id).
fn ref_order<'a>(r: &MessageRef<'a>) -> (u8, Uuid, &'a str) {
    match r {
        MessageRef::Ours(_, id) => (0, *id, ""),
        MessageRef::Providers(_, p, pmid) => (1, p.0, pmid),
    }
}

/// A `RETURNING idx, id, old state, new state` row.
fn updated_row(
    row: &tokio_postgres::Row,
) -> Result<(usize, Uuid, MessageState, MessageState), StoreError> {
    let idx: i32 = row.try_get(0)?;
    let idx = usize::try_from(idx).map_err(|_| StoreError::Corrupt(format!("group {idx}")))?;
    let t = transition_at(row, 1)?;
    Ok((idx, t.message_id, t.from, t.to))
}

/// The `id, old state, new state` columns of a row, from column `at` on.
fn transition_at(row: &tokio_postgres::Row, at: usize) -> Result<Transition, StoreError> {
    let parse = |i: usize| -> Result<MessageState, StoreError> {
        let s: String = row.try_get(i)?;
        s.parse()
            .map_err(|_| StoreError::Corrupt(format!("unknown state {s}")))
    };
    Ok(Transition {
        message_id: row.try_get(at)?,
        from: parse(at + 1)?,
        to: parse(at + 2)?,
    })
}

/// How many unmatched events one late-matching round looks at.
#[derive(Debug, Clone, Copy)]
pub struct LateLimits {
    /// Events older than this are closed instead of tried again.
    pub window: chrono::Duration,
    /// Most events of one organization per round (its newest).
    pub per_org: i64,
    /// Most events per round in all.
    pub total: i64,
}

/// What one late-matching round did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct LateRound {
    /// Events applied to their message, now known.
    pub applied: usize,
    /// Events closed: unmatched for longer than the window.
    pub closed: u64,
}

/// Open events (neither applied nor closed, received within the window):
/// for each organization that has some, in random order, its newest
/// `per_org`, up to `total` in all.
pub async fn unmatched(
    client: &impl GenericClient,
    limits: LateLimits,
) -> Result<Vec<(OrganizationId, ProviderId, EventRow)>, StoreError> {
    let since = Utc::now() - limits.window;
    let stmt = client
        .prepare_cached(
            "SELECT w.organization_id, w.provider_id, w.event_id, w.provider_message_id,
                    w.message_id, w.state, w.engagement, w.raw_status, w.recipient, w.error_code,
                    w.reason, w.suppress, w.occurred_at
               FROM (SELECT id FROM organizations ORDER BY random()) o
              CROSS JOIN LATERAL (
                    SELECT * FROM webhook_events e
                     WHERE e.organization_id = o.id
                       AND e.applied_at IS NULL AND e.closed_at IS NULL AND e.received_at > $1
                     ORDER BY e.received_at DESC
                     LIMIT $2) w
              LIMIT $3",
        )
        .await?;
    let rows = client
        .query(&stmt, &[&since, &limits.per_org, &limits.total])
        .await?;
    rows.iter().map(unmatched_row).collect()
}

fn unmatched_row(
    r: &tokio_postgres::Row,
) -> Result<(OrganizationId, ProviderId, EventRow), StoreError> {
    let state: Option<String> = r.try_get("state")?;
    let state = match state {
        Some(s) => Some(
            s.parse::<MessageState>()
                .map_err(|_| StoreError::Corrupt(format!("unknown state {s}")))?,
        ),
        None => None,
    };
    Ok((
        OrganizationId(r.try_get("organization_id")?),
        ProviderId(r.try_get("provider_id")?),
        EventRow {
            event_id: r.try_get("event_id")?,
            provider_message_id: r.try_get("provider_message_id")?,
            message_id: r.try_get("message_id")?,
            state,
            engagement: r.try_get("engagement")?,
            raw_status: r.try_get("raw_status")?,
            recipient: r.try_get("recipient")?,
            error_code: r.try_get("error_code")?,
            reason: r.try_get("reason")?,
            suppress: r.try_get("suppress")?,
            occurred_at: r.try_get("occurred_at")?,
        },
    ))
}

/// One late-matching round (the scheduler runs one every 2 s): closes up to
/// `limits.total` events unmatched for longer than the window, then applies
/// the open events whose message is known now, fairly per organization
/// ([`unmatched`]).
pub async fn retry_unmatched(
    tx: &deadpool_postgres::Transaction<'_>,
    limits: LateLimits,
) -> Result<LateRound, StoreError> {
    let closed = close_unmatched(tx, Utc::now() - limits.window, limits.total).await?;
    let pending = unmatched(tx, limits).await?;
    let fresh: Vec<Fresh<'_>> = pending
        .iter()
        .map(|(org, provider, event)| Fresh {
            job: 0,
            org: *org,
            provider: *provider,
            event,
        })
        .collect();
    let applied = apply(tx, &fresh).await?;
    Ok(LateRound {
        applied: applied.iter().map(|(group, _)| group.len()).sum(),
        closed,
    })
}

/// Closes up to `limit` open events received before `before`.
async fn close_unmatched(
    client: &impl GenericClient,
    before: DateTime<Utc>,
    limit: i64,
) -> Result<u64, StoreError> {
    let stmt = client
        .prepare_cached(
            "UPDATE webhook_events SET closed_at = now()
              WHERE (provider_id, event_id) IN (
                    SELECT provider_id, event_id FROM webhook_events
                     WHERE applied_at IS NULL AND closed_at IS NULL AND received_at <= $1
                     LIMIT $2
                       FOR UPDATE SKIP LOCKED)",
        )
        .await?;
    Ok(client.execute(&stmt, &[&before, &limit]).await?)
}
