//! Mailjet Send API v3.1 (providers.md §3).
//!
//! `POST /v3.1/send`, HTTP Basic `apiKey:secretKey`, JSON `{"Messages":
//! [{"From", "To", "Cc", "Bcc", "Subject", "TextPart", "HTMLPart",
//! "TemplateID", "CustomID", "EventPayload", "Headers", …}]}`.
//!
//! - 200 `{"Messages": [{"Status": "success", "CustomID", "To": [{"Email",
//!   "MessageUUID", "MessageID", "MessageHref"}], "Cc": [], "Bcc": []}]}`,
//!   `MessageID` a 64-bit integer above 2^53 (so a client reading it as a
//!   float would be caught).
//! - Errors: 401 the flat object `{"ErrorIdentifier", "StatusCode": 401,
//!   "ErrorMessage": "API key authentication/authorization failure. …"}`;
//!   400 per message `{"Messages": [{"Status": "error", "Errors":
//!   [{"ErrorIdentifier", "ErrorCode", "StatusCode", "ErrorMessage",
//!   "ErrorRelatedTo"}]}]}` (the codes are the simulator's: Mailjet's
//!   catalogue is only partly public); 429 and 500 as flat objects (429
//!   with `Retry-After` when configured: Mailjet documents none).
//! - Event callbacks (§3.2, `Version` 1: one event object per POST) to the
//!   account's `webhookUrl`, which must carry `?token=<the engine's
//!   webhookSecret>` (Mailjet does not sign): `sent` (outcome `delivered`),
//!   then `open` (`read`); `bounce` with `hard_bounce` true (`bounced`) or
//!   false (`failed`, `undelivered`); each with `time`, `MessageID`,
//!   `Message_GUID`, `email`, `CustomID`, `Payload`, `mj_campaign_id`,
//!   `mj_contact_id`, `customcampaign`.
//! - `GET /v3/REST/dns/{domain}` (the engine's probe): SPF and DKIM `OK`.
//!
//! Not simulated: sandbox mode, templates' content, the v3 REST API beyond
//! the probe.

use actix_web::http::StatusCode;
use actix_web::{web, HttpRequest, HttpResponse};
use chrono::Utc;
use rand::Rng;
use serde_json::{json, Value};

use super::config::{Outcome, ProviderKind};
use super::webhooks::Step;
use super::{basic_auth, idempotency_key, same_secret, uuid_like, Account, Shared};

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.route("/v3.1/send", web::post().to(send))
        .route("/v3/REST/dns/{domain}", web::get().to(dns));
}

/// A request-level error (the flat object).
fn flat(status: StatusCode, message: &str) -> HttpResponse {
    HttpResponse::build(status).json(json!({
        "ErrorIdentifier": uuid_like(),
        "StatusCode": status.as_u16(),
        "ErrorMessage": message,
    }))
}

fn unauthorized() -> HttpResponse {
    flat(
        StatusCode::UNAUTHORIZED,
        "API key authentication/authorization failure. You may be unauthorized to access the \
         API or your API key may be expired. Visit API keys management section to check your keys.",
    )
}

/// The account whose key pair the request carries.
fn account_of<'a>(shared: &'a Shared, request: &HttpRequest) -> Option<&'a Account> {
    let (user, password) = basic_auth(request)?;
    shared.of_type("mailjet").find(|a| {
        matches!(a.kind(), ProviderKind::Mailjet { api_key, secret_key, .. }
            if same_secret(&user, api_key) && same_secret(&password, secret_key))
    })
}

/// `GET /v3/REST/dns/{domain}` (the engine's probe).
async fn dns(
    shared: web::Data<Shared>,
    request: HttpRequest,
    path: web::Path<String>,
) -> HttpResponse {
    let Some(account) = account_of(&shared, &request) else {
        return unauthorized();
    };
    let domain = path.into_inner();
    let known = matches!(account.kind(), ProviderKind::Mailjet { domain: d, .. }
        if d.as_deref().is_none_or(|d| d == domain));
    if !known {
        return flat(StatusCode::NOT_FOUND, "Object not found");
    }
    HttpResponse::Ok().json(json!({"Count": 1, "Total": 1, "Data": [{
        "ID": 1, "Domain": domain, "IsCheckInProgress": false,
        "DKIMStatus": "OK", "SPFStatus": "OK",
        "DKIMRecordName": format!("mailjet._domainkey.{domain}."),
        "DKIMRecordValue": "k=rsa; p=MIGfMA0GCSqGSIb3DQEBAQUAA4GNADCBiQKBgQC",
        "SPFRecordValue": "v=spf1 include:spf.mailjet.com ~all",
        "LastCheckAt": Utc::now().to_rfc3339(),
    }]}))
}

