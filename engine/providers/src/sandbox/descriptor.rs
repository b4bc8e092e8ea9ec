//! The sandbox's registrations, one per channel: what [`crate::registry`]
//! lists for `SANDBOX` (see [`crate::descriptor::Descriptor`] for each
//! part). No webhook, no management operations, no live probe: there is no
//! provider to ask.

use std::sync::Arc;

use msgengine_domain::provider::{
    email::EmailProviderType, sms::SmsProviderType, whatsapp::WhatsappProviderType,
    EmailProviderSpec, SandboxConfig, SmsProviderSpec, WhatsappProviderSpec,
};
use msgengine_domain::Channel;

use super::SandboxSender;
use crate::descriptor::Descriptor;
use crate::send::Sender;

fn sender(channel: Channel, config: Option<&SandboxConfig>) -> Arc<dyn Sender> {
    Arc::new(SandboxSender::new(
        channel,
        &config.cloned().unwrap_or_default(),
    ))
}

pub(crate) static EMAIL: Descriptor<EmailProviderSpec> = Descriptor {
    provider_type: EmailProviderType::Sandbox,
    label: "sandbox",
    sender: |spec, _, _| sender(Channel::Email, spec.sandbox_config.as_ref()),
    webhook: None,
    admin: None,
    probe: None,
};

pub(crate) static SMS: Descriptor<SmsProviderSpec> = Descriptor {
    provider_type: SmsProviderType::Sandbox,
    label: "sandbox",
    sender: |spec, _, _| sender(Channel::Sms, spec.sandbox_config.as_ref()),
    webhook: None,
    admin: None,
    probe: None,
};

pub(crate) static WHATSAPP: Descriptor<WhatsappProviderSpec> = Descriptor {
    provider_type: WhatsappProviderType::Sandbox,
    label: "sandbox",
    sender: |spec, _, _| sender(Channel::Whatsapp, spec.sandbox_config.as_ref()),
    webhook: None,
    admin: None,
    probe: None,
};
