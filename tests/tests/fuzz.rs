//! Property tests of every parser that reads bytes from outside the process: the frame
//! decoder, the envelope, the signed key registry, the reserve drive's index, the seating
//! plan, the day plan, every TOML config and the center's TOML desk files. Each is fed arbitrary input and mutations of
//! a real, valid encoding (flipped, set, inserted, deleted, repeated and truncated bytes),
//! and must answer with a value or an error: never a panic, never a hang (each case runs
//! on a thread of its own under a time budget) and never more heap than its declared
//! bound (a counting global allocator measures each case's peak).
//!
//! CI runs a fixed number of cases per property; `KONVERT_FUZZ_CASES=N` runs more (README,
//! "Property and fuzz tests"), `KONVERT_FUZZ_SEED=<64 hex digits>` replays a failure (its
//! seed is printed with it).

// Test code: a failed setup step is a failed test, so unwrap is the clearest report.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::fmt::Debug;
use std::io::Cursor;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc::{self, RecvTimeoutError};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use konvert_center::config::CenterConfig;
use konvert_center::mirror::config::{FederalConfig, RegionMirrorConfig};
use konvert_center::provision::{self, CenterFacts};
use konvert_center::stations::StationIndex;
use konvert_crypto::envelope::{self, SealRequest};
use konvert_crypto::keyfile::{MAX_CONFIG_BYTES, MAX_PLAN_BYTES};
use konvert_crypto::registry::{
    Authority, AuthorityFile, CenterKeyRecord, CenterKeyState, OfficerEntry, RegistryBody, RegistryTrust,
    SignedRegistry, TokenRole, MAX_REGISTRY_LEN,
};
use konvert_crypto::{EnvelopeVerifier, KeyId, RecipientSecretKey, SigningKey, MAX_HEADER_LEN};
use konvert_edge::relay::RelayConfig;
use konvert_edge::SiteConfig;
use konvert_exam::{DayPlan, SeatingPlan};
use konvert_replication::crl_floor::CrlFloor;
use konvert_replication::frame::{self, FrameDecoder, MAX_FRAME_LEN};
use konvert_replication::message::{Message, Offer, RejectReason};
use konvert_replication::reserve::{DriveIndex, DrivePacket, INDEX_FILE, MAX_INDEX_BYTES, MAX_INDEX_PACKETS};
use peak_alloc::PeakAlloc;
use proptest::collection::vec;
use proptest::prelude::*;
use proptest::sample::select;
use proptest::test_runner::{Config, RngAlgorithm, TestCaseError, TestError, TestRng, TestRunner};

#[global_allocator]
static HEAP: PeakAlloc = PeakAlloc;

// ---------------------------------------------------------------------------------------
// The harness: serial cases, each on its own thread, under a heap and a time budget.

/// See [`serial`].
static ONE_AT_A_TIME: Mutex<()> = Mutex::new(());

/// Taken first by every test, setup included: the allocator counts every thread, so a
/// case's peak is its own only while nothing else runs.
fn serial() -> std::sync::MutexGuard<'static, ()> {
    ONE_AT_A_TIME.lock().unwrap_or_else(|p| p.into_inner())
}

/// The highest peak of the property running now, for its closing line.
static HIGHEST_PEAK: AtomicUsize = AtomicUsize::new(0);

/// Cases per property in CI: the whole file takes ~35 s of a debug build on two cores.
const CI_CASES: u32 = 512;

/// Heap that `serde` may reserve up front for a sequence whose length the input
/// announces: it trusts the announced length up to 1 MiB (`serde::de::size_hint::cautious`),
/// so this much can be allocated before the input is seen to be short.
const SERDE_PREALLOCATION: usize = 1 << 20;

/// What the harness itself allocates per case (the thread, its channel, error strings).
const SLACK: usize = 64 << 10;

/// Time a case may take before it counts as a hang. Real inputs take milliseconds; the
/// margin is for a debug build on a loaded two-core machine.
const CASE_TIME: Duration = Duration::from_secs(20);

/// The most heap one TOML parse may use per byte of its text: `toml` keeps a table of
/// items with spans and formatting for the whole document before serde reads it; the
/// worst text measured (an array of one-digit items, `0,0,…`) uses 132× (see
/// `toml_at_its_bound`); no TOML item is written in fewer bytes.
const TOML_HEAP_PER_BYTE: usize = 160;

/// The buffer a file on a reserve drive is read through (`konvert_replication::drive`).
const DRIVE_READ_BUFFER: usize = 1 << 20;

fn cases() -> u32 {
    std::env::var("KONVERT_FUZZ_CASES")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(CI_CASES)
}

fn seed() -> [u8; 32] {
    match std::env::var("KONVERT_FUZZ_SEED") {
        Ok(hex_seed) => {
            let mut seed = [0u8; 32];
            hex::decode_to_slice(hex_seed.trim(), &mut seed).expect("KONVERT_FUZZ_SEED is 64 hex digits");
            seed
        }
        Err(_) => rand::random(),
    }
}

/// Debug text of a failing input, cut so a 4 MiB input does not drown the report.
fn shown(value: &impl Debug) -> String {
    let text = format!("{value:?}");
    if text.len() > 4000 {
        let cut = (0..=4000).rev().find(|&i| text.is_char_boundary(i)).unwrap_or(0);
        format!("{}… ({} characters)", &text[..cut], text.len())
    } else {
        text
    }
}

/// Runs property `name` over `cases` inputs from `strategy`, seeded (the seed is printed
/// with a failure so that it replays).
fn check<S>(name: &str, cases: u32, strategy: S, test: impl Fn(S::Value) -> Result<(), TestCaseError>)
where
    S: Strategy,
    S::Value: Debug,
{
    let seed = seed();
    let config = Config {
        cases,
        failure_persistence: None,
        max_shrink_iters: 256,
        ..Config::default()
    };
    let mut runner = TestRunner::new_with_rng(config, TestRng::from_seed(RngAlgorithm::ChaCha, &seed));
    HIGHEST_PEAK.store(0, Ordering::Relaxed);
    let started = Instant::now();
    match runner.run(&strategy, test) {
        Ok(()) => eprintln!(
            "{name}: {cases} cases in {:.1} s, highest peak {} bytes",
            started.elapsed().as_secs_f64(),
            HIGHEST_PEAK.load(Ordering::Relaxed)
        ),
        Err(TestError::Abort(why)) => panic!("{name}: aborted: {why}; seed KONVERT_FUZZ_SEED={}", hex::encode(seed)),
        Err(TestError::Fail(why, input)) => panic!(
            "{name}: {why}\n  input: {}\n  replay: KONVERT_FUZZ_SEED={}",
            shown(&input),
            hex::encode(seed)
        ),
    }
}

fn panic_text(payload: Box<dyn std::any::Any + Send>) -> String {
    payload
        .downcast_ref::<String>()
        .cloned()
        .or_else(|| payload.downcast_ref::<&str>().map(|s| s.to_string()))
        .unwrap_or_else(|| "a panic".into())
}

/// Runs `f` on a thread of its own; fails the case when it panics, takes longer than
/// [`CASE_TIME`], or allocates more than `heap` bytes at its peak beyond what was
/// allocated before it started. Returns what `f` returned and the peak.
fn guarded<T: Send + 'static>(
    heap: usize,
    f: impl FnOnce() -> T + Send + 'static,
) -> Result<(T, usize), TestCaseError> {
    guarded_within(heap, CASE_TIME, f)
}

fn guarded_within<T: Send + 'static>(
    heap: usize,
    time: Duration,
    f: impl FnOnce() -> T + Send + 'static,
) -> Result<(T, usize), TestCaseError> {
    let (tx, rx) = mpsc::sync_channel(1);
    let before = HEAP.current_usage();
    HEAP.reset_peak_usage();
    let worker = std::thread::Builder::new()
        .name("fuzz-case".into())
        .spawn(move || {
            let out = f();
            let _ = tx.send(out);
        })
        .expect("a thread for the case");
    let out = match rx.recv_timeout(time) {
        Ok(out) => out,
        Err(RecvTimeoutError::Timeout) => {
            return Err(TestCaseError::fail(format!(
                "no answer within {time:?}: the parser hangs"
            )))
        }
        Err(RecvTimeoutError::Disconnected) => {
            let why = worker.join().err().map(panic_text).unwrap_or_default();
            return Err(TestCaseError::fail(format!("the parser panicked: {why}")));
        }
    };
    let _ = worker.join();
    let peak = HEAP.peak_usage().saturating_sub(before);
    HIGHEST_PEAK.fetch_max(peak, Ordering::Relaxed);
    if peak > heap {
        return Err(TestCaseError::fail(format!(
            "allocated {peak} bytes at its peak, over its bound of {heap}"
        )));
    }
    Ok((out, peak))
}

