//! Credential encryption: AES-256-GCM under a key ring.
//!
//! A sealed secret is self-describing:
//! `0x01 | key-id length (1 byte) | key id (ASCII) | nonce (12 bytes) | ciphertext + tag`.
//! The key id names the master key that sealed it, so keys can rotate while
//! old ciphertexts stay readable; the nonce is random per seal. The associated
//! data ([`Binding`]) names the organization, the row and the field, so a
//! ciphertext copied into another row, field or tenant fails to open.
//!
//! The ring lists keys oldest to newest; the newest seals, every key opens.

use std::fmt;

use aes_gcm::aead::{Aead, KeyInit, OsRng, Payload};
use aes_gcm::{AeadCore, Aes256Gcm, Key, Nonce};
use base64::Engine as _;
use uuid::Uuid;
use zeroize::Zeroizing;

const FORMAT_V1: u8 = 1;
const NONCE_LEN: usize = 12;

/// Why a key ring or a ciphertext was refused. Never carries secret material.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CryptoError {
    /// The key ring text is malformed.
    #[error("invalid master key ring: {0}")]
    InvalidKeyRing(String),
    /// The ciphertext names a key the ring does not hold.
    #[error("secret was sealed with master key `{0}`, which is not in the key ring")]
    UnknownKey(String),
    /// The ciphertext is not in the sealed format.
    #[error("sealed secret is malformed")]
    Malformed,
    /// Authentication failed: tampered, or bound to another organization, row or field.
    #[error("sealed secret failed authentication (tampered, or bound to another row)")]
    Unauthentic,
}

/// What a ciphertext is bound to: its organization, its row and its field.
#[derive(Debug, Clone, Copy)]
pub struct Binding<'a> {
    /// The table and column (e.g. `providers.secrets`).
    pub purpose: &'a str,
    pub organization_id: Uuid,
    pub row_id: Uuid,
}

impl Binding<'_> {
    fn associated_data(&self) -> Vec<u8> {
        format!(
            "msgengine/v1/{}/{}/{}",
            self.purpose, self.organization_id, self.row_id
        )
        .into_bytes()
    }
}

struct MasterKey {
    id: String,
    cipher: Aes256Gcm,
}

/// The master keys, oldest to newest. The newest seals; any of them opens.
pub struct KeyRing {
    keys: Vec<MasterKey>,
}

impl fmt::Debug for KeyRing {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let ids: Vec<&str> = self.keys.iter().map(|k| k.id.as_str()).collect();
        f.debug_struct("KeyRing").field("key_ids", &ids).finish()
    }
}

impl KeyRing {
    /// Parses `id:base64key` entries separated by commas or new lines, oldest
    /// first. Blank lines and `#` comments are ignored. Each key is 32 bytes.
    pub fn parse(text: &str) -> Result<KeyRing, CryptoError> {
        let mut keys: Vec<MasterKey> = Vec::new();
        let entries = text
            .split([',', '\n'])
            .map(str::trim)
            .filter(|e| !e.is_empty() && !e.starts_with('#'));
        for entry in entries {
            let (id, encoded) = entry.split_once(':').ok_or_else(|| {
                CryptoError::InvalidKeyRing("each entry must be `id:base64key`".into())
            })?;
            let valid_id = (1..=32).contains(&id.len())
                && id
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'));
            if !valid_id {
                return Err(CryptoError::InvalidKeyRing(
                    "key ids are 1-32 characters of letters, digits, '-', '_' or '.'".into(),
                ));
            }
            if keys.iter().any(|k| k.id == id) {
                return Err(CryptoError::InvalidKeyRing(format!(
                    "key id `{id}` appears twice"
                )));
            }
            let bytes = Zeroizing::new(decode_key(encoded).ok_or_else(|| {
                CryptoError::InvalidKeyRing(format!(
                    "key `{id}` must be 32 bytes in base64 (generate one with `msgengine keys generate`)"
                ))
            })?);
            keys.push(MasterKey {
                id: id.to_owned(),
                cipher: Aes256Gcm::new(Key::<Aes256Gcm>::from_slice(&bytes)),
            });
        }
        if keys.is_empty() {
            return Err(CryptoError::InvalidKeyRing("no keys given".into()));
        }
        Ok(KeyRing { keys })
    }

    /// A new random key as a ring entry, `id:base64key`.
    pub fn generate_entry(id: &str) -> String {
        let mut key = Aes256Gcm::generate_key(OsRng);
        let entry = format!(
            "{id}:{}",
            base64::engine::general_purpose::STANDARD.encode(key.as_slice())
        );
        zeroize::Zeroize::zeroize(key.as_mut_slice());
        entry
    }

    /// The id of the key that seals new secrets (the newest).
    pub fn active_key_id(&self) -> &str {
        self.active().id.as_str()
    }

