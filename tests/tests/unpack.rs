//! The loader unpacks what the center stored: two sites send exam packets over real QUIC
//! (one room rescanned as a second version), and the loader decrypts each packet's
//! newest version into a folder of its scan files and packet.json, once; a packet whose
//! stored envelope was damaged is reported and leaves no plaintext behind.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use konvert_center::unpack::{unpack, Filter};
use konvert_edge::{push, PushOptions};
use konvert_replication::Inbox;
use konvert_tests::{on_time_day, CenterFixture, LAST_ZONE};

fn opts() -> PushOptions {
    PushOptions {
        max_wait: Duration::from_secs(60),
        ..Default::default()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_loader_unpacks_the_newest_version_of_each_stored_exam_packet_once() {
    let fx = CenterFixture::new("127.0.0.1:0".parse().unwrap());
    let tokens = [fx.issue_token("0101"), fx.issue_token("0202")];
    // Packets that arrive on time (a late one is held back from the loader: tests/tests/late.rs).
    let day = on_time_day();
    let mut cfg = fx.register_days(&[(&tokens[0], "0101"), (&tokens[1], "0202")], &[&day]);
    cfg.time_zone = konvert_exam::SiteZone::new(LAST_ZONE).unwrap();
    let center = konvert_center::serve(&cfg).await.unwrap();
    let mut a = fx.enroll("0101", center.addr);
    let mut b = fx.enroll("0202", center.addr);
    a.seal_for(&day);
    b.seal_for(&day);
    let first = a.seal_room("0001", 3, 20_000, 1);
    // A corrected rescan of the same room: version 2, other scans.
    let rescan = a.dir.join("rescan").join("0001");
    let rescanned = konvert_devtools::rooms::write_room(&rescan, 9, 2, 30_000).unwrap();
    let second = a.seal_dir(&rescan, "0001", &a.signer);
    assert_eq!((first.offer.version, second.offer.version), (1, 2));
    let other = b.seal_room("0003", 2, 10_000, 3);
    assert_eq!(push(&a.cfg, a.outbox.clone(), opts()).await.unwrap().delivered, 2);
    assert_eq!(push(&b.cfg, b.outbox.clone(), opts()).await.unwrap().delivered, 1);

    let keys = [fx.loader_key()];
    let registry = konvert_crypto::registry::RegistryStore::open(&cfg.data_dir)
        .unwrap()
        .last_known()
        .unwrap()
        .unwrap();
    let out = fx.root.path().join("unpacked");
    let run = |filter: &Filter| unpack(&cfg.data_dir, &center.inbox, &keys, &registry, filter, &out).unwrap();

    let report = run(&Filter::default());
    assert_eq!(report.unpacked.len(), 2, "{report:?}");
    assert_eq!((report.superseded, report.already), (1, 0));
    assert!(report.failed.is_empty(), "{:?}", report.failed);
    // The rescan's files, byte for byte, under the newest version only.
    let room = out.join("0101").join(&second.offer.packet_id);
    assert!(!room.join("v1").exists());
    for path in &rescanned {
        let name = path.file_name().unwrap();
        assert_eq!(
            std::fs::read(room.join("v2/files").join(name)).unwrap(),
            std::fs::read(path).unwrap()
        );
    }
    let record: serde_json::Value =
        serde_json::from_slice(&std::fs::read(room.join("v2/packet.json")).unwrap()).unwrap();
    assert_eq!(record["envelope_id"], hex::encode(second.offer.digest));
    assert_eq!(record["site"], "0101");
    assert_eq!(record["manifest"]["files"].as_array().unwrap().len(), rescanned.len());
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(room.join("v2")).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o700, "scans in clear are for the loader's account only");
    // Nothing half-done is left next to the packets.
    let hidden: Vec<_> = std::fs::read_dir(&room)
        .unwrap()
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().starts_with('.'))
        .collect();
    assert!(hidden.is_empty(), "{hidden:?}");

    // Again: nothing new to do. A filter narrows to one site.
    let again = run(&Filter::default());
    assert_eq!((again.unpacked.len(), again.already), (0, 2));
    let only_b = run(&Filter {
        site: Some("0202".into()),
        ..Filter::default()
    });
    assert_eq!((only_b.unpacked.len(), only_b.already, only_b.superseded), (0, 1, 0));

    // A damaged stored envelope is refused with the reason, and no plaintext stays.
    let b_dir = out.join("0202").join(&other.offer.packet_id);
    std::fs::remove_dir_all(&b_dir).unwrap();
    let stored = Inbox::stored_envelope(&cfg.data_dir, &other.offer.digest);
    let mut bytes = std::fs::read(&stored).unwrap();
    let middle = bytes.len() / 2;
    bytes[middle] ^= 0x40;
    std::fs::write(&stored, &bytes).unwrap();
    let damaged = run(&Filter::default());
    assert_eq!((damaged.unpacked.len(), damaged.already), (0, 1));
    assert_eq!(damaged.failed.len(), 1, "{damaged:?}");
    assert!(
        damaged.failed[0].0.starts_with(&other.offer.packet_id),
        "{:?}",
        damaged.failed
    );
    // The receiver verified it on arrival: damage since is the store's, named as such.
    assert!(
        damaged.failed[0].1.contains("store was altered"),
        "{:?}",
        damaged.failed
    );
    assert!(
        !b_dir.exists() || std::fs::read_dir(&b_dir).unwrap().next().is_none(),
        "plaintext of a packet that did not verify is not kept"
    );

    // A packet flagged for review (its signer's token was blocked soon after) is held
    // back unless asked for, and then carries the flag.
    std::fs::remove_dir_all(&room).unwrap();
    let record = center.inbox.lookup(&second.offer.packet_id, 2).unwrap().unwrap();
    let token = registry
        .tokens
        .iter()
        .find(|t| t.public.key_id() == record.signer)
        .unwrap();
    let flag = konvert_center::review::ReviewFlag::new(&record, token, registry.version);
    konvert_center::review::ReviewDesk::open(&cfg.data_dir)
        .unwrap()
        .flag(&flag)
        .unwrap();
    let held = run(&Filter::default());
    assert_eq!(held.held_for_review, vec![format!("{} v2", second.offer.packet_id)]);
    assert!(!room.join("v2").exists());
    let taken = run(&Filter {
        include_flagged: true,
        ..Filter::default()
    });
    assert_eq!(taken.unpacked.len(), 1, "{taken:?}");
    let record: serde_json::Value =
        serde_json::from_slice(&std::fs::read(room.join("v2/packet.json")).unwrap()).unwrap();
    assert_eq!(record["review"]["envelope_id"], hex::encode(second.offer.digest));
    center.shutdown().await;
}

