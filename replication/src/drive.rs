//! Files on a drive that came from outside: folders and files opened without following
//! symbolic links, relative to a folder already opened (so a folder swapped for a link
//! between two calls changes nothing), only regular files read, never more than the size
//! expected, every read against a time limit, and every file written created exclusively.
//!
//! The reserve channel's drive is untrusted input: a hostile drive may hold a symlink
//! where a receipt is written (the write would land anywhere the importer can write), a
//! FIFO or device node where an envelope should be (the read would block for ever or
//! never end), or a file that grows while it is read. Everything the reserve channel does
//! on a drive goes through [`DriveDir`] and [`DriveFile`].

use std::fs::File;
use std::io::{Read, Write};
use std::os::fd::OwnedFd;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use rustix::fs::{AtFlags, Mode, OFlags};
use rustix::io::Errno;

use crate::{Error, Result};

/// Every file read from a drive is given at least this long.
pub const READ_GRACE: Duration = Duration::from_secs(30);
/// …plus one second for every this many bytes: a drive slower than 1 MiB/s (USB 2.0 does
/// 20–30 MB/s) is treated as failing rather than waited for.
pub const SLOWEST_BYTES_PER_SEC: u64 = 1 << 20;
/// What one read call asks for.
const CHUNK: usize = 1 << 20;

/// The time allowed for reading `len` bytes from a drive.
pub fn read_time_limit(len: u64) -> Duration {
    READ_GRACE + Duration::from_secs(len / SLOWEST_BYTES_PER_SEC)
}

fn drive_err(path: &Path, message: impl std::fmt::Display) -> Error {
    Error::Drive {
        path: path.to_owned(),
        message: message.to_string(),
    }
}

/// Words for an error opening something on a drive, naming the refusals this module makes
/// on purpose.
fn open_err(path: &Path, what: &str, e: Errno) -> Error {
    let message = match e {
        Errno::LOOP | Errno::MLINK => format!(
            "is a symbolic link; a drive's {what}s must be real {what}s — refused, nothing read or written through it"
        ),
        Errno::NOTDIR => format!("is not a folder; a drive's {what}s must be real folders"),
        Errno::NOENT => "does not exist".to_owned(),
        other => std::io::Error::from(other).to_string(),
    };
    drive_err(path, message)
}

/// Checks that `name` is one plain path component (no `/`, not `.` or `..`).
fn check_component(dir: &Path, name: &str) -> Result<()> {
    if name.is_empty() || name == "." || name == ".." || name.contains('/') || name.contains('\0') {
        return Err(drive_err(&dir.join(name), "not a plain file name"));
    }
    Ok(())
}

/// A folder on a drive, held open: everything in it is reached relative to this handle,
/// and none of it through a symbolic link.
#[derive(Debug)]
pub struct DriveDir {
    fd: OwnedFd,
    path: PathBuf,
}

impl DriveDir {
    /// Opens the drive folder the operator named. It may be reached through links (a
    /// mount point often is); everything below it may not.
    pub fn open(path: &Path) -> Result<DriveDir> {
        let fd = rustix::fs::open(
            path,
            OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC,
            Mode::empty(),
        )
        .map_err(|e| open_err(path, "folder", e))?;
        Ok(DriveDir {
            fd,
            path: path.to_owned(),
        })
    }

    /// Where this folder is, for messages.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The sub-folder `name`, which must be a real folder; `None` if there is nothing of
    /// that name.
    pub fn sub(&self, name: &str) -> Result<Option<DriveDir>> {
        check_component(&self.path, name)?;
        let path = self.path.join(name);
        match rustix::fs::openat(
            &self.fd,
            name,
            OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
            Mode::empty(),
        ) {
            Ok(fd) => Ok(Some(DriveDir { fd, path })),
            Err(Errno::NOENT) => Ok(None),
            // O_NOFOLLOW with O_DIRECTORY answers "not a folder" for a link too: say which.
            Err(Errno::NOTDIR)
                if rustix::fs::statat(&self.fd, name, AtFlags::SYMLINK_NOFOLLOW).is_ok_and(|st| {
                    rustix::fs::FileType::from_raw_mode(st.st_mode) == rustix::fs::FileType::Symlink
                }) =>
            {
                Err(open_err(&path, "folder", Errno::LOOP))
            }
            Err(e) => Err(open_err(&path, "folder", e)),
        }
    }

