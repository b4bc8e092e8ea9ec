//! SMS segment counting: how many SMS parts a text costs on the network.
//!
//! A text made only of GSM 03.38 characters is sent as GSM-7: 160 septets in
//! one part, 153 per part when concatenated (the rest is the UDH). Characters
//! of the GSM extension table (`^ { } \ [ ] ~ | €` and form feed) take two
//! septets and are never split across parts. Any other character makes the
//! whole text UCS-2: 70 UTF-16 units in one part, 67 per part when
//! concatenated, surrogate pairs never split.

/// GSM 03.38 basic character set (escape excluded), in table order.
const GSM7_BASIC: &str = "@£$¥èéùìòÇ\nØø\rÅåΔ_ΦΓΛΩΠΨΣΘΞÆæßÉ !\"#¤%&'()*+,-./0123456789:;<=>?\
¡ABCDEFGHIJKLMNOPQRSTUVWXYZÄÖÑÜ§¿abcdefghijklmnopqrstuvwxyzäöñüà";

/// GSM 03.38 extension table: each costs an escape plus the character.
const GSM7_EXTENSION: &str = "\u{c}^{}\\[~]|€";

/// Septets a character costs in GSM-7, or `None` when it has no GSM-7 form.
fn gsm7_septets(c: char) -> Option<usize> {
    if c.is_ascii_alphanumeric() || GSM7_BASIC.contains(c) {
        Some(1)
    } else if GSM7_EXTENSION.contains(c) {
        Some(2)
    } else {
        None
    }
}

/// Packs units into parts of `per_part` without splitting any unit; returns
/// the number of parts (at least 1).
fn pack(costs: impl Iterator<Item = usize>, per_part: usize) -> u32 {
    let mut parts = 1u32;
    let mut used = 0usize;
    for cost in costs {
        if used + cost > per_part {
            parts = parts.saturating_add(1);
            used = 0;
        }
        used += cost;
    }
    parts
}

/// The number of SMS segments `text` is sent as: GSM-7 (160 in one part, 153
/// per concatenated part, extension characters counting double) when every
/// character has a GSM-7 form, UCS-2 (70 / 67 UTF-16 units) otherwise. An
/// empty text is one segment: a message is at least one part.
pub fn segments_sms(text: &str) -> u32 {
    let gsm: Option<Vec<usize>> = text.chars().map(gsm7_septets).collect();
    match gsm {
        Some(costs) => {
            if costs.iter().sum::<usize>() <= 160 {
                1
            } else {
                pack(costs.into_iter(), 153)
            }
        }
        None => {
            if text.encode_utf16().count() <= 70 {
                1
            } else {
                pack(text.chars().map(char::len_utf16), 67)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gsm7_single_and_concatenated_parts() {
        assert_eq!(segments_sms(""), 1);
        assert_eq!(segments_sms("Hello"), 1);
        assert_eq!(segments_sms(&"a".repeat(160)), 1);
        assert_eq!(segments_sms(&"a".repeat(161)), 2);
        assert_eq!(segments_sms(&"a".repeat(306)), 2);
        assert_eq!(segments_sms(&"a".repeat(307)), 3);
        assert_eq!(segments_sms(&"a".repeat(1530)), 10);
    }

    #[test]
    fn gsm7_basic_set_has_a_septet_each_including_accents_and_greek() {
        assert_eq!(GSM7_BASIC.chars().count(), 127);
        let basic: String = GSM7_BASIC.chars().cycle().take(160).collect();
        assert_eq!(segments_sms(&basic), 1);
        let basic: String = GSM7_BASIC.chars().cycle().take(161).collect();
        assert_eq!(segments_sms(&basic), 2);
        // Accented letters outside the GSM table (ê, ú) force UCS-2.
        assert_eq!(segments_sms(&"ê".repeat(71)), 2);
    }

    #[test]
    fn gsm7_extension_characters_count_double() {
        assert_eq!(segments_sms(&"€".repeat(80)), 1);
        assert_eq!(segments_sms(&"€".repeat(81)), 2);
        assert_eq!(segments_sms(&format!("{}{{", "a".repeat(158))), 1);
        assert_eq!(segments_sms(&format!("{}{{", "a".repeat(159))), 2);
    }

    #[test]
    fn gsm7_escape_pairs_are_not_split_across_parts() {
        // 152 septets then a two-septet character: it moves to part two.
        let text = format!("{}[{}", "a".repeat(152), "a".repeat(152));
        assert_eq!(segments_sms(&text), 3);
        let text = format!("{}[{}", "a".repeat(151), "a".repeat(153));
        assert_eq!(segments_sms(&text), 2);
    }

    #[test]
    fn ucs2_single_and_concatenated_parts() {
        assert_eq!(segments_sms("Привет"), 1);
        assert_eq!(segments_sms(&"ж".repeat(70)), 1);
        assert_eq!(segments_sms(&"ж".repeat(71)), 2);
        assert_eq!(segments_sms(&"ж".repeat(134)), 2);
        assert_eq!(segments_sms(&"ж".repeat(135)), 3);
        // One non-GSM character turns the whole text into UCS-2.
        assert_eq!(segments_sms(&format!("{}ж", "a".repeat(70))), 2);
    }

    #[test]
    fn ucs2_surrogate_pairs_count_two_units_and_are_not_split() {
        assert_eq!(segments_sms(&"😀".repeat(35)), 1);
        assert_eq!(segments_sms(&"😀".repeat(36)), 2);
        // 66 units then a pair: the pair moves to part two.
        let text = format!("{}😀{}", "ж".repeat(66), "ж".repeat(66));
        assert_eq!(segments_sms(&text), 3);
    }
}
