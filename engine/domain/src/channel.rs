//! The three channels msgengine sends on.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// A messaging channel. Serialised lower-case, as in the API paths.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Channel {
    Email,
    Sms,
    Whatsapp,
}

impl Channel {
    /// Every channel, in a stable order.
    pub const ALL: [Channel; 3] = [Channel::Email, Channel::Sms, Channel::Whatsapp];

    /// The lower-case name used in paths, the database and metrics labels.
    pub fn as_str(self) -> &'static str {
        match self {
            Channel::Email => "email",
            Channel::Sms => "sms",
            Channel::Whatsapp => "whatsapp",
        }
    }
}

impl fmt::Display for Channel {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The text was not one of `email`, `sms`, `whatsapp`.
#[derive(Debug, thiserror::Error)]
#[error("unknown channel")]
pub struct UnknownChannel;

impl FromStr for Channel {
    type Err = UnknownChannel;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "email" => Ok(Channel::Email),
            "sms" => Ok(Channel::Sms),
            "whatsapp" => Ok(Channel::Whatsapp),
            _ => Err(UnknownChannel),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn channel_round_trips_through_its_name() {
        for c in Channel::ALL {
            assert_eq!(c.as_str().parse::<Channel>().ok(), Some(c));
        }
        assert!("fax".parse::<Channel>().is_err());
    }
}