    /// The sub-folder `name`, made (and the making made durable) if absent.
    pub fn sub_or_create(&self, name: &str) -> Result<DriveDir> {
        if let Some(d) = self.sub(name)? {
            return Ok(d);
        }
        let path = self.path.join(name);
        match rustix::fs::mkdirat(&self.fd, name, Mode::from_raw_mode(0o755)) {
            Ok(()) | Err(Errno::EXIST) => {}
            Err(e) => return Err(open_err(&path, "folder", e)),
        }
        self.sync()?;
        self.sub(name)?
            .ok_or_else(|| drive_err(&path, "vanished right after it was made"))
    }

    /// Whether anything (a file, folder, link …) is called `name` here.
    pub fn has(&self, name: &str) -> Result<bool> {
        check_component(&self.path, name)?;
        match rustix::fs::statat(&self.fd, name, AtFlags::SYMLINK_NOFOLLOW) {
            Ok(_) => Ok(true),
            Err(Errno::NOENT) => Ok(false),
            Err(e) => Err(open_err(&self.path.join(name), "file", e)),
        }
    }

    /// Opens the file `name` for reading: refused if it is a symbolic link or anything but
    /// a regular file (a FIFO, a device …), or longer than `max` bytes. `None` if there is
    /// nothing of that name.
    pub fn open_file(&self, name: &str, max: u64) -> Result<Option<DriveFile>> {
        check_component(&self.path, name)?;
        let path = self.path.join(name);
        let file = match open_regular_at(&self.fd, name) {
            Ok(file) => file,
            Err(e) => match Errno::from_io_error(&e) {
                Some(Errno::NOENT) => return Ok(None),
                Some(errno) => return Err(open_err(&path, "file", errno)),
                None => return Err(drive_err(&path, e)),
            },
        };
        let meta = file.metadata().map_err(|e| drive_err(&path, e))?;
        let len = meta.len();
        if len > max {
            return Err(drive_err(&path, format!("{len} bytes, at most {max} expected here")));
        }
        Ok(Some(DriveFile { file, path, len }))
    }

    /// The names of the regular files here ending in `extension`, sorted, at most `max` of
    /// them; links and anything else are left out (and reading them would refuse them).
    pub fn files(&self, extension: &str, max: usize) -> Result<Vec<String>> {
        let dir = rustix::fs::Dir::read_from(&self.fd).map_err(|e| open_err(&self.path, "folder", e))?;
        let mut names = Vec::new();
        for entry in dir {
            let entry = entry.map_err(|e| open_err(&self.path, "folder", e))?;
            let Ok(name) = std::str::from_utf8(entry.file_name().to_bytes()) else {
                continue;
            };
            if self.kind(name, entry.file_type()) != rustix::fs::FileType::RegularFile {
                continue;
            }
            if name.ends_with(extension) && !name.starts_with('.') {
                names.push(name.to_owned());
                if names.len() > max {
                    return Err(drive_err(&self.path, format!("more than {max} *{extension} files")));
                }
            }
        }
        names.sort();
        Ok(names)
    }

    /// The entries named `*{extension}` here that are no regular file (links, FIFOs,
    /// devices, folders), each with what it is: skipped by [`DriveDir::files`], but the
    /// operator must hear of them.
    pub fn not_regular(&self, extension: &str, max: usize) -> Result<Vec<(String, &'static str)>> {
        let dir = rustix::fs::Dir::read_from(&self.fd).map_err(|e| open_err(&self.path, "folder", e))?;
        let mut found = Vec::new();
        for entry in dir {
            let entry = entry.map_err(|e| open_err(&self.path, "folder", e))?;
            let name = String::from_utf8_lossy(entry.file_name().to_bytes()).into_owned();
            if !name.ends_with(extension) || name.starts_with('.') {
                continue;
            }
            let what = match self.kind(&name, entry.file_type()) {
                rustix::fs::FileType::RegularFile => continue,
                rustix::fs::FileType::Symlink => "a symbolic link",
                rustix::fs::FileType::Fifo => "a FIFO",
                rustix::fs::FileType::Directory => "a folder",
                rustix::fs::FileType::CharacterDevice | rustix::fs::FileType::BlockDevice => "a device",
                _ => "no regular file",
            };
            found.push((name, what));
            if found.len() >= max {
                break;
            }
        }
        found.sort();
        Ok(found)
    }

    /// The sub-folders here (real folders only, not links), sorted.
    pub fn folders(&self, max: usize) -> Result<Vec<String>> {
        let dir = rustix::fs::Dir::read_from(&self.fd).map_err(|e| open_err(&self.path, "folder", e))?;
        let mut names = Vec::new();
        for entry in dir {
            let entry = entry.map_err(|e| open_err(&self.path, "folder", e))?;
            let Ok(name) = std::str::from_utf8(entry.file_name().to_bytes()) else {
                continue;
            };
            if name != "." && name != ".." && self.kind(name, entry.file_type()) == rustix::fs::FileType::Directory {
                names.push(name.to_owned());
                if names.len() > max {
                    return Err(drive_err(&self.path, format!("more than {max} folders")));
                }
            }
        }
        names.sort();
        Ok(names)
    }

