//! Routing rules (issue 12, items 2, 3 and 6) over HTTP: stored, validated,
//! audited and isolated per organization; applied on the next message; and
//! every message's status explains its routing.

use reqwest::Method;
use serde_json::{json, Value};

use crate::helpers::*;

const NG: &str = "+2348031234567";
const KE: &str = "+254712345678";

fn with(mut body: Value, extra: Value) -> Value {
    if let (Some(b), Some(e)) = (body.as_object_mut(), extra.as_object()) {
        b.extend(e.clone());
    }
    body
}

fn id_of(v: &Value) -> String {
    v["id"].as_str().expect("id").to_owned()
}

impl TestApp {
    async fn rule(
        &self,
        org: &Org,
        method: Method,
        path: &str,
        body: Option<&Value>,
    ) -> (u16, Value) {
        status_json(self.call(method, path, Some(&org.key), body).await).await
    }

    /// Sends one SMS and waits for it to be delivered; its status.
    async fn delivered_sms(&self, org: &Org, to: &str) -> Value {
        let (status, accepted) = self
            .send(org, &json!({"channel": "sms", "to": to, "text": "hi"}))
            .await;
        assert_eq!(status, 202, "{accepted}");
        self.wait_for(org, &id_of(&accepted), &["delivered"]).await
    }
}

/// Two SMS connections priced per country: Termii cheaper in Nigeria,
/// Africa's Talking cheaper in Kenya.
async fn priced_pair(app: &TestApp, org: &Org) -> (Value, Value) {
    let termii = app
        .provider(
            org,
            "sms",
            with(
                sandbox("termii", 0, 0.0, 0.0),
                json!({"priority": 10, "costs": {"currency": "NGN", "countries": {"NG": 250, "KE": 900}}}),
            ),
        )
        .await;
    let at = app
        .provider(
            org,
            "sms",
            with(
                sandbox("africastalking", 0, 0.0, 0.0),
                json!({"priority": 20, "costs": {"currency": "NGN", "countries": {"NG": 400, "KE": 300}}}),
            ),
        )
        .await;
    (termii, at)
}

#[tokio::test]
async fn cheapest_sends_each_country_to_its_cheapest_provider_and_explains_why() {
    let app = TestApp::spawn().await;
    let org = app.org("acme").await;
    let (termii, at) = priced_pair(&app, &org).await;

    // No rule yet: the default, by priority, for both countries.
    let done = app.delivered_sms(&org, KE).await;
    assert_eq!(done["providerId"], termii["id"]);
    assert_eq!(done["routing"]["rule"], "default");
    assert_eq!(
        done["routing"]["candidates"][0]["explanation"],
        "termii: priority 10"
    );

    let rule = json!({"name": "cheapest SMS", "priority": 10, "strategy": "cheapest",
                      "match": {"channel": "sms", "countries": ["NG", "KE"]}});
    let (status, created) = app
        .rule(&org, Method::POST, "/api/routing/rules", Some(&rule))
        .await;
    assert_eq!(status, 201, "{created}");
    assert_eq!(created["warnings"], json!([]), "{created}");
    assert_eq!(created["enabled"], true, "defaults filled in");

    let ng = app.delivered_sms(&org, NG).await;
    let ke = app.delivered_sms(&org, KE).await;
    assert_eq!(ng["providerId"], termii["id"], "{ng}");
    assert_eq!(ke["providerId"], at["id"], "{ke}");
    let routing = &ng["routing"];
    assert_eq!(routing["rule"], "cheapest SMS");
    assert_eq!(routing["ruleId"], created["id"]);
    assert_eq!(routing["strategy"], "cheapest");
    assert_eq!(routing["category"], "transactional");
    let said: Vec<&str> = routing["candidates"]
        .as_array()
        .expect("candidates")
        .iter()
        .filter_map(|c| c["explanation"].as_str())
        .collect();
    assert_eq!(
        said,
        [
            "termii: cheapest for NG at 250 NGN",
            "africastalking: 400 NGN for NG"
        ]
    );
    assert_eq!(
        ke["routing"]["candidates"][0]["explanation"],
        "africastalking: cheapest for KE at 300 NGN"
    );
    assert_eq!(ke["routing"]["candidates"][0]["reason"]["kind"], "cheapest");
    assert_eq!(ke["routing"]["steps"], json!([]));

    // Disabling the rule takes effect on the next message: the default again.
    let path = format!("/api/routing/rules/{}", id_of(&created));
    let (status, replaced) = app
        .rule(
            &org,
            Method::PUT,
            &path,
            Some(&with(rule.clone(), json!({"enabled": false}))),
        )
        .await;
    assert_eq!(status, 200, "{replaced}");
    assert_eq!(replaced["enabled"], false);
    let ke = app.delivered_sms(&org, KE).await;
    assert_eq!(ke["providerId"], termii["id"]);
    assert_eq!(ke["routing"]["rule"], "default");
}

