//! The provider registry of the three channels.

use reqwest::Method;
use serde_json::json;

use crate::helpers::{
    assert_error, assert_no_secret, gupshup, mailgun, smtp, status_json, termii, TestApp,
    MAILGUN_KEY,
};

#[tokio::test]
async fn mailgun_smtp_gupshup_and_termii_register_and_never_show_secrets() {
    let app = TestApp::spawn().await;
    let org = app.org("acme").await;
    let mg = app.provider(&org, "email", mailgun()).await;
    let relay = app.provider(&org, "email", smtp()).await;
    let gs = app.provider(&org, "whatsapp", gupshup()).await;
    let tm = app.provider(&org, "sms", termii()).await;

    for created in [&mg, &relay, &gs, &tm] {
        assert!(
            created["id"].as_str().is_some_and(|id| id.len() == 36),
            "{created}"
        );
        assert_eq!(created["organizationId"], org.id.as_str());
        assert!(created["createdAt"].is_string() && created["updatedAt"].is_string());
        assert_no_secret(&created.to_string());
    }
    assert_eq!(mg["apiKey"], json!({"isSet": true, "last4": "0123"}));
    assert_eq!(mg["domain"], "mg.example.com");
    assert_eq!(relay["smtpConfig"]["password"]["isSet"], true);
    assert_eq!(relay["smtpConfig"]["host"], "smtp.example.com");
    assert_eq!(relay["apiKey"], json!({"isSet": false, "last4": null}));
    assert_eq!(gs["accessToken"]["isSet"], true);
    assert_eq!(gs["phoneNumber"], "+2348031234567");
    assert_eq!(tm["credentials"]["apiKey"]["isSet"], true);
    assert_eq!(tm["senderId"], "Example");

    for channel in ["email", "sms", "whatsapp"] {
        let (status, list) = status_json(
            app.call(
                Method::GET,
                &format!("/api/{channel}/providers"),
                Some(&org.key),
                None,
            )
            .await,
        )
        .await;
        assert_eq!(status, 200);
        assert_no_secret(&list.to_string());
    }
    let (_, emails) = status_json(
        app.call(Method::GET, "/api/email/providers", Some(&org.key), None)
            .await,
    )
    .await;
    assert_eq!(emails["providers"].as_array().map(Vec::len), Some(2));
    let id = mg["id"].as_str().expect("id");
    let (status, one) = status_json(
        app.call(
            Method::GET,
            &format!("/api/email/providers/{id}"),
            Some(&org.key),
            None,
        )
        .await,
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(one, mg);
}

#[tokio::test]
async fn put_merges_keeps_unsent_secrets_and_clears_nulls() {
    let app = TestApp::spawn().await;
    let org = app.org("acme").await;
    let mg = app.provider(&org, "email", mailgun()).await;
    let path = format!("/api/email/providers/{}", mg["id"].as_str().expect("id"));
    let patch = json!({"fromName": null, "trackingDomain": "t.example.com", "isActive": false});
    let (status, updated) = status_json(
        app.call(Method::PUT, &path, Some(&org.key), Some(&patch))
            .await,
    )
    .await;
    assert_eq!(status, 200, "{updated}");
    assert!(updated.get("fromName").is_none(), "{updated}");
    assert_eq!(updated["trackingDomain"], "t.example.com");
    assert_eq!(updated["isActive"], false);
    assert_eq!(updated["apiKey"]["isSet"], true, "an unsent secret is kept");

    // Replacing a secret shows the new hint; removing a required one is refused.
    let (_, rotated) = status_json(
        app.call(
            Method::PUT,
            &path,
            Some(&org.key),
            Some(&json!({"apiKey": "key-new-value-000000000000abcd"})),
        )
        .await,
    )
    .await;
    assert_eq!(rotated["apiKey"]["last4"], "abcd");
    let (status, body) = status_json(
        app.call(
            Method::PUT,
            &path,
            Some(&org.key),
            Some(&json!({"apiKey": null})),
        )
        .await,
    )
    .await;
    assert_eq!(status, 422);
    assert_error(&body, "required");
    assert_eq!(body["error"]["field"], "apiKey");
}

#[tokio::test]
async fn duplicate_names_conflict_within_a_channel_only() {
    let app = TestApp::spawn().await;
    let org = app.org("acme").await;
    app.provider(&org, "email", mailgun()).await;
    let (status, body) = status_json(
        app.call(
            Method::POST,
            "/api/email/providers",
            Some(&org.key),
            Some(&mailgun()),
        )
        .await,
    )
    .await;
    assert_eq!(status, 409);
    assert_error(&body, "duplicate_name");
    assert_eq!(body["error"]["field"], "name");
    // The same name on another channel, or in another organization, is fine.
    let mut sms = termii();
    sms["name"] = json!("mailgun-main");
    app.provider(&org, "sms", sms).await;
    let other = app.org("other").await;
    app.provider(&other, "email", mailgun()).await;
    // Renaming onto an existing name conflicts too.
    let second = app.provider(&org, "email", smtp()).await;
    let path = format!(
        "/api/email/providers/{}",
        second["id"].as_str().expect("id")
    );
    let res = app
        .call(
            Method::PUT,
            &path,
            Some(&org.key),
            Some(&json!({"name": "mailgun-main"})),
        )
        .await;
    assert_eq!(res.status(), 409);
}

#[tokio::test]
async fn delete_hides_the_provider_wipes_its_secrets_and_frees_its_name() {
    let app = TestApp::spawn().await;
    let org = app.org("acme").await;
    let mg = app.provider(&org, "email", mailgun()).await;
    let id = mg["id"].as_str().expect("id");
    let path = format!("/api/email/providers/{id}");
    assert_eq!(
        app.call(Method::DELETE, &path, Some(&org.key), None)
            .await
            .status(),
        204
    );
    assert_eq!(
        app.call(Method::GET, &path, Some(&org.key), None)
            .await
            .status(),
        404
    );
    assert_eq!(
        app.call(Method::DELETE, &path, Some(&org.key), None)
            .await
            .status(),
        404
    );
    let wiped = app
        .query_count(&format!("SELECT count(*) FROM providers WHERE id = '{id}' AND secrets IS NULL AND deleted_at IS NOT NULL"))
        .await;
    assert_eq!(wiped, 1);
    app.provider(&org, "email", mailgun()).await;
}

#[tokio::test]
async fn test_endpoint_checks_configuration_then_calls_the_provider_and_reports_in_words() {
    use wiremock::matchers::{method, path, query_param};
    use wiremock::{Mock, MockServer, ResponseTemplate};
    let termii_api = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path("/api/get-balance"))
        .and(query_param("api_key", crate::helpers::TERMII_KEY))
        .respond_with(
            ResponseTemplate::new(200)
                .set_body_json(json!({"user": "Example Ltd", "balance": 12.5, "currency": "NGN"})),
        )
        .mount(&termii_api)
        .await;
    Mock::given(method("GET"))
        .and(path("/api/get-balance"))
        .respond_with(
            ResponseTemplate::new(401).set_body_json(json!({"message": "Invalid api key"})),
        )
        .mount(&termii_api)
        .await;
    let app = TestApp::spawn().await;
    let org = app.org("acme").await;
    let mut body = termii();
    body["baseUrl"] = json!(termii_api.uri());
    let tm = app.provider(&org, "sms", body).await;
    let id = tm["id"].as_str().expect("id");
    let path = format!("/api/sms/providers/{id}/test");
    let (status, report) =
        status_json(app.call(Method::POST, &path, Some(&org.key), None).await).await;
    assert_eq!(status, 200, "{report}");
    assert_eq!(report["ok"], true, "{report}");
    assert_eq!(report["checks"][0]["name"], "configuration");
    assert_eq!(report["checks"][0]["status"], "passed");
    assert_eq!(report["checks"][1]["name"], "connection");
    assert_eq!(report["checks"][1]["status"], "passed");
    assert_eq!(
        termii_api.received_requests().await.map_or(0, |r| r.len()),
        1
    );

    // A wrong key: the live check fails, in words, without the key.
    let res = app
        .call(
            Method::PUT,
            &format!("/api/sms/providers/{id}"),
            Some(&org.key),
            Some(&json!({"credentials": {"apiKey": "TLwrong-key-0000000000000000"}})),
        )
        .await;
    assert_eq!(res.status(), 200);
    let (_, report) = status_json(app.call(Method::POST, &path, Some(&org.key), None).await).await;
    assert_eq!(report["ok"], false, "{report}");
    assert_eq!(report["checks"][1]["status"], "failed");
    let words = report["checks"][1]["message"].as_str().unwrap_or("");
    assert!(
        !words.is_empty() && !words.contains("TLwrong-key"),
        "{words}"
    );

    // A connection to a non-loopback host is refused by the test engine
    // (engine.outbound_loopback_only): the check fails, nothing leaves the box.
    let far = app
        .provider(
            &org,
            "sms",
            json!({"providerType": "TERMII", "name": "far", "senderId": "Example",
        "credentials": {"apiKey": crate::helpers::TERMII_KEY}}),
        )
        .await;
    let (_, report) = status_json(
        app.call(
            Method::POST,
            &format!(
                "/api/sms/providers/{}/test",
                far["id"].as_str().expect("id")
            ),
            Some(&org.key),
            None,
        )
        .await,
    )
    .await;
    assert_eq!(report["ok"], false, "{report}");

    // A stored configuration that no longer validates fails the test, in words.
    app.query_count(&format!(
        "WITH u AS (UPDATE providers SET settings = jsonb_set(settings, '{{senderId}}', '\"!\"') \
         WHERE id = '{id}' RETURNING 1) SELECT count(*) FROM u"
    ))
    .await;
    let (_, report) = status_json(app.call(Method::POST, &path, Some(&org.key), None).await).await;
    assert_eq!(report["ok"], false);
    assert_eq!(report["checks"][0]["status"], "failed");
    assert!(report["checks"][0]["message"]
        .as_str()
        .is_some_and(|m| m.contains("senderId")));
}

