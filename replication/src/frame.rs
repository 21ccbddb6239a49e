//! Frames: `[u32 little-endian body length][postcard body]`. The length is checked
//! against a hard maximum before anything is allocated for the body.

use crate::{Error, Message, Result};

/// Largest frame body accepted.
pub const MAX_FRAME_LEN: usize = 2 * 1024 * 1024;
/// Largest payload of one `Data` message (leaves room for the envelope of the frame).
pub const DATA_CHUNK: usize = 1024 * 1024;

/// Encodes one message as a frame, serializing straight into the frame buffer (one copy
/// of a Data payload, not two).
pub fn encode(msg: &Message) -> Result<Vec<u8>> {
    let capacity = match msg {
        Message::Data { bytes, .. } => bytes.len() + 32,
        _ => 256,
    };
    let mut frame = Vec::with_capacity(capacity);
    frame.extend_from_slice(&[0u8; 4]);
    let mut frame = postcard::to_extend(msg, frame).map_err(|e| Error::MalformedFrame(e.to_string()))?;
    let len = frame.len() - 4;
    if len > MAX_FRAME_LEN {
        return Err(Error::FrameTooLarge {
            len,
            max: MAX_FRAME_LEN,
        });
    }
    frame[..4].copy_from_slice(&(len as u32).to_le_bytes());
    Ok(frame)
}

/// Appends one message as a frame to `out`.
pub fn encode_into(msg: &Message, out: &mut Vec<u8>) -> Result<()> {
    out.extend_from_slice(&encode(msg)?);
    Ok(())
}

/// Decodes a frame body; trailing bytes are an error.
pub fn decode_body(body: &[u8]) -> Result<Message> {
    let (msg, rest) = postcard::take_from_bytes(body).map_err(|e| Error::MalformedFrame(e.to_string()))?;
    if !rest.is_empty() {
        return Err(Error::MalformedFrame(format!("{} bytes after the message", rest.len())));
    }
    Ok(msg)
}

/// Reads a length prefix and checks it against `max`.
pub fn check_len(prefix: [u8; 4], max: usize) -> Result<usize> {
    let len = u32::from_le_bytes(prefix) as usize;
    if len > max {
        return Err(Error::FrameTooLarge { len, max });
    }
    Ok(len)
}

/// Accumulates bytes and yields whole frames (for simulations and byte-stream transports).
#[derive(Debug)]
pub struct FrameDecoder {
    buf: Vec<u8>,
    max: usize,
}

impl FrameDecoder {
    /// A decoder that refuses frames above `max` bytes.
    pub fn new(max: usize) -> Self {
        FrameDecoder { buf: Vec::new(), max }
    }

    /// Adds received bytes.
    pub fn push(&mut self, bytes: &[u8]) {
        self.buf.extend_from_slice(bytes);
    }

    /// The next whole message; `Ok(None)` when more bytes are needed.
    pub fn next_message(&mut self) -> Result<Option<Message>> {
        if self.buf.len() < 4 {
            return Ok(None);
        }
        let len = check_len([self.buf[0], self.buf[1], self.buf[2], self.buf[3]], self.max)?;
        if self.buf.len() < 4 + len {
            return Ok(None);
        }
        let msg = decode_body(&self.buf[4..4 + len]);
        self.buf.drain(..4 + len);
        msg.map(Some)
    }

    /// At end of input: an error if a partial frame is buffered.
    pub fn finish(&self) -> Result<()> {
        if self.buf.is_empty() {
            Ok(())
        } else {
            Err(Error::TruncatedFrame)
        }
    }
}

#[cfg(test)]
#[path = "frame_tests.rs"]
mod tests;
