//! Shared fixtures for konvert's end-to-end tests: a center (in-process or as a child
//! process that can be killed) and enrolled sites with member tokens, all in a temp dir.

// Test fixtures: a failed setup step is a failed test, so unwrap is the clearest report.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use konvert_center::config::{AllowedMember, CenterConfig};
use konvert_center::provision::{self, CenterFacts, CenterInit};
use konvert_crypto::token::TokenFile;
use konvert_crypto::SigningKey;
use konvert_edge::{seal_room, SiteConfig};
use konvert_exam::{ExamKind, PacketKind, PacketRef};
use konvert_replication::{Outbox, OutboxEntry};

/// The PIN of every test token.
pub const PIN: &str = "271828";

/// A center's files and keys in a temp dir.
pub struct CenterFixture {
    /// The temp dir holding everything.
    pub root: tempfile::TempDir,
    /// What `init_center` made.
    pub init: CenterInit,
}

/// One enrolled site.
pub struct SiteFixture {
    /// Its config.
    pub cfg: SiteConfig,
    /// Its outbox.
    pub outbox: Arc<Outbox>,
    /// Its member key, unlocked.
    pub signer: SigningKey,
    /// Its folder.
    pub dir: PathBuf,
}

impl CenterFixture {
    /// A new center listening on `listen` (use port 0 for in-process centers).
    pub fn new(listen: SocketAddr) -> Self {
        let root = tempfile::tempdir().unwrap();
        let init = provision::init_center(
            &root.path().join("center"),
            "center.konvert",
            listen,
            Some("127.0.0.1:0".parse().unwrap()),
        )
        .unwrap();
        CenterFixture { root, init }
    }

    /// The center's folder.
    pub fn center_dir(&self) -> PathBuf {
        self.root.path().join("center")
    }

    /// Issues a member token for `site` and stores it in the site's folder; returns
    /// the token's public key.
    pub fn issue_token(&self, site: &str) -> TokenFile {
        let dir = self.root.path().join("sites").join(site);
        std::fs::create_dir_all(&dir).unwrap();
        TokenFile::create(
            &dir.join("member.token"),
            &format!("TK-{site}"),
            &format!("member of {site}"),
            PIN,
            1_000,
        )
        .unwrap()
    }

    /// Allows members in center.toml (as written on disk) and returns the loaded config.
    pub fn allow(&self, members: &[(&TokenFile, &str)]) -> CenterConfig {
        let path = &self.init.config_path;
        let mut raw: CenterConfig = toml::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
        for (t, site) in members {
            raw.members.push(AllowedMember {
                name: t.holder.clone(),
                key: t.public.to_string(),
                sites: vec![site.to_string()],
            });
        }
        raw.save(path).unwrap();
        CenterConfig::load(path).unwrap()
    }

    /// Enrolls the station of `site` for a center at `addr`.
    pub fn enroll(&self, site: &str, addr: SocketAddr) -> SiteFixture {
        let dir = self.root.path().join("sites").join(site);
        let facts = CenterFacts {
            address: addr.to_string(),
            name: "center.konvert".into(),
            recipient_public: self.init.recipient_public,
            receipt_public: self.init.receipt_public,
        };
        let toml = provision::enroll_station(&self.center_dir(), site, &facts, &dir).unwrap();
        let mut cfg = SiteConfig::load(&toml).unwrap();
        cfg.push.retry_seconds = 0.1;
        let outbox = Arc::new(Outbox::open(&cfg.data_dir).unwrap());
        let signer = TokenFile::read(cfg.token_file().unwrap()).unwrap().unlock(PIN).unwrap();
        SiteFixture {
            cfg,
            outbox,
            signer,
            dir,
        }
    }
}

impl SiteFixture {
    /// Writes a room of `pages` scan-like files and seals it.
    pub fn seal_room(&self, room: &str, pages: usize, page_bytes: usize, seed: u64) -> OutboxEntry {
        let room_dir = self.dir.join("scans").join(room);
        konvert_ops::rooms::write_room(&room_dir, seed, pages, page_bytes).unwrap();
        self.seal_dir(&room_dir, room, &self.signer)
    }

    /// Seals an existing folder as `room` with `signer`.
    pub fn seal_dir(&self, room_dir: &Path, room: &str, signer: &SigningKey) -> OutboxEntry {
        let packet = PacketRef {
            site: self.cfg.site.clone(),
            date: "2026-06-01".parse().unwrap(),
            exam: ExamKind::Ege,
            room: room.parse().unwrap(),
            kind: PacketKind::Blanks,
        };
        seal_room(
            &self.cfg,
            &self.outbox,
            signer,
            room_dir,
            packet,
            konvert_edge::cli::now_unix_ms(),
        )
        .unwrap()
        .entry
    }
}

/// Counts envelope files in the center's store.
pub fn stored_files(center_dir: &Path) -> usize {
    let store = center_dir.join("data/store");
    let Ok(dirs) = std::fs::read_dir(&store) else { return 0 };
    dirs.flatten()
        .filter_map(|d| std::fs::read_dir(d.path()).ok())
        .map(|f| f.flatten().count())
        .sum()
}
