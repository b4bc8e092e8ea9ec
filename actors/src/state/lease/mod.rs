//! The leases this node holds, and their renewal.
//!
//! A message being worked on is leased in the database to (`lease_owner`,
//! `lease_token`) until `lease_until` (see `repo::messages`). [`HeldLeases`]
//! is this node's own record of the leases it holds, one entry per message
//! whose job is somewhere in this process (dispatch, a provider actor's
//! queue, a delayed retry, an attempt in flight, an outcome not yet written):
//!
//! - an entry is added when a job is dispatched (fresh from the group commit
//!   or claimed by the scheduler) and removed once the outcome that releases
//!   its lease has been written (by the status writer), so an outcome waiting
//!   in the writer's queue keeps its lease;
//! - [`run_renewal`] renews exactly these entries, fenced by token, every
//!   lease/3 on the db runtime (not behind the scheduler's claim); an entry
//!   the database did not renew was lost (expired and claimed again) and is
//!   dropped;
//! - an entry is *usable* until its lease's end minus a margin of lease/3: a
//!   provider actor starts an attempt only on a usable lease, so a node whose
//!   renewals lapse stops sending before another node can claim the message
//!   (the job is dropped; the database gives the message to the next claim).
//!
//! - when the scheduler claims a message this node still holds (its lease
//!   ran out while the job waited or its attempt was in flight, renewals
//!   having lagged), the job is not dispatched a second time: the entry
//!   *adopts* the new lease ([`HeldLeases::adopt`]) and the job goes on under
//!   it; the job's outcome is written under the newest token
//!   ([`HeldLeases::refence`]). So a node never races itself for a message.
//!
//! Invariant: entries are keyed by message id and carry the token of the job
//! that holds them (and the token of the lease in the database, the same
//! unless adopted); every removal checks the token, so a late removal for an
//! old lease never drops the entry of a newer claim of the same message.

mod renewal;

pub use renewal::run_renewal;

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use dashmap::DashMap;
use msgengine_storage::driver::deadpool_postgres::GenericClient;
use msgengine_storage::repo::messages::{self, LeaseFence, OutcomeRow};
use uuid::Uuid;

/// Where a lost lease was noticed (the `stage` label of
/// `msgengine_leases_lost_total`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LostAt {
    /// An outcome written under a lease the node no longer held: dropped.
    Outcome,
    /// A job whose lease was lost or past its usable end before its attempt
    /// started: dropped without an attempt.
    Attempt,
}

impl LostAt {
    pub fn as_str(self) -> &'static str {
        match self {
            LostAt::Outcome => "outcome",
            LostAt::Attempt => "attempt",
        }
    }
}

#[derive(Debug, Clone, Copy)]
struct Held {
    /// The token of the lease in the database (renewed, written under).
    token: i64,
    /// The token the job in this process carries (its fence); differs from
    /// `token` once the entry adopted a newer claim.
    job: i64,
    usable_until: Instant,
}

/// The leases this node holds (see the module docs).
pub struct HeldLeases {
    owner: Uuid,
    lease_for: Duration,
    margin: Duration,
    held: DashMap<Uuid, Held>,
    /// Entries that adopted a newer claim (so outcomes need re-fencing).
    adopted: AtomicU64,
    lost: AtomicU64,
    /// Test hook: renewals are skipped while set.
    paused: AtomicBool,
}

impl std::fmt::Debug for HeldLeases {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HeldLeases")
            .field("owner", &self.owner)
            .field("held", &self.held.len())
            .finish()
    }
}

/// Most leases renewed in one statement.
const RENEW_CHUNK: usize = 5_000;

impl HeldLeases {
    /// The registry of `owner`'s leases, each lasting `lease_for`.
    pub fn new(owner: Uuid, lease_for: Duration) -> Self {
        Self {
            owner,
            lease_for,
            margin: lease_for / 3,
            held: DashMap::new(),
            adopted: AtomicU64::new(0),
            lost: AtomicU64::new(0),
            paused: AtomicBool::new(false),
        }
    }

    /// The fence of this node's lease with `token`.
    pub fn fence(&self, token: i64) -> LeaseFence {
        LeaseFence {
            owner: self.owner,
            token,
        }
    }

    /// Records a lease this node took, lasting until `lease_until`.
    pub fn hold(&self, id: Uuid, token: i64, lease_until: DateTime<Utc>) {
        let usable_until = self.usable_until(lease_until);
        let old = self.held.insert(
            id,
            Held {
                token,
                job: token,
                usable_until,
            },
        );
        if old.is_some_and(|h| h.token != h.job) {
            self.adopted.fetch_sub(1, Ordering::Relaxed);
        }
    }

