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
mod tests {
    use konvert_crypto::{KeyId, SigningKey};
    use proptest::prelude::*;

    use super::*;
    use crate::{Offer, Receipt, ReceiptBody, RejectReason};

    fn receipt() -> Receipt {
        let key = SigningKey::from_seed(&[3; 32]).unwrap();
        let body = ReceiptBody {
            packet_id: "p".into(),
            version: 2,
            site: "0101".into(),
            digest: [1; 32],
            bytes: 9,
            received_at_unix_ms: 77,
            center_key: KeyId([0; 16]),
        };
        Receipt::sign(body, &key).unwrap()
    }

    fn arb_message() -> impl Strategy<Value = Message> {
        let offer = (
            ".{0,40}",
            any::<u32>(),
            any::<u64>(),
            any::<[u8; 32]>(),
            any::<u8>(),
            any::<u64>(),
            any::<u64>(),
        )
            .prop_map(
                |(packet_id, version, size, digest, priority, sealed_at_unix_ms, deadline_unix_ms)| Offer {
                    packet_id,
                    version,
                    size,
                    digest,
                    priority,
                    sealed_at_unix_ms,
                    deadline_unix_ms,
                },
            );
        prop_oneof![
            (any::<u16>(), any::<u16>(), ".{0,20}", ".{0,20}").prop_map(|(min_version, max_version, site, agent)| {
                Message::Hello {
                    min_version,
                    max_version,
                    site,
                    agent,
                }
            }),
            (any::<u16>(), ".{0,20}").prop_map(|(version, center)| Message::Welcome { version, center }),
            offer.prop_map(Message::Offer),
            any::<u64>().prop_map(|resume_at| Message::Accept { resume_at }),
            Just(Message::AlreadyHave { receipt: receipt() }),
            (0usize..10, ".{0,30}").prop_map(|(r, detail)| Message::Reject {
                reason: RejectReason::ALL[r],
                detail
            }),
            (any::<u64>(), proptest::collection::vec(any::<u8>(), 0..3000))
                .prop_map(|(offset, bytes)| Message::Data { offset, bytes }),
            Just(Message::Done),
            Just(Message::Receipt { receipt: receipt() }),
        ]
    }

    proptest! {
        #[test]
        fn every_message_round_trips_in_random_pieces(msgs in proptest::collection::vec(arb_message(), 1..8), cut in 1usize..97) {
            let mut wire = Vec::new();
            for m in &msgs {
                encode_into(m, &mut wire).unwrap();
            }
            let mut dec = FrameDecoder::new(MAX_FRAME_LEN);
            let mut out = Vec::new();
            for piece in wire.chunks(cut) {
                dec.push(piece);
                while let Some(m) = dec.next_message().unwrap() {
                    out.push(m);
                }
            }
            dec.finish().unwrap();
            prop_assert_eq!(out, msgs);
        }

        #[test]
        fn random_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
            let mut dec = FrameDecoder::new(1024);
            dec.push(&bytes);
            for _ in 0..8 {
                match dec.next_message() {
                    Ok(Some(_)) => continue,
                    _ => break,
                }
            }
        }
    }

    #[test]
    fn oversized_length_is_refused_before_allocation() {
        let mut dec = FrameDecoder::new(MAX_FRAME_LEN);
        dec.push(&u32::MAX.to_le_bytes());
        assert!(matches!(dec.next_message(), Err(Error::FrameTooLarge { len, .. }) if len == u32::MAX as usize));
        assert!(check_len(((MAX_FRAME_LEN + 1) as u32).to_le_bytes(), MAX_FRAME_LEN).is_err());
        let big = Message::Data {
            offset: 0,
            bytes: vec![0; MAX_FRAME_LEN + 1],
        };
        assert!(matches!(encode(&big), Err(Error::FrameTooLarge { .. })));
    }

    #[test]
    fn truncated_and_garbage_frames() {
        let wire = encode(&Message::Done).unwrap();
        let mut dec = FrameDecoder::new(MAX_FRAME_LEN);
        dec.push(&wire[..wire.len() - 1]);
        assert!(dec.next_message().unwrap().is_none());
        assert!(matches!(dec.finish(), Err(Error::TruncatedFrame)));
        let mut dec = FrameDecoder::new(MAX_FRAME_LEN);
        dec.push(&[3, 0, 0, 0, 0xff, 0xff, 0xff]);
        assert!(matches!(dec.next_message(), Err(Error::MalformedFrame(_))));
        assert!(matches!(decode_body(&[7, 1, 2]), Err(Error::MalformedFrame(_))));
    }
}
