//! A test file system (FUSE, in memory) for storage faults: it keeps what is written only
//! in its own cache until an fsync, as LazyFS does, so a simulated power cut drops every
//! byte and every name that was not made durable; it can also run out of space (ENOSPC
//! past a capacity, which `statfs` reports) and fail fsync with EIO.
//!
//! Durability is strict, as POSIX promises and no more: a file's bytes and size are kept
//! by an fsync of that file; a name (create, rename, unlink, mkdir) by an fsync of the
//! folder that holds it. `sync_file_range` reaches no FUSE file system as an fsync, so
//! what it "flushed" is lost at a cut — as the drive's write cache loses it.
//!
//! A power cut is armed to strike at the Nth changing operation from now: that operation
//! and every one after it block, as a machine without power does nothing more. The test
//! then kills the process with SIGKILL, calls [`LazyMount::kill_switch`] (the blocked
//! operations fail with EIO, so the dying process can exit) and, once it is gone,
//! [`LazyMount::restore_power`], which drops all that was not durable.

use std::collections::{BTreeMap, HashMap};
use std::ffi::{OsStr, OsString};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::{Duration, SystemTime};

use fuser::{
    Errno, FileAttr, FileHandle, FileType, Filesystem, FopenFlags, Generation, INodeNo, OpenFlags, RenameFlags,
    ReplyAttr, ReplyCreate, ReplyData, ReplyDirectory, ReplyEmpty, ReplyEntry, ReplyOpen, ReplyStatfs, ReplyWrite,
    Request, TimeOrNow, WriteFlags,
};

/// No caching in the kernel: every lookup, attribute and byte comes from here, so what a
/// power cut drops is gone for the next process too.
const TTL: Duration = Duration::ZERO;

/// The capacity `statfs` reports when none is set.
const DEFAULT_CAPACITY: u64 = 64 << 30;

const BLOCK: u64 = 4096;

#[derive(Default)]
struct Node {
    dir: bool,
    perm: u16,
    uid: u32,
    gid: u32,
    mtime: Option<SystemTime>,
    /// What readers see.
    data: Vec<u8>,
    /// What survives a power cut: the bytes at the last fsync.
    synced: Vec<u8>,
    children: BTreeMap<OsString, u64>,
    synced_children: BTreeMap<OsString, u64>,
    /// Names that point at it now (a file unlinked while open keeps its bytes till the cut).
    links: u32,
    /// The name it was created under, for faults aimed at one kind of file.
    name: OsString,
}

/// Where the power stands.
#[derive(Default, PartialEq, Eq, Clone, Copy)]
enum Power {
    #[default]
    On,
    /// Cut: operations block until the kill switch.
    Cut,
    /// Cut and the process is being killed: operations fail at once.
    Dead,
}

#[derive(Default)]
struct State {
    nodes: HashMap<u64, Node>,
    next_ino: u64,
    capacity: Option<u64>,
    /// Writes to files created under this name fail with ENOSPC, as if the disk filled
    /// just as that file was written.
    full_for: Option<OsString>,
    fail_fsync: bool,
    power: Power,
    /// Changing operations left before the cut, when armed.
    cut_in: Option<u64>,
    /// The operation the power was cut at.
    cut_at: Option<String>,
    fsyncs: u64,
    writes: u64,
}

impl State {
    fn used(&self) -> u64 {
        self.nodes
            .values()
            .filter(|n| n.links > 0)
            .map(|n| n.data.len() as u64)
            .sum()
    }

    fn attr(&self, ino: u64) -> Option<FileAttr> {
        let n = self.nodes.get(&ino)?;
        let t = n.mtime.unwrap_or(SystemTime::UNIX_EPOCH);
        let size = if n.dir { 0 } else { n.data.len() as u64 };
        Some(FileAttr {
            ino: INodeNo(ino),
            size,
            blocks: size.div_ceil(512),
            atime: t,
            mtime: t,
            ctime: t,
            crtime: t,
            kind: if n.dir {
                FileType::Directory
            } else {
                FileType::RegularFile
            },
            perm: n.perm,
            nlink: if n.dir { 2 } else { n.links.max(1) },
            uid: n.uid,
            gid: n.gid,
            rdev: 0,
            blksize: BLOCK as u32,
            flags: 0,
        })
    }

    fn child(&self, parent: u64, name: &OsStr) -> Option<u64> {
        self.nodes.get(&parent)?.children.get(name).copied()
    }

