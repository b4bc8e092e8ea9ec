//! Property tests of the HTTP contract: the served OpenAPI description is the
//! oracle. For every documented route and method, requests are generated
//! from the description (cases.rs) and every answer must be:
//!
//! - not a 5xx (a documented 502 from a provider route aside: providers here
//!   are a loopback wiremock that answers only some calls);
//! - a status the operation documents;
//! - a body that matches the schema documented for that status and media
//!   type (none at all where none is documented).
//!
//! Seeded: the seed is printed and `MSGENGINE_CONTRACT_SEED=<seed>` replays
//! a run; every failure names its request (`MSGENGINE_CONTRACT_TRACE=1`
//! prints every request with its status). Bounded: at most
//! [`CASES_PER_OPERATION`] requests per operation, loopback only (see
//! fixtures.rs for how no request can leave the machine).

mod cases;
mod description;
mod fixtures;

use std::time::Duration;

use reqwest::Method;
use serde_json::Value;

use crate::helpers::{status_json, TestApp};
use cases::{Case, Generator};
use description::{truncate, Description, Operation, Schemas};
use fixtures::World;

/// The most requests generated for one operation.
const CASES_PER_OPERATION: usize = 48;

/// The seed: `MSGENGINE_CONTRACT_SEED` when set (to replay a run), else random.
fn seed() -> u64 {
    std::env::var("MSGENGINE_CONTRACT_SEED")
        .ok()
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or_else(rand::random)
}

#[tokio::test]
async fn every_route_answers_generated_requests_as_its_description_says() {
    let seed = seed();
    eprintln!("contract seed {seed} (MSGENGINE_CONTRACT_SEED={seed} replays this run)");
    let app = TestApp::spawn().await;
    let world = World::build(&app).await;
    let (status, doc) = status_json(app.call(Method::GET, "/openapi.json", None, None).await).await;
    assert_eq!(status, 200);
    let desc = Description { doc };
    let mut schemas = Schemas::new(&desc);
    let mut operations = desc.operations();
    // Destructive operations last, so the others still find their objects.
    operations.sort_by_key(run_order);
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(30))
        .build()
        .expect("client");
    let mut generator = Generator::new(seed, &world, CASES_PER_OPERATION);
    let (mut sent, mut failures) = (0, Vec::new());
    for op in &operations {
        for case in generator.cases(&desc, op) {
            sent += 1;
            if let Err(problem) = run(&client, &app.base, &desc, &mut schemas, op, &case).await {
                failures.push(format!(
                    "{} [{}]\n    request: {}\n    {problem}",
                    op.id(),
                    case.label,
                    case.describe(&op.method)
                ));
            }
        }
    }
    eprintln!(
        "contract: {sent} requests over {} operations, {} failures",
        operations.len(),
        failures.len()
    );
    assert!(
        failures.is_empty(),
        "seed {seed}: {} of {sent} answers break the description \
         (MSGENGINE_CONTRACT_SEED={seed} replays):\n\n{}",
        failures.len(),
        failures.join("\n\n")
    );
}

/// Deletions after everything else, disabling an organization last of all.
fn run_order(op: &Operation) -> u8 {
    if op.path.ends_with("/disable") {
        2
    } else if op.method == Method::DELETE {
        1
    } else {
        0
    }
}

/// Makes one request and checks its answer against the description.
async fn run(
    client: &reqwest::Client,
    base: &str,
    desc: &Description,
    schemas: &mut Schemas,
    op: &Operation,
    case: &Case,
) -> Result<(), String> {
    let mut url = format!("{base}{}", case.path);
    if !case.query.is_empty() {
        url = format!("{url}?{}", case.query);
    }
    let mut request = client.request(op.method.clone(), &url);
    if let Some(auth) = &case.auth {
        request = request.header("Authorization", auth.as_bytes());
    }
    for (name, value) in &case.headers {
        request = request.header(name.as_str(), value.as_slice());
    }
    if let Some(content_type) = &case.content_type {
        request = request.header("Content-Type", content_type.as_str());
    }
    if let Some(body) = &case.body {
        request = request.body(body.clone());
    }
    let response = request
        .send()
        .await
        .map_err(|e| format!("no answer (did the handler panic?): {e}"))?;
    let status = response.status().as_u16();
    let media = response
        .headers()
        .get("Content-Type")
        .and_then(|v| v.to_str().ok())
        .map(|v| {
            v.split(';')
                .next()
                .unwrap_or("")
                .trim()
                .to_ascii_lowercase()
        });
    let body = response
        .bytes()
        .await
        .map_err(|e| format!("{status}: the body could not be read: {e}"))?;
    if std::env::var_os("MSGENGINE_CONTRACT_TRACE").is_some() {
        eprintln!("{status} <- {}", case.describe(&op.method));
    }
    check_answer(desc, schemas, op, status, media.as_deref(), &body).map_err(|problem| {
        format!(
            "answer: {status} {}\n    problem: {problem}",
            truncate(&String::from_utf8_lossy(&body), 300)
        )
    })
}

