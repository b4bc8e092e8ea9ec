//! Gupshup WhatsApp, self-serve API (providers.md §7).
//!
//! `POST /wa/api/v1/msg` (session: `message` a JSON string) and
//! `POST /wa/api/v1/template/msg` (`template` a JSON string `{"id",
//! "params"}`, optional `message` for a media header), header
//! `apikey`, form fields `channel=whatsapp`, `source`, `destination`
//! (digits), `src.name`.
//!
//! - 202 `{"status": "submitted", "messageId": "<uuid>"}`.
//! - Errors `{"status": "error", "message"}`: 401 "Authentication Failed",
//!   400 "Invalid Destination", "Invalid App Details", "Invalid Message"
//!   and the like, 429 "Too many requests" (with `Retry-After` when
//!   configured; §13 assumes 429), 500.
//! - Callbacks (§7.3, "v2" format) to the account's `webhookUrl`, which
//!   must carry `?token=<the engine's webhookSecret>` (Gupshup does not
//!   sign): `{"app", "timestamp" (ms), "version": 2, "type":
//!   "message-event", "payload": {"id", "gsId", "type", "destination",
//!   "payload"}}`. `enqueued` (`id` = Gupshup's id, `payload.whatsappMessageId`),
//!   then `sent`, `delivered`, `read` (`id` = the wamid, `gsId` = Gupshup's
//!   id, `payload.ts`), or `failed` (`id` = Gupshup's id, `payload.code`
//!   131026 and `reason`).
//! - `GET /sm/api/v1/template/list/{appName}` (the engine's probe):
//!   `{"status": "success", "templates": []}`.

use actix_web::http::StatusCode;
use actix_web::{web, HttpRequest, HttpResponse};
use base64::Engine as _;
use chrono::Utc;
use serde_json::{json, Value};

use super::config::{Outcome, ProviderKind};
use super::webhooks::Step;
use super::{form_pairs, idempotency_key, random_hex, same_secret, uuid_like, Account, Shared};

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.route("/wa/api/v1/msg", web::post().to(send_session))
        .route("/wa/api/v1/template/msg", web::post().to(send_template))
        .route("/sm/api/v1/template/list/{app}", web::get().to(templates));
}

fn error(status: StatusCode, message: &str) -> HttpResponse {
    HttpResponse::build(status).json(json!({"status": "error", "message": message}))
}

fn account_of<'a>(shared: &'a Shared, request: &HttpRequest) -> Option<&'a Account> {
    let key = request.headers().get("apikey")?.to_str().ok()?;
    shared.of_type("gupshup").find(
        |a| matches!(a.kind(), ProviderKind::Gupshup { api_key, .. } if same_secret(key, api_key)),
    )
}

/// Whether the account serves the app `name`.
fn serves_app(account: &Account, name: &str) -> bool {
    matches!(account.kind(), ProviderKind::Gupshup { app_name, .. }
        if app_name.as_deref().is_none_or(|a| a == name))
}

/// `GET /sm/api/v1/template/list/{appName}` (the engine's probe).
async fn templates(
    shared: web::Data<Shared>,
    request: HttpRequest,
    path: web::Path<String>,
) -> HttpResponse {
    let Some(account) = account_of(&shared, &request) else {
        return error(StatusCode::UNAUTHORIZED, "Authentication Failed");
    };
    if !serves_app(account, &path) {
        return error(StatusCode::BAD_REQUEST, "Invalid App Details");
    }
    HttpResponse::Ok().json(json!({"status": "success", "templates": []}))
}

async fn send_session(
    shared: web::Data<Shared>,
    request: HttpRequest,
    body: web::Bytes,
) -> HttpResponse {
    send(shared, request, body, false).await
}

async fn send_template(
    shared: web::Data<Shared>,
    request: HttpRequest,
    body: web::Bytes,
) -> HttpResponse {
    send(shared, request, body, true).await
}

