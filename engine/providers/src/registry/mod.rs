//! The one list of provider types msgengine speaks to, and every lookup in it.
//!
//! `PROVIDERS` is the only place a provider type is registered: one line
//! per (channel, type), naming the `DESCRIPTOR` its adapter folder defines
//! (see [`Descriptor`](crate::descriptor::Descriptor)). Sending
//! ([`sender_for`], [`sender_for_connection`]), webhooks
//! ([`webhook_handler_for`]), management ([`email_admin_for`],
//! [`whatsapp_admin_for`], [`sms_admin_for`]) and connection tests
//! ([`ProviderRegistry::live`]) all look their adapter up here; the tests
//! below fail when a type the domain declares has no line, or two.
//!
//! The registry is the top of the crate's layering: it names the adapters,
//! and nothing below it (the seams' traits and types, [`crate::http`], the
//! adapters, [`crate::descriptor`]) names it.

mod lookup;
mod probes;

use msgengine_domain::provider::AnyProviderSpec;
use msgengine_domain::Channel;

pub use lookup::{
    email_admin_for, sender_for, sender_for_connection, sms_admin_for, webhook_handler_for,
    whatsapp_admin_for,
};
pub use probes::ProviderRegistry;

use crate::descriptor::{ProviderDescriptor, ProviderKey};
use crate::send::UnsupportedProvider;
use crate::{
    africastalking, aisensy, gupshup, interakt, mailgun, mailjet, meta_cloud, sandbox, sendgrid,
    smtp, termii, twilio_sms, twilio_whatsapp,
};

/// Every provider type's descriptor, by channel. One line per type.
static PROVIDERS: &[&dyn ProviderDescriptor] = &[
    // Email
    &mailgun::DESCRIPTOR,
    &sendgrid::DESCRIPTOR,
    &mailjet::DESCRIPTOR,
    &smtp::DESCRIPTOR,
    &sandbox::EMAIL,
    // SMS
    &twilio_sms::DESCRIPTOR,
    &africastalking::DESCRIPTOR,
    &termii::DESCRIPTOR,
    &sandbox::SMS,
    // WhatsApp
    &meta_cloud::DESCRIPTOR,
    &gupshup::DESCRIPTOR,
    &twilio_whatsapp::DESCRIPTOR,
    &aisensy::DESCRIPTOR,
    &interakt::DESCRIPTOR,
    &sandbox::WHATSAPP,
];

/// Every registered descriptor, in list order.
pub fn providers() -> &'static [&'static dyn ProviderDescriptor] {
    PROVIDERS
}

/// The descriptor of a provider type, when one is registered.
pub fn descriptor(key: ProviderKey) -> Option<&'static dyn ProviderDescriptor> {
    PROVIDERS.iter().copied().find(|d| d.key() == key)
}

/// The descriptor of a connection's provider type; [`UnsupportedProvider`]
/// when none is registered.
pub fn descriptor_for(
    spec: &AnyProviderSpec,
) -> Result<&'static dyn ProviderDescriptor, UnsupportedProvider> {
    descriptor(ProviderKey::of(spec)).ok_or_else(|| unsupported(spec))
}

/// The `provider` metrics label of a stored (channel, provider type): the
/// adapter's [`label`](crate::descriptor::Descriptor::label), `other` for
/// a type no adapter speaks for.
pub fn provider_label(channel: Channel, provider_type: &str) -> &'static str {
    PROVIDERS
        .iter()
        .find(|d| d.key().channel() == channel && d.key().provider_type() == provider_type)
        .map_or("other", |d| d.label())
}

