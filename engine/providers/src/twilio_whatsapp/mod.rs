//! Twilio WhatsApp: the same Message resource as Twilio SMS (providers.md
//! §6.1) with `whatsapp:`-prefixed addresses, through the shared
//! [`crate::twilio`] account. The connection's `businessAccountId` is the
//! Account SID, `accessToken` the Auth Token, `phoneNumber` the
//! WhatsApp-enabled sender (a Messaging Service SID `MG…` as a message's
//! `from` is sent as `MessagingServiceSid`).
//!
//! Content, from `MessageExtras`:
//! - text: `Body` (WhatsApp delivers free text only inside the 24-hour
//!   customer-service window; outside it Twilio answers 63016);
//! - template: `ContentSid` = `template.name` (a Content SID, `HX…`) and
//!   `ContentVariables` = `{"1": …, "2": …}` from `template.variables` in
//!   order; `template.language` is not sent (a Content template is one
//!   language); a template `headerMedia` is refused: a Content template holds
//!   its own media (a media URL variable goes among the variables);
//! - media: `MediaUrl` = `media.link`, the text (if any) as the caption in
//!   `Body`; `media.filename` is not sent (Twilio takes the name from the
//!   URL). A `media.mediaId` is refused: Twilio has no media upload.
//!
//! Status callbacks need a `StatusCallback` (see [`crate::twilio_sms`] for
//! why the sender takes it through [`TwilioWhatsappSender::with_status_callback`])
//! or one set on the sender in the Twilio console.

mod descriptor;

pub(crate) use descriptor::DESCRIPTOR;

use async_trait::async_trait;
use msgengine_domain::message::{OutboundMessage, WhatsappTemplate};
use msgengine_domain::provider::WhatsappProviderSpec;
use serde_json::{Map, Value};
use url::Url;

use crate::manage::{self, ProviderStatus, TemplateDraft, TemplateInfo, WhatsappAdmin};
use crate::send::{FailureKind, ProviderError, SendReceipt, Sender};
use crate::twilio::{is_messaging_service_sid, TwilioAccount, MESSAGE_ID_PARAM};

/// The address prefix of Twilio's WhatsApp channel.
const CHANNEL_PREFIX: &str = "whatsapp:";

/// A Twilio WhatsApp connection (sender and management).
pub struct TwilioWhatsappSender {
    account: TwilioAccount,
    phone_number: Option<String>,
    /// Where Twilio posts status changes; `None`: no `StatusCallback`.
    status_callback: Option<Url>,
}

impl TwilioWhatsappSender {
    /// A sender for `spec`; calls go through the shared `http` client.
    pub fn new(spec: &WhatsappProviderSpec, http: crate::http::ProviderClient) -> Self {
        Self {
            account: TwilioAccount::from_whatsapp(spec, http),
            phone_number: spec.phone_number.clone(),
            status_callback: None,
        }
    }

    /// Asks Twilio to post status changes to `url` (msgengine's public
    /// webhook URL for this connection), our message id in its query.
    pub fn with_status_callback(mut self, url: Url) -> Self {
        self.status_callback = Some(url);
        self
    }

    /// The form fields of one send, in a fixed order.
    fn form(
        &self,
        message: &OutboundMessage,
    ) -> Result<Vec<(&'static str, String)>, ProviderError> {
        let Some(sender) = message.from.as_deref().or(self.phone_number.as_deref()) else {
            return Err(ProviderError::misconfigured("TWILIO needs phoneNumber"));
        };
        let mut form = vec![("To", channel_address(&message.to))];
        if is_messaging_service_sid(sender) {
            form.push(("MessagingServiceSid", sender.to_owned()));
        } else {
            form.push(("From", channel_address(sender)));
        }
        let extras = message.extras.as_deref();
        let template = extras.and_then(|e| e.template.as_ref());
        let media = extras.and_then(|e| e.media.as_ref());
        match (template, media) {
            (Some(_), Some(_)) => {
                return Err(refused(
                    "Twilio sends a Content template or a media message, not both in one message",
                ))
            }
            (Some(template), None) => form.extend(template_fields(template)?),
            (None, Some(media)) => {
                let Some(link) = media.link.as_deref() else {
                    return Err(unsupported(
                        "Twilio takes WhatsApp media by public URL (media.link); it has no media \
                         upload, so a media.mediaId cannot be sent",
                    ));
                };
                if !message.text.is_empty() {
                    form.push(("Body", message.text.clone()));
                }
                form.push(("MediaUrl", link.to_owned()));
            }
            (None, None) => form.push(("Body", message.text.clone())),
        }
        if let Some(url) = &self.status_callback {
            let mut url = url.clone();
            url.query_pairs_mut()
                .append_pair(MESSAGE_ID_PARAM, &message.id.to_string());
            form.push(("StatusCallback", url.into()));
        }
        Ok(form)
    }
}

