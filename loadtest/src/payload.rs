//! Send-request bodies, written straight into bytes.
//!
//! Message `n` of a run is `{"channel": C, "to": R(n), "text": "load test
//! message n"}` (plus `"subject"` for email). Recipients are valid for their
//! channel: SMS and WhatsApp get Nigerian MTN mobile numbers `+234803` plus
//! seven digits (always a valid number, so the engine's E.164 check passes),
//! email gets `user{n}@example.com`. Every piece is plain ASCII that needs no
//! JSON escaping, so a body is built by appending to one buffer instead of
//! going through a JSON serializer.

use std::fmt;
use std::io::Write;

use bytes::Bytes;
use clap::ValueEnum;
use serde::{Deserialize, Serialize};

/// A messaging channel.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, ValueEnum, Serialize, Deserialize,
)]
#[serde(rename_all = "lowercase")]
pub enum Channel {
    Sms,
    Email,
    Whatsapp,
}

impl Channel {
    /// The API's name for it (`sms`, `email`, `whatsapp`).
    pub fn as_str(self) -> &'static str {
        match self {
            Channel::Sms => "sms",
            Channel::Email => "email",
            Channel::Whatsapp => "whatsapp",
        }
    }
}

impl fmt::Display for Channel {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The seven subscriber digits of message `n`'s phone number: 1000000 to
/// 9999999, cycling.
pub fn subscriber_digits(n: u64) -> u64 {
    1_000_000 + n % 9_000_000
}

/// Writes message `n`'s recipient (no quotes).
fn write_recipient(buf: &mut Vec<u8>, channel: Channel, n: u64) {
    // Writing to a Vec cannot fail.
    let _ = match channel {
        Channel::Sms | Channel::Whatsapp => write!(buf, "+234803{}", subscriber_digits(n)),
        Channel::Email => write!(buf, "user{n}@example.com"),
    };
}

/// Message `n`'s recipient.
pub fn recipient(channel: Channel, n: u64) -> String {
    let mut buf = Vec::with_capacity(24);
    write_recipient(&mut buf, channel, n);
    String::from_utf8_lossy(&buf).into_owned()
}

/// Appends message `n` as one JSON object.
fn write_message(buf: &mut Vec<u8>, channel: Channel, n: u64) {
    buf.extend_from_slice(b"{\"channel\":\"");
    buf.extend_from_slice(channel.as_str().as_bytes());
    buf.extend_from_slice(b"\",\"to\":\"");
    write_recipient(buf, channel, n);
    if channel == Channel::Email {
        let _ = write!(buf, "\",\"subject\":\"load test {n}");
    }
    let _ = write!(buf, "\",\"text\":\"load test message {n}\"}}");
}

/// The body of one send request holding messages `first..first + count`:
/// one message object when `batch_form` is false (then `count` must be 1),
/// else `{"messages": [...]}`.
pub fn request_body(channel: Channel, first: u64, count: usize, batch_form: bool) -> Bytes {
    let mut buf = Vec::with_capacity(16 + count * 96);
    if batch_form {
        buf.extend_from_slice(b"{\"messages\":[");
        for i in 0..count as u64 {
            if i > 0 {
                buf.push(b',');
            }
            write_message(&mut buf, channel, first + i);
        }
        buf.extend_from_slice(b"]}");
    } else {
        write_message(&mut buf, channel, first);
    }
    Bytes::from(buf)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::{json, Value};

    fn parse(body: &Bytes) -> Value {
        serde_json::from_slice(body).expect("valid JSON")
    }

    #[test]
    fn single_sms_body() {
        let body = request_body(Channel::Sms, 7, 1, false);
        assert_eq!(
            parse(&body),
            json!({"channel": "sms", "to": "+2348031000007", "text": "load test message 7"})
        );
    }

    #[test]
    fn batch_email_body() {
        let body = request_body(Channel::Email, 10, 3, true);
        let v = parse(&body);
        let messages = v["messages"].as_array().expect("messages");
        assert_eq!(messages.len(), 3);
        assert_eq!(
            messages[2],
            json!({"channel": "email", "to": "user12@example.com",
                   "subject": "load test 12", "text": "load test message 12"})
        );
    }

    #[test]
    fn whatsapp_uses_phone_numbers() {
        let v = parse(&request_body(Channel::Whatsapp, 0, 2, true));
        assert_eq!(v["messages"][1]["to"], "+2348031000001");
        assert_eq!(v["messages"][1]["channel"], "whatsapp");
    }

    #[test]
    fn phone_numbers_are_valid_e164_numbers() {
        for n in [0u64, 1, 42, 8_999_999, 9_000_000, 12_345_678, u64::MAX] {
            let to = recipient(Channel::Sms, n);
            assert_eq!(to.len(), 14, "{to}");
            let parsed = phonenumber::parse(None, &to).expect("parses");
            assert!(phonenumber::is_valid(&parsed), "{to} is not a valid number");
        }
        assert_eq!(subscriber_digits(0), 1_000_000);
        assert_eq!(subscriber_digits(8_999_999), 9_999_999);
        assert_eq!(subscriber_digits(9_000_000), 1_000_000);
    }
}
