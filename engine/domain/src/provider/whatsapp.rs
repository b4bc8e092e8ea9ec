//! WhatsApp provider connections: Meta Cloud API, Twilio, Gupshup, AiSensy, Interakt.
//!
//! Field use per type (see `docs/providers.md`):
//! - META_CLOUD: `accessToken` (system-user token), `phoneNumberId`;
//!   `businessAccountId` (WABA id) is needed for template management.
//! - TWILIO: `businessAccountId` = the Account SID (`AC…`), `accessToken` = the
//!   Auth Token, `phoneNumber` = the WhatsApp-enabled sender.
//! - GUPSHUP: `accessToken` = the API key, `phoneNumber` = the source number,
//!   `appName` = the Gupshup app name (`src.name`).
//! - AISENSY, INTERAKT: `accessToken` = the API key.
//!
//! `webhookVerifyToken` (Meta's GET handshake token) is a secret as well, and
//! so is `webhookSecret`: what authenticates the provider's callbacks (Meta's
//! app secret for `X-Hub-Signature-256`, Interakt's webhook secret; for
//! Gupshup and AiSensy, which do not sign, a token the callback URL carries).

use serde::{Deserialize, Serialize};

use super::{check_secret, check_webhook_token, default_true, require, Destination, ProviderSpec};
use crate::channel::Channel;
use crate::secret::Secret;
use crate::validate::{self as v, Valid, ValidationError};

provider_types! {
    /// The WhatsApp providers msgengine speaks to.
    pub enum WhatsappProviderType {
        Aisensy => "AISENSY",
        Interakt => "INTERAKT",
        Gupshup => "GUPSHUP",
        Twilio => "TWILIO",
        MetaCloud => "META_CLOUD",
        /// Simulated provider, no credentials (see [`super::SandboxConfig`]).
        Sandbox => "SANDBOX",
    }
}

/// One WhatsApp provider connection, in the API's shape.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct WhatsappProviderSpec {
    pub provider_type: WhatsappProviderType,
    pub name: String,
    #[serde(default = "default_true")]
    pub is_active: bool,
    /// Routing attributes (priority, weight, rate, costs, countries): top-level
    /// fields of the API body, read and written by `provider::to_object` /
    /// `from_object`, not by this struct's serde.
    #[serde(skip)]
    pub routing: crate::routing::RoutingAttributes,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub phone_number: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub phone_number_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub business_account_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub access_token: Option<Secret>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub webhook_verify_token: Option<Secret>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub webhook_secret: Option<Secret>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub webhook_url: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub display_name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub about: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub profile_picture_url: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub business_category: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub app_name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub base_url: Option<String>,
    /// SANDBOX only: the simulated behaviour.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sandbox_config: Option<super::SandboxConfig>,
}

impl ProviderSpec for WhatsappProviderSpec {
    const CHANNEL: Channel = Channel::Whatsapp;
    const SECRET_PATHS: &'static [&'static str] =
        &["accessToken", "webhookVerifyToken", "webhookSecret"];
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
        super::AnyProviderSpec::Whatsapp(self)
    }

    fn provider_type(&self) -> &'static str {
        self.provider_type.as_str()
    }

    fn destination(&self) -> Destination {
        let fields: &'static [&'static str] = match self.provider_type {
            // Both ids go into Graph API paths (/{phone-number-id}/messages,
            // /{waba-id}/message_templates).
            WhatsappProviderType::MetaCloud => &["baseUrl", "phoneNumberId", "businessAccountId"],
            // The Account SID is in every request path.
            WhatsappProviderType::Twilio => &["baseUrl", "businessAccountId"],
            // The app name is in the template-list path.
            WhatsappProviderType::Gupshup => &["baseUrl", "appName"],
            WhatsappProviderType::Aisensy | WhatsappProviderType::Interakt => &["baseUrl"],
            WhatsappProviderType::Sandbox => return Destination::NONE,
        };
        Destination {
            fields,
            secrets: &["accessToken"],
        }
    }

    fn validate(&mut self) -> Valid<()> {
        v::text("name", &self.name, 100)?;
        check_secret("accessToken", self.access_token.as_ref())?;
        check_secret("webhookVerifyToken", self.webhook_verify_token.as_ref())?;
        check_secret("webhookSecret", self.webhook_secret.as_ref())?;
        if matches!(
            self.provider_type,
            WhatsappProviderType::Gupshup | WhatsappProviderType::Aisensy
        ) {
            // Neither signs its callbacks: the token in the URL is all there is.
            check_webhook_token("webhookSecret", self.webhook_secret.as_ref())?;
        }
        if let Some(p) = &self.phone_number {
            self.phone_number = Some(v::e164("phoneNumber", p)?);
        }
        if let Some(id) = &self.phone_number_id {
            if id.is_empty() || id.len() > 32 || !id.bytes().all(|b| b.is_ascii_digit()) {
                return Err(ValidationError::new(
                    "phoneNumberId",
                    "invalid_format",
                    "phoneNumberId must be the numeric id Meta shows for the phone number",
                ));
            }
        }
        v::opt_text("businessAccountId", self.business_account_id.as_deref(), 64)?;
        for (field, url) in [
            ("webhookUrl", &self.webhook_url),
            ("profilePictureUrl", &self.profile_picture_url),
            ("baseUrl", &self.base_url),
        ] {
            if let Some(u) = url {
                v::http_url(field, u)?;
            }
        }
        v::opt_text("displayName", self.display_name.as_deref(), 100)?;
        // WhatsApp's own limit for the profile "about" text.
        v::opt_text("about", self.about.as_deref(), 139)?;
        v::opt_text("businessCategory", self.business_category.as_deref(), 100)?;
        v::opt_text("appName", self.app_name.as_deref(), 100)?;
        self.validate_required()
    }
}