#[tokio::test]
async fn every_provider_type_of_every_channel_can_be_registered() {
    let app = TestApp::spawn().await;
    let org = app.org("acme").await;
    let sid = "AC0123456789abcdef0123456789abcdef";
    let cases = [
        (
            "email",
            json!({"providerType": "MAILJET", "name": "mj", "apiKey": "public:private", "fromEmail": "a@example.com"}),
        ),
        (
            "email",
            json!({"providerType": "SENDGRID", "name": "sg", "apiKey": "SG.abc", "fromEmail": "a@example.com"}),
        ),
        (
            "whatsapp",
            json!({"providerType": "META_CLOUD", "name": "meta", "accessToken": "EAAG", "phoneNumberId": "1234567890"}),
        ),
        (
            "whatsapp",
            json!({"providerType": "TWILIO", "name": "tw", "accessToken": "tok", "businessAccountId": sid, "phoneNumber": "+14155238886"}),
        ),
        (
            "whatsapp",
            json!({"providerType": "AISENSY", "name": "ai", "accessToken": "k"}),
        ),
        (
            "whatsapp",
            json!({"providerType": "INTERAKT", "name": "in", "accessToken": "k"}),
        ),
        (
            "sms",
            json!({"providerType": "TWILIO", "name": "tw", "senderId": "+14155238886", "credentials": {"accountSid": sid, "authToken": "t"}}),
        ),
        (
            "sms",
            json!({"providerType": "AFRICASTALKING", "name": "at", "credentials": {"username": "sandbox", "apiKey": "k"}}),
        ),
    ];
    for (channel, body) in cases {
        let created = app.provider(&org, channel, body).await;
        assert!(created["id"].is_string());
    }
    let secret_check = app
        .query_count("SELECT count(*) FROM providers WHERE settings::text ~ '(public:private|EAAG|SG\\.abc)'")
        .await;
    assert_eq!(secret_check, 0);
    let missing = json!({"providerType": "MAILGUN", "name": "m", "apiKey": MAILGUN_KEY, "fromEmail": "a@example.com"});
    let (status, body) = status_json(
        app.call(
            Method::POST,
            "/api/email/providers",
            Some(&org.key),
            Some(&missing),
        )
        .await,
    )
    .await;
    assert_eq!(
        (status, body["error"]["field"].as_str()),
        (422, Some("domain"))
    );
}
