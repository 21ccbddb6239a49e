//! Sites' local time. The deadline of an exam day is 23:59 local time at the site,
//! computed with the IANA time-zone database (bundled, so every machine agrees), which
//! knows Russia's history, including the 2014 move off permanent "summer" time.

use std::fmt;

use jiff::civil;
use jiff::tz::TimeZone;
use jiff::Timestamp;
use serde::{Deserialize, Serialize};

use crate::{Error, ExamDate, ExamKind, Result};

/// Calendar days after the final essay within which its blanks reach the center
/// (seed 001 §12.6: checking and delivery end no later than seven days after it).
pub(crate) const ESSAY_DELIVERY_DAYS: i64 = 7;

/// A site's IANA time zone, e.g. `Europe/Moscow`, `Asia/Kamchatka`.
#[derive(Clone, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct SiteZone {
    name: String,
    tz: TimeZone,
}

impl SiteZone {
    /// Looks the zone up in the bundled database.
    pub fn new(name: &str) -> Result<Self> {
        let tz = jiff::tz::db().get(name).map_err(|_| Error::InvalidId {
            what: "time zone",
            value: name.to_owned(),
            hint: "an IANA name such as Europe/Kaliningrad, Europe/Moscow, Asia/Novosibirsk or Asia/Kamchatka",
        })?;
        Ok(SiteZone {
            name: name.to_owned(),
            tz,
        })
    }

    /// Moscow time, the default zone of a region: from the bundled database, or in a
    /// build without it the fixed UTC+3 that Moscow has kept since 2014.
    pub fn moscow() -> Self {
        let tz = jiff::tz::db()
            .get("Europe/Moscow")
            .unwrap_or_else(|_| TimeZone::fixed(jiff::tz::offset(3)));
        SiteZone {
            name: "Europe/Moscow".to_owned(),
            tz,
        }
    }

    /// The zone's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The instant of 23:59:00 local time on `date` at the site, in Unix milliseconds.
    pub fn deadline_unix_ms(&self, date: ExamDate) -> Result<i64> {
        self.local_unix_ms(date, 23, 59)
    }

    /// The instant of `hour`:`minute` local time on `date` at the site, in Unix
    /// milliseconds (the exam day's windows: blanks until 17:30, journals until 19:00).
    pub fn local_unix_ms(&self, date: ExamDate, hour: i8, minute: i8) -> Result<i64> {
        let bad = |e: jiff::Error| Error::InvalidId {
            what: "exam date",
            value: date.to_string(),
            hint: if e.to_string().is_empty() {
                "a real calendar date"
            } else {
                "a date the time-zone database covers"
            },
        };
        let day = civil::Date::new(date.year as i16, date.month as i8, date.day as i8).map_err(bad)?;
        let local = day.at(hour.clamp(0, 23), minute.clamp(0, 59), 0, 0);
        Ok(self.tz.to_timestamp(local).map_err(bad)?.as_millisecond())
    }

    /// The instant after which a packet of `exam` on `date` arrives late at the center:
    /// 23:59 local time of the exam day, and for the final essay 23:59 of the seventh
    /// calendar day after it (checking and delivery to the center take up to seven days,
    /// seed 001 §12.6).
    pub fn delivery_deadline_unix_ms(&self, date: ExamDate, exam: ExamKind) -> Result<i64> {
        let days = match exam {
            ExamKind::Essay => ESSAY_DELIVERY_DAYS,
            ExamKind::Ege | ExamKind::Oge | ExamKind::Gve => 0,
        };
        let day = civil::date(date.year as i16, date.month as i8, date.day as i8)
            .checked_add(jiff::Span::new().days(days))
            .map_err(|_| Error::InvalidId {
                what: "exam date",
                value: date.to_string(),
                hint: "a date the time-zone database covers",
            })?;
        self.deadline_unix_ms(ExamDate {
            year: day.year() as u16,
            month: day.month() as u8,
            day: day.day() as u8,
        })
    }

    /// The calendar date at the site at the instant `unix_ms`.
    pub fn local_date(&self, unix_ms: i64) -> Result<ExamDate> {
        let ts = Timestamp::from_millisecond(unix_ms).map_err(|_| Error::InvalidId {
            what: "instant",
            value: unix_ms.to_string(),
            hint: "milliseconds since 1970 within the years 1..9999",
        })?;
        let d = self.tz.to_datetime(ts).date();
        Ok(ExamDate {
            year: d.year() as u16,
            month: d.month() as u8,
            day: d.day() as u8,
        })
    }

    /// Milliseconds left until the deadline of `date` at `now_unix_ms` (negative once past).
    pub fn time_left_ms(&self, date: ExamDate, now_unix_ms: i64) -> Result<i64> {
        Ok(self.deadline_unix_ms(date)? - now_unix_ms)
    }
}

impl PartialEq for SiteZone {
    fn eq(&self, other: &Self) -> bool {
        self.name == other.name
    }
}

impl Eq for SiteZone {}

impl fmt::Debug for SiteZone {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SiteZone({})", self.name)
    }
}

impl fmt::Display for SiteZone {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.name)
    }
}

impl TryFrom<String> for SiteZone {
    type Error = Error;
    fn try_from(s: String) -> Result<Self> {
        SiteZone::new(&s)
    }
}

impl From<SiteZone> for String {
    fn from(z: SiteZone) -> String {
        z.name
    }
}

impl std::str::FromStr for SiteZone {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        SiteZone::new(s)
    }
}

#[cfg(test)]
#[path = "zone_tests.rs"]
mod tests;
