//! Termii's one registration: what [`crate::registry`] lists for it (see
//! [`crate::descriptor::Descriptor`] for each part).

use std::sync::Arc;

use msgengine_domain::provider::{sms::SmsProviderType, SmsProviderSpec};

use super::{TermiiAdmin, TermiiProbe, TermiiSender, TermiiWebhook};
use crate::descriptor::Descriptor;

pub(crate) static DESCRIPTOR: Descriptor<SmsProviderSpec> = Descriptor {
    provider_type: SmsProviderType::Termii,
    label: "termii",
    sender: |spec, http, _| Arc::new(TermiiSender::new(spec, http.clone())),
    webhook: Some(|spec| Box::new(TermiiWebhook::new(spec))),
    admin: Some(|_, _| Arc::new(TermiiAdmin)),
    probe: Some(|http| Arc::new(TermiiProbe::new(http.clone()))),
};
