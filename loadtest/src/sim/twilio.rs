//! Twilio Programmable Messaging, SMS and WhatsApp (providers.md §6).
//!
//! `POST /2010-04-01/Accounts/{AccountSid}/Messages.json`, HTTP Basic
//! `AccountSid:AuthToken` (or `ApiKeySid:ApiKeySecret`), form body `To`,
//! `From` or `MessagingServiceSid`, `Body` / `MediaUrl` / `ContentSid`,
//! optional `StatusCallback`.
//!
//! - 201 with the Message resource (`sid` `SM…`, `status` `queued`, or
//!   `accepted` through a Messaging Service, `num_segments` as a string).
//! - Errors `{"code", "message", "more_info", "status"}`: 401 `20003`,
//!   400 `21604`/`21603`/`21602`/`21211`, 429 `20429` (with `Retry-After`
//!   when configured: Twilio documents none), 500 `20500`.
//! - Status callbacks (§6.2) to the send's `StatusCallback`, else the
//!   account's `whatsappWebhookUrl`/`webhookUrl`: form POSTs with
//!   `MessageSid`, `SmsSid`, `MessageStatus`, `SmsStatus`, `AccountSid`,
//!   `From`, `To`, `ApiVersion`, `ErrorCode` on failures, `RawDlrDoneDate`
//!   on SMS final states, `ChannelPrefix`/`ChannelInstallSid`/
//!   `ChannelToAddress` for WhatsApp, signed with `X-Twilio-Signature`
//!   (§6.3: HMAC-SHA1 with the Auth Token over the URL followed by every
//!   parameter's name and value, names sorted, base64).
//!
//! - `GET /2010-04-01/Accounts/{Sid}.json` (the engine's probe): the
//!   Account resource, `status` `active`.
//!
//! Not simulated yet: message fetch/list (`GET …/Messages/{Sid}.json`),
//! the API-key probe (`Messages.json?PageSize=1`), the HMAC-SHA256 scheme.

use std::collections::BTreeMap;

use actix_web::{web, HttpRequest, HttpResponse};
use base64::Engine as _;
use chrono::Utc;
use hmac::{Hmac, Mac};
use serde_json::json;
use sha1::Sha1;

use super::config::{Outcome, ProviderKind};
use super::stats::ProviderCounters;
use super::webhooks::Step;
use super::{basic_auth, form_pairs, idempotency_key, random_hex, same_secret, Shared};

/// The API version in every path and callback.
pub const API_VERSION: &str = "2010-04-01";

/// The signature header of Twilio's webhooks.
pub const SIGNATURE_HEADER: &str = "X-Twilio-Signature";

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.route(
        "/2010-04-01/Accounts/{sid}/Messages.json",
        web::post().to(create_message),
    )
    .route("/2010-04-01/Accounts/{file}", web::get().to(fetch_account));
}

/// `GET /2010-04-01/Accounts/{Sid}.json` (the engine's connection probe):
/// the Account resource, `status` `active`.
async fn fetch_account(
    shared: web::Data<Shared>,
    request: HttpRequest,
    path: web::Path<String>,
) -> HttpResponse {
    let file = path.into_inner();
    let Some(sid) = file.strip_suffix(".json") else {
        return error(404, 20404, "The requested resource was not found");
    };
    let Some(account) = shared.of_type("twilio").find(
        |a| matches!(a.kind(), ProviderKind::Twilio { account_sid, .. } if account_sid == sid),
    ) else {
        return unauthorized();
    };
    let ProviderKind::Twilio {
        account_sid,
        auth_token,
        ..
    } = account.kind()
    else {
        return unauthorized();
    };
    let authorized = basic_auth(&request).is_some_and(|(user, password)| {
        same_secret(&user, account_sid) && same_secret(&password, auth_token)
    });
    if !authorized {
        return unauthorized();
    }
    HttpResponse::Ok().json(json!({
        "sid": account_sid,
        "owner_account_sid": account_sid,
        "friendly_name": "msgengine-sim account",
        "status": "active",
        "type": "Full",
        "date_created": Utc::now().to_rfc2822(),
        "uri": format!("/{API_VERSION}/Accounts/{account_sid}.json"),
    }))
}

