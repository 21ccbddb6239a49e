use std::io::Cursor;

use proptest::prelude::*;

use super::*;
use crate::SigningKey;

struct Fixture {
    signer: SigningKey,
    center: RecipientSecretKey,
}

impl Fixture {
    fn new() -> Self {
        Fixture {
            signer: SigningKey::generate().unwrap(),
            center: RecipientSecretKey::generate().unwrap(),
        }
    }

    fn seal(&self, plaintext: &[u8]) -> (Vec<u8>, SealSummary) {
        let recipients = [self.center.public_key()];
        let req = SealRequest {
            packet_id: "0101-2026-06-01-ege-0012-blanks",
            version: 1,
            sender_site: "0101",
            sealed_at_unix_ms: 1_780_000_000_000,
            metadata: b"meta",
            recipients: &recipients,
        };
        let mut out = Vec::new();
        let summary = seal(&req, &self.signer, plaintext, &mut out).unwrap();
        (out, summary)
    }

    fn trusted(&self) -> impl Fn(&KeyId) -> Option<VerifyingKey> + '_ {
        move |id: &KeyId| (*id == self.signer.key_id()).then(|| self.signer.verifying_key())
    }

    fn verify(&self, env: &[u8]) -> Result<VerifiedEnvelope> {
        verify(env, &self.trusted())
    }

    fn open(&self, env: &[u8]) -> Result<Vec<u8>> {
        let mut out = Vec::new();
        open(Cursor::new(env), &self.center, &self.trusted(), &mut out)?;
        Ok(out)
    }
}

fn data(len: usize, seed: u8) -> Vec<u8> {
    (0..len)
        .map(|i| (i as u8).wrapping_mul(31).wrapping_add(seed))
        .collect()
}

#[test]
fn round_trip_at_chunk_boundaries() {
    let f = Fixture::new();
    for len in [
        0,
        1,
        CHUNK_SIZE - 1,
        CHUNK_SIZE,
        CHUNK_SIZE + 1,
        2 * CHUNK_SIZE,
        3 * CHUNK_SIZE + 7,
    ] {
        let plain = data(len, 3);
        let (env, summary) = f.seal(&plain);
        assert_eq!(summary.envelope_bytes, env.len() as u64);
        assert_eq!(summary.plaintext_bytes, len as u64);
        let v = f.verify(&env).unwrap();
        assert_eq!(v.digest(), summary.digest);
        assert_eq!(v.envelope_bytes(), env.len() as u64);
        assert_eq!(v.header().sender_site, "0101");
        assert_eq!(v.header().metadata, b"meta");
        assert_eq!(f.open(&env).unwrap(), plain, "length {len}");
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 24, ..ProptestConfig::default() })]
    #[test]
    fn round_trip_random_sizes(len in prop_oneof![0usize..3_000_000, (1usize..48).prop_map(|k| k * CHUNK_SIZE), (1usize..48).prop_map(|k| k * CHUNK_SIZE - 1), (1usize..48).prop_map(|k| k * CHUNK_SIZE + 1)], seed in any::<u8>()) {
        let f = Fixture::new();
        let plain = data(len, seed);
        let (env, _) = f.seal(&plain);
        prop_assert_eq!(f.open(&env).unwrap(), plain);
    }
}

/// Offset of `needle` in `hay` (test helper for locating header fields).
fn find(hay: &[u8], needle: &[u8]) -> usize {
    hay.windows(needle.len()).position(|w| w == needle).unwrap()
}

/// Checks that flipping one bit at `at` fails both verify and open with `expected`.
fn assert_flip(f: &Fixture, env: &[u8], at: usize, expected: fn(&Error) -> bool, what: &str) {
    let mut bad = env.to_vec();
    bad[at] ^= 0x01;
    let e = f.verify(&bad).unwrap_err();
    assert!(expected(&e), "{what} (byte {at}): verify said {e:?}");
    let e = f.open(&bad).unwrap_err();
    assert!(expected(&e), "{what} (byte {at}): open said {e:?}");
}

