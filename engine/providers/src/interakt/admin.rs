//! Management of an INTERAKT connection. providers.md §9 documents only the
//! message endpoint and the dashboard-configured webhook: templates are
//! created and approved in the Interakt dashboard, media go by public URL,
//! statuses arrive only by webhook, and the webhook URL and secret are set
//! in the dashboard. Every operation answers `msgengine_unsupported` saying so.

use async_trait::async_trait;

use crate::manage::{self, ProviderStatus, TemplateDraft, TemplateInfo, WhatsappAdmin};
use crate::send::ProviderError;

const PROVIDER: &str = "Interakt's public API";

/// An INTERAKT connection's management operations (none offered).
#[derive(Debug, Clone, Copy, Default)]
pub struct InteraktAdmin;

#[async_trait]
impl WhatsappAdmin for InteraktAdmin {
    async fn list_templates(&self) -> Result<Vec<TemplateInfo>, ProviderError> {
        Err(manage::unsupported(
            PROVIDER,
            "a template listing: see the templates in the Interakt dashboard",
        ))
    }

    async fn create_template(&self, _draft: &TemplateDraft) -> Result<TemplateInfo, ProviderError> {
        Err(manage::unsupported(
            PROVIDER,
            "template creation: submit templates for approval in the Interakt dashboard",
        ))
    }

    async fn upload_media(
        &self,
        _bytes: Vec<u8>,
        _mime_type: &str,
        _filename: &str,
    ) -> Result<String, ProviderError> {
        Err(manage::unsupported(
            PROVIDER,
            "media upload: Interakt takes media by public URL in the message itself",
        ))
    }

    async fn message_status(
        &self,
        _provider_message_id: &str,
    ) -> Result<ProviderStatus, ProviderError> {
        Err(manage::unsupported(
            PROVIDER,
            "a message status lookup: statuses arrive only through the webhook",
        ))
    }

    async fn setup_webhook(&self, _url: &str) -> Result<(), ProviderError> {
        Err(manage::unsupported(
            PROVIDER,
            "setting the webhook through msgengine: enter the URL and a secret key in the \
             Interakt dashboard (Developer Settings), and the same secret as the \
             connection's webhookSecret",
        ))
    }
}
