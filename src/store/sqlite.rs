//! The SQLite implementation of [`AcceptanceStore`] (SQLite 存储), for a single gateway instance
//! (or several on one host sharing the file).

use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::Duration;

use rusqlite::{Connection, OptionalExtension, Row, Transaction, TransactionBehavior, params};

use super::*;

/// The schema version kept in `PRAGMA user_version`.
const SCHEMA_VERSION: i64 = 3;
/// How long a writer waits for another connection's lock (another instance on the same file).
const BUSY_TIMEOUT: Duration = Duration::from_secs(5);
/// Error texts (often a remote body) are cut to this many bytes so one bad reply cannot bloat the store.
const MAX_ERROR_BYTES: usize = 4096;
/// Beijing time (北京时间), UTC+8 without daylight saving: the receipt number carries its date.
const BEIJING_OFFSET_SECS: i32 = 8 * 3600;

/// The SQLite implementation (SQLite 存储), for a single gateway instance.
///
/// One connection behind a mutex: rusqlite's `Connection` is not `Sync`, and SQLite serialises
/// writers anyway. Transactions are short and take the write lock up front (`BEGIN IMMEDIATE`),
/// so another process on the same file waits on the busy timeout instead of failing on upgrade.
///
/// Acceptances are committed in groups (组提交): each caller queues its acceptance, and whoever
/// holds the connection next commits everything queued in one transaction — one fsync for many
/// acknowledgements, so throughput holds under load while every 202 still follows its own
/// synchronous commit.
pub struct SqliteStore {
    conn: Mutex<Connection>,
    /// Acceptances waiting for the next group commit.
    pending: Mutex<Vec<PendingAccept>>,
}

/// Where a queued acceptance's outcome is left by the group commit that carried it.
type Slot = std::sync::Arc<Mutex<Option<Result<Accepted, StoreError>>>>;

/// One acceptance waiting for a group commit.
struct PendingAccept {
    new: NewAcceptance,
    slot: Slot,
}

/// Acceptances beyond this wait for the next group, so one transaction stays short.
const MAX_GROUP: usize = 512;

impl std::fmt::Debug for SqliteStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SqliteStore").finish_non_exhaustive()
    }
}

impl SqliteStore {
    /// Opens (creating on first start, with parent directories) the database at `path`: WAL
    /// journal, synchronous=FULL (every acknowledged acceptance survives power loss), foreign
    /// keys on, a busy timeout; creates the schema (tables acceptances, events; unique indexes on
    /// receipt, idempotency_key, application_id) idempotently with a schema version in
    /// `PRAGMA user_version`.
    pub fn open(path: &Path) -> Result<SqliteStore, StoreError> {
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).map_err(|source| StoreError::CreateDir { path: dir.to_path_buf(), source })?;
        }
        let open_err = |source| StoreError::Open { path: path.to_path_buf(), source };
        let mut conn = Connection::open(path).map_err(open_err)?;
        conn.busy_timeout(BUSY_TIMEOUT).map_err(open_err)?;
        let mode: String =
            conn.pragma_update_and_check(None, "journal_mode", "WAL", |row| row.get(0)).map_err(open_err)?;
        if !mode.eq_ignore_ascii_case("wal") {
            return Err(StoreError::Setup {
                path: path.to_path_buf(),
                what: format!(
                    "the file system does not support WAL (journal_mode stayed {mode}); \
                     put the store on a local disk, not a network share"
                ),
            });
        }
        Self::configure(&mut conn).map_err(open_err)?;
        Self::migrate(&mut conn)?;
        Ok(SqliteStore { conn: Mutex::new(conn), pending: Mutex::new(Vec::new()) })
    }

    /// An in-memory store for tests (内存存储，仅供测试).
    pub fn in_memory() -> Result<SqliteStore, StoreError> {
        let path = PathBuf::from(":memory:");
        let mut conn =
            Connection::open_in_memory().map_err(|source| StoreError::Open { path: path.clone(), source })?;
        Self::configure(&mut conn).map_err(|source| StoreError::Open { path, source })?;
        Self::migrate(&mut conn)?;
        Ok(SqliteStore { conn: Mutex::new(conn), pending: Mutex::new(Vec::new()) })
    }

    fn configure(conn: &mut Connection) -> rusqlite::Result<()> {
        // FULL: the WAL is synced on every commit, so a 202 is never answered for a write that a
        // power cut could undo (NORMAL would be durable only up to the last checkpoint).
        conn.pragma_update(None, "synchronous", "FULL")?;
        conn.pragma_update(None, "foreign_keys", "ON")?;
        conn.busy_timeout(BUSY_TIMEOUT)
    }

    fn migrate(conn: &mut Connection) -> Result<(), StoreError> {
        let db = |source| StoreError::Database { op: "schema setup", source };
        // IMMEDIATE: two instances starting together must not both create the schema.
        let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate).map_err(db)?;
        let version: i64 = tx.pragma_query_value(None, "user_version", |row| row.get(0)).map_err(db)?;
        if version > SCHEMA_VERSION {
            return Err(StoreError::SchemaTooNew { found: version, supported: SCHEMA_VERSION });
        }
        // Each step runs once, in order, so a store from any older version is brought up to date.
        if version < 1 {
            tx.execute_batch(SCHEMA_V1).map_err(db)?;
        }
        if version < 2 {
            tx.execute_batch(MIGRATE_V2).map_err(db)?;
        }
        if version < 3 {
            tx.execute_batch(MIGRATE_V3).map_err(db)?;
        }
        tx.pragma_update(None, "user_version", SCHEMA_VERSION).map_err(db)?;
        tx.commit().map_err(db)
    }

    /// Runs `f` in one write transaction (committed only if `f` succeeds).
    fn write<T>(
        &self,
        op: &'static str,
        f: impl FnOnce(&Transaction<'_>) -> Result<T, StoreError>,
    ) -> Result<T, StoreError> {
        let mut conn = self.conn.lock().map_err(|_| StoreError::Poisoned)?;
        let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate).map_err(db(op))?;
        let out = f(&tx)?;
        tx.commit().map_err(db(op))?;
        Ok(out)
    }

    /// Runs `f` on the connection for reads.
    fn read<T>(&self, f: impl FnOnce(&Connection) -> Result<T, StoreError>) -> Result<T, StoreError> {
        let conn = self.conn.lock().map_err(|_| StoreError::Poisoned)?;
        f(&conn)
    }
}

/// Version 1: acceptances, their timeline and the receipt counter.
const SCHEMA_V1: &str = "
CREATE TABLE IF NOT EXISTS counters (
    name  TEXT PRIMARY KEY,
    value INTEGER NOT NULL
);
INSERT OR IGNORE INTO counters (name, value) VALUES ('receipt', 0);
CREATE TABLE IF NOT EXISTS acceptances (
    id               INTEGER PRIMARY KEY,
    receipt          TEXT NOT NULL,
    application_id   TEXT NOT NULL,
    idempotency_key  TEXT,
    target           TEXT NOT NULL,
    matter_code      TEXT NOT NULL,
    window_id        TEXT NOT NULL,
    accepting_region TEXT NOT NULL,
    handling_region  TEXT NOT NULL,
    document         TEXT NOT NULL,
    state            TEXT NOT NULL,
    province_case_id TEXT,
    attempts         INTEGER NOT NULL DEFAULT 0,
    next_attempt_at  INTEGER NOT NULL,
    lease_until      INTEGER,
    last_error       TEXT,
    accepted_at      INTEGER NOT NULL,
    updated_at       INTEGER NOT NULL
);
CREATE UNIQUE INDEX IF NOT EXISTS acceptances_receipt ON acceptances (receipt);
CREATE UNIQUE INDEX IF NOT EXISTS acceptances_idempotency_key ON acceptances (idempotency_key);
CREATE UNIQUE INDEX IF NOT EXISTS acceptances_application_id ON acceptances (application_id);
CREATE INDEX IF NOT EXISTS acceptances_due ON acceptances (state, next_attempt_at);
CREATE TABLE IF NOT EXISTS events (
    id            INTEGER PRIMARY KEY,
    acceptance_id INTEGER NOT NULL REFERENCES acceptances (id),
    at            INTEGER NOT NULL,
    kind          TEXT NOT NULL,
    detail        TEXT
);
CREATE INDEX IF NOT EXISTS events_acceptance ON events (acceptance_id, id);
";

/// Version 2: multi-site joint acceptances (one record per party, under the joint record, sharing
/// its application id) and status polling with backoff.
const MIGRATE_V2: &str = "
ALTER TABLE acceptances ADD COLUMN kind TEXT NOT NULL DEFAULT 'single';
ALTER TABLE acceptances ADD COLUMN parent_receipt TEXT;
ALTER TABLE acceptances ADD COLUMN party TEXT;
ALTER TABLE acceptances ADD COLUMN deadline_at INTEGER;
ALTER TABLE acceptances ADD COLUMN absence TEXT;
ALTER TABLE acceptances ADD COLUMN next_poll_at INTEGER;
ALTER TABLE acceptances ADD COLUMN poll_interval_ms INTEGER;
DROP INDEX IF EXISTS acceptances_application_id;
CREATE UNIQUE INDEX acceptances_application_id ON acceptances (application_id) WHERE kind != 'part';
CREATE INDEX acceptances_parent ON acceptances (parent_receipt) WHERE parent_receipt IS NOT NULL;
CREATE INDEX acceptances_poll ON acceptances (next_poll_at) WHERE next_poll_at IS NOT NULL;
";