/// Every `Email` of a message's `To`, `Cc` and `Bcc`.
fn recipients_of(message: &Value) -> Vec<String> {
    ["To", "Cc", "Bcc"]
        .iter()
        .filter_map(|k| message.get(*k).and_then(Value::as_array))
        .flatten()
        .filter_map(|a| a.get("Email").and_then(Value::as_str))
        .map(str::to_owned)
        .collect()
}

/// A message's first validation error: (code, message, related to).
fn problem(message: &Value) -> Option<(&'static str, String, String)> {
    if message
        .pointer("/From/Email")
        .and_then(Value::as_str)
        .is_none()
    {
        return Some((
            "mj-0003",
            "Missing mandatory property.".into(),
            "From".into(),
        ));
    }
    let to = message.get("To").and_then(Value::as_array);
    if to.is_none_or(|to| to.is_empty()) {
        return Some(("mj-0003", "Missing mandatory property.".into(), "To".into()));
    }
    for (i, address) in recipients_of(message).iter().enumerate() {
        let plausible = address
            .split_once('@')
            .is_some_and(|(local, domain)| !local.is_empty() && domain.contains('.'));
        if !plausible {
            return Some((
                "mj-0013",
                format!("\"{address}\" is an invalid email address."),
                format!("To[{i}].Email"),
            ));
        }
    }
    let has = |k: &str| message.get(k).is_some_and(|v| !v.is_null());
    if !has("TextPart") && !has("HTMLPart") && !has("TemplateID") {
        return Some((
            "mj-0004",
            "At least \"HTMLPart\", \"TextPart\" or \"TemplateID\" must be provided.".into(),
            "TextPart".into(),
        ));
    }
    None
}

async fn send(shared: web::Data<Shared>, request: HttpRequest, body: web::Bytes) -> HttpResponse {
    let account = account_of(&shared, &request);
    let Some(account) = shared.admit("mailjet", account).await else {
        return unauthorized();
    };
    let batch: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
    let messages = batch
        .get("Messages")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    let recipients: Vec<String> = messages.iter().flat_map(recipients_of).collect();
    let key = idempotency_key(&request);
    if let Some(refused) = shared.injected_failure(
        account,
        &recipients,
        key,
        |mut answer| {
            answer.json(json!({"ErrorIdentifier": uuid_like(), "StatusCode": 429,
                                      "ErrorMessage": "Too many requests"}))
        },
        || flat(StatusCode::INTERNAL_SERVER_ERROR, "Internal Server Error"),
    ) {
        return refused;
    }
    if messages.is_empty() {
        account.count(|c| &c.invalid);
        shared.stats.record_send(&recipients, key, false);
        return flat(
            StatusCode::BAD_REQUEST,
            "Missing mandatory property: Messages",
        );
    }
    // Mailjet handles each message on its own; one refused makes it a 400.
    let problems: Vec<_> = messages.iter().map(problem).collect();
    if problems.iter().any(Option::is_some) {
        account.count(|c| &c.invalid);
        shared.stats.record_send(&recipients, key, false);
        let answers: Vec<Value> = problems
            .into_iter()
            .map(|p| match p {
                Some((code, message, related)) => json!({"Status": "error", "Errors": [{
                    "ErrorIdentifier": uuid_like(), "ErrorCode": code, "StatusCode": 400,
                    "ErrorMessage": message, "ErrorRelatedTo": [related]}]}),
                None => json!({"Status": "error", "Errors": []}),
            })
            .collect();
        return HttpResponse::BadRequest().json(json!({"Messages": answers}));
    }
    account.count(|c| &c.accepted);
    shared.stats.record_send(&recipients, key, true);
    let url = account.webhook_url();
    let mut answers = Vec::new();
    let mut steps = Vec::new();
    for message in &messages {
        let mut sent = json!({"Status": "success", "CustomID": message.get("CustomID")
            .cloned().unwrap_or(json!("")), "To": [], "Cc": [], "Bcc": []});
        for field in ["To", "Cc", "Bcc"] {
            let list = message
                .get(field)
                .and_then(Value::as_array)
                .map(Vec::as_slice)
                .unwrap_or(&[]);
            for address in list
                .iter()
                .filter_map(|a| a.get("Email").and_then(Value::as_str))
            {
                // Above 2^53: exact only as an integer.
                let id: u64 = (1 << 60) + rand::thread_rng().gen_range(0..(1u64 << 40));
                let uuid = uuid_like();
                if let Some(list) = sent[field].as_array_mut() {
                    list.push(
                        json!({"Email": address, "MessageUUID": uuid, "MessageID": id,
                        "MessageHref": format!("https://api.mailjet.com/v3/REST/message/{id}")}),
                    );
                }
                if let Some(url) = &url {
                    let context = Event {
                        message,
                        message_id: id,
                        uuid: &uuid,
                        recipient: address,
                    };
                    steps.extend(events(&context, account.outcome(), url));
                }
            }
        }
        answers.push(sent);
    }
    if let Some(url) = url {
        shared.post_webhooks(account, url, steps);
    }
    HttpResponse::Ok().json(json!({"Messages": answers}))
}

