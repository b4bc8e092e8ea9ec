//! Dispatch: turning messages this node has leased (fresh from the group
//! commit, claimed by the scheduler, or handed back by a retired provider
//! actor) into jobs on the right provider actors.
//!
//! Before a job reaches an actor, dispatch decides ([`verdict`], pure):
//! - a disabled organization's message goes back to the database (lease
//!   released); the scheduler's claim skips it until the organization is
//!   enabled again;
//! - if the organization's routes could not be loaded, or its suppression
//!   list could not be read, the message stays queued for a later try (lease
//!   released, due again in [`RETRY_AFTER_UNAVAILABLE`]): a failure of ours
//!   never fails a message;
//! - a recipient on the suppression list (added since the message was
//!   accepted: scheduled messages, retries) ends `rejected`;
//! - only a successfully loaded route table with no active provider for the
//!   channel fails it (`no_provider`);
//! - otherwise the job goes to the first provider of its failover chain.

use std::collections::HashMap;
use std::sync::Arc;

use actix::prelude::SendError;
use chrono::{DateTime, Utc};
use futures::future::BoxFuture;
use msgengine_domain::lifecycle::Outcome;
use msgengine_domain::message::OutboundMessage;
use msgengine_domain::{OrganizationId, ProviderId};
use msgengine_storage::driver::deadpool_postgres::Pool;

use crate::handles::{Outcomes, Reroute};
use crate::provider::Deliver;
use crate::router::Routes;
use crate::state::job::Job;
use crate::state::lease::HeldLeases;
use crate::state::orgs::ActiveOrgs;
use crate::state::suppress::Suppressions;

/// How long a message waits when its routes or suppression list could not
/// be read (the database or the key ring is failing).
pub const RETRY_AFTER_UNAVAILABLE: chrono::Duration = chrono::Duration::seconds(5);

/// A message this node holds a lease on, ready to be dispatched.
pub struct Leased {
    pub message: Arc<OutboundMessage>,
    /// Attempts it already had (earlier leases included).
    pub attempts: u32,
    /// The token of this node's lease on it.
    pub token: i64,
}

/// What dispatch does with one message.
#[derive(Debug, PartialEq, Eq)]
pub enum Verdict<'a> {
    /// Organization disabled: back to the database until it is enabled.
    HandBack,
    /// Routes or suppressions unreadable: stays queued, tried again later.
    Retry,
    /// The recipient is suppressed (the reason): ends `rejected`.
    Reject(&'a str),
    /// The loaded route table has no active provider: ends `failed`.
    Unroutable,
    /// To the first provider of its chain.
    Deliver,
}

/// The decision for one message (see the module docs). `suppression` is
/// `Err` when the list could not be read, `Ok(Some(reason))` when the
/// recipient is on it.
pub fn verdict<'a>(
    org_active: bool,
    routes_loaded: bool,
    suppression: Result<Option<&'a str>, ()>,
    has_provider: bool,
) -> Verdict<'a> {
    if !org_active {
        return Verdict::HandBack;
    }
    if !routes_loaded {
        return Verdict::Retry;
    }
    match suppression {
        Err(()) => Verdict::Retry,
        Ok(Some(reason)) => Verdict::Reject(reason),
        Ok(None) if !has_provider => Verdict::Unroutable,
        Ok(None) => Verdict::Deliver,
    }
}

/// What dispatch reads and where it hands messages: the routes (and
/// each message's stored plan over them), the organization flags, the suppression lists (read
/// through `pool`), this node's leases and the outcome writer.
pub struct Dispatcher {
    pub pool: Pool,
    pub routes: Arc<Routes>,
    pub leases: Arc<HeldLeases>,
    pub orgs: ActiveOrgs,
    pub suppressions: Suppressions,
    pub outcomes: Outcomes,
}

impl Dispatcher {
    /// Dispatches messages this node has just leased until `lease_until`
    /// (from the group commit or a scheduler claim): records the leases as
    /// held, then routes them.
    pub async fn dispatch(&self, messages: Vec<Leased>, lease_until: DateTime<Utc>) {
        for m in &messages {
            self.leases.hold(m.message.id.0, m.token, lease_until);
        }
        self.route(messages).await;
    }

    /// Re-plans jobs whose provider went away (their leases stay held).
    pub async fn reroute(&self, jobs: Vec<Job>) {
        let messages = jobs
            .into_iter()
            .map(|j| Leased {
                message: j.message,
                attempts: j.total_attempts,
                token: j.lease.token,
            })
            .collect();
        self.route(messages).await;
    }

