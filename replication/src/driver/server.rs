//! The center's side: check the station, answer Hello, then serve one packet per stream.
//! What to do with a packet (admit, store, verify, receipt) is the [`Intake`]'s business;
//! this module only moves frames and enforces the protocol through `PacketReceiver`.

use konvert_protocol::Error as ProtocolError;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{watch, Notify};
use tracing::{debug, warn};

use super::bandwidth::{serve_bandwidth, BrokerDesk};
use super::stream::{read_message_bounded, write_message, ConnectionFrames, FrameLimits};
use crate::notice::MAX_NOTICES;
use crate::receiver::{PacketReceiver, ReceiverEvent};
use crate::{handshake, tls, Error, Message, Offer, Receipt, RejectReason, Result, SignedNotice};

/// The center's answer to an offer.
#[derive(Debug)]
pub enum Admission<S> {
    /// Send from `resume_at`; bytes go to `staging`.
    Accept {
        /// Bytes already held durably.
        resume_at: u64,
        /// Where the bytes go.
        staging: S,
    },
    /// Already stored: the original receipt.
    AlreadyHave(Receipt),
    /// Refused.
    Reject(RejectReason, String),
    /// A relay holds it durably, without the center's receipt yet: offer again later.
    Held {
        /// The relay's name.
        relay: String,
        /// Where the packet stands upstream.
        detail: String,
    },
}

/// How a completed packet ended: stored with the center's receipt, or (at a relay) held
/// durably while the center's receipt has not come back yet.
#[derive(Debug)]
pub enum Completion {
    /// The center's signed receipt.
    Receipt(Receipt),
    /// Held at a relay.
    Held {
        /// The relay's name.
        relay: String,
        /// Where the packet stands upstream.
        detail: String,
    },
}

impl From<Receipt> for Completion {
    fn from(receipt: Receipt) -> Self {
        Completion::Receipt(receipt)
    }
}

/// Who is on the other end of a connection, as proven by its station certificate.
#[derive(Debug, Clone)]
pub struct StationSession {
    /// The site the station certificate is valid for.
    pub site: String,
}

/// A signed document the center passes on to stations as it changes: the key registry
/// (signed by the officers) or the station revocation list (signed by the station CA).
/// The receiver trusts it only by those signatures, never by the center's word.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SignedUpdate {
    /// Its version: the registry's version, or the list's CRL number.
    pub version: u64,
    /// The `SignedRegistry` bytes, or the revocation list's DER.
    pub signed: Vec<u8>,
}

/// The newest registry the center serves; changes whenever a newer one is taken.
pub type RegistryFeed = watch::Receiver<Option<std::sync::Arc<SignedUpdate>>>;

/// The station revocation list in force; changes whenever a newer one is put in force.
pub type RevocationFeed = watch::Receiver<Option<std::sync::Arc<SignedUpdate>>>;

/// The center's policy and storage for incoming packets.
pub trait Intake: Send + Sync + 'static {
    /// Staging state of one incoming packet.
    type Staging: Send + 'static;
    /// The largest envelope accepted.
    fn max_packet_size(&self) -> u64;
    /// Decides on an offer.
    fn admit(&self, station: &StationSession, offer: &Offer) -> Admission<Self::Staging>;
    /// Writes received bytes to staging (hashing them, and making each segment durable).
    /// Blocking: the driver runs it off the async threads, one chunk behind the network.
    fn write(&self, staging: &mut Self::Staging, offset: u64, bytes: &[u8]) -> Result<()>;
    /// All bytes arrived: make durable, verify, store, and sign a receipt (a relay: hold,
    /// and hand back the center's receipt if it came). Blocking.
    fn complete(
        &self,
        station: &StationSession,
        offer: &Offer,
        staging: Self::Staging,
    ) -> std::result::Result<Completion, (RejectReason, String)>;
    /// The stream broke before completion.
    fn abandon(&self, offer: &Offer, staging: Self::Staging);
    /// The newest notices for the station's site, at most [`MAX_NOTICES`]. Blocking.
    fn notices(&self, station: &StationSession) -> Result<Vec<SignedNotice>>;
    /// The key registries to pass on to stations, if this center serves any.
    fn registry_feed(&self) -> Option<RegistryFeed> {
        None
    }
    /// The station revocation list to pass on to relays, which enforce it too.
    fn revocation_feed(&self) -> Option<RevocationFeed> {
        None
    }
    /// The bandwidth broker, if this center splits its ingress among the sites.
    fn broker(&self) -> Option<Arc<BrokerDesk>> {
        None
    }
}

