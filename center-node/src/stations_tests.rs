use super::*;

fn at(unix: i64) -> OffsetDateTime {
    OffsetDateTime::from_unix_timestamp(unix).unwrap()
}

fn serial(n: u8) -> Serial {
    Serial::from_bytes(&[n, 1, 2, 3])
}

fn record(n: u8, site: &str) -> StationRecord {
    StationRecord {
        serial: serial(n),
        site: site.into(),
        issued_at: 1_780_000_000,
        revoked_at: None,
        reason: String::new(),
        carries: Vec::new(),
    }
}

#[test]
fn relays_carry_the_sites_of_their_valid_certificates_and_the_running_view_follows_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("stations.toml");
    let relay = |n: u8, carries: &[&str]| StationRecord {
        carries: carries.iter().map(|s| s.to_string()).collect(),
        ..record(n, "mouo-01")
    };
    let mut index = StationIndex {
        stations: vec![record(1, "0101"), relay(2, &["0101", "0102"]), relay(3, &["0103"])],
    };
    index.save(&path).unwrap();
    let loaded = StationIndex::load(&path).unwrap();
    assert_eq!(loaded, index, "carries round-trips");
    assert_eq!(loaded.carried_by("0101"), None, "a site's station is no relay");
    assert_eq!(
        loaded.carried_by("MOUO-01"),
        Some(vec!["0101".to_string(), "0102".into(), "0103".into()])
    );
    let view = RelayIndex::new(path.clone());
    assert_eq!(view.carried_by("mouo-01").map(|c| c.len()), Some(3));
    index
        .revoke(&StationSelector::Serial(serial(3)), "moved", at(1_780_000_100))
        .unwrap();
    // A later modification time than the first write, whatever the file system's granularity.
    std::thread::sleep(std::time::Duration::from_millis(20));
    index.save(&path).unwrap();
    assert_eq!(
        view.carried_by("mouo-01"),
        Some(vec!["0101".to_string(), "0102".into()]),
        "a revoked relay certificate carries nothing any more"
    );
}

#[test]
fn index_round_trips_and_revokes_by_site_or_serial() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("stations.toml");
    assert_eq!(StationIndex::load(&path).unwrap(), StationIndex::default());
    let mut index = StationIndex {
        stations: vec![record(1, "0101"), record(2, "0101"), record(3, "0202")],
    };
    index.save(&path).unwrap();
    assert_eq!(StationIndex::load(&path).unwrap(), index);

    let revoked = index
        .revoke(
            &StationSelector::Site("0101".into()),
            " stolen laptop ",
            at(1_780_000_500),
        )
        .unwrap();
    assert_eq!(revoked.len(), 2);
    assert!(revoked
        .iter()
        .all(|r| r.revoked_at == Some(1_780_000_500) && r.reason == "stolen laptop"));
    let err = index
        .revoke(&StationSelector::Site("0101".into()), "", at(1_780_000_600))
        .unwrap_err()
        .to_string();
    assert!(err.contains("already revoked"), "{err}");
    let err = index
        .select(&StationSelector::Site("0909".into()))
        .unwrap_err()
        .to_string();
    assert!(err.contains("no certificate for site 0909"), "{err}");
    assert_eq!(
        index.select(&StationSelector::Site("0202".into())).unwrap(),
        vec![record(3, "0202")]
    );

    // A serial the index does not know (issued before it existed) is revoked all the same.
    let unknown = index
        .revoke(&StationSelector::Serial(serial(9)), "old", at(1_780_000_700))
        .unwrap();
    assert_eq!(unknown[0].site, UNKNOWN_SITE);
    let listed: Vec<Serial> = index.revoked().into_iter().map(|r| r.serial).collect();
    assert_eq!(listed, vec![serial(1), serial(2), serial(9)]);
    index.save(&path).unwrap();
    assert_eq!(StationIndex::load(&path).unwrap(), index);

    std::fs::write(&path, "[[station]]\nserial = \"zz\"\nsite = \"1\"\nissued_at = 0\n").unwrap();
    assert!(StationIndex::load(&path).is_err());
}

#[test]
fn enrolling_records_and_revoking_writes_a_list_that_keeps_every_serial() {
    let dir = tempfile::tempdir().unwrap();
    let (init, _key) = crate::provision::init_center_with_key(
        &dir.path().join("c"),
        "center.konvert",
        "127.0.0.1:0".parse().unwrap(),
        None,
    )
    .unwrap();
    let cfg = init.config;
    let facts = crate::provision::CenterFacts::read(&dir.path().join("c"), "127.0.0.1:4433", "center.konvert").unwrap();
    let mut serials = Vec::new();
    for site in ["0101", "0202"] {
        crate::provision::enroll_station(&dir.path().join("c"), site, &facts, &dir.path().join(site)).unwrap();
        let pem = std::fs::read_to_string(dir.path().join(site).join("station.pem")).unwrap();
        serials.push(Serial::of_cert_pem(&pem).unwrap());
    }
    let index = StationIndex::load(&cfg.station_index()).unwrap();
    assert_eq!(index.stations.len(), 2);
    assert_eq!(index.stations[0].serial, serials[0]);
    assert_eq!(index.stations[1].site, "0202");

    let now = OffsetDateTime::now_utc();
    let done = revoke(&cfg, &StationSelector::Site("0101".into()), "lost", now).unwrap();
    assert_eq!(done.stations.len(), 1);
    assert!(done.crl.revoked.contains_key(&serials[0]));
    assert_eq!(done.crl.revoked.len(), 1);
    assert!(done.crl.next_update > now + Duration::days(CRL_VALID_DAYS - 1));
    let on_disk = crate::revocation::load_crl(&cfg).unwrap();
    assert_eq!(on_disk.revoked.len(), 1);

    // Even if the index is lost, a renewed list keeps the serials of the list in force.
    std::fs::remove_file(cfg.station_index()).unwrap();
    let renewed = renew_crl(&cfg, now + Duration::seconds(5)).unwrap();
    assert!(renewed.revoked.contains_key(&serials[0]));
    assert!(!cfg.station_index().with_extension("lock").exists());
}

#[test]
fn a_site_is_cut_off_only_when_every_station_of_its_own_is_revoked() {
    let revoked = |n: u8, site: &str, reason: &str| StationRecord {
        revoked_at: Some(1_780_100_000),
        reason: reason.into(),
        ..record(n, site)
    };
    let mut index = StationIndex {
        stations: vec![revoked(1, "0101", "laptop stolen"), record(2, "0101")],
    };
    assert_eq!(index.site_cut_off("0101"), None, "a second station is still valid");
    index.stations[1] = revoked(2, "0101", "");
    let why = index.site_cut_off("0101").unwrap();
    assert!(
        why.contains("laptop stolen")
            && why.contains(&serial(2).to_string())
            && why.contains("enroll-station --site 0101"),
        "{why}"
    );
    // No station recorded for a site: the center cannot tell (issued before the index).
    assert_eq!(index.site_cut_off("0202"), None);
    // A relay named like nothing here is no site's station.
    index.stations.push(StationRecord {
        carries: vec!["0303".into()],
        ..revoked(3, "mouo-01", "")
    });
    assert_eq!(index.site_cut_off("mouo-01"), None);
}