    /// A claim of the scheduler's took `id` under `token` until
    /// `lease_until`: if a job of this process still holds the message, the
    /// job goes on under the new lease and `true` is returned (do not
    /// dispatch it again); `false` when no job holds it.
    pub fn adopt(&self, id: Uuid, token: i64, lease_until: DateTime<Utc>) -> bool {
        let usable_until = self.usable_until(lease_until);
        match self.held.get_mut(&id) {
            Some(mut h) => {
                if h.token == h.job {
                    self.adopted.fetch_add(1, Ordering::Relaxed);
                }
                h.token = token;
                h.usable_until = usable_until;
                true
            }
            None => false,
        }
    }

    /// Writes outcomes of adopted jobs under the lease the database now has
    /// (a no-op while nothing was adopted, the normal case).
    pub fn refence(&self, rows: &mut [OutcomeRow]) {
        if self.adopted.load(Ordering::Relaxed) == 0 {
            return;
        }
        for row in rows {
            let Some(fence) = row.fence.as_mut() else {
                continue;
            };
            if fence.owner != self.owner {
                continue;
            }
            if let Some(h) = self.held.get(&row.id.0) {
                if h.job == fence.token {
                    fence.token = h.token;
                }
            }
        }
    }

    /// Whether the job with `token` holds `id`'s lease, far enough from its
    /// end to start an attempt under it.
    pub fn is_usable(&self, id: Uuid, token: i64) -> bool {
        self.held
            .get(&id)
            .is_some_and(|h| h.job == token && h.usable_until > Instant::now())
    }

    /// Leases held now.
    pub fn len(&self) -> usize {
        self.held.len()
    }

    /// Whether no lease is held.
    pub fn is_empty(&self) -> bool {
        self.held.is_empty()
    }

    /// Leases lost since start (stale outcomes dropped, jobs dropped before
    /// their attempt).
    pub fn lost(&self) -> u64 {
        self.lost.load(Ordering::Relaxed)
    }

    /// Counts `n` lost leases.
    pub fn record_lost(&self, at: LostAt, n: u64) {
        if n == 0 {
            return;
        }
        self.lost.fetch_add(n, Ordering::Relaxed);
        crate::metrics::record_lease_lost(at.as_str(), n);
    }

    /// Forgets the lease of a job this node drops without writing anything
    /// (`token`: the job's, or the lease's in the database).
    pub fn forget(&self, id: Uuid, token: i64) {
        if let Some((_, h)) = self
            .held
            .remove_if(&id, |_, h| h.job == token || h.token == token)
        {
            if h.token != h.job {
                self.adopted.fetch_sub(1, Ordering::Relaxed);
            }
        }
    }

    /// After a batch of outcomes was written (`written` of them applied):
    /// counts the stale ones and forgets the leases the batch released.
    pub fn after_write(&self, rows: &[OutcomeRow], written: u64) {
        let stale = (rows.len() as u64).saturating_sub(written);
        if stale > 0 {
            tracing::warn!(
                stale,
                "outcomes written under a lost lease were dropped (another claim owns those messages)"
            );
            self.record_lost(LostAt::Outcome, stale);
        }
        for row in rows {
            if let (true, Some(fence)) = (row.outcome.release_lease, row.fence) {
                if fence.owner == self.owner {
                    self.forget(row.id.0, fence.token);
                }
            }
        }
    }

    /// Test hook: stop (or resume) renewing leases.
    pub fn pause_renewal(&self, paused: bool) {
        self.paused.store(paused, Ordering::Relaxed);
    }

    fn usable_until(&self, lease_until: DateTime<Utc>) -> Instant {
        let left = (lease_until - Utc::now()).to_std().unwrap_or_default();
        let now = Instant::now();
        (now + left).checked_sub(self.margin).unwrap_or(now)
    }

