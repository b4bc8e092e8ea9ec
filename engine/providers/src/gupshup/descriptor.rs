//! Gupshup's one registration: what [`crate::registry`] lists for it (see
//! [`crate::descriptor::Descriptor`] for each part).

use std::sync::Arc;

use msgengine_domain::provider::{whatsapp::WhatsappProviderType, WhatsappProviderSpec};

use super::{GupshupAdmin, GupshupProbe, GupshupSender, GupshupWebhook};
use crate::descriptor::Descriptor;

pub(crate) static DESCRIPTOR: Descriptor<WhatsappProviderSpec> = Descriptor {
    provider_type: WhatsappProviderType::Gupshup,
    label: "gupshup",
    sender: |spec, http, _| Arc::new(GupshupSender::new(spec, http.clone())),
    webhook: Some(|spec| Box::new(GupshupWebhook::new(spec))),
    admin: Some(|spec, http| Arc::new(GupshupAdmin::new(spec, http.clone()))),
    probe: Some(|http| Arc::new(GupshupProbe::new(http.clone()))),
};
