//! Recordings of the oral part (R14): an audio packet's files are WAV recordings, one per
//! participant's answer, each naming the participant's KIM number, which the center
//! groups recordings by (`002:7385–7401`: records sharing a KIM number are duplicates).
//!
//! Format: a RIFF/WAVE file (PCM) with a chunk `kim ` whose payload is the KIM number in
//! ASCII digits (6–16), written by the recording station right after `fmt ` and before
//! `data`. The chunk is an ordinary RIFF chunk, so players skip it; the number travels
//! inside the recording, not in a sidecar that could be separated from it. The reader
//! looks at the first [`MAX_RECORDING_HEADER`] bytes only and never at the audio.

use std::fmt;
use std::fs;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::str::FromStr;

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};

use crate::{Error, Result};

/// How far into a recording the reader looks for the `kim ` chunk.
pub const MAX_RECORDING_HEADER: usize = 64 * 1024;
/// The extension of recording files.
pub const RECORDING_EXTENSION: &str = "wav";
/// The RIFF chunk that carries the KIM number.
pub const KIM_CHUNK: [u8; 4] = *b"kim ";
/// Sample rate of synthetic recordings (telephone quality, as oral-exam stations record).
pub const SYNTHETIC_SAMPLE_RATE: u32 = 8_000;

/// A KIM number (the number of the participant's exam paper): 6–16 digits.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct KimNumber(String);

impl KimNumber {
    /// The number as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl FromStr for KimNumber {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        if (6..=16).contains(&s.len()) && s.bytes().all(|b| b.is_ascii_digit()) {
            Ok(KimNumber(s.to_owned()))
        } else {
            Err(Error::InvalidId {
                what: "KIM number",
                value: s.chars().take(40).collect(),
                hint: "6 to 16 digits",
            })
        }
    }
}

impl TryFrom<String> for KimNumber {
    type Error = Error;
    fn try_from(s: String) -> Result<Self> {
        s.parse()
    }
}

impl From<KimNumber> for String {
    fn from(k: KimNumber) -> String {
        k.0
    }
}

