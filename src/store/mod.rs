//! Durable store (持久化存储) for proxy acceptances (异地代收代办).
//!
//! A window in province B accepts an application for province A. The gateway writes the
//! acceptance here, committed with `synchronous=FULL`, *before* it answers 202 with a receipt
//! number (回执编号); a delivery worker then claims due records with a lease, forwards them to A
//! and records the outcome (delivered with A's case number, retry later, or dead letter).
//! Every change appends to a per-acceptance timeline (办件时间线) of events.
//!
//! The store sits behind [`AcceptanceStore`] so that a shared PostgreSQL store can replace
//! [`SqliteStore`] when several gateway instances run; the lease in [`AcceptanceStore::claim_due`]
//! is what keeps two workers (or instances) from delivering the same record at once.
//!
//! States (办件状态): `accepted` → `delivering` → `delivered` → (`in_review`, `approved`,
//! `rejected`, … set by [`AcceptanceStore::record_state`]); a record that cannot be delivered goes
//! to `dead_letter` and comes back with [`AcceptanceStore::requeue`].

use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::Duration;

use rusqlite::{Connection, OptionalExtension, Row, Transaction, TransactionBehavior, params};

/// Unix epoch milliseconds (毫秒时间戳). The caller passes time in, so tests control it.
pub type SystemTimeMs = i64;

/// Waiting for delivery (已受理，待推送).
pub const STATE_ACCEPTED: &str = "accepted";
/// Claimed by a delivery worker under a lease (推送中).
pub const STATE_DELIVERING: &str = "delivering";
/// The handling province confirmed it with its own case number (已推送).
pub const STATE_DELIVERED: &str = "delivered";
/// Delivery gave up; needs an operator (死信，待人工处理).
pub const STATE_DEAD_LETTER: &str = "dead_letter";

/// The schema version kept in `PRAGMA user_version`.
const SCHEMA_VERSION: i64 = 1;
/// How long a writer waits for another connection's lock (another instance on the same file).
const BUSY_TIMEOUT: Duration = Duration::from_secs(5);
/// Error texts (often a remote body) are cut to this many bytes so one bad reply cannot bloat the store.
const MAX_ERROR_BYTES: usize = 4096;
/// Beijing time (北京时间), UTC+8 without daylight saving: the receipt number carries its date.
const BEIJING_OFFSET_SECS: i32 = 8 * 3600;

