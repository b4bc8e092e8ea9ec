//! Interakt public message API (providers.md §9).
//!
//! `POST /v1/public/message/` (trailing slash; also served without it),
//! `Authorization: Basic <apiKey>` with the key compared as given (the
//! dashboard's key already is the Basic credential), JSON: the recipient
//! as `fullPhoneNumber` (digits) or `countryCode` + `phoneNumber`,
//! `callbackData`, `type` `Text` (`data.message`), `Template`
//! (`template.name`, `languageCode`, `bodyValues`, `headerValues`) or a
//! media type (`data.mediaUrl`).
//!
//! - 201 `{"result": true, "message": "Message created successfully",
//!   "id": "<uuid>"}`.
//! - Errors `{"result": false, "message"}` (§13: envelope unconfirmed):
//!   401 "Invalid token provided", 400 for a missing recipient, type or
//!   content, 429 "Rate limit exceeded for this resource" (with
//!   `Retry-After` when configured), 500.
//! - Webhooks to the account's `webhookUrl`: `{"timestamp", "type":
//!   "message_api_sent|delivered|read|failed", "data": {"customer": {"id",
//!   "channel_phone_number", "phone_number", "country_code", "traits"},
//!   "message": {"id", "chat_message_type", "message_status",
//!   "callback_data", "received_at_utc", "delivered_at_utc",
//!   "seen_at_utc", "channel_failure_reason", "meta_data"}}}`, signed
//!   `Interakt-Signature: sha256=<hex HMAC-SHA256(webhookSecret, body)>`.

use actix_web::http::StatusCode;
use actix_web::{web, HttpRequest, HttpResponse};
use chrono::{SecondsFormat, Utc};
use hmac::{Hmac, Mac};
use serde_json::{json, Value};
use sha2::Sha256;

use super::config::{Outcome, ProviderKind};
use super::webhooks::Step;
use super::{idempotency_key, same_secret, uuid_like, Account, Shared};

/// The signature header of Interakt's webhooks.
pub const SIGNATURE_HEADER: &str = "Interakt-Signature";

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.route("/v1/public/message/", web::post().to(send))
        .route("/v1/public/message", web::post().to(send));
}

fn answer(status: StatusCode, message: &str) -> HttpResponse {
    HttpResponse::build(status).json(json!({"result": false, "message": message}))
}

fn account_of<'a>(shared: &'a Shared, request: &HttpRequest) -> Option<&'a Account> {
    let value = request.headers().get("authorization")?.to_str().ok()?;
    let (scheme, key) = value.trim().split_once(' ')?;
    if !scheme.eq_ignore_ascii_case("basic") {
        return None;
    }
    shared.of_type("interakt").find(|a| {
        matches!(a.kind(), ProviderKind::Interakt { api_key, .. } if same_secret(key.trim(), api_key))
    })
}

/// (country code digits, national digits) of a send's recipient.
fn number_of(send: &Value) -> Option<(String, String)> {
    let digits = |k: &str| -> String {
        match send.get(k) {
            Some(Value::String(s)) => s.chars().filter(char::is_ascii_digit).collect(),
            Some(Value::Number(n)) => n.to_string(),
            _ => String::new(),
        }
    };
    let full = digits("fullPhoneNumber");
    if !full.is_empty() {
        return Some(split(&full));
    }
    let (code, national) = (digits("countryCode"), digits("phoneNumber"));
    (!code.is_empty() && !national.is_empty()).then_some((code, national))
}

/// Splits full digits into country code and national number (the country
/// code empty when the number does not parse).
fn split(full: &str) -> (String, String) {
    let code = phonenumber::parse(None, format!("+{full}"))
        .ok()
        .map(|n| n.code().value().to_string())
        .filter(|code| full.starts_with(code.as_str()));
    match code {
        Some(code) => (code.clone(), full[code.len()..].to_owned()),
        None => (String::new(), full.to_owned()),
    }
}

/// Why Interakt would refuse the send, if it would.
fn problem(send: &Value) -> Option<&'static str> {
    let text = |p: &str| {
        send.pointer(p)
            .and_then(Value::as_str)
            .is_some_and(|s| !s.trim().is_empty())
    };
    match send.get("type").and_then(Value::as_str) {
        None => Some("type is required"),
        Some("Text") if !text("/data/message") => Some("data.message is required"),
        Some("Template") if !text("/template/name") || !text("/template/languageCode") => {
            Some("template.name and template.languageCode are required")
        }
        Some("Image" | "Document" | "Video" | "Audio") if !text("/data/mediaUrl") => {
            Some("data.mediaUrl is required")
        }
        Some("Text" | "Template" | "Image" | "Document" | "Video" | "Audio") => None,
        Some(_) => Some("Invalid message type"),
    }
}