/// Version 3: the partner that accepted each record, so an application id or a key is answered
/// only to its own partner. Records from before have none.
const MIGRATE_V3: &str = "
ALTER TABLE acceptances ADD COLUMN partner TEXT;
";

const COLUMNS: &str = "receipt, application_id, idempotency_key, target, matter_code, window_id, accepting_region, \
     handling_region, document, state, province_case_id, attempts, next_attempt_at, last_error, accepted_at, updated_at, \
     kind, parent_receipt, party, deadline_at, absence, next_poll_at, poll_interval_ms, partner";
/// The number of columns in [`COLUMNS`]; a query may select more after them.
const COLUMN_COUNT: usize = 24;

fn db(op: &'static str) -> impl Fn(rusqlite::Error) -> StoreError {
    move |source| StoreError::Database { op, source }
}

fn from_row(row: &Row<'_>) -> rusqlite::Result<Acceptance> {
    Ok(Acceptance {
        receipt: row.get(0)?,
        application_id: row.get(1)?,
        idempotency_key: row.get(2)?,
        target: row.get(3)?,
        matter_code: row.get(4)?,
        window_id: row.get(5)?,
        accepting_region: row.get(6)?,
        handling_region: row.get(7)?,
        document: row.get(8)?,
        state: row.get(9)?,
        province_case_id: row.get(10)?,
        attempts: row.get(11)?,
        next_attempt_at: row.get(12)?,
        last_error: row.get(13)?,
        accepted_at: row.get(14)?,
        updated_at: row.get(15)?,
        kind: row.get(16)?,
        parent_receipt: row.get(17)?,
        party: row.get(18)?,
        deadline_at: row.get(19)?,
        absence: row.get(20)?,
        next_poll_at: row.get(21)?,
        poll_interval_ms: row.get(22)?,
        partner: row.get(23)?,
    })
}

fn find_by(conn: &Connection, column: &str, value: &str) -> rusqlite::Result<Option<Acceptance>> {
    // `column` is always one of our literals, never input. Parts share their joint record's
    // application id, so a lookup by application id finds the record the caller was given.
    let parts = if column == "application_id" { " AND kind != 'part'" } else { "" };
    conn.prepare_cached(&format!("SELECT {COLUMNS} FROM acceptances WHERE {column} = ?1{parts}"))?
        .query_row([value], from_row)
        .optional()
}

/// The row id, state and case number of a receipt, for transitions.
fn current(tx: &Connection, receipt: &str) -> rusqlite::Result<Option<(i64, String, Option<String>)>> {
    tx.prepare_cached("SELECT id, state, province_case_id FROM acceptances WHERE receipt = ?1")?
        .query_row([receipt], |row| Ok((row.get(0)?, row.get(1)?, row.get(2)?)))
        .optional()
}

fn add_event(tx: &Connection, id: i64, at: SystemTimeMs, kind: &str, detail: Option<&str>) -> rusqlite::Result<()> {
    tx.prepare_cached("INSERT INTO events (acceptance_id, at, kind, detail) VALUES (?1, ?2, ?3, ?4)")?
        .execute(params![id, at, kind, detail])
        .map(|_| ())
}

/// `TB` + yyyyMMdd (Beijing date of `accepted_at`) + a 10-digit sequence.
fn receipt_number(accepted_at: SystemTimeMs, seq: i64) -> Result<String, StoreError> {
    let invalid = || StoreError::InvalidInput {
        field: "accepted_at",
        reason: format!("{accepted_at} ms is not a representable time"),
    };
    let beijing = chrono::FixedOffset::east_opt(BEIJING_OFFSET_SECS).ok_or_else(invalid)?;
    let date = chrono::DateTime::from_timestamp_millis(accepted_at).ok_or_else(invalid)?.with_timezone(&beijing);
    Ok(format!("TB{}{seq:010}", date.format("%Y%m%d")))
}

/// Cuts `s` to at most `max` bytes on a character boundary.
fn truncate(s: &str, max: usize) -> &str {
    if s.len() <= max {
        return s;
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    &s[..end]
}

fn require(field: &'static str, value: &str) -> Result<(), StoreError> {
    if value.trim().is_empty() {
        return Err(StoreError::InvalidInput { field, reason: "must not be empty".into() });
    }
    Ok(())
}

fn to_i64(n: usize) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

impl SqliteStore {
    /// Claims up to `limit` records matching `filter` (a `WHERE … ORDER BY …` clause over `?1` =
    /// now) by running `mark` on each (`?1` = row id, `?2` = lease end, `?3` = now; it may use
    /// fewer). Select and mark share one IMMEDIATE transaction, so no other connection claims the
    /// same records in between.
    fn claim(
        &self,
        op: &'static str,
        filter: &str,
        mark: &str,
        now: SystemTimeMs,
        limit: usize,
        lease_ms: u64,
    ) -> Result<Vec<Acceptance>, StoreError> {
        if limit == 0 {
            return Ok(Vec::new());
        }
        let lease_until = now.saturating_add(i64::try_from(lease_ms).unwrap_or(i64::MAX));
        self.write(op, |tx| {
            let mut select = tx
                .prepare_cached(&format!("SELECT {COLUMNS}, id FROM acceptances WHERE {filter} LIMIT ?2"))
                .map_err(db(op))?;
            let rows = select
                .query_map(params![now, to_i64(limit)], |row| Ok((row.get::<_, i64>(COLUMN_COUNT)?, from_row(row)?)))
                .map_err(db(op))?
                .collect::<rusqlite::Result<Vec<_>>>()
                .map_err(db(op))?;
            let mut mark = tx.prepare_cached(mark).map_err(db(op))?;
            let arguments = [0, lease_until, now];
            let used = mark.parameter_count().min(arguments.len());
            let mut claimed = Vec::with_capacity(rows.len());
            for (id, acceptance) in rows {
                let mut bound = arguments;
                bound[0] = id;
                mark.execute(rusqlite::params_from_iter(&bound[..used])).map_err(db(op))?;
                claimed.push(acceptance);
            }
            Ok(claimed)
        })
    }

    /// Waits for (or leads) the group commit of an acceptance already queued in `slot`.
    fn accept_queued(&self, slot: &Slot) -> Result<Accepted, StoreError> {
        // Whoever holds the connection commits every queued acceptance (up to MAX_GROUP), so
        // while one group's fsync runs, the next group gathers behind the lock. Ours is in some
        // group: either a previous holder committed it, or we lead the next one.
        loop {
            let mut conn = self.conn.lock().map_err(|_| StoreError::Poisoned)?;
            if let Some(outcome) = slot.lock().map_err(|_| StoreError::Poisoned)?.take() {
                return outcome;
            }
            let group: Vec<PendingAccept> = {
                let mut pending = self.pending.lock().map_err(|_| StoreError::Poisoned)?;
                let take = pending.len().min(MAX_GROUP);
                pending.drain(..take).collect()
            };
            if group.is_empty() {
                return Err(StoreError::Poisoned); // cannot happen: ours is queued until answered
            }
            let outcomes = commit_group(&mut conn, group.iter().map(|p| &p.new));
            for (pending, outcome) in group.into_iter().zip(outcomes) {
                if let Ok(mut guard) = pending.slot.lock() {
                    *guard = Some(outcome);
                }
            }
        }
    }
}

/// Commits a group of acceptances in one transaction. One refusal (a conflict) does not undo
/// the others, since a refused acceptance writes nothing; a database error or a failed commit
/// fails them all (none was acknowledged).
fn commit_group<'a>(
    conn: &mut Connection,
    group: impl ExactSizeIterator<Item = &'a NewAcceptance>,
) -> Vec<Result<Accepted, StoreError>> {
    let count = group.len();
    let fail_all = |err: rusqlite::Error| {
        let text = err.to_string();
        (0..count).map(|_| Err(StoreError::GroupCommit { detail: text.clone() })).collect()
    };
    let tx = match conn.transaction_with_behavior(TransactionBehavior::Immediate) {
        Ok(tx) => tx,
        Err(err) => return fail_all(err),
    };
    let mut outcomes = Vec::with_capacity(count);
    for new in group {
        // An acceptance is refused (a conflict, an unusable time) before it writes anything, so
        // the group needs no savepoints; a database error fails the whole group.
        match accept_one(&tx, new) {
            Err(StoreError::Database { source, .. }) => return fail_all(source),
            outcome => outcomes.push(outcome),
        }
    }
    match tx.commit() {
        Ok(()) => outcomes,
        Err(err) => fail_all(err),
    }
}