/// The durable store of proxy acceptances (异地代收代办持久化存储).
///
/// Methods block (SQLite I/O); call them from `tokio::task::spawn_blocking`.
pub trait AcceptanceStore: Send + Sync + 'static {
    /// Stores a new acceptance (受理), or — when the idempotency key (幂等键) (or, without one,
    /// the application id) was seen before — returns the existing record untouched. One
    /// transaction, committed (synchronous) before returning.
    ///
    /// An application id that was already accepted under a *different* idempotency key is a
    /// [`StoreError::Conflict`]: one application is accepted once.
    fn accept(&self, new: NewAcceptance) -> Result<Accepted, StoreError>;

    /// The acceptance with this receipt number (回执编号), if any.
    fn get(&self, receipt: &str) -> Result<Option<Acceptance>, StoreError>;

    /// Up to `limit` records due for delivery at `now` (state accepted|delivering,
    /// next_attempt_at <= now), oldest first; claims them (认领) by setting state=delivering and a
    /// lease until now+lease so two workers (or instances) never deliver the same record at
    /// once; expired leases are claimable again (a crashed worker).
    fn claim_due(&self, now: SystemTimeMs, limit: usize, lease_ms: u64) -> Result<Vec<Acceptance>, StoreError>;

    /// Delivery succeeded (推送成功): state=delivered with the handling province's case number
    /// (省级办件编号), lease released, event `delivered`. Repeating it with the same case number
    /// is a no-op.
    fn delivered(&self, receipt: &str, province_case_id: &str, at: SystemTimeMs) -> Result<(), StoreError>;

    /// Delivery failed but may succeed later (稍后重试): attempts += 1, last_error set, state back
    /// to accepted, due again at `next_attempt_at`, lease released, event `attempt_failed`.
    fn retry_later(
        &self,
        receipt: &str,
        error: &str,
        next_attempt_at: SystemTimeMs,
        at: SystemTimeMs,
    ) -> Result<(), StoreError>;

    /// Delivery gave up (转入死信): attempts += 1 (the failed attempt counts), last_error set,
    /// state=dead_letter, lease released, event `dead_letter`.
    fn dead_letter(&self, receipt: &str, error: &str, at: SystemTimeMs) -> Result<(), StoreError>;

    /// Moves a dead-lettered record back to accepted (重新入队), attempts reset and due at `at`,
    /// with an event `requeued`. `false` when the receipt is unknown or not dead-lettered.
    fn requeue(&self, receipt: &str, at: SystemTimeMs) -> Result<bool, StoreError>;

    /// Updates the handling platform's state (办理状态: in_review, approved, rejected …) with an
    /// event `state`; used by status polling and callbacks. Only after delivery; the delivery
    /// states (accepted, delivering, delivered, dead_letter) cannot be set this way.
    /// `false` when the receipt is unknown or the state is unchanged (so polling adds no noise).
    fn record_state(
        &self,
        receipt: &str,
        state: &str,
        detail: Option<&str>,
        at: SystemTimeMs,
    ) -> Result<bool, StoreError>;

    /// The timeline (时间线) of one acceptance, in the order things happened; empty when the
    /// receipt is unknown.
    fn events(&self, receipt: &str) -> Result<Vec<Event>, StoreError>;

    /// Up to `limit` acceptances, optionally only in `state`, in acceptance order (oldest first).
    fn list(&self, state: Option<&str>, limit: usize) -> Result<Vec<Acceptance>, StoreError>;

    /// Queue depth (队列深度: accepted + delivering), the accepted_at of the oldest undelivered
    /// record, and the number of dead letters.
    fn queue_stats(&self) -> Result<QueueStats, StoreError>;
}

/// An acceptance to store (新受理的办件).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewAcceptance {
    /// The application id (申请编号) given by the accepting window.
    pub application_id: String,
    /// The client's idempotency key (幂等键), if it sent one.
    pub idempotency_key: Option<String>,
    /// The adapter name of the handling province's platform (目标平台).
    pub target: String,
    /// The matter code (事项编码).
    pub matter_code: String,
    /// The accepting window (受理窗口).
    pub window_id: String,
    /// The region code where it was accepted (收件地).
    pub accepting_region: String,
    /// The region code that handles it (办理地).
    pub handling_region: String,
    /// Canonical application JSON (申请材料), materials inline or by reference.
    pub document: String,
    /// When the window accepted it (受理时间).
    pub accepted_at: SystemTimeMs,
}

/// The outcome of [`AcceptanceStore::accept`] (受理结果).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Accepted {
    /// The receipt number (回执编号).
    pub receipt: String,
    /// `false` when an earlier acceptance was returned (幂等重放).
    pub created: bool,
    /// The stored record.
    pub acceptance: Acceptance,
}

/// A stored acceptance (代收办件).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Acceptance {
    /// The receipt number (回执编号), e.g. `TB202611220000000001`.
    pub receipt: String,
    /// The application id (申请编号).
    pub application_id: String,
    /// The idempotency key (幂等键).
    pub idempotency_key: Option<String>,
    /// The adapter name of the handling platform (目标平台).
    pub target: String,
    /// The matter code (事项编码).
    pub matter_code: String,
    /// The accepting window (受理窗口).
    pub window_id: String,
    /// Where it was accepted (收件地).
    pub accepting_region: String,
    /// Where it is handled (办理地).
    pub handling_region: String,
    /// Canonical application JSON (申请材料).
    pub document: String,
    /// The state (办件状态), see the module docs.
    pub state: String,
    /// The handling province's case number (省级办件编号), once delivered.
    pub province_case_id: Option<String>,
    /// Failed delivery attempts since acceptance or the last requeue (失败次数).
    pub attempts: u32,
    /// When delivery is (next) due (下次推送时间).
    pub next_attempt_at: SystemTimeMs,
    /// The last delivery error (最近错误).
    pub last_error: Option<String>,
    /// When the window accepted it (受理时间).
    pub accepted_at: SystemTimeMs,
    /// The last change (更新时间).
    pub updated_at: SystemTimeMs,
}

