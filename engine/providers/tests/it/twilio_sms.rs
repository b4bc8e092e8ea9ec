//! Twilio SMS: the exact request and the receipt, the message status
//! lookup, the connection probe, and status callbacks with
//! `X-Twilio-Signature` (signatures computed here from providers.md §6.3).

use base64::Engine as _;
use chrono::Utc;
use hmac::{Hmac, Mac};
use msgengine_domain::message::MessageState;
use msgengine_domain::provider::AnyProviderSpec;
use msgengine_domain::Channel;
use msgengine_providers::manage::ProviderStatus;
use msgengine_providers::registry::{sms_admin_for, webhook_handler_for};
use msgengine_providers::reqwest::header::{HeaderMap, HeaderValue};
use msgengine_providers::twilio_sms::TwilioSmsSender;
use msgengine_providers::webhook::{
    InboundWebhook, SuppressionReason, WebhookError, WebhookEvent, WebhookHandler,
};
use msgengine_providers::{
    sender_for, CheckStatus, FailureKind, ProviderRegistry, SendReceipt, Sender,
};
use serde_json::json;
use sha1::Sha1;
use sha2::{Digest, Sha256};
use url::Url;
use wiremock::matchers::{method, path, query_param};
use wiremock::{Mock, MockServer, ResponseTemplate};

use crate::helpers::{self, basic, form, header, only_request, pairs};

pub const ACCOUNT_SID: &str = "AC0123456789abcdef0123456789abcdef";
pub const AUTH_TOKEN: &str = "f00dfacef00dfacef00dfacef00dface";
pub const PATH: &str = "/2010-04-01/Accounts/AC0123456789abcdef0123456789abcdef/Messages.json";

pub fn spec(base_url: &str) -> AnyProviderSpec {
    helpers::spec(
        Channel::Sms,
        json!({"providerType": "TWILIO", "name": "tw", "senderId": "+15005550006",
               "credentials": {"accountSid": ACCOUNT_SID, "authToken": AUTH_TOKEN},
               "baseUrl": base_url}),
    )
}

fn created(status: &str, segments: &str) -> ResponseTemplate {
    ResponseTemplate::new(201).set_body_json(json!({
        "sid": "SM0123456789abcdef0123456789abcdef", "account_sid": ACCOUNT_SID,
        "to": "+2348031234567", "from": "+15005550006", "body": "Hello",
        "status": status, "num_segments": segments, "num_media": "0",
        "error_code": null, "error_message": null
    }))
}

#[tokio::test]
async fn twilio_send_posts_the_exact_form_with_the_idempotency_token() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path(PATH))
        .respond_with(created("queued", "2"))
        .expect(1)
        .mount(&server)
        .await;
    let message = helpers::message(Channel::Sms, "+2348031234567", "Hello Ada");

    let sender = sender_for(&spec(&server.uri()), &helpers::client()).expect("supported");
    let receipt = sender.send(&message, "idem-7").await;

    assert_eq!(
        receipt.ok(),
        Some(SendReceipt {
            provider_message_id: "SM0123456789abcdef0123456789abcdef".into(),
            state: MessageState::Sent,
            segments: Some(2),
        })
    );
    let request = only_request(&server).await;
    assert_eq!(request.method.as_str(), "POST");
    assert_eq!(request.url.path(), PATH);
    assert_eq!(
        header(&request, "authorization"),
        basic(ACCOUNT_SID, AUTH_TOKEN)
    );
    assert_eq!(
        header(&request, "content-type"),
        "application/x-www-form-urlencoded"
    );
    assert_eq!(header(&request, "i-twilio-idempotency-token"), "idem-7");
    assert_eq!(header(&request, "x-msgengine-idempotency-key"), "idem-7");
    assert_eq!(
        form(&request),
        pairs(&[
            ("To", "+2348031234567"),
            ("From", "+15005550006"),
            ("Body", "Hello Ada"),
        ])
    );
}

