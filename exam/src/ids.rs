//! Identifiers of the exam domain, validated on construction.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use crate::{Error, Result};

fn check_code(what: &'static str, s: &str, max: usize, hint: &'static str) -> Result<String> {
    let ok = !s.is_empty() && s.len() <= max && s.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-');
    if ok {
        Ok(s.to_owned())
    } else {
        Err(Error::InvalidId {
            what,
            value: s.to_owned(),
            hint,
        })
    }
}

macro_rules! code_type {
    ($name:ident, $what:literal, $max:literal, $hint:literal, $doc:literal) => {
        #[doc = $doc]
        #[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
        #[serde(try_from = "String", into = "String")]
        pub struct $name(String);

        impl $name {
            /// Validates and wraps a code.
            pub fn new(s: &str) -> Result<Self> {
                check_code($what, s, $max, $hint).map($name)
            }

            /// The code as text.
            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl TryFrom<String> for $name {
            type Error = Error;
            fn try_from(s: String) -> Result<Self> {
                Self::new(&s)
            }
        }

        impl From<$name> for String {
            fn from(v: $name) -> String {
                v.0
            }
        }

        impl FromStr for $name {
            type Err = Error;
            fn from_str(s: &str) -> Result<Self> {
                Self::new(s)
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }
    };
}

code_type!(
    SiteId,
    "site code",
    32,
    "1–32 letters, digits or '-', e.g. 0101",
    "The code of an exam site (ППЭ), school or processing point."
);
code_type!(
    RoomId,
    "room code",
    16,
    "1–16 letters, digits or '-', e.g. 0012",
    "The code of an exam room (аудитория) within a site."
);

/// An exam day, `YYYY-MM-DD`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct ExamDate {
    /// Year.
    pub year: u16,
    /// Month 1–12.
    pub month: u8,
    /// Day 1–31.
    pub day: u8,
}

impl FromStr for ExamDate {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        let bad = || Error::InvalidId {
            what: "exam date",
            value: s.to_owned(),
            hint: "YYYY-MM-DD, e.g. 2026-06-01",
        };
        let b = s.as_bytes();
        if b.len() != 10 || b[4] != b'-' || b[7] != b'-' {
            return Err(bad());
        }
        let year: u16 = s[0..4].parse().map_err(|_| bad())?;
        let month: u8 = s[5..7].parse().map_err(|_| bad())?;
        let day: u8 = s[8..10].parse().map_err(|_| bad())?;
        let leap = (year.is_multiple_of(4) && !year.is_multiple_of(100)) || year.is_multiple_of(400);
        let days_in_month = match month {
            1 | 3 | 5 | 7 | 8 | 10 | 12 => 31,
            4 | 6 | 9 | 11 => 30,
            2 if leap => 29,
            2 => 28,
            _ => return Err(bad()),
        };
        if day == 0 || day > days_in_month {
            return Err(bad());
        }
        Ok(ExamDate { year, month, day })
    }
}

impl TryFrom<String> for ExamDate {
    type Error = Error;
    fn try_from(s: String) -> Result<Self> {
        s.parse()
    }
}

impl From<ExamDate> for String {
    fn from(d: ExamDate) -> String {
        d.to_string()
    }
}

impl fmt::Display for ExamDate {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:04}-{:02}-{:02}", self.year, self.month, self.day)
    }
}

/// The kind of exam (ЕГЭ, ОГЭ, ГВЭ, final essay).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ExamKind {
    /// ЕГЭ — unified state exam, grade 11.
    Ege,
    /// ОГЭ — main state exam, grade 9.
    Oge,
    /// ГВЭ — state final exam in a simpler form.
    Gve,
    /// Итоговое сочинение (изложение) — the final essay.
    Essay,
}

impl ExamKind {
    /// The short code used in packet ids.
    pub fn code(self) -> &'static str {
        match self {
            ExamKind::Ege => "ege",
            ExamKind::Oge => "oge",
            ExamKind::Gve => "gve",
            ExamKind::Essay => "essay",
        }
    }
}

impl FromStr for ExamKind {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        match s.to_ascii_lowercase().as_str() {
            "ege" | "егэ" => Ok(ExamKind::Ege),
            "oge" | "огэ" => Ok(ExamKind::Oge),
            "gve" | "гвэ" => Ok(ExamKind::Gve),
            "essay" => Ok(ExamKind::Essay),
            _ => Err(Error::InvalidId {
                what: "exam kind",
                value: s.to_owned(),
                hint: "one of ege, oge, gve, essay",
            }),
        }
    }
}

/// What a packet carries; the order is the sending order (forms first: the center needs
/// ППЭ-13-02МАШ before it can check registration blanks).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum PacketKind {
    /// Machine-readable forms (ППЭ-13-02МАШ, ППЭ-12-04МАШ, ППЭ-18МАШ …).
    Forms,
    /// Answer sheets and registration blanks.
    Blanks,
    /// Station logs.
    Journal,
    /// Oral-exam audio.
    Audio,
    /// Technical-readiness test packet; never processed.
    Test,
}

impl PacketKind {
    /// Scheduling priority, lower first.
    pub fn priority(self) -> u8 {
        self as u8
    }

    /// The short code used in packet ids.
    pub fn code(self) -> &'static str {
        match self {
            PacketKind::Forms => "forms",
            PacketKind::Blanks => "blanks",
            PacketKind::Journal => "journal",
            PacketKind::Audio => "audio",
            PacketKind::Test => "test",
        }
    }
}

impl FromStr for PacketKind {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        match s.to_ascii_lowercase().as_str() {
            "forms" => Ok(PacketKind::Forms),
            "blanks" => Ok(PacketKind::Blanks),
            "journal" => Ok(PacketKind::Journal),
            "audio" => Ok(PacketKind::Audio),
            "test" => Ok(PacketKind::Test),
            _ => Err(Error::InvalidId {
                what: "packet kind",
                value: s.to_owned(),
                hint: "one of forms, blanks, journal, audio, test",
            }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_validate() {
        assert!(SiteId::new("0101").is_ok());
        assert!(SiteId::new("").is_err());
        assert!(SiteId::new("01/01").is_err());
        assert!(RoomId::new("0012").is_ok());
        assert!("2026-02-30".parse::<ExamDate>().is_err());
        assert!("2028-02-29".parse::<ExamDate>().is_ok());
        assert!("2026-6-1".parse::<ExamDate>().is_err());
        assert_eq!("2026-06-01".parse::<ExamDate>().unwrap().to_string(), "2026-06-01");
    }

    #[test]
    fn forms_go_first() {
        assert!(PacketKind::Forms.priority() < PacketKind::Blanks.priority());
        assert!(PacketKind::Blanks.priority() < PacketKind::Audio.priority());
    }
}
