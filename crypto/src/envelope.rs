//! The sealed envelope, format v2 (byte layout in `crypto/FORMAT.md`): a fixed prefix, a
//! postcard header, a header MAC keyed from the file key (the key commitment: one envelope
//! opens to one plaintext, whichever recipient opens it), the payload as 64 KiB AES-256-GCM
//! chunks (STREAM nonces: counter ‖ last-chunk flag; AAD = SHA-256 of prefix ‖ header), and
//! an Ed25519 trailer over SHA-256(prefix ‖ header ‖ MAC ‖ chunks) that anyone can check
//! without the decryption key. Format v1 (no MAC) is still read from a center's store, never
//! taken in as new (see [`verify`] and [`verify_stored`]).
//! Seal, verify and open stream with memory bounded by a few chunks. The envelope's
//! digest (its name in offers, receipts and the center's store) is the SHA-256 of the
//! whole file, computed in the same hashing pass as the signed digest.

use std::io::{self, Read, Seek, SeekFrom, Write};

use ring::aead::{Aad, LessSafeKey, Nonce, UnboundKey, AES_256_GCM};
use ring::agreement::{self, EphemeralPrivateKey, UnparsedPublicKey, X25519};
use ring::digest::{Context, SHA256};
use ring::hkdf;
use ring::hmac;
use ring::rand::SystemRandom;
use serde::{Deserialize, Serialize};
use zeroize::Zeroizing;

use crate::keys::random_bytes;
use crate::{
    Domain, Error, KeyId, MemberSigner, RecipientPublicKey, RecipientSecretKey, Result, Signature, VerifyingKey,
};

/// Plaintext bytes per chunk.
pub const CHUNK_SIZE: usize = 64 * 1024;
/// Largest header accepted, checked before it is read.
pub const MAX_HEADER_LEN: usize = 64 * 1024;
/// Magic bytes that open every envelope.
pub const MAGIC: &[u8; 8] = b"KNVRTENV";
/// Envelope format version written by [`seal`]: 2, with the header MAC (key commitment).
pub const FORMAT_VERSION: u16 = 2;
/// The first format, without key commitment: read from a center's store only.
pub const FORMAT_VERSION_V1: u16 = 1;
/// Suite 1: X25519 + HKDF-SHA256 + AES-256-GCM + Ed25519.
pub const SUITE: u16 = 1;

const PREFIX_LEN: usize = 16;
const TAG_LEN: usize = 16;
const SIG_LEN: usize = 64;
const SEALED_CHUNK: usize = CHUNK_SIZE + TAG_LEN;
const WRAPPED_LEN: usize = 32 + TAG_LEN;
const INFO_PAYLOAD: &[u8] = b"konvert/v1/payload";
const INFO_WRAP: &[u8] = b"konvert/v1/wrap";
const INFO_HEADER_MAC: &[u8] = b"konvert/v2/header-mac";
/// Bytes of the header MAC that follows the header in format v2.
pub const HEADER_MAC_LEN: usize = 32;

/// What to seal.
#[derive(Debug, Clone)]
pub struct SealRequest<'a> {
    /// The packet id.
    pub packet_id: &'a str,
    /// The packet version.
    pub version: u32,
    /// The sending site.
    pub sender_site: &'a str,
    /// When the edge sealed it (its claim; recorded, never trusted).
    pub sealed_at_unix_ms: u64,
    /// Opaque metadata (e.g. the packet's identity), bound by the signature.
    pub metadata: &'a [u8],
    /// Who can open it; at least one.
    pub recipients: &'a [RecipientPublicKey],
}

/// What sealing produced.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SealSummary {
    /// Size of the envelope.
    pub envelope_bytes: u64,
    /// Size of the plaintext.
    pub plaintext_bytes: u64,
    /// SHA-256 of the whole envelope file as written (what `sha256sum` prints).
    pub digest: [u8; 32],
}

/// The file key wrapped for one recipient.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WrappedKey {
    /// The recipient's key id.
    pub recipient: KeyId,
    /// The sender's ephemeral X25519 public key.
    pub ephemeral_public: [u8; 32],
    /// AES-256-GCM of the 32-byte file key (48 bytes).
    #[serde(with = "serde_bytes")]
    pub wrapped: Vec<u8>,
}

/// The envelope header.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EnvelopeHeader {
    /// The packet id.
    pub packet_id: String,
    /// The packet version.
    pub version: u32,
    /// The sending site.
    pub sender_site: String,
    /// The edge's claimed sealing time.
    pub sealed_at_unix_ms: u64,
    /// The signer's key id.
    pub signer: KeyId,
    /// The file key, once per recipient.
    pub recipients: Vec<WrappedKey>,
    /// HKDF salt for the payload key.
    pub payload_salt: [u8; 32],
    /// Plaintext bytes per chunk (65536 in v1).
    pub chunk_size: u32,
    /// Opaque metadata.
    #[serde(with = "serde_bytes")]
    pub metadata: Vec<u8>,
}

