//! Email provider connections: Mailgun, Mailjet, SendGrid and SMTP.
//!
//! Credentials per type (see `docs/providers.md`):
//! - MAILGUN: `apiKey` (private API key), `domain` (the sending domain).
//! - MAILJET: `apiKey` as `API_KEY:SECRET_KEY` (Mailjet authenticates with both).
//! - SENDGRID: `apiKey` (`SG.…`).
//! - SMTP: `smtpConfig` (`host`, `port`, `tls`, optional `username` + `password`).
//!
//! Every type needs `fromEmail`. `baseUrl` overrides the provider's API base
//! (Mailgun's EU host, a local simulator).

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use super::{check_secret, check_webhook_token, default_true, require, Destination, ProviderSpec};
use crate::channel::Channel;
use crate::secret::Secret;
use crate::validate::{self as v, Valid, ValidationError};

provider_types! {
    /// The email providers msgengine speaks to.
    pub enum EmailProviderType {
        Mailgun => "MAILGUN",
        Mailjet => "MAILJET",
        Sendgrid => "SENDGRID",
        Smtp => "SMTP",
        /// Simulated provider, no credentials (see [`super::SandboxConfig`]).
        Sandbox => "SANDBOX",
    }
}

/// How an SMTP connection is secured.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SmtpTls {
    /// Plain connection upgraded with STARTTLS (usually port 587).
    Starttls,
    /// TLS from the first byte (usually port 465).
    Implicit,
    /// No TLS: only for a relay on loopback or a trusted network.
    None,
}

/// SMTP server settings.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct SmtpConfig {
    pub host: String,
    pub port: u16,
    pub tls: SmtpTls,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub username: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub password: Option<Secret>,
}

/// One email provider connection, in the API's shape.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct EmailProviderSpec {
    pub provider_type: EmailProviderType,
    pub name: String,
    #[serde(default = "default_true")]
    pub is_active: bool,
    /// Routing attributes (priority, weight, rate, costs, countries): top-level
    /// fields of the API body, read and written by `provider::to_object` /
    /// `from_object`, not by this struct's serde.
    #[serde(skip)]
    pub routing: crate::routing::RoutingAttributes,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub api_key: Option<Secret>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub domain: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub from_email: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub from_name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tracking_domain: Option<String>,
    #[serde(default)]
    pub branding_config: Map<String, Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub smtp_config: Option<SmtpConfig>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub webhook_secret: Option<Secret>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub base_url: Option<String>,
    /// SANDBOX only: the simulated behaviour.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sandbox_config: Option<super::SandboxConfig>,
}

impl ProviderSpec for EmailProviderSpec {
    const CHANNEL: Channel = Channel::Email;
    const SECRET_PATHS: &'static [&'static str] =
        &["apiKey", "smtpConfig.password", "webhookSecret"];
    const OPAQUE_PATHS: &'static [&'static str] = &["brandingConfig"];

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
        super::AnyProviderSpec::Email(self)
    }

    fn provider_type(&self) -> &'static str {
        self.provider_type.as_str()
    }

    fn destination(&self) -> Destination {
        let (fields, secrets): (&'static [&'static str], &'static [&'static str]) = match self
            .provider_type
        {
            // The sending domain is in every request path (/v3/{domain}/messages).
            EmailProviderType::Mailgun => (&["baseUrl", "domain"], &["apiKey"]),
            EmailProviderType::Mailjet | EmailProviderType::Sendgrid => (&["baseUrl"], &["apiKey"]),
            EmailProviderType::Smtp => (
                &["smtpConfig.host", "smtpConfig.port", "smtpConfig.tls"],
                &["smtpConfig.password"],
            ),
            EmailProviderType::Sandbox => return Destination::NONE,
        };
        Destination { fields, secrets }
    }

    fn validate(&mut self) -> Valid<()> {
        v::text("name", &self.name, 100)?;
        check_secret("apiKey", self.api_key.as_ref())?;
        check_secret("webhookSecret", self.webhook_secret.as_ref())?;
        if self.provider_type == EmailProviderType::Mailjet {
            // Mailjet does not sign: the token in the callback URL is all there is.
            check_webhook_token("webhookSecret", self.webhook_secret.as_ref())?;
        }
        if let Some(d) = &self.domain {
            v::hostname("domain", d)?;
        }
        if let Some(e) = &self.from_email {
            v::email("fromEmail", e)?;
        }
        v::opt_text("fromName", self.from_name.as_deref(), 200)?;
        if let Some(d) = &self.tracking_domain {
            v::hostname("trackingDomain", d)?;
        }
        v::json_object("brandingConfig", &self.branding_config, 16 * 1024)?;
        if let Some(u) = &self.base_url {
            v::http_url("baseUrl", u)?;
        }
        if let Some(smtp) = &self.smtp_config {
            validate_smtp(smtp)?;
        }
        let ty = self.provider_type.as_str();
        if let Some(sandbox) = &self.sandbox_config {
            sandbox.validate()?;
        }
        if self.provider_type == EmailProviderType::Sandbox {
            return Ok(());
        }
        require("fromEmail", self.from_email.as_ref(), ty)?;
        match self.provider_type {
            EmailProviderType::Mailgun => {
                require("apiKey", self.api_key.as_ref(), ty)?;
                require("domain", self.domain.as_ref(), ty)?;
            }
            EmailProviderType::Sendgrid => {
                require("apiKey", self.api_key.as_ref(), ty)?;
            }
            EmailProviderType::Mailjet => {
                let key = require("apiKey", self.api_key.as_ref(), ty)?;
                let well_formed = key
                    .expose()
                    .split_once(':')
                    .is_some_and(|(public, private)| !public.is_empty() && !private.is_empty());
                if !well_formed {
                    return Err(ValidationError::new(
                        "apiKey",
                        "invalid_secret",
                        "apiKey for MAILJET must be API_KEY:SECRET_KEY (both from Mailjet's API key management page)",
                    ));
                }
            }
            EmailProviderType::Smtp => {
                require("smtpConfig", self.smtp_config.as_ref(), ty)?;
            }
            EmailProviderType::Sandbox => {}
        }
        Ok(())
    }
}