/// The loader writes only into plain folders it made: a link in `--out` (to a folder, or
/// dangling where its scratch folder goes) is refused by name and nothing lands behind
/// it; a stored envelope swapped for a FIFO is refused at once instead of hanging it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_loader_refuses_links_in_its_out_folder_and_a_fifo_in_the_store_without_hanging() {
    let fx = CenterFixture::new("127.0.0.1:0".parse().unwrap());
    let token = fx.issue_token("0101");
    let day = on_time_day();
    let mut cfg = fx.register_days(&[(&token, "0101")], &[&day]);
    cfg.time_zone = konvert_exam::SiteZone::new(LAST_ZONE).unwrap();
    let center = konvert_center::serve(&cfg).await.unwrap();
    let mut a = fx.enroll("0101", center.addr);
    a.seal_for(&day);
    let sealed = a.seal_room("0001", 2, 10_000, 1);
    assert_eq!(push(&a.cfg, a.outbox.clone(), opts()).await.unwrap().delivered, 1);

    let keys = std::sync::Arc::new([fx.loader_key()]);
    let registry = std::sync::Arc::new(
        konvert_crypto::registry::RegistryStore::open(&cfg.data_dir)
            .unwrap()
            .last_known()
            .unwrap()
            .unwrap(),
    );
    let out = fx.root.path().join("unpacked");
    let elsewhere = fx.root.path().join("elsewhere");
    std::fs::create_dir_all(out.join("0101")).unwrap();
    std::fs::create_dir_all(&elsewhere).unwrap();
    let packet = out.join("0101").join(&sealed.offer.packet_id);
    let run = || {
        let (data_dir, inbox, keys, registry, out) = (
            cfg.data_dir.clone(),
            center.inbox.clone(),
            keys.clone(),
            registry.clone(),
            out.clone(),
        );
        async move {
            let job = tokio::task::spawn_blocking(move || {
                unpack(&data_dir, &inbox, &keys[..], &registry, &Filter::default(), &out).unwrap()
            });
            tokio::time::timeout(Duration::from_secs(20), job)
                .await
                .expect("the loader hung")
                .unwrap()
        }
    };

    // A link to a folder where the packet's folder goes: refused, nothing written there.
    std::os::unix::fs::symlink(&elsewhere, &packet).unwrap();
    let linked = run().await;
    assert!(linked.unpacked.is_empty(), "{linked:?}");
    assert_eq!(linked.failed.len(), 1, "{linked:?}");
    assert!(linked.failed[0].1.contains("is a symbolic link"), "{:?}", linked.failed);
    assert!(
        std::fs::read_dir(&elsewhere).unwrap().next().is_none(),
        "scans landed behind the link"
    );

    // A dangling link where the scratch folder goes: said so, not "File exists".
    std::fs::remove_file(&packet).unwrap();
    std::fs::create_dir(&packet).unwrap();
    std::os::unix::fs::symlink(fx.root.path().join("nowhere"), packet.join(".v1.partial")).unwrap();
    let dangling = run().await;
    assert_eq!(dangling.failed.len(), 1, "{dangling:?}");
    assert!(
        dangling.failed[0].1.contains(".v1.partial is a symbolic link"),
        "{:?}",
        dangling.failed
    );
    assert!(!fx.root.path().join("nowhere").exists());

    // A FIFO in place of the stored envelope: refused at once, the loader does not hang.
    std::fs::remove_file(packet.join(".v1.partial")).unwrap();
    let stored = Inbox::stored_envelope(&cfg.data_dir, &sealed.offer.digest);
    std::fs::remove_file(&stored).unwrap();
    assert!(std::process::Command::new("mkfifo")
        .arg(&stored)
        .status()
        .unwrap()
        .success());
    let fifo = run().await;
    assert_eq!(fifo.failed.len(), 1, "{fifo:?}");
    assert!(fifo.failed[0].1.contains("FIFO"), "{:?}", fifo.failed);
    assert!(!packet.join("v1").exists());
    center.shutdown().await;
}
