//! What the HTTP email adapters ([`crate::mailgun`], [`crate::sendgrid`],
//! [`crate::mailjet`]) share: mailboxes (`Name <address>`), the connection's
//! default sender, custom headers and attachments checked before a send, our
//! message id and metadata as provider custom data, event times and derived
//! event ids for webhooks, the 2xx-or-classified tail of a management call,
//! and connection-test findings in words.
//!
//! Invariant: nothing here formats a request URL or a credential into an
//! error; callers pass their secrets to [`call`] so provider text is scrubbed.

use std::borrow::Cow;
use std::sync::LazyLock;

use base64::Engine as _;
use chrono::{DateTime, Utc};
use msgengine_domain::message::{Attachment, MessageExtras, OutboundMessage};
use msgengine_domain::provider::EmailProviderSpec;
use reqwest::header::HeaderMap;
use reqwest::RequestBuilder;
use serde::de::DeserializeOwned;
use serde_json::Value;
use sha2::{Digest, Sha256};

use crate::http::{self, Answer};
use crate::probe::{Check, CheckStatus};
use crate::send::{FailureKind, ProviderError};

/// The custom-data key carrying our message id (Mailgun `v:msgengine-id`,
/// SendGrid `custom_args.msgengine-id`), echoed by webhooks.
pub const MESSAGE_ID_KEY: &str = "msgengine-id";

/// At most this many metadata entries become provider custom data.
const MAX_CUSTOM_ENTRIES: usize = 32;
/// Longest custom-data name kept (after sanitising).
const MAX_CUSTOM_NAME: usize = 64;

/// An address with an optional display name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mailbox {
    pub email: String,
    pub name: Option<String>,
}

impl Mailbox {
    /// `Name <address>` (the name quoted when it holds specials), or the
    /// bare address.
    pub fn to_header(&self) -> String {
        match &self.name {
            Some(name) => format!("{} <{}>", display_name(name), self.email),
            None => self.email.clone(),
        }
    }
}

/// Reads `Name <address>`, `"Name, Inc." <address>`, `<address>` or a bare
/// address. Text that is none of these is kept whole as the address (the
/// provider then refuses it in its own words).
pub fn parse_mailbox(text: &str) -> Mailbox {
    let text = text.trim();
    if let (Some(open), true) = (text.rfind('<'), text.ends_with('>')) {
        let email = text[open + 1..text.len() - 1].trim().to_owned();
        let name = unquote(text[..open].trim());
        return Mailbox {
            email,
            name: (!name.is_empty()).then_some(name),
        };
    }
    Mailbox {
        email: text.to_owned(),
        name: None,
    }
}

fn unquote(name: &str) -> String {
    match name
        .strip_prefix('"')
        .and_then(|inner| inner.strip_suffix('"'))
    {
        Some(inner) => inner.replace("\\\"", "\"").replace("\\\\", "\\"),
        None => name.to_owned(),
    }
}

/// The connection's sender: `fromEmail` with `fromName` when it is not blank.
pub fn default_sender(spec: &EmailProviderSpec) -> Option<Mailbox> {
    let email = spec.from_email.as_deref()?;
    Some(Mailbox {
        email: email.to_owned(),
        name: spec
            .from_name
            .as_deref()
            .map(str::trim)
            .filter(|n| !n.is_empty())
            .map(str::to_owned),
    })
}

/// The message's sender, or the connection's when the message names none.
pub fn sender(message: &OutboundMessage, default: Option<&Mailbox>) -> Option<Mailbox> {
    match message.from.as_deref() {
        Some(from) => Some(parse_mailbox(from)),
        None => default.cloned(),
    }
}

/// An RFC 5322 display name, quoted when it holds specials.
pub fn display_name(name: &str) -> String {
    let name = name.trim();
    let plain = name
        .chars()
        .all(|c| c.is_alphanumeric() || " !#$%&'*+-/=?^_`{|}~".contains(c));
    if plain {
        return name.to_owned();
    }
    let escaped = name.replace('\\', "\\\\").replace('"', "\\\"");
    format!("\"{escaped}\"")
}

/// The part after `@`, when there is one.
pub use msgengine_domain::validate::email_domain as domain_of;

