//! Messages of the mirror and their encoding: `[u16 LE format version][postcard body]`,
//! at most [`MAX_MESSAGE_LEN`] bytes, checked before anything is parsed.

use std::fmt;

use konvert_crypto::{Domain, KeyId, Signature, SigningKey, VerifyingKey};
use serde::{Deserialize, Serialize};

use crate::{Error, Node, RecordKind, Refusal, Result};

/// The wire format this crate speaks. A message of another version is refused before its
/// body is parsed, since its layout may differ.
pub const FORMAT_VERSION: u16 = 1;
/// Largest payload of one row. Rows carry records, not images: appeal documents' images
/// travel by reference to the content-addressed image store, so 64 KiB is ample.
pub const MAX_ROW_PAYLOAD: usize = 64 * 1024;
/// Most rows in one batch.
pub const MAX_BATCH_ROWS: usize = 4096;
/// Most payload bytes in one batch (the sum of its rows').
pub const MAX_BATCH_BYTES: usize = 1024 * 1024;
/// Largest encoded message: one full batch plus ample room for its headers and the
/// per-row length prefixes.
pub const MAX_MESSAGE_LEN: usize = MAX_BATCH_BYTES + 64 * 1024;

const PREFIX: usize = 2;

/// A SHA-256 digest; the default is [`Digest::ZERO`].
#[derive(Clone, Copy, Default, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct Digest(pub [u8; 32]);

impl Digest {
    /// The "previous batch" of a channel's first batch.
    pub const ZERO: Digest = Digest([0; 32]);

    fn of(label: &[u8], parts: &[&[u8]]) -> Digest {
        let mut ctx = ring::digest::Context::new(&ring::digest::SHA256);
        ctx.update(label);
        for p in parts {
            ctx.update(p);
        }
        let mut d = [0u8; 32];
        d.copy_from_slice(ctx.finish().as_ref());
        Digest(d)
    }
}

impl fmt::Debug for Digest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for b in &self.0[..6] {
            write!(f, "{b:02x}")?;
        }
        f.write_str("…")
    }
}

impl fmt::Display for Digest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for b in &self.0 {
            write!(f, "{b:02x}")?;
        }
        Ok(())
    }
}

/// One row of an owner's outbox: a change to one kind of record, addressed to one peer.
/// The sequence number counts per (peer, kind) from 1, with no gaps.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OutboxRow {
    /// The node the row is addressed to (for a federal row: the one region it concerns).
    pub peer: Node,
    /// The kind of record.
    pub kind: RecordKind,
    /// The row's number in its (peer, kind) sequence, from 1.
    pub seq: u64,
    /// The record's bytes, at most [`MAX_ROW_PAYLOAD`].
    #[serde(with = "serde_bytes")]
    pub payload: Vec<u8>,
    /// [`OutboxRow::digest_of`] the fields above, so the audit trail can name a row.
    pub digest: Digest,
}

impl OutboxRow {
    /// A row with its digest; refuses a payload over [`MAX_ROW_PAYLOAD`].
    pub fn new(owner: Node, peer: Node, kind: RecordKind, seq: u64, payload: Vec<u8>) -> Result<Self> {
        if payload.len() > MAX_ROW_PAYLOAD {
            return Err(Error::RowTooLarge {
                len: payload.len(),
                max: MAX_ROW_PAYLOAD,
            });
        }
        let digest = Self::digest_of(owner, peer, kind, seq, &payload);
        Ok(OutboxRow {
            peer,
            kind,
            seq,
            payload,
            digest,
        })
    }

    /// SHA-256 over the owner, peer, kind, sequence number and payload: the same bytes
    /// under another address or number are another row.
    pub fn digest_of(owner: Node, peer: Node, kind: RecordKind, seq: u64, payload: &[u8]) -> Digest {
        let (o, p) = (owner.tag(), peer.tag());
        Digest::of(
            b"konvert/v1/mirror-row\0",
            &[
                &o,
                &p,
                &[kind.code()],
                &seq.to_le_bytes(),
                &(payload.len() as u64).to_le_bytes(),
                payload,
            ],
        )
    }
}

