//! The world the contract test runs in: two organizations with an API key
//! each (`a` makes the requests; `b`'s objects are "another organization's
//! ids"), a third (`c`) the admin routes may disable and whose key they may
//! revoke, and per organization a provider connection of every channel, a
//! message, a suppression and (for `a`) a webhook endpoint.
//!
//! Invariant: nothing a generated request can make the engine call is off
//! this machine. Every provider connection points at `sink`, a wiremock
//! server on 127.0.0.1 with no mocks (it answers 404 to everything), the
//! engine runs with `outbound_loopback_only`, and [`keep_on_loopback`]
//! rewrites any URL or host in a generated body that is not loopback.

use reqwest::Method;
use serde_json::{json, Value};
use wiremock::matchers::{method, path_regex};
use wiremock::{Mock, MockServer, ResponseTemplate};

use crate::helpers::{mailgun, sandbox, status_json, Org, TestApp};

/// `credentials.webhookToken` of the Africa's Talking connections.
pub const AT_WEBHOOK_TOKEN: &str = "at-webhook-token-0123456789abcdef";
/// `webhookVerifyToken` of the Meta connections.
pub const META_VERIFY_TOKEN: &str = "meta-verify-token-0123456789abcdef";

/// One organization's objects.
pub struct Tenant {
    pub org: Org,
    pub email: String,
    pub sms: String,
    /// An Africa's Talking connection (inactive: never sent through) for
    /// the SMS webhook route.
    pub sms_webhook: String,
    pub whatsapp: String,
    pub message: String,
    /// A routing rule.
    pub rule: String,
    /// A suppressed number, URL-encoded for a path.
    pub suppressed: String,
}

pub struct World {
    pub a: Tenant,
    pub b: Tenant,
    /// The admin routes' own organization (disabled, its key revoked).
    pub c: Org,
    pub sink: MockServer,
}

impl World {
    pub async fn build(app: &TestApp) -> World {
        let sink = MockServer::start().await;
        answer_management_calls(&sink).await;
        let a = tenant(app, &sink, "contract-a", "+2348030000001").await;
        let b = tenant(app, &sink, "contract-b", "+2348030000002").await;
        let c = app.org("contract-c").await;
        let res = app
            .call(
                Method::PUT,
                "/api/webhook-endpoint",
                Some(&a.org.key),
                Some(&json!({"url": format!("{}/hook", sink.uri())})),
            )
            .await;
        let (status, body) = status_json(res).await;
        assert_eq!(status, 201, "{body}");
        World { a, b, c, sink }
    }

    /// Values for a route's path parameters: (this organization's, another's).
    pub fn path_values(&self, path: &str, name: &str) -> (String, String) {
        let (a, b) = (&self.a, &self.b);
        let pick = |f: fn(&Tenant) -> &String| (f(a).clone(), f(b).clone());
        if path.starts_with("/api/admin/organizations/") {
            return match name {
                "keyId" => (self.c.key_id.clone(), b.org.key_id.clone()),
                _ => (self.c.id.clone(), b.org.id.clone()),
            };
        }
        for (prefix, f) in [
            (
                "/api/email/",
                (|t: &Tenant| &t.email) as fn(&Tenant) -> &String,
            ),
            ("/api/sms/", |t| &t.sms),
            ("/api/whatsapp/", |t| &t.whatsapp),
            ("/api/messaging/status/", |t| &t.message),
            ("/api/suppressions/", |t| &t.suppressed),
            ("/api/routing/rules/", |t| &t.rule),
            ("/api/webhooks/email/", |t| &t.email),
            ("/api/webhooks/sms/", |t| &t.sms_webhook),
            ("/api/webhooks/whatsapp/", |t| &t.whatsapp),
        ] {
            if path.starts_with(prefix) {
                return pick(f);
            }
        }
        panic!("the contract test has no objects for {path} {{{name}}}: add them to World");
    }

