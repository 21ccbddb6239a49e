//! The adversarial suite of the key registry, over real QUIC on loopback with real sled
//! files and real keys: every way a packet's signer can be out of order is refused with
//! its exact reason and leaves nothing stored; every way a registry can be wrong is
//! refused by the station with its exact reason and leaves the station's trust as it was.

// Test helpers: a failed step is a failed test, and unwrap reports it most plainly.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use konvert_crypto::registry::{
    Authority, Binding, RegistryBody, RegistryRefusal, RegistryStore, SignedRegistry, TokenRole, TokenStatus,
};
use konvert_crypto::token::TokenFile;
use konvert_crypto::{RecipientSecretKey, SigningKey};
use konvert_edge::cli::now_unix_ms;
use konvert_edge::push::PushEvent;
use konvert_edge::{push, PushOptions};
use konvert_replication::driver::Outcome;
use konvert_replication::RejectReason;
use konvert_tests::{stored_files, wait_for_registry, CenterFixture, SiteFixture, EXAM_DAY, PIN};

/// A token file for `holder` (its own person) in the fixture's folder, and its key.
fn token(fx: &CenterFixture, id: &str) -> (TokenFile, SigningKey) {
    let dir = fx.root.path().join("tokens");
    std::fs::create_dir_all(&dir).unwrap();
    let t = TokenFile::create(
        &dir.join(format!("{id}.token")),
        id,
        &format!("holder of {id}"),
        PIN,
        konvert_crypto::token::KdfParams::insecure_fast_for_tests(),
    )
    .unwrap();
    let key = t.unlock(PIN).unwrap();
    (t, key)
}

/// Puts `t` in the draft and walks it through the regulations' statuses up to `to`.
fn add_at(body: &mut RegistryBody, t: &TokenFile, site: &str, to: TokenStatus) {
    let now = now_unix_ms();
    let id = t.token_id.as_str();
    body.add_token(id, TokenRole::Member, t.public, now).unwrap();
    let path = [
        TokenStatus::ReceivedByCenter,
        TokenStatus::Bound,
        TokenStatus::StatementPrinted,
        TokenStatus::Issued,
    ];
    for step in path {
        if to == TokenStatus::Loaded {
            return;
        }
        let binding = (step == TokenStatus::Bound).then(|| Binding {
            person: t.holder.clone(),
            sites: vec![site.to_owned()],
            dates: vec![EXAM_DAY.to_owned()],
        });
        body.set_status(id, step, binding, now).unwrap();
        if step == to {
            return;
        }
    }
    if to.is_blocked() {
        body.set_status(id, to, None, now).unwrap();
    }
}

