//! Mailgun's Messages API: `POST /v3/{domain}/messages` (providers.md §1.1),
//! form-urlencoded, or `multipart/form-data` when the message has
//! attachments (each an `attachment` file part).
//!
//! Fields: `from` (the message's, else `fromName <fromEmail>`), `to`,
//! `subject`, `text`/`html`, `h:Reply-To`, `h:<Name>` per custom header,
//! `o:tag` (Mailgun keeps at most 3 per message: the first 3 are sent),
//! `v:msgengine-id` (our message id, echoed in webhooks as
//! `user-variables`), `v:<name>` per metadata entry, and
//! `h:X-Msgengine-Idempotency-Key`.
//!
//! Success is HTTP 200 `{"id": "<…@domain>", "message": "Queued. Thank you."}`;
//! the receipt's id is the Message-ID without angle brackets, as Mailgun's
//! events and webhooks carry it.
//!
//! Mailgun has no idempotency key (§1.1): a retried send after a timeout may
//! duplicate. We still send the key as an `X-Msgengine-Idempotency-Key` HTTP
//! header (for our simulator) and as a MIME header (`h:`), so a duplicate
//! can be recognised by the recipient's headers.

use std::borrow::Cow;

use msgengine_domain::message::{Attachment, OutboundMessage};
use msgengine_domain::provider::EmailProviderSpec;
use msgengine_domain::Secret;
use serde::Deserialize;
use url::Url;

use super::{classify_response, DEFAULT_BASE_URL};
use crate::esp::{self, Mailbox, MESSAGE_ID_KEY};
use crate::http::{self, IDEMPOTENCY_HEADER};
use crate::send::{ProviderError, SendReceipt, Sender};

/// Budget for all `v:` names and values. Mailgun caps `o:`, `h:`, `v:` and
/// `t:` parameters together at 16 KB; the rest is left for our own fields.
const MAX_VARIABLE_BYTES: usize = 12 * 1024;
/// Mailgun keeps at most this many `o:tag` values per message.
const MAX_TAGS: usize = 3;

type Form<'a> = Vec<(Cow<'a, str>, Cow<'a, str>)>;

/// A Mailgun connection.
pub struct MailgunSender {
    http: crate::http::ProviderClient,
    /// `None` when `domain` is missing or `baseUrl` is not an http(s) URL.
    endpoint: Option<Url>,
    api_key: Option<Secret>,
    /// From `fromName`/`fromEmail`.
    default_from: Option<Mailbox>,
}

impl MailgunSender {
    /// A sender for `spec`; calls go through the shared `http` client.
    pub fn new(spec: &EmailProviderSpec, http: crate::http::ProviderClient) -> Self {
        let endpoint = spec.domain.as_deref().and_then(|domain| {
            http::endpoint(
                spec.base_url.as_deref(),
                DEFAULT_BASE_URL,
                &["v3", domain, "messages"],
            )
        });
        Self {
            http,
            endpoint,
            api_key: spec.api_key.clone(),
            default_from: esp::default_sender(spec),
        }
    }
}

/// The form fields of one send, in a fixed order.
fn form<'a>(message: &'a OutboundMessage, from: String, key: &'a str) -> Form<'a> {
    let mut form: Form<'a> = vec![
        ("from".into(), from.into()),
        ("to".into(), message.to.as_str().into()),
        (
            "subject".into(),
            message.subject.as_deref().unwrap_or("").into(),
        ),
    ];
    // Mailgun needs text or html; send text unless it is empty beside html.
    if !message.text.is_empty() || message.html.is_none() {
        form.push(("text".into(), message.text.as_str().into()));
    }
    if let Some(html) = &message.html {
        form.push(("html".into(), html.as_str().into()));
    }
    let extras = esp::extras(message);
    if let Some(reply_to) = &extras.reply_to {
        form.push(("h:Reply-To".into(), reply_to.as_str().into()));
    }
    for (name, value) in &extras.headers {
        form.push((format!("h:{name}").into(), value.as_str().into()));
    }
    for tag in extras.tags.iter().take(MAX_TAGS) {
        form.push(("o:tag".into(), tag.as_str().into()));
    }
    form.push((
        format!("v:{MESSAGE_ID_KEY}").into(),
        message.id.to_string().into(),
    ));
    if let Some(metadata) = &message.metadata {
        let variables = esp::custom_data(metadata, &[], MAX_VARIABLE_BYTES);
        form.extend(
            variables
                .into_iter()
                .map(|(name, value)| (format!("v:{name}").into(), value)),
        );
    }
    form.push((format!("h:{IDEMPOTENCY_HEADER}").into(), key.into()));
    form
}