#[tokio::test]
async fn rules_are_stored_listed_replaced_deleted_and_audited() {
    let app = TestApp::spawn().await;
    let org = app.org("acme").await;
    let (termii, at) = priced_pair(&app, &org).await;
    let second = json!({"name": "KE weighted", "priority": 20, "strategy": "weighted",
                        "providers": [termii["id"], at["id"]],
                        "match": {"channel": "sms", "countries": ["KE"], "tags": {"product": "otp"}}});
    let first = json!({"name": "NG priority", "priority": 5, "strategy": "priority",
                       "providers": [at["id"]], "match": {"channel": "sms", "prefixes": ["+234"]},
                       "fallback": {"receiptTimeoutSeconds": 120}});
    let (s1, b) = app
        .rule(&org, Method::POST, "/api/routing/rules", Some(&second))
        .await;
    let (s2, a) = app
        .rule(&org, Method::POST, "/api/routing/rules", Some(&first))
        .await;
    assert_eq!((s1, s2), (201, 201), "{b} {a}");

    let (status, list) = app
        .rule(&org, Method::GET, "/api/routing/rules", None)
        .await;
    assert_eq!(status, 200);
    let names: Vec<&str> = list["rules"]
        .as_array()
        .expect("rules")
        .iter()
        .filter_map(|r| r["name"].as_str())
        .collect();
    assert_eq!(names, ["NG priority", "KE weighted"], "evaluation order");

    let path = format!("/api/routing/rules/{}", id_of(&a));
    let (status, got) = app.rule(&org, Method::GET, &path, None).await;
    assert_eq!(status, 200);
    assert_eq!(got["fallback"]["receiptTimeoutSeconds"], 120);
    assert_eq!(got["providers"], json!([at["id"]]));

    let renamed = with(first.clone(), json!({"name": "NG first", "priority": 1}));
    let (status, _) = app.rule(&org, Method::PUT, &path, Some(&renamed)).await;
    assert_eq!(status, 200);
    let res = app.call(Method::DELETE, &path, Some(&org.key), None).await;
    assert_eq!(res.status(), 204);
    let (status, gone) = app.rule(&org, Method::GET, &path, None).await;
    assert_eq!(status, 404);
    assert_error(&gone, "not_found");
    let (status, _) = app.rule(&org, Method::DELETE, &path, None).await;
    assert_eq!(status, 404);

    let (_, log) = app.rule(&org, Method::GET, "/api/audit", None).await;
    let entries = log["entries"].as_array().expect("entries");
    let of = |action: &str| {
        entries
            .iter()
            .filter(|e| e["action"] == action && e["targetId"] == a["id"])
            .count()
    };
    assert_eq!(
        (
            of("routing_rule.create"),
            of("routing_rule.update"),
            of("routing_rule.delete")
        ),
        (1, 1, 1)
    );
    let update = entries
        .iter()
        .find(|e| e["action"] == "routing_rule.update")
        .expect("update entry");
    assert_eq!(update["changedFields"], json!(["name", "priority"]));
}

