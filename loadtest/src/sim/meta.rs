//! Meta WhatsApp Cloud API (providers.md §5).
//!
//! `POST /{version}/{phoneNumberId}/messages`, `Authorization: Bearer
//! <accessToken>`, JSON body `{"messaging_product": "whatsapp", "to",
//! "type", …, "biz_opaque_callback_data"?}`.
//!
//! - 200 `{"messaging_product": "whatsapp", "contacts": [{"input",
//!   "wa_id"}], "messages": [{"id": "wamid.…"}]}` (`message_status:
//!   accepted` added for templates).
//! - Graph error envelope `{"error": {"message", "type", "code",
//!   "fbtrace_id"}}`: 401 code 190 (bad token), 400 code 100 (invalid
//!   parameter, unknown phone number id), 429 code 4 (with `Retry-After`
//!   when configured: Meta documents none), 500 code 1.
//! - Webhooks (§5.2) to the account's `webhookUrl`: one notification per
//!   status (`sent`, `delivered`, `read`, `failed` with `errors[]`), carrying
//!   `biz_opaque_callback_data` back when the send set it; non-ASCII escaped
//!   as `\uXXXX` as Meta does; `X-Hub-Signature-256: sha256=<hex>`
//!   (HMAC-SHA256 of the raw body with the app secret) and the older
//!   `X-Hub-Signature: sha1=<hex>`.
//!
//! - `GET /{version}/{phoneNumberId|wabaId}` (the engine's probe).
//!
//! Not simulated yet: templates, media, inbound messages.

use actix_web::http::StatusCode;
use actix_web::{web, HttpRequest, HttpResponse};
use base64::Engine as _;
use chrono::Utc;
use hmac::{Hmac, Mac};
use serde_json::{json, Value};
use sha1::Sha1;
use sha2::Sha256;

use super::config::{Outcome, ProviderKind};
use super::webhooks::Step;
use super::{bearer, idempotency_key, random_hex, same_secret, Shared};

/// The signature header of Meta's webhooks.
pub const SIGNATURE_HEADER: &str = "X-Hub-Signature-256";

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.route("/{version}/{phone}/messages", web::post().to(send_message))
        .route("/{version}/{node}", web::get().to(lookup));
}

/// `GET /{version}/{node}?fields=…` (the engine's probe): the phone number
/// (`display_phone_number`, `verified_name`) or the WhatsApp Business
/// Account (`id`, `name`).
async fn lookup(
    shared: web::Data<Shared>,
    request: HttpRequest,
    path: web::Path<(String, String)>,
) -> HttpResponse {
    let (version, node) = path.into_inner();
    let token = bearer(&request);
    let mut authorized = false;
    for account in shared.of_type("metaCloud") {
        let ProviderKind::MetaCloud {
            access_token,
            phone_number_id,
            business_account_id,
            display_phone_number,
            ..
        } = account.kind()
        else {
            continue;
        };
        if !token.is_some_and(|t| same_secret(t, access_token)) {
            continue;
        }
        authorized = true;
        if !is_version(&version) {
            break;
        }
        if phone_number_id.as_deref().is_none_or(|id| id == node) {
            return HttpResponse::Ok().json(json!({
                "id": node,
                "display_phone_number": display_phone_number.as_deref().unwrap_or("15550001111"),
                "verified_name": "msgengine-sim",
            }));
        }
        if business_account_id.as_deref() == Some(node.as_str()) {
            return HttpResponse::Ok().json(json!({"id": node, "name": "msgengine-sim WABA"}));
        }
    }
    if !authorized {
        return error(
            StatusCode::UNAUTHORIZED,
            190,
            "Invalid OAuth access token - Cannot parse access token",
        );
    }
    invalid(&format!(
        "Unsupported get request. Object with ID '{node}' does not exist, cannot be loaded due \
         to missing permissions, or does not support this operation."
    ))
}

/// A Graph error answer.
fn error(status: StatusCode, code: i64, message: &str) -> HttpResponse {
    HttpResponse::build(status).json(json!({"error": {
        "message": message,
        "type": "OAuthException",
        "code": code,
        "fbtrace_id": format!("A{}", random_hex(11)),
    }}))
}

fn invalid(message: &str) -> HttpResponse {
    error(StatusCode::BAD_REQUEST, 100, message)
}

