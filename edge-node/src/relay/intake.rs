//! What a relay does with a packet from downstream: stage it with the same resumable
//! staging as the center, check what it can without the center's private keys, hold it
//! durably in its outbox for forwarding, and answer with the center's receipt once it has
//! come back — or `Held` until then.
//!
//! The relay never alters bytes: it forwards exactly the envelope file it received, under
//! the same offer (packet id, version, size, envelope id), and only the center's receipt
//! for those bytes, signed by the center's receipt key, ever reaches the downstream as a
//! delivery. What it checks — the envelope id over every byte, the header against the
//! offer, the site against what it carries and who delivered it, and the member signature
//! when its key registry knows the signer — only refuses early what the center would refuse.

use std::collections::{HashMap, HashSet};
use std::fs::File;
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

use konvert_crypto::registry::RegistryStore;
use konvert_crypto::{EnvelopeVerifier, KeyId, VerifyingKey};
use konvert_exam::agreement::{self, Claim, Disagreement, Sealed};
use konvert_replication::disk_floor::DiskFloor;
use konvert_replication::driver::{self, Admission, Completion, Intake, RegistryFeed, RevocationFeed, StationSession};
use konvert_replication::inbox::Staged;
use konvert_replication::{Inbox, Offer, Outbox, OutboxState, RejectReason, SignedNotice};
use ring::digest::{Context, SHA256};
use tracing::{info, warn};

use super::config::RelayConfig;

/// One packet being received from downstream.
pub struct RelayStaging {
    staged: Staged,
    key: (String, u32),
    verifier: EnvelopeVerifier,
    sha: Context,
}

/// Wakes the streams waiting for the center's receipt whenever the forwarder learns
/// something about a packet.
#[derive(Default)]
pub(crate) struct Forwarding {
    generation: Mutex<u64>,
    changed: Condvar,
    /// What the forwarder last learned that the downstream should read in `Held`.
    notes: Mutex<HashMap<String, String>>,
    /// The forwarder's last connection error, if the upstream is unreachable.
    trouble: Mutex<Option<String>>,
}

impl Forwarding {
    /// Something changed: wake every waiter.
    pub(crate) fn bump(&self) {
        if let Ok(mut g) = self.generation.lock() {
            *g += 1;
        }
        self.changed.notify_all();
    }

    /// Remembers what the next hop said about one packet.
    pub(crate) fn note(&self, packet_id: &str, note: String) {
        if let Ok(mut n) = self.notes.lock() {
            n.insert(packet_id.to_owned(), note);
        }
    }

    /// Remembers (or clears) why the next hop cannot be reached.
    pub(crate) fn set_trouble(&self, trouble: Option<String>) {
        if let Ok(mut t) = self.trouble.lock() {
            *t = trouble;
        }
    }

    fn detail(&self, key: &(String, u32)) -> String {
        let note = self.notes.lock().ok().and_then(|n| n.get(&key.0).cloned());
        let trouble = self.trouble.lock().ok().and_then(|t| t.clone());
        match (note, trouble) {
            (Some(n), _) => n,
            (None, Some(t)) => format!("held durably; the next hop cannot be reached now ({t})"),
            (None, None) => "held durably; being forwarded to the center".into(),
        }
    }

    /// Waits until `until` or the next change, whichever is first.
    fn wait(&self, until: Instant) {
        let Ok(g) = self.generation.lock() else { return };
        let seen = *g;
        let left = until.saturating_duration_since(Instant::now());
        let _ = self.changed.wait_timeout_while(g, left, |g| *g == seen);
    }
}

/// The relay's [`Intake`].
pub struct RelayIntake {
    name: String,
    cfg: RelayConfig,
    staging: Inbox,
    outbox: Arc<Outbox>,
    /// Below its floor no new packet is taken; what the relay holds is still answered.
    disk: Arc<DiskFloor>,
    in_flight: Mutex<HashSet<(String, u32)>>,
    forwarding: Arc<Forwarding>,
    registry: Option<RegistryStore>,
    feed: Option<RegistryFeed>,
    /// The relay's runtime, for asking upstream from the blocking notice call.
    runtime: tokio::runtime::Handle,
    /// The station revocation list in force here, for relays further down.
    revocations: Option<RevocationFeed>,
}

