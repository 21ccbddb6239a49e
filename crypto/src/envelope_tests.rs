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

    /// Opens `env` both ways, streaming and in memory, and checks they agree.
    fn open(&self, env: &[u8]) -> Result<Vec<u8>> {
        let mut out = Vec::new();
        let streamed = open(Cursor::new(env), &self.center, &self.trusted(), &mut out).map(|_| out);
        let in_memory = verify_bytes(env.to_vec(), &self.trusted()).and_then(|v| {
            let mut out = Vec::new();
            open_bytes(&v, &self.center, &mut out).map(|()| out)
        });
        let at_once =
            open_in_memory(env, &self.center, &self.trusted(), vec![7u8; 100], |plain| plain).map(|(_, plain)| plain);
        for (other, how) in [
            (&in_memory, "verified, then opened in memory"),
            (&at_once, "verified while opened"),
        ] {
            match (&streamed, other) {
                (Ok(a), Ok(b)) => assert!(a == b, "streaming and {how} opened different plaintexts"),
                (Err(a), Err(b)) => assert_eq!(
                    format!("{a:?}"),
                    format!("{b:?}"),
                    "streaming and {how} failed differently"
                ),
                (a, b) => panic!("streaming gave {:?}, {how} {:?}", a.as_ref().err(), b.as_ref().err()),
            }
        }
        streamed
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
        |e| matches!(e, Error::UnsupportedFormat { version: 3, suite: 1 }),
        "format version",
    );
    assert_flip(
        &f,
        &env,
        10,
        |e| matches!(e, Error::UnsupportedFormat { version: 2, suite: 0 }),
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
    assert_flip(&f, &env, header_end - HEADER_MAC_LEN - 1, bad_sig, "metadata");
    assert_flip(&f, &env, header_end - HEADER_MAC_LEN, bad_sig, "header MAC start");
    assert_flip(&f, &env, header_end - 1, bad_sig, "header MAC end");
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
    // The header MAC, keyed from the file key, fails before any chunk is decrypted.
    assert!(matches!(f.open(&edited), Err(Error::KeyCommitment(_))));
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
    assert_eq!(&env[8..12], &[2, 0, 1, 0]);
    let h = u32::from_le_bytes(env[12..16].try_into().unwrap()) as usize;
    let mac = &env[16 + h..16 + h + 32];
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
    // Header MAC: HMAC-SHA256 over prefix ‖ header, keyed from the file key.
    let mac_key = ring::hmac::Key::new(
        ring::hmac::HMAC_SHA256,
        &hkdf32(&header.payload_salt, &file_key, b"konvert/v2/header-mac"),
    );
    ring::hmac::verify(&mac_key, &env[..16 + h], mac).unwrap();
    // Chunks: 65552 bytes, then the final one; nonce = 11-byte BE counter ‖ flag.
    let aad = ring::digest::digest(&SHA256, &env[..16 + h]);
    let mut out = Vec::new();
    for (i, chunk) in env[16 + h + 32..trailer].chunks(65552).enumerate() {
        let mut nonce = [0u8; 12];
        nonce[10] = i as u8;
        nonce[11] = u8::from(16 + h + 32 + (i + 1) * 65552 >= trailer);
        let mut c = chunk.to_vec();
        let p = payload_key
            .open_in_place(Nonce::assume_unique_for_key(nonce), Aad::from(aad.as_ref()), &mut c)
            .unwrap();
        out.extend_from_slice(p);
    }
    assert_eq!(out, plain);
}

// ---- The two-keys envelope (issue 14, item 11): what a hostile signer builds by hand. ----

/// Multiplication in GCM's GF(2^128), bit 0 = the most significant bit of byte 0
/// (NIST SP 800-38D, algorithm 1).
fn gf_mul(x: u128, y: u128) -> u128 {
    let (mut z, mut v) = (0u128, y);
    for i in 0..128 {
        if (x >> (127 - i)) & 1 == 1 {
            z ^= v;
        }
        v = if v & 1 == 1 {
            (v >> 1) ^ (0xe1u128 << 120)
        } else {
            v >> 1
        };
    }
    z
}

/// x^(2^128 − 2) = x⁻¹ for x ≠ 0.
fn gf_inv(x: u128) -> u128 {
    let (mut result, mut base) = (1u128 << 127, x); // 1 is the top bit in GCM's order
    for i in 0..128 {
        if i != 0 {
            result = gf_mul(result, base);
        }
        base = gf_mul(base, base);
    }
    result
}

fn aes_block(key: &[u8; 32], block: [u8; 16]) -> u128 {
    use aes::cipher::{Array, BlockCipherEncrypt, KeyInit};
    let cipher = aes::Aes256::new(&Array::from(*key));
    let mut b = Array::from(block);
    cipher.encrypt_block(&mut b);
    u128::from_be_bytes(b.into())
}

