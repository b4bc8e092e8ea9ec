//! One Twilio account as a connection sees it: the API root, the Account
//! SID, the Basic-auth pair, and the calls every Twilio adapter makes on the
//! Message and Account resources (providers.md §6.1):
//!
//! - create: `POST /2010-04-01/Accounts/{AccountSid}/Messages.json` (form),
//!   201 with the message resource (`sid`, `status`, `num_segments` as a string);
//! - fetch: `GET .../Messages/{Sid}.json`, the same resource;
//! - the probe's lookups (in `probe.rs`).

use msgengine_domain::message::MessageState;
use msgengine_domain::provider::{SmsProviderSpec, WhatsappProviderSpec};
use msgengine_domain::Secret;
use reqwest::RequestBuilder;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use url::Url;

use super::errors::code_text;
use super::{
    classify_response, state_for, API_VERSION, DEFAULT_BASE_URL, TWILIO_IDEMPOTENCY_HEADER,
};
use crate::http::{self, IDEMPOTENCY_HEADER};
use crate::manage::ProviderStatus;
use crate::send::{FailureKind, ProviderError, SendReceipt};

/// Which pair authenticates the calls.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AuthKind {
    /// `AccountSid:AuthToken`.
    AuthToken,
    /// `ApiKeySid:ApiKeySecret` (SMS connections only).
    ApiKey,
}

/// How a connection names its Twilio fields, for misconfiguration errors.
struct FieldNames {
    sid: &'static str,
    auth: &'static str,
}

const SMS_FIELDS: FieldNames = FieldNames {
    sid: "TWILIO needs credentials.accountSid",
    auth:
        "TWILIO needs credentials.authToken, or credentials.apiKeySid with credentials.apiKeySecret",
};
const WHATSAPP_FIELDS: FieldNames = FieldNames {
    sid: "TWILIO needs businessAccountId (the Account SID)",
    auth: "TWILIO needs accessToken (the Auth Token)",
};

/// One Twilio account's API access.
pub struct TwilioAccount {
    pub(super) http: crate::http::ProviderClient,
    /// `{baseUrl}/2010-04-01`; `None` when `baseUrl` is not an http(s) URL.
    root: Option<Url>,
    account_sid: Option<Secret>,
    /// (kind, user, password).
    auth: Option<(AuthKind, Secret, Secret)>,
    /// Every secret of the connection, to scrub from provider text.
    secrets: Vec<Secret>,
    fields: &'static FieldNames,
}

impl TwilioAccount {
    /// The account of an SMS connection: `credentials.accountSid` with
    /// `authToken`, or with `apiKeySid` + `apiKeySecret`.
    pub fn from_sms(spec: &SmsProviderSpec, http: crate::http::ProviderClient) -> Self {
        let sid = spec.credential("accountSid");
        let auth = match (
            sid,
            spec.credential("authToken"),
            spec.credential("apiKeySid"),
            spec.credential("apiKeySecret"),
        ) {
            (Some(sid), Some(token), _, _) => {
                Some((AuthKind::AuthToken, sid.clone(), token.clone()))
            }
            (Some(_), None, Some(key), Some(secret)) => {
                Some((AuthKind::ApiKey, key.clone(), secret.clone()))
            }
            _ => None,
        };
        Self {
            http,
            root: root_url(spec.base_url.as_deref()),
            account_sid: sid.cloned(),
            auth,
            secrets: spec.credentials.values().cloned().collect(),
            fields: &SMS_FIELDS,
        }
    }

    /// The account of a WhatsApp connection: `businessAccountId` is the
    /// Account SID and `accessToken` the Auth Token.
    pub fn from_whatsapp(spec: &WhatsappProviderSpec, http: crate::http::ProviderClient) -> Self {
        let sid = spec.business_account_id.clone().map(Secret::new);
        let auth = match (&sid, &spec.access_token) {
            (Some(sid), Some(token)) => Some((AuthKind::AuthToken, sid.clone(), token.clone())),
            _ => None,
        };
        let secrets = [
            sid.clone(),
            spec.access_token.clone(),
            spec.webhook_secret.clone(),
            spec.webhook_verify_token.clone(),
        ]
        .into_iter()
        .flatten()
        .collect();
        Self {
            http,
            root: root_url(spec.base_url.as_deref()),
            account_sid: sid,
            auth,
            secrets,
            fields: &WHATSAPP_FIELDS,
        }
    }

