//! Requests generated from the description for one operation: its documented
//! examples first, then hostile variants of them (credentials, path ids,
//! query and header parameters, content types, raw bodies) and seeded-random
//! mutations of the example body derived from the request schema (hostile
//! strings and numbers, wrong types, missing required and unknown members,
//! deep nesting). At most `budget` cases per operation.

use rand::rngs::StdRng;
use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};
use reqwest::Method;
use serde_json::{json, Map, Value};

use super::description::{truncate, Description, Operation, Security};
use super::fixtures::{keep_on_loopback, pin_new_provider, World};
use crate::helpers::ADMIN_TOKEN;

/// One request to make.
#[derive(Debug, Clone)]
pub struct Case {
    /// What this case varies.
    pub label: String,
    /// The concrete path, percent-encoded.
    pub path: String,
    /// The query string without `?` (already encoded), or empty.
    pub query: String,
    /// The whole `Authorization` header value.
    pub auth: Option<String>,
    pub headers: Vec<(String, Vec<u8>)>,
    pub content_type: Option<String>,
    pub body: Option<Vec<u8>>,
}

impl Case {
    /// The request in one line, the body cut short.
    pub fn describe(&self, method: &Method) -> String {
        let query = if self.query.is_empty() {
            String::new()
        } else {
            format!("?{}", self.query)
        };
        let body = self
            .body
            .as_ref()
            .map(|b| truncate(&String::from_utf8_lossy(b), 300));
        format!(
            "{method} {}{query} auth={} content-type={:?} headers={:?} body={body:?}",
            truncate(&self.path, 200),
            self.auth
                .as_deref()
                .map_or("none", |a| if a.len() > 20 { &a[..20] } else { a }),
            self.content_type,
            self.headers
                .iter()
                .map(|(n, v)| format!("{n}: {}", truncate(&String::from_utf8_lossy(v), 40)))
                .collect::<Vec<_>>(),
        )
    }
}

/// Random body mutations an operation with a body gets at least.
const RANDOM_SHARE: usize = 12;
/// The most string members the U+0000 sweep visits per operation.
const NUL_SWEEP: usize = 16;

pub struct Generator<'w> {
    rng: StdRng,
    world: &'w World,
    sink: String,
    budget: usize,
}

impl<'w> Generator<'w> {
    pub fn new(seed: u64, world: &'w World, budget: usize) -> Self {
        Self {
            rng: StdRng::seed_from_u64(seed),
            sink: world.sink.uri(),
            world,
            budget,
        }
    }

    /// The cases for `op`: the valid requests, then the hostile ones.
    pub fn cases(&mut self, desc: &Description, op: &Operation) -> Vec<Case> {
        let base = self.base(op);
        let mut valid = vec![];
        for (i, example) in op.body_examples().into_iter().enumerate() {
            let mut case = base.clone();
            case.label = format!("documented example #{i}");
            case.body = Some(self.json_bytes(op, example));
            valid.push(case);
        }
        if valid.is_empty() {
            valid.push(base.clone());
        }
        let mut hostile = self.auth_cases(op, &base);
        hostile.extend(self.path_cases(op, &base));
        hostile.extend(self.query_cases(op, &base));
        hostile.extend(self.header_cases(op, &base));
        let has_body = op.json_body().is_some();
        if has_body {
            hostile.extend(raw_body_cases(&base));
        }
        let sweep = self.nul_sweep(op, &base);
        let random = if has_body { RANDOM_SHARE } else { 0 };
        let room = self
            .budget
            .saturating_sub(valid.len() + sweep.len() + random);
        hostile.shuffle(&mut self.rng);
        hostile.truncate(room);
        hostile.extend(sweep);
        if has_body {
            let room = self.budget.saturating_sub(valid.len() + hostile.len());
            let mutated = self.mutation_cases(desc, op, &base, room);
            hostile.extend(mutated);
        }
        valid.extend(hostile);
        valid
    }

