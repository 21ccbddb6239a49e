use super::*;

fn kim(s: &str) -> KimNumber {
    s.parse().unwrap()
}

#[test]
fn a_recording_names_its_kim_number_and_is_a_wav_file() {
    for (number, seed) in [("1234567", 1), ("20260601000123", 2)] {
        let bytes = synthetic_recording(&kim(number), 300, seed);
        assert_eq!(read_kim(&bytes).unwrap(), kim(number));
        // A plain WAV reader's view: RIFF length, PCM format, 16-bit mono samples.
        assert_eq!(&bytes[0..4], b"RIFF");
        assert_eq!(
            u32::from_le_bytes(bytes[4..8].try_into().unwrap()) as usize,
            bytes.len() - 8
        );
        let data = bytes.windows(4).position(|w| w == b"data").unwrap();
        let data_len = u32::from_le_bytes(bytes[data + 4..data + 8].try_into().unwrap()) as usize;
        assert_eq!(data_len, 2 * 8_000 * 300 / 1000);
        assert_eq!(data + 8 + data_len, bytes.len());
    }
    assert_eq!(
        synthetic_recording(&kim("1234567"), 100, 9),
        synthetic_recording(&kim("1234567"), 100, 9)
    );
}

#[test]
fn files_that_are_not_recordings_get_a_clear_error() {
    let good = synthetic_recording(&kim("7654321"), 50, 3);
    let without_kim = {
        // The same file with its `kim ` chunk renamed to an unknown one.
        let mut b = good.clone();
        let at = b.windows(4).position(|w| w == b"kim ").unwrap();
        b[at..at + 4].copy_from_slice(b"junk");
        b
    };
    let bad_digits = {
        let mut b = good.clone();
        let at = b.windows(4).position(|w| w == b"kim ").unwrap();
        b[at + 8] = b'x';
        b
    };
    let cut = good[..good.windows(4).position(|w| w == b"kim ").unwrap() + 10].to_vec();
    let png = b"\x89PNG\r\n\x1a\n\0\0\0\rIHDR".to_vec();
    let cases: [(&[u8], &str); 6] = [
        (&png, "not a WAV recording"),
        (b"", "not a WAV recording"),
        (&without_kim, "no KIM number"),
        (&bad_digits, "is not 6–16 digits"),
        (&cut, "cut short"),
        (
            b"RIFF\xff\xff\xff\xffWAVEfmt \xff\xff\xff\xff",
            "no `kim ` chunk in the first 64 KiB",
        ),
    ];
    for (bytes, says) in cases {
        match read_kim(bytes) {
            Err(e @ Error::BadRecording { .. }) => {
                let text = e.to_string();
                assert!(text.contains(says), "{text}");
                assert!(text.contains("re-export"), "{text}");
            }
            other => panic!("{says}: {other:?}"),
        }
    }
}

#[test]
fn the_reader_stops_at_its_bound() {
    // A recording whose `kim ` chunk comes after 100 KiB of another chunk is refused:
    // the reader does not follow a file further than its bound.
    let good = synthetic_recording(&kim("1111111"), 10, 1);
    let mut padded = good[..12].to_vec();
    padded.extend_from_slice(b"LIST");
    padded.extend_from_slice(&(100u32 * 1024).to_le_bytes());
    padded.extend(std::iter::repeat_n(0u8, 100 * 1024));
    padded.extend_from_slice(&good[12..]);
    assert!(read_kim(&padded).is_err());
    let reader = std::io::Cursor::new(padded);
    let err = read_kim_from(reader, Path::new("rec-0001.wav")).unwrap_err();
    assert!(err.to_string().contains("rec-0001.wav"), "{err}");
}

#[test]
fn a_room_of_recordings_is_written_and_read_back_from_files() {
    let dir = tempfile::tempdir().unwrap();
    let kims = [kim("1000001"), kim("1000002"), kim("1000001")];
    let files = write_synthetic_recordings(dir.path(), "rec", &kims, 5).unwrap();
    assert_eq!(files.len(), 3);
    let read: Vec<KimNumber> = files
        .iter()
        .map(|p| read_kim_from(fs::File::open(p).unwrap(), p).unwrap())
        .collect();
    assert_eq!(read, kims);
    assert!("12345".parse::<KimNumber>().is_err());
    assert!("12345678901234567".parse::<KimNumber>().is_err());
}
