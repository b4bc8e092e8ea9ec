//! Sending through `POST /{phoneNumberId}/messages` (providers.md §5.1).
//!
//! Every body starts `{"messaging_product": "whatsapp", "recipient_type":
//! "individual", "to": "<digits>", "type": …}` and carries our message id as
//! `biz_opaque_callback_data`, which Meta echoes in status webhooks. What is
//! sent, by precedence: a template (`MessageExtras.template`), else a media
//! message (`MessageExtras.media`, the text as its caption), else text.
//!
//! Success is HTTP 200 `{"messages": [{"id": "wamid…", "message_status"?}]}`;
//! `message_status` (`accepted`, `held_for_quality_assessment`) is optional
//! and not required.

use msgengine_domain::message::{Media, MediaKind, OutboundMessage, WhatsappTemplate};
use msgengine_domain::provider::WhatsappProviderSpec;
use serde::Deserialize;
use serde_json::{json, Map, Value};

use super::{classify_response, digits, Connection};
use crate::http::{self, IDEMPOTENCY_HEADER};
use crate::send::{FailureKind, ProviderError, SendReceipt, Sender};

/// A META_CLOUD connection's sender.
pub struct MetaCloudSender {
    connection: Connection,
}

impl MetaCloudSender {
    /// A sender for `spec`; calls go through the shared `http` client.
    pub fn new(spec: &WhatsappProviderSpec, http: crate::http::ProviderClient) -> Self {
        Self {
            connection: Connection::new(spec, http),
        }
    }
}

#[async_trait::async_trait]
impl Sender for MetaCloudSender {
    async fn send(
        &self,
        message: &OutboundMessage,
        idempotency_key: &str,
    ) -> Result<SendReceipt, ProviderError> {
        let c = &self.connection;
        let url = c.url(&[c.phone_number_id()?, "messages"])?;
        let token = c.token()?;
        let body = message_body(message)?;
        let request = c
            .http
            .post(url)
            .bearer_auth(token.expose())
            .header(IDEMPOTENCY_HEADER, idempotency_key)
            .json(&body);
        let answer = c.http.execute(request).await.map_err(|e| c.scrub(e))?;
        let secrets: Vec<&str> = c.secrets.iter().map(|s| s.expose()).collect();
        http::sent_or_error(&answer, &secrets, message_id, classify_response)
    }
}

/// The JSON body of one send.
pub(crate) fn message_body(message: &OutboundMessage) -> Result<Value, ProviderError> {
    let mut body = Map::new();
    body.insert("messaging_product".into(), json!("whatsapp"));
    body.insert("recipient_type".into(), json!("individual"));
    body.insert("to".into(), json!(digits(&message.to)));
    let extras = message.extras.as_deref();
    if let Some(template) = extras.and_then(|e| e.template.as_ref()) {
        body.insert("type".into(), json!("template"));
        body.insert("template".into(), template_object(template)?);
    } else if let Some(media) = extras.and_then(|e| e.media.as_ref()) {
        let kind = media.kind.as_str();
        body.insert("type".into(), json!(kind));
        body.insert(kind.into(), media_object(media, &message.text)?);
    } else {
        body.insert("type".into(), json!("text"));
        body.insert(
            "text".into(),
            json!({"body": message.text, "preview_url": false}),
        );
    }
    body.insert(
        "biz_opaque_callback_data".into(),
        json!(message.id.to_string()),
    );
    Ok(Value::Object(body))
}

/// `{"name", "language": {"code"}, "components": [header?, body?]}`.
fn template_object(template: &WhatsappTemplate) -> Result<Value, ProviderError> {
    let mut components = Vec::new();
    if let Some(media) = &template.header_media {
        if media.kind == MediaKind::Audio {
            return Err(ProviderError::new(
                FailureKind::Permanent,
                "a WhatsApp template header can be an image, a video or a document, not audio",
            ));
        }
        let kind = media.kind.as_str();
        components.push(json!({"type": "header", "parameters": [
            {"type": kind, kind: media_object(media, "")?}
        ]}));
    }
    if !template.variables.is_empty() {
        let parameters: Vec<Value> = template
            .variables
            .iter()
            .map(|v| json!({"type": "text", "text": v}))
            .collect();
        components.push(json!({"type": "body", "parameters": parameters}));
    }
    let mut object = json!({"name": template.name, "language": {"code": template.language}});
    if !components.is_empty() {
        object["components"] = Value::Array(components);
    }
    Ok(object)
}

