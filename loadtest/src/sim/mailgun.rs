//! Mailgun (providers.md §1).
//!
//! `POST /v3/{domain}/messages`, HTTP Basic `api:<apiKey>`, form-urlencoded
//! or `multipart/form-data` (file parts are counted, not kept): `from`,
//! `to` (repeated or comma-separated), `subject`, `text`/`html`/`template`,
//! `o:tag`, `h:…`, `v:…`.
//!
//! - 200 `{"id": "<…@domain>", "message": "Queued. Thank you."}`.
//! - Errors: 401 plain text `Forbidden`; 404 `{"message": "Domain not
//!   found: …"}` for a domain the account does not serve; 400
//!   `{"message": "from parameter is missing"}` and the like; 429
//!   `{"message"}` (with `Retry-After` when configured: Mailgun documents
//!   none); 500.
//! - Webhooks (§1.4) to the account's `webhookUrl`, one JSON POST per event
//!   and recipient: `{"signature": {"timestamp", "token", "signature"},
//!   "event-data": {…}}`, signature = hex HMAC-SHA256(signing key,
//!   timestamp + token); events `delivered`, `opened` (outcome `read`),
//!   `failed` permanent with reason `bounce` (outcome `bounced`) or
//!   `generic` (`failed`, `undelivered`); `user-variables` echo the send's
//!   `v:` fields, `tags` its `o:tag`s.
//!
//! - `GET /v4/domains/{domain}` (the engine's probe): `state` `active`.
//!
//! Not simulated yet: `messages.mime`, domain management, events,
//! suppressions, webhooks management.

use actix_web::http::StatusCode;
use actix_web::{web, HttpRequest, HttpResponse};
use chrono::Utc;
use hmac::{Hmac, Mac};
use rand::distributions::Alphanumeric;
use rand::Rng;
use serde_json::{json, Map, Value};
use sha2::Sha256;

use super::config::{Outcome, ProviderKind};
use super::webhooks::Step;
use super::{basic_auth, form_pairs, idempotency_key, random_hex, same_secret, Shared};

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.route("/v3/{domain}/messages", web::post().to(send_message))
        .route("/v4/domains/{domain}", web::get().to(get_domain));
}

/// `GET /v4/domains/{domain}` (the engine's probe): the domain, `active`.
async fn get_domain(
    shared: web::Data<Shared>,
    request: HttpRequest,
    path: web::Path<String>,
) -> HttpResponse {
    let domain = path.into_inner();
    let Some(account) = shared.of_type("mailgun").find(|a| {
        matches!(a.kind(), ProviderKind::Mailgun { domain: d, .. }
            if d.as_deref().is_none_or(|d| d == domain))
    }) else {
        return message(StatusCode::NOT_FOUND, "Domain not found");
    };
    let ProviderKind::Mailgun { api_key, .. } = account.kind() else {
        return message(StatusCode::NOT_FOUND, "Domain not found");
    };
    let authorized = basic_auth(&request)
        .is_some_and(|(user, password)| user == "api" && same_secret(&password, api_key));
    if !authorized {
        return HttpResponse::Unauthorized()
            .content_type("text/plain; charset=utf-8")
            .body("Forbidden");
    }
    HttpResponse::Ok().json(json!({
        "domain": {"name": domain, "id": random_hex(12), "state": "active",
                   "created_at": Utc::now().to_rfc2822(), "type": "custom",
                   "smtp_login": format!("postmaster@{domain}"), "spam_action": "disabled",
                   "wildcard": false, "require_tls": false, "skip_verification": false,
                   "is_disabled": false, "web_prefix": "email", "web_scheme": "https"},
        "receiving_dns_records": [],
        "sending_dns_records": [],
    }))
}

fn message(status: StatusCode, text: &str) -> HttpResponse {
    HttpResponse::build(status).json(json!({"message": text}))
}

