use super::*;

/// A federal node made by `init`, with its config's path.
fn federal() -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let path = crate::mirror::federal::init(
        &dir.path().join("fed"),
        "federal.konvert",
        "127.0.0.1:4500".parse().unwrap(),
        "postgresql://konvert@127.0.0.1/fis",
    )
    .unwrap();
    (dir, path)
}

fn edit(path: &Path, f: impl FnOnce(String) -> String) {
    let text = std::fs::read_to_string(path).unwrap();
    std::fs::write(path, f(text)).unwrap();
}

fn config_error(path: &Path) -> String {
    match FederalConfig::load(path) {
        Err(e) => e.to_string(),
        Ok(_) => panic!("{} was taken", path.display()),
    }
}

#[test]
fn an_initialized_federal_node_loads_and_refuses_a_second_init() {
    let (dir, path) = federal();
    let cfg = FederalConfig::load(&path).unwrap();
    assert!(cfg.regions.is_empty());
    assert!(cfg.signing_key.is_file() && cfg.ca_cert.is_absolute());
    let again = crate::mirror::federal::init(
        &dir.path().join("fed"),
        "federal.konvert",
        "127.0.0.1:4500".parse().unwrap(),
        "postgresql://x@127.0.0.1/x",
    );
    assert!(again.unwrap_err().to_string().contains("already exists"));
}

#[test]
fn unknown_keys_bad_regions_and_bad_limits_are_refused_with_what_is_wrong() {
    let (_dir, path) = federal();
    edit(&path, |t| format!("{t}\nlisten_port = 4500\n"));
    assert!(config_error(&path).contains("unknown field"));

    let (_dir, path) = federal();
    edit(&path, |t| format!("{t}\n[[regions]]\ncode = 0\nkey = \"00\"\n"));
    assert!(config_error(&path).contains("not 1–99"));

    let (_dir, path) = federal();
    edit(&path, |t| format!("{t}\n[[regions]]\ncode = 7\nkey = \"zz\"\n"));
    let e = config_error(&path);
    assert!(e.contains("region 07") && e.contains("mirror.pub"), "{e}");

    let (_dir, path) = federal();
    let key = konvert_crypto::SigningKey::generate().unwrap().verifying_key();
    edit(&path, |t| {
        format!("{t}\n[[regions]]\ncode = 7\nkey = \"{key}\"\n[[regions]]\ncode = 7\nkey = \"{key}\"\n")
    });
    assert!(config_error(&path).contains("listed twice"));

    let (_dir, path) = federal();
    edit(&path, |t| t.replace("batch_rows = 1024", "batch_rows = 100000"));
    assert!(config_error(&path).contains("batch_rows"));
}

#[test]
fn enrolling_a_region_writes_its_files_and_its_key_and_refuses_another_key_unless_replaced() {
    let (dir, path) = federal();
    let region = dir.path().join("r77");
    let mirror = crate::mirror::region::init(
        &region,
        77,
        "postgresql://konvert@127.0.0.1/ris",
        "fis.example:4500",
        "federal.konvert",
    )
    .unwrap();
    crate::mirror::federal::enroll_region(&path, 77, &region.join("mirror.pub"), &region.join("pki"), false).unwrap();
    let cfg = FederalConfig::load(&path).unwrap();
    let key = read_public_key(&region.join("mirror.pub")).unwrap();
    assert_eq!(
        cfg.regions,
        vec![RegionEntry {
            code: 77,
            key: key.to_string()
        }]
    );
    let region_cfg = RegionMirrorConfig::load(&mirror).unwrap();
    assert_eq!(region_cfg.region, 77);
    let federal_key = konvert_crypto::keyfile::read_signing_key(&cfg.signing_key).unwrap();
    assert_eq!(region_cfg.federal_public_key().unwrap(), federal_key.verifying_key());
    crate::mirror::identity::region_client_config(&region_cfg).unwrap();
    // The same key again changes nothing; another is refused without --replace.
    crate::mirror::federal::enroll_region(&path, 77, &region.join("mirror.pub"), &region.join("pki"), false).unwrap();
    let other = dir.path().join("other.pub");
    let new_key = konvert_crypto::SigningKey::generate().unwrap().verifying_key();
    std::fs::write(&other, format!("{new_key}\n")).unwrap();
    let refused = crate::mirror::federal::enroll_region(&path, 77, &other, &region.join("pki"), false);
    assert!(refused.unwrap_err().to_string().contains("--replace"));
    crate::mirror::federal::enroll_region(&path, 77, &other, &region.join("pki"), true).unwrap();
    assert_eq!(FederalConfig::load(&path).unwrap().regions[0].key, new_key.to_string());
}

#[test]
fn a_region_mirror_without_its_federal_files_says_where_they_come_from() {
    let dir = tempfile::tempdir().unwrap();
    let path = crate::mirror::region::init(
        dir.path(),
        5,
        "postgresql://konvert@127.0.0.1/ris",
        "fis.example:4500",
        "federal.konvert",
    )
    .unwrap();
    let e = RegionMirrorConfig::load(&path).unwrap_err().to_string();
    assert!(e.contains("enroll-region"), "{e}");
    edit(&path, |t| format!("{t}\nfederal = \"x\"\n"));
    assert!(RegionMirrorConfig::load(&path)
        .unwrap_err()
        .to_string()
        .contains("unknown field"));
}