static NO_EXTRAS: LazyLock<MessageExtras> = LazyLock::new(MessageExtras::default);

/// The message's extras, or empty ones.
pub fn extras(message: &OutboundMessage) -> &MessageExtras {
    message.extras.as_deref().unwrap_or(&NO_EXTRAS)
}

/// A permanent failure of the message itself (not of the connection).
pub fn invalid_message(reason: impl Into<String>) -> ProviderError {
    let mut e = ProviderError::new(FailureKind::Permanent, reason);
    e.code = Some("msgengine_invalid_message".into());
    e
}

/// Refuses custom headers that would corrupt the message: a name that is
/// not an RFC 5322 field name (printable ASCII without `:`), or a value with
/// a line break (header injection).
pub fn check_headers(headers: &[(String, String)]) -> Result<(), ProviderError> {
    for (name, value) in headers {
        let name_ok =
            !name.is_empty() && name.bytes().all(|b| (33..=126).contains(&b) && b != b':');
        if !name_ok {
            return Err(invalid_message(format!(
                "custom header name {:?} is not a valid header field name",
                http::bound(name)
            )));
        }
        if value.contains(['\r', '\n']) {
            return Err(invalid_message(format!(
                "custom header {name} has a line break in its value"
            )));
        }
    }
    Ok(())
}

/// The attachment's bytes, from its base64 (whitespace ignored).
pub fn decode_attachment(attachment: &Attachment) -> Result<Vec<u8>, ProviderError> {
    let compact: String = attachment
        .content_base64
        .chars()
        .filter(|c| !c.is_ascii_whitespace())
        .collect();
    base64::engine::general_purpose::STANDARD
        .decode(compact)
        .map_err(|_| {
            invalid_message(format!(
                "attachment {:?} is not valid base64",
                http::bound(&attachment.filename)
            ))
        })
}

/// A MIME type safe to put in a header: the given one, or
/// `application/octet-stream` when it is empty or holds control characters.
pub fn content_type(attachment: &Attachment) -> &str {
    let ct = attachment.content_type.trim();
    if ct.is_empty() || ct.chars().any(char::is_control) {
        "application/octet-stream"
    } else {
        ct
    }
}

/// Metadata entries as provider custom data: names sanitised to letters,
/// digits, `-`, `_`, `.` (others become `_`) and cut to 64 characters;
/// string values as they are, others as JSON text. At most 32 entries and
/// `budget_bytes` of names plus values; the first of two entries whose names
/// sanitise alike wins; [`MESSAGE_ID_KEY`] and `reserved` names are skipped
/// (so metadata can never pose as our id or a provider's own event field).
pub fn custom_data<'a>(
    metadata: &'a serde_json::Map<String, Value>,
    reserved: &[&str],
    budget_bytes: usize,
) -> Vec<(String, Cow<'a, str>)> {
    let mut fields: Vec<(String, Cow<'a, str>)> = Vec::new();
    let mut budget = budget_bytes;
    for (name, value) in metadata {
        if fields.len() == MAX_CUSTOM_ENTRIES {
            break;
        }
        let name = custom_name(name);
        if name.is_empty()
            || name == MESSAGE_ID_KEY
            || reserved.iter().any(|r| r.eq_ignore_ascii_case(&name))
            || fields.iter().any(|(taken, _)| *taken == name)
        {
            continue;
        }
        let value: Cow<'a, str> = match value {
            Value::String(s) => s.as_str().into(),
            other => other.to_string().into(),
        };
        let size = name.len() + value.len() + 2;
        if size > budget {
            continue;
        }
        budget -= size;
        fields.push((name, value));
    }
    fields
}

fn custom_name(name: &str) -> String {
    name.chars()
        .take(MAX_CUSTOM_NAME)
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.') {
                c
            } else {
                '_'
            }
        })
        .collect::<String>()
        .trim_matches('_')
        .to_owned()
}

/// A unix time in (fractional) seconds; `None` when out of range.
pub fn unix_time(seconds: f64) -> Option<DateTime<Utc>> {
    if !seconds.is_finite() {
        return None;
    }
    let whole = seconds.floor();
    let nanos = ((seconds - whole) * 1e9).round().min(999_999_999.0) as u32;
    DateTime::from_timestamp(whole as i64, nanos)
}

