//! The per-organization series, bounded: the first organizations get their
//! own label value, the rest share one.

use std::collections::HashMap;
use std::hash::Hash;
use std::sync::{PoisonError, RwLock};

use metrics::{counter, Counter};
use msgengine_domain::OrganizationId;

use super::*;

/// A map that gives at most `limit` keys a value of their own; the rest share
/// the overflow value. Pure (no metrics), so the bound is unit-tested.
pub struct BoundedLabels<K, V> {
    limit: usize,
    named: RwLock<HashMap<K, V>>,
    overflow: V,
}

impl<K: Hash + Eq + Copy, V: Clone> BoundedLabels<K, V> {
    pub fn new(limit: usize, overflow: V) -> Self {
        Self {
            limit,
            named: RwLock::new(HashMap::new()),
            overflow,
        }
    }

    /// The value of `key`: its own (made by `make` the first time, while
    /// fewer than `limit` keys have one), else the overflow value.
    pub fn get(&self, key: K, make: impl FnOnce(K) -> V) -> V {
        {
            let named = self.named.read().unwrap_or_else(PoisonError::into_inner);
            if let Some(v) = named.get(&key) {
                return v.clone();
            }
            if named.len() >= self.limit {
                return self.overflow.clone();
            }
        }
        let mut named = self.named.write().unwrap_or_else(PoisonError::into_inner);
        if let Some(v) = named.get(&key) {
            return v.clone();
        }
        if named.len() >= self.limit {
            return self.overflow.clone();
        }
        let v = make(key);
        named.insert(key, v.clone());
        v
    }
}

/// One organization's handles.
#[derive(Clone)]
pub struct TenantHandles {
    /// Accepted messages, per channel ([`CHANNELS`] order).
    pub accepted: [Counter; 3],
    pub rate_limited: Counter,
}

impl TenantHandles {
    fn new(org: &str) -> Self {
        let org = org.to_owned();
        Self {
            accepted: CHANNELS
                .map(|c| counter!(TENANT_ACCEPTED, "org" => org.clone(), "channel" => c.as_str())),
            rate_limited: counter!(TENANT_RATE_LIMITED, "org" => org),
        }
    }
}

/// The `msgengine_tenant_*` series: the first `limit` organizations get their
/// own `org` label value, the rest count under `org="other"`.
pub struct TenantSeries {
    labels: BoundedLabels<OrganizationId, TenantHandles>,
}

impl TenantSeries {
    pub fn new(limit: usize) -> Self {
        Self {
            labels: BoundedLabels::new(limit, TenantHandles::new("other")),
        }
    }

    /// The organization's handles.
    pub fn of(&self, org: OrganizationId) -> TenantHandles {
        self.labels
            .get(org, |org| TenantHandles::new(&org.0.to_string()))
    }
}
