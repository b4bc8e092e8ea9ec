//! `X-Twilio-Signature`, exactly as providers.md §6.3 gives it:
//!
//! 1. the full URL Twilio requested (scheme, host, port if any, path, query);
//! 2. for a form POST, every parameter appended as `name` + `value` (decoded,
//!    no separators), names in byte order, a repeated name's values in sorted
//!    order;
//! 3. HMAC-SHA1 keyed with the account's Auth Token over that UTF-8 string,
//!    base64 (standard, padded), compared in constant time with the header.
//!
//! Also from §6.3: a JSON body is not appended: the URL then carries a
//! `bodySHA256` query parameter, the hex SHA-256 of the raw body, checked
//! here; the signature is accepted over the URL with its port removed or the
//! default port added (Twilio's own generation is inconsistent there).
//!
//! Where §6.3 and the SDK differ: §6.3 item 6 says a repeated name's
//! *distinct* values are appended, the Python SDK's validator appends every
//! value, sorted. Both strings are tried when a request repeats a (name,
//! value) pair; either way only the key holder can produce the signature.
//!
//! The newer scheme (§6.3 item 6: an `X-Twilio-Webhooks-Signature-Settings`
//! header `key=...,algorithm=HMAC_SHA256`, a shared key) is unconfirmed in
//! its details; we assume the same string signed with HMAC-SHA256 under the
//! connection's shared webhook key.

use std::collections::BTreeMap;

use base64::Engine as _;
use hmac::{Hmac, Mac};
use sha1::Sha1;
use sha2::{Digest, Sha256};

use crate::webhook::constant_time_eq;

/// The header carrying the signature.
pub const SIGNATURE_HEADER: &str = "X-Twilio-Signature";
/// The header announcing a signing scheme other than HMAC-SHA1 with the Auth Token.
pub const SETTINGS_HEADER: &str = "X-Twilio-Webhooks-Signature-Settings";
/// The query parameter holding the hex SHA-256 of a JSON body.
pub const BODY_HASH_PARAM: &str = "bodySHA256";

/// The MAC a request is signed with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Algorithm {
    /// HMAC-SHA1 keyed with the Auth Token (no settings header).
    HmacSha1,
    /// HMAC-SHA256 keyed with a shared webhook key (settings header).
    HmacSha256,
}

impl Algorithm {
    /// The algorithm a settings header announces (`None` header: SHA-1);
    /// `Err` with the announced name when it is neither.
    pub fn from_settings(header: Option<&str>) -> Result<Self, String> {
        let Some(header) = header else {
            return Ok(Algorithm::HmacSha1);
        };
        let announced = header
            .split(',')
            .filter_map(|pair| pair.split_once('='))
            .find(|(name, _)| name.trim().eq_ignore_ascii_case("algorithm"))
            .map(|(_, value)| value.trim());
        match announced {
            Some(a) if a.eq_ignore_ascii_case("HMAC_SHA256") => Ok(Algorithm::HmacSha256),
            Some(a) if a.eq_ignore_ascii_case("HMAC_SHA1") => Ok(Algorithm::HmacSha1),
            Some(other) => Err(other.chars().take(40).collect()),
            None => Err("(none)".into()),
        }
    }
}

/// The text Twilio signs: `url`, then each parameter's name and value, names
/// in byte order and a repeated name's values sorted (deduplicated when
/// `distinct_values`).
pub fn signed_text(url: &str, params: &[(String, String)], distinct_values: bool) -> String {
    let mut by_name: BTreeMap<&str, Vec<&str>> = BTreeMap::new();
    for (name, value) in params {
        by_name.entry(name).or_default().push(value);
    }
    let mut text = url.to_owned();
    for (name, mut values) in by_name {
        values.sort_unstable();
        if distinct_values {
            values.dedup();
        }
        for value in values {
            text.push_str(name);
            text.push_str(value);
        }
    }
    text
}

/// The base64 MAC of `text` under `key`.
pub fn sign(algorithm: Algorithm, key: &[u8], text: &str) -> Option<String> {
    let mac = match algorithm {
        Algorithm::HmacSha1 => {
            let mut mac = Hmac::<Sha1>::new_from_slice(key).ok()?;
            mac.update(text.as_bytes());
            mac.finalize().into_bytes().to_vec()
        }
        Algorithm::HmacSha256 => {
            let mut mac = Hmac::<Sha256>::new_from_slice(key).ok()?;
            mac.update(text.as_bytes());
            mac.finalize().into_bytes().to_vec()
        }
    };
    Some(base64::engine::general_purpose::STANDARD.encode(mac))
}

