//! The center's policy for incoming packets: dedup against the inbox, stage the bytes,
//! then verify before storing and signing the receipt: the signature, the header against
//! the offer and the station's site, and — by the key registry in force at the moment the
//! last byte arrives, never by the signing time the envelope claims — that the signer's
//! token is Issued and bound to the packet's site and exam day, and that the envelope is
//! sealed to a center key that still opens.
//!
//! Packets come by one of two channels, judged alike: a station over the network (its site
//! proven by its certificate), or a reserve-channel drive carried to the center (no
//! certificate: the site is the envelope's own, and the signer's token must be bound to
//! it; keys are judged by the time the drive is imported).

use std::collections::HashSet;
use std::sync::{Arc, Mutex};
use std::time::{SystemTime, UNIX_EPOCH};

use konvert_crypto::audit::{AuditAction, AuditLog};
use konvert_crypto::registry::{CenterKeyState, Registry, SignRefusal};
use konvert_crypto::{EnvelopeVerifier, VerifiedEnvelope};
use konvert_crypto::{KeyId, SigningKey};
use konvert_exam::agreement::{self, Claim, Disagreement, Sealed};
use konvert_exam::{PacketKind, PacketRef};
use konvert_replication::drive::{self, DriveDir, DriveFile};
use konvert_replication::driver::{
    Admission, BrokerDesk, Completion, Intake, RegistryFeed, RevocationFeed, StationSession,
};
use konvert_replication::inbox::Staged;
use konvert_replication::reserve;
use konvert_replication::{Inbox, InboxRecord, Offer, Receipt, ReceiptBody, RejectReason, SignedNotice};
use serde::{Deserialize, Serialize};
use tracing::{info, warn};

use crate::config::CenterConfig;
use crate::metrics::Metrics;
use crate::plans::PlanDesk;
use crate::registry::CenterRegistry;
use crate::site_watch::SiteWatch;
use crate::stations::RelayIndex;
use crate::test_packets::{TestDesk, TestPacketRecord};
use crate::Result;

/// One packet being received: the staging file, and the envelope verified as it arrives
/// (Data comes in order from offset 0), so completing needs no second read.
pub struct Staging {
    staged: Staged,
    key: (String, u32),
    verifier: EnvelopeVerifier,
}

/// Where a packet comes from.
#[derive(Debug, Clone, Copy)]
enum Channel<'a> {
    /// A station over the network, its site proven by its certificate.
    Station(&'a StationSession),
    /// A reserve-channel drive, imported by this operator.
    Drive {
        /// Who imported it (as recorded in the audit log).
        operator: &'a str,
    },
}

impl Channel<'_> {
    fn actor(&self) -> String {
        match self {
            Channel::Station(s) => format!("station {}", s.site),
            Channel::Drive { operator } => format!("reserve drive, imported by {operator}"),
        }
    }
}

/// What became of one envelope carried on a drive.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Carried {
    /// Verified, stored, and receipted now.
    Stored(Receipt),
    /// The center already held it: its original receipt.
    AlreadyHeld(Receipt),
    /// Refused, exactly as the network path would refuse it.
    Refused {
        /// Why.
        reason: RejectReason,
        /// The detail.
        detail: String,
    },
    /// The file could not be read from the drive; nothing changed.
    Unreadable {
        /// What went wrong.
        detail: String,
    },
}

/// The center's [`Intake`].
pub struct CenterIntake {
    inbox: Arc<Inbox>,
    registry: Arc<CenterRegistry>,
    receipt_key: SigningKey,
    metrics: Metrics,
    max_packet_bytes: u64,
    in_flight: Mutex<HashSet<(String, u32)>>,
    desk: TestDesk,
    answers: crate::answers::AnswerDesk,
    audit: Arc<AuditLog>,
    relays: RelayIndex,
    broker: Option<Arc<BrokerDesk>>,
    revocations: Option<RevocationFeed>,
    /// For the sites' time zones, which decide whether a packet is late.
    config: CenterConfig,
    /// The exam days' plans: a planned site's time zone comes first.
    plans: PlanDesk,
    /// Told of every packet stored, to watch the sites the plans expect.
    site_watch: Option<Arc<SiteWatch>>,
    /// The free-space floor of the data folder: below it nothing new is taken.
    disk: konvert_replication::disk_floor::DiskFloor,
}

