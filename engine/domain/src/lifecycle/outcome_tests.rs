//! Unit tests of the outcome constructors and their merge.

use chrono::TimeZone;

use super::*;
use MessageState::*;

fn t(secs: i64) -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2025, 6, 1, 12, 0, 0)
        .single()
        .expect("valid time")
        + chrono::Duration::seconds(secs)
}

fn call(provider: ProviderId, number: u32) -> Call {
    Call {
        provider,
        number,
        started_at: t(0),
        finished_at: t(1),
    }
}

fn failed_attempt(provider: ProviderId) -> Attempt {
    call(provider, 2).failed(
        AttemptOutcome::TransientError,
        "503 busy".into(),
        "transient".into(),
    )
}

#[test]
fn a_sent_outcome_records_sending_sent_and_the_attempt() {
    let p = ProviderId::new();
    let o = Outcome::sent(call(p, 3), Sent, "pm-1".into());
    assert_eq!(o.state, Sent);
    let entries: Vec<_> = o.events.iter().map(|e| (e.state, e.at)).collect();
    assert_eq!(entries, [(Sending, t(0)), (Sent, t(1))]);
    assert!(o
        .events
        .iter()
        .all(|e| e.provider_id == Some(p) && e.attempt == Some(3) && e.reason.is_none()));
    assert_eq!(o.attempts.len(), 1);
    let a = &o.attempts[0];
    assert_eq!((a.number, a.outcome), (3, AttemptOutcome::Sent));
    assert_eq!(a.provider_message_id.as_deref(), Some("pm-1"));
    assert_eq!((a.error.as_ref(), a.error_class.as_ref()), (None, None));
    assert_eq!((o.attempt_delta, o.provider_id), (1, Some(p)));
    assert_eq!(o.provider_message_id.as_deref(), Some("pm-1"));
    assert_eq!((o.next_attempt_at, o.release_lease), (None, true));
}

#[test]
fn a_delivery_reported_at_once_adds_delivered() {
    let p = ProviderId::new();
    let o = Outcome::sent(call(p, 1), Delivered, "pm".into());
    assert_eq!(o.state, Delivered);
    let states: Vec<_> = o.events.iter().map(|e| e.state).collect();
    assert_eq!(states, [Sending, Sent, Delivered]);
    assert_eq!(o.attempts[0].outcome, AttemptOutcome::Delivered);
}

#[test]
fn a_failed_call_records_its_error() {
    let p = ProviderId::new();
    let a = failed_attempt(p);
    assert_eq!((a.number, a.provider_id), (2, p));
    assert_eq!((a.started_at, a.finished_at), (t(0), t(1)));
    assert_eq!(a.outcome, AttemptOutcome::TransientError);
    assert_eq!(a.error.as_deref(), Some("503 busy"));
    assert_eq!(a.error_class.as_deref(), Some("transient"));
    assert_eq!(a.provider_message_id, None);
}

#[test]
fn retries_and_failovers_go_back_to_queued_with_the_error() {
    let p = ProviderId::new();
    let in_memory = Outcome::retry(failed_attempt(p), Next::InMemory, t(2));
    assert_eq!(in_memory.state, Queued);
    assert_eq!(
        in_memory.events,
        [MessageEvent::new(Queued, t(2))
            .with_reason("retry scheduled after transient: 503 busy")
            .with_provider(p)
            .with_attempt(2)]
    );
    assert_eq!(
        (in_memory.next_attempt_at, in_memory.release_lease),
        (None, false)
    );
    assert_eq!(
        (in_memory.attempt_delta, in_memory.provider_id),
        (1, Some(p))
    );
    assert_eq!(in_memory.attempts, [failed_attempt(p)]);
    let later = Outcome::retry(failed_attempt(p), Next::DueAt(t(60)), t(2));
    assert_eq!(
        (later.next_attempt_at, later.release_lease),
        (Some(t(60)), true)
    );
    let over = Outcome::fail_over(failed_attempt(p), t(2));
    assert_eq!(
        over.events[0].reason.as_deref(),
        Some("failing over after transient: 503 busy")
    );
    assert_eq!((over.state, over.release_lease), (Queued, false));
}

