//! Twilio WhatsApp: the exact requests for text, Content templates and
//! media; classification; status callbacks; management; the probe.

use std::time::{Duration, SystemTime};

use base64::Engine as _;
use hmac::{Hmac, Mac};
use msgengine_domain::message::{
    Media, MediaKind, MessageExtras, MessageState, OutboundMessage, WhatsappTemplate,
};
use msgengine_domain::provider::AnyProviderSpec;
use msgengine_domain::Channel;
use msgengine_providers::manage::{ProviderStatus, TemplateDraft};
use msgengine_providers::registry::{webhook_handler_for, whatsapp_admin_for};
use msgengine_providers::webhook::WebhookError;
use msgengine_providers::{sender_for, CheckStatus, FailureKind, ProviderError, SendReceipt};
use serde_json::{json, Value};
use sha2::Sha256;
use wiremock::matchers::{method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

use crate::helpers::{self, assert_no_secret, basic, form, header, only_request, pairs};
use crate::twilio_sms::{
    deliver, probe_with, twilio_signature, ACCOUNT_SID, AUTH_TOKEN, MESSAGE_SID, PATH,
};

const WEBHOOK_SECRET: &str = "whsec-0123456789abcdef";

pub fn spec(base_url: &str) -> AnyProviderSpec {
    helpers::spec(
        Channel::Whatsapp,
        json!({"providerType": "TWILIO", "name": "tw-wa", "businessAccountId": ACCOUNT_SID,
               "accessToken": AUTH_TOKEN, "phoneNumber": "+15005550006",
               "webhookSecret": WEBHOOK_SECRET, "baseUrl": base_url}),
    )
}

fn created() -> ResponseTemplate {
    ResponseTemplate::new(201).set_body_json(json!({
        "sid": MESSAGE_SID, "account_sid": ACCOUNT_SID, "to": "whatsapp:+2348031234567",
        "from": "whatsapp:+15005550006", "status": "queued", "num_segments": "1",
        "num_media": "0", "error_code": null, "error_message": null
    }))
}

fn with_extras(text: &str, extras: MessageExtras) -> OutboundMessage {
    let mut message = helpers::message(Channel::Whatsapp, "+2348031234567", text);
    message.extras = Some(Box::new(extras));
    message
}

/// The form the server received for one send of `message`.
async fn sent_form(message: &OutboundMessage) -> (Vec<(String, String)>, SendReceipt) {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path(PATH))
        .respond_with(created())
        .expect(1)
        .mount(&server)
        .await;
    let sender = sender_for(&spec(&server.uri()), &helpers::client()).expect("supported");
    let receipt = sender.send(message, "idem-wa").await.expect("sent");
    let request = only_request(&server).await;
    assert_eq!(
        header(&request, "authorization"),
        basic(ACCOUNT_SID, AUTH_TOKEN)
    );
    assert_eq!(
        header(&request, "content-type"),
        "application/x-www-form-urlencoded"
    );
    assert_eq!(header(&request, "i-twilio-idempotency-token"), "idem-wa");
    (form(&request), receipt)
}

#[tokio::test]
async fn whatsapp_text_goes_between_whatsapp_addresses() {
    let message = helpers::message(Channel::Whatsapp, "+2348031234567", "Hello Ada 👋");
    let (form, receipt) = sent_form(&message).await;
    assert_eq!(
        form,
        pairs(&[
            ("To", "whatsapp:+2348031234567"),
            ("From", "whatsapp:+15005550006"),
            ("Body", "Hello Ada 👋"),
        ])
    );
    assert_eq!(
        receipt,
        SendReceipt {
            provider_message_id: MESSAGE_SID.into(),
            state: MessageState::Sent,
            segments: None,
        }
    );
}

#[tokio::test]
async fn whatsapp_template_is_a_content_sid_with_numbered_variables() {
    let message = with_extras(
        "",
        MessageExtras {
            template: Some(WhatsappTemplate {
                name: "HX0123456789abcdef0123456789abcdef".into(),
                language: "en".into(),
                variables: vec!["Ada".into(), "12 May, 10:00".into()],
                header_media: None,
            }),
            ..MessageExtras::default()
        },
    );
    let (form, _) = sent_form(&message).await;
    assert_eq!(form.len(), 4, "{form:?}");
    assert_eq!(
        &form[..3],
        pairs(&[
            ("To", "whatsapp:+2348031234567"),
            ("From", "whatsapp:+15005550006"),
            ("ContentSid", "HX0123456789abcdef0123456789abcdef"),
        ])
        .as_slice()
    );
    assert_eq!(form[3].0, "ContentVariables");
    let variables: Value = serde_json::from_str(&form[3].1).expect("a JSON string");
    assert_eq!(variables, json!({"1": "Ada", "2": "12 May, 10:00"}));
}