/// Milliseconds since the Unix epoch by the center's clock (0 if the clock is before 1970).
pub(crate) fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

impl CenterIntake {
    /// Builds the intake that enforces `registry`.
    pub fn new(
        cfg: &CenterConfig,
        inbox: Arc<Inbox>,
        registry: Arc<CenterRegistry>,
        receipt_key: SigningKey,
        metrics: Metrics,
        audit: Arc<AuditLog>,
    ) -> Result<Self> {
        Ok(CenterIntake {
            audit,
            inbox,
            registry,
            receipt_key,
            max_packet_bytes: cfg.max_packet_bytes,
            in_flight: Mutex::new(HashSet::new()),
            desk: TestDesk::open(&cfg.data_dir)?,
            answers: crate::answers::AnswerDesk::open(&cfg.data_dir)?,
            relays: RelayIndex::new(cfg.station_index()),
            broker: None,
            revocations: None,
            config: cfg.clone(),
            plans: PlanDesk::open(&cfg.data_dir)?,
            site_watch: None,
            disk: konvert_replication::disk_floor::DiskFloor::new(
                &cfg.data_dir,
                "center",
                cfg.min_free_percent,
                &metrics.disk,
            ),
            metrics,
        })
    }

    /// Passes the station revocation list in force on to relays from `feed`.
    pub fn with_revocations(mut self, feed: RevocationFeed) -> Self {
        self.revocations = Some(feed);
        self
    }

    /// Tells `watch` of every packet stored.
    pub fn with_site_watch(mut self, watch: Arc<SiteWatch>) -> Self {
        self.site_watch = Some(watch);
        self
    }

    /// Splits the center's ingress among the connected sites with `desk`.
    pub fn with_broker(mut self, desk: Arc<BrokerDesk>) -> Self {
        self.broker = Some(desk);
        self
    }

    /// Records a decision that is not about one packet (a drive's import and the
    /// operator's statement) in the audit log.
    pub(crate) fn note(&self, actor: &str, action: AuditAction, subject: &str, detail: &str) {
        if let Err(e) = self.audit.append(actor, action, subject, detail) {
            tracing::error!("the audit log cannot be written: {e}");
        }
    }

    fn release(&self, key: &(String, u32)) {
        if let Ok(mut set) = self.in_flight.lock() {
            set.remove(key);
        }
    }

    fn refuse(
        &self,
        channel: Channel<'_>,
        offer: &Offer,
        reason: RejectReason,
        detail: String,
    ) -> (RejectReason, String) {
        self.metrics
            .packets_rejected
            .with_label_values(&[reason.as_str()])
            .inc();
        warn!(reason = reason.as_str(), "packet refused: {detail}");
        self.record(
            channel,
            AuditAction::PacketReject,
            offer,
            &format!("{}: {detail}", reason.as_str()),
        );
        (reason, detail)
    }

    /// Every decision goes into the audit log; a log that cannot be written is loud in
    /// the center's log but does not stop the exam day's intake.
    fn record(&self, channel: Channel<'_>, action: AuditAction, offer: &Offer, detail: &str) {
        let subject = format!("{} v{} {}", offer.packet_id, offer.version, hex::encode(offer.digest));
        if let Err(e) = self.audit.append(&channel.actor(), action, &subject, detail) {
            tracing::error!("the audit log cannot be written: {e}");
        }
    }

