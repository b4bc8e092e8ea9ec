//! Secrets stay bound to where they were entered.
//!
//! A connection's secrets are write-only: the API never shows them, and an
//! update (a JSON merge patch) keeps the stored ones when it leaves them out.
//! Without a rule, whoever holds an API key could point the connection
//! elsewhere (`baseUrl`, the SMTP host) and have the engine present the
//! stored key to a host of their choosing on the next send or test.
//!
//! Invariant: an update that changes any field deciding where credentials
//! are sent (the provider type, the API host, the SMTP host, port or TLS
//! mode, an account identifier in the request path) must carry, in the same
//! request, every secret that is sent there and stays set; otherwise it is
//! refused with a 422 naming the first such secret. Each spec lists its
//! fields per provider type ([`super::ProviderSpec::destination`]).

use serde_json::{Map, Value};

use super::{changed_fields, to_object, ProviderSpec};
use crate::validate::{Valid, ValidationError};

/// Shortest token accepted for providers that do not sign their callbacks
/// (the token in the callback URL is then the only proof of origin).
pub const MIN_WEBHOOK_TOKEN_CHARS: usize = 16;

/// Where a provider type sends its credentials.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Destination {
    /// Dotted paths of the fields that decide where credentials are sent:
    /// the API host (`baseUrl`), the SMTP host, port and TLS mode, account
    /// identifiers that go into request paths. `providerType` always counts
    /// and is not listed.
    pub fields: &'static [&'static str],
    /// Dotted paths of the secrets sent to that destination (API keys,
    /// tokens, passwords). Webhook secrets are not among them: they are
    /// checked on what providers send to us and never leave the engine.
    pub secrets: &'static [&'static str],
}

impl Destination {
    /// A type that sends no credentials anywhere (SANDBOX).
    pub const NONE: Destination = Destination {
        fields: &[],
        secrets: &[],
    };
}

/// Refuses an update from `before` to `after` (through `patch`, the request
/// body) that changes where credentials are sent without re-entering them.
///
/// "Re-entered" means present and non-null in `patch` at the secret's path;
/// only secrets still set after the update are required (one cleared by the
/// patch is not sent anywhere).
pub fn check_destination_change<S: ProviderSpec>(
    before: &S,
    after: &S,
    patch: &Map<String, Value>,
) -> Valid<()> {
    let (old, new) = (before.destination(), after.destination());
    let changed = changed_fields(before, after);
    let Some(moved) = changed.iter().find(|field| {
        let field = field.as_str();
        field == "providerType" || old.fields.contains(&field) || new.fields.contains(&field)
    }) else {
        return Ok(());
    };
    let stored = to_object(after);
    for path in new.secrets {
        let is_set = |object: &Map<String, Value>| value_at(object, path).is_some();
        if is_set(&stored) && !is_set(patch) {
            return Err(ValidationError::new(
                *path,
                "secret_required",
                format!(
                    "{path} must be sent again in the same request when {moved} changes: a \
                     stored secret is never sent to a new destination"
                ),
            ));
        }
    }
    Ok(())
}

