//! Unit tests for send-body parsing: every rule, error code and field path.

use chrono::TimeZone;
use serde_json::json;

use super::*;
use crate::lifecycle::{MessageState, Start};

fn now() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2025, 6, 1, 12, 0, 0).single().unwrap()
}

fn parse(body: Value) -> Valid<SendRequest> {
    parse_send_request(&body, now())
}

fn one(body: Value) -> NewMessage {
    let mut request = parse(body).unwrap();
    assert!(!request.is_batch);
    assert_eq!(request.messages.len(), 1);
    request.messages.remove(0)
}

/// The (field, code) of the error a body fails with.
fn err(body: Value) -> (String, &'static str) {
    let e = parse(body).unwrap_err();
    (e.field, e.code)
}

fn fails(body: Value, field: &str, code: &str) {
    let body_text = body.to_string();
    let (f, c) = err(body);
    assert_eq!((f.as_str(), c), (field, code), "{body_text}");
}

fn sms(text: &str) -> Value {
    json!({"channel": "sms", "to": "+2348031234567", "text": text})
}

fn email() -> Value {
    json!({"channel": "email", "to": "ada@example.com", "subject": "Hi", "text": "Hello"})
}

fn with(mut body: Value, key: &str, value: Value) -> Value {
    body[key] = value;
    body
}

#[test]
fn parses_a_single_email_trimming_the_recipient() {
    let m = one(with(email(), "to", json!("  ada@example.com ")));
    assert_eq!(m.channel, Channel::Email);
    assert_eq!(m.to, "ada@example.com");
    assert_eq!(Start::new(m.send_at, now()).state, MessageState::Queued);
    assert_eq!(m.subject.as_deref(), Some("Hi"));
    assert_eq!(m.text.as_deref(), Some("Hello"));
    assert_eq!(
        (m.from, m.html, m.metadata, m.send_at),
        (None, None, None, None)
    );
}

#[test]
fn parses_sms_and_whatsapp_with_e164_recipients() {
    let m = one(with(sms("hi"), "to", json!(" +2348031234567 ")));
    assert_eq!((m.channel, m.to.as_str()), (Channel::Sms, "+2348031234567"));
    let m = one(json!({"channel": "whatsapp", "to": "+254712345678", "text": "hi"}));
    assert_eq!(
        (m.channel, m.to.as_str()),
        (Channel::Whatsapp, "+254712345678")
    );
}

#[test]
fn parses_a_batch_in_request_order() {
    let request = parse(json!({"messages": [sms("one"), email(), sms("three")]})).unwrap();
    assert!(request.is_batch);
    let texts: Vec<_> = request.messages.iter().map(|m| m.text.as_deref()).collect();
    assert_eq!(texts, [Some("one"), Some("Hello"), Some("three")]);
    let single_batch = parse(json!({"messages": [sms("x")]})).unwrap();
    assert!(single_batch.is_batch);
}

#[test]
fn batch_size_limits() {
    fails(json!({"messages": []}), "messages", "empty_batch");
    let full: Vec<Value> = (0..MAX_BATCH).map(|_| sms("x")).collect();
    assert_eq!(
        parse(json!({ "messages": full })).unwrap().messages.len(),
        MAX_BATCH
    );
    let over: Vec<Value> = (0..=MAX_BATCH).map(|_| sms("x")).collect();
    fails(json!({ "messages": over }), "messages", "batch_too_large");
    fails(
        json!({"messages": {"channel": "sms"}}),
        "messages",
        "invalid_type",
    );
}

#[test]
fn batch_is_all_or_nothing_and_reports_the_first_bad_message() {
    let body = json!({"messages": [
        sms("ok"),
        with(sms("x"), "to", json!("0803")),
        with(email(), "to", json!("nope")),
    ]});
    fails(body, "messages[1].to", "invalid_phone");
    let e =
        parse(json!({"messages": [sms("ok"), with(email(), "to", json!("nope"))]})).unwrap_err();
    assert_eq!(e.field, "messages[1].to");
    assert!(e.message.starts_with("messages[1].to "), "{}", e.message);
}