/// A Twilio error answer.
fn error(status: u16, code: u32, message: &str) -> HttpResponse {
    let mut answer = HttpResponse::build(
        actix_web::http::StatusCode::from_u16(status)
            .unwrap_or(actix_web::http::StatusCode::INTERNAL_SERVER_ERROR),
    );
    answer.json(json!({
        "code": code,
        "message": message,
        "more_info": format!("https://www.twilio.com/docs/errors/{code}"),
        "status": status,
    }))
}

fn unauthorized() -> HttpResponse {
    let mut answer = error(401, 20003, "Authenticate");
    answer.headers_mut().insert(
        actix_web::http::header::WWW_AUTHENTICATE,
        actix_web::http::header::HeaderValue::from_static("Basic realm=\"Twilio API\""),
    );
    answer
}

async fn create_message(
    shared: web::Data<Shared>,
    request: HttpRequest,
    path: web::Path<String>,
    body: web::Bytes,
) -> HttpResponse {
    let sid = path.into_inner();
    let Some(account) = shared.of_type("twilio").find(
        |a| matches!(a.kind(), ProviderKind::Twilio { account_sid, .. } if *account_sid == sid),
    ) else {
        shared
            .stats
            .unmatched
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        return unauthorized();
    };
    account.count(|c: &ProviderCounters| &c.requests);
    account.latency().await;
    let ProviderKind::Twilio {
        account_sid,
        auth_token,
        api_key_sid,
        api_key_secret,
        ..
    } = account.kind()
    else {
        return unauthorized();
    };
    let authorized = match basic_auth(&request) {
        Some((user, password)) => {
            (same_secret(&user, account_sid) && same_secret(&password, auth_token))
                || matches!((api_key_sid, api_key_secret), (Some(k), Some(s))
                    if same_secret(&user, k) && same_secret(&password, s))
        }
        None => false,
    };
    if !authorized {
        account.count(|c| &c.auth_failed);
        return unauthorized();
    }
    let is_form = request
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/x-www-form-urlencoded"));
    let params = if is_form {
        form_pairs(&body)
    } else {
        Vec::new()
    };
    let get = |name: &str| {
        params
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
            .filter(|v| !v.is_empty())
    };
    let to = get("To");
    let recipients: Vec<String> = to.map(|t| vec![bare(t).to_owned()]).unwrap_or_default();
    let key = idempotency_key(&request);
    if let Some(refused) = shared.injected_failure(
        account,
        &recipients,
        key,
        |mut answer| {
            answer.json(json!({
                "code": 20429,
                "message": "Too Many Requests",
                "more_info": "https://www.twilio.com/docs/errors/20429",
                "status": 429,
            }))
        },
        || error(500, 20500, "An internal server error has occurred"),
    ) {
        return refused;
    }
    let invalid = |code: u32, message: String| {
        account.count(|c| &c.invalid);
        shared.stats.record_send(&recipients, key, false);
        error(400, code, &message)
    };
    let Some(to) = to else {
        return invalid(21604, "A 'To' phone number is required.".into());
    };
    let service = get("MessagingServiceSid");
    let Some(from) = get("From").or(service) else {
        return invalid(
            21603,
            "A 'From' or 'MessagingServiceSid' parameter is required.".into(),
        );
    };
    if get("Body").is_none() && get("MediaUrl").is_none() && get("ContentSid").is_none() {
        return invalid(21602, "Message body is required.".into());
    }
    if !is_e164(bare(to)) {
        return invalid(
            21211,
            format!("The 'To' number {to} is not a valid phone number."),
        );
    }
    account.count(|c| &c.accepted);
    shared.stats.record_send(&recipients, key, true);
    let message_sid = format!("SM{}", random_hex(16));
    let whatsapp = to.starts_with("whatsapp:");
    // A Messaging Service picks the sender itself.
    let from = if service.is_some() && get("From").is_none() {
        if whatsapp {
            "whatsapp:+15005550006"
        } else {
            "+15005550006"
        }
    } else {
        from
    };
    let body_text = get("Body").unwrap_or("");
    let now = Utc::now().to_rfc2822();
    let uri = format!("/{API_VERSION}/Accounts/{account_sid}/Messages/{message_sid}");
    let resource = json!({
        "sid": message_sid,
        "account_sid": account_sid,
        "messaging_service_sid": service,
        "to": to,
        "from": from,
        "body": body_text,
        "status": if service.is_some() { "accepted" } else { "queued" },
        "num_segments": segments(body_text).to_string(),
        "num_media": params.iter().filter(|(k, _)| k == "MediaUrl").count().to_string(),
        "direction": "outbound-api",
        "api_version": API_VERSION,
        "price": null,
        "price_unit": "USD",
        "error_code": null,
        "error_message": null,
        "date_created": now,
        "date_updated": now,
        "date_sent": null,
        "uri": format!("{uri}.json"),
        "subresource_uris": {"media": format!("{uri}/Media.json")},
    });
    let callback = get("StatusCallback").map(str::to_owned).or_else(|| {
        if whatsapp {
            account.whatsapp_webhook_url()
        } else {
            account.webhook_url()
        }
    });
    if let Some(url) = callback {
        let message = Callback {
            message_sid: &message_sid,
            account_sid,
            from,
            to,
            service,
            whatsapp,
        };
        let steps = callbacks(&message, account.outcome(), &url, auth_token);
        shared.post_webhooks(account, url, steps);
    }
    HttpResponse::Created().json(resource)
}

