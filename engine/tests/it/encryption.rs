//! Credentials at rest: only ciphertext in the database, bound to its row and
//! organization, readable across key rotation.

use msgengine_storage::crypto::KeyRing;
use msgengine_storage::repo::org_webhooks;
use msgengine_storage::repo::providers::rotate_secrets;
use reqwest::Method;
use serde_json::json;

use crate::helpers::{gupshup, mailgun, smtp, status_json, termii, TestApp, SECRETS};

/// Every secret fixture, searched in every column's text and in the raw bytes of `secrets`.
async fn plaintext_hits(app: &TestApp) -> i64 {
    let mut hits = 0;
    for secret in SECRETS {
        hits += app
            .query_count(&format!(
                "SELECT count(*) FROM providers p WHERE row_to_json(p)::text LIKE '%{secret}%' \
                 OR position(convert_to('{secret}', 'UTF8') in coalesce(secrets, ''::bytea)) > 0"
            ))
            .await;
        hits += app
            .query_count(&format!(
                "SELECT count(*) FROM audit_log a WHERE row_to_json(a)::text LIKE '%{secret}%'"
            ))
            .await;
    }
    hits
}

#[tokio::test]
async fn the_database_holds_only_ciphertext_for_every_secret() {
    let app = TestApp::spawn().await;
    let org = app.org("acme").await;
    app.provider(&org, "email", mailgun()).await;
    app.provider(&org, "email", smtp()).await;
    app.provider(&org, "whatsapp", gupshup()).await;
    app.provider(&org, "sms", termii()).await;
    assert_eq!(
        app.query_count("SELECT count(*) FROM providers WHERE secrets IS NOT NULL")
            .await,
        4
    );
    assert_eq!(plaintext_hits(&app).await, 0);
}

#[tokio::test]
async fn a_ciphertext_moved_to_another_row_or_organization_does_not_open() {
    let app = TestApp::spawn().await;
    let a = app.org("a").await;
    let b = app.org("b").await;
    let a_mg = app.provider(&a, "email", mailgun()).await;
    let mut second = mailgun();
    second["name"] = "second".into();
    let a_second = app.provider(&a, "email", second).await;
    let b_mg = app.provider(&b, "email", mailgun()).await;
    let (a_id, a2_id, b_id) = (
        a_mg["id"].as_str().expect("id"),
        a_second["id"].as_str().expect("id"),
        b_mg["id"].as_str().expect("id"),
    );
    // Copy A's sealed secrets into B's row (another tenant) and into A's other row.
    for target in [b_id, a2_id] {
        app.query_count(&format!(
            "WITH u AS (UPDATE providers SET secrets = (SELECT secrets FROM providers WHERE id = '{a_id}') \
             WHERE id = '{target}' RETURNING 1) SELECT count(*) FROM u"
        ))
        .await;
    }
    let (status, body) = status_json(
        app.call(
            Method::GET,
            &format!("/api/email/providers/{b_id}"),
            Some(&b.key),
            None,
        )
        .await,
    )
    .await;
    assert_eq!(status, 500);
    assert_eq!(body["error"]["code"], "credentials_unreadable");
    assert!(!body.to_string().contains(crate::helpers::MAILGUN_KEY));
    let res = app
        .call(
            Method::GET,
            &format!("/api/email/providers/{a2_id}"),
            Some(&a.key),
            None,
        )
        .await;
    assert_eq!(res.status(), 500);
    // The original still opens.
    let res = app
        .call(
            Method::GET,
            &format!("/api/email/providers/{a_id}"),
            Some(&a.key),
            None,
        )
        .await;
    assert_eq!(res.status(), 200);
}

#[tokio::test]
async fn a_tampered_ciphertext_does_not_open() {
    let app = TestApp::spawn().await;
    let org = app.org("acme").await;
    let tm = app.provider(&org, "sms", termii()).await;
    let id = tm["id"].as_str().expect("id");
    app.query_count(&format!(
        "WITH u AS (UPDATE providers SET secrets = set_byte(secrets, length(secrets) - 1, \
         get_byte(secrets, length(secrets) - 1) # 1) WHERE id = '{id}' RETURNING 1) SELECT count(*) FROM u"
    ))
    .await;
    let (status, body) = status_json(
        app.call(
            Method::GET,
            &format!("/api/sms/providers/{id}"),
            Some(&org.key),
            None,
        )
        .await,
    )
    .await;
    assert_eq!(status, 500);
    assert_eq!(body["error"]["code"], "credentials_unreadable");
}