/// The error for an operation a connection's provider type does not offer.
pub(crate) fn unsupported(spec: &AnyProviderSpec) -> UnsupportedProvider {
    UnsupportedProvider {
        channel: spec.channel(),
        provider_type: spec.provider_type(),
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashSet;
    use std::time::Duration;

    use msgengine_domain::provider::{EmailProviderSpec, SmsProviderSpec, WhatsappProviderSpec};
    use serde_json::json;

    use super::*;
    use crate::address::AddressPolicy;
    use crate::http::ProviderClient;

    /// A connection of `key`'s type with only its name (builders do not validate).
    fn bare_spec(key: ProviderKey) -> AnyProviderSpec {
        let object = json!({"providerType": key.provider_type(), "name": "n"});
        let spec = match key.channel() {
            Channel::Email => {
                serde_json::from_value::<EmailProviderSpec>(object).map(AnyProviderSpec::Email)
            }
            Channel::Sms => {
                serde_json::from_value::<SmsProviderSpec>(object).map(AnyProviderSpec::Sms)
            }
            Channel::Whatsapp => serde_json::from_value::<WhatsappProviderSpec>(object)
                .map(AnyProviderSpec::Whatsapp),
        };
        spec.expect("a bare spec deserialises")
    }

    /// What each seam offered per provider type before the registry, kept.
    #[tokio::test]
    async fn every_seam_offers_what_each_type_supports() {
        let http = ProviderClient::new(Duration::from_secs(1), AddressPolicy::Any);
        let probes = ProviderRegistry::live(&http);
        let mut table = Vec::new();
        for key in ProviderKey::all() {
            let spec = bare_spec(key);
            let offers = [
                ("send", sender_for(&spec, &http).is_ok()),
                ("webhook", webhook_handler_for(&spec).is_ok()),
                ("email admin", email_admin_for(&spec, &http).is_ok()),
                ("sms admin", sms_admin_for(&spec, &http).is_ok()),
                ("whatsapp admin", whatsapp_admin_for(&spec, &http).is_ok()),
                (
                    "probe",
                    probes.has_probe(key.channel(), key.provider_type()),
                ),
            ];
            let offered: Vec<_> = offers.iter().filter(|o| o.1).map(|o| o.0).collect();
            table.push(format!("{key}: {}", offered.join(", ")));
        }
        let all_email = "send, webhook, email admin, probe";
        let all_sms = "send, webhook, sms admin, probe";
        let all_whatsapp = "send, webhook, whatsapp admin, probe";
        assert_eq!(
            table,
            [
                format!("MAILGUN on email: {all_email}"),
                format!("MAILJET on email: {all_email}"),
                format!("SENDGRID on email: {all_email}"),
                "SMTP on email: send, probe".into(),
                "SANDBOX on email: send".into(),
                format!("TWILIO on sms: {all_sms}"),
                format!("AFRICASTALKING on sms: {all_sms}"),
                format!("TERMII on sms: {all_sms}"),
                "SANDBOX on sms: send".into(),
                format!("AISENSY on whatsapp: {all_whatsapp}"),
                format!("INTERAKT on whatsapp: {all_whatsapp}"),
                format!("GUPSHUP on whatsapp: {all_whatsapp}"),
                format!("TWILIO on whatsapp: {all_whatsapp}"),
                format!("META_CLOUD on whatsapp: {all_whatsapp}"),
                "SANDBOX on whatsapp: send".into(),
            ]
        );
    }

    #[test]
    fn a_descriptor_builds_nothing_for_another_type() {
        let http = ProviderClient::new(Duration::from_secs(1), AddressPolicy::Any);
        let termii = bare_spec(ProviderKey::Sms(
            msgengine_domain::provider::sms::SmsProviderType::Termii,
        ));
        let twilio: &dyn ProviderDescriptor = &twilio_sms::DESCRIPTOR;
        assert!(twilio.webhook_handler(&termii).is_none());
        assert!(twilio.admin(&termii, &http).is_none());
        let context = crate::SenderContext::default();
        assert!(twilio.sender(&termii, &http, &context).is_none());
    }

    #[test]
    fn every_provider_type_the_domain_knows_has_exactly_one_descriptor() {
        for key in ProviderKey::all() {
            let found = PROVIDERS.iter().filter(|d| d.key() == key).count();
            assert_eq!(found, 1, "{key}: {found} descriptors in PROVIDERS");
        }
    }

    #[test]
    fn the_list_has_no_duplicates() {
        let mut seen = HashSet::new();
        for d in PROVIDERS {
            assert!(seen.insert(d.key()), "{} registered twice", d.key());
        }
        assert_eq!(seen.len(), ProviderKey::all().count());
    }

    #[test]
    fn labels_are_the_adapter_folders() {
        let labels: Vec<_> = ProviderKey::all()
            .map(|k| provider_label(k.channel(), k.provider_type()))
            .collect();
        assert_eq!(
            labels,
            [
                "mailgun",
                "mailjet",
                "sendgrid",
                "smtp",
                "sandbox",
                "twilio_sms",
                "africastalking",
                "termii",
                "sandbox",
                "aisensy",
                "interakt",
                "gupshup",
                "twilio_whatsapp",
                "meta_cloud",
                "sandbox",
            ]
        );
        assert_eq!(provider_label(Channel::Email, "TWILIO"), "other");
    }
}