#[test]
fn the_harness_fails_a_panic_a_hang_and_too_much_heap() {
    let _one = serial();
    let panicked = guarded_within(SLACK, CASE_TIME, || panic!("on purpose")).unwrap_err();
    assert!(panicked.to_string().contains("panicked: on purpose"), "{panicked}");
    let hung = guarded_within(SLACK, Duration::from_millis(200), || {
        std::thread::sleep(Duration::from_secs(2))
    })
    .unwrap_err();
    assert!(hung.to_string().contains("hangs"), "{hung}");
    let grew = guarded_within(SLACK, CASE_TIME, || vec![1u8; 2 * SLACK]).unwrap_err();
    assert!(grew.to_string().contains("over its bound"), "{grew}");
    let (kept, peak) = guarded_within(SLACK, CASE_TIME, || vec![1u8; SLACK / 2]).unwrap();
    assert_eq!(kept.len(), SLACK / 2);
    assert!(
        (SLACK / 2..SLACK).contains(&peak),
        "a {} byte vector peaks at {peak}",
        SLACK / 2
    );
    // Let the hung case's thread end before another test measures.
    std::thread::sleep(Duration::from_secs(2));
}

// ---------------------------------------------------------------------------------------
// Inputs: mutations of a valid encoding, and arbitrary bytes or text.

/// One change to a valid encoding; positions wrap around its length.
#[derive(Debug, Clone)]
enum Edit {
    Flip(usize, u8),
    Set(usize, u8),
    Insert(usize, Vec<u8>),
    Delete(usize, usize),
    Repeat(usize, usize, u8),
    Truncate(usize),
}

/// Byte strings a binary decoder reads as lengths: varints of 0, 127, 128, u32::MAX and
/// more than a u64, and little-endian u32 lengths around the bounds.
const BINARY_WORDS: &[&[u8]] = &[
    &[0],
    &[0x7f],
    &[0x80, 0x01],
    &[0xff, 0xff, 0xff, 0xff, 0x0f],
    &[0xff; 11],
    &[0x00, 0x00, 0x20, 0x00],
    &[0x01, 0x00, 0x20, 0x00],
    &[0xff, 0xff, 0xff, 0xff],
    b"KNVRTENV",
];

/// Pieces of TOML that change its structure or its values' types.
const TOML_WORDS: &[&str] = &[
    "[",
    "]",
    "[[",
    "]]",
    "=",
    "\"",
    "'",
    "'''",
    "\"\"\"",
    "\n",
    "#",
    ",",
    "{",
    "}",
    ".",
    "-",
    "+inf",
    "nan",
    "1e999",
    "18446744073709551616",
    "-1",
    "0x7fffffffffffffff",
    "true",
    "1979-05-27T07:32:00Z",
    "\\u0000",
    "\u{0}",
    "\r",
    "\t",
    "é",
    "ППЭ",
    "\u{feff}",
    "a.b.c",
    "[[participants]]\n",
    "[day]\n",
    "x = [[[[[[[[[[",
    "{a={a={a={a={a={a=",
];

fn edit(words: &'static [&'static [u8]]) -> impl Strategy<Value = Edit> {
    prop_oneof![
        (any::<usize>(), 0u8..8).prop_map(|(at, bit)| Edit::Flip(at, bit)),
        (
            any::<usize>(),
            prop_oneof![Just(0u8), Just(0xff), Just(0x7f), Just(0x80), any::<u8>()]
        )
            .prop_map(|(at, b)| Edit::Set(at, b)),
        (
            any::<usize>(),
            prop_oneof![vec(any::<u8>(), 1..9), select(words).prop_map(|w| w.to_vec())]
        )
            .prop_map(|(at, bytes)| Edit::Insert(at, bytes)),
        (any::<usize>(), 1usize..64).prop_map(|(at, n)| Edit::Delete(at, n)),
        (any::<usize>(), 1usize..64, 2u8..16).prop_map(|(at, n, times)| Edit::Repeat(at, n, times)),
        any::<usize>().prop_map(Edit::Truncate),
    ]
}

fn apply(valid: &[u8], edits: &[Edit]) -> Vec<u8> {
    let mut b = valid.to_vec();
    for e in edits {
        let len = b.len();
        let at = |i: usize| if len == 0 { 0 } else { i % len };
        match e {
            Edit::Flip(i, bit) if len > 0 => b[at(*i)] ^= 1 << bit,
            Edit::Set(i, v) if len > 0 => b[at(*i)] = *v,
            Edit::Insert(i, bytes) => {
                let i = if len == 0 { 0 } else { i % (len + 1) };
                b.splice(i..i, bytes.iter().copied());
            }
            Edit::Delete(i, n) if len > 0 => {
                let i = at(*i);
                b.drain(i..(i + n).min(len));
            }
            Edit::Repeat(i, n, times) if len > 0 => {
                let i = at(*i);
                let piece = b[i..(i + n).min(len)].to_vec();
                for _ in 1..*times {
                    b.splice(i..i, piece.iter().copied());
                }
            }
            Edit::Truncate(i) => b.truncate(if len == 0 { 0 } else { i % len }),
            _ => {}
        }
    }
    b
}

/// 1 to 6 edits of `valid`.
fn mutated(valid: Vec<u8>, words: &'static [&'static [u8]]) -> impl Strategy<Value = Vec<u8>> {
    vec(edit(words), 1..7).prop_map(move |edits| apply(&valid, &edits))
}

fn toml_words() -> &'static [&'static [u8]] {
    static WORDS: std::sync::OnceLock<Vec<&'static [u8]>> = std::sync::OnceLock::new();
    WORDS.get_or_init(|| TOML_WORDS.iter().map(|w| w.as_bytes()).collect())
}

/// TOML-shaped text: tokens, keys and numbers in any order, and plain arbitrary text.
fn arbitrary_toml() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        vec(
            prop_oneof![
                select(TOML_WORDS).prop_map(str::to_owned),
                "[a-z_]{1,12}",
                "[0-9]{1,6}",
                Just(" = ".to_owned()),
                Just("\n".to_owned()),
            ],
            0..200
        )
        .prop_map(|parts| parts.concat().into_bytes()),
        "(?s).{0,600}".prop_map(String::into_bytes),
        vec(any::<u8>(), 0..600),
    ]
}

fn arbitrary_bytes() -> impl Strategy<Value = Vec<u8>> {
    vec(any::<u8>(), 0..4096)
}

// ---------------------------------------------------------------------------------------
// The frame decoder.

/// One of each kind of message the wire carries, with real-sized fields.
fn messages() -> Vec<Message> {
    vec![
        Message::Hello {
            min_version: 1,
            max_version: 1,
            site: "0101".into(),
            agent: "konvert-edge 0.1.0".into(),
        },
        Message::Welcome {
            version: 1,
            center: "center.konvert".into(),
        },
        Message::Offer(Offer {
            packet_id: "0101-2026-06-01-ege-0012-blanks".into(),
            version: 2,
            size: 123_456,
            digest: [7; 32],
            priority: 1,
            sealed_at_unix_ms: 1_780_000_000_000,
            deadline_unix_ms: 1_780_050_000_000,
        }),
        Message::Accept { resume_at: 65_536 },
        Message::Reject {
            reason: RejectReason::ALL[3],
            detail: "why".into(),
        },
        Message::Data {
            offset: 65_536,
            bytes: (0..300u32).map(|i| i as u8).collect(),
        },
        Message::Done,
        Message::AskNotices,
        Message::Notices { notices: Vec::new() },
        Message::WatchRegistry { have_version: 3 },
        Message::Registry { signed: vec![9; 100] },
        Message::Held {
            relay: "relay-01".into(),
            detail: "waiting for the center".into(),
        },
        Message::WatchRevocations { have_number: 5 },
        Message::Revocations { crl: vec![3; 64] },
    ]
}

