//! The wire messages. Every message travels as one frame (see `frame`).
//!
//! One QUIC connection per edge session. The first bidirectional stream is the control
//! stream (`Hello` → `Welcome`). Each packet then travels on its own bidirectional stream:
//! `Offer` → `Accept{resume_at}` | `AlreadyHave{receipt}` | `Reject`; after `Accept`,
//! `Data` frames from `resume_at` up to the offered size, then `Done`; the center answers
//! `Receipt` once the envelope is durable, or `Reject`. The edge asks for the center's
//! notices (test-packet verdicts) on a stream of their own: `AskNotices` → `Notices`.
//! It watches the key registry on another: `WatchRegistry{have_version}`, then the center
//! sends `Registry` at once if it holds a newer one, and again each time a newer one is
//! published, for as long as the connection lasts.
//!
//! Bandwidth brokering (`schedule`): the edge reports `SiteStatus` (its backlog, measured
//! goodput and deadline) every few seconds and whenever its backlog changes from empty to
//! not empty; the center answers each re-plan with `Share`, the rate the edge may use until
//! `valid_until_unix_ms` (after which, with no newer share, it falls back to its own
//! configured rate). Both travel on a stream of their own, opened by the edge.
//!
//! Through a relay (school → checking point → municipal office → center) the same
//! exchange runs hop by hop; a relay that holds a packet but has not yet had the center's
//! receipt for it answers `Held` instead of `Receipt`, and the downstream asks again later.
//! A relay also watches the station revocation list upstream, as a station watches the
//! registry (`WatchRevocations{have_number}` → `Revocations`), and enforces it on the
//! stations that connect to it.

use serde::{Deserialize, Serialize};

use crate::schedule::DeadlineRisk;
use crate::{Receipt, SignedNotice};

/// The protocol version this build speaks.
pub const PROTOCOL_VERSION: u16 = 1;

/// What a sender offers: one sealed envelope, identified by packet id and version.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Offer {
    /// The packet id (stable across corrected rescans).
    pub packet_id: String,
    /// The packet version: a corrected rescan is a new version, never an overwrite.
    pub version: u32,
    /// Size of the envelope file in bytes.
    pub size: u64,
    /// The envelope id (crypto/FORMAT.md), which names exactly the envelope's bytes.
    pub digest: [u8; 32],
    /// Scheduling class, lower goes first (forms before blanks).
    pub priority: u8,
    /// When the edge sealed it (the edge's claim, used for latency only).
    pub sealed_at_unix_ms: u64,
    /// The site's deadline for this packet (23:59 local time of the exam day).
    pub deadline_unix_ms: u64,
}

/// Edge → center: what the site still has to send and how fast it goes (see `schedule`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SiteStatus {
    /// Bytes of queued packets not yet acknowledged by the center (sendable now).
    pub backlog_bytes: u64,
    /// Bytes still expected today and not queued yet (participants × m not yet scanned).
    pub expected_bytes: u64,
    /// Goodput measured at the edge (acknowledged bytes per second, EWMA); 0: not measured yet.
    pub goodput_bytes_per_s: u64,
    /// The site's configured link rate (the `v` of T = x·m/v), bytes per second; 0: unknown.
    pub link_bytes_per_s: u64,
    /// The earliest deadline in the backlog (23:59 local time of its exam day); 0: no backlog.
    pub deadline_unix_ms: u64,
    /// When the edge expects to finish at its goodput; 0: unknown.
    pub eta_unix_ms: u64,
    /// The edge's own view of its deadline risk.
    pub risk: DeadlineRisk,
    /// The edge's clock when it measured this.
    pub at_unix_ms: u64,
}

/// Center → edge: the rate the site may send at, from the center's bandwidth plan.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Share {
    /// Bytes per second the edge paces its packets to (with its own configured rate, the lower wins).
    pub rate_bytes_per_s: u64,
    /// After this instant (center clock) the share lapses and the edge uses its own rate.
    pub valid_until_unix_ms: u64,
    /// The center's view of the site's deadline risk, for the operator.
    pub risk: DeadlineRisk,
}