type Refusal = (RejectReason, String);

impl RelayIntake {
    /// The intake of the relay `cfg` describes, holding into `outbox`.
    pub(crate) fn new(
        cfg: &RelayConfig,
        outbox: Arc<Outbox>,
        disk: Arc<DiskFloor>,
        forwarding: Arc<Forwarding>,
        registry: Option<RegistryStore>,
        feed: Option<RegistryFeed>,
    ) -> crate::Result<Self> {
        Ok(RelayIntake {
            name: cfg.relay.clone(),
            cfg: cfg.clone(),
            staging: Inbox::open(&cfg.data_dir.join("inbound"))?,
            outbox,
            disk,
            in_flight: Mutex::new(HashSet::new()),
            forwarding,
            registry,
            feed,
            runtime: tokio::runtime::Handle::try_current()
                .map_err(|e| crate::Error::Push(format!("the relay must start inside a tokio runtime: {e}")))?,
            revocations: None,
        })
    }

    /// Passes the station revocation list in force here on to relays further down.
    pub fn with_revocations(mut self, feed: RevocationFeed) -> Self {
        self.revocations = Some(feed);
        self
    }

    fn release(&self, key: &(String, u32)) {
        if let Ok(mut set) = self.in_flight.lock() {
            set.remove(key);
        }
    }

    /// The answer for a packet the relay already holds: the center's receipt if it came
    /// within the hold wait, the center's refusal, or `Held`.
    fn answer_held(&self, offer: &Offer) -> std::result::Result<Completion, Refusal> {
        let key = (offer.packet_id.clone(), offer.version);
        let until = Instant::now() + Duration::from_millis(self.cfg.hold_wait_ms);
        loop {
            let entry = self
                .outbox
                .get(&offer.packet_id, offer.version)
                .map_err(|e| (RejectReason::Unavailable, e.to_string()))?;
            match entry.map(|e| e.state) {
                Some(OutboxState::Delivered { receipt }) => return Ok(Completion::Receipt(receipt)),
                Some(OutboxState::Rejected { reason, detail }) => {
                    return Err((reason, format!("refused upstream: {detail}")))
                }
                Some(OutboxState::Sealed) if Instant::now() < until => self.forwarding.wait(until),
                Some(OutboxState::Sealed) => {
                    return Ok(Completion::Held {
                        relay: self.name.clone(),
                        detail: self.forwarding.detail(&key),
                    })
                }
                None => {
                    return Err((
                        RejectReason::Unavailable,
                        "the relay lost track of the packet; it will be sent again".into(),
                    ))
                }
            }
        }
    }

    /// The member keys the relay's registry knows (none without a registry).
    fn trusted(&self) -> Vec<VerifyingKey> {
        let Some(store) = &self.registry else { return Vec::new() };
        match store.last_known() {
            Ok(Some(body)) => body.tokens.iter().map(|t| t.public).collect(),
            Ok(None) => Vec::new(),
            Err(e) => {
                warn!("the relay's key registry cannot be read: {e}");
                Vec::new()
            }
        }
    }