fn frames(msgs: &[Message]) -> Vec<u8> {
    let mut out = Vec::new();
    for m in msgs {
        frame::encode_into(m, &mut out).unwrap();
    }
    out
}

/// Pushes `bytes` into a decoder in pieces of the sizes in `cuts` (cycled) and takes every
/// message out, as a stream transport does.
fn decode_stream(bytes: &[u8], cuts: &[usize]) -> Result<Vec<Message>, konvert_replication::Error> {
    let mut decoder = FrameDecoder::new(MAX_FRAME_LEN);
    let mut out = Vec::new();
    let mut rest = bytes;
    let mut cut = cuts.iter().copied().cycle();
    loop {
        let n = cut.next().unwrap_or(usize::MAX).max(1).min(rest.len());
        decoder.push(&rest[..n]);
        rest = &rest[n..];
        while let Some(m) = decoder.next()? {
            out.push(m);
        }
        if rest.is_empty() {
            break;
        }
    }
    decoder.finish()?;
    Ok(out)
}

/// The decoder's bound: at most one frame buffered (≤ MAX_FRAME_LEN + 4, reserved once its
/// prefix passed the maximum, a grown buffer briefly twice), plus what was pushed and not
/// yet consumed, plus the message decoded from a frame (serde's up-front reservation, and
/// a few bytes per byte of the frame).
fn frame_bound(input: usize) -> usize {
    2 * (4 + MAX_FRAME_LEN) + 4 * input + SERDE_PREALLOCATION + SLACK
}

#[test]
fn frame_decoder_takes_mutated_streams() {
    let _one = serial();
    let msgs = messages();
    let valid = frames(&msgs);
    assert_eq!(
        decode_stream(&valid, &[7]).unwrap(),
        msgs,
        "the unmutated stream round-trips"
    );
    let strategy = (mutated(valid.clone(), BINARY_WORDS), vec(1usize..300, 1..6));
    check("frame decoder, mutated", cases(), strategy, |(bytes, cuts)| {
        let bound = frame_bound(bytes.len());
        let input = bytes.clone();
        // Every message taken re-encodes to a frame that decodes to itself.
        let (decoded, _) = guarded(bound, move || {
            decode_stream(&input, &cuts).map(|taken| {
                let again = frames(&taken);
                (taken.len(), decode_stream(&again, &[again.len()]).ok() == Some(taken))
            })
        })?;
        if let Ok((_, round_trips)) = decoded {
            prop_assert!(round_trips, "a decoded message does not round-trip");
        }
        if bytes == valid {
            prop_assert_eq!(decoded.ok().map(|(n, _)| n), Some(msgs.len()));
        }
        Ok(())
    });
}

#[test]
fn frame_decoder_takes_arbitrary_bytes() {
    let _one = serial();
    let strategy = prop_oneof![
        arbitrary_bytes(),
        // A plausible prefix, so that the body reaches postcard.
        vec(any::<u8>(), 0..2048).prop_map(|body| {
            let mut framed = (body.len() as u32).to_le_bytes().to_vec();
            framed.extend_from_slice(&body);
            framed
        }),
    ];
    check(
        "frame decoder, arbitrary",
        cases(),
        (strategy, vec(1usize..300, 1..6)),
        |(bytes, cuts)| {
            let _ = guarded(frame_bound(bytes.len()), move || {
                decode_stream(&bytes, &cuts).map(|m| m.len())
            })?;
            Ok(())
        },
    );
}

#[test]
fn frame_decoder_at_its_bound() {
    let _one = serial();
    // Announcing one byte more than the maximum is refused from the prefix alone.
    let over = ((MAX_FRAME_LEN + 1) as u32).to_le_bytes().to_vec();
    let (refused, peak) = guarded(SLACK, move || decode_stream(&over, &[4]).is_err()).unwrap();
    assert!(refused, "an oversized frame is refused");
    eprintln!("frame decoder: an oversized prefix is refused with a peak of {peak} bytes");
    // The largest frame: its body is a message announcing u32::MAX notices, then filler.
    let mut body = frame::encode(&Message::Notices { notices: Vec::new() }).unwrap()[4..5].to_vec();
    body.extend_from_slice(&[0xff, 0xff, 0xff, 0xff, 0x0f]);
    body.resize(MAX_FRAME_LEN, 0xa5);
    let mut framed = (body.len() as u32).to_le_bytes().to_vec();
    framed.extend_from_slice(&body);
    let len = framed.len();
    let (result, peak) = guarded(frame_bound(len), move || decode_stream(&framed, &[1 << 16]).is_err()).unwrap();
    assert!(result, "a frame of garbage notices is refused");
    eprintln!(
        "frame decoder: a {len}-byte frame announcing u32::MAX notices peaks at {peak} bytes (bound {})",
        frame_bound(len)
    );
}

// ---------------------------------------------------------------------------------------
// The envelope.

struct Sealed {
    signer: SigningKey,
    center: RecipientSecretKey,
    /// (plaintext, envelope)
    envelopes: Vec<(Vec<u8>, Vec<u8>)>,
}

impl Sealed {
    fn new() -> Self {
        let signer = SigningKey::generate().unwrap();
        let center = RecipientSecretKey::generate().unwrap();
        let other = RecipientSecretKey::generate().unwrap();
        let recipients = [center.public_key(), other.public_key()];
        let envelopes = [0usize, 1000, konvert_crypto::CHUNK_SIZE + 100]
            .into_iter()
            .map(|len| {
                let plain: Vec<u8> = (0..len).map(|i| (i * 31 % 251) as u8).collect();
                let req = SealRequest {
                    packet_id: "0101-2026-06-01-ege-0012-blanks",
                    version: 1,
                    sender_site: "0101",
                    sealed_at_unix_ms: 1_780_000_000_000,
                    metadata: b"{\"room\":\"0012\"}",
                    recipients: &recipients,
                };
                let mut out = Vec::new();
                envelope::seal(&req, &signer, &plain[..], &mut out).unwrap();
                (plain, out)
            })
            .collect();
        Sealed {
            signer,
            center,
            envelopes,
        }
    }
}

/// What every way of reading an envelope made of `bytes`: (verified by the streaming
/// verifier, the verifier fed in pieces agrees, plaintext opened by each of the three openers).
#[derive(Debug)]
struct Readings {
    verified: bool,
    pieces_agree: bool,
    opened: [Option<Vec<u8>>; 3],
}

fn read_envelope(sealed: &Sealed, bytes: &[u8], cuts: &[usize]) -> Readings {
    let signer = sealed.signer.verifying_key();
    let id = sealed.signer.key_id();
    let trusted = move |k: &KeyId| (*k == id).then_some(signer);
    let streamed = envelope::verify(bytes, &trusted);
    let mut verifier = EnvelopeVerifier::new();
    let mut rest = bytes;
    for n in cuts.iter().cycle() {
        if rest.is_empty() {
            break;
        }
        let n = (*n).clamp(1, rest.len());
        verifier.update(&rest[..n]);
        rest = &rest[n..];
    }
    let pieces = verifier.finish(&trusted);
    let pieces_agree =
        format!("{:?}", streamed.as_ref().map(|v| v.digest())) == format!("{:?}", pieces.as_ref().map(|v| v.digest()));
    let _ = envelope::read_header(bytes);
    let mut out = Vec::new();
    let opened_stream = envelope::open(Cursor::new(bytes), &sealed.center, &trusted, &mut out)
        .ok()
        .map(|_| out);
    let opened_bytes = envelope::verify_bytes(bytes.to_vec(), &trusted).ok().and_then(|v| {
        let mut out = Vec::new();
        envelope::open_bytes(&v, &sealed.center, &mut out).ok().map(|()| out)
    });
    let opened_memory = envelope::open_in_memory(bytes, &sealed.center, &trusted, Vec::new(), |plain| plain)
        .ok()
        .map(|(_, plain)| plain);
    Readings {
        verified: streamed.is_ok(),
        pieces_agree,
        opened: [opened_stream, opened_bytes, opened_memory],
    }
}

/// An envelope reader's bound: the streaming verifier's read buffer (4 sealed chunks) and
/// one header (≤ MAX_HEADER_LEN, decoded with serde's reservation), the in-memory openers'
/// copy of the envelope and its plaintext, and one sealed chunk to decrypt in.
fn envelope_bound(input: usize) -> usize {
    let sealed_chunk = konvert_crypto::CHUNK_SIZE + 16;
    4 * sealed_chunk + sealed_chunk + 2 * MAX_HEADER_LEN + SERDE_PREALLOCATION + 3 * input + SLACK
}

