//! Countries as routing sees them: ISO 3166-1 alpha-2 codes that the phone
//! number metadata knows, and the country of an E.164 number.

use std::fmt;
use std::str::FromStr;

use phonenumber::metadata::DATABASE;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// A country (`NG`, `KE`): two upper-case ASCII letters that name a region
/// of the phone number metadata. Written in any case, kept upper-case.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Country([u8; 2]);

/// Not a country the metadata knows.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown country `{0}`: use an ISO 3166-1 alpha-2 code such as NG or KE")]
pub struct UnknownCountry(pub String);

impl Country {
    /// The code, upper-case (`NG`).
    pub fn as_str(&self) -> &str {
        // Both bytes are ASCII letters by construction.
        std::str::from_utf8(&self.0).unwrap_or("??")
    }

    /// The country of an E.164 number (`+2348031234567` → `NG`), `None` for
    /// a malformed number or a non-geographic code (`+800`, `+882`...).
    ///
    /// Cost: country calling codes are prefix-free, so the code is the first
    /// one to three digits the metadata knows. A code of one country (most of
    /// them: +234, +254...) answers from that table alone; only a shared code
    /// (+1, +7, +44...) parses the number to tell its region.
    pub fn of_phone(e164: &str) -> Option<Country> {
        let digits = e164.strip_prefix('+')?;
        for len in 1..=3 {
            let code: u16 = digits.get(..len)?.parse().ok()?;
            let Some(regions) = DATABASE.region(&code) else {
                continue;
            };
            if let [only] = regions.as_slice() {
                return only.parse().ok();
            }
            let number = phonenumber::parse(None, e164).ok()?;
            let id = number.country().id()?;
            return id.as_ref().parse().ok();
        }
        None
    }
}

/// The time zone of each country that has one (its whole territory keeps
/// one clock), for quiet hours in the recipient's local time. Countries
/// with several zones (US, CA, BR, RU, AU, MX, ID, CD, ES, PT...) are not
/// here: their recipients' zone is the organization's.
const ZONES: &[(&str, &str)] = &[
    ("AE", "Asia/Dubai"),
    ("AO", "Africa/Luanda"),
    ("BE", "Europe/Brussels"),
    ("BF", "Africa/Ouagadougou"),
    ("BI", "Africa/Bujumbura"),
    ("BJ", "Africa/Porto-Novo"),
    ("BW", "Africa/Gaborone"),
    ("CF", "Africa/Bangui"),
    ("CG", "Africa/Brazzaville"),
    ("CH", "Europe/Zurich"),
    ("CI", "Africa/Abidjan"),
    ("CM", "Africa/Douala"),
    ("CN", "Asia/Shanghai"),
    ("CV", "Atlantic/Cape_Verde"),
    ("DE", "Europe/Berlin"),
    ("DJ", "Africa/Djibouti"),
    ("DZ", "Africa/Algiers"),
    ("EG", "Africa/Cairo"),
    ("ER", "Africa/Asmara"),
    ("ET", "Africa/Addis_Ababa"),
    ("FR", "Europe/Paris"),
    ("GA", "Africa/Libreville"),
    ("GB", "Europe/London"),
    ("GH", "Africa/Accra"),
    ("GM", "Africa/Banjul"),
    ("GN", "Africa/Conakry"),
    ("GQ", "Africa/Malabo"),
    ("GW", "Africa/Bissau"),
    ("IE", "Europe/Dublin"),
    ("IL", "Asia/Jerusalem"),
    ("IN", "Asia/Kolkata"),
    ("IT", "Europe/Rome"),
    ("JP", "Asia/Tokyo"),
    ("KE", "Africa/Nairobi"),
    ("KM", "Indian/Comoro"),
    ("LR", "Africa/Monrovia"),
    ("LS", "Africa/Maseru"),
    ("LY", "Africa/Tripoli"),
    ("MA", "Africa/Casablanca"),
    ("MG", "Indian/Antananarivo"),
    ("ML", "Africa/Bamako"),
    ("MR", "Africa/Nouakchott"),
    ("MU", "Indian/Mauritius"),
    ("MW", "Africa/Blantyre"),
    ("MZ", "Africa/Maputo"),
    ("NA", "Africa/Windhoek"),
    ("NE", "Africa/Niamey"),
    ("NG", "Africa/Lagos"),
    ("NL", "Europe/Amsterdam"),
    ("PK", "Asia/Karachi"),
    ("QA", "Asia/Qatar"),
    ("RW", "Africa/Kigali"),
    ("SA", "Asia/Riyadh"),
    ("SC", "Indian/Mahe"),
    ("SD", "Africa/Khartoum"),
    ("SG", "Asia/Singapore"),
    ("SL", "Africa/Freetown"),
    ("SN", "Africa/Dakar"),
    ("SO", "Africa/Mogadishu"),
    ("SS", "Africa/Juba"),
    ("ST", "Africa/Sao_Tome"),
    ("SZ", "Africa/Mbabane"),
    ("TD", "Africa/Ndjamena"),
    ("TG", "Africa/Lome"),
    ("TN", "Africa/Tunis"),
    ("TR", "Europe/Istanbul"),
    ("TZ", "Africa/Dar_es_Salaam"),
    ("UG", "Africa/Kampala"),
    ("ZA", "Africa/Johannesburg"),
    ("ZM", "Africa/Lusaka"),
    ("ZW", "Africa/Harare"),
];