    /// Renews the held leases that would become unusable before the round
    /// after next (those taken or renewed within the last half lease are
    /// left alone: renewing them changes nothing but costs a row write);
    /// returns (renewed, lost).
    pub async fn renew(
        &self,
        client: &impl GenericClient,
    ) -> Result<(usize, usize), msgengine_storage::StoreError> {
        let due = Instant::now() + self.lease_for / 2;
        let mut snapshot: Vec<(Uuid, i64)> = self
            .held
            .iter()
            .filter(|e| e.usable_until < due)
            .map(|e| (*e.key(), e.token))
            .collect();
        // In id order, as the status and webhook writers lock their rows:
        // renewals taken in the map's order deadlocked with them under load
        // (each deadlock a second's stall for both sides).
        snapshot.sort_unstable_by_key(|(id, _)| *id);
        let (mut renewed, mut lost) = (0, 0);
        for chunk in snapshot.chunks(RENEW_CHUNK) {
            let lease_until =
                Utc::now() + chrono::Duration::from_std(self.lease_for).unwrap_or_default();
            let ids = messages::renew_held(client, self.owner, chunk, lease_until).await?;
            let ids: std::collections::HashSet<Uuid> = ids.into_iter().collect();
            let usable_until = self.usable_until(lease_until);
            for (id, token) in chunk {
                if ids.contains(id) {
                    renewed += 1;
                    if let Some(mut h) = self.held.get_mut(id) {
                        if h.token == *token {
                            h.usable_until = usable_until;
                        }
                    }
                } else {
                    // Released (its outcome is being written) or lost: either
                    // way nothing may be started under it any more.
                    lost += 1;
                    self.forget(*id, *token);
                }
            }
        }
        Ok((renewed, lost))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A final outcome releasing the lease `fence`.
    fn released(id: Uuid, fence: LeaseFence) -> OutcomeRow {
        OutcomeRow {
            id: msgengine_domain::MessageId(id),
            outcome: msgengine_domain::lifecycle::Outcome {
                state: msgengine_domain::message::MessageState::Sent,
                events: Vec::new(),
                attempts: Vec::new(),
                attempt_delta: 0,
                provider_id: None,
                provider_message_id: None,
                next_attempt_at: None,
                release_lease: true,
            },
            fence: Some(fence),
        }
    }

    #[test]
    fn a_lease_is_usable_until_a_margin_before_its_end_and_only_under_its_token() {
        let leases = HeldLeases::new(Uuid::new_v4(), Duration::from_secs(60));
        let id = Uuid::new_v4();
        leases.hold(id, 7, Utc::now() + chrono::Duration::seconds(60));
        assert!(leases.is_usable(id, 7));
        assert!(!leases.is_usable(id, 8), "another claim's token");
        // 10 s left is inside the 20 s margin: no new attempt under it.
        leases.hold(id, 7, Utc::now() + chrono::Duration::seconds(10));
        assert!(!leases.is_usable(id, 7));
    }

    #[test]
    fn a_late_release_of_an_old_lease_keeps_the_newer_claim() {
        let owner = Uuid::new_v4();
        let leases = HeldLeases::new(owner, Duration::from_secs(60));
        let id = Uuid::new_v4();
        let until = Utc::now() + chrono::Duration::seconds(60);
        leases.hold(id, 1, until);
        leases.hold(id, 2, until);
        leases.forget(id, 1);
        assert!(leases.is_usable(id, 2));
        let release = released(id, leases.fence(2));
        leases.after_write(std::slice::from_ref(&release), 0);
        assert!(leases.is_empty());
        assert_eq!(leases.lost(), 1, "the stale outcome is counted");
    }

    #[test]
    fn a_job_whose_message_this_node_claims_again_goes_on_under_the_new_lease() {
        let owner = Uuid::new_v4();
        let leases = HeldLeases::new(owner, Duration::from_secs(60));
        let (id, other) = (Uuid::new_v4(), Uuid::new_v4());
        let until = Utc::now() + chrono::Duration::seconds(60);
        assert!(!leases.adopt(id, 2, until), "no job holds it: dispatch it");
        leases.hold(id, 1, until);
        leases.hold(other, 1, until);
        assert!(leases.adopt(id, 2, until), "its job goes on");
        assert!(leases.is_usable(id, 1), "under the job's own token");
        let mut rows = vec![
            released(id, leases.fence(1)),
            released(other, leases.fence(1)),
        ];
        leases.refence(&mut rows);
        assert_eq!(
            rows[0].fence,
            Some(leases.fence(2)),
            "written under the database's lease"
        );
        assert_eq!(rows[1].fence, Some(leases.fence(1)), "others untouched");
        leases.after_write(&rows, 2);
        assert!(leases.is_empty());
        assert_eq!(leases.adopted.load(Ordering::Relaxed), 0);
        assert_eq!(leases.lost(), 0);
    }
}