    /// The valid request: this organization's ids, documented query
    /// examples, the right credentials, the first example body.
    fn base(&mut self, op: &Operation) -> Case {
        let mut path = op.path.clone();
        for p in op.params_in("path") {
            let name = p["name"].as_str().unwrap_or_default();
            let (mine, _) = self.world.path_values(&op.path, name);
            path = path.replace(&format!("{{{name}}}"), &mine);
        }
        let query: Vec<String> = op
            .params_in("query")
            .iter()
            .filter_map(|p| {
                let name = p["name"].as_str()?;
                let value = self
                    .world
                    .query_value(&op.path, name)
                    .or_else(|| p["example"].as_str().map(str::to_owned))?;
                Some(format!("{name}={value}"))
            })
            .collect();
        let body = op.body_examples().into_iter().next();
        Case {
            label: "valid".into(),
            path,
            query: query.join("&"),
            auth: self.token(op.security),
            headers: Vec::new(),
            content_type: body.as_ref().map(|_| "application/json".to_owned()),
            body: body.map(|b| self.json_bytes(op, b)),
        }
    }

    fn token(&self, security: Security) -> Option<String> {
        match security {
            Security::Open => None,
            Security::Admin => Some(format!("Bearer {ADMIN_TOKEN}")),
            Security::Tenant => Some(format!("Bearer {}", self.world.a.org.key)),
        }
    }

    /// A body as sent: pinned to loopback, serialised.
    fn json_bytes(&self, op: &Operation, mut body: Value) -> Vec<u8> {
        pin_new_provider(&op.method, &op.path, &mut body, &self.sink);
        keep_on_loopback(&mut body, &self.sink);
        serde_json::to_vec(&body).unwrap_or_default()
    }

    fn auth_cases(&self, op: &Operation, base: &Case) -> Vec<Case> {
        if op.security == Security::Open {
            return Vec::new();
        }
        let other_key = format!("Bearer {}", self.world.b.org.key);
        [
            ("no Authorization header", None),
            (
                "an unknown token",
                Some("Bearer mse_0000000000000000000000000000000000000000000"),
            ),
            ("a Basic credential", Some("Basic YWRtaW46YWRtaW4=")),
            ("an empty bearer token", Some("Bearer ")),
            ("another organization's API key", Some(other_key.as_str())),
        ]
        .into_iter()
        .map(|(label, auth)| Case {
            label: label.into(),
            auth: auth.map(str::to_owned),
            ..base.clone()
        })
        .collect()
    }

    fn path_cases(&mut self, op: &Operation, base: &Case) -> Vec<Case> {
        let mut out = Vec::new();
        for p in op.params_in("path") {
            let name = p["name"].as_str().unwrap_or_default().to_owned();
            let (_, other) = self.world.path_values(&op.path, &name);
            let unknown = uuid::Uuid::from_u128(self.rng.gen()).to_string();
            let values = [
                ("another organization's object", other),
                ("an unknown uuid", unknown.clone()),
                ("a malformed id", "not-a-uuid".into()),
                ("NUL", "%00".into()),
                ("NUL inside an id", format!("{}%00", &unknown[..8])),
                ("a very long id", "a".repeat(2000)),
                ("invalid UTF-8", "%FF%FE".into()),
                ("dot segments", "..%2F..%2Fhealthz".into()),
                ("CR LF", "%0D%0AX-Injected:%20yes".into()),
                (
                    "an id with a trailing quote",
                    format!("{unknown}%27%20OR%20%271%27=%271"),
                ),
            ];
            for (label, value) in values {
                let mut template = op.path.clone();
                for q in op.params_in("path") {
                    let other_name = q["name"].as_str().unwrap_or_default();
                    let fill = if other_name == name {
                        value.clone()
                    } else {
                        self.world.path_values(&op.path, other_name).0
                    };
                    template = template.replace(&format!("{{{other_name}}}"), &fill);
                }
                out.push(Case {
                    label: format!("{{{name}}}: {label}"),
                    path: template,
                    ..base.clone()
                });
            }
        }
        out
    }