/// An envelope whose structure and signature were checked. Only `verify` and `open`
/// make one, so holding one is proof.
#[derive(Debug, Clone)]
pub struct VerifiedEnvelope {
    header: EnvelopeHeader,
    signer: VerifyingKey,
    digest: [u8; 32],
    envelope_bytes: u64,
    ciphertext_bytes: u64,
    /// SHA-256(prefix ‖ header ‖ MAC ‖ chunks): what the signature covers.
    signed: [u8; 32],
    /// The format version read from the prefix.
    format_version: u16,
    /// The header MAC (format v2); `None` for a v1 envelope.
    header_mac: Option<[u8; HEADER_MAC_LEN]>,
}

impl VerifiedEnvelope {
    /// The header.
    pub fn header(&self) -> &EnvelopeHeader {
        &self.header
    }
    /// The key that signed it.
    pub fn signer(&self) -> &VerifyingKey {
        &self.signer
    }
    /// SHA-256 of the whole envelope file (equals [`SealSummary::digest`]).
    pub fn digest(&self) -> [u8; 32] {
        self.digest
    }
    /// Size of the whole envelope.
    pub fn envelope_bytes(&self) -> u64 {
        self.envelope_bytes
    }
    /// The envelope's format version: [`FORMAT_VERSION`], or [`FORMAT_VERSION_V1`] for an
    /// envelope stored before key commitment (only [`verify_stored`] and [`open`] take those).
    pub fn format_version(&self) -> u16 {
        self.format_version
    }
}

fn nonce(counter: u64, last: bool) -> Nonce {
    let mut n = [0u8; 12];
    n[3..11].copy_from_slice(&counter.to_be_bytes());
    n[11] = u8::from(last);
    Nonce::assume_unique_for_key(n)
}

fn aead_key(salt: &[u8], ikm: &[u8], info: &[u8]) -> Result<LessSafeKey> {
    let prk = hkdf::Salt::new(hkdf::HKDF_SHA256, salt).extract(ikm);
    let info = [info];
    let okm = prk
        .expand(&info, &AES_256_GCM)
        .map_err(|_| Error::BadKey("HKDF expansion failed"))?;
    Ok(LessSafeKey::new(UnboundKey::from(okm)))
}

/// The key of the v2 header MAC, derived from the file key: whoever unwraps a file key can
/// check that the header commits to exactly that key.
fn header_mac_key(payload_salt: &[u8], file_key: &[u8]) -> Result<hmac::Key> {
    let prk = hkdf::Salt::new(hkdf::HKDF_SHA256, payload_salt).extract(file_key);
    let info = [INFO_HEADER_MAC];
    let okm = prk
        .expand(&info, hmac::HMAC_SHA256)
        .map_err(|_| Error::BadKey("HKDF expansion failed"))?;
    Ok(hmac::Key::from(okm))
}

fn digest32(ctx: Context) -> [u8; 32] {
    let mut d = [0u8; 32];
    d.copy_from_slice(ctx.finish().as_ref());
    d
}

/// Splits one running hash of everything before the trailer into the signed digest
/// (SHA-256 of prefix ‖ header ‖ chunks) and the file digest (SHA-256 of the same bytes
/// followed by the signature): one pass over the bulk gives both.
fn split_digests(body: Context, signature: &Signature) -> ([u8; 32], [u8; 32]) {
    let mut file = body.clone();
    file.update(&signature.0);
    (digest32(body), digest32(file))
}

/// Reads until `buf` is full or the input ends; returns the bytes read.
fn read_full<R: Read>(r: &mut R, buf: &mut [u8]) -> Result<usize> {
    let mut n = 0;
    while n < buf.len() {
        match r.read(&mut buf[n..]) {
            Ok(0) => break,
            Ok(k) => n += k,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e.into()),
        }
    }
    Ok(n)
}

fn wrap_for(recipient: &RecipientPublicKey, file_key: &[u8; 32]) -> Result<WrappedKey> {
    let rng = SystemRandom::new();
    let eph = EphemeralPrivateKey::generate(&X25519, &rng).map_err(|_| Error::Rng)?;
    let eph_pub = eph.compute_public_key().map_err(|_| Error::Rng)?;
    let mut ephemeral_public = [0u8; 32];
    ephemeral_public.copy_from_slice(eph_pub.as_ref());
    let wrap_key = agreement::agree_ephemeral(eph, &UnparsedPublicKey::new(&X25519, recipient.0), |shared| {
        aead_key(&[ephemeral_public, recipient.0].concat(), shared, INFO_WRAP)
    })
    .map_err(|_| Error::BadKey("the recipient key is not a valid X25519 public key"))??;
    let rid = recipient.key_id();
    let mut wrapped = file_key.to_vec();
    wrap_key
        .seal_in_place_append_tag(nonce(0, false), Aad::from(rid.0), &mut wrapped)
        .map_err(|_| Error::BadKey("wrapping the file key failed"))?;
    Ok(WrappedKey {
        recipient: rid,
        ephemeral_public,
        wrapped,
    })
}

