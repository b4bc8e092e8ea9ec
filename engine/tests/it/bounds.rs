//! What one tenant cannot grow without bound, and what the operator can close off: the cap on
//! an organization's provider connections, the removal of a deleted connection's metric
//! series, the scrape token on `/metrics`, and the webhook routes on a listener of their own.

use std::time::{Duration, Instant};

use reqwest::Method;
use serde_json::json;

use crate::helpers::{assert_error, mailgun, sandbox, status_json, TestApp};

async fn create(app: &TestApp, key: &str, channel: &str, name: &str) -> (u16, serde_json::Value) {
    status_json(
        app.call(
            Method::POST,
            &format!("/api/{channel}/providers"),
            Some(key),
            Some(&sandbox(name, 0, 0.0, 0.0)),
        )
        .await,
    )
    .await
}

#[tokio::test]
async fn an_organization_cannot_create_providers_past_its_cap_even_concurrently() {
    let app = TestApp::spawn_with(|s| s.engine.max_providers_per_org = 3).await;
    let acme = app.org("acme").await;
    let beta = app.org("beta").await;
    assert_eq!(create(&app, &acme.key, "email", "one").await.0, 201);
    let second = create(&app, &acme.key, "sms", "two").await;
    assert_eq!(second.0, 201);

    // Two creates race for the last place (cap - 1 live): exactly one wins.
    let (a, b) = tokio::join!(
        create(&app, &acme.key, "whatsapp", "three-a"),
        create(&app, &acme.key, "sms", "three-b")
    );
    let mut statuses = [a.0, b.0];
    statuses.sort_unstable();
    assert_eq!(statuses, [201, 409], "{a:?} {b:?}");
    let refused = if a.0 == 409 { &a.1 } else { &b.1 };
    assert_error(refused, "provider_limit_reached");
    assert_eq!(
        app.query_count(&format!(
            "SELECT count(*) FROM providers WHERE organization_id = '{}' AND deleted_at IS NULL",
            acme.id
        ))
        .await,
        3
    );
    let (status, body) = create(&app, &acme.key, "email", "four").await;
    assert_eq!(status, 409);
    assert_error(&body, "provider_limit_reached");

    // Another organization has its own cap; a deleted connection frees a place.
    assert_eq!(create(&app, &beta.key, "email", "one").await.0, 201);
    let id = second.1["id"].as_str().expect("id");
    let res = app
        .call(
            Method::DELETE,
            &format!("/api/sms/providers/{id}"),
            Some(&acme.key),
            None,
        )
        .await;
    assert_eq!(res.status(), 204);
    assert_eq!(create(&app, &acme.key, "email", "four").await.0, 201);
    app.stop().await;
}

async fn metrics_page(app: &TestApp) -> String {
    let res = app.call(Method::GET, "/metrics", None, None).await;
    assert_eq!(res.status(), 200);
    res.text().await.expect("page")
}

#[tokio::test]
async fn a_deleted_connections_series_leave_metrics() {
    let app = TestApp::spawn().await;
    let org = app.org("acme").await;
    let provider = app.provider(&org, "sms", sandbox("sbx", 0, 0.0, 0.0)).await;
    let id = provider["id"].as_str().expect("id").to_owned();
    let (status, body) = app
        .send(
            &org,
            &json!({"channel": "sms", "to": "+2348031234567", "text": "hi"}),
        )
        .await;
    assert_eq!(status, 202, "{body}");
    app.drain().await;
    let label = format!("connection=\"{id}\"");
    let page = metrics_page(&app).await;
    let series = page.lines().filter(|l| l.contains(&label)).count();
    assert_eq!(series, 6, "the connection's six gauges:\n{page}");
    assert!(page.contains(&format!(
        "msgengine_circuit_breaker_state{{provider=\"sandbox\",{label}}} 0"
    )));

    let res = app
        .call(
            Method::DELETE,
            &format!("/api/sms/providers/{id}"),
            Some(&org.key),
            None,
        )
        .await;
    assert_eq!(res.status(), 204);
    // The actor retires once its in-flight sends are done (none here): bounded wait.
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let page = metrics_page(&app).await;
        if !page.contains(&label) {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "series of the deleted connection still listed:\n{page}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    app.stop().await;
}

#[tokio::test]
async fn metrics_require_the_scrape_token_when_one_is_set() {
    const TOKEN: &str = "scrape-token-0123456789abcdef";
    let app = TestApp::spawn_with(|s| {
        s.metrics.bearer_token = Some(msgengine_domain::Secret::new(TOKEN));
    })
    .await;
    for token in [
        None,
        Some("scrape-token-wrong"),
        Some(crate::helpers::ADMIN_TOKEN),
    ] {
        let (status, body) =
            status_json(app.call(Method::GET, "/metrics", token, None).await).await;
        assert_eq!(status, 401, "{token:?}");
        assert_error(&body, "unauthorized");
    }
    let res = app.call(Method::GET, "/metrics", Some(TOKEN), None).await;
    assert_eq!(res.status(), 200);
    assert!(res
        .text()
        .await
        .expect("page")
        .contains("msgengine_build_info"));
    app.stop().await;
}

#[tokio::test]
async fn webhooks_can_have_a_listener_of_their_own() {
    let app = TestApp::spawn_with(|s| {
        s.server.webhook_listen = Some(std::net::SocketAddr::from(([127, 0, 0, 1], 0)));
    })
    .await;
    let hooks = app.webhook_base.clone().expect("a webhook port");
    assert_ne!(hooks, app.base);
    let org = app.org("acme").await;
    let provider = app.provider(&org, "email", mailgun()).await;
    let path = format!(
        "/api/webhooks/email/{}",
        provider["id"].as_str().expect("id")
    );
    let forged = json!({"signature": {"timestamp": "1", "token": "t", "signature": "00"},
                        "event-data": {"event": "delivered"}});
    let http = reqwest::Client::new();

    // The main listener no longer serves webhooks.
    let res = http
        .post(format!("{}{path}", app.base))
        .json(&forged)
        .send()
        .await
        .expect("request");
    let (status, body) = status_json(res).await;
    assert_eq!(status, 404);
    assert_error(&body, "route_not_found");

    // The webhook listener serves them (this forgery reaches the signature check) and
    // /healthz, nothing else.
    let res = http
        .post(format!("{hooks}{path}"))
        .json(&forged)
        .send()
        .await
        .expect("request");
    let (status, body) = status_json(res).await;
    assert!(matches!(status, 400 | 401), "{status} {body}");
    assert_ne!(body["error"]["code"], "route_not_found");
    let res = http
        .get(format!("{hooks}/healthz"))
        .send()
        .await
        .expect("request");
    assert_eq!(res.status(), 200);
    for route in ["/metrics", "/api/admin/organizations", "/openapi.json"] {
        let res = http
            .get(format!("{hooks}{route}"))
            .send()
            .await
            .expect("request");
        assert_eq!(res.status(), 404, "{route}");
    }
    app.stop().await;
    // Stopping the application stops both listeners.
    let deadline = Instant::now() + Duration::from_secs(10);
    while http.get(format!("{hooks}/healthz")).send().await.is_ok() {
        assert!(
            Instant::now() < deadline,
            "the webhook listener kept running"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}
