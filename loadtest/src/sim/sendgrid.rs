//! SendGrid v3 (providers.md §2).
//!
//! `POST /v3/mail/send`, `Authorization: Bearer <apiKey>`, JSON:
//! `personalizations[].to|cc|bcc[].email`, `from.email`, `subject`,
//! `content[]` (or `template_id`), `custom_args`, `categories`, `headers`.
//!
//! - 202, empty body, `X-Message-Id` (22 characters, as SendGrid's).
//! - Errors `{"errors": [{"message", "field", "help"}]}`: 401 "The provided
//!   authorization grant is invalid, expired, or revoked"; 400 for a
//!   missing `from`, `personalizations`, `subject`, `content`; 429 "too
//!   many requests" with `X-RateLimit-Limit|Remaining|Reset` (SendGrid's
//!   own headers) and `Retry-After` when configured; 500.
//! - Event Webhook (§2.2) to the account's `webhookUrl`: a JSON array of
//!   events per POST (here one event per POST, so the steps keep their
//!   order), each with `email`, `timestamp`, `event`, `smtp-id`,
//!   `sg_event_id`, `sg_message_id` (`<X-Message-Id>.<suffix>`), `category`
//!   and every `custom_args` key at the top level; `processed`, then
//!   `delivered` (`open` for outcome `read`), `bounce` type `bounce`
//!   (`bounced`) or `blocked` (`failed`, `undelivered`). Signed as the
//!   Signed Event Webhook: `X-Twilio-Email-Event-Webhook-Signature` =
//!   base64 DER ECDSA P-256/SHA-256 over the
//!   `X-Twilio-Email-Event-Webhook-Timestamp` value followed by the body.
//!   The verification key: `GET /v3/user/webhooks/event/settings/signed`
//!   (SendGrid's endpoint, `{"enabled", "public_key"}`) or the simulator's
//!   `GET /_sim/accounts/{name}/public-key`.
//! - `GET /v3/scopes` (the engine's probe): `{"scopes": ["mail.send", …]}`.
//!
//! Not simulated: sandbox mode's 200, `send_at`, batches, templates'
//! content, domain authentication, suppressions.

use actix_web::http::StatusCode;
use actix_web::{web, HttpRequest, HttpResponse};
use base64::Engine as _;
use chrono::Utc;
use p256::ecdsa::signature::Signer;
use p256::ecdsa::{Signature, SigningKey};
use p256::pkcs8::{DecodePrivateKey, EncodePublicKey};
use rand::distributions::Alphanumeric;
use rand::Rng;
use serde_json::{json, Map, Value};

use super::config::{Outcome, ProviderKind};
use super::webhooks::Step;
use super::{bearer, idempotency_key, random_hex, same_secret, Account, Shared};

/// The signature header of the Signed Event Webhook.
pub const SIGNATURE_HEADER: &str = "X-Twilio-Email-Event-Webhook-Signature";
/// The signed timestamp header.
pub const TIMESTAMP_HEADER: &str = "X-Twilio-Email-Event-Webhook-Timestamp";

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.route("/v3/mail/send", web::post().to(send_mail))
        .route("/v3/scopes", web::get().to(scopes))
        .route(
            "/v3/user/webhooks/event/settings/signed",
            web::get().to(signed_settings),
        );
}

/// The configured key (PKCS#8 or SEC1, base64 DER or PEM), or a new one.
pub fn signing_key(configured: Option<&str>) -> anyhow::Result<SigningKey> {
    let Some(text) = configured else {
        return Ok(SigningKey::random(&mut rand::rngs::OsRng));
    };
    let bare: String = text
        .lines()
        .filter(|line| !line.trim_start().starts_with("-----"))
        .flat_map(str::chars)
        .filter(|c| !c.is_whitespace())
        .collect();
    let der = base64::engine::general_purpose::STANDARD
        .decode(bare)
        .map_err(|_| anyhow::anyhow!("not base64 DER or PEM"))?;
    if let Ok(key) = SigningKey::from_pkcs8_der(&der) {
        return Ok(key);
    }
    p256::SecretKey::from_sec1_der(&der)
        .map(SigningKey::from)
        .map_err(|_| anyhow::anyhow!("not a P-256 private key in PKCS#8 or SEC1 DER"))
}

