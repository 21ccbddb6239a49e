//! Shared fixtures for konvert's end-to-end tests: a center (in-process or as a child
//! process that can be killed) and enrolled sites with member tokens, all in a temp dir.

// Test fixtures: a failed setup step is a failed test, so unwrap is the clearest report.
#![allow(clippy::unwrap_used, clippy::expect_used)]

pub mod faults;
pub mod lazyfs;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use konvert_center::config::CenterConfig;
use konvert_center::provision::{self, CenterFacts, CenterInit};
use konvert_crypto::registry::RegistryStore;
use konvert_crypto::token::TokenFile;
use konvert_crypto::SigningKey;
use konvert_crypto::VerifyingKey;
use konvert_devtools::quick_authority::QuickAuthority;
use konvert_edge::cli::now_unix_ms;
use konvert_edge::{seal_room, SiteConfig};
use konvert_exam::{ExamKind, PacketKind, PacketRef};
use konvert_replication::driver::{self, Outcome};
use konvert_replication::{pki, tls, Outbox, OutboxEntry};

/// The exam day every fixture packet is for (and its tokens are bound to).
pub const EXAM_DAY: &str = "2026-06-01";

/// The zone where an exam day ends last (UTC−12). [`EXAM_DAY`] is long past, so its
/// packets arrive late (held back from the loader); a test whose packets must arrive on
/// time puts the center's sites in this zone and seals for [`on_time_day`].
pub const LAST_ZONE: &str = "Etc/GMT+12";

/// Today where the exam day ends last ([`LAST_ZONE`]): packets for it arrive on time for
/// at least the next 2 minutes (it waits past a day's last 2 minutes).
pub fn on_time_day() -> String {
    let zone = konvert_exam::SiteZone::new(LAST_ZONE).unwrap();
    let now = || now_unix_ms() as i64;
    let mut day = zone.local_date(now()).unwrap();
    if zone.deadline_unix_ms(day).unwrap() - now() < 120_000 {
        std::thread::sleep(std::time::Duration::from_secs(180));
        day = zone.local_date(now()).unwrap();
    }
    day.to_string()
}

/// The PIN of every test token.
pub const PIN: &str = "271828";

/// A center's files and keys in a temp dir.
pub struct CenterFixture {
    /// The temp dir holding everything.
    pub root: tempfile::TempDir,
    /// What `init_center` made.
    pub init: CenterInit,
    /// The center's decryption key, as the loader holds it after a specialist's login:
    /// in memory only (the receiver took its public half).
    pub recipient: konvert_crypto::RecipientSecretKey,
    /// The security officer (one, threshold 1) and the registry draft.
    pub officers: std::sync::Mutex<QuickAuthority>,
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
    /// The exam day its rooms are sealed for ([`EXAM_DAY`] unless [`SiteFixture::seal_for`]).
    pub day: String,
}

impl CenterFixture {
    /// A new center listening on `listen` (use port 0 for in-process centers).
    pub fn new(listen: SocketAddr) -> Self {
        let root = tempfile::tempdir().unwrap();
        let (init, recipient) = provision::init_center_with_key(
            &root.path().join("center"),
            "center.konvert",
            listen,
            Some("127.0.0.1:0".parse().unwrap()),
        )
        .unwrap();
        let officers = QuickAuthority::new(&init.config, recipient.public_key(), now_unix_ms()).unwrap();
        CenterFixture {
            root,
            init,
            recipient,
            officers: std::sync::Mutex::new(officers),
        }
    }