#[async_trait::async_trait]
impl Sender for MailgunSender {
    async fn send(
        &self,
        message: &OutboundMessage,
        idempotency_key: &str,
    ) -> Result<SendReceipt, ProviderError> {
        let Some(endpoint) = &self.endpoint else {
            return Err(ProviderError::misconfigured(
                "MAILGUN needs domain, and baseUrl (when set) must be an http(s) URL",
            ));
        };
        let Some(api_key) = &self.api_key else {
            return Err(ProviderError::misconfigured("MAILGUN needs apiKey"));
        };
        let from = match &message.from {
            Some(from) => from.clone(),
            None => match &self.default_from {
                Some(mailbox) => mailbox.to_header(),
                None => return Err(ProviderError::misconfigured("MAILGUN needs fromEmail")),
            },
        };
        let extras = esp::extras(message);
        esp::check_headers(&extras.headers)?;
        let files = extras
            .attachments
            .iter()
            .map(|a| esp::decode_attachment(a).map(|bytes| (a, bytes)))
            .collect::<Result<Vec<_>, _>>()?;
        let fields = form(message, from, idempotency_key);
        let secrets = [api_key.expose()];
        let request = self
            .http
            .post(endpoint.clone())
            .basic_auth("api", Some(api_key.expose()))
            .header(IDEMPOTENCY_HEADER, idempotency_key);
        let request = if files.is_empty() {
            request.form(&fields)
        } else {
            let boundary = format!("msgengine-{}", uuid::Uuid::new_v4().simple());
            request
                .header(
                    reqwest::header::CONTENT_TYPE,
                    format!("multipart/form-data; boundary={boundary}"),
                )
                .body(multipart(&fields, &files, &boundary))
        };
        let answer = self
            .http
            .execute(request)
            .await
            .map_err(|e| http::scrub(e, &secrets))?;
        http::sent_or_error(&answer, &secrets, accepted_id, classify_response)
    }
}

/// A `multipart/form-data` body (RFC 7578): one part per field, then one
/// `attachment` file part per attachment.
fn multipart(fields: &Form<'_>, files: &[(&Attachment, Vec<u8>)], boundary: &str) -> Vec<u8> {
    let size: usize = fields
        .iter()
        .map(|(k, v)| k.len() + v.len() + 100)
        .sum::<usize>()
        + files.iter().map(|(_, b)| b.len() + 200).sum::<usize>();
    let mut body = Vec::with_capacity(size);
    for (name, value) in fields {
        body.extend_from_slice(
            format!(
                "--{boundary}\r\nContent-Disposition: form-data; name=\"{}\"\r\n\r\n",
                quoted(name)
            )
            .as_bytes(),
        );
        body.extend_from_slice(value.as_bytes());
        body.extend_from_slice(b"\r\n");
    }
    for (attachment, bytes) in files {
        body.extend_from_slice(
            format!(
                "--{boundary}\r\nContent-Disposition: form-data; name=\"attachment\"; filename=\"{}\"\r\nContent-Type: {}\r\n\r\n",
                quoted(&attachment.filename),
                esp::content_type(attachment)
            )
            .as_bytes(),
        );
        body.extend_from_slice(bytes);
        body.extend_from_slice(b"\r\n");
    }
    body.extend_from_slice(format!("--{boundary}--\r\n").as_bytes());
    body
}

/// A name or file name inside a quoted `Content-Disposition` parameter,
/// escaped as HTML forms do (`"` → `%22`, CR → `%0D`, LF → `%0A`).
fn quoted(text: &str) -> String {
    text.replace('"', "%22")
        .replace('\r', "%0D")
        .replace('\n', "%0A")
}

#[derive(Deserialize)]
struct Accepted {
    id: String,
}

/// The Message-ID of an accepted send, without angle brackets.
fn accepted_id(body: &[u8]) -> Option<String> {
    let accepted: Accepted = serde_json::from_slice(body).ok()?;
    let id = accepted
        .id
        .trim()
        .trim_start_matches('<')
        .trim_end_matches('>');
    (!id.is_empty()).then(|| id.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepted_id_drops_angle_brackets() {
        let body =
            br#"{"id": "<20240101120000.1.ABCDEF@example.com>", "message": "Queued. Thank you."}"#;
        assert_eq!(
            accepted_id(body).as_deref(),
            Some("20240101120000.1.ABCDEF@example.com")
        );
        assert_eq!(accepted_id(br#"{"id": "<>"}"#), None);
    }

    #[test]
    fn multipart_parts_escape_names_and_end_with_the_closing_boundary() {
        let fields: Form<'_> = vec![("h:X-\"q\"".into(), "v".into())];
        let attachment = Attachment {
            filename: "a\"b.txt".into(),
            content_type: "text/plain".into(),
            content_base64: String::new(),
        };
        let body = multipart(&fields, &[(&attachment, b"hi".to_vec())], "B");
        let text = String::from_utf8(body).expect("utf-8");
        assert_eq!(
            text,
            "--B\r\nContent-Disposition: form-data; name=\"h:X-%22q%22\"\r\n\r\nv\r\n\
             --B\r\nContent-Disposition: form-data; name=\"attachment\"; filename=\"a%22b.txt\"\r\n\
             Content-Type: text/plain\r\n\r\nhi\r\n--B--\r\n"
        );
    }
}