    /// Checks a complete envelope without the center's keys: digest, header against the
    /// offer, the site against what the relay carries and who delivered it, and the
    /// signature when the signer is known here.
    fn check(
        &self,
        station: &StationSession,
        offer: &Offer,
        staging: &mut RelayStaging,
    ) -> std::result::Result<String, Refusal> {
        let sha = std::mem::replace(&mut staging.sha, Context::new(&SHA256));
        let mut envelope_id = [0u8; 32];
        envelope_id.copy_from_slice(sha.finish().as_ref());
        let file = File::open(&staging.staged.path).map_err(|e| (RejectReason::Unavailable, e.to_string()))?;
        let header = konvert_crypto::envelope::read_header(std::io::BufReader::new(file))
            .map_err(|e| (RejectReason::MalformedEnvelope, e.to_string()))?;
        // The same agreement the center checks: bytes, header and offer, and a packet id
        // that the signed description derives (so no site's member stores another's id).
        let claim = Claim {
            by: "offered",
            packet_id: &offer.packet_id,
            version: offer.version,
            site: None,
            envelope_id: offer.digest,
            bytes: offer.size,
        };
        let sealed = Sealed {
            envelope_id,
            bytes: staging.staged.written,
            packet_id: &header.packet_id,
            version: header.version,
            sender_site: &header.sender_site,
            metadata: &header.metadata,
        };
        let packet = agreement::agree(&claim, &sealed).map_err(|d| (refusal_for(&d), d.to_string()))?;
        let site = packet.site.as_str();
        if !self.cfg.carries(site) {
            return Err((
                RejectReason::RelayNotEnrolledForSite,
                format!("relay {} is not enrolled to carry site {site}", self.name),
            ));
        }
        if !site.eq_ignore_ascii_case(&station.site) && !self.cfg.is_downstream_relay(&station.site) {
            return Err((
                RejectReason::SiteMismatch,
                format!(
                    "the packet is for site {site}, but the station is enrolled for site {}",
                    station.site
                ),
            ));
        }
        let keys = self.trusted();
        let trusted = |id: &KeyId| keys.iter().find(|k| k.key_id() == *id).copied();
        let verifier = std::mem::take(&mut staging.verifier);
        match verifier.finish(&trusted) {
            Ok(_) => {}
            // Not known here (no registry, or an older one): the center decides.
            Err(konvert_crypto::Error::UnknownSigner(_)) => {}
            Err(konvert_crypto::Error::BadSignature) => {
                return Err((
                    RejectReason::BadSignature,
                    "the member's signature does not verify".into(),
                ))
            }
            Err(e) => return Err((RejectReason::MalformedEnvelope, e.to_string())),
        }
        Ok(packet.site.as_str().to_owned())
    }
}

/// The reason the downstream is shown when the names of a packet disagree (as the center
/// shows it).
fn refusal_for(d: &Disagreement) -> RejectReason {
    match d {
        Disagreement::Bytes { .. } => RejectReason::DigestMismatch,
        Disagreement::NoDescription => RejectReason::MalformedEnvelope,
        Disagreement::DescriptionSite { .. } | Disagreement::Site { .. } => RejectReason::SiteMismatch,
        // The header contradicts itself: another reason than an offer naming other bytes.
        Disagreement::NotDescribed { .. } => RejectReason::PacketRefMismatch,
        Disagreement::Packet { .. } | Disagreement::Manifest { .. } => RejectReason::PacketMismatch,
    }
}

impl Intake for RelayIntake {
    type Staging = RelayStaging;

    fn max_packet_size(&self) -> u64 {
        self.cfg.max_packet_bytes
    }

    fn admit(&self, _station: &StationSession, offer: &Offer) -> Admission<RelayStaging> {
        match self.outbox.get(&offer.packet_id, offer.version) {
            Ok(Some(entry)) if entry.offer.digest != offer.digest => {
                return Admission::Reject(
                    RejectReason::Conflict,
                    format!(
                        "{} v{} is already held here with other content",
                        offer.packet_id, offer.version
                    ),
                )
            }
            Ok(Some(_)) => {
                return match self.answer_held(offer) {
                    Ok(Completion::Receipt(receipt)) => Admission::AlreadyHave(receipt),
                    Ok(Completion::Held { relay, detail }) => Admission::Held { relay, detail },
                    Err((reason, detail)) => Admission::Reject(reason, detail),
                }
            }
            Ok(None) => {}
            Err(e) => return Admission::Reject(RejectReason::Unavailable, e.to_string()),
        }
        if let Err(detail) = self.disk.check() {
            return Admission::Reject(RejectReason::DiskFull, detail);
        }
        let key = (offer.packet_id.clone(), offer.version);
        let fresh = match self.in_flight.lock() {
            Ok(mut set) => set.insert(key.clone()),
            Err(_) => return Admission::Reject(RejectReason::Unavailable, "internal lock poisoned".into()),
        };
        if !fresh {
            return Admission::Reject(
                RejectReason::Unavailable,
                "this packet is being received on another stream".into(),
            );
        }
        let (mut verifier, mut sha) = (EnvelopeVerifier::new(), Context::new(&SHA256));
        let staged = self
            .staging
            .resume_staging(offer, |held| {
                verifier.update(held);
                sha.update(held);
            })
            .map(|s| (s, verifier, sha));
        match staged {
            Ok((s, verifier, sha)) => {
                if s.held > 0 {
                    info!(packet = %offer.packet_id, version = offer.version, resume_at = s.held, "resuming");
                }
                Admission::Accept {
                    resume_at: s.held,
                    staging: RelayStaging {
                        staged: s,
                        key,
                        verifier,
                        sha,
                    },
                }
            }
            Err(e) => {
                self.release(&key);
                Admission::Reject(RejectReason::Unavailable, e.to_string())
            }
        }
    }

