//! The served OpenAPI description documents every route, with examples.

use std::collections::BTreeSet;

use reqwest::Method;
use serde_json::Value;

use crate::helpers::{status_json, TestApp};

#[tokio::test]
async fn openapi_documents_exactly_the_served_routes_with_examples() {
    let app = TestApp::spawn().await;
    let (status, doc) = status_json(app.call(Method::GET, "/openapi.json", None, None).await).await;
    assert_eq!(status, 200);
    assert!(doc["openapi"].as_str().is_some_and(|v| v.starts_with("3.")));
    let mut documented = BTreeSet::new();
    for (path, item) in doc["paths"].as_object().expect("paths") {
        for (method, op) in item.as_object().expect("path item") {
            if !["get", "post", "put", "delete", "patch"].contains(&method.as_str()) {
                continue;
            }
            documented.insert((method.to_uppercase(), path.clone()));
            let id = format!("{method} {path}");
            if let Some(body) = op.get("requestBody") {
                let example = body
                    .pointer("/content/application~1json/example")
                    .or_else(|| body.pointer("/content/application~1json/examples"));
                assert!(example.is_some(), "{id}: request example");
            }
            let responses = op["responses"].as_object().expect("responses");
            // An example under any media type (JSON, or text for /metrics).
            let has_example = responses.values().any(|r| {
                r.get("content")
                    .and_then(Value::as_object)
                    .is_some_and(|media| {
                        media
                            .values()
                            .any(|m| m.get("example").is_some() || m.get("examples").is_some())
                    })
                    || r.get("$ref").is_some()
                    || r.get("content").is_none()
            });
            assert!(has_example, "{id}: response example");
        }
    }
    let served: BTreeSet<(String, String)> = msgengine_api::ROUTES
        .iter()
        .map(|(m, p)| ((*m).to_owned(), (*p).to_owned()))
        .collect();
    assert_eq!(documented, served, "OpenAPI paths == served routes");
    // Every served route answers something other than "no such route".
    for (method, path) in &served {
        let concrete = path
            .replace("{id}", "00000000-0000-0000-0000-000000000000")
            .replace("{keyId}", "00000000-0000-0000-0000-000000000000");
        let res = app
            .call(method.parse().expect("method"), &concrete, None, None)
            .await;
        if res.status() == 404 {
            let body: Value = res.json().await.unwrap_or_default();
            assert_ne!(body["error"]["code"], "route_not_found", "{method} {path}");
        }
    }
}