/// How long a packet's stream waits for the edge to acknowledge its receipt.
const RECEIPT_ACK_WAIT: Duration = Duration::from_secs(10);

/// Tells a serving process's connections that it is stopping, and counts the packets in
/// flight, so a stop can let them finish (or leave them durable to resume) before closing.
#[derive(Debug, Clone)]
pub struct Drain {
    stopping: Arc<watch::Sender<bool>>,
    in_flight: Arc<AtomicUsize>,
    idle: Arc<Notify>,
}

impl Default for Drain {
    fn default() -> Self {
        Drain {
            stopping: Arc::new(watch::channel(false).0),
            in_flight: Arc::new(AtomicUsize::new(0)),
            idle: Arc::new(Notify::new()),
        }
    }
}

/// One packet being received; counted until dropped.
struct InFlight(Drain);

impl Drop for InFlight {
    fn drop(&mut self) {
        if self.0.in_flight.fetch_sub(1, Ordering::AcqRel) == 1 {
            self.0.idle.notify_waiters();
        }
    }
}

impl Drain {
    /// Connections stop taking new streams from now on.
    pub fn stop(&self) {
        self.stopping.send_replace(true);
    }

    /// Whether [`Drain::stop`] was called.
    pub fn is_stopping(&self) -> bool {
        *self.stopping.borrow()
    }

    /// Waits until [`Drain::stop`] is called.
    pub async fn stopped(&self) {
        let mut rx = self.stopping.subscribe();
        let _ = rx.wait_for(|s| *s).await;
    }

    /// Packets being received now.
    pub fn in_flight(&self) -> usize {
        self.in_flight.load(Ordering::Acquire)
    }

    fn packet(&self) -> InFlight {
        self.in_flight.fetch_add(1, Ordering::AcqRel);
        InFlight(self.clone())
    }

    /// Waits up to `grace` for the packets in flight to end; returns how many did not.
    pub async fn finish(&self, grace: Duration) -> usize {
        let deadline = tokio::time::Instant::now() + grace;
        loop {
            let idle = self.idle.notified();
            let left = self.in_flight();
            if left == 0 {
                return 0;
            }
            if tokio::time::timeout_at(deadline, idle).await.is_err() {
                return self.in_flight();
            }
        }
    }
}

/// Serves one edge connection until it closes.
pub async fn serve_connection<I: Intake>(conn: quinn::Connection, intake: Arc<I>, center_name: String) -> Result<()> {
    serve_connection_until(conn, intake, center_name, Drain::default(), FrameLimits::default()).await
}