    /// The ids of every key, oldest first.
    pub fn key_ids(&self) -> impl Iterator<Item = &str> {
        self.keys.iter().map(|k| k.id.as_str())
    }

    fn active(&self) -> &MasterKey {
        // `parse` refuses an empty ring, so there is always a last key.
        &self.keys[self.keys.len() - 1]
    }

    /// Encrypts `plaintext` under the newest key, bound to `binding`.
    pub fn seal(&self, plaintext: &[u8], binding: &Binding<'_>) -> Result<Vec<u8>, CryptoError> {
        let key = self.active();
        let nonce = Aes256Gcm::generate_nonce(&mut OsRng);
        let aad = binding.associated_data();
        let ciphertext = key
            .cipher
            .encrypt(
                &nonce,
                Payload {
                    msg: plaintext,
                    aad: &aad,
                },
            )
            .map_err(|_| CryptoError::Malformed)?;
        let mut out = Vec::with_capacity(2 + key.id.len() + NONCE_LEN + ciphertext.len());
        out.push(FORMAT_V1);
        // Key ids are at most 32 bytes (checked in `parse`).
        out.push(key.id.len() as u8);
        out.extend_from_slice(key.id.as_bytes());
        out.extend_from_slice(nonce.as_slice());
        out.extend_from_slice(&ciphertext);
        Ok(out)
    }

    /// Decrypts a sealed secret, checking it is bound to `binding`.
    pub fn open(
        &self,
        sealed: &[u8],
        binding: &Binding<'_>,
    ) -> Result<Zeroizing<Vec<u8>>, CryptoError> {
        let parts = parse_sealed(sealed)?;
        let key = self
            .keys
            .iter()
            .find(|k| k.id == parts.key_id)
            .ok_or_else(|| CryptoError::UnknownKey(parts.key_id.to_owned()))?;
        let aad = binding.associated_data();
        key.cipher
            .decrypt(
                Nonce::from_slice(parts.nonce),
                Payload {
                    msg: parts.ciphertext,
                    aad: &aad,
                },
            )
            .map(Zeroizing::new)
            .map_err(|_| CryptoError::Unauthentic)
    }

    /// True when `sealed` was sealed with a key other than the newest.
    pub fn needs_rotation(&self, sealed: &[u8]) -> Result<bool, CryptoError> {
        Ok(parse_sealed(sealed)?.key_id != self.active_key_id())
    }

    /// `sealed` re-sealed under the newest key, or `None` when it already is
    /// (what `keys rotate` does to every stored secret).
    pub fn reseal(
        &self,
        sealed: &[u8],
        binding: &Binding<'_>,
    ) -> Result<Option<Vec<u8>>, CryptoError> {
        if !self.needs_rotation(sealed)? {
            return Ok(None);
        }
        let plain = self.open(sealed, binding)?;
        Ok(Some(self.seal(&plain, binding)?))
    }
}

/// A random token of `bytes` random bytes, base64url without padding (for
/// generated admin tokens and webhook secrets).
pub fn random_token(bytes: usize) -> msgengine_domain::Secret {
    use aes_gcm::aead::rand_core::RngCore;
    let mut buf = Zeroizing::new(vec![0u8; bytes]);
    OsRng.fill_bytes(&mut buf);
    msgengine_domain::Secret::new(
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(buf.as_slice()),
    )
}

struct SealedParts<'a> {
    key_id: &'a str,
    nonce: &'a [u8],
    ciphertext: &'a [u8],
}

fn parse_sealed(sealed: &[u8]) -> Result<SealedParts<'_>, CryptoError> {
    let (&version, rest) = sealed.split_first().ok_or(CryptoError::Malformed)?;
    if version != FORMAT_V1 {
        return Err(CryptoError::Malformed);
    }
    let (&id_len, rest) = rest.split_first().ok_or(CryptoError::Malformed)?;
    let id_len = usize::from(id_len);
    // id, nonce and at least the 16-byte tag must follow.
    if rest.len() < id_len + NONCE_LEN + 16 {
        return Err(CryptoError::Malformed);
    }
    let (id, rest) = rest.split_at(id_len);
    let (nonce, ciphertext) = rest.split_at(NONCE_LEN);
    let key_id = std::str::from_utf8(id).map_err(|_| CryptoError::Malformed)?;
    Ok(SealedParts {
        key_id,
        nonce,
        ciphertext,
    })
}

