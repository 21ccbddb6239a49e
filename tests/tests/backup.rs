//! Backups after each shift (R20): a backup taken while the center serves and packets
//! arrive restores into a new folder whose packets the loader unpacks to the very scans
//! sent; a tampered backup and an occupied target are refused. The day's new envelopes
//! reach the loader's own copy by drive, and a second export carries only the new ones.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::{Path, PathBuf};
use std::time::Duration;

use konvert_center::backup;
use konvert_center::config::CenterConfig;
use konvert_center::envelope_drive;
use konvert_center::unpack::{unpack, Filter, UnpackReport};
use konvert_crypto::keyfile;
use konvert_edge::{push, PushOptions};
use konvert_replication::{Inbox, OutboxEntry};
use konvert_tests::{on_time_day, CenterFixture, SiteFixture, LAST_ZONE};

fn opts() -> PushOptions {
    PushOptions {
        max_wait: Duration::from_secs(60),
        ..Default::default()
    }
}

/// A serving center with one site whose packets arrive on time.
async fn serving() -> (CenterFixture, CenterConfig, konvert_center::RunningCenter, SiteFixture) {
    let fx = CenterFixture::new("127.0.0.1:0".parse().unwrap());
    let token = fx.issue_token("0101");
    let day = on_time_day();
    let mut cfg = fx.register_days(&[(&token, "0101")], &[&day]);
    cfg.time_zone = konvert_exam::SiteZone::new(LAST_ZONE).unwrap();
    let center = konvert_center::serve(&cfg).await.unwrap();
    konvert_tests::wait_for_registry(&center, 1).await;
    let mut site = fx.enroll("0101", center.addr);
    site.seal_for(&day);
    (fx, cfg, center, site)
}

/// The same center with its data folder (and registry file) elsewhere: the loader's copy.
fn elsewhere(cfg: &CenterConfig, root: &Path, name: &str) -> CenterConfig {
    let mut other = cfg.clone();
    other.data_dir = root.join(name).join("data");
    other.records = root.join(name).join("records");
    other.registry = root.join(name).join("registry.bin");
    other
}

fn unpack_all(fx: &CenterFixture, cfg: &CenterConfig, out: &Path) -> UnpackReport {
    let keys = [fx.loader_key()];
    let registry = konvert_center::registry::held(cfg, konvert_edge::cli::now_unix_ms())
        .unwrap()
        .unwrap();
    let inbox = Inbox::open(&cfg.data_dir).unwrap();
    let report = unpack(&cfg.data_dir, &inbox, &keys, &registry, &Filter::default(), out).unwrap();
    assert!(report.failed.is_empty(), "{:?}", report.failed);
    report
}