#[test]
fn a_flipped_byte_anywhere_fails_with_the_right_error() {
    let f = Fixture::new();
    let (env, _) = f.seal(&data(3 * CHUNK_SIZE + 100, 1));
    let n = env.len();
    let header = read_header(&env[..]).unwrap();
    let header_end = n - 3 * SEALED_CHUNK - (100 + TAG_LEN) - SIG_LEN;
    let chunk = |i: usize| header_end + i * SEALED_CHUNK;
    let bad_sig = |e: &Error| matches!(e, Error::BadSignature);
    let bad_header = |e: &Error| matches!(e, Error::MalformedHeader(_));

    assert_flip(&f, &env, 0, |e| matches!(e, Error::BadMagic), "magic");
    assert_flip(&f, &env, 7, |e| matches!(e, Error::BadMagic), "magic");
    assert_flip(
        &f,
        &env,
        8,
        |e| matches!(e, Error::UnsupportedFormat { version: 0, suite: 1 }),
        "format version",
    );
    assert_flip(
        &f,
        &env,
        10,
        |e| matches!(e, Error::UnsupportedFormat { version: 1, suite: 0 }),
        "suite",
    );
    assert_flip(&f, &env, 12, bad_header, "header length ±1");
    assert_flip(
        &f,
        &env,
        15,
        |e| matches!(e, Error::HeaderTooLarge { .. }),
        "header length",
    );
    // Header fields, located by their bytes.
    assert_flip(&f, &env, 17, bad_sig, "packet id");
    assert_flip(
        &f,
        &env,
        find(&env, &header.signer.0),
        |e| matches!(e, Error::UnknownSigner(_)),
        "signer",
    );
    let r = &header.recipients[0];
    assert_flip(&f, &env, find(&env, &r.ephemeral_public), bad_sig, "ephemeral key");
    assert_flip(&f, &env, find(&env, &r.wrapped) + 47, bad_sig, "wrapped key");
    assert_flip(&f, &env, find(&env, &header.payload_salt) + 31, bad_sig, "payload salt");
    assert_flip(&f, &env, header_end - 1, bad_sig, "metadata");
    // Chunks: first, middle, last (ciphertext and tag), and the signature.
    for (at, what) in [
        (chunk(0), "first chunk start"),
        (chunk(1) - 1, "first chunk tag"),
        (chunk(1) + CHUNK_SIZE / 2, "middle chunk"),
        (chunk(2) + 5, "third chunk"),
        (chunk(3), "final chunk"),
        (n - SIG_LEN - 1, "final chunk tag"),
        (n - SIG_LEN, "signature start"),
        (n - 1, "signature end"),
    ] {
        assert_flip(&f, &env, at, bad_sig, what);
    }
}

#[test]
fn truncation_extension_and_swaps_are_detected() {
    let f = Fixture::new();
    let (env, _) = f.seal(&data(3 * CHUNK_SIZE, 2));
    let n = env.len();
    let header_end = n - 3 * SEALED_CHUNK - SIG_LEN;
    let cuts = [
        0,
        5,
        16,
        header_end,
        header_end + SEALED_CHUNK,
        header_end + 2 * SEALED_CHUNK,
        n - SIG_LEN,
        n - 1,
    ];
    for cut in cuts {
        assert!(f.verify(&env[..cut]).is_err(), "cut at {cut} passed");
    }
    // Dropping the whole last chunk but keeping the signature.
    let dropped = [&env[..header_end + 2 * SEALED_CHUNK], &env[n - SIG_LEN..]].concat();
    assert!(f.verify(&dropped).is_err());
    for extra in [1, 20, 64, SEALED_CHUNK] {
        let mut longer = env.clone();
        longer.extend_from_slice(&vec![0u8; extra]);
        assert!(f.verify(&longer).is_err(), "{extra} bytes appended");
        assert!(f.open(&longer).is_err(), "{extra} bytes appended");
    }
    // The envelope twice in a row.
    assert!(f.verify(&[&env[..], &env[..]].concat()).is_err());
    // Swap chunks 0 and 1.
    let mut swapped = env.clone();
    let (a, b) = (header_end, header_end + SEALED_CHUNK);
    let first = env[a..b].to_vec();
    swapped.copy_within(b..b + SEALED_CHUNK, a);
    swapped[b..b + SEALED_CHUNK].copy_from_slice(&first);
    assert!(matches!(f.verify(&swapped), Err(Error::BadSignature)));
    assert!(f.open(&swapped).is_err());
}