#[cfg(test)]
fn encode_prefix(header_len: usize) -> Result<[u8; PREFIX_LEN]> {
    encode_prefix_version(FORMAT_VERSION, header_len)
}

fn encode_prefix_version(version: u16, header_len: usize) -> Result<[u8; PREFIX_LEN]> {
    if header_len > MAX_HEADER_LEN {
        return Err(Error::HeaderTooLarge {
            len: header_len,
            max: MAX_HEADER_LEN,
        });
    }
    let mut p = [0u8; PREFIX_LEN];
    p[..8].copy_from_slice(MAGIC);
    p[8..10].copy_from_slice(&version.to_le_bytes());
    p[10..12].copy_from_slice(&SUITE.to_le_bytes());
    p[12..16].copy_from_slice(&(header_len as u32).to_le_bytes());
    Ok(p)
}

/// Seals `plaintext` into `out` for `req.recipients`, signed by `signer`, in the current
/// format ([`FORMAT_VERSION`]).
pub fn seal<S: MemberSigner + ?Sized, R: Read, W: Write>(
    req: &SealRequest<'_>,
    signer: &S,
    plaintext: R,
    out: W,
) -> Result<SealSummary> {
    seal_as(FORMAT_VERSION, req, signer, plaintext, out)
}

/// Seals in format `version`: tests make format-1 envelopes (no header MAC) as konvert 0.1
/// did, to prove the store's old envelopes stay readable.
fn seal_as<S: MemberSigner + ?Sized, R: Read, W: Write>(
    version: u16,
    req: &SealRequest<'_>,
    signer: &S,
    mut plaintext: R,
    mut out: W,
) -> Result<SealSummary> {
    if req.recipients.is_empty() {
        return Err(Error::NoRecipients);
    }
    let mut file_key = Zeroizing::new([0u8; 32]);
    random_bytes(file_key.as_mut())?;
    let mut payload_salt = [0u8; 32];
    random_bytes(&mut payload_salt)?;
    let recipients = req
        .recipients
        .iter()
        .map(|r| wrap_for(r, &file_key))
        .collect::<Result<Vec<_>>>()?;
    let header = EnvelopeHeader {
        packet_id: req.packet_id.to_owned(),
        version: req.version,
        sender_site: req.sender_site.to_owned(),
        sealed_at_unix_ms: req.sealed_at_unix_ms,
        signer: signer.key_id(),
        recipients,
        payload_salt,
        chunk_size: CHUNK_SIZE as u32,
        metadata: req.metadata.to_vec(),
    };
    let header_bytes = postcard::to_allocvec(&header).map_err(|e| Error::MalformedHeader(e.to_string()))?;
    let prefix = encode_prefix_version(version, header_bytes.len())?;
    let mut aad_ctx = Context::new(&SHA256);
    aad_ctx.update(&prefix);
    aad_ctx.update(&header_bytes);
    let aad = digest32(aad_ctx);
    let key = aead_key(&payload_salt, file_key.as_ref(), INFO_PAYLOAD)?;
    let mut head = Vec::with_capacity(PREFIX_LEN + header_bytes.len());
    head.extend_from_slice(&prefix);
    head.extend_from_slice(&header_bytes);
    let mac = hmac::sign(&header_mac_key(&payload_salt, file_key.as_ref())?, &head);

    let mut sig_ctx = Context::new(&SHA256);
    let mut emit = |bytes: &[u8]| -> Result<()> {
        out.write_all(bytes)?;
        sig_ctx.update(bytes);
        Ok(())
    };
    emit(&head)?;
    if version != FORMAT_VERSION_V1 {
        emit(mac.as_ref())?;
    }
    let mut envelope_bytes = (head.len() + mac_len(version)) as u64;

    let mut cur = vec![0u8; SEALED_CHUNK];
    let mut next = vec![0u8; SEALED_CHUNK];
    let mut n = read_full(&mut plaintext, &mut cur[..CHUNK_SIZE])?;
    let mut plaintext_bytes = 0u64;
    let mut counter = 0u64;
    loop {
        // A full chunk is the last one only if nothing follows it.
        let (last, m) = if n < CHUNK_SIZE {
            (true, 0)
        } else {
            let m = read_full(&mut plaintext, &mut next[..CHUNK_SIZE])?;
            (m == 0, m)
        };
        let tag = key
            .seal_in_place_separate_tag(nonce(counter, last), Aad::from(aad), &mut cur[..n])
            .map_err(|_| Error::Malformed("chunk encryption failed".into()))?;
        cur[n..n + TAG_LEN].copy_from_slice(tag.as_ref());
        emit(&cur[..n + TAG_LEN])?;
        envelope_bytes += (n + TAG_LEN) as u64;
        plaintext_bytes += n as u64;
        if last {
            break;
        }
        std::mem::swap(&mut cur, &mut next);
        n = m;
        counter += 1;
    }
    let signature = signer.sign(Domain::Envelope, &digest32(sig_ctx.clone()))?;
    let (_, digest) = split_digests(sig_ctx, &signature);
    out.write_all(&signature.0)?;
    envelope_bytes += SIG_LEN as u64;
    out.flush()?;
    Ok(SealSummary {
        envelope_bytes,
        plaintext_bytes,
        digest,
    })
}