    /// The valid value of a query parameter the description gives no
    /// example for, where only the fixture knows it.
    pub fn query_value(&self, path: &str, name: &str) -> Option<String> {
        match (path, name) {
            (p, "hub.verify_token") if p.starts_with("/api/webhooks/whatsapp/") => {
                Some(META_VERIFY_TOKEN.to_owned())
            }
            (p, "token") if p.starts_with("/api/webhooks/sms/") => {
                Some(AT_WEBHOOK_TOKEN.to_owned())
            }
            _ => None,
        }
    }
}

/// The sink answers the management calls of the Mailgun and Meta
/// connections (domain verification, stats, templates, the connection
/// probe) as the providers do, so their 200 answers are checked against the
/// description too; everything else it answers 404.
async fn answer_management_calls(sink: &MockServer) {
    let answers = [
        (
            "PUT",
            "^/v4/domains/mg.example.com/verify$",
            json!({
            "domain": {"name": "mg.example.com", "state": "unverified", "type": "custom"},
            "receiving_dns_records": [{"record_type": "MX", "name": "mg.example.com",
                                       "priority": "10", "value": "mxa.mailgun.org", "valid": "unknown"}],
            "sending_dns_records": [{"record_type": "TXT", "name": "mg.example.com",
                                     "value": "v=spf1 include:mailgun.org ~all", "valid": "valid"}]}),
        ),
        (
            "GET",
            "^/v4/domains/mg.example.com$",
            json!({"domain": {"name": "mg.example.com", "state": "active"}}),
        ),
        (
            "GET",
            "^/v3/mg.example.com/stats/total$",
            json!({
            "start": "Mon, 01 Jan 2024 00:00:00 UTC", "resolution": "day",
            "stats": [{"time": "Mon, 01 Jan 2024 00:00:00 UTC", "accepted": {"total": 3},
                       "delivered": {"total": 2},
                       "failed": {"permanent": {"bounce": 1, "total": 1}}}]}),
        ),
        (
            "GET",
            "/message_templates$",
            json!({
            "data": [{"name": "order_update", "language": "en_US", "status": "APPROVED",
                      "category": "UTILITY", "id": "1",
                      "components": [{"type": "BODY", "text": "Your order {{1}} ships {{2}}."}]}],
            "paging": {"cursors": {"before": "A", "after": "END"}}}),
        ),
        (
            "POST",
            "/message_templates$",
            json!({"id": "594425479261596", "status": "PENDING", "category": "UTILITY"}),
        ),
    ];
    for (verb, path, body) in answers {
        Mock::given(method(verb))
            .and(path_regex(path))
            .respond_with(ResponseTemplate::new(200).set_body_json(body))
            .mount(sink)
            .await;
    }
}