/// One entry of an acceptance's timeline (时间线事件).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Event {
    /// When it happened (发生时间).
    pub at: SystemTimeMs,
    /// accepted, attempt_failed, delivered, dead_letter, requeued, state (事件类型).
    pub kind: String,
    /// The error, case number or new state, as fits the kind (详情).
    pub detail: Option<String>,
}

/// Delivery queue figures for metrics and health (队列统计).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct QueueStats {
    /// accepted + delivering (待推送).
    pub depth: u64,
    /// accepted_at of the oldest undelivered record (最早未推送受理时间).
    pub oldest_undelivered_at: Option<SystemTimeMs>,
    /// Dead letters (死信数).
    pub dead: u64,
}

/// What went wrong in the store (存储错误).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StoreError {
    /// The directory for the database file could not be created.
    #[error("cannot create the store directory {}: {source}; check the path and its permissions", path.display())]
    CreateDir {
        /// The directory.
        path: PathBuf,
        /// The cause.
        source: std::io::Error,
    },
    /// The database could not be opened or configured.
    #[error("cannot open the store at {}: {source}; check the directory exists and is writable", path.display())]
    Open {
        /// The database file.
        path: PathBuf,
        /// The cause.
        source: rusqlite::Error,
    },
    /// The file system refused a setting durability depends on.
    #[error("the store at {}: {what}", path.display())]
    Setup {
        /// The database file.
        path: PathBuf,
        /// What was refused, and the fix.
        what: String,
    },
    /// The database was written by a newer gateway.
    #[error(
        "the store has schema version {found} but this build knows only up to {supported}; \
         run the newer gateway version or point the store at another file"
    )]
    SchemaTooNew {
        /// The version in the file.
        found: i64,
        /// The newest version this build knows.
        supported: i64,
    },
    /// A statement failed.
    #[error("store {op} failed: {source}")]
    Database {
        /// The operation, e.g. "accept".
        op: &'static str,
        /// The cause.
        source: rusqlite::Error,
    },
    /// Another thread panicked while holding the store.
    #[error("the store lock is poisoned (a thread panicked while using it); restart the gateway")]
    Poisoned,
    /// No acceptance has this receipt number.
    #[error("no acceptance with receipt {receipt}")]
    NotFound {
        /// The receipt number asked for.
        receipt: String,
    },
    /// The record is in a state that does not allow the operation.
    #[error("cannot {action} acceptance {receipt}: it is {state}")]
    InvalidTransition {
        /// The receipt number.
        receipt: String,
        /// The operation refused.
        action: &'static str,
        /// The record's current state.
        state: String,
    },
    /// The application was already accepted under a different idempotency key.
    #[error(
        "application {application_id} was already accepted as {receipt} under a different idempotency key; \
         resend with the original key or query that receipt"
    )]
    Conflict {
        /// The application id.
        application_id: String,
        /// The existing receipt number.
        receipt: String,
    },
    /// An argument was unusable.
    #[error("invalid {field}: {reason}")]
    InvalidInput {
        /// The argument.
        field: &'static str,
        /// Why.
        reason: String,
    },
}