    fn verify(
        &self,
        channel: Channel<'_>,
        offer: &Offer,
        verifier: EnvelopeVerifier,
        now_unix_ms: u64,
    ) -> std::result::Result<(VerifiedEnvelope, PacketRef), (RejectReason, String)> {
        let registry = self.registry.in_force(now_unix_ms).ok_or((
            RejectReason::NoRegistry,
            "the center holds no key registry in force (none taken yet, or it expired)".to_owned(),
        ))?;
        let trusted = |id: &KeyId| registry.token(id).map(|t| t.public);
        let verified = verifier.finish(&trusted).map_err(|e| {
            let reason = match e {
                konvert_crypto::Error::UnknownSigner(_) => RejectReason::UnknownSigner,
                konvert_crypto::Error::BadSignature => RejectReason::BadSignature,
                konvert_crypto::Error::Io(_) => RejectReason::Unavailable,
                _ => RejectReason::MalformedEnvelope,
            };
            (reason, e.to_string())
        })?;
        let h = verified.header();
        let packet = agreement::agree(
            &offer_claim(offer),
            &sealed(h, verified.digest(), verified.envelope_bytes()),
        )
        .map_err(|d| (refusal_for(&d), d.to_string()))?;
        match channel {
            // A site's station delivers its own site's packets; a relay those of the sites
            // it is enrolled to carry (read from the station index, which may change while
            // the center runs).
            Channel::Station(station) => {
                // The header's site and the description's agree (checked above).
                let site = packet.site.as_str();
                if site != station.site {
                    match self.relays.carried_by(&station.site) {
                        Some(sites) if sites.iter().any(|s| s.eq_ignore_ascii_case(site)) => {}
                        Some(_) => {
                            return Err((
                                RejectReason::RelayNotEnrolledForSite,
                                format!(
                                    "the envelope is for site {site}, which relay {} is not enrolled to carry",
                                    station.site
                                ),
                            ))
                        }
                        None => {
                            return Err((
                                RejectReason::SiteMismatch,
                                format!(
                                    "the envelope is for site {site}, but the station is enrolled for site {}",
                                    station.site
                                ),
                            ))
                        }
                    }
                }
            }
            // No certificate on a drive: the signed header names the site (agreeing with
            // the description, checked above), and the signer's token must be bound to it.
            Channel::Drive { .. } => {
                // The reserve channel has the network's checks (R13): a site whose every
                // station is revoked delivers by drive no more than by network.
                if let Some(why) = self.relays.site_cut_off(&h.sender_site) {
                    return Err((RejectReason::StationRevoked, why));
                }
            }
        }
        check_signer(&registry, &verified.signer().key_id(), &packet)?;
        check_sealed_to_live_key(&registry, h, now_unix_ms)?;
        Ok((verified, packet))
    }
}

/// The registry's word on the signer, at the moment of receipt.
fn check_signer(
    registry: &Registry,
    signer: &KeyId,
    packet: &PacketRef,
) -> std::result::Result<(), (RejectReason, String)> {
    let date = packet.date.to_string();
    registry
        .may_sign(signer, packet.site.as_str(), &date)
        .map(|_| ())
        .map_err(|refusal| {
            let who = registry
                .token(signer)
                .map(|t| format!("token {} ({})", t.token_id, t.person))
                .unwrap_or_else(|| format!("key {signer}"));
            let v = registry.body().version;
            match refusal {
                SignRefusal::UnknownToken => (
                    RejectReason::UnknownSigner,
                    format!("{who} is not in key registry v{v}"),
                ),
                SignRefusal::NotIssued(status) if status.is_blocked() => (
                    RejectReason::TokenBlocked,
                    format!("{who} is {} in key registry v{v}", status.as_str()),
                ),
                SignRefusal::NotIssued(status) => (
                    RejectReason::TokenNotIssued,
                    format!("{who} is {} (not issued) in key registry v{v}", status.as_str()),
                ),
                SignRefusal::NotAMember => (
                    RejectReason::NotAMemberToken,
                    format!("{who} is a center specialist's token"),
                ),
                SignRefusal::WrongSite => (
                    RejectReason::TokenNotForSite,
                    format!("{who} is not bound to site {} in key registry v{v}", packet.site),
                ),
                SignRefusal::WrongDate => (
                    RejectReason::TokenNotForDate,
                    format!("{who} is not bound to exam day {date} in key registry v{v}"),
                ),
            }
        })
}

