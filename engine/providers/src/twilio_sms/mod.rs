//! Twilio SMS, speaking Twilio Programmable Messaging's Message resource
//! (providers.md §6.1) through the shared [`crate::twilio`] account:
//! `POST {baseUrl or https://api.twilio.com}/2010-04-01/Accounts/{AccountSid}/Messages.json`,
//! HTTP Basic auth `AccountSid:AuthToken` (or `ApiKeySid:ApiKeySecret`),
//! form fields `To`, `From` or `MessagingServiceSid`, `Body`, and
//! `StatusCallback` when a callback URL is configured.
//!
//! The body goes as UTF-8: Twilio picks GSM-7 or UCS-2 itself and reports
//! the segments billed in `num_segments`, which the receipt carries.
//!
//! Status callbacks: Twilio only calls back for a message created with a
//! `StatusCallback` (or sent through a Messaging Service that has one). The
//! connection spec has no field for msgengine's public webhook URL yet, so
//! [`sender_for`](crate::sender_for) builds the sender without one; a caller
//! that knows the URL (`POST /api/webhooks/sms/{providerId}` on the public
//! host) passes it as [`SenderContext::status_callback`](crate::SenderContext)
//! to [`sender_for_connection`](crate::sender_for_connection), and this
//! adapter's descriptor sets it with
//! [`TwilioSmsSender::with_status_callback`]. Each message's callback URL
//! then carries our message id in its query
//! ([`crate::twilio::MESSAGE_ID_PARAM`]), which the webhook handler reads.
//!
//! Idempotency: `I-Twilio-Idempotency-Token` is sent, but Twilio does not
//! document honouring it on message create (§6.1, §13): a retry after a
//! timeout may still create a second message.

mod descriptor;

pub(crate) use descriptor::DESCRIPTOR;

use async_trait::async_trait;
use msgengine_domain::message::OutboundMessage;
use msgengine_domain::provider::SmsProviderSpec;
use url::Url;

use crate::manage::{ProviderStatus, SmsAdmin};
use crate::send::{ProviderError, SendReceipt, Sender};
use crate::twilio::{is_messaging_service_sid, TwilioAccount, MESSAGE_ID_PARAM};

pub use crate::twilio::{classify_response, DEFAULT_BASE_URL, TWILIO_IDEMPOTENCY_HEADER};

/// A Twilio SMS connection.
pub struct TwilioSmsSender {
    account: TwilioAccount,
    sender_id: Option<String>,
    /// Where Twilio posts status changes; `None`: no `StatusCallback`.
    status_callback: Option<Url>,
}

impl TwilioSmsSender {
    /// A sender for `spec`; calls go through the shared `http` client.
    pub fn new(spec: &SmsProviderSpec, http: crate::http::ProviderClient) -> Self {
        Self {
            account: TwilioAccount::from_sms(spec, http),
            sender_id: spec.sender_id.clone(),
            status_callback: None,
        }
    }

    /// Asks Twilio to post status changes to `url` (msgengine's public
    /// webhook URL for this connection), our message id in its query.
    pub fn with_status_callback(mut self, url: Url) -> Self {
        self.status_callback = Some(url);
        self
    }
}

#[async_trait]
impl Sender for TwilioSmsSender {
    async fn send(
        &self,
        message: &OutboundMessage,
        idempotency_key: &str,
    ) -> Result<SendReceipt, ProviderError> {
        let Some(sender) = message.from.as_deref().or(self.sender_id.as_deref()) else {
            return Err(ProviderError::misconfigured("TWILIO needs senderId"));
        };
        let sender_field = if is_messaging_service_sid(sender) {
            "MessagingServiceSid"
        } else {
            "From"
        };
        let callback = self.status_callback.as_ref().map(|url| {
            let mut url = url.clone();
            url.query_pairs_mut()
                .append_pair(MESSAGE_ID_PARAM, &message.id.to_string());
            String::from(url)
        });
        let mut form = vec![
            ("To", message.to.as_str()),
            (sender_field, sender),
            ("Body", message.text.as_str()),
        ];
        if let Some(callback) = &callback {
            form.push(("StatusCallback", callback.as_str()));
        }
        self.account.create_message(&form, idempotency_key).await
    }
}

#[async_trait]
impl SmsAdmin for TwilioSmsSender {
    /// `GET .../Messages/{Sid}.json`.
    async fn message_status(
        &self,
        provider_message_id: &str,
    ) -> Result<ProviderStatus, ProviderError> {
        self.account.fetch_message(provider_message_id).await
    }
}