#[tokio::test]
async fn whatsapp_media_is_a_media_url_with_the_text_as_caption() {
    let message = with_extras(
        "Your invoice",
        MessageExtras {
            media: Some(Media {
                kind: MediaKind::Document,
                link: Some("https://cdn.example.com/invoice.pdf".into()),
                media_id: None,
                filename: Some("invoice.pdf".into()),
            }),
            ..MessageExtras::default()
        },
    );
    let (form, _) = sent_form(&message).await;
    assert_eq!(
        form,
        pairs(&[
            ("To", "whatsapp:+2348031234567"),
            ("From", "whatsapp:+15005550006"),
            ("Body", "Your invoice"),
            ("MediaUrl", "https://cdn.example.com/invoice.pdf"),
        ])
    );
}

#[tokio::test]
async fn whatsapp_refuses_a_media_id_and_a_name_that_is_not_a_content_sid_without_calling() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(created())
        .expect(0)
        .mount(&server)
        .await;
    let sender = sender_for(&spec(&server.uri()), &helpers::client()).expect("supported");

    let by_id = with_extras(
        "",
        MessageExtras {
            media: Some(Media {
                kind: MediaKind::Image,
                link: None,
                media_id: Some("1234".into()),
                filename: None,
            }),
            ..MessageExtras::default()
        },
    );
    let error = sender.send(&by_id, "k").await.expect_err("refused");
    assert_eq!(error.kind, FailureKind::Permanent);
    assert_eq!(error.code.as_deref(), Some("msgengine_unsupported"));
    assert!(error.message.contains("media.link"), "{error}");

    let named = with_extras(
        "",
        MessageExtras {
            template: Some(WhatsappTemplate {
                name: "order_update".into(),
                language: "en".into(),
                variables: vec![],
                header_media: None,
            }),
            ..MessageExtras::default()
        },
    );
    let error = sender.send(&named, "k").await.expect_err("refused");
    assert_eq!(error.kind, FailureKind::Permanent);
    assert!(error.message.contains("Content SID"), "{error}");
}

// ---- Classification ----------------------------------------------------

async fn answered(response: ResponseTemplate) -> ProviderError {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path(PATH))
        .respond_with(response)
        .expect(1)
        .mount(&server)
        .await;
    attempt(&server.uri()).await
}

async fn attempt(base_url: &str) -> ProviderError {
    let sender = sender_for(&spec(base_url), &helpers::client()).expect("supported");
    let message = helpers::message(Channel::Whatsapp, "+2348031234567", "Hello");
    let error = sender.send(&message, "k").await.expect_err("refused");
    assert_no_secret(&error, &[ACCOUNT_SID, AUTH_TOKEN, WEBHOOK_SECRET]);
    error
}

#[tokio::test]
async fn whatsapp_errors_are_classified() {
    let outside_window = ResponseTemplate::new(400).set_body_json(json!({"code": 63016,
        "message": "Failed to send freeform message because you are outside the allowed window.",
        "status": 400}));
    let e = answered(outside_window).await;
    assert_eq!(
        (e.kind, e.code.as_deref(), e.http_status),
        (FailureKind::Permanent, Some("63016"), Some(400))
    );

    let e = answered(
        ResponseTemplate::new(401)
            .set_body_json(json!({"code": 20003, "message": "Authenticate", "status": 401})),
    )
    .await;
    assert_eq!(e.kind, FailureKind::Permanent);

    let e = answered(
        ResponseTemplate::new(429)
            .insert_header("Retry-After", "9")
            .set_body_json(json!({"code": 20429, "message": "Too Many Requests", "status": 429})),
    )
    .await;
    assert_eq!(
        (e.kind, e.retry_after),
        (FailureKind::RateLimited, Some(Duration::from_secs(9)))
    );

    let at = SystemTime::now() + Duration::from_secs(60);
    let e = answered(
        ResponseTemplate::new(429)
            .insert_header("Retry-After", httpdate::fmt_http_date(at).as_str()),
    )
    .await;
    let wait = e.retry_after.unwrap_or_default();
    assert!(
        (Duration::from_secs(40)..=Duration::from_secs(60)).contains(&wait),
        "{wait:?}"
    );

    let e = answered(ResponseTemplate::new(400).set_body_json(
        json!({"code": 63018, "message": "Rate limit exceeded for the WhatsApp channel", "status": 400}),
    ))
    .await;
    assert_eq!(e.kind, FailureKind::RateLimited);

    for status in [500, 503] {
        let e = answered(ResponseTemplate::new(status)).await;
        assert_eq!(e.kind, FailureKind::Transient, "{status}");
    }

    let e = answered(ResponseTemplate::new(201).set_delay(Duration::from_secs(2))).await;
    assert_eq!(e.kind, FailureKind::Timeout);

    let e = attempt(&helpers::refused_base_url()).await;
    assert_eq!((e.kind, e.http_status), (FailureKind::Transient, None));

    let echoed = format!(
        "The requested resource /2010-04-01/Accounts/{ACCOUNT_SID}/Messages.json was not found"
    );
    let e = answered(
        ResponseTemplate::new(404)
            .set_body_json(json!({"code": 20404, "message": echoed, "status": 404})),
    )
    .await;
    assert!(e.message.contains("/Accounts/***/"), "{e}");
}

