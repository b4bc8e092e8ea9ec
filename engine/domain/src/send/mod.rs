//! Parsing and validating `POST /api/messaging/send` bodies.
//!
//! A body is one message (`{"channel", "to", ...}`) or a batch
//! (`{"messages": [ ... ]}`, 1 to [`MAX_BATCH`] messages); a body with a
//! `messages` key is a batch. Unknown fields are rejected. A batch is
//! all-or-nothing: the first invalid message's error is returned, its field
//! path prefixed with the message's index (`messages[3].to`).
//!
//! Invariants of a [`NewMessage`] that parsed: `to` is a valid address for its
//! channel (E.164-normalised for SMS and WhatsApp); email has non-empty text
//! or html; SMS and WhatsApp have non-empty text and no subject or html; every
//! size limit holds; `send_at` is either `None` (send now) or strictly in the
//! future and at most [`MAX_SEND_AHEAD_DAYS`] away. Time is passed in, so
//! parsing is deterministic.

mod extras;
mod paths;
mod segments;
#[cfg(test)]
mod tests;

use std::collections::BTreeMap;

use chrono::{DateTime, TimeDelta, Utc};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::channel::Channel;
use crate::ids::{MessageId, OrganizationId};
use crate::message::OutboundMessage;
use crate::routing::rules::validate_tags;
use crate::routing::{Category, MessageRouting};
use crate::validate::{self as v, Valid, ValidationError};
use paths::{serde_error, with_prefix};

pub use segments::segments_sms;

/// Most messages in one batch.
pub const MAX_BATCH: usize = 1000;
/// Longest email subject, in characters (RFC 5322's line limit).
pub const MAX_SUBJECT_CHARS: usize = 998;
/// Largest email `text` or `html`, each, in bytes (256 KiB).
pub const MAX_EMAIL_BODY_BYTES: usize = 256 * 1024;
/// Longest SMS text, in characters (about ten concatenated parts).
pub const MAX_SMS_TEXT_CHARS: usize = 1600;
/// Longest WhatsApp text, in characters.
pub const MAX_WHATSAPP_TEXT_CHARS: usize = 4096;
/// Largest `metadata` object, serialised, in bytes.
pub const MAX_METADATA_BYTES: usize = 4096;
/// How far in the past a `sendAt` may be (then it means "now"), in seconds.
pub const SEND_AT_PAST_GRACE_SECS: i64 = 5 * 60;
/// How far ahead a `sendAt` may be, in days.
pub const MAX_SEND_AHEAD_DAYS: i64 = 30;

/// A parsed, validated send request.
#[derive(Debug, Clone, PartialEq)]
pub struct SendRequest {
    /// The messages, in request order (one for a single-message body).
    pub messages: Vec<NewMessage>,
    /// The body was a batch (`{"messages": [...]}`): answer with a list.
    pub is_batch: bool,
}

/// One valid message to accept.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct NewMessage {
    pub channel: Channel,
    /// E.164 for SMS and WhatsApp; the address as given (trimmed) for email.
    pub to: String,
    /// Sender override: an email address, an E.164 number or (SMS) an
    /// alphanumeric sender id. `None` uses the provider connection's default.
    pub from: Option<String>,
    /// Email only.
    pub subject: Option<String>,
    pub text: Option<String>,
    /// Email only.
    pub html: Option<String>,
    /// Echoed back in status and webhooks.
    pub metadata: Option<Map<String, Value>>,
    /// When to send; `None` means now.
    pub send_at: Option<DateTime<Utc>>,
    /// Channel-specific content (email headers, attachments; WhatsApp
    /// template, media).
    pub extras: Option<Box<crate::message::MessageExtras>>,
    /// `transactional` unless the sender says `marketing`.
    pub category: Category,
    /// Routing tags (the object form of `tags`).
    pub routing_tags: BTreeMap<String, String>,
}

