//! What one provider type plugs into the engine: its [`Descriptor`].
//!
//! Every adapter folder holds one `descriptor.rs` with one
//! `pub(crate) static DESCRIPTOR` (the sandbox, which serves every channel,
//! holds one per channel), and [`crate::registry`] lists them all. The seams
//! the rest of the engine calls ([`sender_for`](crate::registry::sender_for),
//! [`webhook_handler_for`](crate::registry::webhook_handler_for), the
//! `registry::*_admin_for` functions,
//! [`ProviderRegistry::live`](crate::registry::ProviderRegistry::live)) are
//! lookups in that list, in the registry: none of them names a provider, and
//! this module names none of them (it sits below the adapters, which name it).
//!
//! A descriptor is written against its channel's typed spec
//! ([`EmailProviderSpec`], [`SmsProviderSpec`], [`WhatsappProviderSpec`]);
//! [`ProviderDescriptor`] is the same descriptor seen by the registry, which
//! holds every channel's in one list and hands each its spec only when the
//! spec is of that descriptor's provider type.

use std::fmt;
use std::sync::Arc;

use msgengine_domain::provider::{
    email::EmailProviderType, sms::SmsProviderType, whatsapp::WhatsappProviderType,
    AnyProviderSpec, EmailProviderSpec, ProviderSpec, SmsProviderSpec, WhatsappProviderSpec,
};
use msgengine_domain::Channel;

use crate::http::ProviderClient;
use crate::manage::{EmailAdmin, SmsAdmin, WhatsappAdmin};
use crate::probe::ConnectionProbe;
use crate::send::{Sender, SenderContext};
use crate::webhook::WebhookHandler;

/// One provider type: the channel and the domain's type on that channel
/// (`TWILIO` is two provider types, one per channel).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ProviderKey {
    Email(EmailProviderType),
    Sms(SmsProviderType),
    Whatsapp(WhatsappProviderType),
}

impl ProviderKey {
    /// The provider type of a connection.
    pub fn of(spec: &AnyProviderSpec) -> Self {
        match spec {
            AnyProviderSpec::Email(s) => Self::Email(s.provider_type),
            AnyProviderSpec::Sms(s) => Self::Sms(s.provider_type),
            AnyProviderSpec::Whatsapp(s) => Self::Whatsapp(s.provider_type),
        }
    }

    pub fn channel(self) -> Channel {
        match self {
            Self::Email(_) => Channel::Email,
            Self::Sms(_) => Channel::Sms,
            Self::Whatsapp(_) => Channel::Whatsapp,
        }
    }

    /// The type as stored and shown (`MAILGUN`), without the channel.
    pub fn provider_type(self) -> &'static str {
        match self {
            Self::Email(t) => t.as_str(),
            Self::Sms(t) => t.as_str(),
            Self::Whatsapp(t) => t.as_str(),
        }
    }

    /// Every provider type the domain knows (each channel's `ALL`).
    pub fn all() -> impl Iterator<Item = Self> {
        let email = EmailProviderType::ALL.iter().map(|t| Self::Email(*t));
        let sms = SmsProviderType::ALL.iter().map(|t| Self::Sms(*t));
        let whatsapp = WhatsappProviderType::ALL.iter().map(|t| Self::Whatsapp(*t));
        email.chain(sms).chain(whatsapp)
    }
}

impl fmt::Display for ProviderKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} on {}", self.provider_type(), self.channel())
    }
}

/// A connection's management operations, on whichever channel it is.
#[derive(Clone)]
pub enum AnyAdmin {
    Email(Arc<dyn EmailAdmin>),
    Sms(Arc<dyn SmsAdmin>),
    Whatsapp(Arc<dyn WhatsappAdmin>),
}

