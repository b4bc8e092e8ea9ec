//! SMS provider connections: Twilio, Africa's Talking and Termii.
//!
//! `credentials` is one JSON object holding the provider's secrets, sealed as
//! a whole (see `docs/providers.md`):
//! - TWILIO: `accountSid` + `authToken`, or `accountSid` + `apiKeySid` + `apiKeySecret`.
//!   `senderId`: an E.164 number, an alphanumeric sender id, or a Messaging Service SID (`MG…`).
//! - AFRICASTALKING: `username` + `apiKey` (`username` is `sandbox` on the sandbox).
//!   `senderId` optional (a registered alphanumeric sender id or short code).
//! - TERMII: `apiKey`. `senderId` required (a registered 3-11 character sender id).
//!   `baseUrl` is account-specific at Termii and should be set from its dashboard.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::{check_webhook_token, default_true, Destination, ProviderSpec};
use crate::channel::Channel;
use crate::secret::Secret;
use crate::validate::{self as v, Valid, ValidationError};

provider_types! {
    /// The SMS providers msgengine speaks to.
    pub enum SmsProviderType {
        Twilio => "TWILIO",
        Africastalking => "AFRICASTALKING",
        Termii => "TERMII",
        /// Simulated provider, no credentials (see [`super::SandboxConfig`]).
        Sandbox => "SANDBOX",
    }
}

impl SmsProviderType {
    /// The credential names this type accepts: (name, required).
    fn credential_names(self) -> &'static [(&'static str, bool)] {
        match self {
            Self::Twilio => &[
                ("accountSid", true),
                ("authToken", false),
                ("apiKeySid", false),
                ("apiKeySecret", false),
            ],
            // webhookToken: Africa's Talking does not sign its delivery
            // reports; the callback URL carries this token instead.
            Self::Africastalking => &[
                ("username", true),
                ("apiKey", true),
                ("webhookToken", false),
            ],
            // webhookSecret: the key Termii signs its delivery webhooks with.
            Self::Termii => &[("apiKey", true), ("webhookSecret", false)],
            Self::Sandbox => &[],
        }
    }
}

/// One SMS provider connection, in the API's shape.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct SmsProviderSpec {
    pub provider_type: SmsProviderType,
    pub name: String,
    #[serde(default = "default_true")]
    pub is_active: bool,
    /// Routing attributes (priority, weight, rate, costs, countries): top-level
    /// fields of the API body, read and written by `provider::to_object` /
    /// `from_object`, not by this struct's serde.
    #[serde(skip)]
    pub routing: crate::routing::RoutingAttributes,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sender_id: Option<String>,
    #[serde(default)]
    pub credentials: BTreeMap<String, Secret>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub base_url: Option<String>,
    /// SANDBOX only: the simulated behaviour.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sandbox_config: Option<super::SandboxConfig>,
}

impl SmsProviderSpec {
    /// A credential by name.
    pub fn credential(&self, name: &str) -> Option<&Secret> {
        self.credentials.get(name)
    }
}

impl ProviderSpec for SmsProviderSpec {
    const CHANNEL: Channel = Channel::Sms;
    const SECRET_PATHS: &'static [&'static str] = &["credentials"];
    const OPAQUE_PATHS: &'static [&'static str] = &[];

    fn name(&self) -> &str {
        &self.name
    }

    fn routing(&self) -> &crate::routing::RoutingAttributes {
        &self.routing
    }

    fn routing_mut(&mut self) -> &mut crate::routing::RoutingAttributes {
        &mut self.routing
    }

    fn is_active(&self) -> bool {
        self.is_active
    }

    fn into_any(self) -> super::AnyProviderSpec {
        super::AnyProviderSpec::Sms(self)
    }

    fn provider_type(&self) -> &'static str {
        self.provider_type.as_str()
    }

    fn destination(&self) -> Destination {
        let (fields, secrets): (&'static [&'static str], &'static [&'static str]) =
            match self.provider_type {
                // The Account SID is in every request path (/Accounts/{sid}/…).
                SmsProviderType::Twilio => (
                    &["baseUrl", "credentials.accountSid"],
                    &["credentials.authToken", "credentials.apiKeySecret"],
                ),
                // The username `sandbox` switches to Africa's Talking's sandbox host.
                SmsProviderType::Africastalking => (
                    &["baseUrl", "credentials.username"],
                    &["credentials.apiKey"],
                ),
                SmsProviderType::Termii => (&["baseUrl"], &["credentials.apiKey"]),
                SmsProviderType::Sandbox => return Destination::NONE,
            };
        Destination { fields, secrets }
    }

    fn validate(&mut self) -> Valid<()> {
        v::text("name", &self.name, 100)?;
        if let Some(u) = &self.base_url {
            v::http_url("baseUrl", u)?;
        }
        if let Some(sandbox) = &self.sandbox_config {
            sandbox.validate()?;
        }
        self.validate_credentials()?;
        self.validate_sender()
    }
}

