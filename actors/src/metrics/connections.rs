//! The per-connection gauges (`provider`, `connection` labels), kept outside the Prometheus
//! recorder so that a connection's series leave `/metrics` when it goes.
//!
//! The recorder (metrics-exporter-prometheus 0.18) cannot delete one series: its only removal
//! is an idle timeout per metric kind, which would also drop every quiet gauge of a live
//! connection and every set-once gauge of the process. So these six gauges live here, one
//! entry per connection, counted by the [`ConnectionSeries`] handles that use it (a provider
//! actor holds one), and the page appends them with [`render`].
//!
//! Invariants: an entry leaves when the router retires its connection ([`forget`]: deleted
//! or deactivated), or when the last handle on it is dropped, whichever comes first; a retired
//! actor finishing its in-flight sends writes into values nobody renders, and a handle only
//! ever releases its own entry, never a newer one of the same connection (re-activated). The
//! page lists connections in id order.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, LazyLock, RwLock};

use metrics::Gauge;
use uuid::Uuid;

use super::{
    Kind, BREAKER_OPEN_SECONDS, BREAKER_STATE, CATALOG, PROVIDER_DELIVERY_RATIO,
    PROVIDER_IN_FLIGHT, PROVIDER_LATENCY_EWMA, PROVIDER_SUCCESS_RATIO,
};

/// The per-connection gauges, in the order of [`Entry::values`].
pub const NAMES: [&str; 6] = [
    BREAKER_STATE,
    BREAKER_OPEN_SECONDS,
    PROVIDER_SUCCESS_RATIO,
    PROVIDER_LATENCY_EWMA,
    PROVIDER_IN_FLIGHT,
    PROVIDER_DELIVERY_RATIO,
];

/// One connection's values (f64 bits, as `metrics` gauges store them).
struct Entry {
    provider: &'static str,
    handles: usize,
    values: [Arc<AtomicU64>; 6],
}

static CONNECTIONS: LazyLock<RwLock<BTreeMap<Uuid, Entry>>> = LazyLock::new(RwLock::default);

/// A handle on one connection's gauges; the last one dropped removes its series.
pub struct ConnectionSeries {
    connection: Uuid,
    /// Identifies the entry this handle belongs to (a re-activated connection gets a new one).
    entry: Arc<AtomicU64>,
    gauges: [Gauge; 6],
}

impl ConnectionSeries {
    /// The gauges of `connection` (labelled `provider`), created at 0 on first use.
    pub fn new(provider: &'static str, connection: Uuid) -> Self {
        let mut map = CONNECTIONS.write().unwrap_or_else(|e| e.into_inner());
        let entry = map.entry(connection).or_insert_with(|| Entry {
            provider,
            handles: 0,
            values: Default::default(),
        });
        entry.handles += 1;
        entry.provider = provider;
        let gauges = entry.values.clone().map(Gauge::from_arc);
        Self {
            connection,
            entry: entry.values[0].clone(),
            gauges,
        }
    }

    /// The gauge of `NAMES[index]`.
    pub fn gauge(&self, index: usize) -> &Gauge {
        &self.gauges[index]
    }
}

impl Drop for ConnectionSeries {
    fn drop(&mut self) {
        let mut map = CONNECTIONS.write().unwrap_or_else(|e| e.into_inner());
        let own = map
            .get_mut(&self.connection)
            .filter(|entry| Arc::ptr_eq(&entry.values[0], &self.entry));
        if let Some(entry) = own {
            entry.handles = entry.handles.saturating_sub(1);
            if entry.handles == 0 {
                map.remove(&self.connection);
            }
        }
    }
}

/// Removes `connection`'s series at once (the router retired it: deleted or deactivated).
pub fn forget(connection: Uuid) {
    CONNECTIONS
        .write()
        .unwrap_or_else(|e| e.into_inner())
        .remove(&connection);
}

/// Whether `connection` has series now.
pub fn is_listed(connection: Uuid) -> bool {
    CONNECTIONS
        .read()
        .unwrap_or_else(|e| e.into_inner())
        .contains_key(&connection)
}

/// Appends the per-connection gauges to a Prometheus text page.
pub fn render(page: &mut String) {
    let map = CONNECTIONS.read().unwrap_or_else(|e| e.into_inner());
    if map.is_empty() {
        return;
    }
    for (index, name) in NAMES.iter().enumerate() {
        let help = CATALOG
            .iter()
            .find(|(n, kind, _)| n == name && *kind == Kind::Gauge)
            .map_or("", |(_, _, help)| *help);
        let _ = writeln!(page, "# HELP {name} {help}");
        let _ = writeln!(page, "# TYPE {name} gauge");
        for (connection, entry) in map.iter() {
            let value = f64::from_bits(entry.values[index].load(Ordering::Relaxed));
            let _ = writeln!(
                page,
                "{name}{{provider=\"{}\",connection=\"{connection}\"}} {}",
                entry.provider,
                sample(value)
            );
        }
        page.push('\n');
    }
}

/// A sample value in the text format (`+Inf`, `-Inf`, `NaN` spelled as Prometheus reads them).
fn sample(value: f64) -> String {
    if value.is_nan() {
        "NaN".to_owned()
    } else if value.is_infinite() {
        if value > 0.0 { "+Inf" } else { "-Inf" }.to_owned()
    } else {
        value.to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn page() -> String {
        let mut page = String::new();
        render(&mut page);
        page
    }

    #[test]
    fn a_connections_series_live_exactly_as_long_as_its_handles() {
        let id = Uuid::new_v4();
        let first = ConnectionSeries::new("sandbox", id);
        first.gauge(2).set(0.75);
        let line = format!(
            "msgengine_provider_health_success_ratio{{provider=\"sandbox\",connection=\"{id}\"}} 0.75"
        );
        assert!(page().contains(&line), "{}", page());
        assert!(page().contains("# TYPE msgengine_circuit_breaker_state gauge"));
        // A reconfiguration: a second handle, then the first goes; the series stay.
        let second = ConnectionSeries::new("sandbox", id);
        drop(first);
        assert!(is_listed(id) && page().contains(&line));
        drop(second);
        assert!(!is_listed(id));
        assert!(!page().contains(&id.to_string()));
    }

    #[test]
    fn a_retired_connection_leaves_at_once_and_its_old_handle_never_removes_a_new_one() {
        let id = Uuid::new_v4();
        let retiring = ConnectionSeries::new("mailgun", id);
        forget(id);
        assert!(!is_listed(id));
        retiring.gauge(4).set(3.0); // in-flight sends still finishing: not shown
        assert!(!page().contains(&id.to_string()));
        // Re-activated before the old actor is gone: the old handle leaves the new entry be.
        let fresh = ConnectionSeries::new("mailgun", id);
        drop(retiring);
        assert!(is_listed(id));
        drop(fresh);
        assert!(!is_listed(id));
    }

    #[test]
    fn special_values_are_spelled_for_prometheus() {
        assert_eq!(sample(f64::INFINITY), "+Inf");
        assert_eq!(sample(f64::NEG_INFINITY), "-Inf");
        assert_eq!(sample(f64::NAN), "NaN");
        assert_eq!(sample(2.0), "2");
        assert_eq!(sample(0.125), "0.125");
    }
}