/// Ties a channel's spec to its provider-type enum and its management seam.
/// Implemented for the three specs here; an adapter never implements it.
pub trait ChannelSpec: ProviderSpec {
    /// The domain's provider-type enum of this channel.
    type Type: Copy + Send + Sync + 'static;
    /// The channel's management seam (`dyn EmailAdmin`...).
    type Admin: ?Sized + Send + Sync;
    /// The provider type of `provider_type` on this channel.
    fn key(provider_type: Self::Type) -> ProviderKey;
    /// `spec` when it is of this channel.
    fn of_channel(spec: &AnyProviderSpec) -> Option<&Self>;
    /// Wraps this channel's admin for code that handles every channel.
    fn any_admin(admin: Arc<Self::Admin>) -> AnyAdmin;
}

impl ChannelSpec for EmailProviderSpec {
    type Type = EmailProviderType;
    type Admin = dyn EmailAdmin;

    fn key(provider_type: EmailProviderType) -> ProviderKey {
        ProviderKey::Email(provider_type)
    }

    fn of_channel(spec: &AnyProviderSpec) -> Option<&Self> {
        match spec {
            AnyProviderSpec::Email(s) => Some(s),
            _ => None,
        }
    }

    fn any_admin(admin: Arc<dyn EmailAdmin>) -> AnyAdmin {
        AnyAdmin::Email(admin)
    }
}

impl ChannelSpec for SmsProviderSpec {
    type Type = SmsProviderType;
    type Admin = dyn SmsAdmin;

    fn key(provider_type: SmsProviderType) -> ProviderKey {
        ProviderKey::Sms(provider_type)
    }

    fn of_channel(spec: &AnyProviderSpec) -> Option<&Self> {
        match spec {
            AnyProviderSpec::Sms(s) => Some(s),
            _ => None,
        }
    }

    fn any_admin(admin: Arc<dyn SmsAdmin>) -> AnyAdmin {
        AnyAdmin::Sms(admin)
    }
}

impl ChannelSpec for WhatsappProviderSpec {
    type Type = WhatsappProviderType;
    type Admin = dyn WhatsappAdmin;

    fn key(provider_type: WhatsappProviderType) -> ProviderKey {
        ProviderKey::Whatsapp(provider_type)
    }

    fn of_channel(spec: &AnyProviderSpec) -> Option<&Self> {
        match spec {
            AnyProviderSpec::Whatsapp(s) => Some(s),
            _ => None,
        }
    }

    fn any_admin(admin: Arc<dyn WhatsappAdmin>) -> AnyAdmin {
        AnyAdmin::Whatsapp(admin)
    }
}

/// Builds a connection's sender: [`Descriptor::sender`].
pub type BuildSender<S> = fn(&S, &ProviderClient, &SenderContext) -> Arc<dyn Sender>;
/// Builds a connection's webhook handler: [`Descriptor::webhook`].
pub type BuildWebhook<S> = fn(&S) -> Box<dyn WebhookHandler>;
/// Builds a connection's management operations: [`Descriptor::admin`].
pub type BuildAdmin<S> = fn(&S, &ProviderClient) -> Arc<<S as ChannelSpec>::Admin>;
/// Builds a provider type's connection probe: [`Descriptor::probe`].
pub type BuildProbe = fn(&ProviderClient) -> Arc<dyn ConnectionProbe>;