async fn sealed_key_ids(app: &TestApp) -> Vec<String> {
    let client = app.db.pool.get().await.expect("connection");
    let rows = client
        .query(
            "SELECT secrets FROM providers WHERE secrets IS NOT NULL ORDER BY id",
            &[],
        )
        .await
        .expect("query");
    rows.iter()
        .map(|r| {
            let sealed: Vec<u8> = r.get(0);
            let len = usize::from(sealed[1]);
            String::from_utf8_lossy(&sealed[2..2 + len]).into_owned()
        })
        .collect()
}

#[tokio::test]
async fn rotation_re_encrypts_under_the_newest_key_and_survives_interruption() {
    let app = TestApp::spawn().await;
    let org = app.org("acme").await;
    let mg = app.provider(&org, "email", mailgun()).await;
    app.provider(&org, "email", smtp()).await;
    app.provider(&org, "whatsapp", gupshup()).await;
    app.provider(&org, "sms", termii()).await;
    let res = app
        .call(
            Method::PUT,
            "/api/webhook-endpoint",
            Some(&org.key),
            Some(&json!({"url": "http://127.0.0.1:9/hooks"})),
        )
        .await;
    assert!(res.status().is_success(), "{}", res.status());
    app.stop().await;
    assert_eq!(sealed_key_ids(&app).await, ["test1"; 4]);

    let old_entry = app.key_ring.clone();
    let new_entry = KeyRing::generate_entry("test2");
    let both = KeyRing::parse(&format!("{old_entry}\n{new_entry}")).expect("ring");
    let client = app.db.pool.get().await.expect("connection");
    let saved: Vec<u8> = client
        .query_one(
            "SELECT secrets FROM providers WHERE id = $1::text::uuid",
            &[&mg["id"].as_str()],
        )
        .await
        .expect("row")
        .get(0);
    let first = rotate_secrets(&client, &both, 2).await.expect("rotates");
    assert_eq!(
        (first.rotated, first.current, first.failed.len()),
        (4, 0, 0)
    );
    assert_eq!(sealed_key_ids(&app).await, ["test2"; 4]);
    // The organizations' webhook signing secrets rotate too.
    let endpoints = org_webhooks::rotate_secrets(&client, &both, 2)
        .await
        .expect("rotates");
    assert_eq!(
        (endpoints.rotated, endpoints.current, endpoints.failed.len()),
        (1, 0, 0)
    );
    let again = org_webhooks::rotate_secrets(&client, &both, 2)
        .await
        .expect("rotates");
    assert_eq!((again.rotated, again.current), (0, 1));

    // An interrupted run leaves some rows under the old key: a re-run finishes them.
    client
        .execute(
            "UPDATE providers SET secrets = $2 WHERE id = $1::text::uuid",
            &[&mg["id"].as_str(), &saved],
        )
        .await
        .expect("restore old ciphertext");
    let second = rotate_secrets(&client, &both, 2).await.expect("rotates");
    assert_eq!((second.rotated, second.current), (1, 3));
    drop(client);

    // A server holding only the new key reads every secret.
    let TestApp { db, .. } = app;
    let app = TestApp::spawn_on(db, new_entry).await;
    let id = mg["id"].as_str().expect("id");
    let (status, body) = status_json(
        app.call(
            Method::GET,
            &format!("/api/email/providers/{id}"),
            Some(&org.key),
            None,
        )
        .await,
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["apiKey"]["last4"], "0123");
    for channel in ["email", "sms", "whatsapp"] {
        let res = app
            .call(
                Method::GET,
                &format!("/api/{channel}/providers"),
                Some(&org.key),
                None,
            )
            .await;
        assert_eq!(res.status(), 200);
    }
}

#[tokio::test]
async fn keys_rotate_command_re_encrypts_through_the_binary() {
    let app = TestApp::spawn().await;
    let org = app.org("acme").await;
    app.provider(&org, "sms", termii()).await;
    app.provider(&org, "email", mailgun()).await;
    let new_entry = KeyRing::generate_entry("cli2");
    let ring = format!("{},{new_entry}", app.key_ring);
    let output = tokio::process::Command::new(env!("CARGO_BIN_EXE_msgengine"))
        .args(["keys", "rotate"])
        .env("DATABASE_URL", &app.db.conninfo)
        .env("MSGENGINE_MASTER_KEYS", &ring)
        .env_remove("MSGENGINE_MASTER_KEYS_FILE")
        .output()
        .await
        .expect("runs");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "{stdout}\n{stderr}");
    assert!(
        stdout.contains("re-encrypted 2 provider secret(s) under key `cli2`"),
        "{stdout}"
    );
    assert!(
        !stdout.contains(&new_entry) && !stderr.contains(&new_entry),
        "key material never printed"
    );
    assert_eq!(sealed_key_ids(&app).await, ["cli2"; 2]);
}
