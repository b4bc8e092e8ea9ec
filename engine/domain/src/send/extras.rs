//! The channel-specific parts of a send request (MessageExtras): email
//! reply-to, custom headers, tags and attachments; WhatsApp template and
//! media. Each field is refused on a channel it means nothing for.

use base64::Engine as _;
use serde::Deserialize;
use serde_json::{Map, Value};

use crate::channel::Channel;
use crate::message::{Attachment, Media, MessageExtras, WhatsappTemplate};
use crate::validate::{self as v, Valid, ValidationError};

/// At most this many custom headers, tags, attachments, template variables.
pub const MAX_HEADERS: usize = 20;
pub const MAX_TAGS: usize = 10;
pub const MAX_ATTACHMENTS: usize = 10;
pub const MAX_TEMPLATE_VARIABLES: usize = 50;
/// Decoded attachment bytes per message.
pub const MAX_ATTACHMENT_BYTES: usize = 5 * 1024 * 1024;

/// Headers a caller may not set: the engine and the provider own them.
const RESERVED_HEADERS: [&str; 12] = [
    "from",
    "to",
    "cc",
    "bcc",
    "subject",
    "reply-to",
    "date",
    "message-id",
    "mime-version",
    "content-type",
    "content-transfer-encoding",
    "x-msgengine-message-id",
];

/// The extras fields of a raw message.
#[derive(Default)]
pub(super) struct RawExtras {
    pub reply_to: Option<String>,
    pub headers: Option<Map<String, Value>>,
    pub tags: Option<Vec<String>>,
    pub attachments: Option<Vec<RawAttachment>>,
    pub template: Option<WhatsappTemplate>,
    pub media: Option<Media>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub(super) struct RawAttachment {
    filename: String,
    content_type: String,
    /// Base64 of the bytes.
    content: String,
}

impl RawExtras {
    fn is_empty(&self) -> bool {
        self.reply_to.is_none()
            && self.headers.is_none()
            && self.tags.is_none()
            && self.attachments.is_none()
            && self.template.is_none()
            && self.media.is_none()
    }

    /// Whether the message carries non-text WhatsApp content.
    pub fn has_whatsapp_content(&self) -> bool {
        self.template.is_some() || self.media.is_some()
    }
}

fn only_for(field: &str, channel: &str) -> ValidationError {
    ValidationError::new(
        field,
        "not_allowed",
        format!("{field} is only allowed for {channel}"),
    )
}

/// Validates the extras for `channel`; `None` when there are none.
pub(super) fn validate(channel: Channel, raw: RawExtras) -> Valid<Option<Box<MessageExtras>>> {
    if raw.is_empty() {
        return Ok(None);
    }
    let mut out = MessageExtras::default();
    if channel != Channel::Email {
        for (field, present) in [
            ("replyTo", raw.reply_to.is_some()),
            ("headers", raw.headers.is_some()),
            ("tags", raw.tags.is_some()),
            ("attachments", raw.attachments.is_some()),
        ] {
            if present {
                return Err(only_for(field, "email"));
            }
        }
    }
    if channel != Channel::Whatsapp {
        for (field, present) in [
            ("template", raw.template.is_some()),
            ("media", raw.media.is_some()),
        ] {
            if present {
                return Err(only_for(field, "whatsapp"));
            }
        }
    }
    if let Some(reply_to) = raw.reply_to {
        let reply_to = reply_to.trim().to_owned();
        v::email("replyTo", &reply_to)?;
        out.reply_to = Some(reply_to);
    }
    if let Some(headers) = raw.headers {
        out.headers = validate_headers(headers)?;
    }
    if let Some(tags) = raw.tags {
        out.tags = validate_tags(tags)?;
    }
    if let Some(attachments) = raw.attachments {
        out.attachments = validate_attachments(attachments)?;
    }
    if let Some(template) = raw.template {
        out.template = Some(validate_template(template)?);
    }
    if let Some(media) = raw.media {
        out.media = Some(validate_media("media", media)?);
    }
    if out.template.is_some() && out.media.is_some() {
        return Err(ValidationError::new(
            "media",
            "not_allowed",
            "a message is either a template or a media message; put template header media in template.headerMedia",
        ));
    }
    Ok(Some(Box::new(out)))
}

fn is_token_char(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b)
}

fn validate_headers(headers: Map<String, Value>) -> Valid<Vec<(String, String)>> {
    if headers.len() > MAX_HEADERS {
        return Err(ValidationError::new(
            "headers",
            "too_many",
            format!("at most {MAX_HEADERS} custom headers"),
        ));
    }
    let mut out = Vec::with_capacity(headers.len());
    for (name, value) in headers {
        let field = format!("headers.{name}");
        if name.is_empty() || name.len() > 100 || !name.bytes().all(is_token_char) {
            return Err(ValidationError::new(
                field,
                "invalid_header_name",
                "a header name is 1-100 letters, digits and - _ . characters",
            ));
        }
        if RESERVED_HEADERS.contains(&name.to_ascii_lowercase().as_str()) {
            return Err(ValidationError::new(
                field,
                "reserved_header",
                format!(
                    "{name} is set by msgengine and the provider; use the message fields instead"
                ),
            ));
        }
        let Value::String(value) = value else {
            return Err(ValidationError::new(
                field,
                "invalid_type",
                "a header value must be a string",
            ));
        };
        if value.len() > 998 || value.chars().any(char::is_control) {
            return Err(ValidationError::new(
                field,
                "invalid_header_value",
                "a header value is at most 998 characters without line breaks or control characters",
            ));
        }
        out.push((name, value));
    }
    Ok(out)
}

