//! Termii SMS (providers.md §11).
//!
//! `POST /api/sms/send`, JSON `{"api_key", "to" (digits, or an array of
//! them), "from", "sms", "type", "channel"}`: the key in the body, no auth
//! header.
//!
//! - 200 `{"code": "ok", "message_id", "message_id_str", "message":
//!   "Successfully Sent", "balance", "user"}`.
//! - Errors `{"message"}` (§13: Termii's shapes are unconfirmed; these are
//!   the simulator's): 401 "Invalid API key", 400 for a missing field or a
//!   `channel` other than `generic`/`dnd`/`whatsapp`, 429 "Too many
//!   requests" (with `Retry-After` when configured), 500.
//! - Delivery webhooks (§11.2) to the account's `webhookUrl`: JSON
//!   `{"type": "outbound", "id", "message_id", "receiver", "sender",
//!   "message", "sent_at", "cost", "status", "channel"}` signed with
//!   `X-Termii-Signature` = hex HMAC-SHA512(secretKey, raw body). Outcomes:
//!   `delivered`/`read` → `Message Sent`, `Delivered`; `failed`/`bounced` →
//!   `Rejected`; `undelivered` → `Message Sent`, `Message Failed`.
//! - `GET /api/get-balance?api_key=` (the engine's probe): `{"user",
//!   "balance", "currency"}`.

use actix_web::http::StatusCode;
use actix_web::{web, HttpRequest, HttpResponse};
use chrono::Utc;
use hmac::{Hmac, Mac};
use rand::Rng;
use serde_json::{json, Value};
use sha2::Sha512;

use super::config::{Outcome, ProviderKind};
use super::webhooks::Step;
use super::{idempotency_key, same_secret, Account, Shared};

/// The signature header of Termii's webhooks.
pub const SIGNATURE_HEADER: &str = "X-Termii-Signature";

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.route("/api/sms/send", web::post().to(send))
        .route("/api/get-balance", web::get().to(balance));
}

fn message(status: StatusCode, text: &str) -> HttpResponse {
    HttpResponse::build(status).json(json!({"message": text}))
}

fn account_of<'a>(shared: &'a Shared, key: Option<&str>) -> Option<&'a Account> {
    let key = key?;
    shared.of_type("termii").find(
        |a| matches!(a.kind(), ProviderKind::Termii { api_key, .. } if same_secret(key, api_key)),
    )
}

#[derive(serde::Deserialize)]
struct KeyQuery {
    #[serde(default)]
    api_key: Option<String>,
}

/// `GET /api/get-balance?api_key=` (the engine's probe).
async fn balance(shared: web::Data<Shared>, query: web::Query<KeyQuery>) -> HttpResponse {
    if account_of(&shared, query.api_key.as_deref()).is_none() {
        return message(StatusCode::UNAUTHORIZED, "Invalid API key");
    }
    HttpResponse::Ok().json(json!({"user": "msgengine-sim", "balance": 9_000.5, "currency": "NGN"}))
}

/// `to` as `+digits`, each of a string or an array.
fn recipients_of(send: &Value) -> Vec<String> {
    let plus = |s: &str| {
        let digits: String = s.chars().filter(char::is_ascii_digit).collect();
        (!digits.is_empty()).then(|| format!("+{digits}"))
    };
    match send.get("to") {
        Some(Value::String(s)) => plus(s).into_iter().collect(),
        Some(Value::Array(list)) => list
            .iter()
            .filter_map(Value::as_str)
            .filter_map(plus)
            .collect(),
        _ => Vec::new(),
    }
}