    fn write(&self, staging: &mut RelayStaging, offset: u64, bytes: &[u8]) -> konvert_replication::Result<()> {
        self.staging.write_staged(&mut staging.staged, offset, bytes)?;
        staging.verifier.update(bytes);
        staging.sha.update(bytes);
        Ok(())
    }

    fn complete(
        &self,
        station: &StationSession,
        offer: &Offer,
        mut staging: RelayStaging,
    ) -> std::result::Result<Completion, Refusal> {
        let checked = staging
            .staged
            .file
            .sync_all()
            .map_err(|e| {
                (
                    RejectReason::Unavailable,
                    format!("cannot make the envelope durable: {e}"),
                )
            })
            .and_then(|()| self.check(station, offer, &mut staging))
            .and_then(|site| {
                let label = format!("site {site} via station {}", station.site);
                self.outbox
                    .add(&staging.staged.path, offer.clone(), label)
                    .map_err(|e| (RejectReason::Unavailable, e.to_string()))
            });
        // Moved into the outbox, or refused: either way the staging is done with.
        self.staging.discard_staging(&staging.staged.path);
        self.release(&staging.key);
        match checked {
            Ok(_) => {
                info!(site = %station.site, packet = %offer.packet_id, version = offer.version, bytes = offer.size, "held for forwarding");
                self.forwarding.bump();
                self.answer_held(offer)
            }
            Err((reason, detail)) => {
                warn!(reason = reason.as_str(), packet = %offer.packet_id, "refused at the relay: {detail}");
                Err((reason, detail))
            }
        }
    }

    fn abandon(&self, _offer: &Offer, staging: RelayStaging) {
        self.staging.abandon_staged(&staging.staged);
        self.release(&staging.key);
    }

    /// Asks the next hop, on a connection of its own, for the notices of the sites this
    /// relay carries and passes on those for the asking station: its own site's, or (for a
    /// relay below) every carried site's. Each is signed by the center; the station checks
    /// them again with the center's key, so the relay cannot forge a verdict.
    fn notices(&self, station: &StationSession) -> konvert_replication::Result<Vec<SignedNotice>> {
        let unavailable = |e: crate::Error| konvert_replication::Error::Storage(format!("cannot ask upstream: {e}"));
        let link = self.cfg.link().map_err(unavailable)?;
        let carried = |site: &str| self.cfg.carries(site);
        let asked = self.runtime.block_on(async {
            let endpoint = crate::push::link_endpoint(&link)?;
            let conn = crate::push::connect_link(&link, &endpoint).await?;
            let asked = driver::ask_notices_for(&conn, &link.receipt_key, &carried, &self.name).await;
            conn.close(0u32.into(), b"notices fetched");
            endpoint.close(0u32.into(), b"bye");
            Ok::<_, crate::Error>(asked?)
        });
        let relay_below = self.cfg.is_downstream_relay(&station.site);
        Ok(asked
            .map_err(unavailable)?
            .into_iter()
            .filter(|n| relay_below || n.notice.site().eq_ignore_ascii_case(&station.site))
            .collect())
    }

    fn registry_feed(&self) -> Option<RegistryFeed> {
        self.feed.clone()
    }

    fn revocation_feed(&self) -> Option<RevocationFeed> {
        self.revocations.clone()
    }
}
