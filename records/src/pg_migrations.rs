//! The PostgreSQL records' schema, as numbered migrations. `konvert_schema` holds the
//! version a database is at; opening the records migrates an older database forward in one
//! transaction (all steps or none) and refuses a newer one untouched.
//!
//! Tables keep each record's postcard bytes (exactly what sled keeps) in `value`, next to a
//! column per field that is looked up or ordered on. Keys are `bytea` holding sled's key
//! bytes, so `ORDER BY key` lists records in sled's order; finding ids are `text` in the "C"
//! collation, which compares UTF-8 bytes as sled does.

use postgres::Client;

use crate::{Error, Result};

/// The migrations, in order: version `i + 1` is `MIGRATIONS[i]`. Never edit a released one;
/// append.
pub(crate) const MIGRATIONS: &[&str] = &[
    // 1: the records.
    r#"
    CREATE TABLE plans (
        key bytea PRIMARY KEY,
        date text NOT NULL,
        exam text NOT NULL,
        value bytea NOT NULL
    );
    CREATE TABLE packets (
        envelope bytea PRIMARY KEY,
        site text NOT NULL,
        packet_id text NOT NULL,
        version bigint NOT NULL,
        date text NOT NULL,
        exam text NOT NULL,
        value bytea NOT NULL
    );
    CREATE TABLE pages (
        key bytea PRIMARY KEY,
        envelope bytea NOT NULL,
        file bigint NOT NULL,
        page bigint NOT NULL,
        digest bytea NOT NULL,
        value bytea NOT NULL
    );
    CREATE TABLE outcomes (
        key bytea PRIMARY KEY,
        digest bytea NOT NULL,
        date text NOT NULL,
        exam text NOT NULL,
        site text NOT NULL,
        value bytea NOT NULL
    );
    CREATE TABLE findings (
        id text COLLATE "C" PRIMARY KEY,
        resolved boolean NOT NULL,
        value bytea NOT NULL
    );
    CREATE TABLE decisions (
        seq bigint PRIMARY KEY,
        value bytea NOT NULL
    );
    CREATE TABLE answers (
        digest bytea PRIMARY KEY,
        site text NOT NULL,
        packet_id text NOT NULL,
        version bigint NOT NULL,
        value bytea NOT NULL
    );
    "#,
    // 2: what processing looks up besides the keys: a packet's pages, a page by its digest
    // (duplicates across records), the findings still open (each run resolves them).
    r#"
    CREATE INDEX pages_by_envelope ON pages (envelope);
    CREATE INDEX pages_by_digest ON pages (digest);
    CREATE INDEX outcomes_by_digest ON outcomes (digest);
    CREATE INDEX findings_open ON findings (id) WHERE NOT resolved;
    "#,
    // 3: the mirror's state (pg_mirror.rs). A node is a smallint: 0 the federal node, 1–99 a
    // region; a kind is its `RecordKind::code`. Batches, receipts and checkpoints are the
    // audit trail: nothing here deletes them.
    r#"
    CREATE TABLE mirror_node (
        one boolean PRIMARY KEY DEFAULT true CHECK (one),
        node smallint NOT NULL
    );
    CREATE TABLE mirror_send (
        peer smallint NOT NULL,
        kind smallint NOT NULL,
        next_seq bigint NOT NULL,
        cut_through bigint NOT NULL,
        acked_through bigint NOT NULL,
        last_acked bytea NOT NULL,
        PRIMARY KEY (peer, kind),
        CHECK (acked_through <= cut_through AND cut_through < next_seq)
    );
    CREATE TABLE mirror_outbox (
        peer smallint NOT NULL,
        kind smallint NOT NULL,
        seq bigint NOT NULL,
        payload bytea NOT NULL,
        digest bytea NOT NULL,
        PRIMARY KEY (peer, kind, seq)
    );
    CREATE TABLE mirror_batches_out (
        peer smallint NOT NULL,
        kind smallint NOT NULL,
        first_seq bigint NOT NULL,
        last_seq bigint NOT NULL,
        digest bytea NOT NULL,
        bytes bytea NOT NULL,
        cut_at timestamptz NOT NULL DEFAULT now(),
        PRIMARY KEY (peer, kind, first_seq)
    );
    CREATE TABLE mirror_receipts_in (
        peer smallint NOT NULL,
        kind smallint NOT NULL,
        first_seq bigint NOT NULL,
        last_seq bigint NOT NULL,
        digest bytea NOT NULL,
        receipt bytea NOT NULL,
        received_at timestamptz NOT NULL DEFAULT now(),
        PRIMARY KEY (peer, kind, first_seq)
    );
    CREATE TABLE mirror_receive (
        sender smallint NOT NULL,
        kind smallint NOT NULL,
        next_seq bigint NOT NULL,
        last_batch bytea NOT NULL,
        batches bigint NOT NULL,
        PRIMARY KEY (sender, kind)
    );
    CREATE TABLE mirror_applied (
        sender smallint NOT NULL,
        kind smallint NOT NULL,
        seq bigint NOT NULL,
        payload bytea NOT NULL,
        digest bytea NOT NULL,
        batch bytea NOT NULL,
        PRIMARY KEY (sender, kind, seq)
    );
    CREATE TABLE mirror_batches_in (
        sender smallint NOT NULL,
        kind smallint NOT NULL,
        first_seq bigint NOT NULL,
        last_seq bigint NOT NULL,
        digest bytea NOT NULL,
        bytes bytea NOT NULL,
        receipt bytea NOT NULL,
        applied_at timestamptz NOT NULL DEFAULT now(),
        PRIMARY KEY (sender, kind, first_seq)
    );
    CREATE TABLE mirror_refusals (
        id bigserial PRIMARY KEY,
        sender smallint NOT NULL,
        kind smallint NOT NULL,
        first_seq bigint NOT NULL,
        digest bytea NOT NULL,
        reason bytea NOT NULL,
        reason_text text NOT NULL,
        refused_at timestamptz NOT NULL DEFAULT now()
    );
    "#,
    // 4: when each outbox row was written, so `mirror status` and the metrics give the lag
    // in time as well as in rows (PgMirror::status). Rows already there get the migration's
    // time: their true age is unknown, and "now" under-states it rather than inventing one.
    r#"
    ALTER TABLE mirror_outbox ADD COLUMN written_at timestamptz NOT NULL DEFAULT now();
    "#,
    // 5: the image store's references and the holds
    // of retention (retention.rs). Neither is ever deleted: a deleted image stays marked
    // deleted, a released hold marked released.
    r#"
    CREATE TABLE images (
        sha256 bytea PRIMARY KEY,
        deleted boolean NOT NULL,
        value bytea NOT NULL
    );
    CREATE TABLE holds (
        id bigint PRIMARY KEY,
        released boolean NOT NULL,
        value bytea NOT NULL
    );
    "#,
    // 6: what the mirror carries, in typed tables (mirror_rows.rs), per region: on ФИС the
    // regions' rows, on a region ФИС's rows to it and what the region planned. Planned
    // participants are also the consent allow-list both sides check rows against.
    r#"
    CREATE TABLE mirror_participants (
        region smallint NOT NULL,
        date text NOT NULL,
        exam text NOT NULL,
        participant text NOT NULL,
        site text NOT NULL,
        room text NOT NULL,
        seat text NOT NULL,
        kit bigint NOT NULL,
        PRIMARY KEY (region, date, exam, participant)
    );
    CREATE INDEX mirror_participants_by_code ON mirror_participants (region, participant);
    CREATE TABLE mirror_places (
        region smallint NOT NULL,
        date text NOT NULL,
        exam text NOT NULL,
        site text NOT NULL,
        room text NOT NULL,
        detail text NOT NULL,
        PRIMARY KEY (region, date, exam, site, room)
    );
    CREATE TABLE mirror_records (
        region smallint NOT NULL,
        kind smallint NOT NULL,
        seq bigint NOT NULL,
        date text,
        exam text,
        participant text,
        value bytea NOT NULL,
        PRIMARY KEY (region, kind, seq)
    );
    CREATE INDEX mirror_records_by_participant ON mirror_records (region, participant);
    "#,
    // 7: an applied row's payload is stored once, in the owner's signed batch
    // (`mirror_batches_in.bytes`, kept for the audit trail), no longer also in
    // `mirror_applied`: writing every row twice halved the federal node's apply rate
    // (`konvert bench mirror`). Nothing moves: every applied row was written in the same
    // statement as the batch that carries it, so the dropped column's bytes are all in
    // `mirror_batches_in.bytes` already (PgMirror::applied_rows reads them there). Nor
    // does it keep each row's digest and batch digest: both follow from the signed batch
    // whose rows cover the row's number (`OutboxRow::digest_of` its fields), and computing
    // and writing them was a third of what was left of an apply.
    // The signed batches are stored out of line uncompressed, as `COPY` stores rows: pglz
    // compressing every batch cost more than writing it, and the bytes are still stored
    // once where they were twice. Batches stored before keep their compression.
    r#"
    ALTER TABLE mirror_applied DROP COLUMN payload, DROP COLUMN digest, DROP COLUMN batch;
    ALTER TABLE mirror_batches_in ALTER COLUMN bytes SET STORAGE EXTERNAL;
    "#,
    // 8: a row applied once follows from the batches: the channel's checkpoint
    // (`mirror_receive.next_seq`, locked by each apply) only moves past a batch stored in
    // `mirror_batches_in` in the same transaction, and a batch's rows are its
    // `first_seq..=last_seq`, contiguous per channel. Writing each row's number again (a
    // heap row and a key per row) was most of what was left of an apply
    // (`konvert bench mirror`). The numbers stay readable as a view.
    // Nor do the typed records keep a row's payload a second time: it is in the owner's
    // outbox (`mirror_outbox.payload`) or the signed batch that brought it
    // (`mirror_batches_in.bytes`), both written in the same transaction as the typed row,
    // so nothing is lost (`mirror_outbox::held` reads it there). `mirror_records` is what
    // the rows say (day, participant) by number, to find them.
    r#"
    DROP TABLE mirror_applied;
    CREATE VIEW mirror_applied AS
        SELECT sender, kind, generate_series(first_seq, last_seq) AS seq FROM mirror_batches_in;
    ALTER TABLE mirror_records DROP COLUMN value;
    "#,
];

