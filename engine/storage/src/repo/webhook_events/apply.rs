//! Applying newly recorded events to their messages, as the caller's
//! [`Decide`] says (the domain's `lifecycle::merge_reports`); storage groups
//! them by message, writes the decision and marks what it applied.

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use msgengine_domain::lifecycle::ProviderReport;
use msgengine_domain::message::{MessageEvent, MessageState};
use msgengine_domain::{OrganizationId, ProviderId};
use tokio_postgres::types::Json;
use uuid::Uuid;

use super::{Decide, EventRow, Transition};
use crate::error::StoreError;

/// A newly recorded event and the job it came in.
#[derive(Debug, Clone, Copy)]
pub(super) struct Fresh<'a> {
    pub job: usize,
    pub org: OrganizationId,
    pub provider: ProviderId,
    pub event: &'a EventRow,
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
pub(super) async fn apply<'a>(
    tx: &deadpool_postgres::Transaction<'_>,
    fresh: &[Fresh<'a>],
    decide: Decide,
) -> Result<Vec<(Vec<Fresh<'a>>, Transition)>, StoreError> {
    let groups = group(fresh);
    if groups.is_empty() {
        return Ok(Vec::new());
    }
    let merged = decided(&groups, decide, Utc::now());
    let (ours, theirs) = columns(&groups, &merged)?;
    let mut updated = Vec::new();
    if !ours.idx.is_empty() {
        update_locked(tx, &ours_sql(), &ours.params(), &mut updated).await?;
    }
    if !theirs.idx.is_empty() {
        update_locked(tx, &theirs_sql(), &theirs.params(), &mut updated).await?;
    }
    if updated.is_empty() {
        return Ok(Vec::new());
    }
    mark_and_notify(tx, &groups, &merged, updated).await
}

/// One message's new events, by how they name it.
type Group<'a> = (MessageRef<'a>, Vec<Fresh<'a>>);

/// What the lifecycle decided for one group: the state it reaches (if it
/// moves) and the history entries it appends.
type Decision = (Option<&'static str>, Vec<MessageEvent>);

/// The events by the message they name (events naming none are left out),
/// sorted by message reference so concurrent writers lock in one order.
fn group<'a>(fresh: &[Fresh<'a>]) -> Vec<Group<'a>> {
    let mut groups: HashMap<MessageRef<'a>, Vec<Fresh<'a>>> = HashMap::new();
    for f in fresh {
        let key = match (&f.event.message_id, &f.event.provider_message_id) {
            (Some(id), _) => MessageRef::Ours(f.org, *id),
            (None, Some(p)) => MessageRef::Providers(f.org, f.provider, p.as_str()),
            (None, None) => continue,
        };
        groups.entry(key).or_default().push(*f);
    }
    let mut groups: Vec<Group<'a>> = groups.into_iter().collect();
    groups.sort_by(|a, b| ref_order(&a.0).cmp(&ref_order(&b.0)));
    groups
}

/// What the reports of each message decide (the caller's `decide`, the
/// lifecycle's merge in the domain): the state they reach and the history
/// they append.
fn decided(groups: &[Group<'_>], decide: Decide, recorded_at: DateTime<Utc>) -> Vec<Decision> {
    groups
        .iter()
        .map(|(_, g)| {
            let provider = g.first().map_or(ProviderId(Uuid::nil()), |f| f.provider);
            let reports: Vec<ProviderReport<'_>> = g.iter().map(|f| f.event.report()).collect();
            let (state, history) = decide(provider, &reports, recorded_at);
            (state.map(MessageState::as_str), history)
        })
        .collect()
}

/// The two updates' parameter columns, one entry per group.
fn columns<'a>(
    groups: &[Group<'a>],
    merged: &'a [Decision],
) -> Result<(OursColumns<'a>, TheirsColumns<'a>), StoreError> {
    let mut ours = OursColumns::default();
    let mut theirs = TheirsColumns::default();
    for (i, ((key, group), (state, history))) in groups.iter().zip(merged).enumerate() {
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
    Ok((ours, theirs))
}

/// The update of messages named by our id.
fn ours_sql() -> String {
    format!(
        "WITH v AS (SELECT * FROM unnest($1::int4[], $2::uuid[], $3::uuid[], $4::text[],
                                        $5::jsonb[], $6::text[])
                               AS v(idx, id, org, state, history, pmid)),
              old AS (SELECT m.id, m.state, v.idx FROM messages m
                        JOIN v ON m.id = v.id AND m.organization_id = v.org
                       ORDER BY m.id FOR UPDATE OF m)
         {APPLY_TO_OLD}"
    )
}