async fn send_message(
    shared: web::Data<Shared>,
    request: HttpRequest,
    path: web::Path<String>,
    body: web::Bytes,
) -> HttpResponse {
    let domain = path.into_inner();
    let Some(account) = shared.of_type("mailgun").find(|a| {
        matches!(a.kind(), ProviderKind::Mailgun { domain: d, .. }
            if d.as_deref().is_none_or(|d| d == domain))
    }) else {
        shared
            .stats
            .unmatched
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        return message(
            StatusCode::NOT_FOUND,
            &format!("Domain not found: {domain}"),
        );
    };
    account.count(|c| &c.requests);
    account.latency().await;
    let ProviderKind::Mailgun {
        api_key,
        signing_key,
        ..
    } = account.kind()
    else {
        return message(StatusCode::NOT_FOUND, "not a Mailgun account");
    };
    let authorized = basic_auth(&request)
        .is_some_and(|(user, password)| user == "api" && same_secret(&password, api_key));
    if !authorized {
        account.count(|c| &c.auth_failed);
        return HttpResponse::Unauthorized()
            .content_type("text/plain; charset=utf-8")
            .body("Forbidden");
    }
    let content_type = request
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    let fields = if content_type.starts_with("multipart/form-data") {
        multipart_fields(content_type, &body)
    } else if content_type.starts_with("application/x-www-form-urlencoded") {
        form_pairs(&body)
    } else {
        Vec::new()
    };
    let get = |name: &str| {
        fields
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
            .filter(|v| !v.trim().is_empty())
    };
    let recipients: Vec<String> = fields
        .iter()
        .filter(|(k, _)| k == "to")
        .flat_map(|(_, v)| v.split(','))
        .map(|r| r.trim().to_owned())
        .filter(|r| !r.is_empty())
        .collect();
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
    let refuse = |why: &str| {
        account.count(|c| &c.invalid);
        shared.stats.record_send(&recipients, key, false);
        message(StatusCode::BAD_REQUEST, why)
    };
    let Some(from) = get("from") else {
        return refuse("from parameter is missing");
    };
    if recipients.is_empty() {
        return refuse("to parameter is missing");
    }
    if recipients.iter().any(|r| !plausible_address(r)) {
        return refuse("to parameter is not a valid address. please check documentation");
    }
    if get("text").is_none() && get("html").is_none() && get("template").is_none() {
        return refuse("Need at least one of 'text', 'html' or 'template' parameters specified");
    }
    account.count(|c| &c.accepted);
    shared.stats.record_send(&recipients, key, true);
    let message_id = format!(
        "{}.{}@{domain}",
        Utc::now().format("%Y%m%d%H%M%S"),
        random_hex(8).to_uppercase()
    );
    if let Some(url) = account.webhook_url() {
        let mut variables = Map::new();
        let mut tags = Vec::new();
        for (name, value) in &fields {
            if let Some(v) = name.strip_prefix("v:") {
                variables.insert(v.to_owned(), json!(value));
            } else if name == "o:tag" {
                tags.push(json!(value));
            }
        }
        let sent = Sent {
            message_id: &message_id,
            from,
            subject: get("subject").unwrap_or(""),
            variables: Value::Object(variables),
            tags: Value::Array(tags),
            test_mode: get("o:testmode") == Some("yes"),
            size: body.len(),
        };
        let outcome = account.outcome();
        let steps = recipients
            .iter()
            .flat_map(|r| events(&sent, r, outcome, &url, signing_key))
            .collect();
        shared.post_webhooks(account, url, steps);
    }
    HttpResponse::Ok().json(json!({
        "id": format!("<{message_id}>"),
        "message": "Queued. Thank you.",
    }))
}

/// `local@domain.tld`, or `Name <local@domain.tld>`.
fn plausible_address(address: &str) -> bool {
    let bare = match (address.rfind('<'), address.rfind('>')) {
        (Some(open), Some(close)) if open < close => &address[open + 1..close],
        _ => address,
    };
    bare.split_once('@')
        .is_some_and(|(local, domain)| !local.is_empty() && domain.contains('.'))
}

/// What the events of one accepted message say.
struct Sent<'a> {
    message_id: &'a str,
    from: &'a str,
    subject: &'a str,
    variables: Value,
    tags: Value,
    test_mode: bool,
    size: usize,
}

/// The signed events of one recipient for one outcome, in order.
fn events(sent: &Sent<'_>, recipient: &str, outcome: Outcome, url: &str, key: &str) -> Vec<Step> {
    let kinds: &[&str] = match outcome {
        Outcome::Delivered => &["delivered"],
        Outcome::Read => &["delivered", "opened"],
        Outcome::Failed | Outcome::Undelivered => &["failed-generic"],
        Outcome::Bounced => &["failed-bounce"],
        Outcome::None => &[],
    };
    let recipient_domain = recipient.rsplit('@').next().unwrap_or("");
    kinds
        .iter()
        .map(|kind| {
            let now = Utc::now();
            let mut data = json!({
                "event": kind.split('-').next().unwrap_or(kind),
                "id": random_token(22),
                "timestamp": now.timestamp_micros() as f64 / 1e6,
                "log-level": "info",
                "recipient": recipient,
                "recipient-domain": recipient_domain,
                "tags": sent.tags,
                "campaigns": [],
                "user-variables": sent.variables,
                "envelope": {"sender": sent.from, "targets": recipient,
                             "transport": "smtp", "sending-ip": "198.51.100.7"},
                "message": {"headers": {"to": recipient, "message-id": sent.message_id,
                                        "from": sent.from, "subject": sent.subject},
                            "attachments": [], "size": sent.size},
                "flags": {"is-authenticated": true, "is-test-mode": sent.test_mode,
                          "is-routed": false},
            });
            match *kind {
                "delivered" => {
                    data["delivery-status"] = json!({
                        "code": 250, "message": "OK", "description": "",
                        "attempt-no": 1, "session-seconds": 0.4, "tls": true,
                        "mx-host": format!("mx.{recipient_domain}"),
                        "certificate-verified": true,
                    });
                }
                "opened" => {
                    data["ip"] = json!("203.0.113.9");
                    data["client-info"] = json!({"client-type": "browser",
                        "client-os": "Linux", "device-type": "desktop",
                        "client-name": "Firefox", "user-agent": "Mozilla/5.0"});
                    data["geolocation"] = json!({"country": "NG", "region": "LA",
                        "city": "Lagos"});
                }
                "failed-bounce" => {
                    data["log-level"] = json!("error");
                    data["severity"] = json!("permanent");
                    data["reason"] = json!("bounce");
                    data["delivery-status"] = json!({
                        "code": 550, "attempt-no": 1,
                        "message": "5.1.1 The email account that you tried to reach does not exist.",
                        "description": "",
                    });
                }
                _ => {
                    data["log-level"] = json!("error");
                    data["severity"] = json!("permanent");
                    data["reason"] = json!("generic");
                    data["delivery-status"] = json!({
                        "code": 554, "attempt-no": 1,
                        "message": "5.7.1 Message rejected",
                        "description": "",
                    });
                }
            }
            let timestamp = now.timestamp().to_string();
            let token = random_token(50);
            let signature = sign(key, &timestamp, &token);
            let payload = json!({
                "signature": {"timestamp": timestamp, "token": token, "signature": signature},
                "event-data": data,
            });
            Step {
                url: url.to_owned(),
                content_type: "application/json",
                headers: vec![("User-Agent", "mailgun/treq-16.12.0".to_owned())],
                body: payload.to_string().into_bytes(),
            }
        })
        .collect()
}