/// Why the center refuses a packet. Machine-readable; `plain_words` is for the operator.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum RejectReason {
    /// No protocol version in common.
    UnsupportedVersion,
    /// The offered size is above the center's limit.
    TooLarge,
    /// The received bytes do not hash to the offered digest.
    DigestMismatch,
    /// The bytes are not a well-formed envelope (bad magic, header, chunking, truncation).
    MalformedEnvelope,
    /// The envelope's signature does not verify.
    BadSignature,
    /// The signer is not an allowed member key.
    UnknownSigner,
    /// The envelope's site is not the station's (or its header's site not its description's).
    SiteMismatch,
    /// The same packet id and version is already stored with different content.
    Conflict,
    /// The peer broke the protocol.
    ProtocolViolation,
    /// The center could not store the packet now; try again later.
    Unavailable,
    /// The signer's token is in the key registry but not Issued (loaded, received by the
    /// center, bound, statement printed): the officers have not finished issuing it.
    TokenNotIssued,
    /// The signer's token is blocked (lost, compromised or broken): the packet is refused
    /// for good, whatever signing time the envelope claims.
    TokenBlocked,
    /// The signer's token is not bound to the packet's site.
    TokenNotForSite,
    /// The signer's token is not bound to the packet's exam day.
    TokenNotForDate,
    /// The signer's token is a center specialist's, which never signs packets.
    NotAMemberToken,
    /// The envelope is sealed only to center keys that are destroyed, past their grace
    /// period, or unknown: nobody could ever open it.
    DeadCenterKey,
    /// The center holds no key registry in force (none yet, or expired): it cannot decide.
    NoRegistry,
    /// The packet came through a relay that is not enrolled to carry the packet's site.
    RelayNotEnrolledForSite,
    /// The envelope is another packet or version than the offer (or a drive's index) names,
    /// or its packet id is not the one its signed description (site, day, exam, room,
    /// kind) derives. Last, so the wire numbers of the older reasons stay.
    PacketMismatch,
    /// Every station certificate of the packet's site is revoked: a drive from it is
    /// refused as its network connections are (the reserve channel has the same checks).
    StationRevoked,
    /// The signed header's packet id is not the one its signed packet reference (site,
    /// day, exam, room, kind) derives: the envelope names two different packets. Last, so
    /// the wire numbers of the older reasons stay.
    PacketRefMismatch,
    /// The center's disk is below its free-space floor (the regulations keep 5 % free):
    /// nothing new is taken until space returns; the packet is kept and sent again.
    DiskFull,
}

impl RejectReason {
    /// Every reason, for exporting metrics series before they first occur.
    pub const ALL: [RejectReason; 22] = [
        RejectReason::UnsupportedVersion,
        RejectReason::TooLarge,
        RejectReason::DigestMismatch,
        RejectReason::MalformedEnvelope,
        RejectReason::BadSignature,
        RejectReason::UnknownSigner,
        RejectReason::SiteMismatch,
        RejectReason::Conflict,
        RejectReason::ProtocolViolation,
        RejectReason::Unavailable,
        RejectReason::TokenNotIssued,
        RejectReason::TokenBlocked,
        RejectReason::TokenNotForSite,
        RejectReason::TokenNotForDate,
        RejectReason::NotAMemberToken,
        RejectReason::DeadCenterKey,
        RejectReason::NoRegistry,
        RejectReason::RelayNotEnrolledForSite,
        RejectReason::PacketMismatch,
        RejectReason::StationRevoked,
        RejectReason::PacketRefMismatch,
        RejectReason::DiskFull,
    ];