/// One acceptance inside a group's transaction: the existing record for a known key or
/// application id, else a new record (and, for joint handling, one per party).
fn accept_one(tx: &Connection, new: &NewAcceptance) -> Result<Accepted, StoreError> {
    let op = "accept";
    // (No let-chains: rust-version is 1.85.)
    if let Some(key) = &new.idempotency_key
        && let Some(existing) = find_by(tx, "idempotency_key", key).map_err(db(op))?
    {
        // A key names one application: replaying another's receipt would hide a lost application.
        if existing.application_id != new.application_id {
            return Err(StoreError::KeyReused { application_id: existing.application_id, receipt: existing.receipt });
        }
        return Ok(Accepted { receipt: existing.receipt.clone(), created: false, acceptance: existing });
    }
    if let Some(existing) = find_by(tx, "application_id", &new.application_id).map_err(db(op))? {
        // Another partner's application (or one stored before partners were recorded): neither
        // its receipt nor its state is any of this one's.
        if existing.partner.as_deref() != Some(new.partner.as_str()) {
            return Err(StoreError::IdTaken { application_id: new.application_id.clone() });
        }
        if new.idempotency_key.is_some() {
            // The key did not match above, so this is a second acceptance of the same
            // application: refusing is safer than handing out someone else's receipt.
            return Err(StoreError::Conflict { application_id: new.application_id.clone(), receipt: existing.receipt });
        }
        return Ok(Accepted { receipt: existing.receipt.clone(), created: false, acceptance: existing });
    }
    let at = new.accepted_at;
    receipt_number(at, 0)?; // an unusable time is refused before anything is written
    let (kind, state) =
        if new.joint.is_some() { (KIND_JOINT, STATE_JOINT_PENDING) } else { (KIND_SINGLE, STATE_ACCEPTED) };
    let receipt = next_receipt(tx, at)?;
    let (deadline_at, absence) = match &new.joint {
        Some(joint) => (Some(joint.deadline_at), Some(joint.absence.as_str())),
        None => (None, None),
    };
    let row = Row2 {
        receipt: &receipt,
        kind,
        parent_receipt: None,
        party: None,
        target: &new.target,
        handling_region: &new.handling_region,
        document: &new.document,
        state,
        deadline_at,
        absence,
    };
    let id = insert(tx, new, &row)?;
    let detail = match &new.joint {
        Some(joint) => format!(
            "window {} ({}) for joint handling by {}; an absent party counts as {}",
            new.window_id,
            new.accepting_region,
            joint.parts.iter().map(|p| format!("{} ({})", p.party, p.handling_region)).collect::<Vec<_>>().join(", "),
            joint.absence,
        ),
        None => format!(
            "window {} ({}) for {} via {}",
            new.window_id, new.accepting_region, new.handling_region, new.target
        ),
    };
    add_event(tx, id, at, "accepted", Some(&detail)).map_err(db(op))?;
    for part in new.joint.iter().flat_map(|j| j.parts.iter()) {
        let part_receipt = next_receipt(tx, at)?;
        let row = Row2 {
            receipt: &part_receipt,
            kind: KIND_PART,
            parent_receipt: Some(&receipt),
            party: Some(&part.party),
            target: &part.target,
            handling_region: &part.handling_region,
            document: &part.document,
            state: STATE_ACCEPTED,
            deadline_at: None,
            absence: None,
        };
        let part_id = insert(tx, new, &row)?;
        let detail = format!("part of {receipt} for {} ({}) via {}", part.party, part.handling_region, part.target);
        add_event(tx, part_id, at, "accepted", Some(&detail)).map_err(db(op))?;
    }
    let acceptance = find_by(tx, "receipt", &receipt)
        .map_err(db(op))?
        .ok_or_else(|| StoreError::NotFound { receipt: receipt.clone() })?;
    Ok(Accepted { receipt, created: true, acceptance })
}

/// The next receipt number. The counter lives in the caller's transaction, so a rolled-back
/// accept reuses nothing that was ever handed out, and a committed one is never reused.
fn next_receipt(tx: &Connection, at: SystemTimeMs) -> Result<String, StoreError> {
    let seq: i64 = tx
        .prepare_cached("UPDATE counters SET value = value + 1 WHERE name = 'receipt' RETURNING value")
        .and_then(|mut stmt| stmt.query_row([], |row| row.get(0)))
        .map_err(db("accept"))?;
    receipt_number(at, seq)
}

/// The per-record columns of a new row (the rest come from the acceptance).
struct Row2<'a> {
    receipt: &'a str,
    kind: &'a str,
    parent_receipt: Option<&'a str>,
    party: Option<&'a str>,
    target: &'a str,
    handling_region: &'a str,
    document: &'a str,
    state: &'a str,
    deadline_at: Option<SystemTimeMs>,
    absence: Option<&'a str>,
}

fn insert(tx: &Connection, new: &NewAcceptance, row: &Row2<'_>) -> Result<i64, StoreError> {
    // A part carries no idempotency key: the key names the joint record the caller was given.
    let key = if row.kind == KIND_PART { None } else { new.idempotency_key.as_deref() };
    tx.prepare_cached(
        "INSERT INTO acceptances (receipt, application_id, idempotency_key, target, matter_code, window_id, \
         accepting_region, handling_region, document, state, attempts, next_attempt_at, accepted_at, updated_at, \
         kind, parent_receipt, party, deadline_at, absence, partner) \
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, 0, ?11, ?11, ?11, ?12, ?13, ?14, ?15, ?16, ?17)",
    )
    .and_then(|mut stmt| {
        stmt.execute(params![
            row.receipt,
            new.application_id,
            key,
            row.target,
            new.matter_code,
            new.window_id,
            new.accepting_region,
            row.handling_region,
            row.document,
            row.state,
            new.accepted_at,
            row.kind,
            row.parent_receipt,
            row.party,
            row.deadline_at,
            row.absence,
            new.partner,
        ])
    })
    .map_err(db("accept"))?;
    Ok(tx.last_insert_rowid())
}

/// Delivery succeeded: see [`AcceptanceStore::delivered`].
fn mark_delivered(
    tx: &Connection,
    receipt: &str,
    province_case_id: &str,
    at: SystemTimeMs,
    first_poll_at: Option<SystemTimeMs>,
) -> Result<(), StoreError> {
    let op = "delivered";
    let (id, state, case) =
        current(tx, receipt).map_err(db(op))?.ok_or_else(|| StoreError::NotFound { receipt: receipt.into() })?;
    if case.as_deref() == Some(province_case_id) {
        return Ok(()); // a repeated confirmation: already recorded
    }
    // From dead_letter too: a late confirmation means the province did take it.
    if ![STATE_ACCEPTED, STATE_DELIVERING, STATE_DEAD_LETTER].contains(&state.as_str()) {
        return Err(StoreError::InvalidTransition { receipt: receipt.into(), action: "mark delivered", state });
    }
    tx.prepare_cached(
        "UPDATE acceptances SET state = 'delivered', province_case_id = ?2, lease_until = NULL, \
         updated_at = ?3, next_poll_at = ?4, poll_interval_ms = NULL WHERE id = ?1",
    )
    .and_then(|mut stmt| stmt.execute(params![id, province_case_id, at, first_poll_at]))
    .map_err(db(op))?;
    add_event(tx, id, at, "delivered", Some(province_case_id)).map_err(db(op))
}

/// A failed attempt to retry later: see [`AcceptanceStore::retry_later`].
fn mark_retry(
    tx: &Connection,
    receipt: &str,
    error: &str,
    next_attempt_at: SystemTimeMs,
    at: SystemTimeMs,
) -> Result<(), StoreError> {
    let op = "retry_later";
    let error = truncate(error, MAX_ERROR_BYTES);
    let (id, state, _) =
        current(tx, receipt).map_err(db(op))?.ok_or_else(|| StoreError::NotFound { receipt: receipt.into() })?;
    if state != STATE_DELIVERING && state != STATE_ACCEPTED {
        return Err(StoreError::InvalidTransition { receipt: receipt.into(), action: "retry", state });
    }
    tx.prepare_cached(
        "UPDATE acceptances SET state = 'accepted', attempts = attempts + 1, last_error = ?2, \
         next_attempt_at = ?3, lease_until = NULL, updated_at = ?4 WHERE id = ?1",
    )
    .and_then(|mut stmt| stmt.execute(params![id, error, next_attempt_at, at]))
    .map_err(db(op))?;
    add_event(tx, id, at, "attempt_failed", Some(error)).map_err(db(op))
}

/// Delivery gave up: see [`AcceptanceStore::dead_letter`].
fn mark_dead(tx: &Connection, receipt: &str, error: &str, at: SystemTimeMs) -> Result<(), StoreError> {
    let op = "dead_letter";
    let error = truncate(error, MAX_ERROR_BYTES);
    let (id, state, _) =
        current(tx, receipt).map_err(db(op))?.ok_or_else(|| StoreError::NotFound { receipt: receipt.into() })?;
    if state != STATE_DELIVERING && state != STATE_ACCEPTED {
        return Err(StoreError::InvalidTransition { receipt: receipt.into(), action: "dead-letter", state });
    }
    tx.prepare_cached(
        "UPDATE acceptances SET state = 'dead_letter', attempts = attempts + 1, last_error = ?2, \
         lease_until = NULL, updated_at = ?3 WHERE id = ?1",
    )
    .and_then(|mut stmt| stmt.execute(params![id, error, at]))
    .map_err(db(op))?;
    add_event(tx, id, at, "dead_letter", Some(error)).map_err(db(op))
}

