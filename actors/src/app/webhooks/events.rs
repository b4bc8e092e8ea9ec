//! A provider's parsed events become rows, and what a webhook did becomes
//! metrics. Every text field came from the provider's payload (untrusted even
//! once its signature checked out): it is cleaned of control characters, NUL
//! included, and capped here, the one place webhook text becomes a row.

use msgengine_domain::text::{clean_untrusted as clean, clean_untrusted_opt as clean_opt};
use msgengine_domain::Channel;
use msgengine_providers::webhook::{WebhookError, WebhookEvent};
use msgengine_storage::repo::webhook_events::{EventRow, Ingested};

use crate::metrics::{
    record_reported_transition, WEBHOOKS_RECEIVED, WEBHOOKS_REJECTED, WEBHOOK_EVENTS,
};
use crate::state::suppress::normalize;

/// Most characters kept of a webhook's reason text.
const MAX_EVENT_REASON_CHARS: usize = 500;
/// Most characters kept of an id, status word, code or recipient in a webhook.
const MAX_EVENT_WORD_CHARS: usize = 256;
/// Most characters kept of an event id (ids derived from several fields
/// run longer; a cut id could make two events look like one).
const MAX_EVENT_ID_CHARS: usize = 1024;

/// The storage shape of a parsed event, cleaned and capped.
pub(super) fn row(e: WebhookEvent) -> EventRow {
    EventRow {
        event_id: clean(&e.event_id, MAX_EVENT_ID_CHARS),
        provider_message_id: clean_opt(e.provider_message_id, MAX_EVENT_WORD_CHARS),
        message_id: e
            .message_id
            .as_deref()
            .and_then(|id| uuid::Uuid::parse_str(id).ok()),
        state: e.state,
        engagement: e.engagement.map(|k| k.as_str().to_owned()),
        raw_status: clean(&e.raw_status, MAX_EVENT_WORD_CHARS),
        recipient: clean_opt(e.recipient, MAX_EVENT_WORD_CHARS),
        error_code: clean_opt(e.error_code, MAX_EVENT_WORD_CHARS),
        reason: clean_opt(e.reason, MAX_EVENT_REASON_CHARS),
        suppress: e.suppress.map(|s| s.as_str().to_owned()),
        occurred_at: e.occurred_at,
    }
}

pub(super) fn rows(events: Vec<WebhookEvent>) -> Vec<EventRow> {
    events.into_iter().map(row).collect()
}

/// The (normalised recipient, reason) pairs the events put on the
/// organization's suppression list.
/// The events that are final receipts: `true` delivered (or read), `false`
/// not delivered (failed, bounced, expired). Engagement and progress
/// events are not receipts.
pub(super) fn final_receipts(rows: &[EventRow]) -> Vec<bool> {
    use msgengine_domain::message::MessageState;
    rows.iter()
        .filter_map(|row| match row.state? {
            MessageState::Delivered | MessageState::Read => Some(true),
            MessageState::Failed | MessageState::Bounced | MessageState::Expired => Some(false),
            _ => None,
        })
        .collect()
}

pub(super) fn suppressions(rows: &[EventRow]) -> Vec<(String, String)> {
    rows.iter()
        .filter_map(|e| Some((normalize(e.recipient.as_deref()?), e.suppress.clone()?)))
        .collect()
}

/// Counts a refused webhook (`reason`: `signature`, `stale`, `replayed`,
/// `unknown_provider`, `malformed`).
pub(super) fn count_rejected(channel: Channel, reason: &'static str) {
    metrics::counter!(WEBHOOKS_REJECTED, "channel" => channel.as_str(), "reason" => reason)
        .increment(1);
}

pub(super) fn rejected_reason(e: &WebhookError) -> &'static str {
    match e {
        WebhookError::Unauthorized(_) => "signature",
        WebhookError::Stale(_) => "stale",
        WebhookError::Malformed(_) => "malformed",
    }
}

/// Counts an accepted webhook, its events by result, and the delivered and
/// failed messages its events moved.
pub(super) fn count_received(channel: Channel, provider: &'static str, done: &Ingested) {
    let ch = channel.as_str();
    metrics::counter!(WEBHOOKS_RECEIVED, "channel" => ch, "provider" => provider).increment(1);
    for (result, n) in [
        ("applied", done.applied),
        ("duplicate", done.duplicates),
        ("unmatched", done.unmatched),
    ] {
        metrics::counter!(WEBHOOK_EVENTS, "channel" => ch, "provider" => provider, "result" => result)
            .increment(n as u64);
    }
    for t in &done.transitions {
        record_reported_transition(channel, provider, t.message_id, t.from, t.to);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::Utc;
    use msgengine_domain::message::MessageState;

    #[test]
    fn provider_text_is_cleaned_and_capped_before_it_becomes_a_row() {
        let mut event = WebhookEvent::new("evt\u{0}1", "delivered\r\n", Utc::now());
        event.state = Some(MessageState::Delivered);
        event.reason = Some("x".repeat(5_000));
        event.message_id = Some("not-a-uuid".to_owned());
        let row = row(event);
        assert!(!row.event_id.contains('\u{0}'));
        assert!(!row.raw_status.contains('\r'));
        assert!(row.reason.map(|r| r.chars().count()).unwrap_or(0) <= MAX_EVENT_REASON_CHARS + 1);
        assert_eq!(row.message_id, None);
    }
}
