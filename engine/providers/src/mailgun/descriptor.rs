//! Mailgun's one registration: what [`crate::registry`] lists for it (see
//! [`crate::descriptor::Descriptor`] for each part).

use std::sync::Arc;

use msgengine_domain::provider::{email::EmailProviderType, EmailProviderSpec};

use super::{MailgunAdmin, MailgunProbe, MailgunSender, MailgunWebhook};
use crate::descriptor::Descriptor;

pub(crate) static DESCRIPTOR: Descriptor<EmailProviderSpec> = Descriptor {
    provider_type: EmailProviderType::Mailgun,
    label: "mailgun",
    sender: |spec, http, _| Arc::new(MailgunSender::new(spec, http.clone())),
    webhook: Some(|spec| Box::new(MailgunWebhook::new(spec))),
    admin: Some(|spec, http| Arc::new(MailgunAdmin::new(spec, http.clone()))),
    probe: Some(|http| Arc::new(MailgunProbe::new(http.clone()))),
};
