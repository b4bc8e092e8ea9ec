//! Sending through Gupshup: the session endpoint for text and media, the
//! template endpoint for `extras.template` (providers.md §7.1, §7.2).
//!
//! - Text: `message={"type":"text","text":"…"}`. WhatsApp only delivers it
//!   inside the 24-hour customer-service window; outside it, use a template.
//! - Media (`extras.media`, by public link; the text is the caption):
//!   image `{"type":"image","originalUrl","previewUrl","caption"}` and
//!   document `{"type":"file","url","filename"}` as §7.1 shows them; video
//!   `{"type":"video","url","caption"}` and audio `{"type":"audio","url"}`
//!   are among the types §7.1 elides ("…"), in Gupshup's documented shape
//!   (unconfirmed in providers.md), and so is a document's `caption`.
//!   Gupshup's self-serve API takes no uploaded media ids.
//! - Template: `template={"id":"<template id>","params":[…]}` (our
//!   `template.name` holds Gupshup's template id) and, for a media header,
//!   `message={"type":"image","image":{"link":"…"}}` or `document` with
//!   `filename` as §7.2 shows them; `video` in the same shape is assumed.
//!   §13: whether `/wa/api/v1/template/msg` or `/v2/…` is current is
//!   unconfirmed; we use v1, the one §7.2 documents.
//!
//! Gupshup documents no idempotency key; `X-Msgengine-Idempotency-Key` is
//! sent for our simulator.

use msgengine_domain::message::{Media, MediaKind, OutboundMessage, WhatsappTemplate};
use msgengine_domain::provider::WhatsappProviderSpec;
use msgengine_domain::Secret;
use serde::Serialize;
use url::Url;

use super::{classify_response, digits, submitted_id, DEFAULT_BASE_URL};
use crate::http::{self, IDEMPOTENCY_HEADER};
use crate::send::{FailureKind, ProviderError, SendReceipt, Sender};

/// A Gupshup WhatsApp connection.
pub struct GupshupSender {
    http: crate::http::ProviderClient,
    /// `POST /wa/api/v1/msg`; `None` when `baseUrl` is not an http(s) URL.
    session_endpoint: Option<Url>,
    /// `POST /wa/api/v1/template/msg`.
    template_endpoint: Option<Url>,
    api_key: Option<Secret>,
    /// The business number as Gupshup wants it: digits, no `+`.
    source: Option<String>,
    app_name: Option<String>,
}

impl GupshupSender {
    /// A sender for `spec`; calls go through the shared `http` client.
    pub fn new(spec: &WhatsappProviderSpec, http: crate::http::ProviderClient) -> Self {
        let base = spec.base_url.as_deref();
        Self {
            http,
            session_endpoint: http::endpoint(base, DEFAULT_BASE_URL, &["wa", "api", "v1", "msg"]),
            template_endpoint: http::endpoint(
                base,
                DEFAULT_BASE_URL,
                &["wa", "api", "v1", "template", "msg"],
            ),
            api_key: spec.access_token.clone(),
            source: spec.phone_number.as_deref().map(digits),
            app_name: spec.app_name.clone(),
        }
    }
}

#[async_trait::async_trait]
impl Sender for GupshupSender {
    async fn send(
        &self,
        message: &OutboundMessage,
        idempotency_key: &str,
    ) -> Result<SendReceipt, ProviderError> {
        let (Some(session), Some(template_endpoint)) =
            (&self.session_endpoint, &self.template_endpoint)
        else {
            return Err(ProviderError::misconfigured(
                "GUPSHUP baseUrl must be an http(s) URL",
            ));
        };
        let (Some(api_key), Some(app_name)) = (&self.api_key, &self.app_name) else {
            return Err(ProviderError::misconfigured(
                "GUPSHUP needs accessToken and appName",
            ));
        };
        // A per-message `from` overrides the connection's business number.
        let Some(source) = message.from.as_deref().map(digits).or(self.source.clone()) else {
            return Err(ProviderError::misconfigured("GUPSHUP needs phoneNumber"));
        };
        let extras = message.extras.as_deref();
        let media = extras.and_then(|e| e.media.as_ref());
        let destination = digits(&message.to);
        let mut form = vec![
            ("channel", "whatsapp".to_owned()),
            ("source", source),
            ("destination", destination),
            ("src.name", app_name.clone()),
        ];
        let endpoint = match extras.and_then(|e| e.template.as_ref()) {
            Some(template) => {
                form.extend(template_fields(template, media)?);
                template_endpoint
            }
            None => {
                form.push(("message", session_message(&message.text, media)?));
                session
            }
        };
        let secrets = [api_key.expose()];
        let request = self
            .http
            .post(endpoint.clone())
            .header("apikey", api_key.expose())
            .header(IDEMPOTENCY_HEADER, idempotency_key)
            .form(&form);
        let answer = self
            .http
            .execute(request)
            .await
            .map_err(|e| http::scrub(e, &secrets))?;
        http::sent_or_error(&answer, &secrets, submitted_id, classify_response)
    }
}

