//! Provider connections: the typed configuration of each channel and the
//! channel-independent machinery around it.
//!
//! A *spec* ([`email::EmailProviderSpec`], [`sms::SmsProviderSpec`],
//! [`whatsapp::WhatsappProviderSpec`]) is the full configuration of one
//! connection in the API's own shape (camelCase JSON), secrets included in
//! plain text. Everything else is derived from it by the functions here:
//!
//! - [`split`] cuts a spec into the non-secret settings (stored as `jsonb`) and
//!   the secret fields (sealed together by the storage layer), and [`join`]
//!   puts them back;
//! - [`merge_patch`] applies an update (RFC 7396 JSON merge patch: absent keeps,
//!   `null` clears) so an update is validated exactly like a create;
//! - [`changed_fields`] names what an update changed, for the audit log;
//! - [`redacted_view`] renders a spec for responses, each secret replaced by
//!   `{"isSet": bool, "last4": ...}`;
//! - [`check_destination_change`] keeps stored secrets bound to where they
//!   were entered: an update that moves a connection elsewhere must carry them.

#[macro_use]
mod types;
mod destination;
pub mod email;
pub mod sms;
pub mod whatsapp;

use serde::de::DeserializeOwned;
use serde::Serialize;
use serde_json::{Map, Value};

use crate::channel::Channel;
use crate::routing::RoutingAttributes;
use crate::secret::Secret;
use crate::validate::{Valid, ValidationError};

pub use destination::{check_destination_change, Destination, MIN_WEBHOOK_TOKEN_CHARS};
pub use email::EmailProviderSpec;
pub use sms::SmsProviderSpec;
pub use whatsapp::WhatsappProviderSpec;

/// What every channel's spec offers to the generic machinery.
pub trait ProviderSpec: Serialize + DeserializeOwned + Clone + Send + Sync + 'static {
    /// The channel this spec configures.
    const CHANNEL: Channel;
    /// Dotted paths of the secret fields (`smtpConfig.password`). A path that
    /// names an object (`credentials`) makes every member of it secret.
    const SECRET_PATHS: &'static [&'static str];
    /// Object-valued fields compared as one value in [`changed_fields`].
    const OPAQUE_PATHS: &'static [&'static str];

    /// The connection's name, unique per organization and channel.
    fn name(&self) -> &str;
    /// Whether the connection may be used for sending.
    fn is_active(&self) -> bool;
    /// Priority, weight, own rate limit, costs and countries.
    fn routing(&self) -> &RoutingAttributes;
    fn routing_mut(&mut self) -> &mut RoutingAttributes;
    /// The provider type as stored and shown (`MAILGUN`, `TERMII`...).
    fn provider_type(&self) -> &'static str;
    /// Checks every field, and the fields required by the provider type, and
    /// normalises values (phone numbers to E.164).
    fn validate(&mut self) -> Valid<()>;
    /// Wraps the spec for code that handles every channel.
    fn into_any(self) -> AnyProviderSpec;
    /// Where this provider type sends its credentials: the fields that decide
    /// the destination and the secrets sent there (see [`Destination`]).
    fn destination(&self) -> Destination;
}

/// Keys that are stored as columns, not inside the settings document.
const COLUMN_KEYS: [&str; 3] = ["name", "isActive", "providerType"];

/// The routing attributes' keys: top-level fields of every channel's body,
/// parsed as one [`RoutingAttributes`] (issue 12).
pub const ROUTING_KEYS: [&str; 6] = [
    "priority",
    "weight",
    "ratePerSecond",
    "burst",
    "costs",
    "countries",
];

/// A spec cut into what is stored in clear and what is sealed.
#[derive(Debug, Clone, PartialEq)]
pub struct SplitSpec {
    /// Non-secret settings, without the column fields (name, isActive, providerType).
    pub settings: Map<String, Value>,
    /// Secret fields keyed by their dotted path; empty when no secret is set.
    pub secrets: Map<String, Value>,
}