/// What a batch says, before its signature: rows `first_seq ..` of one (sender,
/// receiver, kind) channel, chained to the previous batch of that channel.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BatchBody {
    /// The version of the records' schema the rows are written in.
    pub schema: u16,
    /// The owner that cut and signed the batch.
    pub from: Node,
    /// The node the batch is addressed to.
    pub to: Node,
    /// The kind of every row in the batch.
    pub kind: RecordKind,
    /// The sequence number of the first row; the others follow without gaps.
    pub first_seq: u64,
    /// The digest of the previous batch of this channel ([`Digest::ZERO`] for the first).
    pub prev: Digest,
    /// The rows' payloads, in sequence order.
    pub rows: Vec<serde_bytes::ByteBuf>,
}

impl BatchBody {
    /// The sequence number of the last row.
    pub fn last_seq(&self) -> u64 {
        self.first_seq + (self.rows.len() as u64).saturating_sub(1)
    }

    /// SHA-256 over the body's postcard encoding: what the owner signs, what the next
    /// batch chains to and what the receipt carries.
    pub fn digest(&self) -> Result<Digest> {
        let bytes = postcard::to_allocvec(self).map_err(|e| Error::Malformed(e.to_string()))?;
        Ok(Digest::of(b"konvert/v1/mirror-batch-digest\0", &[&bytes]))
    }

    /// Checks the limits a sender must keep and a receiver enforces.
    pub fn check_limits(&self) -> std::result::Result<(), Refusal> {
        if self.rows.is_empty() {
            return Err(Refusal::Malformed("a batch without rows".into()));
        }
        if self.first_seq == 0 {
            return Err(Refusal::Malformed("sequence numbers start at 1".into()));
        }
        if self.first_seq.checked_add(self.rows.len() as u64).is_none() {
            return Err(Refusal::Malformed("sequence numbers overflow".into()));
        }
        if self.rows.len() > MAX_BATCH_ROWS {
            return Err(Refusal::Malformed(format!(
                "{} rows, at most {MAX_BATCH_ROWS} in a batch",
                self.rows.len()
            )));
        }
        if let Some(big) = self.rows.iter().position(|r| r.len() > MAX_ROW_PAYLOAD) {
            return Err(Refusal::Malformed(format!(
                "row {} has {} bytes, at most {MAX_ROW_PAYLOAD}",
                self.first_seq + big as u64,
                self.rows[big].len()
            )));
        }
        let total: usize = self.rows.iter().map(|r| r.len()).sum();
        if total > MAX_BATCH_BYTES {
            return Err(Refusal::Malformed(format!(
                "{total} payload bytes, at most {MAX_BATCH_BYTES} in a batch"
            )));
        }
        Ok(())
    }
}

/// A batch signed by its owner.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SignedBatch {
    /// The batch.
    pub body: BatchBody,
    /// The id of the key that signed it, so a wrong signer is named, not just refused.
    pub signer: KeyId,
    /// The signature over the body's digest, [`Domain::MirrorBatch`].
    pub signature: Signature,
}

impl SignedBatch {
    /// Signs `body` with `key`.
    pub fn sign(body: BatchBody, key: &SigningKey) -> Result<Self> {
        let digest = body.digest()?;
        Ok(SignedBatch {
            signature: key.sign(Domain::MirrorBatch, &digest.0),
            signer: key.key_id(),
            body,
        })
    }
}

/// What a receipt says: the receiver applied (now or before) the batch with this digest.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReceiptBody {
    /// The node that applied the batch and signs the receipt.
    pub from: Node,
    /// The owner that sent the batch.
    pub to: Node,
    /// The batch's kind.
    pub kind: RecordKind,
    /// The batch's first row.
    pub first_seq: u64,
    /// The batch's last row.
    pub last_seq: u64,
    /// The batch's digest.
    pub batch: Digest,
}