/// Hex HMAC-SHA256(signing key, timestamp + token) (§1.4).
pub fn sign(signing_key: &str, timestamp: &str, token: &str) -> String {
    match Hmac::<Sha256>::new_from_slice(signing_key.as_bytes()) {
        Ok(mut mac) => {
            mac.update(timestamp.as_bytes());
            mac.update(token.as_bytes());
            hex::encode(mac.finalize().into_bytes())
        }
        Err(_) => String::new(),
    }
}

fn random_token(len: usize) -> String {
    rand::thread_rng()
        .sample_iter(&Alphanumeric)
        .take(len)
        .map(char::from)
        .collect::<String>()
        .to_lowercase()
}

/// The text fields of a `multipart/form-data` body (file parts skipped).
fn multipart_fields(content_type: &str, body: &[u8]) -> Vec<(String, String)> {
    let Some(boundary) = content_type
        .split(';')
        .filter_map(|p| p.trim().strip_prefix("boundary="))
        .next()
        .map(|b| b.trim_matches('"'))
    else {
        return Vec::new();
    };
    let delimiter = format!("--{boundary}");
    let mut fields = Vec::new();
    for part in split(body, delimiter.as_bytes()).into_iter().skip(1) {
        if part.starts_with(b"--") {
            break;
        }
        let part = part.strip_prefix(b"\r\n").unwrap_or(part);
        let Some(split_at) = find(part, b"\r\n\r\n") else {
            continue;
        };
        let head = String::from_utf8_lossy(&part[..split_at]);
        let value = &part[split_at + 4..];
        let value = value.strip_suffix(b"\r\n").unwrap_or(value);
        let disposition = head
            .lines()
            .find(|l| l.to_ascii_lowercase().starts_with("content-disposition:"))
            .unwrap_or("");
        if disposition.contains("filename=") {
            continue;
        }
        let Some(name) = disposition
            .split(';')
            .filter_map(|p| p.trim().strip_prefix("name="))
            .next()
        else {
            continue;
        };
        fields.push((
            name.trim_matches('"').to_owned(),
            String::from_utf8_lossy(value).into_owned(),
        ));
    }
    fields
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

fn split<'a>(mut body: &'a [u8], delimiter: &[u8]) -> Vec<&'a [u8]> {
    let mut parts = Vec::new();
    while let Some(at) = find(body, delimiter) {
        parts.push(&body[..at]);
        body = &body[at + delimiter.len()..];
    }
    parts.push(body);
    parts
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn multipart_text_fields_are_read_and_files_skipped() {
        let body = b"--XX\r\nContent-Disposition: form-data; name=\"from\"\r\n\r\na@b.co\r\n\
--XX\r\nContent-Disposition: form-data; name=\"attachment\"; filename=\"f.txt\"\r\n\
Content-Type: text/plain\r\n\r\nfile\r\n\
--XX\r\nContent-Disposition: form-data; name=\"v:msgengine-id\"\r\n\r\nm-1\r\n--XX--\r\n";
        let fields = multipart_fields("multipart/form-data; boundary=XX", body);
        assert_eq!(
            fields,
            vec![
                ("from".to_owned(), "a@b.co".to_owned()),
                ("v:msgengine-id".to_owned(), "m-1".to_owned())
            ]
        );
    }

    #[test]
    fn addresses() {
        assert!(plausible_address("ada@example.com"));
        assert!(plausible_address("Ada <ada@example.com>"));
        assert!(!plausible_address("ada"));
    }
}