#[test]
fn envelope_readers_take_mutated_envelopes() {
    let _one = serial();
    let sealed = Arc::new(Sealed::new());
    for (plain, env) in &sealed.envelopes {
        let r = read_envelope(&sealed, env, &[1000]);
        assert!(r.verified && r.pieces_agree, "the unmutated envelope verifies");
        assert!(
            r.opened.iter().all(|o| o.as_ref() == Some(plain)),
            "and opens three ways"
        );
    }
    // Edits are drawn here and applied in the case: the strategy cannot borrow the fixture.
    let edits = (
        0..sealed.envelopes.len(),
        vec(edit(BINARY_WORDS), 1..7),
        vec(1usize..70_000, 1..5),
    );
    check("envelope, mutated", cases(), edits, |(which, edits, cuts)| {
        let (plain, valid) = &sealed.envelopes[which];
        let bytes = apply(valid, &edits);
        let unchanged = &bytes == valid;
        let fixture = Arc::clone(&sealed);
        let (r, _) = guarded(envelope_bound(bytes.len()), move || {
            read_envelope(&fixture, &bytes, &cuts)
        })?;
        prop_assert!(r.pieces_agree, "the verifier fed in pieces decided otherwise: {r:?}");
        if unchanged {
            prop_assert!(r.verified);
            prop_assert!(r.opened.iter().all(|o| o.as_ref() == Some(plain)));
        } else {
            // Every byte is covered by the signature: a changed envelope never verifies or opens.
            prop_assert!(!r.verified, "a changed envelope verified");
            prop_assert!(r.opened.iter().all(Option::is_none), "a changed envelope opened");
        }
        Ok(())
    });
}

#[test]
fn envelope_readers_take_arbitrary_bytes() {
    let _one = serial();
    let sealed = Arc::new(Sealed::new());
    let strategy = prop_oneof![
        arbitrary_bytes(),
        // A valid prefix with a header length, so that the header reaches postcard.
        vec(any::<u8>(), 0..4096).prop_map(|header| {
            let mut b = b"KNVRTENV".to_vec();
            b.extend_from_slice(&2u16.to_le_bytes());
            b.extend_from_slice(&1u16.to_le_bytes());
            b.extend_from_slice(&(header.len() as u32).to_le_bytes());
            b.extend_from_slice(&header);
            b
        }),
    ];
    check(
        "envelope, arbitrary",
        cases(),
        (strategy, vec(1usize..5000, 1..5)),
        |(bytes, cuts)| {
            let fixture = Arc::clone(&sealed);
            let (r, _) = guarded(envelope_bound(bytes.len()), move || {
                read_envelope(&fixture, &bytes, &cuts)
            })?;
            prop_assert!(!r.verified && r.pieces_agree);
            Ok(())
        },
    );
}

#[test]
fn envelope_header_at_its_bound() {
    let _one = serial();
    let sealed = Arc::new(Sealed::new());
    // A header of the largest length whose recipient list announces u32::MAX entries.
    let mut header = vec![0u8, 0, 0, 0, 0]; // packet id, version, site, sealed at: empty and zero
    header.extend_from_slice(&[1; 32]); // signer
    header.extend_from_slice(&[0xff, 0xff, 0xff, 0xff, 0x0f]);
    header.resize(MAX_HEADER_LEN, 0);
    let mut bytes = b"KNVRTENV".to_vec();
    bytes.extend_from_slice(&2u16.to_le_bytes());
    bytes.extend_from_slice(&1u16.to_le_bytes());
    bytes.extend_from_slice(&(header.len() as u32).to_le_bytes());
    bytes.extend_from_slice(&header);
    bytes.extend_from_slice(&[0; 200]);
    let len = bytes.len();
    let (r, peak) = guarded(envelope_bound(len), move || read_envelope(&sealed, &bytes, &[1 << 20])).unwrap();
    assert!(!r.verified && r.pieces_agree);
    eprintln!(
        "envelope: a {len}-byte envelope whose header announces u32::MAX recipients peaks at {peak} bytes (bound {})",
        envelope_bound(len)
    );
    // One byte over the header maximum is refused from the prefix.
    let mut over = b"KNVRTENV".to_vec();
    over.extend_from_slice(&2u16.to_le_bytes());
    over.extend_from_slice(&1u16.to_le_bytes());
    over.extend_from_slice(&((MAX_HEADER_LEN + 1) as u32).to_le_bytes());
    let (refused, peak) = guarded(envelope_bound(over.len()), move || {
        matches!(
            envelope::read_header(&over[..]),
            Err(konvert_crypto::Error::HeaderTooLarge { .. })
        )
    })
    .unwrap();
    assert!(refused, "a header over the maximum is refused as such");
    eprintln!("envelope: an oversized header is refused with a peak of {peak} bytes");
}

// ---------------------------------------------------------------------------------------
// The signed key registry.

const NOW: u64 = 1_780_000_000_000;

struct Officers {
    keys: Vec<SigningKey>,
    trust: RegistryTrust,
    signed: SignedRegistry,
}

impl Officers {
    /// Two officers, both needed, and a registry of three bound member tokens.
    fn new() -> Self {
        let keys = vec![SigningKey::generate().unwrap(), SigningKey::generate().unwrap()];
        let authority = Authority {
            officers: keys.iter().map(|k| k.verifying_key()).collect(),
            threshold: 2,
        };
        let mut body = RegistryBody {
            version: 1,
            issued_at_unix_ms: NOW,
            expires_at_unix_ms: NOW + 365 * 86_400_000,
            authority: authority.clone(),
            tokens: Vec::new(),
            center_keys: vec![CenterKeyRecord {
                key: RecipientSecretKey::generate().unwrap().public_key(),
                state: CenterKeyState::Active,
            }],
            agreement_keys: Vec::new(),
        };
        for i in 0..3 {
            let id = format!("TK-{i}");
            body.add_token(
                &id,
                TokenRole::Member,
                SigningKey::generate().unwrap().verifying_key(),
                NOW,
            )
            .unwrap();
            let t = body.tokens.last_mut().unwrap();
            t.person = format!("Иванов {i}");
            t.sites = vec!["0101".into(), format!("02{i:02}")];
            t.dates = vec!["2026-06-01".into()];
        }
        let signed = SignedRegistry::sign(&body, &keys.iter().collect::<Vec<_>>()).unwrap();
        Officers {
            keys,
            trust: RegistryTrust::anchored(authority).unwrap(),
            signed,
        }
    }

    /// `body` as the officers would publish it, whatever it holds.
    fn sign_raw(&self, body: Vec<u8>) -> SignedRegistry {
        let mut signed = SignedRegistry {
            body,
            signatures: Vec::new(),
        };
        for k in &self.keys {
            signed.add_signature(k);
        }
        signed
    }
}

/// A body as decoded: up to 24 bytes of `String` or `Vec` per byte of input (an empty
/// string is one byte), and a growing vector briefly holds its old and new buffers.
const REGISTRY_BODY_HEAP_PER_BYTE: usize = 72;

/// A registry from the wire: its bytes, the body copied out of them, the signatures (96
/// bytes each, as encoded) and serde's reservation; the body is decoded only once the
/// officers' signatures verified.
fn registry_bound(input: usize) -> usize {
    3 * input + SERDE_PREALLOCATION + SLACK
}

/// A body the officers signed, decoded.
fn registry_body_bound(input: usize) -> usize {
    registry_bound(input) + REGISTRY_BODY_HEAP_PER_BYTE * input + 2 * SERDE_PREALLOCATION
}

