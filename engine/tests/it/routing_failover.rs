//! A provider killed mid-load (issue 12): with two simulated SMS providers,
//! the first taken down while messages flow, every message is delivered
//! exactly once through the second, each rerouted message's status shows
//! the fallback it took, and once the first is back its circuit goes
//! half-open, a probe succeeds, and new messages go to it again.

use std::time::{Duration, Instant};

use msgengine_loadtest::sim::{self, config::SimConfig, SimHandle, StartOptions};
use reqwest::Method;
use serde_json::{json, Value};

use crate::helpers::{Org, TestApp};

async fn down(sim: &SimHandle, account: &str, down: bool) {
    let res = reqwest::Client::new()
        .put(format!("{}/_sim/accounts/{account}/down", sim.base_url()))
        .json(&json!({ "down": down }))
        .send()
        .await
        .expect("simulator answers");
    assert_eq!(res.status(), 200);
}

async fn point_webhooks(sim: &SimHandle, account: &str, url: &str) {
    let res = reqwest::Client::new()
        .put(format!(
            "{}/_sim/accounts/{account}/webhook",
            sim.base_url()
        ))
        .json(&json!({ "webhookUrl": url }))
        .send()
        .await
        .expect("simulator answers");
    assert_eq!(res.status(), 200);
}

/// Sends `n` SMS to numbers from `first` on, concurrently; their ids.
async fn burst(app: &TestApp, org: &Org, first: u32, n: u32) -> Vec<(String, String)> {
    let sends = (first..first + n).map(|i| {
        let to = format!("+23480355{i:05}");
        async move {
            let (status, accepted) = app
                .send(
                    org,
                    &json!({"channel": "sms", "to": to, "text": "code 4821"}),
                )
                .await;
            assert_eq!(status, 202, "{accepted}");
            (accepted["id"].as_str().expect("id").to_owned(), to)
        }
    });
    futures::future::join_all(sends).await
}

async fn delivered(app: &TestApp, org: &Org, ids: &[(String, String)]) -> Vec<Value> {
    let mut out = Vec::new();
    for (id, _) in ids {
        out.push(app.wait_for(org, id, &["delivered"]).await);
    }
    out
}

/// A simulator with a Termii and an Africa's Talking account (quick
/// webhooks, the given outcome weights), an organization with one engine
/// connection to each (`termii_priority` puts Termii first), and their
/// webhooks pointed at the engine. Answers (simulator, org, termii, at).
async fn two_sms_providers(
    app: &TestApp,
    termii_outcomes: Value,
    termii_priority: u32,
) -> (SimHandle, Org, Value, Value) {
    let entry = |mut entry: Value, outcomes: Value| {
        entry["webhookDelayMs"] = json!(5);
        entry["webhookRetryDelayMs"] = json!(50);
        entry["outcomes"] = outcomes;
        entry
    };
    let config = json!({"providers": [
        entry(json!({"type": "termii", "name": "termii", "apiKey": "TLroutingtermiikey",
                     "secretKey": "termii-routing-secret"}), termii_outcomes),
        entry(json!({"type": "africasTalking", "name": "at", "username": "acme",
                     "apiKey": "atsk-routing-key"}), json!({"delivered": 1})),
    ]});
    let sim = sim::start(
        SimConfig::from_json(&config.to_string()).expect("valid config"),
        StartOptions::loopback(),
    )
    .await
    .expect("simulator starts");
    let org = app.org("routing").await;
    let base = sim.base_url();
    let termii = app
        .provider(
            &org,
            "sms",
            json!({"providerType": "TERMII", "name": "termii", "senderId": "Acme",
                   "priority": termii_priority, "baseUrl": base,
                   "credentials": {"apiKey": "TLroutingtermiikey",
                                   "webhookSecret": "termii-routing-secret"}}),
        )
        .await;
    let token = "routing-webhook-token-0123456789";
    let at = app
        .provider(
            &org,
            "sms",
            json!({"providerType": "AFRICASTALKING", "name": "at", "priority": 20, "baseUrl": base,
                   "credentials": {"username": "acme", "apiKey": "atsk-routing-key",
                                   "webhookToken": token}}),
        )
        .await;
    let hook = |p: &Value| {
        format!(
            "{}/api/webhooks/sms/{}",
            app.base,
            p["id"].as_str().expect("id")
        )
    };
    point_webhooks(&sim, "termii", &hook(&termii)).await;
    point_webhooks(&sim, "at", &format!("{}?token={token}", hook(&at))).await;
    (sim, org, termii, at)
}