fn hkdf32(salt: &[u8], ikm: &[u8], info: &[u8]) -> [u8; 32] {
    let mut k = [0u8; 32];
    ring::hkdf::Salt::new(ring::hkdf::HKDF_SHA256, salt)
        .extract(ikm)
        .expand(&[info], ring::hkdf::HKDF_SHA256)
        .unwrap()
        .fill(&mut k)
        .unwrap();
    k
}

/// One final chunk of two AES blocks whose GCM tag is valid under both payload keys: the
/// first block is free, the second is solved so that both GHASH sums, masked by each key's
/// E(J0), meet ("invisible salamanders").
fn two_keys_chunk(k1: &[u8; 32], k2: &[u8; 32], aad: &[u8; 32]) -> Vec<u8> {
    let n = nonce(0, true);
    let n: [u8; 12] = *n.as_ref();
    let counter_block = |c: u32| {
        let mut b = [0u8; 16];
        b[..12].copy_from_slice(&n);
        b[12..].copy_from_slice(&c.to_be_bytes());
        b
    };
    let (h1, h2) = (aes_block(k1, [0; 16]), aes_block(k2, [0; 16]));
    let (j1, j2) = (aes_block(k1, counter_block(1)), aes_block(k2, counter_block(1)));
    let a1 = u128::from_be_bytes(aad[..16].try_into().unwrap());
    let a2 = u128::from_be_bytes(aad[16..].try_into().unwrap());
    let len_block = (256u128 << 64) | 256; // 256 bits of AAD, 256 bits of ciphertext
    let c1 = u128::from_be_bytes(*b"attacker's block");
    // GHASH_H = a1·H⁵ + a2·H⁴ + c1·H³ + c2·H² + L·H; solve tag1 = tag2 for c2.
    let pow = |h: u128, e: u32| (0..e).fold(1u128 << 127, |acc, _| gf_mul(acc, h));
    let known = |h: u128| gf_mul(a1, pow(h, 5)) ^ gf_mul(a2, pow(h, 4)) ^ gf_mul(c1, pow(h, 3)) ^ gf_mul(len_block, h);
    let rhs = j1 ^ j2 ^ known(h1) ^ known(h2);
    let c2 = gf_mul(rhs, gf_inv(pow(h1, 2) ^ pow(h2, 2)));
    let ghash = |h: u128| known(h) ^ gf_mul(c2, pow(h, 2));
    let tag = j1 ^ ghash(h1);
    assert_eq!(tag, j2 ^ ghash(h2), "the solved block makes one tag for both keys");
    [c1.to_be_bytes(), c2.to_be_bytes(), tag.to_be_bytes()].concat()
}

/// Builds the envelope: signed by `f`'s signer, sealed to two recipients with two
/// different file keys, one chunk whose tag holds under both payload keys. In format 2 the
/// header MAC can commit to only one of the file keys: the first.
fn two_keys_envelope(f: &Fixture, r1: &RecipientSecretKey, r2: &RecipientSecretKey, version: u16) -> Vec<u8> {
    let (mut fk1, mut fk2, mut payload_salt) = ([0u8; 32], [0u8; 32], [0u8; 32]);
    random_bytes(&mut fk1).unwrap();
    random_bytes(&mut fk2).unwrap();
    random_bytes(&mut payload_salt).unwrap();
    let header = EnvelopeHeader {
        packet_id: "0101-2026-06-01-ege-0012-blanks".into(),
        version: 1,
        sender_site: "0101".into(),
        sealed_at_unix_ms: 1_780_000_000_000,
        signer: f.signer.key_id(),
        recipients: vec![
            wrap_for(&r1.public_key(), &fk1).unwrap(),
            wrap_for(&r2.public_key(), &fk2).unwrap(),
        ],
        payload_salt,
        chunk_size: CHUNK_SIZE as u32,
        metadata: b"meta".to_vec(),
    };
    let hb = postcard::to_allocvec(&header).unwrap();
    let mut body = encode_prefix_version(version, hb.len()).unwrap().to_vec();
    body.extend_from_slice(&hb);
    let aad: [u8; 32] = ring::digest::digest(&SHA256, &body).as_ref().try_into().unwrap();
    if version == FORMAT_VERSION {
        let mac_key = ring::hmac::Key::new(ring::hmac::HMAC_SHA256, &hkdf32(&payload_salt, &fk1, INFO_HEADER_MAC));
        body.extend_from_slice(ring::hmac::sign(&mac_key, &body).as_ref());
    }
    let p1 = hkdf32(&payload_salt, &fk1, INFO_PAYLOAD);
    let p2 = hkdf32(&payload_salt, &fk2, INFO_PAYLOAD);
    body.extend_from_slice(&two_keys_chunk(&p1, &p2, &aad));
    resign(f, body)
}

