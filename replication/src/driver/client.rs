//! The edge's side: connect with the station certificate, say Hello, send packets.

use konvert_protocol::Error as ProtocolError;
use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;

use konvert_crypto::VerifyingKey;

use super::stream::{read_message, write_message};
use crate::notice::MAX_NOTICES;
use crate::sender::{PacketSender, SenderEvent};
use crate::{handshake, tls};
use crate::{Error, Message, Offer, Receipt, RejectReason, Result, SignedNotice};

/// Stream priorities per class: turns within a class wrap after this many streams.
const CLASS_SPAN: u64 = 1 << 20;

/// Software name and version sent in Hello.
pub const AGENT: &str = concat!("konvert-edge/", env!("CARGO_PKG_VERSION"));

/// How one packet's exchange ended.
#[derive(Debug, Clone)]
pub enum Outcome {
    /// The center holds it; the receipt verified against the center's key and the offer.
    Delivered(Receipt),
    /// A relay holds it durably; the center's receipt has not come back yet. Offer it
    /// again later: once the receipt is at the relay, the answer is `Delivered`.
    Held {
        /// The relay's name.
        relay: String,
        /// Where the packet stands upstream.
        detail: String,
    },
    /// The center refused it.
    Rejected {
        /// Why.
        reason: RejectReason,
        /// Detail from the center.
        detail: String,
    },
}

/// Connects to the center, which must present a certificate for `server_name` from the
/// configured CA, and completes the Hello/Welcome exchange for `site`.
pub async fn connect(
    endpoint: &quinn::Endpoint,
    addr: SocketAddr,
    server_name: &str,
    site: &str,
) -> Result<quinn::Connection> {
    let conn = endpoint
        .connect(addr, server_name)
        .map_err(|e| Error::Connection(format!("cannot connect to {addr}: {e}")))?
        .await
        .map_err(|e| tls::explain_connection_error(&e))?;
    match hello(&conn, site).await {
        Ok(()) => Ok(conn),
        // A refused station certificate surfaces as a lost connection on the first
        // stream; the close reason says why, in words the operator can act on.
        Err(e) => Err(conn
            .close_reason()
            .map(|r| tls::explain_connection_error(&r))
            .unwrap_or(e)),
    }
}

async fn hello(conn: &quinn::Connection, site: &str) -> Result<()> {
    let (mut send, mut recv) = conn.open_bi().await.map_err(|e| Error::Connection(e.to_string()))?;
    write_message(&mut send, &handshake::hello(site, AGENT)).await?;
    let answer = read_message(&mut recv)
        .await?
        .ok_or_else(|| Error::Connection("the center closed the control stream without answering Hello".into()))?;
    handshake::check_welcome(&answer)?;
    Ok(())
}

/// Sends one envelope file on its own stream, from wherever the center says it holds up
/// to, and waits for the signed receipt. `progress` is told the offset reached.
pub async fn send_packet(
    conn: &quinn::Connection,
    offer: Offer,
    center_key: VerifyingKey,
    path: &Path,
    progress: &(dyn Fn(u64) + Send + Sync),
) -> Result<Outcome> {
    send_packet_paced(conn, offer, center_key, path, progress, &|_| None).await
}

/// Asked before each chunk of `bytes`: `None` to send it now (the bytes are taken from
/// the budget), or how long to wait before asking again.
pub type Pace = dyn Fn(u64) -> Option<Duration> + Send + Sync;

