//! Running the stages in order, with the I/O between them, through the
//! handles the engine exposes (tenant admission, routes, suppressions, the
//! group committer).

use chrono::Utc;
use msgengine_domain::send::SendRequest;
use msgengine_domain::OrganizationId;
use msgengine_storage::repo::messages::{self, NewMessageRow};
use msgengine_storage::StoreError;

use super::{admit, commit, count_by_channel, quiet, replay, route, suppress};
use super::{AcceptError, Accepted, IdempotencyKey};
use crate::writers::commit::CommitOutcome;
use crate::Engine;

/// Accepts a send request for `org`: answers only once its messages are
/// committed (replay → admit → route → suppress → commit).
pub async fn run(
    engine: &Engine,
    org: OrganizationId,
    request: SendRequest,
    idempotency: Option<IdempotencyKey>,
) -> Result<Accepted, AcceptError> {
    if let Some(key) = &idempotency {
        if let Some(replay) = stored_replay(engine, org, key).await? {
            return Ok(replay);
        }
    }
    let requested = count_by_channel(request.messages.iter().map(|m| (m.channel, true)));
    let (rows, is_batch) = checked_rows(engine, org, request)
        .await
        .inspect_err(|e| record_refusal(engine, org, &requested, e))?;
    let node_full = engine.node_full();
    let prepared = commit::prepare(org, rows, is_batch, idempotency.as_ref(), node_full);
    if node_full {
        crate::metrics::record_spilled(prepared.spilled);
    }
    match engine
        .committer()
        .commit(prepared.rows, prepared.idempotency)
        .await?
    {
        CommitOutcome::Committed => {
            record_accepted(engine, org, &prepared.accepted, &prepared.rejected);
            Ok(Accepted {
                body: prepared.body,
                replayed: false,
            })
        }
        CommitOutcome::KeyExists => match idempotency {
            Some(key) => stored_replay(engine, org, &key)
                .await?
                .ok_or(AcceptError::IdempotencyConflict),
            None => Err(AcceptError::IdempotencyConflict),
        },
    }
}

/// Stages admit, route and suppress: the request's rows (and whether it
/// is a batch), or why it is refused.
async fn checked_rows(
    engine: &Engine,
    org: OrganizationId,
    request: SendRequest,
) -> Result<(Vec<NewMessageRow>, bool), AcceptError> {
    let count = u32::try_from(request.messages.len()).unwrap_or(u32::MAX);
    admit::admit(engine.tenant(org).admit(count).await.ok())?;
    engine.routes().ensure(org).await?;
    let table = engine.routes().table();
    route::route(
        request.messages.iter().map(|m| m.channel),
        request.is_batch,
        |channel| !table.candidates(org, channel).is_empty(),
    )?;
    let recipients = request.messages.iter().map(|m| m.to.as_str());
    let suppressed = engine
        .suppressions()
        .check(engine.pool(), org, recipients)
        .await?;
    let is_batch = request.is_batch;
    let now = Utc::now();
    let mut messages = request.messages;
    let deferred = table
        .quiet_hours(org)
        .map(|q| quiet::defer(&mut messages, &q, now));
    let mut rows = suppress::suppress(org, messages, suppressed, is_batch, now)?;
    if let Some(reasons) = deferred {
        quiet::explain(&mut rows, reasons);
    }
    route::plan_rows(&mut rows, is_batch, now, |m, at| table.plan(m, at))?;
    for row in &rows {
        if let Some(plan) = row.message.routing.as_deref().and_then(|r| r.plan.as_ref()) {
            let decider = &plan.decider;
            crate::metrics::record_decision(
                row.message.channel,
                decider.strategy,
                decider.rule_id.is_some(),
            );
        }
    }
    Ok((rows, is_batch))
}

/// Stage replay, with the stored record of the key.
async fn stored_replay(
    engine: &Engine,
    org: OrganizationId,
    key: &IdempotencyKey,
) -> Result<Option<Accepted>, AcceptError> {
    let client = engine.pool().get().await.map_err(StoreError::from)?;
    let stored = messages::find_idempotency(&client, org.0, &key.key).await?;
    replay::replay(stored, key)
}

/// Counts a refused request under its reason (a rate-limited one also
/// as the organization's).
fn record_refusal(engine: &Engine, org: OrganizationId, requested: &[u64; 3], error: &AcceptError) {
    if let Some(reason) = error.refused_reason() {
        for (i, channel) in crate::metrics::CHANNELS.into_iter().enumerate() {
            crate::metrics::record_refused(channel, reason, requested[i]);
        }
    }
    if let AcceptError::RateLimited { .. } = error {
        metrics::counter!(crate::metrics::RATE_LIMITED, "scope" => "tenant").increment(1);
        engine.tenant_metrics().of(org).rate_limited.increment(1);
    }
}

/// Counts a committed request: accepted messages, and batch members
/// refused for a suppressed recipient (stored `rejected`).
fn record_accepted(engine: &Engine, org: OrganizationId, accepted: &[u64; 3], rejected: &[u64; 3]) {
    let tenant = engine.tenant_metrics().of(org);
    for (i, channel) in crate::metrics::CHANNELS.into_iter().enumerate() {
        if accepted[i] > 0 {
            metrics::counter!(crate::metrics::MESSAGES_ACCEPTED, "channel" => channel.as_str())
                .increment(accepted[i]);
            tenant.accepted[i].increment(accepted[i]);
        }
        if rejected[i] > 0 {
            crate::metrics::record_refused(channel, "suppressed", rejected[i]);
            crate::metrics::record_failed(channel, "none", "suppressed", rejected[i]);
        }
    }
}