    fn query_cases(&mut self, op: &Operation, base: &Case) -> Vec<Case> {
        let params = op.params_in("query");
        if params.is_empty() {
            return Vec::new();
        }
        let mut out = vec![Case {
            label: "an unknown query parameter".into(),
            query: join_query(&base.query, "zzUnknown=1"),
            ..base.clone()
        }];
        for p in params {
            let name = p["name"].as_str().unwrap_or_default();
            for value in hostile_query_values(&p["schema"]) {
                // Alone (the others left to their defaults), so defaults are
                // computed from the hostile value too.
                out.push(Case {
                    label: format!("query {name}={}", truncate(&value, 40)),
                    query: format!("{name}={value}"),
                    ..base.clone()
                });
            }
        }
        out
    }

    fn header_cases(&self, op: &Operation, base: &Case) -> Vec<Case> {
        let mut out = Vec::new();
        for p in op.params_in("header") {
            let name = p["name"].as_str().unwrap_or_default();
            let values: [(&str, Vec<u8>); 6] = [
                (
                    "the documented example",
                    p["example"].as_str().unwrap_or("x").into(),
                ),
                ("empty", Vec::new()),
                ("blank", b" \t ".to_vec()),
                ("300 characters", vec![b'k'; 300]),
                ("non-ASCII bytes", "clé-é".as_bytes().to_vec()),
                ("obs-text bytes", vec![b'k', 0xFF, 0xFE]),
            ];
            for (label, value) in values {
                let mut case = base.clone();
                case.label = format!("header {name}: {label}");
                case.headers.push((name.to_owned(), value));
                out.push(case);
            }
        }
        out
    }

    /// U+0000 in each string member of the examples, one member at a time
    /// (members of batch entries counted once): text that PostgreSQL cannot
    /// store must be refused with a 4xx naming it, wherever it hides.
    fn nul_sweep(&mut self, op: &Operation, base: &Case) -> Vec<Case> {
        let examples = op.body_examples();
        let mut seen = std::collections::HashSet::new();
        let mut members = Vec::new();
        for (i, example) in examples.iter().enumerate() {
            for pointer in pointers(example, String::new()) {
                let shape: Vec<&str> = pointer
                    .split('/')
                    .map(|s| if s.parse::<usize>().is_ok() { "*" } else { s })
                    .collect();
                if example.pointer(&pointer).is_some_and(Value::is_string)
                    && seen.insert(shape.join("/"))
                {
                    members.push((i, pointer));
                }
            }
        }
        members.shuffle(&mut self.rng);
        members.truncate(NUL_SWEEP);
        members
            .into_iter()
            .filter_map(|(i, pointer)| {
                let mut body = examples.get(i)?.clone();
                if let Some(Value::String(text)) = body.pointer_mut(&pointer) {
                    let middle = text.chars().count() / 2;
                    let at = text
                        .char_indices()
                        .nth(middle)
                        .map_or(text.len(), |(i, _)| i);
                    text.insert(at, '\u{0}');
                }
                Some(Case {
                    label: format!("U+0000 inside {pointer} (example #{i})"),
                    body: Some(self.json_bytes(op, body)),
                    content_type: Some("application/json".into()),
                    ..base.clone()
                })
            })
            .collect()
    }

