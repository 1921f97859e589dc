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

pub mod prints;
mod sqlite;

use std::path::PathBuf;

pub use self::sqlite::SqliteStore;

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
/// A multi-site joint acceptance waiting for its parties' decisions (多地联办，待各方办结).
pub const STATE_JOINT_PENDING: &str = "joint_pending";
/// A party of a joint acceptance that gave no decision by the deadline (缺席).
pub const STATE_ABSENT: &str = "absent";
/// Platform states after which nothing changes (办结): polling stops, a joint part is decided.
pub const FINAL_STATES: [&str; 3] = ["approved", "rejected", "withdrawn"];

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
    /// (省级办件编号), lease released, event `delivered`, the platform's state polled first at
    /// `first_poll_at` (none: never polled). Repeating it with the same case number is a no-op.
    fn delivered(
        &self,
        receipt: &str,
        province_case_id: &str,
        at: SystemTimeMs,
        first_poll_at: Option<SystemTimeMs>,
    ) -> Result<(), StoreError>;

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

    /// Records a worker round's delivery outcomes together (one transaction, so one fsync for
    /// the round); one result per outcome, in order. The default records them one at a time.
    fn record_outcomes(&self, outcomes: &[Outcome]) -> Vec<Result<(), StoreError>> {
        outcomes
            .iter()
            .map(|outcome| match &outcome.kind {
                OutcomeKind::Delivered { province_case_id, first_poll_at } => {
                    self.delivered(&outcome.receipt, province_case_id, outcome.at, *first_poll_at)
                }
                OutcomeKind::Retry { error, next_attempt_at } => {
                    self.retry_later(&outcome.receipt, error, *next_attempt_at, outcome.at)
                }
                OutcomeKind::Dead { error } => self.dead_letter(&outcome.receipt, error, outcome.at),
            })
            .collect()
    }

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

    /// Up to `limit` delivered records whose platform state is due to be polled (状态查询) at
    /// `now`, oldest poll first; each is pushed `lease_ms` ahead so no other worker polls it too.
    fn claim_polls(&self, now: SystemTimeMs, limit: usize, lease_ms: u64) -> Result<Vec<Acceptance>, StoreError>;

    /// Sets when the platform's state is polled next and the interval that led there; `None`
    /// stops polling. A record in a final state is never scheduled.
    fn schedule_poll(
        &self,
        receipt: &str,
        next_poll_at: Option<SystemTimeMs>,
        interval_ms: i64,
    ) -> Result<(), StoreError>;

    /// The earliest time after `now` at which something becomes due — a delivery (or an expired
    /// lease), a status poll, a joint deadline — or a time at or before `now` when something is
    /// due already; `None` when nothing is scheduled. The worker sleeps until then.
    fn next_due(&self, now: SystemTimeMs) -> Result<Option<SystemTimeMs>, StoreError>;

    /// The parts of a joint acceptance (联办分件), in party order; empty for other records.
    fn parts(&self, receipt: &str) -> Result<Vec<Acceptance>, StoreError>;

    /// Up to `limit` joint acceptances still waiting for their parties (待联办), oldest first.
    fn open_joints(&self, limit: usize) -> Result<Vec<Acceptance>, StoreError>;

    /// Decides a joint acceptance (联办办结): its state and an event `decided`; absent parts go to
    /// `absent` with an event each. `false` when it was already decided (another worker).
    fn decide_joint(&self, receipt: &str, decision: &JointDecision, at: SystemTimeMs) -> Result<bool, StoreError>;

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
    /// The partner (合作方) that sent it: its application ids and keys are its own.
    pub partner: String,
    /// For multi-site joint handling (多地联办): the parties, each delivered on its own.
    pub joint: Option<NewJoint>,
}

/// The parties of a multi-site joint acceptance (多地联办各方) and when they must have decided.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewJoint {
    /// Past this time, parties without a decision are absent (办理时限).
    pub deadline_at: SystemTimeMs,
    /// What an absent party counts as (缺席默认): `consent` or `refusal`.
    pub absence: String,
    /// One part per party, delivered to that party's platform.
    pub parts: Vec<NewPart>,
}

/// One party's part of a joint acceptance (联办分件).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewPart {
    /// The party's name in the matter list (联办方), e.g. `guizhou-market`.
    pub party: String,
    /// The adapter of the party's platform.
    pub target: String,
    /// The party's region code.
    pub handling_region: String,
    /// The application as this party receives it.
    pub document: String,
}

/// The outcome of one delivery attempt, to record (推送结果).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Outcome {
    /// The receipt delivered.
    pub receipt: String,
    /// When the attempt ended.
    pub at: SystemTimeMs,
    /// What happened.
    pub kind: OutcomeKind,
}

/// What a delivery attempt ended in; see [`AcceptanceStore::delivered`],
/// [`AcceptanceStore::retry_later`] and [`AcceptanceStore::dead_letter`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OutcomeKind {
    /// Confirmed with the platform's case number.
    Delivered {
        /// The case number (省级办件编号).
        province_case_id: String,
        /// The first status poll.
        first_poll_at: Option<SystemTimeMs>,
    },
    /// Try again at `next_attempt_at`.
    Retry {
        /// Why it failed.
        error: String,
        /// When it is due again.
        next_attempt_at: SystemTimeMs,
    },
    /// Given up.
    Dead {
        /// Why.
        error: String,
    },
}

/// What a record is (记录类型).
pub const KIND_SINGLE: &str = "single";
/// A multi-site joint acceptance: decided from its parts, never delivered itself.
pub const KIND_JOINT: &str = "joint";
/// One party's part of a joint acceptance.
pub const KIND_PART: &str = "part";

/// How a joint acceptance was decided (联办结果).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JointDecision {
    /// `approved` or `rejected`.
    pub state: String,
    /// Receipts of the parts that were absent at the deadline (缺席方).
    pub absent: Vec<String>,
    /// A sentence for the timeline.
    pub detail: String,
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
    /// `single`, `joint` or `part` (记录类型).
    pub kind: String,
    /// A part's joint acceptance (所属联办件).
    pub parent_receipt: Option<String>,
    /// A part's party name (联办方).
    pub party: Option<String>,
    /// A joint acceptance's deadline (办理时限).
    pub deadline_at: Option<SystemTimeMs>,
    /// A joint acceptance's absence rule (缺席默认).
    pub absence: Option<String>,
    /// When the platform's state is polled next (下次查询时间); none once final or not delivered.
    pub next_poll_at: Option<SystemTimeMs>,
    /// The current polling interval, doubled while nothing changes (查询间隔).
    pub poll_interval_ms: Option<i64>,
    /// The partner that sent it; `None` for records stored before partners were recorded.
    pub partner: Option<String>,
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
    /// The group commit carrying this acceptance failed; none of its acceptances was stored.
    #[error("store accept failed (group commit): {detail}")]
    GroupCommit {
        /// The database error.
        detail: String,
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
    /// The idempotency key names an acceptance of another application.
    #[error(
        "this Idempotency-Key was used for application {application_id} (receipt {receipt}); \
         send each application under its own key"
    )]
    KeyReused {
        /// The application the key was first used for.
        application_id: String,
        /// Its receipt number.
        receipt: String,
    },
    /// The application id belongs to another partner's acceptance (nothing of it is told).
    #[error(
        "application id {application_id} is already in use by another partner's acceptance; give this application an id of its own (a new UUID)"
    )]
    IdTaken {
        /// The application id.
        application_id: String,
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