    async fn route(&self, messages: Vec<Leased>) {
        let mut by_org: HashMap<OrganizationId, Vec<Leased>> = HashMap::new();
        for m in messages {
            by_org.entry(m.message.organization_id).or_default().push(m);
        }
        let mut deliver = Vec::new();
        for (org, batch) in by_org {
            let routes_loaded = match self.routes.ensure(org).await {
                Ok(()) => true,
                Err(e) => {
                    tracing::warn!(organization = %org, error = %e, messages = batch.len(),
                        "cannot load routes; the messages stay queued for a later try");
                    false
                }
            };
            let active = self.orgs.is_active(org);
            let suppressed = if routes_loaded && active {
                self.suppressions
                    .check(&self.pool, org, batch.iter().map(|m| m.message.to.as_str()))
                    .await
                    .map_err(|e| {
                        tracing::warn!(organization = %org, error = %e,
                            "cannot read the suppression list; the messages stay queued");
                    })
            } else {
                Ok(None)
            };
            for (i, leased) in batch.into_iter().enumerate() {
                let reason = match &suppressed {
                    Ok(Some(reasons)) => Ok(reasons.get(i).and_then(|r| r.as_deref())),
                    Ok(None) => Ok(None),
                    Err(()) => Err(()),
                };
                let job = self.job_for(leased, routes_loaded);
                match verdict(active, routes_loaded, reason, job.provider().is_some()) {
                    Verdict::HandBack => self.outcomes.hand_back(&job, "organization disabled"),
                    Verdict::Retry => self.outcomes.submit(
                        job.outcome(Outcome::requeue(Utc::now() + RETRY_AFTER_UNAVAILABLE)),
                    ),
                    Verdict::Reject(reason) => self.outcomes.reject_suppressed(&job, reason),
                    Verdict::Unroutable => self.outcomes.fail_unroutable(&job),
                    Verdict::Deliver => deliver.push(job),
                }
            }
        }
        self.deliver(deliver);
    }

    fn job_for(&self, leased: Leased, routes_loaded: bool) -> Job {
        let chain: Arc<[ProviderId]> = if routes_loaded {
            Arc::from(self.routes.table().chain(&leased.message, Utc::now()))
        } else {
            Arc::from(Vec::new())
        };
        Job {
            message: leased.message,
            chain,
            position: 0,
            attempts_on_provider: 0,
            total_attempts: leased.attempts,
            lease: self.leases.fence(leased.token),
        }
    }

    /// Hands jobs to their current provider's actor, grouped per provider.
    /// A job with no provider left fails; a full mailbox defers the job to
    /// the scheduler (its lease is released with a short delay).
    pub fn deliver(&self, jobs: Vec<Job>) {
        let mut by_provider: HashMap<ProviderId, Vec<Job>> = HashMap::new();
        for job in jobs {
            match job.provider() {
                Some(p) => by_provider.entry(p).or_default().push(job),
                None => self.outcomes.fail_unroutable(&job),
            }
        }
        for (provider, jobs) in by_provider {
            let Some(handle) = self.routes.table().provider(provider) else {
                self.outcomes.defer(jobs, "provider not running");
                continue;
            };
            if let Err(err) = handle.addr.try_send(Deliver(jobs)) {
                let jobs = match err {
                    SendError::Full(Deliver(jobs)) | SendError::Closed(Deliver(jobs)) => jobs,
                };
                self.outcomes.defer(jobs, "provider busy");
            }
        }
    }
}

impl Reroute for Dispatcher {
    fn reroute(self: Arc<Self>, jobs: Vec<Job>) -> BoxFuture<'static, ()> {
        Box::pin(async move { Dispatcher::reroute(&self, jobs).await })
    }

    fn deliver(&self, jobs: Vec<Job>) {
        Dispatcher::deliver(self, jobs);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_failed_route_load_never_fails_a_message() {
        for has_provider in [true, false] {
            for suppression in [Ok(None), Ok(Some("bounce")), Err(())] {
                assert_eq!(
                    verdict(true, false, suppression, has_provider),
                    Verdict::Retry
                );
            }
        }
    }

    #[test]
    fn only_a_loaded_table_without_a_provider_is_unroutable() {
        assert_eq!(verdict(true, true, Ok(None), false), Verdict::Unroutable);
        assert_eq!(verdict(true, true, Ok(None), true), Verdict::Deliver);
    }

    #[test]
    fn disabled_organizations_go_back_and_suppressed_recipients_are_rejected() {
        assert_eq!(verdict(false, true, Ok(None), true), Verdict::HandBack);
        assert_eq!(verdict(false, false, Err(()), false), Verdict::HandBack);
        assert_eq!(
            verdict(true, true, Ok(Some("complaint")), true),
            Verdict::Reject("complaint")
        );
        assert_eq!(
            verdict(true, true, Ok(Some("complaint")), false),
            Verdict::Reject("complaint"),
            "a suppressed recipient is rejected before routing matters"
        );
        assert_eq!(verdict(true, true, Err(()), true), Verdict::Retry);
    }
}