    fn mutation_cases(
        &mut self,
        desc: &Description,
        op: &Operation,
        base: &Case,
        count: usize,
    ) -> Vec<Case> {
        let examples = op.body_examples();
        let schema = op
            .json_body()
            .and_then(|m| m.get("schema"))
            .map(|s| desc.resolve(s).clone())
            .unwrap_or(Value::Null);
        let mut out = Vec::new();
        for _ in 0..count {
            let mut body = examples
                .choose(&mut self.rng)
                .cloned()
                .unwrap_or_else(|| json!({}));
            let mut labels = Vec::new();
            for _ in 0..self.rng.gen_range(1..=2) {
                labels.push(mutate(&mut self.rng, desc, &schema, &mut body));
            }
            out.push(Case {
                label: format!("mutated: {}", labels.join("; ")),
                body: Some(self.json_bytes(op, body)),
                content_type: Some("application/json".into()),
                ..base.clone()
            });
        }
        out
    }
}

fn join_query(query: &str, extra: &str) -> String {
    if query.is_empty() {
        extra.to_owned()
    } else {
        format!("{query}&{extra}")
    }
}

fn hostile_query_values(schema: &Value) -> Vec<String> {
    let long = "q".repeat(3000);
    let list: Vec<&str> = match (schema["type"].as_str(), schema["format"].as_str()) {
        (Some("integer"), _) => vec![
            "-1",
            "0",
            "501",
            "9223372036854775808",
            "-9223372036854775809",
            "1.5",
            "abc",
            "",
        ],
        (_, Some("date")) => vec![
            "-262143-01-01",
            "+262142-12-31",
            "2025-02-30",
            "9999-99-99",
            "",
            "%00",
        ],
        (_, Some("uuid")) => vec![
            "not-a-uuid",
            "",
            "%00",
            "00000000-0000-0000-0000-000000000000",
        ],
        _ => vec!["", "%00", "%FF%FE", "%0D%0A", &long],
    };
    list.into_iter().map(str::to_owned).collect()
}

/// Bodies that are not the JSON object the operation expects.
fn raw_body_cases(base: &Case) -> Vec<Case> {
    let example = base.body.clone().unwrap_or_else(|| b"{}".to_vec());
    let json = Some("application/json".to_owned());
    let nested = format!("{}1{}", "{\"a\":".repeat(200), "}".repeat(200)).into_bytes();
    let mut invalid_utf8 = example.clone();
    let at = invalid_utf8
        .windows(2)
        .position(|w| w == b":\"")
        .map_or(invalid_utf8.len(), |i| i + 2);
    invalid_utf8.splice(at..at, [0xFF, 0xFE, 0xC3]);
    let mut surrogate = example.clone();
    surrogate.splice(
        at.min(surrogate.len())..at.min(surrogate.len()),
        *b"\\ud800",
    );
    let mut array = b"[".to_vec();
    array.extend_from_slice(&example);
    array.push(b']');
    let oversized = format!("{{\"x\":\"{}\"}}", "a".repeat(2 * 1024 * 1024 + 1)).into_bytes();
    let variants: Vec<(&str, Option<String>, Vec<u8>)> = vec![
        ("no Content-Type", None, example.clone()),
        (
            "Content-Type text/plain",
            Some("text/plain".into()),
            example.clone(),
        ),
        (
            "Content-Type form",
            Some("application/x-www-form-urlencoded".into()),
            b"a=b&c=%00".to_vec(),
        ),
        (
            "Content-Type application/json; charset=utf-8",
            Some("application/json; charset=utf-8".into()),
            example.clone(),
        ),
        (
            "a malformed Content-Type",
            Some("application/json;;;=".into()),
            example.clone(),
        ),
        ("invalid UTF-8 bytes", json.clone(), invalid_utf8),
        ("a lone surrogate escape", json.clone(), surrogate),
        ("an empty body", json.clone(), Vec::new()),
        ("JSON null", json.clone(), b"null".to_vec()),
        (
            "a JSON array where an object is expected",
            json.clone(),
            array,
        ),
        ("200 levels of nesting", json.clone(), nested),
        (
            "truncated JSON",
            json.clone(),
            example[..example.len() / 2].to_vec(),
        ),
        ("a body over 2 MiB", json, oversized),
    ];
    variants
        .into_iter()
        .map(|(label, content_type, body)| Case {
            label: label.into(),
            content_type,
            body: Some(body),
            ..base.clone()
        })
        .collect()
}