/// [`send_packet`], pacing each chunk with `pace` (the edge's token bucket).
pub async fn send_packet_paced(
    conn: &quinn::Connection,
    offer: Offer,
    center_key: VerifyingKey,
    path: &Path,
    progress: &(dyn Fn(u64) + Send + Sync),
    pace: &Pace,
) -> Result<Outcome> {
    let mut sender = PacketSender::new(offer, center_key);
    let (mut send, mut recv) = conn.open_bi().await.map_err(|e| Error::Connection(e.to_string()))?;
    write_message(&mut send, &sender.start()?).await?;
    let mut event = sender.handle(next(&mut recv).await?)?;
    if let SenderEvent::SendFrom(offset) = event {
        // Accepted packets take turns, in the order their streams were opened, instead of
        // sharing the link evenly: shared evenly, every packet in flight finished at about
        // the same time, at the end; in turns, each room is complete and receipted as early
        // as the link allows (the first of four after about a quarter of the time), so a
        // link lost before the deadline leaves whole rooms delivered, not several partial
        // ones. Offers and control streams keep priority 0, ahead of all data, so the next
        // packet is accepted while the one before it is still sending.
        // Classes come first: a form sealed now overtakes blanks already in flight (the
        // center needs ППЭ-13-02МАШ before it can check registration blanks).
        let turn = i32::try_from(send.id().index() % CLASS_SPAN).unwrap_or(i32::MAX);
        let class = i32::from(sender.offer().priority);
        send.set_priority(-(class.saturating_mul(CLASS_SPAN as i32).saturating_add(turn)))
            .map_err(|e| Error::Connection(format!("the packet's stream closed: {e}")))?;
        // Reads of at most 1 MiB from a file the edge just wrote (page cache): cheaper
        // inline than hopping to tokio's blocking pool and copying twice.
        let file = std::fs::File::open(path)?;
        let len = file.metadata()?.len();
        if len != sender.offer().size {
            return Err(Error::Storage(format!(
                "envelope {} changed size on disk ({} → {len} bytes); it cannot be sent",
                path.display(),
                sender.offer().size
            )));
        }
        progress(offset);
        while let Some((at, n)) = sender.next_chunk() {
            while let Some(wait) = pace(n as u64) {
                tokio::time::sleep(wait).await;
            }
            send.write_chunk(data_frame(&file, at, n, path)?)
                .await
                .map_err(|e| Error::Connection(e.to_string()))?;
            progress(at + n as u64);
        }
        write_message(&mut send, &sender.finish()?).await?;
        let _ = send.finish();
        event = sender.handle(next(&mut recv).await?)?;
    }
    match event {
        SenderEvent::Delivered(receipt) => Ok(Outcome::Delivered(receipt)),
        SenderEvent::Held { relay, detail } => Ok(Outcome::Held { relay, detail }),
        SenderEvent::Rejected { reason, detail } => Ok(Outcome::Rejected { reason, detail }),
        SenderEvent::SendFrom(_) => Err(ProtocolError::Unexpected {
            expected: "Receipt, Held or Reject",
            got: "a second Accept".into(),
        }
        .into()),
    }
}

/// Asks the center for this site's notices. Each is checked against the center's key
/// and must be for this site; one that is not is an error, never shown to the operator.
pub async fn ask_notices(conn: &quinn::Connection, center_key: &VerifyingKey, site: &str) -> Result<Vec<SignedNotice>> {
    ask_notices_for(conn, center_key, &|s| s == site, site).await
}

/// Asks for the notices of every site `wanted` names (a relay asks for the sites it
/// carries). Each is checked against the center's key; one for another site is an error.
/// `asker` names who asks, in errors.
pub async fn ask_notices_for(
    conn: &quinn::Connection,
    center_key: &VerifyingKey,
    wanted: &(dyn Fn(&str) -> bool + Sync),
    asker: &str,
) -> Result<Vec<SignedNotice>> {
    let site = asker;
    let (mut send, mut recv) = conn.open_bi().await.map_err(|e| Error::Connection(e.to_string()))?;
    write_message(&mut send, &Message::AskNotices).await?;
    let _ = send.finish();
    match next(&mut recv).await? {
        Message::Notices { notices } => {
            if notices.len() > MAX_NOTICES {
                return Err(ProtocolError::Unexpected {
                    expected: "at most MAX_NOTICES notices",
                    got: format!("{} notices", notices.len()),
                }
                .into());
            }
            for n in &notices {
                let notice = n.verify(center_key)?;
                if !wanted(notice.site()) {
                    return Err(ProtocolError::BadNotice(format!(
                        "a notice for site {} was sent to site {site}",
                        notice.site()
                    ))
                    .into());
                }
            }
            Ok(notices)
        }
        Message::Reject { reason, detail } => Err(ProtocolError::Refused { reason, detail }.into()),
        other => Err(ProtocolError::Unexpected {
            expected: "Notices",
            got: other.kind().into(),
        }
        .into()),
    }
}

