//! What PostgreSQL can store, checked on every JSON body: no string (key
//! or value, at any depth) holds U+0000, which `text` and `jsonb` refuse, and
//! arrays and objects nest at most [`MAX_JSON_DEPTH`] deep.

use actix_web::http::StatusCode;
use serde::de;

use crate::error::ApiError;

/// Deepest nesting of arrays and objects a JSON body may have (the body
/// itself is depth 1).
pub const MAX_JSON_DEPTH: usize = 32;

const NUL_IN_STRING: &str = "must not contain the character U+0000";
const NUL_IN_KEY: &str = "must not have a key containing the character U+0000";
const TOO_DEEP: &str = "nests arrays and objects too deeply";

/// Refuses a body PostgreSQL could not store (U+0000 in any string or key)
/// or that nests more than [`MAX_JSON_DEPTH`] deep: 422 naming the path
/// (`messages[3].metadata.a`). Malformed JSON passes here and is reported
/// by the parse that follows.
///
/// Cost: one byte scan decides the common body ([`may_be_unstorable`]);
/// only a body it flags is walked again by serde (building nothing) to name
/// the path.
pub fn check_storable(body: &[u8]) -> Result<(), ApiError> {
    if !may_be_unstorable(body) {
        return Ok(());
    }
    let mut track = serde_path_to_error::Track::new();
    let mut json = serde_json::Deserializer::from_slice(body);
    let tracked = serde_path_to_error::Deserializer::new(&mut json, &mut track);
    let message = match de::DeserializeSeed::deserialize(Storable { depth: 0 }, tracked) {
        Err(e) if is_refusal(&e) => strip_position(&e.to_string()),
        // Malformed JSON: the parse that follows says what is wrong.
        _ => return Ok(()),
    };
    let path = track.path().to_string();
    let field = msgengine_domain::text::clean_untrusted(path.trim_start_matches('.'), 200);
    let error = if message.starts_with(TOO_DEEP) {
        ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "too_deep",
            format!("the body {message}: at most {MAX_JSON_DEPTH} levels"),
        )
    } else {
        let subject = if field.is_empty() { "the body" } else { &field };
        ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_characters",
            format!("{subject} {message}"),
        )
    };
    Err(error.with_field(field))
}

/// Whether a JSON text may hold U+0000 in a string or nest past
/// [`MAX_JSON_DEPTH`]: never false when it does. A U+0000 can only arrive
/// escaped (serde_json refuses raw control characters in strings), so the
/// scan looks for the escape `\u0000` inside strings (jumping through them
/// with `memchr`: they are most of a large body) and counts bracket depth
/// outside them. Exact on valid JSON; malformed JSON fails its parse anyway.
/// About a tenth of the cost of parsing the body into a `Value`.
fn may_be_unstorable(body: &[u8]) -> bool {
    let (mut depth, mut i) = (0usize, 0usize);
    while i < body.len() {
        match body[i] {
            b'"' => match string_end(body, i + 1) {
                StringEnd::At(end) => i = end,
                StringEnd::Nul => return true,
                StringEnd::Unterminated => return false,
            },
            b'[' | b'{' => {
                depth += 1;
                if depth > MAX_JSON_DEPTH {
                    return true;
                }
            }
            b']' | b'}' => depth = depth.saturating_sub(1),
            _ => {}
        }
        i += 1;
    }
    false
}

/// Where a JSON string whose content starts at `from` ends.
enum StringEnd {
    /// The index of its closing quote.
    At(usize),
    /// It holds the escape `\u0000`.
    Nul,
    /// It never ends (malformed JSON).
    Unterminated,
}

fn string_end(body: &[u8], mut from: usize) -> StringEnd {
    loop {
        let rest = body.get(from..).unwrap_or_default();
        let Some(offset) = memchr::memchr2(b'"', b'\\', rest) else {
            return StringEnd::Unterminated;
        };
        let at = from + offset;
        if body[at] == b'"' {
            return StringEnd::At(at);
        }
        if body[at + 1..].starts_with(b"u0000") {
            return StringEnd::Nul;
        }
        // Skip the escaped character (an escaped quote does not end the string).
        from = at + 2;
    }
}

fn is_refusal(e: &serde_json::Error) -> bool {
    let text = e.to_string();
    e.classify() == serde_json::error::Category::Data
        && [NUL_IN_STRING, NUL_IN_KEY, TOO_DEEP]
            .iter()
            .any(|m| text.starts_with(m))
}

/// A serde visitor that walks any JSON value building nothing: it refuses a
/// string or key holding U+0000 and nesting past [`MAX_JSON_DEPTH`].
#[derive(Clone, Copy)]
struct Storable {
    depth: usize,
}

impl Storable {
    fn deeper<E: de::Error>(self) -> Result<Storable, E> {
        if self.depth >= MAX_JSON_DEPTH {
            return Err(E::custom(TOO_DEEP));
        }
        Ok(Storable {
            depth: self.depth + 1,
        })
    }
}

impl<'de> de::DeserializeSeed<'de> for Storable {
    type Value = ();

    fn deserialize<D: de::Deserializer<'de>>(self, deserializer: D) -> Result<(), D::Error> {
        deserializer.deserialize_any(self)
    }
}