#[tokio::test]
async fn a_killed_provider_fails_over_without_loss_or_duplicates_and_comes_back() {
    let app = TestApp::spawn().await;
    let (sim, org, termii, at) = two_sms_providers(&app, json!({"delivered": 1}), 10).await;

    // Healthy: everything through Termii, the first by priority.
    let before = burst(&app, &org, 0, 20).await;
    for done in delivered(&app, &org, &before).await {
        assert_eq!(done["providerId"], termii["id"], "{done}");
    }

    // Termii goes down mid-load: every message still delivered, through AT.
    down(&sim, "termii", true).await;
    let during = burst(&app, &org, 100, 40).await;
    let statuses = delivered(&app, &org, &during).await;
    let moved: Vec<&Value> = statuses
        .iter()
        .filter(|s| {
            !s["routing"]["steps"]
                .as_array()
                .is_some_and(|v| v.is_empty())
        })
        .collect();
    for done in &statuses {
        assert_eq!(done["providerId"], at["id"], "{done}");
    }
    assert!(
        !moved.is_empty(),
        "some messages failed over after attempts on Termii"
    );
    let step = &moved[0]["routing"]["steps"][0];
    assert_eq!(step["from"], termii["id"]);
    assert_eq!(step["to"], at["id"]);
    assert!(
        step["explanation"]
            .as_str()
            .is_some_and(|e| e.starts_with("termii: ") && e.ends_with("failed over to at")),
        "{step}"
    );
    // Once the circuit is open, new plans put Termii last and say why.
    let (_, health) = crate::helpers::status_json(
        app.call(Method::GET, "/api/providers/health", Some(&org.key), None)
            .await,
    )
    .await;
    let termii_health = health["providers"]
        .as_array()
        .and_then(|p| p.iter().find(|c| c["providerId"] == termii["id"]).cloned())
        .expect("termii health");
    assert_eq!(termii_health["circuit"], "open", "{health}");
    let later = burst(&app, &org, 200, 5).await;
    for done in delivered(&app, &org, &later).await {
        assert_eq!(done["providerId"], at["id"]);
        let last = &done["routing"]["candidates"][1];
        assert_eq!(last["explanation"], "termii: circuit open", "{done}");
    }

    // Back up: after the open period the breaker is half-open, a probe
    // goes through, and traffic returns to Termii.
    down(&sim, "termii", false).await;
    let deadline = Instant::now() + Duration::from_secs(40);
    let mut n = 300;
    loop {
        let probe = burst(&app, &org, n, 1).await;
        let done = delivered(&app, &org, &probe).await;
        if done[0]["providerId"] == termii["id"] {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "Termii never came back: {}",
            done[0]
        );
        n += 1;
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    let after = burst(&app, &org, 400, 10).await;
    for done in delivered(&app, &org, &after).await {
        assert_eq!(done["providerId"], termii["id"], "{done}");
    }

    // Exactly once: every recipient was accepted by one provider, once.
    let all = before.iter().chain(&during).chain(&later).chain(&after);
    for (_, to) in all {
        let seen = serde_json::to_value(sim.stats().recipient(to)).expect("serialise");
        assert_eq!(seen["accepted"], 1, "{to}: {seen}");
    }
}

/// `best_delivery` ranks by the live ratio from receipts: after a weighted
/// split over a provider whose messages fail at the handset and one whose
/// messages arrive, the rule switched to `best_delivery` sends to the one
/// that delivers, and explains it with its ratio.
#[tokio::test]
async fn best_delivery_follows_the_receipts() {
    let app = TestApp::spawn().await;
    // Termii's messages mostly fail at the handset; Africa's Talking's arrive.
    let (_sim, org, _termii, at) =
        two_sms_providers(&app, json!({"failed": 3, "delivered": 1}), 20).await;

    let rule = |strategy: &str| {
        json!({"name": "split", "priority": 1, "strategy": strategy,
               "match": {"channel": "sms"}})
    };
    let (status, created) = crate::helpers::status_json(
        app.call(
            Method::POST,
            "/api/routing/rules",
            Some(&org.key),
            Some(&rule("weighted")),
        )
        .await,
    )
    .await;
    assert_eq!(status, 201, "{created}");
    // 120 messages split about evenly: each provider gets its 20 receipts.
    let split = burst(&app, &org, 0, 120).await;
    for (id, _) in &split {
        app.wait_for(&org, id, &["delivered", "failed"]).await;
    }
    let path = format!("/api/routing/rules/{}", created["id"].as_str().expect("id"));
    let res = app
        .call(
            Method::PUT,
            &path,
            Some(&org.key),
            Some(&rule("best_delivery")),
        )
        .await;
    assert_eq!(res.status(), 200);
    let next = burst(&app, &org, 500, 5).await;
    for done in delivered(&app, &org, &next).await {
        assert_eq!(done["providerId"], at["id"], "{done}");
        let first = &done["routing"]["candidates"][0];
        assert_eq!(first["reason"]["kind"], "delivery", "{done}");
        assert!(
            first["explanation"]
                .as_str()
                .is_some_and(|e| e.starts_with("at: delivers 100.0% over ")),
            "{first}"
        );
        let second = &done["routing"]["candidates"][1];
        assert!(
            second["reason"]["ratio"].as_f64().is_some_and(|r| r < 0.5),
            "termii's ratio is its receipts': {second}"
        );
    }
}
