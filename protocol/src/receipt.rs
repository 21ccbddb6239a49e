//! Receipts: the center's signed statement that it holds a packet durably.

use konvert_crypto::{Domain, KeyId, Signature, SigningKey, VerifyingKey};
use serde::{Deserialize, Serialize};

use crate::{Error, Offer, Result};

/// What the center vouches for.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReceiptBody {
    /// The packet id.
    pub packet_id: String,
    /// The packet version.
    pub version: u32,
    /// The envelope's site (delivered by its own station, or through a relay carrying it).
    pub site: String,
    /// The envelope id of the stored envelope.
    pub digest: [u8; 32],
    /// Size of the stored envelope file.
    pub bytes: u64,
    /// The center's clock when the packet became durable.
    pub received_at_unix_ms: u64,
    /// The key id of the center's receipt key.
    pub center_key: KeyId,
}

/// A receipt signed by the center's receipt key.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Receipt {
    /// The signed content.
    pub body: ReceiptBody,
    /// Ed25519 over the postcard encoding of `body`, domain `Receipt`.
    pub signature: Signature,
}

fn body_bytes(body: &ReceiptBody) -> Result<Vec<u8>> {
    postcard::to_allocvec(body).map_err(|e| Error::BadReceipt(format!("cannot encode: {e}")))
}

impl Receipt {
    /// Signs `body` with the center's receipt key.
    pub fn sign(mut body: ReceiptBody, key: &SigningKey) -> Result<Self> {
        body.center_key = key.key_id();
        let signature = key.sign(Domain::Receipt, &body_bytes(&body)?);
        Ok(Receipt { body, signature })
    }

    /// Checks the signature against the center's receipt key.
    pub fn verify(&self, center: &VerifyingKey) -> Result<()> {
        if self.body.center_key != center.key_id() {
            return Err(Error::BadReceipt(format!(
                "signed by key {}, expected the center's key {}",
                self.body.center_key,
                center.key_id()
            )));
        }
        center
            .verify(Domain::Receipt, &body_bytes(&self.body)?, &self.signature)
            .map_err(|_| Error::BadReceipt("signature does not verify against the center's key".into()))
    }

    /// Checks the signature and that the receipt is for exactly this offer.
    pub fn verify_for(&self, center: &VerifyingKey, offer: &Offer) -> Result<()> {
        self.verify(center)?;
        let b = &self.body;
        if b.packet_id != offer.packet_id
            || b.version != offer.version
            || b.digest != offer.digest
            || b.bytes != offer.size
        {
            return Err(Error::BadReceipt(format!(
                "receipt is for {} v{} ({} bytes), not for the offered {} v{} ({} bytes)",
                b.packet_id, b.version, b.bytes, offer.packet_id, offer.version, offer.size
            )));
        }
        Ok(())
    }
}

#[cfg(test)]
#[path = "receipt_tests.rs"]
mod tests;
