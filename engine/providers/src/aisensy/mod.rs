//! AiSensy WhatsApp (a BSP sending through "API campaigns", providers.md §8):
//! `POST {baseUrl or https://backend.aisensy.com}/campaign/t1/api/v2`, JSON,
//! the account API key (our `accessToken`) **in the body** as `apiKey`, no
//! auth header.
//!
//! A send names a campaign set live in the AiSensy dashboard and bound to an
//! approved template: `campaignName` is our `extras.template.name`,
//! `templateParams` its variables (their count must match the template's
//! placeholders), `media` `{"url", "filename"}` the template's media header
//! (or `extras.media`), by public link. AiSensy cannot send free text, so a
//! message without a template is refused in words. `destination` is the
//! E.164 number as we hold it (AiSensy assumes India when the country code
//! is missing; whether it wants the `+` is not documented, §13).
//! `userName` (required: AiSensy creates or updates a contact by that name)
//! is `metadata.userName` when it is a string, else the recipient's number.
//!
//! Unconfirmed (§13) and assumed here: the success body (any 2xx is taken,
//! as clients do, unless its body says `success: false` or `status:
//! "error"`; a message id is taken from `submitted_message_id`, `messageId`,
//! `message_id` or `id`, at the top or under `data`, and when there is none
//! the receipt carries our own message id), the error catalogue (a JSON
//! `message`; 4xx permanent, 429 or a rate-limit reason rate limited, 5xx
//! transient), rate limits, and the whole webhook format (see [`webhook`]).
//! AiSensy carries no per-message custom data we could echo; no idempotency
//! key is documented (`X-Msgengine-Idempotency-Key` is sent for our
//! simulator).

mod descriptor;
mod manage;
mod webhook;

pub(crate) use descriptor::DESCRIPTOR;

use msgengine_domain::message::{Media, OutboundMessage};
use msgengine_domain::provider::WhatsappProviderSpec;
use msgengine_domain::Secret;
use reqwest::header::HeaderMap;
use serde::Serialize;
use serde_json::Value;
use url::Url;

use crate::http::{self, IDEMPOTENCY_HEADER};
use crate::send::{FailureKind, ProviderError, SendReceipt, Sender};

pub use manage::{AisensyAdmin, AisensyProbe};
pub use webhook::AisensyWebhook;

/// AiSensy's API host.
pub const DEFAULT_BASE_URL: &str = "https://backend.aisensy.com";
/// The campaign API path (§8; older docs show `/campaign/t1/api`).
const CAMPAIGN_PATH: [&str; 4] = ["campaign", "t1", "api", "v2"];

/// An AiSensy connection.
pub struct AisensySender {
    http: crate::http::ProviderClient,
    /// `None` when `baseUrl` is not an http(s) URL.
    endpoint: Option<Url>,
    api_key: Option<Secret>,
}

impl AisensySender {
    /// A sender for `spec`; calls go through the shared `http` client.
    pub fn new(spec: &WhatsappProviderSpec, http: crate::http::ProviderClient) -> Self {
        Self {
            http,
            endpoint: campaign_endpoint(spec),
            api_key: spec.access_token.clone(),
        }
    }
}

fn campaign_endpoint(spec: &WhatsappProviderSpec) -> Option<Url> {
    http::endpoint(spec.base_url.as_deref(), DEFAULT_BASE_URL, &CAMPAIGN_PATH)
}

/// The campaign API body, in AiSensy's field names.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct CampaignSend<'a> {
    api_key: &'a str,
    campaign_name: &'a str,
    destination: &'a str,
    user_name: &'a str,
    template_params: &'a [String],
    #[serde(skip_serializing_if = "Option::is_none")]
    media: Option<CampaignMedia<'a>>,
}

#[derive(Serialize)]
struct CampaignMedia<'a> {
    url: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    filename: Option<&'a str>,
}

