//! Newtype identifiers, so an organization id can never be passed where a
//! provider id is expected. All are UUIDs; new ones are v7 (time-ordered).

use std::fmt;

use serde::{Deserialize, Serialize};
use uuid::Uuid;

macro_rules! uuid_id {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
        #[serde(transparent)]
        pub struct $name(pub Uuid);

        impl $name {
            /// A new, time-ordered (v7) id.
            pub fn new() -> Self {
                Self(Uuid::now_v7())
            }
        }

        impl Default for $name {
            fn default() -> Self {
                Self::new()
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                self.0.fmt(f)
            }
        }

        impl From<Uuid> for $name {
            fn from(id: Uuid) -> Self {
                Self(id)
            }
        }
    };
}

uuid_id!(
    /// An organization (tenant).
    OrganizationId
);
uuid_id!(
    /// An organization's API key (the row, never the key itself).
    ApiKeyId
);
uuid_id!(
    /// A provider connection of any channel.
    ProviderId
);
uuid_id!(
    /// A message accepted for sending.
    MessageId
);