fn decode_key(encoded: &str) -> Option<Vec<u8>> {
    use base64::engine::general_purpose::{STANDARD, URL_SAFE, URL_SAFE_NO_PAD};
    let encoded = encoded.trim();
    [STANDARD, URL_SAFE, URL_SAFE_NO_PAD]
        .iter()
        .find_map(|engine| engine.decode(encoded).ok())
        .filter(|bytes| bytes.len() == 32)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn binding(org: Uuid, row: Uuid) -> Binding<'static> {
        Binding {
            purpose: "providers.secrets",
            organization_id: org,
            row_id: row,
        }
    }

    fn ring(entries: &[&str]) -> KeyRing {
        let text: Vec<String> = entries
            .iter()
            .map(|id| KeyRing::generate_entry(id))
            .collect();
        KeyRing::parse(&text.join(",")).expect("valid ring")
    }

    #[test]
    fn seal_then_open_round_trips() {
        let ring = ring(&["k1"]);
        let b = binding(Uuid::new_v4(), Uuid::new_v4());
        let sealed = ring.seal(b"{\"apiKey\":\"key-123\"}", &b).expect("seals");
        assert!(!sealed.windows(7).any(|w| w == b"key-123"));
        assert_eq!(
            ring.open(&sealed, &b).expect("opens").as_slice(),
            b"{\"apiKey\":\"key-123\"}"
        );
    }

    #[test]
    fn same_plaintext_seals_differently_each_time() {
        let ring = ring(&["k1"]);
        let b = binding(Uuid::new_v4(), Uuid::new_v4());
        assert_ne!(ring.seal(b"x", &b).ok(), ring.seal(b"x", &b).ok());
    }

    #[test]
    fn tampered_ciphertext_fails_to_open() {
        let ring = ring(&["k1"]);
        let b = binding(Uuid::new_v4(), Uuid::new_v4());
        let mut sealed = ring.seal(b"secret", &b).expect("seals");
        let last = sealed.len() - 1;
        sealed[last] ^= 0x01;
        assert_eq!(ring.open(&sealed, &b).err(), Some(CryptoError::Unauthentic));
        assert_eq!(
            ring.open(&sealed[..10], &b).err(),
            Some(CryptoError::Malformed)
        );
        assert_eq!(ring.open(&[], &b).err(), Some(CryptoError::Malformed));
    }

    #[test]
    fn ciphertext_bound_to_another_row_or_organization_fails() {
        let ring = ring(&["k1"]);
        let (org, row) = (Uuid::new_v4(), Uuid::new_v4());
        let sealed = ring.seal(b"secret", &binding(org, row)).expect("seals");
        assert_eq!(
            ring.open(&sealed, &binding(org, Uuid::new_v4())).err(),
            Some(CryptoError::Unauthentic)
        );
        assert_eq!(
            ring.open(&sealed, &binding(Uuid::new_v4(), row)).err(),
            Some(CryptoError::Unauthentic)
        );
        let other_field = Binding {
            purpose: "other.field",
            organization_id: org,
            row_id: row,
        };
        assert_eq!(
            ring.open(&sealed, &other_field).err(),
            Some(CryptoError::Unauthentic)
        );
    }

    #[test]
    fn newest_key_seals_and_old_keys_still_open() {
        let old_entry = KeyRing::generate_entry("2025");
        let new_entry = KeyRing::generate_entry("2026");
        let old = KeyRing::parse(&old_entry).expect("ring");
        let both = KeyRing::parse(&format!("{old_entry}\n{new_entry}")).expect("ring");
        let b = binding(Uuid::new_v4(), Uuid::new_v4());
        let sealed_old = old.seal(b"s", &b).expect("seals");
        assert_eq!(both.active_key_id(), "2026");
        assert!(both.needs_rotation(&sealed_old).expect("parses"));
        assert_eq!(both.open(&sealed_old, &b).expect("opens").as_slice(), b"s");
        let sealed_new = both.seal(b"s", &b).expect("seals");
        assert!(!both.needs_rotation(&sealed_new).expect("parses"));
        assert_eq!(
            old.open(&sealed_new, &b).err(),
            Some(CryptoError::UnknownKey("2026".into()))
        );
    }

    #[test]
    fn malformed_rings_are_refused_without_echoing_key_material() {
        for bad in [
            "",
            "nokey",
            "k1:not-base64!!",
            "k1:AAAA",
            "bad id:AAAA",
            "# only a comment",
        ] {
            let err = KeyRing::parse(bad).err();
            assert!(matches!(err, Some(CryptoError::InvalidKeyRing(_))), "{bad}");
        }
        let entry = KeyRing::generate_entry("k1");
        let err = KeyRing::parse(&format!("{entry},{entry}"))
            .err()
            .map(|e| e.to_string());
        let key_part = entry
            .split_once(':')
            .map(|(_, k)| k.to_owned())
            .unwrap_or_default();
        assert!(err
            .as_deref()
            .is_some_and(|e| e.contains("twice") && !e.contains(&key_part)));
    }
}
