//! Management of a META_CLOUD connection (providers.md §5.3, §5.4).
//!
//! - Templates live on the WhatsApp Business Account:
//!   `GET /{WABA_ID}/message_templates` (paged by the `after` cursor; the
//!   `paging.next` URL is never followed because it embeds the access token
//!   and Meta's host, which would bypass `baseUrl`) and
//!   `POST /{WABA_ID}/message_templates` with components and examples.
//! - Media: `POST /{phoneNumberId}/media`, multipart `messaging_product`,
//!   `type`, `file` → `{"id"}`. The multipart body is written here (RFC 7578)
//!   rather than through reqwest's optional `multipart` feature.
//! - No message status lookup (the Cloud API has no endpoint to read a sent
//!   message back: statuses arrive only by webhook), and no webhook set-up
//!   (the callback URL and verify token are entered in the Meta app
//!   dashboard; msgengine answers the `hub.challenge` handshake).

use std::collections::BTreeSet;

use async_trait::async_trait;
use msgengine_domain::provider::WhatsappProviderSpec;
use rand::RngCore;
use serde::Deserialize;
use serde_json::{json, Value};

use super::Connection;
use crate::manage::{self, ProviderStatus, TemplateDraft, TemplateInfo, WhatsappAdmin};
use crate::send::{FailureKind, ProviderError};

/// Templates asked for per page.
const TEMPLATE_PAGE_SIZE: &str = "100";
/// Pages followed at most (2,000 templates; a WABA holds far fewer).
const MAX_TEMPLATE_PAGES: usize = 20;
/// How Meta's operations are named in "does not offer" errors.
const PROVIDER: &str = "Meta's WhatsApp Cloud API";

/// A META_CLOUD connection's management operations.
pub struct MetaCloudAdmin {
    connection: Connection,
}

impl MetaCloudAdmin {
    /// Management for `spec`; calls go through the shared `http` client.
    pub fn new(spec: &WhatsappProviderSpec, http: crate::http::ProviderClient) -> Self {
        Self {
            connection: Connection::new(spec, http),
        }
    }

    /// One page of templates and the cursor of the next, if any.
    async fn template_page(
        &self,
        after: Option<&str>,
    ) -> Result<(Vec<TemplateInfo>, Option<String>), ProviderError> {
        let c = &self.connection;
        let mut url = c.url(&[c.business_account_id()?, "message_templates"])?;
        url.query_pairs_mut()
            .append_pair("limit", TEMPLATE_PAGE_SIZE);
        if let Some(after) = after {
            url.query_pairs_mut().append_pair("after", after);
        }
        let request = c.http.get(url).bearer_auth(c.token()?.expose());
        let answer = c.call(request).await?;
        let page: TemplatePage =
            serde_json::from_slice(&answer.body).map_err(|_| unexpected("the template list"))?;
        let next = page
            .paging
            .filter(|p| p.next.is_some())
            .and_then(|p| p.cursors)
            .and_then(|c| c.after)
            .filter(|a| !a.is_empty());
        Ok((
            page.data.into_iter().map(Template::into_info).collect(),
            next,
        ))
    }
}

#[async_trait]
impl WhatsappAdmin for MetaCloudAdmin {
    async fn list_templates(&self) -> Result<Vec<TemplateInfo>, ProviderError> {
        let mut templates = Vec::new();
        let mut after: Option<String> = None;
        for _ in 0..MAX_TEMPLATE_PAGES {
            let (page, next) = self.template_page(after.as_deref()).await?;
            templates.extend(page);
            match next {
                Some(cursor) if after.as_deref() != Some(cursor.as_str()) => after = Some(cursor),
                _ => break,
            }
        }
        Ok(templates)
    }

    async fn create_template(&self, draft: &TemplateDraft) -> Result<TemplateInfo, ProviderError> {
        let body = template_body(draft)?;
        let c = &self.connection;
        let url = c.url(&[c.business_account_id()?, "message_templates"])?;
        let request = c
            .http
            .post(url)
            .bearer_auth(c.token()?.expose())
            .json(&body);
        let answer = c.call(request).await?;
        let created: Created = serde_json::from_slice(&answer.body)
            .ok()
            .filter(|c: &Created| !c.id.is_empty())
            .ok_or_else(|| unexpected("the created template"))?;
        Ok(TemplateInfo {
            id: Some(created.id),
            name: draft.name.clone(),
            language: draft.language.clone(),
            category: created
                .category
                .unwrap_or_else(|| draft.category.to_ascii_uppercase()),
            status: created.status.unwrap_or_else(|| "PENDING".into()),
            body: Some(draft.body.clone()),
        })
    }

