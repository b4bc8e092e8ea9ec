//! Africa's Talking SMS (providers.md §10).
//!
//! `POST /version1/messaging`, header `apiKey`, form fields `username`,
//! `to` (comma-separated), `message`, `from`; `Accept: application/json`
//! (without it the answer is XML, as Africa's Talking's).
//!
//! - 201 `{"SMSMessageData": {"Message": "Sent to n/n Total Cost: KES …",
//!   "Recipients": [{"statusCode": 101, "number", "status": "Success",
//!   "cost", "messageId": "ATXid_…", "messageParts"}]}}`; a number that is
//!   not `+` and digits gets `statusCode` 403 `InvalidPhoneNumber`.
//! - Errors in plain text: 401 "The supplied authentication is invalid"
//!   (wrong `apiKey` or `username`), 400 for a missing field, 429 "Too
//!   Many Requests" (with `Retry-After` when configured: none documented),
//!   500.
//! - Delivery reports (§10.2) to the account's `webhookUrl`, which must
//!   carry `?token=<the engine's credentials.webhookToken>` (Africa's
//!   Talking does not sign): form POSTs `id`, `status`, `phoneNumber`,
//!   `networkCode`, `retryCount`, `failureReason` on failures. Outcomes:
//!   `delivered`/`read` → `Sent`, `Success`; `failed`/`bounced` → `Failed`
//!   (`DeliveryFailure`); `undelivered` → `Sent`, `Failed`
//!   (`UserIsInactive`).
//! - `GET /version1/user?username=` (the engine's probe): `{"UserData":
//!   {"balance": "KES …"}}`.
//!
//! `messageParts` counts 160/153 characters per part for GSM-7 text (taken
//! here as printable ASCII and line breaks) and 70/67 otherwise.

use actix_web::{web, HttpRequest, HttpResponse};
use serde_json::json;

use super::config::{Outcome, ProviderKind};
use super::webhooks::Step;
use super::{form_pairs, idempotency_key, random_hex, same_secret, Account, Shared};

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.route("/version1/messaging", web::post().to(send))
        .route("/version1/user", web::get().to(user));
}

fn text(status: actix_web::http::StatusCode, body: &'static str) -> HttpResponse {
    HttpResponse::build(status)
        .content_type("text/plain; charset=utf-8")
        .body(body)
}

fn unauthorized() -> HttpResponse {
    text(
        actix_web::http::StatusCode::UNAUTHORIZED,
        "The supplied authentication is invalid",
    )
}

/// The account with this `apiKey` header and `username`.
fn account_of<'a>(shared: &'a Shared, request: &HttpRequest, user: &str) -> Option<&'a Account> {
    let key = request.headers().get("apikey")?.to_str().ok()?;
    shared.of_type("africasTalking").find(|a| {
        matches!(a.kind(), ProviderKind::AfricasTalking { username, api_key }
            if same_secret(key, api_key) && username == user)
    })
}

#[derive(serde::Deserialize)]
struct UserQuery {
    #[serde(default)]
    username: String,
}

/// `GET /version1/user?username=` (the engine's probe).
async fn user(
    shared: web::Data<Shared>,
    request: HttpRequest,
    query: web::Query<UserQuery>,
) -> HttpResponse {
    if account_of(&shared, &request, &query.username).is_none() {
        return unauthorized();
    }
    HttpResponse::Ok().json(json!({"UserData": {"balance": "KES 1785.5000"}}))
}

/// Parts of an SMS (see the module docs).
fn parts(message: &str) -> usize {
    let gsm = message
        .chars()
        .all(|c| c.is_ascii_graphic() || matches!(c, ' ' | '\n' | '\r'));
    let (single, each) = if gsm { (160, 153) } else { (70, 67) };
    let length = message.chars().count();
    if length <= single {
        1
    } else {
        length.div_ceil(each)
    }
}

fn is_number(to: &str) -> bool {
    to.strip_prefix('+')
        .is_some_and(|d| (7..=15).contains(&d.len()) && d.bytes().all(|b| b.is_ascii_digit()))
}

