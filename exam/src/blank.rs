//! What a site scans: the blank kinds a participant writes on, the machine-readable forms
//! that are always scanned (domain.md §1, §5), the page template of each — page size,
//! where its barcode is printed and in which symbology — and the blank identifiers the
//! barcodes carry.
//!
//! The regulations do not fix symbologies (domain.md, "Open"). konvert's choice: blanks
//! carry a 13-digit Code 128 identifier in a zone at the top right; forms carry a QR code
//! at the top left with the form code, site, room and date.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use crate::{Error, ExamDate, ExamKind, Result, RoomId, SiteId};

/// A blank a participant writes on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub enum BlankKind {
    /// Бланк регистрации.
    Registration,
    /// Бланк ответов № 1 (machine-read answers).
    Answer1,
    /// Бланк ответов № 2, лист 1.
    Answer2Sheet1,
    /// Бланк ответов № 2, лист 2.
    Answer2Sheet2,
    /// ДБО — additional answer blank.
    Additional,
    /// Бланк записи of the final essay.
    EssayWriting,
}

impl BlankKind {
    /// Every blank kind.
    pub const ALL: [BlankKind; 6] = [
        BlankKind::Registration,
        BlankKind::Answer1,
        BlankKind::Answer2Sheet1,
        BlankKind::Answer2Sheet2,
        BlankKind::Additional,
        BlankKind::EssayWriting,
    ];

    /// The two-digit code that opens this kind's identifiers.
    pub fn code(self) -> u8 {
        match self {
            BlankKind::Registration => 10,
            BlankKind::Answer1 => 11,
            BlankKind::Answer2Sheet1 => 12,
            BlankKind::Answer2Sheet2 => 13,
            BlankKind::Additional => 14,
            BlankKind::EssayWriting => 21,
        }
    }

    /// The kind for an identifier's two-digit code.
    pub fn from_code(code: u8) -> Option<BlankKind> {
        BlankKind::ALL.into_iter().find(|k| k.code() == code)
    }

    /// The Russian name, as printed on the blank.
    pub fn title(self) -> &'static str {
        match self {
            BlankKind::Registration => "Бланк регистрации",
            BlankKind::Answer1 => "Бланк ответов № 1",
            BlankKind::Answer2Sheet1 => "Бланк ответов № 2 лист 1",
            BlankKind::Answer2Sheet2 => "Бланк ответов № 2 лист 2",
            BlankKind::Additional => "Дополнительный бланк ответов",
            BlankKind::EssayWriting => "Бланк записи",
        }
    }

    /// The page template.
    pub fn template(self) -> PageTemplate {
        PageTemplate {
            page: A4,
            barcode_zone: BLANK_BARCODE_ZONE,
            symbology: Symbology::Code128,
        }
    }
}

/// A machine-readable or paper form of the site (ППЭ-…).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub enum Form {
    /// ППЭ-12-04МАШ: participants per room (blank accounting).
    Ppe12_04Mash,
    /// ППЭ-13-02МАШ: room summary of participants and materials; needed first at the center.
    Ppe13_02Mash,
    /// ППЭ-13-03-У МАШ: the same for the oral part of foreign languages.
    Ppe13_03UMash,
    /// ППЭ-18МАШ: public observer's act.
    Ppe18Mash,
    /// ППЭ-05-02: protocol of the exam in the room.
    Ppe05_02,
    /// ППЭ-12-02: corrections of participants' personal data.
    Ppe12_02,
    /// ППЭ-14-01: act of hand-over of materials.
    Ppe14_01,
    /// ППЭ-21: act of removal from the exam.
    Ppe21,
    /// ППЭ-22: act of early finish for objective reasons.
    Ppe22,
}

impl Form {
    /// Every form.
    pub const ALL: [Form; 9] = [
        Form::Ppe12_04Mash,
        Form::Ppe13_02Mash,
        Form::Ppe13_03UMash,
        Form::Ppe18Mash,
        Form::Ppe05_02,
        Form::Ppe12_02,
        Form::Ppe14_01,
        Form::Ppe21,
        Form::Ppe22,
    ];

    /// The form's code as printed, which its QR code starts with.
    pub fn code(self) -> &'static str {
        match self {
            Form::Ppe12_04Mash => "ППЭ-12-04МАШ",
            Form::Ppe13_02Mash => "ППЭ-13-02МАШ",
            Form::Ppe13_03UMash => "ППЭ-13-03-У МАШ",
            Form::Ppe18Mash => "ППЭ-18МАШ",
            Form::Ppe05_02 => "ППЭ-05-02",
            Form::Ppe12_02 => "ППЭ-12-02",
            Form::Ppe14_01 => "ППЭ-14-01",
            Form::Ppe21 => "ППЭ-21",
            Form::Ppe22 => "ППЭ-22",
        }
    }

    /// Machine-readable forms are always scanned (domain.md §5, `002:7287`).
    pub fn always_scanned(self) -> bool {
        matches!(
            self,
            Form::Ppe12_04Mash | Form::Ppe13_02Mash | Form::Ppe13_03UMash | Form::Ppe18Mash
        )
    }

    /// The page template.
    pub fn template(self) -> PageTemplate {
        PageTemplate {
            page: A4,
            barcode_zone: FORM_BARCODE_ZONE,
            symbology: Symbology::Qr,
        }
    }
}