    /// Replaces every secret of the connection in the error's text.
    pub fn scrub(&self, error: ProviderError) -> ProviderError {
        let secrets: Vec<&str> = self.secrets.iter().map(Secret::expose).collect();
        http::scrub(error, &secrets)
    }

    /// `.../Accounts/{AccountSid}` followed by `tail`; with no tail, the
    /// Account resource `.../Accounts/{AccountSid}.json`.
    pub(super) fn resource(&self, tail: &[&str]) -> Result<Url, ProviderError> {
        let Some(root) = &self.root else {
            return Err(ProviderError::misconfigured(
                "TWILIO baseUrl (when set) must be an http(s) URL",
            ));
        };
        let Some(sid) = &self.account_sid else {
            return Err(ProviderError::misconfigured(self.fields.sid));
        };
        let mut url = root.clone();
        {
            let mut segments = url.path_segments_mut().map_err(|()| {
                ProviderError::misconfigured("TWILIO baseUrl (when set) must be an http(s) URL")
            })?;
            segments.push("Accounts");
            match tail {
                [] => segments.push(&format!("{}.json", sid.expose())),
                _ => segments.push(sid.expose()).extend(tail),
            };
        }
        Ok(url)
    }

    /// The request with Basic auth, or the misconfiguration.
    pub(super) fn authed(&self, request: RequestBuilder) -> Result<RequestBuilder, ProviderError> {
        match &self.auth {
            Some((_, user, password)) => {
                Ok(request.basic_auth(user.expose(), Some(password.expose())))
            }
            None => Err(ProviderError::misconfigured(self.fields.auth)),
        }
    }

    /// How this connection authenticates, when it can.
    pub fn auth_kind(&self) -> Option<AuthKind> {
        self.auth.as_ref().map(|(kind, _, _)| *kind)
    }

    /// Creates a message from `form`; the receipt carries `num_segments`.
    pub async fn create_message<F: Serialize + Sync + ?Sized>(
        &self,
        form: &F,
        idempotency_key: &str,
    ) -> Result<SendReceipt, ProviderError> {
        let url = self.resource(&["Messages.json"])?;
        let request = self
            .authed(self.http.post(url))?
            .header(TWILIO_IDEMPOTENCY_HEADER, idempotency_key)
            .header(IDEMPOTENCY_HEADER, idempotency_key)
            .form(form);
        let answer = self
            .http
            .execute(request)
            .await
            .map_err(|e| self.scrub(e))?;
        if (200..300).contains(&answer.status) {
            if let Some(created) = parse_resource(&answer.body) {
                return created
                    .into_receipt(answer.status)
                    .map_err(|e| self.scrub(e));
            }
        }
        Err(self.scrub(classify_response(
            answer.status,
            &answer.headers,
            &answer.body,
        )))
    }

    /// The message resource `provider_message_id` as Twilio reports it now.
    pub async fn fetch_message(
        &self,
        provider_message_id: &str,
    ) -> Result<ProviderStatus, ProviderError> {
        let leaf = format!("{}.json", provider_message_id.trim());
        let url = self.resource(&["Messages", &leaf])?;
        let request = self.authed(self.http.get(url))?;
        let answer = self
            .http
            .execute(request)
            .await
            .map_err(|e| self.scrub(e))?;
        match parse_resource(&answer.body) {
            Some(message) if answer.status == 200 => Ok(message.into_status()),
            _ => Err(self.scrub(classify_response(
                answer.status,
                &answer.headers,
                &answer.body,
            ))),
        }
    }
}

/// `{base}/2010-04-01`. providers.md gives the base as
/// `https://api.twilio.com/2010-04-01`; a `baseUrl` written either way works.
fn root_url(base: Option<&str>) -> Option<Url> {
    let base = base.unwrap_or(DEFAULT_BASE_URL);
    let segments: &[&str] = if base.trim_end_matches('/').ends_with(API_VERSION) {
        &[]
    } else {
        &[API_VERSION]
    };
    http::endpoint(Some(base), DEFAULT_BASE_URL, segments)
}

/// The Message resource (the fields we use).
#[derive(Deserialize)]
struct MessageResource {
    sid: String,
    #[serde(default)]
    status: Option<String>,
    #[serde(default)]
    num_segments: Option<Value>,
    #[serde(default)]
    error_code: Option<Value>,
    #[serde(default)]
    error_message: Option<String>,
}

