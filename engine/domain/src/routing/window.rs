//! Local-time windows: the days and hours a routing rule applies, in a
//! named time zone.

use std::fmt;
use std::str::FromStr;

use chrono::{DateTime, Datelike, NaiveTime, Timelike, Utc, Weekday};
use chrono_tz::Tz;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::validate::{Valid, ValidationError};

/// A day of the week, written `mon` … `sun`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Day {
    Mon,
    Tue,
    Wed,
    Thu,
    Fri,
    Sat,
    Sun,
}

impl Day {
    fn of(weekday: Weekday) -> Day {
        match weekday {
            Weekday::Mon => Day::Mon,
            Weekday::Tue => Day::Tue,
            Weekday::Wed => Day::Wed,
            Weekday::Thu => Day::Thu,
            Weekday::Fri => Day::Fri,
            Weekday::Sat => Day::Sat,
            Weekday::Sun => Day::Sun,
        }
    }
}

/// A wall-clock minute, written `HH:MM` (00:00 to 24:00; 24:00 is the end
/// of the day and only ends a window).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Minute(u16);

impl Minute {
    /// Minutes since midnight.
    pub fn of_day(self) -> u16 {
        self.0
    }

    pub(crate) fn of_time(time: NaiveTime) -> Minute {
        // hour <= 23, minute <= 59: at most 1439.
        Minute((time.hour() * 60 + time.minute()) as u16)
    }
}

impl FromStr for Minute {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let bad = || {
            format!(
                "`{}` is not a time of day HH:MM",
                crate::text::clean_untrusted(s, 16)
            )
        };
        let (h, m) = s.split_once(':').ok_or_else(bad)?;
        if h.len() != 2 || m.len() != 2 {
            return Err(bad());
        }
        let h: u16 = h.parse().map_err(|_| bad())?;
        let m: u16 = m.parse().map_err(|_| bad())?;
        if m > 59 || h > 24 || (h == 24 && m != 0) {
            return Err(bad());
        }
        Ok(Minute(h * 60 + m))
    }
}

impl fmt::Display for Minute {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:02}:{:02}", self.0 / 60, self.0 % 60)
    }
}

impl Serialize for Minute {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Minute {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        String::deserialize(d)?
            .parse()
            .map_err(serde::de::Error::custom)
    }
}

/// An IANA time zone (`Africa/Lagos`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Zone(pub Tz);

impl Zone {
    pub fn name(&self) -> &'static str {
        self.0.name()
    }
}

impl FromStr for Zone {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        s.parse::<Tz>().map(Zone).map_err(|_| {
            format!(
                "unknown time zone `{}`: use an IANA name such as Africa/Lagos",
                crate::text::clean_untrusted(s, 64)
            )
        })
    }
}

impl Serialize for Zone {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.name())
    }
}

impl<'de> Deserialize<'de> for Zone {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        String::deserialize(d)?
            .parse()
            .map_err(serde::de::Error::custom)
    }
}

/// Days and hours in a zone: `from` inclusive, `to` exclusive, on the listed
/// days (every day when none is listed). A window does not wrap past
/// midnight: write two rules for a night window.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct TimeWindow {
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub days: Vec<Day>,
    pub from: Minute,
    pub to: Minute,
    pub time_zone: Zone,
}

impl TimeWindow {
    /// Whether `at` falls inside the window, in its zone.
    pub fn contains(&self, at: DateTime<Utc>) -> bool {
        let local = at.with_timezone(&self.time_zone.0);
        let minute = Minute::of_time(local.time());
        let day_ok = self.days.is_empty() || self.days.contains(&Day::of(local.weekday()));
        day_ok && self.from <= minute && minute < self.to
    }