/// Checks the fixed prefix; returns the format version and the declared header length
/// (bounded). A v1 prefix is taken only when `accept_v1` (an envelope from the store).
fn parse_prefix(prefix: &[u8], accept_v1: bool) -> Result<(u16, usize)> {
    if prefix.len() < PREFIX_LEN {
        return Err(Error::Truncated);
    }
    if &prefix[..8] != MAGIC {
        return Err(Error::BadMagic);
    }
    let version = u16::from_le_bytes([prefix[8], prefix[9]]);
    let suite = u16::from_le_bytes([prefix[10], prefix[11]]);
    if suite != SUITE || !(version == FORMAT_VERSION || version == FORMAT_VERSION_V1) {
        return Err(Error::UnsupportedFormat { version, suite });
    }
    if version == FORMAT_VERSION_V1 && !accept_v1 {
        return Err(Error::LegacyEnvelope { version });
    }
    let len = u32::from_le_bytes([prefix[12], prefix[13], prefix[14], prefix[15]]) as usize;
    if len > MAX_HEADER_LEN {
        return Err(Error::HeaderTooLarge {
            len,
            max: MAX_HEADER_LEN,
        });
    }
    Ok((version, len))
}

/// Bytes between the header and the first chunk: the header MAC in v2, nothing in v1.
fn mac_len(version: u16) -> usize {
    if version == FORMAT_VERSION_V1 {
        0
    } else {
        HEADER_MAC_LEN
    }
}

/// Decodes the header; every byte must belong to it.
fn parse_header(bytes: &[u8]) -> Result<EnvelopeHeader> {
    let (header, rest): (EnvelopeHeader, _) =
        postcard::take_from_bytes(bytes).map_err(|e| Error::MalformedHeader(e.to_string()))?;
    if !rest.is_empty() {
        return Err(Error::MalformedHeader("bytes after the header".into()));
    }
    if header.chunk_size as usize != CHUNK_SIZE {
        return Err(Error::MalformedHeader(format!(
            "chunk size {} (v1 uses {CHUNK_SIZE})",
            header.chunk_size
        )));
    }
    if header.recipients.is_empty() {
        return Err(Error::MalformedHeader("the header lists no recipients".into()));
    }
    if let Some(w) = header.recipients.iter().find(|w| w.wrapped.len() != WRAPPED_LEN) {
        return Err(Error::MalformedHeader(format!(
            "the wrapped key for recipient {} has {} bytes, not {WRAPPED_LEN}",
            w.recipient,
            w.wrapped.len()
        )));
    }
    // Two entries for one key would let a hostile sealer hand the same recipient two file
    // keys; an honest sealer wraps once per key.
    for (i, w) in header.recipients.iter().enumerate() {
        if header.recipients[..i].iter().any(|o| o.recipient == w.recipient) {
            return Err(Error::MalformedHeader(format!(
                "recipient {} is listed twice; an honest sealer wraps the file key once per recipient",
                w.recipient
            )));
        }
    }
    Ok(header)
}

/// The prefix, header and (v2) header MAC as read from the start of an envelope.
struct Head {
    header: EnvelopeHeader,
    /// Prefix ‖ header bytes: what the chunk AAD and the header MAC cover.
    bytes: Vec<u8>,
    mac: Option<[u8; HEADER_MAC_LEN]>,
}

