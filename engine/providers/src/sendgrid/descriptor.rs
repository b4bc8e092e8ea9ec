//! SendGrid's one registration: what [`crate::registry`] lists for it (see
//! [`crate::descriptor::Descriptor`] for each part).

use std::sync::Arc;

use msgengine_domain::provider::{email::EmailProviderType, EmailProviderSpec};

use super::{SendgridAdmin, SendgridProbe, SendgridSender, SendgridWebhook};
use crate::descriptor::Descriptor;

pub(crate) static DESCRIPTOR: Descriptor<EmailProviderSpec> = Descriptor {
    provider_type: EmailProviderType::Sendgrid,
    label: "sendgrid",
    sender: |spec, http, _| Arc::new(SendgridSender::new(spec, http.clone())),
    webhook: Some(|spec| Box::new(SendgridWebhook::new(spec))),
    admin: Some(|spec, http| Arc::new(SendgridAdmin::new(spec, http.clone()))),
    probe: Some(|http| Arc::new(SendgridProbe::new(http.clone()))),
};
