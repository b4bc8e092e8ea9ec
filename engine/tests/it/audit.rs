//! The audit log: every provider change and test, every key issue and revoke.

use reqwest::Method;
use serde_json::json;

use crate::helpers::{assert_no_secret, mailgun, status_json, TestApp};

#[tokio::test]
async fn provider_changes_tests_and_key_events_are_audited_without_values() {
    let app = TestApp::spawn().await;
    let org = app.org("acme").await;
    let mg = app.provider(&org, "email", mailgun()).await;
    let path = format!("/api/email/providers/{}", mg["id"].as_str().expect("id"));
    app.call(
        Method::PUT,
        &path,
        Some(&org.key),
        Some(&json!({"apiKey": "key-rotated-0000000000000000", "fromName": "New"})),
    )
    .await;
    // A PUT that changes nothing writes nothing.
    app.call(
        Method::PUT,
        &path,
        Some(&org.key),
        Some(&json!({"fromName": "New"})),
    )
    .await;
    app.call(Method::POST, &format!("{path}/test"), Some(&org.key), None)
        .await;
    app.call(Method::DELETE, &path, Some(&org.key), None).await;
    let second = app
        .admin(
            Method::POST,
            &format!("/api/admin/organizations/{}/api-keys", org.id),
            None,
        )
        .await
        .json::<serde_json::Value>()
        .await
        .expect("json");
    app.admin(
        Method::DELETE,
        &format!(
            "/api/admin/organizations/{}/api-keys/{}",
            org.id,
            second["id"].as_str().expect("id")
        ),
        None,
    )
    .await;

    let (status, log) = status_json(
        app.call(Method::GET, "/api/audit", Some(&org.key), None)
            .await,
    )
    .await;
    assert_eq!(status, 200);
    let text = log.to_string();
    assert_no_secret(&text);
    assert!(
        !text.contains("key-rotated-0000000000000000")
            && !text.contains(second["key"].as_str().unwrap_or("-"))
    );
    let entries = log["entries"].as_array().expect("entries");
    let actions: Vec<&str> = entries
        .iter()
        .filter_map(|e| e["action"].as_str())
        .collect();
    assert_eq!(
        actions,
        [
            "api_key.revoke",
            "api_key.issue",
            "provider.delete",
            "provider.test",
            "provider.update",
            "provider.create",
            "api_key.issue"
        ]
    );
    let update = &entries[4];
    assert_eq!(update["changedFields"], json!(["apiKey", "fromName"]));
    assert_eq!(update["actorType"], "api_key");
    assert_eq!(update["actorKeyId"], org.key_id.as_str());
    assert_eq!(update["targetType"], "provider");
    assert_eq!(update["targetId"], mg["id"]);
    assert_eq!(update["details"]["providerType"], "MAILGUN");
    // The Mailgun fixture has no baseUrl: the test engine refuses calls to
    // non-loopback hosts, so the live check fails (and is audited as such).
    assert_eq!(entries[3]["details"]["ok"], false);
    assert_eq!(entries[0]["actorType"], "admin");
    let created_fields = entries[5]["changedFields"].as_array().expect("fields");
    assert!(created_fields.contains(&json!("apiKey")) && created_fields.contains(&json!("domain")));

    let (_, page) = status_json(
        app.call(Method::GET, "/api/audit?limit=2", Some(&org.key), None)
            .await,
    )
    .await;
    let before = page["nextBefore"].as_i64().expect("next page");
    let (_, rest) = status_json(
        app.call(
            Method::GET,
            &format!("/api/audit?limit=10&before={before}"),
            Some(&org.key),
            None,
        )
        .await,
    )
    .await;
    assert_eq!(rest["entries"].as_array().map(Vec::len), Some(5));
}
