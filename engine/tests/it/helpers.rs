//! `TestApp`: the whole server on a random loopback port over a fresh database,
//! plus small request helpers. Settings are built in code; no env vars.

use std::net::SocketAddr;

use msgengine::settings::{Environment, Settings};
use msgengine::Application;
use msgengine_domain::Secret;
use msgengine_storage::crypto::KeyRing;
use msgengine_testkit::TestDb;
use reqwest::{Method, Response};
use serde_json::{json, Value};

pub const ADMIN_TOKEN: &str = "test-admin-token-0123456789abcdef0123456789";

pub struct TestApp {
    pub base: String,
    pub http: reqwest::Client,
    pub db: TestDb,
    pub key_ring: String,
    pub engine: msgengine_actors::Engine,
    /// `http://127.0.0.1:<port>` of the webhook listener, when it has its own.
    pub webhook_base: Option<String>,
    handle: actix_web::dev::ServerHandle,
}

/// An organization with one API key.
pub struct Org {
    pub id: String,
    pub key: String,
    pub key_id: String,
}

impl TestApp {
    pub async fn spawn() -> TestApp {
        let db = TestDb::new().await;
        let key_ring = KeyRing::generate_entry("test1");
        Self::spawn_on(db, key_ring).await
    }

    /// Starts a server over an existing database with the given key ring.
    pub async fn spawn_on(db: TestDb, key_ring: String) -> TestApp {
        Self::spawn_configured(db, key_ring, |_| {}).await
    }

    /// A server on a fresh database whose settings the test adjusts (after the
    /// test defaults).
    pub async fn spawn_with(configure: impl FnOnce(&mut Settings)) -> TestApp {
        let db = TestDb::new().await;
        let key_ring = KeyRing::generate_entry("test1");
        Self::spawn_configured(db, key_ring, configure).await
    }

    /// Same, over an existing database with the given key ring.
    pub async fn spawn_configured(
        db: TestDb,
        key_ring: String,
        configure: impl FnOnce(&mut Settings),
    ) -> TestApp {
        let mut settings = Settings {
            environment: Environment::Development,
            data_dir: std::env::temp_dir().join("msgengine-test-unused"),
            ..Settings::default()
        };
        settings.server.listen = SocketAddr::from(([127, 0, 0, 1], 0));
        settings.server.workers = Some(2);
        settings.server.max_body_bytes = 64 * 1024;
        settings.database.url = Some(Secret::new(db.conninfo.clone()));
        settings.database.pool_max_size = 4;
        settings.security.admin_token = Some(Secret::new(ADMIN_TOKEN));
        settings.security.master_keys = Some(Secret::new(key_ring.clone()));
        // No test may reach a real provider.
        settings.engine.outbound_loopback_only = true;
        configure(&mut settings);
        let app = Application::build(settings).await.expect("server builds");
        let base = format!("http://127.0.0.1:{}", app.port());
        let webhook_base = app
            .webhook_port()
            .map(|port| format!("http://127.0.0.1:{port}"));
        let handle = app.handle();
        let engine = app.engine().clone();
        tokio::spawn(app.run_until_stopped());
        TestApp {
            base,
            http: reqwest::Client::new(),
            db,
            key_ring,
            engine,
            webhook_base,
            handle,
        }
    }

    pub async fn stop(&self) {
        self.handle.stop(true).await;
    }

    /// A request with an optional bearer token and JSON body.
    pub async fn call(
        &self,
        method: Method,
        path: &str,
        token: Option<&str>,
        body: Option<&Value>,
    ) -> Response {
        let mut req = self.http.request(method, format!("{}{path}", self.base));
        if let Some(t) = token {
            req = req.bearer_auth(t);
        }
        if let Some(b) = body {
            req = req.json(b);
        }
        req.send().await.expect("request reaches the server")
    }

    pub async fn admin(&self, method: Method, path: &str, body: Option<&Value>) -> Response {
        self.call(method, path, Some(ADMIN_TOKEN), body).await
    }

    /// Creates an organization and issues it a key.
    pub async fn org(&self, name: &str) -> Org {
        let res = self
            .admin(
                Method::POST,
                "/api/admin/organizations",
                Some(&json!({"name": name})),
            )
            .await;
        assert_eq!(res.status(), 201);
        let org: Value = res.json().await.expect("json");
        let id = org["id"].as_str().expect("id").to_owned();
        let res = self
            .admin(
                Method::POST,
                &format!("/api/admin/organizations/{id}/api-keys"),
                Some(&json!({"name": "ci"})),
            )
            .await;
        assert_eq!(res.status(), 201);
        let key: Value = res.json().await.expect("json");
        Org {
            id,
            key: key["key"].as_str().expect("key").to_owned(),
            key_id: key["id"].as_str().expect("key id").to_owned(),
        }
    }

    /// Registers a provider and returns its JSON.
    pub async fn provider(&self, org: &Org, channel: &str, body: Value) -> Value {
        let res = self
            .call(
                Method::POST,
                &format!("/api/{channel}/providers"),
                Some(&org.key),
                Some(&body),
            )
            .await;
        let status = res.status();
        let json: Value = res.json().await.expect("json");
        assert_eq!(status, 201, "{json}");
        json
    }

    /// Rows of a query on the test database, as JSON (via `to_jsonb`).
    pub async fn query_count(&self, sql: &str) -> i64 {
        let client = self.db.pool.get().await.expect("connection");
        client.query_one(sql, &[]).await.expect("query").get(0)
    }