/// A message the adapter refuses before calling AiSensy: retrying cannot help.
fn refuse(reason: &str) -> ProviderError {
    let mut e = ProviderError::new(FailureKind::Permanent, reason);
    e.code = Some("msgengine_unsupported_content".into());
    e
}

fn campaign_media(media: &Media) -> Result<CampaignMedia<'_>, ProviderError> {
    match media.link.as_deref() {
        Some(url) if !url.is_empty() => Ok(CampaignMedia {
            url,
            filename: media.filename.as_deref().filter(|f| !f.is_empty()),
        }),
        _ => Err(refuse(
            "AiSensy takes campaign media by public URL only: set the media link (uploaded media ids are not supported)",
        )),
    }
}

/// The contact name AiSensy requires: `metadata.userName`, else the number.
fn user_name(message: &OutboundMessage) -> &str {
    message
        .metadata
        .as_ref()
        .and_then(|m| m.get("userName"))
        .and_then(Value::as_str)
        .filter(|name| !name.trim().is_empty())
        .unwrap_or(&message.to)
}

#[async_trait::async_trait]
impl Sender for AisensySender {
    async fn send(
        &self,
        message: &OutboundMessage,
        idempotency_key: &str,
    ) -> Result<SendReceipt, ProviderError> {
        let Some(endpoint) = &self.endpoint else {
            return Err(ProviderError::misconfigured(
                "AISENSY baseUrl must be an http(s) URL",
            ));
        };
        let Some(api_key) = &self.api_key else {
            return Err(ProviderError::misconfigured("AISENSY needs accessToken"));
        };
        let extras = message.extras.as_deref();
        let Some(template) = extras
            .and_then(|e| e.template.as_ref())
            .filter(|t| !t.name.trim().is_empty())
        else {
            return Err(refuse(
                "AiSensy sends only through live API campaigns bound to an approved template: \
                 set template.name to the campaign name",
            ));
        };
        let media = match template
            .header_media
            .as_ref()
            .or(extras.and_then(|e| e.media.as_ref()))
        {
            Some(media) => Some(campaign_media(media)?),
            None => None,
        };
        let body = CampaignSend {
            api_key: api_key.expose(),
            campaign_name: &template.name,
            destination: &message.to,
            user_name: user_name(message),
            template_params: &template.variables,
            media,
        };
        let secrets = [api_key.expose()];
        let request = self
            .http
            .post(endpoint.clone())
            .header(IDEMPOTENCY_HEADER, idempotency_key)
            .json(&body);
        let answer = self
            .http
            .execute(request)
            .await
            .map_err(|e| http::scrub(e, &secrets))?;
        if (200..300).contains(&answer.status) {
            if let Some(id) = accepted(&answer.body) {
                return Ok(SendReceipt {
                    provider_message_id: id.unwrap_or_else(|| message.id.to_string()),
                    state: msgengine_domain::message::MessageState::Sent,
                    segments: None,
                });
            }
        }
        Err(http::scrub(
            classify_response(answer.status, &answer.headers, &answer.body),
            &secrets,
        ))
    }
}

/// Whether a 2xx body accepts the send (`None`: it says it failed), and the
/// message id it carries, if any. A body that is not JSON is an acceptance:
/// AiSensy's success body is undocumented and clients check the status only.
fn accepted(body: &[u8]) -> Option<Option<String>> {
    let Ok(Value::Object(answer)) = serde_json::from_slice::<Value>(body) else {
        return Some(None);
    };
    let failed = matches!(answer.get("success"), Some(Value::Bool(false)))
        || answer.get("success").and_then(Value::as_str) == Some("false")
        || matches!(
            answer.get("status").and_then(Value::as_str),
            Some("error" | "failed" | "failure")
        );
    if failed {
        return None;
    }
    let data = answer.get("data").and_then(Value::as_object);
    let id = ["submitted_message_id", "messageId", "message_id", "id"]
        .iter()
        .find_map(|key| {
            [Some(&answer), data]
                .into_iter()
                .flatten()
                .find_map(|o| o.get(*key).and_then(Value::as_str))
                .filter(|id| !id.is_empty())
        });
    Some(id.map(str::to_owned))
}

