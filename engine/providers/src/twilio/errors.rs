//! Twilio's error answers `{"code", "message", "more_info", "status"}`
//! (providers.md §6.1) as classified [`ProviderError`]s, and the error codes
//! in words for status callbacks, which carry only the number.

use reqwest::header::HeaderMap;
use serde::Deserialize;
use serde_json::Value;

use crate::http;
use crate::send::{FailureKind, ProviderError};

/// Twilio error codes whose meaning differs from their HTTP status.
const RATE_LIMITED_CODES: [&str; 2] = [
    "20429", // too many concurrent requests (HTTP 429): not processed, safe to retry
    "63018", // WhatsApp channel rate limit exceeded
];
const TRANSIENT_CODES: [&str; 1] = [
    "30001", // queue overflow: Twilio could not queue it now
];

#[derive(Deserialize)]
struct Refused {
    #[serde(default)]
    code: Option<Value>,
    #[serde(default)]
    message: Option<String>,
}

/// A Twilio error code as text, whether Twilio sent it as a number or a string.
pub(super) fn code_text(code: &Value) -> Option<String> {
    match code {
        Value::Number(n) => Some(n.to_string()),
        Value::String(s) if !s.trim().is_empty() => Some(s.trim().to_owned()),
        _ => None,
    }
}

/// What a Twilio answer that is not the expected resource means. The error
/// code decides where it is more specific than the HTTP status: `20429`
/// (and the WhatsApp `63018`) is rate limiting, `30001` queue overflow is
/// transient; otherwise the shared status meanings apply (401 `20003` bad
/// credentials, 400 `21211` invalid To, `21610` unsubscribed recipient,
/// `63016` WhatsApp outside the 24-hour window: permanent).
pub fn classify_response(status: u16, headers: &HeaderMap, body: &[u8]) -> ProviderError {
    let refused = serde_json::from_slice::<Refused>(body).ok();
    let code = refused
        .as_ref()
        .and_then(|r| r.code.as_ref())
        .and_then(code_text);
    let reason = match refused
        .and_then(|r| r.message)
        .filter(|m| !m.trim().is_empty())
    {
        Some(message) => message,
        None if (200..300).contains(&status) => "Twilio answered without a message sid".to_owned(),
        None => http::plain_reason(status, body),
    };
    let kind = match code.as_deref() {
        Some(c) if RATE_LIMITED_CODES.contains(&c) => FailureKind::RateLimited,
        Some(c) if TRANSIENT_CODES.contains(&c) => FailureKind::Transient,
        _ => http::kind_for_status(status),
    };
    http::error_from_answer(kind, status, headers, code, reason)
}

/// Twilio's error codes from providers.md §6.1 in words (a status callback
/// carries `ErrorCode` alone); `None` for a code not listed there.
pub fn describe_code(code: &str) -> Option<&'static str> {
    Some(match code {
        "21211" => "invalid To number",
        "21212" => "invalid From number",
        "21408" => "sending to this region is not enabled (geo permissions)",
        "21610" => "the recipient replied STOP (unsubscribed)",
        "21612" => "Twilio cannot route between this To and From",
        "21614" => "the To number is not a mobile number",
        "21617" => "the body is too long",
        "30001" => "queue overflow",
        "30002" => "the Twilio account is suspended",
        "30003" => "the handset is unreachable",
        "30004" => "the message was blocked",
        "30005" => "unknown or nonexistent destination",
        "30006" => "landline or unreachable carrier",
        "30007" => "filtered by the carrier (spam)",
        "30008" => "unknown error",
        "30034" => "the US A2P 10DLC sender is not registered",
        "63003" => "the WhatsApp channel could not find the To address",
        "63007" => "the From address is not a WhatsApp sender",
        "63016" => "free-form WhatsApp message outside the 24-hour window: send a template",
        "63018" => "WhatsApp rate limit exceeded",
        "63024" => "invalid WhatsApp recipient",
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use reqwest::header::{HeaderValue, RETRY_AFTER};

    use super::*;

    fn classify(status: u16, body: &str) -> ProviderError {
        classify_response(status, &HeaderMap::new(), body.as_bytes())
    }

    #[test]
    fn invalid_number_is_permanent_with_twilio_code_and_reason() {
        let e = classify(
            400,
            r#"{"code": 21211, "message": "The 'To' number +123 is not a valid phone number.",
                "more_info": "https://www.twilio.com/docs/errors/21211", "status": 400}"#,
        );
        assert_eq!(e.kind, FailureKind::Permanent);
        assert_eq!(e.code.as_deref(), Some("21211"));
        assert_eq!(
            e.message,
            "The 'To' number +123 is not a valid phone number."
        );
    }

    #[test]
    fn authentication_failure_is_permanent() {
        let e = classify(
            401,
            r#"{"code": 20003, "message": "Authenticate", "status": 401}"#,
        );
        assert_eq!(
            (e.kind, e.code.as_deref()),
            (FailureKind::Permanent, Some("20003"))
        );
    }

    #[test]
    fn code_20429_and_63018_are_rate_limited_with_retry_after() {
        let mut headers = HeaderMap::new();
        headers.insert(RETRY_AFTER, HeaderValue::from_static("3"));
        let e = classify_response(
            429,
            &headers,
            br#"{"code": 20429, "message": "Too Many Requests", "status": 429}"#,
        );
        assert_eq!(e.kind, FailureKind::RateLimited);
        assert_eq!(e.retry_after, Some(std::time::Duration::from_secs(3)));
        let e = classify(400, r#"{"code": "20429", "message": "Too Many Requests"}"#);
        assert_eq!(e.kind, FailureKind::RateLimited);
        let e = classify(400, r#"{"code": 63018, "message": "rate limit"}"#);
        assert_eq!(e.kind, FailureKind::RateLimited);
    }

    #[test]
    fn queue_overflow_is_transient_whatever_the_status() {
        let e = classify(400, r#"{"code": 30001, "message": "Queue overflow"}"#);
        assert_eq!(e.kind, FailureKind::Transient);
    }

    #[test]
    fn server_errors_are_transient() {
        assert_eq!(classify(500, "oops").kind, FailureKind::Transient);
        assert_eq!(classify(503, "").message, "HTTP 503 Service Unavailable");
    }

    #[test]
    fn codes_are_described_in_words() {
        assert_eq!(
            describe_code("21610"),
            Some("the recipient replied STOP (unsubscribed)")
        );
        assert_eq!(describe_code("99999"), None);
    }
}