/// Reads the prefix, header and header MAC, bounded.
fn read_head<R: Read>(input: &mut R, accept_v1: bool) -> Result<Head> {
    let mut prefix = [0u8; PREFIX_LEN];
    if read_full(input, &mut prefix)? < PREFIX_LEN {
        return Err(Error::Truncated);
    }
    let (version, len) = parse_prefix(&prefix, accept_v1)?;
    let mut bytes = vec![0u8; PREFIX_LEN + len];
    bytes[..PREFIX_LEN].copy_from_slice(&prefix);
    if read_full(input, &mut bytes[PREFIX_LEN..])? < len {
        return Err(Error::Truncated);
    }
    let header = parse_header(&bytes[PREFIX_LEN..])?;
    let mac = if mac_len(version) == 0 {
        None
    } else {
        let mut mac = [0u8; HEADER_MAC_LEN];
        if read_full(input, &mut mac)? < HEADER_MAC_LEN {
            return Err(Error::Truncated);
        }
        Some(mac)
    };
    Ok(Head { header, bytes, mac })
}

/// Parses only the prefix and header (bounded), without checking the signature. Reads
/// both formats (v1 from a center's store, v2).
pub fn read_header<R: Read>(mut input: R) -> Result<EnvelopeHeader> {
    read_head(&mut input, true).map(|h| h.header)
}

/// Checks an envelope fed in pieces as it arrives — structure and signature, without
/// decrypting — so a receiver verifies while it writes instead of reading the file again.
/// Memory stays bounded: the header (≤ 64 KiB) and a 64-byte hold-back.
pub struct EnvelopeVerifier {
    head: Vec<u8>,
    header: Option<EnvelopeHeader>,
    /// (format version, end of prefix ‖ header ‖ MAC) once the prefix is read.
    layout: Option<(u16, usize)>,
    accept_v1: bool,
    sig_ctx: Context,
    hold: Vec<u8>,
    ciphertext_bytes: u64,
    error: Option<Error>,
}

impl Default for EnvelopeVerifier {
    fn default() -> Self {
        Self::new()
    }
}

impl std::fmt::Debug for EnvelopeVerifier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "EnvelopeVerifier({} ciphertext bytes)", self.ciphertext_bytes)
    }
}

impl EnvelopeVerifier {
    /// A verifier at the start of a new envelope (intake): only the current format, so a
    /// hostile sealer cannot fall back to v1, which has no key commitment.
    pub fn new() -> Self {
        Self::with_v1(false)
    }

    /// A verifier for an envelope already in a center's store, which may be format v1.
    pub fn for_stored() -> Self {
        Self::with_v1(true)
    }

    fn with_v1(accept_v1: bool) -> Self {
        EnvelopeVerifier {
            head: Vec::with_capacity(PREFIX_LEN),
            header: None,
            layout: None,
            accept_v1,
            sig_ctx: Context::new(&SHA256),
            hold: Vec::with_capacity(2 * SIG_LEN),
            ciphertext_bytes: 0,
            error: None,
        }
    }

    /// Feeds the next bytes of the envelope. Errors are kept for `finish`.
    pub fn update(&mut self, mut bytes: &[u8]) {
        if self.error.is_some() {
            return;
        }
        if self.header.is_none() {
            if self.head.len() < PREFIX_LEN {
                let take = (PREFIX_LEN - self.head.len()).min(bytes.len());
                self.head.extend_from_slice(&bytes[..take]);
                bytes = &bytes[take..];
                if self.head.len() < PREFIX_LEN {
                    return;
                }
            }
            let (version, target) = match self.layout {
                Some(l) => l,
                None => match parse_prefix(&self.head[..PREFIX_LEN], self.accept_v1) {
                    Ok((version, len)) => {
                        let l = (version, PREFIX_LEN + len + mac_len(version));
                        self.layout = Some(l);
                        l
                    }
                    Err(e) => {
                        self.error = Some(e);
                        return;
                    }
                },
            };
            let take = (target - self.head.len()).min(bytes.len());
            self.head.extend_from_slice(&bytes[..take]);
            bytes = &bytes[take..];
            if self.head.len() < target {
                return;
            }
            match parse_header(&self.head[PREFIX_LEN..target - mac_len(version)]) {
                Ok(h) => {
                    self.sig_ctx.update(&self.head);
                    self.header = Some(h);
                }
                Err(e) => {
                    self.error = Some(e);
                    return;
                }
            }
        }
        self.feed_body(bytes);
    }

    /// Everything after the header is ciphertext except the last 64 bytes (the
    /// signature): hold 64 bytes back until the end.
    fn feed_body(&mut self, bytes: &[u8]) {
        let n = bytes.len();
        if n >= SIG_LEN {
            self.sig_ctx.update(&self.hold);
            self.sig_ctx.update(&bytes[..n - SIG_LEN]);
            self.ciphertext_bytes += (self.hold.len() + n - SIG_LEN) as u64;
            self.hold.clear();
            self.hold.extend_from_slice(&bytes[n - SIG_LEN..]);
        } else {
            self.hold.extend_from_slice(bytes);
            if self.hold.len() > SIG_LEN {
                let extra = self.hold.len() - SIG_LEN;
                self.sig_ctx.update(&self.hold[..extra]);
                self.ciphertext_bytes += extra as u64;
                self.hold.drain(..extra);
            }
        }
    }