/// A receipt signed by the receiver.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SignedReceipt {
    /// The receipt.
    pub body: ReceiptBody,
    /// The id of the receiver's key.
    pub signer: KeyId,
    /// The signature over the body's postcard encoding, [`Domain::MirrorReceipt`].
    pub signature: Signature,
}

impl SignedReceipt {
    /// Signs `body` with `key`.
    pub fn sign(body: ReceiptBody, key: &SigningKey) -> Result<Self> {
        let bytes = postcard::to_allocvec(&body).map_err(|e| Error::Malformed(e.to_string()))?;
        Ok(SignedReceipt {
            signature: key.sign(Domain::MirrorReceipt, &bytes),
            signer: key.key_id(),
            body,
        })
    }

    /// Checks the signature with the receiver's configured key.
    pub fn verify(&self, key: &VerifyingKey) -> Result<()> {
        if self.signer != key.key_id() {
            return Err(Error::BadReceipt(format!(
                "signed by key {}, the configured key of {} is {}",
                self.signer,
                self.body.from,
                key.key_id()
            )));
        }
        let bytes = postcard::to_allocvec(&self.body).map_err(|e| Error::Malformed(e.to_string()))?;
        key.verify(Domain::MirrorReceipt, &bytes, &self.signature)
            .map_err(|_| Error::BadReceipt(format!("bad signature of {}", self.body.from)))
    }
}

/// The receiver's answer to a batch it did not apply. Unsigned: it never moves a
/// checkpoint, only makes the sender resend sooner (a retryable reason) or stop the
/// channel and report (any other).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RefusalNotice {
    /// The receiver.
    pub from: Node,
    /// The node the refused batch claimed to come from.
    pub to: Node,
    /// The refused batch's kind.
    pub kind: RecordKind,
    /// The refused batch's first row.
    pub first_seq: u64,
    /// The refused batch's digest.
    pub batch: Digest,
    /// Why.
    pub reason: Refusal,
}

/// A message of the mirror.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Message {
    /// Owner to receiver: rows to apply.
    Batch(SignedBatch),
    /// Receiver to owner: a batch applied.
    Receipt(SignedReceipt),
    /// Receiver to owner: a batch not applied, and why.
    Refusal(RefusalNotice),
}

/// Encodes a message: the format version, then postcard. Refuses a message over
/// [`MAX_MESSAGE_LEN`] (a sender cutting within the batch limits never makes one).
pub fn encode(msg: &Message) -> Result<Vec<u8>> {
    let mut out = Vec::with_capacity(PREFIX + 128);
    out.extend_from_slice(&FORMAT_VERSION.to_le_bytes());
    let out = postcard::to_extend(msg, out).map_err(|e| Error::Malformed(e.to_string()))?;
    if out.len() > MAX_MESSAGE_LEN {
        return Err(Error::TooLarge {
            len: out.len(),
            max: MAX_MESSAGE_LEN,
        });
    }
    Ok(out)
}

/// Decodes a message. The length is checked before anything is parsed, then the format
/// version; trailing bytes are an error (the peer and we disagree on the layout).
pub fn decode(bytes: &[u8]) -> Result<Message> {
    if bytes.len() > MAX_MESSAGE_LEN {
        return Err(Error::TooLarge {
            len: bytes.len(),
            max: MAX_MESSAGE_LEN,
        });
    }
    let Some((version, body)) = bytes.split_first_chunk::<PREFIX>() else {
        return Err(Error::Malformed("shorter than the format version".into()));
    };
    let version = u16::from_le_bytes(*version);
    if version != FORMAT_VERSION {
        return Err(Error::UnknownFormat {
            got: version,
            known: FORMAT_VERSION,
        });
    }
    let (msg, rest) = postcard::take_from_bytes(body).map_err(|e| Error::Malformed(e.to_string()))?;
    if !rest.is_empty() {
        return Err(Error::Malformed(format!("{} bytes after the message", rest.len())));
    }
    Ok(msg)
}
