#![allow(clippy::unwrap_used)]

use std::time::Duration;

use super::*;
use crate::suite_tests::{packet, page};
use crate::test_cluster::TestCluster;

/// The suite's opener for PostgreSQL: a database per test in the binary's shared cluster.
fn pg(name: &str) -> Option<Box<dyn Fn() -> Box<dyn Records>>> {
    let url = TestCluster::shared()?.database(name);
    Some(Box::new(move || {
        Box::new(PgRecords::connect(&url).unwrap()) as Box<dyn Records>
    }))
}

crate::records_suite!(pg);

fn schema_version(url: &str) -> i64 {
    let mut c = Client::connect(url, NoTls).unwrap();
    c.query_one("SELECT version FROM konvert_schema", &[]).unwrap().get(0)
}

#[test]
fn an_older_schema_is_migrated_forward_keeping_its_records() {
    let Some(cluster) = TestCluster::shared() else { return };
    let url = cluster.database("older_schema");
    {
        let v1 = PgRecords::connect_at(&url, 1).unwrap();
        assert!(v1.register(&packet(1), &[page(1, 0)]).unwrap());
    }
    assert_eq!(schema_version(&url), 1);
    let r = PgRecords::connect(&url).unwrap();
    assert_eq!(schema_version(&url), LATEST);
    assert_eq!(r.packets().unwrap(), vec![packet(1)]);
    assert_eq!(r.pages().unwrap(), vec![page(1, 0)]);
    let mut c = Client::connect(&url, NoTls).unwrap();
    let index: i64 = c
        .query_one("SELECT count(*) FROM pg_indexes WHERE indexname = 'findings_open'", &[])
        .unwrap()
        .get(0);
    assert_eq!(index, 1, "migration 2 ran");
    // Opening again changes nothing.
    drop(r);
    PgRecords::connect(&url).unwrap();
    assert_eq!(schema_version(&url), LATEST);
}

#[test]
fn a_newer_schema_is_refused_and_left_untouched() {
    let Some(cluster) = TestCluster::shared() else { return };
    let url = cluster.database("newer_schema");
    PgRecords::connect(&url).unwrap();
    let newer = LATEST + 7;
    Client::connect(&url, NoTls)
        .unwrap()
        .execute("UPDATE konvert_schema SET version = $1", &[&newer])
        .unwrap();
    let err = PgRecords::connect(&url).unwrap_err();
    match &err {
        Error::NewerSchema { found, known, .. } => assert_eq!((*found, *known), (newer, LATEST)),
        other => panic!("expected NewerSchema, got {other:?}"),
    }
    let message = err.to_string();
    assert!(message.contains(&format!("schema version {newer}")), "{message}");
    assert!(message.contains(&format!("up to {LATEST}")), "{message}");
    assert!(message.contains("restore a backup"), "{message}");
    assert_eq!(schema_version(&url), newer);
}

#[test]
fn konverts_opening_a_fresh_database_at_once_migrate_it_once() {
    let Some(cluster) = TestCluster::shared() else { return };
    let url = cluster.database("fresh_at_once");
    let threads: Vec<_> = (0..4)
        .map(|_| {
            let url = url.clone();
            std::thread::spawn(move || PgRecords::connect(&url).map(|_| ()))
        })
        .collect();
    for t in threads {
        t.join().unwrap().unwrap();
    }
    assert_eq!(schema_version(&url), LATEST);
}

#[test]
fn nothing_listening_is_a_clear_error() {
    // A port just found free on loopback: nothing listens there.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let err = PgRecords::connect(&format!("postgresql://konvert@127.0.0.1:{port}/records")).unwrap_err();
    assert!(matches!(err, Error::Database { .. }), "{err:?}");
    let message = err.to_string();
    assert!(
        message.contains(&format!("127.0.0.1:{port}/records")) && message.contains("check that PostgreSQL runs"),
        "{message}"
    );
}

#[test]
fn a_password_never_shows_in_errors() {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let err = PgRecords::connect(&format!("postgresql://konvert:s3cr3t@127.0.0.1:{port}/records")).unwrap_err();
    assert!(!err.to_string().contains("s3cr3t"), "{err}");
    assert!(!format!("{err:?}").contains("s3cr3t"), "{err:?}");
}