#[tokio::test]
async fn twilio_uses_api_key_auth_and_a_messaging_service_sender() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path(PATH))
        .respond_with(created("delivered", "1"))
        .mount(&server)
        .await;
    let key_sid = "SK0123456789abcdef0123456789abcdef";
    let spec = helpers::spec(
        Channel::Sms,
        json!({"providerType": "TWILIO", "name": "tw", "senderId": "+15005550006",
               "credentials": {"accountSid": ACCOUNT_SID, "apiKeySid": key_sid,
                               "apiKeySecret": "s3cr3t-s3cr3t-s3cr3t"},
               "baseUrl": format!("{}/2010-04-01", server.uri())}),
    );
    let mut message = helpers::message(Channel::Sms, "+2348031234567", "Hi");
    message.from = Some("MG0123456789abcdef0123456789abcdef".into());

    let sender = sender_for(&spec, &helpers::client()).expect("supported");
    let receipt = sender.send(&message, "k").await.expect("sent");

    assert_eq!(receipt.state, MessageState::Delivered);
    let request = only_request(&server).await;
    assert_eq!(
        header(&request, "authorization"),
        basic(key_sid, "s3cr3t-s3cr3t-s3cr3t")
    );
    assert_eq!(
        form(&request),
        pairs(&[
            ("To", "+2348031234567"),
            ("MessagingServiceSid", "MG0123456789abcdef0123456789abcdef"),
            ("Body", "Hi"),
        ])
    );
}

// ---- Unicode, segments and the status callback -------------------------

#[tokio::test]
async fn twilio_sends_unicode_as_utf8_and_reports_the_segments() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path(PATH))
        .respond_with(created("queued", "3"))
        .mount(&server)
        .await;
    let text = "Ẹ kú àárọ̀ Adé 👋 — ваш код 1234";
    let message = helpers::message(Channel::Sms, "+2348031234567", text);

    let sender = sender_for(&spec(&server.uri()), &helpers::client()).expect("supported");
    let receipt = sender.send(&message, "k").await.expect("sent");

    assert_eq!(receipt.segments, Some(3));
    let request = only_request(&server).await;
    assert_eq!(
        form(&request),
        pairs(&[
            ("To", "+2348031234567"),
            ("From", "+15005550006"),
            ("Body", text)
        ])
    );
}

#[tokio::test]
async fn twilio_status_callback_carries_our_message_id() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path(PATH))
        .respond_with(created("queued", "1"))
        .mount(&server)
        .await;
    let message = helpers::message(Channel::Sms, "+2348031234567", "Hi");
    let AnyProviderSpec::Sms(sms) = spec(&server.uri()) else {
        unreachable!("an SMS spec")
    };
    let callback = Url::parse("https://hooks.example.com/api/webhooks/sms/p1").expect("url");
    let sender = TwilioSmsSender::new(&sms, helpers::client()).with_status_callback(callback);

    sender.send(&message, "k").await.expect("sent");

    let request = only_request(&server).await;
    let expected = format!(
        "https://hooks.example.com/api/webhooks/sms/p1?msgengineMessageId={}",
        message.id
    );
    assert_eq!(
        form(&request),
        pairs(&[
            ("To", "+2348031234567"),
            ("From", "+15005550006"),
            ("Body", "Hi"),
            ("StatusCallback", expected.as_str()),
        ])
    );
}

#[tokio::test]
async fn twilio_resource_already_failed_is_a_permanent_failure_with_its_code() {
    let server = MockServer::start().await;
    let body = json!({"sid": "SM1", "status": "failed", "num_segments": "1",
                      "error_code": 21610, "error_message": "Attempt to send to unsubscribed recipient"});
    Mock::given(method("POST"))
        .and(path(PATH))
        .respond_with(ResponseTemplate::new(201).set_body_json(body))
        .mount(&server)
        .await;
    let sender = sender_for(&spec(&server.uri()), &helpers::client()).expect("supported");
    let error = sender
        .send(&helpers::message(Channel::Sms, "+2348031234567", "Hi"), "k")
        .await
        .expect_err("failed at Twilio");
    assert_eq!(error.kind, FailureKind::Permanent);
    assert_eq!(error.code.as_deref(), Some("21610"));
    assert_eq!(error.message, "Attempt to send to unsubscribed recipient");
}

// ---- Message status lookup --------------------------------------------

pub const MESSAGE_SID: &str = "SM0123456789abcdef0123456789abcdef";

