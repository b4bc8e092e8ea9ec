//! Meta Cloud API's one registration: what [`crate::registry`] lists for it (see
//! [`crate::descriptor::Descriptor`] for each part).

use std::sync::Arc;

use msgengine_domain::provider::{whatsapp::WhatsappProviderType, WhatsappProviderSpec};

use super::{MetaCloudAdmin, MetaCloudProbe, MetaCloudSender, MetaCloudWebhook};
use crate::descriptor::Descriptor;

pub(crate) static DESCRIPTOR: Descriptor<WhatsappProviderSpec> = Descriptor {
    provider_type: WhatsappProviderType::MetaCloud,
    label: "meta_cloud",
    sender: |spec, http, _| Arc::new(MetaCloudSender::new(spec, http.clone())),
    webhook: Some(|spec| Box::new(MetaCloudWebhook::new(spec))),
    admin: Some(|spec, http| Arc::new(MetaCloudAdmin::new(spec, http.clone()))),
    probe: Some(|http| Arc::new(MetaCloudProbe::new(http.clone()))),
};