#[test]
fn registry_takes_mutated_signed_registries() {
    let _one = serial();
    let officers = Arc::new(Officers::new());
    let valid = officers.signed.to_bytes().unwrap();
    let accepted = officers.trust.accept(&SignedRegistry::from_bytes(&valid).unwrap(), NOW);
    assert!(accepted.is_ok(), "the unmutated registry is accepted: {accepted:?}");
    let strategy = mutated(valid.clone(), BINARY_WORDS);
    check("registry, mutated", cases(), strategy, |bytes| {
        let unchanged = bytes == valid;
        let fixture = Arc::clone(&officers);
        let input = bytes.clone();
        // Whether it was accepted, and then whether the body is the one the officers signed.
        let (accepted, _) = guarded(registry_body_bound(bytes.len()), move || {
            let signed = SignedRegistry::from_bytes(&input).ok()?;
            let _ = signed.decode_body();
            let _ = SignedRegistry::from_bytes(&input).map(|s| s.digest());
            fixture.trust.accept(&signed, NOW).ok()?;
            Some(signed.body == fixture.signed.body)
        })?;
        if unchanged {
            prop_assert_eq!(accepted, Some(true));
        } else {
            // The signatures' list may change and still hold both officers' signatures;
            // the body they cover may not.
            prop_assert!(accepted != Some(false), "a changed body was accepted");
        }
        Ok(())
    });
}

#[test]
fn registry_takes_mutated_bodies_the_officers_signed() {
    let _one = serial();
    let officers = Arc::new(Officers::new());
    let valid = officers.signed.body.clone();
    check("registry body, signed", cases(), mutated(valid, BINARY_WORDS), |body| {
        let fixture = Arc::clone(&officers);
        let len = body.len();
        guarded(registry_body_bound(len), move || {
            let signed = fixture.sign_raw(body);
            let bytes = signed.to_bytes().ok()?;
            let back = SignedRegistry::from_bytes(&bytes).ok()?;
            let _ = back.decode_body();
            fixture.trust.accept(&back, NOW).ok().map(|(b, _)| b.tokens.len())
        })?;
        Ok(())
    });
}

#[test]
fn registry_takes_arbitrary_bytes() {
    let _one = serial();
    let officers = Arc::new(Officers::new());
    check("registry, arbitrary", cases(), arbitrary_bytes(), |bytes| {
        let fixture = Arc::clone(&officers);
        let len = bytes.len();
        let (accepted, _) = guarded(registry_body_bound(len), move || {
            let _ = RegistryBody::decode(&bytes);
            let signed = SignedRegistry::from_bytes(&bytes).ok()?;
            let _ = signed.decode_body();
            fixture.trust.accept(&signed, NOW).ok().map(|_| ())
        })?;
        prop_assert!(accepted.is_none(), "random bytes were accepted as a registry");
        Ok(())
    });
}

#[test]
fn registry_at_its_bound() {
    let _one = serial();
    let officers = Arc::new(Officers::new());
    // One byte over the largest registry file is refused before it is decoded.
    let over = vec![0u8; MAX_REGISTRY_LEN + 64 * 1024 + 1];
    let (refused, peak) = guarded(SLACK, move || SignedRegistry::from_bytes(&over).is_err()).unwrap();
    assert!(refused);
    eprintln!("registry: an oversized registry is refused with a peak of {peak} bytes");
    // The largest body, signed by the officers, whose one token lists only empty site
    // names: the most heap per byte a body can take.
    let valid = RegistryBody::decode(&officers.signed.body).unwrap();
    let mut worst = valid.clone();
    worst.tokens.truncate(1);
    worst.tokens[0].sites.clear();
    let head = postcard::to_allocvec(&worst).unwrap();
    // The sites list sits before the dates, center keys and agreement keys; rebuilding the
    // encoding around a long run of empty strings keeps it valid.
    let mut with_sites = worst.clone();
    with_sites.tokens[0].sites = vec![String::new(); 3];
    let three = postcard::to_allocvec(&with_sites).unwrap();
    let at = (0..head.len())
        .find(|&i| head[i] != three[i])
        .expect("the encodings differ at the sites' count");
    let empty_strings = MAX_REGISTRY_LEN - head.len() - 4;
    let mut count = Vec::new();
    let mut n = empty_strings as u64;
    loop {
        let b = (n & 0x7f) as u8;
        n >>= 7;
        if n == 0 {
            count.push(b);
            break;
        }
        count.push(b | 0x80);
    }
    let mut body = head[..at].to_vec();
    body.extend_from_slice(&count);
    body.resize(body.len() + empty_strings, 0);
    body.extend_from_slice(&head[at + 1..]);
    let decoded = RegistryBody::decode(&body).expect("the crafted body decodes");
    assert_eq!(decoded.tokens[0].sites.len(), empty_strings);
    drop(decoded);
    let len = body.len();
    let fixture = Arc::clone(&officers);
    let (taken, peak) = guarded(registry_body_bound(len), move || {
        let bytes = fixture.sign_raw(body).to_bytes().unwrap();
        fixture
            .trust
            .accept(&SignedRegistry::from_bytes(&bytes).unwrap(), NOW)
            .is_ok()
    })
    .unwrap();
    eprintln!(
        "registry: a {len}-byte signed body of {empty_strings} empty site names (accepted: {taken}) peaks at {peak} bytes (bound {})",
        registry_body_bound(len)
    );
}

// ---------------------------------------------------------------------------------------
// The reserve drive's index.

fn drive_index() -> DriveIndex {
    DriveIndex {
        format: konvert_replication::reserve::INDEX_FORMAT,
        site: "0101".into(),
        written_at_unix_ms: NOW,
        packets: (0..3)
            .map(|i| DrivePacket {
                file: format!("0101-2026-06-01-ege-001{i}-blanks-v1.env"),
                label: format!("room 001{i} blanks"),
                packet_id: format!("0101-2026-06-01-ege-001{i}-blanks"),
                version: 1,
                size: 1_000_000 + i,
                digest: hex::encode([i as u8; 32]),
                priority: 2,
                sealed_at_unix_ms: NOW,
                deadline_unix_ms: NOW + 86_400_000,
            })
            .collect(),
    }
}

/// A TOML file's bound: its text (read whole, bounded by its loader) and its parse.
fn toml_bound(input: usize) -> usize {
    input + TOML_HEAP_PER_BYTE * input + SLACK
}

/// The drive index's bound: a TOML file read through the drive's buffer.
fn drive_index_bound(input: usize) -> usize {
    toml_bound(input) + DRIVE_READ_BUFFER
}

/// Reads the index in `dir` after writing `bytes` as its file.
fn read_index(dir: &Path, bytes: &[u8]) -> Result<Option<DriveIndex>, String> {
    std::fs::write(dir.join(INDEX_FILE), bytes).unwrap();
    DriveIndex::read(dir).map_err(|e| e.to_string())
}

#[test]
fn drive_index_takes_mutated_and_arbitrary_indexes() {
    let _one = serial();
    let tmp = tempfile::tempdir().unwrap();
    let index = drive_index();
    index.write(tmp.path()).unwrap();
    let valid = std::fs::read(tmp.path().join(INDEX_FILE)).unwrap();
    assert_eq!(read_index(tmp.path(), &valid).unwrap(), Some(index));
    let dir: Arc<Path> = tmp.path().into();
    let strategy = prop_oneof![3 => mutated(valid, toml_words()), 1 => arbitrary_toml()];
    check("drive index", cases(), strategy, |bytes| {
        let dir = Arc::clone(&dir);
        let len = bytes.len();
        let (read, _) = guarded(drive_index_bound(len), move || read_index(&dir, &bytes))?;
        if let Ok(Some(index)) = read {
            prop_assert!(index.packets.len() <= MAX_INDEX_PACKETS);
            let files: std::collections::HashSet<_> = index.packets.iter().map(|p| &p.file).collect();
            prop_assert_eq!(files.len(), index.packets.len(), "a file named twice was taken");
        }
        Ok(())
    });
}

