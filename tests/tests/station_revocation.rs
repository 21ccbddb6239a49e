//! Station certificates revoked while the center runs, over real QUIC with mutual TLS on
//! loopback: live connections closed, new ones refused, other sites unaffected; expired
//! and foreign revocation lists.

// Test helpers: a failed step is a failed test, and unwrap reports it most plainly.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::net::SocketAddr;
use std::path::Path;
use std::time::{Duration, Instant};

use konvert_center::stations::{self, StationSelector};
use konvert_center::CenterConfig;
use konvert_edge::{push, PushOptions};
use konvert_replication::pki::{self, Serial};
use konvert_replication::{driver, tls};
use konvert_tests::{CenterFixture, SiteFixture};
use time::OffsetDateTime;

fn read(p: &Path) -> String {
    std::fs::read_to_string(p).unwrap()
}

/// Connects as `site`'s station and says Hello.
async fn connect(site: &SiteFixture, addr: SocketAddr) -> konvert_replication::Result<quinn::Connection> {
    let station = pki::IssuedCert {
        cert_pem: read(&site.cfg.center.station_cert),
        key_pem: read(&site.cfg.center.station_key).into(),
    };
    let endpoint =
        tls::client_endpoint(tls::client_config(&read(&site.cfg.center.ca_cert), &station).unwrap()).unwrap();
    driver::connect(&endpoint, addr, "center.konvert", site.cfg.site.as_str()).await
}

fn serial_of(site: &SiteFixture) -> Serial {
    Serial::of_cert_pem(&read(&site.cfg.center.station_cert)).unwrap()
}

fn ca(cfg: &CenterConfig) -> pki::Ca {
    pki::Ca::from_pem(&read(&cfg.ca_cert), &read(cfg.ca_key.as_ref().unwrap())).unwrap()
}

fn metric(center: &konvert_center::RunningCenter, name: &str) -> String {
    let text = center.metrics.render().unwrap();
    text.lines()
        .find(|l| l.starts_with(name) && l[name.len()..].starts_with(' '))
        .map(|l| l[name.len() + 1..].to_owned())
        .unwrap_or_else(|| panic!("no {name} in {text}"))
}

