//! Twilio status callbacks (providers.md §6.2), verified with
//! `X-Twilio-Signature` ([`super::signature`]) and turned into engine events.
//!
//! A status callback is a form POST with `MessageSid`, `MessageStatus`
//! (`SmsStatus` mirrors it), `To`, `From`, `ErrorCode` on failures and, for
//! WhatsApp, `ChannelStatusMessage`. It has no event id and no timestamp:
//! the event id is derived from `MessageSid` and `MessageStatus` (a replay,
//! or Twilio's retry, carries the same pair), and `occurred_at` is the time
//! of receipt. Our message id comes back only in the query of a
//! `StatusCallback` URL we set at send time ([`super::MESSAGE_ID_PARAM`]).
//!
//! Opt-outs: `ErrorCode` `21610` (the recipient replied STOP, §12) suppresses
//! the recipient; so does an inbound message (a callback without
//! `MessageStatus`, or `received`) whose `OptOutType` is `STOP` or whose body
//! is one of Twilio's default opt-out keywords (STOP, STOPALL, UNSUBSCRIBE,
//! CANCEL, END, QUIT: Twilio's messaging documentation, not providers.md).
//! Other inbound messages yield no event.
//!
//! Twilio signs no timestamp, so there is no staleness check: replays are
//! harmless because the derived event id deduplicates them.

use chrono::{DateTime, Utc};
use msgengine_domain::provider::{SmsProviderSpec, WhatsappProviderSpec};
use msgengine_domain::Secret;
use serde_json::Value;

use super::signature::{self, Algorithm, BODY_HASH_PARAM, SETTINGS_HEADER, SIGNATURE_HEADER};
use super::{describe_code, state_for, MESSAGE_ID_PARAM};
use crate::webhook::{
    Engagement, InboundWebhook, SuppressionReason, WebhookError, WebhookEvent, WebhookHandler,
};

/// Twilio's default opt-out keywords (matched on the whole trimmed body).
const OPT_OUT_KEYWORDS: [&str; 6] = ["STOP", "STOPALL", "UNSUBSCRIBE", "CANCEL", "END", "QUIT"];
/// The error code of a send to a recipient who replied STOP.
const UNSUBSCRIBED_CODE: &str = "21610";

/// The webhook scheme of one Twilio connection.
pub struct TwilioWebhook {
    /// The HMAC-SHA1 key: the account's Auth Token.
    auth_token: Option<Secret>,
    /// Why `auth_token` is missing, in words for the refusal.
    no_auth_token: &'static str,
    /// The HMAC-SHA256 key of the newer scheme (WhatsApp `webhookSecret`).
    shared_key: Option<Secret>,
    /// Why `shared_key` is missing, in words for the refusal.
    no_shared_key: &'static str,
}

impl TwilioWebhook {
    /// An SMS connection: the key is `credentials.authToken`. A connection
    /// authenticating with an API key holds no Auth Token (the credentials
    /// take one or the other), so its callbacks cannot be verified and are
    /// refused in words.
    pub fn for_sms(spec: &SmsProviderSpec) -> Self {
        Self {
            auth_token: spec.credential("authToken").cloned(),
            no_auth_token: "Twilio signs callbacks with the Auth Token, and this connection \
                            authenticates with an API key: configure credentials.authToken \
                            (with accountSid) to receive status callbacks",
            shared_key: None,
            no_shared_key: "Twilio announced HMAC_SHA256 signing with a shared key, which an \
                            SMS connection has no credential for: use the Auth Token scheme",
        }
    }

    /// A WhatsApp connection: the key is `accessToken` (the Auth Token);
    /// `webhookSecret` is the shared key of the HMAC-SHA256 scheme.
    pub fn for_whatsapp(spec: &WhatsappProviderSpec) -> Self {
        Self {
            auth_token: spec.access_token.clone(),
            no_auth_token: "TWILIO needs accessToken (the Auth Token) to verify callbacks",
            shared_key: spec.webhook_secret.clone(),
            no_shared_key: "Twilio announced HMAC_SHA256 signing with a shared key: set \
                            webhookSecret to that key",
        }
    }
}

