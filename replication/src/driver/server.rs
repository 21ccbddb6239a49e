//! The center's side: check the station, answer Hello, then serve one packet per stream.
//! What to do with a packet (admit, store, verify, receipt) is the [`Intake`]'s business;
//! this module only moves frames and enforces the protocol through `PacketReceiver`.

use std::sync::Arc;

use tracing::{debug, warn};

use super::stream::{read_message, write_message};
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
}

/// Who is on the other end of a connection, as proven by its station certificate.
#[derive(Debug, Clone)]
pub struct StationSession {
    /// The site the station certificate is valid for.
    pub site: String,
}

/// The center's policy and storage for incoming packets.
pub trait Intake: Send + Sync + 'static {
    /// Staging state of one incoming packet.
    type Staging: Send + 'static;
    /// The largest envelope accepted.
    fn max_packet_size(&self) -> u64;
    /// Decides on an offer.
    fn admit(&self, station: &StationSession, offer: &Offer) -> Admission<Self::Staging>;
    /// Writes received bytes to staging.
    fn write(&self, staging: &mut Self::Staging, offset: u64, bytes: &[u8]) -> Result<()>;
    /// All bytes arrived: make durable, verify, store, and sign a receipt. Blocking.
    fn complete(
        &self,
        station: &StationSession,
        offer: &Offer,
        staging: Self::Staging,
    ) -> std::result::Result<Receipt, (RejectReason, String)>;
    /// The stream broke before completion.
    fn abandon(&self, offer: &Offer, staging: Self::Staging);
    /// The newest notices for the station's site, at most [`MAX_NOTICES`]. Blocking.
    fn notices(&self, station: &StationSession) -> Result<Vec<SignedNotice>>;
}

/// Serves one edge connection until it closes.
pub async fn serve_connection<I: Intake>(conn: quinn::Connection, intake: Arc<I>, center_name: String) -> Result<()> {
    let certs = tls::peer_certificates(&conn)?;
    let (mut send, mut recv) = conn.accept_bi().await.map_err(|e| Error::Connection(e.to_string()))?;
    let hello = read_message(&mut recv)
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
        let (s, r) = match conn.accept_bi().await {
            Ok(streams) => streams,
            Err(e) => {
                debug!(site = %station.site, "connection ended: {e}");
                return Ok(());
            }
        };
        let intake = intake.clone();
        let station = station.clone();
        tokio::spawn(async move {
            if let Err(e) = serve_stream(s, r, intake, station.clone()).await {
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

async fn serve_stream<I: Intake>(
    mut send: quinn::SendStream,
    mut recv: quinn::RecvStream,
    intake: Arc<I>,
    station: Arc<StationSession>,
) -> Result<()> {
    let mut rx = PacketReceiver::new(intake.max_packet_size());
    let mut staging: Option<I::Staging> = None;
    let result = loop {
        let msg = match read_message(&mut recv).await {
            Ok(Some(msg)) => msg,
            Ok(None) => break Err(Error::Connection("the edge closed the stream mid-packet".into())),
            Err(e) => {
                if matches!(e, Error::FrameTooLarge { .. } | Error::MalformedFrame(_)) {
                    let _ = write_message(&mut send, &rx.reject(RejectReason::ProtocolViolation, &e.to_string())).await;
                }
                break Err(e);
            }
        };
        if matches!(msg, Message::AskNotices) && rx.offer().is_none() {
            return serve_notices(send, intake, station).await;
        }
        match rx.handle(msg) {
            Err(e) => {
                let _ = write_message(&mut send, &rx.reject(RejectReason::ProtocolViolation, &e.to_string())).await;
                break Err(e);
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
                    match intake.admit(&station, &offer) {
                        Admission::Accept { resume_at, staging: s } => {
                            staging = Some(s);
                            rx.accept(resume_at)?
                        }
                        Admission::AlreadyHave(receipt) => rx.already_have(receipt)?,
                        Admission::Reject(reason, detail) => rx.reject(reason, &detail),
                    }
                };
                write_message(&mut send, &reply).await?;
                if staging.is_none() {
                    let _ = send.finish();
                    return Ok(());
                }
            }
            Ok(ReceiverEvent::Write { offset, bytes }) => {
                let Some(s) = staging.as_mut() else {
                    break Err(Error::Protocol {
                        expected: "Offer",
                        got: "Data".into(),
                    });
                };
                if let Err(e) = intake.write(s, offset, &bytes) {
                    let _ = write_message(&mut send, &rx.reject(RejectReason::Unavailable, "cannot write")).await;
                    break Err(e);
                }
            }
            Ok(ReceiverEvent::Complete) => {
                let (Some(s), Some(offer)) = (staging.take(), rx.offer().cloned()) else {
                    break Err(Error::Protocol {
                        expected: "Offer",
                        got: "Done".into(),
                    });
                };
                let (intake2, station2) = (intake.clone(), station.clone());
                let done = tokio::task::spawn_blocking(move || intake2.complete(&station2, &offer, s))
                    .await
                    .map_err(|e| Error::Storage(format!("verification task failed: {e}")))?;
                let reply = match done {
                    Ok(receipt) => rx.receipt(receipt)?,
                    Err((reason, detail)) => rx.reject(reason, &detail),
                };
                write_message(&mut send, &reply).await?;
                let _ = send.finish();
                return Ok(());
            }
        }
    };
    if let (Some(s), Some(offer)) = (staging, rx.offer()) {
        intake.abandon(offer, s);
    }
    result
}
