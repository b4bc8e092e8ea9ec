//! Quiet hours: an organization's daily window, in the recipient's local
//! time, during which messages of some categories (marketing by default)
//! are not sent; one due inside it is deferred to the window's end, never
//! dropped. The recipient's zone is its country's when the country keeps
//! one clock, else the organization's `timeZone`.

use chrono::{DateTime, Days, Duration, TimeZone, Utc};
use chrono_tz::Tz;
use serde::{Deserialize, Serialize};

use super::country::Country;
use super::rules::Category;
use super::window::{Minute, Zone};
use crate::validate::{Valid, ValidationError};

/// An organization's quiet hours, as `PUT /api/routing/quiet-hours` takes them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct QuietHours {
    /// Local time the quiet starts (inclusive).
    pub from: Minute,
    /// Local time it ends (exclusive); before `from` wraps past midnight.
    pub to: Minute,
    /// The categories kept quiet; `["marketing"]` by default.
    #[serde(default = "marketing")]
    pub applies_to: Vec<Category>,
    /// The organization's zone: used for recipients whose country has
    /// several zones or none known. UTC by default.
    #[serde(default = "utc")]
    pub time_zone: Zone,
}

fn marketing() -> Vec<Category> {
    vec![Category::Marketing]
}

fn utc() -> Zone {
    Zone(Tz::UTC)
}

/// Why and until when a message waits.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Deferral {
    pub until: DateTime<Utc>,
    pub zone: Tz,
}

impl Deferral {
    /// For the message's history.
    pub fn reason(&self, quiet: &QuietHours) -> String {
        format!(
            "quiet hours {}–{} in {}: deferred to {}",
            quiet.from,
            quiet.to,
            self.zone.name(),
            self.until
                .with_timezone(&self.zone)
                .format("%Y-%m-%d %H:%M %Z")
        )
    }
}

impl QuietHours {
    /// Parses and validates a body, naming the failing field.
    pub fn parse(body: serde_json::Value) -> Valid<QuietHours> {
        let quiet: QuietHours = serde_path_to_error::deserialize(body).map_err(|e| {
            crate::validate::from_serde(&e.path().to_string(), &e.inner().to_string())
        })?;
        quiet.validate()?;
        Ok(quiet)
    }

    pub fn validate(&self) -> Valid<()> {
        if self.from == self.to {
            return Err(ValidationError::new(
                "to",
                "invalid_window",
                "quiet hours from and to are the same time: the window would be empty",
            ));
        }
        if self.from.of_day() == 24 * 60 {
            return Err(ValidationError::new(
                "from",
                "invalid_window",
                "quiet hours cannot start at 24:00; use 00:00",
            ));
        }
        for (i, category) in self.applies_to.iter().enumerate() {
            if self.applies_to[..i].contains(category) {
                return Err(ValidationError::new(
                    format!("appliesTo[{i}]"),
                    "duplicate",
                    "a category is listed twice",
                ));
            }
        }
        Ok(())
    }

    fn contains(&self, minute: Minute) -> bool {
        if self.from < self.to {
            self.from <= minute && minute < self.to
        } else {
            minute >= self.from || minute < self.to
        }
    }