// ---- Status callbacks --------------------------------------------------

const CALLBACK_URL: &str = "https://hooks.example.com/api/webhooks/whatsapp/5c2d";

fn read_params() -> Vec<(&'static str, &'static str)> {
    vec![
        ("MessageSid", MESSAGE_SID),
        ("MessageStatus", "read"),
        ("EventType", "READ"),
        ("To", "whatsapp:+2348031234567"),
        ("From", "whatsapp:+15005550006"),
        ("ChannelPrefix", "whatsapp"),
        ("AccountSid", ACCOUNT_SID),
    ]
}

#[test]
fn whatsapp_callback_signed_with_the_auth_token_becomes_a_read_event() {
    let handler = webhook_handler_for(&spec("http://127.0.0.1:9")).expect("handler");
    let params = read_params();
    let signature = twilio_signature(AUTH_TOKEN, CALLBACK_URL, &params);

    let events = deliver(&*handler, CALLBACK_URL, &params, Some(&signature)).expect("accepted");

    assert_eq!(events.len(), 1);
    assert_eq!(events[0].state, Some(MessageState::Read));
    assert_eq!(events[0].recipient.as_deref(), Some("+2348031234567"));
    assert_eq!(events[0].event_id, format!("twilio:{MESSAGE_SID}:read"));
    let again = deliver(&*handler, CALLBACK_URL, &params, Some(&signature)).expect("accepted");
    assert_eq!(again[0].event_id, events[0].event_id);
}

#[test]
fn whatsapp_callback_with_a_wrong_or_missing_signature_is_refused() {
    let handler = webhook_handler_for(&spec("http://127.0.0.1:9")).expect("handler");
    let params = read_params();
    let wrong = twilio_signature(WEBHOOK_SECRET, CALLBACK_URL, &params);
    assert!(matches!(
        deliver(&*handler, CALLBACK_URL, &params, Some(&wrong)),
        Err(WebhookError::Unauthorized(_))
    ));
    assert!(matches!(
        deliver(&*handler, CALLBACK_URL, &params, None),
        Err(WebhookError::Unauthorized(_))
    ));
    let mut tampered = params.clone();
    tampered[1] = ("MessageStatus", "failed");
    let signature = twilio_signature(AUTH_TOKEN, CALLBACK_URL, &params);
    assert!(matches!(
        deliver(&*handler, CALLBACK_URL, &tampered, Some(&signature)),
        Err(WebhookError::Unauthorized(_))
    ));
}

/// providers.md §6.3 item 6 names the newer scheme but not what it signs:
/// the same text as the SHA-1 scheme is assumed (unconfirmed).
#[test]
fn whatsapp_callback_under_the_hmac_sha256_scheme_uses_the_webhook_secret() {
    use msgengine_providers::reqwest::header::{HeaderMap, HeaderValue};
    use msgengine_providers::webhook::InboundWebhook;

    let params = read_params();
    let mut sorted = params.clone();
    sorted.sort();
    let text: String = std::iter::once(CALLBACK_URL.to_owned())
        .chain(sorted.iter().map(|(k, v)| format!("{k}{v}")))
        .collect();
    let mut mac = Hmac::<Sha256>::new_from_slice(WEBHOOK_SECRET.as_bytes()).expect("key");
    mac.update(text.as_bytes());
    let signature = base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes());
    let body = crate::twilio_sms::form_body(&params);
    let handler = webhook_handler_for(&spec("http://127.0.0.1:9")).expect("handler");
    let verify = |signature: &str| {
        let mut headers = HeaderMap::new();
        headers.insert(
            "x-twilio-signature",
            HeaderValue::from_str(signature).expect("ascii"),
        );
        headers.insert(
            "x-twilio-webhooks-signature-settings",
            HeaderValue::from_static("key=k1,algorithm=HMAC_SHA256"),
        );
        let request = InboundWebhook {
            method: "POST",
            url: CALLBACK_URL,
            headers: &headers,
            query: "",
            body: &body,
        };
        handler.verify(&request, chrono::Utc::now())
    };
    assert!(verify(&signature).is_ok());
    // The SHA-1 signature with the Auth Token does not pass under this scheme.
    assert!(verify(&twilio_signature(AUTH_TOKEN, CALLBACK_URL, &params)).is_err());
}