/// What a status callback says about its message.
struct Callback<'a> {
    message_sid: &'a str,
    account_sid: &'a str,
    from: &'a str,
    to: &'a str,
    service: Option<&'a str>,
    whatsapp: bool,
}

/// The signed status callbacks of one outcome, in order.
fn callbacks(message: &Callback<'_>, outcome: Outcome, url: &str, auth_token: &str) -> Vec<Step> {
    let statuses: &[(&str, Option<&str>)] = match outcome {
        Outcome::Delivered => &[("sent", None), ("delivered", None)],
        Outcome::Read if message.whatsapp => &[("sent", None), ("delivered", None), ("read", None)],
        Outcome::Read => &[("sent", None), ("delivered", None)],
        Outcome::Failed => &[("failed", Some("30008"))],
        Outcome::Undelivered => &[("sent", None), ("undelivered", Some("30003"))],
        Outcome::Bounced => &[("sent", None), ("undelivered", Some("30005"))],
        Outcome::None => &[],
    };
    let install_sid = format!("XE{}", random_hex(16));
    statuses
        .iter()
        .map(|(status, code)| {
            let mut params: Vec<(&str, String)> = vec![
                ("MessageSid", message.message_sid.to_owned()),
                ("SmsSid", message.message_sid.to_owned()),
                ("AccountSid", message.account_sid.to_owned()),
                ("From", message.from.to_owned()),
                ("To", message.to.to_owned()),
                ("MessageStatus", (*status).to_owned()),
                ("SmsStatus", (*status).to_owned()),
                ("ApiVersion", API_VERSION.to_owned()),
            ];
            if let Some(service) = message.service {
                params.push(("MessagingServiceSid", service.to_owned()));
            }
            if let Some(code) = code {
                params.push(("ErrorCode", (*code).to_owned()));
            }
            if message.whatsapp {
                params.push(("ChannelPrefix", "whatsapp".to_owned()));
                params.push(("ChannelInstallSid", install_sid.clone()));
                params.push(("ChannelToAddress", bare(message.to).to_owned()));
            } else if matches!(*status, "delivered" | "undelivered") {
                params.push((
                    "RawDlrDoneDate",
                    Utc::now().format("%y%m%d%H%M").to_string(),
                ));
            }
            let body = url::form_urlencoded::Serializer::new(String::new())
                .extend_pairs(params.iter().map(|(k, v)| (*k, v.as_str())))
                .finish();
            Step {
                url: url.to_owned(),
                content_type: "application/x-www-form-urlencoded",
                headers: vec![
                    (SIGNATURE_HEADER, sign(auth_token, url, &params)),
                    ("I-Twilio-Idempotency-Token", random_hex(16)),
                    ("User-Agent", "TwilioProxy/1.1".to_owned()),
                ],
                body: body.into_bytes(),
            }
        })
        .collect()
}