#[test]
fn a_remote_server_without_a_ca_is_refused_before_connecting() {
    // No connection is attempted: the TLS settings are checked first.
    let err = PgRecords::connect("postgresql://konvert@db.region.invalid/records").unwrap_err();
    assert!(matches!(err, Error::Connection { .. }), "{err:?}");
    assert!(err.to_string().contains("sslrootcert=<PEM file>"), "{err}");
    let err = PgRecords::connect("host=127.0.0.1 dbname=records sslmode=require").unwrap_err();
    assert!(err.to_string().contains("sslrootcert=<PEM file>"), "{err}");
    let err = PgRecords::connect("postgresql://127.0.0.1/records?sslmode=require&sslrootcert=/nonexistent/ca.pem")
        .unwrap_err();
    assert!(
        err.to_string().contains("cannot read sslrootcert /nonexistent/ca.pem"),
        "{err}"
    );
}

#[test]
fn root_cert_is_taken_out_of_both_url_forms() {
    assert_eq!(
        split_root_cert("postgresql://u@h/db?sslmode=require&sslrootcert=/a/ca.pem&application_name=k"),
        (
            "postgresql://u@h/db?sslmode=require&application_name=k".to_owned(),
            Some("/a/ca.pem".to_owned())
        )
    );
    assert_eq!(
        split_root_cert("postgresql://u@h/db?sslrootcert=/a/ca.pem"),
        ("postgresql://u@h/db".to_owned(), Some("/a/ca.pem".to_owned()))
    );
    assert_eq!(
        split_root_cert("host=h sslrootcert=/a/ca.pem dbname=db"),
        ("host=h dbname=db".to_owned(), Some("/a/ca.pem".to_owned()))
    );
    assert_eq!(
        split_root_cert("host=h dbname=db"),
        ("host=h dbname=db".to_owned(), None)
    );
}

/// PostgreSQL dies in the middle of registering a packet (after the packet's row, while its
/// pages are written): the call fails with a clear error, nothing of it is there after the
/// restart, and the same handle registers it whole once PostgreSQL is back.
#[test]
fn postgres_dying_mid_registration_leaves_nothing_half_applied() {
    let Some(cluster) = TestCluster::start() else { return };
    let url = cluster.database("records");
    let r = PgRecords::connect(&url).unwrap();
    assert!(r.register(&packet(1), &[page(1, 0)]).unwrap());
    // A trigger that holds the pages' statement long enough to kill the server under it.
    Client::connect(&url, NoTls)
        .unwrap()
        .batch_execute(
            "CREATE FUNCTION slow() RETURNS trigger LANGUAGE plpgsql AS
                 $$ BEGIN PERFORM pg_sleep(30); RETURN NULL; END $$;
             CREATE TRIGGER slow BEFORE INSERT ON pages FOR EACH STATEMENT EXECUTE FUNCTION slow();",
        )
        .unwrap();
    let started = std::time::Instant::now();
    let err = std::thread::scope(|s| {
        let call = s.spawn(|| r.register(&packet(2), &[page(2, 0), page(2, 1)]));
        std::thread::sleep(Duration::from_millis(700));
        cluster.stop_now();
        call.join().unwrap().unwrap_err()
    });
    assert!(
        started.elapsed() < Duration::from_secs(20),
        "the call waited for the trigger"
    );
    assert!(matches!(err, Error::Database { .. }), "{err:?}");
    assert!(err.to_string().contains("applied whole or not at all"), "{err}");

    // While it is down: every call is the same clear error, nothing panics.
    let err = r.is_registered(&[2; 32]).unwrap_err();
    assert!(err.to_string().contains("check that PostgreSQL runs"), "{err}");
    assert!(matches!(PgRecords::connect(&url), Err(Error::Database { .. })));

    cluster.start_again();
    Client::connect(&url, NoTls)
        .unwrap()
        .batch_execute("DROP TRIGGER slow ON pages")
        .unwrap();
    // The same handle reconnects; packet 2 is not there, neither its row nor a page.
    assert!(!r.is_registered(&[2; 32]).unwrap());
    assert_eq!(r.packets().unwrap(), vec![packet(1)]);
    assert_eq!(r.pages().unwrap(), vec![page(1, 0)]);
    assert!(r.register(&packet(2), &[page(2, 0), page(2, 1)]).unwrap());
    assert_eq!(r.pages().unwrap(), vec![page(1, 0), page(2, 0), page(2, 1)]);
}