/// Serves one edge connection until it closes or `drain` stops (then it takes no new
/// stream; those in flight go on). Frames from the edge are held to `limits`.
pub async fn serve_connection_until<I: Intake>(
    conn: quinn::Connection,
    intake: Arc<I>,
    center_name: String,
    drain: Drain,
    limits: FrameLimits,
) -> Result<()> {
    let certs = tls::peer_certificates(&conn)?;
    let frames = ConnectionFrames::new(limits);
    // A station that connects and opens no control stream is bounded like a stalled frame.
    let (mut send, mut recv) = tokio::time::timeout(limits.start, conn.accept_bi())
        .await
        .map_err(|_| Error::FrameTimeout {
            seconds: limits.start.as_secs(),
            what: "waiting for the control stream",
        })?
        .map_err(|e| Error::Connection(e.to_string()))?;
    let hello = read_message_bounded(&mut recv, &frames)
        .await?
        .ok_or_else(|| Error::Connection("the edge closed the control stream before Hello".into()))?;
    let (site, answer) = handshake::answer_hello(&hello, &center_name)?;
    if let Err(e) = tls::verify_station_site(&certs, &site) {
        let refusal = Message::Reject {
            reason: RejectReason::SiteMismatch,
            detail: e.to_string(),
        };
        let _ = write_message(&mut send, &refusal).await;
        let _ = send.finish();
        conn.close(1u32.into(), b"station certificate does not match the site");
        return Err(e);
    }
    write_message(&mut send, &answer).await?;
    if matches!(answer, Message::Reject { .. }) {
        let _ = send.finish();
        return Ok(());
    }
    let station = Arc::new(StationSession { site });
    debug!(site = %station.site, "station connected");
    loop {
        let accepted = tokio::select! {
            a = conn.accept_bi() => a,
            _ = drain.stopped() => {
                debug!(site = %station.site, "stopping: no new streams on this connection");
                // The connection and its control stream stay as they are (dropping them
                // would end the connection under the packets in flight); the process's
                // close of its endpoint ends it.
                conn.closed().await;
                return Ok(());
            }
        };
        let (s, r) = match accepted {
            Ok(streams) => streams,
            Err(e) => {
                debug!(site = %station.site, "connection ended: {e}");
                return Ok(());
            }
        };
        let intake = intake.clone();
        let station = station.clone();
        let (drain, frames) = (drain.clone(), frames.clone());
        tokio::spawn(async move {
            if let Err(e) = serve_stream(s, r, intake, station.clone(), &drain, &frames).await {
                warn!(site = %station.site, "packet stream failed: {e}");
            }
        });
    }
}

/// Answers `AskNotices` with the station's site's notices and closes the stream.
async fn serve_notices<I: Intake>(
    mut send: quinn::SendStream,
    intake: Arc<I>,
    station: Arc<StationSession>,
) -> Result<()> {
    let notices = tokio::task::spawn_blocking(move || intake.notices(&station))
        .await
        .map_err(|e| Error::Storage(format!("notice task failed: {e}")))?;
    let reply = match notices {
        Ok(mut notices) => {
            notices.truncate(MAX_NOTICES);
            Message::Notices { notices }
        }
        Err(e) => Message::Reject {
            reason: RejectReason::Unavailable,
            detail: format!("cannot read notices: {e}"),
        },
    };
    write_message(&mut send, &reply).await?;
    let _ = send.finish();
    Ok(())
}

/// What a watch stream passes on.
#[derive(Debug, Clone, Copy)]
enum Watched {
    Registry,
    Revocations,
}

impl Watched {
    fn message(self, update: &SignedUpdate) -> Message {
        match self {
            Watched::Registry => Message::Registry {
                signed: update.signed.clone(),
            },
            Watched::Revocations => Message::Revocations {
                crl: update.signed.clone(),
            },
        }
    }
}

/// Sends the station every update of `feed` newer than the one it has (`have`), now and
/// as they come, until the connection ends.
async fn serve_watch(
    mut send: quinn::SendStream,
    feed: Option<RegistryFeed>,
    what: Watched,
    station: Arc<StationSession>,
    have: u64,
) -> Result<()> {
    let Some(mut feed) = feed else {
        let (reason, detail) = match what {
            Watched::Registry => (RejectReason::NoRegistry, "this center serves no key registry"),
            Watched::Revocations => (RejectReason::Unavailable, "this center passes on no revocation list"),
        };
        let refusal = Message::Reject {
            reason,
            detail: detail.into(),
        };
        write_message(&mut send, &refusal).await?;
        let _ = send.finish();
        return Ok(());
    };
    let mut sent = have;
    loop {
        let newest = feed.borrow_and_update().clone();
        if let Some(update) = newest.filter(|u| u.version > sent) {
            write_message(&mut send, &what.message(&update)).await?;
            debug!(site = %station.site, version = update.version, "{what:?} sent");
            sent = update.version;
        }
        // Either a newer one, or the station went away (the write then fails).
        tokio::select! {
            changed = feed.changed() => if changed.is_err() { return Ok(()) },
            _ = send.stopped() => return Ok(()),
        }
    }
}