/// The scans of `room` (as sealed) equal the unpacked files of `entry` under `out`.
fn same_scans(site: &SiteFixture, room: &str, entry: &OutboxEntry, out: &Path) {
    let dir = out
        .join("0101")
        .join(&entry.offer.packet_id)
        .join(format!("v{}", entry.offer.version))
        .join("files");
    let sent = site.dir.join("scans").join(room);
    let mut names: Vec<PathBuf> = std::fs::read_dir(&sent).unwrap().map(|e| e.unwrap().path()).collect();
    names.sort();
    assert!(!names.is_empty());
    for path in names {
        let name = path.file_name().unwrap();
        assert_eq!(
            std::fs::read(dir.join(name)).unwrap(),
            std::fs::read(&path).unwrap(),
            "{}",
            path.display()
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_backup_taken_while_packets_arrive_restores_and_unpacks_to_the_scans_sent() {
    let (fx, cfg, center, site) = serving().await;
    let rooms: Vec<(String, OutboxEntry)> = (1..=2)
        .map(|i| {
            let room = format!("000{i}");
            let e = site.seal_room(&room, 3, 6_000, i);
            (room, e)
        })
        .collect();
    assert_eq!(push(&site.cfg, site.outbox.clone(), opts()).await.unwrap().delivered, 2);
    // More packets arrive while the backup is taken.
    let later: Vec<(String, OutboxEntry)> = (3..=5)
        .map(|i| {
            let room = format!("000{i}");
            let e = site.seal_room(&room, 3, 6_000, i);
            (room, e)
        })
        .collect();
    // A desk kept as a sled database in the data folder (the loader's records) goes along.
    {
        let records = konvert_replication::open_sled(&cfg.data_dir.join("records")).unwrap();
        records.insert(b"page-1", b"registered".as_slice()).unwrap();
        records.flush().unwrap();
    }
    let to = fx.root.path().join("backup-shift-1");
    let (pushed, taken) = tokio::join!(push(&site.cfg, site.outbox.clone(), opts()), {
        let (cfg, to) = (cfg.clone(), to.clone());
        tokio::task::spawn_blocking(move || backup::take(&cfg, &to))
    });
    assert_eq!(pushed.unwrap().delivered, 3);
    let summary = taken.unwrap().unwrap();
    assert!(summary.while_serving, "the serving center was asked");
    let m = &summary.manifest;
    assert!((2..=5).contains(&m.packets), "{}", m.packets);
    assert!(m.audit_anchor.is_some());
    assert!(
        m.files.iter().any(|f| f.path.starts_with("data/inbox.sled/")),
        "{:?}",
        m.files
    );
    assert!(
        m.files.iter().any(|f| f.path.starts_with("data/registry/")),
        "the registry store is a desk too"
    );
    // The center went on serving and its audit log still opens after the backup.
    assert_eq!(center.inbox.len(), 5);

    // The same folder again: not empty, refused by name, nothing changed in it.
    let again = {
        let (cfg, to) = (cfg.clone(), to.clone());
        tokio::task::spawn_blocking(move || backup::take(&cfg, &to))
            .await
            .unwrap()
    };
    let err = again.unwrap_err().to_string();
    assert!(
        err.contains("not empty") && err.contains(&to.display().to_string()),
        "{err}"
    );

    // Never into the data folder itself.
    let inside = cfg.data_dir.join("backup");
    let err = {
        let (cfg, inside) = (cfg.clone(), inside.clone());
        tokio::task::spawn_blocking(move || backup::take(&cfg, &inside))
            .await
            .unwrap()
    };
    assert!(err.unwrap_err().to_string().contains("inside the data folder"));
    assert!(!inside.exists());

    // Never into the folder a center serves.
    let err = backup::restore(&cfg, &to, true).unwrap_err().to_string();
    assert!(err.contains("serving"), "{err}");

    // Into a new folder: every packet in the backup unpacks to the scans that were sent.
    let restored = elsewhere(&cfg, fx.root.path(), "restored");
    let r = backup::restore(&restored, &to, false).unwrap();
    assert_eq!(r.manifest.packets, m.packets);
    assert!(r.restored_beside.contains(&restored.registry), "{r:?}");
    let out = fx.root.path().join("unpacked");
    let report = unpack_all(&fx, &restored, &out);
    assert_eq!(report.unpacked.len() as u64, m.packets);
    for (room, entry) in rooms.iter().chain(&later) {
        if Inbox::open(&restored.data_dir)
            .unwrap()
            .lookup(&entry.offer.packet_id, 1)
            .unwrap()
            .is_some()
        {
            same_scans(&site, room, entry, &out);
        }
    }
    for (room, entry) in &rooms {
        same_scans(&site, room, entry, &out);
    }
    // … and processes: every restored packet version is registered.
    {
        let now = konvert_edge::cli::now_unix_ms();
        let place = konvert_center::processing::Workplace {
            data_dir: restored.data_dir.clone(),
            // Where the loader's commands keep them: center.toml's `records`.
            records_dir: restored.records.clone(),
            records_url: None,
            checkpoint_key: None,
        };
        let records = konvert_records::SledRecords::open(&place.records_dir.join("records.sled")).unwrap();
        let registry = konvert_center::registry::held(&restored, now).unwrap().unwrap();
        let inbox = Inbox::open(&restored.data_dir).unwrap();
        let done =
            konvert_center::processing::process(&place, &inbox, &records, &[fx.loader_key()], &registry, "SP", now)
                .unwrap();
        assert!(done.failed.is_empty(), "{:?}", done.failed);
        assert_eq!(done.registered.len() as u64, m.packets);
        // No plan of the day is imported on this loader: registered, but nothing is checked
        // or answered until it is, and the run says so.
        use konvert_records::Records;
        assert!(records.answers().unwrap().is_empty());
        assert_eq!(done.without_plan.len(), 1, "{:?}", done.without_plan);
        let registered = records.packets().unwrap();
        drop((records, inbox));
        // The loader's workstation holds only the receipt public key: its backup needs a
        // key of its own, and says how to make one before writing anything.
        let receipt = keyfile::read_signing_key(&cfg.receipt_key).unwrap().verifying_key();
        let loader_dir = fx.root.path().join("loader-config");
        std::fs::create_dir_all(&loader_dir).unwrap();
        std::fs::write(loader_dir.join("receipt.pub"), format!("{receipt}\n")).unwrap();
        let mut loader = restored.clone();
        loader.receipt_key = loader_dir.join("receipt.pub");
        let loader_toml = loader_dir.join("center.toml");
        loader.save(&loader_toml).unwrap();
        let loader_backup = fx.root.path().join("loader-backup");
        let err = backup::take(&loader, &loader_backup).unwrap_err().to_string();
        assert!(
            err.contains("loader workstation-key") && err.contains("nothing was written"),
            "{err}"
        );
        assert!(
            !loader_backup.exists(),
            "a backup that cannot be signed makes no folder"
        );
        // `loader workstation-key` writes the key (0600) and names it in center.toml.
        let made = konvert_center::workstation_key::make(&loader_toml, None).unwrap();
        assert_eq!(made.path, loader_dir.join("keys/workstation.key"));
        use std::os::unix::fs::PermissionsExt;
        assert_eq!(
            std::fs::metadata(&made.path).unwrap().permissions().mode() & 0o777,
            0o600
        );
        let loader = CenterConfig::load(&loader_toml).unwrap();
        assert_eq!(loader.workstation_key.as_deref(), Some(made.path.as_path()));
        let err = konvert_center::workstation_key::make(&loader_toml, None)
            .unwrap_err()
            .to_string();
        assert!(err.contains("already names a workstation key"), "{err}");
        // A center.toml saved with a byte-order mark gets the key named after it, readable.
        let bom_dir = fx.root.path().join("loader-bom");
        std::fs::create_dir_all(&bom_dir).unwrap();
        let mut bom = loader.clone();
        bom.workstation_key = None;
        bom.save(&bom_dir.join("center.toml")).unwrap();
        let text = std::fs::read_to_string(bom_dir.join("center.toml")).unwrap();
        std::fs::write(bom_dir.join("center.toml"), format!("\u{feff}{text}")).unwrap();
        konvert_center::workstation_key::make(&bom_dir.join("center.toml"), None).unwrap();
        assert!(CenterConfig::load(&bom_dir.join("center.toml"))
            .unwrap()
            .workstation_key
            .is_some());
        // A damaged receipt key is an error, never taken for a workstation's public key.
        let damaged_dir = fx.root.path().join("loader-damaged");
        std::fs::create_dir_all(&damaged_dir).unwrap();
        std::fs::write(damaged_dir.join("receipt.key"), b"KONVERT-SIGNING-KEY\n00").unwrap();
        let mut damaged = loader.clone();
        damaged.workstation_key = None;
        damaged.receipt_key = damaged_dir.join("receipt.key");
        damaged.save(&damaged_dir.join("center.toml")).unwrap();
        let err = konvert_center::workstation_key::make(&damaged_dir.join("center.toml"), None)
            .unwrap_err()
            .to_string();
        assert!(err.contains("receipt.key") && !err.contains("already"), "{err}");
        assert!(!damaged_dir.join("keys/workstation.key").exists());
        let err = backup::take(&damaged, &fx.root.path().join("backup-damaged"))
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("receipt.key") && !err.contains("loader's workstation"),
            "{err}"
        );
        // The receiver's own config refuses: it signs with its receipt key.
        let receiver_toml = fx.root.path().join("receiver.toml");
        cfg.save(&receiver_toml).unwrap();
        let err = konvert_center::workstation_key::make(&receiver_toml, None)
            .unwrap_err()
            .to_string();
        assert!(err.contains("holds the receipt key"), "{err}");

        // The loader's own backup holds its records and audit log, and brings them back.
        let m = backup::take(&loader, &loader_backup).unwrap().manifest;
        assert_eq!(m.workstation_key, Some(made.public.to_string()));
        assert_eq!(m.receipt_key, receipt.to_string());
        assert!(loader_backup.join("config/records/records.sled").is_dir());
        assert!(loader_backup.join("config/records/loader-audit.log").is_file());
        let mut again = elsewhere(&loader, fx.root.path(), "loader-again");
        // Without the workstation key named, the backup cannot be checked: refused.
        again.workstation_key = None;
        let err = backup::restore(&again, &loader_backup, false).unwrap_err().to_string();
        assert!(
            err.contains("workstation key") && err.contains("workstation_key"),
            "{err}"
        );
        assert!(!again.data_dir.exists());
        again.workstation_key = loader.workstation_key.clone();
        backup::restore(&again, &loader_backup, false).unwrap();
        let back =
            konvert_records::SledRecords::open(&again.data_dir.parent().unwrap().join("records/records.sled")).unwrap();
        assert_eq!(back.packets().unwrap(), registered);
        // Its audit log verifies with the receipt key's checkpoints and the workstation's.
        let log = std::fs::read(again.data_dir.join("audit.log")).unwrap();
        let head = konvert_crypto::audit::read_head(&again.data_dir.join("audit.log.head")).unwrap();
        let report = konvert_crypto::audit::verify(&log, head.as_ref(), &[receipt, made.public]);
        assert!(report.is_intact(), "{:?}", report.finding);
        // Another workstation's key does not pass for this one's.
        let stranger = fx.root.path().join("stranger.toml");
        let mut other = again.clone();
        other.workstation_key = None;
        other.save(&stranger).unwrap();
        konvert_center::workstation_key::make(&stranger, None).unwrap();
        let other = CenterConfig::load(&stranger).unwrap();
        let fresh = elsewhere(&other, fx.root.path(), "loader-stranger");
        let err = backup::restore(&fresh, &loader_backup, false).unwrap_err().to_string();
        assert!(
            err.contains("does not verify against this center's workstation key"),
            "{err}"
        );
    }
    let records = konvert_replication::open_sled(&restored.data_dir.join("records")).unwrap();
    assert_eq!(records.get(b"page-1").unwrap().unwrap().as_ref(), b"registered");
    drop(records);
    // The restored center serves again, holding what the backup held.
    let back = konvert_center::serve(&restored).await.unwrap();
    assert_eq!(back.inbox.len() as u64, m.packets);
    back.shutdown().await;
    // The restored audit log verifies and says it was restored.
    let log = std::fs::read(restored.data_dir.join("audit.log")).unwrap();
    // (Checkpoints by the receipt key, and by the workstation key of the loader that used
    // this folder above.)
    let key = keyfile::read_signing_key(&cfg.receipt_key).unwrap().verifying_key();
    let workstation = keyfile::read_signing_key(&fx.root.path().join("loader-config/keys/workstation.key"))
        .unwrap()
        .verifying_key();
    let head = konvert_crypto::audit::read_head(&restored.data_dir.join("audit.log.head")).unwrap();
    let report = konvert_crypto::audit::verify(&log, head.as_ref(), &[key, workstation]);
    assert!(report.is_intact(), "{:?}", report.finding);
    assert!(String::from_utf8_lossy(&log).contains("backup.restore"));

    // Over a data folder that holds something: refused unless asked, then moved aside.
    let err = backup::restore(&restored, &to, false).unwrap_err().to_string();
    assert!(err.contains("not empty") && err.contains("--replace"), "{err}");
    let replaced = backup::restore(&restored, &to, true).unwrap();
    let aside = replaced.moved_aside.unwrap();
    assert!(aside.join("audit.log").is_file(), "the replaced folder is kept");

    // A backup changed after it was taken is refused before anything is written.
    let tampered = fx.root.path().join("backup-tampered");
    copy_tree(&to, &tampered);
    let envelope = m.files.iter().find(|f| f.path.starts_with("data/store/")).unwrap();
    let path = tampered.join(&envelope.path);
    let mut bytes = std::fs::read(&path).unwrap();
    bytes[100] ^= 1;
    std::fs::write(&path, bytes).unwrap();
    let fresh = elsewhere(&cfg, fx.root.path(), "fresh");
    let err = backup::restore(&fresh, &tampered, false).unwrap_err().to_string();
    assert!(err.contains("SHA-256") && err.contains(&envelope.path), "{err}");
    assert!(!fresh.data_dir.exists(), "nothing restored from a tampered backup");
    // A manifest edited to match is caught by its signature.
    let manifest = tampered.join(backup::MANIFEST);
    let text = std::fs::read_to_string(&manifest).unwrap();
    std::fs::write(&manifest, text.replace(&envelope.sha256, &"0".repeat(64))).unwrap();
    let err = backup::restore(&fresh, &tampered, false).unwrap_err().to_string();
    assert!(err.contains("signature does not verify"), "{err}");
    assert!(!fresh.data_dir.exists());
    center.shutdown().await;
}

fn copy_tree(from: &Path, to: &Path) {
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_days_envelopes_reach_the_loaders_copy_by_drive_and_a_second_export_carries_only_new_ones() {
    let (fx, cfg, center, site) = serving().await;
    // The loader's copy starts from a backup of the receiver (its registry trust and desks).
    let setup = fx.root.path().join("backup-setup");
    {
        let (cfg, setup) = (cfg.clone(), setup.clone());
        tokio::task::spawn_blocking(move || backup::take(&cfg, &setup).unwrap())
            .await
            .unwrap();
    }
    let loader = elsewhere(&cfg, fx.root.path(), "loader");
    backup::restore(&loader, &setup, false).unwrap();
    assert_eq!(Inbox::open(&loader.data_dir).unwrap().len(), 0);

    let first = [
        site.seal_room("0001", 3, 5_000, 11),
        site.seal_room("0002", 2, 5_000, 12),
    ];
    assert_eq!(push(&site.cfg, site.outbox.clone(), opts()).await.unwrap().delivered, 2);
    let drive = fx.root.path().join("drive");
    std::fs::create_dir_all(&drive).unwrap();
    let export = |cfg: &CenterConfig| {
        let (cfg, drive) = (cfg.clone(), drive.clone());
        tokio::task::spawn_blocking(move || envelope_drive::export(&cfg, &drive, false))
    };
    let written = export(&cfg).await.unwrap().unwrap();
    assert_eq!(written.packets.len(), 2, "{written:?}");
    assert!(written.registry);

    // A second export before the loader imported the first is refused, the drive kept.
    let err = export(&cfg).await.unwrap().unwrap_err().to_string();
    assert!(err.contains("not imported"), "{err}");
    // … unless everything is written over it (--all): nothing is lost that way.
    let (c, d) = (cfg.clone(), drive.clone());
    let all = tokio::task::spawn_blocking(move || envelope_drive::export(&c, &d, true))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(all.packets.len(), 2, "{all:?}");

    let taken = envelope_drive::import(&loader, &drive).unwrap();
    assert_eq!((taken.taken.len(), taken.already), (2, 0), "{taken:?}");
    assert!(taken.refused.is_empty(), "{:?}", taken.refused);
    let out = fx.root.path().join("unpacked");
    assert_eq!(unpack_all(&fx, &loader, &out).unpacked.len(), 2);
    same_scans(&site, "0001", &first[0], &out);
    same_scans(&site, "0002", &first[1], &out);

    // The next batch: only the new envelope goes on the drive.
    let second = site.seal_room("0003", 2, 5_000, 13);
    assert_eq!(push(&site.cfg, site.outbox.clone(), opts()).await.unwrap().delivered, 1);
    let written = export(&cfg).await.unwrap().unwrap();
    assert_eq!(
        written.packets,
        vec![(second.offer.packet_id.clone(), second.offer.version)],
        "only what is new"
    );
    let envelopes = std::fs::read_dir(drive.join(envelope_drive::FOLDER))
        .unwrap()
        .filter(|e| e.as_ref().unwrap().file_name().to_string_lossy().ends_with(".env"))
        .count();
    assert_eq!(envelopes, 1);
    // An envelope changed on the drive is refused, and the rest of the store is untouched.
    let name = format!("{}.env", hex::encode(second.offer.digest));
    let on_drive = drive.join(envelope_drive::FOLDER).join(&name);
    let mut bytes = std::fs::read(&on_drive).unwrap();
    let good = bytes.clone();
    bytes[200] ^= 1;
    std::fs::write(&on_drive, &bytes).unwrap();
    let bad = envelope_drive::import(&loader, &drive).unwrap();
    assert_eq!((bad.taken.len(), bad.refused.len()), (0, 1), "{bad:?}");
    assert!(bad.refused[0].1.contains("SHA-256"), "{:?}", bad.refused);
    std::fs::write(&on_drive, &good).unwrap();
    let taken = envelope_drive::import(&loader, &drive).unwrap();
    assert_eq!(taken.taken.len(), 1, "{taken:?}");
    let report = unpack_all(&fx, &loader, &out);
    assert_eq!((report.unpacked.len(), report.already), (1, 2));
    same_scans(&site, "0003", &second, &out);

    // A drive whose index was edited is refused as a whole.
    let index = drive.join(envelope_drive::FOLDER).join("index.json");
    let text = std::fs::read_to_string(&index).unwrap();
    std::fs::write(&index, text.replace("\"format\": 1", "\"format\": 1 ")).unwrap();
    let err = envelope_drive::import(&loader, &drive).unwrap_err().to_string();
    assert!(err.contains("signature does not verify"), "{err}");
    center.shutdown().await;
}

/// The commands as the staff run them, beside a center serving in another process (which
/// holds the inbox's lock): the backup goes through its control socket, the restore into
/// a second center.toml checks every file, an occupied target is refused by name.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_backup_command_copies_a_center_serving_in_another_process() {
    let addr = konvert_tests::free_udp_addr();
    let fx = CenterFixture::new(addr);
    let token = fx.issue_token("0101");
    let cfg = fx.register(&[(&token, "0101")]);
    let site = fx.enroll("0101", addr);
    site.seal_room("0001", 2, 5_000, 21);
    site.seal_room("0002", 2, 5_000, 22);
    let mut center = konvert_tests::start_listening(env!("CARGO_BIN_EXE_konvert-test-center"), &fx.init.config_path);
    assert_eq!(push(&site.cfg, site.outbox.clone(), opts()).await.unwrap().delivered, 2);

    let exe = env!("CARGO_BIN_EXE_readme-konvert-center");
    let run = |args: &[&std::ffi::OsStr]| {
        let out = std::process::Command::new(exe).args(args).output().unwrap();
        (
            out.status.success(),
            String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr),
        )
    };
    let config = fx.init.config_path.as_os_str();
    let to = fx.root.path().join("shift-1");
    let (ok, text) = run(&[
        "backup".as_ref(),
        "--config".as_ref(),
        config,
        "--to".as_ref(),
        to.as_os_str(),
    ]);
    assert!(ok, "{text}");
    assert!(
        text.contains("while it served") && text.contains("2 packet version(s)"),
        "{text}"
    );
    let (ok, text) = run(&[
        "backup".as_ref(),
        "--config".as_ref(),
        config,
        "--to".as_ref(),
        to.as_os_str(),
    ]);
    assert!(
        !ok && text.contains("is not empty") && text.contains(&to.display().to_string()),
        "{text}"
    );
    // Restore refuses the serving center's own folder.
    let (ok, text) = run(&[
        "restore".as_ref(),
        "--config".as_ref(),
        config,
        "--from".as_ref(),
        to.as_os_str(),
        "--replace".as_ref(),
    ]);
    assert!(!ok && text.contains("serving"), "{text}");
    center.kill().unwrap();
    center.wait().unwrap();

    let other = elsewhere(&cfg, fx.root.path(), "standby");
    let other_toml = fx.center_dir().join("standby.toml");
    other.save(&other_toml).unwrap();
    let (ok, text) = run(&[
        "restore".as_ref(),
        "--config".as_ref(),
        other_toml.as_os_str(),
        "--from".as_ref(),
        to.as_os_str(),
    ]);
    assert!(ok, "{text}");
    assert!(
        text.contains("2 packet version(s)") && text.contains("every one checked"),
        "{text}"
    );
    assert_eq!(Inbox::open(&other.data_dir).unwrap().len(), 2);
}

/// Every file under `dir` that holds `needle`.
fn files_holding(dir: &Path, needle: &[u8]) -> Vec<PathBuf> {
    let mut found = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            found.extend(files_holding(&path, needle));
        } else if std::fs::read(&path).unwrap().windows(needle.len()).any(|w| w == needle) {
            found.push(path);
        }
    }
    found
}

