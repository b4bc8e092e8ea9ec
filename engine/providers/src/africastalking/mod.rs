//! Africa's Talking SMS (providers.md §10), speaking its messaging API:
//! `POST {baseUrl or https://api.africastalking.com}/version1/messaging`,
//! header `apiKey: <apiKey>` and `Accept: application/json` (without it the
//! answer is XML), form fields `username`, `to`, `message`, and `from` when a
//! sender id is set. With `username` `sandbox` and no `baseUrl`, the sandbox
//! host `https://api.sandbox.africastalking.com` is used. A `baseUrl` may be
//! the host or end in `/version1` or `/version1/messaging`.
//!
//! Success is HTTP 201 (or 200: §13, unconfirmed which) with
//! `{"SMSMessageData": {"Message": "Sent to 1/1 Total Cost: …", "Recipients":
//! [{"statusCode": 101, "number", "status": "Success", "cost": "KES 0.8000",
//! "messageId": "ATXid_…", "messageParts": 1}]}}`. We send to one number, so
//! the one recipient decides (§10.1, §12): `statusCode` 100 Processed, 101
//! Sent or 102 Queued is a receipt (`Sent`, `messageParts` as the segments);
//! any other code is this attempt's failure, classified per code
//! ([`recipient_error`]). The recipient's `cost` has no place in the receipt
//! and is not kept. A 2xx with no recipients is a batch-level refusal whose
//! `Message` says why (`InvalidSenderId`). Errors outside a 2xx are plain
//! text (401 "The supplied authentication is invalid", 400 with a reason).
//!
//! No custom data travels with a message (delivery reports carry only
//! Africa's Talking's `messageId`), no idempotency key is documented (a retry
//! after a timeout may duplicate), and no rate-limit answer is documented
//! (§13): a 429 is taken as rate limiting all the same.

mod admin;
mod descriptor;
mod webhook;

pub(crate) use descriptor::DESCRIPTOR;

use async_trait::async_trait;
use msgengine_domain::message::{MessageState, OutboundMessage};
use msgengine_domain::provider::SmsProviderSpec;
use msgengine_domain::Secret;
use reqwest::header::{HeaderMap, ACCEPT};
use serde::Deserialize;
use serde_json::Value;
use url::Url;

use crate::http::{self, IDEMPOTENCY_HEADER};
use crate::send::{FailureKind, ProviderError, SendReceipt, Sender};

pub use admin::{AfricasTalkingAdmin, AfricasTalkingProbe};
pub use webhook::AfricasTalkingWebhook;

/// Africa's Talking's live API host.
pub const DEFAULT_BASE_URL: &str = "https://api.africastalking.com";
/// The sandbox API host (username `sandbox`).
pub const SANDBOX_BASE_URL: &str = "https://api.sandbox.africastalking.com";

/// The credentials every call needs, and where to send it.
pub(crate) struct Account {
    /// The API root (host and any prefix, without `/version1`); `None` when
    /// `baseUrl` is not an http(s) URL.
    root: Option<Url>,
    username: Option<Secret>,
    api_key: Option<Secret>,
    /// Every credential value, to scrub from provider text.
    secrets: Vec<Secret>,
}

impl Account {
    pub(crate) fn new(spec: &SmsProviderSpec) -> Self {
        let username = spec.credential("username").cloned();
        let sandbox = username.as_ref().is_some_and(|u| u.expose() == "sandbox");
        Self {
            root: root_url(spec.base_url.as_deref(), sandbox),
            username,
            api_key: spec.credential("apiKey").cloned(),
            secrets: spec.credentials.values().cloned().collect(),
        }
    }

    /// `{root}/version1/{leaf}`, the username and the API key, or the
    /// misconfiguration in words.
    pub(crate) fn call(&self, leaf: &str) -> Result<(Url, &Secret, &Secret), ProviderError> {
        let url = self.root.as_ref().and_then(|root| {
            http::endpoint(Some(root.as_str()), DEFAULT_BASE_URL, &["version1", leaf])
        });
        let Some(url) = url else {
            return Err(ProviderError::misconfigured(
                "AFRICASTALKING baseUrl (when set) must be an http(s) URL",
            ));
        };
        match (&self.username, &self.api_key) {
            (Some(username), Some(api_key)) => Ok((url, username, api_key)),
            _ => Err(ProviderError::misconfigured(
                "AFRICASTALKING needs credentials.username and credentials.apiKey",
            )),
        }
    }

    pub(crate) fn scrub(&self, error: ProviderError) -> ProviderError {
        let secrets: Vec<&str> = self.secrets.iter().map(Secret::expose).collect();
        http::scrub(error, &secrets)
    }
}