#[tokio::test]
async fn twilio_message_status_gets_the_message_resource() {
    let server = MockServer::start().await;
    let resource = format!("/2010-04-01/Accounts/{ACCOUNT_SID}/Messages/{MESSAGE_SID}.json");
    Mock::given(method("GET"))
        .and(path(resource.as_str()))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({
            "sid": MESSAGE_SID, "status": "undelivered", "error_code": 30003,
            "error_message": null, "num_segments": "1"
        })))
        .expect(1)
        .mount(&server)
        .await;
    let admin = sms_admin_for(&spec(&server.uri()), &helpers::client()).expect("supported");

    let status = admin.message_status(MESSAGE_SID).await.expect("found");

    assert_eq!(
        status,
        ProviderStatus {
            provider_message_id: MESSAGE_SID.into(),
            state: Some(MessageState::Failed),
            raw_status: "undelivered".into(),
            error_code: Some("30003".into()),
            reason: Some("the handset is unreachable".into()),
        }
    );
    let request = only_request(&server).await;
    assert_eq!(
        header(&request, "authorization"),
        basic(ACCOUNT_SID, AUTH_TOKEN)
    );
}

#[tokio::test]
async fn twilio_message_status_of_an_unknown_sid_is_permanent_and_scrubbed() {
    let server = MockServer::start().await;
    let echoed = format!(
        "The requested resource /2010-04-01/Accounts/{ACCOUNT_SID}/Messages/SMx.json was not found"
    );
    Mock::given(method("GET"))
        .respond_with(
            ResponseTemplate::new(404)
                .set_body_json(json!({"code": 20404, "message": echoed, "status": 404})),
        )
        .mount(&server)
        .await;
    let admin = sms_admin_for(&spec(&server.uri()), &helpers::client()).expect("supported");

    let error = admin.message_status("SMx").await.expect_err("unknown");

    assert_eq!(error.kind, FailureKind::Permanent);
    assert_eq!(error.code.as_deref(), Some("20404"));
    assert!(error.message.contains("/Accounts/***/"), "{error}");
    helpers::assert_no_secret(&error, &[ACCOUNT_SID, AUTH_TOKEN]);
}

// ---- Connection probe --------------------------------------------------

pub const ACCOUNT_PATH: &str = "/2010-04-01/Accounts/AC0123456789abcdef0123456789abcdef.json";

/// The connection check of `spec` against a server answering `response`
/// on the Account resource.
pub async fn probe_with(
    spec_of: fn(&str) -> AnyProviderSpec,
    response: ResponseTemplate,
) -> (CheckStatus, String) {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path(ACCOUNT_PATH))
        .respond_with(response)
        .expect(1)
        .mount(&server)
        .await;
    let report = ProviderRegistry::live(&helpers::client())
        .test(&spec_of(&server.uri()))
        .await;
    let request = only_request(&server).await;
    assert_eq!(
        header(&request, "authorization"),
        basic(ACCOUNT_SID, AUTH_TOKEN)
    );
    let check = &report.checks[1];
    assert!(!check.message.contains(AUTH_TOKEN), "{}", check.message);
    assert!(!check.message.contains(ACCOUNT_SID), "{}", check.message);
    (check.status, check.message.clone())
}

#[tokio::test]
async fn twilio_probe_passes_on_an_active_account() {
    let body =
        json!({"sid": ACCOUNT_SID, "friendly_name": "Acme", "status": "active", "type": "Full"});
    let (status, message) = probe_with(spec, ResponseTemplate::new(200).set_body_json(body)).await;
    assert_eq!(status, CheckStatus::Passed, "{message}");
    assert!(message.contains("active"), "{message}");
}

#[tokio::test]
async fn twilio_probe_fails_with_words_on_401_404_and_a_suspended_account() {
    let unauthorized = ResponseTemplate::new(401).set_body_json(
        json!({"code": 20003, "message": "Authenticate", "more_info": "https://www.twilio.com/docs/errors/20003", "status": 401}),
    );
    let (status, message) = probe_with(spec, unauthorized).await;
    assert_eq!(status, CheckStatus::Failed);
    assert!(
        message.starts_with("the Account SID or Auth Token is wrong"),
        "{message}"
    );

    let not_found = ResponseTemplate::new(404).set_body_json(json!({"code": 20404,
        "message": format!("The requested resource /2010-04-01/Accounts/{ACCOUNT_SID}.json was not found"),
        "status": 404}));
    let (status, message) = probe_with(spec, not_found).await;
    assert_eq!(status, CheckStatus::Failed);
    assert!(
        message.starts_with("Twilio knows no account with this Account SID"),
        "{message}"
    );

    let suspended = ResponseTemplate::new(200).set_body_json(json!({"status": "suspended"}));
    let (status, message) = probe_with(spec, suspended).await;
    assert_eq!(status, CheckStatus::Failed);
    assert!(message.contains("the account is suspended"), "{message}");
}