/// A message the adapter refuses before calling Gupshup: retrying cannot help.
fn refuse(reason: impl Into<String>) -> ProviderError {
    let mut e = ProviderError::new(FailureKind::Permanent, reason);
    e.code = Some("msgengine_unsupported_content".into());
    e
}

fn encode(value: &impl Serialize) -> Result<String, ProviderError> {
    serde_json::to_string(value)
        .map_err(|_| ProviderError::new(FailureKind::Permanent, "the message cannot be encoded"))
}

/// A media item's public link; Gupshup's self-serve API takes no media ids.
fn link_of(media: &Media) -> Result<&str, ProviderError> {
    match media.link.as_deref() {
        Some(link) if !link.is_empty() => Ok(link),
        _ => Err(refuse(
            "Gupshup sends media by public link only: set media.link (uploaded media ids are not supported)",
        )),
    }
}

/// A document's file name: the given one, else the link's last path segment.
fn filename_of<'a>(media: &'a Media, link: &'a str) -> &'a str {
    media
        .filename
        .as_deref()
        .filter(|f| !f.is_empty())
        .or_else(|| {
            link.split(['?', '#'])
                .next()
                .and_then(|path| path.rsplit('/').next())
                .filter(|s| !s.is_empty())
        })
        .unwrap_or("document")
}

/// The `message` field of a session message, field order as serialised:
/// `{"type":"text","text":"…"}` or the media shapes of the module docs.
#[derive(Serialize)]
struct SessionMessage<'a> {
    #[serde(rename = "type")]
    kind: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    text: Option<&'a str>,
    #[serde(rename = "originalUrl", skip_serializing_if = "Option::is_none")]
    original_url: Option<&'a str>,
    #[serde(rename = "previewUrl", skip_serializing_if = "Option::is_none")]
    preview_url: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    url: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    filename: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    caption: Option<&'a str>,
}

impl<'a> SessionMessage<'a> {
    fn of(kind: &'static str) -> Self {
        Self {
            kind,
            text: None,
            original_url: None,
            preview_url: None,
            url: None,
            filename: None,
            caption: None,
        }
    }
}

fn session_message(text: &str, media: Option<&Media>) -> Result<String, ProviderError> {
    let Some(media) = media else {
        let mut message = SessionMessage::of("text");
        message.text = Some(text);
        return encode(&message);
    };
    let link = link_of(media)?;
    let caption = Some(text).filter(|t| !t.is_empty());
    let message = match media.kind {
        MediaKind::Image => SessionMessage {
            original_url: Some(link),
            // Gupshup shows `previewUrl` as the thumbnail; the image itself serves.
            preview_url: Some(link),
            caption,
            ..SessionMessage::of("image")
        },
        MediaKind::Document => SessionMessage {
            url: Some(link),
            filename: Some(filename_of(media, link)),
            caption,
            ..SessionMessage::of("file")
        },
        MediaKind::Video => SessionMessage {
            url: Some(link),
            caption,
            ..SessionMessage::of("video")
        },
        MediaKind::Audio if caption.is_some() => {
            return Err(refuse(
                "WhatsApp audio messages carry no caption: send the text as its own message",
            ))
        }
        MediaKind::Audio => SessionMessage {
            url: Some(link),
            ..SessionMessage::of("audio")
        },
    };
    encode(&message)
}

/// `template={"id","params"}` (field order as serialised).
#[derive(Serialize)]
struct TemplateRef<'a> {
    id: &'a str,
    params: &'a [String],
}

/// A template's media header: `{"type":"image","image":{"link":"…"}}`.
#[derive(Serialize)]
struct HeaderMessage<'a> {
    #[serde(rename = "type")]
    kind: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    image: Option<HeaderLink<'a>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    document: Option<HeaderLink<'a>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    video: Option<HeaderLink<'a>>,
}

#[derive(Serialize)]
struct HeaderLink<'a> {
    link: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    filename: Option<&'a str>,
}