impl WebhookHandler for TwilioWebhook {
    fn verify(
        &self,
        request: &InboundWebhook<'_>,
        _now: DateTime<Utc>,
    ) -> Result<(), WebhookError> {
        let unauthorized = |why: &str| Err(WebhookError::Unauthorized(why.to_owned()));
        let Some(given) = request.header(SIGNATURE_HEADER) else {
            return unauthorized("no X-Twilio-Signature header");
        };
        let algorithm = Algorithm::from_settings(request.header(SETTINGS_HEADER)).map_err(|a| {
            WebhookError::Unauthorized(format!("Twilio announced an unknown signing algorithm {a}"))
        })?;
        let key = match algorithm {
            Algorithm::HmacSha1 => self.auth_token.as_ref().ok_or(self.no_auth_token),
            Algorithm::HmacSha256 => self.shared_key.as_ref().ok_or(self.no_shared_key),
        };
        let key = match key {
            Ok(key) => key,
            Err(why) => return unauthorized(why),
        };
        let params = match query_value(request.query, BODY_HASH_PARAM) {
            Some(hash) if !signature::body_hash_matches(request.body, &hash) => {
                return unauthorized("the body does not match its bodySHA256");
            }
            // A JSON body: only the URL is signed (§6.3 item 4).
            Some(_) => Vec::new(),
            None if request.method.eq_ignore_ascii_case("POST") => form(request.body),
            None => Vec::new(),
        };
        if signature::is_valid(
            algorithm,
            key.expose().as_bytes(),
            request.url,
            &params,
            given,
        ) {
            Ok(())
        } else {
            unauthorized("X-Twilio-Signature does not match the URL and parameters")
        }
    }

    fn parse(
        &self,
        request: &InboundWebhook<'_>,
        now: DateTime<Utc>,
    ) -> Result<Vec<WebhookEvent>, WebhookError> {
        let params = if query_value(request.query, BODY_HASH_PARAM).is_some() {
            json_params(request.body)?
        } else {
            form(request.body)
        };
        let message_id = query_value(request.query, MESSAGE_ID_PARAM);
        events_from(&params, message_id, now)
    }
}

/// The events of one callback's parameters.
fn events_from(
    params: &[(String, String)],
    message_id: Option<String>,
    now: DateTime<Utc>,
) -> Result<Vec<WebhookEvent>, WebhookError> {
    let get = |name: &str| {
        params
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.trim())
            .filter(|v| !v.is_empty())
    };
    let Some(sid) = get("MessageSid").or_else(|| get("SmsSid")) else {
        return Err(WebhookError::Malformed(
            "a Twilio callback carries MessageSid".into(),
        ));
    };
    let status = get("MessageStatus").or_else(|| get("SmsStatus"));
    let Some(status) = status.filter(|s| !matches!(*s, "received" | "receiving")) else {
        return Ok(
            opt_out(sid, get("OptOutType"), get("Body"), get("From"), now)
                .into_iter()
                .collect(),
        );
    };
    let code = get("ErrorCode").filter(|c| *c != "0");
    let mut event = WebhookEvent::new(format!("twilio:{sid}:{status}"), status, now);
    event.provider_message_id = Some(sid.to_owned());
    event.message_id = message_id;
    event.state = state_for(status);
    event.recipient = get("To").map(address);
    event.error_code = code.map(str::to_owned);
    event.reason = get("ChannelStatusMessage")
        .map(str::to_owned)
        .or_else(|| code.and_then(describe_code).map(str::to_owned));
    if code == Some(UNSUBSCRIBED_CODE) {
        event.suppress = Some(SuppressionReason::Unsubscribe);
    }
    Ok(vec![event])
}