#[test]
fn records_on_postgres_go_into_the_backup_as_one_dump_and_come_back_into_an_empty_database() {
    use konvert_crypto::SigningKey;
    use konvert_mirror::{Endpoint, Node, RecordKind, SenderLimits};
    use konvert_records::test_cluster::TestCluster;
    use konvert_records::{DecisionKind, PageKey, PgMirror, PgRecords, Records, Role, Verdict};
    use std::sync::Arc;

    let Some(cluster) = TestCluster::shared() else { return };
    let fx = CenterFixture::new("127.0.0.1:0".parse().unwrap());
    // The test cluster trusts every login, so a password in the URL is ignored by the
    // server: it is there to show it is written nowhere.
    const PASSWORD: &str = "pw-never-written-7Q";
    let with_password = |db: &str| {
        cluster.database(db);
        cluster.url(db).replace("konvert@", &format!("konvert:{PASSWORD}@"))
    };
    let mut cfg = fx.init.config.clone();
    cfg.records_url = Some(with_password("backup_pg_source"));

    // The region's records: decisions, and mirror rows written with them.
    let records = Arc::new(PgRecords::connect(cfg.records_url.as_deref().unwrap()).unwrap());
    for n in 0..3u8 {
        let page = PageKey {
            envelope: [n; 32],
            file: 0,
            page: u32::from(n),
        };
        let verdict = Verdict::Unreadable;
        records
            .decide(
                "verifier-1",
                Role::Verifier,
                1_000 + u64::from(n),
                DecisionKind::Verify { page, verdict },
            )
            .unwrap();
    }
    let mirror = PgMirror::open(records.clone(), Node::Region(1)).unwrap();
    let federal = SigningKey::generate().unwrap().verifying_key();
    let mut ep = Endpoint::new(
        Node::Region(1),
        &SigningKey::generate().unwrap(),
        [(Node::Federal, federal)].into(),
        1,
        1..=1,
        SenderLimits::default(),
    )
    .unwrap();
    let rows = vec![b"result 1".to_vec(), b"result 2".to_vec()];
    mirror
        .push_many(&mut ep, Node::Federal, RecordKind::ProcessingResults, rows, |_| Ok(()))
        .unwrap();
    let cut = ep.cut().unwrap();
    mirror.store_cut(&cut).unwrap();

    let to = fx.root.path().join("backup-with-postgres");
    let summary = backup::take(&cfg, &to).unwrap();
    let m = &summary.manifest;
    let dump = m.records_dump.as_ref().expect("the records' dump is in the manifest");
    assert!(dump.source.contains("/backup_pg_source"), "{dump:?}");
    let bytes = std::fs::read(to.join(backup::RECORDS_DUMP)).unwrap();
    assert!(bytes.starts_with(b"PGDMP"), "pg_dump's custom format");
    let listed = m.files.iter().find(|f| f.path == backup::RECORDS_DUMP).unwrap();
    assert_eq!(
        listed.sha256,
        hex::encode(ring::digest::digest(&ring::digest::SHA256, &bytes))
    );
    assert_eq!(files_holding(&to, PASSWORD.as_bytes()), Vec::<PathBuf>::new());

    // A restoring center.toml without records_url, or naming a database that holds
    // anything, is refused before anything is changed.
    let mut restored = elsewhere(&cfg, fx.root.path(), "restored-pg");
    restored.records_url = None;
    let err = backup::restore(&restored, &to, false).unwrap_err().to_string();
    assert!(
        err.contains("records_url") && err.contains("nothing was changed"),
        "{err}"
    );
    let busy = with_password("backup_pg_busy");
    postgres::Client::connect(&busy, postgres::NoTls)
        .unwrap()
        .batch_execute("CREATE TABLE someone_elses (x int); INSERT INTO someone_elses VALUES (1)")
        .unwrap();
    restored.records_url = Some(busy.clone());
    let err = backup::restore(&restored, &to, false).unwrap_err().to_string();
    assert!(
        err.contains("not empty") && err.contains("/backup_pg_busy") && err.contains("public.someone_elses"),
        "{err}"
    );
    assert!(!err.contains(PASSWORD), "{err}");
    assert!(!restored.data_dir.exists(), "the data folder was not made");
    let kept: i64 = postgres::Client::connect(&busy, postgres::NoTls)
        .unwrap()
        .query_one("SELECT count(*) FROM someone_elses", &[])
        .unwrap()
        .get(0);
    assert_eq!(kept, 1);

    // Into an empty database: the records come back equal.
    restored.records_url = Some(with_password("backup_pg_restored"));
    let s = backup::restore(&restored, &to, false).unwrap();
    let into = s.records_restored_into.expect("the records were restored");
    assert!(
        into.contains("/backup_pg_restored") && !into.contains(PASSWORD),
        "{into}"
    );
    let back = Arc::new(PgRecords::connect(restored.records_url.as_deref().unwrap()).unwrap());
    assert_eq!(back.decisions().unwrap(), records.decisions().unwrap());
    assert_eq!(back.decisions().unwrap().len(), 3);
    let back_mirror = PgMirror::open(back, Node::Region(1)).unwrap();
    assert_eq!(back_mirror.load().unwrap(), mirror.load().unwrap());
    assert_eq!(back_mirror.status().unwrap(), mirror.status().unwrap());
}