    /// What the entry `name` is, never following a link: the listing's word, or the
    /// entry's own when the file system does not say in listings (some drives' do not).
    fn kind(&self, name: &str, listed: rustix::fs::FileType) -> rustix::fs::FileType {
        if listed != rustix::fs::FileType::Unknown {
            return listed;
        }
        rustix::fs::statat(&self.fd, name, AtFlags::SYMLINK_NOFOLLOW).map_or(rustix::fs::FileType::Unknown, |st| {
            rustix::fs::FileType::from_raw_mode(st.st_mode)
        })
    }

    /// Creates the file `name` here, exclusively: never through a link, never over
    /// anything already there.
    pub fn create_new(&self, name: &str) -> Result<File> {
        check_component(&self.path, name)?;
        let fd = rustix::fs::openat(
            &self.fd,
            name,
            OFlags::WRONLY | OFlags::CREATE | OFlags::EXCL | OFlags::NOFOLLOW | OFlags::NOCTTY | OFlags::CLOEXEC,
            Mode::from_raw_mode(0o644),
        )
        .map_err(|e| match e {
            Errno::EXIST => drive_err(&self.path.join(name), "already exists"),
            e => open_err(&self.path.join(name), "file", e),
        })?;
        Ok(File::from(fd))
    }

    /// Removes the entry `name` (a file or a link, never what a link points to); nothing
    /// there is fine.
    pub fn remove(&self, name: &str) -> Result<()> {
        check_component(&self.path, name)?;
        match rustix::fs::unlinkat(&self.fd, name, AtFlags::empty()) {
            Ok(()) | Err(Errno::NOENT) => Ok(()),
            Err(e) => Err(open_err(&self.path.join(name), "file", e)),
        }
    }

    /// Renames `from` to `to` within this folder (replacing the entry `to`, whatever it is,
    /// without following it).
    pub fn rename(&self, from: &str, to: &str) -> Result<()> {
        check_component(&self.path, from)?;
        check_component(&self.path, to)?;
        rustix::fs::renameat(&self.fd, from, &self.fd, to).map_err(|e| open_err(&self.path.join(to), "file", e))
    }

    /// Makes the creates and renames in this folder durable.
    pub fn sync(&self) -> Result<()> {
        rustix::fs::fsync(&self.fd).map_err(|e| open_err(&self.path, "folder", e))
    }

    /// Writes `bytes` as the file `name`: into `name.part` created exclusively (a `.part`
    /// left by a crash, or planted, is removed first — the entry, not what it may point
    /// to), fsynced, renamed over `name`, the folder fsynced.
    pub fn write_durably(&self, name: &str, bytes: &[u8]) -> Result<()> {
        let part = format!("{name}.part");
        self.write_part(&part, |f| f.write_all(bytes).map_err(Error::from))?;
        self.rename(&part, name)?;
        self.sync()
    }

    /// Creates `part` exclusively (removing an entry of that name first), fills it with
    /// `fill` and fsyncs it; on failure removes it.
    pub fn write_part(&self, part: &str, fill: impl FnOnce(&mut File) -> Result<()>) -> Result<()> {
        self.remove(part)?;
        let mut f = self.create_new(part)?;
        let result = fill(&mut f).and_then(|()| f.sync_all().map_err(Error::from));
        if result.is_err() {
            let _ = self.remove(part);
        }
        result
    }
}

/// Opens `name` in `dir` for reading: never through a final symbolic link, never waiting
/// (O_NONBLOCK: opening a FIFO for reading would wait for a writer for ever), and refused
/// by what the open handle is, not by a path checked before (a race), unless it is a
/// regular file. An error from the open itself carries its errno.
fn open_regular_at(dir: impl std::os::fd::AsFd, name: impl rustix::path::Arg) -> std::io::Result<File> {
    let fd = rustix::fs::openat(
        dir,
        name,
        OFlags::RDONLY | OFlags::NOFOLLOW | OFlags::NONBLOCK | OFlags::NOCTTY | OFlags::CLOEXEC,
        Mode::empty(),
    )?;
    let file = File::from(fd);
    let kind = file.metadata()?.file_type();
    if kind.is_file() {
        Ok(file)
    } else {
        Err(std::io::Error::new(
            std::io::ErrorKind::InvalidInput,
            format!("is a {}, not a regular file — refused unread", kind_of(&kind)),
        ))
    }
}

