//! Meta WhatsApp Cloud API (providers.md §5), spoken directly on Graph:
//! `{baseUrl or https://graph.facebook.com}/{GRAPH_API_VERSION}/…`, header
//! `Authorization: Bearer <accessToken>`, JSON bodies.
//!
//! - [`MetaCloudSender`]: `POST /{phoneNumberId}/messages` for text,
//!   template and media messages (§5.1).
//! - [`MetaCloudWebhook`]: the `hub.challenge` GET handshake, the
//!   `X-Hub-Signature-256` check with the app secret, and `statuses[]` turned
//!   into events (§5.2).
//! - [`MetaCloudAdmin`]: templates on the WhatsApp Business Account (§5.3)
//!   and media upload (§5.4).
//! - [`MetaCloudProbe`]: the phone number lookup that tests a connection.
//!
//! Connection fields: `accessToken` (system-user token), `phoneNumberId`,
//! `businessAccountId` (the WABA id, for templates), `webhookVerifyToken`
//! (the handshake token), `webhookSecret` (the app secret). The token, the
//! verify token and the app secret are scrubbed from every error.
//!
//! Meta documents no idempotency key (§5.1): a retry after a timeout may send
//! twice. `X-Msgengine-Idempotency-Key` is sent for our simulator.

mod admin;
mod descriptor;
mod probe;
mod send;
mod webhook;

pub(crate) use descriptor::DESCRIPTOR;

pub use admin::MetaCloudAdmin;
pub use probe::MetaCloudProbe;
pub use send::MetaCloudSender;
pub use webhook::MetaCloudWebhook;

use msgengine_domain::provider::WhatsappProviderSpec;
use msgengine_domain::Secret;
use reqwest::header::HeaderMap;
use serde::Deserialize;
use serde_json::Value;
use url::Url;

use crate::http;
use crate::send::{FailureKind, ProviderError};

/// Graph's host.
pub const DEFAULT_BASE_URL: &str = "https://graph.facebook.com";

/// The Graph API version every call is pinned to (providers.md §5: pin one).
/// A `baseUrl` that already ends in a version segment (`…/v19.0`) keeps its own.
pub const GRAPH_API_VERSION: &str = "v21.0";

/// Meta error codes that mean "slow down" whatever the HTTP status (§5: most
/// arrive as HTTP 400).
const RATE_LIMITED_CODES: [i64; 6] = [
    4,      // app-level: too many calls (HTTP 429)
    80007,  // WhatsApp Business Account rate limit
    130429, // throughput limit of the phone number reached
    131048, // spam rate limit: too many messages from this number
    131056, // pair rate limit: too many messages to the same user
    133016, // registration rate limit
];

/// Meta error codes for a failure on Meta's side (§5: "retry").
const TRANSIENT_CODES: [i64; 4] = [
    1,      // unknown API error
    2,      // service temporarily unavailable
    131000, // something went wrong
    131016, // service unavailable
];

/// What an adapter needs of a META_CLOUD connection.
#[derive(Debug, Clone)]
pub(crate) struct Connection {
    http: crate::http::ProviderClient,
    base_url: Option<String>,
    access_token: Option<Secret>,
    phone_number_id: Option<String>,
    business_account_id: Option<String>,
    /// Every secret of the connection, to scrub from provider text.
    secrets: Vec<Secret>,
}

impl Connection {
    pub(crate) fn new(spec: &WhatsappProviderSpec, http: crate::http::ProviderClient) -> Self {
        let secrets = [
            &spec.access_token,
            &spec.webhook_verify_token,
            &spec.webhook_secret,
        ]
        .into_iter()
        .flatten()
        .cloned()
        .collect();
        Self {
            http,
            base_url: spec.base_url.clone(),
            access_token: spec.access_token.clone(),
            phone_number_id: spec.phone_number_id.clone(),
            business_account_id: spec.business_account_id.clone(),
            secrets,
        }
    }

    /// The Graph URL of `segments` (after the version), or a misconfiguration.
    fn url(&self, segments: &[&str]) -> Result<Url, ProviderError> {
        graph_url(self.base_url.as_deref(), segments).ok_or_else(|| {
            ProviderError::misconfigured("META_CLOUD baseUrl must be an http(s) URL")
        })
    }

    fn token(&self) -> Result<&Secret, ProviderError> {
        self.access_token
            .as_ref()
            .ok_or_else(|| ProviderError::misconfigured("META_CLOUD needs accessToken"))
    }

    fn phone_number_id(&self) -> Result<&str, ProviderError> {
        self.phone_number_id
            .as_deref()
            .ok_or_else(|| ProviderError::misconfigured("META_CLOUD needs phoneNumberId"))
    }

