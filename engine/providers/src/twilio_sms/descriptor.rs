//! Twilio SMS's one registration: what [`crate::registry`] lists for it (see
//! [`crate::descriptor::Descriptor`] for each part).

use std::sync::Arc;

use msgengine_domain::provider::{sms::SmsProviderType, SmsProviderSpec};

use super::TwilioSmsSender;
use crate::descriptor::Descriptor;
use crate::http::ProviderClient;
use crate::send::{Sender, SenderContext};
use crate::twilio::{TwilioProbe, TwilioWebhook};

/// The sender, asking Twilio for status callbacks when the engine knows
/// msgengine's public webhook URL for the connection.
fn sender(
    spec: &SmsProviderSpec,
    http: &ProviderClient,
    context: &SenderContext,
) -> Arc<dyn Sender> {
    let sender = TwilioSmsSender::new(spec, http.clone());
    match &context.status_callback {
        Some(url) => Arc::new(sender.with_status_callback(url.clone())),
        None => Arc::new(sender),
    }
}

pub(crate) static DESCRIPTOR: Descriptor<SmsProviderSpec> = Descriptor {
    provider_type: SmsProviderType::Twilio,
    label: "twilio_sms",
    sender,
    webhook: Some(|spec| Box::new(TwilioWebhook::for_sms(spec))),
    admin: Some(|spec, http| Arc::new(TwilioSmsSender::new(spec, http.clone()))),
    probe: Some(|http| Arc::new(TwilioProbe::new(http.clone()))),
};