#[test]
fn a_forged_envelope_with_a_fresh_signature_still_fails_to_open_if_chunks_move() {
    // Signature alone proves integrity; the STREAM nonces also stop a signer-side
    // reordering: re-sign a swapped body and opening still fails.
    let f = Fixture::new();
    let (env, _) = f.seal(&data(2 * CHUNK_SIZE + 5, 4));
    let n = env.len();
    let header_end = n - 2 * SEALED_CHUNK - (5 + TAG_LEN) - SIG_LEN;
    let mut body = env[..n - SIG_LEN].to_vec();
    let first = body[header_end..header_end + SEALED_CHUNK].to_vec();
    body.copy_within(header_end + SEALED_CHUNK..header_end + 2 * SEALED_CHUNK, header_end);
    body[header_end + SEALED_CHUNK..header_end + 2 * SEALED_CHUNK].copy_from_slice(&first);
    let mut ctx = Context::new(&SHA256);
    ctx.update(&body);
    let sig = f.signer.sign(Domain::Envelope, &digest32(ctx));
    body.extend_from_slice(&sig.0);
    f.verify(&body).unwrap();
    assert!(matches!(f.open(&body), Err(Error::ChunkAuthentication { index: 0 })));
}

#[test]
fn fed_in_any_pieces_the_verifier_agrees_with_itself() {
    let f = Fixture::new();
    let (env, summary) = f.seal(&data(2 * CHUNK_SIZE + 300, 5));
    for piece in [1, 7, 16, 63, 64, 65, 1000, CHUNK_SIZE + 16, env.len()] {
        let mut v = EnvelopeVerifier::new();
        for p in env.chunks(piece) {
            v.update(p);
        }
        let verified = v.finish(&f.trusted()).unwrap();
        assert_eq!(verified.digest(), summary.digest, "pieces of {piece}");
        let mut v = EnvelopeVerifier::new();
        for p in env[..env.len() - 1].chunks(piece) {
            v.update(p);
        }
        assert!(v.finish(&f.trusted()).is_err(), "truncated, pieces of {piece}");
    }
}

#[test]
fn unknown_signer_and_wrong_recipient() {
    let f = Fixture::new();
    let (env, _) = f.seal(b"scan");
    let nobody = |_: &KeyId| None;
    assert!(matches!(verify(&env[..], &nobody), Err(Error::UnknownSigner(_))));
    let other = RecipientSecretKey::generate().unwrap();
    let mut out = Vec::new();
    assert!(matches!(
        open(Cursor::new(&env), &other, &f.trusted(), &mut out),
        Err(Error::NotARecipient(_))
    ));
    assert_eq!(
        read_header(&env[..]).unwrap().packet_id,
        "0101-2026-06-01-ege-0012-blanks"
    );
}

#[test]
fn every_recipient_can_open() {
    let signer = SigningKey::generate().unwrap();
    let keys: Vec<_> = (0..3).map(|_| RecipientSecretKey::generate().unwrap()).collect();
    let publics: Vec<_> = keys.iter().map(|k| k.public_key()).collect();
    let req = SealRequest {
        packet_id: "p",
        version: 1,
        sender_site: "0101",
        sealed_at_unix_ms: 0,
        metadata: b"",
        recipients: &publics,
    };
    let mut env = Vec::new();
    seal(&req, &signer, &b"hello"[..], &mut env).unwrap();
    let trusted = |_: &KeyId| Some(signer.verifying_key());
    for k in &keys {
        let mut out = Vec::new();
        open(Cursor::new(&env), k, &trusted, &mut out).unwrap();
        assert_eq!(out, b"hello");
    }
    let no_recipients = SealRequest { recipients: &[], ..req };
    assert!(matches!(
        seal(&no_recipients, &signer, &b""[..], &mut Vec::new()),
        Err(Error::NoRecipients)
    ));
}

#[test]
fn oversized_header_length_is_refused_before_reading() {
    let mut prefix = encode_prefix(10).unwrap().to_vec();
    prefix[12..16].copy_from_slice(&u32::MAX.to_le_bytes());
    assert!(matches!(read_header(&prefix[..]), Err(Error::HeaderTooLarge { .. })));
}

