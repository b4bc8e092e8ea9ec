//! `GET /api/providers/health`: each connection's live state, per
//! organization.

use reqwest::Method;
use serde_json::{json, Value};

use crate::helpers::*;

async fn health(app: &TestApp, org: &Org) -> Value {
    let (status, body) = status_json(
        app.call(Method::GET, "/api/providers/health", Some(&org.key), None)
            .await,
    )
    .await;
    assert_eq!(status, 200, "{body}");
    body
}

#[tokio::test]
async fn health_shows_each_connection_as_its_actor_sees_it_and_only_to_its_organization() {
    let app = TestApp::spawn().await;
    let org = app.org("acme").await;
    let other = app.org("other").await;
    let mut good = sandbox("good", 0, 0.0, 0.0);
    good["ratePerSecond"] = json!(500);
    good["burst"] = json!(800);
    let good = app.provider(&org, "sms", good).await;
    let bad = app
        .provider(&org, "email", sandbox("bad", 0, 0.0, 1.0))
        .await;

    for n in 0..3 {
        let sms = json!({"channel": "sms", "to": format!("+2348031234{n:03}"), "text": "hi"});
        let (status, accepted) = app.send(&org, &sms).await;
        assert_eq!(status, 202, "{accepted}");
        let id = accepted["id"].as_str().expect("id").to_owned();
        app.wait_for(&org, &id, &["delivered"]).await;
        let email = json!({"channel": "email", "to": format!("u{n}@example.com"), "subject": "s", "text": "t"});
        let (status, accepted) = app.send(&org, &email).await;
        assert_eq!(status, 202, "{accepted}");
        let id = accepted["id"].as_str().expect("id").to_owned();
        app.wait_for(&org, &id, &["failed"]).await;
    }

    let body = health(&app, &org).await;
    let all = body["providers"].as_array().expect("providers");
    assert_eq!(all.len(), 2, "{body}");
    // Sorted by channel: email first.
    assert_eq!(all[0]["providerId"], bad["id"]);
    assert_eq!(all[0]["name"], "bad");
    assert_eq!(all[0]["providerType"], "SANDBOX");
    assert_eq!(all[0]["samples"], 3);
    assert!(
        all[0]["lastError"].as_str().is_some_and(|e| !e.is_empty()),
        "{body}"
    );
    assert_eq!(all[1]["providerId"], good["id"]);
    assert_eq!(all[1]["channel"], "sms");
    assert_eq!(all[1]["circuit"], "closed");
    assert_eq!(all[1]["successRate"], 1.0);
    assert_eq!(all[1]["samples"], 3);
    assert_eq!(all[1]["rateLimit"], json!({"perSecond": 500, "burst": 800}));
    assert_eq!(
        (all[1]["waiting"].clone(), all[1]["inFlight"].clone()),
        (json!(0), json!(0))
    );
    assert_no_secret(&body.to_string());

    // Another organization sees none of them.
    assert_eq!(health(&app, &other).await, json!({"providers": []}));
    // No key: 401.
    let res = app
        .call(Method::GET, "/api/providers/health", None, None)
        .await;
    assert_eq!(res.status(), 401);
}