/// What the events of one recipient say.
struct Event<'a> {
    message: &'a Value,
    message_id: u64,
    uuid: &'a str,
    recipient: &'a str,
}

/// The events (unsigned: Mailjet signs nothing) of one outcome, in order.
fn events(e: &Event<'_>, outcome: Outcome, url: &str) -> Vec<Step> {
    let kinds: &[&str] = match outcome {
        Outcome::Delivered => &["sent"],
        Outcome::Read => &["sent", "open"],
        Outcome::Failed | Outcome::Undelivered => &["soft_bounce"],
        Outcome::Bounced => &["hard_bounce"],
        Outcome::None => &[],
    };
    let text = |k: &str| e.message.get(k).and_then(Value::as_str).unwrap_or("");
    kinds
        .iter()
        .map(|kind| {
            let mut event = json!({
                "event": if kind.ends_with("bounce") { "bounce" } else { kind },
                "time": Utc::now().timestamp(),
                "MessageID": e.message_id,
                "Message_GUID": e.uuid,
                "email": e.recipient,
                "mj_campaign_id": 7_257_195_164_u64,
                "mj_contact_id": 4_120_193_u64,
                "customcampaign": text("CustomCampaign"),
                "CustomID": text("CustomID"),
                "Payload": text("EventPayload"),
            });
            match *kind {
                "sent" => {
                    event["mj_message_id"] = json!(e.message_id.to_string());
                    event["smtp_reply"] = json!("250 2.0.0 OK 1700000000 sim");
                }
                "open" => {
                    event["ip"] = json!("203.0.113.9");
                    event["geo"] = json!("NG");
                    event["agent"] = json!("Mozilla/5.0");
                }
                "hard_bounce" => {
                    event["blocked"] = json!(false);
                    event["hard_bounce"] = json!(true);
                    event["error_related_to"] = json!("recipient");
                    event["error"] = json!("user unknown");
                    event["comment"] = json!("550 5.1.1 The email account does not exist.");
                }
                _ => {
                    event["blocked"] = json!(false);
                    event["hard_bounce"] = json!(false);
                    event["error_related_to"] = json!("recipient");
                    event["error"] = json!("mailbox inactive");
                    event["comment"] = json!("552 5.2.2 Mailbox full");
                }
            }
            Step {
                url: url.to_owned(),
                content_type: "application/json",
                headers: vec![("User-Agent", "Mailjet-Event-Api/1.0".to_owned())],
                body: event.to_string().into_bytes(),
            }
        })
        .collect()
}