    /// A copy of the center's decryption key, as a specialist's login gives the loader.
    pub fn loader_key(&self) -> konvert_crypto::RecipientSecretKey {
        konvert_crypto::RecipientSecretKey::from_bytes(&self.recipient.to_bytes())
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
            konvert_crypto::token::KdfParams::insecure_fast_for_tests(),
        )
        .unwrap()
    }

    /// Issues each token (Loaded → … → Issued, bound to its site and [`EXAM_DAY`]) and
    /// publishes the next registry version where the center takes it; returns the config.
    pub fn register(&self, members: &[(&TokenFile, &str)]) -> CenterConfig {
        self.register_days(members, &[EXAM_DAY])
    }

    /// Like [`CenterFixture::register`], bound to `days`.
    pub fn register_days(&self, members: &[(&TokenFile, &str)], days: &[&str]) -> CenterConfig {
        let mut officers = self.officers.lock().unwrap();
        for (t, site) in members {
            officers.issue(t, site, days, now_unix_ms()).unwrap();
        }
        officers.publish(now_unix_ms()).unwrap();
        CenterConfig::load(&self.init.config_path).unwrap()
    }

    /// Changes the registry draft and publishes the next version; returns it.
    pub fn publish(&self, edit: impl FnOnce(&mut konvert_crypto::registry::RegistryBody)) -> u64 {
        let mut officers = self.officers.lock().unwrap();
        edit(officers.draft_mut());
        let signed = officers.publish(now_unix_ms()).unwrap();
        signed.decode_body().unwrap().version
    }

    /// Enrolls the station of `site` for a center at `addr`.
    pub fn enroll(&self, site: &str, addr: SocketAddr) -> SiteFixture {
        let dir = self.root.path().join("sites").join(site);
        // The center key's public half the receiver took last (`set-center-key`).
        let facts = CenterFacts::read(&self.center_dir(), &addr.to_string(), "center.konvert").unwrap();
        let toml = provision::enroll_station(&self.center_dir(), site, &facts, &dir).unwrap();
        let mut cfg = SiteConfig::load(&toml).unwrap();
        let authority = self.officers.lock().unwrap().authority();
        RegistryStore::open(&cfg.data_dir).unwrap().anchor(authority).unwrap();
        cfg.push.retry_seconds = 0.1;
        let outbox = Arc::new(Outbox::open(&cfg.data_dir).unwrap());
        let signer = TokenFile::read(cfg.token_file().unwrap()).unwrap().unlock(PIN).unwrap();
        SiteFixture {
            cfg,
            outbox,
            signer,
            dir,
            day: EXAM_DAY.to_owned(),
        }
    }
}

impl SiteFixture {
    /// Writes a room of `pages` scan-like files and seals it.
    pub fn seal_room(&self, room: &str, pages: usize, page_bytes: usize, seed: u64) -> OutboxEntry {
        let room_dir = self.dir.join("scans").join(room);
        konvert_devtools::rooms::write_room(&room_dir, seed, pages, page_bytes).unwrap();
        self.seal_dir(&room_dir, room, &self.signer)
    }

    /// Seals an existing folder as `room` with `signer`.
    pub fn seal_dir(&self, room_dir: &Path, room: &str, signer: &SigningKey) -> OutboxEntry {
        self.seal_as(room_dir, room, signer, &self.day, konvert_edge::cli::now_unix_ms())
    }

    /// Seals this site's rooms for `day` from now on, sent as soon as sealed (not held for
    /// the regulations' transfer windows of that day).
    pub fn seal_for(&mut self, day: &str) {
        self.day = day.to_owned();
        self.cfg.push.windows = false;
    }

    /// Seals an existing folder as `room` of exam day `date`, with `signer`, claiming
    /// to be sealed at `sealed_at_unix_ms`.
    pub fn seal_as(
        &self,
        room_dir: &Path,
        room: &str,
        signer: &SigningKey,
        date: &str,
        sealed_at_unix_ms: u64,
    ) -> OutboxEntry {
        let packet = PacketRef {
            site: self.cfg.site.clone(),
            date: date.parse().unwrap(),
            exam: ExamKind::Ege,
            room: room.parse().unwrap(),
            kind: PacketKind::Blanks,
        };
        seal_room(&self.cfg, &self.outbox, signer, room_dir, packet, sealed_at_unix_ms)
            .unwrap()
            .entry
    }