fn apply_outcome(tx: &Connection, outcome: &Outcome) -> Result<(), StoreError> {
    match &outcome.kind {
        OutcomeKind::Delivered { province_case_id, first_poll_at } => {
            require("province_case_id", province_case_id)?;
            mark_delivered(tx, &outcome.receipt, province_case_id, outcome.at, *first_poll_at)
        }
        OutcomeKind::Retry { error, next_attempt_at } => {
            mark_retry(tx, &outcome.receipt, error, *next_attempt_at, outcome.at)
        }
        OutcomeKind::Dead { error } => mark_dead(tx, &outcome.receipt, error, outcome.at),
    }
}

/// States that belong to delivery, which [`AcceptanceStore::record_state`] must not set.
const DELIVERY_STATES: [&str; 4] = [STATE_ACCEPTED, STATE_DELIVERING, STATE_DELIVERED, STATE_DEAD_LETTER];

impl AcceptanceStore for SqliteStore {
    fn accept(&self, new: NewAcceptance) -> Result<Accepted, StoreError> {
        require("application_id", &new.application_id)?;
        require("target", &new.target)?;
        if let Some(key) = &new.idempotency_key {
            require("idempotency_key", key)?;
        }
        if let Some(joint) = &new.joint {
            if joint.parts.is_empty() {
                return Err(StoreError::InvalidInput {
                    field: "joint.parts",
                    reason: "name at least one party".into(),
                });
            }
            for part in &joint.parts {
                require("joint.parts.target", &part.target)?;
            }
        }
        let slot: Slot = std::sync::Arc::new(Mutex::new(None));
        self.pending.lock().map_err(|_| StoreError::Poisoned)?.push(PendingAccept { new, slot: slot.clone() });
        self.accept_queued(&slot)
    }

    fn get(&self, receipt: &str) -> Result<Option<Acceptance>, StoreError> {
        self.read(|conn| find_by(conn, "receipt", receipt).map_err(db("get")))
    }

    fn claim_due(&self, now: SystemTimeMs, limit: usize, lease_ms: u64) -> Result<Vec<Acceptance>, StoreError> {
        let claimed = self.claim(
            "claim_due",
            "state IN ('accepted', 'delivering') AND next_attempt_at <= ?1 \
             AND (lease_until IS NULL OR lease_until <= ?1) ORDER BY accepted_at, id",
            "UPDATE acceptances SET state = 'delivering', lease_until = ?2, updated_at = ?3 WHERE id = ?1",
            now,
            limit,
            lease_ms,
        )?;
        Ok(claimed
            .into_iter()
            .map(|acceptance| Acceptance { state: STATE_DELIVERING.to_owned(), updated_at: now, ..acceptance })
            .collect())
    }

    fn delivered(
        &self,
        receipt: &str,
        province_case_id: &str,
        at: SystemTimeMs,
        first_poll_at: Option<SystemTimeMs>,
    ) -> Result<(), StoreError> {
        require("province_case_id", province_case_id)?;
        self.write("delivered", |tx| mark_delivered(tx, receipt, province_case_id, at, first_poll_at))
    }

    fn retry_later(
        &self,
        receipt: &str,
        error: &str,
        next_attempt_at: SystemTimeMs,
        at: SystemTimeMs,
    ) -> Result<(), StoreError> {
        self.write("retry_later", |tx| mark_retry(tx, receipt, error, next_attempt_at, at))
    }

    fn dead_letter(&self, receipt: &str, error: &str, at: SystemTimeMs) -> Result<(), StoreError> {
        self.write("dead_letter", |tx| mark_dead(tx, receipt, error, at))
    }

    fn record_outcomes(&self, outcomes: &[Outcome]) -> Vec<Result<(), StoreError>> {
        let written = self.write("record_outcomes", |tx| {
            let mut results = Vec::with_capacity(outcomes.len());
            for outcome in outcomes {
                let result = apply_outcome(tx, outcome);
                // A refusal (a record moved on meanwhile) writes nothing; a database error undoes all.
                if let Err(StoreError::Database { op, source }) = result {
                    return Err(StoreError::Database { op, source });
                }
                results.push(result);
            }
            Ok(results)
        });
        match written {
            Ok(results) => results,
            Err(err) => {
                let text = err.to_string();
                outcomes.iter().map(|_| Err(StoreError::GroupCommit { detail: text.clone() })).collect()
            }
        }
    }

    fn requeue(&self, receipt: &str, at: SystemTimeMs) -> Result<bool, StoreError> {
        let op = "requeue";
        self.write(op, |tx| {
            let Some((id, state, _)) = current(tx, receipt).map_err(db(op))? else { return Ok(false) };
            if state != STATE_DEAD_LETTER {
                return Ok(false);
            }
            tx.execute(
                "UPDATE acceptances SET state = 'accepted', attempts = 0, next_attempt_at = ?2, lease_until = NULL, \
                 updated_at = ?2 WHERE id = ?1",
                params![id, at],
            )
            .map_err(db(op))?;
            add_event(tx, id, at, "requeued", None).map_err(db(op))?;
            Ok(true)
        })
    }

    fn record_state(
        &self,
        receipt: &str,
        state: &str,
        detail: Option<&str>,
        at: SystemTimeMs,
    ) -> Result<bool, StoreError> {
        let valid = !state.is_empty()
            && state.len() <= 64
            && state.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_');
        if !valid {
            return Err(StoreError::InvalidInput {
                field: "state",
                reason: format!("{state:?} is not a state name (lowercase letters, digits and _, at most 64)"),
            });
        }
        if DELIVERY_STATES.contains(&state) {
            return Err(StoreError::InvalidInput {
                field: "state",
                reason: format!("{state} is a delivery state, set only by the delivery worker"),
            });
        }
        let op = "record_state";
        self.write(op, |tx| {
            let Some((id, current_state, _)) = current(tx, receipt).map_err(db(op))? else { return Ok(false) };
            let kind: String =
                tx.query_row("SELECT kind FROM acceptances WHERE id = ?1", [id], |row| row.get(0)).map_err(db(op))?;
            if kind == KIND_JOINT {
                // A joint record's state follows from its parts' decisions, never from a report.
                return Err(StoreError::InvalidTransition {
                    receipt: receipt.into(),
                    action: "record a platform state for the joint record (report it on the party's part)",
                    state: current_state,
                });
            }
            if [STATE_ACCEPTED, STATE_DELIVERING, STATE_DEAD_LETTER, STATE_ABSENT].contains(&current_state.as_str()) {
                return Err(StoreError::InvalidTransition {
                    receipt: receipt.into(),
                    action: "record a platform state for",
                    state: current_state,
                });
            }
            if current_state == state {
                return Ok(false);
            }
            // A final state ends polling: nothing at the platform changes after it.
            tx.execute(
                "UPDATE acceptances SET state = ?2, updated_at = ?3, \
                 next_poll_at = CASE WHEN ?4 THEN NULL ELSE next_poll_at END WHERE id = ?1",
                params![id, state, at, FINAL_STATES.contains(&state)],
            )
            .map_err(db(op))?;
            let text = match detail {
                Some(d) => format!("{state}: {}", truncate(d, MAX_ERROR_BYTES)),
                None => state.to_owned(),
            };
            add_event(tx, id, at, "state", Some(&text)).map_err(db(op))?;
            Ok(true)
        })
    }

    fn claim_polls(&self, now: SystemTimeMs, limit: usize, lease_ms: u64) -> Result<Vec<Acceptance>, StoreError> {
        self.claim(
            "claim_polls",
            "next_poll_at IS NOT NULL AND next_poll_at <= ?1 ORDER BY next_poll_at, id",
            "UPDATE acceptances SET next_poll_at = ?2 WHERE id = ?1",
            now,
            limit,
            lease_ms,
        )
    }

    fn schedule_poll(
        &self,
        receipt: &str,
        next_poll_at: Option<SystemTimeMs>,
        interval_ms: i64,
    ) -> Result<(), StoreError> {
        let op = "schedule_poll";
        self.write(op, |tx| {
            let final_states = FINAL_STATES.iter().map(|s| format!("'{s}'")).collect::<Vec<_>>().join(", ");
            tx.execute(
                &format!(
                    "UPDATE acceptances SET next_poll_at = CASE WHEN state IN ({final_states}, 'absent') THEN NULL \
                     ELSE ?2 END, poll_interval_ms = ?3 WHERE receipt = ?1"
                ),
                params![receipt, next_poll_at, interval_ms],
            )
            .map_err(db(op))
            .map(|_| ())
        })
    }

    fn next_due(&self, now: SystemTimeMs) -> Result<Option<SystemTimeMs>, StoreError> {
        self.read(|conn| {
            conn.query_row(
                "SELECT MIN(t) FROM ( \
                   SELECT MIN(MAX(next_attempt_at, COALESCE(lease_until, 0))) AS t FROM acceptances \
                     WHERE state IN ('accepted', 'delivering') \
                   UNION ALL SELECT MIN(next_poll_at) FROM acceptances WHERE next_poll_at IS NOT NULL \
                   UNION ALL SELECT MIN(deadline_at) FROM acceptances \
                     WHERE state = 'joint_pending' AND deadline_at > ?1)",
                [now],
                |row| row.get(0),
            )
            .map_err(db("next_due"))
        })
    }