    /// Why the bytes fed so far are not an envelope (bad magic, version or header), if they
    /// are not: known once the prefix and header are in, before the body is read.
    pub fn failed(&self) -> Option<&Error> {
        self.error.as_ref()
    }

    /// Ends the envelope: checks framing and the signer's signature.
    pub fn finish(self, trusted: &dyn Fn(&KeyId) -> Option<VerifyingKey>) -> Result<VerifiedEnvelope> {
        if let Some(e) = self.error {
            return Err(e);
        }
        let header = self.header.ok_or(Error::Truncated)?;
        let signer = trusted(&header.signer).ok_or(Error::UnknownSigner(header.signer))?;
        if self.hold.len() < SIG_LEN {
            return Err(Error::Truncated);
        }
        check_chunking(self.ciphertext_bytes)?;
        let mut sig = [0u8; SIG_LEN];
        sig.copy_from_slice(&self.hold);
        let signature = Signature(sig);
        let (signed, digest) = split_digests(self.sig_ctx, &signature);
        signer.verify(Domain::Envelope, &signed, &signature)?;
        let (format_version, head_end) = self.layout.ok_or(Error::Truncated)?;
        let header_mac = (mac_len(format_version) > 0).then(|| {
            let mut mac = [0u8; HEADER_MAC_LEN];
            mac.copy_from_slice(&self.head[head_end - HEADER_MAC_LEN..head_end]);
            mac
        });
        Ok(VerifiedEnvelope {
            header,
            signer,
            digest,
            envelope_bytes: self.head.len() as u64 + self.ciphertext_bytes + SIG_LEN as u64,
            ciphertext_bytes: self.ciphertext_bytes,
            signed,
            format_version,
            header_mac,
        })
    }
}

/// Checks a new envelope's structure and signature, streaming, without decrypting. Only
/// the current format: a v1 envelope is [`Error::LegacyEnvelope`].
pub fn verify<R: Read>(input: R, trusted: &dyn Fn(&KeyId) -> Option<VerifyingKey>) -> Result<VerifiedEnvelope> {
    verify_with(input, trusted, EnvelopeVerifier::new())
}

/// Checks an envelope from a center's store, as [`verify`] but also format v1 (sealed before
/// key commitment; stored envelopes must stay readable).
pub fn verify_stored<R: Read>(input: R, trusted: &dyn Fn(&KeyId) -> Option<VerifyingKey>) -> Result<VerifiedEnvelope> {
    verify_with(input, trusted, EnvelopeVerifier::for_stored())
}

fn verify_with<R: Read>(
    mut input: R,
    trusted: &dyn Fn(&KeyId) -> Option<VerifyingKey>,
    mut verifier: EnvelopeVerifier,
) -> Result<VerifiedEnvelope> {
    let mut buf = vec![0u8; 4 * SEALED_CHUNK];
    loop {
        let n = read_full(&mut input, &mut buf)?;
        if n == 0 {
            break;
        }
        verifier.update(&buf[..n]);
    }
    verifier.finish(trusted)
}

/// The ciphertext must be whole chunks followed by one final chunk of 16..=65552 bytes.
fn check_chunking(ciphertext_bytes: u64) -> Result<()> {
    if ciphertext_bytes < TAG_LEN as u64 {
        return Err(Error::Truncated);
    }
    let full = SEALED_CHUNK as u64;
    let last = ciphertext_bytes - (ciphertext_bytes - 1) / full * full;
    if last < TAG_LEN as u64 {
        return Err(Error::Malformed(format!(
            "the final chunk has {last} bytes, less than its 16-byte tag"
        )));
    }
    Ok(())
}

/// Verifies the envelope (pass 1: structure and signature, as [`verify_stored`]), rewinds,
/// then decrypts it chunk by chunk to `out` (pass 2), checking every chunk's tag and that the
/// bytes read in pass 2 are the ones pass 1 verified. Before any chunk is decrypted, the
/// unwrapped file key must match the header MAC (v2), so every recipient opens the same
/// plaintext; a v1 envelope (no MAC) is opened only when it names exactly one recipient,
/// as every konvert edge sealed them. On error, whatever was written to `out` must be
/// discarded.
pub fn open<R: Read + Seek, W: Write>(
    mut input: R,
    recipient: &RecipientSecretKey,
    trusted: &dyn Fn(&KeyId) -> Option<VerifyingKey>,
    out: W,
) -> Result<VerifiedEnvelope> {
    let verified = verify_stored(&mut input, trusted)?;
    input.seek(SeekFrom::Start(0))?;
    let mut body_ctx = Context::new(&SHA256);
    decrypt(&mut input, &verified, recipient, out, Some(&mut body_ctx))?;
    if digest32(body_ctx) != verified.signed {
        return Err(changed_underfoot());
    }
    Ok(verified)
}

