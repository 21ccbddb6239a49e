//! Reading and writing whole frames on QUIC streams, and the time and count limits that
//! keep a peer from holding a stream (and its buffer) open with a frame it never finishes.

use konvert_protocol::Error as ProtocolError;
use std::sync::Arc;
use std::time::Duration;

use quinn::{ReadExactError, RecvStream, SendStream};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use crate::frame::{self, MAX_FRAME_LEN};
use crate::{Error, Message, Result};

/// How long and how slowly a peer may send a frame to the center or a relay.
#[derive(Debug, Clone, Copy)]
pub struct FrameLimits {
    /// The longest wait for the next frame to start. A paced edge sends a chunk at least
    /// every chunk ÷ rate; at 16 kbit/s that is well under ten minutes.
    pub start: Duration,
    /// The least time any frame gets to arrive once started.
    pub floor: Duration,
    /// The slowest rate, bytes per second, at which a frame's body may arrive: a frame of
    /// `len` bytes must be whole within `floor + len / min_rate`.
    pub min_rate: u64,
    /// Frames that may be unfinished at once on one connection.
    pub unfinished_per_connection: usize,
}

impl Default for FrameLimits {
    fn default() -> Self {
        FrameLimits {
            start: Duration::from_secs(600),
            floor: Duration::from_secs(30),
            min_rate: 2 * 1024,
            unfinished_per_connection: 32,
        }
    }
}

impl FrameLimits {
    /// How long a frame of `len` bytes may take once its length arrived.
    pub fn body_time(&self, len: usize) -> Duration {
        self.floor + Duration::from_secs(len as u64 / self.min_rate.max(1))
    }
}

/// The frames being received on one connection; each stream holds a permit while a frame
/// of its is unfinished.
#[derive(Debug, Clone)]
pub struct ConnectionFrames {
    limits: FrameLimits,
    unfinished: Arc<Semaphore>,
}

impl ConnectionFrames {
    /// The budget of one connection.
    pub fn new(limits: FrameLimits) -> Self {
        ConnectionFrames {
            limits,
            unfinished: Arc::new(Semaphore::new(limits.unfinished_per_connection)),
        }
    }

    fn begin(&self) -> Result<OwnedSemaphorePermit> {
        self.unfinished
            .clone()
            .try_acquire_owned()
            .map_err(|_| Error::TooManyUnfinished(self.limits.unfinished_per_connection))
    }
}

/// Writes one message as a frame.
pub async fn write_message(send: &mut SendStream, msg: &Message) -> Result<()> {
    let buf = frame::encode(msg)?;
    send.write_all(&buf).await.map_err(|e| Error::Connection(e.to_string()))
}

/// Reads one frame. `Ok(None)` is a clean end of stream at a frame boundary; an end in
/// the middle of a frame is `TruncatedFrame`. The length is checked before allocating.
/// No time limit: for the edge, reading what its own center sends.
pub async fn read_message(recv: &mut RecvStream) -> Result<Option<Message>> {
    let mut prefix = [0u8; 4];
    match recv.read_exact(&mut prefix).await {
        Ok(()) => {}
        Err(ReadExactError::FinishedEarly(0)) => return Ok(None),
        Err(ReadExactError::FinishedEarly(_)) => return Err(ProtocolError::TruncatedFrame.into()),
        Err(ReadExactError::ReadError(e)) => return Err(Error::Connection(e.to_string())),
    }
    let len = frame::check_len(prefix, MAX_FRAME_LEN)?;
    let mut body = vec![0u8; len];
    match recv.read_exact(&mut body).await {
        Ok(()) => {}
        Err(ReadExactError::FinishedEarly(_)) => return Err(ProtocolError::TruncatedFrame.into()),
        Err(ReadExactError::ReadError(e)) => return Err(Error::Connection(e.to_string())),
    }
    Ok(frame::decode_body(&body).map(Some)?)
}

