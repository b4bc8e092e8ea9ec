//! Recipients' phone numbers per country: valid E.164 mobile numbers (so
//! the engine's number check and the providers' own checks pass), spread
//! over one mobile range per country.
//!
//! A number is the country's fixed prefix (country code and a real mobile
//! range) followed by `digits` subscriber digits taken from a number `n`
//! modulo the range's size, so `n` picks the number deterministically.

use std::io::Write;

/// A country the harness can generate recipients in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Country {
    /// ISO 3166-1 alpha-2 code.
    pub code: &'static str,
    /// `+`, country code and mobile range.
    prefix: &'static str,
    /// Subscriber digits after the prefix.
    digits: u32,
    /// Lowest subscriber number (some ranges cannot start with 0 or 1).
    low: u64,
}

/// Every country the harness knows.
pub const COUNTRIES: [Country; 6] = [
    // Nigeria, MTN 0803.
    Country {
        code: "NG",
        prefix: "+234803",
        digits: 7,
        low: 0,
    },
    // Kenya, Safaricom 071x.
    Country {
        code: "KE",
        prefix: "+25471",
        digits: 7,
        low: 0,
    },
    // Ghana, MTN 024.
    Country {
        code: "GH",
        prefix: "+23324",
        digits: 7,
        low: 0,
    },
    // South Africa, Vodacom 082.
    Country {
        code: "ZA",
        prefix: "+2782",
        digits: 7,
        low: 0,
    },
    // United States, New York 212: the exchange's first digit is 2-9.
    Country {
        code: "US",
        prefix: "+1212",
        digits: 7,
        low: 2_000_000,
    },
    // India, mobile 98xxx.
    Country {
        code: "IN",
        prefix: "+9198",
        digits: 8,
        low: 0,
    },
];

impl Country {
    /// The country of an ISO code (upper case).
    pub fn from_code(code: &str) -> Option<Country> {
        COUNTRIES.iter().copied().find(|c| c.code == code)
    }

    /// The known codes.
    pub fn codes() -> Vec<&'static str> {
        COUNTRIES.iter().map(|c| c.code).collect()
    }

    /// How many distinct numbers this country's range holds.
    pub fn range_size(&self) -> u64 {
        10u64.pow(self.digits) - self.low
    }

    /// Appends number `n` (modulo the range) to `buf`.
    pub fn write_number(&self, buf: &mut Vec<u8>, n: u64) {
        let subscriber = self.low + n % self.range_size();
        let width = self.digits as usize;
        // Writing to a Vec cannot fail.
        let _ = write!(buf, "{}{subscriber:0width$}", self.prefix);
    }

    /// Number `n` as a string.
    pub fn number(&self, n: u64) -> String {
        let mut buf = Vec::with_capacity(16);
        self.write_number(&mut buf, n);
        String::from_utf8_lossy(&buf).into_owned()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_generated_number_is_a_valid_e164_number_of_its_country() {
        for country in COUNTRIES {
            let size = country.range_size();
            for n in [0, 1, 42, 999_999, size - 1, size, size + 7, u64::MAX] {
                let number = country.number(n);
                assert!(number.starts_with('+') && number.len() <= 16, "{number}");
                assert!(number[1..].bytes().all(|b| b.is_ascii_digit()), "{number}");
                let parsed = phonenumber::parse(None, &number)
                    .unwrap_or_else(|e| panic!("{number} does not parse: {e}"));
                assert!(phonenumber::is_valid(&parsed), "{number} is not valid");
                let region = parsed.country().id().map(|id| id.as_ref().to_owned());
                assert_eq!(
                    region.as_deref(),
                    Some(country.code),
                    "{number} is not in {}",
                    country.code
                );
            }
        }
    }

    #[test]
    fn numbers_cycle_over_the_range() {
        let ng = Country::from_code("NG").expect("known");
        assert_eq!(ng.number(0), "+2348030000000");
        assert_eq!(ng.number(1_234_567), "+2348031234567");
        assert_eq!(ng.number(10_000_000), ng.number(0));
        let us = Country::from_code("US").expect("known");
        assert_eq!(us.number(0), "+12122000000");
        assert_eq!(us.range_size(), 8_000_000);
        assert!(Country::from_code("ng").is_none());
        assert_eq!(Country::codes().len(), COUNTRIES.len());
    }
}