/// A unix time given as a JSON number or a numeric string.
pub fn unix_time_of(value: &Value) -> Option<DateTime<Utc>> {
    match value {
        Value::Number(n) => n.as_f64().and_then(unix_time),
        Value::String(s) => s.trim().parse::<f64>().ok().and_then(unix_time),
        _ => None,
    }
}

/// A stable event id for providers that give none: `prefix` and the first
/// 32 hex digits of SHA-256 over the parts (separated by a newline), so a
/// replayed event gets the same id.
pub fn derived_event_id(prefix: &str, parts: &[&str]) -> String {
    let mut hash = Sha256::new();
    for part in parts {
        hash.update(part.as_bytes());
        hash.update(b"\n");
    }
    let digest = hex::encode(hash.finalize());
    format!("{prefix}-{}", &digest[..32])
}

/// A JSON value as text: strings as they are, numbers in full (a 64-bit
/// Mailjet `MessageID` never goes through `f64`), others `None`.
pub fn text_of(value: &Value) -> Option<String> {
    match value {
        Value::String(s) if !s.is_empty() => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

/// Sends a management request: the answer when it is 2xx, otherwise the
/// provider's classification of it; secrets scrubbed either way.
pub async fn call(
    http: &crate::http::ProviderClient,
    request: RequestBuilder,
    secrets: &[&str],
    classify: fn(u16, &HeaderMap, &[u8]) -> ProviderError,
) -> Result<Answer, ProviderError> {
    let answer = http
        .execute(request)
        .await
        .map_err(|e| crate::http::scrub(e, secrets))?;
    if (200..300).contains(&answer.status) {
        return Ok(answer);
    }
    Err(http::scrub(
        classify(answer.status, &answer.headers, &answer.body),
        secrets,
    ))
}

/// The 2xx answer's JSON body; a body that does not parse is a transient
/// failure naming `provider` and `what` was expected.
pub fn json_body<T: DeserializeOwned>(
    answer: &Answer,
    provider: &str,
    what: &str,
) -> Result<T, ProviderError> {
    serde_json::from_slice(&answer.body).map_err(|e| {
        let mut error = ProviderError::new(
            FailureKind::Transient,
            format!(
                "{provider} answered HTTP {} without {what}: {e}",
                answer.status
            ),
        );
        error.http_status = Some(answer.status);
        error
    })
}

/// What to tell the user about a failed connection test, per status.
pub struct ProbeHints<'a> {
    pub provider: &'a str,
    /// After a 401: which credential to check.
    pub unauthorized: &'a str,
    /// After a 403: what the key may lack.
    pub forbidden: &'a str,
    /// After a 404: what does not exist.
    pub not_found: &'a str,
}

/// A passed connection check.
pub fn probe_passed(message: String) -> Check {
    Check {
        name: "connection",
        status: CheckStatus::Passed,
        message,
    }
}

/// A failed connection check with `message`.
pub fn probe_refused(message: String) -> Check {
    Check {
        name: "connection",
        status: CheckStatus::Failed,
        message,
    }
}

/// A failed connection check explaining `error` in words.
pub fn probe_failed(error: &ProviderError, hints: &ProbeHints<'_>) -> Check {
    let provider = hints.provider;
    let reason = &error.message;
    let message = match error.http_status {
        Some(401) => format!(
            "{provider} refused the credentials (HTTP 401: {reason}): {}",
            hints.unauthorized
        ),
        Some(403) => format!(
            "{provider} denied access (HTTP 403: {reason}): {}",
            hints.forbidden
        ),
        Some(404) => format!(
            "{provider} answered HTTP 404 ({reason}): {}",
            hints.not_found
        ),
        Some(status) if error.kind == FailureKind::RateLimited => {
            format!("{provider} is rate limiting this account (HTTP {status}): {reason}; try again later")
        }
        Some(status) => format!("{provider} answered HTTP {status}: {reason}"),
        None => format!("could not reach {provider}: {reason}"),
    };
    Check {
        name: "connection",
        status: CheckStatus::Failed,
        message,
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn mailboxes_parse_with_and_without_names() {
        assert_eq!(
            parse_mailbox("Billing <billing@example.com>"),
            Mailbox {
                email: "billing@example.com".into(),
                name: Some("Billing".into())
            }
        );
        assert_eq!(
            parse_mailbox("\"Acme, \\\"Inc.\\\"\" <a@example.com>").name,
            Some("Acme, \"Inc.\"".into())
        );
        assert_eq!(parse_mailbox("<a@example.com>").name, None);
        assert_eq!(parse_mailbox(" a@example.com ").email, "a@example.com");
    }

    #[test]
    fn display_names_are_quoted_when_needed() {
        assert_eq!(display_name("Acme Team"), "Acme Team");
        assert_eq!(display_name("Acme, Inc."), "\"Acme, Inc.\"");
        assert_eq!(display_name("Say \"hi\""), "\"Say \\\"hi\\\"\"");
    }

    #[test]
    fn headers_with_line_breaks_or_bad_names_are_refused() {
        let ok = [("X-Campaign".to_owned(), "spring".to_owned())];
        assert!(check_headers(&ok).is_ok());
        for (name, value) in [
            ("X-A", "a\r\nBcc: x@y"),
            ("Bad Name", "v"),
            ("X:Y", "v"),
            ("", "v"),
        ] {
            let e = check_headers(&[(name.into(), value.into())]).expect_err(name);
            assert_eq!(e.code.as_deref(), Some("msgengine_invalid_message"));
        }
    }

    #[test]
    fn custom_data_is_sanitised_bounded_and_skips_reserved_names() {
        let metadata = json!({"order id": "A-1", "n": 3, "msgengine-id": "x", "order_id": "dup",
                              "nested": {"a": [1]}, "%%": "gone", "Event": "clash"});
        let Value::Object(map) = metadata else {
            unreachable!("object literal")
        };
        let mut got: Vec<(String, String)> = custom_data(&map, &["event"], 1024)
            .into_iter()
            .map(|(k, v)| (k, v.into_owned()))
            .collect();
        got.sort();
        let want: Vec<(String, String)> =
            [("n", "3"), ("nested", r#"{"a":[1]}"#), ("order_id", "A-1")]
                .iter()
                .map(|(k, v)| ((*k).into(), (*v).into()))
                .collect();
        assert_eq!(got, want);
        let many: serde_json::Map<String, Value> = (0..100)
            .map(|i| (format!("k{i}"), json!("x".repeat(1000))))
            .collect();
        let fields = custom_data(&many, &[], 12 * 1024);
        let bytes: usize = fields.iter().map(|(k, v)| k.len() + v.len() + 2).sum();
        assert!(fields.len() <= MAX_CUSTOM_ENTRIES && bytes <= 12 * 1024);
    }

    #[test]
    fn attachments_decode_and_bad_base64_is_refused() {
        let mut a = Attachment {
            filename: "a.txt".into(),
            content_type: "text/plain".into(),
            content_base64: "aGVs\nbG8=".into(),
        };
        assert_eq!(decode_attachment(&a).ok(), Some(b"hello".to_vec()));
        a.content_base64 = "!!".into();
        assert!(decode_attachment(&a).is_err());
        a.content_type = "text/plain\r\nX: y".into();
        assert_eq!(content_type(&a), "application/octet-stream");
    }

    #[test]
    fn times_and_derived_ids_are_stable() {
        let t = unix_time(1_521_472_262.908_181).expect("in range");
        assert_eq!(t.timestamp(), 1_521_472_262);
        assert_eq!(t.timestamp_subsec_millis(), 908);
        assert_eq!(
            unix_time_of(&json!("1700000000")).map(|t| t.timestamp()),
            Some(1_700_000_000)
        );
        let a = derived_event_id("mj", &["1", "sent"]);
        assert_eq!(a, derived_event_id("mj", &["1", "sent"]));
        assert_ne!(a, derived_event_id("mj", &["1sent"]));
        assert_eq!(a.len(), "mj-".len() + 32);
        assert_eq!(
            text_of(&json!(456_789_012_345_678_u64)).as_deref(),
            Some("456789012345678")
        );
    }
}