    fn parts(&self, receipt: &str) -> Result<Vec<Acceptance>, StoreError> {
        let op = "parts";
        self.read(|conn| {
            let mut stmt = conn
                .prepare_cached(&format!("SELECT {COLUMNS} FROM acceptances WHERE parent_receipt = ?1 ORDER BY id"))
                .map_err(db(op))?;
            stmt.query_map([receipt], from_row).map_err(db(op))?.collect::<rusqlite::Result<Vec<_>>>().map_err(db(op))
        })
    }

    fn open_joints(&self, limit: usize) -> Result<Vec<Acceptance>, StoreError> {
        let op = "open_joints";
        self.read(|conn| {
            let mut stmt = conn
                .prepare_cached(&format!(
                    "SELECT {COLUMNS} FROM acceptances WHERE state = 'joint_pending' ORDER BY id LIMIT ?1"
                ))
                .map_err(db(op))?;
            stmt.query_map([to_i64(limit)], from_row)
                .map_err(db(op))?
                .collect::<rusqlite::Result<Vec<_>>>()
                .map_err(db(op))
        })
    }

    fn decide_joint(&self, receipt: &str, decision: &JointDecision, at: SystemTimeMs) -> Result<bool, StoreError> {
        if !FINAL_STATES.contains(&decision.state.as_str()) {
            return Err(StoreError::InvalidInput {
                field: "decision.state",
                reason: format!("{} is not a final state ({})", decision.state, FINAL_STATES.join(", ")),
            });
        }
        let op = "decide_joint";
        self.write(op, |tx| {
            let Some((id, state, _)) = current(tx, receipt).map_err(db(op))? else {
                return Err(StoreError::NotFound { receipt: receipt.into() });
            };
            if state != STATE_JOINT_PENDING {
                return Ok(false);
            }
            tx.execute(
                "UPDATE acceptances SET state = ?2, updated_at = ?3 WHERE id = ?1",
                params![id, decision.state, at],
            )
            .map_err(db(op))?;
            add_event(tx, id, at, "decided", Some(truncate(&decision.detail, MAX_ERROR_BYTES))).map_err(db(op))?;
            for part in &decision.absent {
                let Some((part_id, part_state, _)) = current(tx, part).map_err(db(op))? else {
                    return Err(StoreError::NotFound { receipt: part.clone() });
                };
                tx.execute(
                    "UPDATE acceptances SET state = 'absent', next_poll_at = NULL, updated_at = ?2 \
                     WHERE id = ?1 AND parent_receipt = ?3",
                    params![part_id, at, receipt],
                )
                .map_err(db(op))?;
                let detail = format!("no decision by the deadline (was {part_state}); counted as {}", decision.state);
                add_event(tx, part_id, at, "absent", Some(&detail)).map_err(db(op))?;
            }
            Ok(true)
        })
    }

    fn events(&self, receipt: &str) -> Result<Vec<Event>, StoreError> {
        let op = "events";
        self.read(|conn| {
            // Ordered by insertion, not by `at`: callers' clocks may repeat or step back.
            let mut stmt = conn
                .prepare_cached(
                    "SELECT e.at, e.kind, e.detail FROM events e JOIN acceptances a ON a.id = e.acceptance_id \
                     WHERE a.receipt = ?1 ORDER BY e.id",
                )
                .map_err(db(op))?;
            stmt.query_map([receipt], |row| Ok(Event { at: row.get(0)?, kind: row.get(1)?, detail: row.get(2)? }))
                .map_err(db(op))?
                .collect::<rusqlite::Result<Vec<_>>>()
                .map_err(db(op))
        })
    }

    fn list(&self, state: Option<&str>, limit: usize) -> Result<Vec<Acceptance>, StoreError> {
        let op = "list";
        self.read(|conn| {
            let mut stmt = conn
                .prepare_cached(&format!(
                    "SELECT {COLUMNS} FROM acceptances WHERE ?1 IS NULL OR state = ?1 ORDER BY id LIMIT ?2"
                ))
                .map_err(db(op))?;
            stmt.query_map(params![state, to_i64(limit)], from_row)
                .map_err(db(op))?
                .collect::<rusqlite::Result<Vec<_>>>()
                .map_err(db(op))
        })
    }