/// An envelope only helps if a center key that still opens can open it.
fn check_sealed_to_live_key(
    registry: &Registry,
    header: &konvert_crypto::envelope::EnvelopeHeader,
    now_unix_ms: u64,
) -> std::result::Result<(), (RejectReason, String)> {
    let keys = &registry.body().center_keys;
    let live = header.recipients.iter().any(|w| {
        keys.iter()
            .any(|k| k.key.key_id() == w.recipient && registry.body().center_key_opens(&k.key, now_unix_ms))
    });
    if live {
        return Ok(());
    }
    let state = header
        .recipients
        .iter()
        .find_map(|w| keys.iter().find(|k| k.key.key_id() == w.recipient))
        .map(|k| match k.state {
            CenterKeyState::Destroyed { .. } => "destroyed",
            CenterKeyState::Retiring { .. } => "past its grace period",
            CenterKeyState::Active => "active",
        })
        .unwrap_or("not in the registry");
    Err((
        RejectReason::DeadCenterKey,
        format!(
            "the envelope is sealed to a center key that is {state} (key registry v{})",
            registry.body().version
        ),
    ))
}

impl CenterIntake {
    /// Counts a packet received after its kind's transfer window on its exam day (blanks
    /// 11:00–17:30, journals 10:30–19:00 local, domain.md §3); both series exist for
    /// every site that delivers, so an alert sees the first one.
    fn flag_after_window(&self, site: &str, zone: &konvert_exam::SiteZone, packet: &PacketRef, received_at: u64) {
        let blanks = self.metrics.blanks_after_window.with_label_values(&[site]);
        let journals = self.metrics.journals_after_window.with_label_values(&[site]);
        let (counter, hour, minute, what) = match (packet.exam, packet.kind) {
            // The final essay's blanks come over seven days; a test packet is never processed.
            (konvert_exam::ExamKind::Essay, _) | (_, PacketKind::Test) => return,
            (_, PacketKind::Journal) => (journals, 19, 0, "journals"),
            (_, PacketKind::Forms | PacketKind::Blanks | PacketKind::Audio) => (blanks, 17, 30, "blanks"),
        };
        let Ok(closes) = zone.local_unix_ms(packet.date, hour, minute) else {
            return;
        };
        if i64::try_from(received_at).unwrap_or(i64::MAX) > closes {
            counter.inc();
            warn!(
                %site,
                packet = %packet.packet_id(),
                "received after the {what} window closed ({hour:02}:{minute:02} {} on {}); flagged for the shift chief",
                zone.name(),
                packet.date
            );
        }
    }
}

/// What an offer names: the packet version and its bytes (an offer names no site).
pub(crate) fn offer_claim(offer: &Offer) -> Claim<'_> {
    Claim {
        by: "offered",
        packet_id: &offer.packet_id,
        version: offer.version,
        site: None,
        envelope_id: offer.digest,
        bytes: offer.size,
    }
}

/// What the envelope with `header` says of itself, its bytes hashing to `envelope_id`.
pub(crate) fn sealed(
    header: &konvert_crypto::envelope::EnvelopeHeader,
    envelope_id: [u8; 32],
    bytes: u64,
) -> Sealed<'_> {
    Sealed {
        envelope_id,
        bytes,
        packet_id: &header.packet_id,
        version: header.version,
        sender_site: &header.sender_site,
        metadata: &header.metadata,
    }
}

/// The reason the edge is shown when the names of a packet disagree.
pub(crate) fn refusal_for(d: &Disagreement) -> RejectReason {
    match d {
        Disagreement::Bytes { .. } => RejectReason::DigestMismatch,
        Disagreement::NoDescription => RejectReason::MalformedEnvelope,
        Disagreement::DescriptionSite { .. } | Disagreement::Site { .. } => RejectReason::SiteMismatch,
        // The header contradicts itself: another reason than an offer naming other bytes.
        Disagreement::NotDescribed { .. } => RejectReason::PacketRefMismatch,
        Disagreement::Packet { .. } | Disagreement::Manifest { .. } => RejectReason::PacketMismatch,
    }
}