/// Watches the center's key registry: sends the version the station has, then hands
/// every registry the center sends (`SignedRegistry` bytes, unchecked: the caller checks
/// the officers' signatures) to `on_registry`, until the connection ends. An error from
/// `on_registry` ends the watch.
pub async fn watch_registry(
    conn: &quinn::Connection,
    have_version: u64,
    on_registry: impl FnMut(Vec<u8>) -> Result<()>,
) -> Result<()> {
    let take = |m| match m {
        Message::Registry { signed } => Some(signed),
        _ => None,
    };
    watch_signed(
        conn,
        Message::WatchRegistry { have_version },
        "Registry",
        take,
        on_registry,
    )
    .await
}

/// Watches the station revocation list upstream (a relay does): sends the CRL number of
/// the list it holds, then hands every newer list (DER, unchecked: the caller checks the
/// CA's signature) to `on_list`, until the connection ends. An error from `on_list` ends
/// the watch.
pub async fn watch_revocations(
    conn: &quinn::Connection,
    have_number: u64,
    on_list: impl FnMut(Vec<u8>) -> Result<()>,
) -> Result<()> {
    let take = |m| match m {
        Message::Revocations { crl } => Some(crl),
        _ => None,
    };
    watch_signed(
        conn,
        Message::WatchRevocations { have_number },
        "Revocations",
        take,
        on_list,
    )
    .await
}

/// Sends `ask` on a new stream, then hands each answer `take` accepts to `on_update`.
async fn watch_signed(
    conn: &quinn::Connection,
    ask: Message,
    expected: &'static str,
    take: impl Fn(Message) -> Option<Vec<u8>>,
    mut on_update: impl FnMut(Vec<u8>) -> Result<()>,
) -> Result<()> {
    let (mut send, mut recv) = conn.open_bi().await.map_err(|e| Error::Connection(e.to_string()))?;
    write_message(&mut send, &ask).await?;
    loop {
        match read_message(&mut recv).await? {
            None => return Ok(()),
            Some(Message::Reject { reason, detail }) => return Err(ProtocolError::Refused { reason, detail }.into()),
            Some(msg) => {
                let got = msg.kind();
                match take(msg) {
                    Some(bytes) => on_update(bytes)?,
                    None => {
                        return Err(ProtocolError::Unexpected {
                            expected,
                            got: got.into(),
                        }
                        .into())
                    }
                }
            }
        }
    }
}

async fn next(recv: &mut quinn::RecvStream) -> Result<crate::Message> {
    read_message(recv)
        .await?
        .ok_or_else(|| Error::Connection("the center closed the stream before answering".into()))
}

/// The `Data` frame of `n` bytes of the envelope at `at`, read straight into the frame
/// after its head: the chunk is copied once, from the page cache, and handed to quinn as
/// it is (no second buffer, no copy into the stream).
fn data_frame(file: &std::fs::File, at: u64, n: usize, path: &Path) -> Result<bytes::Bytes> {
    use std::io::{Read, Seek, SeekFrom};
    let mut frame = crate::frame::data_frame_head(at, n)?;
    let head = frame.len();
    frame.reserve_exact(n);
    let mut reader = file;
    reader.seek(SeekFrom::Start(at))?;
    reader.take(n as u64).read_to_end(&mut frame)?;
    if frame.len() != head + n {
        return Err(Error::Storage(format!(
            "envelope {} ended at {} while {n} bytes from {at} were to be sent; it changed on disk and cannot be sent",
            path.display(),
            at + (frame.len() - head) as u64
        )));
    }
    Ok(frame.into())
}