#[test]
fn truncation_anywhere_is_detected() {
    let f = Fixture::new();
    let (env, _) = f.seal(&data(3 * CHUNK_SIZE + 1, 6));
    let n = env.len();
    let header_end = n - 3 * SEALED_CHUNK - (1 + TAG_LEN) - SIG_LEN;
    let mut cuts: Vec<usize> = (0..n).step_by(4099).collect();
    for k in 0..=3 {
        let b = header_end + k * SEALED_CHUNK;
        cuts.extend([b - 1, b, b + 1, b + TAG_LEN, b + SIG_LEN]);
    }
    cuts.extend([1, 15, 16, 17, header_end - 1, n - SIG_LEN - 1, n - SIG_LEN, n - 1]);
    for cut in cuts {
        let e = f.verify(&env[..cut]).unwrap_err();
        assert!(
            matches!(e, Error::Truncated | Error::BadSignature | Error::Malformed(_)),
            "cut at {cut}: {e:?}"
        );
        if cut <= header_end {
            assert!(matches!(e, Error::Truncated), "cut at {cut} in the head: {e:?}");
        }
        assert!(f.open(&env[..cut]).is_err(), "cut at {cut} opened");
    }
}

#[test]
fn digest_is_the_sha256_of_the_file_and_read_header_is_cheap() {
    let f = Fixture::new();
    let (env, summary) = f.seal(&data(CHUNK_SIZE + 3, 8));
    assert_eq!(
        summary.digest,
        digest32({
            let mut c = Context::new(&SHA256);
            c.update(&env);
            c
        })
    );
    // read_header needs only the prefix and the header.
    let header_end = env.len() - SEALED_CHUNK - (3 + TAG_LEN) - SIG_LEN;
    let h = read_header(&env[..header_end]).unwrap();
    assert_eq!(h.signer, f.signer.key_id());
    assert_eq!(h.chunk_size as usize, CHUNK_SIZE);
    assert!(matches!(read_header(&env[..header_end - 1]), Err(Error::Truncated)));
    assert!(matches!(
        read_header(&b"not an envelope at all"[..]),
        Err(Error::BadMagic)
    ));
    assert!(matches!(read_header(&env[..10]), Err(Error::Truncated)));
}

/// Rebuilds an envelope with an edited header and the same chunks, validly re-signed by
/// the fixture's signer: what a signer (not an outsider) could produce.
fn reheader(f: &Fixture, env: &[u8], edit: impl FnOnce(&mut EnvelopeHeader)) -> Vec<u8> {
    let mut h = read_header(env).unwrap();
    let old_len = PREFIX_LEN + postcard::to_allocvec(&h).unwrap().len();
    edit(&mut h);
    let hb = postcard::to_allocvec(&h).unwrap();
    let mut body = encode_prefix(hb.len()).unwrap().to_vec();
    body.extend_from_slice(&hb);
    body.extend_from_slice(&env[old_len..env.len() - SIG_LEN]);
    resign(f, body)
}

fn resign(f: &Fixture, mut body: Vec<u8>) -> Vec<u8> {
    let mut ctx = Context::new(&SHA256);
    ctx.update(&body);
    let sig = f.signer.sign(Domain::Envelope, &digest32(ctx));
    body.extend_from_slice(&sig.0);
    body
}

#[test]
fn the_header_is_bound_to_every_chunk_even_against_the_signer() {
    let f = Fixture::new();
    let (env, _) = f.seal(&data(CHUNK_SIZE + 10, 9));
    let edited = reheader(&f, &env, |h| h.sealed_at_unix_ms += 1);
    f.verify(&edited).unwrap();
    assert!(matches!(f.open(&edited), Err(Error::ChunkAuthentication { index: 0 })));
    // Sanity: re-signing without an edit keeps it openable.
    let same = reheader(&f, &env, |_| {});
    assert_eq!(f.open(&same).unwrap(), data(CHUNK_SIZE + 10, 9));
}

type HeaderEdit = fn(&mut EnvelopeHeader);

#[test]
fn malformed_headers_are_refused_before_the_signature() {
    let f = Fixture::new();
    let (env, _) = f.seal(b"x");
    let edits: [(&str, HeaderEdit); 3] = [
        ("short wrapped key", |h| {
            h.recipients[0].wrapped.pop();
        }),
        ("no recipients", |h| h.recipients.clear()),
        ("chunk size", |h| h.chunk_size = 4096),
    ];
    for (what, edit) in edits {
        let bad = reheader(&f, &env, edit);
        let e = f.verify(&bad).unwrap_err();
        assert!(matches!(e, Error::MalformedHeader(_)), "{what}: {e:?}");
    }
}