    async fn upload_media(
        &self,
        bytes: Vec<u8>,
        mime_type: &str,
        filename: &str,
    ) -> Result<String, ProviderError> {
        let c = &self.connection;
        let url = c.url(&[c.phone_number_id()?, "media"])?;
        let token = c.token()?;
        let boundary = boundary();
        let body = multipart_body(&boundary, &bytes, mime_type, filename)?;
        let request = c
            .http
            .post(url)
            .bearer_auth(token.expose())
            .header(
                reqwest::header::CONTENT_TYPE,
                format!("multipart/form-data; boundary={boundary}"),
            )
            .body(body);
        let answer = c.call(request).await?;
        serde_json::from_slice::<Uploaded>(&answer.body)
            .ok()
            .map(|u| u.id)
            .filter(|id| !id.is_empty())
            .ok_or_else(|| unexpected("the uploaded media"))
    }

    async fn message_status(
        &self,
        _provider_message_id: &str,
    ) -> Result<ProviderStatus, ProviderError> {
        Err(manage::unsupported(
            PROVIDER,
            "a message status lookup: it has no endpoint to read a sent message back, \
             statuses arrive only through the webhook",
        ))
    }

    async fn setup_webhook(&self, _url: &str) -> Result<(), ProviderError> {
        Err(manage::unsupported(
            PROVIDER,
            "setting the webhook through msgengine: enter the callback URL and the \
             connection's webhookVerifyToken in the Meta app dashboard (WhatsApp > \
             Configuration); msgengine answers Meta's hub.challenge handshake",
        ))
    }
}

/// A 2xx answer whose body is not what Meta documents: worth retrying.
fn unexpected(what: &str) -> ProviderError {
    ProviderError::new(
        FailureKind::Transient,
        format!("Meta answered without {what}"),
    )
}

/// The create-template body: `HEADER` (text), `BODY` with its examples when
/// it has placeholders, `FOOTER` (providers.md §5.3). Meta requires one
/// example per placeholder; a mismatch is refused here, in words.
pub(crate) fn template_body(draft: &TemplateDraft) -> Result<Value, ProviderError> {
    let placeholders = placeholder_count(&draft.body);
    if placeholders != draft.examples.len() && placeholders > 0 {
        let mut e = ProviderError::new(
            FailureKind::Permanent,
            format!(
                "the template body has {placeholders} placeholder(s) but {} example(s); Meta needs one example per placeholder",
                draft.examples.len()
            ),
        );
        e.code = Some("msgengine_invalid_template".into());
        return Err(e);
    }
    let mut components = Vec::new();
    if let Some(header) = draft.header_text.as_deref().filter(|h| !h.is_empty()) {
        components.push(json!({"type": "HEADER", "format": "TEXT", "text": header}));
    }
    let mut body = json!({"type": "BODY", "text": draft.body});
    if placeholders > 0 {
        body["example"] = json!({"body_text": [draft.examples]});
    }
    components.push(body);
    if let Some(footer) = draft.footer_text.as_deref().filter(|f| !f.is_empty()) {
        components.push(json!({"type": "FOOTER", "text": footer}));
    }
    Ok(json!({
        "name": draft.name,
        "category": draft.category.to_ascii_uppercase(),
        "language": draft.language,
        "components": components,
    }))
}

/// How many distinct `{{n}}` placeholders `text` holds.
fn placeholder_count(text: &str) -> usize {
    let mut seen = BTreeSet::new();
    let mut rest = text;
    while let Some(start) = rest.find("{{") {
        rest = &rest[start + 2..];
        if let Some(end) = rest.find("}}") {
            let inner = rest[..end].trim();
            if !inner.is_empty() && inner.bytes().all(|b| b.is_ascii_digit()) {
                seen.insert(inner.to_owned());
            }
        }
    }
    seen.len()
}

/// A random multipart boundary (128 bits: it cannot plausibly occur in the file).
fn boundary() -> String {
    let mut bytes = [0u8; 16];
    rand::thread_rng().fill_bytes(&mut bytes);
    format!("msgengine-{}", hex::encode(bytes))
}