/// The update of messages named by the provider's id.
fn theirs_sql() -> String {
    format!(
        "WITH v AS (SELECT * FROM unnest($1::int4[], $2::uuid[], $3::text[], $4::uuid[],
                                        $5::text[], $6::jsonb[])
                               AS v(idx, provider, pmid, org, state, history)),
              old AS (SELECT m.id, m.state, v.idx FROM messages m
                        JOIN v ON m.provider_id = v.provider
                              AND m.provider_message_id = v.pmid
                              AND m.organization_id = v.org
                       ORDER BY m.id FOR UPDATE OF m)
         {APPLY_TO_OLD}"
    )
}

/// Marks the applied events with their message and queues the
/// organizations' outbound notifications, in the same transaction. A
/// message matched twice (one provider id on two messages) is applied to
/// both; its events count once.
async fn mark_and_notify<'a>(
    tx: &deadpool_postgres::Transaction<'_>,
    groups: &[Group<'a>],
    merged: &[Decision],
    updated: Vec<(usize, Uuid, MessageState, MessageState)>,
) -> Result<Vec<(Vec<Fresh<'a>>, Transition)>, StoreError> {
    let mut mark = MarkColumns::default();
    let mut outbound_ids = Vec::with_capacity(updated.len());
    let mut outbound_events = Vec::with_capacity(updated.len());
    let mut out = Vec::with_capacity(updated.len());
    let mut counted = vec![false; groups.len()];
    for (idx, id, from, to) in updated {
        let Some((_, group)) = groups.get(idx) else {
            return Err(StoreError::Corrupt(format!("unknown group {idx}")));
        };
        for f in group {
            mark.provider.push(f.provider.0);
            mark.event.push(f.event.event_id.as_str());
            mark.message.push(id);
        }
        outbound_ids.push(id);
        outbound_events.push(merged[idx].1.as_slice());
        let transition = Transition {
            message_id: id,
            from,
            to,
        };
        let first = !std::mem::replace(&mut counted[idx], true);
        out.push((if first { group.clone() } else { Vec::new() }, transition));
    }
    let stmt = tx
        .prepare_cached(
            "UPDATE webhook_events w SET applied_at = now(), message_id = u.message_id
               FROM unnest($1::uuid[], $2::text[], $3::uuid[]) AS u(provider_id, event_id, message_id)
              WHERE w.provider_id = u.provider_id AND w.event_id = u.event_id",
        )
        .await?;
    tx.execute(&stmt, &[&mark.provider, &mark.event, &mark.message])
        .await?;
    crate::repo::org_webhooks::enqueue_outcomes(tx, &outbound_ids, &outbound_events).await?;
    Ok(out)
}

#[derive(Default)]
struct MarkColumns<'a> {
    provider: Vec<Uuid>,
    event: Vec<&'a str>,
    message: Vec<Uuid>,
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

type Param<'p> = &'p (dyn tokio_postgres::types::ToSql + Sync);

#[derive(Default)]
struct OursColumns<'a> {
    idx: Vec<i32>,
    id: Vec<Uuid>,
    org: Vec<Uuid>,
    state: Vec<Option<&'static str>>,
    history: Vec<Json<&'a [MessageEvent]>>,
    pmid: Vec<Option<&'a str>>,
}

impl OursColumns<'_> {
    fn params(&self) -> [Param<'_>; 6] {
        [
            &self.idx,
            &self.id,
            &self.org,
            &self.state,
            &self.history,
            &self.pmid,
        ]
    }
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

impl TheirsColumns<'_> {
    fn params(&self) -> [Param<'_>; 6] {
        [
            &self.idx,
            &self.provider,
            &self.pmid,
            &self.org,
            &self.state,
            &self.history,
        ]
    }
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