async fn send(shared: web::Data<Shared>, request: HttpRequest, body: web::Bytes) -> HttpResponse {
    let fields = form_pairs(&body);
    let get = |name: &str| {
        fields
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.trim())
            .filter(|v| !v.is_empty())
    };
    let account = account_of(&shared, &request, get("username").unwrap_or(""));
    let Some(account) = shared.admit("africasTalking", account).await else {
        return unauthorized();
    };
    let recipients: Vec<String> = get("to")
        .unwrap_or("")
        .split(',')
        .map(|r| r.trim().to_owned())
        .filter(|r| !r.is_empty())
        .collect();
    let key = idempotency_key(&request);
    if let Some(refused) = shared.injected_failure(
        account,
        &recipients,
        key,
        |mut answer| {
            answer
                .content_type("text/plain; charset=utf-8")
                .body("Too Many Requests")
        },
        || {
            text(
                actix_web::http::StatusCode::INTERNAL_SERVER_ERROR,
                "Internal Server Error",
            )
        },
    ) {
        return refused;
    }
    let message = get("message");
    let missing = if recipients.is_empty() {
        Some("Request is missing required form field 'to'")
    } else if message.is_none() {
        Some("Request is missing required form field 'message'")
    } else {
        None
    };
    if let Some(why) = missing {
        account.count(|c| &c.invalid);
        shared.stats.record_send(&recipients, key, false);
        return text(actix_web::http::StatusCode::BAD_REQUEST, why);
    }
    let message = message.unwrap_or("");
    let parts = parts(message);
    let (good, bad): (Vec<String>, Vec<String>) =
        recipients.iter().cloned().partition(|r| is_number(r));
    if good.is_empty() {
        account.count(|c| &c.invalid);
        shared.stats.record_send(&recipients, key, false);
    } else {
        account.count(|c| &c.accepted);
        shared.stats.record_send(&good, key, true);
        shared.stats.record_send(&bad, None, false);
    }
    let url = account.webhook_url();
    let mut steps = Vec::new();
    let mut entries = Vec::new();
    for number in &recipients {
        if !is_number(number) {
            entries.push(json!({"statusCode": 403, "number": number,
                "status": "InvalidPhoneNumber", "cost": "0", "messageId": "None"}));
            continue;
        }
        let id = format!("ATXid_{}", random_hex(16));
        entries.push(
            json!({"statusCode": 101, "number": number, "status": "Success",
            "cost": format!("KES {:.4}", 0.8 * parts as f64), "messageId": id,
            "messageParts": parts}),
        );
        if let Some(url) = &url {
            steps.extend(reports(&id, number, account.outcome(), url));
        }
    }
    if let Some(url) = url {
        shared.post_webhooks(account, url, steps);
    }
    let summary = format!(
        "Sent to {}/{} Total Cost: KES {:.4}",
        good.len(),
        good.len() + bad.len(),
        0.8 * (parts * good.len()) as f64
    );
    let wants_json = request
        .headers()
        .get("accept")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|a| a.contains("json"));
    if !wants_json {
        return HttpResponse::Created()
            .content_type("application/xml")
            .body(xml(&summary, &entries));
    }
    HttpResponse::Created().json(json!({"SMSMessageData": {
        "Message": summary, "Recipients": entries,
    }}))
}

/// The XML answer a client that does not ask for JSON gets.
fn xml(summary: &str, entries: &[serde_json::Value]) -> String {
    let field = |e: &serde_json::Value, k: &str| match &e[k] {
        serde_json::Value::String(s) => s.clone(),
        other => other.to_string(),
    };
    let recipients: String = entries
        .iter()
        .map(|e| {
            format!(
                "<Recipient><number>{}</number><cost>{}</cost><status>{}</status>\
                 <statusCode>{}</statusCode><messageId>{}</messageId></Recipient>",
                field(e, "number"),
                field(e, "cost"),
                field(e, "status"),
                field(e, "statusCode"),
                field(e, "messageId")
            )
        })
        .collect();
    format!(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?><AfricasTalkingResponse><SMSMessageData>\
         <Message>{summary}</Message><Recipients>{recipients}</Recipients></SMSMessageData>\
         </AfricasTalkingResponse>"
    )
}

/// The delivery reports of one number for one outcome, in order.
fn reports(id: &str, number: &str, outcome: Outcome, url: &str) -> Vec<Step> {
    let statuses: &[(&str, Option<&str>)] = match outcome {
        Outcome::Delivered | Outcome::Read => &[("Sent", None), ("Success", None)],
        Outcome::Failed | Outcome::Bounced => &[("Failed", Some("DeliveryFailure"))],
        Outcome::Undelivered => &[("Sent", None), ("Failed", Some("UserIsInactive"))],
        Outcome::None => &[],
    };
    statuses
        .iter()
        .map(|(status, failure)| {
            let mut form = url::form_urlencoded::Serializer::new(String::new());
            form.append_pair("id", id)
                .append_pair("status", status)
                .append_pair("phoneNumber", number)
                .append_pair("networkCode", "62130")
                .append_pair("retryCount", "0");
            if let Some(reason) = failure {
                form.append_pair("failureReason", reason);
            }
            Step {
                url: url.to_owned(),
                content_type: "application/x-www-form-urlencoded",
                headers: vec![("User-Agent", "AfricasTalking/1.0".to_owned())],
                body: form.finish().into_bytes(),
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parts_follow_gsm_and_ucs2_lengths() {
        assert_eq!(parts("hi"), 1);
        assert_eq!(parts(&"a".repeat(160)), 1);
        assert_eq!(parts(&"a".repeat(161)), 2);
        assert_eq!(parts(&"é".repeat(70)), 1);
        assert_eq!(parts(&"é".repeat(71)), 2);
    }
}