    fn add_node(&mut self, dir: bool, mode: u32, req: &Request, name: &OsStr) -> u64 {
        let ino = self.next_ino;
        self.next_ino += 1;
        self.nodes.insert(
            ino,
            Node {
                dir,
                perm: (mode & 0o7777) as u16,
                uid: req.uid(),
                gid: req.gid(),
                mtime: Some(SystemTime::now()),
                links: 1,
                name: name.to_owned(),
                ..Node::default()
            },
        );
        ino
    }

    fn unlink_ino(&mut self, ino: u64) {
        if let Some(n) = self.nodes.get_mut(&ino) {
            n.links = n.links.saturating_sub(1);
        }
    }

    /// Everything not made durable is gone; nodes no durable name reaches are dropped.
    fn drop_unsynced(&mut self) {
        for n in self.nodes.values_mut() {
            n.data = n.synced.clone();
            n.children = n.synced_children.clone();
            n.links = 0;
        }
        let mut reachable = vec![INodeNo::ROOT.0];
        let mut seen = std::collections::HashSet::new();
        while let Some(ino) = reachable.pop() {
            if !seen.insert(ino) {
                continue;
            }
            let kids: Vec<u64> = self
                .nodes
                .get(&ino)
                .map(|n| n.children.values().copied().collect())
                .unwrap_or_default();
            for k in kids {
                if let Some(n) = self.nodes.get_mut(&k) {
                    n.links += 1;
                }
                reachable.push(k);
            }
        }
        self.nodes.retain(|ino, _| seen.contains(ino));
        if let Some(root) = self.nodes.get_mut(&INodeNo::ROOT.0) {
            root.links = 1;
        }
    }

    fn sync_everything(&mut self) {
        for n in self.nodes.values_mut() {
            n.synced = n.data.clone();
            n.synced_children = n.children.clone();
        }
    }
}

struct Shared {
    state: Mutex<State>,
    power: Condvar,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, State> {
        // A panic in a handler poisons nothing we cannot go on with: the state is plain data.
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Lets an operation through while the power is on; a changing one counts toward an
    /// armed cut. At the cut (or after it) the operation blocks until the kill switch,
    /// then fails with EIO.
    fn gate(&self, changes: bool, what: impl FnOnce() -> String) -> Result<MutexGuard<'_, State>, Errno> {
        let mut st = self.lock();
        if st.power == Power::On && changes {
            if let Some(left) = st.cut_in {
                if left <= 1 {
                    st.power = Power::Cut;
                    st.cut_in = None;
                    st.cut_at = Some(what());
                } else {
                    st.cut_in = Some(left - 1);
                }
            }
        }
        while st.power == Power::Cut {
            st = self.power.wait(st).unwrap_or_else(|p| p.into_inner());
        }
        if st.power == Power::Dead {
            return Err(Errno::EIO);
        }
        Ok(st)
    }
}

struct LazyFs {
    shared: Arc<Shared>,
}

/// A mounted [`LazyFs`]; unmounted when dropped.
pub struct LazyMount {
    shared: Arc<Shared>,
    path: PathBuf,
    session: Option<fuser::BackgroundSession>,
}

impl LazyMount {
    /// Mounts an empty file system at `path` (an existing empty folder). Needs /dev/fuse
    /// and root (or fusermount3).
    pub fn mount(path: &Path) -> std::io::Result<LazyMount> {
        let mut st = State {
            next_ino: INodeNo::ROOT.0 + 1,
            ..State::default()
        };
        st.nodes.insert(
            INodeNo::ROOT.0,
            Node {
                dir: true,
                perm: 0o755,
                links: 1,
                mtime: Some(SystemTime::now()),
                ..Node::default()
            },
        );
        let shared = Arc::new(Shared {
            state: Mutex::new(st),
            power: Condvar::new(),
        });
        let mut config = fuser::Config::default();
        config.mount_options = vec![
            fuser::MountOption::FSName("konvert-lazyfs".into()),
            fuser::MountOption::RW,
        ];
        let session = fuser::spawn_mount(LazyFs { shared: shared.clone() }, path, &config)?;
        Ok(LazyMount {
            shared,
            path: path.to_owned(),
            session: Some(session),
        })
    }

    /// Where it is mounted.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Makes everything written so far durable (a setup step, as if all were fsynced).
    pub fn sync_everything(&self) {
        self.shared.lock().sync_everything();
    }

    /// Cuts the power at the `ops`th changing operation from now (1: the next one).
    pub fn arm_power_cut(&self, ops: u64) {
        self.shared.lock().cut_in = Some(ops.max(1));
    }