/// The SQLite implementation (SQLite 存储), for a single gateway instance.
///
/// One connection behind a mutex: rusqlite's `Connection` is not `Sync`, and SQLite serialises
/// writers anyway. Transactions are short and take the write lock up front (`BEGIN IMMEDIATE`),
/// so another process on the same file waits on the busy timeout instead of failing on upgrade.
pub struct SqliteStore {
    conn: Mutex<Connection>,
}

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
        Ok(SqliteStore { conn: Mutex::new(conn) })
    }

    /// An in-memory store for tests (内存存储，仅供测试).
    pub fn in_memory() -> Result<SqliteStore, StoreError> {
        let path = PathBuf::from(":memory:");
        let mut conn =
            Connection::open_in_memory().map_err(|source| StoreError::Open { path: path.clone(), source })?;
        Self::configure(&mut conn).map_err(|source| StoreError::Open { path, source })?;
        Self::migrate(&mut conn)?;
        Ok(SqliteStore { conn: Mutex::new(conn) })
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
        tx.execute_batch(SCHEMA).map_err(db)?;
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

const SCHEMA: &str = "
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

const COLUMNS: &str = "receipt, application_id, idempotency_key, target, matter_code, window_id, accepting_region, \
     handling_region, document, state, province_case_id, attempts, next_attempt_at, last_error, accepted_at, updated_at";

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
    })
}

fn find_by(conn: &Connection, column: &str, value: &str) -> rusqlite::Result<Option<Acceptance>> {
    // `column` is always one of our literals, never input.
    conn.query_row(&format!("SELECT {COLUMNS} FROM acceptances WHERE {column} = ?1"), [value], from_row).optional()
}

/// The row id, state and case number of a receipt, for transitions.
fn current(tx: &Transaction<'_>, receipt: &str) -> rusqlite::Result<Option<(i64, String, Option<String>)>> {
    tx.query_row("SELECT id, state, province_case_id FROM acceptances WHERE receipt = ?1", [receipt], |row| {
        Ok((row.get(0)?, row.get(1)?, row.get(2)?))
    })
    .optional()
}