/// `v21.0`.
fn is_version(segment: &str) -> bool {
    segment
        .strip_prefix('v')
        .and_then(|rest| rest.split_once('.'))
        .is_some_and(|(a, b)| {
            !a.is_empty()
                && !b.is_empty()
                && a.bytes().all(|c| c.is_ascii_digit())
                && b.bytes().all(|c| c.is_ascii_digit())
        })
}

async fn send_message(
    shared: web::Data<Shared>,
    request: HttpRequest,
    path: web::Path<(String, String)>,
    body: web::Bytes,
) -> HttpResponse {
    let (version, phone) = path.into_inner();
    let account = shared.of_type("metaCloud").find(|a| {
        matches!(a.kind(), ProviderKind::MetaCloud { phone_number_id, .. }
            if phone_number_id.as_deref().is_none_or(|id| id == phone))
    });
    let Some(account) = account.filter(|_| is_version(&version)) else {
        shared
            .stats
            .unmatched
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        return invalid(&format!(
            "Unsupported post request. Object with ID '{phone}' does not exist, cannot be \
             loaded due to missing permissions, or does not support this operation."
        ));
    };
    account.count(|c| &c.requests);
    account.latency().await;
    let ProviderKind::MetaCloud {
        access_token,
        app_secret,
        business_account_id,
        display_phone_number,
        ..
    } = account.kind()
    else {
        return invalid("not a Meta account");
    };
    if !bearer(&request).is_some_and(|t| same_secret(t, access_token)) {
        account.count(|c| &c.auth_failed);
        return error(
            StatusCode::UNAUTHORIZED,
            190,
            "Invalid OAuth access token - Cannot parse access token",
        );
    }
    let message: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
    let to = message
        .get("to")
        .and_then(Value::as_str)
        .map(|t| t.chars().filter(char::is_ascii_digit).collect::<String>())
        .filter(|d| !d.is_empty());
    let recipients: Vec<String> = to.iter().map(|d| format!("+{d}")).collect();
    let key = idempotency_key(&request);
    if let Some(refused) = shared.injected_failure(
        account,
        &recipients,
        key,
        |mut answer| {
            answer.json(json!({"error": {
                "message": "(#4) Application request limit reached",
                "type": "OAuthException",
                "code": 4,
                "fbtrace_id": format!("A{}", random_hex(11)),
            }}))
        },
        || {
            error(
                StatusCode::INTERNAL_SERVER_ERROR,
                1,
                "An unknown error has occurred.",
            )
        },
    ) {
        return refused;
    }
    let refuse = |why: &str| {
        account.count(|c| &c.invalid);
        shared.stats.record_send(&recipients, key, false);
        invalid(why)
    };
    if message.get("messaging_product").and_then(Value::as_str) != Some("whatsapp") {
        return refuse("(#100) The parameter messaging_product is required.");
    }
    let Some(to) = to else {
        return refuse("(#100) The parameter to is required.");
    };
    let kind = message
        .get("type")
        .and_then(Value::as_str)
        .unwrap_or("text");
    if kind == "text"
        && message
            .pointer("/text/body")
            .and_then(Value::as_str)
            .is_none_or(str::is_empty)
    {
        return refuse("(#100) The parameter text['body'] is required.");
    }
    if message.get(kind).is_none() {
        return refuse(&format!("(#100) The parameter {kind} is required."));
    }
    account.count(|c| &c.accepted);
    shared.stats.record_send(&recipients, key, true);
    let wamid = format!(
        "wamid.{}",
        base64::engine::general_purpose::STANDARD.encode(format!("HBgM{to}{}", random_hex(12)))
    );
    let mut sent = json!({"id": wamid});
    if kind == "template" {
        sent["message_status"] = json!("accepted");
    }
    if let Some(url) = account.webhook_url() {
        let context = Notification {
            wamid: &wamid,
            recipient: &to,
            callback_data: message
                .get("biz_opaque_callback_data")
                .and_then(Value::as_str),
            waba_id: business_account_id.as_deref().unwrap_or("102290129340398"),
            phone_number_id: &phone,
            display_phone_number: display_phone_number.as_deref().unwrap_or("15550001111"),
            category: if kind == "template" {
                "utility"
            } else {
                "service"
            },
        };
        let steps = notifications(&context, account.outcome(), &url, app_secret);
        shared.post_webhooks(account, url, steps);
    }
    HttpResponse::Ok().json(json!({
        "messaging_product": "whatsapp",
        "contacts": [{"input": message.get("to"), "wa_id": to}],
        "messages": [sent],
    }))
}