impl NewMessage {
    /// The message as a provider adapter sends it (an html-only email has an
    /// empty `text`). Its first state and history are
    /// [`crate::lifecycle::Start::new`]'s.
    pub fn into_outbound(self, id: MessageId, organization_id: OrganizationId) -> OutboundMessage {
        OutboundMessage {
            id,
            organization_id,
            channel: self.channel,
            to: self.to,
            from: self.from,
            subject: self.subject,
            text: self.text.unwrap_or_default(),
            html: self.html,
            metadata: self.metadata,
            extras: self.extras,
            routing: (self.category != Category::default() || !self.routing_tags.is_empty()).then(
                || {
                    Box::new(MessageRouting {
                        category: self.category,
                        tags: self.routing_tags,
                        plan: None,
                    })
                },
            ),
        }
    }
}

/// `tags`: a list of provider tags (email), or a map of routing tags.
#[derive(Deserialize)]
#[serde(untagged)]
enum RawTags {
    List(Vec<String>),
    Map(BTreeMap<String, String>),
}

/// One message as the client sent it, before the rules are applied.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct RawMessage {
    channel: Channel,
    to: String,
    #[serde(default)]
    from: Option<String>,
    #[serde(default)]
    subject: Option<String>,
    #[serde(default)]
    text: Option<String>,
    #[serde(default)]
    html: Option<String>,
    #[serde(default)]
    metadata: Option<Map<String, Value>>,
    #[serde(default)]
    send_at: Option<String>,
    #[serde(default)]
    reply_to: Option<String>,
    #[serde(default)]
    headers: Option<Map<String, Value>>,
    #[serde(default)]
    tags: Option<RawTags>,
    #[serde(default)]
    category: Option<Category>,
    #[serde(default)]
    attachments: Option<Vec<extras::RawAttachment>>,
    #[serde(default)]
    template: Option<crate::message::WhatsappTemplate>,
    #[serde(default)]
    media: Option<crate::message::Media>,
}

/// Parses and validates a send body (one message or a batch) at time `now`.
pub fn parse_send_request(body: &Value, now: DateTime<Utc>) -> Valid<SendRequest> {
    let Value::Object(object) = body else {
        return Err(ValidationError::new(
            "body",
            "invalid_type",
            "the request body must be a JSON object",
        ));
    };
    let Some(messages) = object.get("messages") else {
        let message = parse_message(body, "", now)?;
        return Ok(SendRequest {
            messages: vec![message],
            is_batch: false,
        });
    };
    if let Some(other) = object.keys().find(|k| *k != "messages") {
        return Err(ValidationError::new(
            other.as_str(),
            "unknown_field",
            format!("unknown field `{other}`: a batch body has only `messages`"),
        ));
    }
    let Value::Array(items) = messages else {
        return Err(ValidationError::new(
            "messages",
            "invalid_type",
            "messages must be an array of messages",
        ));
    };
    if items.is_empty() {
        return Err(ValidationError::new(
            "messages",
            "empty_batch",
            "messages must hold at least one message",
        ));
    }
    if items.len() > MAX_BATCH {
        return Err(ValidationError::new(
            "messages",
            "batch_too_large",
            format!(
                "messages holds {} messages; a batch may hold at most {MAX_BATCH}",
                items.len()
            ),
        ));
    }
    let messages = items
        .iter()
        .enumerate()
        .map(|(i, item)| parse_message(item, &format!("messages[{i}]"), now))
        .collect::<Valid<Vec<_>>>()?;
    Ok(SendRequest {
        messages,
        is_batch: true,
    })
}

/// Parses one message; `prefix` is its path in the body (`""` or `messages[3]`).
fn parse_message(value: &Value, prefix: &str, now: DateTime<Utc>) -> Valid<NewMessage> {
    let raw: RawMessage =
        serde_path_to_error::deserialize(value).map_err(|e| serde_error(prefix, &e))?;
    validate_message(raw, now).map_err(|e| with_prefix(prefix, e))
}