    /// `from` must come before `to`; days must not repeat.
    pub fn validate(&self, prefix: &str) -> Valid<()> {
        if self.from >= self.to {
            return Err(ValidationError::new(
                format!("{prefix}.to"),
                "invalid_window",
                format!(
                    "the window from {} to {} is empty or inverted: `to` must be later than `from` \
                     (a window does not wrap past midnight)",
                    self.from, self.to
                ),
            ));
        }
        for (i, day) in self.days.iter().enumerate() {
            if self.days[..i].contains(day) {
                return Err(ValidationError::new(
                    format!("{prefix}.days[{i}]"),
                    "duplicate",
                    "a day is listed twice",
                ));
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use chrono::TimeZone;
    use serde_json::json;

    use super::*;

    fn window(value: serde_json::Value) -> TimeWindow {
        serde_json::from_value(value).expect("parses")
    }

    fn utc(y: i32, mo: u32, d: u32, h: u32, mi: u32) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(y, mo, d, h, mi, 0)
            .single()
            .expect("valid time")
    }

    #[test]
    fn a_window_is_read_in_its_zone() {
        // Lagos is UTC+1 all year. 2026-12-07 is a Monday.
        let w = window(
            json!({"days": ["mon","tue","wed","thu","fri"], "from": "08:00", "to": "20:00",
                               "timeZone": "Africa/Lagos"}),
        );
        w.validate("match.timeWindow").expect("valid");
        let cases = [
            (utc(2026, 12, 7, 6, 59), false),  // 07:59 Lagos
            (utc(2026, 12, 7, 7, 0), true),    // 08:00 Lagos: from is inclusive
            (utc(2026, 12, 7, 18, 59), true),  // 19:59
            (utc(2026, 12, 7, 19, 0), false),  // 20:00: to is exclusive
            (utc(2026, 12, 5, 12, 0), false),  // Saturday
            (utc(2026, 12, 6, 23, 30), false), // Sunday in UTC, Monday 00:30 in Lagos: before 08:00
        ];
        for (at, want) in cases {
            assert_eq!(w.contains(at), want, "{at}");
        }
        let all_day = window(json!({"from": "00:00", "to": "24:00", "timeZone": "Africa/Nairobi"}));
        assert!(all_day.contains(utc(2026, 12, 6, 23, 30)));
    }

    #[test]
    fn a_zone_with_summer_time_follows_it() {
        let w = window(json!({"from": "09:00", "to": "17:00", "timeZone": "Europe/London"}));
        assert!(w.contains(utc(2026, 1, 15, 9, 0)), "winter: UTC+0");
        assert!(!w.contains(utc(2026, 7, 15, 16, 30)), "summer: 17:30 BST");
        assert!(w.contains(utc(2026, 7, 15, 8, 0)), "summer: 09:00 BST");
    }

    #[test]
    fn bad_windows_are_refused_naming_the_field() {
        let inverted = window(json!({"from": "20:00", "to": "08:00", "timeZone": "Africa/Lagos"}));
        let err = inverted.validate("match.timeWindow").expect_err("inverted");
        assert_eq!(
            (err.field.as_str(), err.code),
            ("match.timeWindow.to", "invalid_window")
        );
        let empty = window(json!({"from": "08:00", "to": "08:00", "timeZone": "Africa/Lagos"}));
        assert!(empty.validate("w").is_err());
        let twice = window(
            json!({"days": ["mon", "mon"], "from": "08:00", "to": "09:00", "timeZone": "UTC"}),
        );
        assert_eq!(twice.validate("w").expect_err("dup").field, "w.days[1]");
        for bad in [
            json!({"from": "8:00", "to": "09:00", "timeZone": "UTC"}),
            json!({"from": "08:60", "to": "09:00", "timeZone": "UTC"}),
            json!({"from": "08:00", "to": "24:01", "timeZone": "UTC"}),
            json!({"from": "08:00", "to": "09:00", "timeZone": "Mars/Olympus"}),
            json!({"days": ["monday"], "from": "08:00", "to": "09:00", "timeZone": "UTC"}),
        ] {
            assert!(
                serde_json::from_value::<TimeWindow>(bad.clone()).is_err(),
                "{bad}"
            );
        }
    }
}