#[test]
fn drive_index_at_its_bound() {
    let _one = serial();
    let dir = tempfile::tempdir().unwrap();
    let path: Arc<Path> = dir.path().into();
    // One byte over the bound: refused from the file's size, before it is read.
    let over = vec![b'#'; MAX_INDEX_BYTES as usize + 1];
    let p = Arc::clone(&path);
    let (read, peak) = guarded(SLACK + over.len(), move || read_index(&p, &over).is_err()).unwrap();
    assert!(read, "an oversized index is refused");
    eprintln!("drive index: an oversized index is refused with a peak of {peak} bytes");
    // The largest index: as many packets as fit in MAX_INDEX_BYTES (more than it may name).
    let one = drive_index();
    let mut text = toml::to_string_pretty(&DriveIndex {
        packets: Vec::new(),
        ..one.clone()
    })
    .unwrap()
    .replace("packets = []\n", "");
    let packet = toml::to_string_pretty(&DriveIndex {
        packets: vec![one.packets[0].clone()],
        ..one
    })
    .unwrap();
    let packet = &packet[packet.find("[[packets]]").unwrap()..];
    let header_len = text.len();
    while text.len() + packet.len() <= MAX_INDEX_BYTES as usize {
        text.push_str(packet);
    }
    let len = text.len();
    let packets = (len - header_len) / packet.len();
    assert!(
        packets > MAX_INDEX_PACKETS,
        "an index of {MAX_INDEX_PACKETS} packets fits in {MAX_INDEX_BYTES} bytes"
    );
    let p = Arc::clone(&path);
    let (read, peak) = guarded(drive_index_bound(len), move || read_index(&p, text.as_bytes())).unwrap();
    let why = read.expect_err("an index of too many packets is refused");
    assert!(why.contains("at most"), "refused for its packets: {why}");
    eprintln!(
        "drive index: a {len}-byte index of {packets} packets peaks at {peak} bytes ({:.1} per byte; bound {})",
        peak as f64 / len as f64,
        drive_index_bound(len)
    );
    // The same bytes spent on the densest TOML there is, which the format check parses whole.
    let mut dense = String::from("format = 1\nx = [");
    while dense.len() + 3 < MAX_INDEX_BYTES as usize {
        dense.push_str("0,");
    }
    dense.push(']');
    let len = dense.len();
    let p = Arc::clone(&path);
    let (read, peak) = guarded(drive_index_bound(len), move || read_index(&p, dense.as_bytes())).unwrap();
    assert!(read.is_err());
    eprintln!(
        "drive index: {len} bytes of one-digit array items peak at {peak} bytes ({:.1} per byte)",
        peak as f64 / len as f64
    );
}

// ---------------------------------------------------------------------------------------
// The seating plan, the day plan and every TOML config.

const DAY_PLAN: &str = r#"
date = "2026-06-01"
exam = "ege"
region = "76"

[[sites]]
code = "0101"
kind = "exam-site"
time_zone = "Europe/Moscow"

[[sites]]
code = "0202"
kind = "exam-site"
time_zone = "Asia/Yekaterinburg"

[[rooms]]
site = "0101"
code = "0001"

[[rooms]]
site = "0202"
code = "0001"
oral = true

[[participants]]
code = "P1"
site = "0101"
room = "0001"
seat = "1А"
kit = 11

[[participants]]
code = "P2"
site = "0101"
room = "0001"
seat = "1Б"
kit = 12
consent = false

[[participants]]
code = "P3"
site = "0202"
room = "0001"
seat = "1А"
kit = 13

[[members]]
token_id = "m-0101-1"
site = "0101"
"#;

/// A parser of TOML text, as a file the node reads with it would be.
type Parse = Arc<dyn Fn(&str) -> Result<(), String> + Send + Sync>;

/// Mutated and arbitrary text for a parser taking text (read bounded by its caller).
fn toml_text_property(name: &str, valid: String, parse: Parse) {
    assert_eq!(parse(&valid), Ok(()), "{name}: the valid text parses");
    let strategy = prop_oneof![3 => mutated(valid.into_bytes(), toml_words()), 1 => arbitrary_toml()];
    check(name, cases(), strategy, |bytes| {
        let parse = Arc::clone(&parse);
        let len = bytes.len();
        let _ = guarded(toml_bound(len), move || parse(&String::from_utf8_lossy(&bytes)))?;
        Ok(())
    });
}

#[test]
fn day_plan_takes_mutated_and_arbitrary_text() {
    let _one = serial();
    toml_text_property(
        "day plan",
        DAY_PLAN.to_owned(),
        Arc::new(|text| DayPlan::from_toml(text).map(|_| ()).map_err(|e| e.to_string())),
    );
}

#[test]
fn seating_plan_takes_mutated_and_arbitrary_text() {
    let _one = serial();
    let (plan, _) = DayPlan::from_toml(DAY_PLAN).unwrap();
    let seating = plan.seating(&"0101".parse().unwrap()).unwrap();
    toml_text_property(
        "seating plan",
        toml::to_string(&seating).unwrap(),
        Arc::new(|text| {
            SeatingPlan::from_toml_reading(text)
                .map(|_| ())
                .map_err(|e| e.to_string())
        }),
    );
}

/// A loader of a file the node reads.
type Load = Arc<dyn Fn(&Path) -> Result<(), String> + Send + Sync>;

/// Mutated and arbitrary files for a loader: each case is written next to the valid file
/// (so that its relative paths resolve the same) and loaded. The bound: the text (read
/// bounded by the loader) and its parse.
fn toml_file_property(name: &str, valid_file: &Path, case_file: &Path, load: Load) {
    let valid = std::fs::read(valid_file).unwrap();
    std::fs::write(case_file, &valid).unwrap();
    assert_eq!(load(case_file), Ok(()), "{name}: the valid file loads");
    let case_file: Arc<Path> = case_file.into();
    let strategy = prop_oneof![3 => mutated(valid, toml_words()), 1 => arbitrary_toml()];
    check(name, cases(), strategy, |bytes| {
        let (load, case_file) = (Arc::clone(&load), Arc::clone(&case_file));
        let len = bytes.len();
        let _ = guarded(toml_bound(len), move || {
            std::fs::write(&case_file, &bytes).unwrap();
            load(&case_file)
        })?;
        Ok(())
    });
}

fn local() -> SocketAddr {
    "127.0.0.1:0".parse().unwrap()
}

/// A center with one enrolled station and one relay: the files `init`, `enroll` and
/// `enroll-relay` write.
struct Enrolled {
    center: konvert_tests::CenterFixture,
    site_toml: PathBuf,
    relay_toml: PathBuf,
}

fn enrolled() -> Enrolled {
    let center = konvert_tests::CenterFixture::new(local());
    let addr: SocketAddr = "127.0.0.1:4433".parse().unwrap();
    let facts = CenterFacts::read(&center.center_dir(), &addr.to_string(), "center.konvert").unwrap();
    let site_dir = center.root.path().join("sites").join("0101");
    let site_toml = provision::enroll_station(&center.center_dir(), "0101", &facts, &site_dir).unwrap();
    center.issue_token("0101");
    // The exam day's section, with the seating plan it names.
    let (plan, _) = DayPlan::from_toml(DAY_PLAN).unwrap();
    let seating = plan.seating(&"0101".parse().unwrap()).unwrap();
    std::fs::write(site_dir.join("plan.toml"), toml::to_string(&seating).unwrap()).unwrap();
    std::fs::create_dir_all(site_dir.join("scans")).unwrap();
    let mut text = std::fs::read_to_string(&site_toml).unwrap();
    text.push_str("\n[day]\nhot_folder = \"scans\"\nseating_plan = \"plan.toml\"\nsettle_ms = 1500\n");
    std::fs::write(&site_toml, text).unwrap();
    let relay = center.enroll_relay("relay-01", &["0101"], &[], local(), addr, None);
    let relay_toml = relay.write_config();
    Enrolled {
        center,
        site_toml,
        relay_toml,
    }
}

fn shown_err(e: impl std::fmt::Display) -> String {
    e.to_string()
}

#[test]
fn site_toml_takes_mutated_and_arbitrary_files() {
    let _one = serial();
    let e = enrolled();
    let case = e.site_toml.with_file_name("fuzz-site.toml");
    toml_file_property(
        "site.toml",
        &e.site_toml,
        &case,
        Arc::new(|path| {
            let cfg = SiteConfig::load(path).map_err(shown_err)?;
            // The seating plan the day section names is read as the day starts.
            if let Some(day) = &cfg.day {
                day.plan().map_err(shown_err)?;
            }
            Ok(())
        }),
    );
}

#[test]
fn center_toml_takes_mutated_and_arbitrary_files() {
    let _one = serial();
    let e = enrolled();
    let valid = e.center.init.config_path.clone();
    let case = valid.with_file_name("fuzz-center.toml");
    toml_file_property(
        "center.toml",
        &valid,
        &case,
        Arc::new(|path| CenterConfig::load(path).map(|_| ()).map_err(shown_err)),
    );
}