/// The API root for `base`: the given URL without a trailing `/version1` or
/// `/version1/messaging`; the live or sandbox host when unset.
fn root_url(base: Option<&str>, sandbox: bool) -> Option<Url> {
    let default = if sandbox {
        SANDBOX_BASE_URL
    } else {
        DEFAULT_BASE_URL
    };
    let mut url = http::endpoint(base, default, &[])?;
    let segments: Vec<String> = url.path_segments()?.map(str::to_owned).collect();
    let keep = match segments.as_slice() {
        [rest @ .., v, m] if v == "version1" && m == "messaging" => rest.len(),
        [rest @ .., v] if v == "version1" => rest.len(),
        all => all.len(),
    };
    {
        let mut path = url.path_segments_mut().ok()?;
        for _ in keep..segments.len() {
            path.pop();
        }
    }
    Some(url)
}

/// An Africa's Talking SMS connection.
pub struct AfricasTalkingSender {
    http: crate::http::ProviderClient,
    account: Account,
    sender_id: Option<String>,
}

impl AfricasTalkingSender {
    /// A sender for `spec`; calls go through the shared `http` client.
    pub fn new(spec: &SmsProviderSpec, http: crate::http::ProviderClient) -> Self {
        Self {
            http,
            account: Account::new(spec),
            sender_id: spec.sender_id.clone(),
        }
    }
}

#[async_trait]
impl Sender for AfricasTalkingSender {
    async fn send(
        &self,
        message: &OutboundMessage,
        idempotency_key: &str,
    ) -> Result<SendReceipt, ProviderError> {
        let (url, username, api_key) = self.account.call("messaging")?;
        let mut form = vec![
            ("username", username.expose()),
            ("to", message.to.as_str()),
            ("message", message.text.as_str()),
        ];
        // Without `from`, Africa's Talking sends from its shared sender.
        if let Some(from) = message.from.as_deref().or(self.sender_id.as_deref()) {
            form.push(("from", from));
        }
        let request = self
            .http
            .post(url)
            .header("apiKey", api_key.expose())
            .header(ACCEPT, "application/json")
            .header(IDEMPOTENCY_HEADER, idempotency_key)
            .form(&form);
        let answer = self
            .http
            .execute(request)
            .await
            .map_err(|e| self.account.scrub(e))?;
        receipt_or_error(answer.status, &answer.headers, &answer.body)
            .map_err(|e| self.account.scrub(e))
    }
}

#[derive(Deserialize)]
struct Answer {
    #[serde(rename = "SMSMessageData")]
    data: Data,
}

#[derive(Deserialize)]
struct Data {
    #[serde(rename = "Message", default)]
    message: Option<String>,
    #[serde(rename = "Recipients", default)]
    recipients: Vec<Recipient>,
}

#[derive(Deserialize)]
struct Recipient {
    #[serde(rename = "statusCode", default)]
    status_code: Option<Value>,
    #[serde(default)]
    status: Option<String>,
    #[serde(rename = "messageId", default)]
    message_id: Option<String>,
    #[serde(rename = "messageParts", default)]
    message_parts: Option<Value>,
}

/// A number as text or a JSON number as `u32`.
fn number(value: Option<&Value>) -> Option<u32> {
    match value? {
        Value::Number(n) => n.as_u64().and_then(|n| u32::try_from(n).ok()),
        Value::String(s) => s.trim().parse().ok(),
        _ => None,
    }
}

/// The receipt of an answer, or its failure classified.
pub fn receipt_or_error(
    status: u16,
    headers: &HeaderMap,
    body: &[u8],
) -> Result<SendReceipt, ProviderError> {
    let answer = (200..300)
        .contains(&status)
        .then(|| serde_json::from_slice::<Answer>(body).ok())
        .flatten();
    let Some(Answer { data }) = answer else {
        return Err(classify_response(status, headers, body));
    };
    let Some(recipient) = data.recipients.into_iter().next() else {
        let reason = data.message.filter(|m| !m.trim().is_empty());
        let mut error = match reason {
            Some(reason) => ProviderError::new(FailureKind::Permanent, http::bound(&reason)),
            None => ProviderError::new(
                FailureKind::Transient,
                "Africa's Talking answered without recipients",
            ),
        };
        error.http_status = Some(status);
        return Err(error);
    };
    let code = number(recipient.status_code.as_ref());
    let id = recipient
        .message_id
        .filter(|id| !id.trim().is_empty() && id != "None");
    match (code, id) {
        (Some(100..=102), Some(id)) => Ok(SendReceipt {
            provider_message_id: id,
            state: MessageState::Sent,
            segments: number(recipient.message_parts.as_ref()),
        }),
        (code, _) => {
            let mut error = recipient_error(code, recipient.status.as_deref());
            error.http_status = Some(status);
            Err(error)
        }
    }
}