/// Applies every rule to one message. Errors name fields relative to the message.
fn validate_message(raw: RawMessage, now: DateTime<Utc>) -> Valid<NewMessage> {
    let channel = raw.channel;
    let (provider_tags, routing_tags) = match raw.tags {
        Some(RawTags::List(list)) => (Some(list), BTreeMap::new()),
        Some(RawTags::Map(map)) => (None, map),
        None => (None, BTreeMap::new()),
    };
    validate_tags("tags", &routing_tags)?;
    let raw_extras = extras::RawExtras {
        reply_to: raw.reply_to,
        headers: raw.headers,
        tags: provider_tags,
        attachments: raw.attachments,
        template: raw.template,
        media: raw.media,
    };
    let rich_whatsapp = channel == Channel::Whatsapp && raw_extras.has_whatsapp_content();
    let extras = extras::validate(channel, raw_extras)?;
    let to = raw.to.trim();
    let to = match channel {
        Channel::Email => v::email("to", to).map(|()| to.to_owned())?,
        Channel::Sms | Channel::Whatsapp => v::e164("to", to)?,
    };
    let from = non_blank(raw.from)
        .map(|f| validate_from(channel, f.trim()))
        .transpose()?;
    let content = match channel {
        Channel::Email => validate_email_content(raw.subject, raw.text, raw.html)?,
        Channel::Sms => {
            validate_phone_content(raw.subject, raw.text, raw.html, MAX_SMS_TEXT_CHARS)?
        }
        Channel::Whatsapp if rich_whatsapp && non_blank(raw.text.clone()).is_none() => {
            refuse_email_fields(&raw.subject, &raw.html)?;
            Content {
                subject: None,
                text: None,
                html: None,
            }
        }
        Channel::Whatsapp => {
            validate_phone_content(raw.subject, raw.text, raw.html, MAX_WHATSAPP_TEXT_CHARS)?
        }
    };
    if let Some(metadata) = &raw.metadata {
        v::json_object("metadata", metadata, MAX_METADATA_BYTES)?;
    }
    let send_at = raw
        .send_at
        .map(|s| validate_send_at(&s, now))
        .transpose()?
        .flatten();
    Ok(NewMessage {
        channel,
        to,
        from,
        subject: content.subject,
        text: content.text,
        html: content.html,
        metadata: raw.metadata,
        send_at,
        extras,
        category: raw.category.unwrap_or_default(),
        routing_tags,
    })
}

/// A message's validated subject and bodies.
struct Content {
    subject: Option<String>,
    text: Option<String>,
    html: Option<String>,
}

fn validate_from(channel: Channel, from: &str) -> Valid<String> {
    match channel {
        Channel::Email => v::email("from", from).map(|()| from.to_owned()),
        Channel::Whatsapp => v::e164("from", from),
        Channel::Sms if from.starts_with('+') => v::e164("from", from),
        Channel::Sms if is_alphanumeric_sender(from) => Ok(from.to_owned()),
        Channel::Sms => Err(ValidationError::new(
            "from",
            "invalid_sender",
            "from must be an E.164 number or 1-11 letters, digits and spaces with at least one letter",
        )),
    }
}

/// An alphanumeric SMS sender id: 1-11 ASCII letters, digits or spaces, at
/// least one letter (networks reject all-digit alphanumeric ids).
fn is_alphanumeric_sender(s: &str) -> bool {
    (1..=11).contains(&s.len())
        && s.bytes().all(|b| b.is_ascii_alphanumeric() || b == b' ')
        && s.bytes().any(|b| b.is_ascii_alphabetic())
}