/// The newest schema version this build knows.
pub(crate) const LATEST: i64 = MIGRATIONS.len() as i64;

/// Advisory lock key that serializes konvert processes migrating the same database.
const LOCK: i64 = 0x6b6f_6e76_6572_7401;

/// Brings the database to version `upto` (at most [`LATEST`]), in one transaction; refuses
/// a database newer than [`LATEST`] without changing it. Returns the version found.
pub(crate) fn migrate(client: &mut Client, target: &str, upto: i64) -> Result<i64> {
    let db = |source| Error::database(target, source);
    let mut tx = client.transaction().map_err(db)?;
    // Two processes opening a fresh database at once: the second waits, then finds it done.
    tx.execute("SELECT pg_advisory_xact_lock($1)", &[&LOCK]).map_err(db)?;
    // `CREATE … IF NOT EXISTS` on a migrated database is answered with a NOTICE that the
    // client logs on every start; it says nothing an operator needs.
    tx.batch_execute("SET LOCAL client_min_messages = warning")
        .map_err(db)?;
    tx.batch_execute(
        "CREATE TABLE IF NOT EXISTS konvert_schema (
             one boolean PRIMARY KEY DEFAULT true CHECK (one),
             version bigint NOT NULL
         )",
    )
    .map_err(db)?;
    let found: i64 = match tx.query_opt("SELECT version FROM konvert_schema", &[]).map_err(db)? {
        Some(row) => row.try_get(0).map_err(db)?,
        None => 0,
    };
    if found > LATEST {
        // Dropping `tx` rolls back: the newer database is left exactly as it was.
        return Err(Error::NewerSchema {
            target: target.to_owned(),
            found,
            known: LATEST,
        });
    }
    if found >= upto {
        tx.commit().map_err(db)?;
        return Ok(found);
    }
    for (version, sql) in (1i64..).zip(MIGRATIONS) {
        if version > found && version <= upto {
            tracing::info!(target_db = target, version, "migrating the records' schema");
            tx.batch_execute(sql).map_err(db)?;
        }
    }
    tx.execute(
        "INSERT INTO konvert_schema (one, version) VALUES (true, $1)
         ON CONFLICT (one) DO UPDATE SET version = excluded.version",
        &[&upto],
    )
    .map_err(db)?;
    tx.commit().map_err(db)?;
    Ok(found)
}