    fn queue_stats(&self) -> Result<QueueStats, StoreError> {
        self.read(|conn| {
            conn.query_row(
                "SELECT \
                   COUNT(*) FILTER (WHERE state IN ('accepted', 'delivering')), \
                   MIN(accepted_at) FILTER (WHERE state IN ('accepted', 'delivering')), \
                   COUNT(*) FILTER (WHERE state = 'dead_letter') \
                 FROM acceptances",
                [],
                |row| {
                    // COUNT is never negative; SQLite has no unsigned integers.
                    let count = |n: i64| u64::try_from(n).unwrap_or(0);
                    Ok(QueueStats {
                        depth: count(row.get(0)?),
                        oldest_undelivered_at: row.get(1)?,
                        dead: count(row.get(2)?),
                    })
                },
            )
            .map_err(db("queue_stats"))
        })
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;
    use std::collections::HashSet;
    use std::sync::Arc;

    /// 2026-11-22 10:00:00 Beijing time (02:00 UTC).
    const T0: SystemTimeMs = 1_795_320_000_000;

    fn new(app: &str, key: Option<&str>, at: SystemTimeMs) -> NewAcceptance {
        NewAcceptance {
            application_id: app.into(),
            idempotency_key: key.map(Into::into),
            target: "zj".into(),
            matter_code: "11330000002482030J".into(),
            window_id: "win-07".into(),
            accepting_region: "320100".into(),
            handling_region: "330100".into(),
            document: format!(r#"{{"application_id":"{app}"}}"#),
            accepted_at: at,
            partner: "window-a".into(),
            joint: None,
        }
    }

    fn kinds(store: &SqliteStore, receipt: &str) -> Vec<String> {
        store.events(receipt).unwrap().into_iter().map(|e| e.kind).collect()
    }

    fn receipts(v: &[Acceptance]) -> Vec<&str> {
        v.iter().map(|a| a.receipt.as_str()).collect()
    }

    #[test]
    fn accept_then_get() {
        let store = SqliteStore::in_memory().unwrap();
        let a = store.accept(new("app-1", Some("k1"), T0)).unwrap();
        assert!(a.created);
        assert_eq!(a.receipt, "TB202611220000000001");
        let got = store.get(&a.receipt).unwrap().unwrap();
        assert_eq!(got, a.acceptance);
        assert_eq!(got.state, STATE_ACCEPTED);
        assert_eq!(got.attempts, 0);
        assert_eq!(got.next_attempt_at, T0);
        assert_eq!(got.document, r#"{"application_id":"app-1"}"#);
        assert_eq!(store.get("TB202611229999999999").unwrap(), None);
        assert_eq!(kinds(&store, &a.receipt), ["accepted"]);
    }

    #[test]
    fn receipt_uses_beijing_date_and_sequence() {
        // 2026-11-21 16:30 UTC is already 2026-11-22 00:30 in Beijing.
        assert_eq!(receipt_number(1_795_278_600_000, 1).unwrap(), "TB202611220000000001");
        assert_eq!(receipt_number(1_795_278_600_000 - 3_600_000, 42).unwrap(), "TB202611210000000042");
        assert!(receipt_number(i64::MAX, 1).is_err());
        let store = SqliteStore::in_memory().unwrap();
        let a = store.accept(new("a", None, T0)).unwrap().receipt;
        let b = store.accept(new("b", None, T0 + 86_400_000)).unwrap().receipt;
        assert_eq!(a, "TB202611220000000001");
        assert_eq!(b, "TB202611230000000002");
        for r in [&a, &b] {
            assert_eq!(r.len(), 20);
            assert!(r.starts_with("TB") && r[2..].bytes().all(|c| c.is_ascii_digit()));
        }
        assert!(a < b, "time-ordered");
    }

    #[test]
    fn same_idempotency_key_returns_existing_untouched() {
        let store = SqliteStore::in_memory().unwrap();
        let first = store.accept(new("app-1", Some("k1"), T0)).unwrap();
        let mut again = new("app-1", Some("k1"), T0 + 5_000);
        again.document = r#"{"changed":true}"#.into();
        let second = store.accept(again).unwrap();
        assert!(!second.created);
        assert_eq!(second.receipt, first.receipt);
        assert_eq!(second.acceptance, first.acceptance);
        assert_eq!(store.get(&first.receipt).unwrap().unwrap().document, r#"{"application_id":"app-1"}"#);
        assert_eq!(store.list(None, 10).unwrap().len(), 1);
        assert_eq!(kinds(&store, &first.receipt), ["accepted"]);
    }

    #[test]
    fn the_column_count_follows_the_column_list() {
        assert_eq!(COLUMNS.split(',').count(), COLUMN_COUNT);
    }

    #[test]
    fn an_application_id_is_its_partners_own() {
        let store = SqliteStore::in_memory().unwrap();
        let first = store.accept(new("app-1", None, T0)).unwrap();
        let theirs = NewAcceptance { partner: "window-b".into(), ..new("app-1", None, T0 + 5_000) };
        match store.accept(theirs) {
            Err(error @ StoreError::IdTaken { .. }) => {
                assert!(!error.to_string().contains(&first.receipt), "the receipt is not told: {error}");
            }
            other => panic!("expected IdTaken, got {other:?}"),
        }
        // The partner that accepted it gets its receipt again.
        assert_eq!(store.accept(new("app-1", None, T0 + 9_000)).unwrap().receipt, first.receipt);
        assert_eq!(store.list(None, 10).unwrap().len(), 1, "nothing written");

        // A record from before partners were recorded belongs to nobody who asks now.
        store.write("test", |tx| tx.execute("UPDATE acceptances SET partner = NULL", []).map_err(db("test"))).unwrap();
        assert!(matches!(store.accept(new("app-1", None, T0 + 12_000)), Err(StoreError::IdTaken { .. })));
    }

    #[test]
    fn a_key_names_one_application() {
        let store = SqliteStore::in_memory().unwrap();
        let first = store.accept(new("app-1", Some("k1"), T0)).unwrap();
        match store.accept(new("app-2", Some("k1"), T0 + 5_000)) {
            Err(StoreError::KeyReused { application_id, receipt }) => {
                assert_eq!((application_id.as_str(), receipt.as_str()), ("app-1", first.receipt.as_str()));
            }
            other => panic!("expected KeyReused, got {other:?}"),
        }
        assert_eq!(store.list(None, 10).unwrap().len(), 1, "nothing written");
    }

    #[test]
    fn without_key_application_id_dedupes() {
        let store = SqliteStore::in_memory().unwrap();
        let first = store.accept(new("app-1", None, T0)).unwrap();
        let second = store.accept(new("app-1", None, T0 + 1)).unwrap();
        assert!(!second.created);
        assert_eq!(second.receipt, first.receipt);
        // A keyless retry of an application first sent with a key finds it too.
        let keyed = store.accept(new("app-2", Some("k2"), T0)).unwrap();
        assert_eq!(store.accept(new("app-2", None, T0)).unwrap().receipt, keyed.receipt);
    }

    #[test]
    fn different_keys_give_different_receipts() {
        let store = SqliteStore::in_memory().unwrap();
        let a = store.accept(new("app-1", Some("k1"), T0)).unwrap();
        let b = store.accept(new("app-2", Some("k2"), T0)).unwrap();
        assert!(a.created && b.created);
        assert_ne!(a.receipt, b.receipt);
        // The same application under another key is a conflict, not a second acceptance.
        let err = store.accept(new("app-1", Some("k3"), T0)).unwrap_err();
        assert!(matches!(&err, StoreError::Conflict { receipt, .. } if *receipt == a.receipt), "{err}");
        assert_eq!(store.list(None, 10).unwrap().len(), 2);
    }

    #[test]
    fn rejects_empty_ids() {
        let store = SqliteStore::in_memory().unwrap();
        assert!(matches!(store.accept(new("", None, T0)), Err(StoreError::InvalidInput { .. })));
        assert!(matches!(store.accept(new("a", Some(""), T0)), Err(StoreError::InvalidInput { .. })));
        // A failed accept consumes no receipt number.
        assert_eq!(store.accept(new("a", None, T0)).unwrap().receipt, "TB202611220000000001");
    }

    #[test]
    fn claim_due_only_due_oldest_first_limited() {
        let store = SqliteStore::in_memory().unwrap();
        let r3 = store.accept(new("c", None, T0 + 3)).unwrap().receipt;
        let r1 = store.accept(new("a", None, T0 + 1)).unwrap().receipt;
        let r2 = store.accept(new("b", None, T0 + 2)).unwrap().receipt;
        let future = store.accept(new("later", None, T0 + 10_000)).unwrap().receipt;
        let claimed = store.claim_due(T0 + 100, 2, 30_000).unwrap();
        assert_eq!(receipts(&claimed), [&r1, &r2]);
        assert!(claimed.iter().all(|a| a.state == STATE_DELIVERING && a.updated_at == T0 + 100));
        assert_eq!(store.get(&r1).unwrap().unwrap().state, STATE_DELIVERING);
        let rest = store.claim_due(T0 + 100, 10, 30_000).unwrap();
        assert_eq!(receipts(&rest), [&r3]);
        assert!(store.claim_due(T0 + 100, 10, 30_000).unwrap().is_empty());
        assert!(store.claim_due(T0 + 100, 0, 30_000).unwrap().is_empty());
        assert_eq!(store.get(&future).unwrap().unwrap().state, STATE_ACCEPTED);
    }

    #[test]
    fn claim_is_exclusive_until_the_lease_expires() {
        let store = SqliteStore::in_memory().unwrap();
        let r = store.accept(new("a", None, T0)).unwrap().receipt;
        assert_eq!(store.claim_due(T0, 10, 30_000).unwrap().len(), 1);
        assert!(store.claim_due(T0 + 29_999, 10, 30_000).unwrap().is_empty());
        // The worker crashed: once the lease runs out the record is claimable again.
        let again = store.claim_due(T0 + 30_000, 10, 30_000).unwrap();
        assert_eq!(receipts(&again), [&r]);
        assert!(store.claim_due(T0 + 59_999, 10, 30_000).unwrap().is_empty());
    }

    #[test]
    fn two_instances_on_one_file_never_claim_the_same_record() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("store.db");
        let a = Arc::new(SqliteStore::open(&path).unwrap());
        let b = Arc::new(SqliteStore::open(&path).unwrap());
        for i in 0..100 {
            a.accept(new(&format!("app-{i}"), None, T0 + i)).unwrap();
        }
        let workers: Vec<_> = [a, b]
            .into_iter()
            .map(|s| {
                std::thread::spawn(move || {
                    let mut got = Vec::new();
                    loop {
                        let batch = s.claim_due(T0 + 1_000, 7, 60_000).unwrap();
                        if batch.is_empty() {
                            return got;
                        }
                        got.extend(batch.into_iter().map(|a| a.receipt));
                    }
                })
            })
            .collect();
        let all: Vec<String> = workers.into_iter().flat_map(|w| w.join().unwrap()).collect();
        assert_eq!(all.len(), 100);
        assert_eq!(all.iter().collect::<HashSet<_>>().len(), 100);
    }

    #[test]
    fn retry_then_dead_letter_then_requeue_then_deliver() {
        let store = SqliteStore::in_memory().unwrap();
        let r = store.accept(new("a", None, T0)).unwrap().receipt;
        store.claim_due(T0, 1, 30_000).unwrap();
        store.retry_later(&r, "connect timeout", T0 + 60_000, T0 + 10).unwrap();
        let a = store.get(&r).unwrap().unwrap();
        assert_eq!((a.state.as_str(), a.attempts, a.next_attempt_at), (STATE_ACCEPTED, 1, T0 + 60_000));
        assert_eq!(a.last_error.as_deref(), Some("connect timeout"));
        assert!(store.claim_due(T0 + 59_999, 10, 30_000).unwrap().is_empty(), "not due before next_attempt_at");
        assert_eq!(store.claim_due(T0 + 60_000, 10, 30_000).unwrap().len(), 1);
        store.dead_letter(&r, "HTTP 400: bad matter code", T0 + 60_010).unwrap();
        let a = store.get(&r).unwrap().unwrap();
        assert_eq!((a.state.as_str(), a.attempts), (STATE_DEAD_LETTER, 2));
        assert!(store.claim_due(T0 + 999_999, 10, 30_000).unwrap().is_empty(), "dead letters are not delivered");
        assert!(matches!(store.retry_later(&r, "x", T0, T0), Err(StoreError::InvalidTransition { .. })));

        assert!(store.requeue(&r, T0 + 70_000).unwrap());
        assert!(!store.requeue(&r, T0 + 70_001).unwrap(), "only dead letters are requeued");
        assert!(!store.requeue("TB000", T0).unwrap());
        let a = store.get(&r).unwrap().unwrap();
        assert_eq!((a.state.as_str(), a.attempts, a.next_attempt_at), (STATE_ACCEPTED, 0, T0 + 70_000));

        assert_eq!(store.claim_due(T0 + 70_000, 10, 30_000).unwrap().len(), 1);
        store.delivered(&r, "ZJ-2026-0001", T0 + 70_100, None).unwrap();
        store.delivered(&r, "ZJ-2026-0001", T0 + 70_200, None).unwrap(); // repeated confirmation: no-op
        let a = store.get(&r).unwrap().unwrap();
        assert_eq!(a.state, STATE_DELIVERED);
        assert_eq!(a.province_case_id.as_deref(), Some("ZJ-2026-0001"));
        assert!(matches!(store.delivered(&r, "OTHER", T0, None), Err(StoreError::InvalidTransition { .. })));
        assert!(store.claim_due(T0 + 999_999, 10, 30_000).unwrap().is_empty());

        let events = store.events(&r).unwrap();
        let timeline: Vec<(&str, SystemTimeMs)> = events.iter().map(|e| (e.kind.as_str(), e.at)).collect();
        assert_eq!(
            timeline,
            [
                ("accepted", T0),
                ("attempt_failed", T0 + 10),
                ("dead_letter", T0 + 60_010),
                ("requeued", T0 + 70_000),
                ("delivered", T0 + 70_100),
            ]
        );
        assert_eq!(events[1].detail.as_deref(), Some("connect timeout"));
        assert_eq!(events[2].detail.as_deref(), Some("HTTP 400: bad matter code"));
        assert_eq!(events[4].detail.as_deref(), Some("ZJ-2026-0001"));
    }

    #[test]
    fn unknown_receipts() {
        let store = SqliteStore::in_memory().unwrap();
        assert!(matches!(store.delivered("nope", "c", T0, None), Err(StoreError::NotFound { .. })));
        assert!(matches!(store.retry_later("nope", "e", T0, T0), Err(StoreError::NotFound { .. })));
        assert!(matches!(store.dead_letter("nope", "e", T0), Err(StoreError::NotFound { .. })));
        assert!(!store.record_state("nope", "approved", None, T0).unwrap());
        assert!(store.events("nope").unwrap().is_empty());
    }

    #[test]
    fn record_state_after_delivery() {
        let store = SqliteStore::in_memory().unwrap();
        let r = store.accept(new("a", None, T0)).unwrap().receipt;
        let err = store.record_state(&r, "in_review", None, T0 + 1).unwrap_err();
        assert!(matches!(err, StoreError::InvalidTransition { .. }), "{err}");
        store.claim_due(T0, 1, 1_000).unwrap();
        store.delivered(&r, "ZJ-1", T0 + 2, None).unwrap();
        assert!(store.record_state(&r, "in_review", None, T0 + 3).unwrap());
        assert!(!store.record_state(&r, "in_review", None, T0 + 4).unwrap(), "unchanged state adds no event");
        assert!(store.record_state(&r, "approved", Some("准予许可"), T0 + 5).unwrap());
        assert!(matches!(store.record_state(&r, "accepted", None, T0), Err(StoreError::InvalidInput { .. })));
        assert!(matches!(store.record_state(&r, "Bad State", None, T0), Err(StoreError::InvalidInput { .. })));
        let a = store.get(&r).unwrap().unwrap();
        assert_eq!((a.state.as_str(), a.updated_at), ("approved", T0 + 5));
        let events = store.events(&r).unwrap();
        assert_eq!(
            events.iter().map(|e| (e.kind.as_str(), e.detail.as_deref())).collect::<Vec<_>>(),
            [
                ("accepted", events[0].detail.as_deref()),
                ("delivered", Some("ZJ-1")),
                ("state", Some("in_review")),
                ("state", Some("approved: 准予许可")),
            ]
        );
        assert_eq!(receipts(&store.list(Some("approved"), 10).unwrap()), [&r]);
        assert!(store.list(Some(STATE_ACCEPTED), 10).unwrap().is_empty());
    }

    #[test]
    fn long_errors_are_truncated_on_a_char_boundary() {
        let store = SqliteStore::in_memory().unwrap();
        let r = store.accept(new("a", None, T0)).unwrap().receipt;
        let long = "错".repeat(MAX_ERROR_BYTES); // 3 bytes each
        store.retry_later(&r, &long, T0, T0).unwrap();
        let err = store.get(&r).unwrap().unwrap().last_error.unwrap();
        assert!(err.len() <= MAX_ERROR_BYTES && err.len() > MAX_ERROR_BYTES - 3);
    }

    #[test]
    fn queue_stats_counts() {
        let store = SqliteStore::in_memory().unwrap();
        assert_eq!(store.queue_stats().unwrap(), QueueStats { depth: 0, oldest_undelivered_at: None, dead: 0 });
        let a = store.accept(new("a", None, T0)).unwrap().receipt;
        let b = store.accept(new("b", None, T0 + 1)).unwrap().receipt;
        let c = store.accept(new("c", None, T0 + 2)).unwrap().receipt;
        store.accept(new("d", None, T0 + 3)).unwrap();
        assert_eq!(store.queue_stats().unwrap(), QueueStats { depth: 4, oldest_undelivered_at: Some(T0), dead: 0 });
        store.claim_due(T0 + 10, 3, 1_000).unwrap();
        store.delivered(&a, "X-1", T0 + 11, None).unwrap();
        store.dead_letter(&b, "gone", T0 + 12).unwrap();
        // c is still delivering: it counts.
        assert_eq!(store.get(&c).unwrap().unwrap().state, STATE_DELIVERING);
        assert_eq!(store.queue_stats().unwrap(), QueueStats { depth: 2, oldest_undelivered_at: Some(T0 + 2), dead: 1 });
        assert_eq!(store.list(None, 2).unwrap().len(), 2);
    }

    #[test]
    fn survives_reopen() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("nested/dir/acceptances.db");
        let (r1, r2) = {
            let store = SqliteStore::open(&path).unwrap();
            let r1 = store.accept(new("a", Some("k1"), T0)).unwrap().receipt;
            let r2 = store.accept(new("b", None, T0 + 1)).unwrap().receipt;
            store.claim_due(T0 + 5, 1, 60_000).unwrap();
            store.retry_later(&r1, "503", T0 + 1_000, T0 + 6).unwrap();
            (r1, r2)
        };
        let store = SqliteStore::open(&path).unwrap();
        let a = store.get(&r1).unwrap().unwrap();
        assert_eq!((a.attempts, a.last_error.as_deref(), a.next_attempt_at), (1, Some("503"), T0 + 1_000));
        assert_eq!(store.get(&r2).unwrap().unwrap().state, STATE_ACCEPTED);
        assert_eq!(kinds(&store, &r1), ["accepted", "attempt_failed"]);
        // Idempotency survives the restart, and the counter continues without reuse.
        assert_eq!(store.accept(new("a", Some("k1"), T0)).unwrap().receipt, r1);
        let r3 = store.accept(new("c", None, T0 + 2)).unwrap().receipt;
        assert_eq!(r3, "TB202611220000000003");
        let version: i64 =
            store.read(|c| c.pragma_query_value(None, "user_version", |r| r.get(0)).map_err(db("t"))).unwrap();
        assert_eq!(version, SCHEMA_VERSION);
        let mode: String =
            store.read(|c| c.pragma_query_value(None, "journal_mode", |r| r.get(0)).map_err(db("t"))).unwrap();
        assert_eq!(mode, "wal");
        let sync: i64 =
            store.read(|c| c.pragma_query_value(None, "synchronous", |r| r.get(0)).map_err(db("t"))).unwrap();
        assert_eq!(sync, 2, "FULL");
    }

    #[test]
    fn refuses_a_newer_schema_and_explains_open_failures() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("s.db");
        drop(SqliteStore::open(&path).unwrap());
        {
            let conn = Connection::open(&path).unwrap();
            conn.pragma_update(None, "user_version", SCHEMA_VERSION + 1).unwrap();
        }
        assert!(matches!(SqliteStore::open(&path), Err(StoreError::SchemaTooNew { .. })));
        // A file where the directory should be.
        let blocker = dir.path().join("file");
        std::fs::write(&blocker, b"x").unwrap();
        let err = SqliteStore::open(&blocker.join("s.db")).unwrap_err();
        assert!(err.to_string().contains("check"), "{err}");
    }

    #[test]
    fn concurrent_accepts_get_distinct_receipts() {
        let dir = tempfile::tempdir().unwrap();
        let store = Arc::new(SqliteStore::open(&dir.path().join("c.db")).unwrap());
        let handles: Vec<_> = (0..8)
            .map(|t| {
                let store = Arc::clone(&store);
                std::thread::spawn(move || {
                    (0..50)
                        .map(|i| {
                            let id = format!("app-{t}-{i}");
                            let a = store.accept(new(&id, Some(&format!("key-{t}-{i}")), T0 + i)).unwrap();
                            assert!(a.created);
                            a.receipt
                        })
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        let all: Vec<String> = handles.into_iter().flat_map(|h| h.join().unwrap()).collect();
        assert_eq!(all.len(), 400);
        assert_eq!(all.iter().collect::<HashSet<_>>().len(), 400);
        assert_eq!(store.list(None, 1_000).unwrap().len(), 400);
        assert_eq!(store.queue_stats().unwrap().depth, 400);
    }

    #[test]
    fn store_is_usable_as_a_trait_object() {
        let store: Arc<dyn AcceptanceStore> = Arc::new(SqliteStore::in_memory().unwrap());
        let r = store.accept(new("a", None, T0)).unwrap();
        assert_eq!(store.get(&r.receipt).unwrap().unwrap().receipt, r.receipt);
    }

    #[test]
    fn grouped_commits_keep_each_acceptance_separate() {
        // Many threads racing on few keys: every key gets exactly one record, and a conflict in
        // a group (same application, other key) leaves the group's other acceptances committed.
        let dir = tempfile::tempdir().unwrap();
        let store = Arc::new(SqliteStore::open(&dir.path().join("g.db")).unwrap());
        let handles: Vec<_> = (0..16)
            .map(|t| {
                let store = Arc::clone(&store);
                std::thread::spawn(move || {
                    (0..40)
                        .map(|i| {
                            let k = (t * 40 + i) % 100;
                            let own_key = format!("key-{k}");
                            // Every fourth call sends the application again under a key of its own.
                            let key = if i % 4 == 3 { format!("other-{t}-{i}") } else { own_key };
                            store.accept(new(&format!("app-{k}"), Some(&key), T0)).map(|a| a.receipt)
                        })
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        let outcomes: Vec<_> = handles.into_iter().flat_map(|h| h.join().unwrap()).collect();
        let conflicts = outcomes.iter().filter(|o| matches!(o, Err(StoreError::Conflict { .. }))).count();
        let receipts: HashSet<String> = outcomes.into_iter().filter_map(Result::ok).collect();
        assert_eq!(store.list(None, 1_000).unwrap().len(), 100, "one record per application");
        assert!(receipts.len() <= 100 && conflicts > 0, "{} receipts, {conflicts} conflicts", receipts.len());
        for receipt in &receipts {
            assert_eq!(kinds(&store, receipt), ["accepted"], "one accepted event each");
        }
    }

    #[test]
    fn a_version_1_store_is_migrated_in_place() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("v1.db");
        {
            let conn = Connection::open(&path).unwrap();
            conn.execute_batch(SCHEMA_V1).unwrap();
            conn.execute(
                "INSERT INTO acceptances (receipt, application_id, target, matter_code, window_id, accepting_region, \
                 handling_region, document, state, next_attempt_at, accepted_at, updated_at) \
                 VALUES ('TB202611220000000001', 'old-app', 'zj', 'm', 'w', '320100', '330100', '{}', 'accepted', 1, 1, 1)",
                [],
            )
            .unwrap();
            conn.pragma_update(None, "user_version", 1).unwrap();
        }
        let store = SqliteStore::open(&path).unwrap();
        let old = store.get("TB202611220000000001").unwrap().unwrap();
        assert_eq!((old.kind.as_str(), old.next_poll_at), (KIND_SINGLE, None));
        // The application id stays taken, and an old record (no partner recorded) is told to nobody.
        assert!(matches!(store.accept(new("old-app", None, T0)), Err(StoreError::IdTaken { .. })));
        assert_eq!(old.partner, None);
        let version: i64 =
            store.read(|c| c.pragma_query_value(None, "user_version", |r| r.get(0)).map_err(db("t"))).unwrap();
        assert_eq!(version, SCHEMA_VERSION);
    }

    fn joint_new(app: &str, key: Option<&str>) -> NewAcceptance {
        let part = |party: &str, region: &str| NewPart {
            party: party.into(),
            target: format!("{party}-platform"),
            handling_region: region.into(),
            document: format!(r#"{{"handling_region":"{region}"}}"#),
        };
        NewAcceptance {
            joint: Some(NewJoint {
                deadline_at: T0 + 1_000,
                absence: "consent".into(),
                parts: vec![part("gz", "520000"), part("sc", "510000")],
            }),
            ..new(app, key, T0)
        }
    }

    #[test]
    fn a_joint_acceptance_fans_out_into_parts_that_deliver_on_their_own() {
        let store = SqliteStore::in_memory().unwrap();
        let joint = store.accept(joint_new("joint-1", Some("jk"))).unwrap();
        assert_eq!(
            (joint.acceptance.kind.as_str(), joint.acceptance.state.as_str()),
            (KIND_JOINT, STATE_JOINT_PENDING)
        );
        let parts = store.parts(&joint.receipt).unwrap();
        assert_eq!(parts.iter().map(|p| p.party.as_deref().unwrap()).collect::<Vec<_>>(), ["gz", "sc"]);
        assert!(parts.iter().all(|p| p.application_id == "joint-1" && p.idempotency_key.is_none()));
        // Replays find the joint record, never a part.
        assert_eq!(store.accept(joint_new("joint-1", None)).unwrap().receipt, joint.receipt);
        assert_eq!(store.accept(joint_new("joint-1", Some("jk"))).unwrap().receipt, joint.receipt);
        // Only the parts are delivered; the joint record is not in the delivery queue.
        let claimed = store.claim_due(T0, 10, 60_000).unwrap();
        assert_eq!(claimed.len(), 2);
        assert_eq!(store.queue_stats().unwrap().depth, 2);
        assert!(matches!(
            store.record_state(&joint.receipt, "approved", None, T0),
            Err(StoreError::InvalidTransition { .. })
        ));
        store.delivered(&parts[0].receipt, "GZ-1", T0 + 1, None).unwrap();
        store.delivered(&parts[1].receipt, "SC-1", T0 + 1, None).unwrap();
        store.record_state(&parts[0].receipt, "approved", None, T0 + 2).unwrap();
        assert_eq!(store.open_joints(10).unwrap().len(), 1);
        let decision = JointDecision {
            state: "approved".into(),
            absent: vec![parts[1].receipt.clone()],
            detail: "approved: gz approved; sc absent".into(),
        };
        assert!(store.decide_joint(&joint.receipt, &decision, T0 + 1_000).unwrap());
        assert!(!store.decide_joint(&joint.receipt, &decision, T0 + 1_001).unwrap(), "decided once");
        assert_eq!(store.get(&joint.receipt).unwrap().unwrap().state, "approved");
        assert_eq!(store.get(&parts[1].receipt).unwrap().unwrap().state, STATE_ABSENT);
        assert_eq!(kinds(&store, &parts[1].receipt).last().unwrap(), "absent");
        assert!(store.open_joints(10).unwrap().is_empty());
        // An absent party's late report changes nothing.
        assert!(store.record_state(&parts[1].receipt, "rejected", None, T0 + 2_000).is_err());
    }

    #[test]
    fn polls_are_claimed_when_due_and_stop_at_a_final_state() {
        let store = SqliteStore::in_memory().unwrap();
        let r = store.accept(new("p-1", None, T0)).unwrap().receipt;
        store.claim_due(T0, 1, 1_000).unwrap();
        store.delivered(&r, "ZJ-9", T0 + 10, Some(T0 + 60_000)).unwrap();
        assert!(store.claim_polls(T0 + 59_999, 10, 5_000).unwrap().is_empty());
        let due = store.claim_polls(T0 + 60_000, 10, 5_000).unwrap();
        assert_eq!(receipts(&due), [r.as_str()]);
        assert!(store.claim_polls(T0 + 60_000, 10, 5_000).unwrap().is_empty(), "leased");
        store.schedule_poll(&r, Some(T0 + 180_000), 120_000).unwrap();
        let record = store.get(&r).unwrap().unwrap();
        assert_eq!((record.next_poll_at, record.poll_interval_ms), (Some(T0 + 180_000), Some(120_000)));
        assert!(store.record_state(&r, "approved", Some("准予许可"), T0 + 200_000).unwrap());
        assert_eq!(store.get(&r).unwrap().unwrap().next_poll_at, None, "final: no more polls");
        store.schedule_poll(&r, Some(T0 + 300_000), 60_000).unwrap();
        assert_eq!(store.get(&r).unwrap().unwrap().next_poll_at, None, "a final state is never scheduled");
    }

    #[test]
    fn a_rounds_outcomes_are_recorded_together_and_a_refusal_spares_the_rest() {
        let store = SqliteStore::in_memory().unwrap();
        let a = store.accept(new("o-1", None, T0)).unwrap().receipt;
        let b = store.accept(new("o-2", None, T0)).unwrap().receipt;
        let c = store.accept(new("o-3", None, T0)).unwrap().receipt;
        store.claim_due(T0, 10, 60_000).unwrap();
        store.delivered(&c, "ZJ-3", T0, None).unwrap(); // moved on: a retry for it is refused
        let outcome = |receipt: &str, kind| Outcome { receipt: receipt.into(), at: T0 + 5, kind };
        let results = store.record_outcomes(&[
            outcome(&a, OutcomeKind::Delivered { province_case_id: "ZJ-1".into(), first_poll_at: Some(T0 + 60_000) }),
            outcome(&b, OutcomeKind::Retry { error: "timeout".into(), next_attempt_at: T0 + 1_000 }),
            outcome(&c, OutcomeKind::Retry { error: "late".into(), next_attempt_at: T0 + 1_000 }),
        ]);
        assert!(results[0].is_ok() && results[1].is_ok());
        assert!(matches!(results[2], Err(StoreError::InvalidTransition { .. })));
        let a = store.get(&a).unwrap().unwrap();
        assert_eq!((a.state.as_str(), a.next_poll_at), (STATE_DELIVERED, Some(T0 + 60_000)));
        let b = store.get(&b).unwrap().unwrap();
        assert_eq!((b.state.as_str(), b.attempts, b.next_attempt_at), (STATE_ACCEPTED, 1, T0 + 1_000));
        assert_eq!(kinds(&store, &c), ["accepted", "delivered"], "nothing written for the refused one");
    }
}