#[tokio::test]
async fn bad_rules_are_refused_naming_the_field_and_nothing_is_stored() {
    let app = TestApp::spawn().await;
    let org = app.org("acme").await;
    let other = app.org("other").await;
    let sms = app.provider(&org, "sms", sandbox("sms", 0, 0.0, 0.0)).await;
    let wa = app
        .provider(&org, "whatsapp", sandbox("wa", 0, 0.0, 0.0))
        .await;
    let foreign = app
        .provider(&other, "sms", sandbox("theirs", 0, 0.0, 0.0))
        .await;
    let zero = app
        .provider(
            &org,
            "sms",
            with(sandbox("zero", 0, 0.0, 0.0), json!({"weight": 0})),
        )
        .await;
    let base = json!({"name": "r", "priority": 1, "strategy": "priority",
                      "match": {"channel": "sms"}});
    let cases = [
        (
            json!({"providers": [foreign["id"]]}),
            "providers[0]",
            "unknown_provider",
        ),
        (
            json!({"providers": [sms["id"], wa["id"]]}),
            "providers[1]",
            "wrong_channel",
        ),
        (
            json!({"match": {"channel": "sms", "countries": ["XX"]}}),
            "match.countries[0]",
            "invalid_type",
        ),
        (
            json!({"match": {"channel": "sms", "prefixes": ["234"]}}),
            "match.prefixes[0]",
            "invalid_prefix",
        ),
        (
            json!({"match": {"channel": "sms", "timeWindow": {"from": "08:00", "to": "20:00", "timeZone": "Mars/Olympus"}}}),
            "match.timeWindow.timeZone",
            "invalid_type",
        ),
        (
            json!({"match": {"channel": "sms", "timeWindow": {"from": "20:00", "to": "08:00", "timeZone": "Africa/Lagos"}}}),
            "match.timeWindow.to",
            "invalid_window",
        ),
        (
            json!({"strategy": "weighted", "providers": [zero["id"]]}),
            "providers",
            "zero_weights",
        ),
        (
            json!({"fallback": {"toChannel": {"channel": "sms", "afterSeconds": 60}}}),
            "fallback.toChannel.channel",
            "same_channel",
        ),
        (json!({"strategy": "fastest"}), "strategy", "unknown_value"),
        (json!({"colour": "red"}), "colour", "unknown_field"),
        (json!({"name": ""}), "name", "empty"),
    ];
    for (patch, field, code) in cases {
        let body = with(base.clone(), patch.clone());
        let (status, error) = app
            .rule(&org, Method::POST, "/api/routing/rules", Some(&body))
            .await;
        assert_eq!(status, 422, "{patch}: {error}");
        assert_eq!(error["error"]["field"], field, "{patch}: {error}");
        assert_eq!(error["error"]["code"], code, "{patch}: {error}");
    }
    // WhatsApp → SMS is fine; SMS → WhatsApp on top of it would loop.
    let wa_to_sms = json!({"name": "wa", "priority": 1, "strategy": "priority",
                           "match": {"channel": "whatsapp"},
                           "fallback": {"toChannel": {"channel": "sms", "afterSeconds": 300}}});
    let (status, _) = app
        .rule(&org, Method::POST, "/api/routing/rules", Some(&wa_to_sms))
        .await;
    assert_eq!(status, 201);
    let sms_to_wa = with(
        base.clone(),
        json!({"fallback": {"toChannel": {"channel": "whatsapp", "afterSeconds": 300}}}),
    );
    let (status, error) = app
        .rule(&org, Method::POST, "/api/routing/rules", Some(&sms_to_wa))
        .await;
    assert_eq!(status, 422, "{error}");
    assert_eq!(error["error"]["code"], "fallback_cycle");
    assert_eq!(
        app.query_count("SELECT count(*) FROM routing_rules").await,
        1,
        "only the valid rule is stored"
    );

    // Another organization neither sees nor changes the rule.
    let (_, list) = app
        .rule(&org, Method::GET, "/api/routing/rules", None)
        .await;
    let path = format!("/api/routing/rules/{}", id_of(&list["rules"][0]));
    for method in [Method::GET, Method::DELETE] {
        let (status, error) = app.rule(&other, method, &path, None).await;
        assert_eq!(status, 404);
        assert_error(&error, "not_found");
    }
    let (status, _) = app.rule(&other, Method::PUT, &path, Some(&base)).await;
    assert_eq!(status, 404);
    let (status, _) = app
        .rule(&org, Method::GET, "/api/routing/rules/not-a-uuid", None)
        .await;
    assert_eq!(status, 404);
}