fn validate_email_content(
    subject: Option<String>,
    text: Option<String>,
    html: Option<String>,
) -> Valid<Content> {
    let subject = non_blank(subject);
    if let Some(s) = &subject {
        if s.chars().count() > MAX_SUBJECT_CHARS {
            return Err(too_long("subject", MAX_SUBJECT_CHARS, "characters"));
        }
        if s.chars().any(char::is_control) {
            return Err(control_characters("subject", "control characters"));
        }
    }
    let text = non_blank(text);
    let html = non_blank(html);
    if text.is_none() && html.is_none() {
        return Err(ValidationError::new(
            "text",
            "empty_content",
            "an email needs a non-empty text or html",
        ));
    }
    for (field, body) in [("text", &text), ("html", &html)] {
        if let Some(body) = body {
            if body.len() > MAX_EMAIL_BODY_BYTES {
                return Err(too_long(field, MAX_EMAIL_BODY_BYTES, "bytes"));
            }
            check_body_characters(field, body)?;
        }
    }
    Ok(Content {
        subject,
        text,
        html,
    })
}

/// `subject` and `html` are email fields.
fn refuse_email_fields(subject: &Option<String>, html: &Option<String>) -> Valid<()> {
    for (field, value) in [("subject", subject), ("html", html)] {
        if value.is_some() {
            return Err(ValidationError::new(
                field,
                "not_allowed",
                format!("{field} is only allowed for email"),
            ));
        }
    }
    Ok(())
}

fn validate_phone_content(
    subject: Option<String>,
    text: Option<String>,
    html: Option<String>,
    max_chars: usize,
) -> Valid<Content> {
    refuse_email_fields(&subject, &html)?;
    let Some(text) = non_blank(text) else {
        return Err(ValidationError::new(
            "text",
            "empty_content",
            "text must not be empty",
        ));
    };
    if text.chars().count() > max_chars {
        return Err(too_long("text", max_chars, "characters"));
    }
    check_body_characters("text", &text)?;
    Ok(Content {
        subject: None,
        text: Some(text),
        html: None,
    })
}

/// A message body may hold line breaks and tabs, no other control character.
fn check_body_characters(field: &str, body: &str) -> Valid<()> {
    if body
        .chars()
        .any(|c| c.is_control() && !matches!(c, '\n' | '\r' | '\t'))
    {
        return Err(control_characters(
            field,
            "control characters other than line breaks and tabs",
        ));
    }
    Ok(())
}

/// Parses `sendAt`: `None` when it means now (up to the grace period in the
/// past), the time when it is in the future.
fn validate_send_at(value: &str, now: DateTime<Utc>) -> Valid<Option<DateTime<Utc>>> {
    let at = DateTime::parse_from_rfc3339(value.trim())
        .map_err(|_| {
            ValidationError::new(
                "sendAt",
                "invalid_time",
                "sendAt must be an RFC 3339 time such as 2025-06-01T09:30:00Z",
            )
        })?
        .with_timezone(&Utc);
    if now - at > TimeDelta::seconds(SEND_AT_PAST_GRACE_SECS) {
        return Err(ValidationError::new(
            "sendAt",
            "too_far_in_past",
            "sendAt must not be more than 5 minutes in the past",
        ));
    }
    if at - now > TimeDelta::days(MAX_SEND_AHEAD_DAYS) {
        return Err(ValidationError::new(
            "sendAt",
            "too_far_in_future",
            format!("sendAt must be at most {MAX_SEND_AHEAD_DAYS} days ahead"),
        ));
    }
    Ok((at > now).then_some(at))
}

/// An absent, empty or whitespace-only optional text is treated as absent.
fn non_blank(value: Option<String>) -> Option<String> {
    value.filter(|s| !s.trim().is_empty())
}

fn too_long(field: &str, max: usize, unit: &str) -> ValidationError {
    ValidationError::new(
        field,
        "too_long",
        format!("{field} must be at most {max} {unit}"),
    )
}

fn control_characters(field: &str, what: &str) -> ValidationError {
    ValidationError::new(
        field,
        "invalid_characters",
        format!("{field} must not contain {what}"),
    )
}
