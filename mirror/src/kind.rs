//! Nodes of the mirror and the kinds of record, each with its single owner.

use std::fmt;

use serde::{Deserialize, Serialize};

/// Which side of the mirror a node is on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub enum Side {
    /// A region's records (РИС).
    Region,
    /// The federal system (ФИС).
    Federal,
}

/// A node of the mirror: the federal system or one region's records.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub enum Node {
    /// The federal system (ФИС).
    Federal,
    /// The records of the region with this code (1–99, as the regulations number them).
    Region(u8),
}

impl Node {
    /// Two bytes naming the node in digests: 0 and 0 for the federal node, 1 and the
    /// code for a region.
    pub fn tag(self) -> [u8; 2] {
        match self {
            Node::Federal => [0, 0],
            Node::Region(code) => [1, code],
        }
    }

    /// The side the node is on.
    pub fn side(self) -> Side {
        match self {
            Node::Federal => Side::Federal,
            Node::Region(_) => Side::Region,
        }
    }

    /// Whether `self` and `other` may exchange batches at all: the mirror only runs
    /// between the federal node and a region, never region to region.
    pub fn is_peer_of(self, other: Node) -> bool {
        self.side() != other.side()
    }
}

impl fmt::Display for Node {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Node::Federal => f.write_str("ФИС"),
            Node::Region(code) => write!(f, "РИС {code:02}"),
        }
    }
}

/// A kind of record that the mirror carries. Every kind has exactly one owner
/// ([`RecordKind::owner`]); only the owner writes it and only the owner's batches of it
/// are merged. The order of the variants is part of the wire format and of row digests
/// ([`RecordKind::code`]): a new kind goes at the end.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub enum RecordKind {
    // Region, going up.
    /// Planning data: participants, registrations per subject and day, sites, rooms,
    /// seating.
    Planning,
    /// Results of processing (`002:7451`, `7747`).
    ProcessingResults,
    /// Appeal decisions, procedural and on scores, with the appeal documents' images by
    /// reference to the content-addressed image store (`002:7479`, `7543`).
    AppealDecisions,
    /// Re-checks ordered by the regional authority and their results (`002:7587–7619`).
    RegionalRechecks,
    /// Personal-data corrections (`002:7647`, `7657`).
    PersonalDataCorrections,
    // Federal, coming down.
    /// Centralized checking results and the works sent for a federal re-check
    /// (`002:7455`, `7625`).
    CentralizedChecking,
    /// Scores recomputed after appeals (`002:7481`, `7551`, `7575`).
    RecomputedScores,
    /// Token certificate data (`002:6860`); an import the officers review, never a
    /// replacement of their signed registry.
    TokenCertificates,
    /// The federal center's requests for documents (`002:7483–7493`, `7561–7573`).
    DocumentRequests,
}

impl RecordKind {
    /// Every kind, regional ones first.
    pub const ALL: [RecordKind; 9] = [
        RecordKind::Planning,
        RecordKind::ProcessingResults,
        RecordKind::AppealDecisions,
        RecordKind::RegionalRechecks,
        RecordKind::PersonalDataCorrections,
        RecordKind::CentralizedChecking,
        RecordKind::RecomputedScores,
        RecordKind::TokenCertificates,
        RecordKind::DocumentRequests,
    ];

    /// The side that owns (writes) this kind.
    pub fn owner(self) -> Side {
        match self {
            RecordKind::Planning
            | RecordKind::ProcessingResults
            | RecordKind::AppealDecisions
            | RecordKind::RegionalRechecks
            | RecordKind::PersonalDataCorrections => Side::Region,
            RecordKind::CentralizedChecking
            | RecordKind::RecomputedScores
            | RecordKind::TokenCertificates
            | RecordKind::DocumentRequests => Side::Federal,
        }
    }

    /// The kinds `side` owns.
    pub fn owned_by(side: Side) -> impl Iterator<Item = RecordKind> {
        Self::ALL.into_iter().filter(move |k| k.owner() == side)
    }

    /// The kind's number on the wire and in row digests (its position in [`RecordKind::ALL`]).
    pub fn code(self) -> u8 {
        self as u8
    }

    /// A short stable name, for logs and metrics labels.
    pub fn name(self) -> &'static str {
        match self {
            RecordKind::Planning => "planning",
            RecordKind::ProcessingResults => "processing_results",
            RecordKind::AppealDecisions => "appeal_decisions",
            RecordKind::RegionalRechecks => "regional_rechecks",
            RecordKind::PersonalDataCorrections => "personal_data_corrections",
            RecordKind::CentralizedChecking => "centralized_checking",
            RecordKind::RecomputedScores => "recomputed_scores",
            RecordKind::TokenCertificates => "token_certificates",
            RecordKind::DocumentRequests => "document_requests",
        }
    }
}

impl fmt::Display for RecordKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}