/// The public key as SendGrid shows it: base64 DER SubjectPublicKeyInfo.
pub fn public_key_base64(key: &SigningKey) -> Option<String> {
    let der = p256::PublicKey::from(key.verifying_key())
        .to_public_key_der()
        .ok()?;
    Some(base64::engine::general_purpose::STANDARD.encode(der.as_bytes()))
}

/// Signs `timestamp || body` (base64 DER ECDSA, §2.2).
pub fn sign(key: &SigningKey, timestamp: &str, body: &[u8]) -> String {
    let mut signed = Vec::with_capacity(timestamp.len() + body.len());
    signed.extend_from_slice(timestamp.as_bytes());
    signed.extend_from_slice(body);
    let signature: Signature = key.sign(&signed);
    base64::engine::general_purpose::STANDARD.encode(signature.to_der().as_bytes())
}

/// A SendGrid error answer.
fn errors(status: StatusCode, message: &str, field: Option<&str>) -> HttpResponse {
    let mut problem = json!({"message": message, "field": field});
    if field.is_some() {
        problem["help"] =
            json!("http://sendgrid.com/docs/API_Reference/Web_API_v3/Mail/errors.html");
    }
    HttpResponse::build(status).json(json!({"errors": [problem]}))
}

fn unauthorized() -> HttpResponse {
    errors(
        StatusCode::UNAUTHORIZED,
        "The provided authorization grant is invalid, expired, or revoked",
        None,
    )
}

/// The account whose API key the request carries.
fn account_of<'a>(shared: &'a Shared, request: &HttpRequest) -> Option<&'a Account> {
    let token = bearer(request)?;
    shared.of_type("sendgrid").find(
        |a| matches!(a.kind(), ProviderKind::Sendgrid { api_key, .. } if same_secret(token, api_key)),
    )
}

/// `GET /v3/scopes` (the engine's probe).
async fn scopes(shared: web::Data<Shared>, request: HttpRequest) -> HttpResponse {
    if account_of(&shared, &request).is_none() {
        return unauthorized();
    }
    HttpResponse::Ok().json(json!({"scopes": ["mail.send", "user.webhooks.event.settings.read"]}))
}

/// `GET /v3/user/webhooks/event/settings/signed`: the verification key.
async fn signed_settings(shared: web::Data<Shared>, request: HttpRequest) -> HttpResponse {
    let Some(account) = account_of(&shared, &request) else {
        return unauthorized();
    };
    let key = account.signing_key.as_ref().and_then(public_key_base64);
    HttpResponse::Ok().json(json!({"enabled": key.is_some(), "public_key": key}))
}

/// Every address of `personalizations[].to|cc|bcc[]`.
fn recipients_of(mail: &Value) -> Vec<String> {
    let personalizations = mail
        .get("personalizations")
        .and_then(Value::as_array)
        .map(Vec::as_slice)
        .unwrap_or(&[]);
    personalizations
        .iter()
        .flat_map(|p| ["to", "cc", "bcc"].map(|k| p.get(k).and_then(Value::as_array)))
        .flatten()
        .flatten()
        .filter_map(|a| a.get("email").and_then(Value::as_str))
        .map(str::to_owned)
        .collect()
}

