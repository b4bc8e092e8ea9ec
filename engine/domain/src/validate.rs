//! Field validation shared by every input path.
//!
//! A [`ValidationError`] names the offending field (as the client spelled it,
//! camelCase, dotted for nesting: `smtpConfig.port`) and says what is wrong in
//! words; the HTTP layer turns it into the JSON error body.

use std::net::IpAddr;

use url::Url;

/// One invalid field.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{field}: {message}")]
pub struct ValidationError {
    /// The field, camelCase and dotted for nested fields.
    pub field: String,
    /// A stable machine-readable code (`required`, `too_long`, `invalid_email`...).
    pub code: &'static str,
    /// What is wrong, for a person.
    pub message: String,
}

impl ValidationError {
    pub fn new(field: impl Into<String>, code: &'static str, message: impl Into<String>) -> Self {
        Self {
            field: field.into(),
            code,
            message: message.into(),
        }
    }

    /// The field is required (for this provider type, or always).
    pub fn required(field: impl Into<String>, why: &str) -> Self {
        let field = field.into();
        let message = format!("{field} is required {why}");
        Self::new(field, "required", message.trim_end().to_owned())
    }
}

/// Turns a serde data error (its path as `serde_path_to_error` prints it and
/// its message) into a [`ValidationError`] naming the field. serde reports a
/// missing field at the parent's path, with the name only in its message.
pub fn from_serde(path: &str, message: &str) -> ValidationError {
    let missing = message
        .strip_prefix("missing field `")
        .and_then(|rest| rest.split('`').next());
    let field = match (missing, path) {
        (Some(name), "." | "") => name.to_owned(),
        (Some(name), parent) => format!("{parent}.{name}"),
        (None, path) => path.trim_start_matches('.').to_owned(),
    };
    let code = if message.starts_with("unknown variant") {
        "unknown_value"
    } else if missing.is_some() {
        "required"
    } else if message.starts_with("unknown field") {
        "unknown_field"
    } else {
        "invalid_type"
    };
    ValidationError::new(field, code, message)
}

/// Result of a validation step.
pub type Valid<T> = Result<T, ValidationError>;

/// A required, trimmed-equal, non-empty text of at most `max_chars` characters
/// with no control characters.
pub fn text(field: &str, value: &str, max_chars: usize) -> Valid<()> {
    if value.trim().is_empty() {
        return Err(ValidationError::new(
            field,
            "empty",
            format!("{field} must not be empty"),
        ));
    }
    if value.chars().count() > max_chars {
        return Err(ValidationError::new(
            field,
            "too_long",
            format!("{field} must be at most {max_chars} characters"),
        ));
    }
    if value.chars().any(char::is_control) {
        return Err(ValidationError::new(
            field,
            "invalid_characters",
            format!("{field} must not contain control characters"),
        ));
    }
    Ok(())
}

/// Like [`text`] for an optional field.
pub fn opt_text(field: &str, value: Option<&str>, max_chars: usize) -> Valid<()> {
    value.map_or(Ok(()), |v| text(field, v, max_chars))
}

/// A secret as pasted by a person: non-empty, at most 4096 characters, no
/// surrounding whitespace (the usual copy-paste mistake) and no control characters.
pub fn secret(field: &str, value: &str) -> Valid<()> {
    if !value.is_empty() && value.trim() != value {
        return Err(ValidationError::new(
            field,
            "invalid_secret",
            format!("{field} has leading or trailing whitespace"),
        ));
    }
    text(field, value, 4096)
}

/// An email address (RFC 5322 addr-spec, as the `email_address` crate checks it),
/// at most 254 characters.
pub fn email(field: &str, value: &str) -> Valid<()> {
    if value.len() > 254
        || value.chars().any(|c| c.is_control() || c == ' ')
        || !email_address::EmailAddress::is_valid(value)
    {
        return Err(ValidationError::new(
            field,
            "invalid_email",
            format!("{field} must be a valid email address"),
        ));
    }
    // `email_address` accepts a display-name form ("A <a@b>"); we want the bare address.
    if value.contains('<') {
        return Err(ValidationError::new(
            field,
            "invalid_email",
            format!("{field} must be a bare address without a display name"),
        ));
    }
    Ok(())
}

/// The part of an email address after its last `@` (a trailing `>` of an
/// angle-bracketed form dropped), when there is one.
pub fn email_domain(address: &str) -> Option<&str> {
    address
        .rsplit_once('@')
        .map(|(_, domain)| domain.trim_end_matches('>'))
        .filter(|d| !d.is_empty())
}

/// A phone number in E.164 form (`+` and 8 to 15 digits) that is a valid number
/// for its country. Returns the canonical E.164 text.
pub fn e164(field: &str, value: &str) -> Valid<String> {
    let invalid = || {
        ValidationError::new(
            field,
            "invalid_phone",
            format!("{field} must be a valid phone number in E.164 form, e.g. +2348012345678"),
        )
    };
    let digits = value.strip_prefix('+').ok_or_else(invalid)?;
    if !(8..=15).contains(&digits.len()) || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return Err(invalid());
    }
    let number = phonenumber::parse(None, value).map_err(|_| invalid())?;
    if !phonenumber::is_valid(&number) {
        return Err(invalid());
    }
    Ok(number.format().mode(phonenumber::Mode::E164).to_string())
}