/// The multipart/form-data body of a media upload (RFC 7578): the fields
/// `messaging_product=whatsapp`, `type=<mime>`, then the `file` part.
pub(crate) fn multipart_body(
    boundary: &str,
    bytes: &[u8],
    mime_type: &str,
    filename: &str,
) -> Result<Vec<u8>, ProviderError> {
    let mime = mime_type.trim();
    let valid_mime = mime.split_once('/').is_some_and(|(t, s)| {
        let token = |p: &str| {
            !p.is_empty()
                && p.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"!#$&-^_.+".contains(&b))
        };
        token(t) && token(s)
    });
    if !valid_mime {
        return Err(ProviderError::new(
            FailureKind::Permanent,
            "the media type must be a MIME type such as image/jpeg",
        ));
    }
    // Quotes and line breaks would end the header early; browsers escape them too.
    let filename: String = filename
        .chars()
        .map(|c| {
            if matches!(c, '"' | '\\' | '\r' | '\n') {
                '_'
            } else {
                c
            }
        })
        .collect();
    let mut body = Vec::with_capacity(bytes.len() + 512);
    for (name, value) in [("messaging_product", "whatsapp"), ("type", mime)] {
        body.extend_from_slice(
            format!(
                "--{boundary}\r\nContent-Disposition: form-data; name=\"{name}\"\r\n\r\n{value}\r\n"
            )
            .as_bytes(),
        );
    }
    body.extend_from_slice(
        format!(
            "--{boundary}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"{filename}\"\r\nContent-Type: {mime}\r\n\r\n"
        )
        .as_bytes(),
    );
    body.extend_from_slice(bytes);
    body.extend_from_slice(format!("\r\n--{boundary}--\r\n").as_bytes());
    Ok(body)
}

#[derive(Deserialize)]
struct TemplatePage {
    #[serde(default)]
    data: Vec<Template>,
    #[serde(default)]
    paging: Option<Paging>,
}

#[derive(Deserialize)]
struct Paging {
    #[serde(default)]
    cursors: Option<Cursors>,
    #[serde(default)]
    next: Option<String>,
}

#[derive(Deserialize)]
struct Cursors {
    #[serde(default)]
    after: Option<String>,
}

#[derive(Deserialize)]
struct Template {
    #[serde(default)]
    id: Option<String>,
    #[serde(default)]
    name: String,
    #[serde(default)]
    language: String,
    #[serde(default)]
    category: String,
    #[serde(default)]
    status: String,
    #[serde(default)]
    components: Vec<Value>,
}

impl Template {
    fn into_info(self) -> TemplateInfo {
        let body = self
            .components
            .iter()
            .find(|c| c.get("type").and_then(Value::as_str) == Some("BODY"))
            .and_then(|c| c.get("text"))
            .and_then(Value::as_str)
            .map(str::to_owned);
        TemplateInfo {
            id: self.id,
            name: self.name,
            language: self.language,
            category: self.category,
            status: self.status,
            body,
        }
    }
}

#[derive(Deserialize)]
struct Created {
    id: String,
    #[serde(default)]
    status: Option<String>,
    #[serde(default)]
    category: Option<String>,
}

#[derive(Deserialize)]
struct Uploaded {
    id: String,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn draft(body: &str, examples: &[&str]) -> TemplateDraft {
        TemplateDraft {
            name: "order_update".into(),
            language: "en_US".into(),
            category: "utility".into(),
            body: body.into(),
            examples: examples.iter().map(|e| (*e).to_owned()).collect(),
            header_text: None,
            footer_text: None,
        }
    }

    #[test]
    fn placeholders_are_counted_once_each() {
        assert_eq!(placeholder_count("Hi {{1}}, order {{2}} for {{1}}"), 2);
        assert_eq!(placeholder_count("no {{x}} {{ }} here {{"), 0);
    }

    #[test]
    fn examples_must_match_the_placeholders() {
        let e = template_body(&draft("Hi {{1}} {{2}}", &["Ada"])).err();
        assert_eq!(
            e.and_then(|e| e.code),
            Some("msgengine_invalid_template".into())
        );
        let plain = template_body(&draft("Thanks!", &[])).expect("valid");
        assert_eq!(
            plain["components"],
            json!([{"type": "BODY", "text": "Thanks!"}])
        );
    }

    #[test]
    fn multipart_refuses_a_bad_mime_type_and_escapes_the_filename() {
        assert!(multipart_body("b", b"x", "image", "a.jpg").is_err());
        assert!(multipart_body("b", b"x", "image/jp\"eg", "a.jpg").is_err());
        let body = multipart_body("b", b"x", "image/jpeg", "a\"\r\n.jpg").expect("body");
        let text = String::from_utf8(body).expect("utf-8");
        assert!(text.contains("filename=\"a___.jpg\""), "{text}");
    }
}
