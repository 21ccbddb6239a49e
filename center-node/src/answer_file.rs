//! The file a batch of the loader's signed answers travels in, from the offline
//! workstation to the receiver (a drive, or a one-way folder): `KNVRTAN` and a format
//! byte, then postcard of [`AnswerBatch`]. The batch names the center it is for (the key
//! id of the center's receipt key), so a drive from another center's loader is refused
//! whole; each answer is signed on its own by a center specialist's token, so the receiver
//! can keep and audit each one apart.

use konvert_crypto::registry::RegistryBody;
use konvert_crypto::{Domain, KeyId, MemberSigner, Signature};
use konvert_replication::PacketAnswer;
use serde::{Deserialize, Serialize};

use crate::{Error, Result};

/// How a batch file's name ends.
pub const EXTENSION: &str = ".kanswers";
/// The largest batch file read: a day's answers for a region are far below it.
pub const MAX_FILE_BYTES: u64 = 64 << 20;
/// The most answers one batch carries.
pub const MAX_ANSWERS: usize = 100_000;
const MAGIC: &[u8; 7] = b"KNVRTAN";
/// The format this build writes and reads.
pub const FORMAT: u8 = 1;

/// One answer, signed by a center specialist's token.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SignedAnswer {
    /// What the loader answered.
    pub answer: PacketAnswer,
    /// The center it is for: the key id of its receipt key.
    pub center: KeyId,
    /// The key id of the specialist's token that signed.
    pub signer: KeyId,
    /// Ed25519 over postcard of (`answer`, `center`, `signer`), domain `PacketAnswer`.
    pub signature: Signature,
}

fn signed_bytes(answer: &PacketAnswer, center: &KeyId, signer: &KeyId) -> Result<Vec<u8>> {
    postcard::to_allocvec(&(answer, center, signer)).map_err(|e| refused(format!("cannot encode an answer: {e}")))
}

fn refused(what: String) -> Error {
    Error::Answers {
        what,
        hint: "nothing from this batch was taken; make the answers again on the loader's workstation",
    }
}

impl SignedAnswer {
    /// Signs `answer` for the center `center` with a specialist's token, after checking
    /// its text is bounded.
    pub fn sign(answer: PacketAnswer, center: KeyId, signer: &dyn MemberSigner) -> Result<Self> {
        answer.check().map_err(|e| Error::Answers {
            what: format!("the answer to {} v{}: {e}", answer.packet_id, answer.version),
            hint: "fix the loader's remark; nothing was written",
        })?;
        let key = signer.key_id();
        let signature = signer.sign(Domain::PacketAnswer, &signed_bytes(&answer, &center, &key)?)?;
        Ok(SignedAnswer {
            answer,
            center,
            signer: key,
            signature,
        })
    }

    /// Checks the signature against the registry's token for `signer`, which must be an
    /// Issued center specialist's; returns its token id. Says why when it is not.
    pub fn verify(&self, registry: &RegistryBody) -> std::result::Result<String, String> {
        let token = crate::loader::check_specialist_key(
            registry,
            self.signer,
            &format!(
                "the token that signed the answer to {} v{}",
                self.answer.packet_id, self.answer.version
            ),
            std::path::Path::new("answers"),
        )
        .map_err(|e| match e {
            Error::Config { message, .. } => message,
            other => other.to_string(),
        })?;
        let record = registry
            .tokens
            .iter()
            .find(|t| t.public.key_id() == self.signer)
            .ok_or("the signer's token vanished from the registry")?;
        let bytes = signed_bytes(&self.answer, &self.center, &self.signer).map_err(|e| e.to_string())?;
        record
            .public
            .verify(Domain::PacketAnswer, &bytes, &self.signature)
            .map_err(|_| format!("the signature does not verify against token {token}'s key: forged or altered"))?;
        self.answer.check()?;
        Ok(token)
    }
}

/// A batch of signed answers for one center.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AnswerBatch {
    /// The center the batch is for: the key id of its receipt key.
    pub center: KeyId,
    /// The answers.
    pub answers: Vec<SignedAnswer>,
}

impl AnswerBatch {
    /// The file's bytes.
    pub fn encode(&self) -> Result<Vec<u8>> {
        if self.answers.len() > MAX_ANSWERS {
            return Err(Error::Answers {
                what: format!("{} answers in one batch, at most {MAX_ANSWERS}", self.answers.len()),
                hint: "export them in several batches",
            });
        }
        let body = postcard::to_allocvec(self).map_err(|e| refused(format!("cannot encode the batch: {e}")))?;
        let mut out = Vec::with_capacity(MAGIC.len() + 1 + body.len());
        out.extend_from_slice(MAGIC);
        out.push(FORMAT);
        out.extend_from_slice(&body);
        if out.len() as u64 > MAX_FILE_BYTES {
            return Err(Error::Answers {
                what: format!("the batch is {} bytes, at most {MAX_FILE_BYTES}", out.len()),
                hint: "export the answers in several batches",
            });
        }
        Ok(out)
    }

    /// Reads a batch file's bytes (bounded by the caller), naming `file` in errors.
    pub fn decode(bytes: &[u8], file: &str) -> Result<Self> {
        let bad = |what: String| {
            Error::Answers {
            what: format!("{file}: {what}"),
            hint: "nothing from it was taken; it is not a batch written by `konvert-center loader answers export` — export the answers again",
        }
        };
        let rest = bytes
            .strip_prefix(MAGIC.as_slice())
            .ok_or_else(|| bad("not a file of loader answers".into()))?;
        let (&format, body) = rest
            .split_first()
            .ok_or_else(|| bad("cut off after its magic".into()))?;
        if format != FORMAT {
            return Err(Error::Answers {
                what: format!("{file}: answers in format {format}, this center reads format {FORMAT}"),
                hint: "use the same konvert release at the loader and at the receiver",
            });
        }
        let (batch, left): (AnswerBatch, &[u8]) =
            postcard::take_from_bytes(body).map_err(|e| bad(format!("damaged ({e})")))?;
        if !left.is_empty() {
            return Err(bad(format!("{} stray bytes after the batch", left.len())));
        }
        if batch.answers.len() > MAX_ANSWERS {
            return Err(bad(format!("{} answers, at most {MAX_ANSWERS}", batch.answers.len())));
        }
        Ok(batch)
    }
}

#[cfg(test)]
#[path = "answer_file_tests.rs"]
mod tests;
