use std::fs;
use std::io::Write;
use std::os::unix::fs::symlink;

use super::*;

fn mkfifo(path: &Path) {
    rustix::fs::mknodat(
        rustix::fs::CWD,
        path,
        rustix::fs::FileType::Fifo,
        Mode::from_raw_mode(0o644),
        0,
    )
    .unwrap();
}

#[test]
fn links_fifos_and_devices_are_refused_before_a_byte_is_read() {
    let dir = tempfile::tempdir().unwrap();
    let outside = tempfile::tempdir().unwrap();
    fs::write(outside.path().join("secret"), b"x").unwrap();
    symlink(outside.path().join("secret"), dir.path().join("link.env")).unwrap();
    symlink("/dev/zero", dir.path().join("zero.env")).unwrap();
    mkfifo(&dir.path().join("fifo.env"));
    fs::write(dir.path().join("plain.env"), b"hello").unwrap();
    let d = DriveDir::open(dir.path()).unwrap();

    let started = Instant::now();
    for (name, words) in [
        ("link.env", "symbolic link"),
        ("zero.env", "symbolic link"),
        ("fifo.env", "FIFO"),
    ] {
        let e = d.open_file(name, 1 << 30).unwrap_err().to_string();
        assert!(e.contains(words) && e.contains(name), "{name}: {e}");
    }
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "a FIFO does not wait for a writer"
    );
    assert!(d.open_file("missing.env", 10).unwrap().is_none());
    assert_eq!(
        d.open_file("plain.env", 10).unwrap().unwrap().read_all().unwrap(),
        b"hello"
    );
    let e = d.open_file("plain.env", 4).unwrap_err().to_string();
    assert!(e.contains("5 bytes, at most 4"), "{e}");
    assert_eq!(
        d.files(".env", 10).unwrap(),
        vec!["plain.env".to_owned()],
        "only regular files are listed"
    );
}

#[test]
fn a_real_device_node_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let node = dir.path().join("zero.env");
    // /dev/zero is character device 1:5. Making one needs CAP_MKNOD; without it the
    // link test above covers devices.
    match rustix::fs::mknodat(
        rustix::fs::CWD,
        &node,
        rustix::fs::FileType::CharacterDevice,
        Mode::from_raw_mode(0o644),
        rustix::fs::makedev(1, 5),
    ) {
        Ok(()) => {}
        Err(e) => {
            eprintln!("cannot make a device node here ({e}); skipped");
            return;
        }
    }
    let d = DriveDir::open(dir.path()).unwrap();
    let e = d.open_file("zero.env", 1 << 40).unwrap_err().to_string();
    assert!(e.contains("character device"), "{e}");
}

#[test]
fn folders_below_the_drive_are_never_reached_through_a_link() {
    let dir = tempfile::tempdir().unwrap();
    let outside = tempfile::tempdir().unwrap();
    symlink(outside.path(), dir.path().join("envelopes")).unwrap();
    let d = DriveDir::open(dir.path()).unwrap();
    let e = d.sub("envelopes").unwrap_err().to_string();
    assert!(e.contains("symbolic link"), "{e}");
    let e = d.sub_or_create("envelopes").unwrap_err().to_string();
    assert!(e.contains("symbolic link"), "{e}");
    assert!(d.sub("absent").unwrap().is_none());
    d.sub_or_create("receipts")
        .unwrap()
        .write_durably("a.receipt", b"r")
        .unwrap();
    assert_eq!(fs::read(dir.path().join("receipts/a.receipt")).unwrap(), b"r");
    assert_eq!(
        d.folders(10).unwrap(),
        vec!["receipts".to_owned()],
        "the linked folder is not listed"
    );
    for bad in ["..", "a/b", "", "."] {
        assert!(d.sub(bad).is_err() && d.open_file(bad, 1).is_err(), "{bad:?}");
    }
}

#[test]
fn an_existing_file_is_never_opened_for_writing() {
    let dir = tempfile::tempdir().unwrap();
    let d = DriveDir::open(dir.path()).unwrap();
    fs::write(dir.path().join("x"), b"old").unwrap();
    let e = d.create_new("x").unwrap_err().to_string();
    assert!(e.contains("already exists"), "{e}");
    assert_eq!(fs::read(dir.path().join("x")).unwrap(), b"old");
}

#[test]
fn a_file_that_grows_while_it_is_read_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("grows.env");
    fs::write(&path, vec![1u8; 3 << 20]).unwrap();
    let d = DriveDir::open(dir.path()).unwrap();
    let file = d.open_file("grows.env", 3 << 20).unwrap().unwrap();
    assert_eq!(file.len(), 3 << 20);
    let mut appender = fs::OpenOptions::new().append(true).open(&path).unwrap();
    let mut got = 0u64;
    let mut first = true;
    let read = file
        .read_exactly(3 << 20, Duration::from_secs(60), |chunk| {
            got += chunk.len() as u64;
            // Another writer appends once the read is under way.
            if std::mem::take(&mut first) {
                appender.write_all(&[2u8; 4096]).unwrap();
            }
            Ok(())
        })
        .unwrap();
    assert_eq!(read, None, "found longer than expected");
    assert_eq!(got, 3 << 20, "never more than the size expected was used");
}

/// A reader that gives one byte every `pause`: a failing drive.
struct Slow {
    pause: Duration,
}

impl Read for Slow {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        std::thread::sleep(self.pause);
        match buf.first_mut() {
            Some(b) => {
                *b = 0;
                Ok(1)
            }
            None => Ok(0),
        }
    }
}

#[test]
fn a_slow_drive_is_given_up_on_within_the_time_limit() {
    let started = Instant::now();
    let e = read_bounded_timed(
        Slow {
            pause: Duration::from_millis(20),
        },
        Path::new("slow.env"),
        1 << 20,
        Duration::from_millis(300),
        &mut |_| Ok(()),
    )
    .unwrap_err()
    .to_string();
    assert!(e.contains("took longer than"), "{e}");
    assert!(started.elapsed() < Duration::from_secs(2));
    // read_all names a file grown since it was opened.
    let dir = tempfile::tempdir().unwrap();
    fs::write(dir.path().join("r"), b"abc").unwrap();
    let file = DriveDir::open(dir.path()).unwrap().open_file("r", 10).unwrap().unwrap();
    fs::write(dir.path().join("r"), b"abcdef").unwrap();
    let e = file.read_all().unwrap_err().to_string();
    assert!(e.contains("grew while it was read"), "{e}");
    assert_eq!(read_time_limit(0), READ_GRACE);
    assert_eq!(read_time_limit(100 << 20), READ_GRACE + Duration::from_secs(100));
}

#[test]
fn entries_that_are_no_regular_file_are_named_with_what_they_are() {
    let dir = tempfile::tempdir().unwrap();
    fs::write(dir.path().join("a.receipt"), b"receipt").unwrap();
    symlink("/dev/zero", dir.path().join("b.receipt")).unwrap();
    mkfifo(&dir.path().join("c.receipt"));
    fs::create_dir(dir.path().join("d.receipt")).unwrap();
    fs::write(dir.path().join("notes.txt"), b"x").unwrap();
    let drive = DriveDir::open(dir.path()).unwrap();
    assert_eq!(drive.files(".receipt", 10).unwrap(), vec!["a.receipt".to_owned()]);
    assert_eq!(
        drive.not_regular(".receipt", 10).unwrap(),
        vec![
            ("b.receipt".to_owned(), "a symbolic link"),
            ("c.receipt".to_owned(), "a FIFO"),
            ("d.receipt".to_owned(), "a folder"),
        ]
    );
}