impl<'de> de::Visitor<'de> for Storable {
    type Value = ();

    fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        f.write_str("any JSON value")
    }

    fn visit_bool<E>(self, _: bool) -> Result<(), E> {
        Ok(())
    }

    fn visit_i64<E>(self, _: i64) -> Result<(), E> {
        Ok(())
    }

    fn visit_u64<E>(self, _: u64) -> Result<(), E> {
        Ok(())
    }

    fn visit_f64<E>(self, _: f64) -> Result<(), E> {
        Ok(())
    }

    fn visit_unit<E>(self) -> Result<(), E> {
        Ok(())
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<(), E> {
        if v.contains('\0') {
            return Err(E::custom(NUL_IN_STRING));
        }
        Ok(())
    }

    fn visit_seq<A: de::SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        let inner = self.deeper()?;
        while seq.next_element_seed(inner)?.is_some() {}
        Ok(())
    }

    fn visit_map<A: de::MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        let inner = self.deeper()?;
        while map.next_key_seed(Key)?.is_some() {
            map.next_value_seed(inner)?;
        }
        Ok(())
    }
}

/// An object key: refused when it holds U+0000.
#[derive(Clone, Copy)]
struct Key;

impl<'de> de::DeserializeSeed<'de> for Key {
    type Value = ();

    fn deserialize<D: de::Deserializer<'de>>(self, deserializer: D) -> Result<(), D::Error> {
        deserializer.deserialize_str(self)
    }
}

impl<'de> de::Visitor<'de> for Key {
    type Value = ();

    fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        f.write_str("an object key")
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<(), E> {
        if v.contains('\0') {
            return Err(E::custom(NUL_IN_KEY));
        }
        Ok(())
    }
}

/// serde_json appends " at line L column C" to data errors; the field path says more.
pub(super) fn strip_position(message: &str) -> String {
    match message.rfind(" at line ") {
        Some(i) => message[..i].to_owned(),
        None => message.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use serde_json::{json, Value};

    use super::*;
    use crate::extract::parse_json;

    fn refusal(body: &str) -> Option<(u16, &'static str, Option<String>)> {
        parse_json::<Value>(body.as_bytes())
            .err()
            .map(|e| (e.status.as_u16(), e.code, e.field))
    }

    #[test]
    fn nul_in_a_value_is_refused_naming_its_path() {
        let body = r#"{"messages":[{"to":"a"},{"metadata":{"a":"x\u0000y"}}]}"#;
        assert_eq!(
            refusal(body),
            Some((
                422,
                "invalid_characters",
                Some("messages[1].metadata.a".into())
            ))
        );
        assert_eq!(
            refusal(r#"["ok", "\u0000"]"#),
            Some((422, "invalid_characters", Some("[1]".into())))
        );
    }

    #[test]
    fn nul_in_a_key_is_refused() {
        let refused = refusal(r#"{"metadata":{"a\u0000":"x"}}"#);
        assert!(
            matches!(&refused, Some((422, "invalid_characters", Some(f))) if f.starts_with("metadata")),
            "{refused:?}"
        );
    }

    #[test]
    fn an_escaped_backslash_before_u0000_is_not_a_nul() {
        let value: Value = parse_json(br#"{"a":"\\u0000","b":"\\\\"}"#).expect("stored as text");
        assert_eq!(value["a"], json!("\\u0000"));
        assert!(!may_be_unstorable(br#"{"a":"\\u0000"}"#));
    }

    #[test]
    fn nesting_is_bounded() {
        let ok = format!(
            "{}{}",
            "[".repeat(MAX_JSON_DEPTH),
            "]".repeat(MAX_JSON_DEPTH)
        );
        assert!(parse_json::<Value>(ok.as_bytes()).is_ok());
        let deep = format!(
            "{{\"m\":{}{}}}",
            "[".repeat(MAX_JSON_DEPTH),
            "]".repeat(MAX_JSON_DEPTH)
        );
        let refused = refusal(&deep);
        assert!(
            matches!(&refused, Some((422, "too_deep", _))),
            "{refused:?}"
        );
        // Brackets inside strings do not count.
        let in_string = format!("{{\"m\":\"{}\"}}", "[".repeat(100));
        assert!(parse_json::<Value>(in_string.as_bytes()).is_ok());
    }

    #[test]
    fn invalid_utf8_and_lone_surrogates_are_invalid_json() {
        assert_eq!(
            refusal("{\"a\":\"\u{e9}\"}").map(|r| r.0),
            None,
            "valid UTF-8 passes"
        );
        let bad = b"{\"a\":\"\xff\xfe\"}";
        let e = parse_json::<Value>(bad)
            .err()
            .map(|e| (e.status.as_u16(), e.code));
        assert_eq!(e, Some((400, "invalid_json")));
        assert_eq!(
            refusal(r#"{"a":"\ud800"}"#).map(|r| (r.0, r.1)),
            Some((400, "invalid_json"))
        );
    }

    #[test]
    fn malformed_json_is_still_reported_as_invalid_json() {
        assert_eq!(
            refusal(r#"{"a" 1, "b":"\u0000"}"#).map(|r| (r.0, r.1)),
            Some((400, "invalid_json"))
        );
    }
}