#[test]
fn a_final_failure_ends_the_message_with_the_providers_reason() {
    let p = ProviderId::new();
    let o = Outcome::failed(failed_attempt(p), "invalid number", t(2));
    assert_eq!(o.state, Failed);
    assert_eq!(
        o.events,
        [MessageEvent::new(Failed, t(2))
            .with_reason("invalid number")
            .with_provider(p)
            .with_attempt(2)]
    );
    assert_eq!((o.attempt_delta, o.provider_id), (1, Some(p)));
    assert_eq!((o.next_attempt_at, o.release_lease), (None, true));
}

#[test]
fn engine_decisions_write_one_entry_and_no_attempt() {
    let p = ProviderId::new();
    let cases = [
        (
            Outcome::circuit_open(p, Next::InMemory, t(1)),
            Queued,
            "circuit open",
            Some(p),
            None,
            false,
        ),
        (
            Outcome::circuit_open(p, Next::DueAt(t(30)), t(1)),
            Queued,
            "circuit open",
            Some(p),
            Some(t(30)),
            true,
        ),
        (
            Outcome::deferred("provider busy", Some(p), t(2), t(1)),
            Queued,
            "deferred: provider busy",
            Some(p),
            Some(t(2)),
            true,
        ),
        (
            Outcome::deferred("organization disabled", None, t(1), t(1)),
            Queued,
            "deferred: organization disabled",
            None,
            Some(t(1)),
            true,
        ),
        (
            Outcome::unroutable(Channel::Sms, t(1)),
            Failed,
            "no active sms provider to send through",
            None,
            None,
            true,
        ),
        (
            Outcome::expired(t(1)),
            Expired,
            "not delivered within the message lifetime",
            None,
            None,
            true,
        ),
    ];
    for (o, state, reason, provider, next, release) in cases {
        assert_eq!(o.state, state, "{reason}");
        assert_eq!(
            o.events,
            [MessageEvent {
                provider_id: provider,
                ..MessageEvent::new(state, t(1)).with_reason(reason)
            }]
        );
        assert!(o.attempts.is_empty() && o.attempt_delta == 0 && o.provider_id.is_none());
        assert_eq!(
            (o.next_attempt_at, o.release_lease),
            (next, release),
            "{reason}"
        );
    }
    let rejected = Outcome::suppressed("complaint", t(1));
    assert_eq!(rejected.state, Rejected);
    assert_eq!(
        rejected.events[0].reason,
        Some(suppressed_reason("complaint"))
    );
    assert!(rejected.release_lease);
}

#[test]
fn a_requeue_writes_no_history() {
    let o = Outcome::requeue(t(5));
    assert_eq!(o.state, Queued);
    assert!(o.events.is_empty() && o.attempts.is_empty());
    assert_eq!((o.next_attempt_at, o.release_lease), (Some(t(5)), true));
}

#[test]
fn a_refused_outcome_is_replaced_by_a_failed_one_without_provider_text() {
    let p = ProviderId::new();
    let mut original = Outcome::retry(failed_attempt(p), Next::DueAt(t(60)), t(2));
    original.provider_message_id = Some("pm\u{0}".into());
    let safe = original.storage_rejected(t(3));
    assert_eq!(safe.state, Failed);
    assert_eq!(
        safe.events,
        [MessageEvent::new(Failed, t(3))
            .with_reason(STORAGE_REJECTED_REASON)
            .with_provider(p)]
    );
    assert!(safe.attempts.is_empty());
    assert_eq!((safe.attempt_delta, safe.provider_id), (1, Some(p)));
    assert_eq!(
        (safe.provider_message_id, safe.next_attempt_at),
        (None, None)
    );
    assert!(safe.release_lease);
    assert!(STORAGE_REJECTED_REASON.starts_with("storage_rejected: "));
}

#[test]
fn outcomes_merge_in_order_and_never_go_back() {
    let p = ProviderId::new();
    let mut merged = Outcome::retry(failed_attempt(p), Next::InMemory, t(2));
    merged.merge(Outcome::sent(call(p, 3), Delivered, "pm".into()));
    merged.merge(Outcome::circuit_open(p, Next::DueAt(t(30)), t(4)));
    assert_eq!(
        merged.state, Delivered,
        "a later queued does not move it back"
    );
    let states: Vec<_> = merged.events.iter().map(|e| e.state).collect();
    assert_eq!(states, [Queued, Sending, Sent, Delivered, Queued]);
    assert_eq!((merged.attempts.len(), merged.attempt_delta), (2, 2));
    assert_eq!(merged.provider_message_id.as_deref(), Some("pm"));
    assert_eq!(merged.next_attempt_at, Some(t(30)));
    assert!(merged.release_lease);
}