#[tokio::test]
async fn a_rule_leaving_a_country_without_a_provider_is_stored_with_a_warning() {
    let app = TestApp::spawn().await;
    let org = app.org("acme").await;
    let ng_only = app
        .provider(
            &org,
            "sms",
            with(
                sandbox("ng-only", 0, 0.0, 0.0),
                json!({"countries": ["NG"]}),
            ),
        )
        .await;
    let rule = json!({"name": "NG and KE", "priority": 1, "strategy": "cheapest",
                      "match": {"channel": "sms", "countries": ["NG", "KE"]}});
    let (status, created) = app
        .rule(&org, Method::POST, "/api/routing/rules", Some(&rule))
        .await;
    assert_eq!(status, 201, "{created}");
    let warnings: Vec<(&str, &str)> = created["warnings"]
        .as_array()
        .expect("warnings")
        .iter()
        .map(|w| {
            (
                w["code"].as_str().unwrap_or(""),
                w["field"].as_str().unwrap_or(""),
            )
        })
        .collect();
    assert_eq!(
        warnings,
        [
            ("no_price_for_country", "match.countries[0]"),
            ("no_provider_for_country", "match.countries[1]")
        ]
    );

    // A Kenyan number has no provider: refused at once, saying why.
    let (status, error) = app
        .send(&org, &json!({"channel": "sms", "to": KE, "text": "hi"}))
        .await;
    assert_eq!(status, 422, "{error}");
    assert_eq!(error["error"]["code"], "no_route");
    assert_eq!(error["error"]["field"], "to");
    let message = error["error"]["message"].as_str().unwrap_or("");
    assert!(message.contains("ng-only: not allowed for KE"), "{message}");
    let (status, error) = app
        .send(
            &org,
            &json!({"messages": [{"channel": "sms", "to": NG, "text": "a"},
                                 {"channel": "sms", "to": KE, "text": "b"}]}),
        )
        .await;
    assert_eq!(status, 422);
    assert_eq!(error["error"]["field"], "messages[1].to");
    assert_eq!(
        app.query_count("SELECT count(*) FROM messages").await,
        0,
        "nothing of a refused request is stored"
    );
    let done = app.delivered_sms(&org, NG).await;
    assert_eq!(done["providerId"], ng_only["id"]);
}

#[tokio::test]
async fn category_and_tags_from_the_send_body_pick_the_rule() {
    let app = TestApp::spawn().await;
    let org = app.org("acme").await;
    let (termii, at) = priced_pair(&app, &org).await;
    let otp = json!({"name": "otp via AT", "priority": 1, "strategy": "priority",
                     "providers": [at["id"]],
                     "match": {"channel": "sms", "category": "transactional", "tags": {"product": "otp"}}});
    let (status, _) = app
        .rule(&org, Method::POST, "/api/routing/rules", Some(&otp))
        .await;
    assert_eq!(status, 201);
    let send = |body: Value| {
        let app = &app;
        let org = &org;
        async move {
            let (status, accepted) = app.send(org, &body).await;
            assert_eq!(status, 202, "{accepted}");
            app.wait_for(org, &id_of(&accepted), &["delivered"]).await
        }
    };
    let tagged =
        send(json!({"channel": "sms", "to": NG, "text": "1234", "tags": {"product": "otp"}})).await;
    assert_eq!(tagged["providerId"], at["id"]);
    assert_eq!(tagged["routing"]["tags"], json!({"product": "otp"}));
    let marketing = send(
        json!({"channel": "sms", "to": NG, "text": "sale", "category": "marketing",
                                "tags": {"product": "otp"}}),
    )
    .await;
    assert_eq!(marketing["providerId"], termii["id"]);
    assert_eq!(marketing["routing"]["category"], "marketing");
    let untagged = send(json!({"channel": "sms", "to": NG, "text": "hi"})).await;
    assert_eq!(untagged["providerId"], termii["id"]);

    // Bad routing input is a 422 naming the field.
    for (body, field) in [
        (
            json!({"channel": "sms", "to": NG, "text": "x", "category": "promo"}),
            "category",
        ),
        (
            json!({"channel": "sms", "to": NG, "text": "x", "tags": {"": "x"}}),
            "tags.",
        ),
        (
            json!({"channel": "sms", "to": NG, "text": "x", "tags": ["a"]}),
            "tags",
        ),
    ] {
        let (status, error) = app.send(&org, &body).await;
        assert_eq!(status, 422, "{body}: {error}");
        assert_eq!(error["error"]["field"], field, "{body}: {error}");
    }
}