/// Standard API keys may not read the Account resource (Twilio's API-key
/// documentation, not providers.md: unconfirmed), so the probe lists one
/// message instead.
#[tokio::test]
async fn twilio_probe_with_an_api_key_lists_one_message() {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path(PATH))
        .and(query_param("PageSize", "1"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({"messages": []})))
        .expect(1)
        .mount(&server)
        .await;
    let key_sid = "SK0123456789abcdef0123456789abcdef";
    let spec = helpers::spec(
        Channel::Sms,
        json!({"providerType": "TWILIO", "name": "tw", "senderId": "+15005550006",
               "credentials": {"accountSid": ACCOUNT_SID, "apiKeySid": key_sid,
                               "apiKeySecret": "s3cr3t-s3cr3t-s3cr3t"},
               "baseUrl": server.uri()}),
    );
    let report = ProviderRegistry::live(&helpers::client()).test(&spec).await;
    assert_eq!(report.checks[1].status, CheckStatus::Passed, "{:?}", report);
    let request = only_request(&server).await;
    assert_eq!(
        header(&request, "authorization"),
        basic(key_sid, "s3cr3t-s3cr3t-s3cr3t")
    );
}

#[tokio::test]
async fn twilio_probe_reports_an_unreachable_host() {
    let report = ProviderRegistry::live(&helpers::client())
        .test(&spec(&helpers::refused_base_url()))
        .await;
    assert_eq!(report.checks[1].status, CheckStatus::Failed);
    assert!(
        report.checks[1]
            .message
            .starts_with("could not reach Twilio"),
        "{}",
        report.checks[1].message
    );
}

// ---- Status callbacks: X-Twilio-Signature --------------------------------

/// The signature Twilio sends, computed here from §6.3 without the code
/// under test: URL, then every (name, value) sorted by name then value, no
/// separators; HMAC-SHA1 keyed with the Auth Token; base64.
pub fn twilio_signature(token: &str, url: &str, params: &[(&str, &str)]) -> String {
    let mut sorted = params.to_vec();
    sorted.sort();
    let mut text = url.to_owned();
    for (name, value) in sorted {
        text.push_str(name);
        text.push_str(value);
    }
    let mut mac = Hmac::<Sha1>::new_from_slice(token.as_bytes()).expect("any key length");
    mac.update(text.as_bytes());
    base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes())
}

/// A form body from pairs.
pub fn form_body(params: &[(&str, &str)]) -> Vec<u8> {
    url::form_urlencoded::Serializer::new(String::new())
        .extend_pairs(params)
        .finish()
        .into_bytes()
}

/// Runs `handler` on a POST of `params` to `url` signed with `signature`
/// (no header when `None`); `Ok` holds the parsed events.
pub fn deliver(
    handler: &dyn WebhookHandler,
    url: &str,
    params: &[(&str, &str)],
    signature: Option<&str>,
) -> Result<Vec<WebhookEvent>, WebhookError> {
    let mut headers = HeaderMap::new();
    headers.insert(
        "content-type",
        HeaderValue::from_static("application/x-www-form-urlencoded"),
    );
    if let Some(signature) = signature {
        headers.insert(
            "x-twilio-signature",
            HeaderValue::from_str(signature).expect("ascii"),
        );
    }
    let body = form_body(params);
    let query = url.split_once('?').map_or("", |(_, q)| q);
    let request = InboundWebhook {
        method: "POST",
        url,
        headers: &headers,
        query,
        body: &body,
    };
    let now = Utc::now();
    handler.verify(&request, now)?;
    handler.parse(&request, now)
}

const CALLBACK_URL: &str =
    "https://hooks.example.com/api/webhooks/sms/7b0f?msgengineMessageId=0190c1a2-0000-7000-8000-000000000001";

fn delivered_params() -> Vec<(&'static str, &'static str)> {
    vec![
        ("SmsSid", MESSAGE_SID),
        ("SmsStatus", "delivered"),
        ("MessageStatus", "delivered"),
        ("To", "+2348031234567"),
        ("MessageSid", MESSAGE_SID),
        ("AccountSid", ACCOUNT_SID),
        ("From", "+15005550006"),
        ("ApiVersion", "2010-04-01"),
        ("RawDlrDoneDate", "2401151230"),
    ]
}

fn handler() -> Box<dyn WebhookHandler> {
    webhook_handler_for(&spec("http://127.0.0.1:9")).expect("TWILIO SMS has a webhook handler")
}

