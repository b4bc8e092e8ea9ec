//! AiSensy campaign API (providers.md §8).
//!
//! `POST /campaign/t1/api/v2` (and the older `/campaign/t1/api`), JSON
//! `{"apiKey", "campaignName", "destination", "userName", "templateParams",
//! "media"?, …}`: the key in the body, no auth header.
//!
//! AiSensy's answers, rate limits and webhooks are undocumented (§13); the
//! simulator's choices, within what the engine's adapter accepts:
//! - 200 `{"success": "true", "submitted_message_id": "<id>"}`.
//! - Errors `{"message"}`: 401 "Invalid API Key", 400 "Campaign does not
//!   exist." (a `campaignName` outside the account's `campaigns`, when it
//!   lists any), "destination is required", "userName is required",
//!   "templateParams must be an array of strings"; 429 "Too many requests"
//!   (with `Retry-After` when configured); 500.
//! - Status webhooks to the account's `webhookUrl`, which must carry
//!   `?token=<the engine's webhookSecret>` (no signature is documented):
//!   `{"topic": "message.status.updated", "data": {"message": {"id",
//!   "status", "phone_number", "failureResponse"?}}}` with `status` `sent`,
//!   `delivered`, `read` or `failed` (`failureResponse` `{"code": 131026,
//!   "reason"}`).

use actix_web::http::StatusCode;
use actix_web::{web, HttpRequest, HttpResponse};
use chrono::Utc;
use serde_json::{json, Value};

use super::config::{Outcome, ProviderKind};
use super::webhooks::Step;
use super::{idempotency_key, random_hex, same_secret, Account, Shared};

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.route("/campaign/t1/api/v2", web::post().to(send))
        .route("/campaign/t1/api", web::post().to(send));
}

fn message(status: StatusCode, text: &str) -> HttpResponse {
    HttpResponse::build(status).json(json!({"message": text}))
}

fn account_of<'a>(shared: &'a Shared, key: Option<&str>) -> Option<&'a Account> {
    let key = key?;
    shared.of_type("aisensy").find(
        |a| matches!(a.kind(), ProviderKind::Aisensy { api_key, .. } if same_secret(key, api_key)),
    )
}

/// Why AiSensy would refuse the campaign send, if it would.
fn problem(send: &Value, account: &Account, has_destination: bool) -> Option<&'static str> {
    let text = |k: &str| {
        send.get(k)
            .and_then(Value::as_str)
            .filter(|s| !s.trim().is_empty())
    };
    let live = match (account.kind(), text("campaignName")) {
        (_, None) => false,
        (ProviderKind::Aisensy { campaigns, .. }, Some(name)) => {
            campaigns.is_empty() || campaigns.iter().any(|c| c == name)
        }
        _ => false,
    };
    let params_ok = match send.get("templateParams") {
        None => true,
        Some(Value::Array(list)) => list.iter().all(Value::is_string),
        Some(_) => false,
    };
    if !live {
        Some("Campaign does not exist.")
    } else if !has_destination {
        Some("destination is required")
    } else if text("userName").is_none() {
        Some("userName is required")
    } else if !params_ok {
        Some("templateParams must be an array of strings")
    } else {
        None
    }
}

async fn send(shared: web::Data<Shared>, request: HttpRequest, body: web::Bytes) -> HttpResponse {
    let payload: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
    let account = account_of(&shared, payload.get("apiKey").and_then(Value::as_str));
    let Some(account) = shared.admit("aisensy", account).await else {
        return message(StatusCode::UNAUTHORIZED, "Invalid API Key");
    };
    // AiSensy assumes India (+91) for a number without its country code.
    let digits: String = payload
        .get("destination")
        .and_then(Value::as_str)
        .unwrap_or("")
        .chars()
        .filter(char::is_ascii_digit)
        .collect();
    let number = match digits.len() {
        0 => None,
        10 => Some(format!("+91{digits}")),
        _ => Some(format!("+{digits}")),
    };
    let recipients: Vec<String> = number.iter().cloned().collect();
    let key = idempotency_key(&request);
    if let Some(refused) = shared.injected_failure(
        account,
        &recipients,
        key,
        |mut answer| answer.json(json!({"message": "Too many requests"})),
        || message(StatusCode::INTERNAL_SERVER_ERROR, "Internal Server Error"),
    ) {
        return refused;
    }
    if let Some(why) = problem(&payload, account, number.is_some()) {
        account.count(|c| &c.invalid);
        shared.stats.record_send(&recipients, key, false);
        return message(StatusCode::BAD_REQUEST, why);
    }
    account.count(|c| &c.accepted);
    shared.stats.record_send(&recipients, key, true);
    let id = random_hex(12);
    if let (Some(url), Some(number)) = (account.webhook_url(), number) {
        let steps = webhooks(&id, &number, account.outcome(), &url);
        shared.post_webhooks(account, url, steps);
    }
    HttpResponse::Ok().json(json!({"success": "true", "submitted_message_id": id}))
}

/// The status webhooks of one message for one outcome, in order.
fn webhooks(id: &str, number: &str, outcome: Outcome, url: &str) -> Vec<Step> {
    let statuses: &[&str] = match outcome {
        Outcome::Delivered => &["sent", "delivered"],
        Outcome::Read => &["sent", "delivered", "read"],
        Outcome::Failed | Outcome::Undelivered | Outcome::Bounced => &["failed"],
        Outcome::None => &[],
    };
    statuses
        .iter()
        .map(|status| {
            let mut message = json!({
                "id": id,
                "status": status,
                "phone_number": number.trim_start_matches('+'),
                "updated_at": Utc::now().to_rfc3339(),
            });
            if *status == "failed" {
                message["failureResponse"] =
                    json!({"code": 131026, "reason": "Message undeliverable"});
            }
            let body = json!({
                "topic": "message.status.updated",
                "data": {"message": message},
            });
            Step {
                url: url.to_owned(),
                content_type: "application/json",
                headers: vec![("User-Agent", "AiSensy-Webhook/1.0".to_owned())],
                body: body.to_string().into_bytes(),
            }
        })
        .collect()
}