/// What the notifications of one message say.
struct Notification<'a> {
    wamid: &'a str,
    recipient: &'a str,
    callback_data: Option<&'a str>,
    waba_id: &'a str,
    phone_number_id: &'a str,
    display_phone_number: &'a str,
    category: &'a str,
}

/// The signed notifications of one outcome, in order.
fn notifications(n: &Notification<'_>, outcome: Outcome, url: &str, app_secret: &str) -> Vec<Step> {
    let statuses: &[&str] = match outcome {
        Outcome::Delivered => &["sent", "delivered"],
        Outcome::Read => &["sent", "delivered", "read"],
        Outcome::Failed | Outcome::Undelivered | Outcome::Bounced => &["sent", "failed"],
        Outcome::None => &[],
    };
    let now = Utc::now().timestamp();
    let conversation = random_hex(16);
    statuses
        .iter()
        .enumerate()
        .map(|(i, status)| {
            let mut item = json!({
                "id": n.wamid,
                "status": status,
                "timestamp": (now + i64::try_from(i).unwrap_or(0)).to_string(),
                "recipient_id": n.recipient,
            });
            if let Some(data) = n.callback_data {
                item["biz_opaque_callback_data"] = json!(data);
            }
            if matches!(*status, "sent" | "delivered") {
                item["conversation"] = json!({
                    "id": conversation,
                    "expiration_timestamp": (now + 86_400).to_string(),
                    "origin": {"type": n.category},
                });
                item["pricing"] = json!({
                    "billable": true, "pricing_model": "PMP",
                    "category": n.category, "type": "regular",
                });
            }
            if *status == "failed" {
                item["errors"] = json!([{
                    "code": 131026,
                    "title": "Message undeliverable",
                    "message": "Message undeliverable",
                    "error_data": {"details": "Message Undeliverable."},
                    "href": "https://developers.facebook.com/docs/whatsapp/cloud-api/support/error-codes/",
                }]);
            }
            let payload = json!({
                "object": "whatsapp_business_account",
                "entry": [{"id": n.waba_id, "changes": [{"field": "messages", "value": {
                    "messaging_product": "whatsapp",
                    "metadata": {
                        "display_phone_number": n.display_phone_number,
                        "phone_number_id": n.phone_number_id,
                    },
                    "statuses": [item],
                }}]}],
            });
            let body = escape_non_ascii(&payload.to_string()).into_bytes();
            Step {
                url: url.to_owned(),
                content_type: "application/json",
                headers: vec![
                    (SIGNATURE_HEADER, format!("sha256={}", sign(app_secret, &body))),
                    ("X-Hub-Signature", format!("sha1={}", sign_sha1(app_secret, &body))),
                    ("User-Agent", "facebookexternalua".to_owned()),
                ],
                body,
            }
        })
        .collect()
}

/// Lowercase hex HMAC-SHA256 of `body` with the app secret (§5.2).
pub fn sign(app_secret: &str, body: &[u8]) -> String {
    match Hmac::<Sha256>::new_from_slice(app_secret.as_bytes()) {
        Ok(mut mac) => {
            mac.update(body);
            hex::encode(mac.finalize().into_bytes())
        }
        Err(_) => String::new(),
    }
}

fn sign_sha1(app_secret: &str, body: &[u8]) -> String {
    match Hmac::<Sha1>::new_from_slice(app_secret.as_bytes()) {
        Ok(mut mac) => {
            mac.update(body);
            hex::encode(mac.finalize().into_bytes())
        }
        Err(_) => String::new(),
    }
}

/// JSON text with every non-ASCII character as `\uXXXX` (UTF-16 units), as
/// Meta sends it. Non-ASCII only occurs inside strings in JSON text.
pub fn escape_non_ascii(json: &str) -> String {
    let mut out = String::with_capacity(json.len());
    for c in json.chars() {
        if c.is_ascii() {
            out.push(c);
        } else {
            let mut units = [0u16; 2];
            for unit in c.encode_utf16(&mut units) {
                out.push_str(&format!("\\u{unit:04x}"));
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn non_ascii_is_escaped_and_still_parses_the_same() {
        let text = json!({"name": "Adé 😀"}).to_string();
        let escaped = escape_non_ascii(&text);
        assert!(escaped.is_ascii());
        assert!(escaped.contains("\\u00e9"));
        let back: Value = serde_json::from_str(&escaped).expect("json");
        assert_eq!(back["name"], "Adé 😀");
    }

    #[test]
    fn graph_versions() {
        assert!(is_version("v21.0"));
        assert!(!is_version("v3"));
        assert!(!is_version("21.0"));
    }
}