/// Serialises a spec to its API-shaped JSON object (secrets in clear:
/// internal use only), the routing attributes as top-level fields.
pub fn to_object<S: ProviderSpec>(spec: &S) -> Map<String, Value> {
    let object = |value: serde_json::Result<Value>| match value {
        Ok(Value::Object(map)) => map,
        // A struct always serialises to an object; anything else is a bug we
        // surface as an empty object rather than a panic.
        _ => Map::new(),
    };
    let mut map = object(serde_json::to_value(spec));
    map.extend(object(serde_json::to_value(spec.routing())));
    map
}

/// Parses and validates an API-shaped JSON object into a spec.
pub fn from_object<S: ProviderSpec>(object: Map<String, Value>) -> Valid<S> {
    let mut spec: S = deserialize_spec(object)?;
    spec.validate()?;
    spec.routing().validate("")?;
    Ok(spec)
}

/// Deserialises with the failing field's path (`smtpConfig.port`) kept for
/// the error: the routing keys as [`RoutingAttributes`], the rest as `S`.
fn deserialize_spec<S: ProviderSpec>(mut object: Map<String, Value>) -> Valid<S> {
    let routing: Map<String, Value> = ROUTING_KEYS
        .iter()
        .filter_map(|key| Some(((*key).to_owned(), object.remove(*key)?)))
        .collect();
    let attributes: RoutingAttributes = deserialize_path(Value::Object(routing))?;
    let mut spec: S = deserialize_path(Value::Object(object))?;
    *spec.routing_mut() = attributes;
    Ok(spec)
}

fn deserialize_path<T: DeserializeOwned>(value: Value) -> Valid<T> {
    serde_path_to_error::deserialize::<_, T>(value)
        .map_err(|e| crate::validate::from_serde(&e.path().to_string(), &e.inner().to_string()))
}

/// Cuts a spec into stored settings and sealed secrets.
pub fn split<S: ProviderSpec>(spec: &S) -> SplitSpec {
    let mut settings = to_object(spec);
    for key in COLUMN_KEYS {
        settings.remove(key);
    }
    let mut secrets = Map::new();
    for path in S::SECRET_PATHS {
        if let Some(value) = take_path(&mut settings, path) {
            if !value.is_null() {
                secrets.insert((*path).to_owned(), value);
            }
        }
    }
    SplitSpec { settings, secrets }
}

/// Rebuilds a spec from its columns, stored settings and opened secrets.
pub fn join<S: ProviderSpec>(
    name: &str,
    is_active: bool,
    provider_type: &str,
    split: SplitSpec,
) -> Valid<S> {
    let mut object = split.settings;
    object.insert("name".into(), Value::String(name.to_owned()));
    object.insert("isActive".into(), Value::Bool(is_active));
    object.insert(
        "providerType".into(),
        Value::String(provider_type.to_owned()),
    );
    for (path, value) in split.secrets {
        put_path(&mut object, &path, value);
    }
    deserialize_spec(object)
}

/// Applies an RFC 7396 merge patch to `target`: keys absent from `patch` are
/// kept, `null` removes, objects merge recursively, anything else replaces.
pub fn merge_patch(target: &mut Map<String, Value>, patch: &Map<String, Value>) {
    for (key, value) in patch {
        match value {
            Value::Null => {
                target.remove(key);
            }
            Value::Object(inner) => {
                let slot = target
                    .entry(key.clone())
                    .or_insert_with(|| Value::Object(Map::new()));
                if !slot.is_object() {
                    *slot = Value::Object(Map::new());
                }
                if let Value::Object(existing) = slot {
                    merge_patch(existing, inner);
                }
            }
            other => {
                target.insert(key.clone(), other.clone());
            }
        }
    }
}