fn parse_resource(body: &[u8]) -> Option<MessageResource> {
    serde_json::from_slice::<MessageResource>(body)
        .ok()
        .filter(|c| !c.sid.is_empty())
}

impl MessageResource {
    /// `delivered` → Delivered; a resource already `failed`, `undelivered`
    /// or `canceled` is a permanent failure with Twilio's error code; any
    /// other status (`queued`, `accepted`, `sending`, `sent`, `scheduled`) → Sent.
    fn into_receipt(self, http_status: u16) -> Result<SendReceipt, ProviderError> {
        let state = match self.status.as_deref() {
            Some("delivered") => MessageState::Delivered,
            Some(failed @ ("failed" | "undelivered" | "canceled")) => {
                let reason = self
                    .error_message
                    .unwrap_or_else(|| format!("Twilio reported the message {failed}"));
                let mut error = ProviderError::new(FailureKind::Permanent, http::bound(&reason));
                error.http_status = Some(http_status);
                error.code = self.error_code.as_ref().and_then(code_text);
                return Err(error);
            }
            _ => MessageState::Sent,
        };
        let segments = match &self.num_segments {
            Some(Value::String(s)) => s.trim().parse().ok(),
            Some(Value::Number(n)) => n.as_u64().and_then(|n| u32::try_from(n).ok()),
            _ => None,
        };
        Ok(SendReceipt {
            provider_message_id: self.sid,
            state,
            segments,
        })
    }

    fn into_status(self) -> ProviderStatus {
        let raw_status = self.status.unwrap_or_default();
        let error_code = self.error_code.as_ref().and_then(code_text);
        let reason = self
            .error_message
            .filter(|m| !m.trim().is_empty())
            .or_else(|| {
                error_code
                    .as_deref()
                    .and_then(super::describe_code)
                    .map(str::to_owned)
            });
        ProviderStatus {
            provider_message_id: self.sid,
            state: state_for(&raw_status),
            raw_status,
            error_code,
            reason,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn created_resource_maps_status_and_segments() {
        let created = parse_resource(br#"{"sid": "SM1", "status": "queued", "num_segments": "2"}"#);
        let receipt = created.map(|c| c.into_receipt(201));
        assert_eq!(
            receipt.and_then(Result::ok),
            Some(SendReceipt {
                provider_message_id: "SM1".into(),
                state: MessageState::Sent,
                segments: Some(2),
            })
        );
        let delivered =
            parse_resource(br#"{"sid": "SM2", "status": "delivered", "num_segments": 1}"#)
                .map(|c| c.into_receipt(201));
        assert_eq!(
            delivered
                .and_then(Result::ok)
                .map(|r| (r.state, r.segments)),
            Some((MessageState::Delivered, Some(1)))
        );
        let failed = parse_resource(
            br#"{"sid": "SM3", "status": "failed", "error_code": 30007, "error_message": "filtered"}"#,
        )
        .map(|c| c.into_receipt(201));
        let e = failed.and_then(Result::err);
        assert_eq!(
            e.map(|e| (e.kind, e.code, e.message)),
            Some((
                FailureKind::Permanent,
                Some("30007".into()),
                "filtered".into()
            ))
        );
    }

    #[test]
    fn fetched_resource_becomes_a_status_with_the_code_in_words() {
        let status = parse_resource(
            br#"{"sid": "SM4", "status": "undelivered", "error_code": 30003, "error_message": null}"#,
        )
        .map(MessageResource::into_status);
        assert_eq!(
            status,
            Some(ProviderStatus {
                provider_message_id: "SM4".into(),
                state: Some(MessageState::Failed),
                raw_status: "undelivered".into(),
                error_code: Some("30003".into()),
                reason: Some("the handset is unreachable".into()),
            })
        );
    }

    #[test]
    fn root_accepts_a_base_with_or_without_the_version() {
        for base in [
            "http://127.0.0.1:9",
            "http://127.0.0.1:9/",
            "http://127.0.0.1:9/2010-04-01",
        ] {
            assert_eq!(
                root_url(Some(base)).map(String::from).as_deref(),
                Some("http://127.0.0.1:9/2010-04-01"),
                "{base}"
            );
        }
        assert!(root_url(Some("ftp://x")).is_none());
    }
}
