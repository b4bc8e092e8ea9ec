//! AiSensy's one registration: what [`crate::registry`] lists for it (see
//! [`crate::descriptor::Descriptor`] for each part).

use std::sync::Arc;

use msgengine_domain::provider::{whatsapp::WhatsappProviderType, WhatsappProviderSpec};

use super::{AisensyAdmin, AisensyProbe, AisensySender, AisensyWebhook};
use crate::descriptor::Descriptor;

pub(crate) static DESCRIPTOR: Descriptor<WhatsappProviderSpec> = Descriptor {
    provider_type: WhatsappProviderType::Aisensy,
    label: "aisensy",
    sender: |spec, http, _| Arc::new(AisensySender::new(spec, http.clone())),
    webhook: Some(|spec| Box::new(AisensyWebhook::new(spec))),
    admin: Some(|_, _| Arc::new(AisensyAdmin)),
    probe: Some(|http| Arc::new(AisensyProbe::new(http.clone()))),
};