/// The dotted names of the fields that differ between two specs of one
/// channel, sorted. Never includes values.
pub fn changed_fields<S: ProviderSpec>(before: &S, after: &S) -> Vec<String> {
    let mut a = Map::new();
    let mut b = Map::new();
    flatten("", &to_object(before), S::OPAQUE_PATHS, &mut a);
    flatten("", &to_object(after), S::OPAQUE_PATHS, &mut b);
    let mut names: Vec<String> = a
        .keys()
        .chain(b.keys())
        .filter(|k| a.get(*k) != b.get(*k))
        .cloned()
        .collect();
    names.sort();
    names.dedup();
    names
}

/// The dotted names of every field the spec sets, sorted (for a create's audit row).
pub fn field_names<S: ProviderSpec>(spec: &S) -> Vec<String> {
    let mut leaves = Map::new();
    flatten("", &to_object(spec), S::OPAQUE_PATHS, &mut leaves);
    leaves.into_iter().map(|(k, _)| k).collect()
}

/// The spec as a response shows it: every secret replaced by its view.
pub fn redacted_view<S: ProviderSpec>(spec: &S) -> Map<String, Value> {
    let mut object = to_object(spec);
    for path in S::SECRET_PATHS {
        let (parent_path, leaf) = match path.rsplit_once('.') {
            Some((p, l)) => (Some(p), l),
            None => (None, *path),
        };
        let parent = match parent_path {
            Some(p) => match object.get_mut(p) {
                Some(Value::Object(m)) => m,
                // The enclosing object (e.g. smtpConfig) is absent: nothing to show.
                _ => continue,
            },
            None => &mut object,
        };
        let view = match parent.get(leaf) {
            Some(Value::Object(members)) => Value::Object(
                members
                    .iter()
                    .map(|(k, v)| (k.clone(), secret_view(Some(v))))
                    .collect(),
            ),
            other => secret_view(other.filter(|v| !v.is_null())),
        };
        parent.insert(leaf.to_owned(), view);
    }
    object
}

fn secret_view(value: Option<&Value>) -> Value {
    let mut view = Map::new();
    view.insert("isSet".into(), Value::Bool(value.is_some()));
    let hint = value
        .and_then(Value::as_str)
        .and_then(|s| Secret::new(s).hint());
    view.insert("last4".into(), hint.map_or(Value::Null, Value::String));
    Value::Object(view)
}

fn take_path(object: &mut Map<String, Value>, path: &str) -> Option<Value> {
    match path.split_once('.') {
        None => object.remove(path),
        Some((head, rest)) => match object.get_mut(head) {
            Some(Value::Object(inner)) => take_path(inner, rest),
            _ => None,
        },
    }
}

fn put_path(object: &mut Map<String, Value>, path: &str, value: Value) {
    match path.split_once('.') {
        None => {
            object.insert(path.to_owned(), value);
        }
        Some((head, rest)) => {
            // A secret inside an object that is no longer configured is dropped.
            if let Some(Value::Object(inner)) = object.get_mut(head) {
                put_path(inner, rest, value);
            }
        }
    }
}

fn flatten(
    prefix: &str,
    object: &Map<String, Value>,
    opaque: &[&str],
    out: &mut Map<String, Value>,
) {
    for (key, value) in object {
        let path = if prefix.is_empty() {
            key.clone()
        } else {
            format!("{prefix}.{key}")
        };
        match value {
            Value::Object(inner) if !opaque.contains(&path.as_str()) => {
                flatten(&path, inner, opaque, out);
            }
            other => {
                out.insert(path, other.clone());
            }
        }
    }
}

/// How a `SANDBOX` connection behaves: it accepts sends without credentials
/// and simulates a provider's latency and failures, so the engine runs end to
/// end on any machine. Rates are probabilities per send.
#[derive(Debug, Clone, PartialEq, Serialize, serde::Deserialize, Default)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct SandboxConfig {
    /// Simulated provider latency per send, in milliseconds (0-60000). Default 0.
    #[serde(default)]
    pub latency_ms: u32,
    /// Share of sends failing with a transient error (like a 503), 0.0-1.0. Default 0.
    #[serde(default)]
    pub transient_failure_rate: f64,
    /// Share of sends failing permanently (like an invalid recipient), 0.0-1.0. Default 0.
    #[serde(default)]
    pub permanent_failure_rate: f64,
}