/// Why Gupshup would refuse these fields, if it would.
fn problem(
    get: &dyn Fn(&str) -> Option<String>,
    account: &Account,
    template: bool,
) -> Option<&'static str> {
    let json_field = |k: &str| get(k).and_then(|v| serde_json::from_str::<Value>(&v).ok());
    if get("channel").as_deref() != Some("whatsapp") {
        return Some("Invalid Channel");
    }
    if get("source").is_none_or(|s| s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit())) {
        return Some("Invalid Source");
    }
    if !get("src.name").is_some_and(|app| serves_app(account, &app)) {
        return Some("Invalid App Details");
    }
    if template {
        if json_field("template")
            .and_then(|t| t.get("id").cloned())
            .is_none()
        {
            return Some("Invalid Template");
        }
    } else if json_field("message")
        .and_then(|m| m.get("type").and_then(Value::as_str).map(str::to_owned))
        .is_none()
    {
        return Some("Invalid Message");
    }
    None
}

async fn send(
    shared: web::Data<Shared>,
    request: HttpRequest,
    body: web::Bytes,
    template: bool,
) -> HttpResponse {
    let account = account_of(&shared, &request);
    let Some(account) = shared.admit("gupshup", account).await else {
        return error(StatusCode::UNAUTHORIZED, "Authentication Failed");
    };
    let fields = form_pairs(&body);
    let get = |name: &str| {
        fields
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.trim().to_owned())
    };
    let destination = get("destination").filter(|d| !d.is_empty());
    let recipients: Vec<String> = destination.iter().map(|d| format!("+{d}")).collect();
    let key = idempotency_key(&request);
    if let Some(refused) = shared.injected_failure(
        account,
        &recipients,
        key,
        |mut answer| answer.json(json!({"status": "error", "message": "Too many requests"})),
        || error(StatusCode::INTERNAL_SERVER_ERROR, "Internal Server Error"),
    ) {
        return refused;
    }
    let valid_destination = destination
        .as_deref()
        .is_some_and(|d| (7..=15).contains(&d.len()) && d.bytes().all(|b| b.is_ascii_digit()));
    let why = if valid_destination {
        problem(&get, account, template)
    } else {
        Some("Invalid Destination")
    };
    if let Some(why) = why {
        account.count(|c| &c.invalid);
        shared.stats.record_send(&recipients, key, false);
        return error(StatusCode::BAD_REQUEST, why);
    }
    account.count(|c| &c.accepted);
    shared.stats.record_send(&recipients, key, true);
    let gs_id = uuid_like();
    if let (Some(url), Some(destination)) = (account.webhook_url(), destination) {
        let app = get("src.name").unwrap_or_default();
        let steps = callbacks(&gs_id, &destination, &app, account.outcome(), &url);
        shared.post_webhooks(account, url, steps);
    }
    HttpResponse::Accepted().json(json!({"status": "submitted", "messageId": gs_id}))
}

/// The callbacks of one message for one outcome, in order.
fn callbacks(gs_id: &str, destination: &str, app: &str, outcome: Outcome, url: &str) -> Vec<Step> {
    let kinds: &[&str] = match outcome {
        Outcome::Delivered => &["enqueued", "sent", "delivered"],
        Outcome::Read => &["enqueued", "sent", "delivered", "read"],
        Outcome::Failed | Outcome::Undelivered | Outcome::Bounced => &["enqueued", "failed"],
        Outcome::None => &[],
    };
    let wamid = format!(
        "wamid.{}",
        base64::engine::general_purpose::STANDARD
            .encode(format!("HBgM{destination}{}", random_hex(9)))
    );
    kinds
        .iter()
        .map(|kind| {
            let now = Utc::now();
            let payload = match *kind {
                "enqueued" => json!({"id": gs_id, "type": kind, "destination": destination,
                    "payload": {"whatsappMessageId": wamid, "type": "session"}}),
                "failed" => json!({"id": gs_id, "type": kind, "destination": destination,
                    "payload": {"code": 131026, "reason": "Message Undeliverable."}}),
                _ => json!({"id": wamid, "gsId": gs_id, "type": kind,
                    "destination": destination, "payload": {"ts": now.timestamp()}}),
            };
            let body = json!({
                "app": app,
                "timestamp": now.timestamp_millis(),
                "version": 2,
                "type": "message-event",
                "payload": payload,
            });
            Step {
                url: url.to_owned(),
                content_type: "application/json",
                headers: vec![("User-Agent", "Gupshup-Callback/1.0".to_owned())],
                body: body.to_string().into_bytes(),
            }
        })
        .collect()
}