    /// When a message of `category` to `country` due at `at` may go, if
    /// that is later: the first local minute `to` after `at`.
    pub fn defer(
        &self,
        category: Category,
        country: Option<Country>,
        at: DateTime<Utc>,
    ) -> Option<Deferral> {
        if !self.applies_to.contains(&category) {
            return None;
        }
        let zone = country
            .and_then(Country::time_zone)
            .unwrap_or(self.time_zone.0);
        let local = at.with_timezone(&zone);
        if !self.contains(Minute::of_time(local.time())) {
            return None;
        }
        let end = u32::from(self.to.of_day());
        let mut day = local.date_naive();
        loop {
            let midnight = day.and_hms_opt(0, 0, 0)?;
            let naive = midnight + Duration::minutes(i64::from(end));
            // A wall time a DST change skips is taken an hour later.
            let until = zone
                .from_local_datetime(&naive)
                .earliest()
                .or_else(|| {
                    zone.from_local_datetime(&(naive + Duration::hours(1)))
                        .earliest()
                })?
                .with_timezone(&Utc);
            if until > at {
                return Some(Deferral { until, zone });
            }
            day = day.checked_add_days(Days::new(1))?;
        }
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn quiet(body: serde_json::Value) -> QuietHours {
        let q: QuietHours = serde_json::from_value(body).expect("parses");
        q.validate().expect("valid");
        q
    }

    fn at(rfc3339: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(rfc3339)
            .expect("time")
            .with_timezone(&Utc)
    }

    fn country(c: &str) -> Option<Country> {
        Some(c.parse().expect("country"))
    }

    #[test]
    fn marketing_inside_the_window_waits_for_its_end_in_the_recipients_zone() {
        let q = quiet(json!({"from": "21:00", "to": "08:00"}));
        let cases = [
            // (due, country, category, deferred to)
            (
                "2026-12-07T21:30:00+01:00",
                "NG",
                Category::Marketing,
                Some("2026-12-08T08:00:00+01:00"),
            ),
            (
                "2026-12-08T02:00:00+01:00",
                "NG",
                Category::Marketing,
                Some("2026-12-08T08:00:00+01:00"),
            ),
            ("2026-12-07T20:59:00+01:00", "NG", Category::Marketing, None),
            ("2026-12-08T08:00:00+01:00", "NG", Category::Marketing, None),
            (
                "2026-12-07T22:00:00+01:00",
                "NG",
                Category::Transactional,
                None,
            ),
            // 21:30 in Lagos is 23:30 in Nairobi: Nairobi's morning.
            (
                "2026-12-07T21:30:00+01:00",
                "KE",
                Category::Marketing,
                Some("2026-12-08T08:00:00+03:00"),
            ),
            // 19:30 in Lagos is 21:30 in Nairobi: already quiet there.
            (
                "2026-12-07T19:30:00+01:00",
                "KE",
                Category::Marketing,
                Some("2026-12-08T08:00:00+03:00"),
            ),
            ("2026-12-07T19:30:00+01:00", "NG", Category::Marketing, None),
        ];
        for (due, c, category, want) in cases {
            let got = q.defer(category, country(c), at(due)).map(|d| d.until);
            assert_eq!(got, want.map(at), "{due} {c} {category:?}");
        }
    }

    #[test]
    fn multi_zone_countries_use_the_organizations_zone() {
        let q = quiet(json!({"from": "21:00", "to": "08:00", "timeZone": "America/New_York"}));
        let d = q
            .defer(
                Category::Marketing,
                country("US"),
                at("2026-12-08T03:00:00Z"),
            )
            .expect("22:00 in New York is quiet");
        assert_eq!(d.until, at("2026-12-08T08:00:00-05:00"));
        assert_eq!(d.zone.name(), "America/New_York");
        assert_eq!(
            d.reason(&q),
            "quiet hours 21:00–08:00 in America/New_York: deferred to 2026-12-08 08:00 EST"
        );
    }

    #[test]
    fn a_window_within_one_day_and_the_dst_gap() {
        let q = quiet(
            json!({"from": "12:00", "to": "14:00", "appliesTo": ["marketing", "transactional"],
                             "timeZone": "Europe/London"}),
        );
        assert_eq!(
            q.defer(
                Category::Transactional,
                None,
                at("2026-07-01T12:30:00+01:00")
            )
            .map(|d| d.until),
            Some(at("2026-07-01T14:00:00+01:00"))
        );
        // 01:00 on the last Sunday of March does not exist in London.
        let q = quiet(json!({"from": "23:00", "to": "01:00", "timeZone": "Europe/London"}));
        assert_eq!(
            q.defer(Category::Marketing, None, at("2026-03-28T23:30:00Z"))
                .map(|d| d.until),
            Some(at("2026-03-29T02:00:00+01:00"))
        );
    }

    #[test]
    fn bad_quiet_hours_are_refused_naming_the_field() {
        for (body, field) in [
            (json!({"from": "08:00", "to": "08:00"}), "to"),
            (json!({"from": "24:00", "to": "08:00"}), "from"),
            (
                json!({"from": "21:00", "to": "08:00", "appliesTo": ["marketing", "marketing"]}),
                "appliesTo[1]",
            ),
        ] {
            let q: QuietHours = serde_json::from_value(body.clone()).expect("parses");
            assert_eq!(q.validate().expect_err("invalid").field, field, "{body}");
        }
        for body in [
            json!({"from": "25:00", "to": "08:00"}),
            json!({"from": "21:00", "to": "08:00", "timeZone": "Lagos"}),
            json!({"from": "21:00", "to": "08:00", "appliesTo": ["promo"]}),
            json!({"from": "21:00"}),
        ] {
            assert!(
                serde_json::from_value::<QuietHours>(body.clone()).is_err(),
                "{body}"
            );
        }
    }
}