/// An envelope held whole in memory whose very bytes were verified. Only [`verify_bytes`]
/// makes one: the bytes cannot change between checking and decrypting, so
/// [`open_bytes`] needs no second hashing pass.
#[derive(Debug)]
pub struct VerifiedBytes {
    bytes: Vec<u8>,
    verified: VerifiedEnvelope,
}

impl VerifiedBytes {
    /// What verifying the bytes established.
    pub fn envelope(&self) -> &VerifiedEnvelope {
        &self.verified
    }
}

/// Checks an envelope from a center's store held in memory (both formats), as
/// [`verify_stored`], keeping the bytes for [`open_bytes`].
pub fn verify_bytes(bytes: Vec<u8>, trusted: &dyn Fn(&KeyId) -> Option<VerifyingKey>) -> Result<VerifiedBytes> {
    let mut verifier = EnvelopeVerifier::for_stored();
    verifier.update(&bytes);
    let verified = verifier.finish(trusted)?;
    Ok(VerifiedBytes { bytes, verified })
}

/// Decrypts an envelope [`verify_bytes`] checked to `out`, in one pass: AES-GCM per chunk,
/// without hashing again. On error, whatever was written to `out` must be discarded.
pub fn open_bytes<W: Write>(envelope: &VerifiedBytes, recipient: &RecipientSecretKey, out: W) -> Result<()> {
    decrypt(&mut &envelope.bytes[..], &envelope.verified, recipient, out, None)
}

/// Verifies and decrypts an envelope held whole in memory (both formats) in one go: one
/// thread hashes it for the signature while the other decrypts it and hands the plaintext
/// to `examine`, whose result is returned only once the signature verified (and dropped
/// otherwise). `examine` gets plaintext whose signer is not known yet: it may only compute
/// its result (parse, hash, keep), never act on what it read.
///
/// The plaintext is written into `buffer` (emptied first; its capacity is kept, so a caller
/// opening many envelopes can hand the same allocation back each time).
pub fn open_in_memory<T>(
    bytes: &[u8],
    recipient: &RecipientSecretKey,
    trusted: &dyn Fn(&KeyId) -> Option<VerifyingKey>,
    buffer: Vec<u8>,
    examine: impl FnOnce(Vec<u8>) -> T,
) -> Result<(VerifiedEnvelope, T)> {
    let (verifier, opened) = std::thread::scope(|scope| {
        let hashing = scope.spawn(|| {
            let mut verifier = EnvelopeVerifier::for_stored();
            verifier.update(bytes);
            verifier
        });
        let opened = decrypt_in_memory(bytes, recipient, buffer).map(|(head, plain)| (head, examine(plain)));
        (hashing.join(), opened)
    });
    let verifier = verifier.map_err(|_| Error::Malformed("the verifying thread stopped".into()))?;
    // A bad signature is the finding whatever decryption said, as when opening a file.
    let verified = verifier.finish(trusted)?;
    let (head, examined) = opened?;
    if head.header != verified.header || head.mac != verified.header_mac {
        return Err(changed_underfoot());
    }
    Ok((verified, examined))
}

/// Decrypts the chunks of an envelope in memory into one buffer, each chunk in place.
fn decrypt_in_memory(bytes: &[u8], recipient: &RecipientSecretKey, mut plain: Vec<u8>) -> Result<(Head, Vec<u8>)> {
    let mut input = bytes;
    let (head, key, aad) = payload_key(&mut input, recipient)?;
    let ciphertext = input.len().checked_sub(SIG_LEN).ok_or(Error::Truncated)?;
    check_chunking(ciphertext as u64)?;
    let chunks = ciphertext.div_ceil(SEALED_CHUNK);
    // Each sealed chunk is appended where its plaintext belongs and opened there; its tag
    // is cut off before the next chunk is appended.
    plain.clear();
    plain.reserve(ciphertext);
    for (counter, sealed) in input[..ciphertext].chunks(SEALED_CHUNK).enumerate() {
        let at = plain.len();
        plain.extend_from_slice(sealed);
        let opened = key
            .open_in_place(
                nonce(counter as u64, counter + 1 == chunks),
                Aad::from(aad),
                &mut plain[at..],
            )
            .map_err(|_| Error::ChunkAuthentication { index: counter as u64 })?
            .len();
        plain.truncate(at + opened);
    }
    Ok((head, plain))
}