fn validate_tags(tags: Vec<String>) -> Valid<Vec<String>> {
    if tags.len() > MAX_TAGS {
        return Err(ValidationError::new(
            "tags",
            "too_many",
            format!("at most {MAX_TAGS} tags"),
        ));
    }
    for (i, tag) in tags.iter().enumerate() {
        if tag.trim().is_empty() || tag.chars().count() > 128 || tag.chars().any(char::is_control) {
            return Err(ValidationError::new(
                format!("tags[{i}]"),
                "invalid_tag",
                "a tag is 1-128 characters without control characters",
            ));
        }
    }
    Ok(tags)
}

fn validate_attachments(raw: Vec<RawAttachment>) -> Valid<Vec<Attachment>> {
    if raw.len() > MAX_ATTACHMENTS {
        return Err(ValidationError::new(
            "attachments",
            "too_many",
            format!("at most {MAX_ATTACHMENTS} attachments"),
        ));
    }
    let mut total = 0usize;
    let mut out = Vec::with_capacity(raw.len());
    for (i, a) in raw.into_iter().enumerate() {
        let filename = a.filename.trim().to_owned();
        if filename.is_empty()
            || filename.chars().count() > 255
            || filename
                .chars()
                .any(|c| c.is_control() || c == '/' || c == '\\')
        {
            return Err(ValidationError::new(
                format!("attachments[{i}].filename"),
                "invalid_filename",
                "a file name is 1-255 characters without control characters or path separators",
            ));
        }
        let ct = a.content_type.trim().to_ascii_lowercase();
        let valid_ct = ct.split_once('/').is_some_and(|(t, s)| {
            !t.is_empty() && !s.is_empty() && ct.bytes().all(|b| is_token_char(b) || b == b'/')
        });
        if !valid_ct {
            return Err(ValidationError::new(
                format!("attachments[{i}].contentType"),
                "invalid_content_type",
                "contentType must be a MIME type such as application/pdf",
            ));
        }
        let bytes = base64::engine::general_purpose::STANDARD
            .decode(a.content.trim())
            .map_err(|_| {
                ValidationError::new(
                    format!("attachments[{i}].content"),
                    "invalid_base64",
                    "content must be the file's bytes in base64",
                )
            })?;
        total += bytes.len();
        if total > MAX_ATTACHMENT_BYTES {
            return Err(ValidationError::new(
                "attachments",
                "too_large",
                format!("attachments may hold at most {MAX_ATTACHMENT_BYTES} bytes in all"),
            ));
        }
        out.push(Attachment {
            filename,
            content_type: ct,
            content_base64: base64::engine::general_purpose::STANDARD.encode(&bytes),
        });
    }
    Ok(out)
}

fn visible(s: &str, max: usize) -> bool {
    !s.is_empty() && s.chars().count() <= max && !s.chars().any(char::is_control)
}

fn validate_template(t: WhatsappTemplate) -> Valid<WhatsappTemplate> {
    if !visible(t.name.trim(), 512) {
        return Err(ValidationError::new(
            "template.name",
            "invalid_template_name",
            "template.name is the provider's template name or id (1-512 characters)",
        ));
    }
    let lang_ok = (2..=15).contains(&t.language.len())
        && t.language
            .bytes()
            .all(|b| b.is_ascii_alphabetic() || b == b'_' || b == b'-');
    if !lang_ok {
        return Err(ValidationError::new(
            "template.language",
            "invalid_language",
            "template.language is a language code such as en or pt_BR",
        ));
    }
    if t.variables.len() > MAX_TEMPLATE_VARIABLES {
        return Err(ValidationError::new(
            "template.variables",
            "too_many",
            format!("at most {MAX_TEMPLATE_VARIABLES} template variables"),
        ));
    }
    for (i, var) in t.variables.iter().enumerate() {
        if var.chars().count() > 1024 || var.contains(char::is_control) || var.contains("    ") {
            return Err(ValidationError::new(
                format!("template.variables[{i}]"),
                "invalid_variable",
                "a template variable is at most 1024 characters without control characters (WhatsApp refuses newlines, tabs and 4+ spaces in variables)",
            ));
        }
    }
    let header_media = t
        .header_media
        .map(|m| validate_media("template.headerMedia", m))
        .transpose()?;
    Ok(WhatsappTemplate {
        name: t.name.trim().to_owned(),
        language: t.language,
        variables: t.variables,
        header_media,
    })
}

fn validate_media(field: &str, m: Media) -> Valid<Media> {
    match (&m.link, &m.media_id) {
        (Some(link), None) => v::http_url(&format!("{field}.link"), link)?,
        (None, Some(id)) if visible(id, 256) => {}
        (None, Some(_)) => {
            return Err(ValidationError::new(
                format!("{field}.mediaId"),
                "invalid_media_id",
                "mediaId is the provider's media id (1-256 characters)",
            ))
        }
        _ => {
            return Err(ValidationError::new(
                field,
                "invalid_media",
                format!("{field} needs exactly one of link or mediaId"),
            ))
        }
    }
    if let Some(name) = &m.filename {
        if !visible(name, 255) {
            return Err(ValidationError::new(
                format!("{field}.filename"),
                "invalid_filename",
                "filename is 1-255 characters",
            ));
        }
    }
    Ok(m)
}
