//! One packet's exchange through the real sans-IO state machines: konvert's `PacketSender`
//! at the edge and `PacketReceiver` at the center pass every message of the protocol — Offer,
//! Accept (with the resume offset after a reconnect), each 1 MiB Data frame, Done, and a
//! receipt really signed with the center's Ed25519 key and verified by the sender against the
//! offer. Not real: the envelope's bytes (a recycled zero buffer, not a sealed envelope, so
//! the center's envelope verification and fsync are not run) and the framing on the wire.

use anyhow::{bail, Context};
use konvert_crypto::{KeyId, SigningKey, VerifyingKey};
use konvert_replication::{Offer, PacketReceiver, PacketSender, Receipt, ReceiptBody, ReceiverEvent, SenderEvent};

/// The center's side of the simulation: its receipt key.
#[derive(Debug)]
pub(super) struct SimCenter {
    key: SigningKey,
    verifying: VerifyingKey,
    /// Receipts signed (and verified by the edges).
    pub(super) receipts: u64,
    /// Data frames that passed both state machines.
    pub(super) data_frames: u64,
}

impl SimCenter {
    /// A center with a receipt key from `seed`.
    pub(super) fn new(seed: u64) -> anyhow::Result<Self> {
        let mut s = [7u8; 32];
        s[..8].copy_from_slice(&seed.to_le_bytes());
        let key = SigningKey::from_seed(&s).context("center receipt key")?;
        let verifying = key.verifying_key();
        Ok(SimCenter {
            key,
            verifying,
            receipts: 0,
            data_frames: 0,
        })
    }
}

/// A packet in flight between one site and the center.
#[derive(Debug)]
pub(super) struct Exchange {
    site: String,
    sender: PacketSender,
    receiver: PacketReceiver,
    /// Bytes the network delivered for this exchange but not yet a whole Data frame.
    credit: u64,
    /// The envelope bytes the center holds (the resume offset after a reconnect).
    pub(super) acked: u64,
    buf: Vec<u8>,
}

impl Exchange {
    /// Opens the exchange: Offer → Accept{resume_at}.
    pub(super) fn open(
        center: &SimCenter,
        site: &str,
        offer: Offer,
        resume_at: u64,
        buf: Vec<u8>,
    ) -> anyhow::Result<Self> {
        let mut sender = PacketSender::new(offer, center.verifying);
        let mut receiver = PacketReceiver::new(u64::MAX);
        let ReceiverEvent::Offered(_) = receiver.handle(sender.start()?)? else {
            bail!("the receiver did not see an offer");
        };
        let accept = receiver.accept(resume_at)?;
        match sender.handle(accept)? {
            SenderEvent::SendFrom(at) if at == resume_at => {}
            other => bail!("unexpected answer to Accept: {other:?}"),
        }
        Ok(Exchange {
            site: site.to_owned(),
            sender,
            receiver,
            credit: 0,
            acked: resume_at,
            buf,
        })
    }

    /// The packet id.
    pub(super) fn id(&self) -> &str {
        &self.sender.offer().packet_id
    }

    /// Bytes still to deliver.
    pub(super) fn remaining(&self) -> u64 {
        self.sender.offer().size - self.acked - self.credit
    }

    /// Feeds `bytes` the network delivered; returns how many it used (the rest belongs to
    /// the next packet) and whether the packet is now delivered with a verified receipt.
    pub(super) fn feed(&mut self, center: &mut SimCenter, bytes: u64, now_unix_ms: u64) -> anyhow::Result<(u64, bool)> {
        let used = bytes.min(self.remaining());
        self.credit += used;
        while let Some((offset, len)) = self.peek_chunk() {
            if self.credit < len as u64 {
                break;
            }
            let Some((at, n)) = self.sender.next_chunk() else { break };
            debug_assert_eq!((at, n), (offset, len));
            let mut buf = std::mem::take(&mut self.buf);
            buf.resize(n, 0);
            match self.receiver.handle(self.sender.data(at, buf))? {
                ReceiverEvent::Write { offset, bytes } => {
                    self.acked = offset + bytes.len() as u64;
                    self.buf = bytes;
                }
                other => bail!("unexpected receiver event for Data: {other:?}"),
            }
            self.credit -= n as u64;
            center.data_frames += 1;
        }
        if self.acked < self.sender.offer().size {
            return Ok((used, false));
        }
        let ReceiverEvent::Complete = self.receiver.handle(self.sender.finish()?)? else {
            bail!("the receiver did not complete");
        };
        let offer = self.sender.offer().clone();
        let body = ReceiptBody {
            packet_id: offer.packet_id.clone(),
            version: offer.version,
            site: self.site.clone(),
            digest: offer.digest,
            bytes: offer.size,
            received_at_unix_ms: now_unix_ms,
            center_key: KeyId([0; 16]),
        };
        let receipt = self.receiver.receipt(Receipt::sign(body, &center.key)?)?;
        match self.sender.handle(receipt)? {
            SenderEvent::Delivered(_) => {}
            other => bail!("unexpected sender event for the receipt: {other:?}"),
        }
        center.receipts += 1;
        Ok((used, true))
    }

    /// The next Data range without taking it (the sender hands out ranges one at a time).
    fn peek_chunk(&self) -> Option<(u64, usize)> {
        let size = self.sender.offer().size;
        let next = self.acked;
        (next < size).then(|| {
            (
                next,
                (size - next).min(konvert_replication::frame::DATA_CHUNK as u64) as usize,
            )
        })
    }

    /// Bytes the network delivered that were not yet a whole Data frame: lost if the
    /// connection drops now (they are sent again after the resume).
    pub(super) fn partial_bytes(&self) -> u64 {
        self.credit
    }

    /// Gives back the reusable buffer.
    pub(super) fn into_buf(self) -> Vec<u8> {
        self.buf
    }
}

/// The offer for a simulated packet (the digest names the packet, not real bytes).
pub(super) fn offer(id: &str, priority: u8, size: u64, sealed_at: u64, deadline: u64) -> Offer {
    let mut digest = [0u8; 32];
    for (i, b) in id.bytes().enumerate() {
        digest[i % 32] ^= b.rotate_left(i as u32 % 8);
    }
    Offer {
        packet_id: id.to_owned(),
        version: 1,
        size,
        digest,
        priority,
        sealed_at_unix_ms: sealed_at,
        deadline_unix_ms: deadline,
    }
}
