//! Frames: `[u32 little-endian body length][postcard body]`. The length is checked
//! against a hard maximum before anything is allocated for the body, so a peer cannot
//! make us reserve memory by announcing a huge frame.

use postcard::ser_flavors::Size;

use crate::{Error, Message, Result};

/// Largest frame body accepted.
pub const MAX_FRAME_LEN: usize = 2 * 1024 * 1024;
/// Largest payload of one `Data` message; half of [`MAX_FRAME_LEN`] leaves ample room for
/// the message's own fields.
pub const DATA_CHUNK: usize = 1024 * 1024;

const PREFIX: usize = 4;

/// Encodes one message as a frame.
pub fn encode(msg: &Message) -> Result<Vec<u8>> {
    let mut frame = Vec::new();
    encode_into(msg, &mut frame)?;
    Ok(frame)
}

/// Appends one message as a frame to `out`; on error `out` is left as it was.
pub fn encode_into(msg: &Message, out: &mut Vec<u8>) -> Result<()> {
    // Measuring first costs a walk over the fields but no copy, and lets an oversized
    // message fail before a byte of it is buffered.
    let len =
        postcard::serialize_with_flavor(msg, Size::default()).map_err(|e| Error::MalformedFrame(e.to_string()))?;
    if len > MAX_FRAME_LEN {
        return Err(Error::FrameTooLarge {
            len,
            max: MAX_FRAME_LEN,
        });
    }
    let start = out.len();
    out.reserve(PREFIX + len);
    // `len ≤ MAX_FRAME_LEN` was checked above, so it fits in the u32 prefix.
    out.extend_from_slice(&(len as u32).to_le_bytes());
    if let Err(e) = postcard::to_io(msg, &mut *out) {
        out.truncate(start);
        return Err(Error::MalformedFrame(e.to_string()));
    }
    debug_assert_eq!(
        out.len() - start,
        PREFIX + len,
        "postcard's Size flavor measured the same bytes"
    );
    Ok(())
}

/// Decodes a frame body; trailing bytes are an error, since they mean the peer and we
/// disagree on the message layout.
pub fn decode_body(body: &[u8]) -> Result<Message> {
    let (msg, rest) = postcard::take_from_bytes(body).map_err(|e| Error::MalformedFrame(e.to_string()))?;
    if !rest.is_empty() {
        return Err(Error::MalformedFrame(format!("{} bytes after the message", rest.len())));
    }
    Ok(msg)
}

/// The start of a `Data` frame: the length prefix and the message's fields up to its
/// bytes, the same bytes [`encode`] writes for `Message::Data { offset, bytes }` with
/// `len` bytes. The caller appends exactly `len` bytes, read straight from the envelope
/// into the frame, so a chunk is copied once on its way to the transport.
pub fn data_frame_head(offset: u64, len: usize) -> Result<Vec<u8>> {
    let mut head = vec![0u8; PREFIX];
    postcard::to_io(&(data_variant(), offset, len as u64), &mut head)
        .map_err(|e| Error::MalformedFrame(e.to_string()))?;
    let body = head.len() - PREFIX + len;
    if body > MAX_FRAME_LEN {
        return Err(Error::FrameTooLarge {
            len: body,
            max: MAX_FRAME_LEN,
        });
    }
    // `body ≤ MAX_FRAME_LEN` was checked above, so it fits in the u32 prefix.
    head[..PREFIX].copy_from_slice(&(body as u32).to_le_bytes());
    Ok(head)
}

/// Where a `Data` message's bytes start in a frame body that begins with `head`:
/// `Some((offset, len, head_len))` when `head` opens a `Data` message, `None` for any
/// other message (or too few bytes to tell). The receiver then takes the bytes as they
/// arrive, without decoding them a second time; [`decode_body`] reads the same fields.
pub fn data_head(head: &[u8]) -> Option<(u64, usize, usize)> {
    let (variant, rest) = postcard::take_from_bytes::<u32>(head).ok()?;
    if variant != data_variant() {
        return None;
    }
    let (offset, rest) = postcard::take_from_bytes::<u64>(rest).ok()?;
    let (len, rest) = postcard::take_from_bytes::<u64>(rest).ok()?;
    Some((offset, usize::try_from(len).ok()?, head.len() - rest.len()))
}

/// The longest head [`data_head`] needs: the variant, the offset and the length, each a
/// varint of at most 10 bytes.
pub const DATA_HEAD_MAX: usize = 30;

/// `Message::Data`'s variant index, as postcard writes it (taken from an encoding, so it
/// follows the enum's order).
fn data_variant() -> u32 {
    static VARIANT: std::sync::OnceLock<u32> = std::sync::OnceLock::new();
    *VARIANT.get_or_init(|| {
        let empty = Message::Data {
            offset: 0,
            bytes: Vec::new(),
        };
        postcard::to_allocvec(&empty)
            .ok()
            .and_then(|b| postcard::take_from_bytes::<u32>(&b).ok().map(|(v, _)| v))
            .unwrap_or(u32::MAX)
    })
}

/// Reads a length prefix and checks it against `max`, before the caller allocates for it.
pub fn check_len(prefix: [u8; 4], max: usize) -> Result<usize> {
    let len = u32::from_le_bytes(prefix) as usize;
    if len > max {
        return Err(Error::FrameTooLarge { len, max });
    }
    Ok(len)
}

/// Accumulates bytes from a stream and yields whole messages (for simulations and
/// byte-stream transports). After an error the stream cannot be resynchronised: close it.
#[derive(Debug)]
pub struct FrameDecoder {
    buf: Vec<u8>,
    /// Start of the first unconsumed byte; consumed bytes are dropped lazily so popping
    /// many small frames from one big push stays linear.
    pos: usize,
    max: usize,
}

impl FrameDecoder {
    /// A decoder that refuses frames above `max` bytes.
    pub fn new(max: usize) -> Self {
        FrameDecoder {
            buf: Vec::new(),
            pos: 0,
            max,
        }
    }

    /// Adds received bytes.
    pub fn push(&mut self, bytes: &[u8]) {
        if self.pos == self.buf.len() {
            self.buf.clear();
            self.pos = 0;
        } else if self.pos > 0 && self.pos >= self.buf.len() / 2 {
            self.buf.drain(..self.pos);
            self.pos = 0;
        }
        self.buf.extend_from_slice(bytes);
    }

    /// The next whole message; `Ok(None)` when more bytes are needed.
    // Not `Iterator::next`: "incomplete" and "failed" must stay distinct for the caller.
    #[allow(clippy::should_implement_trait)]
    pub fn next(&mut self) -> Result<Option<Message>> {
        let pending = &self.buf[self.pos..];
        let Some(prefix) = pending.first_chunk::<PREFIX>() else {
            return Ok(None);
        };
        let len = check_len(*prefix, self.max)?;
        let have = pending.len();
        if have < PREFIX + len {
            // Safe to reserve now: `len` passed the maximum.
            self.buf.reserve(PREFIX + len - have);
            return Ok(None);
        }
        let body = &pending[PREFIX..PREFIX + len];
        let msg = decode_body(body);
        self.pos += PREFIX + len;
        msg.map(Some)
    }

    /// At end of input: `Err(TruncatedFrame)` if bytes of an unfinished frame remain.
    /// Call it once `next` has returned `Ok(None)`.
    pub fn finish(&self) -> Result<()> {
        if self.pos == self.buf.len() {
            Ok(())
        } else {
            Err(Error::TruncatedFrame)
        }
    }
}

#[cfg(test)]
#[path = "frame_tests.rs"]
mod tests;