    /// Writes a small room under `scans/<room>` and seals it as [`SiteFixture::seal_as`].
    pub fn seal_small(&self, room: &str, signer: &SigningKey, date: &str, sealed_at_unix_ms: u64) -> OutboxEntry {
        let room_dir = self.dir.join("scans").join(room);
        konvert_devtools::rooms::write_room(&room_dir, 7, 2, 5_000).unwrap();
        self.seal_as(&room_dir, room, signer, date, sealed_at_unix_ms)
    }

    /// Offers one sealed envelope on a connection of its own and returns the outcome.
    pub async fn send(&self, addr: SocketAddr, receipt_key: VerifyingKey, entry: &OutboxEntry) -> Outcome {
        let conn = self.connect(addr).await;
        let path = self.outbox.envelope_path(entry);
        let outcome = driver::send_packet(&conn, entry.offer.clone(), receipt_key, &path, &|_| {})
            .await
            .unwrap();
        conn.close(0u32.into(), b"done");
        outcome
    }

    /// A connection from this site's station to the center at `addr`.
    pub async fn connect(&self, addr: SocketAddr) -> quinn::Connection {
        let read = |p: &Path| std::fs::read_to_string(p).unwrap();
        let station = pki::IssuedCert {
            cert_pem: read(&self.cfg.center.station_cert),
            key_pem: read(&self.cfg.center.station_key).into(),
        };
        let endpoint =
            tls::client_endpoint(tls::client_config(&read(&self.cfg.center.ca_cert), &station).unwrap()).unwrap();
        driver::connect(&endpoint, addr, "center.konvert", self.cfg.site.as_str())
            .await
            .unwrap()
    }

    /// The registry version this station holds (0: none).
    pub fn registry_version(&self) -> u64 {
        RegistryStore::open(&self.cfg.data_dir)
            .unwrap()
            .trust()
            .unwrap()
            .map_or(0, |t| t.version)
    }
}

