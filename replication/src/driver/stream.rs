//! Reading and writing whole frames on QUIC streams.

use quinn::{ReadExactError, RecvStream, SendStream};

use crate::frame::{self, MAX_FRAME_LEN};
use crate::{Error, Message, Result};

/// Writes one message as a frame.
pub async fn write_message(send: &mut SendStream, msg: &Message) -> Result<()> {
    let buf = frame::encode(msg)?;
    send.write_all(&buf).await.map_err(|e| Error::Connection(e.to_string()))
}

/// Reads one frame. `Ok(None)` is a clean end of stream at a frame boundary; an end in
/// the middle of a frame is `TruncatedFrame`. The length is checked before allocating.
pub async fn read_message(recv: &mut RecvStream) -> Result<Option<Message>> {
    let mut prefix = [0u8; 4];
    match recv.read_exact(&mut prefix).await {
        Ok(()) => {}
        Err(ReadExactError::FinishedEarly(0)) => return Ok(None),
        Err(ReadExactError::FinishedEarly(_)) => return Err(Error::TruncatedFrame),
        Err(ReadExactError::ReadError(e)) => return Err(Error::Connection(e.to_string())),
    }
    let len = frame::check_len(prefix, MAX_FRAME_LEN)?;
    let mut body = vec![0u8; len];
    match recv.read_exact(&mut body).await {
        Ok(()) => {}
        Err(ReadExactError::FinishedEarly(_)) => return Err(Error::TruncatedFrame),
        Err(ReadExactError::ReadError(e)) => return Err(Error::Connection(e.to_string())),
    }
    frame::decode_body(&body).map(Some)
}
