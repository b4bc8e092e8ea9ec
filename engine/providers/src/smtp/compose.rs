//! One [`OutboundMessage`] as an RFC 5322 message, built with lettre:
//! From/To/Subject/Reply-To, a `Message-ID` derived from our message id
//! (stable across retries, so a duplicate after a timeout can be recognised),
//! our id and idempotency key in `X-Msgengine-*` headers, the caller's own
//! headers, and a body that is text, HTML, both (multipart/alternative), and
//! attachments around it (multipart/mixed).
//!
//! lettre encodes everything to 7-bit (quoted-printable or base64 bodies,
//! RFC 2047 header words), so CR/LF in a value cannot inject a header and no
//! 8BITMIME support is needed from the server.

use base64::Engine as _;
use lettre::message::header::{ContentType, HeaderName, HeaderValue};
use lettre::message::{Attachment, Mailbox, MessageBuilder, MultiPart, SinglePart};
use lettre::Message;
use msgengine_domain::message::{MessageExtras, OutboundMessage};

use crate::http::IDEMPOTENCY_HEADER;
use crate::send::ProviderError;

/// The header carrying our message id, so bounces and relayed ESP events can
/// be matched to the message.
pub const MESSAGE_ID_HEADER: &str = "X-Msgengine-Message-Id";

/// Headers this adapter writes or that steer delivery; a caller's header of
/// the same name is refused rather than silently dropped or doubled.
const RESERVED: [&str; 15] = [
    "from",
    "to",
    "cc",
    "bcc",
    "sender",
    "reply-to",
    "subject",
    "date",
    "message-id",
    "mime-version",
    "content-type",
    "content-transfer-encoding",
    "content-disposition",
    "return-path",
    "received",
];

/// A message ready for the transport, and the Message-ID it carries.
pub(crate) struct Composed {
    pub email: Message,
    /// The Message-ID without angle brackets.
    pub message_id: String,
}

/// Builds the message sent as `from`.
pub(crate) fn compose(
    message: &OutboundMessage,
    from: Mailbox,
    idempotency_key: &str,
) -> Result<Composed, ProviderError> {
    let to = parse_mailbox("to", &message.to)?;
    let message_id = format!("{}@{}", message.id, from.email.domain());
    let mut builder = Message::builder()
        .from(from)
        .to(to)
        .message_id(Some(format!("<{message_id}>")))
        .raw_header(raw(MESSAGE_ID_HEADER, &message.id.to_string())?)
        .raw_header(raw(IDEMPOTENCY_HEADER, idempotency_key)?);
    if let Some(subject) = &message.subject {
        builder = builder.subject(subject.as_str());
    }
    let none = MessageExtras::default();
    let extras = message.extras.as_deref().unwrap_or(&none);
    if let Some(reply_to) = &extras.reply_to {
        builder = builder.reply_to(parse_mailbox("replyTo", reply_to)?);
    }
    builder = custom_headers(builder, &extras.headers)?;
    let email = with_body(builder, message, extras)?;
    Ok(Composed { email, message_id })
}

/// `Name <address>` or a bare address, as lettre parses it.
pub(crate) fn parse_mailbox(field: &str, value: &str) -> Result<Mailbox, ProviderError> {
    value.trim().parse::<Mailbox>().map_err(|e| {
        ProviderError::new(
            crate::send::FailureKind::Permanent,
            format!("{field} {value:?} is not an email address: {e}"),
        )
    })
}

fn custom_headers(
    mut builder: MessageBuilder,
    headers: &[(String, String)],
) -> Result<MessageBuilder, ProviderError> {
    for (name, value) in headers {
        let lower = name.to_ascii_lowercase();
        if RESERVED.contains(&lower.as_str()) || lower.starts_with("x-msgengine-") {
            return Err(content_error(format!(
                "header {name} is set by msgengine and cannot be given in headers"
            )));
        }
        builder = builder.raw_header(raw(name, value)?);
    }
    Ok(builder)
}

/// A header with a name made only of visible ASCII without `:` (RFC 5322
/// §2.2); lettre encodes the value.
fn raw(name: &str, value: &str) -> Result<HeaderValue, ProviderError> {
    let valid = !name.is_empty() && name.bytes().all(|b| (33..=126).contains(&b) && b != b':');
    let name = valid
        .then(|| HeaderName::new_from_ascii(name.to_owned()).ok())
        .flatten()
        .ok_or_else(|| content_error(format!("{name:?} is not a valid header name")))?;
    Ok(HeaderValue::new(name, value.to_owned()))
}

fn with_body(
    builder: MessageBuilder,
    message: &OutboundMessage,
    extras: &MessageExtras,
) -> Result<Message, ProviderError> {
    let built = if extras.attachments.is_empty() {
        match body(message) {
            Body::Single(part) => builder.singlepart(part),
            Body::Multi(part) => builder.multipart(part),
        }
    } else {
        let mut mixed = match body(message) {
            Body::Single(part) => MultiPart::mixed().singlepart(part),
            Body::Multi(part) => MultiPart::mixed().multipart(part),
        };
        for (i, attachment) in extras.attachments.iter().enumerate() {
            mixed = mixed.singlepart(attachment_part(i, attachment)?);
        }
        builder.multipart(mixed)
    };
    built.map_err(|e| content_error(format!("the message cannot be built: {e}")))
}