// ---- Management and probe ---------------------------------------------

#[tokio::test]
async fn whatsapp_message_status_gets_the_message_resource() {
    let server = MockServer::start().await;
    let resource = format!("/2010-04-01/Accounts/{ACCOUNT_SID}/Messages/{MESSAGE_SID}.json");
    Mock::given(method("GET"))
        .and(path(resource.as_str()))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({
            "sid": MESSAGE_SID, "status": "read", "error_code": null, "error_message": null
        })))
        .expect(1)
        .mount(&server)
        .await;
    let admin = whatsapp_admin_for(&spec(&server.uri()), &helpers::client()).expect("supported");

    let status = admin.message_status(MESSAGE_SID).await.expect("found");

    assert_eq!(
        status,
        ProviderStatus {
            provider_message_id: MESSAGE_SID.into(),
            state: Some(MessageState::Read),
            raw_status: "read".into(),
            error_code: None,
            reason: None,
        }
    );
    let request = only_request(&server).await;
    assert_eq!(
        header(&request, "authorization"),
        basic(ACCOUNT_SID, AUTH_TOKEN)
    );
}

#[tokio::test]
async fn whatsapp_templates_media_upload_and_webhook_setup_are_unsupported_in_words() {
    let server = MockServer::start().await;
    let admin = whatsapp_admin_for(&spec(&server.uri()), &helpers::client()).expect("supported");
    let draft = TemplateDraft {
        name: "order_update".into(),
        language: "en".into(),
        category: "UTILITY".into(),
        body: "Hi {{1}}".into(),
        examples: vec!["Ada".into()],
        header_text: None,
        footer_text: None,
    };
    let errors = [
        admin
            .list_templates()
            .await
            .map(|_| ())
            .expect_err("unsupported"),
        admin
            .create_template(&draft)
            .await
            .map(|_| ())
            .expect_err("unsupported"),
        admin
            .upload_media(vec![1, 2, 3], "image/png", "a.png")
            .await
            .map(|_| ())
            .expect_err("unsupported"),
        admin
            .setup_webhook("https://hooks.example.com/api/webhooks/whatsapp/5c2d")
            .await
            .expect_err("unsupported"),
    ];
    for error in &errors {
        assert_eq!(error.kind, FailureKind::Permanent);
        assert_eq!(error.code.as_deref(), Some("msgengine_unsupported"));
    }
    assert!(errors[0].message.contains("Content Template Builder"));
    assert!(errors[2].message.contains("media.link"));
    assert!(errors[3].message.contains("Twilio console"));
    assert!(errors[3]
        .message
        .contains("https://hooks.example.com/api/webhooks/whatsapp/5c2d"));
    assert!(server
        .received_requests()
        .await
        .unwrap_or_default()
        .is_empty());
}

#[tokio::test]
async fn whatsapp_probe_reads_the_account() {
    let ok =
        ResponseTemplate::new(200).set_body_json(json!({"sid": ACCOUNT_SID, "status": "active"}));
    let (status, message) = probe_with(spec, ok).await;
    assert_eq!(status, CheckStatus::Passed, "{message}");

    let unauthorized = ResponseTemplate::new(401)
        .set_body_json(json!({"code": 20003, "message": "Authenticate", "status": 401}));
    let (status, message) = probe_with(spec, unauthorized).await;
    assert_eq!(status, CheckStatus::Failed);
    assert!(
        message.contains("the Account SID or Auth Token is wrong"),
        "{message}"
    );

    let not_found = ResponseTemplate::new(404)
        .set_body_json(json!({"code": 20404, "message": "not found", "status": 404}));
    let (status, message) = probe_with(spec, not_found).await;
    assert_eq!(status, CheckStatus::Failed);
    assert!(message.contains("knows no account"), "{message}");
}
