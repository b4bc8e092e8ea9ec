//! Routing attributes as top-level fields of every provider body: parsed,
//! validated, stored in the settings, audited and shown like any field.

use serde_json::{json, Map, Value};

use super::*;
use crate::routing::Country;

fn object(value: Value) -> Map<String, Value> {
    match value {
        Value::Object(map) => map,
        _ => panic!("an object"),
    }
}

fn sandbox(extra: Value) -> Map<String, Value> {
    let mut body = object(json!({"providerType": "SANDBOX", "name": "sim"}));
    body.extend(object(extra));
    body
}

#[test]
fn attributes_parse_beside_the_provider_fields_and_default_when_absent() {
    let spec: SmsProviderSpec = from_object(sandbox(json!({
        "priority": 10, "weight": 300, "ratePerSecond": 1, "burst": 5,
        "costs": {"currency": "NGN", "default": 900, "countries": {"NG": 250}},
        "countries": ["NG", "ke"]
    })))
    .expect("valid");
    let routing = spec.routing();
    assert_eq!((routing.priority, routing.weight), (10, 300));
    assert_eq!((routing.rate_per_second, routing.burst), (Some(1), Some(5)));
    let ng: Country = "NG".parse().expect("country");
    assert_eq!(routing.cost(Some(ng)), Some((250, "NGN")));
    assert_eq!(routing.countries.len(), 2);

    let plain: SmsProviderSpec = from_object(sandbox(json!({}))).expect("valid");
    assert_eq!(
        *plain.routing(),
        crate::routing::RoutingAttributes::default()
    );
}

#[test]
fn bad_attributes_are_refused_naming_the_field() {
    let cases = [
        (json!({"priority": -1}), "priority"),
        (json!({"weight": 5000}), "weight"),
        (json!({"weight": "heavy"}), "weight"),
        (json!({"burst": 3}), "ratePerSecond"),
        (
            json!({"costs": {"currency": "naira", "default": 1}}),
            "costs.currency",
        ),
        (
            json!({"costs": {"currency": "NGN", "countries": {"XX": 1}}}),
            "costs.countries",
        ),
        (json!({"countries": ["NG", "Narnia"]}), "countries[1]"),
    ];
    for (extra, field) in cases {
        let err = from_object::<SmsProviderSpec>(sandbox(extra.clone())).expect_err("invalid");
        assert!(err.field.starts_with(field), "{extra}: {err}");
    }
    // An unknown field is still refused.
    let err = from_object::<SmsProviderSpec>(sandbox(json!({"prority": 1}))).expect_err("typo");
    assert_eq!(err.code, "unknown_field");
}

#[test]
fn attributes_are_stored_as_settings_and_read_back() {
    let spec: WhatsappProviderSpec = from_object(object(json!({
        "providerType": "SANDBOX", "name": "wa", "priority": 5, "countries": ["NG"]
    })))
    .expect("valid");
    let split = split(&spec);
    assert_eq!(split.settings["priority"], 5);
    assert_eq!(split.settings["countries"], json!(["NG"]));
    let back: WhatsappProviderSpec = join("wa", true, "SANDBOX", split).expect("joins");
    assert_eq!(back.routing(), spec.routing());
    // Rows stored before the attributes existed read as the defaults.
    let old = SplitSpec {
        settings: Map::new(),
        secrets: Map::new(),
    };
    let old: WhatsappProviderSpec = join("wa", true, "SANDBOX", old).expect("joins");
    assert_eq!(
        old.routing().priority,
        crate::routing::attributes::DEFAULT_PRIORITY
    );
}

#[test]
fn an_update_names_the_attributes_it_changed() {
    let before: EmailProviderSpec = from_object(object(json!({
        "providerType": "SANDBOX", "name": "mail", "priority": 50,
        "costs": {"currency": "USD", "default": 1}
    })))
    .expect("valid");
    let mut merged = to_object(&before);
    merge_patch(
        &mut merged,
        &object(json!({"priority": 40, "costs": {"default": 2}, "weight": null})),
    );
    let after: EmailProviderSpec = from_object(merged).expect("valid");
    assert_eq!(after.routing().priority, 40);
    assert_eq!(
        after.routing().weight,
        crate::routing::attributes::DEFAULT_WEIGHT,
        "null resets"
    );
    let changed = changed_fields(&before, &after);
    assert_eq!(changed, ["costs.default", "priority"]);
    let view = redacted_view(&after);
    assert_eq!(view["priority"], 40);
    assert_eq!(view["costs"]["currency"], "USD");
}

#[test]
fn the_routing_keys_are_exactly_the_attributes_fields() {
    // from_object takes ROUTING_KEYS out of a body for RoutingAttributes: a
    // field added to one and not the other would be refused as unknown.
    let full: crate::routing::RoutingAttributes = serde_json::from_value(json!({
        "priority": 1, "weight": 1, "ratePerSecond": 1, "burst": 1,
        "costs": {"currency": "NGN", "default": 1}, "countries": ["NG"]
    }))
    .expect("every field set");
    let Value::Object(fields) = serde_json::to_value(&full).expect("json") else {
        panic!("an object");
    };
    let mut keys: Vec<&str> = fields.keys().map(String::as_str).collect();
    let mut want = ROUTING_KEYS.to_vec();
    keys.sort_unstable();
    want.sort_unstable();
    assert_eq!(keys, want);
}