impl CenterIntake {
    /// The dedup decision: `Some` answers the offer at once (the original receipt, a
    /// conflict, or a storage failure); `None` means the packet is new.
    fn known(&self, channel: Channel<'_>, offer: &Offer) -> Option<Admission<Staging>> {
        match self.inbox.lookup(&offer.packet_id, offer.version) {
            Ok(Some(record)) if record.receipt.body.digest == offer.digest => {
                // Its commit may have failed at the fsync (EIO, a full disk): the receipt
                // goes out only once the record is durable.
                if let Err(e) = self.inbox.sync() {
                    return Some(Admission::Reject(
                        RejectReason::Unavailable,
                        format!("the stored record cannot be made durable: {e}"),
                    ));
                }
                self.metrics.packets_duplicate.inc();
                Some(Admission::AlreadyHave(record.receipt))
            }
            Ok(Some(_)) => {
                let (r, d) = self.refuse(
                    channel,
                    offer,
                    RejectReason::Conflict,
                    format!(
                        "{} v{} is already stored with other content",
                        offer.packet_id, offer.version
                    ),
                );
                Some(Admission::Reject(r, d))
            }
            Ok(None) => None,
            Err(e) => Some(Admission::Reject(RejectReason::Unavailable, e.to_string())),
        }
    }

    /// A new packet is refused, for now, while the data folder's disk is below its floor.
    fn below_floor(&self, channel: Channel<'_>, offer: &Offer) -> Option<(RejectReason, String)> {
        let detail = self.disk.check().err()?;
        Some(self.refuse(channel, offer, RejectReason::DiskFull, detail))
    }

    /// Checks the data folder's free space against its floor now (the gauge and the log
    /// stay current while no packet arrives).
    pub fn check_disk(&self) {
        let _ = self.disk.check();
    }

    /// Claims a packet version for one receipt at a time, whichever channel brings it.
    fn claim(&self, key: &(String, u32)) -> std::result::Result<(), (RejectReason, String)> {
        let mut set = self
            .in_flight
            .lock()
            .map_err(|_| (RejectReason::Unavailable, "internal lock poisoned".to_owned()))?;
        if set.insert(key.clone()) {
            Ok(())
        } else {
            Err((
                RejectReason::Unavailable,
                "this packet is being received on another stream".into(),
            ))
        }
    }