fn add_event(
    tx: &Transaction<'_>,
    id: i64,
    at: SystemTimeMs,
    kind: &str,
    detail: Option<&str>,
) -> rusqlite::Result<()> {
    tx.execute(
        "INSERT INTO events (acceptance_id, at, kind, detail) VALUES (?1, ?2, ?3, ?4)",
        params![id, at, kind, detail],
    )
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

/// States that belong to delivery, which [`AcceptanceStore::record_state`] must not set.
const DELIVERY_STATES: [&str; 4] = [STATE_ACCEPTED, STATE_DELIVERING, STATE_DELIVERED, STATE_DEAD_LETTER];

impl AcceptanceStore for SqliteStore {
    fn accept(&self, new: NewAcceptance) -> Result<Accepted, StoreError> {
        require("application_id", &new.application_id)?;
        require("target", &new.target)?;
        if let Some(key) = &new.idempotency_key {
            require("idempotency_key", key)?;
        }
        let op = "accept";
        self.write(op, |tx| {
            // (No let-chains: rust-version is 1.85.)
            if let Some(key) = &new.idempotency_key {
                if let Some(existing) = find_by(tx, "idempotency_key", key).map_err(db(op))? {
                    return Ok(Accepted { receipt: existing.receipt.clone(), created: false, acceptance: existing });
                }
            }
            if let Some(existing) = find_by(tx, "application_id", &new.application_id).map_err(db(op))? {
                if new.idempotency_key.is_some() {
                    // The key did not match above, so this is a second acceptance of the same
                    // application: refusing is safer than handing out someone else's receipt.
                    return Err(StoreError::Conflict {
                        application_id: new.application_id.clone(),
                        receipt: existing.receipt,
                    });
                }
                return Ok(Accepted { receipt: existing.receipt.clone(), created: false, acceptance: existing });
            }
            // The counter lives in the same transaction, so a rolled-back accept reuses nothing
            // that was ever handed out, and a committed one is never reused after a restart.
            let seq: i64 = tx
                .query_row("UPDATE counters SET value = value + 1 WHERE name = 'receipt' RETURNING value", [], |row| {
                    row.get(0)
                })
                .map_err(db(op))?;
            let receipt = receipt_number(new.accepted_at, seq)?;
            let at = new.accepted_at;
            tx.execute(
                "INSERT INTO acceptances (receipt, application_id, idempotency_key, target, matter_code, window_id, \
                 accepting_region, handling_region, document, state, attempts, next_attempt_at, accepted_at, \
                 updated_at) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, 0, ?11, ?11, ?11)",
                params![
                    receipt,
                    new.application_id,
                    new.idempotency_key,
                    new.target,
                    new.matter_code,
                    new.window_id,
                    new.accepting_region,
                    new.handling_region,
                    new.document,
                    STATE_ACCEPTED,
                    at,
                ],
            )
            .map_err(db(op))?;
            let id = tx.last_insert_rowid();
            let detail = format!(
                "window {} ({}) for {} via {}",
                new.window_id, new.accepting_region, new.handling_region, new.target
            );
            add_event(tx, id, at, "accepted", Some(&detail)).map_err(db(op))?;
            let acceptance = Acceptance {
                receipt: receipt.clone(),
                application_id: new.application_id,
                idempotency_key: new.idempotency_key,
                target: new.target,
                matter_code: new.matter_code,
                window_id: new.window_id,
                accepting_region: new.accepting_region,
                handling_region: new.handling_region,
                document: new.document,
                state: STATE_ACCEPTED.to_owned(),
                province_case_id: None,
                attempts: 0,
                next_attempt_at: at,
                last_error: None,
                accepted_at: at,
                updated_at: at,
            };
            Ok(Accepted { receipt, created: true, acceptance })
        })
    }

    fn get(&self, receipt: &str) -> Result<Option<Acceptance>, StoreError> {
        self.read(|conn| find_by(conn, "receipt", receipt).map_err(db("get")))
    }

    fn claim_due(&self, now: SystemTimeMs, limit: usize, lease_ms: u64) -> Result<Vec<Acceptance>, StoreError> {
        if limit == 0 {
            return Ok(Vec::new());
        }
        let lease_until = now.saturating_add(i64::try_from(lease_ms).unwrap_or(i64::MAX));
        let op = "claim_due";
        self.write(op, |tx| {
            // Select and mark in one IMMEDIATE transaction: no other connection can claim in between.
            let mut select = tx
                .prepare_cached(&format!(
                    "SELECT {COLUMNS}, id FROM acceptances \
                     WHERE state IN ('accepted', 'delivering') AND next_attempt_at <= ?1 \
                       AND (lease_until IS NULL OR lease_until <= ?1) \
                     ORDER BY accepted_at, id LIMIT ?2"
                ))
                .map_err(db(op))?;
            let rows = select
                .query_map(params![now, to_i64(limit)], |row| {
                    let id: i64 = row.get(16)?;
                    let mut acceptance = from_row(row)?;
                    acceptance.state = STATE_DELIVERING.to_owned();
                    acceptance.updated_at = now;
                    Ok((id, acceptance))
                })
                .map_err(db(op))?
                .collect::<rusqlite::Result<Vec<_>>>()
                .map_err(db(op))?;
            let mut mark = tx
                .prepare_cached(
                    "UPDATE acceptances SET state = 'delivering', lease_until = ?2, updated_at = ?3 WHERE id = ?1",
                )
                .map_err(db(op))?;
            let mut claimed = Vec::with_capacity(rows.len());
            for (id, acceptance) in rows {
                mark.execute(params![id, lease_until, now]).map_err(db(op))?;
                claimed.push(acceptance);
            }
            Ok(claimed)
        })
    }

    fn delivered(&self, receipt: &str, province_case_id: &str, at: SystemTimeMs) -> Result<(), StoreError> {
        require("province_case_id", province_case_id)?;
        let op = "delivered";
        self.write(op, |tx| {
            let (id, state, case) = current(tx, receipt)
                .map_err(db(op))?
                .ok_or_else(|| StoreError::NotFound { receipt: receipt.into() })?;
            if case.as_deref() == Some(province_case_id) {
                return Ok(()); // a repeated confirmation: already recorded
            }
            // From dead_letter too: a late confirmation means the province did take it.
            if ![STATE_ACCEPTED, STATE_DELIVERING, STATE_DEAD_LETTER].contains(&state.as_str()) {
                return Err(StoreError::InvalidTransition { receipt: receipt.into(), action: "mark delivered", state });
            }
            tx.execute(
                "UPDATE acceptances SET state = 'delivered', province_case_id = ?2, lease_until = NULL, \
                 updated_at = ?3 WHERE id = ?1",
                params![id, province_case_id, at],
            )
            .map_err(db(op))?;
            add_event(tx, id, at, "delivered", Some(province_case_id)).map_err(db(op))
        })
    }

    fn retry_later(
        &self,
        receipt: &str,
        error: &str,
        next_attempt_at: SystemTimeMs,
        at: SystemTimeMs,
    ) -> Result<(), StoreError> {
        let op = "retry_later";
        let error = truncate(error, MAX_ERROR_BYTES);
        self.write(op, |tx| {
            let (id, state, _) = current(tx, receipt)
                .map_err(db(op))?
                .ok_or_else(|| StoreError::NotFound { receipt: receipt.into() })?;
            if state != STATE_DELIVERING && state != STATE_ACCEPTED {
                return Err(StoreError::InvalidTransition { receipt: receipt.into(), action: "retry", state });
            }
            tx.execute(
                "UPDATE acceptances SET state = 'accepted', attempts = attempts + 1, last_error = ?2, \
                 next_attempt_at = ?3, lease_until = NULL, updated_at = ?4 WHERE id = ?1",
                params![id, error, next_attempt_at, at],
            )
            .map_err(db(op))?;
            add_event(tx, id, at, "attempt_failed", Some(error)).map_err(db(op))
        })
    }

    fn dead_letter(&self, receipt: &str, error: &str, at: SystemTimeMs) -> Result<(), StoreError> {
        let op = "dead_letter";
        let error = truncate(error, MAX_ERROR_BYTES);
        self.write(op, |tx| {
            let (id, state, _) = current(tx, receipt)
                .map_err(db(op))?
                .ok_or_else(|| StoreError::NotFound { receipt: receipt.into() })?;
            if state != STATE_DELIVERING && state != STATE_ACCEPTED {
                return Err(StoreError::InvalidTransition { receipt: receipt.into(), action: "dead-letter", state });
            }
            tx.execute(
                "UPDATE acceptances SET state = 'dead_letter', attempts = attempts + 1, last_error = ?2, \
                 lease_until = NULL, updated_at = ?3 WHERE id = ?1",
                params![id, error, at],
            )
            .map_err(db(op))?;
            add_event(tx, id, at, "dead_letter", Some(error)).map_err(db(op))
        })
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
            if [STATE_ACCEPTED, STATE_DELIVERING, STATE_DEAD_LETTER].contains(&current_state.as_str()) {
                return Err(StoreError::InvalidTransition {
                    receipt: receipt.into(),
                    action: "record a platform state for",
                    state: current_state,
                });
            }
            if current_state == state {
                return Ok(false);
            }
            tx.execute("UPDATE acceptances SET state = ?2, updated_at = ?3 WHERE id = ?1", params![id, state, at])
                .map_err(db(op))?;
            let text = match detail {
                Some(d) => format!("{state}: {}", truncate(d, MAX_ERROR_BYTES)),
                None => state.to_owned(),
            };
            add_event(tx, id, at, "state", Some(&text)).map_err(db(op))?;
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
        store.delivered(&r, "ZJ-2026-0001", T0 + 70_100).unwrap();
        store.delivered(&r, "ZJ-2026-0001", T0 + 70_200).unwrap(); // repeated confirmation: no-op
        let a = store.get(&r).unwrap().unwrap();
        assert_eq!(a.state, STATE_DELIVERED);
        assert_eq!(a.province_case_id.as_deref(), Some("ZJ-2026-0001"));
        assert!(matches!(store.delivered(&r, "OTHER", T0), Err(StoreError::InvalidTransition { .. })));
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
        assert!(matches!(store.delivered("nope", "c", T0), Err(StoreError::NotFound { .. })));
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
        store.delivered(&r, "ZJ-1", T0 + 2).unwrap();
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
        store.delivered(&a, "X-1", T0 + 11).unwrap();
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
}
