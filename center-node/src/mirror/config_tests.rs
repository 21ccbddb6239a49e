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
    let issued = std::fs::read_to_string(region.join("pki").join(crate::mirror::federal::REGION_CERT)).unwrap();
    let pin = konvert_replication::tls::pem_fingerprint(&issued).unwrap();
    assert_eq!(
        cfg.regions,
        vec![RegionEntry {
            code: 77,
            key: key.to_string(),
            certificate: Some(pin.clone()),
            revoked: false,
        }]
    );
    assert!(cfg.unpinned().is_empty());
    let region_cfg = RegionMirrorConfig::load(&mirror).unwrap();
    assert_eq!(region_cfg.region, 77);
    let federal_key = konvert_crypto::keyfile::read_signing_key(&cfg.signing_key).unwrap();
    assert_eq!(region_cfg.federal_public_key().unwrap(), federal_key.verifying_key());
    crate::mirror::identity::region_client_config(&region_cfg).unwrap();
    // Enrolling again, even with the same key, would issue a new certificate and
    // overwrite the region's files: refused without --replace.
    let again =
        crate::mirror::federal::enroll_region(&path, 77, &region.join("mirror.pub"), &region.join("pki"), false);
    let again = again.unwrap_err().to_string();
    assert!(
        again.contains("--replace") && again.contains("old certificate"),
        "{again}"
    );
    let other = dir.path().join("other.pub");
    let new_key = konvert_crypto::SigningKey::generate().unwrap().verifying_key();
    std::fs::write(&other, format!("{new_key}\n")).unwrap();
    let refused = crate::mirror::federal::enroll_region(&path, 77, &other, &region.join("pki"), false);
    assert!(refused.unwrap_err().to_string().contains("--replace"));
    crate::mirror::federal::enroll_region(&path, 77, &other, &region.join("pki"), true).unwrap();
    let replaced = FederalConfig::load(&path).unwrap();
    assert_eq!(replaced.regions[0].key, new_key.to_string());
    // The new certificate is pinned in the old one's place.
    let reissued = std::fs::read_to_string(region.join("pki").join(crate::mirror::federal::REGION_CERT)).unwrap();
    assert_ne!(reissued, issued);
    assert_eq!(
        replaced.regions[0].certificate,
        Some(konvert_replication::tls::pem_fingerprint(&reissued).unwrap())
    );
    // Revoked: marked, kept; revoking again changes nothing; enrolling again lifts it.
    assert!(crate::mirror::federal::revoke_region(&path, 77).unwrap());
    assert!(FederalConfig::load(&path).unwrap().regions[0].revoked);
    assert!(!crate::mirror::federal::revoke_region(&path, 77).unwrap());
    assert!(!crate::mirror::federal::revoke_region(&path, 78).unwrap());
    crate::mirror::federal::enroll_region(&path, 77, &other, &region.join("pki"), true).unwrap();
    assert!(!FederalConfig::load(&path).unwrap().regions[0].revoked);
    assert!(crate::mirror::federal::revoke_region(&path, 77).unwrap());
    // A pin that is not a SHA-256 is refused, naming the region and the fix.
    let text = std::fs::read_to_string(&path).unwrap();
    std::fs::write(
        &path,
        format!("{text}\n[[regions]]\ncode = 5\nkey = \"{new_key}\"\ncertificate = \"abc\"\n"),
    )
    .unwrap();
    let bad = FederalConfig::load(&path).unwrap_err().to_string();
    assert!(bad.contains("region 05") && bad.contains("--replace"), "{bad}");
    // A file from before pins loads, and says which regions take any certificate.
    std::fs::write(&path, format!("{text}\n[[regions]]\ncode = 5\nkey = \"{new_key}\"\n")).unwrap();
    assert_eq!(FederalConfig::load(&path).unwrap().unpinned(), vec![5]);
}