/// Waits (up to 10 s) until the center enforces registry `version`.
pub async fn wait_for_registry(center: &konvert_center::service::RunningCenter, version: u64) {
    for _ in 0..200 {
        let now = konvert_edge::cli::now_unix_ms();
        if center
            .registry
            .in_force(now)
            .is_some_and(|r| r.body().version >= version)
        {
            return;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    panic!("the center did not take registry v{version} within 10 s");
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

/// One enrolled relay (its folder and config; start it with [`RelayFixture::start`]).
pub struct RelayFixture {
    /// Its config (paths absolute), tuned for fast tests.
    pub cfg: konvert_edge::relay::RelayConfig,
    /// Its folder.
    pub dir: PathBuf,
}

impl CenterFixture {
    /// Enrolls relay `relay` to carry `carries`, listening on `listen`, forwarding to
    /// `upstream` — the center, or the relay `upstream_relay` there.
    pub fn enroll_relay(
        &self,
        relay: &str,
        carries: &[&str],
        downstream_relays: &[&str],
        listen: SocketAddr,
        upstream: SocketAddr,
        upstream_relay: Option<&str>,
    ) -> RelayFixture {
        let dir = self.root.path().join("relays").join(relay);
        let name = match upstream_relay {
            Some(up) => pki::relay_dns_name(up).unwrap(),
            None => "center.konvert".into(),
        };
        let facts = CenterFacts {
            address: upstream.to_string(),
            name,
            recipient_public: self.recipient.public_key(),
            receipt_public: self.init.receipt_public,
        };
        let enrollment = provision::RelayEnrollment {
            relay: relay.into(),
            carries: carries.iter().map(|s| s.to_string()).collect(),
            downstream_relays: downstream_relays.iter().map(|s| s.to_string()).collect(),
            listen,
        };
        let toml = provision::enroll_relay(&self.center_dir(), &enrollment, &facts, &dir).unwrap();
        let mut cfg = konvert_edge::relay::RelayConfig::load(&toml).unwrap();
        cfg.push.retry_seconds = 0.1;
        cfg.hold_wait_ms = 2_000;
        RelayFixture { cfg, dir }
    }
}

impl RelayFixture {
    /// Starts the relay in this process.
    pub async fn start(&self) -> konvert_edge::relay::RunningRelay {
        konvert_edge::relay::serve(&self.cfg).await.unwrap()
    }

    /// Writes the (tuned) config for a relay process and returns its path.
    pub fn write_config(&self) -> PathBuf {
        let path = self.dir.join("relay-test.toml");
        std::fs::write(&path, toml::to_string(&self.cfg).unwrap()).unwrap();
        path
    }

    /// A connection to the center (or next hop) at `addr` under this relay's own station
    /// certificate — what a relay's forwarder opens; tests use it to play a dishonest relay.
    pub async fn connect_upstream(&self, addr: SocketAddr, server_name: &str) -> quinn::Connection {
        connect_with(
            &self.cfg.upstream.ca_cert,
            &self.cfg.upstream.station_cert,
            &self.cfg.upstream.station_key,
            &self.cfg.relay,
            addr,
            server_name,
        )
        .await
    }
}

impl SiteFixture {
    /// Pushes this site's outbox in the background with `opts`.
    pub fn spawn_push(
        &self,
        opts: konvert_edge::PushOptions,
    ) -> tokio::task::JoinHandle<konvert_edge::Result<konvert_edge::PushReport>> {
        let (cfg, outbox) = (self.cfg.clone(), self.outbox.clone());
        tokio::spawn(async move { konvert_edge::push(&cfg, outbox, opts).await })
    }

    /// Points this site's station at the relay `relay` listening on `addr`.
    pub fn via_relay(&mut self, relay: &str, addr: SocketAddr) {
        self.cfg.center.address = addr.to_string();
        self.cfg.center.server_name = pki::relay_dns_name(relay).unwrap();
    }

    /// A connection from this site's station to whatever its config points at.
    pub async fn connect_configured(&self) -> quinn::Connection {
        connect_with(
            &self.cfg.center.ca_cert,
            &self.cfg.center.station_cert,
            &self.cfg.center.station_key,
            self.cfg.site.as_str(),
            self.cfg.center.address.parse().unwrap(),
            &self.cfg.center.server_name,
        )
        .await
    }
}

/// A connection with the station certificate in the given files, saying Hello as `station`.
pub async fn connect_with(
    ca: &Path,
    cert: &Path,
    key: &Path,
    station: &str,
    addr: SocketAddr,
    server_name: &str,
) -> quinn::Connection {
    let read = |p: &Path| std::fs::read_to_string(p).unwrap();
    let issued = pki::IssuedCert {
        cert_pem: read(cert),
        key_pem: read(key).into(),
    };
    let endpoint = tls::client_endpoint(tls::client_config(&read(ca), &issued).unwrap()).unwrap();
    driver::connect(&endpoint, addr, server_name, station).await.unwrap()
}

/// A free UDP port on loopback (for a node that must come back on the same address).
pub fn free_udp_addr() -> SocketAddr {
    let port = std::net::UdpSocket::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    format!("127.0.0.1:{port}").parse().unwrap()
}

/// Starts the test binary `exe` with `config` and waits for its first line, which must say
/// it is listening (the center and relay test binaries print that once they serve).
pub fn start_listening(exe: &str, config: &Path) -> std::process::Child {
    let mut child = std::process::Command::new(exe)
        .arg(config)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let mut line = String::new();
    std::io::BufRead::read_line(&mut std::io::BufReader::new(child.stdout.take().unwrap()), &mut line).unwrap();
    assert!(line.contains("listening"), "{line}");
    child
}