/// `X-Twilio-Signature` (§6.3): base64 HMAC-SHA1 keyed with the Auth Token
/// over the URL followed by each parameter's name and value, names in byte
/// order (a repeated name's values sorted).
pub fn sign(auth_token: &str, url: &str, params: &[(&str, String)]) -> String {
    let mut sorted: BTreeMap<&str, Vec<&str>> = BTreeMap::new();
    for (name, value) in params {
        sorted.entry(name).or_default().push(value);
    }
    let mut text = url.to_owned();
    for (name, mut values) in sorted {
        values.sort_unstable();
        for value in values {
            text.push_str(name);
            text.push_str(value);
        }
    }
    let mac = match Hmac::<Sha1>::new_from_slice(auth_token.as_bytes()) {
        Ok(mut mac) => {
            mac.update(text.as_bytes());
            mac.finalize().into_bytes().to_vec()
        }
        // HMAC takes keys of any length.
        Err(_) => Vec::new(),
    };
    base64::engine::general_purpose::STANDARD.encode(mac)
}

/// An address without Twilio's channel prefix (`whatsapp:+234…` → `+234…`).
fn bare(address: &str) -> &str {
    address.strip_prefix("whatsapp:").unwrap_or(address).trim()
}

/// `+` and 8 to 15 digits.
fn is_e164(number: &str) -> bool {
    number
        .strip_prefix('+')
        .is_some_and(|d| (8..=15).contains(&d.len()) && d.bytes().all(|b| b.is_ascii_digit()))
}

/// Segments Twilio would bill: GSM-7 (160, or 153 per part; `^{}\[~]|€`
/// count twice) unless a character is outside it, then UCS-2 (70, or 67).
fn segments(text: &str) -> u32 {
    const GSM_EXTRA: &str = "@£$¥èéùìòÇØøÅåΔ_ΦΓΛΩΠΨΣΘΞÆæßÉ¤¡ÄÖÑÜ§¿äöñüà";
    let mut gsm_units = 0usize;
    let mut gsm = true;
    for c in text.chars() {
        if "^{}\\[~]|€".contains(c) {
            gsm_units += 2;
        } else if (c.is_ascii() && c != '`') || GSM_EXTRA.contains(c) {
            gsm_units += 1;
        } else {
            gsm = false;
            break;
        }
    }
    let (units, single, part) = if gsm {
        (gsm_units, 160, 153)
    } else {
        (text.encode_utf16().count(), 70, 67)
    };
    if units <= single {
        1
    } else {
        u32::try_from(units.div_ceil(part)).unwrap_or(u32::MAX)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn segments_follow_gsm_and_ucs2_limits() {
        assert_eq!(segments("hello"), 1);
        assert_eq!(segments(&"a".repeat(160)), 1);
        assert_eq!(segments(&"a".repeat(161)), 2);
        assert_eq!(segments(&"{".repeat(80)), 1);
        assert_eq!(segments(&"é".repeat(160)), 1);
        assert_eq!(segments(&"ж".repeat(70)), 1);
        assert_eq!(segments(&"ж".repeat(71)), 2);
    }

    #[test]
    fn e164_numbers() {
        assert!(is_e164("+2348031234567"));
        assert!(!is_e164("2348031234567"));
        assert!(!is_e164("+12ab"));
    }
}
