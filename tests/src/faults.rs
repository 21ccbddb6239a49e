//! Helpers for the storage-fault tests: a center whose data folder is on a [`LazyMount`],
//! and the check that every receipted packet is stored and opens.

use std::path::Path;

use crate::lazyfs::LazyMount;
use crate::{CenterFixture, SiteFixture};

/// Copies the folder `from` into `to`, recursively (a node's data folder onto the test
/// file system).
pub fn copy_tree(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap() {
        let e = e.unwrap();
        if e.file_type().unwrap().is_dir() {
            copy_tree(&e.path(), &to.join(e.file_name()));
        } else {
            std::fs::copy(e.path(), to.join(e.file_name())).unwrap();
        }
    }
}

/// Mounts a [`LazyMount`] at `<root>/<name>` and moves the data folder `data` onto it
/// (made durable there); returns the mount and the new data folder.
pub fn data_on_lazyfs(root: &Path, name: &str, data: &Path) -> (LazyMount, std::path::PathBuf) {
    let at = root.join(name);
    std::fs::create_dir(&at).unwrap();
    let mnt = LazyMount::mount(&at)
        .expect("mount the FUSE test file system: needs /dev/fuse and root, or fusermount3 (Debian fuse3)");
    let moved = at.join("data");
    copy_tree(data, &moved);
    mnt.sync_everything();
    (mnt, moved)
}

/// Every packet `site` holds a receipt for is in the inbox at `data` (opened as the center
/// opens it at its next start), its stored envelope is the one sent, and the loader key
/// opens it. Returns how many were checked.
pub fn check_receipted(site: &SiteFixture, fx: &CenterFixture, data: &Path) -> usize {
    let inbox = konvert_replication::Inbox::open(data).unwrap();
    let signer = site.signer.verifying_key();
    let trusted = |id: &konvert_crypto::KeyId| (*id == signer.key_id()).then_some(signer);
    let mut checked = 0;
    for entry in site.outbox.entries().unwrap() {
        let konvert_replication::OutboxState::Delivered { receipt } = &entry.state else {
            continue;
        };
        let (id, v) = (&entry.offer.packet_id, entry.offer.version);
        let record = inbox
            .lookup(id, v)
            .unwrap()
            .unwrap_or_else(|| panic!("{id} v{v} was receipted and is not in the inbox"));
        assert_eq!(
            &record.receipt, receipt,
            "{id} v{v}: the stored record is the receipted one"
        );
        let stored = std::fs::read(inbox.store_path(&entry.offer.digest))
            .unwrap_or_else(|e| panic!("{id} v{v} was receipted and its envelope is gone: {e}"));
        assert!(
            stored == std::fs::read(site.outbox.envelope_path(&entry)).unwrap(),
            "{id} v{v}: the stored envelope is not the one sent"
        );
        konvert_crypto::envelope::open_in_memory(&stored, &fx.recipient, &trusted, Vec::new(), |plain| plain.len())
            .unwrap_or_else(|e| panic!("{id} v{v} was receipted and does not open: {e}"));
        checked += 1;
    }
    checked
}