async fn send(shared: web::Data<Shared>, request: HttpRequest, body: web::Bytes) -> HttpResponse {
    let payload: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
    let account = account_of(&shared, payload.get("api_key").and_then(Value::as_str));
    let Some(account) = shared.admit("termii", account).await else {
        return message(StatusCode::UNAUTHORIZED, "Invalid API key");
    };
    let recipients = recipients_of(&payload);
    let key = idempotency_key(&request);
    if let Some(refused) = shared.injected_failure(
        account,
        &recipients,
        key,
        |mut answer| answer.json(json!({"message": "Too many requests"})),
        || message(StatusCode::INTERNAL_SERVER_ERROR, "Server Error"),
    ) {
        return refused;
    }
    let text = |k: &str| {
        payload
            .get(k)
            .and_then(Value::as_str)
            .filter(|s| !s.trim().is_empty())
    };
    let missing = ["from", "sms", "channel"]
        .into_iter()
        .find(|k| text(k).is_none());
    let problem = match (recipients.is_empty(), missing) {
        (true, _) => Some("The to field is required.".to_owned()),
        (_, Some(field)) => Some(format!("The {field} field is required.")),
        _ if !matches!(text("channel"), Some("generic" | "dnd" | "whatsapp")) => {
            Some("The selected channel is invalid.".to_owned())
        }
        _ => None,
    };
    if let Some(problem) = problem {
        account.count(|c| &c.invalid);
        shared.stats.record_send(&recipients, key, false);
        return message(StatusCode::BAD_REQUEST, &problem);
    }
    account.count(|c| &c.accepted);
    shared.stats.record_send(&recipients, key, true);
    let id: u64 = rand::thread_rng().gen_range(1_000_000_000_000_000_000..u64::MAX);
    if let (Some(url), ProviderKind::Termii { secret_key, .. }) =
        (account.webhook_url(), account.kind())
    {
        let report = Report {
            id: &id.to_string(),
            sender: text("from").unwrap_or(""),
            message: text("sms").unwrap_or(""),
            channel: text("channel").unwrap_or("generic"),
        };
        let steps = recipients
            .iter()
            .flat_map(|r| reports(&report, r, account.outcome(), &url, secret_key))
            .collect();
        shared.post_webhooks(account, url, steps);
    }
    HttpResponse::Ok().json(json!({
        "code": "ok",
        "message_id": id.to_string(),
        "message_id_str": id.to_string(),
        "message": "Successfully Sent",
        "balance": 9_000.5,
        "user": "msgengine-sim",
    }))
}

/// What the reports of one send say.
struct Report<'a> {
    id: &'a str,
    sender: &'a str,
    message: &'a str,
    channel: &'a str,
}

/// The signed reports of one recipient for one outcome, in order.
fn reports(r: &Report<'_>, recipient: &str, outcome: Outcome, url: &str, key: &str) -> Vec<Step> {
    let statuses: &[&str] = match outcome {
        Outcome::Delivered | Outcome::Read => &["Message Sent", "Delivered"],
        Outcome::Failed | Outcome::Bounced => &["Rejected"],
        Outcome::Undelivered => &["Message Sent", "Message Failed"],
        Outcome::None => &[],
    };
    statuses
        .iter()
        .map(|status| {
            let body = json!({
                "type": "outbound",
                "id": r.id,
                "message_id": r.id,
                "receiver": recipient.trim_start_matches('+'),
                "sender": r.sender,
                "message": r.message,
                "sent_at": Utc::now().format("%Y-%m-%d %H:%M:%S").to_string(),
                "cost": "2.50",
                "status": status,
                "channel": r.channel,
            })
            .to_string()
            .into_bytes();
            Step {
                url: url.to_owned(),
                content_type: "application/json",
                headers: vec![(SIGNATURE_HEADER, sign(key, &body))],
                body,
            }
        })
        .collect()
}

/// Hex HMAC-SHA512 of `body` with the account's secret key (§11.2).
pub fn sign(key: &str, body: &[u8]) -> String {
    match Hmac::<Sha512>::new_from_slice(key.as_bytes()) {
        Ok(mut mac) => {
            mac.update(body);
            hex::encode(mac.finalize().into_bytes())
        }
        Err(_) => String::new(),
    }
}
