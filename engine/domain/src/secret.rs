//! A secret string (API key, token, password) that never prints.
//!
//! `Debug` and `Display` are redacted; the value is wiped from memory on drop.
//! Serialisation is transparent because secrets must be sealed (encrypted)
//! as JSON by the storage layer; the HTTP layer never serialises one.

use std::fmt;

use serde::{Deserialize, Serialize};
use zeroize::Zeroize;

/// A secret value. Read it with [`Secret::expose`], only where it is used.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Secret(String);

impl Secret {
    pub fn new(value: impl Into<String>) -> Self {
        Self(value.into())
    }

    /// The plain value. Call it only to use the secret (sign, authenticate).
    pub fn expose(&self) -> &str {
        &self.0
    }

    /// The last four characters, only when the secret is long enough (16+
    /// characters) that they reveal little; otherwise `None`.
    pub fn hint(&self) -> Option<String> {
        let n = self.0.chars().count();
        (n >= 16).then(|| self.0.chars().skip(n - 4).collect())
    }
}

impl Drop for Secret {
    fn drop(&mut self) {
        self.0.zeroize();
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(***)")
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("***")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secret_never_prints_its_value() {
        let s = Secret::new("key-0123456789abcdef");
        assert_eq!(format!("{s:?} {s}"), "Secret(***) ***");
        assert_eq!(s.hint().as_deref(), Some("cdef"));
        assert_eq!(Secret::new("short").hint(), None);
    }
}