    /// Every byte is staged: make it durable, verify, store, sign the receipt; releases
    /// the claim either way.
    fn store(
        &self,
        channel: Channel<'_>,
        offer: &Offer,
        staging: Staging,
    ) -> std::result::Result<Receipt, (RejectReason, String)> {
        let Staging {
            staged: Staged { file, path, .. },
            key,
            verifier,
        } = staging;
        let result = (|| {
            file.sync_all().map_err(|e| {
                (
                    RejectReason::Unavailable,
                    format!("cannot make the envelope durable: {e}"),
                )
            })?;
            let received_at = now_ms();
            let (verified, packet) = self.verify(channel, offer, verifier, received_at)?;
            // Judged by the center's clock (a drive's: the import), never the sealing claim.
            let zone = crate::plans::zone_for(&self.config, Some(&self.plans), &packet);
            let late = crate::late::lateness_in(&zone, &packet, received_at);
            // The station's site for the network (verified equal), the envelope's for a drive.
            let site = verified.header().sender_site.clone();
            let body = ReceiptBody {
                packet_id: offer.packet_id.clone(),
                version: offer.version,
                site: site.clone(),
                digest: offer.digest,
                bytes: offer.size,
                received_at_unix_ms: received_at,
                center_key: self.receipt_key.key_id(),
            };
            let receipt =
                Receipt::sign(body, &self.receipt_key).map_err(|e| (RejectReason::Unavailable, e.to_string()))?;
            let test_packet = packet.kind == PacketKind::Test;
            let record = InboxRecord {
                receipt: receipt.clone(),
                signer: verified.signer().key_id(),
                sealed_at_unix_ms: verified.header().sealed_at_unix_ms,
                test_packet,
                late: late.is_some(),
                packet: Some(packet.clone()),
            };
            self.inbox
                .commit(&path, &record)
                .map_err(|e| (RejectReason::Unavailable, e.to_string()))?;
            if test_packet {
                // The packet is stored either way; a desk record that failed to write is
                // written again from the inbox when the center next starts.
                if let Err(e) = self.desk.record_received(&TestPacketRecord::from_inbox(&record)) {
                    warn!(packet = %offer.packet_id, "test packet stored but not put on the desk: {e}");
                }
                self.metrics.test_packets_received.inc();
            }
            if let Some(watch) = &self.site_watch {
                watch.note(&record);
            }
            let latency = received_at.saturating_sub(verified.header().sealed_at_unix_ms) as f64 / 1000.0;
            self.metrics
                .delivery_latency
                .with_label_values(&[&site])
                .observe(latency);
            self.flag_after_window(&site, &zone, &packet, received_at);
            self.metrics.packets_received.with_label_values(&[&site]).inc();
            // Every site that delivers has the series, so an alert sees its first late packet.
            let late_count = self.metrics.packets_late.with_label_values(&[&site]);
            let late_note = match &late {
                Some((deadline, zone)) => {
                    late_count.inc();
                    let note = format!(
                        "LATE: received {} after the deadline of exam day {} (23:59 {zone}); held back from \
                         processing until an operator decides (`konvert-center late`)",
                        minutes(received_at.saturating_sub(u64::try_from(*deadline).unwrap_or(0))),
                        packet.date
                    );
                    warn!(%site, packet = %offer.packet_id, version = offer.version, "{note}");
                    format!(", {note}")
                }
                None => String::new(),
            };
            self.metrics
                .bytes_received
                .with_label_values(&[&site])
                .inc_by(offer.size);
            info!(%site, packet = %offer.packet_id, version = offer.version, bytes = offer.size, "stored");
            let signer = verified.signer().key_id();
            self.record(
                channel,
                AuditAction::PacketAccept,
                offer,
                &format!("signer {signer}, {} bytes, registry in force{late_note}", offer.size),
            );
            Ok(receipt)
        })();
        if result.is_err() {
            self.inbox.discard_staging(&path);
        }
        self.release(&key);
        result.map_err(|(r, d)| self.refuse(channel, offer, r, d))
    }