#[test]
fn enrolling_refuses_a_shared_key_the_federal_key_a_linked_out_and_a_code_out_of_range() {
    let (dir, path) = federal();
    let region = dir.path().join("r77");
    crate::mirror::region::init(
        &region,
        77,
        "postgresql://konvert@127.0.0.1/ris",
        "fis.example:4500",
        "federal.konvert",
    )
    .unwrap();
    let enroll = |code: u8, key: &Path, out: &Path| {
        crate::mirror::federal::enroll_region(&path, code, key, out, false)
            .unwrap_err()
            .to_string()
    };
    let pub77 = region.join("mirror.pub");
    crate::mirror::federal::enroll_region(&path, 77, &pub77, &region.join("pki"), false).unwrap();
    // Region 78 with region 77's key.
    let e = enroll(78, &pub77, &dir.path().join("r78"));
    assert!(e.contains("region 77's mirror key"), "{e}");
    // The federal node's own key.
    let cfg = FederalConfig::load(&path).unwrap();
    let own = dir.path().join("federal.pub");
    let federal_key = konvert_crypto::keyfile::read_signing_key(&cfg.signing_key).unwrap();
    std::fs::write(&own, format!("{}\n", federal_key.verifying_key())).unwrap();
    let e = enroll(78, &own, &dir.path().join("r78"));
    assert!(e.contains("federal node's own"), "{e}");
    // --out through a symbolic link.
    let fresh = dir.path().join("fresh.pub");
    let key = konvert_crypto::SigningKey::generate().unwrap().verifying_key();
    std::fs::write(&fresh, format!("{key}\n")).unwrap();
    let elsewhere = dir.path().join("elsewhere");
    std::fs::create_dir(&elsewhere).unwrap();
    let link = dir.path().join("r79");
    std::os::unix::fs::symlink(&elsewhere, &link).unwrap();
    let e = enroll(79, &fresh, &link);
    assert!(e.contains("symbolic link"), "{e}");
    assert_eq!(std::fs::read_dir(&elsewhere).unwrap().count(), 0);
    // Codes out of range say so plainly.
    for code in [0, 100] {
        let e = enroll(code, &fresh, &dir.path().join("rx"));
        assert!(e.contains("1–99") && !e.contains("TLS"), "{e}");
    }
    assert_eq!(FederalConfig::load(&path).unwrap().regions.len(), 1);
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

/// The `mirror.toml` README.md shows: the block after "`mirror.toml` as `mirror init` writes it".
fn readme_mirror_toml() -> String {
    let readme = include_str!("../../../README.md");
    let from = readme
        .find("`mirror.toml` as `mirror init` writes it")
        .expect("README.md shows mirror.toml");
    let block = &readme[from..];
    let start = block.find("```toml\n").expect("a toml block") + "```toml\n".len();
    let end = block[start..].find("```").expect("the block ends");
    block[start..start + end].to_owned()
}

#[test]
fn the_readme_mirror_toml_is_taken_as_written_and_its_schedule_is_what_it_says() {
    let cfg: RegionMirrorConfig = toml::from_str(&readme_mirror_toml()).unwrap();
    assert_eq!(cfg.region, 77);
    assert_eq!(cfg.metrics_listen, Some("127.0.0.1:9465".parse().unwrap()));
    assert_eq!(cfg.limits, LimitsConfig::default());
    let schedule = cfg.schedule(Path::new("mirror.toml")).unwrap();
    // 2027-06-10 12:00 Moscow (09:00 UTC): the main exam period, hourly.
    let in_main = 1_812_618_000_000;
    assert!(schedule.in_exam_period(in_main));
    assert_eq!(schedule.interval_at(in_main), 3_600_000);
    // 2027-09-01 12:00 Moscow: weekly.
    let autumn = 1_819_789_200_000;
    assert!(!schedule.in_exam_period(autumn));
    assert_eq!(schedule.interval_at(autumn), 7 * 24 * 3_600_000);
}

#[test]
fn a_mirror_toml_init_wrote_carries_the_default_schedule_and_a_bad_one_names_file_and_key() {
    let (dir, fed) = federal();
    let region = dir.path().join("r12");
    let path = crate::mirror::region::init(
        &region,
        12,
        "postgresql://konvert@127.0.0.1/ris",
        "fis.example:4500",
        "federal.konvert",
    )
    .unwrap();
    crate::mirror::federal::enroll_region(&fed, 12, &region.join("mirror.pub"), &region.join("pki"), false).unwrap();
    let cfg = RegionMirrorConfig::load(&path).unwrap();
    assert_eq!(cfg.schedule, konvert_mirror::ScheduleConfig::default());
    let text = std::fs::read_to_string(&path).unwrap();
    assert!(text.contains("[schedule]") && !text.contains("interval_secs"), "{text}");

    let bad = |from: &str, to: &str, key: &str| {
        let broken = text.replace(from, to);
        assert_ne!(broken, text, "{from} is not in {text}");
        std::fs::write(&path, &broken).unwrap();
        let e = RegionMirrorConfig::load(&path).unwrap_err().to_string();
        assert!(
            e.contains(&path.display().to_string()) && e.contains("[schedule]") && e.contains(key),
            "{e}"
        );
    };
    bad("Europe/Moscow", "Europe/Atlantis", "Europe/Atlantis");
    bad(
        "busy_interval_minutes = 120",
        "busy_interval_minutes = 0",
        "busy_interval_minutes",
    );
    bad(
        "quiet_interval_minutes = 10080",
        "quiet_interval_minutes = 60",
        "quiet_interval_minutes",
    );
    let periods = "\n[[schedule.periods]]\nname = \"main\"\nkind = \"exam\"\nfirst_day = \"2027-05-26\"\nlast_day = \"2027-07-01\"\n\
                   \n[[schedule.periods]]\nname = \"additional\"\nkind = \"exam\"\nfirst_day = \"2027-06-30\"\nlast_day = \"2027-07-10\"\n";
    std::fs::write(&path, format!("{text}{periods}")).unwrap();
    let e = RegionMirrorConfig::load(&path).unwrap_err().to_string();
    assert!(e.contains("[schedule]") && e.contains("overlap"), "{e}");
    // The legacy key is refused, not ignored.
    std::fs::write(&path, format!("interval_secs = 7200\n{text}")).unwrap();
    let e = RegionMirrorConfig::load(&path).unwrap_err().to_string();
    assert!(e.contains("interval_secs"), "{e}");
}

#[test]
fn secrets_others_can_read_are_named_with_the_fix() {
    use std::os::unix::fs::PermissionsExt;
    let (dir, path) = federal();
    let cfg = FederalConfig::load(&path).unwrap();
    assert_eq!(
        cfg.exposed_secrets(&path),
        Vec::<String>::new(),
        "init writes secrets 0600"
    );
    std::fs::set_permissions(&cfg.signing_key, std::fs::Permissions::from_mode(0o644)).unwrap();
    let warnings = cfg.exposed_secrets(&path).join("\n");
    assert!(
        warnings.contains("the mirror signing key") && warnings.contains("0644") && warnings.contains("chmod 600"),
        "{warnings}"
    );
    // The config matters only when its records URL holds a password.
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
    assert!(!cfg.exposed_secrets(&path).join("\n").contains("the config"));
    let mut with_password = cfg.clone();
    with_password.records_url = "postgresql://konvert:s3cret@db.example/fis".into();
    let warnings = with_password.exposed_secrets(&path).join("\n");
    assert!(
        warnings.contains("the config") && !warnings.contains("s3cret"),
        "{warnings}"
    );
    drop(dir);
}

#[test]
fn a_password_in_a_records_url_is_told_from_a_user_alone() {
    for (url, has) in [
        ("postgresql://konvert:pw@db/ris", true),
        ("postgres://konvert:pw@db:5432/ris?sslmode=require", true),
        ("postgresql://konvert@db/ris", false),
        ("postgresql://db/ris?user=a@b", false),
        ("postgresql://konvert@[::1]:5432/ris", false),
        ("host=db user=konvert password=pw dbname=ris", true),
        ("host=db user=konvert dbname=ris", false),
    ] {
        assert_eq!(super::url_has_password(url), has, "{url}");
    }
}
