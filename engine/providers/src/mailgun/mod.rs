//! Mailgun (email), speaking Mailgun's Messages API:
//! `POST {baseUrl or https://api.mailgun.net}/v3/{domain}/messages`, HTTP
//! Basic auth `api:<apiKey>`, form-urlencoded fields (providers.md §1.1).
//!
//! Success is HTTP 200 `{"id": "<…@domain>", "message": "Queued. Thank you."}`;
//! the receipt's id is the Message-ID without angle brackets, as Mailgun's
//! events and webhooks carry it. Errors are `{"message": "…"}` (plain text
//! for some 401/404s).
//!
//! Mailgun has no idempotency key (§1.1): a retried send after a timeout may
//! duplicate. We still send the key as an `X-Msgengine-Idempotency-Key` HTTP
//! header (for our simulator) and as a MIME header (`h:`), so a duplicate
//! can be recognised by the recipient's headers.

use std::borrow::Cow;

use msgengine_domain::message::OutboundMessage;
use msgengine_domain::provider::EmailProviderSpec;
use msgengine_domain::Secret;
use reqwest::header::HeaderMap;
use serde::Deserialize;
use serde_json::Value;
use url::Url;

use crate::http::{self, IDEMPOTENCY_HEADER};
use crate::send::{FailureKind, ProviderError, SendReceipt, Sender};

/// Mailgun's US API host; EU domains set `baseUrl` to `https://api.eu.mailgun.net`.
pub const DEFAULT_BASE_URL: &str = "https://api.mailgun.net";

/// At most this many metadata entries become `v:` variables.
const MAX_VARIABLES: usize = 32;
/// Longest variable name kept (after sanitising).
const MAX_VARIABLE_NAME: usize = 64;
/// Budget for all `v:` names and values. Mailgun caps `o:`, `h:`, `v:` and
/// `t:` parameters together at 16 KB; the rest is left for our own fields.
const MAX_VARIABLE_BYTES: usize = 12 * 1024;
/// The variable carrying our message id, for correlating events.
const ID_VARIABLE: &str = "msgengine-id";

type Form<'a> = Vec<(Cow<'a, str>, Cow<'a, str>)>;

/// A Mailgun connection.
pub struct MailgunSender {
    http: reqwest::Client,
    /// `None` when `domain` is missing or `baseUrl` is not an http(s) URL.
    endpoint: Option<Url>,
    api_key: Option<Secret>,
    /// `"Name <address>"` or the bare address, from `fromName`/`fromEmail`.
    default_from: Option<String>,
}

impl MailgunSender {
    /// A sender for `spec`; calls go through the shared `http` client.
    pub fn new(spec: &EmailProviderSpec, http: reqwest::Client) -> Self {
        let endpoint = spec.domain.as_deref().and_then(|domain| {
            http::endpoint(
                spec.base_url.as_deref(),
                DEFAULT_BASE_URL,
                &["v3", domain, "messages"],
            )
        });
        let default_from = spec.from_email.as_deref().map(|email| {
            match spec.from_name.as_deref().filter(|n| !n.trim().is_empty()) {
                Some(name) => format!("{} <{email}>", display_name(name)),
                None => email.to_owned(),
            }
        });
        Self {
            http,
            endpoint,
            api_key: spec.api_key.clone(),
            default_from,
        }
    }

    /// The form fields of one send, in a fixed order.
    fn form<'a>(&'a self, message: &'a OutboundMessage, from: &'a str, key: &'a str) -> Form<'a> {
        let mut form: Form<'a> = vec![
            ("from".into(), from.into()),
            ("to".into(), message.to.as_str().into()),
            (
                "subject".into(),
                message.subject.as_deref().unwrap_or("").into(),
            ),
        ];
        // Mailgun needs text or html; send text unless it is empty beside html.
        if !message.text.is_empty() || message.html.is_none() {
            form.push(("text".into(), message.text.as_str().into()));
        }
        if let Some(html) = &message.html {
            form.push(("html".into(), html.as_str().into()));
        }
        form.push((
            format!("v:{ID_VARIABLE}").into(),
            message.id.to_string().into(),
        ));
        if let Some(metadata) = &message.metadata {
            form.extend(variables(metadata));
        }
        form.push((format!("h:{IDEMPOTENCY_HEADER}").into(), key.into()));
        form
    }
}