impl SmsProviderSpec {
    fn validate_credentials(&self) -> Valid<()> {
        let ty = self.provider_type;
        let names = ty.credential_names();
        for (name, secret) in &self.credentials {
            let field = format!("credentials.{name}");
            if !names.iter().any(|(n, _)| n == name) {
                let allowed: Vec<&str> = names.iter().map(|(n, _)| *n).collect();
                return Err(ValidationError::new(
                    field,
                    "unknown_field",
                    format!(
                        "{} takes only these credentials: {}",
                        ty.as_str(),
                        allowed.join(", ")
                    ),
                ));
            }
            v::secret(&field, secret.expose())?;
            if name == "webhookToken" {
                check_webhook_token(&field, Some(secret))?;
            }
        }
        for (name, required) in names {
            if *required && !self.credentials.contains_key(*name) {
                return Err(ValidationError::required(
                    format!("credentials.{name}"),
                    &format!("for {}", ty.as_str()),
                ));
            }
        }
        if ty == SmsProviderType::Twilio {
            self.validate_twilio_credentials()?;
        }
        Ok(())
    }

    fn validate_twilio_credentials(&self) -> Valid<()> {
        let sid = self
            .credential("accountSid")
            .map(Secret::expose)
            .unwrap_or("");
        if !v::is_prefixed_hex(sid, "AC", 32) {
            return Err(ValidationError::new(
                "credentials.accountSid",
                "invalid_format",
                "credentials.accountSid must be AC followed by 32 hexadecimal characters",
            ));
        }
        let has_token = self.credentials.contains_key("authToken");
        let key_sid = self.credential("apiKeySid");
        let key_secret = self.credential("apiKeySecret");
        match (has_token, key_sid, key_secret) {
            (true, None, None) => Ok(()),
            (false, Some(k), Some(_)) if v::is_prefixed_hex(k.expose(), "SK", 32) => Ok(()),
            (false, Some(_), Some(_)) => Err(ValidationError::new(
                "credentials.apiKeySid",
                "invalid_format",
                "credentials.apiKeySid must be SK followed by 32 hexadecimal characters",
            )),
            _ => Err(ValidationError::new(
                "credentials",
                "required",
                "TWILIO needs credentials.authToken, or credentials.apiKeySid with credentials.apiKeySecret",
            )),
        }
    }

    fn validate_sender(&mut self) -> Valid<()> {
        let ty = self.provider_type;
        let Some(sender) = self.sender_id.clone() else {
            return match ty {
                SmsProviderType::Africastalking | SmsProviderType::Sandbox => Ok(()),
                _ => Err(ValidationError::required(
                    "senderId",
                    &format!("for {}", ty.as_str()),
                )),
            };
        };
        let invalid = |what: &str| {
            Err(ValidationError::new(
                "senderId",
                "invalid_sender_id",
                format!("senderId for {} must be {what}", ty.as_str()),
            ))
        };
        match ty {
            SmsProviderType::Twilio if sender.starts_with('+') => {
                self.sender_id = Some(v::e164("senderId", &sender)?);
                Ok(())
            }
            SmsProviderType::Twilio if v::is_prefixed_hex(&sender, "MG", 32) => Ok(()),
            SmsProviderType::Twilio if is_alphanumeric_sender(&sender, 1, 11) => Ok(()),
            SmsProviderType::Twilio => invalid(
                "an E.164 number, a Messaging Service SID (MG…) or 1-11 letters, digits and spaces with at least one letter",
            ),
            SmsProviderType::Africastalking
                if is_alphanumeric_sender(&sender, 1, 11) || is_short_code(&sender) =>
            {
                Ok(())
            }
            SmsProviderType::Africastalking => invalid("an alphanumeric sender id (up to 11 characters) or a short code"),
            SmsProviderType::Termii if is_alphanumeric_sender(&sender, 3, 11) => Ok(()),
            SmsProviderType::Termii => invalid("3 to 11 letters, digits and spaces, with at least one letter"),
            // Any text the other types could carry, within the documented
            // bound (an MG… Messaging Service SID is the longest, 34).
            SmsProviderType::Sandbox
                if sender.chars().count() <= MAX_SENDER_CHARS
                    && !sender.contains(char::is_control) =>
            {
                Ok(())
            }
            SmsProviderType::Sandbox => invalid("at most 34 characters, without control characters"),
        }
    }
}