#[tokio::test]
async fn simulate_returns_the_plan_a_message_would_get_without_sending() {
    let app = TestApp::spawn().await;
    let org = app.org("acme").await;
    let (termii, at) = priced_pair(&app, &org).await;
    let rule = json!({"name": "weekday cheapest", "priority": 1, "strategy": "cheapest",
                      "match": {"channel": "sms", "timeWindow": {"days": ["mon","tue","wed","thu","fri"],
                                "from": "08:00", "to": "20:00", "timeZone": "Africa/Lagos"}}});
    let (status, created) = app
        .rule(&org, Method::POST, "/api/routing/rules", Some(&rule))
        .await;
    assert_eq!(status, 201, "{created}");
    let simulate = |body: Value| {
        let app = &app;
        let org = &org;
        async move {
            app.rule(org, Method::POST, "/api/routing/simulate", Some(&body))
                .await
        }
    };
    // Monday 10:00 in Lagos: the rule; Kenya is cheapest on Africa's Talking.
    let (status, plan) =
        simulate(json!({"channel": "sms", "to": KE, "at": "2026-12-07T10:00:00+01:00"})).await;
    assert_eq!(status, 200, "{plan}");
    assert_eq!(plan["rule"], "weekday cheapest");
    assert_eq!(plan["ruleId"], created["id"]);
    assert_eq!(plan["candidates"][0]["providerId"], at["id"]);
    assert_eq!(
        plan["candidates"][0]["explanation"],
        "africastalking: cheapest for KE at 300 NGN"
    );
    // Sunday: outside the window, the default by priority.
    let (_, plan) =
        simulate(json!({"channel": "sms", "to": KE, "at": "2026-12-06T10:00:00+01:00"})).await;
    assert_eq!(plan["rule"], "default");
    assert_eq!(plan["candidates"][0]["providerId"], termii["id"]);
    let (status, error) = simulate(json!({"channel": "sms", "to": "0803"})).await;
    assert_eq!(status, 422);
    assert_eq!(error["error"]["field"], "to");
    assert_eq!(
        app.query_count("SELECT count(*) FROM messages").await,
        0,
        "nothing is stored or sent"
    );
}

/// A `weighted` rule over two connections (300 and 100) splits 10,000
/// messages within 2 points of 75 % / 25 %, and each message went where
/// its stored plan put it first.
#[tokio::test]
async fn a_weighted_rule_splits_ten_thousand_messages_by_weight() {
    let app = TestApp::spawn().await;
    let org = app.org("acme").await;
    let heavy = app
        .provider(
            &org,
            "sms",
            with(sandbox("heavy", 0, 0.0, 0.0), json!({"weight": 300})),
        )
        .await;
    let light = app
        .provider(
            &org,
            "sms",
            with(sandbox("light", 0, 0.0, 0.0), json!({"weight": 100})),
        )
        .await;
    let rule = json!({"name": "split", "priority": 1, "strategy": "weighted",
                      "providers": [heavy["id"], light["id"]], "match": {"channel": "sms"}});
    let (status, _) = app
        .rule(&org, Method::POST, "/api/routing/rules", Some(&rule))
        .await;
    assert_eq!(status, 201);
    const N: u32 = 10_000;
    for batch in 0..N / 1_000 {
        let messages: Vec<Value> = (0..1_000)
            .map(|i| json!({"channel": "sms", "to": format!("+2348036{:06}", batch * 1_000 + i), "text": "hi"}))
            .collect();
        let (status, body) = app.send(&org, &json!({ "messages": messages })).await;
        assert_eq!(status, 202, "{body}");
    }
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(120);
    while app
        .query_count("SELECT count(*) FROM messages WHERE state NOT IN ('delivered', 'failed')")
        .await
        > 0
    {
        assert!(
            std::time::Instant::now() < deadline,
            "messages still in flight"
        );
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    }
    let count = |id: &Value| {
        let sql = format!(
            "SELECT count(*) FROM messages WHERE state = 'delivered' AND provider_id = '{}'",
            id.as_str().expect("id")
        );
        let app = &app;
        async move { app.query_count(&sql).await }
    };
    let (h, l) = (count(&heavy["id"]).await, count(&light["id"]).await);
    assert_eq!(h + l, i64::from(N), "every message delivered");
    let share = h as f64 / f64::from(N);
    assert!((share - 0.75).abs() < 0.02, "heavy took {share}");
    assert_eq!(
        app.query_count(
            "SELECT count(*) FROM messages
              WHERE replace(provider_id::text, '-', '') = routing->'plan'->'c'->0->>0"
        )
        .await,
        i64::from(N),
        "each message went to the first provider of its stored plan"
    );
}