    /// A stable machine-readable name, used as a metrics label.
    pub fn as_str(self) -> &'static str {
        match self {
            RejectReason::UnsupportedVersion => "unsupported_version",
            RejectReason::TooLarge => "too_large",
            RejectReason::DigestMismatch => "digest_mismatch",
            RejectReason::MalformedEnvelope => "malformed_envelope",
            RejectReason::BadSignature => "bad_signature",
            RejectReason::UnknownSigner => "unknown_signer",
            RejectReason::SiteMismatch => "site_mismatch",
            RejectReason::Conflict => "conflict",
            RejectReason::ProtocolViolation => "protocol_violation",
            RejectReason::Unavailable => "unavailable",
            RejectReason::TokenNotIssued => "token_not_issued",
            RejectReason::TokenBlocked => "token_blocked",
            RejectReason::TokenNotForSite => "token_not_for_site",
            RejectReason::TokenNotForDate => "token_not_for_date",
            RejectReason::NotAMemberToken => "not_a_member_token",
            RejectReason::DeadCenterKey => "dead_center_key",
            RejectReason::NoRegistry => "no_registry",
            RejectReason::RelayNotEnrolledForSite => "relay_not_enrolled_for_site",
            RejectReason::PacketMismatch => "packet_mismatch",
            RejectReason::StationRevoked => "station_revoked",
            RejectReason::PacketRefMismatch => "packet_ref_mismatch",
            RejectReason::DiskFull => "disk_full",
        }
    }

    /// What the operator is told, in plain words, with what to do.
    pub fn plain_words(self) -> &'static str {
        match self {
            RejectReason::UnsupportedVersion => {
                "the center runs an incompatible konvert version; update the station software"
            }
            RejectReason::TooLarge => "the packet is larger than the center accepts; split the room or call the center",
            RejectReason::DigestMismatch => "the packet was damaged in transit; it will be sent again",
            RejectReason::MalformedEnvelope => "the sealed file is damaged or truncated; seal the room again",
            RejectReason::BadSignature => {
                "the member's signature does not verify; the file was altered — seal the room again"
            }
            RejectReason::UnknownSigner => {
                "the member token that signed is not allowed at the center; call the center's security officer"
            }
            RejectReason::SiteMismatch => {
                "the packet belongs to another site than this station's; check the site configuration"
            }
            RejectReason::Conflict => {
                "the center already holds a different packet with this id and version; seal a new version"
            }
            RejectReason::ProtocolViolation => {
                "the station and the center disagree on the protocol; update the station software"
            }
            RejectReason::Unavailable => "the center cannot store packets right now; it will be retried",
            RejectReason::DiskFull => "the center's disk is nearly full; the packet is kept and will be sent again",
            RejectReason::TokenNotIssued => {
                "the member's token is not yet issued in the key registry; call the center's security officer — \
                 the packet is kept and sent again once the token is issued"
            }
            RejectReason::TokenBlocked => {
                "the member's token is blocked (lost, compromised or broken); the packet is refused for good — \
                 seal the room again with another member's token"
            }
            RejectReason::TokenNotForSite => {
                "the member's token is not bound to this site; call the center's security officer — \
                 the packet is kept and sent again once the token is bound"
            }
            RejectReason::TokenNotForDate => {
                "the member's token is not bound to this exam day; call the center's security officer — \
                 the packet is kept and sent again once the token is bound"
            }
            RejectReason::NotAMemberToken => {
                "the packet was signed with a center specialist's token, not a member's; seal the room again \
                 with the member's token"
            }
            RejectReason::DeadCenterKey => {
                "the packet is sealed to a center key that is no longer in use, so nobody could open it; \
                 the station takes the new key from the registry — seal the room again"
            }
            RejectReason::NoRegistry => {
                "the center holds no key registry in force; the packet is kept and sent again — \
                 the center's security officers must publish the registry"
            }
            RejectReason::RelayNotEnrolledForSite => {
                "the relay this station sends through is not enrolled to carry this site; call the center's \
                 security officer to enroll the relay for the site — the packet is kept and sent again"
            }
            RejectReason::PacketMismatch => {
                "the sealed file is not the packet it was offered as (another packet id or version); seal the \
                 room again with this station's software"
            }
            RejectReason::PacketRefMismatch => {
                "the sealed file's packet id is not the one its signed packet reference (site, day, exam, room, \
                 kind) names, so the center cannot tell which packet it is; it is refused for good — seal the \
                 room again with this station's software and tell the center's security officer"
            }
            RejectReason::StationRevoked => {
                "every station certificate of this site is revoked, so the center takes nothing from it, by \
                 network or by drive; the site keeps the packets — once the officers enroll a new station \
                 for the site, send or import them again"
            }
        }
    }

    /// Whether sending the same bytes again can succeed: after a while, or once the
    /// officers publish a registry that issues or binds the token.
    pub fn is_retryable(self) -> bool {
        matches!(
            self,
            RejectReason::DigestMismatch
                | RejectReason::Unavailable
                | RejectReason::TokenNotIssued
                | RejectReason::TokenNotForSite
                | RejectReason::TokenNotForDate
                | RejectReason::UnknownSigner
                | RejectReason::NoRegistry
                | RejectReason::RelayNotEnrolledForSite
                | RejectReason::DiskFull
        )
    }
}

