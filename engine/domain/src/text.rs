//! Text that came from outside and was not validated: provider error
//! reasons, provider message ids, webhook payload fields.
//!
//! Client input is validated and refused (422) where it enters; text a
//! provider returns cannot be refused, only made safe. [`clean_untrusted`]
//! is the one place that happens. Its output, whatever the input:
//! - holds no control character (U+0000-U+001F, U+007F-U+009F): line breaks
//!   and tabs become a space, every other one is written as `\u{..}`, so a
//!   NUL can never reach PostgreSQL (which refuses it in `text` and
//!   `jsonb`) and a reason can never forge a log line or a header;
//! - is at most `max_chars` characters plus one `…` marking a cut (cut on a
//!   character boundary).

/// The marker appended when text was cut.
pub const ELLIPSIS: char = '…';

/// `text` made safe to store and show: control characters replaced or
/// escaped and at most `max_chars` characters kept (then `…` appended).
/// Text that needs nothing is copied once, without a second pass.
pub fn clean_untrusted(text: &str, max_chars: usize) -> String {
    if !needs_cleaning(text, max_chars) {
        return text.to_owned();
    }
    let mut out = String::with_capacity(text.len().min(max_chars.saturating_mul(4)) + 8);
    for (kept, c) in text.chars().enumerate() {
        if kept == max_chars {
            out.push(ELLIPSIS);
            break;
        }
        push_clean(&mut out, c);
    }
    out
}

/// Whether `text` has a control character or more than `max_chars` characters.
fn needs_cleaning(text: &str, max_chars: usize) -> bool {
    // Byte length bounds the character count: short ASCII-ish text is
    // checked without counting.
    let maybe_long = text.len() > max_chars && text.chars().nth(max_chars).is_some();
    maybe_long || text.chars().any(char::is_control)
}

fn push_clean(out: &mut String, c: char) {
    match c {
        '\n' | '\r' | '\t' => out.push(' '),
        c if c.is_control() => {
            use std::fmt::Write as _;
            // Writing to a String cannot fail.
            let _ = write!(out, "\\u{{{:x}}}", c as u32);
        }
        c => out.push(c),
    }
}

/// [`clean_untrusted`] over an optional value.
pub fn clean_untrusted_opt(text: Option<String>, max_chars: usize) -> Option<String> {
    text.map(|t| clean_untrusted(&t, max_chars))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clean_text_passes_through_unchanged() {
        assert_eq!(clean_untrusted("bad thing, é ✓", 100), "bad thing, é ✓");
        assert_eq!(clean_untrusted("", 0), "");
    }

    #[test]
    fn nul_and_other_controls_are_escaped_and_whitespace_controls_become_spaces() {
        assert_eq!(clean_untrusted("bad\u{0}thing", 100), "bad\\u{0}thing");
        assert_eq!(
            clean_untrusted("a\r\nb\tc\u{1b}[31m\u{7f}\u{85}", 100),
            "a  b c\\u{1b}[31m\\u{7f}\\u{85}"
        );
        assert!(!clean_untrusted("\u{0}\u{1}\u{9f}", 100).contains(char::is_control));
    }

    #[test]
    fn long_text_is_cut_on_a_character_boundary_with_an_ellipsis() {
        let long = "é".repeat(600);
        let cut = clean_untrusted(&long, 500);
        assert_eq!(cut.chars().count(), 501);
        assert!(cut.ends_with(ELLIPSIS));
        assert_eq!(clean_untrusted("abc", 3), "abc");
        assert_eq!(clean_untrusted("abcd", 3), "abc…");
    }

    #[test]
    fn ten_kilobytes_of_nul_laden_text_stay_within_the_cap() {
        let garbage = "x\u{0}".repeat(5 * 1024);
        let cut = clean_untrusted(&garbage, 500);
        assert!(!cut.contains('\u{0}'));
        // Each NUL counts as one kept character; its escape is 5 bytes.
        assert_eq!(cut.chars().filter(|c| *c == 'x').count(), 250);
        assert!(cut.ends_with(ELLIPSIS));
    }

    #[test]
    fn optional_values_are_cleaned_when_present() {
        assert_eq!(clean_untrusted_opt(None, 5), None);
        assert_eq!(
            clean_untrusted_opt(Some("a\u{0}".into()), 5).as_deref(),
            Some("a\\u{0}")
        );
    }
}