impl fmt::Display for KimNumber {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

fn bad(what: impl Into<String>) -> Error {
    Error::BadRecording {
        what: what.into(),
        hint: "an audio packet holds only the recording station's WAV files, each with a `kim ` chunk; \
               re-export the recordings from the station",
    }
}

/// The KIM number a recording carries, from the first [`MAX_RECORDING_HEADER`] bytes of
/// `bytes` (the rest is never read).
pub fn read_kim(bytes: &[u8]) -> Result<KimNumber> {
    let head = &bytes[..bytes.len().min(MAX_RECORDING_HEADER)];
    if head.len() < 12 || &head[0..4] != b"RIFF" || &head[8..12] != b"WAVE" {
        return Err(bad("not a WAV recording (no RIFF/WAVE header)"));
    }
    let mut at = 12usize;
    let mut seen_fmt = false;
    while at + 8 <= head.len() {
        let id = &head[at..at + 4];
        let size = u32::from_le_bytes([head[at + 4], head[at + 5], head[at + 6], head[at + 7]]) as usize;
        let body = at + 8;
        match id {
            b"fmt " => seen_fmt = true,
            b"data" => {
                return Err(bad(if seen_fmt {
                    "the recording has no KIM number (no `kim ` chunk before its audio)"
                } else {
                    "the WAV file has audio but no format chunk"
                }))
            }
            _ if id == KIM_CHUNK => {
                let payload = head
                    .get(body..body.saturating_add(size))
                    .ok_or_else(|| bad("the recording's `kim ` chunk is cut short"))?;
                let text = std::str::from_utf8(payload)
                    .map_err(|_| bad("the recording's KIM number is not text"))?
                    .trim_end_matches('\0');
                return text.parse().map_err(|_| {
                    bad(format!(
                        "the recording's KIM number «{}» is not 6–16 digits",
                        text.escape_debug()
                    ))
                });
            }
            _ => {}
        }
        // Chunks are padded to an even length.
        at = body.saturating_add(size).saturating_add(size & 1);
    }
    Err(bad(format!(
        "no `kim ` chunk in the first {} KiB of the recording",
        MAX_RECORDING_HEADER / 1024
    )))
}

/// [`read_kim`] on a reader, reading at most [`MAX_RECORDING_HEADER`] bytes from it.
pub fn read_kim_from(reader: impl Read, name: &Path) -> Result<KimNumber> {
    let mut head = Vec::with_capacity(4096);
    reader
        .take(MAX_RECORDING_HEADER as u64)
        .read_to_end(&mut head)
        .map_err(Error::io(name))?;
    read_kim(&head).map_err(|e| match e {
        Error::BadRecording { what, hint } => Error::BadRecording {
            what: format!("{}: {what}", name.display()),
            hint,
        },
        other => other,
    })
}

/// A mono 16-bit PCM WAV recording of `samples` at `sample_rate`, carrying `kim`.
pub fn write_recording(kim: &KimNumber, samples: &[i16], sample_rate: u32) -> Vec<u8> {
    let kim_bytes = kim.as_str().as_bytes();
    let kim_padded = kim_bytes.len() + (kim_bytes.len() & 1);
    let data_len = samples.len() * 2;
    let riff_len = 4 + (8 + 16) + (8 + kim_padded) + (8 + data_len);
    let mut out = Vec::with_capacity(8 + riff_len);
    out.extend_from_slice(b"RIFF");
    out.extend_from_slice(&(riff_len as u32).to_le_bytes());
    out.extend_from_slice(b"WAVE");
    out.extend_from_slice(b"fmt ");
    out.extend_from_slice(&16u32.to_le_bytes());
    out.extend_from_slice(&1u16.to_le_bytes()); // PCM
    out.extend_from_slice(&1u16.to_le_bytes()); // mono
    out.extend_from_slice(&sample_rate.to_le_bytes());
    out.extend_from_slice(&(sample_rate * 2).to_le_bytes());
    out.extend_from_slice(&2u16.to_le_bytes());
    out.extend_from_slice(&16u16.to_le_bytes());
    out.extend_from_slice(&KIM_CHUNK);
    out.extend_from_slice(&(kim_bytes.len() as u32).to_le_bytes());
    out.extend_from_slice(kim_bytes);
    if kim_bytes.len() & 1 == 1 {
        out.push(0);
    }
    out.extend_from_slice(b"data");
    out.extend_from_slice(&(data_len as u32).to_le_bytes());
    for s in samples {
        out.extend_from_slice(&s.to_le_bytes());
    }
    out
}

/// A synthetic answer `millis` long (a wavering tone with noise), the same for the same
/// seed.
pub fn synthetic_recording(kim: &KimNumber, millis: u32, seed: u64) -> Vec<u8> {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let n = (u64::from(SYNTHETIC_SAMPLE_RATE) * u64::from(millis) / 1000) as usize;
    let pitch = rng.gen_range(110.0f32..220.0);
    let samples: Vec<i16> = (0..n)
        .map(|i| {
            let t = i as f32 / SYNTHETIC_SAMPLE_RATE as f32;
            let voice = (t * pitch * std::f32::consts::TAU).sin() * (t * 3.0).sin().abs();
            (voice * 8000.0 + rng.gen_range(-300.0f32..300.0)) as i16
        })
        .collect();
    write_recording(kim, &samples, SYNTHETIC_SAMPLE_RATE)
}

/// Writes one synthetic recording per KIM number into `dir` (created if missing) as
/// `<prefix>-0001.wav` …, as a recording station exports a room's answers.
pub fn write_synthetic_recordings(dir: &Path, prefix: &str, kims: &[KimNumber], seed: u64) -> Result<Vec<PathBuf>> {
    fs::create_dir_all(dir).map_err(Error::io(dir))?;
    let mut written = Vec::with_capacity(kims.len());
    for (i, kim) in kims.iter().enumerate() {
        let path = dir.join(format!("{prefix}-{:04}.{RECORDING_EXTENSION}", i + 1));
        let bytes = synthetic_recording(kim, 500, seed.wrapping_add(i as u64));
        fs::write(&path, bytes).map_err(Error::io(&path))?;
        written.push(path);
    }
    Ok(written)
}

#[cfg(test)]
#[path = "audio_tests.rs"]
mod tests;