/// One wire message.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Message {
    /// Edge → center, first on the control stream.
    Hello {
        /// Lowest protocol version the edge speaks.
        min_version: u16,
        /// Highest protocol version the edge speaks.
        max_version: u16,
        /// The site the edge speaks for (must match its station certificate).
        site: String,
        /// Software name and version, for the center's logs.
        agent: String,
    },
    /// Center → edge: the version chosen.
    Welcome {
        /// The protocol version both use.
        version: u16,
        /// The center's name.
        center: String,
    },
    /// Edge → center: a packet to send.
    Offer(Offer),
    /// Center → edge: send from this byte offset.
    Accept {
        /// The number of bytes the center already holds durably.
        resume_at: u64,
    },
    /// Center → edge: already stored; here is the original receipt.
    AlreadyHave {
        /// The receipt issued when the packet was first stored.
        receipt: Receipt,
    },
    /// Center → edge: refused.
    Reject {
        /// Why.
        reason: RejectReason,
        /// Detail for logs (never secrets).
        detail: String,
    },
    /// Edge → center: envelope bytes at an offset.
    Data {
        /// Offset of the first byte.
        offset: u64,
        /// The bytes.
        #[serde(with = "serde_bytes")]
        bytes: Vec<u8>,
    },
    /// Edge → center: all bytes sent.
    Done,
    /// Center → edge: stored durably.
    Receipt {
        /// The signed receipt.
        receipt: Receipt,
    },
    /// Edge → center, first on its own stream: what has the center to tell this site?
    AskNotices,
    /// Center → edge: the newest notices for the station's site (at most `MAX_NOTICES`).
    Notices {
        /// Each signed by the center's receipt key.
        notices: Vec<SignedNotice>,
    },
    /// Edge → center, first on its own stream: send me every key registry newer than this.
    WatchRegistry {
        /// The highest registry version the station trusts (0: none).
        have_version: u64,
    },
    /// Center → edge: a key registry as the officers signed it (`SignedRegistry` bytes);
    /// the edge trusts it only by the officers' signatures, never by the center's word.
    Registry {
        /// The signed registry.
        #[serde(with = "serde_bytes")]
        signed: Vec<u8>,
    },
    /// Edge → center, on its bandwidth stream: backlog, goodput and deadline.
    SiteStatus(SiteStatus),
    /// Center → edge, on the bandwidth stream: the rate to pace to.
    Share(Share),
    /// Relay → downstream, instead of `Receipt` (after `Done`) or in answer to an `Offer`:
    /// the relay holds the packet durably but has no receipt from the center for it yet.
    /// The downstream keeps the packet pending and offers it again later; once the center's
    /// receipt has come back through the relay, the offer is answered `AlreadyHave` with it.
    Held {
        /// The relay's name (its station id).
        relay: String,
        /// Where the packet stands upstream, for the operator.
        detail: String,
    },
    /// Relay → center (or the next relay), first on its own stream: send me every station
    /// revocation list newer than this, as it comes into force.
    WatchRevocations {
        /// The CRL number of the list the relay holds (0: none).
        have_number: u64,
    },
    /// Center → relay: the station revocation list in force (DER, signed by the station
    /// CA); the relay checks the signature and enforces it on its own stations.
    Revocations {
        /// The list.
        #[serde(with = "serde_bytes")]
        crl: Vec<u8>,
    },
}

impl Message {
    /// The message's kind, for error messages.
    pub fn kind(&self) -> &'static str {
        match self {
            Message::Hello { .. } => "Hello",
            Message::Welcome { .. } => "Welcome",
            Message::Offer(_) => "Offer",
            Message::Accept { .. } => "Accept",
            Message::AlreadyHave { .. } => "AlreadyHave",
            Message::Reject { .. } => "Reject",
            Message::Data { .. } => "Data",
            Message::Done => "Done",
            Message::Receipt { .. } => "Receipt",
            Message::AskNotices => "AskNotices",
            Message::Notices { .. } => "Notices",
            Message::WatchRegistry { .. } => "WatchRegistry",
            Message::Registry { .. } => "Registry",
            Message::SiteStatus(_) => "SiteStatus",
            Message::Share(_) => "Share",
            Message::Held { .. } => "Held",
            Message::WatchRevocations { .. } => "WatchRevocations",
            Message::Revocations { .. } => "Revocations",
        }
    }
}