/// Why SendGrid would refuse `mail` (message, field), if it would.
fn problem(mail: &Value, recipients: &[String]) -> Option<(&'static str, &'static str)> {
    let has_text = |v: Option<&Value>| v.and_then(Value::as_str).is_some_and(|s| !s.is_empty());
    if mail
        .pointer("/from/email")
        .and_then(Value::as_str)
        .is_none()
    {
        return Some((
            "The from object must be provided for every email send. It is an object that \
             requires an email parameter and may also contain a name parameter.",
            "from",
        ));
    }
    if recipients.is_empty() {
        return Some((
            "The personalizations field is required and must have at least one personalization.",
            "personalizations",
        ));
    }
    if recipients.iter().any(|r| !r.contains('@')) {
        return Some((
            "Does not contain a valid address.",
            "personalizations.0.to.0.email",
        ));
    }
    let template = has_text(mail.get("template_id"));
    let subject = has_text(mail.get("subject"))
        || mail
            .get("personalizations")
            .and_then(Value::as_array)
            .is_some_and(|ps| ps.iter().all(|p| has_text(p.get("subject"))));
    if !subject && !template {
        return Some((
            "The subject is required. You can get around this requirement if you use a template \
             with a subject defined or if every personalization has a subject defined.",
            "subject",
        ));
    }
    let content = mail
        .get("content")
        .and_then(Value::as_array)
        .is_some_and(|c| !c.is_empty());
    if !content && !template {
        return Some((
            "Unless a valid template_id is provided, the content parameter is required. There \
             must be at least one defined content block. We typically suggest both text/plain \
             and text/html blocks are included, but only one block is required.",
            "content",
        ));
    }
    None
}

async fn send_mail(
    shared: web::Data<Shared>,
    request: HttpRequest,
    body: web::Bytes,
) -> HttpResponse {
    // Accounts are told apart by key: a request with none matching is
    // counted on the first account (there is no other way to attribute it).
    let account = account_of(&shared, &request);
    let Some(account) = shared.admit("sendgrid", account).await else {
        return unauthorized();
    };
    let mail: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
    let recipients = recipients_of(&mail);
    let key = idempotency_key(&request);
    if let Some(refused) = shared.injected_failure(
        account,
        &recipients,
        key,
        |mut answer| {
            let reset = Utc::now().timestamp()
                + i64::try_from(account.behaviour().retry_after_secs.unwrap_or(1)).unwrap_or(1);
            answer
                .insert_header(("X-RateLimit-Limit", "600"))
                .insert_header(("X-RateLimit-Remaining", "0"))
                .insert_header(("X-RateLimit-Reset", reset.to_string()));
            answer.json(json!({"errors": [{"field": null, "message": "too many requests"}]}))
        },
        || {
            errors(
                StatusCode::INTERNAL_SERVER_ERROR,
                "An internal server error occurred",
                None,
            )
        },
    ) {
        return refused;
    }
    if mail.is_null() {
        account.count(|c| &c.invalid);
        shared.stats.record_send(&recipients, key, false);
        return errors(StatusCode::BAD_REQUEST, "Bad Request", None);
    }
    if let Some((message, field)) = problem(&mail, &recipients) {
        account.count(|c| &c.invalid);
        shared.stats.record_send(&recipients, key, false);
        return errors(StatusCode::BAD_REQUEST, message, Some(field));
    }
    account.count(|c| &c.accepted);
    shared.stats.record_send(&recipients, key, true);
    let message_id = random_id(22);
    if let (Some(url), Some(signing)) = (account.webhook_url(), account.signing_key.as_ref()) {
        let outcome = account.outcome();
        let steps = recipients
            .iter()
            .flat_map(|r| events(&mail, &message_id, r, outcome, &url, signing))
            .collect();
        shared.post_webhooks(account, url, steps);
    }
    HttpResponse::Accepted()
        .insert_header(("X-Message-Id", message_id))
        .finish()
}

fn random_id(len: usize) -> String {
    rand::thread_rng()
        .sample_iter(&Alphanumeric)
        .take(len)
        .map(char::from)
        .collect()
}