/// Reads an envelope's head and derives the payload key `recipient` opens it with, and the
/// chunks' AAD.
fn payload_key<R: Read>(input: &mut R, recipient: &RecipientSecretKey) -> Result<(Head, LessSafeKey, [u8; 32])> {
    let head = read_head(input, true)?;
    if head.mac.is_none() && head.header.recipients.len() != 1 {
        return Err(Error::KeyCommitment(format!(
            "this format-1 envelope has no key commitment yet names {} recipients, so each could \
             open a different content; konvert edges sealed format 1 to exactly one key — keep it \
             as evidence and have the site seal the packet again",
            head.header.recipients.len()
        )));
    }
    let rpub = recipient.public_key();
    let rid = rpub.key_id();
    let entry = head
        .header
        .recipients
        .iter()
        .find(|w| w.recipient == rid)
        .ok_or(Error::NotARecipient(rid))?;
    let key = unwrap_payload_key(&head.header, entry, recipient, &rpub, &head.bytes, head.mac.as_ref())?;
    let aad = digest32({
        let mut c = Context::new(&SHA256);
        c.update(&head.bytes);
        c
    });
    Ok((head, key, aad))
}

/// Decrypts the envelope `input` holds from its start, checking that its head is the one
/// `verified` describes and feeding `body_ctx`, when given, everything the signature covers
/// so that the caller can check the bytes are the verified ones.
fn decrypt<R: Read, W: Write>(
    input: &mut R,
    verified: &VerifiedEnvelope,
    recipient: &RecipientSecretKey,
    mut out: W,
    mut body_ctx: Option<&mut Context>,
) -> Result<()> {
    let (head, key, aad) = payload_key(input, recipient)?;
    if head.header != verified.header || head.mac != verified.header_mac {
        return Err(changed_underfoot());
    }
    if let Some(ctx) = body_ctx.as_deref_mut() {
        ctx.update(&head.bytes);
        if let Some(mac) = &head.mac {
            ctx.update(mac);
        }
    }
    let mut buf = vec![0u8; SEALED_CHUNK];
    let mut left = verified.ciphertext_bytes;
    let mut counter = 0u64;
    while left > 0 {
        let len = left.min(SEALED_CHUNK as u64) as usize;
        let last = left == len as u64;
        if read_full(input, &mut buf[..len])? < len {
            return Err(changed_underfoot());
        }
        if let Some(ctx) = body_ctx.as_deref_mut() {
            ctx.update(&buf[..len]);
        }
        let plain = key
            .open_in_place(nonce(counter, last), Aad::from(aad), &mut buf[..len])
            .map_err(|_| Error::ChunkAuthentication { index: counter })?;
        out.write_all(plain)?;
        left -= len as u64;
        counter += 1;
    }
    out.flush()?;
    Ok(())
}

fn changed_underfoot() -> Error {
    Error::Malformed(
        "the envelope file changed while it was being opened; make sure nothing writes to it, then open it again"
            .into(),
    )
}

/// Unwraps the file key for `recipient`, checks it against the header MAC (v2) and derives
/// the payload key.
fn unwrap_payload_key(
    header: &EnvelopeHeader,
    entry: &WrappedKey,
    recipient: &RecipientSecretKey,
    rpub: &RecipientPublicKey,
    head_bytes: &[u8],
    mac: Option<&[u8; HEADER_MAC_LEN]>,
) -> Result<LessSafeKey> {
    let shared = recipient.agree(&entry.ephemeral_public).ok_or_else(|| {
        Error::Malformed("the ephemeral key for this recipient is of low order; the sender is faulty".into())
    })?;
    let wrap_key = aead_key(&[entry.ephemeral_public, rpub.0].concat(), shared.as_ref(), INFO_WRAP)?;
    let mut wrapped = Zeroizing::new(entry.wrapped.clone());
    let file_key = wrap_key
        .open_in_place(nonce(0, false), Aad::from(entry.recipient.0), &mut wrapped)
        .map_err(|_| {
            Error::Malformed(format!(
                "the file key wrapped for recipient {} does not open with that key; the sender is faulty",
                entry.recipient
            ))
        })?;
    if file_key.len() != 32 {
        return Err(Error::Malformed("the wrapped file key has the wrong length".into()));
    }
    if let Some(mac) = mac {
        hmac::verify(&header_mac_key(&header.payload_salt, file_key)?, head_bytes, mac).map_err(|_| {
            Error::KeyCommitment(format!(
                "the file key wrapped for recipient {} is not the one the header commits to, so \
                 another recipient would open a different content; the sender is faulty or hostile — \
                 keep the envelope as evidence",
                entry.recipient
            ))
        })?;
    }
    aead_key(&header.payload_salt, file_key, INFO_PAYLOAD)
}

#[cfg(test)]
#[path = "envelope_tests.rs"]
mod tests;