/// `ContentSid` and, when there are variables, `ContentVariables`.
fn template_fields(
    template: &WhatsappTemplate,
) -> Result<Vec<(&'static str, String)>, ProviderError> {
    if template.header_media.is_some() {
        return Err(unsupported(
            "a Twilio Content template holds its own header media: put a media URL variable in \
             the template and pass the URL among template.variables instead of headerMedia",
        ));
    }
    let sid = template.name.trim();
    if !msgengine_domain::validate::is_prefixed_hex(sid, "HX", 32) {
        return Err(refused(
            "for Twilio, template.name is the Content SID of a Content template: HX followed by \
             32 hexadecimal characters (Twilio console, Messaging → Content Template Builder)",
        ));
    }
    let mut fields = vec![("ContentSid", sid.to_owned())];
    if !template.variables.is_empty() {
        let variables: Map<String, Value> = template
            .variables
            .iter()
            .enumerate()
            .map(|(i, v)| ((i + 1).to_string(), Value::String(v.clone())))
            .collect();
        fields.push(("ContentVariables", Value::Object(variables).to_string()));
    }
    Ok(fields)
}

/// `whatsapp:<address>` unless the address already has the prefix.
fn channel_address(address: &str) -> String {
    if address.starts_with(CHANNEL_PREFIX) {
        address.to_owned()
    } else {
        format!("{CHANNEL_PREFIX}{}", address.trim())
    }
}

/// A message this adapter cannot send as asked: permanent, in words.
fn refused(message: &str) -> ProviderError {
    ProviderError::new(FailureKind::Permanent, message)
}

/// An operation or content Twilio does not offer: `msgengine_unsupported`.
fn unsupported(message: &str) -> ProviderError {
    let mut error = manage::unsupported("Twilio", "this");
    error.message = message.to_owned();
    error
}

#[async_trait]
impl Sender for TwilioWhatsappSender {
    async fn send(
        &self,
        message: &OutboundMessage,
        idempotency_key: &str,
    ) -> Result<SendReceipt, ProviderError> {
        let form = self.form(message)?;
        let receipt = self.account.create_message(&form, idempotency_key).await?;
        // Segments are an SMS notion; WhatsApp bills per conversation.
        Ok(SendReceipt {
            segments: None,
            ..receipt
        })
    }
}

#[async_trait]
impl WhatsappAdmin for TwilioWhatsappSender {
    async fn list_templates(&self) -> Result<Vec<TemplateInfo>, ProviderError> {
        Err(unsupported(
            "msgengine does not list Twilio WhatsApp templates: Twilio keeps them in its Content \
             API (content.twilio.com), which this adapter does not speak. Find a template's \
             Content SID (HX…) in the Twilio console under Messaging → Content Template Builder \
             and send it as template.name",
        ))
    }

    async fn create_template(&self, _draft: &TemplateDraft) -> Result<TemplateInfo, ProviderError> {
        Err(unsupported(
            "msgengine does not create Twilio WhatsApp templates: create one in the Twilio console \
             under Messaging → Content Template Builder and submit it for WhatsApp approval there",
        ))
    }

    async fn upload_media(
        &self,
        _bytes: Vec<u8>,
        _mime_type: &str,
        _filename: &str,
    ) -> Result<String, ProviderError> {
        Err(unsupported(
            "Twilio has no media upload for WhatsApp: it fetches media from a public URL at send \
             time, so send media.link instead of a media id",
        ))
    }

    /// `GET .../Messages/{Sid}.json`.
    async fn message_status(
        &self,
        provider_message_id: &str,
    ) -> Result<ProviderStatus, ProviderError> {
        self.account.fetch_message(provider_message_id).await
    }

    async fn setup_webhook(&self, url: &str) -> Result<(), ProviderError> {
        Err(unsupported(&format!(
            "Twilio's WhatsApp status callback URL is set in the Twilio console, not from here: \
             open Messaging → Senders → WhatsApp senders, choose the sender and set its status \
             callback URL to {url} (or set it on the Messaging Service's Integration page when \
             sending through one)"
        )))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses_get_the_channel_prefix_once() {
        assert_eq!(channel_address("+2348031234567"), "whatsapp:+2348031234567");
        assert_eq!(channel_address("whatsapp:+1555"), "whatsapp:+1555");
    }

    #[test]
    fn template_variables_are_numbered_from_one() {
        let template = WhatsappTemplate {
            name: "HX0123456789abcdef0123456789abcdef".into(),
            language: "en".into(),
            variables: vec!["Ada".into(), "12 May".into()],
            header_media: None,
        };
        let fields = template_fields(&template).expect("valid template");
        assert_eq!(fields[0], ("ContentSid", template.name.clone()));
        let variables: Value = serde_json::from_str(&fields[1].1).expect("JSON");
        assert_eq!(variables, serde_json::json!({"1": "Ada", "2": "12 May"}));
        let bad = WhatsappTemplate {
            name: "order_update".into(),
            ..template
        };
        assert!(template_fields(&bad).is_err());
    }
}
