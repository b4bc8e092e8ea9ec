//! The operator API and API-key authentication.

use reqwest::Method;
use serde_json::json;

use crate::helpers::{assert_error, status_json, TestApp};

#[tokio::test]
async fn admin_routes_refuse_missing_and_wrong_tokens() {
    let app = TestApp::spawn().await;
    let (status, body) = status_json(
        app.call(Method::GET, "/api/admin/organizations", None, None)
            .await,
    )
    .await;
    assert_eq!(status, 401);
    assert_error(&body, "unauthorized");
    let res = app
        .call(
            Method::GET,
            "/api/admin/organizations",
            Some("wrong-token-0123456789abcdef0123456789"),
            None,
        )
        .await;
    assert_eq!(res.status(), 401);
    // An organization's API key is not an admin token.
    let org = app.org("acme").await;
    let res = app
        .call(
            Method::GET,
            "/api/admin/organizations",
            Some(&org.key),
            None,
        )
        .await;
    assert_eq!(res.status(), 401);
}

#[tokio::test]
async fn organizations_are_created_listed_and_disabled() {
    let app = TestApp::spawn().await;
    let (status, created) = status_json(
        app.admin(
            Method::POST,
            "/api/admin/organizations",
            Some(&json!({"name": "Acme Ltd"})),
        )
        .await,
    )
    .await;
    assert_eq!(status, 201);
    assert_eq!(created["name"], "Acme Ltd");
    assert_eq!(created["isActive"], true);
    let id = created["id"].as_str().expect("id");

    let (status, list) = status_json(
        app.admin(Method::GET, "/api/admin/organizations", None)
            .await,
    )
    .await;
    assert_eq!(status, 200);
    assert!(list["organizations"]
        .as_array()
        .is_some_and(|a| a.iter().any(|o| o["id"] == id)));

    let (status, disabled) = status_json(
        app.admin(
            Method::POST,
            &format!("/api/admin/organizations/{id}/disable"),
            None,
        )
        .await,
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(disabled["isActive"], false);
    assert!(disabled["disabledAt"].is_string());

    let res = app
        .admin(
            Method::POST,
            &format!("/api/admin/organizations/{id}/api-keys"),
            None,
        )
        .await;
    let (status, body) = status_json(res).await;
    assert_eq!(status, 409);
    assert_error(&body, "organization_disabled");
}

#[tokio::test]
async fn list_pages_with_next_after() {
    let app = TestApp::spawn().await;
    for n in 0..3 {
        app.admin(
            Method::POST,
            "/api/admin/organizations",
            Some(&json!({"name": format!("org{n}")})),
        )
        .await;
    }
    let (_, page1) = status_json(
        app.admin(Method::GET, "/api/admin/organizations?limit=2", None)
            .await,
    )
    .await;
    assert_eq!(page1["organizations"].as_array().map(Vec::len), Some(2));
    let after = page1["nextAfter"].as_str().expect("a next page");
    let (_, page2) = status_json(
        app.admin(
            Method::GET,
            &format!("/api/admin/organizations?limit=2&after={after}"),
            None,
        )
        .await,
    )
    .await;
    assert_eq!(page2["organizations"].as_array().map(Vec::len), Some(1));
    assert!(page2["nextAfter"].is_null());
    let (status, body) = status_json(
        app.admin(Method::GET, "/api/admin/organizations?limit=0", None)
            .await,
    )
    .await;
    assert_eq!(status, 400);
    assert_error(&body, "invalid_query");
    let (status, _) = status_json(
        app.admin(Method::GET, "/api/admin/organizations?limit=abc", None)
            .await,
    )
    .await;
    assert_eq!(status, 400);
}

#[tokio::test]
async fn a_key_is_shown_once_and_only_its_hash_is_stored() {
    let app = TestApp::spawn().await;
    let org = app.org("acme").await;
    assert!(org.key.starts_with("mse_"));
    let (status, keys) = status_json(
        app.admin(
            Method::GET,
            &format!("/api/admin/organizations/{}/api-keys", org.id),
            None,
        )
        .await,
    )
    .await;
    assert_eq!(status, 200);
    let text = keys.to_string();
    assert!(!text.contains(&org.key), "{text}");
    assert!(text.contains(&org.key[..12]), "prefix shown: {text}");
    let stored = app
        .query_count(&format!(
            "SELECT count(*) FROM api_keys WHERE position(convert_to('{}', 'UTF8') in key_hash) > 0 \
             OR prefix = '{}'",
            org.key, org.key
        ))
        .await;
    assert_eq!(stored, 0, "the key itself is not stored");
}

#[tokio::test]
async fn revocation_takes_effect_on_the_next_request() {
    let app = TestApp::spawn().await;
    let org = app.org("acme").await;
    // Authenticate once so the key sits in the server's auth cache.
    assert_eq!(
        app.call(Method::GET, "/api/email/providers", Some(&org.key), None)
            .await
            .status(),
        200
    );
    let res = app
        .admin(
            Method::DELETE,
            &format!(
                "/api/admin/organizations/{}/api-keys/{}",
                org.id, org.key_id
            ),
            None,
        )
        .await;
    assert_eq!(res.status(), 204);
    let (status, body) = status_json(
        app.call(Method::GET, "/api/email/providers", Some(&org.key), None)
            .await,
    )
    .await;
    assert_eq!(status, 401);
    assert_error(&body, "unauthorized");
    // Revoking again is harmless; revoking through another organization is a 404.
    let other = app.org("other").await;
    let res = app
        .admin(
            Method::DELETE,
            &format!(
                "/api/admin/organizations/{}/api-keys/{}",
                other.id, org.key_id
            ),
            None,
        )
        .await;
    assert_eq!(res.status(), 404);
}

#[tokio::test]
async fn disabling_an_organization_stops_its_keys_at_once() {
    let app = TestApp::spawn().await;
    let org = app.org("acme").await;
    let other = app.org("other").await;
    assert_eq!(
        app.call(Method::GET, "/api/sms/providers", Some(&org.key), None)
            .await
            .status(),
        200
    );
    app.admin(
        Method::POST,
        &format!("/api/admin/organizations/{}/disable", org.id),
        None,
    )
    .await;
    assert_eq!(
        app.call(Method::GET, "/api/sms/providers", Some(&org.key), None)
            .await
            .status(),
        401
    );
    assert_eq!(
        app.call(Method::GET, "/api/sms/providers", Some(&other.key), None)
            .await
            .status(),
        200
    );
}

#[tokio::test]
async fn tenant_routes_refuse_missing_malformed_and_unknown_keys() {
    let app = TestApp::spawn().await;
    for token in [None, Some("mse_unknown0000000000000000000000000000000000")] {
        let (status, body) = status_json(
            app.call(Method::GET, "/api/email/providers", token, None)
                .await,
        )
        .await;
        assert_eq!(status, 401, "{token:?}");
        assert_error(&body, "unauthorized");
    }
    let res = app
        .http
        .get(format!("{}/api/audit", app.base))
        .header("Authorization", "Basic dXNlcjpwYXNz")
        .send()
        .await
        .expect("sent");
    assert_eq!(res.status(), 401);
}

#[tokio::test]
async fn unknown_routes_and_methods_answer_json_errors() {
    let app = TestApp::spawn().await;
    let (status, body) = status_json(app.call(Method::GET, "/api/nope", None, None).await).await;
    assert_eq!(status, 404);
    assert_error(&body, "route_not_found");
    let (status, body) = status_json(
        app.call(Method::PATCH, "/api/email/providers", None, None)
            .await,
    )
    .await;
    assert_eq!(status, 405);
    assert_error(&body, "method_not_allowed");
    let (status, body) = status_json(app.call(Method::GET, "/healthz", None, None).await).await;
    assert_eq!((status, body["status"].as_str()), (200, Some("ok")));
    let (status, body) = status_json(app.call(Method::GET, "/readyz", None, None).await).await;
    assert_eq!((status, body["status"].as_str()), (200, Some("ready")));
}
