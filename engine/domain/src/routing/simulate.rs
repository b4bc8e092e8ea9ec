//! `POST /api/routing/simulate`: a hypothetical message, parsed and
//! validated like a send's routing fields, to be planned without sending.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use serde::Deserialize;
use serde_json::Value;

use super::rules::{validate_tags, Category};
use crate::channel::Channel;
use crate::ids::MessageId;
use crate::validate::{self as v, Valid, ValidationError};

/// The body as the client sends it.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct Raw {
    channel: Channel,
    to: String,
    #[serde(default)]
    category: Option<Category>,
    #[serde(default)]
    tags: BTreeMap<String, String>,
    #[serde(default)]
    at: Option<String>,
    #[serde(default)]
    message_id: Option<uuid::Uuid>,
}

/// A valid hypothetical message.
#[derive(Debug, Clone, PartialEq)]
pub struct Simulation {
    pub channel: Channel,
    /// E.164 for SMS and WhatsApp, the address for email.
    pub to: String,
    pub category: Category,
    pub tags: BTreeMap<String, String>,
    /// When it would be due (time windows match on it); `now` by default.
    pub at: DateTime<Utc>,
    /// The id a `weighted` draw is fixed by: a real message's id replays
    /// its draw; a fresh id otherwise.
    pub message_id: MessageId,
}

impl Simulation {
    pub fn parse(body: Value, now: DateTime<Utc>) -> Valid<Simulation> {
        let raw: Raw = serde_path_to_error::deserialize(body)
            .map_err(|e| v::from_serde(&e.path().to_string(), &e.inner().to_string()))?;
        let to = raw.to.trim();
        let to = match raw.channel {
            Channel::Email => v::email("to", to).map(|()| to.to_owned())?,
            Channel::Sms | Channel::Whatsapp => v::e164("to", to)?,
        };
        validate_tags("tags", &raw.tags)?;
        let at = match raw.at {
            None => now,
            Some(at) => DateTime::parse_from_rfc3339(at.trim())
                .map_err(|_| {
                    ValidationError::new(
                        "at",
                        "invalid_time",
                        "at must be an RFC 3339 time such as 2026-06-01T09:30:00+01:00",
                    )
                })?
                .with_timezone(&Utc),
        };
        Ok(Simulation {
            channel: raw.channel,
            to,
            category: raw.category.unwrap_or_default(),
            tags: raw.tags,
            at,
            message_id: raw.message_id.map_or_else(MessageId::new, MessageId),
        })
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn a_simulation_is_validated_like_a_send() {
        let now = Utc::now();
        let ok = Simulation::parse(
            json!({"channel": "sms", "to": " +2348031234567 ", "category": "marketing",
                   "tags": {"product": "otp"}, "at": "2026-12-07T21:30:00+01:00"}),
            now,
        )
        .expect("valid");
        assert_eq!(ok.to, "+2348031234567");
        assert_eq!(ok.category, Category::Marketing);
        assert_eq!(ok.at.to_rfc3339(), "2026-12-07T20:30:00+00:00");
        for (body, field) in [
            (json!({"channel": "sms", "to": "12"}), "to"),
            (json!({"channel": "fax", "to": "+2348031234567"}), "channel"),
            (
                json!({"channel": "sms", "to": "+2348031234567", "at": "tomorrow"}),
                "at",
            ),
            (
                json!({"channel": "sms", "to": "+2348031234567", "tags": {"": "x"}}),
                "tags.",
            ),
            (
                json!({"channel": "sms", "to": "+2348031234567", "speed": 1}),
                "speed",
            ),
            (json!({"channel": "email", "to": "not-an-address"}), "to"),
        ] {
            let err = Simulation::parse(body.clone(), now).expect_err("invalid");
            assert_eq!(err.field, field, "{body}");
        }
    }
}