/// One random change to `body`; returns what it did.
fn mutate(rng: &mut StdRng, desc: &Description, schema: &Value, body: &mut Value) -> String {
    let nodes = pointers(body, String::new());
    let Some(target) = nodes.choose(rng).cloned() else {
        *body = hostile_any(rng);
        return format!("body = {}", short(body));
    };
    match rng.gen_range(0..9) {
        7 | 8 => {
            // A hostile string in a string member: the edge must refuse what
            // cannot be stored (NUL, over-long) and store the rest intact.
            let strings: Vec<&String> = nodes
                .iter()
                .filter(|p| body.pointer(p).is_some_and(Value::is_string))
                .collect();
            let Some(target) = strings.choose(rng).map(|p| (*p).clone()) else {
                return "no string member".into();
            };
            let value = hostile_string(rng);
            if let Some(node) = body.pointer_mut(&target) {
                *node = value.clone();
            }
            format!("{target} = {}", short(&value))
        }
        0 | 1 => {
            let Some(node) = body.pointer_mut(&target) else {
                return "nothing".into();
            };
            *node = hostile_like(rng, node);
            format!("{target} = {}", short(node))
        }
        2 => {
            let Some(node) = body.pointer_mut(&target) else {
                return "nothing".into();
            };
            *node = hostile_any(rng);
            format!("{target} = {} (any type)", short(node))
        }
        3 => remove_member(rng, schema, body),
        4 => {
            let value = hostile_any(rng);
            insert_member(body, &target, "zzUnknown", value.clone());
            format!("{target}/zzUnknown = {} (unknown member)", short(&value))
        }
        5 => set_absent_property(rng, desc, schema, body),
        _ => {
            let Some(node) = body.pointer_mut(&target) else {
                return "nothing".into();
            };
            let mut nested = json!("deep");
            for _ in 0..100 {
                nested = json!({ "n": nested });
            }
            *node = nested;
            format!("{target} = 100 levels of nested objects")
        }
    }
}

/// Every node's JSON pointer, the root excluded.
fn pointers(value: &Value, at: String) -> Vec<String> {
    let mut out = Vec::new();
    match value {
        Value::Object(map) => {
            for (k, v) in map {
                let p = format!("{at}/{}", k.replace('~', "~0").replace('/', "~1"));
                out.push(p.clone());
                out.extend(pointers(v, p));
            }
        }
        Value::Array(items) => {
            for (i, v) in items.iter().enumerate() {
                let p = format!("{at}/{i}");
                out.push(p.clone());
                out.extend(pointers(v, p));
            }
        }
        _ => {}
    }
    out
}

fn remove_member(rng: &mut StdRng, schema: &Value, body: &mut Value) -> String {
    let required: Vec<String> = schema["required"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|r| r.as_str().map(str::to_owned))
        .filter(|r| body.get(r).is_some())
        .collect();
    let key = match required.choose(rng) {
        Some(k) => k.clone(),
        None => match body.as_object().and_then(|m| {
            m.keys()
                .collect::<Vec<_>>()
                .choose(rng)
                .map(|k| (*k).clone())
        }) {
            Some(k) => k,
            None => return "nothing to remove".into(),
        },
    };
    if let Some(map) = body.as_object_mut() {
        map.remove(&key);
    }
    format!("/{key} removed")
}

fn insert_member(body: &mut Value, at: &str, key: &str, value: Value) {
    let is_object = matches!(body.pointer(at), Some(Value::Object(_)));
    let parent = if is_object {
        body.pointer_mut(at)
    } else {
        Some(body)
    };
    if let Some(Value::Object(map)) = parent {
        map.insert(key.to_owned(), value);
    }
}