/// A recipient's failure `statusCode` (§10.1): 405 InsufficientBalance is
/// transient (the account, not the message, is the problem: another
/// attempt after a top-up, or through another connection, can succeed), as
/// are 500 InternalServerError and 501 GatewayError; 401 RiskHold, 402
/// InvalidSenderId, 403 InvalidPhoneNumber, 404 UnsupportedNumberType, 406
/// UserInBlacklist, 407 CouldNotRoute, 409 (DoNotDisturbRejection, or
/// DuplicateRequest in some SDKs: §13) and 502 RejectedByGateway are
/// permanent. A success code without a `messageId` is transient.
pub fn recipient_error(code: Option<u32>, status: Option<&str>) -> ProviderError {
    let kind = match code {
        Some(405 | 500 | 501) | Some(100..=102) | None => FailureKind::Transient,
        Some(_) => FailureKind::Permanent,
    };
    let status = status.map(str::trim).filter(|s| !s.is_empty());
    let message = match (code, status) {
        (Some(100..=102), _) => {
            "Africa's Talking accepted the message without a messageId".to_owned()
        }
        (_, Some(status)) => http::bound(status),
        (Some(code), None) => format!("Africa's Talking refused the recipient (statusCode {code})"),
        (None, None) => "Africa's Talking answered without a recipient status".to_owned(),
    };
    let mut error = ProviderError::new(kind, message);
    error.code = code.map(|c| c.to_string());
    error
}

/// What an answer that is not a send result means: the shared status
/// meanings (401 bad credentials and 400 bad requests permanent, 429 rate
/// limited, 5xx transient), the reason the plain-text body.
pub fn classify_response(status: u16, headers: &HeaderMap, body: &[u8]) -> ProviderError {
    let reason = if (200..300).contains(&status) {
        "Africa's Talking answered without SMSMessageData".to_owned()
    } else {
        http::plain_reason(status, body)
    };
    http::error_from_answer(http::kind_for_status(status), status, headers, None, reason)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn outcome(status: u16, body: &str) -> Result<SendReceipt, ProviderError> {
        receipt_or_error(status, &HeaderMap::new(), body.as_bytes())
    }

    #[test]
    fn a_sent_recipient_is_a_receipt_with_its_parts() {
        let receipt = outcome(
            201,
            r#"{"SMSMessageData": {"Message": "Sent to 1/1 Total Cost: KES 0.8000",
                "Recipients": [{"statusCode": 101, "number": "+254711000111", "status": "Success",
                                "cost": "KES 0.8000", "messageId": "ATXid_1", "messageParts": 2}]}}"#,
        );
        assert_eq!(
            receipt.ok(),
            Some(SendReceipt {
                provider_message_id: "ATXid_1".into(),
                state: MessageState::Sent,
                segments: Some(2),
            })
        );
    }

    #[test]
    fn recipient_codes_are_classified() {
        let body = |code: u32, status: &str| {
            format!(
                r#"{{"SMSMessageData": {{"Message": "Sent to 0/1", "Recipients": [{{"statusCode": {code},
                   "number": "+254711000111", "status": "{status}", "cost": "0", "messageId": "None"}}]}}}}"#
            )
        };
        for (code, status, kind) in [
            (403, "InvalidPhoneNumber", FailureKind::Permanent),
            (406, "UserInBlacklist", FailureKind::Permanent),
            (405, "InsufficientBalance", FailureKind::Transient),
            (501, "GatewayError", FailureKind::Transient),
            (502, "RejectedByGateway", FailureKind::Permanent),
        ] {
            let e = outcome(201, &body(code, status)).expect_err("refused");
            assert_eq!(e.kind, kind, "{code}");
            assert_eq!(e.message, status);
            assert_eq!(e.code, Some(code.to_string()));
            assert_eq!(e.http_status, Some(201));
        }
    }

    #[test]
    fn a_batch_refusal_is_permanent_with_its_message() {
        let e = outcome(
            201,
            r#"{"SMSMessageData": {"Message": "InvalidSenderId", "Recipients": []}}"#,
        )
        .expect_err("refused");
        assert_eq!(
            (e.kind, e.message.as_str()),
            (FailureKind::Permanent, "InvalidSenderId")
        );
    }

    #[test]
    fn plain_text_errors_keep_their_words() {
        let e = outcome(401, "The supplied authentication is invalid").expect_err("refused");
        assert_eq!(e.kind, FailureKind::Permanent);
        assert_eq!(e.message, "The supplied authentication is invalid");
        assert_eq!(
            outcome(502, "").expect_err("refused").kind,
            FailureKind::Transient
        );
        assert_eq!(
            outcome(200, "<xml/>").expect_err("refused").kind,
            FailureKind::Transient
        );
    }

    #[test]
    fn root_drops_the_version_path_and_picks_the_sandbox() {
        for base in [
            "http://127.0.0.1:9",
            "http://127.0.0.1:9/version1",
            "http://127.0.0.1:9/version1/messaging/",
        ] {
            assert_eq!(
                root_url(Some(base), false).map(String::from).as_deref(),
                Some("http://127.0.0.1:9/"),
                "{base}"
            );
        }
        assert_eq!(
            root_url(None, true).map(String::from).as_deref(),
            Some("https://api.sandbox.africastalking.com/")
        );
        assert_eq!(
            root_url(Some("http://h/at/"), false)
                .map(String::from)
                .as_deref(),
            Some("http://h/at")
        );
    }
}