#[test]
fn relay_toml_takes_mutated_and_arbitrary_files() {
    let _one = serial();
    let e = enrolled();
    let case = e.relay_toml.with_file_name("fuzz-relay.toml");
    toml_file_property(
        "relay.toml",
        &e.relay_toml,
        &case,
        Arc::new(|path| RelayConfig::load(path).map(|_| ()).map_err(shown_err)),
    );
}

#[test]
fn station_index_takes_mutated_and_arbitrary_files() {
    let _one = serial();
    let e = enrolled();
    let valid = e.center.init.config.station_index();
    assert!(valid.is_file(), "enrolling wrote the station index");
    let case = valid.with_file_name("fuzz-stations.toml");
    toml_file_property(
        "stations.toml",
        &valid,
        &case,
        Arc::new(|path| StationIndex::load(path).map(|_| ()).map_err(shown_err)),
    );
}

#[test]
fn mirror_toml_takes_mutated_and_arbitrary_files() {
    let _one = serial();
    let tmp = tempfile::tempdir().unwrap();
    let valid = konvert_center::mirror::region::init(
        tmp.path(),
        77,
        "postgresql://konvert@localhost/records",
        "federal.konvert:4433",
        "federal.konvert",
    )
    .unwrap();
    let case = valid.with_file_name("fuzz-mirror.toml");
    toml_file_property(
        "mirror.toml",
        &valid,
        &case,
        // The node's certificate comes later from the federal node, so `load` refuses the
        // valid file for now; `read` is what `mirror` commands run first.
        Arc::new(|path| {
            let cfg = RegionMirrorConfig::read(path).map_err(shown_err)?;
            let _ = cfg.check();
            let _ = RegionMirrorConfig::load(path);
            Ok(())
        }),
    );
}

#[test]
fn federal_toml_takes_mutated_and_arbitrary_files() {
    let _one = serial();
    let tmp = tempfile::tempdir().unwrap();
    let valid = konvert_center::mirror::federal::init(
        tmp.path(),
        "federal.konvert",
        "127.0.0.1:4433".parse().unwrap(),
        "postgresql://konvert@localhost/records",
    )
    .unwrap();
    let case = valid.with_file_name("fuzz-federal.toml");
    toml_file_property(
        "federal.toml",
        &valid,
        &case,
        Arc::new(|path| FederalConfig::load(path).map(|_| ()).map_err(shown_err)),
    );
}

#[test]
fn authority_toml_takes_mutated_and_arbitrary_files() {
    let _one = serial();
    let tmp = tempfile::tempdir().unwrap();
    let officers = [SigningKey::generate().unwrap(), SigningKey::generate().unwrap()];
    let file = AuthorityFile {
        officers: officers
            .iter()
            .enumerate()
            .map(|(i, k)| OfficerEntry {
                name: format!("Officer {i}"),
                public: k.verifying_key().to_string(),
            })
            .collect(),
        threshold: 2,
        valid_days: 30,
    };
    let valid = tmp.path().join("authority.toml");
    std::fs::write(&valid, toml::to_string(&file).unwrap()).unwrap();
    toml_file_property(
        "authority.toml",
        &valid,
        &tmp.path().join("fuzz-authority.toml"),
        // As the center, the relay and `konvert-edge registry --anchor` read it.
        Arc::new(|path| {
            let text = konvert_crypto::keyfile::read_text_bounded(path, MAX_CONFIG_BYTES).map_err(shown_err)?;
            let file: AuthorityFile = toml::from_str(&text).map_err(shown_err)?;
            RegistryTrust::anchored(file.authority().map_err(shown_err)?)
                .map(|_| ())
                .map_err(shown_err)
        }),
    );
}

#[test]
fn revocation_floor_takes_mutated_and_arbitrary_files() {
    let _one = serial();
    let tmp = tempfile::tempdir().unwrap();
    let floor = CrlFloor::in_dir(tmp.path());
    std::fs::write(
        floor.path(),
        "number = 1780000000000\nsigned_at = \"2026-06-01T00:00:00Z\"\n",
    )
    .unwrap();
    assert_eq!(floor.number().unwrap(), Some(1_780_000_000_000));
    let valid = floor.path().to_owned();
    toml_file_property(
        "revocation floor",
        &valid,
        &valid,
        Arc::new(|path| {
            CrlFloor::in_dir(path.parent().unwrap())
                .number()
                .map(|_| ())
                .map_err(shown_err)
        }),
    );
}

/// Every config loader refuses a file one byte over its bound before reading it.
#[test]
fn configs_over_their_bound_are_refused_unread() {
    let _one = serial();
    let e = enrolled();
    let over = vec![b'#'; MAX_CONFIG_BYTES as usize + 1];
    let loaders: Vec<(&str, Load)> = vec![
        (
            "site.toml",
            Arc::new(|p| SiteConfig::load(p).map(|_| ()).map_err(shown_err)),
        ),
        (
            "center.toml",
            Arc::new(|p| CenterConfig::load(p).map(|_| ()).map_err(shown_err)),
        ),
        (
            "relay.toml",
            Arc::new(|p| RelayConfig::load(p).map(|_| ()).map_err(shown_err)),
        ),
        (
            "mirror.toml",
            Arc::new(|p| RegionMirrorConfig::read(p).map(|_| ()).map_err(shown_err)),
        ),
        (
            "federal.toml",
            Arc::new(|p| FederalConfig::read(p).map(|_| ()).map_err(shown_err)),
        ),
        (
            "authority.toml",
            Arc::new(|p| {
                konvert_crypto::keyfile::read_text_bounded(p, MAX_CONFIG_BYTES)
                    .map(|_| ())
                    .map_err(shown_err)
            }),
        ),
    ];
    let path: Arc<Path> = e.site_toml.with_file_name("fuzz-over.toml").into();
    std::fs::write(&path, &over).unwrap();
    for (name, load) in loaders {
        let p = Arc::clone(&path);
        let (result, peak) = guarded(SLACK, move || load(&p)).unwrap();
        assert!(
            result.is_err(),
            "{name}: a file over {MAX_CONFIG_BYTES} bytes is refused"
        );
        eprintln!("{name}: a file over the bound is refused with a peak of {peak} bytes");
    }
    // The seating plan, read as the day starts, and the day plan have their own bound.
    let plan: Arc<Path> = e.site_toml.with_file_name("fuzz-plan-over.toml").into();
    let file = std::fs::File::create(&plan).unwrap();
    file.set_len(MAX_PLAN_BYTES + 1).unwrap();
    let (result, peak) = guarded(SLACK, move || {
        konvert_crypto::keyfile::read_text_bounded(&plan, MAX_PLAN_BYTES).map(|_| ())
    })
    .unwrap();
    assert!(result.is_err());
    eprintln!("plans: a file over {MAX_PLAN_BYTES} bytes is refused with a peak of {peak} bytes");
}

/// The text of the i-th piece of a file of one shape.
type Piece = fn(usize) -> String;

/// The most heap a TOML parse takes per byte, for the shapes of text that cost most.
#[test]
fn toml_at_its_bound() {
    let _one = serial();
    let size = MAX_CONFIG_BYTES as usize;
    let shapes: Vec<(&str, Piece)> = vec![
        ("empty tables", |_| "[[a]]\n".into()),
        ("tiny keys", |i| format!("k{i}=1\n")),
        ("array items", |_| "0,".into()),
        ("inline tables", |_| "{},".into()),
        ("dotted keys", |i| format!("a.k{i}=1\n")),
        ("empty arrays", |_| "[],".into()),
        ("unique tables", |i| format!("[t{i}]\n")),
    ];
    for (shape, piece) in shapes {
        let array = piece(0).ends_with(',');
        let mut text = String::with_capacity(size);
        text.push_str(if array { "x = [" } else { "" });
        for i in 0.. {
            let p = piece(i);
            if text.len() + p.len() + 1 >= size {
                break;
            }
            text.push_str(&p);
        }
        text.push_str(if array { "]" } else { "" });
        let len = text.len();
        let (_, peak) = guarded(toml_bound(len), move || {
            toml::from_str::<toml::Table>(&text).map(|_| ()).map_err(shown_err)
        })
        .unwrap();
        eprintln!(
            "toml: {len} bytes of {shape} peak at {peak} bytes ({:.1} per byte of text)",
            peak as f64 / len as f64
        );
    }
}