    fn business_account_id(&self) -> Result<&str, ProviderError> {
        self.business_account_id.as_deref().ok_or_else(|| {
            ProviderError::misconfigured(
                "META_CLOUD needs businessAccountId (the WhatsApp Business Account id) for templates",
            )
        })
    }

    /// `error` with the connection's secrets replaced by `***`.
    fn scrub(&self, error: ProviderError) -> ProviderError {
        let secrets: Vec<&str> = self.secrets.iter().map(Secret::expose).collect();
        http::scrub(error, &secrets)
    }

    /// Sends `request` and reads the answer; a non-2xx answer is classified.
    async fn call(&self, request: reqwest::RequestBuilder) -> Result<http::Answer, ProviderError> {
        let answer = self
            .http
            .execute(request)
            .await
            .map_err(|e| self.scrub(e))?;
        if !(200..300).contains(&answer.status) {
            return Err(self.scrub(classify_response(
                answer.status,
                &answer.headers,
                &answer.body,
            )));
        }
        Ok(answer)
    }
}

/// `base` (default Graph's host) with the pinned version and `segments`
/// appended, unless the base already names a version. `None` when the base
/// is not an http(s) URL.
pub(crate) fn graph_url(base: Option<&str>, segments: &[&str]) -> Option<Url> {
    let base = base.unwrap_or(DEFAULT_BASE_URL);
    let last = base.trim_end_matches('/').rsplit('/').next().unwrap_or("");
    if is_graph_version(last) {
        http::endpoint(Some(base), DEFAULT_BASE_URL, segments)
    } else {
        let mut all = Vec::with_capacity(segments.len() + 1);
        all.push(GRAPH_API_VERSION);
        all.extend_from_slice(segments);
        http::endpoint(Some(base), DEFAULT_BASE_URL, &all)
    }
}

/// `v21.0`: a `v`, digits, a dot, digits.
fn is_graph_version(segment: &str) -> bool {
    let Some(rest) = segment.strip_prefix('v') else {
        return false;
    };
    let Some((major, minor)) = rest.split_once('.') else {
        return false;
    };
    let digits = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
    digits(major) && digits(minor)
}

/// A recipient as Meta wants it: the digits of the E.164 number, no `+`.
pub(crate) fn digits(number: &str) -> String {
    number.chars().filter(char::is_ascii_digit).collect()
}

/// Graph's error envelope: `{"error": {...}}`.
#[derive(Debug, Deserialize)]
pub(crate) struct GraphErrorBody {
    pub(crate) error: GraphError,
}

/// One Graph error (providers.md §5 "Error shape").
#[derive(Debug, Default, Deserialize)]
pub(crate) struct GraphError {
    #[serde(default)]
    pub(crate) message: Option<String>,
    #[serde(default)]
    pub(crate) code: Option<i64>,
    #[serde(default)]
    pub(crate) error_subcode: Option<i64>,
    #[serde(default)]
    pub(crate) error_data: Option<Value>,
    #[serde(default)]
    pub(crate) fbtrace_id: Option<String>,
}

impl GraphError {
    /// `message`, then `error_data.details` when it adds something, then the
    /// `fbtrace_id` Meta support asks for.
    pub(crate) fn reason(&self) -> Option<String> {
        let message = self.message.as_deref().map(str::trim).unwrap_or("");
        let details = self
            .error_data
            .as_ref()
            .and_then(|d| d.get("details"))
            .and_then(Value::as_str)
            .map(str::trim)
            .filter(|d| !d.is_empty() && !message.contains(d));
        let mut reason = match details {
            Some(d) if message.is_empty() => d.to_owned(),
            Some(d) => format!("{message}: {d}"),
            None => message.to_owned(),
        };
        if reason.is_empty() {
            return None;
        }
        if let Some(trace) = self.fbtrace_id.as_deref().filter(|t| !t.is_empty()) {
            reason.push_str(&format!(" (fbtrace_id {trace})"));
        }
        Some(reason)
    }
}

/// The Graph error in `body`, when it is one.
pub(crate) fn graph_error(body: &[u8]) -> Option<GraphError> {
    serde_json::from_slice::<GraphErrorBody>(body)
        .ok()
        .map(|b| b.error)
}

/// What a Meta error code means, when the code alone decides.
fn kind_for_code(code: i64) -> Option<FailureKind> {
    if RATE_LIMITED_CODES.contains(&code) {
        return Some(FailureKind::RateLimited);
    }
    if TRANSIENT_CODES.contains(&code) {
        return Some(FailureKind::Transient);
    }
    match code {
        // 0 and 190: bad or expired token; 3 capability, 10 and 200-299
        // permission; 100 invalid parameter: permanent whatever the status.
        0 | 190 | 3 | 10 | 100 | 200..=299 => Some(FailureKind::Permanent),
        _ => None,
    }
}

