//! SMTP submission's one registration: what [`crate::registry`] lists for it (see
//! [`crate::descriptor::Descriptor`] for each part).

use std::sync::Arc;

use msgengine_domain::provider::{email::EmailProviderType, EmailProviderSpec};

use super::{SmtpOptions, SmtpProbe, SmtpSender};
use crate::descriptor::Descriptor;
use crate::http::ProviderClient;

/// SMTP connections are not HTTP: they take only the client's address policy.
fn options(http: &ProviderClient) -> SmtpOptions {
    SmtpOptions {
        address_policy: http.policy(),
        ..SmtpOptions::default()
    }
}

pub(crate) static DESCRIPTOR: Descriptor<EmailProviderSpec> = Descriptor {
    provider_type: EmailProviderType::Smtp,
    label: "smtp",
    sender: |spec, http, _| Arc::new(SmtpSender::with_options(spec, options(http))),
    webhook: None,
    admin: None,
    probe: Some(|http| Arc::new(SmtpProbe::with_options(options(http)))),
};
