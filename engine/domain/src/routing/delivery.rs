//! A connection's live delivery ratio: delivered over all final receipts,
//! in a window that fades exponentially (a receipt counts half after
//! [`HALF_LIFE_SECS`]), so a provider that starts failing loses its rank
//! within minutes and one that recovers regains it. Time is passed in.

/// A receipt's weight halves every five minutes.
pub const HALF_LIFE_SECS: f64 = 300.0;

/// Decayed counts of final receipts.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct DeliveryWindow {
    delivered: f64,
    total: f64,
    /// When the counts were last decayed (seconds on the caller's clock).
    at: f64,
}

impl DeliveryWindow {
    fn decay_to(&mut self, now: f64) {
        let elapsed = now - self.at;
        if elapsed > 0.0 {
            let keep = (-elapsed * std::f64::consts::LN_2 / HALF_LIFE_SECS).exp();
            self.delivered *= keep;
            self.total *= keep;
            self.at = now;
        }
    }

    /// Counts a final receipt: delivered, or not (failed, bounced, expired).
    pub fn record(&mut self, delivered: bool, now: f64) {
        self.decay_to(now);
        self.total += 1.0;
        if delivered {
            self.delivered += 1.0;
        }
    }

    /// The ratio and the (decayed) number of receipts it is over, at `now`.
    pub fn read(&self, now: f64) -> (Option<f64>, u32) {
        let mut at_now = *self;
        at_now.decay_to(now);
        let ratio = (at_now.total > 0.0).then(|| at_now.delivered / at_now.total);
        (ratio, at_now.total.round() as u32)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_ratio_is_over_final_receipts_and_fades_with_time() {
        let mut w = DeliveryWindow::default();
        assert_eq!(w.read(0.0), (None, 0));
        for i in 0..100 {
            w.record(i < 90, 0.0);
        }
        let (ratio, samples) = w.read(0.0);
        assert!((ratio.expect("ratio") - 0.9).abs() < 1e-9);
        assert_eq!(samples, 100);
        // A half-life later the same receipts count half.
        let (ratio, samples) = w.read(HALF_LIFE_SECS);
        assert!((ratio.expect("ratio") - 0.9).abs() < 0.01);
        assert_eq!(samples, 50);
    }

    #[test]
    fn a_provider_that_starts_failing_loses_its_ratio_within_minutes() {
        let mut w = DeliveryWindow::default();
        for i in 0..1000 {
            w.record(true, f64::from(i) * 0.6);
        }
        // Then every receipt fails, one a second, for five minutes.
        let start = 600.0;
        for i in 0..300 {
            w.record(false, start + f64::from(i));
        }
        let (ratio, _) = w.read(start + 300.0);
        assert!(ratio.expect("ratio") < 0.6, "{ratio:?}");
    }
}