/// `url` as given, without its port, and with the scheme's default port
/// added when it has none (each distinct form once).
pub fn url_variants(url: &str) -> Vec<String> {
    let mut variants = vec![url.to_owned()];
    let Some(scheme_end) = url.find("://") else {
        return variants;
    };
    let start = scheme_end + 3;
    let end = url[start..]
        .find(['/', '?', '#'])
        .map_or(url.len(), |i| start + i);
    let authority = &url[start..end];
    let host_at = authority.rfind('@').map_or(0, |i| i + 1);
    let host_port = &authority[host_at..];
    // A colon after an IPv6 literal's `]`, or the last one otherwise.
    let colon = match host_port.rfind(']') {
        Some(bracket) => host_port[bracket..].find(':').map(|i| bracket + i),
        None => host_port.rfind(':'),
    };
    let prefix = &url[..start + host_at];
    let rest = &url[end..];
    let other = match colon {
        Some(colon) => format!("{prefix}{}{rest}", &host_port[..colon]),
        None => {
            let port = match url[..scheme_end].to_ascii_lowercase().as_str() {
                "https" => 443,
                "http" => 80,
                _ => return variants,
            };
            format!("{prefix}{host_port}:{port}{rest}")
        }
    };
    if other != url {
        variants.push(other);
    }
    variants
}

/// Whether `given` is the signature of (`url`, `params`) under `key`, for
/// any of the URL's port forms (and either reading of repeated values).
pub fn is_valid(
    algorithm: Algorithm,
    key: &[u8],
    url: &str,
    params: &[(String, String)],
    given: &str,
) -> bool {
    let repeats = {
        let mut pairs: Vec<&(String, String)> = params.iter().collect();
        pairs.sort_unstable();
        pairs.windows(2).any(|w| w[0] == w[1])
    };
    let readings: &[bool] = if repeats { &[false, true] } else { &[false] };
    let mut valid = false;
    for variant in url_variants(url) {
        for &distinct in readings {
            if let Some(expected) = sign(algorithm, key, &signed_text(&variant, params, distinct)) {
                // No early return: every candidate is computed and compared.
                valid |= constant_time_eq(expected.as_bytes(), given.trim().as_bytes());
            }
        }
    }
    valid
}

/// Whether `hex_digest` is the hex SHA-256 of `body` (either case).
pub fn body_hash_matches(body: &[u8], hex_digest: &str) -> bool {
    let expected = hex::encode(Sha256::digest(body));
    constant_time_eq(
        expected.as_bytes(),
        hex_digest.trim().to_ascii_lowercase().as_bytes(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn owned(items: &[(&str, &str)]) -> Vec<(String, String)> {
        items
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    }

    #[test]
    fn signed_text_sorts_names_and_values() {
        let params = owned(&[
            ("To", "+1"),
            ("Body", "b"),
            ("A", "2"),
            ("A", "1"),
            ("A", "2"),
        ]);
        assert_eq!(
            signed_text("https://x/cb?a=1", &params, false),
            "https://x/cb?a=1A1A2A2BodybTo+1"
        );
        assert_eq!(
            signed_text("https://x/cb?a=1", &params, true),
            "https://x/cb?a=1A1A2BodybTo+1"
        );
        // Byte order: upper case before lower case.
        let params = owned(&[("b", "1"), ("B", "2")]);
        assert_eq!(signed_text("u", &params, false), "uB2b1");
    }

    #[test]
    fn twilio_documentation_example_signature() {
        // The example from Twilio's webhook-security documentation.
        let params = owned(&[
            ("CallSid", "CA1234567890ABCDE"),
            ("Caller", "+14158675309"),
            ("Digits", "1234"),
            ("From", "+14158675309"),
            ("To", "+18005551212"),
        ]);
        let text = signed_text(
            "https://mycompany.com/myapp.php?foo=1&bar=2",
            &params,
            false,
        );
        assert_eq!(
            sign(Algorithm::HmacSha1, b"12345", &text).as_deref(),
            Some("RSOYDt4T1cUTdK1PDd93/VVr8B8=")
        );
    }

    #[test]
    fn url_variants_toggle_the_port() {
        assert_eq!(
            url_variants("https://h.example/cb?x=1"),
            ["https://h.example/cb?x=1", "https://h.example:443/cb?x=1"]
        );
        assert_eq!(
            url_variants("https://h.example:443/cb"),
            ["https://h.example:443/cb", "https://h.example/cb"]
        );
        assert_eq!(
            url_variants("http://u:p@[::1]:8080"),
            ["http://u:p@[::1]:8080", "http://u:p@[::1]"]
        );
        assert_eq!(url_variants("not a url"), ["not a url"]);
    }

    #[test]
    fn settings_header_names_the_algorithm() {
        assert_eq!(Algorithm::from_settings(None), Ok(Algorithm::HmacSha1));
        assert_eq!(
            Algorithm::from_settings(Some("key=k1,algorithm=HMAC_SHA256")),
            Ok(Algorithm::HmacSha256)
        );
        assert!(Algorithm::from_settings(Some("algorithm=ROT13")).is_err());
        assert!(Algorithm::from_settings(Some("key=k1")).is_err());
    }

    #[test]
    fn body_hash_is_hex_sha256() {
        // SHA-256("") is well known.
        assert!(body_hash_matches(
            b"",
            "E3B0C44298FC1C149AFBF4C8996FB92427AE41E4649B934CA495991B7852B855"
        ));
        assert!(!body_hash_matches(b"x", "e3b0"));
    }
}