#[async_trait::async_trait]
impl Sender for MailgunSender {
    async fn send(
        &self,
        message: &OutboundMessage,
        idempotency_key: &str,
    ) -> Result<SendReceipt, ProviderError> {
        let Some(endpoint) = &self.endpoint else {
            return Err(ProviderError::misconfigured(
                "MAILGUN needs domain, and baseUrl (when set) must be an http(s) URL",
            ));
        };
        let Some(api_key) = &self.api_key else {
            return Err(ProviderError::misconfigured("MAILGUN needs apiKey"));
        };
        let Some(from) = message.from.as_deref().or(self.default_from.as_deref()) else {
            return Err(ProviderError::misconfigured("MAILGUN needs fromEmail"));
        };
        let secrets = [api_key.expose()];
        let request = self
            .http
            .post(endpoint.clone())
            .basic_auth("api", Some(api_key.expose()))
            .header(IDEMPOTENCY_HEADER, idempotency_key)
            .form(&self.form(message, from, idempotency_key));
        let answer = http::execute(request)
            .await
            .map_err(|e| http::scrub(e, &secrets))?;
        http::sent_or_error(&answer, &secrets, accepted_id, classify_response)
    }
}

#[derive(Deserialize)]
struct Accepted {
    id: String,
}

#[derive(Deserialize)]
struct Refused {
    message: String,
}

/// The Message-ID of an accepted send, without angle brackets.
fn accepted_id(body: &[u8]) -> Option<String> {
    let accepted: Accepted = serde_json::from_slice(body).ok()?;
    let id = accepted
        .id
        .trim()
        .trim_start_matches('<')
        .trim_end_matches('>');
    (!id.is_empty()).then(|| id.to_owned())
}

/// What a Mailgun answer that is not a success means. The reason is
/// `{"message"}` when the body is JSON, the plain text otherwise.
///
/// Beyond the shared status meanings: HTTP 420 (seen for sandbox/free
/// domains: "not allowed to send … try again after <date>", providers.md
/// §1.1, unconfirmed in current docs) is a quota, so rate limited. Mailgun
/// documents no `Retry-After` on 429 (§13); we honour one if it comes.
pub fn classify_response(status: u16, headers: &HeaderMap, body: &[u8]) -> ProviderError {
    let reason = match serde_json::from_slice::<Refused>(body) {
        Ok(refused) if !refused.message.trim().is_empty() => refused.message,
        _ if (200..300).contains(&status) => "Mailgun answered without a message id".to_owned(),
        _ => http::plain_reason(status, body),
    };
    let kind = match status {
        420 => FailureKind::RateLimited,
        _ => http::kind_for_status(status),
    };
    http::error_from_answer(kind, status, headers, None, reason)
}

/// Metadata entries as `v:<name>` fields: names sanitised to letters,
/// digits, `-`, `_`, `.` (others become `_`) and cut to 64 characters;
/// string values sent as they are, others as JSON text (as Mailgun's own
/// SDKs do). Bounded in count and bytes; the first of two entries whose
/// names sanitise alike wins; `msgengine-id` is reserved.
fn variables(metadata: &serde_json::Map<String, Value>) -> Form<'_> {
    let mut fields: Form<'_> = Vec::new();
    let mut budget = MAX_VARIABLE_BYTES;
    for (name, value) in metadata {
        if fields.len() == MAX_VARIABLES {
            break;
        }
        let name = variable_name(name);
        let taken = |f: &(Cow<'_, str>, Cow<'_, str>)| f.0.get(2..) == Some(name.as_str());
        if name.is_empty() || name == ID_VARIABLE || fields.iter().any(taken) {
            continue;
        }
        let value: Cow<'_, str> = match value {
            Value::String(s) => s.as_str().into(),
            other => other.to_string().into(),
        };
        let size = name.len() + value.len() + 2;
        if size > budget {
            continue;
        }
        budget -= size;
        fields.push((format!("v:{name}").into(), value));
    }
    fields
}

