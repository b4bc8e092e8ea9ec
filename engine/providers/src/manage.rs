//! The management seams beside sending: what an operator asks of a provider
//! connection through the API, per channel.
//!
//! - [`EmailAdmin`]: domain verification (the DNS records to publish and
//!   whether the provider sees them), delivery statistics for a date range,
//!   and pointing the provider's event webhooks at msgengine.
//! - [`WhatsappAdmin`]: message templates (list, create), media upload, a
//!   message's status at the provider, and the webhook URL.
//! - [`SmsAdmin`]: a message's status at the provider.
//!
//! A provider without an operation answers [`ProviderError`] with code
//! `msgengine_unsupported` (a 422 at the API), in words.

use async_trait::async_trait;
use chrono::NaiveDate;
use msgengine_domain::message::MessageState;
use serde::{Deserialize, Serialize};

use crate::send::{FailureKind, ProviderError};

/// The error for an operation this provider does not offer.
pub fn unsupported(provider: &str, operation: &str) -> ProviderError {
    let mut e = ProviderError::new(
        FailureKind::Permanent,
        format!("{provider} does not offer {operation}"),
    );
    e.code = Some("msgengine_unsupported".into());
    e
}

/// What a DNS record is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DnsPurpose {
    Spf,
    Dkim,
    /// Click/open tracking CNAME.
    Tracking,
    /// Return-path / bounce domain (SendGrid's `mail_cname`).
    ReturnPath,
    /// Inbound MX records (receiving).
    Mx,
    Dmarc,
    /// A provider-specific ownership check (Mailjet's TXT token).
    Ownership,
}

/// One DNS record the user must publish.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DnsRecord {
    pub purpose: DnsPurpose,
    /// `TXT`, `CNAME`, `MX`.
    pub record_type: String,
    /// The host name to publish at (`mx._domainkey.example.com`).
    pub name: String,
    /// The value to publish.
    pub value: String,
    /// Whether the provider currently sees the record as published and
    /// correct; `None` when it does not say.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub valid: Option<bool>,
}

/// A sending domain's verification state at the provider.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DomainVerification {
    pub domain: String,
    /// Whether the provider will send (and sign) for this domain.
    pub verified: bool,
    /// The provider's own word for the state (`active`, `unverified`...).
    pub provider_state: String,
    pub records: Vec<DnsRecord>,
}

/// Delivery counters for a date range, summed over the range.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct EmailStats {
    pub from: Option<NaiveDate>,
    pub to: Option<NaiveDate>,
    pub accepted: u64,
    pub delivered: u64,
    pub failed: u64,
    pub bounced: u64,
    pub opened: u64,
    pub clicked: u64,
    pub complained: u64,
    pub unsubscribed: u64,
    /// One entry per day when the provider reports per day.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub days: Vec<DayStats>,
}

/// One day's counters.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DayStats {
    pub date: Option<NaiveDate>,
    pub accepted: u64,
    pub delivered: u64,
    pub failed: u64,
    pub bounced: u64,
    pub opened: u64,
    pub clicked: u64,
    pub complained: u64,
    pub unsubscribed: u64,
}

/// Email provider management.
#[async_trait]
pub trait EmailAdmin: Send + Sync {
    /// The DNS records for the connection's domain and their state.
    async fn verify_domain(&self) -> Result<DomainVerification, ProviderError>;
    /// Counters for `[from, to]` (inclusive days, UTC).
    async fn stats(&self, from: NaiveDate, to: NaiveDate) -> Result<EmailStats, ProviderError>;
    /// Points the provider's delivery-event webhooks at `url`.
    async fn setup_webhooks(&self, url: &str) -> Result<(), ProviderError>;
}

/// A message template as a WhatsApp provider lists it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TemplateInfo {
    /// The provider's id, when it has one apart from the name.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    pub name: String,
    pub language: String,
    /// `MARKETING`, `UTILITY`, `AUTHENTICATION`.
    pub category: String,
    /// `APPROVED`, `PENDING`, `REJECTED`, ... as the provider says.
    pub status: String,
    /// The body text with its `{{n}}` placeholders, when listed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub body: Option<String>,
}

/// A template to submit for approval.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TemplateDraft {
    pub name: String,
    pub language: String,
    pub category: String,
    /// Body text with `{{1}}`… placeholders.
    pub body: String,
    /// One example value per placeholder (Meta requires them).
    #[serde(default)]
    pub examples: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub header_text: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub footer_text: Option<String>,
}

/// A message's state as the provider reports it when asked.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ProviderStatus {
    pub provider_message_id: String,
    /// Mapped onto the engine's states (`None`: no mapping, see `raw_status`).
    pub state: Option<MessageState>,
    pub raw_status: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error_code: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

/// WhatsApp provider management.
#[async_trait]
pub trait WhatsappAdmin: Send + Sync {
    async fn list_templates(&self) -> Result<Vec<TemplateInfo>, ProviderError>;
    async fn create_template(&self, draft: &TemplateDraft) -> Result<TemplateInfo, ProviderError>;
    /// Uploads media; returns the provider's media id for later sends.
    async fn upload_media(
        &self,
        bytes: Vec<u8>,
        mime_type: &str,
        filename: &str,
    ) -> Result<String, ProviderError>;
    async fn message_status(
        &self,
        provider_message_id: &str,
    ) -> Result<ProviderStatus, ProviderError>;
    /// Points the provider's status callbacks at `url`.
    async fn setup_webhook(&self, url: &str) -> Result<(), ProviderError>;
}

/// SMS provider management.
#[async_trait]
pub trait SmsAdmin: Send + Sync {
    async fn message_status(
        &self,
        provider_message_id: &str,
    ) -> Result<ProviderStatus, ProviderError>;
}
