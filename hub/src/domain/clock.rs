//! Time. UTC everywhere on the wire and in the store, as microseconds since the Unix epoch.
//! Time-dependent rules take a `Clock`, so that tests control time.

use crate::error::Invalid;
use serde::{Deserialize, Serialize};
use std::fmt;
use time::{
    Date, OffsetDateTime, format_description::well_known::Rfc3339, macros::format_description,
};

/// An instant in UTC, microsecond precision.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Timestamp(i64);

impl Timestamp {
    pub fn from_micros(micros: i64) -> Self {
        Self(micros)
    }

    pub fn micros(self) -> i64 {
        self.0
    }

    pub fn from_offset(t: OffsetDateTime) -> Self {
        Self((t.unix_timestamp_nanos() / 1000) as i64)
    }

    pub fn to_offset(self) -> OffsetDateTime {
        OffsetDateTime::from_unix_timestamp_nanos(i128::from(self.0) * 1000)
            .unwrap_or(OffsetDateTime::UNIX_EPOCH)
    }

    pub fn seconds_and_nanos(self) -> (i64, i32) {
        (
            self.0.div_euclid(1_000_000),
            (self.0.rem_euclid(1_000_000) * 1000) as i32,
        )
    }

    pub fn day(self) -> Day {
        Day(self.to_offset().date())
    }
}

impl fmt::Display for Timestamp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.to_offset().format(&Rfc3339) {
            Ok(s) => f.write_str(&s),
            Err(_) => write!(f, "{}µs", self.0),
        }
    }
}

/// Shown to people in Europe/Paris time: UTC+1, UTC+2 in summer (EU rule: from the last
/// Sunday of March to the last Sunday of October, at 01:00 UTC).
pub fn paris(t: Timestamp) -> String {
    let local = paris_local(t);
    format!(
        "{:02}/{:02}/{} à {:02}h{:02}",
        local.day(),
        u8::from(local.month()),
        local.year(),
        local.hour(),
        local.minute()
    )
}

/// `t` as Europe/Paris wall-clock time.
pub fn paris_local(t: Timestamp) -> OffsetDateTime {
    t.to_offset() + time::Duration::hours(paris_offset_hours(t))
}

/// The day `t` falls on in Paris.
pub fn paris_day(t: Timestamp) -> Day {
    Day(paris_local(t).date())
}

/// Hours Paris is ahead of UTC at `t`: 2 in summer, else 1.
fn paris_offset_hours(t: Timestamp) -> i64 {
    use time::{Month, Weekday};
    let utc = t.to_offset();
    let last_sunday = |month: Month| {
        let days = time::util::days_in_month(month, utc.year());
        let mut d = Date::from_calendar_date(utc.year(), month, days).unwrap_or(utc.date());
        while d.weekday() != Weekday::Sunday {
            d = d.previous_day().unwrap_or(d);
        }
        d.with_hms(1, 0, 0).map(|dt| dt.assume_utc()).unwrap_or(utc)
    };
    let summer = utc >= last_sunday(Month::March) && utc < last_sunday(Month::October);
    if summer { 2 } else { 1 }
}

/// Where "now" comes from.
pub trait Clock: Send + Sync + 'static {
    fn now(&self) -> Timestamp;
}

/// A clock that runs with the system's, shifted by an offset that tests move forward (days
/// pass in a test without sleeping). Not reachable from the configuration: only code that
/// starts a hub in-process (`relais_hub::start_with_clock`) can give one.
#[derive(Debug, Default)]
pub struct ShiftedClock {
    offset_micros: std::sync::atomic::AtomicI64,
}

impl ShiftedClock {
    /// Moves this clock `days` forward.
    pub fn advance_days(&self, days: i64) {
        self.offset_micros.fetch_add(
            days * 86_400 * 1_000_000,
            std::sync::atomic::Ordering::SeqCst,
        );
    }
}

impl Clock for ShiftedClock {
    fn now(&self) -> Timestamp {
        let system = SystemClock.now().micros();
        Timestamp::from_micros(
            system + self.offset_micros.load(std::sync::atomic::Ordering::SeqCst),
        )
    }
}

/// The system's clock.
#[derive(Debug, Default, Clone, Copy)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> Timestamp {
        Timestamp::from_offset(OffsetDateTime::now_utc())
    }
}

/// A calendar day (`YYYY-MM-DD`): birth dates, due dates, validity ends.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Day(Date);

/// Dates and times a request may carry: none before 1900, none after 2200 (a birth date, a due
/// date, an expiry). Outside, arithmetic on them has no meaning here and could overflow.
pub const MIN_YEAR: i32 = 1900;
pub const MAX_YEAR: i32 = 2200;