async fn serve_stream<I: Intake>(
    mut send: quinn::SendStream,
    mut recv: quinn::RecvStream,
    intake: Arc<I>,
    station: Arc<StationSession>,
    drain: &Drain,
    frames: &ConnectionFrames,
) -> Result<()> {
    let mut rx = PacketReceiver::new(intake.max_packet_size());
    // Counted from admission to the end, so a stop waits for it.
    let mut in_flight: Option<InFlight> = None;
    let mut staging: Option<I::Staging> = None;
    // The chunk being written, hashed and (at a segment boundary) fsynced on the blocking
    // pool while the next one is read: disk and network overlap, and an fsync never
    // stalls the async threads that serve every other stream.
    let mut writing: Option<PendingWrite<I::Staging>> = None;
    let broker = intake.broker();
    let result = loop {
        let msg = match read_message_bounded(&mut recv, frames).await {
            Ok(Some(msg)) => msg,
            Ok(None) => break Err(Error::Connection("the edge closed the stream mid-packet".into())),
            Err(e) => {
                if matches!(
                    e,
                    Error::Protocol(ProtocolError::FrameTooLarge { .. } | ProtocolError::MalformedFrame(_))
                ) {
                    let _ = write_message(&mut send, &rx.reject(RejectReason::ProtocolViolation, &e.to_string())).await;
                }
                break Err(e);
            }
        };
        if rx.offer().is_none() {
            match msg {
                Message::AskNotices => return serve_notices(send, intake, station).await,
                Message::WatchRegistry { have_version } => {
                    return serve_watch(send, intake.registry_feed(), Watched::Registry, station, have_version).await
                }
                Message::WatchRevocations { have_number } => {
                    let feed = intake.revocation_feed();
                    return serve_watch(send, feed, Watched::Revocations, station, have_number).await;
                }
                Message::SiteStatus(status) => {
                    return match intake.broker() {
                        Some(desk) => serve_bandwidth(send, recv, status, desk, station, frames.clone()).await,
                        // No broker here: the edge paces to its own configured rate.
                        None => {
                            let _ = send.finish();
                            Ok(())
                        }
                    };
                }
                _ => {}
            }
        }
        match rx.handle(msg) {
            Err(e) => {
                let _ = write_message(&mut send, &rx.reject(RejectReason::ProtocolViolation, &e.to_string())).await;
                break Err(e.into());
            }
            Ok(ReceiverEvent::Offered(offer)) => {
                let reply = if offer.size > intake.max_packet_size() {
                    rx.reject(
                        RejectReason::TooLarge,
                        &format!(
                            "{} bytes offered, at most {} accepted",
                            offer.size,
                            intake.max_packet_size()
                        ),
                    )
                } else {
                    // Admission may read what an earlier attempt left durable (to resume),
                    // so it runs off the async threads.
                    let (i, st, o) = (intake.clone(), station.clone(), offer.clone());
                    let admission = tokio::task::spawn_blocking(move || i.admit(&st, &o))
                        .await
                        .map_err(|e| Error::Storage(format!("admission task failed: {e}")))?;
                    match admission {
                        Admission::Accept { resume_at, staging: s } => {
                            staging = Some(s);
                            in_flight = Some(drain.packet());
                            rx.accept(resume_at)?
                        }
                        Admission::AlreadyHave(receipt) => rx.already_have(receipt)?,
                        Admission::Reject(reason, detail) => rx.reject(reason, &detail),
                        Admission::Held { relay, detail } => rx.held(&relay, &detail)?,
                    }
                };
                write_message(&mut send, &reply).await?;
                if staging.is_none() {
                    let _ = send.finish();
                    return Ok(());
                }
            }
            Ok(ReceiverEvent::Write { offset, bytes }) => {
                if let Some(desk) = &broker {
                    desk.received(&station.site, bytes.len() as u64);
                }
                if let Err(e) = finish_write(&mut writing, &mut staging).await {
                    let _ = write_message(&mut send, &rx.reject(RejectReason::Unavailable, "cannot write")).await;
                    break Err(e);
                }
                let Some(mut s) = staging.take() else {
                    break Err(ProtocolError::Unexpected {
                        expected: "Offer",
                        got: "Data".into(),
                    }
                    .into());
                };
                let i = intake.clone();
                writing = Some(tokio::task::spawn_blocking(move || {
                    let written = i.write(&mut s, offset, &bytes);
                    (s, written)
                }));
            }
            Ok(ReceiverEvent::Complete) => {
                if let Err(e) = finish_write(&mut writing, &mut staging).await {
                    let _ = write_message(&mut send, &rx.reject(RejectReason::Unavailable, "cannot write")).await;
                    break Err(e);
                }
                let (Some(s), Some(offer)) = (staging.take(), rx.offer().cloned()) else {
                    break Err(ProtocolError::Unexpected {
                        expected: "Offer",
                        got: "Done".into(),
                    }
                    .into());
                };
                let (intake2, station2) = (intake.clone(), station.clone());
                let done = tokio::task::spawn_blocking(move || intake2.complete(&station2, &offer, s))
                    .await
                    .map_err(|e| Error::Storage(format!("verification task failed: {e}")))?;
                let reply = match done {
                    Ok(Completion::Receipt(receipt)) => rx.receipt(receipt)?,
                    Ok(Completion::Held { relay, detail }) => rx.held(&relay, &detail)?,
                    Err((reason, detail)) => rx.reject(reason, &detail),
                };
                write_message(&mut send, &reply).await?;
                let _ = send.finish();
                // Counted in flight until the edge has the receipt: a stopping process
                // closes its connections once nothing is in flight, and a close discards
                // stream data not yet acknowledged.
                let _ = tokio::time::timeout(RECEIPT_ACK_WAIT, send.stopped()).await;
                return Ok(());
            }
        }
    };
    // A write still running owns the staging: wait for it so abandon sees every byte.
    let _ = finish_write(&mut writing, &mut staging).await;
    if let (Some(s), Some(offer)) = (staging, rx.offer()) {
        intake.abandon(offer, s);
    }
    drop(in_flight);
    result
}