/// `{"id"}` or `{"link"}`, plus `caption` (image, video, document) and
/// `filename` (document). Audio takes no caption on WhatsApp: its text is
/// not sent.
fn media_object(media: &Media, caption: &str) -> Result<Value, ProviderError> {
    let mut object = Map::new();
    match (&media.media_id, &media.link) {
        (Some(id), _) => object.insert("id".into(), json!(id)),
        (None, Some(link)) => object.insert("link".into(), json!(link)),
        (None, None) => {
            return Err(ProviderError::new(
                FailureKind::Permanent,
                "a WhatsApp media item needs a link or a mediaId",
            ))
        }
    };
    let captioned = matches!(
        media.kind,
        MediaKind::Image | MediaKind::Video | MediaKind::Document
    );
    if captioned && !caption.is_empty() {
        object.insert("caption".into(), json!(caption));
    }
    if media.kind == MediaKind::Document {
        if let Some(name) = media.filename.as_deref().filter(|n| !n.is_empty()) {
            object.insert("filename".into(), json!(name));
        }
    }
    Ok(Value::Object(object))
}

#[derive(Deserialize)]
struct Sent {
    messages: Vec<SentMessage>,
}

#[derive(Deserialize)]
struct SentMessage {
    id: String,
}

/// The `wamid` of an accepted send.
fn message_id(body: &[u8]) -> Option<String> {
    let sent: Sent = serde_json::from_slice(body).ok()?;
    sent.messages
        .into_iter()
        .next()
        .map(|m| m.id)
        .filter(|id| !id.is_empty())
}

#[cfg(test)]
mod tests {
    use msgengine_domain::message::MessageExtras;
    use msgengine_domain::{Channel, MessageId, OrganizationId};

    use super::*;

    fn message(extras: Option<MessageExtras>) -> OutboundMessage {
        OutboundMessage {
            id: MessageId::new(),
            organization_id: OrganizationId::new(),
            channel: Channel::Whatsapp,
            to: "+2348031234567".into(),
            from: None,
            subject: None,
            text: "Your invoice".into(),
            html: None,
            metadata: None,
            extras: extras.map(Box::new),
            routing: None,
        }
    }

    fn media(kind: MediaKind, link: Option<&str>, id: Option<&str>) -> Media {
        Media {
            kind,
            link: link.map(Into::into),
            media_id: id.map(Into::into),
            filename: Some("invoice.pdf".into()),
        }
    }

    #[test]
    fn audio_drops_the_caption_and_documents_keep_their_filename() {
        let audio = media_object(&media(MediaKind::Audio, None, Some("77")), "hi");
        assert_eq!(audio.ok(), Some(json!({"id": "77"})));
        let doc = media_object(
            &media(MediaKind::Document, Some("https://x/i.pdf"), None),
            "hi",
        );
        assert_eq!(
            doc.ok(),
            Some(json!({"link": "https://x/i.pdf", "caption": "hi", "filename": "invoice.pdf"}))
        );
        let image = media_object(&media(MediaKind::Image, Some("https://x/a.jpg"), None), "");
        assert_eq!(image.ok(), Some(json!({"link": "https://x/a.jpg"})));
    }

    #[test]
    fn media_without_link_or_id_and_audio_headers_are_refused() {
        let none = media_object(&media(MediaKind::Image, None, None), "");
        assert_eq!(none.err().map(|e| e.kind), Some(FailureKind::Permanent));
        let extras = MessageExtras {
            template: Some(WhatsappTemplate {
                name: "t".into(),
                language: "en".into(),
                variables: vec![],
                header_media: Some(media(MediaKind::Audio, Some("https://x/a.ogg"), None)),
            }),
            ..MessageExtras::default()
        };
        let e = message_body(&message(Some(extras))).err();
        assert_eq!(e.map(|e| e.kind), Some(FailureKind::Permanent));
    }

    #[test]
    fn a_template_without_variables_has_no_components() {
        let extras = MessageExtras {
            template: Some(WhatsappTemplate {
                name: "hello_world".into(),
                language: "en_US".into(),
                variables: vec![],
                header_media: None,
            }),
            ..MessageExtras::default()
        };
        let body = message_body(&message(Some(extras))).expect("body");
        assert_eq!(
            body["template"],
            json!({"name": "hello_world", "language": {"code": "en_US"}})
        );
    }

    #[test]
    fn only_answers_with_a_wamid_carry_an_id() {
        let ok = br#"{"messaging_product": "whatsapp", "contacts": [{"input": "1", "wa_id": "1"}],
            "messages": [{"id": "wamid.HBgM", "message_status": "accepted"}]}"#;
        assert_eq!(message_id(ok).as_deref(), Some("wamid.HBgM"));
        assert_eq!(message_id(br#"{"messages": []}"#), None);
        assert_eq!(message_id(br#"{"messages": [{"id": ""}]}"#), None);
    }
}