    /// Disarms a cut that has not struck yet.
    pub fn disarm(&self) {
        self.shared.lock().cut_in = None;
    }

    /// The operation the power was cut at, once it was.
    pub fn cut_at(&self) -> Option<String> {
        let st = self.shared.lock();
        (st.power != Power::On).then(|| st.cut_at.clone().unwrap_or_default())
    }

    /// After a cut: the blocked operations and every later one fail with EIO, so a killed
    /// process can finish dying. Call it after sending SIGKILL, before waiting for the exit.
    pub fn kill_switch(&self) {
        let mut st = self.shared.lock();
        if st.power == Power::Cut {
            st.power = Power::Dead;
        }
        self.shared.power.notify_all();
    }

    /// The machine starts again: everything not made durable before the cut is gone.
    /// Call it once the processes that used the mount are dead.
    pub fn restore_power(&self) {
        let mut st = self.shared.lock();
        st.drop_unsynced();
        st.power = Power::On;
        st.cut_in = None;
        st.cut_at = None;
        self.shared.power.notify_all();
    }

    /// Writes past `bytes` in all fail with ENOSPC (`None`: no limit); `statfs` reports it.
    pub fn set_capacity(&self, bytes: Option<u64>) {
        self.shared.lock().capacity = bytes;
    }

    /// Writes to files created under `name` fail with ENOSPC (`None`: no more).
    pub fn full_for(&self, name: Option<&str>) {
        self.shared.lock().full_for = name.map(OsString::from);
    }

    /// Bytes the files hold now.
    pub fn used(&self) -> u64 {
        self.shared.lock().used()
    }

    /// Every fsync (of a file or a folder) fails with EIO and keeps nothing, while set.
    pub fn fail_fsync(&self, fail: bool) {
        self.shared.lock().fail_fsync = fail;
    }

    /// Fsyncs and writes served so far.
    pub fn counts(&self) -> (u64, u64) {
        let st = self.shared.lock();
        (st.fsyncs, st.writes)
    }
}

impl Drop for LazyMount {
    fn drop(&mut self) {
        // A cut left standing would block the unmount's own requests.
        self.kill_switch();
        if let Some(s) = self.session.take() {
            if s.umount_and_join().is_err() {
                // Something still holds a file there (a task its runtime drops after the
                // test's locals): detach the mount now, so none outlives the test as a dead
                // mount that hangs whoever looks at it; it goes when the last file closes.
                let detached = std::process::Command::new("umount")
                    .arg("-l")
                    .arg(&self.path)
                    .status()
                    .is_ok_and(|s| s.success());
                if !detached {
                    let _ = std::process::Command::new("fusermount3")
                        .arg("-uz")
                        .arg(&self.path)
                        .status();
                }
            }
        }
    }
}

fn reply_entry(st: &State, ino: u64, reply: ReplyEntry) {
    match st.attr(ino) {
        Some(a) => reply.entry(&TTL, &a, Generation(0)),
        None => reply.error(Errno::ENOENT),
    }
}

impl Filesystem for LazyFs {
    fn lookup(&self, _req: &Request, parent: INodeNo, name: &OsStr, reply: ReplyEntry) {
        let st = match self.shared.gate(false, String::new) {
            Ok(st) => st,
            Err(e) => return reply.error(e),
        };
        match st.child(parent.0, name) {
            Some(ino) => reply_entry(&st, ino, reply),
            None => reply.error(Errno::ENOENT),
        }
    }

    fn getattr(&self, _req: &Request, ino: INodeNo, _fh: Option<FileHandle>, reply: ReplyAttr) {
        let st = match self.shared.gate(false, String::new) {
            Ok(st) => st,
            Err(e) => return reply.error(e),
        };
        match st.attr(ino.0) {
            Some(a) => reply.attr(&TTL, &a),
            None => reply.error(Errno::ENOENT),
        }
    }