#[test]
fn body_shape_errors() {
    fails(json!([sms("x")]), "body", "invalid_type");
    fails(json!("hello"), "body", "invalid_type");
    fails(
        json!({"messages": [sms("x")], "channel": "sms"}),
        "channel",
        "unknown_field",
    );
    fails(
        json!({"messages": [sms("x"), 5]}),
        "messages[1]",
        "invalid_type",
    );
}

#[test]
fn unknown_fields_are_rejected_by_name() {
    fails(
        with(sms("x"), "priority", json!(1)),
        "priority",
        "unknown_field",
    );
    fails(
        json!({"messages": [sms("x"), with(sms("x"), "cc", json!("a"))]}),
        "messages[1].cc",
        "unknown_field",
    );
}

#[test]
fn channel_errors() {
    fails(
        with(sms("x"), "channel", json!("fax")),
        "channel",
        "unknown_value",
    );
    fails(
        with(sms("x"), "channel", json!("SMS")),
        "channel",
        "unknown_value",
    );
    fails(
        json!({"to": "+2348031234567", "text": "x"}),
        "channel",
        "required",
    );
    fails(
        json!({"messages": [sms("x"), with(sms("x"), "channel", json!("pigeon"))]}),
        "messages[1].channel",
        "unknown_value",
    );
    fails(
        with(sms("x"), "channel", json!(1)),
        "channel",
        "invalid_type",
    );
}

#[test]
fn recipient_errors() {
    fails(json!({"channel": "sms", "text": "x"}), "to", "required");
    fails(
        json!({"messages": [{"channel": "sms", "text": "x"}]}),
        "messages[0].to",
        "required",
    );
    fails(
        with(sms("x"), "to", json!(2348031234567_u64)),
        "to",
        "invalid_type",
    );
    fails(with(email(), "to", json!("ada@")), "to", "invalid_email");
    fails(
        with(email(), "to", json!("Ada <ada@example.com>")),
        "to",
        "invalid_email",
    );
    fails(
        with(sms("x"), "to", json!("08031234567")),
        "to",
        "invalid_phone",
    );
    fails(
        with(sms("x"), "to", json!("ada@example.com")),
        "to",
        "invalid_phone",
    );
    fails(
        json!({"channel": "whatsapp", "to": "+12", "text": "x"}),
        "to",
        "invalid_phone",
    );
}

#[test]
fn sender_override_per_channel() {
    let m = one(with(email(), "from", json!(" news@example.com ")));
    assert_eq!(m.from.as_deref(), Some("news@example.com"));
    fails(
        with(email(), "from", json!("news")),
        "from",
        "invalid_email",
    );

    for ok in ["+2348031234567", "ACME", "Acme Ltd 1", "A"] {
        assert_eq!(
            one(with(sms("x"), "from", json!(ok))).from.as_deref(),
            Some(ok)
        );
    }
    fails(
        with(sms("x"), "from", json!("+12")),
        "from",
        "invalid_phone",
    );
    for bad in ["12345", "TwelveLetter", "Acme-Ltd", "Ácme"] {
        fails(with(sms("x"), "from", json!(bad)), "from", "invalid_sender");
    }

    let wa = json!({"channel": "whatsapp", "to": "+254712345678", "text": "x"});
    let m = one(with(wa.clone(), "from", json!("+2348031234567")));
    assert_eq!(m.from.as_deref(), Some("+2348031234567"));
    fails(with(wa, "from", json!("ACME")), "from", "invalid_phone");

    assert_eq!(one(with(sms("x"), "from", json!("  "))).from, None);
    assert_eq!(one(with(sms("x"), "from", Value::Null)).from, None);
}

#[test]
fn email_content_rules() {
    let html_only = json!({"channel": "email", "to": "a@example.com", "html": "<p>Hi</p>"});
    let m = one(html_only);
    assert_eq!(
        (m.text, m.html.as_deref(), m.subject),
        (None, Some("<p>Hi</p>"), None)
    );
    fails(
        json!({"channel": "email", "to": "a@example.com"}),
        "text",
        "empty_content",
    );
    fails(
        json!({"channel": "email", "to": "a@example.com", "text": " ", "html": ""}),
        "text",
        "empty_content",
    );
    assert_eq!(one(with(email(), "subject", json!(""))).subject, None);
}