/// The signed events of one recipient for one outcome, in order.
fn events(
    mail: &Value,
    message_id: &str,
    recipient: &str,
    outcome: Outcome,
    url: &str,
    key: &SigningKey,
) -> Vec<Step> {
    let kinds: &[&str] = match outcome {
        Outcome::Delivered => &["processed", "delivered"],
        Outcome::Read => &["processed", "delivered", "open"],
        Outcome::Failed | Outcome::Undelivered => &["processed", "blocked"],
        Outcome::Bounced => &["processed", "bounce"],
        Outcome::None => &[],
    };
    let sg_message_id = format!("{message_id}.filterdrecv-{}-1-0", random_hex(6));
    let smtp_id = format!("<{message_id}@ismtpd0001p1iad2.sendgrid.net>");
    let categories = mail.get("categories").cloned();
    let custom_args = mail
        .get("custom_args")
        .and_then(Value::as_object)
        .cloned()
        .unwrap_or_default();
    kinds
        .iter()
        .map(|kind| {
            let mut event = Map::new();
            // Custom args first: SendGrid's own fields win on a clash.
            event.extend(custom_args.clone());
            let fields = json!({
                "email": recipient,
                "timestamp": Utc::now().timestamp(),
                "smtp-id": smtp_id,
                "sg_event_id": random_id(22),
                "sg_message_id": sg_message_id,
            });
            if let Value::Object(fields) = fields {
                event.extend(fields);
            }
            if let Some(categories) = &categories {
                event.insert("category".into(), categories.clone());
            }
            let details = match *kind {
                "processed" => json!({"event": "processed", "pool": {"name": "sim", "id": 1}}),
                "delivered" => json!({"event": "delivered", "response": "250 2.0.0 OK",
                                      "tls": 1, "ip": "198.51.100.8"}),
                "open" => json!({"event": "open", "useragent": "Mozilla/5.0",
                                 "ip": "203.0.113.9", "sg_machine_open": false}),
                "blocked" => json!({"event": "bounce", "type": "blocked",
                                    "bounce_classification": "Reputation", "status": "4.0.0",
                                    "reason": "550 5.7.1 Message rejected due to local policy"}),
                _ => json!({"event": "bounce", "type": "bounce",
                            "bounce_classification": "Invalid Address", "status": "5.1.1",
                            "reason": "550 5.1.1 The email account that you tried to reach does not exist."}),
            };
            if let Value::Object(details) = details {
                event.extend(details);
            }
            let body = Value::Array(vec![Value::Object(event)])
                .to_string()
                .into_bytes();
            let timestamp = Utc::now().timestamp().to_string();
            Step {
                url: url.to_owned(),
                content_type: "application/json",
                headers: vec![
                    (SIGNATURE_HEADER, sign(key, &timestamp, &body)),
                    (TIMESTAMP_HEADER, timestamp),
                    ("User-Agent", "SendGrid Event API".to_owned()),
                ],
                body,
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use p256::ecdsa::signature::Verifier;
    use p256::ecdsa::VerifyingKey;
    use p256::pkcs8::{DecodePublicKey, EncodePrivateKey};

    use super::*;

    #[test]
    fn configured_keys_load_as_pkcs8_or_sec1_and_sign_verifiably() {
        let key = SigningKey::random(&mut rand::rngs::OsRng);
        let pkcs8 = p256::SecretKey::from(&key).to_pkcs8_der().expect("der");
        let b64 = base64::engine::general_purpose::STANDARD;
        let pem = format!(
            "-----BEGIN PRIVATE KEY-----\n{}\n-----END PRIVATE KEY-----\n",
            b64.encode(pkcs8.as_bytes())
        );
        let sec1 = p256::SecretKey::from(&key).to_sec1_der().expect("sec1");
        for text in [pem, b64.encode(sec1.as_slice())] {
            let loaded = signing_key(Some(&text)).expect("loads");
            assert_eq!(loaded.verifying_key(), key.verifying_key());
        }
        assert!(signing_key(Some("bm90IGEga2V5")).is_err());

        let public = public_key_base64(&key).expect("public key");
        let verifying =
            VerifyingKey::from_public_key_der(&b64.decode(public).expect("b64")).expect("spki");
        let signature = sign(&key, "1700000000", b"[]");
        let der = b64.decode(signature).expect("b64");
        let signature = Signature::from_der(&der).expect("der signature");
        assert!(verifying.verify(b"1700000000[]", &signature).is_ok());
    }
}
