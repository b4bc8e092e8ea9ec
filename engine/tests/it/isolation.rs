//! Tenant isolation: another organization's resource answers exactly like a missing one.

use reqwest::Method;
use serde_json::{json, Value};

use crate::helpers::{gupshup, mailgun, status_json, termii, TestApp};

#[tokio::test]
async fn organization_b_cannot_see_or_touch_organization_a_providers_on_any_route() {
    let app = TestApp::spawn().await;
    let a = app.org("a").await;
    let b = app.org("b").await;
    let owned = [
        ("email", app.provider(&a, "email", mailgun()).await),
        ("sms", app.provider(&a, "sms", termii()).await),
        ("whatsapp", app.provider(&a, "whatsapp", gupshup()).await),
    ];
    let missing = uuid::Uuid::now_v7().to_string();
    for (channel, provider) in &owned {
        let id = provider["id"].as_str().expect("id");
        let routes: [(Method, String, Option<Value>); 4] = [
            (Method::GET, format!("/api/{channel}/providers/{id}"), None),
            (
                Method::PUT,
                format!("/api/{channel}/providers/{id}"),
                Some(json!({"name": "stolen"})),
            ),
            (
                Method::DELETE,
                format!("/api/{channel}/providers/{id}"),
                None,
            ),
            (
                Method::POST,
                format!("/api/{channel}/providers/{id}/test"),
                None,
            ),
        ];
        for (method, path, body) in routes {
            let (status, theirs) = status_json(
                app.call(method.clone(), &path, Some(&b.key), body.as_ref())
                    .await,
            )
            .await;
            let missing_path = path.replace(id, &missing);
            let (missing_status, absent) = status_json(
                app.call(method.clone(), &missing_path, Some(&b.key), body.as_ref())
                    .await,
            )
            .await;
            assert_eq!(status, 404, "{method} {path}: {theirs}");
            assert_eq!(
                (status, &theirs),
                (missing_status, &absent),
                "{method} {path}"
            );
        }
        // B's list is empty; A's provider is untouched.
        let (_, list) = status_json(
            app.call(
                Method::GET,
                &format!("/api/{channel}/providers"),
                Some(&b.key),
                None,
            )
            .await,
        )
        .await;
        assert_eq!(list["providers"], json!([]));
        let (status, still) = status_json(
            app.call(
                Method::GET,
                &format!("/api/{channel}/providers/{id}"),
                Some(&a.key),
                None,
            )
            .await,
        )
        .await;
        assert_eq!(status, 200);
        assert_eq!(&still, provider);
    }
    // Nothing B tried was audited against A.
    let audited = app
        .query_count(&format!(
            "SELECT count(*) FROM audit_log WHERE organization_id = '{}' AND action <> 'provider.create' \
             AND action <> 'api_key.issue'",
            a.id
        ))
        .await;
    assert_eq!(audited, 0);
}

#[tokio::test]
async fn a_provider_id_of_another_channel_is_not_found() {
    let app = TestApp::spawn().await;
    let a = app.org("a").await;
    let sms = app.provider(&a, "sms", termii()).await;
    let id = sms["id"].as_str().expect("id");
    let res = app
        .call(
            Method::GET,
            &format!("/api/email/providers/{id}"),
            Some(&a.key),
            None,
        )
        .await;
    assert_eq!(res.status(), 404);
    let res = app
        .call(
            Method::GET,
            "/api/email/providers/not-a-uuid",
            Some(&a.key),
            None,
        )
        .await;
    assert_eq!(res.status(), 404);
}

#[tokio::test]
async fn audit_entries_are_visible_only_to_their_organization() {
    let app = TestApp::spawn().await;
    let a = app.org("a").await;
    let b = app.org("b").await;
    app.provider(&a, "email", mailgun()).await;
    let (_, theirs) = status_json(
        app.call(Method::GET, "/api/audit", Some(&b.key), None)
            .await,
    )
    .await;
    let actions: Vec<&str> = theirs["entries"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|e| e["action"].as_str())
        .collect();
    assert_eq!(actions, ["api_key.issue"], "B sees only its own key issue");
}