/// The center's commands run inside a tokio runtime and call the records synchronously
/// there, as they do sled: connecting, every call and dropping must work there too.
#[tokio::test]
async fn usable_from_inside_a_runtime() {
    let Some(cluster) = TestCluster::shared() else { return };
    let url = cluster.database("inside_a_runtime");
    let r = PgRecords::connect(&url).unwrap();
    assert!(r.register(&packet(1), &[page(1, 0)]).unwrap());
    assert_eq!(r.pages().unwrap(), vec![page(1, 0)]);
    drop(r);
    // And from a plain thread afterwards, the records are there.
    let again = std::thread::spawn(move || PgRecords::connect(&url).unwrap().packets().unwrap());
    assert_eq!(again.join().unwrap(), vec![packet(1)]);
}

/// A CA and a server certificate for 127.0.0.1, as PEM: (CA certificate, server
/// certificate, server key).
fn test_pki() -> (String, String, String) {
    use rcgen::{BasicConstraints, CertificateParams, IsCa, Issuer, KeyPair};
    let ca_key = KeyPair::generate().unwrap();
    let mut ca_params = CertificateParams::new(Vec::<String>::new()).unwrap();
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    let ca = ca_params.self_signed(&ca_key).unwrap();
    let issuer = Issuer::new(ca_params, &ca_key);
    let server_key = KeyPair::generate().unwrap();
    let server = CertificateParams::new(vec!["127.0.0.1".to_owned(), "localhost".to_owned()])
        .unwrap()
        .signed_by(&server_key, &issuer)
        .unwrap();
    (ca.pem(), server.pem(), server_key.serialize_pem())
}

fn encrypted(r: &PgRecords) -> bool {
    r.with(|c| {
        Ok(
            c.query_one("SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()", &[])
                .unwrap()
                .get(0),
        )
    })
    .unwrap()
}

/// sslmode=require: TLS (rustls on ring) verified against sslrootcert; a server whose
/// certificate another CA signed is refused; without sslmode, loopback stays plain.
#[test]
fn tls_when_the_url_asks_verified_against_its_ca() {
    let Some(cluster) = TestCluster::init(&["ssl=on", "ssl_cert_file=server.crt", "ssl_key_file=server.key"]) else {
        return;
    };
    let (ca, cert, key) = test_pki();
    cluster.write_file("server.crt", cert.as_bytes());
    cluster.write_file("server.key", key.as_bytes());
    cluster.start_again();
    let url = cluster.database("records");
    let files = tempfile::tempdir().unwrap();
    let ca_file = files.path().join("ca.pem");
    std::fs::write(&ca_file, &ca).unwrap();
    let (other_ca, _, _) = test_pki();
    let other_file = files.path().join("other.pem");
    std::fs::write(&other_file, &other_ca).unwrap();

    let tls = PgRecords::connect(&format!("{url}?sslmode=require&sslrootcert={}", ca_file.display())).unwrap();
    assert!(encrypted(&tls));
    assert!(tls.register(&packet(1), &[page(1, 0)]).unwrap());
    let plain = PgRecords::connect(&url).unwrap();
    assert!(!encrypted(&plain));
    assert_eq!(plain.packets().unwrap(), vec![packet(1)]);

    let err = PgRecords::connect(&format!("{url}?sslmode=require&sslrootcert={}", other_file.display())).unwrap_err();
    assert!(matches!(err, Error::Database { .. }), "{err:?}");
    assert!(err.to_string().contains("invalid peer certificate"), "{err}");
}