async fn tenant(app: &TestApp, sink: &MockServer, name: &str, suppressed: &str) -> Tenant {
    let org = app.org(name).await;
    let base = sink.uri();
    let mut email = mailgun();
    email["baseUrl"] = json!(base);
    let email = app.provider(&org, "email", email).await;
    let sms = app
        .provider(&org, "sms", sandbox("sms-sandbox", 0, 0.0, 0.0))
        .await;
    let at = json!({"providerType": "AFRICASTALKING", "name": "at", "isActive": false,
                    "senderId": "Acme", "baseUrl": base,
                    "credentials": {"username": "sandbox", "apiKey": "at-api-key-0123456789abcdef",
                                    "webhookToken": AT_WEBHOOK_TOKEN}});
    let at = app.provider(&org, "sms", at).await;
    let meta = json!({"providerType": "META_CLOUD", "name": "meta", "baseUrl": base,
                      "accessToken": "meta-access-token-0123456789abcdef",
                      "phoneNumberId": "106540352242922", "businessAccountId": "102290129340398",
                      "webhookVerifyToken": META_VERIFY_TOKEN,
                      "webhookSecret": "meta-app-secret-0123456789abcdef"});
    let whatsapp = app.provider(&org, "whatsapp", meta).await;
    let (status, sent) = app
        .send(
            &org,
            &json!({"channel": "sms", "to": "+2348031234567", "text": "contract fixture"}),
        )
        .await;
    assert_eq!(status, 202, "{sent}");
    let res = app
        .call(
            Method::POST,
            "/api/suppressions",
            Some(&org.key),
            Some(&json!({"recipient": suppressed, "reason": "manual"})),
        )
        .await;
    assert_eq!(res.status(), 201);
    let rule = json!({"name": "fixture", "priority": 50, "strategy": "priority",
                      "match": {"channel": "email", "domains": ["example.com"]}});
    let (status, rule) = status_json(
        app.call(
            Method::POST,
            "/api/routing/rules",
            Some(&org.key),
            Some(&rule),
        )
        .await,
    )
    .await;
    assert_eq!(status, 201, "{rule}");
    let id = |v: &Value| v["id"].as_str().expect("id").to_owned();
    Tenant {
        email: id(&email),
        sms: id(&sms),
        sms_webhook: id(&at),
        whatsapp: id(&whatsapp),
        message: id(&sent),
        rule: id(&rule),
        suppressed: suppressed.replace('+', "%2B"),
        org,
    }
}

/// A provider connection created by a generated request points at the
/// sink too when the request names no `baseUrl` (else it would call the
/// provider's real API, which `outbound_loopback_only` refuses, but only
/// after a DNS look-up).
pub fn pin_new_provider(method: &Method, path: &str, body: &mut Value, sink: &str) {
    let creates = *method == Method::POST
        && [
            "/api/email/providers",
            "/api/sms/providers",
            "/api/whatsapp/providers",
        ]
        .contains(&path);
    if let (true, Value::Object(map)) = (creates, body) {
        map.entry("baseUrl").or_insert_with(|| json!(sink));
    }
}

/// Members whose string value is a URL the engine may call.
const URL_KEYS: &[&str] = &["baseUrl", "url", "webhookUrl", "profilePictureUrl"];

/// Rewrites every URL (`baseUrl`, `url`, ...) and SMTP `host` in a
/// generated body that names a host other than loopback to the sink (or
/// `127.0.0.1`), so no generated request can make the engine reach off this
/// machine. Hostile values that are not URLs or host names stay as they are
/// (they cannot be resolved, and the validation under test refuses them).
pub fn keep_on_loopback(value: &mut Value, sink: &str) {
    match value {
        Value::Object(map) => {
            for (key, member) in map.iter_mut() {
                if key == "baseUrl" && member.is_null() {
                    // Clearing it would send the connection to the provider's real API.
                    *member = Value::String(sink.to_owned());
                } else if let Value::String(text) = member {
                    if URL_KEYS.contains(&key.as_str()) && names_remote_url(text) {
                        *text = sink.to_owned();
                    } else if key == "host" && names_remote_host(text) {
                        *text = "127.0.0.1".to_owned();
                    }
                } else {
                    keep_on_loopback(member, sink);
                }
            }
        }
        Value::Array(items) => items.iter_mut().for_each(|v| keep_on_loopback(v, sink)),
        _ => {}
    }
}

fn names_remote_url(text: &str) -> bool {
    match url::Url::parse(text.trim()) {
        Ok(url) => url.host_str().is_some_and(|h| !is_loopback(h)),
        // Not a URL the engine could call; but a bare host name might be
        // taken as one after a trim or a default scheme.
        Err(_) => names_remote_host(text),
    }
}

fn names_remote_host(text: &str) -> bool {
    let host = text.trim();
    host.len() <= 253
        && host.contains(['.', ':'])
        && host
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || ".-:[]".contains(c))
        && !is_loopback(host)
}

fn is_loopback(host: &str) -> bool {
    let host = host.trim_start_matches('[').trim_end_matches(']');
    host.eq_ignore_ascii_case("localhost")
        || host
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
}
