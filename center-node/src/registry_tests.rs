use konvert_crypto::{RecipientSecretKey, SigningKey};

use super::*;

const NOW: u64 = 1_780_000_000_000;

fn body(version: u64, officer: &SigningKey) -> RegistryBody {
    let center = RecipientSecretKey::generate().unwrap().public_key();
    crate::test_support::registry(version, officer, center, NOW)
}

#[test]
fn the_held_registry_is_the_newer_of_the_stored_and_the_imported_one() {
    let dir = tempfile::tempdir().unwrap();
    let init = crate::provision::init_center(dir.path(), "c.test", "127.0.0.1:0".parse().unwrap(), None).unwrap();
    let cfg = init.config;
    let officer = SigningKey::generate().unwrap();
    let write = |v: u64, signer: &SigningKey| {
        let signed = SignedRegistry::sign(&body(v, &officer), &[signer]).unwrap();
        std::fs::write(&cfg.registry, signed.to_bytes().unwrap()).unwrap();
        signed
    };
    // Nothing imported, nothing stored.
    assert!(held(&cfg, NOW).unwrap().is_none());
    let store = RegistryStore::open(&cfg.data_dir).unwrap();
    store.anchor(body(1, &officer).authority).unwrap();
    // Imported (`registry import`) but never taken by a serving center: the file's.
    let v1 = write(1, &officer);
    assert_eq!(held(&cfg, NOW).unwrap().unwrap().version, 1);
    // Taken into the store, and a newer one imported since: the newer.
    store.offer(&v1, NOW).unwrap();
    write(2, &officer);
    assert_eq!(held(&cfg, NOW).unwrap().unwrap().version, 2);
    // An imported file that does not verify never wins over the stored one.
    write(3, &SigningKey::generate().unwrap());
    assert_eq!(held(&cfg, NOW).unwrap().unwrap().version, 1);
    drop(store);
}

#[test]
fn an_older_registry_dropped_at_the_center_is_logged_counted_and_audited() {
    let dir = tempfile::tempdir().unwrap();
    let init = crate::provision::init_center(dir.path(), "c.test", "127.0.0.1:0".parse().unwrap(), None).unwrap();
    let cfg = init.config;
    let officer = SigningKey::generate().unwrap();
    RegistryStore::open(&cfg.data_dir)
        .unwrap()
        .anchor(body(1, &officer).authority)
        .unwrap();
    let audit =
        Arc::new(AuditLog::open(&dir.path().join("audit.log"), Some(SigningKey::generate().unwrap()), 64).unwrap());
    let registry = CenterRegistry::open(&cfg, NOW, Some(audit)).unwrap();
    let metrics = prometheus::Registry::new();
    registry.register_metrics(&metrics).unwrap();
    let inbox = Inbox::open(&cfg.data_dir).unwrap();
    let mut at = std::time::SystemTime::now();
    let mut drop_file = |v: u64| {
        let signed = SignedRegistry::sign(&body(v, &officer), &[&officer]).unwrap();
        std::fs::write(&cfg.registry, signed.to_bytes().unwrap()).unwrap();
        // A new modification time whatever the file system's clock granularity.
        at += Duration::from_secs(1);
        std::fs::File::options()
            .write(true)
            .open(&cfg.registry)
            .unwrap()
            .set_modified(at)
            .unwrap();
    };
    let ignored = |why: &str| {
        metrics
            .gather()
            .iter()
            .find(|f| f.name() == "konvert_registry_files_ignored_total")
            .unwrap()
            .get_metric()
            .iter()
            .find(|m| m.get_label().iter().any(|l| l.value() == why))
            .unwrap()
            .get_counter()
            .get_value()
    };
    drop_file(2);
    assert_eq!(registry.refresh(&inbox, NOW).unwrap().unwrap().version, 2);
    assert_eq!(ignored("older"), 0.0);
    drop_file(1);
    assert!(registry.refresh(&inbox, NOW).unwrap().is_none());
    assert_eq!(registry.in_force(NOW).unwrap().body().version, 2, "v2 stays in force");
    assert_eq!(ignored("older"), 1.0);
    let log = String::from_utf8_lossy(&std::fs::read(dir.path().join("audit.log")).unwrap()).into_owned();
    assert!(
        log.contains("registry.ignore") && log.contains("older than v2 in force"),
        "{log}"
    );
}

/// A FIFO (or a link) swapped in for the registry file is refused at once, and a valid
/// newer registry moved into place afterwards is still taken: the watcher never blocks
/// in the open (which would also keep the center from stopping).
#[test]
fn a_fifo_or_link_in_place_of_the_registry_file_is_refused_without_blocking() {
    let dir = tempfile::tempdir().unwrap();
    let init = crate::provision::init_center(dir.path(), "c.test", "127.0.0.1:0".parse().unwrap(), None).unwrap();
    let cfg = init.config;
    let officer = SigningKey::generate().unwrap();
    RegistryStore::open(&cfg.data_dir)
        .unwrap()
        .anchor(body(1, &officer).authority)
        .unwrap();
    std::fs::create_dir_all(cfg.registry.parent().unwrap()).unwrap();
    let status = std::process::Command::new("mkfifo")
        .arg(&cfg.registry)
        .status()
        .unwrap();
    assert!(status.success());
    let registry = Arc::new(CenterRegistry::open(&cfg, NOW, None).unwrap());
    let inbox = Arc::new(Inbox::open(&cfg.data_dir).unwrap());
    let refresh = |registry: &Arc<CenterRegistry>| {
        let (r, i) = (registry.clone(), inbox.clone());
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let _ = tx.send(r.refresh(&i, NOW).map_err(|e| e.to_string()));
        });
        rx.recv_timeout(Duration::from_secs(10))
            .expect("the registry refresh blocked on the file")
    };
    let refused = refresh(&registry).unwrap_err();
    assert!(
        refused.contains("FIFO") && refused.contains("not a regular file"),
        "{refused}"
    );
    // The officers' newer registry, moved into place over the FIFO, is taken.
    let signed = SignedRegistry::sign(&body(2, &officer), &[&officer]).unwrap();
    let staged = dir.path().join("registry.new");
    std::fs::write(&staged, signed.to_bytes().unwrap()).unwrap();
    std::fs::rename(&staged, &cfg.registry).unwrap();
    assert_eq!(refresh(&registry).unwrap().unwrap().version, 2);
    // A link to a registry file is not followed.
    let signed = SignedRegistry::sign(&body(3, &officer), &[&officer]).unwrap();
    std::fs::write(&staged, signed.to_bytes().unwrap()).unwrap();
    std::fs::remove_file(&cfg.registry).unwrap();
    std::os::unix::fs::symlink(&staged, &cfg.registry).unwrap();
    let refused = refresh(&registry).unwrap_err();
    assert!(refused.contains("symbolic link"), "{refused}");
    assert_eq!(registry.in_force(NOW).unwrap().body().version, 2);
}
