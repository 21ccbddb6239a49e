use std::io::Cursor;

use proptest::prelude::*;

use super::*;

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

#[test]
fn any_flipped_byte_is_detected() {
    let f = Fixture::new();
    let (env, _) = f.seal(&data(3 * CHUNK_SIZE + 100, 1));
    let n = env.len();
    let positions = [
        0,
        8,
        10,
        12,
        15,
        16,
        20,
        60,
        200,
        300,
        n / 3,
        n / 2,
        n - 200,
        n - 65,
        n - 64,
        n - 1,
    ];
    for at in positions {
        let mut bad = env.clone();
        bad[at] ^= 0x01;
        assert!(f.verify(&bad).is_err(), "flip at {at} of {n} passed verify");
        assert!(f.open(&bad).is_err(), "flip at {at} of {n} opened");
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
    let mut longer = env.clone();
    longer.extend_from_slice(&[0u8; 20]);
    assert!(f.verify(&longer).is_err());
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
