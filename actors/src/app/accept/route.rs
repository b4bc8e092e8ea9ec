//! Stage 3, route: a request naming a channel the organization has no
//! active provider for is refused at once (the first such message); once
//! the rows exist, each message is planned (rule, providers in order, why)
//! and the plan is stored with it. A message its plan leaves with no
//! provider refuses the request, naming it and why.

use chrono::{DateTime, Utc};
use msgengine_domain::message::{MessageState, OutboundMessage};
use msgengine_domain::routing::{MessageRouting, Plan};
use msgengine_domain::Channel;
use msgengine_storage::repo::messages::NewMessageRow;

use super::AcceptError;

/// Refuses the request at the first message (`channels`, in request order)
/// whose channel has no provider; `index` names it in a batch.
pub fn route(
    channels: impl Iterator<Item = Channel>,
    is_batch: bool,
    has_provider: impl Fn(Channel) -> bool,
) -> Result<(), AcceptError> {
    for (index, channel) in channels.enumerate() {
        if !has_provider(channel) {
            return Err(AcceptError::NoProvider {
                channel,
                index: is_batch.then_some(index),
            });
        }
    }
    Ok(())
}

/// Plans every row that will be sent (not those `rejected`), at the time
/// each is due, and stores the plan in its routing.
pub fn plan_rows(
    rows: &mut [NewMessageRow],
    is_batch: bool,
    now: DateTime<Utc>,
    plan: impl Fn(&OutboundMessage, DateTime<Utc>) -> Plan,
) -> Result<(), AcceptError> {
    for (index, row) in rows.iter_mut().enumerate() {
        if row.state == MessageState::Rejected {
            continue;
        }
        let decided = plan(&row.message, row.send_at.unwrap_or(now));
        if decided.candidates.is_empty() {
            let why: Vec<String> = decided.excluded.iter().map(|c| c.explanation()).collect();
            return Err(AcceptError::NoRoute {
                channel: row.message.channel,
                index: is_batch.then_some(index),
                rule: decided.decider.rule,
                why: why.join("; "),
            });
        }
        let routing = row
            .message
            .routing
            .get_or_insert_with(Box::<MessageRouting>::default);
        routing.plan = Some(decided);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn only_sms(channel: Channel) -> bool {
        channel == Channel::Sms
    }

    #[test]
    fn routable_channels_go_on() {
        let channels = [Channel::Sms, Channel::Sms];
        assert!(route(channels.into_iter(), true, only_sms).is_ok());
    }

    #[test]
    fn the_first_unroutable_message_is_named_in_a_batch() {
        let channels = [Channel::Sms, Channel::Email, Channel::Whatsapp];
        assert!(matches!(
            route(channels.into_iter(), true, only_sms),
            Err(AcceptError::NoProvider {
                channel: Channel::Email,
                index: Some(1)
            })
        ));
    }

    #[test]
    fn a_single_message_has_no_index() {
        assert!(matches!(
            route([Channel::Email].into_iter(), false, only_sms),
            Err(AcceptError::NoProvider {
                channel: Channel::Email,
                index: None
            })
        ));
    }
}