fn variable_name(name: &str) -> String {
    name.chars()
        .take(MAX_VARIABLE_NAME)
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

/// An RFC 5322 display name, quoted when it holds specials.
fn display_name(name: &str) -> String {
    let name = name.trim();
    let plain = name.chars().all(|c| {
        c.is_alphanumeric()
            || matches!(
                c,
                ' ' | '!'
                    | '#'
                    | '$'
                    | '%'
                    | '&'
                    | '\''
                    | '*'
                    | '+'
                    | '-'
                    | '/'
                    | '='
                    | '?'
                    | '^'
                    | '_'
                    | '`'
                    | '{'
                    | '|'
                    | '}'
                    | '~'
            )
    });
    if plain {
        return name.to_owned();
    }
    let escaped = name.replace('\\', "\\\\").replace('"', "\\\"");
    format!("\"{escaped}\"")
}

#[cfg(test)]
mod tests {
    use reqwest::header::{HeaderValue, RETRY_AFTER};
    use serde_json::json;

    use super::*;

    #[test]
    fn bad_request_is_permanent_with_mailgun_reason() {
        let e = classify_response(
            400,
            &HeaderMap::new(),
            br#"{"message": "to parameter is not a valid address. please check documentation"}"#,
        );
        assert_eq!(e.kind, FailureKind::Permanent);
        assert_eq!(e.http_status, Some(400));
        assert_eq!(
            e.message,
            "to parameter is not a valid address. please check documentation"
        );
    }

    #[test]
    fn plain_text_unauthorized_is_permanent() {
        let e = classify_response(401, &HeaderMap::new(), b"Forbidden");
        assert_eq!(
            (e.kind, e.message.as_str()),
            (FailureKind::Permanent, "Forbidden")
        );
    }

    #[test]
    fn rate_limits_and_quotas_carry_retry_after() {
        let mut headers = HeaderMap::new();
        headers.insert(RETRY_AFTER, HeaderValue::from_static("7"));
        let e = classify_response(429, &headers, br#"{"message": "slow down"}"#);
        assert_eq!(e.kind, FailureKind::RateLimited);
        assert_eq!(e.retry_after, Some(std::time::Duration::from_secs(7)));
        let e = classify_response(
            420,
            &HeaderMap::new(),
            br#"{"message": "Domain x is not allowed to send"}"#,
        );
        assert_eq!(e.kind, FailureKind::RateLimited);
    }

    #[test]
    fn server_errors_are_transient_and_ok_without_id_too() {
        let e = classify_response(502, &HeaderMap::new(), b"<html>bad gateway</html>");
        assert_eq!(
            (e.kind, e.message.as_str()),
            (FailureKind::Transient, "HTTP 502 Bad Gateway")
        );
        let e = classify_response(200, &HeaderMap::new(), b"{}");
        assert_eq!(e.kind, FailureKind::Transient);
    }

    #[test]
    fn accepted_id_drops_angle_brackets() {
        let body =
            br#"{"id": "<20240101120000.1.ABCDEF@example.com>", "message": "Queued. Thank you."}"#;
        assert_eq!(
            accepted_id(body).as_deref(),
            Some("20240101120000.1.ABCDEF@example.com")
        );
        assert_eq!(accepted_id(br#"{"id": "<>"}"#), None);
    }

    #[test]
    fn metadata_becomes_sanitised_bounded_variables() {
        let metadata = json!({"order id": "A-1", "n": 3, "msgengine-id": "x", "order_id": "dup",
                              "nested": {"a": [1]}, "%%": "gone"});
        let Value::Object(map) = metadata else {
            unreachable!("object literal")
        };
        let mut got: Vec<(String, String)> = variables(&map)
            .into_iter()
            .map(|(k, v)| (k.into_owned(), v.into_owned()))
            .collect();
        got.sort();
        let want = [
            ("v:n", "3"),
            ("v:nested", r#"{"a":[1]}"#),
            ("v:order_id", "A-1"),
        ];
        let want: Vec<(String, String)> = want
            .iter()
            .map(|(k, v)| ((*k).into(), (*v).into()))
            .collect();
        assert_eq!(got, want);
        let many: serde_json::Map<String, Value> = (0..100)
            .map(|i| (format!("k{i}"), json!("x".repeat(1000))))
            .collect();
        let fields = variables(&many);
        let bytes: usize = fields.iter().map(|(k, v)| k.len() + v.len()).sum();
        assert!(fields.len() <= MAX_VARIABLES && bytes <= MAX_VARIABLE_BYTES + 2 * fields.len());
    }

    #[test]
    fn display_names_are_quoted_when_needed() {
        assert_eq!(display_name("Acme Team"), "Acme Team");
        assert_eq!(display_name("Acme, Inc."), "\"Acme, Inc.\"");
        assert_eq!(display_name("Say \"hi\""), "\"Say \\\"hi\\\"\"");
    }
}