    fn setattr(
        &self,
        _req: &Request,
        ino: INodeNo,
        mode: Option<u32>,
        uid: Option<u32>,
        gid: Option<u32>,
        size: Option<u64>,
        _atime: Option<TimeOrNow>,
        mtime: Option<TimeOrNow>,
        _ctime: Option<SystemTime>,
        _fh: Option<FileHandle>,
        _crtime: Option<SystemTime>,
        _chgtime: Option<SystemTime>,
        _bkuptime: Option<SystemTime>,
        _flags: Option<fuser::BsdFileFlags>,
        reply: ReplyAttr,
    ) {
        let mut st = match self.shared.gate(true, || format!("setattr of inode {}", ino.0)) {
            Ok(st) => st,
            Err(e) => return reply.error(e),
        };
        if let Some(size) = size {
            let (old, cap, used) = match st.nodes.get(&ino.0) {
                Some(n) => (n.data.len() as u64, st.capacity, st.used()),
                None => return reply.error(Errno::ENOENT),
            };
            if cap.is_some_and(|c| size > old && used + (size - old) > c) {
                return reply.error(Errno::ENOSPC);
            }
        }
        let Some(n) = st.nodes.get_mut(&ino.0) else {
            return reply.error(Errno::ENOENT);
        };
        if let Some(size) = size {
            n.data.resize(usize::try_from(size).unwrap_or(usize::MAX), 0);
        }
        if let Some(m) = mode {
            n.perm = (m & 0o7777) as u16;
        }
        if let Some(u) = uid {
            n.uid = u;
        }
        if let Some(g) = gid {
            n.gid = g;
        }
        n.mtime = Some(match mtime {
            Some(TimeOrNow::SpecificTime(t)) => t,
            _ => SystemTime::now(),
        });
        match st.attr(ino.0) {
            Some(a) => reply.attr(&TTL, &a),
            None => reply.error(Errno::ENOENT),
        }
    }

    fn mkdir(&self, req: &Request, parent: INodeNo, name: &OsStr, mode: u32, _umask: u32, reply: ReplyEntry) {
        let mut st = match self.shared.gate(true, || format!("mkdir {name:?}")) {
            Ok(st) => st,
            Err(e) => return reply.error(e),
        };
        if !st.nodes.get(&parent.0).is_some_and(|p| p.dir) {
            return reply.error(Errno::ENOENT);
        }
        if st.child(parent.0, name).is_some() {
            return reply.error(Errno::EEXIST);
        }
        let ino = st.add_node(true, mode, req, name);
        if let Some(p) = st.nodes.get_mut(&parent.0) {
            p.children.insert(name.to_owned(), ino);
        }
        reply_entry(&st, ino, reply);
    }

    fn create(
        &self,
        req: &Request,
        parent: INodeNo,
        name: &OsStr,
        mode: u32,
        _umask: u32,
        flags: i32,
        reply: ReplyCreate,
    ) {
        let mut st = match self.shared.gate(true, || format!("create {name:?}")) {
            Ok(st) => st,
            Err(e) => return reply.error(e),
        };
        if !st.nodes.get(&parent.0).is_some_and(|p| p.dir) {
            return reply.error(Errno::ENOENT);
        }
        let ino = match st.child(parent.0, name) {
            Some(_) if flags & rustix::fs::OFlags::EXCL.bits() as i32 != 0 => return reply.error(Errno::EEXIST),
            Some(ino) => {
                if flags & rustix::fs::OFlags::TRUNC.bits() as i32 != 0 {
                    if let Some(n) = st.nodes.get_mut(&ino) {
                        n.data.clear();
                    }
                }
                ino
            }
            None => {
                let ino = st.add_node(false, mode, req, name);
                if let Some(p) = st.nodes.get_mut(&parent.0) {
                    p.children.insert(name.to_owned(), ino);
                }
                ino
            }
        };
        match st.attr(ino) {
            Some(a) => reply.created(&TTL, &a, Generation(0), FileHandle(0), FopenFlags::FOPEN_DIRECT_IO),
            None => reply.error(Errno::ENOENT),
        }
    }

    fn unlink(&self, _req: &Request, parent: INodeNo, name: &OsStr, reply: ReplyEmpty) {
        let mut st = match self.shared.gate(true, || format!("unlink {name:?}")) {
            Ok(st) => st,
            Err(e) => return reply.error(e),
        };
        let Some(ino) = st.nodes.get_mut(&parent.0).and_then(|p| p.children.remove(name)) else {
            return reply.error(Errno::ENOENT);
        };
        st.unlink_ino(ino);
        reply.ok();
    }

    fn rmdir(&self, _req: &Request, parent: INodeNo, name: &OsStr, reply: ReplyEmpty) {
        let mut st = match self.shared.gate(true, || format!("rmdir {name:?}")) {
            Ok(st) => st,
            Err(e) => return reply.error(e),
        };
        let Some(ino) = st.child(parent.0, name) else {
            return reply.error(Errno::ENOENT);
        };
        if st.nodes.get(&ino).is_some_and(|n| !n.children.is_empty()) {
            return reply.error(Errno::ENOTEMPTY);
        }
        if let Some(p) = st.nodes.get_mut(&parent.0) {
            p.children.remove(name);
        }
        st.unlink_ino(ino);
        reply.ok();
    }