#[test]
fn stream_framing_stops_a_signer_truncating_or_extending() {
    let f = Fixture::new();
    let (env, _) = f.seal(&data(2 * CHUNK_SIZE + 40, 10));
    let n = env.len();
    let header_end = n - 2 * SEALED_CHUNK - (40 + TAG_LEN) - SIG_LEN;
    // Drop the final chunk and re-sign: chunk 1 is now read as final and fails.
    let dropped = resign(&f, env[..header_end + 2 * SEALED_CHUNK].to_vec());
    f.verify(&dropped).unwrap();
    assert!(matches!(f.open(&dropped), Err(Error::ChunkAuthentication { index: 1 })));
    // Append a copy of chunk 0 and re-sign.
    let mut longer = env[..n - SIG_LEN].to_vec();
    longer.extend_from_slice(&env[header_end..header_end + SEALED_CHUNK]);
    let longer = resign(&f, longer);
    f.verify(&longer).unwrap();
    assert!(matches!(f.open(&longer), Err(Error::ChunkAuthentication { index: 2 })));
    // A final chunk shorter than its tag is malformed, whatever the signature says.
    let short = resign(&f, env[..header_end + 2 * SEALED_CHUNK + 7].to_vec());
    assert!(matches!(f.verify(&short), Err(Error::Malformed(_))));
    // No chunk at all.
    let none = resign(&f, env[..header_end].to_vec());
    assert!(matches!(f.verify(&none), Err(Error::Truncated)));
}

/// A file whose content is replaced after the first rewind, as if someone wrote to it
/// between open's two passes.
struct Swapping {
    first: Cursor<Vec<u8>>,
    second: Cursor<Vec<u8>>,
    swapped: bool,
}

impl Read for Swapping {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if self.swapped {
            self.second.read(buf)
        } else {
            self.first.read(buf)
        }
    }
}

impl Seek for Swapping {
    fn seek(&mut self, pos: SeekFrom) -> io::Result<u64> {
        self.swapped = true;
        self.second.seek(pos)
    }
}

#[test]
fn open_notices_a_file_changed_between_its_passes() {
    let f = Fixture::new();
    let (a, _) = f.seal(&data(CHUNK_SIZE, 11));
    let (b, _) = f.seal(&data(CHUNK_SIZE, 12));
    let input = Swapping {
        first: Cursor::new(a),
        second: Cursor::new(b),
        swapped: false,
    };
    let e = open(input, &f.center, &f.trusted(), &mut Vec::new()).unwrap_err();
    assert!(matches!(e, Error::Malformed(ref m) if m.contains("changed")), "{e:?}");
}

#[test]
fn errors_name_no_key_material() {
    let f = Fixture::new();
    let (env, _) = f.seal(b"secret scan");
    let other = RecipientSecretKey::generate().unwrap();
    let e = open(Cursor::new(&env), &other, &f.trusted(), &mut Vec::new()).unwrap_err();
    let msg = e.to_string();
    assert!(msg.contains(&other.public_key().key_id().to_string()), "{msg}");
    assert!(!msg.contains(&hex::encode(*other.to_bytes())));
    assert!(!msg.contains(&hex::encode(f.signer.seed())));
}

/// Throughput in release: `cargo test -p konvert-crypto --release -- --ignored --nocapture`.
#[test]
#[ignore = "a benchmark; run in release"]
fn throughput() {
    let f = Fixture::new();
    let plain = data(256 << 20, 13);
    let mb = plain.len() as f64 / 1e6;
    let t = std::time::Instant::now();
    let (env, _) = f.seal(&plain);
    let seal_s = t.elapsed().as_secs_f64();
    let t = std::time::Instant::now();
    f.verify(&env).unwrap();
    let verify_s = t.elapsed().as_secs_f64();
    let t = std::time::Instant::now();
    let mut out = Vec::with_capacity(plain.len());
    open(Cursor::new(&env), &f.center, &f.trusted(), &mut out).unwrap();
    let open_s = t.elapsed().as_secs_f64();
    assert_eq!(out.len(), plain.len());
    println!(
        "seal {:.0} MB/s, verify {:.0} MB/s, open {:.0} MB/s",
        mb / seal_s,
        mb / verify_s,
        mb / open_s
    );
}

