//! Token statuses and the transitions the regulations allow (domain.md §4): a token is
//! loaded from the federal certificates, received by the center, bound to a person,
//! its issue statement printed, then issued against the signed statement. Loss,
//! compromise or breakage blocks it for good; a token returned after the exam period
//! goes back to "received by center". Only an issued token may sign.

use serde::{Deserialize, Serialize};

/// Where a token stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub enum TokenStatus {
    /// Загружен: its certificate is in the regional records.
    Loaded,
    /// Получен РЦОИ: the center holds the token.
    ReceivedByCenter,
    /// Привязан: bound to a member or center specialist.
    Bound,
    /// Распечатана ведомость: the issue statement is printed.
    StatementPrinted,
    /// Выдан: handed over against the signed statement; the only status that may sign.
    Issued,
    /// Утерян: lost — blocked.
    Lost,
    /// Скомпрометирован: compromised — blocked.
    Compromised,
    /// Сломан: broken — blocked.
    Broken,
}

impl TokenStatus {
    /// Every status, in lifecycle order.
    pub const ALL: [TokenStatus; 8] = [
        TokenStatus::Loaded,
        TokenStatus::ReceivedByCenter,
        TokenStatus::Bound,
        TokenStatus::StatementPrinted,
        TokenStatus::Issued,
        TokenStatus::Lost,
        TokenStatus::Compromised,
        TokenStatus::Broken,
    ];

    /// A stable machine-readable name (CLI argument, JSON, metrics label).
    pub fn as_str(self) -> &'static str {
        match self {
            TokenStatus::Loaded => "loaded",
            TokenStatus::ReceivedByCenter => "received-by-center",
            TokenStatus::Bound => "bound",
            TokenStatus::StatementPrinted => "statement-printed",
            TokenStatus::Issued => "issued",
            TokenStatus::Lost => "lost",
            TokenStatus::Compromised => "compromised",
            TokenStatus::Broken => "broken",
        }
    }

    /// The regulations' Russian name, as on the center's screens and statements.
    pub fn russian(self) -> &'static str {
        match self {
            TokenStatus::Loaded => "Загружен",
            TokenStatus::ReceivedByCenter => "Получен РЦОИ",
            TokenStatus::Bound => "Привязан",
            TokenStatus::StatementPrinted => "Распечатана ведомость",
            TokenStatus::Issued => "Выдан",
            TokenStatus::Lost => "Утерян",
            TokenStatus::Compromised => "Скомпрометирован",
            TokenStatus::Broken => "Сломан",
        }
    }

    /// Whether the token is blocked for good.
    pub fn is_blocked(self) -> bool {
        matches!(self, TokenStatus::Lost | TokenStatus::Compromised | TokenStatus::Broken)
    }

    /// Whether a packet signed by the token may be accepted.
    pub fn may_sign(self) -> bool {
        self == TokenStatus::Issued
    }

    /// The statuses this one may move to.
    pub fn next(self) -> &'static [TokenStatus] {
        use TokenStatus::*;
        match self {
            Loaded => &[ReceivedByCenter],
            ReceivedByCenter => &[Bound, Lost, Compromised, Broken],
            Bound => &[StatementPrinted, Lost, Compromised, Broken],
            StatementPrinted => &[Issued, Lost, Compromised, Broken],
            // Returned after the exam period; or blocked.
            Issued => &[ReceivedByCenter, Lost, Compromised, Broken],
            Lost | Compromised | Broken => &[],
        }
    }

    /// Checks a transition, naming the allowed ones when it is refused.
    pub fn check_transition(self, to: TokenStatus) -> Result<(), String> {
        if self.next().contains(&to) {
            return Ok(());
        }
        let allowed: Vec<&str> = self.next().iter().map(|s| s.as_str()).collect();
        Err(if allowed.is_empty() {
            format!(
                "a {} token is blocked for good and cannot become {}; issue a new token from the reserve",
                self.as_str(),
                to.as_str()
            )
        } else {
            format!(
                "a {} token cannot become {}; allowed: {}",
                self.as_str(),
                to.as_str(),
                allowed.join(", ")
            )
        })
    }
}

impl std::fmt::Display for TokenStatus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::str::FromStr for TokenStatus {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        TokenStatus::ALL
            .into_iter()
            .find(|t| t.as_str() == s || t.russian() == s)
            .ok_or_else(|| {
                let names: Vec<&str> = TokenStatus::ALL.iter().map(|t| t.as_str()).collect();
                format!("unknown token status {s:?}; one of {}", names.join(", "))
            })
    }
}