/// The `template` field and, for a media header (the template's own, else
/// the message's `extras.media`), the `message` field.
fn template_fields(
    template: &WhatsappTemplate,
    media: Option<&Media>,
) -> Result<Vec<(&'static str, String)>, ProviderError> {
    if template.name.trim().is_empty() {
        return Err(refuse(
            "a Gupshup template message needs the template id in template.name",
        ));
    }
    let mut fields = vec![(
        "template",
        encode(&TemplateRef {
            id: &template.name,
            params: &template.variables,
        })?,
    )];
    if let Some(header) = template.header_media.as_ref().or(media) {
        let link = link_of(header)?;
        let plain = || HeaderLink {
            link,
            filename: None,
        };
        let message = match header.kind {
            MediaKind::Image => HeaderMessage {
                kind: "image",
                image: Some(plain()),
                document: None,
                video: None,
            },
            MediaKind::Document => HeaderMessage {
                kind: "document",
                image: None,
                document: Some(HeaderLink {
                    link,
                    filename: Some(filename_of(header, link)),
                }),
                video: None,
            },
            MediaKind::Video => HeaderMessage {
                kind: "video",
                image: None,
                document: None,
                video: Some(plain()),
            },
            MediaKind::Audio => {
                return Err(refuse(
                    "WhatsApp templates have no audio header: use an image, document or video",
                ))
            }
        };
        fields.push(("message", encode(&message)?));
    }
    Ok(fields)
}

#[cfg(test)]
mod tests {
    use serde_json::{json, Value};

    use super::*;

    fn media(kind: MediaKind, link: Option<&str>, filename: Option<&str>) -> Media {
        Media {
            kind,
            link: link.map(Into::into),
            media_id: None,
            filename: filename.map(Into::into),
        }
    }

    fn parsed(text: &str) -> Value {
        serde_json::from_str(text).expect("JSON")
    }

    #[test]
    fn session_media_take_gupshup_shapes() {
        let image = media(MediaKind::Image, Some("https://x.test/a.png"), None);
        assert_eq!(
            session_message("Look", Some(&image)).map(|s| parsed(&s)),
            Ok(
                json!({"type": "image", "originalUrl": "https://x.test/a.png",
                      "previewUrl": "https://x.test/a.png", "caption": "Look"})
            )
        );
        let doc = media(
            MediaKind::Document,
            Some("https://x.test/d/inv.pdf?s=1"),
            None,
        );
        assert_eq!(
            session_message("", Some(&doc)).map(|s| parsed(&s)),
            Ok(
                json!({"type": "file", "url": "https://x.test/d/inv.pdf?s=1", "filename": "inv.pdf"})
            )
        );
        let audio = media(MediaKind::Audio, Some("https://x.test/a.ogg"), None);
        assert_eq!(
            session_message("", Some(&audio)).map(|s| parsed(&s)),
            Ok(json!({"type": "audio", "url": "https://x.test/a.ogg"}))
        );
        let refused = session_message("caption", Some(&audio)).err();
        assert_eq!(refused.map(|e| e.kind), Some(FailureKind::Permanent));
    }

    #[test]
    fn media_by_id_is_refused_in_words() {
        let by_id = Media {
            kind: MediaKind::Image,
            link: None,
            media_id: Some("123".into()),
            filename: None,
        };
        let e = session_message("", Some(&by_id)).err();
        assert_eq!(
            e.as_ref().and_then(|e| e.code.as_deref()),
            Some("msgengine_unsupported_content")
        );
        assert!(e.is_some_and(|e| e.message.contains("link")));
    }

    #[test]
    fn template_headers_take_gupshup_shapes() {
        let template = WhatsappTemplate {
            name: "tpl-1".into(),
            language: "en".into(),
            variables: vec!["Ada".into()],
            header_media: Some(media(
                MediaKind::Document,
                Some("https://x.test/f.pdf"),
                Some("Invoice.pdf"),
            )),
        };
        let fields = template_fields(&template, None).expect("fields");
        assert_eq!(fields[0].0, "template");
        assert_eq!(
            parsed(&fields[0].1),
            json!({"id": "tpl-1", "params": ["Ada"]})
        );
        assert_eq!(
            parsed(&fields[1].1),
            json!({"type": "document", "document": {"link": "https://x.test/f.pdf", "filename": "Invoice.pdf"}})
        );
        let audio = WhatsappTemplate {
            header_media: Some(media(MediaKind::Audio, Some("https://x.test/a.ogg"), None)),
            ..template
        };
        assert!(template_fields(&audio, None).is_err());
    }
}
