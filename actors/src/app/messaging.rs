//! Sending and reading a message's status.
//!
//! A send is one message or a batch of up to 1,000, validated
//! all-or-nothing (the first invalid message's error names it, e.g.
//! `messages[3].to`, and nothing is stored). The answer comes only after the
//! messages are committed (group commit across concurrent requests).
//! `Idempotency-Key`: a repeat with the same key and body returns the
//! original answer and creates nothing; the same key with another body is a
//! conflict.

use chrono::Utc;
use msgengine_domain::message::MessageEvent;
use msgengine_domain::send::parse_send_request;
use msgengine_domain::{Channel, MessageId};
use msgengine_storage::repo::messages;
use serde_json::Value;
use sha2::{Digest, Sha256};

pub use msgengine_storage::repo::messages::MessageStatus;

use super::accept::{AcceptError, Accepted, IdempotencyKey};
use super::error::not_found;
use super::{App, AppError, ErrorKind, Tenant};
use msgengine_domain::lifecycle::suppressed_reason;

/// The name of the idempotency header, as errors name it.
pub const IDEMPOTENCY_HEADER: &str = "Idempotency-Key";

impl App {
    /// Validates, admits, routes and commits a send request (`body`: one
    /// message or `{"messages": [...]}`). `idempotency_key`: the raw header.
    pub async fn send(
        &self,
        tenant: Tenant,
        body: &Value,
        idempotency_key: Option<&[u8]>,
    ) -> Result<Accepted, AppError> {
        let idempotency = idempotency(idempotency_key, body)?;
        let request = parse_send_request(body, Utc::now()).inspect_err(|_| count_invalid(body))?;
        super::accept::run(self.engine(), tenant.organization_id, request, idempotency)
            .await
            .map_err(accept_error)
    }

    /// One message of the organization (another's is not found), its
    /// history in time order.
    pub async fn message_status(
        &self,
        tenant: Tenant,
        id: MessageId,
    ) -> Result<MessageStatus, AppError> {
        let client = self.pool().get().await?;
        let mut status = messages::get_status(&client, tenant.organization_id.0, id.0)
            .await
            .map_err(not_found("message"))?;
        in_time_order(&mut status.events);
        let channel = status.channel;
        if let Some(plan) = status.routing.as_mut().and_then(|r| r.plan.as_mut()) {
            self.name_places(&client, tenant, channel, plan).await?;
        }
        Ok(status)
    }

    /// A stored plan keeps provider ids only: names come from the channel's
    /// running connections (the route snapshot; a status read is a hot
    /// route), and from the providers table for any other (inactive, deleted).
    async fn name_places(
        &self,
        client: &impl msgengine_storage::repo::GenericClient,
        tenant: Tenant,
        channel: Channel,
        plan: &mut msgengine_domain::routing::Plan,
    ) -> Result<(), AppError> {
        let org = tenant.organization_id;
        let running = self.engine().routes().table().candidates(org, channel);
        let named = |id: msgengine_domain::ProviderId| {
            running
                .iter()
                .find(|c| c.provider_id == id)
                .map(|c| c.name.clone())
        };
        plan.name_places(&named);
        let missing: Vec<uuid::Uuid> = plan
            .candidates
            .iter()
            .chain(&plan.excluded)
            .filter(|c| c.name.is_empty())
            .map(|c| c.provider_id.0)
            .collect();
        if !missing.is_empty() {
            let found = msgengine_storage::repo::providers::names(client, org, &missing).await?;
            plan.name_places(&|id| {
                found
                    .iter()
                    .find(|(p, _)| *p == id.0)
                    .map(|(_, n)| std::sync::Arc::from(n.as_str()))
            });
        }
        Ok(())
    }
}

/// Counts the messages of a request refused as invalid, under their channel
/// when it is one (a message with no valid channel has no series to count in).
fn count_invalid(body: &Value) {
    let channel_of = |m: &Value| m.get("channel")?.as_str()?.parse::<Channel>().ok();
    let channels: Vec<Channel> = match body.get("messages").and_then(Value::as_array) {
        Some(messages) => messages.iter().filter_map(channel_of).collect(),
        None => channel_of(body).into_iter().collect(),
    };
    for channel in channels {
        crate::metrics::record_refused(channel, "invalid", 1);
    }
}