async fn send(shared: web::Data<Shared>, request: HttpRequest, body: web::Bytes) -> HttpResponse {
    let account = account_of(&shared, &request);
    let Some(account) = shared.admit("interakt", account).await else {
        return answer(StatusCode::UNAUTHORIZED, "Invalid token provided");
    };
    let payload: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
    let number = number_of(&payload);
    let recipients: Vec<String> = number
        .iter()
        .map(|(code, national)| format!("+{code}{national}"))
        .collect();
    let key = idempotency_key(&request);
    if let Some(refused) = shared.injected_failure(
        account,
        &recipients,
        key,
        |mut limited| {
            limited
                .json(json!({"result": false, "message": "Rate limit exceeded for this resource"}))
        },
        || answer(StatusCode::INTERNAL_SERVER_ERROR, "Internal server error"),
    ) {
        return refused;
    }
    let why = match number {
        None => Some("fullPhoneNumber or countryCode and phoneNumber are required"),
        Some(_) => problem(&payload),
    };
    if let Some(why) = why {
        account.count(|c| &c.invalid);
        shared.stats.record_send(&recipients, key, false);
        return answer(StatusCode::BAD_REQUEST, why);
    }
    account.count(|c| &c.accepted);
    shared.stats.record_send(&recipients, key, true);
    let id = uuid_like();
    if let (Some(url), Some(number), ProviderKind::Interakt { webhook_secret, .. }) =
        (account.webhook_url(), number, account.kind())
    {
        let context = Context {
            id: &id,
            number: &number,
            callback_data: payload.get("callbackData").and_then(Value::as_str),
            chat_type: if payload.get("type").and_then(Value::as_str) == Some("Template") {
                "PublicApiTemplateMessage"
            } else {
                "PublicApiMessage"
            },
        };
        let steps = webhooks(&context, account.outcome(), &url, webhook_secret);
        shared.post_webhooks(account, url, steps);
    }
    HttpResponse::Created().json(json!({
        "result": true, "message": "Message created successfully", "id": id,
    }))
}

/// What the webhooks of one message say.
struct Context<'a> {
    id: &'a str,
    number: &'a (String, String),
    callback_data: Option<&'a str>,
    chat_type: &'a str,
}

/// The signed webhooks of one message for one outcome, in order.
fn webhooks(c: &Context<'_>, outcome: Outcome, url: &str, secret: &str) -> Vec<Step> {
    let words: &[&str] = match outcome {
        Outcome::Delivered => &["sent", "delivered"],
        Outcome::Read => &["sent", "delivered", "read"],
        Outcome::Failed | Outcome::Undelivered | Outcome::Bounced => &["failed"],
        Outcome::None => &[],
    };
    let customer_id = uuid_like();
    let (code, national) = c.number;
    words
        .iter()
        .map(|word| {
            let now = Utc::now();
            let at = now.format("%Y-%m-%dT%H:%M:%S%.6f").to_string();
            let mut message = json!({
                "id": c.id,
                "chat_message_type": c.chat_type,
                "message_status": capitalised(word),
                "callback_data": c.callback_data,
                "received_at_utc": at,
                "delivered_at_utc": null,
                "seen_at_utc": null,
                "channel_failure_reason": null,
                "meta_data": {},
            });
            if matches!(*word, "delivered" | "read") {
                message["delivered_at_utc"] = json!(at);
            }
            if *word == "read" {
                message["seen_at_utc"] = json!(at);
            }
            if *word == "failed" {
                message["channel_failure_reason"] = json!("Message undeliverable (131026)");
            }
            let body = json!({
                "timestamp": now.to_rfc3339_opts(SecondsFormat::Micros, true),
                "type": format!("message_api_{word}"),
                "data": {
                    "customer": {"id": customer_id, "channel_phone_number": national,
                                 "phone_number": national, "country_code": format!("+{code}"),
                                 "traits": {}},
                    "message": message,
                },
            })
            .to_string()
            .into_bytes();
            Step {
                url: url.to_owned(),
                content_type: "application/json",
                headers: vec![(SIGNATURE_HEADER, format!("sha256={}", sign(secret, &body)))],
                body,
            }
        })
        .collect()
}

fn capitalised(word: &str) -> String {
    let mut chars = word.chars();
    match chars.next() {
        Some(first) => first.to_uppercase().chain(chars).collect(),
        None => String::new(),
    }
}

/// Hex HMAC-SHA256 of `body` with the webhook secret.
pub fn sign(secret: &str, body: &[u8]) -> String {
    match Hmac::<Sha256>::new_from_slice(secret.as_bytes()) {
        Ok(mut mac) => {
            mac.update(body);
            hex::encode(mac.finalize().into_bytes())
        }
        Err(_) => String::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn full_numbers_split_into_country_code_and_national_number() {
        assert_eq!(
            split("2348031234567"),
            ("234".to_owned(), "8031234567".to_owned())
        );
        assert_eq!(
            split("919876543210"),
            ("91".to_owned(), "9876543210".to_owned())
        );
        assert_eq!(split("15005550006").0, "1");
    }
}