/// AiSensy's reason in words: `message`, `errorMessage` or `error` (a
/// string, or an object with a `message`).
fn reason_of(answer: &Value) -> Option<String> {
    ["message", "errorMessage", "error"].iter().find_map(|key| {
        let value = answer.get(*key)?;
        value
            .as_str()
            .or_else(|| value.get("message").and_then(Value::as_str))
            .filter(|s| !s.trim().is_empty())
            .map(str::to_owned)
    })
}

/// What an AiSensy answer that is not an acceptance means (§8, error
/// catalogue unconfirmed): 429 or a rate-limit reason is rate limited; a
/// 2xx whose body says it failed is permanent (AiSensy validates campaigns
/// and parameters); otherwise the shared status meanings (401/403 bad key,
/// 400 "Campaign does not exist." / not live / parameter count: permanent;
/// 5xx transient).
pub fn classify_response(status: u16, headers: &HeaderMap, body: &[u8]) -> ProviderError {
    let answer = serde_json::from_slice::<Value>(body).ok();
    let reason = match answer.as_ref().and_then(reason_of) {
        Some(reason) => reason,
        None if (200..300).contains(&status) => "AiSensy reported the send as failed".into(),
        None => http::plain_reason(status, body),
    };
    let code = answer
        .as_ref()
        .and_then(|a| a.get("code").or_else(|| a.get("errorCode")))
        .and_then(|c| match c {
            Value::Number(n) => Some(n.to_string()),
            Value::String(s) if !s.is_empty() => Some(s.clone()),
            _ => None,
        });
    let lower = reason.to_ascii_lowercase();
    let kind = if status == 429 || lower.contains("rate limit") || lower.contains("too many") {
        FailureKind::RateLimited
    } else if (200..300).contains(&status) {
        FailureKind::Permanent
    } else {
        http::kind_for_status(status)
    };
    http::error_from_answer(kind, status, headers, code, reason)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn classify(status: u16, body: &str) -> ProviderError {
        classify_response(status, &HeaderMap::new(), body.as_bytes())
    }

    #[test]
    fn acceptance_takes_any_documented_id_or_none() {
        assert_eq!(accepted(b""), Some(None));
        assert_eq!(accepted(b"OK"), Some(None));
        assert_eq!(
            accepted(br#"{"success": "true", "submitted_message_id": "abc"}"#),
            Some(Some("abc".into()))
        );
        assert_eq!(
            accepted(br#"{"status": "success", "data": {"messageId": "m-1"}}"#),
            Some(Some("m-1".into()))
        );
        assert_eq!(accepted(br#"{"success": false, "message": "x"}"#), None);
        assert_eq!(accepted(br#"{"status": "error"}"#), None);
    }

    #[test]
    fn campaign_errors_are_permanent_with_aisensy_reason() {
        let e = classify(400, r#"{"message": "Campaign does not exist."}"#);
        assert_eq!(
            (e.kind, e.message.as_str()),
            (FailureKind::Permanent, "Campaign does not exist.")
        );
        let e = classify(
            200,
            r#"{"success": false, "errorMessage": "Campaign not live"}"#,
        );
        assert_eq!(
            (e.kind, e.message.as_str()),
            (FailureKind::Permanent, "Campaign not live")
        );
        assert_eq!(classify(401, "Unauthorized").kind, FailureKind::Permanent);
    }

    #[test]
    fn rate_limits_and_server_errors_are_retryable() {
        assert_eq!(classify(429, "").kind, FailureKind::RateLimited);
        assert_eq!(
            classify(400, r#"{"message": "Too many requests"}"#).kind,
            FailureKind::RateLimited
        );
        assert_eq!(classify(503, "").kind, FailureKind::Transient);
    }
}