/// The idempotency key of a request: the header's value (1-255 visible
/// ASCII characters) and the hash of the parsed body (object keys sorted, so
/// formatting does not matter).
fn idempotency(raw: Option<&[u8]>, body: &Value) -> Result<Option<IdempotencyKey>, AppError> {
    let Some(raw) = raw else {
        return Ok(None);
    };
    let key = std::str::from_utf8(raw)
        .ok()
        .map(str::trim)
        .filter(|k| (1..=255).contains(&k.len()) && k.bytes().all(|b| b.is_ascii_graphic()))
        .ok_or_else(|| {
            AppError::bad_request(
                "invalid_idempotency_key",
                "Idempotency-Key must be 1-255 visible ASCII characters",
            )
            .with_field(IDEMPOTENCY_HEADER)
        })?;
    let canonical = serde_json::to_vec(body).unwrap_or_default();
    Ok(Some(IdempotencyKey {
        key: key.to_owned(),
        request_hash: Sha256::digest(&canonical).to_vec(),
    }))
}

fn accept_error(e: AcceptError) -> AppError {
    match e {
        AcceptError::RateLimited { retry_after } => AppError::new(
            ErrorKind::TooManyRequests,
            "rate_limited",
            "over the organization's send rate; retry after the Retry-After delay",
        )
        .with_retry_after(retry_after.as_secs_f64().ceil() as u64),
        AcceptError::OverBurst { burst } => AppError::unprocessable(
            "batch_over_burst",
            format!("this organization accepts at most {burst} messages in one request"),
        )
        .with_field("messages"),
        AcceptError::NoProvider { channel, index } => AppError::unprocessable(
            "no_provider",
            format!("no active {channel} provider is configured for this organization"),
        )
        .with_field(match index {
            Some(i) => format!("messages[{i}].channel"),
            None => "channel".to_owned(),
        }),
        AcceptError::NoRoute {
            channel,
            index,
            rule,
            why,
        } => AppError::unprocessable(
            "no_route",
            format!(
                "no {channel} provider of this organization may take this message (routing rule \
                 {rule:?}): {why}"
            ),
        )
        .with_field(match index {
            Some(i) => format!("messages[{i}].to"),
            None => "to".to_owned(),
        }),
        AcceptError::IdempotencyConflict => AppError::conflict(
            "idempotency_key_reused",
            "this Idempotency-Key was already used with a different request body",
        )
        .with_field(IDEMPOTENCY_HEADER),
        AcceptError::Suppressed { reason } => {
            AppError::unprocessable("recipient_suppressed", suppressed_reason(&reason))
                .with_field("to")
        }
        AcceptError::Store(e) => e.into(),
    }
}

/// Orders a history by `at`, keeping the stored order among equal times.
/// Entries are appended in the order they are written, and a provider's
/// webhook can be written before the engine's own `sending`/`sent` batch
/// for the same message; every entry's `at` is when its fact was recorded
/// (the provider cannot report a send before it was asked), so time order
/// is the order things happened.
fn in_time_order(events: &mut [MessageEvent]) {
    events.sort_by_key(|e| e.at);
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn history_is_shown_in_time_order_stable_among_equal_times() {
        let mut events: Vec<MessageEvent> = serde_json::from_value(json!([
            {"state": "accepted", "at": "2026-01-01T00:00:00.1Z"},
            {"state": "queued", "at": "2026-01-01T00:00:00.1Z"},
            {"state": "sent", "at": "2026-01-01T00:00:00.300Z", "providerAt": "2026-01-01T00:00:00Z"},
            {"state": "sending", "at": "2026-01-01T00:00:00.15Z"},
            {"state": "sent", "at": "2026-01-01T00:00:00.2Z"},
        ]))
        .expect("events");
        in_time_order(&mut events);
        let states: Vec<&str> = events.iter().map(|e| e.state.as_str()).collect();
        assert_eq!(states, ["accepted", "queued", "sending", "sent", "sent"]);
    }

    #[test]
    fn idempotency_keys_are_visible_ascii_and_hash_the_parsed_body() {
        let body = json!({"b": 1, "a": 2});
        assert!(idempotency(None, &body).ok().flatten().is_none());
        let a = idempotency(Some(b" key-1 "), &body).ok().flatten();
        let b = idempotency(Some(b"key-1"), &json!({"a": 2, "b": 1}))
            .ok()
            .flatten();
        assert_eq!(a.as_ref().map(|k| k.key.as_str()), Some("key-1"));
        assert_eq!(a.map(|k| k.request_hash), b.map(|k| k.request_hash));
        for bad in [&b""[..], b"with space", b"\xff", &[b'k'; 256]] {
            let e = idempotency(Some(bad), &body).err();
            assert_eq!(
                e.map(|e| e.field),
                Some(Some(IDEMPOTENCY_HEADER.to_owned()))
            );
        }
    }
}