    fn rename(
        &self,
        _req: &Request,
        parent: INodeNo,
        name: &OsStr,
        newparent: INodeNo,
        newname: &OsStr,
        flags: RenameFlags,
        reply: ReplyEmpty,
    ) {
        let mut st = match self.shared.gate(true, || format!("rename {name:?} to {newname:?}")) {
            Ok(st) => st,
            Err(e) => return reply.error(e),
        };
        if !flags.is_empty() {
            return reply.error(Errno::EINVAL);
        }
        let Some(ino) = st.child(parent.0, name) else {
            return reply.error(Errno::ENOENT);
        };
        if !st.nodes.get(&newparent.0).is_some_and(|p| p.dir) {
            return reply.error(Errno::ENOENT);
        }
        if let Some(old) = st.child(newparent.0, newname) {
            if old == ino {
                return reply.ok();
            }
            if st.nodes.get(&old).is_some_and(|n| n.dir && !n.children.is_empty()) {
                return reply.error(Errno::ENOTEMPTY);
            }
            st.unlink_ino(old);
        }
        if let Some(p) = st.nodes.get_mut(&parent.0) {
            p.children.remove(name);
        }
        if let Some(p) = st.nodes.get_mut(&newparent.0) {
            p.children.insert(newname.to_owned(), ino);
        }
        reply.ok();
    }

    fn open(&self, _req: &Request, ino: INodeNo, _flags: OpenFlags, reply: ReplyOpen) {
        let st = match self.shared.gate(false, String::new) {
            Ok(st) => st,
            Err(e) => return reply.error(e),
        };
        if st.nodes.contains_key(&ino.0) {
            reply.opened(FileHandle(0), FopenFlags::FOPEN_DIRECT_IO);
        } else {
            reply.error(Errno::ENOENT);
        }
    }

    fn read(
        &self,
        _req: &Request,
        ino: INodeNo,
        _fh: FileHandle,
        offset: u64,
        size: u32,
        _flags: OpenFlags,
        _lock_owner: Option<fuser::LockOwner>,
        reply: ReplyData,
    ) {
        let st = match self.shared.gate(false, String::new) {
            Ok(st) => st,
            Err(e) => return reply.error(e),
        };
        let Some(n) = st.nodes.get(&ino.0) else {
            return reply.error(Errno::ENOENT);
        };
        let start = usize::try_from(offset).unwrap_or(usize::MAX).min(n.data.len());
        let end = start.saturating_add(size as usize).min(n.data.len());
        reply.data(&n.data[start..end]);
    }

    fn write(
        &self,
        _req: &Request,
        ino: INodeNo,
        _fh: FileHandle,
        offset: u64,
        data: &[u8],
        _write_flags: WriteFlags,
        _flags: OpenFlags,
        _lock_owner: Option<fuser::LockOwner>,
        reply: ReplyWrite,
    ) {
        let mut st = match self.shared.gate(true, || {
            format!("write of {} bytes at {offset} to inode {}", data.len(), ino.0)
        }) {
            Ok(st) => st,
            Err(e) => return reply.error(e),
        };
        let Ok(start) = usize::try_from(offset) else {
            return reply.error(Errno::EINVAL);
        };
        let end = start + data.len();
        let old = match st.nodes.get(&ino.0) {
            Some(n) if st.full_for.as_ref().is_some_and(|f| *f == n.name) => return reply.error(Errno::ENOSPC),
            Some(n) => n.data.len(),
            None => return reply.error(Errno::ENOENT),
        };
        if end > old {
            let used = st.used();
            if st.capacity.is_some_and(|c| used + (end - old) as u64 > c) {
                return reply.error(Errno::ENOSPC);
            }
        }
        st.writes += 1;
        let Some(n) = st.nodes.get_mut(&ino.0) else {
            return reply.error(Errno::ENOENT);
        };
        if end > n.data.len() {
            n.data.resize(end, 0);
        }
        n.data[start..end].copy_from_slice(data);
        n.mtime = Some(SystemTime::now());
        reply.written(data.len() as u32);
    }

    fn flush(&self, _req: &Request, _ino: INodeNo, _fh: FileHandle, _lock_owner: fuser::LockOwner, reply: ReplyEmpty) {
        reply.ok();
    }