/// A site's seating plan of `rows` participants, as the center writes it.
fn seating_text(rows: usize) -> String {
    let (plan, _) = DayPlan::from_toml(DAY_PLAN).unwrap();
    let mut seating = plan.seating(&"0101".parse().unwrap()).unwrap();
    seating.participants = (0..rows)
        .map(|i| konvert_exam::Participant {
            code: format!("P{i:07}"),
            room: format!("{:04}", i / 30 + 1).parse().unwrap(),
            seat: format!("{}А", i % 30 + 1),
            kit: 1_000_000_000 + i as u64,
        })
        .collect();
    toml::to_string(&seating).unwrap()
}

/// A large site's seating plan fits the site's bound, and one at that bound is read within
/// the TOML bound; the day plan's heap per byte is measured on a realistic plan.
#[test]
fn plans_at_their_bound() {
    let _one = serial();
    let large_site = seating_text(10_000);
    assert!(
        (large_site.len() as u64) < konvert_crypto::keyfile::MAX_SEATING_BYTES,
        "a site of 10,000 participants ({} bytes) fits the seating plan's bound",
        large_site.len()
    );
    let per_row = large_site.len() / 10_000;
    let rows = konvert_crypto::keyfile::MAX_SEATING_BYTES as usize / per_row - 1;
    let text = seating_text(rows);
    let len = text.len();
    let (read, peak) = guarded(toml_bound(len), move || {
        SeatingPlan::from_toml(&text).map(|p| p.participants.len())
    })
    .unwrap();
    assert_eq!(read.ok(), Some(rows));
    eprintln!(
        "seating plan: {len} bytes ({rows} participants) peak at {peak} bytes ({:.1} per byte)",
        peak as f64 / len as f64
    );
    // The day plan: a region's rows, at an eighth of its bound (the whole bound takes
    // minutes in a debug build; KONVERT_FUZZ_CASES above 10,000 runs it whole).
    let size = if cases() > 10_000 {
        MAX_PLAN_BYTES
    } else {
        MAX_PLAN_BYTES / 8
    } as usize;
    let mut text = DAY_PLAN.to_owned();
    for i in 0.. {
        let row = format!(
            "\n[[participants]]\ncode = \"P{i:07}\"\nsite = \"0101\"\nroom = \"0001\"\nseat = \"{i}А\"\nkit = {}\n",
            1_000_000_000 + i
        );
        if text.len() + row.len() > size {
            break;
        }
        text.push_str(&row);
    }
    let len = text.len();
    let (_, peak) = guarded(toml_bound(len), move || {
        DayPlan::from_toml(&text).map(|_| ()).map_err(shown_err)
    })
    .unwrap();
    eprintln!(
        "day plan: {len} bytes peak at {peak} bytes ({:.1} per byte; at its {MAX_PLAN_BYTES}-byte bound ≈ {} MiB)",
        peak as f64 / len as f64,
        (peak as f64 / len as f64 * MAX_PLAN_BYTES as f64) as u64 >> 20
    );
}

/// The token certificates from ФИС the officers review (`konvert keys review-certificates`),
/// parsed and reviewed against a registry draft as the command does.
#[test]
fn certificate_import_takes_mutated_and_arbitrary_text() {
    let _one = serial();
    let officers = Officers::new();
    let draft = Arc::new(RegistryBody::decode(&officers.signed.body).unwrap());
    let import = konvert_records::mirror_rows::CertificateImport {
        region: "76".into(),
        certificates: draft
            .tokens
            .iter()
            .map(|t| konvert_records::mirror_rows::TokenCertificateRow {
                token_id: t.token_id.clone(),
                holder: t.person.clone(),
                public_key_hex: t.public.to_string(),
                valid_from: "2026-01-01".into(),
                valid_until: "2027-12-31".into(),
            })
            .collect(),
    };
    toml_text_property(
        "certificate import",
        toml::to_string(&import).unwrap(),
        Arc::new(move |text| {
            let import: konvert_records::mirror_rows::CertificateImport = toml::from_str(text).map_err(shown_err)?;
            konvert_ops::certificate_review::review(&draft, &import);
            Ok(())
        }),
    );
}

/// The center's desk files (review flags, late-packet decisions, test-packet records): its
/// own writing, but a damaged one must stop a listing with an error, never the process.
#[test]
fn center_desk_files_take_mutated_and_arbitrary_files() {
    use konvert_center::late::{LateChoice, LateDecision, LateDesk};
    use konvert_center::review::{ReviewDesk, ReviewFlag};
    use konvert_center::test_packets::{TestDesk, TestPacketRecord};

    let _one = serial();
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path();
    let id = hex::encode([0xab; 32]);
    let data_of = |path: &Path| path.parent().and_then(Path::parent).unwrap().to_owned();

    ReviewDesk::open(data)
        .unwrap()
        .flag(&ReviewFlag {
            packet_id: "0101-2026-06-01-ege-0012-blanks".into(),
            version: 1,
            site: "0101".into(),
            envelope_id: id.clone(),
            received_at_unix_ms: NOW,
            token_id: "TK-1".into(),
            person: "Иванов И. И.".into(),
            status: "lost".into(),
            blocked_at_unix_ms: NOW - 1,
            registry_version: 4,
        })
        .unwrap();
    let flag = data.join("review").join(format!("{id}.toml"));
    toml_file_property(
        "review flag",
        &flag,
        &flag,
        Arc::new(move |path| {
            ReviewDesk::open(&data_of(path))
                .and_then(|d| d.list())
                .map(|_| ())
                .map_err(shown_err)
        }),
    );

    TestDesk::open(data)
        .unwrap()
        .record_received(&TestPacketRecord {
            packet_id: "0101-2026-05-20-test-0001-blanks".into(),
            version: 1,
            site: "0101".into(),
            envelope_id: id.clone(),
            bytes: 123_456,
            received_at_unix_ms: NOW,
            signer: hex::encode([1; 32]),
        })
        .unwrap();
    let record = data.join("test-packets").join(format!("{id}.toml"));
    toml_file_property(
        "test-packet record",
        &record,
        &record,
        Arc::new(move |path| {
            TestDesk::open(&data_of(path))
                .and_then(|d| d.list())
                .map(|_| ())
                .map_err(shown_err)
        }),
    );

    let late = data.join("late").join(format!("{id}.toml"));
    std::fs::create_dir_all(late.parent().unwrap()).unwrap();
    let decision = LateDecision {
        packet_id: "0101-2026-06-01-ege-0012-blanks".into(),
        version: 2,
        site: "0101".into(),
        envelope_id: id.clone(),
        choice: LateChoice::Take,
        operator: "A. Ivanova".into(),
        reason: "site act no. 7: scanner failure at 23:40".into(),
        decided_at_unix_ms: NOW,
    };
    std::fs::write(&late, toml::to_string(&decision).unwrap()).unwrap();
    toml_file_property(
        "late decision",
        &late,
        &late,
        Arc::new(
            move |path| match LateDesk::open(&data_of(path)).and_then(|d| d.decision(&id)) {
                Ok(Some(_)) => Ok(()),
                Ok(None) => Err("the decision's file is there, yet none was read".into()),
                Err(e) => Err(e.to_string()),
            },
        ),
    );
}

/// The rows the federal node publishes down to a region (`konvert-center federal publish`).
#[test]
fn federal_rows_files_take_mutated_and_arbitrary_files() {
    use konvert_records::mirror_rows::TokenCertificateRow;

    let _one = serial();
    let tmp = tempfile::tempdir().unwrap();
    let rows: Vec<TokenCertificateRow> = (0..3)
        .map(|i| TokenCertificateRow {
            token_id: format!("TK-{i}"),
            holder: format!("Иванов {i}"),
            public_key_hex: hex::encode([i as u8 + 1; 32]),
            valid_from: "2026-01-01".into(),
            valid_until: "2027-12-31".into(),
        })
        .collect();
    let mut file = toml::Table::new();
    file.insert("rows".into(), toml::Value::try_from(rows).unwrap());
    let valid = tmp.path().join("rows.toml");
    std::fs::write(&valid, toml::to_string(&file).unwrap()).unwrap();
    toml_file_property(
        "federal rows",
        &valid,
        &tmp.path().join("fuzz-rows.toml"),
        Arc::new(|path| {
            konvert_center::federal_publish::read_rows::<TokenCertificateRow>(path)
                .map(|_| ())
                .map_err(shown_err)
        }),
    );
}
