//! The provider-type enums' common shape, declared once.

/// Declares a channel's provider-type enum from one list, each variant with
/// the name it is stored and shown as (`Mailgun => "MAILGUN"`). Generates the
/// enum (serialised as that name), `as_str` and `ALL` (every type, in list
/// order), so a new provider type is one line in the list; the provider
/// registry's tests walk `ALL` to check every type has its adapter.
macro_rules! provider_types {
    (
        $(#[$meta:meta])*
        pub enum $name:ident {
            $($(#[$variant_meta:meta])* $variant:ident => $stored:literal,)+
        }
    ) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
        pub enum $name {
            $($(#[$variant_meta])* #[serde(rename = $stored)] $variant,)+
        }

        impl $name {
            /// Every type, in declaration order.
            pub const ALL: &'static [Self] = &[$(Self::$variant),+];

            /// The type as stored and shown (`MAILGUN`, `TERMII`...).
            pub fn as_str(self) -> &'static str {
                match self {
                    $(Self::$variant => $stored,)+
                }
            }
        }
    };
}

#[cfg(test)]
mod tests {
    use super::super::{
        email::EmailProviderType, sms::SmsProviderType, whatsapp::WhatsappProviderType,
    };

    /// `as_str` is the serialised name, and `ALL` holds each type once.
    fn check<T>(all: &[T], as_str: fn(T) -> &'static str)
    where
        T: Copy + PartialEq + std::fmt::Debug + serde::Serialize + serde::de::DeserializeOwned,
    {
        for (i, t) in all.iter().enumerate() {
            let name = as_str(*t);
            assert_eq!(serde_json::to_value(t).ok(), Some(name.into()), "{t:?}");
            let back: T = serde_json::from_value(name.into()).expect("round trip");
            assert_eq!(back, *t);
            assert!(!all[..i].contains(t), "{t:?} twice in ALL");
        }
    }

    #[test]
    fn names_round_trip_and_all_lists_each_type_once() {
        check(EmailProviderType::ALL, EmailProviderType::as_str);
        check(SmsProviderType::ALL, SmsProviderType::as_str);
        check(WhatsappProviderType::ALL, WhatsappProviderType::as_str);
        assert_eq!(WhatsappProviderType::MetaCloud.as_str(), "META_CLOUD");
    }
}