/// Opens the file at `path` for reading as [`DriveDir::open_file`] does, for files that do
/// not come from a drive but may have been swapped all the same (a center's stored
/// envelope, its registry file): a final symbolic link, a FIFO, a device … is refused
/// without blocking. Reads from the file still need a bound of their own.
pub fn open_regular(path: &Path) -> std::io::Result<File> {
    open_regular_at(rustix::fs::CWD, path).map_err(|e| match Errno::from_io_error(&e) {
        Some(Errno::LOOP | Errno::MLINK) => std::io::Error::new(
            std::io::ErrorKind::InvalidInput,
            "is a symbolic link, not a regular file — refused, nothing read through it",
        ),
        _ => e,
    })
}

fn kind_of(t: &std::fs::FileType) -> &'static str {
    use std::os::unix::fs::FileTypeExt;
    if t.is_fifo() {
        "FIFO (named pipe)"
    } else if t.is_char_device() {
        "character device"
    } else if t.is_block_device() {
        "block device"
    } else if t.is_socket() {
        "socket"
    } else if t.is_dir() {
        "folder"
    } else if t.is_symlink() {
        "symbolic link"
    } else {
        "special file"
    }
}

/// A regular file on a drive, open for reading.
#[derive(Debug)]
pub struct DriveFile {
    file: File,
    path: PathBuf,
    len: u64,
}

impl DriveFile {
    /// Its size when it was opened.
    pub fn len(&self) -> u64 {
        self.len
    }

    /// Whether it was empty when it was opened.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Where it is, for messages.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Reads the whole file (as long as it was when opened), within [`read_time_limit`].
    pub fn read_all(self) -> Result<Vec<u8>> {
        let mut out = Vec::with_capacity(usize::try_from(self.len).unwrap_or(0));
        let (len, path) = (self.len, self.path.clone());
        let read = self.read_exactly(len, read_time_limit(len), |chunk| {
            out.extend_from_slice(chunk);
            Ok(())
        })?;
        if read.is_none() {
            return Err(drive_err(
                &path,
                format!("grew while it was read (it had {len} bytes) — refused"),
            ));
        }
        if (out.len() as u64) < len {
            return Err(drive_err(
                &path,
                format!("shrank while it was read ({} of {len} bytes)", out.len()),
            ));
        }
        Ok(out)
    }

    /// Hands at most `size` bytes to `sink`, chunk by chunk, within `limit`; returns how
    /// many (fewer when the file is shorter), or `None` when the file holds more than
    /// `size` bytes (longer when opened, or grown since), found before any extra byte is
    /// used. A read that fails or overruns `limit` is an error.
    pub fn read_exactly(
        self,
        size: u64,
        limit: Duration,
        mut sink: impl FnMut(&[u8]) -> Result<()>,
    ) -> Result<Option<u64>> {
        let path = self.path.clone();
        read_bounded_timed(self.file, &path, size, limit, &mut sink)
    }
}

/// [`DriveFile::read_exactly`] over any reader (the tests use a slow one).
pub(crate) fn read_bounded_timed<R: Read>(
    mut from: R,
    path: &Path,
    size: u64,
    limit: Duration,
    sink: &mut dyn FnMut(&[u8]) -> Result<()>,
) -> Result<Option<u64>> {
    let started = Instant::now();
    let mut buf = vec![0u8; CHUNK];
    let mut at = 0u64;
    let over_time = |at: u64| {
        drive_err(
            path,
            format!(
                "reading it took longer than {} s ({at} of {size} bytes read); the drive is failing or is not a plain drive — refused",
                limit.as_secs()
            ),
        )
    };
    while at < size {
        if started.elapsed() > limit {
            return Err(over_time(at));
        }
        let want = usize::try_from((size - at).min(CHUNK as u64)).unwrap_or(CHUNK);
        let n = match from.read(&mut buf[..want]) {
            Ok(n) => n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(drive_err(path, e)),
        };
        if n == 0 {
            return Ok(Some(at));
        }
        sink(&buf[..n])?;
        at += n as u64;
    }
    if started.elapsed() > limit {
        return Err(over_time(at));
    }
    let mut one = [0u8; 1];
    loop {
        match from.read(&mut one) {
            Ok(0) => return Ok(Some(at)),
            Ok(_) => return Ok(None),
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(drive_err(path, e)),
        }
    }
}

#[cfg(test)]
#[path = "drive_tests.rs"]
mod tests;
