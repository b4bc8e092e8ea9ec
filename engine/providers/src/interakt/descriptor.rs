//! Interakt's one registration: what [`crate::registry`] lists for it (see
//! [`crate::descriptor::Descriptor`] for each part).

use std::sync::Arc;

use msgengine_domain::provider::{whatsapp::WhatsappProviderType, WhatsappProviderSpec};

use super::{InteraktAdmin, InteraktProbe, InteraktSender, InteraktWebhook};
use crate::descriptor::Descriptor;

pub(crate) static DESCRIPTOR: Descriptor<WhatsappProviderSpec> = Descriptor {
    provider_type: WhatsappProviderType::Interakt,
    label: "interakt",
    sender: |spec, http, _| Arc::new(InteraktSender::new(spec, http.clone())),
    webhook: Some(|spec| Box::new(InteraktWebhook::new(spec))),
    admin: Some(|_, _| Arc::new(InteraktAdmin)),
    probe: Some(|http| Arc::new(InteraktProbe::new(http.clone()))),
};
