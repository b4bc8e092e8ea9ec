//! Stage 5, commit: the request made ready for the group commit — its rows
//! (held by this node, or left for the scheduler when the node holds all it
//! may), the answer (also stored with the idempotency key) and the counts
//! recorded once it is committed.

use super::{count_by_channel, IdempotencyKey, MessageAnswer, SendAnswer};
use msgengine_domain::message::MessageState;
use msgengine_domain::OrganizationId;
use msgengine_storage::repo::messages::{IdempotencyRow, NewMessageRow};

/// A request ready to commit.
pub struct Prepared {
    pub rows: Vec<NewMessageRow>,
    /// The 202 body: `{id, status}` per message (`reason` for a rejected one).
    pub body: SendAnswer,
    pub idempotency: Option<IdempotencyRow>,
    /// Messages per channel accepted, and stored `rejected` (suppressed).
    pub accepted: [u64; 3],
    pub rejected: [u64; 3],
    /// Rows this node would have dispatched but leaves to the scheduler.
    pub spilled: u64,
}

/// Prepares `rows` of `org` for the commit. `node_full`: this node holds
/// all the jobs it may, so its rows are stored unleased for the scheduler,
/// which claims them as room frees (fairly per organization).
pub fn prepare(
    org: OrganizationId,
    mut rows: Vec<NewMessageRow>,
    is_batch: bool,
    key: Option<&IdempotencyKey>,
    node_full: bool,
) -> Prepared {
    let mut spilled = 0;
    if node_full {
        for row in rows.iter_mut().filter(|r| r.leased) {
            row.leased = false;
            spilled += 1;
        }
    }
    let body = response_body(&rows, is_batch);
    let rejected = |r: &NewMessageRow| r.state == MessageState::Rejected;
    Prepared {
        accepted: count_by_channel(rows.iter().map(|r| (r.message.channel, !rejected(r)))),
        rejected: count_by_channel(rows.iter().map(|r| (r.message.channel, rejected(r)))),
        idempotency: key.map(|k| IdempotencyRow {
            organization_id: org.0,
            key: k.key.clone(),
            request_hash: k.request_hash.clone(),
            // Stored as given, for replays; built only when a key is given.
            response: serde_json::to_value(&body).unwrap_or_default(),
        }),
        body,
        rows,
        spilled,
    }
}

/// The answer: one `{id, status}` (a single message) or `{messages: [...]}`
/// (a batch); a rejected message also says why.
fn response_body(rows: &[NewMessageRow], is_batch: bool) -> SendAnswer {
    let item = |r: &NewMessageRow| MessageAnswer {
        id: r.message.id,
        status: r.state,
        reason: (r.state == MessageState::Rejected)
            .then(|| r.events.last().and_then(|e| e.reason.clone()))
            .flatten(),
    };
    match rows {
        [one] if !is_batch => SendAnswer::One(item(one)),
        _ => SendAnswer::Batch {
            messages: rows.iter().map(item).collect(),
        },
    }
}

#[cfg(test)]
mod tests {
    use chrono::Utc;
    use msgengine_domain::lifecycle::suppressed_reason;
    use msgengine_domain::send::NewMessage;
    use msgengine_domain::Channel;
    use serde_json::json;

    use super::*;
    use crate::app::accept::suppress::suppress;

    fn rows(org: OrganizationId, reasons: Option<Vec<Option<String>>>) -> Vec<NewMessageRow> {
        let message = |channel, to: &str| NewMessage {
            channel,
            to: to.into(),
            from: None,
            subject: Some("s".into()).filter(|_| channel == Channel::Email),
            text: Some("hi".into()),
            html: None,
            metadata: None,
            send_at: None,
            extras: None,
            category: Default::default(),
            routing_tags: Default::default(),
        };
        let messages = vec![
            message(Channel::Sms, "+2348031234567"),
            message(Channel::Email, "a@example.com"),
        ];
        suppress(org, messages, reasons, true, Utc::now()).expect("rows")
    }

    fn channel_count(counts: [u64; 3], channel: Channel) -> u64 {
        counts[crate::metrics::channel_index(channel)]
    }

    #[test]
    fn a_batch_answers_each_message_and_counts_it_by_channel() {
        let org = OrganizationId::new();
        let rows = rows(org, Some(vec![None, Some("bounce".into())]));
        let (sms, email) = (rows[0].message.id, rows[1].message.id);
        let p = prepare(org, rows, true, None, false);
        assert_eq!(
            serde_json::to_value(&p.body).ok(),
            Some(json!({"messages": [
                {"id": sms, "status": "queued"},
                {"id": email, "status": "rejected", "reason": suppressed_reason("bounce")},
            ]}))
        );
        assert_eq!(channel_count(p.accepted, Channel::Sms), 1);
        assert_eq!(channel_count(p.accepted, Channel::Email), 0);
        assert_eq!(channel_count(p.rejected, Channel::Email), 1);
        assert!(p.idempotency.is_none());
        assert_eq!(p.spilled, 0);
        assert!(p.rows[0].leased);
    }

    #[test]
    fn a_single_message_answers_alone_and_the_key_stores_the_answer() {
        let org = OrganizationId::new();
        let mut rows = rows(org, None);
        rows.truncate(1);
        let id = rows[0].message.id;
        let key = IdempotencyKey {
            key: "k".into(),
            request_hash: vec![7],
        };
        let p = prepare(org, rows, false, Some(&key), false);
        let answer = json!({"id": id, "status": "queued"});
        assert_eq!(serde_json::to_value(&p.body).ok(), Some(answer.clone()));
        let stored = p.idempotency.expect("key row");
        assert_eq!((stored.organization_id, stored.key.as_str()), (org.0, "k"));
        assert_eq!((stored.request_hash, stored.response), (vec![7], answer));
    }

    #[test]
    fn a_full_node_leaves_its_rows_to_the_scheduler() {
        let org = OrganizationId::new();
        let p = prepare(org, rows(org, None), true, None, true);
        assert_eq!(p.spilled, 2);
        assert!(p.rows.iter().all(|r| !r.leased));
    }
}