    /// Takes one envelope carried on a reserve-channel drive, `offer` as the drive's index
    /// describes it: the same dedup, verification, storage and receipt as the network path,
    /// with keys judged now. A prefix staged by an interrupted network transfer of the same
    /// envelope is not trusted to be the drive's: the drive's bytes are staged from the
    /// start, so the whole envelope is verified as it lies on the drive, and storing it
    /// consumes the staging (a later network offer then gets the original receipt).
    ///
    /// The file is `file` in the drive's `envelopes` folder (`None` if the drive has none),
    /// opened without following links and taken only if it is a regular file no longer
    /// than the index says, read within [`drive::read_time_limit`].
    pub fn take_carried(&self, operator: &str, offer: &Offer, envelopes: Option<&DriveDir>, file: &str) -> Carried {
        let channel = Channel::Drive { operator };
        if offer.size > self.max_packet_bytes {
            let (reason, detail) = self.refuse(
                channel,
                offer,
                RejectReason::TooLarge,
                format!("{} bytes, at most {} accepted", offer.size, self.max_packet_bytes),
            );
            return Carried::Refused { reason, detail };
        }
        match self.known(channel, offer) {
            Some(Admission::AlreadyHave(receipt)) => return Carried::AlreadyHeld(receipt),
            Some(Admission::Reject(reason, detail)) => return Carried::Refused { reason, detail },
            // `known` never answers Held: only relays hold packets without a receipt.
            Some(Admission::Accept { .. } | Admission::Held { .. }) | None => {}
        }
        if let Some((reason, detail)) = self.below_floor(channel, offer) {
            return Carried::Refused { reason, detail };
        }
        let opened = match envelopes {
            Some(dir) => dir.open_file(file, u64::MAX),
            None => Ok(None),
        };
        let file = match opened {
            Ok(Some(f)) => f,
            Ok(None) => {
                return Carried::Unreadable {
                    detail: format!("cannot open {}/{file}: it is not on the drive", reserve::ENVELOPES),
                }
            }
            Err(e) => {
                return Carried::Unreadable {
                    detail: format!("cannot open {e}"),
                }
            }
        };
        let envelope = file.path().to_owned();
        if file.len() > offer.size {
            let (reason, detail) = self.refuse(
                channel,
                offer,
                RejectReason::DigestMismatch,
                format!(
                    "{} holds {} bytes, longer than the {} bytes its index names",
                    envelope.display(),
                    file.len(),
                    offer.size
                ),
            );
            return Carried::Refused { reason, detail };
        }
        let key = (offer.packet_id.clone(), offer.version);
        if let Err((reason, detail)) = self.claim(&key) {
            return Carried::Refused {
                reason,
                detail: format!("{detail} (a network transfer of it is under way; import again in a minute)"),
            };
        }
        let mut staging = match self.inbox.fresh_staging(offer) {
            Ok(s) => Staging {
                staged: s,
                key,
                verifier: EnvelopeVerifier::new(),
            },
            Err(e) => {
                self.release(&key);
                return Carried::Refused {
                    reason: RejectReason::Unavailable,
                    detail: e.to_string(),
                };
            }
        };
        match self.stage_from_drive(&mut staging, file, offer.size) {
            Ok(DriveRead::Whole) => {}
            Ok(DriveRead::NotEnvelope(why)) => {
                self.inbox.discard_staging(&staging.staged.path);
                self.release(&staging.key);
                let (reason, detail) = self.refuse(
                    channel,
                    offer,
                    RejectReason::MalformedEnvelope,
                    format!(
                        "{} is not a konvert envelope ({why}); read no further",
                        envelope.display()
                    ),
                );
                return Carried::Refused { reason, detail };
            }
            Ok(DriveRead::Grew) => {
                self.inbox.discard_staging(&staging.staged.path);
                self.release(&staging.key);
                let (reason, detail) = self.refuse(
                    channel,
                    offer,
                    RejectReason::DigestMismatch,
                    format!(
                        "{} grew past the {} bytes its index names while it was read",
                        envelope.display(),
                        offer.size
                    ),
                );
                return Carried::Refused { reason, detail };
            }
            Err(e) => {
                self.abandon(offer, staging);
                return Carried::Unreadable {
                    detail: format!("cannot read from the drive: {e}"),
                };
            }
        }
        match self.store(channel, offer, staging) {
            Ok(receipt) => Carried::Stored(receipt),
            Err((reason, detail)) => Carried::Refused { reason, detail },
        }
    }

    /// Copies at most `size` bytes of `file` into staging (segments made durable as on the
    /// network path), within the drive's time limit. Reading stops at the first chunk whose
    /// bytes show the file is no envelope (magic, format version, header length, header),
    /// so a large file of anything else costs one chunk, not a full read. A shorter file is
    /// left for verification to refuse as truncated.
    fn stage_from_drive(
        &self,
        staging: &mut Staging,
        file: DriveFile,
        size: u64,
    ) -> konvert_replication::Result<DriveRead> {
        let mut at = 0u64;
        let mut not_envelope = None;
        let path = file.path().to_owned();
        let read = file.read_exactly(size, drive::read_time_limit(size), |chunk| {
            self.write(staging, at, chunk)?;
            at += chunk.len() as u64;
            if let Some(e) = staging.verifier.failed() {
                not_envelope = Some(e.to_string());
                return Err(konvert_replication::Error::Drive {
                    path: path.clone(),
                    message: "not an envelope".into(),
                });
            }
            Ok(())
        });
        if let Some(why) = not_envelope {
            return Ok(DriveRead::NotEnvelope(why));
        }
        Ok(if read?.is_some() {
            DriveRead::Whole
        } else {
            DriveRead::Grew
        })
    }
}

