//! Provider reports (verified webhooks): which history entry a report
//! appends to its message, and the state a group of reports of one message
//! reaches.

use chrono::{DateTime, Utc};

use super::state::MessageState;
use crate::ids::ProviderId;
use crate::message::MessageEvent;

/// What a provider reported about a message, as the lifecycle reads it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ProviderReport<'a> {
    /// The state the report moves the message to, if any.
    pub state: Option<MessageState>,
    /// `opened`, `clicked`, `complained`, `unsubscribed`, `deferred`.
    pub engagement: Option<&'a str>,
    /// The provider's own status word.
    pub raw_status: &'a str,
    /// The provider's reason in words.
    pub reason: Option<&'a str>,
    /// The provider's error code.
    pub error_code: Option<&'a str>,
    /// When the provider says it happened.
    pub occurred_at: DateTime<Utc>,
}

/// The history entry a report appends to its message, if any. `at` is when
/// the engine recorded it (`recorded_at`), so a history never goes back in
/// time; the provider's own time is kept as `providerAt` (some providers
/// stamp whole seconds, and a provider's clock is not ours). An opened or
/// clicked report implies `delivered` (providers.md §12); other engagement
/// without a state (a deferral) appends nothing.
pub fn report_event(
    provider: ProviderId,
    report: &ProviderReport<'_>,
    recorded_at: DateTime<Utc>,
) -> Option<MessageEvent> {
    let state = report.state.or(match report.engagement {
        Some("opened") | Some("clicked") => Some(MessageState::Delivered),
        _ => None,
    })?;
    let mut reason = match (report.engagement, report.reason) {
        (Some(k), Some(r)) => format!("{k}: {r}"),
        (Some(k), None) => k.to_owned(),
        (None, Some(r)) => r.to_owned(),
        (None, None) => format!("provider reported {}", report.raw_status),
    };
    if let Some(code) = report.error_code {
        reason = format!("{reason} (code {code})");
    }
    let mut event = MessageEvent::new(state, recorded_at)
        .with_reason(reason)
        .with_provider(provider);
    event.provider_at = Some(report.occurred_at);
    Some(event)
}

/// Several reports of one message applied together: the furthest state
/// their own states reach in the provider's time order (by the table: a
/// report that could not follow the one before is ignored for the state),
/// and their history entries in that order.
pub fn merge_reports(
    provider: ProviderId,
    reports: &[ProviderReport<'_>],
    recorded_at: DateTime<Utc>,
) -> (Option<MessageState>, Vec<MessageEvent>) {
    let mut sorted: Vec<&ProviderReport<'_>> = reports.iter().collect();
    sorted.sort_by_key(|r| r.occurred_at);
    let mut state: Option<MessageState> = None;
    for next in sorted.iter().filter_map(|r| r.state) {
        state = match state {
            Some(cur) if !cur.can_advance_to(next) => Some(cur),
            _ => Some(next),
        };
    }
    let history = sorted
        .iter()
        .filter_map(|r| report_event(provider, r, recorded_at))
        .collect();
    (state, history)
}

#[cfg(test)]
mod tests {
    use chrono::TimeZone;

    use super::*;
    use MessageState::*;

    fn t(secs: i64) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2025, 6, 1, 12, 0, 0)
            .single()
            .expect("valid time")
            + chrono::Duration::seconds(secs)
    }

    fn report(state: Option<MessageState>, secs: i64) -> ProviderReport<'static> {
        ProviderReport {
            state,
            engagement: None,
            raw_status: "DELIVRD",
            reason: None,
            error_code: None,
            occurred_at: t(secs),
        }
    }

    #[test]
    fn a_state_report_becomes_an_entry_at_the_recording_time() {
        let provider = ProviderId::new();
        let event = report_event(provider, &report(Some(Delivered), 5), t(9)).expect("entry");
        let mut expected = MessageEvent::new(Delivered, t(9))
            .with_reason("provider reported DELIVRD")
            .with_provider(provider);
        expected.provider_at = Some(t(5));
        assert_eq!(event, expected);
    }

    #[test]
    fn reasons_combine_engagement_reason_and_code() {
        let provider = ProviderId::new();
        let reason = |engagement, reason, code| {
            let r = ProviderReport {
                engagement,
                reason,
                error_code: code,
                ..report(Some(Bounced), 0)
            };
            report_event(provider, &r, t(1)).and_then(|e| e.reason)
        };
        assert_eq!(
            reason(None, Some("mailbox full"), None).as_deref(),
            Some("mailbox full")
        );
        assert_eq!(
            reason(None, Some("mailbox full"), Some("550")).as_deref(),
            Some("mailbox full (code 550)")
        );
        assert_eq!(
            reason(Some("complained"), Some("spam"), None).as_deref(),
            Some("complained: spam")
        );
        assert_eq!(
            reason(Some("complained"), None, None).as_deref(),
            Some("complained")
        );
        assert_eq!(
            reason(None, None, Some("30003")).as_deref(),
            Some("provider reported DELIVRD (code 30003)")
        );
    }

    #[test]
    fn opens_and_clicks_imply_delivered_and_other_engagement_adds_nothing() {
        let provider = ProviderId::new();
        for kind in ["opened", "clicked"] {
            let r = ProviderReport {
                engagement: Some(kind),
                ..report(None, 0)
            };
            let event = report_event(provider, &r, t(1)).expect("entry");
            assert_eq!(
                (event.state, event.reason.as_deref()),
                (Delivered, Some(kind))
            );
        }
        for kind in ["deferred", "complained", "unsubscribed"] {
            let r = ProviderReport {
                engagement: Some(kind),
                ..report(None, 0)
            };
            assert_eq!(report_event(provider, &r, t(1)), None, "{kind}");
        }
        let with_state = ProviderReport {
            engagement: Some("complained"),
            ..report(Some(Failed), 0)
        };
        assert_eq!(
            report_event(provider, &with_state, t(1)).map(|e| e.state),
            Some(Failed)
        );
    }

    #[test]
    fn a_group_reaches_its_furthest_state_in_provider_time_order() {
        let provider = ProviderId::new();
        // Out of order: read (t=3) before delivered (t=2) before sent (t=1).
        let group = [
            report(Some(Read), 3),
            report(Some(Sent), 1),
            report(Some(Delivered), 2),
        ];
        let (state, history) = merge_reports(provider, &group, t(9));
        assert_eq!(state, Some(Read));
        let states: Vec<_> = history.iter().map(|e| e.state).collect();
        assert_eq!(states, [Sent, Delivered, Read]);
        assert!(history.iter().all(|e| e.at == t(9)));
    }

    #[test]
    fn a_failure_after_delivery_is_kept_in_history_but_not_in_state() {
        let provider = ProviderId::new();
        let group = [report(Some(Delivered), 1), report(Some(Failed), 2)];
        let (state, history) = merge_reports(provider, &group, t(9));
        assert_eq!(state, Some(Delivered));
        assert_eq!(history.len(), 2);
        // Engagement alone changes no state, and reports with no entry are skipped.
        let opened = ProviderReport {
            engagement: Some("opened"),
            ..report(None, 1)
        };
        let deferred = ProviderReport {
            engagement: Some("deferred"),
            ..report(None, 2)
        };
        let (state, history) = merge_reports(provider, &[opened, deferred], t(9));
        assert_eq!(state, None);
        assert_eq!(history.len(), 1);
        assert_eq!(merge_reports(provider, &[], t(9)), (None, Vec::new()));
    }
}