    fn fsync(&self, _req: &Request, ino: INodeNo, _fh: FileHandle, _datasync: bool, reply: ReplyEmpty) {
        let mut st = match self.shared.gate(true, || format!("fsync of inode {}", ino.0)) {
            Ok(st) => st,
            Err(e) => return reply.error(e),
        };
        if st.fail_fsync {
            return reply.error(Errno::EIO);
        }
        st.fsyncs += 1;
        match st.nodes.get_mut(&ino.0) {
            Some(n) => {
                n.synced = n.data.clone();
                reply.ok();
            }
            None => reply.error(Errno::ENOENT),
        }
    }

    fn opendir(&self, _req: &Request, ino: INodeNo, _flags: OpenFlags, reply: ReplyOpen) {
        let st = match self.shared.gate(false, String::new) {
            Ok(st) => st,
            Err(e) => return reply.error(e),
        };
        if st.nodes.get(&ino.0).is_some_and(|n| n.dir) {
            reply.opened(FileHandle(0), FopenFlags::empty());
        } else {
            reply.error(Errno::ENOTDIR);
        }
    }

    fn readdir(&self, _req: &Request, ino: INodeNo, _fh: FileHandle, offset: u64, mut reply: ReplyDirectory) {
        let st = match self.shared.gate(false, String::new) {
            Ok(st) => st,
            Err(e) => return reply.error(e),
        };
        let Some(n) = st.nodes.get(&ino.0) else {
            return reply.error(Errno::ENOENT);
        };
        let mut entries: Vec<(u64, FileType, OsString)> = vec![
            (ino.0, FileType::Directory, ".".into()),
            (ino.0, FileType::Directory, "..".into()),
        ];
        for (name, child) in &n.children {
            let kind = if st.nodes.get(child).is_some_and(|c| c.dir) {
                FileType::Directory
            } else {
                FileType::RegularFile
            };
            entries.push((*child, kind, name.clone()));
        }
        for (i, (child, kind, name)) in entries
            .iter()
            .enumerate()
            .skip(usize::try_from(offset).unwrap_or(usize::MAX))
        {
            if reply.add(INodeNo(*child), i as u64 + 1, *kind, name) {
                break;
            }
        }
        reply.ok();
    }

    fn fsyncdir(&self, _req: &Request, ino: INodeNo, _fh: FileHandle, _datasync: bool, reply: ReplyEmpty) {
        let mut st = match self.shared.gate(true, || format!("fsync of folder inode {}", ino.0)) {
            Ok(st) => st,
            Err(e) => return reply.error(e),
        };
        if st.fail_fsync {
            return reply.error(Errno::EIO);
        }
        st.fsyncs += 1;
        match st.nodes.get_mut(&ino.0) {
            Some(n) => {
                n.synced_children = n.children.clone();
                reply.ok();
            }
            None => reply.error(Errno::ENOENT),
        }
    }

    fn statfs(&self, _req: &Request, _ino: INodeNo, reply: ReplyStatfs) {
        let st = match self.shared.gate(false, String::new) {
            Ok(st) => st,
            Err(e) => return reply.error(e),
        };
        let cap = st.capacity.unwrap_or(DEFAULT_CAPACITY);
        let free = cap.saturating_sub(st.used());
        reply.statfs(
            cap / BLOCK,
            free / BLOCK,
            free / BLOCK,
            1 << 20,
            1 << 20,
            BLOCK as u32,
            255,
            BLOCK as u32,
        );
    }

    fn fallocate(
        &self,
        _req: &Request,
        ino: INodeNo,
        _fh: FileHandle,
        offset: u64,
        length: u64,
        mode: i32,
        reply: ReplyEmpty,
    ) {
        let mut st = match self.shared.gate(true, || format!("fallocate of inode {}", ino.0)) {
            Ok(st) => st,
            Err(e) => return reply.error(e),
        };
        if mode != 0 {
            return reply.error(Errno::EOPNOTSUPP);
        }
        let end = offset.saturating_add(length);
        let old = st.nodes.get(&ino.0).map_or(0, |n| n.data.len() as u64);
        let used = st.used();
        if end > old && st.capacity.is_some_and(|c| used + (end - old) > c) {
            return reply.error(Errno::ENOSPC);
        }
        match st.nodes.get_mut(&ino.0) {
            Some(n) => {
                if end > old {
                    n.data.resize(usize::try_from(end).unwrap_or(usize::MAX), 0);
                }
                reply.ok();
            }
            None => reply.error(Errno::ENOENT),
        }
    }
}