enum Body {
    Single(SinglePart),
    Multi(MultiPart),
}

/// Text, HTML, or both as multipart/alternative (text first, RFC 2046 §5.1.4).
fn body(message: &OutboundMessage) -> Body {
    match &message.html {
        None => Body::Single(SinglePart::plain(message.text.clone())),
        Some(html) if message.text.is_empty() => Body::Single(SinglePart::html(html.clone())),
        Some(html) => Body::Multi(MultiPart::alternative_plain_html(
            message.text.clone(),
            html.clone(),
        )),
    }
}

fn attachment_part(
    index: usize,
    attachment: &msgengine_domain::message::Attachment,
) -> Result<SinglePart, ProviderError> {
    let name = &attachment.filename;
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(attachment.content_base64.trim())
        .map_err(|_| {
            content_error(format!(
                "attachment {} ({name}): contentBase64 is not valid base64",
                index + 1
            ))
        })?;
    let content_type = ContentType::parse(&attachment.content_type).map_err(|_| {
        content_error(format!(
            "attachment {} ({name}): {:?} is not a MIME type",
            index + 1,
            attachment.content_type
        ))
    })?;
    Ok(Attachment::new(name.clone()).body(bytes, content_type))
}

fn content_error(message: String) -> ProviderError {
    let mut e = ProviderError::new(crate::send::FailureKind::Permanent, message);
    e.code = Some("msgengine_invalid_message".into());
    e
}

#[cfg(test)]
mod tests {
    use msgengine_domain::message::Attachment as Attached;
    use msgengine_domain::{Channel, MessageId, OrganizationId};

    use super::*;

    fn message() -> OutboundMessage {
        OutboundMessage {
            id: MessageId::new(),
            organization_id: OrganizationId::new(),
            channel: Channel::Email,
            to: "Ada <ada@example.org>".into(),
            from: None,
            subject: Some("Hello".into()),
            text: "Hi Ada".into(),
            html: None,
            metadata: None,
            extras: None,
            routing: None,
        }
    }

    fn from() -> Mailbox {
        parse_mailbox("from", "Ops <ops@example.com>").expect("valid")
    }

    fn formatted(composed: &Composed) -> String {
        String::from_utf8(composed.email.formatted()).expect("7-bit output")
    }

    #[test]
    fn message_id_is_ours_at_the_sender_domain() {
        let m = message();
        let composed = compose(&m, from(), "key-1").expect("composes");
        assert_eq!(composed.message_id, format!("{}@example.com", m.id));
        let text = formatted(&composed);
        assert!(
            text.contains(&format!("Message-ID: <{}@example.com>", m.id)),
            "{text}"
        );
        assert!(
            text.contains(&format!("X-Msgengine-Message-Id: {}", m.id)),
            "{text}"
        );
        assert!(
            text.contains("X-Msgengine-Idempotency-Key: key-1"),
            "{text}"
        );
    }

    #[test]
    fn reserved_and_malformed_headers_are_refused() {
        for name in [
            "From",
            "bcc",
            "X-Msgengine-Message-Id",
            "Bad Name",
            "A:B",
            "",
        ] {
            let mut m = message();
            m.extras = Some(Box::new(MessageExtras {
                headers: vec![(name.into(), "x".into())],
                ..MessageExtras::default()
            }));
            let e = compose(&m, from(), "k").err();
            assert!(
                e.as_ref().is_some_and(|e| !e.is_retryable()),
                "{name:?}: {e:?}"
            );
        }
    }

    #[test]
    fn a_value_with_line_breaks_cannot_inject_a_header() {
        let mut m = message();
        m.extras = Some(Box::new(MessageExtras {
            headers: vec![("X-Note".into(), "a\r\nBcc: eve@example.net".into())],
            ..MessageExtras::default()
        }));
        let text = formatted(&compose(&m, from(), "k").expect("composes"));
        assert!(!text.contains("\r\nBcc:"), "{text}");
    }

    #[test]
    fn bad_attachments_are_permanent_with_their_name() {
        let mut m = message();
        m.extras = Some(Box::new(MessageExtras {
            attachments: vec![Attached {
                filename: "a.pdf".into(),
                content_type: "application/pdf".into(),
                content_base64: "***".into(),
            }],
            ..MessageExtras::default()
        }));
        let e = compose(&m, from(), "k").err().map(|e| e.message);
        assert!(
            e.as_deref()
                .is_some_and(|m| m.contains("attachment 1 (a.pdf)")),
            "{e:?}"
        );
    }

    #[test]
    fn an_unparseable_recipient_is_permanent() {
        let mut m = message();
        m.to = "not an address".into();
        let e = compose(&m, from(), "k").err();
        assert!(e.is_some_and(|e| !e.is_retryable() && e.message.starts_with("to ")));
    }
}