fn validate_smtp(smtp: &SmtpConfig) -> Valid<()> {
    v::host("smtpConfig.host", &smtp.host)?;
    if smtp.port == 0 {
        return Err(ValidationError::new(
            "smtpConfig.port",
            "invalid_port",
            "smtpConfig.port must be between 1 and 65535",
        ));
    }
    v::opt_text("smtpConfig.username", smtp.username.as_deref(), 320)?;
    check_secret("smtpConfig.password", smtp.password.as_ref())?;
    match (&smtp.username, &smtp.password) {
        (Some(_), None) => Err(ValidationError::required(
            "smtpConfig.password",
            "when smtpConfig.username is set",
        )),
        (None, Some(_)) => Err(ValidationError::required(
            "smtpConfig.username",
            "when smtpConfig.password is set",
        )),
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::provider::{changed_fields, from_object, join, merge_patch, redacted_view, split};

    fn object(value: Value) -> Map<String, Value> {
        match value {
            Value::Object(m) => m,
            _ => Map::new(),
        }
    }

    fn smtp() -> Value {
        json!({
            "providerType": "SMTP", "name": "relay", "fromEmail": "ops@example.com",
            "smtpConfig": {"host": "smtp.example.com", "port": 587, "tls": "starttls",
                           "username": "ops", "password": "hunter2-hunter2-hunter2"},
            "webhookSecret": "whsec-0123456789abcdef"
        })
    }

    #[test]
    fn mailgun_requires_api_key_and_domain() {
        let err = from_object::<EmailProviderSpec>(object(json!({
            "providerType": "MAILGUN", "name": "mg", "fromEmail": "a@example.com", "domain": "mg.example.com"
        })))
        .err();
        assert_eq!(
            err.map(|e| (e.field, e.code)),
            Some(("apiKey".into(), "required"))
        );
    }

    #[test]
    fn unknown_provider_type_names_the_field() {
        let err = from_object::<EmailProviderSpec>(object(
            json!({"providerType": "POSTMARK", "name": "x"}),
        ))
        .err();
        assert_eq!(
            err.map(|e| (e.field, e.code)),
            Some(("providerType".into(), "unknown_value"))
        );
    }

    #[test]
    fn nested_type_errors_carry_the_dotted_path() {
        let mut bad = smtp();
        bad["smtpConfig"]["port"] = json!("587");
        let err = from_object::<EmailProviderSpec>(object(bad)).err();
        assert_eq!(err.map(|e| e.field), Some("smtpConfig.port".into()));
    }

    #[test]
    fn split_keeps_secrets_out_of_settings_and_join_restores_them() {
        let spec: EmailProviderSpec = from_object(object(smtp())).expect("valid");
        let parts = split(&spec);
        let settings = Value::Object(parts.settings.clone()).to_string();
        assert!(
            !settings.contains("hunter2") && !settings.contains("whsec"),
            "{settings}"
        );
        assert!(!parts.settings.contains_key("name"));
        let keys: Vec<_> = parts.secrets.keys().cloned().collect();
        assert_eq!(keys, ["smtpConfig.password", "webhookSecret"]);
        let back: EmailProviderSpec = join("relay", true, "SMTP", parts).expect("joins");
        assert_eq!(
            back.smtp_config
                .and_then(|s| s.password)
                .map(|p| p.expose().to_owned()),
            Some("hunter2-hunter2-hunter2".into())
        );
    }

    #[test]
    fn merge_patch_keeps_absent_secrets_and_reports_changed_names() {
        let before: EmailProviderSpec = from_object(object(smtp())).expect("valid");
        let mut merged = crate::provider::to_object(&before);
        merge_patch(
            &mut merged,
            &object(json!({"fromName": "Ops", "smtpConfig": {"port": 465, "tls": "implicit"}})),
        );
        let after: EmailProviderSpec = from_object(merged).expect("valid");
        assert_eq!(
            after
                .smtp_config
                .as_ref()
                .and_then(|s| s.password.as_ref())
                .map(|p| p.expose()),
            Some("hunter2-hunter2-hunter2")
        );
        assert_eq!(
            changed_fields(&before, &after),
            ["fromName", "smtpConfig.port", "smtpConfig.tls"]
        );
    }

    #[test]
    fn redacted_view_shows_only_whether_secrets_are_set() {
        let spec: EmailProviderSpec = from_object(object(smtp())).expect("valid");
        let view = Value::Object(redacted_view(&spec));
        let text = view.to_string();
        assert!(
            !text.contains("hunter2") && !text.contains("whsec-0123456789ab"),
            "{text}"
        );
        assert_eq!(
            view["smtpConfig"]["password"],
            json!({"isSet": true, "last4": "ter2"})
        );
        assert_eq!(view["apiKey"], json!({"isSet": false, "last4": null}));
        assert_eq!(view["webhookSecret"]["last4"], json!("cdef"));
    }

    #[test]
    fn smtp_username_without_password_is_rejected() {
        let mut bad = smtp();
        bad["smtpConfig"]
            .as_object_mut()
            .map(|m| m.remove("password"));
        let err = from_object::<EmailProviderSpec>(object(bad)).err();
        assert_eq!(err.map(|e| e.field), Some("smtpConfig.password".into()));
    }
}