/// A barcode symbology konvert prints and reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Symbology {
    /// Code 128 (linear): blank identifiers.
    Code128,
    /// QR code: forms.
    Qr,
}

/// A rectangle on the page, millimetres from the top-left corner.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct ZoneMm {
    /// Left edge.
    pub x: f32,
    /// Top edge.
    pub y: f32,
    /// Width.
    pub width: f32,
    /// Height.
    pub height: f32,
}

impl ZoneMm {
    /// The zone in pixels at `dpi`: (x, y, width, height), clamped to non-negative.
    pub fn to_pixels(self, dpi: f32) -> (u32, u32, u32, u32) {
        let px = |mm: f32| (mm * dpi / 25.4).round().max(0.0) as u32;
        (px(self.x), px(self.y), px(self.width), px(self.height))
    }
}

/// A page size in millimetres.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct PageMm {
    /// Width.
    pub width: f32,
    /// Height.
    pub height: f32,
}

/// A4 portrait.
pub const A4: PageMm = PageMm {
    width: 210.0,
    height: 297.0,
};
const BLANK_BARCODE_ZONE: ZoneMm = ZoneMm {
    x: 115.0,
    y: 8.0,
    width: 85.0,
    height: 24.0,
};
const FORM_BARCODE_ZONE: ZoneMm = ZoneMm {
    x: 10.0,
    y: 8.0,
    width: 45.0,
    height: 45.0,
};

/// How a page of a kind is laid out: where recognition looks for its barcode.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct PageTemplate {
    /// Page size.
    pub page: PageMm,
    /// Where the barcode is printed.
    pub barcode_zone: ZoneMm,
    /// In which symbology.
    pub symbology: Symbology,
}

/// A mark box printed on the registration blank, crossed by the room's organizer when a
/// participant leaves before the end (R16, `002:7006–7012`). The boxes' frames are printed
/// in black so that recognition can find them on a skewed page; their captions are in
/// dropout ink, which the scanner's threshold removes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub enum MarkBox {
    /// «Удалён с экзамена»: removed for breaking the rules (act ППЭ-21).
    Removed,
    /// «Не завершил экзамен по уважительной причине»: early finish (act ППЭ-22).
    EarlyFinish,
}

impl MarkBox {
    /// Both boxes.
    pub const ALL: [MarkBox; 2] = [MarkBox::Removed, MarkBox::EarlyFinish];

    /// The caption printed beside the box.
    pub fn title(self) -> &'static str {
        match self {
            MarkBox::Removed => "Удалён",
            MarkBox::EarlyFinish => "Не завершил по уважительной причине",
        }
    }

    /// Where the box's outer frame is on the registration blank. The top-left corner of a
    /// blank is free (forms put their QR code there, blanks put theirs top right), and
    /// each box sits at least 7 mm from any other print, so a 3° skew cannot bring
    /// another box, a corner marker or the header into the window searched for it.
    pub fn zone(self) -> ZoneMm {
        let y = match self {
            MarkBox::Removed => 15.0,
            MarkBox::EarlyFinish => 33.0,
        };
        ZoneMm {
            x: 26.0,
            y,
            width: MARK_BOX_MM,
            height: MARK_BOX_MM,
        }
    }
}

/// Side of a mark box, millimetres.
pub const MARK_BOX_MM: f32 = 8.0;
/// Thickness of a mark box's printed frame, millimetres.
pub const MARK_FRAME_MM: f32 = 0.5;

/// The answer area of answer blank 2 sheets, additional blanks and essay writing blanks:
/// the lined cells the participant writes in (the grid itself is printed in dropout ink).
pub const ANSWER_AREA: ZoneMm = ZoneMm {
    x: 15.0,
    y: 62.0,
    width: 180.0,
    height: 220.0,
};

impl BlankKind {
    /// Whether the page is a sheet of free-form answers (answer blank 2, additional
    /// blanks, essay writing blanks), whose answer area can be measured for handwriting.
    pub fn has_written_answers(self) -> bool {
        matches!(
            self,
            BlankKind::Answer2Sheet1 | BlankKind::Answer2Sheet2 | BlankKind::Additional | BlankKind::EssayWriting
        )
    }

    /// Whether `002:7371–7373` makes the center flag the page when it looks empty:
    /// answer blank 2 sheets and additional blanks; not essay writing blanks, which are
    /// part of the full set empty or not (`000:14`).
    pub fn flagged_when_empty(self) -> bool {
        self.has_written_answers() && self != BlankKind::EssayWriting
    }
}

/// A blank's identifier: 13 digits, the kind's two-digit code then an 11-digit serial.
///
/// The serial is the participant's individual kit number (10 digits) followed by the
/// sheet number within the kit (0–9), so every blank of a kit — registration, answers,
/// essay sheets, additional blanks — names the same participant through the seating plan.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct BlankId {
    /// The kind.
    pub kind: BlankKind,
    /// The serial, < 10^11.
    pub serial: u64,
}