/// Sends `entry` and asserts the exact refusal and that the center stored nothing.
async fn refused(
    fx: &CenterFixture,
    center: &konvert_center::service::RunningCenter,
    site: &SiteFixture,
    entry: &konvert_replication::OutboxEntry,
    expected: RejectReason,
    case: &str,
) {
    let (records, files) = (center.inbox.len(), stored_files(&fx.center_dir()));
    match site.send(center.addr, fx.init.receipt_public, entry).await {
        Outcome::Rejected { reason, detail } => {
            assert_eq!(reason, expected, "{case}: {detail}");
            assert!(!detail.is_empty(), "{case}: the refusal says why");
        }
        Outcome::Delivered(_) => panic!("{case}: accepted"),
        Outcome::Held { .. } => panic!("{case}: the center is no relay"),
    }
    assert_eq!(center.inbox.len(), records, "{case}: an inbox record was written");
    assert_eq!(stored_files(&fx.center_dir()), files, "{case}: an envelope was stored");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_center_refuses_every_signer_the_registry_does_not_allow_and_stores_nothing() {
    let fx = CenterFixture::new("127.0.0.1:0".parse().unwrap());
    let good = fx.issue_token("0101");
    let other = fx.issue_token("0202");
    let cfg = fx.register(&[(&good, "0101"), (&other, "0202")]);
    let center = konvert_center::serve(&cfg).await.unwrap();
    let site = fx.enroll("0101", center.addr);
    let site2 = fx.enroll("0202", center.addr);

    // Every status other than Issued: four not yet issued, three blocked.
    let statuses = [
        (TokenStatus::Loaded, RejectReason::TokenNotIssued),
        (TokenStatus::ReceivedByCenter, RejectReason::TokenNotIssued),
        (TokenStatus::Bound, RejectReason::TokenNotIssued),
        (TokenStatus::StatementPrinted, RejectReason::TokenNotIssued),
        (TokenStatus::Lost, RejectReason::TokenBlocked),
        (TokenStatus::Compromised, RejectReason::TokenBlocked),
        (TokenStatus::Broken, RejectReason::TokenBlocked),
    ];
    let tokens: Vec<_> = statuses
        .iter()
        .map(|(s, _)| token(&fx, &format!("TK-{}", s.as_str())))
        .collect();
    // A token bound to site 0202 only, and a center specialist's token.
    let (elsewhere, elsewhere_key) = token(&fx, "TK-ELSEWHERE");
    let (specialist, specialist_key) = token(&fx, "TK-SPECIALIST");
    let v = fx.publish(|body| {
        for ((status, _), (t, _)) in statuses.iter().zip(&tokens) {
            add_at(body, t, "0101", *status);
        }
        add_at(body, &elsewhere, "0202", TokenStatus::Issued);
        add_at(body, &specialist, "0101", TokenStatus::Issued);
        let i = body.tokens.iter().position(|t| t.token_id == "TK-SPECIALIST").unwrap();
        body.tokens[i].role = TokenRole::CenterSpecialist;
    });
    wait_for_registry(&center, v).await;

    for (i, ((status, reason), (_, key))) in statuses.iter().zip(&tokens).enumerate() {
        let entry = site.seal_small(&format!("{:04}", 10 + i), key, EXAM_DAY, now_unix_ms());
        refused(&fx, &center, &site, &entry, *reason, status.as_str()).await;
    }
    let entry = site.seal_small("0030", &elsewhere_key, EXAM_DAY, now_unix_ms());
    refused(&fx, &center, &site, &entry, RejectReason::TokenNotForSite, "wrong site").await;
    let entry = site.seal_small("0031", &site.signer, "2026-06-02", now_unix_ms());
    refused(&fx, &center, &site, &entry, RejectReason::TokenNotForDate, "wrong date").await;
    let entry = site.seal_small("0032", &specialist_key, EXAM_DAY, now_unix_ms());
    refused(&fx, &center, &site, &entry, RejectReason::NotAMemberToken, "specialist").await;
    let stranger = SigningKey::generate().unwrap();
    let entry = site.seal_small("0033", &stranger, EXAM_DAY, now_unix_ms());
    refused(&fx, &center, &site, &entry, RejectReason::UnknownSigner, "stranger").await;

    // A station delivering another site's packet: 0202's station offers 0101's envelope.
    let theirs = site.seal_small("0034", &site.signer, EXAM_DAY, now_unix_ms());
    let copy = site2.outbox.envelope_path(&theirs);
    std::fs::copy(site.outbox.envelope_path(&theirs), &copy).unwrap();
    refused(
        &fx,
        &center,
        &site2,
        &theirs,
        RejectReason::SiteMismatch,
        "another site's packet",
    )
    .await;

    // The good token still delivers: the refusals changed nothing for it.
    match site.send(center.addr, fx.init.receipt_public, &theirs).await {
        Outcome::Delivered(_) => {}
        other => panic!("the issued token's packet was refused: {other:?}"),
    }
    assert_eq!(center.inbox.len(), 1);
    center.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_block_refuses_back_dated_packets_and_flags_what_the_token_signed_before() {
    let fx = CenterFixture::new("127.0.0.1:0".parse().unwrap());
    let member = fx.issue_token("0101");
    let cfg = fx.register(&[(&member, "0101")]);
    let center = konvert_center::serve(&cfg).await.unwrap();
    let site = fx.enroll("0101", center.addr);

    // Delivered while the token was good.
    let before = site.seal_small("0001", &site.signer, EXAM_DAY, now_unix_ms());
    assert!(matches!(
        site.send(center.addr, fx.init.receipt_public, &before).await,
        Outcome::Delivered(_)
    ));
    // Sealed now but claiming to be from two hours ago, before the block.
    let back_dated = site.seal_small("0002", &site.signer, EXAM_DAY, now_unix_ms() - 2 * 3_600_000);

    let v = fx.publish(|body| {
        body.set_status(&member.token_id, TokenStatus::Compromised, None, now_unix_ms())
            .unwrap();
    });
    wait_for_registry(&center, v).await;
    refused(
        &fx,
        &center,
        &site,
        &back_dated,
        RejectReason::TokenBlocked,
        "back-dated",
    )
    .await;

    let flags = konvert_center::review::ReviewDesk::open(&cfg.data_dir)
        .unwrap()
        .list()
        .unwrap();
    assert_eq!(flags.len(), 1, "{flags:?}");
    assert_eq!(flags[0].packet_id, before.offer.packet_id);
    assert_eq!(flags[0].status, "compromised");
    assert_eq!(flags[0].token_id, member.token_id);
    assert_eq!(flags[0].registry_version, v);
    center.shutdown().await;

    // Every decision is in the center's audit log, chained and checkpointed with the
    // receipt key; editing one decision afterwards is caught and named.
    use konvert_crypto::audit::{self, AuditAction, Finding, Record};
    let log_path = cfg.data_dir.join(konvert_center::service::AUDIT_LOG);
    let log = std::fs::read(&log_path).unwrap();
    let head = audit::read_head(&audit::head_path(&log_path)).unwrap();
    let report = audit::verify(&log, head.as_ref(), &[fx.init.receipt_public]);
    assert!(report.is_intact(), "{:?}", report.finding);
    let entries: Vec<_> = audit::parse(&log)
        .records
        .into_iter()
        .filter_map(|r| match r.record {
            Record::Entry { entry, .. } => Some(entry),
            _ => None,
        })
        .collect();
    let accepted = entries.iter().find(|e| e.action == AuditAction::PacketAccept).unwrap();
    assert!(accepted.subject.starts_with(&before.offer.packet_id));
    let rejected = entries.iter().find(|e| e.action == AuditAction::PacketReject).unwrap();
    assert!(rejected.subject.starts_with(&back_dated.offer.packet_id));
    assert!(rejected.detail.starts_with("token_blocked:"), "{}", rejected.detail);
    assert!(entries.iter().any(|e| e.action.as_str() == "registry.take"));
    let at = log.windows(13).position(|w| w == b"token_blocked").unwrap();
    let mut edited = log.clone();
    edited[at] = b'T';
    let report = audit::verify(&edited, head.as_ref(), &[fx.init.receipt_public]);
    assert!(
        matches!(report.finding, Some(Finding::Edited { seq, .. }) if seq == rejected.seq),
        "{:?}",
        report.finding
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rotation_keeps_old_packets_openable_for_the_grace_period_then_refuses_them() {
    let fx = CenterFixture::new("127.0.0.1:0".parse().unwrap());
    let member = fx.issue_token("0101");
    let cfg = fx.register(&[(&member, "0101")]);
    let center = konvert_center::serve(&cfg).await.unwrap();
    let site = fx.enroll("0101", center.addr);
    // Two packets sealed to the first center key; one is delivered.
    let delivered = site.seal_small("0001", &site.signer, EXAM_DAY, now_unix_ms());
    let Outcome::Delivered(first) = site.send(center.addr, fx.init.receipt_public, &delivered).await else {
        panic!("not delivered")
    };
    let late = site.seal_small("0002", &site.signer, EXAM_DAY, now_unix_ms());
    let late_in_grace = site.seal_small("0003", &site.signer, EXAM_DAY, now_unix_ms());

    // Rotate with a grace period: the old key still opens.
    let new_key = RecipientSecretKey::generate().unwrap().public_key();
    let v = fx.publish(|body| body.rotate_center_key(new_key, now_unix_ms() + 3_600_000).unwrap());
    wait_for_registry(&center, v).await;
    assert!(matches!(
        site.send(center.addr, fx.init.receipt_public, &late_in_grace).await,
        Outcome::Delivered(_)
    ));
    // The grace period ends; the old key is destroyed.
    let v = fx.publish(|body| {
        for k in &mut body.center_keys {
            if let konvert_crypto::registry::CenterKeyState::Retiring { until_unix_ms } = &mut k.state {
                *until_unix_ms = now_unix_ms();
            }
        }
        assert_eq!(body.retire_expired_center_keys(now_unix_ms()).len(), 1);
    });
    wait_for_registry(&center, v).await;
    refused(&fx, &center, &site, &late, RejectReason::DeadCenterKey, "destroyed key").await;
    // A replay of the packet delivered before rotation gets its original receipt, and the
    // store is unchanged.
    let stored = stored_files(&fx.center_dir());
    let again = match site.send(center.addr, fx.init.receipt_public, &delivered).await {
        Outcome::Delivered(r) => r,
        other => panic!("replay: {other:?}"),
    };
    assert_eq!(again, first, "a replay gets the original receipt");
    assert_eq!(stored_files(&fx.center_dir()), stored);
    // The station takes the new registry on its next connection, and seals to the new key.
    // The push stays connected until it has (a push whose packets are all answered at once
    // could otherwise end before the registry's own stream is through).
    let more = Arc::new(AtomicBool::new(true));
    let flag = more.clone();
    let opts = PushOptions {
        max_wait: Duration::from_secs(20),
        more_coming: Some(more),
        on_event: Arc::new(move |ev| {
            if matches!(ev, PushEvent::Registry { version } if version == v) {
                flag.store(false, Ordering::Release);
            }
        }),
        ..Default::default()
    };
    let _ = push(&site.cfg, site.outbox.clone(), opts).await;
    assert_eq!(site.registry_version(), v);
    let resealed = site.seal_small("0004", &site.signer, EXAM_DAY, now_unix_ms());
    let header = std::fs::read(site.outbox.envelope_path(&resealed)).unwrap();
    let verified = konvert_crypto::envelope::verify(&header[..], &|_| Some(member.public)).unwrap();
    assert_eq!(verified.header().recipients.len(), 1);
    assert_eq!(verified.header().recipients[0].recipient, new_key.key_id());
    center.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_a_registry_in_force_the_center_refuses_and_stores_nothing() {
    let fx = CenterFixture::new("127.0.0.1:0".parse().unwrap());
    let member = fx.issue_token("0101");
    // Published valid for two seconds only.
    fx.officers
        .lock()
        .unwrap()
        .issue(&member, "0101", &[EXAM_DAY], now_unix_ms())
        .unwrap();
    fx.officers
        .lock()
        .unwrap()
        .publish_valid_for(now_unix_ms(), 2_000)
        .unwrap();
    let cfg = konvert_center::config::CenterConfig::load(&fx.init.config_path).unwrap();
    let center = konvert_center::serve(&cfg).await.unwrap();
    let site = fx.enroll("0101", center.addr);
    tokio::time::sleep(Duration::from_millis(2_100)).await;
    let entry = site.seal_small("0001", &site.signer, EXAM_DAY, now_unix_ms());
    refused(
        &fx,
        &center,
        &site,
        &entry,
        RejectReason::NoRegistry,
        "expired registry",
    )
    .await;
    // A damaged registry file is not taken: still nothing in force.
    let mut bytes = std::fs::read(&cfg.registry).unwrap();
    let last = bytes.len() - 1;
    bytes[last] ^= 1;
    std::fs::write(&cfg.registry, bytes).unwrap();
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(center.registry.in_force(now_unix_ms()).is_none());
    refused(
        &fx,
        &center,
        &site,
        &entry,
        RejectReason::NoRegistry,
        "damaged registry",
    )
    .await;
    center.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connected_stations_hold_a_new_registry_within_seconds_of_a_block() {
    let fx = CenterFixture::new("127.0.0.1:0".parse().unwrap());
    let sites = ["0101", "0202", "0303"];
    let tokens: Vec<TokenFile> = sites.iter().map(|s| fx.issue_token(s)).collect();
    let cfg = fx.register(&tokens.iter().zip(sites).collect::<Vec<_>>());
    let center = konvert_center::serve(&cfg).await.unwrap();
    let stations: Vec<SiteFixture> = sites.iter().map(|s| fx.enroll(s, center.addr)).collect();
    // Each station stays connected, as during its exam day.
    let more = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(true));
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
    let mut pushes = Vec::new();
    for (i, st) in stations.iter().enumerate() {
        let tx = tx.clone();
        let opts = PushOptions {
            max_wait: Duration::from_secs(60),
            on_event: std::sync::Arc::new(move |ev| {
                let _ = tx.send((i, ev));
            }),
            more_coming: Some(more.clone()),
            expected: None,
        };
        pushes.push(st.spawn_push(opts));
    }
    // Each first takes v1 on connecting.
    let mut at_v1 = 0;
    while at_v1 < sites.len() {
        if let (_, PushEvent::Registry { version: 1 }) = rx.recv().await.unwrap() {
            at_v1 += 1;
        }
    }
    let blocked_at = Instant::now();
    let v = fx.publish(|body| {
        body.set_status(&tokens[1].token_id, TokenStatus::Compromised, None, now_unix_ms())
            .unwrap();
    });
    let mut holding = std::collections::HashSet::new();
    while holding.len() < sites.len() {
        let (i, ev) = tokio::time::timeout(Duration::from_secs(10), rx.recv())
            .await
            .expect("every station holds the new registry within 10 s")
            .unwrap();
        if let PushEvent::Registry { version } = ev {
            if version == v {
                holding.insert(i);
            }
        }
    }
    let took = blocked_at.elapsed();
    eprintln!("registry v{v} reached {} connected stations in {took:?}", sites.len());
    for st in &stations {
        assert_eq!(st.registry_version(), v, "persisted before it counts");
    }
    more.store(false, std::sync::atomic::Ordering::Release);
    for p in pushes {
        p.await.unwrap().unwrap();
    }
    center.shutdown().await;
}

/// A registry body like the fixture's, at `version`, under `authority`.
fn body(version: u64, authority: Authority, now: u64) -> RegistryBody {
    RegistryBody {
        version,
        issued_at_unix_ms: now,
        expires_at_unix_ms: now + 86_400_000,
        authority,
        tokens: vec![],
        center_keys: vec![konvert_crypto::registry::CenterKeyRecord {
            key: RecipientSecretKey::generate().unwrap().public_key(),
            state: konvert_crypto::registry::CenterKeyState::Active,
        }],
        agreement_keys: Vec::new(),
    }
}

fn reason(e: konvert_crypto::Error) -> RegistryRefusal {
    match e {
        konvert_crypto::Error::Registry { reason, .. } => reason,
        other => panic!("not a registry refusal: {other}"),
    }
}

#[test]
fn a_station_refuses_every_bad_registry_and_keeps_its_trust() {
    let dir = tempfile::tempdir().unwrap();
    let now = now_unix_ms();
    let officers: Vec<SigningKey> = (0..3).map(|_| SigningKey::generate().unwrap()).collect();
    let authority = Authority {
        officers: officers.iter().map(|o| o.verifying_key()).collect(),
        threshold: 2,
    };
    let store = RegistryStore::open(dir.path()).unwrap();
    store.anchor(authority.clone()).unwrap();
    let v2 = SignedRegistry::sign(&body(2, authority.clone(), now), &[&officers[0], &officers[1]]).unwrap();
    store.offer(&v2, now).unwrap();
    let trusted = store.trust().unwrap().unwrap();

    let outsider = SigningKey::generate().unwrap();
    let one_short = SignedRegistry::sign(&body(3, authority.clone(), now), &[&officers[0]]).unwrap();
    let with_outsider = SignedRegistry::sign(&body(3, authority.clone(), now), &[&officers[0], &outsider]).unwrap();
    let twice_same = SignedRegistry::sign(&body(3, authority.clone(), now), &[&officers[0], &officers[0]]).unwrap();
    let older = SignedRegistry::sign(&body(1, authority.clone(), now), &[&officers[0], &officers[1]]).unwrap();
    let mut expired_body = body(3, authority.clone(), now);
    expired_body.expires_at_unix_ms = now - 1;
    let expired = SignedRegistry::sign(&expired_body, &[&officers[0], &officers[1]]).unwrap();
    let mut flipped = SignedRegistry::sign(&body(3, authority.clone(), now), &[&officers[0], &officers[1]]).unwrap();
    let mid = flipped.body.len() / 2;
    flipped.body[mid] ^= 0x01;
    let same_version_other =
        SignedRegistry::sign(&body(2, authority.clone(), now), &[&officers[1], &officers[2]]).unwrap();
    // New officers, signed by the old ones only (TUF: the new threshold must sign too).
    let new_officers: Vec<SigningKey> = (0..2).map(|_| SigningKey::generate().unwrap()).collect();
    let new_authority = Authority {
        officers: new_officers.iter().map(|o| o.verifying_key()).collect(),
        threshold: 2,
    };
    let unsigned_by_new =
        SignedRegistry::sign(&body(3, new_authority.clone(), now), &[&officers[0], &officers[1]]).unwrap();

    let cases: Vec<(&str, &SignedRegistry, RegistryRefusal)> = vec![
        ("one signature short", &one_short, RegistryRefusal::NotEnoughSignatures),
        (
            "a non-officer's signature",
            &with_outsider,
            RegistryRefusal::NotEnoughSignatures,
        ),
        (
            "one officer signing twice",
            &twice_same,
            RegistryRefusal::NotEnoughSignatures,
        ),
        ("an older version", &older, RegistryRefusal::Rollback),
        ("past expiry", &expired, RegistryRefusal::Expired),
        ("a bit flip", &flipped, RegistryRefusal::NotEnoughSignatures),
        (
            "another registry under v2",
            &same_version_other,
            RegistryRefusal::Equivocation,
        ),
        (
            "new officers without their signatures",
            &unsigned_by_new,
            RegistryRefusal::NewAuthorityUnsigned,
        ),
    ];
    for (case, registry, expected) in cases {
        let err = store.offer(registry, now).unwrap_err();
        assert_eq!(reason(err), expected, "{case}");
        assert_eq!(store.trust().unwrap().unwrap(), trusted, "{case}: the trust changed");
        assert_eq!(
            store.current(now).unwrap().unwrap().version,
            2,
            "{case}: the registry changed"
        );
    }
    // The officers' handover done right: old and new thresholds both sign.
    let handover = SignedRegistry::sign(
        &body(3, new_authority, now),
        &[&officers[0], &officers[1], &new_officers[0], &new_officers[1]],
    )
    .unwrap();
    assert_eq!(store.offer(&handover, now).unwrap().version, 3);
    // From now on the old officers alone are not enough.
    let old_only = SignedRegistry::sign(&body(4, authority, now), &[&officers[0], &officers[1]]).unwrap();
    assert_eq!(
        reason(store.offer(&old_only, now).unwrap_err()),
        RegistryRefusal::NotEnoughSignatures
    );
}