/// The same seeded random operations on sled and on PostgreSQL: every answer and every
/// listing must be the same (the error's kind where one fails).
#[test]
fn postgres_answers_as_sled_does_op_for_op() {
    use rand::{Rng, SeedableRng};

    use crate::{DecisionKind, Finding, FindingKind, PageOutcome, PageStage, Role, SledRecords};

    let Some(cluster) = TestCluster::shared() else { return };
    let seed: u64 = std::env::var("KONVERT_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(16);
    eprintln!("seed {seed} (KONVERT_SEED replays it)");
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    let dir = tempfile::tempdir().unwrap();
    let sled = SledRecords::open(dir.path()).unwrap();
    let pg = PgRecords::connect(&cluster.database("op_for_op")).unwrap();
    let backends: [&dyn Records; 2] = [&sled, &pg];

    fn same<T: PartialEq + std::fmt::Debug>(op: &str, a: Result<T>, b: Result<T>) {
        match (&a, &b) {
            (Ok(x), Ok(y)) => assert_eq!(x, y, "{op}"),
            (Err(x), Err(y)) => assert_eq!(
                format!("{x:?}").split([' ', '{', '(']).next(),
                format!("{y:?}").split([' ', '{', '(']).next(),
                "{op}"
            ),
            _ => panic!("{op}: sled {a:?}, PostgreSQL {b:?}"),
        }
    }
    let ids = ["a", "b", "c", "Я", "d"];
    for step in 0..300u64 {
        let op = format!("step {step}");
        match rng.gen_range(0..8) {
            0 | 1 => {
                let e = rng.gen_range(0..6u8);
                let p = PacketEntry {
                    registered_at_unix_ms: rng.gen_range(0..3),
                    site: ["0101", "0202"][rng.gen_range(0..2)].into(),
                    ..packet(e)
                };
                let pages: Vec<PageEntry> = (0..rng.gen_range(0..4))
                    .map(|n| page(e, rng.gen_range(0..3) + n))
                    .collect();
                same(&op, sled.register(&p, &pages), pg.register(&p, &pages));
            }
            2 => {
                let outcomes: Vec<PageOutcome> = (0..rng.gen_range(0..5))
                    .map(|_| PageOutcome {
                        key: page(rng.gen_range(0..3), rng.gen_range(0..3)).key,
                        digest: [rng.gen_range(0..3); 32],
                        day: crate::suite_tests::day(),
                        site: "0101".into(),
                        room: konvert_exam::RoomId::new("0001").unwrap(),
                        participant: None,
                        what: format!("w{}", rng.gen_range(0..2)),
                        stage: PageStage::AwaitingVerifier,
                        presumed_empty: rng.gen(),
                    })
                    .collect();
                same(&op, sled.put_outcomes(&outcomes), pg.put_outcomes(&outcomes));
            }
            3 | 4 => {
                let found: Vec<Finding> = (0..rng.gen_range(0..4))
                    .map(|_| Finding {
                        id: ids[rng.gen_range(0..ids.len())].into(),
                        day: crate::suite_tests::day(),
                        site: ["0101", "0202"][rng.gen_range(0..2)].into(),
                        room: None,
                        packet: None,
                        page: None,
                        participant: None,
                        kind: FindingKind::CountsDisagree { detail: "x".into() },
                    })
                    .collect();
                let now = step * 10;
                same(&op, sled.put_findings(&found, now), pg.put_findings(&found, now));
            }
            5 => {
                let kind = DecisionKind::Close {
                    day: crate::suite_tests::day(),
                };
                same(
                    &op,
                    sled.decide("Иванова", Role::Administrator, step, kind.clone()),
                    pg.decide("Иванова", Role::Administrator, step, kind),
                );
            }
            6 => {
                let answer = konvert_replication::PacketAnswer {
                    site: "0101".into(),
                    packet_id: "p".into(),
                    version: 1,
                    digest: [rng.gen_range(0..3); 32],
                    outcome: konvert_replication::AnswerOutcome::Loaded,
                    pages: rng.gen_range(0..2),
                    answered_at_unix_ms: step,
                };
                same(&op, sled.put_answer(&answer), pg.put_answer(&answer));
            }
            _ => {
                let e = [rng.gen_range(0..6u8); 32];
                same(&op, sled.is_registered(&e), pg.is_registered(&e));
            }
        }
        if step % 25 == 24 || step == 299 {
            let [a, b] = backends;
            same(&op, a.packets(), b.packets());
            same(&op, a.pages(), b.pages());
            same(&op, a.outcomes(), b.outcomes());
            same(&op, a.findings(), b.findings());
            same(&op, a.decisions(), b.decisions());
            same(&op, a.answers(), b.answers());
            same(&op, a.plans(), b.plans());
        }
    }
}