    /// `PUT /api/webhook-endpoint` for `org`: its status and JSON body.
    pub async fn put_webhook_endpoint(&self, org: &Org, body: Value) -> (u16, Value) {
        status_json(
            self.call(
                Method::PUT,
                "/api/webhook-endpoint",
                Some(&org.key),
                Some(&body),
            )
            .await,
        )
        .await
    }
}

/// A response's status and JSON body.
pub async fn status_json(res: Response) -> (u16, Value) {
    let status = res.status().as_u16();
    let text = res.text().await.expect("body");
    let json = serde_json::from_str(&text).unwrap_or_else(|_| panic!("body is not JSON: {text}"));
    (status, json)
}

/// Asserts the JSON error body's shape and code.
pub fn assert_error(body: &Value, code: &str) {
    let error = &body["error"];
    assert_eq!(error["code"], code, "{body}");
    assert!(
        error["message"].as_str().is_some_and(|m| !m.is_empty()),
        "{body}"
    );
    assert!(error.get("field").is_some(), "field key present: {body}");
}

pub const MAILGUN_KEY: &str = "key-mailgun-0123456789abcdef0123";
pub const SMTP_PASSWORD: &str = "smtp-password-very-secret-42";
pub const GUPSHUP_KEY: &str = "gupshup-apikey-0123456789abcdef";
pub const TERMII_KEY: &str = "TLtermii-apikey-0123456789abcdef";

pub fn mailgun() -> Value {
    json!({"providerType": "MAILGUN", "name": "mailgun-main", "apiKey": MAILGUN_KEY,
           "domain": "mg.example.com", "fromEmail": "hello@example.com", "fromName": "Example",
           "webhookSecret": "mailgun-webhook-signing-key-xyz"})
}

pub fn smtp() -> Value {
    json!({"providerType": "SMTP", "name": "relay", "fromEmail": "ops@example.com",
           "smtpConfig": {"host": "smtp.example.com", "port": 587, "tls": "starttls",
                          "username": "ops@example.com", "password": SMTP_PASSWORD}})
}

pub fn gupshup() -> Value {
    json!({"providerType": "GUPSHUP", "name": "gupshup", "accessToken": GUPSHUP_KEY,
           "phoneNumber": "+2348031234567", "appName": "exampleapp",
           "webhookVerifyToken": "verify-token-abcdef0123456789"})
}

pub fn termii() -> Value {
    json!({"providerType": "TERMII", "name": "termii", "senderId": "Example",
           "credentials": {"apiKey": TERMII_KEY}})
}

/// Every secret value the fixtures use.
pub const SECRETS: &[&str] = &[
    MAILGUN_KEY,
    SMTP_PASSWORD,
    GUPSHUP_KEY,
    TERMII_KEY,
    "mailgun-webhook-signing-key-xyz",
    "verify-token-abcdef0123456789",
];

pub fn assert_no_secret(text: &str) {
    for secret in SECRETS {
        assert!(!text.contains(secret), "secret leaked: {text}");
    }
}

/// A SANDBOX provider of a channel with the given behaviour.
pub fn sandbox(name: &str, latency_ms: u32, transient: f64, permanent: f64) -> Value {
    json!({"providerType": "SANDBOX", "name": name,
           "sandboxConfig": {"latencyMs": latency_ms, "transientFailureRate": transient,
                             "permanentFailureRate": permanent}})
}

impl TestApp {
    /// Sends a body to /api/messaging/send.
    pub async fn send(&self, org: &Org, body: &Value) -> (u16, Value) {
        status_json(
            self.call(
                Method::POST,
                "/api/messaging/send",
                Some(&org.key),
                Some(body),
            )
            .await,
        )
        .await
    }

    /// A message's status.
    pub async fn status(&self, org: &Org, id: &str) -> (u16, Value) {
        status_json(
            self.call(
                Method::GET,
                &format!("/api/messaging/status/{id}"),
                Some(&org.key),
                None,
            )
            .await,
        )
        .await
    }

    /// Polls until the message reaches one of `states` (bounded: 30 s).
    pub async fn wait_for(&self, org: &Org, id: &str, states: &[&str]) -> Value {
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
        loop {
            let (_, status) = self.status(org, id).await;
            if status["status"]
                .as_str()
                .is_some_and(|s| states.contains(&s))
            {
                return status;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "message {id} stuck: {status}"
            );
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        }
    }

    /// Polls until no message of the database is unfinished (bounded: 60 s).
    pub async fn drain(&self) {
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
        loop {
            let open = self
                .query_count("SELECT count(*) FROM messages WHERE state IN ('scheduled','accepted','queued','sending')")
                .await;
            if open == 0 {
                return;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "{open} messages still unfinished"
            );
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        }
    }
}

/// X-Twilio-Signature of a form callback to `url` signed with `token`,
/// computed independently of the adapter (HMAC-SHA1 over the URL and the
/// sorted parameters, base64).
pub fn twilio_signature(token: &str, url: &str, params: &[(&str, &str)]) -> String {
    use base64::Engine as _;
    use hmac::{Hmac, Mac};
    let mut sorted = params.to_vec();
    sorted.sort();
    let mut text = url.to_owned();
    for (k, v) in sorted {
        text.push_str(k);
        text.push_str(v);
    }
    let mut mac = Hmac::<sha1::Sha1>::new_from_slice(token.as_bytes()).expect("key");
    mac.update(text.as_bytes());
    base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes())
}