/// The answer's status is documented (and not a server error), and its
/// body matches the schema documented for it.
fn check_answer(
    desc: &Description,
    schemas: &mut Schemas,
    op: &Operation,
    status: u16,
    media: Option<&str>,
    body: &[u8],
) -> Result<(), String> {
    let documented = desc.response(op, status);
    if status >= 500 && !(status == 502 && documented.is_some()) {
        return Err(format!("a server error ({status})"));
    }
    let response = documented.ok_or_else(|| format!("status {status} is not documented"))?;
    let Some(content) = response.get("content").and_then(Value::as_object) else {
        return match body.is_empty() {
            true => Ok(()),
            false => Err(format!("a body, where {status} documents none")),
        };
    };
    let media = media.ok_or("no Content-Type, where the status documents a body")?;
    let documented_media = content
        .get(media)
        .ok_or_else(|| format!("media type {media} is not documented for {status}"))?;
    let schema = documented_media
        .get("schema")
        .ok_or_else(|| format!("{status} {media} documents no schema"))?;
    let instance = if media == "application/json" {
        serde_json::from_slice(body).map_err(|e| format!("the body is not JSON: {e}"))?
    } else {
        Value::String(String::from_utf8_lossy(body).into_owned())
    };
    schemas.check(&format!("{} {status} {media}", op.id()), schema, &instance)
}

/// Every JSON request and response in the description has a schema, and
/// every documented example matches it (the description cannot contradict
/// itself before it is checked against the server).
#[test]
fn every_documented_example_matches_its_schema() {
    let doc: Value =
        serde_json::from_str(msgengine_api::routes::OPENAPI_JSON).expect("openapi.json parses");
    let desc = Description { doc };
    let mut schemas = Schemas::new(&desc);
    let mut problems = Vec::new();
    for op in desc.operations() {
        if let Some(media) = op.json_body() {
            match media.get("schema") {
                None => problems.push(format!("{}: the request body has no schema", op.id())),
                Some(schema) => {
                    for (i, example) in op.body_examples().iter().enumerate() {
                        let key = format!("{} request", op.id());
                        if let Err(e) = schemas.check(&key, schema, example) {
                            problems.push(format!("{} request example #{i}: {e}", op.id()));
                        }
                    }
                }
            }
        }
        problems.extend(response_problems(&desc, &mut schemas, &op));
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

fn response_problems(desc: &Description, schemas: &mut Schemas, op: &Operation) -> Vec<String> {
    let mut problems = Vec::new();
    let statuses = op.op["responses"].as_object().cloned().unwrap_or_default();
    for (status, response) in &statuses {
        let response = desc.resolve(response);
        for (media, content) in response["content"].as_object().into_iter().flatten() {
            let id = format!("{} {status} {media}", op.id());
            let Some(schema) = content.get("schema") else {
                problems.push(format!("{id}: no schema"));
                continue;
            };
            let examples: Vec<&Value> = match (content.get("example"), content.get("examples")) {
                (Some(example), _) => vec![example],
                (None, Some(Value::Object(named))) => {
                    named.values().filter_map(|e| e.get("value")).collect()
                }
                _ => Vec::new(),
            };
            for example in examples {
                if let Err(e) = schemas.check(&id, schema, example) {
                    problems.push(format!("{id} example: {e}"));
                }
            }
        }
    }
    problems
}