impl WhatsappProviderSpec {
    fn validate_required(&self) -> Valid<()> {
        let ty = self.provider_type.as_str();
        if let Some(sandbox) = &self.sandbox_config {
            sandbox.validate()?;
        }
        if self.provider_type == WhatsappProviderType::Sandbox {
            return Ok(());
        }
        require("accessToken", self.access_token.as_ref(), ty)?;
        match self.provider_type {
            WhatsappProviderType::MetaCloud => {
                require("phoneNumberId", self.phone_number_id.as_ref(), ty)?;
            }
            WhatsappProviderType::Twilio => {
                let sid = require("businessAccountId", self.business_account_id.as_ref(), ty)?;
                if !v::is_prefixed_hex(sid, "AC", 32) {
                    return Err(ValidationError::new(
                        "businessAccountId",
                        "invalid_format",
                        "businessAccountId for TWILIO is the Account SID: AC followed by 32 hexadecimal characters",
                    ));
                }
                require("phoneNumber", self.phone_number.as_ref(), ty)?;
            }
            WhatsappProviderType::Gupshup => {
                require("phoneNumber", self.phone_number.as_ref(), ty)?;
                require("appName", self.app_name.as_ref(), ty)?;
            }
            WhatsappProviderType::Aisensy
            | WhatsappProviderType::Interakt
            | WhatsappProviderType::Sandbox => {}
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use serde_json::{json, Map, Value};

    use super::*;
    use crate::provider::from_object;

    fn parse(value: Value) -> Valid<WhatsappProviderSpec> {
        match value {
            Value::Object(m) => from_object(m),
            _ => from_object(Map::new()),
        }
    }

    #[test]
    fn gupshup_needs_key_source_number_and_app_name() {
        let ok = parse(
            json!({"providerType": "GUPSHUP", "name": "g", "accessToken": "gs-0123456789abcdef",
                              "phoneNumber": "+2348031234567", "appName": "acme"}),
        );
        assert!(ok.is_ok());
        let err = parse(
            json!({"providerType": "GUPSHUP", "name": "g", "accessToken": "k",
                               "phoneNumber": "+2348031234567"}),
        )
        .err();
        assert_eq!(err.map(|e| e.field), Some("appName".into()));
    }

    #[test]
    fn meta_cloud_needs_a_numeric_phone_number_id() {
        let err = parse(
            json!({"providerType": "META_CLOUD", "name": "m", "accessToken": "EAAG",
                               "phoneNumberId": "12ab"}),
        )
        .err();
        assert_eq!(err.map(|e| e.field), Some("phoneNumberId".into()));
    }

    #[test]
    fn phone_numbers_must_be_e164() {
        let err = parse(
            json!({"providerType": "AISENSY", "name": "a", "accessToken": "k",
                               "phoneNumber": "08031234567"}),
        )
        .err();
        assert_eq!(
            err.map(|e| (e.field, e.code)),
            Some(("phoneNumber".into(), "invalid_phone"))
        );
    }
}