/// The longest sender of any type (`MG` + 32 hexadecimal characters), the
/// `maxLength` the OpenAPI description gives `senderId`.
const MAX_SENDER_CHARS: usize = 34;

/// An alphanumeric sender id: `min..=max` ASCII letters, digits or spaces,
/// at least one letter (GSM networks reject all-digit alphanumeric ids).
fn is_alphanumeric_sender(s: &str, min: usize, max: usize) -> bool {
    (min..=max).contains(&s.len())
        && s.bytes().all(|b| b.is_ascii_alphanumeric() || b == b' ')
        && s.bytes().any(|b| b.is_ascii_alphabetic())
        && s.trim() == s
}

fn is_short_code(s: &str) -> bool {
    (3..=8).contains(&s.len()) && s.bytes().all(|b| b.is_ascii_digit())
}

#[cfg(test)]
mod tests {
    use serde_json::{json, Map, Value};

    use super::*;
    use crate::provider::{from_object, redacted_view, split};

    fn parse(value: Value) -> Valid<SmsProviderSpec> {
        match value {
            Value::Object(m) => from_object(m),
            _ => from_object(Map::new()),
        }
    }

    const SID: &str = "AC0123456789abcdef0123456789abcdef";

    #[test]
    fn termii_needs_api_key_and_a_registered_sender_id() {
        let ok = parse(
            json!({"providerType": "TERMII", "name": "t", "senderId": "Acme",
                              "credentials": {"apiKey": "TL-0123456789abcdef"}}),
        );
        assert!(ok.is_ok());
        let err = parse(
            json!({"providerType": "TERMII", "name": "t", "senderId": "Acme", "credentials": {}}),
        )
        .err();
        assert_eq!(err.map(|e| e.field), Some("credentials.apiKey".into()));
        let err = parse(
            json!({"providerType": "TERMII", "name": "t", "senderId": "A!",
                               "credentials": {"apiKey": "k"}}),
        )
        .err();
        assert_eq!(err.map(|e| e.field), Some("senderId".into()));
    }

    #[test]
    fn twilio_accepts_token_or_api_key_pairs_and_normalises_numbers() {
        let spec = parse(json!({"providerType": "TWILIO", "name": "tw", "senderId": "+2348031234567",
                                "credentials": {"accountSid": SID, "authToken": "0123456789abcdef0123456789abcdef"}}))
        .expect("valid");
        assert_eq!(spec.sender_id.as_deref(), Some("+2348031234567"));
        let err = parse(
            json!({"providerType": "TWILIO", "name": "tw", "senderId": "Acme",
                               "credentials": {"accountSid": SID}}),
        )
        .err();
        assert_eq!(err.map(|e| e.field), Some("credentials".into()));
        let err = parse(
            json!({"providerType": "TWILIO", "name": "tw", "senderId": "Acme",
                               "credentials": {"accountSid": "AC12", "authToken": "t"}}),
        )
        .err();
        assert_eq!(err.map(|e| e.field), Some("credentials.accountSid".into()));
    }

    #[test]
    fn unknown_credentials_are_rejected() {
        let err = parse(json!({"providerType": "AFRICASTALKING", "name": "at",
                               "credentials": {"username": "sandbox", "apiKey": "k", "password": "p"}})).err();
        assert_eq!(
            err.map(|e| (e.field, e.code)),
            Some(("credentials.password".into(), "unknown_field"))
        );
    }

    #[test]
    fn credentials_are_sealed_as_a_whole_and_shown_per_name() {
        let spec = parse(json!({"providerType": "AFRICASTALKING", "name": "at",
                                "credentials": {"username": "sandbox", "apiKey": "atsk_0123456789abcdef"}}))
        .expect("valid");
        let parts = split(&spec);
        assert!(parts.settings.get("credentials").is_none());
        assert_eq!(parts.secrets.keys().collect::<Vec<_>>(), ["credentials"]);
        let view = Value::Object(redacted_view(&spec));
        assert_eq!(
            view["credentials"]["apiKey"],
            json!({"isSet": true, "last4": "cdef"})
        );
        assert_eq!(
            view["credentials"]["username"],
            json!({"isSet": true, "last4": null})
        );
    }
}