#[test]
fn email_size_and_character_limits() {
    let subject = "s".repeat(MAX_SUBJECT_CHARS);
    assert!(parse(with(email(), "subject", json!(subject))).is_ok());
    let subject = "é".repeat(MAX_SUBJECT_CHARS + 1);
    fails(
        with(email(), "subject", json!(subject)),
        "subject",
        "too_long",
    );
    fails(
        with(email(), "subject", json!("a\nBcc: x")),
        "subject",
        "invalid_characters",
    );

    for field in ["text", "html"] {
        let body = "x".repeat(MAX_EMAIL_BODY_BYTES);
        assert!(parse(with(email(), field, json!(body))).is_ok());
        let body = "x".repeat(MAX_EMAIL_BODY_BYTES + 1);
        fails(with(email(), field, json!(body)), field, "too_long");
        fails(
            with(email(), field, json!("a\u{1b}b")),
            field,
            "invalid_characters",
        );
    }
    assert!(parse(with(email(), "text", json!("line\r\n\tindented"))).is_ok());
}

#[test]
fn sms_and_whatsapp_content_rules() {
    let wa = |text: &str| json!({"channel": "whatsapp", "to": "+254712345678", "text": text});
    for body in [sms("x"), wa("x")] {
        fails(
            with(body.clone(), "subject", json!("Hi")),
            "subject",
            "not_allowed",
        );
        fails(
            with(body.clone(), "html", json!("<p>x</p>")),
            "html",
            "not_allowed",
        );
        fails(
            with(body.clone(), "text", json!("  ")),
            "text",
            "empty_content",
        );
        fails(
            with(body.clone(), "text", Value::Null),
            "text",
            "empty_content",
        );
        fails(
            with(body.clone(), "text", json!("bell\u{7}")),
            "text",
            "invalid_characters",
        );
        assert!(parse(with(body, "text", json!("two\nlines\ttab"))).is_ok());
    }
    fails(
        json!({"channel": "sms", "to": "+2348031234567"}),
        "text",
        "empty_content",
    );
    assert!(parse(sms(&"ж".repeat(MAX_SMS_TEXT_CHARS))).is_ok());
    fails(sms(&"a".repeat(MAX_SMS_TEXT_CHARS + 1)), "text", "too_long");
    assert!(parse(wa(&"ж".repeat(MAX_WHATSAPP_TEXT_CHARS))).is_ok());
    fails(
        wa(&"a".repeat(MAX_WHATSAPP_TEXT_CHARS + 1)),
        "text",
        "too_long",
    );
    fails(
        json!({"messages": [sms("x"), with(sms("x"), "subject", json!("s"))]}),
        "messages[1].subject",
        "not_allowed",
    );
}

#[test]
fn metadata_rules() {
    let m = one(with(
        sms("x"),
        "metadata",
        json!({"orderId": 42, "tags": ["a"]}),
    ));
    assert_eq!(m.metadata.unwrap()["orderId"], 42);
    let big = json!({"blob": "x".repeat(MAX_METADATA_BYTES)});
    fails(with(sms("x"), "metadata", big), "metadata", "too_large");
    fails(
        with(sms("x"), "metadata", json!([1, 2])),
        "metadata",
        "invalid_type",
    );
    fails(
        with(sms("x"), "metadata", json!("tag")),
        "metadata",
        "invalid_type",
    );
}

