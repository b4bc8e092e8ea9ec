//! Stage 4, suppress: the request's rows. A single message to a recipient on
//! the organization's suppression list is refused; a batch member to one is
//! stored `rejected` (its id and reason can be looked up); every other
//! message starts as the lifecycle says.

use chrono::{DateTime, Utc};
use msgengine_domain::lifecycle::Start;
use msgengine_domain::send::NewMessage;
use msgengine_domain::{MessageId, OrganizationId};
use msgengine_storage::repo::messages::NewMessageRow;

use super::AcceptError;

/// The rows of `messages` accepted at `now`, given the suppression reason of
/// each recipient (`None` at all when the organization's list is empty).
pub fn suppress(
    org: OrganizationId,
    messages: Vec<NewMessage>,
    suppressed: Option<Vec<Option<String>>>,
    is_batch: bool,
    now: DateTime<Utc>,
) -> Result<Vec<NewMessageRow>, AcceptError> {
    let Some(reasons) = suppressed else {
        return Ok(messages
            .into_iter()
            .map(|m| row(org, m, None, now))
            .collect());
    };
    if !is_batch {
        if let Some(Some(reason)) = reasons.first() {
            return Err(AcceptError::Suppressed {
                reason: reason.clone(),
            });
        }
    }
    Ok(messages
        .into_iter()
        .zip(reasons)
        .map(|(m, reason)| row(org, m, reason.as_deref(), now))
        .collect())
}

/// The row of a new message: its lifecycle [`Start`] (rejected when its
/// recipient is `suppressed`), and the message as it will be dispatched.
fn row(
    org: OrganizationId,
    m: NewMessage,
    suppressed: Option<&str>,
    now: DateTime<Utc>,
) -> NewMessageRow {
    let start = Start::new(m.send_at, now);
    let start = match suppressed {
        Some(reason) => start.suppressed(reason),
        None => start,
    };
    NewMessageRow {
        send_at: m.send_at,
        state: start.state,
        next_attempt_at: start.due_at,
        leased: start.dispatch_now,
        events: start.events,
        message: m.into_outbound(MessageId::new(), org),
    }
}

#[cfg(test)]
mod tests {
    use msgengine_domain::lifecycle::suppressed_reason;
    use msgengine_domain::message::MessageState;
    use msgengine_domain::Channel;

    use super::*;

    fn sms(to: &str, send_at: Option<DateTime<Utc>>) -> NewMessage {
        NewMessage {
            channel: Channel::Sms,
            to: to.into(),
            from: None,
            subject: None,
            text: Some("hi".into()),
            html: None,
            metadata: None,
            send_at,
            extras: None,
            category: Default::default(),
            routing_tags: Default::default(),
        }
    }

    #[test]
    fn with_no_list_every_message_starts_as_the_lifecycle_says() {
        let (org, now) = (OrganizationId::new(), Utc::now());
        let later = now + chrono::Duration::hours(1);
        let rows = suppress(
            org,
            vec![
                sms("+2348031234567", None),
                sms("+2348031234568", Some(later)),
            ],
            None,
            true,
            now,
        )
        .expect("rows");
        assert_eq!(rows.len(), 2);
        assert_eq!(rows[0].state, MessageState::Queued);
        assert_eq!(rows[0].events, Start::new(None, now).events);
        assert!(rows[0].leased);
        assert_eq!(rows[0].next_attempt_at, now);
        assert_eq!(rows[0].message.organization_id, org);
        assert_eq!(rows[0].message.to, "+2348031234567");
        assert_eq!(rows[0].message.text, "hi");
        assert_eq!(rows[1].state, MessageState::Scheduled);
        assert!(!rows[1].leased);
        assert_eq!(
            (rows[1].send_at, rows[1].next_attempt_at),
            (Some(later), later)
        );
        assert_ne!(rows[0].message.id, rows[1].message.id);
    }

    #[test]
    fn a_single_message_to_a_suppressed_recipient_is_refused() {
        let result = suppress(
            OrganizationId::new(),
            vec![sms("+2348031234567", None)],
            Some(vec![Some("bounce".into())]),
            false,
            Utc::now(),
        );
        assert!(matches!(result, Err(AcceptError::Suppressed { reason }) if reason == "bounce"));
    }

    #[test]
    fn a_batch_member_to_a_suppressed_recipient_is_stored_rejected() {
        let now = Utc::now();
        let rows = suppress(
            OrganizationId::new(),
            vec![sms("+2348031234567", None), sms("+2348031234568", None)],
            Some(vec![None, Some("complaint".into())]),
            true,
            now,
        )
        .expect("rows");
        assert_eq!(rows[0].state, MessageState::Queued);
        assert!(rows[0].leased);
        assert_eq!(rows[1].state, MessageState::Rejected);
        assert!(!rows[1].leased);
        let reason = rows[1].events.last().and_then(|e| e.reason.clone());
        assert_eq!(reason, Some(suppressed_reason("complaint")));
    }

    #[test]
    fn a_single_message_to_a_listed_organization_but_clean_recipient_goes_on() {
        let rows = suppress(
            OrganizationId::new(),
            vec![sms("+2348031234567", None)],
            Some(vec![None]),
            false,
            Utc::now(),
        )
        .expect("rows");
        assert_eq!(rows[0].state, MessageState::Queued);
    }
}
