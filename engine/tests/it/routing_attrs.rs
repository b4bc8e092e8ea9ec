//! Provider routing attributes (issue 12, item 1) through the provider APIs:
//! set, shown, validated, audited, and read live by routing and by the
//! connection's own rate limiter.

use reqwest::Method;
use serde_json::{json, Value};

use crate::helpers::*;

fn with(mut body: Value, extra: Value) -> Value {
    if let (Some(b), Some(e)) = (body.as_object_mut(), extra.as_object()) {
        b.extend(e.clone());
    }
    body
}

#[tokio::test]
async fn attributes_are_set_shown_validated_and_audited() {
    let app = TestApp::spawn().await;
    let org = app.org("acme").await;
    let created = app
        .provider(
            &org,
            "sms",
            with(
                sandbox("termii-ng", 0, 0.0, 0.0),
                json!({"priority": 10, "weight": 300, "ratePerSecond": 50, "burst": 100,
                       "costs": {"currency": "NGN", "default": 900, "countries": {"NG": 250, "KE": 410}},
                       "countries": ["NG", "ke"]}),
            ),
        )
        .await;
    assert_eq!(created["priority"], 10);
    assert_eq!(created["weight"], 300);
    assert_eq!(created["ratePerSecond"], 50);
    assert_eq!(created["costs"]["countries"]["NG"], 250);
    assert_eq!(
        created["countries"],
        json!(["NG", "KE"]),
        "countries are kept upper-case"
    );
    let plain = app
        .provider(&org, "sms", sandbox("plain", 0, 0.0, 0.0))
        .await;
    assert_eq!(
        (plain["priority"].clone(), plain["weight"].clone()),
        (json!(100), json!(100))
    );

    // Bad attributes: 422 naming the field, nothing stored.
    for (extra, field) in [
        (json!({"weight": 5000}), "weight"),
        (json!({"priority": "first"}), "priority"),
        (
            json!({"costs": {"currency": "naira", "default": 1}}),
            "costs.currency",
        ),
        (json!({"countries": ["NG", "Narnia"]}), "countries[1]"),
        (json!({"burst": 10}), "ratePerSecond"),
    ] {
        let body = with(sandbox("bad", 0, 0.0, 0.0), extra.clone());
        let (status, error) = status_json(
            app.call(
                Method::POST,
                "/api/sms/providers",
                Some(&org.key),
                Some(&body),
            )
            .await,
        )
        .await;
        assert_eq!(status, 422, "{extra}: {error}");
        assert!(
            error["error"]["field"]
                .as_str()
                .is_some_and(|f| f.starts_with(field)),
            "{extra}: {error}"
        );
    }
    assert_eq!(
        app.query_count("SELECT count(*) FROM providers WHERE name = 'bad'")
            .await,
        0
    );

    // An update changes one attribute; the audit row names it.
    let path = format!("/api/sms/providers/{}", created["id"].as_str().expect("id"));
    let (status, updated) = status_json(
        app.call(
            Method::PUT,
            &path,
            Some(&org.key),
            Some(&json!({"priority": 5})),
        )
        .await,
    )
    .await;
    assert_eq!(status, 200, "{updated}");
    assert_eq!(updated["priority"], 5);
    assert_eq!(updated["costs"]["default"], 900, "the rest is kept");
    let (_, log) = status_json(
        app.call(Method::GET, "/api/audit", Some(&org.key), None)
            .await,
    )
    .await;
    let update = log["entries"]
        .as_array()
        .and_then(|e| e.iter().find(|e| e["action"] == "provider.update"))
        .expect("an update entry");
    assert_eq!(update["changedFields"], json!(["priority"]));
}

#[tokio::test]
async fn priority_decides_which_provider_sends_and_a_change_applies_live() {
    let app = TestApp::spawn().await;
    let org = app.org("acme").await;
    let older = app
        .provider(
            &org,
            "sms",
            with(sandbox("older", 0, 0.0, 0.0), json!({"priority": 200})),
        )
        .await;
    let preferred = app
        .provider(
            &org,
            "sms",
            with(sandbox("preferred", 0, 0.0, 0.0), json!({"priority": 10})),
        )
        .await;
    let send =
        |n: u32| json!({"channel": "sms", "to": format!("+23480312345{n:02}"), "text": "hi"});

    let (status, accepted) = app.send(&org, &send(1)).await;
    assert_eq!(status, 202, "{accepted}");
    let id = accepted["id"].as_str().expect("id").to_owned();
    let done = app.wait_for(&org, &id, &["delivered"]).await;
    assert_eq!(
        done["providerId"], preferred["id"],
        "lower priority goes first, not creation order"
    );

    // Move the older one ahead; the next message follows without a restart.
    let path = format!("/api/sms/providers/{}", older["id"].as_str().expect("id"));
    let res = app
        .call(
            Method::PUT,
            &path,
            Some(&org.key),
            Some(&json!({"priority": 1})),
        )
        .await;
    assert_eq!(res.status(), 200);
    let (_, accepted) = app.send(&org, &send(2)).await;
    let id = accepted["id"].as_str().expect("id").to_owned();
    let done = app.wait_for(&org, &id, &["delivered"]).await;
    assert_eq!(done["providerId"], older["id"]);
}