impl Country {
    /// The country's one time zone, `None` for a country with several
    /// (or one this table does not list).
    pub fn time_zone(self) -> Option<chrono_tz::Tz> {
        let code = self.as_str();
        ZONES
            .binary_search_by(|(c, _)| (*c).cmp(code))
            .ok()
            .and_then(|i| ZONES.get(i))
            .and_then(|(_, zone)| zone.parse().ok())
    }
}

impl FromStr for Country {
    type Err = UnknownCountry;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let unknown = || UnknownCountry(crate::text::clean_untrusted(s, 16));
        let upper = s.to_ascii_uppercase();
        let bytes: [u8; 2] = upper.as_bytes().try_into().map_err(|_| unknown())?;
        if !bytes.iter().all(u8::is_ascii_uppercase) || DATABASE.by_id(upper.as_str()).is_none() {
            return Err(unknown());
        }
        Ok(Country(bytes))
    }
}

impl fmt::Display for Country {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl Serialize for Country {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

impl<'de> Deserialize<'de> for Country {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn c(s: &str) -> Country {
        s.parse().expect("known country")
    }

    #[test]
    fn codes_parse_in_any_case_and_unknown_ones_are_refused() {
        assert_eq!(c("ng").as_str(), "NG");
        assert_eq!(c("KE").to_string(), "KE");
        for bad in ["", "N", "NGA", "XX", "1G", "Ñg", "001"] {
            assert!(bad.parse::<Country>().is_err(), "{bad:?} accepted");
        }
    }

    #[test]
    fn the_country_of_a_number_comes_from_its_calling_code() {
        let cases = [
            ("+2348031234567", Some("NG")),
            ("+254712345678", Some("KE")),
            ("+233241234567", Some("GH")),
            ("+27821234567", Some("ZA")),
            // Shared codes: the number decides.
            ("+14155552671", Some("US")),
            ("+16135550123", Some("CA")),
            ("+442071838750", Some("GB")),
            ("+447911123456", Some("GG")), // a Guernsey mobile range
            // Non-geographic and malformed.
            ("+80012345678", None),
            ("2348031234567", None),
            ("+", None),
            ("+99", None),
        ];
        for (number, want) in cases {
            let got = Country::of_phone(number);
            assert_eq!(got.as_ref().map(Country::as_str), want, "{number}");
        }
    }

    #[test]
    fn serde_uses_the_code() {
        let json = serde_json::to_string(&c("NG")).expect("serialises");
        assert_eq!(json, "\"NG\"");
        let back: Country = serde_json::from_str("\"ke\"").expect("parses");
        assert_eq!(back, c("KE"));
        assert!(serde_json::from_str::<Country>("\"ZZ\"").is_err());
    }

    #[test]
    fn single_zone_countries_have_their_zone_and_the_table_is_sorted_and_valid() {
        for pair in ZONES.windows(2) {
            assert!(pair[0].0 < pair[1].0, "sorted: {pair:?}");
        }
        for (code, zone) in ZONES {
            let country: Country = code.parse().expect("a known country");
            assert_eq!(country.time_zone().map(|z| z.name()), Some(*zone), "{code}");
        }
        let of = |c: &str| c.parse::<Country>().expect("country").time_zone();
        assert_eq!(of("NG").map(|z| z.name()), Some("Africa/Lagos"));
        assert_eq!(of("US"), None, "several zones: the organization's");
        assert_eq!(of("CD"), None);
    }
}