#[test]
fn send_at_rules() {
    let at = |s: &str| with(sms("x"), "sendAt", json!(s));
    let m = one(at("2025-06-02T08:00:00Z"));
    assert_eq!(
        m.send_at,
        Utc.with_ymd_and_hms(2025, 6, 2, 8, 0, 0).single()
    );
    assert_eq!(Start::new(m.send_at, now()).state, MessageState::Scheduled);
    let m = one(at("2025-06-01T14:00:01+02:00"));
    assert_eq!(
        m.send_at,
        Utc.with_ymd_and_hms(2025, 6, 1, 12, 0, 1).single()
    );
    // Now, or a little in the past, means now.
    assert_eq!(one(at("2025-06-01T12:00:00Z")).send_at, None);
    assert_eq!(one(at("2025-06-01T11:55:00Z")).send_at, None);
    assert_eq!(one(at("2025-06-01T11:56:30.5Z")).send_at, None);
    fails(at("2025-06-01T11:54:59Z"), "sendAt", "too_far_in_past");
    assert!(one(at("2025-07-01T12:00:00Z")).send_at.is_some());
    fails(at("2025-07-01T12:00:01Z"), "sendAt", "too_far_in_future");
    for bad in [
        "tomorrow",
        "2025-06-02",
        "2025-06-02 08:00:00",
        "2025-06-02T08:00:00",
        "",
    ] {
        fails(at(bad), "sendAt", "invalid_time");
    }
    fails(
        with(sms("x"), "sendAt", json!(1_748_779_200)),
        "sendAt",
        "invalid_type",
    );
    fails(
        json!({"messages": [with(sms("x"), "sendAt", json!("soon"))]}),
        "messages[0].sendAt",
        "invalid_time",
    );
}

#[test]
fn into_outbound_keeps_every_field() {
    let m = one(json!({
        "channel": "email", "to": "a@example.com", "from": "b@example.com",
        "subject": "S", "html": "<p>x</p>", "metadata": {"k": "v"}
    }));
    let id = MessageId::new();
    let org = OrganizationId::new();
    let out = m.into_outbound(id, org);
    assert_eq!(
        (out.id, out.organization_id, out.channel),
        (id, org, Channel::Email)
    );
    assert_eq!(
        (out.to.as_str(), out.from.as_deref()),
        ("a@example.com", Some("b@example.com"))
    );
    assert_eq!((out.subject.as_deref(), out.text.as_str()), (Some("S"), ""));
    assert_eq!(out.html.as_deref(), Some("<p>x</p>"));
    assert_eq!(out.metadata.unwrap()["k"], "v");
}

/// Header injection: a line break in any field that ends up in a mail
/// header (or a provider's request) is refused, naming the field.
#[test]
fn line_breaks_in_header_bound_fields_are_refused() {
    let inject = "x\r\nBcc: victim@example.com";
    let wa = || json!({"channel": "whatsapp", "to": "+2348031234567"});
    let cases: Vec<(Value, &str, &str)> = vec![
        (
            with(email(), "subject", json!(inject)),
            "subject",
            "invalid_characters",
        ),
        (
            with(email(), "from", json!(format!("a@example.com{inject}"))),
            "from",
            "invalid_email",
        ),
        (
            with(email(), "replyTo", json!(format!("a@example.com{inject}"))),
            "replyTo",
            "invalid_email",
        ),
        (
            with(email(), "headers", json!({"X-Campaign": inject})),
            "headers.X-Campaign",
            "invalid_header_value",
        ),
        (
            with(email(), "headers", json!({"X-A\r\nBcc": "v"})),
            "headers.X-A\r\nBcc",
            "invalid_header_name",
        ),
        (
            with(email(), "tags", json!(["ok", inject])),
            "tags[1]",
            "invalid_tag",
        ),
        (
            with(
                email(),
                "attachments",
                json!([{"filename": inject, "contentType": "text/plain", "content": "aGk="}]),
            ),
            "attachments[0].filename",
            "invalid_filename",
        ),
        (
            with(
                wa(),
                "template",
                json!({"name": "t", "language": "en", "variables": ["a\rb"]}),
            ),
            "template.variables[0]",
            "invalid_variable",
        ),
        (
            with(
                wa(),
                "media",
                json!({"kind": "document", "link": "https://example.com/a.pdf", "filename": inject}),
            ),
            "media.filename",
            "invalid_filename",
        ),
    ];
    for (body, field, code) in cases {
        fails(body, field, code);
    }
}

/// A NUL is refused by the JSON extractor before parsing, but the domain
/// refuses it on its own in every field it checks for control characters.
#[test]
fn nul_in_checked_fields_is_refused_by_the_domain_too() {
    fails(
        with(email(), "subject", json!("a\u{0}b")),
        "subject",
        "invalid_characters",
    );
    fails(
        with(email(), "to", json!("a\u{0}@example.com")),
        "to",
        "invalid_email",
    );
    fails(sms("a\u{0}b"), "text", "invalid_characters");
}
