//! Twilio Programmable Messaging (providers.md §6), shared by the SMS
//! ([`crate::twilio_sms`]) and WhatsApp ([`crate::twilio_whatsapp`])
//! adapters: both speak the same Message resource, WhatsApp with
//! `whatsapp:`-prefixed addresses.
//!
//! - [`TwilioAccount`]: one account's URLs and Basic auth (`AccountSid:AuthToken`
//!   or `ApiKeySid:ApiKeySecret`, the Account SID always in the path), the
//!   message create and fetch calls; [`TwilioProbe`], the connection probe.
//! - [`classify_response`]: Twilio's `{"code", "message"}` errors as
//!   [`crate::ProviderError`]s.
//! - [`signature`]: `X-Twilio-Signature` exactly as §6.3.
//! - [`TwilioWebhook`]: status callbacks (and inbound STOP) as engine events.
//!
//! The Account SID is treated as a secret (it is sealed with the
//! credentials): a request URL, which holds it, is never formatted into an
//! error, and provider text that echoes it is scrubbed.

mod account;
mod errors;
mod probe;
pub mod signature;
mod webhook;

use msgengine_domain::message::MessageState;

pub use account::{AuthKind, TwilioAccount};
pub use errors::{classify_response, describe_code};
pub use probe::TwilioProbe;
pub use webhook::TwilioWebhook;

/// Twilio's API host.
pub const DEFAULT_BASE_URL: &str = "https://api.twilio.com";
/// The header Twilio uses for idempotency (on its own webhooks: §6.1/§13
/// do not know it to be honoured on message create, so a retry after a
/// timeout may still create a second message; we send it anyway).
pub const TWILIO_IDEMPOTENCY_HEADER: &str = "I-Twilio-Idempotency-Token";
/// The API version in every path.
pub const API_VERSION: &str = "2010-04-01";
/// The query parameter of a `StatusCallback` URL that carries our message
/// id, so a callback can name the message without a lookup.
pub const MESSAGE_ID_PARAM: &str = "msgengineMessageId";

/// The engine's state for a Twilio message `status` (§6.1 enum, §12):
/// `queued`, `accepted`, `scheduled`, `sending` and `sent` all mean "the
/// provider has it" and map to `Sent` (as the send receipt does; our
/// `queued` is the engine's own queue, and moving a message back into it
/// would make the engine send it again); `delivered` → `Delivered`; `read`
/// → `Read`; `failed`, `undelivered`, `canceled` → `Failed`. Others
/// (`receiving`, `received`, `partially_delivered`) move no state.
pub fn state_for(status: &str) -> Option<MessageState> {
    match status {
        "queued" | "accepted" | "scheduled" | "sending" | "sent" => Some(MessageState::Sent),
        "delivered" => Some(MessageState::Delivered),
        "read" => Some(MessageState::Read),
        "failed" | "undelivered" | "canceled" => Some(MessageState::Failed),
        _ => None,
    }
}

/// A Messaging Service SID: `MG` and 32 hexadecimal characters. Both
/// adapters accept one as the sender instead of a number.
pub(crate) fn is_messaging_service_sid(sender: &str) -> bool {
    sender.len() == 34
        && sender.starts_with("MG")
        && sender[2..].bytes().all(|b| b.is_ascii_hexdigit())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statuses_map_onto_engine_states() {
        use MessageState::*;
        for (status, state) in [
            ("queued", Some(Sent)),
            ("accepted", Some(Sent)),
            ("sending", Some(Sent)),
            ("sent", Some(Sent)),
            ("delivered", Some(Delivered)),
            ("read", Some(Read)),
            ("undelivered", Some(Failed)),
            ("failed", Some(Failed)),
            ("canceled", Some(Failed)),
            ("received", None),
            ("partially_delivered", None),
        ] {
            assert_eq!(state_for(status), state, "{status}");
        }
    }

    #[test]
    fn messaging_service_sids_are_recognised() {
        assert!(is_messaging_service_sid(
            "MG0123456789abcdef0123456789abcdef"
        ));
        assert!(!is_messaging_service_sid("MGacme"));
        assert!(!is_messaging_service_sid("+15005550006"));
    }
}