#[test]
fn the_two_keys_envelope_is_refused() {
    let f = Fixture::new();
    let r2 = RecipientSecretKey::generate().unwrap();
    let open_as = |env: &[u8], r: &RecipientSecretKey| {
        let mut out = Vec::new();
        open(Cursor::new(env), r, &f.trusted(), &mut out).map(|_| out)
    };

    // Format 1, as konvert 0.1 read it: the chunk really is valid under both payload keys,
    // so without a commitment each recipient would read its own attacker-chosen content.
    let v1 = two_keys_envelope(&f, &f.center, &r2, FORMAT_VERSION_V1);
    let stored = verify_stored(&v1[..], &f.trusted()).unwrap();
    let h = stored.header();
    let aad: [u8; 32] = ring::digest::digest(&SHA256, &v1[..v1.len() - SIG_LEN - 48])
        .as_ref()
        .try_into()
        .unwrap();
    let chunk = &v1[v1.len() - SIG_LEN - 48..v1.len() - SIG_LEN];
    let mut plains = Vec::new();
    for fk_owner in [&f.center, &r2] {
        let rpub = fk_owner.public_key();
        let entry = h.recipients.iter().find(|w| w.recipient == rpub.key_id()).unwrap();
        let key = unwrap_payload_key(h, entry, fk_owner, &rpub, &[], None).unwrap();
        let mut c = chunk.to_vec();
        plains.push(
            key.open_in_place(nonce(0, true), Aad::from(aad), &mut c)
                .unwrap()
                .to_vec(),
        );
    }
    assert_ne!(plains[0], plains[1], "one tag, two keys, two plaintexts");
    // Intake refuses format 1 outright; the store's reader refuses a format-1 envelope with
    // two recipients, which no konvert edge ever sealed.
    assert!(matches!(f.verify(&v1), Err(Error::LegacyEnvelope { version: 1 })));
    for r in [&f.center, &r2] {
        let e = open_as(&v1, r).unwrap_err();
        assert!(matches!(e, Error::KeyCommitment(_)), "format 1: {e:?}");
    }

    // Format 2: the header MAC commits to the first file key; the second recipient's key
    // does not match it and nothing is decrypted for it.
    let v2 = two_keys_envelope(&f, &f.center, &r2, FORMAT_VERSION);
    f.verify(&v2).unwrap();
    let e = open_as(&v2, &r2).unwrap_err();
    assert!(
        matches!(e, Error::KeyCommitment(ref m) if m.contains(&r2.public_key().key_id().to_string())),
        "{e:?}"
    );
    assert_eq!(open_as(&v2, &f.center).unwrap().len(), 32);
}

#[test]
fn a_recipient_listed_twice_is_refused() {
    let f = Fixture::new();
    let (env, _) = f.seal(b"x");
    let twice = reheader(&f, &env, |h| {
        let again = h.recipients[0].clone();
        h.recipients.push(again);
    });
    let e = f.verify(&twice).unwrap_err();
    assert!(
        matches!(e, Error::MalformedHeader(ref m) if m.contains("twice")),
        "{e:?}"
    );
    let e = f.open(&twice).unwrap_err();
    assert!(
        matches!(e, Error::MalformedHeader(ref m) if m.contains("twice")),
        "{e:?}"
    );
}

#[test]
fn format_1_envelopes_from_the_store_still_open() {
    // A single-recipient format-1 envelope, as konvert 0.1 sealed: prefix version 1, no
    // header MAC.
    let f = Fixture::new();
    let plain = data(CHUNK_SIZE + 3, 15);
    let recipients = [f.center.public_key()];
    let req = SealRequest {
        packet_id: "0101-2026-06-01-ege-0012-blanks",
        version: 1,
        sender_site: "0101",
        sealed_at_unix_ms: 1_780_000_000_000,
        metadata: b"meta",
        recipients: &recipients,
    };
    let mut v1 = Vec::new();
    seal_as(FORMAT_VERSION_V1, &req, &f.signer, &plain[..], &mut v1).unwrap();
    assert_eq!(&v1[8..10], &[1, 0]);
    assert_eq!(v1.len(), f.seal(&plain).0.len() - HEADER_MAC_LEN);
    assert!(matches!(f.verify(&v1), Err(Error::LegacyEnvelope { version: 1 })));
    let stored = verify_stored(&v1[..], &f.trusted()).unwrap();
    assert_eq!(stored.format_version(), 1);
    assert_eq!(read_header(&v1[..]).unwrap().sender_site, "0101");
    assert_eq!(f.open(&v1).unwrap(), plain);
}