/// What a Graph answer that is not a success means. Meta's error `code`
/// decides first (rate limits 4/80007/130429/131048/131056/133016 arrive
/// mostly as HTTP 400 and are rate limited; 1/2/131000/131016 are
/// transient; 0/190 auth, 3/10/200-299 permission and 100 are permanent);
/// other codes (131026 undeliverable, 131047 outside the 24 h window,
/// 132001 unknown template, 131030 recipient not allowed…) take the HTTP
/// status's meaning, which for Meta's 400 is permanent. A `Retry-After`
/// header is honoured when present; §5 says Meta sends none.
pub fn classify_response(status: u16, headers: &HeaderMap, body: &[u8]) -> ProviderError {
    let error = graph_error(body);
    let code = error.as_ref().and_then(|e| e.code);
    let reason = match error.as_ref().and_then(GraphError::reason) {
        Some(reason) => reason,
        None if (200..300).contains(&status) => "Meta answered without a message id".to_owned(),
        None => http::plain_reason(status, body),
    };
    let kind = code
        .and_then(kind_for_code)
        .unwrap_or_else(|| http::kind_for_status(status));
    http::error_from_answer(kind, status, headers, code.map(|c| c.to_string()), reason)
}

#[cfg(test)]
mod tests {
    use reqwest::header::{HeaderValue, RETRY_AFTER};

    use super::*;

    fn classify(status: u16, code: i64) -> ProviderError {
        let body = serde_json::json!({"error": {"message": format!("(#{code}) refused"),
            "type": "OAuthException", "code": code, "fbtrace_id": "AbC"}});
        classify_response(status, &HeaderMap::new(), body.to_string().as_bytes())
    }

    #[test]
    fn meta_rate_limit_codes_are_rate_limited_even_as_http_400() {
        for code in [4, 80007, 130429, 131048, 131056, 133016] {
            assert_eq!(classify(400, code).kind, FailureKind::RateLimited, "{code}");
        }
        let mut headers = HeaderMap::new();
        headers.insert(RETRY_AFTER, HeaderValue::from_static("9"));
        let e = classify_response(429, &headers, br#"{"error": {"code": 4, "message": "x"}}"#);
        assert_eq!(e.retry_after, Some(std::time::Duration::from_secs(9)));
    }

    #[test]
    fn auth_permission_and_recipient_codes_are_permanent() {
        for (status, code) in [(401, 190), (400, 0), (403, 10), (403, 200), (400, 100)] {
            assert_eq!(
                classify(status, code).kind,
                FailureKind::Permanent,
                "{code}"
            );
        }
        for code in [131026, 131047, 131049, 132001, 131030] {
            let e = classify(400, code);
            assert_eq!(e.kind, FailureKind::Permanent, "{code}");
            assert_eq!(e.code, Some(code.to_string()));
        }
    }

    #[test]
    fn meta_server_codes_are_transient() {
        for code in [1, 2, 131000, 131016] {
            assert_eq!(classify(400, code).kind, FailureKind::Transient, "{code}");
        }
        let e = classify_response(502, &HeaderMap::new(), b"<html/>");
        assert_eq!((e.kind, e.code), (FailureKind::Transient, None));
    }

    #[test]
    fn reason_joins_message_details_and_trace() {
        let body =
            br#"{"error": {"message": "(#131030) Recipient phone number not in allowed list",
            "code": 131030, "error_data": {"messaging_product": "whatsapp",
            "details": "Add it to the allowed list"}, "fbtrace_id": "AbCdEf"}}"#;
        let e = classify_response(400, &HeaderMap::new(), body);
        assert_eq!(
            e.message,
            "(#131030) Recipient phone number not in allowed list: Add it to the allowed list (fbtrace_id AbCdEf)"
        );
    }

    #[test]
    fn graph_urls_carry_the_pinned_version_unless_the_base_has_one() {
        let url = |base: Option<&str>| graph_url(base, &["123", "messages"]).map(String::from);
        assert_eq!(
            url(None).as_deref(),
            Some("https://graph.facebook.com/v21.0/123/messages")
        );
        assert_eq!(
            url(Some("http://127.0.0.1:9")).as_deref(),
            Some("http://127.0.0.1:9/v21.0/123/messages")
        );
        assert_eq!(
            url(Some("https://graph.facebook.com/v19.0/")).as_deref(),
            Some("https://graph.facebook.com/v19.0/123/messages")
        );
        assert_eq!(url(Some("ftp://x")), None);
        assert!(!is_graph_version("v21") && !is_graph_version("x1.0"));
    }
}