impl SandboxConfig {
    /// Checks the ranges.
    pub fn validate(&self) -> Valid<()> {
        if self.latency_ms > 60_000 {
            return Err(ValidationError::new(
                "sandboxConfig.latencyMs",
                "out_of_range",
                "sandboxConfig.latencyMs must be at most 60000",
            ));
        }
        for (field, rate) in [
            (
                "sandboxConfig.transientFailureRate",
                self.transient_failure_rate,
            ),
            (
                "sandboxConfig.permanentFailureRate",
                self.permanent_failure_rate,
            ),
        ] {
            if !(0.0..=1.0).contains(&rate) {
                return Err(ValidationError::new(
                    field,
                    "out_of_range",
                    format!("{field} must be between 0 and 1"),
                ));
            }
        }
        if self.transient_failure_rate + self.permanent_failure_rate > 1.0 {
            return Err(ValidationError::new(
                "sandboxConfig",
                "out_of_range",
                "sandboxConfig failure rates must add up to at most 1",
            ));
        }
        Ok(())
    }
}

/// Any channel's spec, for code that handles all channels (the provider
/// registry, key rotation).
#[derive(Debug, Clone)]
pub enum AnyProviderSpec {
    Email(EmailProviderSpec),
    Sms(SmsProviderSpec),
    Whatsapp(WhatsappProviderSpec),
}

impl AnyProviderSpec {
    pub fn channel(&self) -> Channel {
        match self {
            AnyProviderSpec::Email(_) => Channel::Email,
            AnyProviderSpec::Sms(_) => Channel::Sms,
            AnyProviderSpec::Whatsapp(_) => Channel::Whatsapp,
        }
    }

    pub fn provider_type(&self) -> &'static str {
        match self {
            AnyProviderSpec::Email(s) => s.provider_type(),
            AnyProviderSpec::Sms(s) => s.provider_type(),
            AnyProviderSpec::Whatsapp(s) => s.provider_type(),
        }
    }

    pub fn name(&self) -> &str {
        match self {
            AnyProviderSpec::Email(s) => s.name(),
            AnyProviderSpec::Sms(s) => s.name(),
            AnyProviderSpec::Whatsapp(s) => s.name(),
        }
    }

    pub fn routing(&self) -> &RoutingAttributes {
        match self {
            AnyProviderSpec::Email(s) => s.routing(),
            AnyProviderSpec::Sms(s) => s.routing(),
            AnyProviderSpec::Whatsapp(s) => s.routing(),
        }
    }
}

/// Requires `value` for a provider type, naming the type in the error.
pub(crate) fn require<'a, T>(field: &str, value: Option<&'a T>, provider_type: &str) -> Valid<&'a T>
where
    T: ?Sized,
{
    value.ok_or_else(|| ValidationError::required(field, &format!("for {provider_type}")))
}

/// Checks a secret's shape when present.
pub(crate) fn check_secret(field: &str, value: Option<&Secret>) -> Valid<()> {
    value.map_or(Ok(()), |s| crate::validate::secret(field, s.expose()))
}

/// Checks a token that a provider which does not sign its callbacks sends
/// back in the callback URL: when present, at least
/// [`MIN_WEBHOOK_TOKEN_CHARS`] characters, so it cannot be guessed.
pub(crate) fn check_webhook_token(field: &str, value: Option<&Secret>) -> Valid<()> {
    match value {
        Some(token) if token.expose().chars().count() < MIN_WEBHOOK_TOKEN_CHARS => {
            Err(ValidationError::new(
                field,
                "token_too_short",
                format!(
                    "{field} must be at least {MIN_WEBHOOK_TOKEN_CHARS} characters: this provider \
                     does not sign its callbacks, so the token is all that authenticates them"
                ),
            ))
        }
        _ => Ok(()),
    }
}

pub(crate) fn default_true() -> bool {
    true
}

#[cfg(test)]
mod routing_tests;