/// How far an envelope on a drive was read.
enum DriveRead {
    /// All of it, as long as its index says.
    Whole,
    /// It held more than its index says.
    Grew,
    /// Its first bytes are no envelope; the rest was not read.
    NotEnvelope(String),
}

impl Intake for CenterIntake {
    type Staging = Staging;

    fn max_packet_size(&self) -> u64 {
        self.max_packet_bytes
    }

    fn admit(&self, station: &StationSession, offer: &Offer) -> Admission<Staging> {
        if let Some(answer) = self.known(Channel::Station(station), offer) {
            return answer;
        }
        if let Some(refusal) = self.below_floor(Channel::Station(station), offer) {
            return Admission::Reject(refusal.0, refusal.1);
        }
        let key = (offer.packet_id.clone(), offer.version);
        if let Err((reason, detail)) = self.claim(&key) {
            return Admission::Reject(reason, detail);
        }
        let mut verifier = EnvelopeVerifier::new();
        let staged = self
            .inbox
            .resume_staging(offer, |held| verifier.update(held))
            .map(|s| (s, verifier));
        match staged {
            Ok((s, verifier)) => {
                if s.held > 0 {
                    self.metrics.bytes_resumed.inc_by(s.held);
                    info!(packet = %offer.packet_id, version = offer.version, resume_at = s.held, "resuming");
                }
                Admission::Accept {
                    resume_at: s.held,
                    staging: Staging {
                        staged: s,
                        key,
                        verifier,
                    },
                }
            }
            Err(e) => {
                self.release(&key);
                Admission::Reject(RejectReason::Unavailable, e.to_string())
            }
        }
    }

    fn write(&self, staging: &mut Staging, offset: u64, bytes: &[u8]) -> konvert_replication::Result<()> {
        self.inbox.write_staged(&mut staging.staged, offset, bytes)?;
        staging.verifier.update(bytes);
        Ok(())
    }

    fn complete(
        &self,
        station: &StationSession,
        offer: &Offer,
        staging: Staging,
    ) -> std::result::Result<Completion, (RejectReason, String)> {
        self.store(Channel::Station(station), offer, staging)
            .map(Completion::from)
    }

    fn abandon(&self, _offer: &Offer, staging: Staging) {
        // What is held durably waits for the edge to resume; the rest is cut off then.
        self.inbox.abandon_staged(&staging.staged);
        self.release(&staging.key);
    }

    fn notices(&self, station: &StationSession) -> konvert_replication::Result<Vec<SignedNotice>> {
        // A relay gets the notices of every site it carries, newest first, to pass down.
        let mut sites = vec![station.site.clone()];
        sites.extend(self.relays.carried_by(&station.site).unwrap_or_default());
        let mut per_site = Vec::new();
        for site in &sites {
            let mut notices = self
                .desk
                .notices_for(site)
                .map_err(|e| konvert_replication::Error::Storage(e.to_string()))?;
            // The loader's answers to the site's packets travel the same way (R10).
            let answers = self
                .answers
                .notices_for(site)
                .map_err(|e| konvert_replication::Error::Storage(e.to_string()))?;
            notices.extend(answers);
            per_site.push(notices);
        }
        Ok(crate::answers::fair_share(per_site))
    }

    fn revocation_feed(&self) -> Option<RevocationFeed> {
        self.revocations.clone()
    }

    fn registry_feed(&self) -> Option<RegistryFeed> {
        Some(self.registry.feed())
    }

    fn broker(&self) -> Option<Arc<BrokerDesk>> {
        self.broker.clone()
    }
}

/// A span of milliseconds in words ("3 h 12 min", "184 days").
fn minutes(ms: u64) -> String {
    let min = ms / 60_000;
    match min {
        0..=119 => format!("{min} min"),
        120..=2879 => format!("{} h {} min", min / 60, min % 60),
        _ => format!("{} days", min / 1440),
    }
}