/// Reads an envelope the way FORMAT.md describes it, with raw primitives only (no code
/// from this module but the header struct), so the document and the code cannot drift.
#[test]
fn format_md_describes_the_bytes() {
    use ring::signature::{UnparsedPublicKey, ED25519};
    let f = Fixture::new();
    let plain = data(CHUNK_SIZE + 1000, 14);
    let (env, summary) = f.seal(&plain);
    // Prefix.
    assert_eq!(&env[..8], b"KNVRTENV");
    assert_eq!(&env[8..12], &[1, 0, 1, 0]);
    let h = u32::from_le_bytes(env[12..16].try_into().unwrap()) as usize;
    let header: EnvelopeHeader = postcard::from_bytes(&env[16..16 + h]).unwrap();
    // Field order: packet id string first; chunk_size 65536 = 80 80 04 right before the
    // metadata (length 4, "meta") at the end.
    assert_eq!(env[16] as usize, header.packet_id.len());
    assert_eq!(&env[16 + h - 8..16 + h], &[0x80, 0x80, 0x04, 4, b'm', b'e', b't', b'a']);
    // Signature over the domain label ‖ SHA-256 of everything before the trailer.
    let trailer = env.len() - 64;
    let signed = ring::digest::digest(&SHA256, &env[..trailer]);
    let msg = [&b"konvert/v1/envelope-signature\0"[..], signed.as_ref()].concat();
    UnparsedPublicKey::new(&ED25519, f.signer.verifying_key().0)
        .verify(&msg, &env[trailer..])
        .unwrap();
    // Digest = SHA-256 of the file.
    assert_eq!(ring::digest::digest(&SHA256, &env).as_ref(), &summary.digest[..]);
    // Key schedule.
    let hkdf32 = |salt: &[u8], ikm: &[u8], info: &[u8]| {
        let mut k = [0u8; 32];
        ring::hkdf::Salt::new(ring::hkdf::HKDF_SHA256, salt)
            .extract(ikm)
            .expand(&[info], ring::hkdf::HKDF_SHA256)
            .unwrap()
            .fill(&mut k)
            .unwrap();
        k
    };
    let gcm = |key: &[u8; 32]| LessSafeKey::new(UnboundKey::new(&AES_256_GCM, key).unwrap());
    let r = f.center.public_key();
    let entry = &header.recipients[0];
    assert_eq!(entry.recipient, r.key_id());
    let shared = x25519_dalek::StaticSecret::from(*f.center.to_bytes())
        .diffie_hellman(&x25519_dalek::PublicKey::from(entry.ephemeral_public));
    let wrap_key = hkdf32(
        &[entry.ephemeral_public, r.0].concat(),
        shared.as_bytes(),
        b"konvert/v1/wrap",
    );
    let mut wrapped = entry.wrapped.clone();
    let file_key: [u8; 32] = gcm(&wrap_key)
        .open_in_place(
            Nonce::assume_unique_for_key([0; 12]),
            Aad::from(entry.recipient.0),
            &mut wrapped,
        )
        .unwrap()
        .try_into()
        .unwrap();
    let payload_key = gcm(&hkdf32(&header.payload_salt, &file_key, b"konvert/v1/payload"));
    // Chunks: 65552 bytes, then the final one; nonce = 11-byte BE counter ‖ flag.
    let aad = ring::digest::digest(&SHA256, &env[..16 + h]);
    let mut out = Vec::new();
    for (i, chunk) in env[16 + h..trailer].chunks(65552).enumerate() {
        let mut nonce = [0u8; 12];
        nonce[10] = i as u8;
        nonce[11] = u8::from(16 + h + (i + 1) * 65552 >= trailer);
        let mut c = chunk.to_vec();
        let p = payload_key
            .open_in_place(Nonce::assume_unique_for_key(nonce), Aad::from(aad.as_ref()), &mut c)
            .unwrap();
        out.extend_from_slice(p);
    }
    assert_eq!(out, plain);
}