fn opts() -> PushOptions {
    PushOptions {
        max_wait: Duration::from_secs(30),
        ..Default::default()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn station_certificate_revoked_mid_day_live_connection_closed_new_ones_refused() {
    let fx = CenterFixture::new("127.0.0.1:0".parse().unwrap());
    let t1 = fx.issue_token("0101");
    let t2 = fx.issue_token("0202");
    let cfg = fx.register(&[(&t1, "0101"), (&t2, "0202")]);
    let center = konvert_center::serve(&cfg).await.unwrap();
    let site1 = fx.enroll("0101", center.addr);
    let site2 = fx.enroll("0202", center.addr);

    // Both stations hold a live connection.
    let live1 = connect(&site1, center.addr).await.unwrap();
    let live2 = connect(&site2, center.addr).await.unwrap();
    assert_eq!(center.revocation.live().len(), 2);

    // The officer revokes site 0101's station certificate mid-day.
    let done = stations::revoke(
        &cfg,
        &StationSelector::Site("0101".into()),
        "laptop stolen",
        OffsetDateTime::now_utc(),
    )
    .unwrap();
    assert_eq!(done.stations.len(), 1);
    assert_eq!(done.stations[0].serial, serial_of(&site1));

    // Its live connection is closed within a couple of seconds, with a reason the edge
    // turns into plain words.
    let started = Instant::now();
    let closed = tokio::time::timeout(Duration::from_secs(3), live1.closed())
        .await
        .expect("the revoked station's live connection was not closed");
    let explained = tls::explain_connection_error(&closed).to_string();
    assert!(
        explained.contains("the center revoked this station's certificate"),
        "{explained}"
    );
    assert!(started.elapsed() < Duration::from_secs(3));

    // A new connection from that station is refused with the same explanation.
    let err = connect(&site1, center.addr).await.unwrap_err().to_string();
    assert!(err.contains("the center revoked this station's certificate"), "{err}");

    // The other site's live connection is untouched, and it still connects and delivers.
    assert!(live2.close_reason().is_none(), "{:?}", live2.close_reason());
    site2.seal_room("0001", 2, 40_000, 7);
    let report = push(&site2.cfg, site2.outbox.clone(), opts()).await.unwrap();
    assert_eq!(report.delivered, 1);
    assert_eq!(center.inbox.len(), 1);

    // The revoked station's push delivers nothing and tells the operator why.
    site1.seal_room("0001", 2, 40_000, 8);
    let short = PushOptions {
        max_wait: Duration::from_secs(1),
        ..Default::default()
    };
    let err = push(&site1.cfg, site1.outbox.clone(), short)
        .await
        .unwrap_err()
        .to_string();
    assert!(err.contains("the center revoked this station's certificate"), "{err}");
    assert_eq!(center.inbox.len(), 1);

    assert_eq!(metric(&center, "konvert_station_connections_revoked_total"), "1");
    assert_eq!(metric(&center, "konvert_station_crl_revoked"), "1");
    live2.close(0u32.into(), b"done");
    center.shutdown().await;
    // The revocation is in the center's audit log, which verifies.
    use konvert_crypto::audit;
    let log_path = cfg.data_dir.join(konvert_center::service::AUDIT_LOG);
    let log = std::fs::read(&log_path).unwrap();
    let head = audit::read_head(&audit::head_path(&log_path)).unwrap();
    assert!(audit::verify(&log, head.as_ref(), &[fx.init.receipt_public]).is_intact());
    let revoked: Vec<_> = audit::parse(&log)
        .records
        .into_iter()
        .filter_map(|r| match r.record {
            audit::Record::Entry { entry, .. } if entry.action == audit::AuditAction::StationRevoke => Some(entry),
            _ => None,
        })
        .collect();
    assert_eq!(revoked.len(), 1, "{revoked:?}");
    assert!(
        revoked[0].detail.contains("1 live connection(s) closed"),
        "{}",
        revoked[0].detail
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn expired_revocation_list_refuses_every_station_until_renewed() {
    let fx = CenterFixture::new("127.0.0.1:0".parse().unwrap());
    let token = fx.issue_token("0101");
    let mut cfg = fx.register(&[(&token, "0101")]);
    let now = OffsetDateTime::now_utc();
    let expired = ca(&cfg)
        .revocation_list(&[], now - time::Duration::days(8), now - time::Duration::days(1))
        .unwrap();
    std::fs::write(&cfg.crl, &expired.pem).unwrap();
    // As a center that never served while that list was in force: init's record of its
    // own (newer) list goes, so the expired one is what the first start puts in force.
    std::fs::remove_file(cfg.data_dir.join("crl-in-force.toml")).unwrap();
    // Without the CA key the center cannot re-sign it by itself.
    cfg.ca_key = None;
    let center = konvert_center::serve(&cfg).await.unwrap();
    let site = fx.enroll("0101", center.addr);
    let err = connect(&site, center.addr).await.unwrap_err().to_string();
    assert!(err.contains("revocation list has expired"), "{err}");
    assert!(!err.contains("not signed by the center's CA"), "{err}");
    assert_eq!(
        metric(&center, "konvert_station_crl_next_update_timestamp_seconds"),
        expired_next(&cfg).to_string()
    );

    // The officers renew it; the running center takes it within a second or so.
    let renewed = stations::renew_crl(&cfg, OffsetDateTime::now_utc()).unwrap();
    assert!(renewed.next_update > now + time::Duration::days(6));
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        match connect(&site, center.addr).await {
            Ok(conn) => {
                conn.close(0u32.into(), b"done");
                break;
            }
            Err(e) if Instant::now() < deadline => {
                assert!(e.to_string().contains("revocation list has expired"), "{e}");
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
            Err(e) => panic!("the renewed list was not put in force: {e}"),
        }
    }
    center.shutdown().await;
}

fn expired_next(cfg: &CenterConfig) -> i64 {
    konvert_center::revocation::load_crl(cfg)
        .unwrap()
        .next_update
        .unix_timestamp()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn revocation_list_signed_by_another_ca_is_not_loaded() {
    let fx = CenterFixture::new("127.0.0.1:0".parse().unwrap());
    let token = fx.issue_token("0101");
    let cfg = fx.register(&[(&token, "0101")]);
    let center = konvert_center::serve(&cfg).await.unwrap();
    let site = fx.enroll("0101", center.addr);
    let live = connect(&site, center.addr).await.unwrap();

    // A list from another CA naming this station's serial: ignored, the old one stays.
    let now = OffsetDateTime::now_utc();
    let rogue = pki::Ca::generate("rogue CA")
        .unwrap()
        .revocation_list(
            &[pki::RevokedStation {
                serial: serial_of(&site),
                revoked_at: now,
            }],
            now,
            now + time::Duration::days(7),
        )
        .unwrap();
    std::fs::write(&cfg.crl, &rogue.pem).unwrap();
    let deadline = Instant::now() + Duration::from_secs(5);
    while metric(&center, "konvert_station_crl_reload_failures_total") != "1" {
        assert!(Instant::now() < deadline, "the foreign list was not noticed");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // Damaged bytes are refused the same way.
    std::fs::write(&cfg.crl, b"-----BEGIN X509 CRL-----\nAAAA\n-----END X509 CRL-----\n").unwrap();
    while metric(&center, "konvert_station_crl_reload_failures_total") != "2" {
        assert!(Instant::now() < deadline, "the damaged list was not noticed");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(live.close_reason().is_none(), "{:?}", live.close_reason());
    let again = connect(&site, center.addr).await.unwrap();
    assert_eq!(metric(&center, "konvert_station_connections_revoked_total"), "0");
    again.close(0u32.into(), b"done");
    live.close(0u32.into(), b"done");
    center.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn center_holding_the_ca_key_resigns_a_list_about_to_expire() {
    let fx = CenterFixture::new("127.0.0.1:0".parse().unwrap());
    let token = fx.issue_token("0101");
    let cfg = fx.register(&[(&token, "0101")]);
    assert!(cfg.ca_key.is_some());
    let site = fx.enroll("0101", "127.0.0.1:1".parse().unwrap());
    let revoked_serial = serial_of(&site);
    let now = OffsetDateTime::now_utc();
    let soon = ca(&cfg)
        .revocation_list(
            &[pki::RevokedStation {
                serial: revoked_serial.clone(),
                revoked_at: now,
            }],
            now,
            now + time::Duration::hours(12),
        )
        .unwrap();
    std::fs::write(&cfg.crl, &soon.pem).unwrap();
    let center = konvert_center::serve(&cfg).await.unwrap();
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let in_force: i64 = metric(&center, "konvert_station_crl_next_update_timestamp_seconds")
            .parse()
            .unwrap();
        if in_force > (now + time::Duration::days(6)).unix_timestamp() {
            break;
        }
        assert!(Instant::now() < deadline, "the list was not re-signed");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // Same serials as before: re-signing never un-revokes.
    let on_disk = konvert_center::revocation::load_crl(&cfg).unwrap();
    assert!(on_disk.revoked.contains_key(&revoked_serial));
    assert_eq!(metric(&center, "konvert_station_crl_revoked"), "1");
    center.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restarted_center_refuses_an_older_revocation_list_put_back() {
    let fx = CenterFixture::new("127.0.0.1:0".parse().unwrap());
    let t1 = fx.issue_token("0101");
    let t2 = fx.issue_token("0202");
    let cfg = fx.register(&[(&t1, "0101"), (&t2, "0202")]);
    let center = konvert_center::serve(&cfg).await.unwrap();
    let _site1 = fx.enroll("0101", center.addr);
    let site2 = fx.enroll("0202", center.addr);
    let before = std::fs::read(&cfg.crl).unwrap();
    stations::revoke(
        &cfg,
        &StationSelector::Site("0202".into()),
        "laptop stolen",
        OffsetDateTime::now_utc(),
    )
    .unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    while metric(&center, "konvert_station_crl_revoked") != "1" && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(metric(&center, "konvert_station_crl_revoked"), "1");
    let revoked_list = std::fs::read(&cfg.crl).unwrap();
    center.shutdown().await;

    // The list from before the revocation is put back, and the center restarted.
    std::fs::write(&cfg.crl, &before).unwrap();
    let e = match konvert_center::serve(&cfg).await {
        Ok(_) => panic!("a restarted center put an older revocation list in force"),
        Err(e) => e.to_string(),
    };
    assert!(e.contains("older than the list already put in force"), "{e}");
    assert!(e.contains("konvert keys renew-crl"), "{e}");

    // With the newest list back it starts, and the revoked station stays refused.
    std::fs::write(&cfg.crl, &revoked_list).unwrap();
    let center = konvert_center::serve(&cfg).await.unwrap();
    let err = connect(&site2, center.addr).await.unwrap_err().to_string();
    assert!(err.contains("revoked"), "{err}");
    center.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deleting_the_record_of_the_list_in_force_does_not_let_a_revoked_station_back_in() {
    let fx = CenterFixture::new("127.0.0.1:0".parse().unwrap());
    let t1 = fx.issue_token("0101");
    let t2 = fx.issue_token("0202");
    let cfg = fx.register(&[(&t1, "0101"), (&t2, "0202")]);
    let floor = cfg.data_dir.join("crl-in-force.toml");
    let center = konvert_center::serve(&cfg).await.unwrap();
    assert!(
        floor.is_file(),
        "the first start of a fresh center records the list in force"
    );
    let site1 = fx.enroll("0101", center.addr);
    let site2 = fx.enroll("0202", center.addr);
    let before = std::fs::read(&cfg.crl).unwrap();
    stations::revoke(
        &cfg,
        &StationSelector::Site("0202".into()),
        "laptop stolen",
        OffsetDateTime::now_utc(),
    )
    .unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    while metric(&center, "konvert_station_crl_revoked") != "1" && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(metric(&center, "konvert_station_crl_revoked"), "1");
    center.shutdown().await;

    // The old list put back and the record deleted: the station index still knows.
    std::fs::write(&cfg.crl, &before).unwrap();
    std::fs::remove_file(&floor).unwrap();
    let serial2 = serial_of(&site2).to_string();
    let e = match konvert_center::serve(&cfg).await {
        Ok(_) => panic!("a restarted center put an old list in force after its record was deleted"),
        Err(e) => e.to_string(),
    };
    assert!(e.contains(&serial2) && e.contains("konvert keys renew-crl"), "{e}");
    assert!(!e.contains("delete"), "{e}");
    let old = konvert_center::revocation::load_crl(&cfg).unwrap();
    let e = konvert_center::revocation::check_floor(&cfg, &old, true)
        .unwrap_err()
        .to_string();
    assert!(e.contains(&serial2), "check-config says the same: {e}");

    // Even with a complete list, a center that ran here does not start without the record.
    stations::renew_crl(&cfg, OffsetDateTime::now_utc()).unwrap();
    std::fs::remove_file(&floor).unwrap();
    let e = match konvert_center::serve(&cfg).await {
        Ok(_) => panic!("a center that ran before started without its record of the list in force"),
        Err(e) => e.to_string(),
    };
    assert!(e.contains("crl-in-force.toml is missing"), "{e}");
    assert!(e.contains("konvert keys renew-crl") && !e.contains("delete"), "{e}");

    // The way back the messages give: renew-crl signs every revocation and records it.
    stations::renew_crl(&cfg, OffsetDateTime::now_utc()).unwrap();
    let center = konvert_center::serve(&cfg).await.unwrap();
    let err = connect(&site2, center.addr).await.unwrap_err().to_string();
    assert!(err.contains("revoked"), "{err}");
    let listed = std::fs::read(&cfg.crl).unwrap();
    center.shutdown().await;

    // Revoked while the center is stopped, then the list from before put back: the list
    // passes the record (it was in force), but not the index.
    stations::revoke(
        &cfg,
        &StationSelector::Site("0101".into()),
        "stolen while the center was down",
        OffsetDateTime::now_utc(),
    )
    .unwrap();
    std::fs::write(&cfg.crl, &listed).unwrap();
    let e = match konvert_center::serve(&cfg).await {
        Ok(_) => panic!("a center put in force a list without a station its index marks revoked"),
        Err(e) => e.to_string(),
    };
    assert!(e.contains(&serial_of(&site1).to_string()), "{e}");
    assert!(!e.contains(&serial2), "only the missing serial is named: {e}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_first_start_that_fails_half_way_does_not_lock_a_new_center_out() {
    // A new user's first `serve` before the officers' authority.toml is in place fails
    // after the data folder has state; once the file is there the center must start.
    let fx = CenterFixture::new("127.0.0.1:0".parse().unwrap());
    let t1 = fx.issue_token("0101");
    let cfg = fx.register(&[(&t1, "0101")]);
    assert!(
        cfg.data_dir.join("crl-in-force.toml").is_file(),
        "init records the list in force"
    );
    let authority = std::fs::read(&cfg.authority).unwrap();
    std::fs::remove_file(&cfg.authority).unwrap();
    assert!(konvert_center::serve(&cfg).await.is_err());
    std::fs::write(&cfg.authority, authority).unwrap();
    let center = konvert_center::serve(&cfg).await.unwrap();
    center.shutdown().await;
}