#[test]
fn twilio_callback_with_a_valid_signature_becomes_a_delivered_event() {
    let params = delivered_params();
    let signature = twilio_signature(AUTH_TOKEN, CALLBACK_URL, &params);

    let events = deliver(&*handler(), CALLBACK_URL, &params, Some(&signature)).expect("accepted");

    assert_eq!(events.len(), 1);
    let event = &events[0];
    assert_eq!(event.state, Some(MessageState::Delivered));
    assert_eq!(event.raw_status, "delivered");
    assert_eq!(event.provider_message_id.as_deref(), Some(MESSAGE_SID));
    assert_eq!(
        event.message_id.as_deref(),
        Some("0190c1a2-0000-7000-8000-000000000001")
    );
    assert_eq!(event.recipient.as_deref(), Some("+2348031234567"));
    assert_eq!(event.suppress, None);
    assert_eq!(event.event_id, format!("twilio:{MESSAGE_SID}:delivered"));
}

#[test]
fn twilio_callback_replayed_gives_the_same_event_id() {
    let params = delivered_params();
    let signature = twilio_signature(AUTH_TOKEN, CALLBACK_URL, &params);
    let first = deliver(&*handler(), CALLBACK_URL, &params, Some(&signature)).expect("accepted");
    let again = deliver(&*handler(), CALLBACK_URL, &params, Some(&signature)).expect("accepted");
    assert_eq!(first[0].event_id, again[0].event_id);
}

#[test]
fn twilio_callback_tampered_unsigned_or_signed_with_another_token_is_refused() {
    let params = delivered_params();
    let signature = twilio_signature(AUTH_TOKEN, CALLBACK_URL, &params);
    let unauthorized = |r: Result<Vec<WebhookEvent>, WebhookError>| {
        matches!(r, Err(WebhookError::Unauthorized(_)))
    };

    let mut tampered = params.clone();
    tampered[2] = ("MessageStatus", "failed");
    assert!(unauthorized(deliver(
        &*handler(),
        CALLBACK_URL,
        &tampered,
        Some(&signature)
    )));

    let mut extra = params.clone();
    extra.push(("ErrorCode", "30007"));
    assert!(unauthorized(deliver(
        &*handler(),
        CALLBACK_URL,
        &extra,
        Some(&signature)
    )));

    let other_url = CALLBACK_URL.replace("7b0f", "7b0e");
    assert!(unauthorized(deliver(
        &*handler(),
        &other_url,
        &params,
        Some(&signature)
    )));

    let wrong = twilio_signature("0000000000000000000000000000000f", CALLBACK_URL, &params);
    assert!(unauthorized(deliver(
        &*handler(),
        CALLBACK_URL,
        &params,
        Some(&wrong)
    )));

    assert!(unauthorized(deliver(
        &*handler(),
        CALLBACK_URL,
        &params,
        None
    )));
    // Twilio signs no timestamp, so there is no stale-request case: a replay
    // is accepted and deduplicated by its event id (test above).
}

#[test]
fn twilio_signature_over_the_url_with_the_default_port_is_accepted() {
    let params = delivered_params();
    let with_port = CALLBACK_URL.replace("example.com/", "example.com:443/");
    let signature = twilio_signature(AUTH_TOKEN, &with_port, &params);
    assert!(deliver(&*handler(), CALLBACK_URL, &params, Some(&signature)).is_ok());
    let signature = twilio_signature(AUTH_TOKEN, CALLBACK_URL, &params);
    assert!(deliver(&*handler(), &with_port, &params, Some(&signature)).is_ok());
}

#[test]
fn twilio_21610_suppresses_the_recipient_and_inbound_stop_too() {
    let url = "https://hooks.example.com/api/webhooks/sms/7b0f";
    let params = [
        ("MessageSid", MESSAGE_SID),
        ("MessageStatus", "failed"),
        ("To", "+2348031234567"),
        ("ErrorCode", "21610"),
    ];
    let signature = twilio_signature(AUTH_TOKEN, url, &params);
    let events = deliver(&*handler(), url, &params, Some(&signature)).expect("accepted");
    assert_eq!(events[0].state, Some(MessageState::Failed));
    assert_eq!(events[0].error_code.as_deref(), Some("21610"));
    assert_eq!(events[0].suppress, Some(SuppressionReason::Unsubscribe));
    assert_eq!(events[0].message_id, None);

    let inbound = [
        ("MessageSid", "SM9999"),
        ("SmsStatus", "received"),
        ("From", "+2348031234567"),
        ("To", "+15005550006"),
        ("Body", "STOP"),
        ("OptOutType", "STOP"),
    ];
    let signature = twilio_signature(AUTH_TOKEN, url, &inbound);
    let events = deliver(&*handler(), url, &inbound, Some(&signature)).expect("accepted");
    assert_eq!(events.len(), 1);
    assert_eq!(events[0].recipient.as_deref(), Some("+2348031234567"));
    assert_eq!(events[0].suppress, Some(SuppressionReason::Unsubscribe));
    assert_eq!(events[0].state, None);
}