/// Everything the engine needs from one provider type, written by its
/// adapter as one `static` value. `S` is the channel's spec type
/// ([`EmailProviderSpec`], [`SmsProviderSpec`] or [`WhatsappProviderSpec`]):
/// each part is handed the connection's spec already typed, and only a spec
/// of [`provider_type`](Self::provider_type).
///
/// Builders do not validate: specs are validated when stored, and a sender
/// built from one missing a credential answers every send with a permanent
/// `msgengine_misconfigured` error naming the field.
pub struct Descriptor<S: ChannelSpec> {
    /// The domain's provider type this adapter speaks for, on `S`'s channel
    /// (`EmailProviderType::Mailgun`). The registry holds exactly one
    /// descriptor per (channel, type); a test checks every type the domain
    /// declares has one.
    pub provider_type: S::Type,
    /// The adapter's name in metrics labels and logs: lower snake case, its
    /// folder name (`mailgun`, `twilio_sms`, `sandbox`).
    pub label: &'static str,
    /// Builds the [`Sender`] for a connection: one delivery attempt per
    /// call. Calls go through the shared `http` client (connection pooling
    /// and the address policy; SMTP takes only its policy). The
    /// [`SenderContext`] carries what the engine knows beyond the spec: a
    /// provider that takes a status-callback URL with each message (Twilio)
    /// uses `status_callback` when it is set; others ignore the context.
    pub sender: BuildSender<S>,
    /// Builds the [`WebhookHandler`] that verifies and reads the provider's
    /// status callbacks, secrets taken from the spec. `None`: the provider
    /// sends none (the sandbox, SMTP), and the webhook endpoint answers 404.
    pub webhook: Option<BuildWebhook<S>>,
    /// Builds the channel's management operations ([`EmailAdmin`]: domain
    /// verification, stats, webhook setup; [`WhatsappAdmin`]: templates,
    /// media, status; [`SmsAdmin`]: status). `None`: the provider offers
    /// none, and the management routes answer 422 `msgengine_unsupported`.
    /// An admin offering only some operations answers the others with
    /// [`manage::unsupported`](crate::manage::unsupported).
    pub admin: Option<BuildAdmin<S>>,
    /// Builds the [`ConnectionProbe`] behind `POST …/providers/{id}/test`: a
    /// live, authenticated, side-effect-free call (an account or domain
    /// lookup, never a send). `None`: the test reports the live check as
    /// skipped, never as passed.
    pub probe: Option<BuildProbe>,
}

/// A [`Descriptor`] of any channel, as the registry holds it. Implemented
/// once, for every `Descriptor<S>`; each method answers `None` for a spec
/// that is not of this descriptor's provider type.
pub trait ProviderDescriptor: Sync {
    /// The provider type this descriptor speaks for.
    fn key(&self) -> ProviderKey;
    /// See [`Descriptor::label`].
    fn label(&self) -> &'static str;
    /// See [`Descriptor::sender`].
    fn sender(
        &self,
        spec: &AnyProviderSpec,
        http: &ProviderClient,
        context: &SenderContext,
    ) -> Option<Arc<dyn Sender>>;
    /// See [`Descriptor::webhook`]; also `None` when the provider has none.
    fn webhook_handler(&self, spec: &AnyProviderSpec) -> Option<Box<dyn WebhookHandler>>;
    /// See [`Descriptor::admin`]; also `None` when the provider has none.
    fn admin(&self, spec: &AnyProviderSpec, http: &ProviderClient) -> Option<AnyAdmin>;
    /// See [`Descriptor::probe`]; `None` when the provider has none.
    fn probe(&self, http: &ProviderClient) -> Option<Arc<dyn ConnectionProbe>>;
}

impl<S: ChannelSpec> Descriptor<S> {
    /// `spec`, typed, when it is of this descriptor's provider type.
    fn typed<'a>(&self, spec: &'a AnyProviderSpec) -> Option<&'a S> {
        if ProviderKey::of(spec) == S::key(self.provider_type) {
            S::of_channel(spec)
        } else {
            None
        }
    }
}

impl<S: ChannelSpec> ProviderDescriptor for Descriptor<S> {
    fn key(&self) -> ProviderKey {
        S::key(self.provider_type)
    }

    fn label(&self) -> &'static str {
        self.label
    }

    fn sender(
        &self,
        spec: &AnyProviderSpec,
        http: &ProviderClient,
        context: &SenderContext,
    ) -> Option<Arc<dyn Sender>> {
        let spec = self.typed(spec)?;
        Some((self.sender)(spec, http, context))
    }

    fn webhook_handler(&self, spec: &AnyProviderSpec) -> Option<Box<dyn WebhookHandler>> {
        let build = self.webhook?;
        Some(build(self.typed(spec)?))
    }

    fn admin(&self, spec: &AnyProviderSpec, http: &ProviderClient) -> Option<AnyAdmin> {
        let build = self.admin?;
        Some(S::any_admin(build(self.typed(spec)?, http)))
    }

    fn probe(&self, http: &ProviderClient) -> Option<Arc<dyn ConnectionProbe>> {
        self.probe.map(|build| build(http))
    }
}
