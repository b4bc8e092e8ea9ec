//! Africa's Talking delivery reports (providers.md §10.2): a form POST with
//! `id` (the `messageId` from the send), `status`, `phoneNumber`,
//! `networkCode`, `failureReason` (on failures) and `retryCount`.
//!
//! Africa's Talking does not sign its callbacks. The callback URL set in its
//! dashboard must carry the connection's `credentials.webhookToken` as a
//! `token` query parameter (`…/api/webhooks/sms/{providerId}?token=…`),
//! compared in constant time; without a configured token every report is
//! refused.
//!
//! States (§12): `Sent`, `Submitted` and `Buffered` → `Sent` (the provider
//! has it; see [`crate::twilio::state_for`] for why not our `queued`),
//! `Success` → `Delivered`, `Failed` and `Rejected` → `Failed`.
//! `failureReason` `UserInBlackList` (the recipient opted out, §12)
//! suppresses the recipient. A report has no event id and no timestamp: the
//! id is derived from `id` and `status` (Africa's Talking's retries of the
//! same report carry the same pair), `occurred_at` is the time of receipt.

use chrono::{DateTime, Utc};
use msgengine_domain::message::MessageState;
use msgengine_domain::provider::SmsProviderSpec;
use msgengine_domain::Secret;

use crate::webhook::{
    token_eq, usable_token, InboundWebhook, SuppressionReason, WebhookError, WebhookEvent,
    WebhookHandler,
};

/// The query parameter carrying the connection's webhook token.
const TOKEN_PARAM: &str = "token";

/// The webhook scheme of one Africa's Talking connection.
pub struct AfricasTalkingWebhook {
    token: Option<Secret>,
}

impl AfricasTalkingWebhook {
    /// The token is `credentials.webhookToken`.
    pub fn new(spec: &SmsProviderSpec) -> Self {
        Self {
            token: spec.credential("webhookToken").cloned(),
        }
    }
}

impl WebhookHandler for AfricasTalkingWebhook {
    fn verify(
        &self,
        request: &InboundWebhook<'_>,
        _now: DateTime<Utc>,
    ) -> Result<(), WebhookError> {
        let Some(expected) = usable_token(self.token.as_ref()) else {
            return Err(WebhookError::Unauthorized(
                "Africa's Talking does not sign delivery reports: set credentials.webhookToken \
                 (at least 16 characters) and add ?token=<it> to the callback URL in the \
                 Africa's Talking dashboard"
                    .into(),
            ));
        };
        let given = url::form_urlencoded::parse(request.query.as_bytes())
            .find(|(k, _)| k == TOKEN_PARAM)
            .map(|(_, v)| v.into_owned());
        match given {
            None => Err(WebhookError::Unauthorized(
                "no token query parameter on the callback URL".into(),
            )),
            Some(given) if token_eq(given.as_bytes(), expected.expose().as_bytes()) => Ok(()),
            Some(_) => Err(WebhookError::Unauthorized(
                "the token query parameter does not match credentials.webhookToken".into(),
            )),
        }
    }

    fn parse(
        &self,
        request: &InboundWebhook<'_>,
        now: DateTime<Utc>,
    ) -> Result<Vec<WebhookEvent>, WebhookError> {
        let params: Vec<(String, String)> = url::form_urlencoded::parse(request.body)
            .into_owned()
            .collect();
        let get = |name: &str| {
            params
                .iter()
                .find(|(k, _)| k == name)
                .map(|(_, v)| v.trim())
                .filter(|v| !v.is_empty())
        };
        let (Some(id), Some(status)) = (get("id"), get("status")) else {
            return Err(WebhookError::Malformed(
                "an Africa's Talking delivery report carries id and status".into(),
            ));
        };
        let failure = get("failureReason");
        let mut event = WebhookEvent::new(format!("africastalking:{id}:{status}"), status, now);
        event.provider_message_id = Some(id.to_owned());
        event.state = state_for(status);
        event.recipient = get("phoneNumber").map(str::to_owned);
        event.error_code = failure.map(str::to_owned);
        event.reason = failure.map(|f| describe_failure(f).unwrap_or(f).to_owned());
        if failure.is_some_and(|f| f.eq_ignore_ascii_case("UserInBlackList")) {
            event.suppress = Some(SuppressionReason::Unsubscribe);
        }
        Ok(vec![event])
    }
}

/// The engine's state for a delivery-report `status`.
pub fn state_for(status: &str) -> Option<MessageState> {
    match status {
        "Sent" | "Submitted" | "Buffered" => Some(MessageState::Sent),
        "Success" => Some(MessageState::Delivered),
        "Failed" | "Rejected" => Some(MessageState::Failed),
        _ => None,
    }
}

/// §10.2's `failureReason` values in words.
fn describe_failure(reason: &str) -> Option<&'static str> {
    Some(match reason {
        "InsufficientCredit" => "the recipient has insufficient airtime credit (premium SMS)",
        "InvalidLinkId" => "the premium reply's linkId is invalid or expired",
        "UserIsInactive" => "the recipient's line is inactive",
        "UserInBlackList" => "the recipient has opted out (blacklisted this sender)",
        "UserAccountSuspended" => "the recipient's mobile account is suspended",
        "NotNetworkSubcriber" => "the number is not a subscriber of the network",
        "UserNotSubscribedToProduct" => "the recipient is not subscribed to this product",
        "UserDoesNotExist" => "the number does not exist",
        "DeliveryFailure" => "the carrier could not deliver the message",
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn report_statuses_map_onto_engine_states() {
        use MessageState::*;
        for (status, state) in [
            ("Sent", Some(Sent)),
            ("Submitted", Some(Sent)),
            ("Buffered", Some(Sent)),
            ("Success", Some(Delivered)),
            ("Failed", Some(Failed)),
            ("Rejected", Some(Failed)),
            ("Whatever", None),
        ] {
            assert_eq!(state_for(status), state, "{status}");
        }
    }

    #[test]
    fn failure_reasons_are_described() {
        assert_eq!(
            describe_failure("DeliveryFailure"),
            Some("the carrier could not deliver the message")
        );
        assert_eq!(describe_failure("Other"), None);
    }
}
