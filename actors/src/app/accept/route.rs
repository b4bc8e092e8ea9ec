//! Stage 3, route: a request naming a channel the organization has no
//! active provider for is refused at once (the first such message).

use msgengine_domain::Channel;

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