/// The non-null value at a dotted path.
fn value_at<'a>(object: &'a Map<String, Value>, path: &str) -> Option<&'a Value> {
    let value = match path.split_once('.') {
        None => object.get(path),
        Some((head, rest)) => match object.get(head) {
            Some(Value::Object(inner)) => return value_at(inner, rest),
            _ => None,
        },
    };
    value.filter(|v| !v.is_null())
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::provider::{
        from_object, merge_patch, EmailProviderSpec, SmsProviderSpec, WhatsappProviderSpec,
    };

    fn object(value: Value) -> Map<String, Value> {
        match value {
            Value::Object(m) => m,
            _ => Map::new(),
        }
    }

    /// Applies `patch` to `stored` and checks the rule: the field the
    /// refusal names, or `None` when the update is allowed.
    fn refusal<S: ProviderSpec>(stored: &Value, patch: Value) -> Option<String> {
        let before: S = from_object(object(stored.clone())).expect("valid stored spec");
        let patch = object(patch);
        let mut merged = to_object(&before);
        merge_patch(&mut merged, &patch);
        let after: S = from_object(merged).expect("valid merged spec");
        check_destination_change(&before, &after, &patch)
            .err()
            .map(|e| {
                assert_eq!(e.code, "secret_required");
                e.field
            })
    }

    const SID: &str = "AC0123456789abcdef0123456789abcdef";
    const SID2: &str = "ACfedcba9876543210fedcba9876543210";

    fn mailgun() -> Value {
        json!({"providerType": "MAILGUN", "name": "mg", "fromEmail": "a@example.com",
               "domain": "mg.example.com", "apiKey": "key-0123456789abcdef",
               "webhookSecret": "whsec-0123456789abcdef"})
    }

    fn smtp() -> Value {
        json!({"providerType": "SMTP", "name": "relay", "fromEmail": "a@example.com",
               "smtpConfig": {"host": "smtp.example.com", "port": 587, "tls": "starttls",
                              "username": "ops", "password": "hunter2-hunter2"}})
    }

    #[test]
    fn email_destination_changes_need_the_secret_sent_there() {
        let mg = mailgun();
        let relay = smtp();
        let cases: Vec<(&Value, Value, Option<&str>)> = vec![
            (
                &mg,
                json!({"baseUrl": "https://somewhere-else"}),
                Some("apiKey"),
            ),
            (
                &mg,
                json!({"baseUrl": "https://somewhere-else", "apiKey": "key-0123456789abcdef"}),
                None,
            ),
            (&mg, json!({"domain": "other.example.com"}), Some("apiKey")),
            (
                &mg,
                json!({"fromName": "Ops", "webhookSecret": "whsec-fedcba9876543210"}),
                None,
            ),
            (&mg, json!({"baseUrl": null}), None),
            (
                &relay,
                json!({"smtpConfig": {"host": "mx.evil.example"}}),
                Some("smtpConfig.password"),
            ),
            (
                &relay,
                json!({"smtpConfig": {"port": 2525}}),
                Some("smtpConfig.password"),
            ),
            (
                &relay,
                json!({"smtpConfig": {"tls": "implicit"}}),
                Some("smtpConfig.password"),
            ),
            (
                &relay,
                json!({"smtpConfig": {"host": "mx.example.net", "password": "hunter2-hunter2"}}),
                None,
            ),
            (&relay, json!({"smtpConfig": {"username": "ops2"}}), None),
            (
                &relay,
                json!({"smtpConfig": {"host": "mx.example.net", "username": null, "password": null}}),
                None,
            ),
            (
                &mg,
                json!({"providerType": "SENDGRID", "domain": null}),
                Some("apiKey"),
            ),
        ];
        for (stored, patch, expected) in cases {
            let shown = patch.to_string();
            assert_eq!(
                refusal::<EmailProviderSpec>(stored, patch).as_deref(),
                expected,
                "{shown}"
            );
        }
    }

    #[test]
    fn sms_destination_changes_need_the_credential_sent_there() {
        let twilio = json!({"providerType": "TWILIO", "name": "tw", "senderId": "Acme",
            "credentials": {"accountSid": SID, "authToken": "0123456789abcdef0123456789abcdef"}});
        let at = json!({"providerType": "AFRICASTALKING", "name": "at",
            "credentials": {"username": "acme", "apiKey": "atsk_0123456789abcdef"}});
        let termii = json!({"providerType": "TERMII", "name": "t", "senderId": "Acme",
            "credentials": {"apiKey": "TL-0123456789abcdef"}});
        let cases: Vec<(&Value, Value, Option<&str>)> = vec![
            (
                &twilio,
                json!({"credentials": {"accountSid": SID2}}),
                Some("credentials.authToken"),
            ),
            (
                &twilio,
                json!({"credentials": {"accountSid": SID2, "authToken": "fedcba9876543210fedcba9876543210"}}),
                None,
            ),
            (
                &twilio,
                json!({"baseUrl": "http://127.0.0.1:9"}),
                Some("credentials.authToken"),
            ),
            (&twilio, json!({"senderId": "Other"}), None),
            (
                &at,
                json!({"credentials": {"username": "sandbox"}}),
                Some("credentials.apiKey"),
            ),
            (
                &at,
                json!({"baseUrl": "https://at.example"}),
                Some("credentials.apiKey"),
            ),
            (
                &at,
                json!({"baseUrl": "https://at.example", "credentials": {"apiKey": "atsk_0123456789abcdef"}}),
                None,
            ),
            (
                &termii,
                json!({"baseUrl": "https://t.example"}),
                Some("credentials.apiKey"),
            ),
            (&termii, json!({"senderId": "Other"}), None),
        ];
        for (stored, patch, expected) in cases {
            let shown = patch.to_string();
            assert_eq!(
                refusal::<SmsProviderSpec>(stored, patch).as_deref(),
                expected,
                "{shown}"
            );
        }
    }

    #[test]
    fn whatsapp_destination_changes_need_the_access_token() {
        let meta = json!({"providerType": "META_CLOUD", "name": "m", "accessToken": "EAAG-0123456789abcdef",
            "phoneNumberId": "1234567890", "businessAccountId": "998877",
            "webhookVerifyToken": "verify-0123456789abcdef"});
        let twilio = json!({"providerType": "TWILIO", "name": "tw", "accessToken": "0123456789abcdef0123456789abcdef",
            "businessAccountId": SID, "phoneNumber": "+2348031234567"});
        let gupshup = json!({"providerType": "GUPSHUP", "name": "g", "accessToken": "gs-0123456789abcdef",
            "phoneNumber": "+2348031234567", "appName": "acme"});
        let aisensy =
            json!({"providerType": "AISENSY", "name": "a", "accessToken": "as-0123456789abcdef"});
        let cases: Vec<(&Value, Value, Option<&str>)> = vec![
            (&meta, json!({"phoneNumberId": "555"}), Some("accessToken")),
            (
                &meta,
                json!({"businessAccountId": "1"}),
                Some("accessToken"),
            ),
            (
                &meta,
                json!({"baseUrl": "https://graph.example"}),
                Some("accessToken"),
            ),
            (
                &meta,
                json!({"phoneNumberId": "555", "accessToken": "EAAG-0123456789abcdef"}),
                None,
            ),
            (
                &meta,
                json!({"webhookVerifyToken": "verify-fedcba9876543210", "displayName": "Acme"}),
                None,
            ),
            (
                &twilio,
                json!({"businessAccountId": SID2}),
                Some("accessToken"),
            ),
            (&twilio, json!({"phoneNumber": "+2348031234568"}), None),
            (&gupshup, json!({"appName": "other"}), Some("accessToken")),
            (
                &gupshup,
                json!({"baseUrl": "https://gs.example"}),
                Some("accessToken"),
            ),
            (
                &aisensy,
                json!({"baseUrl": "https://as.example"}),
                Some("accessToken"),
            ),
            (&aisensy, json!({"about": "hi"}), None),
        ];
        for (stored, patch, expected) in cases {
            let shown = patch.to_string();
            assert_eq!(
                refusal::<WhatsappProviderSpec>(stored, patch).as_deref(),
                expected,
                "{shown}"
            );
        }
    }

    #[test]
    fn sandbox_connections_have_no_destination() {
        let sandbox =
            json!({"providerType": "SANDBOX", "name": "s", "baseUrl": "http://127.0.0.1:1"});
        assert_eq!(
            refusal::<SmsProviderSpec>(&sandbox, json!({"baseUrl": "http://10.0.0.1"})),
            None
        );
    }
}