/// Sets a member the schema documents and the example leaves out.
fn set_absent_property(
    rng: &mut StdRng,
    desc: &Description,
    schema: &Value,
    body: &mut Value,
) -> String {
    let absent: Vec<(String, Value)> = schema["properties"]
        .as_object()
        .into_iter()
        .flatten()
        .filter(|(k, _)| body.get(k.as_str()).is_none())
        .map(|(k, v)| (k.clone(), desc.resolve(v).clone()))
        .collect();
    let Some((key, property)) = absent.choose(rng).cloned() else {
        return "no absent property".into();
    };
    let value = hostile_of_type(rng, &property);
    if let Some(map) = body.as_object_mut() {
        map.insert(key.clone(), value.clone());
    }
    format!("/{key} = {} (absent from the example)", short(&value))
}

fn hostile_of_type(rng: &mut StdRng, schema: &Value) -> Value {
    let declared = match &schema["type"] {
        Value::String(t) => t.clone(),
        Value::Array(ts) => ts
            .iter()
            .filter_map(Value::as_str)
            .find(|t| *t != "null")
            .unwrap_or("string")
            .to_owned(),
        _ => "any".into(),
    };
    let sample = match declared.as_str() {
        "string" => json!(""),
        "integer" | "number" => json!(0),
        "boolean" => json!(true),
        "array" => json!([]),
        "object" => json!({}),
        _ => return hostile_any(rng),
    };
    hostile_like(rng, &sample)
}

/// A hostile value of the same JSON type as `like`.
fn hostile_like(rng: &mut StdRng, like: &Value) -> Value {
    match like {
        Value::String(_) => hostile_string(rng),
        Value::Number(_) => {
            let numbers = [
                json!(-1),
                json!(0),
                json!(1.5),
                json!(1e308),
                json!(-1e308),
                json!(2_147_483_648_i64),
                json!(9_223_372_036_854_775_807_i64),
                json!(u64::MAX),
                json!("12"),
            ];
            numbers.choose(rng).cloned().unwrap_or(Value::Null)
        }
        Value::Bool(_) => [json!("true"), json!(1), Value::Null]
            .choose(rng)
            .cloned()
            .unwrap_or(Value::Null),
        Value::Array(items) => {
            let mut many = items.clone();
            many.push(hostile_any(rng));
            [json!([]), json!({}), Value::Array(many), json!([[[[]]]])]
                .choose(rng)
                .cloned()
                .unwrap_or(Value::Null)
        }
        Value::Object(_) => [
            json!([]),
            json!("object"),
            json!({"": null}),
            Value::Object(Map::new()),
        ]
        .choose(rng)
        .cloned()
        .unwrap_or(Value::Null),
        Value::Null => hostile_any(rng),
    }
}

fn hostile_string(rng: &mut StdRng) -> Value {
    let strings = [
        "a\u{0}b".to_owned(),
        "\u{0}".to_owned(),
        "subject\r\nBcc: victim@example.com".to_owned(),
        "x".repeat(100 * 1024),
        "ü 漢字 🎉 \u{202e}txt.exe \u{200b}𝄞".to_owned(),
        String::new(),
        " \t ".to_owned(),
        "\u{1b}[31m\u{7f}\u{8}".to_owned(),
        "'; DROP TABLE messages; --".to_owned(),
        "{{1}} ${jndi:ldap://127.0.0.1/x} %s%n".to_owned(),
    ];
    json!(strings.choose(rng).cloned().unwrap_or_default())
}

fn hostile_any(rng: &mut StdRng) -> Value {
    match rng.gen_range(0..4) {
        0 => hostile_string(rng),
        1 => hostile_like(rng, &json!(0)),
        2 => hostile_like(rng, &json!([])),
        _ => [Value::Null, json!(true), json!({})]
            .choose(rng)
            .cloned()
            .unwrap_or(Value::Null),
    }
}

fn short(value: &Value) -> String {
    truncate(&value.to_string(), 60)
}