impl BlankId {
    /// Largest serial + 1.
    pub const SERIAL_LIMIT: u64 = 100_000_000_000;

    /// A blank id; the serial must fit 11 digits.
    pub fn new(kind: BlankKind, serial: u64) -> Result<Self> {
        if serial >= Self::SERIAL_LIMIT {
            return Err(Error::InvalidId {
                what: "blank serial",
                value: serial.to_string(),
                hint: "at most 11 digits",
            });
        }
        Ok(BlankId { kind, serial })
    }
}

impl BlankId {
    /// Largest kit number + 1.
    pub const KIT_LIMIT: u64 = Self::SERIAL_LIMIT / 10;

    /// The blank of `kind`, sheet `sheet` (0–9), in individual kit `kit`.
    pub fn for_kit(kind: BlankKind, kit: u64, sheet: u8) -> Result<Self> {
        if kit >= Self::KIT_LIMIT || sheet > 9 {
            return Err(Error::InvalidId {
                what: "kit number",
                value: format!("{kit} sheet {sheet}"),
                hint: "a kit number of at most 10 digits and a sheet 0–9",
            });
        }
        Ok(BlankId {
            kind,
            serial: kit * 10 + u64::from(sheet),
        })
    }

    /// The individual kit the blank belongs to.
    pub fn kit(&self) -> u64 {
        self.serial / 10
    }

    /// The sheet number within the kit.
    pub fn sheet(&self) -> u8 {
        (self.serial % 10) as u8
    }
}

impl fmt::Display for BlankId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:02}{:011}", self.kind.code(), self.serial)
    }
}

impl FromStr for BlankId {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        let bad = || Error::InvalidId {
            what: "blank identifier",
            value: s.to_owned(),
            hint: "13 digits: a known kind code (10–14, 21) and an 11-digit serial",
        };
        if s.len() != 13 || !s.bytes().all(|b| b.is_ascii_digit()) {
            return Err(bad());
        }
        let code: u8 = s[..2].parse().map_err(|_| bad())?;
        let kind = BlankKind::from_code(code).ok_or_else(bad)?;
        let serial: u64 = s[2..].parse().map_err(|_| bad())?;
        Ok(BlankId { kind, serial })
    }
}

/// What a form's QR code says: which form, for which site, room and day, as the text
/// `FORM|SITE|ROOM|YYYY-MM-DD` (e.g. `ППЭ-13-02МАШ|0101|0012|2026-06-01`). The text is
/// UTF-8, or in the character set the code's ECI declares; a code without an ECI whose
/// bytes are not a form code in UTF-8 is also read as Shift_JIS, windows-1251, KOI8-R,
/// CP866 and ISO-8859-5 (encoders that write Cyrillic so without declaring it).
///
/// ППЭ-13-02МАШ, ППЭ-13-03-У МАШ, ППЭ-21 and ППЭ-22 may carry a fifth field with their
/// contents ([`crate::FormQr`]); this identity is the first four, and parses only them.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct FormId {
    /// The form.
    pub form: Form,
    /// The site.
    pub site: SiteId,
    /// The room.
    pub room: RoomId,
    /// The exam day.
    pub date: ExamDate,
}

impl fmt::Display for FormId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}|{}|{}|{}", self.form.code(), self.site, self.room, self.date)
    }
}

impl FromStr for FormId {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        let bad = || Error::InvalidId {
            what: "form code",
            value: s.to_owned(),
            hint: "FORM|SITE|ROOM|YYYY-MM-DD, e.g. ППЭ-13-02МАШ|0101|0012|2026-06-01",
        };
        let mut parts = s.split('|');
        let (Some(form), Some(site), Some(room), Some(date), None) =
            (parts.next(), parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return Err(bad());
        };
        let form = Form::ALL.into_iter().find(|f| f.code() == form).ok_or_else(bad)?;
        Ok(FormId {
            form,
            site: site.parse()?,
            room: room.parse()?,
            date: date.parse()?,
        })
    }
}

/// The blanks a participant's full set holds, empty ones included (domain.md §1; for the
/// essay `000:6`: one registration blank and four writing blanks).
pub fn full_set(exam: ExamKind) -> &'static [(BlankKind, u8)] {
    match exam {
        ExamKind::Ege => &[
            (BlankKind::Registration, 1),
            (BlankKind::Answer1, 1),
            (BlankKind::Answer2Sheet1, 1),
            (BlankKind::Answer2Sheet2, 1),
        ],
        ExamKind::Oge | ExamKind::Gve => &[
            (BlankKind::Registration, 1),
            (BlankKind::Answer1, 1),
            (BlankKind::Answer2Sheet1, 1),
        ],
        ExamKind::Essay => &[(BlankKind::Registration, 1), (BlankKind::EssayWriting, 4)],
    }
}

#[cfg(test)]
#[path = "blank_tests.rs"]
mod tests;
