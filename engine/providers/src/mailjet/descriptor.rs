//! Mailjet's one registration: what [`crate::registry`] lists for it (see
//! [`crate::descriptor::Descriptor`] for each part).

use std::sync::Arc;

use msgengine_domain::provider::{email::EmailProviderType, EmailProviderSpec};

use super::{MailjetAdmin, MailjetProbe, MailjetSender, MailjetWebhook};
use crate::descriptor::Descriptor;

pub(crate) static DESCRIPTOR: Descriptor<EmailProviderSpec> = Descriptor {
    provider_type: EmailProviderType::Mailjet,
    label: "mailjet",
    sender: |spec, http, _| Arc::new(MailjetSender::new(spec, http.clone())),
    webhook: Some(|spec| Box::new(MailjetWebhook::new(spec))),
    admin: Some(|spec, http| Arc::new(MailjetAdmin::new(spec, http.clone()))),
    probe: Some(|http| Arc::new(MailjetProbe::new(http.clone()))),
};
