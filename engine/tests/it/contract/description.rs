//! Reading the served OpenAPI description: its operations (with their
//! parameters and security resolved), what each documents for a status, and
//! checking a JSON value against a schema of the description with the
//! `jsonschema` crate (draft 2020-12, formats checked; `$ref`s into
//! `components` resolve because every checked schema is rooted beside a copy
//! of the description's `components`).

use std::collections::HashMap;

use reqwest::Method;
use serde_json::{Map, Value};

/// Who an operation admits (its `security`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Security {
    /// No credentials (`security: []`, or none stated).
    Open,
    /// The operator's admin token.
    Admin,
    /// An organization's API key.
    Tenant,
}

/// One documented method on one path.
#[derive(Debug, Clone)]
pub struct Operation {
    pub method: Method,
    /// The OpenAPI path template (`/api/email/providers/{id}`).
    pub path: String,
    /// The operation object.
    pub op: Value,
    /// Path-item and operation parameters, `$ref`s resolved.
    pub params: Vec<Value>,
    pub security: Security,
}

impl Operation {
    /// `GET /path` for messages.
    pub fn id(&self) -> String {
        format!("{} {}", self.method, self.path)
    }

    /// The parameters in one place (`path`, `query`, `header`).
    pub fn params_in(&self, place: &str) -> Vec<&Value> {
        self.params.iter().filter(|p| p["in"] == place).collect()
    }

    /// The request body's JSON media object, when the operation takes one.
    pub fn json_body(&self) -> Option<&Value> {
        self.op.pointer("/requestBody/content/application~1json")
    }

    /// The documented request examples (`example`, or every `examples` value).
    pub fn body_examples(&self) -> Vec<Value> {
        let Some(media) = self.json_body() else {
            return Vec::new();
        };
        match (media.get("example"), media.get("examples")) {
            (Some(example), _) => vec![example.clone()],
            (None, Some(Value::Object(named))) => named
                .values()
                .filter_map(|e| e.get("value").cloned())
                .collect(),
            _ => Vec::new(),
        }
    }
}

/// The served description.
pub struct Description {
    pub doc: Value,
}

impl Description {
    /// Follows `$ref`s (local JSON pointers) until a value that is not one.
    pub fn resolve<'a>(&'a self, mut value: &'a Value) -> &'a Value {
        for _ in 0..16 {
            let Some(reference) = value.get("$ref").and_then(Value::as_str) else {
                return value;
            };
            match reference
                .strip_prefix('#')
                .and_then(|p| self.doc.pointer(p))
            {
                Some(target) => value = target,
                None => return value,
            }
        }
        value
    }

    /// Every documented operation, in the description's order.
    pub fn operations(&self) -> Vec<Operation> {
        let mut out = Vec::new();
        let Some(paths) = self.doc["paths"].as_object() else {
            return out;
        };
        for (path, item) in paths {
            let shared = item["parameters"].as_array().cloned().unwrap_or_default();
            for (method, op) in item.as_object().into_iter().flatten() {
                let Ok(method) = method.to_uppercase().parse::<Method>() else {
                    continue;
                };
                if !matches!(
                    method,
                    Method::GET | Method::POST | Method::PUT | Method::DELETE | Method::PATCH
                ) {
                    continue;
                }
                let own = op["parameters"].as_array().cloned().unwrap_or_default();
                let params = shared
                    .iter()
                    .chain(own.iter())
                    .map(|p| self.resolve(p).clone())
                    .collect();
                out.push(Operation {
                    method,
                    path: path.clone(),
                    security: security_of(op),
                    op: op.clone(),
                    params,
                });
            }
        }
        out
    }

    /// The response object an operation documents for `status`, resolved.
    pub fn response<'a>(&'a self, op: &'a Operation, status: u16) -> Option<&'a Value> {
        op.op["responses"]
            .get(status.to_string())
            .map(|r| self.resolve(r))
    }
}

fn security_of(op: &Value) -> Security {
    let schemes: Vec<&String> = op["security"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(Value::as_object)
        .flat_map(Map::keys)
        .collect();
    if schemes.iter().any(|s| *s == "adminToken") {
        Security::Admin
    } else if schemes.iter().any(|s| *s == "apiKey") {
        Security::Tenant
    } else {
        Security::Open
    }
}

/// Compiled schemas of the description, by where they appear.
pub struct Schemas {
    components: Value,
    compiled: HashMap<String, jsonschema::Validator>,
}

impl Schemas {
    pub fn new(description: &Description) -> Self {
        Self {
            components: description.doc["components"].clone(),
            compiled: HashMap::new(),
        }
    }

    /// Checks `instance` against `schema` (found at `key`, which names the
    /// compiled validator for reuse). `Err` lists every violation.
    pub fn check(&mut self, key: &str, schema: &Value, instance: &Value) -> Result<(), String> {
        if !self.compiled.contains_key(key) {
            let mut root = match schema {
                Value::Object(map) => map.clone(),
                other => return Err(format!("{key}: the schema is not an object: {other}")),
            };
            root.insert("components".into(), self.components.clone());
            let validator = jsonschema::options()
                .with_draft(jsonschema::Draft::Draft202012)
                .should_validate_formats(true)
                .build(&Value::Object(root))
                .map_err(|e| format!("{key}: the schema does not compile: {e}"))?;
            self.compiled.insert(key.to_owned(), validator);
        }
        let Some(validator) = self.compiled.get(key) else {
            return Err(format!("{key}: no validator"));
        };
        let problems: Vec<String> = validator
            .iter_errors(instance)
            .take(5)
            .map(|e| {
                format!(
                    "at `{}`: {}",
                    e.instance_path(),
                    truncate(&e.to_string(), 300)
                )
            })
            .collect();
        if problems.is_empty() {
            Ok(())
        } else {
            Err(format!("does not match {key}: {}", problems.join("; ")))
        }
    }
}

/// At most `max` characters of `text`, marking a cut.
pub fn truncate(text: &str, max: usize) -> String {
    if text.chars().count() <= max {
        text.to_owned()
    } else {
        let head: String = text.chars().take(max).collect();
        format!("{head}… ({} chars)", text.chars().count())
    }
}