/// A chunk's write on the blocking pool; it hands the staging back when done.
type PendingWrite<S> = tokio::task::JoinHandle<(S, Result<()>)>;

/// Waits for the chunk being written, if any, and puts its staging back.
async fn finish_write<S>(writing: &mut Option<PendingWrite<S>>, staging: &mut Option<S>) -> Result<()> {
    let Some(job) = writing.take() else {
        return Ok(());
    };
    let (s, written) = job
        .await
        .map_err(|e| Error::Storage(format!("write task failed: {e}")))?;
    *staging = Some(s);
    written
}

#[cfg(test)]
mod drain_tests {
    use super::*;

    #[tokio::test]
    async fn a_stop_waits_for_the_packets_in_flight_and_no_longer_than_its_grace() {
        let drain = Drain::default();
        assert_eq!(drain.finish(Duration::from_millis(10)).await, 0);
        let packet = drain.packet();
        assert_eq!(drain.in_flight(), 1);
        drain.stop();
        assert!(drain.is_stopping());
        // Still arriving when the grace ends: said, not waited for.
        assert_eq!(drain.finish(Duration::from_millis(50)).await, 1);
        let d = drain.clone();
        let done = tokio::spawn(async move { d.finish(Duration::from_secs(10)).await });
        tokio::time::sleep(Duration::from_millis(50)).await;
        drop(packet);
        let left = tokio::time::timeout(Duration::from_secs(2), done).await;
        assert!(matches!(left, Ok(Ok(0))), "{left:?}");
        tokio::time::timeout(Duration::from_secs(1), drain.stopped())
            .await
            .unwrap_or_else(|_| panic!("stopped() did not return after stop()"));
    }
}