/// The opt-out an inbound message expresses, if any: about the sender
/// (`From`), not about one of our messages.
fn opt_out(
    sid: &str,
    opt_out_type: Option<&str>,
    body: Option<&str>,
    from: Option<&str>,
    now: DateTime<Utc>,
) -> Option<WebhookEvent> {
    let by_type = opt_out_type.is_some_and(|t| t.eq_ignore_ascii_case("STOP"));
    let by_keyword = body.is_some_and(|b| {
        OPT_OUT_KEYWORDS
            .iter()
            .any(|k| b.trim().eq_ignore_ascii_case(k))
    });
    if !(by_type || by_keyword) {
        return None;
    }
    let mut event = WebhookEvent::new(format!("twilio:{sid}:opt-out"), "received", now);
    event.engagement = Some(Engagement::Unsubscribed);
    event.recipient = Some(address(from?));
    event.reason = Some("the recipient replied with an opt-out keyword".into());
    event.suppress = Some(SuppressionReason::Unsubscribe);
    Some(event)
}

/// An address without its channel prefix (`whatsapp:+234…` → `+234…`).
fn address(value: &str) -> String {
    match value.split_once(':') {
        Some((_, number)) => number.trim().to_owned(),
        None => value.to_owned(),
    }
}

fn form(body: &[u8]) -> Vec<(String, String)> {
    url::form_urlencoded::parse(body).into_owned().collect()
}

/// A JSON body's top-level members as parameters (strings as they are,
/// other scalars as JSON text, nested values skipped).
fn json_params(body: &[u8]) -> Result<Vec<(String, String)>, WebhookError> {
    let Ok(Value::Object(object)) = serde_json::from_slice::<Value>(body) else {
        return Err(WebhookError::Malformed(
            "a bodySHA256 callback carries a JSON object".into(),
        ));
    };
    Ok(object
        .into_iter()
        .filter_map(|(k, v)| match v {
            Value::String(s) => Some((k, s)),
            Value::Number(_) | Value::Bool(_) => Some((k, v.to_string())),
            _ => None,
        })
        .collect())
}

/// The first value of `name` in a raw query string.
fn query_value(query: &str, name: &str) -> Option<String> {
    url::form_urlencoded::parse(query.as_bytes())
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.into_owned())
        .filter(|v| !v.is_empty())
}

#[cfg(test)]
mod tests {
    use msgengine_domain::message::MessageState;

    use super::*;

    fn params(items: &[(&str, &str)]) -> Vec<(String, String)> {
        items
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    }

    fn now() -> DateTime<Utc> {
        DateTime::from_timestamp(1_700_000_000, 0).expect("time")
    }

    #[test]
    fn an_undelivered_callback_is_a_failure_with_the_code_in_words() {
        let events = events_from(
            &params(&[
                ("MessageSid", "SM1"),
                ("MessageStatus", "undelivered"),
                ("To", "+2348031234567"),
                ("ErrorCode", "30003"),
            ]),
            Some("m-1".into()),
            now(),
        )
        .expect("parsed");
        assert_eq!(events.len(), 1);
        let e = &events[0];
        assert_eq!(e.event_id, "twilio:SM1:undelivered");
        assert_eq!(e.state, Some(MessageState::Failed));
        assert_eq!(e.message_id.as_deref(), Some("m-1"));
        assert_eq!(e.error_code.as_deref(), Some("30003"));
        assert_eq!(e.reason.as_deref(), Some("the handset is unreachable"));
        assert_eq!(e.suppress, None);
    }

    #[test]
    fn inbound_stop_suppresses_the_sender_and_other_inbound_is_ignored() {
        let stop = events_from(
            &params(&[
                ("MessageSid", "SM9"),
                ("SmsStatus", "received"),
                ("From", "whatsapp:+15551234567"),
                ("Body", " stop "),
            ]),
            None,
            now(),
        )
        .expect("parsed");
        assert_eq!(stop.len(), 1);
        assert_eq!(stop[0].recipient.as_deref(), Some("+15551234567"));
        assert_eq!(stop[0].suppress, Some(SuppressionReason::Unsubscribe));
        assert_eq!(stop[0].state, None);
        let hello = events_from(
            &params(&[("MessageSid", "SM9"), ("From", "+1555"), ("Body", "hello")]),
            None,
            now(),
        )
        .expect("parsed");
        assert!(hello.is_empty());
    }

    #[test]
    fn a_callback_without_a_sid_is_malformed() {
        assert!(matches!(
            events_from(&params(&[("MessageStatus", "sent")]), None, now()),
            Err(WebhookError::Malformed(_))
        ));
    }
}