const DAY_FORMAT: &[time::format_description::FormatItem<'static>] =
    format_description!("[year]-[month]-[day]");

impl Day {
    pub fn parse(s: &str) -> Result<Self, Invalid> {
        if s.is_empty() {
            return Err(Invalid::new("required"));
        }
        let day = Date::parse(s, DAY_FORMAT).map(Self).map_err(|_| {
            Invalid::new(format!(
                "`{}` is not a date `YYYY-MM-DD`",
                super::ids::truncate(s)
            ))
        })?;
        if !(MIN_YEAR..=MAX_YEAR).contains(&day.0.year()) {
            return Err(Invalid::new(format!(
                "`{s}` is outside the years {MIN_YEAR}–{MAX_YEAR}"
            )));
        }
        Ok(day)
    }

    /// Midnight of this day in Paris.
    pub fn start_paris(self) -> Timestamp {
        let midnight_utc = Timestamp::from_offset(self.0.midnight().assume_utc());
        Timestamp::from_micros(
            midnight_utc.micros() - paris_offset_hours(midnight_utc) * 3_600_000_000,
        )
    }

    /// `days` later (or earlier, when negative), kept within the years a day may have.
    pub fn plus_days(self, days: i64) -> Day {
        let moved = self
            .0
            .checked_add(time::Duration::days(days))
            .unwrap_or(self.0);
        if (MIN_YEAR..=MAX_YEAR).contains(&moved.year()) {
            Day(moved)
        } else {
            self
        }
    }

    /// Days from `self` to `later` (negative when `later` is before).
    pub fn days_until(self, later: Day) -> i64 {
        (later.0 - self.0).whole_days()
    }

    /// Saturday or Sunday.
    pub fn weekend(self) -> bool {
        matches!(
            self.0.weekday(),
            time::Weekday::Saturday | time::Weekday::Sunday
        )
    }

    /// The month, `YYYY-MM`.
    pub fn month(self) -> String {
        format!("{:04}-{:02}", self.0.year(), u8::from(self.0.month()))
    }

    /// In French: "mardi 8 décembre 2026", "mardi 1er décembre 2026".
    pub fn french(self) -> String {
        const DAYS: [&str; 7] = [
            "lundi", "mardi", "mercredi", "jeudi", "vendredi", "samedi", "dimanche",
        ];
        format!(
            "{} {}",
            DAYS[usize::from(self.0.weekday().number_days_from_monday())],
            self.french_date()
        )
    }

    /// In French without the weekday: "8 décembre 2026", "1er décembre 2026".
    pub fn french_date(self) -> String {
        const MONTHS: [&str; 12] = [
            "janvier",
            "février",
            "mars",
            "avril",
            "mai",
            "juin",
            "juillet",
            "août",
            "septembre",
            "octobre",
            "novembre",
            "décembre",
        ];
        let day = match self.0.day() {
            1 => "1er".to_string(),
            d => d.to_string(),
        };
        format!(
            "{day} {} {}",
            MONTHS[usize::from(u8::from(self.0.month())) - 1],
            self.0.year()
        )
    }

    /// `None` for an empty string (the field is optional).
    pub fn parse_optional(s: &str) -> Result<Option<Self>, Invalid> {
        if s.is_empty() {
            Ok(None)
        } else {
            Self::parse(s).map(Some)
        }
    }
}

impl fmt::Display for Day {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0.format(DAY_FORMAT) {
            Ok(s) => f.write_str(&s),
            Err(_) => write!(f, "{:?}", self.0),
        }
    }
}

impl Serialize for Day {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Day {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        Day::parse(&s).map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn days_parse_and_print() {
        assert_eq!(Day::parse("1943-02-17").unwrap().to_string(), "1943-02-17");
        assert!(Day::parse("17/02/1943").is_err());
        assert!(Day::parse("1943-02-30").is_err());
        assert_eq!(Day::parse_optional("").unwrap(), None);
    }

    #[test]
    fn paris_time_follows_summer_time() {
        let at = |s: &str| Timestamp::from_offset(OffsetDateTime::parse(s, &Rfc3339).unwrap());
        assert_eq!(paris(at("2026-01-15T10:00:00Z")), "15/01/2026 à 11h00");
        assert_eq!(paris(at("2026-07-14T10:00:00Z")), "14/07/2026 à 12h00");
        // 2026: summer time from 29 March 01:00 UTC to 25 October 01:00 UTC.
        assert_eq!(paris(at("2026-03-29T00:59:00Z")), "29/03/2026 à 01h59");
        assert_eq!(paris(at("2026-03-29T01:00:00Z")), "29/03/2026 à 03h00");
        assert_eq!(paris(at("2026-10-25T01:00:00Z")), "25/10/2026 à 02h00");
    }

    #[test]
    fn timestamp_split() {
        assert_eq!(
            Timestamp::from_micros(1_500_000).seconds_and_nanos(),
            (1, 500_000_000)
        );
        assert_eq!(
            Timestamp::from_micros(-1).seconds_and_nanos(),
            (-1, 999_999_000)
        );
    }
}