#[test]
fn twilio_json_callback_is_checked_against_body_sha256() {
    let body = br#"{"MessageSid":"SM1","MessageStatus":"sent","To":"+2348031234567"}"#;
    let hash = hex::encode(Sha256::digest(body));
    let url = format!("https://hooks.example.com/api/webhooks/sms/7b0f?bodySHA256={hash}");
    let signature = twilio_signature(AUTH_TOKEN, &url, &[]);
    let mut headers = HeaderMap::new();
    headers.insert(
        "x-twilio-signature",
        HeaderValue::from_str(&signature).expect("ascii"),
    );
    let query = url.split_once('?').map_or("", |(_, q)| q);
    let handler = handler();
    let request = |body: &'static [u8]| InboundWebhook {
        method: "POST",
        url: &url,
        headers: &headers,
        query,
        body,
    };
    let now = Utc::now();
    assert!(handler.verify(&request(body), now).is_ok());
    let events = handler.parse(&request(body), now).expect("parsed");
    assert_eq!(events[0].state, Some(MessageState::Sent));
    let tampered: &[u8] = br#"{"MessageSid":"SM1","MessageStatus":"read","To":"+2348031234567"}"#;
    assert!(matches!(
        handler.verify(&request(tampered), now),
        Err(WebhookError::Unauthorized(_))
    ));
}

#[test]
fn twilio_callbacks_of_an_api_key_connection_are_refused_in_words() {
    let spec = helpers::spec(
        Channel::Sms,
        json!({"providerType": "TWILIO", "name": "tw", "senderId": "+15005550006",
               "credentials": {"accountSid": ACCOUNT_SID,
                               "apiKeySid": "SK0123456789abcdef0123456789abcdef",
                               "apiKeySecret": "s3cr3t-s3cr3t-s3cr3t"}}),
    );
    let handler = webhook_handler_for(&spec).expect("handler");
    let params = delivered_params();
    let signature = twilio_signature(AUTH_TOKEN, CALLBACK_URL, &params);
    match deliver(&*handler, CALLBACK_URL, &params, Some(&signature)) {
        Err(WebhookError::Unauthorized(why)) => {
            assert!(why.contains("credentials.authToken"), "{why}")
        }
        other => panic!("expected a refusal, got {other:?}"),
    }
}

#[tokio::test]
async fn a_connection_context_with_a_callback_url_gives_twilio_a_status_callback() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path(PATH))
        .respond_with(created("queued", "1"))
        .mount(&server)
        .await;
    let message = helpers::message(Channel::Sms, "+2348031234567", "Hi");
    let context = msgengine_providers::SenderContext {
        status_callback: Some(
            Url::parse("https://msg.example.com/api/webhooks/sms/p1").expect("url"),
        ),
    };
    let sender = msgengine_providers::sender_for_connection(
        &spec(&server.uri()),
        &helpers::client(),
        &context,
    )
    .expect("sender");
    sender.send(&message, "k").await.expect("sent");
    let request = only_request(&server).await;
    let callback = form(&request)
        .into_iter()
        .find(|(k, _)| k == "StatusCallback")
        .map(|(_, v)| v);
    assert_eq!(
        callback.as_deref(),
        Some(
            format!(
                "https://msg.example.com/api/webhooks/sms/p1?msgengineMessageId={}",
                message.id
            )
            .as_str()
        )
    );
    // Without a callback URL, none is sent.
    let plain = msgengine_providers::sender_for_connection(
        &spec(&server.uri()),
        &helpers::client(),
        &msgengine_providers::SenderContext::default(),
    )
    .expect("sender");
    plain.send(&message, "k2").await.expect("sent");
    let requests = server.received_requests().await.unwrap_or_default();
    let last = requests.last().expect("a second request");
    assert!(!String::from_utf8_lossy(&last.body).contains("StatusCallback"));
}