/// Reads one frame from a peer that is not trusted to finish it: it must start within
/// `limits.start` and be whole within [`FrameLimits::body_time`]; while it is unfinished it
/// holds one of the connection's permits, and the body buffer grows only as bytes arrive.
pub async fn read_message_bounded(recv: &mut RecvStream, frames: &ConnectionFrames) -> Result<Option<Message>> {
    let limits = frames.limits;
    let mut first = [0u8; 1];
    match tokio::time::timeout(limits.start, recv.read(&mut first)).await {
        Err(_) => {
            return Err(Error::FrameTimeout {
                seconds: limits.start.as_secs(),
                what: "waiting for the next frame",
            })
        }
        Ok(Ok(None)) => return Ok(None),
        Ok(Ok(Some(0))) => return Err(ProtocolError::TruncatedFrame.into()),
        Ok(Ok(Some(_))) => {}
        Ok(Err(e)) => return Err(Error::Connection(e.to_string())),
    }
    let _permit = frames.begin()?;
    let mut prefix = [first[0], 0, 0, 0];
    let prefix_time = limits.floor;
    match tokio::time::timeout(prefix_time, recv.read_exact(&mut prefix[1..])).await {
        Err(_) => {
            return Err(Error::FrameTimeout {
                seconds: prefix_time.as_secs(),
                what: "the frame's length",
            })
        }
        Ok(Ok(())) => {}
        Ok(Err(ReadExactError::FinishedEarly(_))) => return Err(ProtocolError::TruncatedFrame.into()),
        Ok(Err(ReadExactError::ReadError(e))) => return Err(Error::Connection(e.to_string())),
    }
    let len = frame::check_len(prefix, MAX_FRAME_LEN)?;
    let budget = limits.body_time(len);
    let received = tokio::time::timeout(budget, async {
        // The frame's first bytes, enough to tell a Data frame by its head.
        let mut body = Vec::new();
        // A Data frame's bytes after its head, as quinn handed them (no copy yet): they
        // become the message in one copy into a buffer of the frame's size once all are
        // here. Growing one buffer as chunks arrived copied each byte twice more
        // (`konvert bench transfer` under perf: a tenth of the center's CPU).
        let mut parts: Vec<bytes::Bytes> = Vec::new();
        let mut data: Option<(u64, usize)> = None;
        let mut decided = false;
        let mut taken = 0;
        while taken < len {
            match recv.read_chunk(len - taken, true).await {
                Ok(Some(chunk)) => {
                    taken += chunk.bytes.len();
                    if data.is_some() {
                        parts.push(chunk.bytes);
                    } else {
                        body.extend_from_slice(&chunk.bytes);
                    }
                }
                Ok(None) => return Err(ProtocolError::TruncatedFrame.into()),
                Err(e) => return Err(Error::Connection(e.to_string())),
            }
            if !decided && body.len() >= len.min(frame::DATA_HEAD_MAX) {
                decided = true;
                if let Some((offset, bytes, head)) = frame::data_head(&body) {
                    if head.checked_add(bytes) == Some(len) {
                        data = Some((offset, head));
                    }
                }
            }
        }
        Ok(match data {
            Some((offset, head)) => {
                // Every byte of the frame is here: its size is no longer only a claim.
                let mut bytes = Vec::with_capacity(len - head);
                bytes.extend_from_slice(body.get(head..).unwrap_or_default());
                for part in &parts {
                    bytes.extend_from_slice(part);
                }
                (Some(offset), bytes)
            }
            None => (None, body),
        })
    })
    .await
    .map_err(|_| Error::FrameTimeout {
        seconds: budget.as_secs(),
        what: "the rest of a started frame",
    })??;
    match received {
        (Some(offset), bytes) => Ok(Some(Message::Data { offset, bytes })),
        (None, body) => Ok(frame::decode_body(&body).map(Some)?),
    }
}