/// A DNS host name (letters, digits, hyphens, dots; labels 1-63; total 253).
pub fn hostname(field: &str, value: &str) -> Valid<()> {
    let ok = !value.is_empty()
        && value.len() <= 253
        && value.split('.').all(|label| {
            !label.is_empty()
                && label.len() <= 63
                && !label.starts_with('-')
                && !label.ends_with('-')
                && label
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-')
        });
    if ok {
        Ok(())
    } else {
        Err(ValidationError::new(
            field,
            "invalid_hostname",
            format!("{field} must be a domain name such as mg.example.com"),
        ))
    }
}

/// A host name or an IP address (for SMTP servers).
pub fn host(field: &str, value: &str) -> Valid<()> {
    if value.parse::<IpAddr>().is_ok() {
        return Ok(());
    }
    hostname(field, value)
}

/// An absolute `http` or `https` URL of at most 2048 characters, with no
/// control characters (the URL parser would quietly drop tabs and line
/// breaks; the text as given is what gets stored).
pub fn http_url(field: &str, value: &str) -> Valid<()> {
    let ok = value.len() <= 2048
        && !value.chars().any(char::is_control)
        && Url::parse(value)
            .map(|u| matches!(u.scheme(), "http" | "https") && u.host().is_some())
            .unwrap_or(false);
    if ok {
        Ok(())
    } else {
        Err(ValidationError::new(
            field,
            "invalid_url",
            format!("{field} must be an absolute http(s) URL"),
        ))
    }
}

/// A JSON object whose serialised size is at most `max_bytes`.
pub fn json_object(
    field: &str,
    value: &serde_json::Map<String, serde_json::Value>,
    max_bytes: usize,
) -> Valid<()> {
    let size = serde_json::to_vec(value)
        .map(|v| v.len())
        .unwrap_or(usize::MAX);
    if size > max_bytes {
        return Err(ValidationError::new(
            field,
            "too_large",
            format!("{field} must be at most {max_bytes} bytes of JSON"),
        ));
    }
    Ok(())
}

/// `value` matches `prefix` followed by exactly `hex_len` hexadecimal digits
/// (Twilio's `AC…`, `SK…`, `MG…` identifiers).
pub fn is_prefixed_hex(value: &str, prefix: &str, hex_len: usize) -> bool {
    value
        .strip_prefix(prefix)
        .is_some_and(|rest| rest.len() == hex_len && rest.bytes().all(|b| b.is_ascii_hexdigit()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn e164_accepts_valid_numbers_and_rejects_the_rest() {
        assert_eq!(
            e164("to", "+2348031234567").as_deref(),
            Ok("+2348031234567")
        );
        assert_eq!(e164("to", "+254712345678").as_deref(), Ok("+254712345678"));
        for bad in [
            "2348031234567",
            "+12",
            "+234 803 123 4567",
            "+999123456789",
            "",
            "+",
        ] {
            assert_eq!(
                e164("to", bad).map_err(|e| e.code),
                Err("invalid_phone"),
                "{bad}"
            );
        }
    }

    #[test]
    fn email_rejects_malformed_and_display_name_forms() {
        assert!(email("fromEmail", "ops@example.com").is_ok());
        for bad in [
            "ops",
            "ops@",
            "@example.com",
            "A <ops@example.com>",
            "a b@example.com",
            "ops@example.com\r\nBcc: x@example.com",
            "ops\u{0}@example.com",
        ] {
            assert!(email("fromEmail", bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn text_limits_length_and_control_characters() {
        assert!(text("name", "ok", 3).is_ok());
        assert_eq!(
            text("name", "toolong", 3).map_err(|e| e.code),
            Err("too_long")
        );
        assert_eq!(text("name", "  ", 3).map_err(|e| e.code), Err("empty"));
        assert_eq!(
            text("name", "a\u{0}b", 3).map_err(|e| e.code),
            Err("invalid_characters")
        );
    }

    #[test]
    fn secret_rejects_surrounding_whitespace() {
        assert!(secret("apiKey", "key-abc").is_ok());
        assert_eq!(
            secret("apiKey", " key-abc\n").map_err(|e| e.code),
            Err("invalid_secret")
        );
    }

    #[test]
    fn hosts_and_urls() {
        assert!(hostname("domain", "mg.example.com").is_ok());
        assert!(hostname("domain", "-bad.example.com").is_err());
        assert!(hostname("domain", "exa mple.com").is_err());
        assert!(host("smtpConfig.host", "127.0.0.1").is_ok());
        assert!(http_url("baseUrl", "http://127.0.0.1:9000").is_ok());
        assert!(http_url("baseUrl", "ftp://example.com").is_err());
        assert!(http_url("baseUrl", "not a url").is_err());
        assert!(http_url("baseUrl", "http://exa\r\nmple.com").is_err());
        assert!(http_url("baseUrl", "http://example.com/\u{0}").is_err());
        assert!(is_prefixed_hex(
            "AC0123456789abcdef0123456789abcdef",
            "AC",
            32
        ));
        assert!(!is_prefixed_hex("AC0123", "AC", 32));
    }
}
