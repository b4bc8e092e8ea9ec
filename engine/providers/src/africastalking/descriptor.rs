//! Africa's Talking's one registration: what [`crate::registry`] lists for it (see
//! [`crate::descriptor::Descriptor`] for each part).

use std::sync::Arc;

use msgengine_domain::provider::{sms::SmsProviderType, SmsProviderSpec};

use super::{
    AfricasTalkingAdmin, AfricasTalkingProbe, AfricasTalkingSender, AfricasTalkingWebhook,
};
use crate::descriptor::Descriptor;

pub(crate) static DESCRIPTOR: Descriptor<SmsProviderSpec> = Descriptor {
    provider_type: SmsProviderType::Africastalking,
    label: "africastalking",
    sender: |spec, http, _| Arc::new(AfricasTalkingSender::new(spec, http.clone())),
    webhook: Some(|spec| Box::new(AfricasTalkingWebhook::new(spec))),
    admin: Some(|_, _| Arc::new(AfricasTalkingAdmin)),
    probe: Some(|http| Arc::new(AfricasTalkingProbe::new(http.clone()))),
};
