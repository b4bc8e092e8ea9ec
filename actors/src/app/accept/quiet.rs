//! Stage quiet hours (between route and suppress): a message of a quiet
//! category due inside the organization's quiet hours, in its recipient's
//! local time, is deferred to the end of them (stored `scheduled`, the
//! reason in its history), never dropped.

use chrono::{DateTime, Utc};
use msgengine_domain::message::MessageState;
use msgengine_domain::routing::quiet::QuietHours;
use msgengine_domain::routing::Country;
use msgengine_domain::send::NewMessage;
use msgengine_domain::Channel;
use msgengine_storage::repo::messages::NewMessageRow;

/// Defers the messages quiet hours hold; the reason for each deferred one
/// (by position), to put on its `scheduled` history entry.
pub fn defer(
    messages: &mut [NewMessage],
    quiet: &QuietHours,
    now: DateTime<Utc>,
) -> Vec<Option<String>> {
    messages
        .iter_mut()
        .map(|m| {
            let country = match m.channel {
                Channel::Email => None,
                Channel::Sms | Channel::Whatsapp => Country::of_phone(&m.to),
            };
            let due = m.send_at.unwrap_or(now);
            let deferral = quiet.defer(m.category, country, due)?;
            m.send_at = Some(deferral.until);
            Some(deferral.reason(quiet))
        })
        .collect()
}

/// Puts each deferral's reason on its row's `scheduled` entry (a row
/// refused for a suppressed recipient keeps its own).
pub fn explain(rows: &mut [NewMessageRow], reasons: Vec<Option<String>>) {
    for (row, reason) in rows.iter_mut().zip(reasons) {
        let (Some(reason), MessageState::Scheduled) = (reason, row.state) else {
            continue;
        };
        if let Some(last) = row.events.last_mut() {
            last.reason = Some(reason);
        }
    }
}

#[cfg(test)]
mod tests {
    use msgengine_domain::send::parse_send_request;
    use msgengine_domain::OrganizationId;
    use serde_json::json;

    use super::*;

    fn at(rfc3339: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(rfc3339)
            .expect("time")
            .with_timezone(&Utc)
    }

    #[test]
    fn only_quiet_categories_inside_the_window_are_deferred_with_a_reason() {
        let now = at("2026-12-07T22:00:00+01:00");
        let quiet: QuietHours =
            serde_json::from_value(json!({"from": "21:00", "to": "08:00"})).expect("quiet");
        let body = json!({"messages": [
            {"channel": "sms", "to": "+2348031234567", "text": "sale", "category": "marketing"},
            {"channel": "sms", "to": "+2348031234567", "text": "otp"},
            {"channel": "sms", "to": "+2348031234567", "text": "later", "category": "marketing",
             "sendAt": "2026-12-08T12:00:00+01:00"}
        ]});
        let mut messages = parse_send_request(&body, now).expect("valid").messages;
        let reasons = defer(&mut messages, &quiet, now);
        assert_eq!(messages[0].send_at, Some(at("2026-12-08T08:00:00+01:00")));
        assert_eq!(messages[1].send_at, None);
        assert_eq!(messages[2].send_at, Some(at("2026-12-08T12:00:00+01:00")));
        assert!(reasons[0]
            .as_deref()
            .is_some_and(|r| r.starts_with("quiet hours 21:00–08:00 in Africa/Lagos")));
        assert_eq!(reasons[1..], [None, None]);

        let org = OrganizationId::new();
        let mut rows =
            super::super::suppress::suppress(org, messages, None, true, now).expect("rows");
        explain(&mut rows, reasons);
        assert_eq!(rows[0].state, MessageState::Scheduled);
        assert!(rows[0].events[1].reason.is_some());
        assert_eq!(rows[1].state, MessageState::Queued);
        assert!(rows[1].events[1].reason.is_none());
    }
}