/// Quiet hours: a marketing SMS due inside them (in Lagos time, for a
/// Nigerian number) is stored `scheduled` until they end, with the reason
/// in its history, then sent; a transactional one goes at once.
#[tokio::test]
async fn quiet_hours_defer_marketing_until_they_end_then_send() {
    use chrono::{Duration, Timelike, Utc};
    let app = TestApp::spawn().await;
    let org = app.org("acme").await;
    app.provider(&org, "sms", sandbox("sms", 0, 0.0, 0.0)).await;
    // A window that started ten minutes ago and ends at the next minute, in
    // Lagos (UTC+1). Not in a minute's last seconds: the send must fall inside.
    if Utc::now().second() >= 55 {
        tokio::time::sleep(std::time::Duration::from_secs(6)).await;
    }
    let lagos = Utc::now() + Duration::hours(1);
    let hhmm = |t: chrono::DateTime<Utc>| format!("{:02}:{:02}", t.hour(), t.minute());
    let (from, to) = (
        hhmm(lagos - Duration::minutes(10)),
        hhmm(lagos + Duration::minutes(1)),
    );
    let (status, set) = app
        .rule(
            &org,
            Method::PUT,
            "/api/routing/quiet-hours",
            Some(&json!({"from": from, "to": to, "timeZone": "America/New_York"})),
        )
        .await;
    assert_eq!(status, 200, "{set}");
    assert_eq!(set["appliesTo"], json!(["marketing"]));
    let (status, got) = app
        .rule(&org, Method::GET, "/api/routing/quiet-hours", None)
        .await;
    assert_eq!((status, &got["from"]), (200, &json!(from)));

    let (_, otp) = app
        .send(&org, &json!({"channel": "sms", "to": NG, "text": "1234"}))
        .await;
    let (status, sale) = app
        .send(
            &org,
            &json!({"channel": "sms", "to": NG, "text": "sale", "category": "marketing"}),
        )
        .await;
    assert_eq!(status, 202, "{sale}");
    assert_eq!(sale["status"], "scheduled");
    app.wait_for(&org, &id_of(&otp), &["delivered"]).await;
    let (_, waiting) = app.status(&org, &id_of(&sale)).await;
    assert_eq!(waiting["status"], "scheduled");
    let reason = waiting["events"][1]["reason"].as_str().unwrap_or("");
    assert!(
        reason.starts_with(&format!(
            "quiet hours {from}–{to} in Africa/Lagos: deferred to "
        )),
        "{waiting}"
    );
    let send_at = waiting["sendAt"].as_str().expect("sendAt");
    let send_at = chrono::DateTime::parse_from_rfc3339(send_at).expect("time");
    assert_eq!(
        (send_at.with_timezone(&Utc) + Duration::hours(1))
            .format("%H:%M")
            .to_string(),
        to,
        "deferred to the end of the window, Lagos time"
    );
    // Then it is sent (the scheduler claims it once due: within about a minute).
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(100);
    let done = loop {
        let (_, status) = app.status(&org, &id_of(&sale)).await;
        if status["status"] == "delivered" {
            break status;
        }
        assert!(std::time::Instant::now() < deadline, "never sent: {status}");
        tokio::time::sleep(std::time::Duration::from_millis(250)).await;
    };
    assert_eq!(done["routing"]["category"], "marketing");

    // Bad quiet hours are refused naming the field; removing them works once.
    let (status, error) = app
        .rule(
            &org,
            Method::PUT,
            "/api/routing/quiet-hours",
            Some(&json!({"from": "08:00", "to": "08:00"})),
        )
        .await;
    assert_eq!(status, 422);
    assert_eq!(error["error"]["field"], "to");
    let res = app
        .call(
            Method::DELETE,
            "/api/routing/quiet-hours",
            Some(&org.key),
            None,
        )
        .await;
    assert_eq!(res.status(), 204);
    let (status, _) = app
        .rule(&org, Method::GET, "/api/routing/quiet-hours", None)
        .await;
    assert_eq!(status, 404);
}
