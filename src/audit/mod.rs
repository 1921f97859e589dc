//! The audit log (审计日志): one tamper-evident line for every exchange through the gateway.
//!
//! Personal data never appears in clear: payloads are recorded only as digests that the caller
//! computes with [`Algorithm::digest_hex`]. Recording never blocks or fails a request
//! ([`AuditLog::record`]); losses (full queue, full disk) are counted and written into the log
//! itself as "gap" records, so the chain stays unbroken and every loss is explicit.
//!
//! # On-disk format (version 1)
//!
//! A file is JSON Lines: UTF-8, one record per line, every line terminated by `\n`. A record is a
//! JSON object whose members are, in this order: `seq` (integer, 1 for the first record of a
//! file, then consecutive), `kind` (`"exchange"`, `"start"` or `"gap"`), `alg` (`"sm3"` or
//! `"sha256"`), the kind's own members (below), `prev`, and last `hash`.
//!
//! - `exchange`: the members of [`AuditEntry`] in declaration order (`time` … `latency_us`);
//!   absent optional values are `null`.
//! - `start` (written each time the gateway opens the log): `time`, `version` (the gateway's),
//!   and, in a file begun after a rotation, `continues`: `{"seq", "hash"}` of the moved file's
//!   last record.
//! - `gap` (written before the first record after a loss): `time`, `lost` (records dropped),
//!   `since` and `until` (earliest and latest `time` of the dropped records).
//!
//! Times are RFC 3339 in UTC with microseconds and `Z`. Hashes are lowercase hex (64 digits for
//! both algorithms).
//!
//! A rotation (the file moved away, then a reload) begins a new file and a new chain there.
//!
//! Hash chain: `prev` is the `hash` of the previous record in the file; for the first record of a
//! file it is `hex(alg("tongban-audit-v1"))`, i.e. `8d00f1dd…3efa50` for SM3 and
//! `44d58c45…cc2f59` for SHA-256. A record's hash is `hash = hex(alg(prev ‖ "\n" ‖ body))`, where
//! `prev` is the record's own `prev` member as 64 ASCII hex digits, `alg` its own `alg` member (a
//! chain may change algorithm at a `start`), and `body` the exact text of the line without its
//! hash member: the line (without `\n`) always ends with `,"hash":"` + 64 hex digits + `"}`
//! (75 bytes); remove those 75 bytes and append `}` to get `body`. A verifier therefore works on
//! the bytes of the line and never re-serialises JSON. The writer produces the line the same way
//! round: it serialises the record without `hash` to `body`, then replaces the final `}` with
//! `,"hash":"<hex>"}`.
//!
//! A log is intact when every line is a record, every hash recomputes, every `prev` equals the
//! previous record's `hash`, and every `seq` is the previous one plus 1.
//!
//! A crash in the middle of a write can leave a line without `\n` at the end of the file. On the
//! next start the gateway appends `\n` (the torn text stays, visible to [`verify`] as
//! [`BreakKind::Torn`]) and continues the chain from the last complete record, so the torn line
//! is the only break.
//!
//! # Losses
//!
//! Records are queued for a writer thread; a full queue drops the record. A failed write (e.g.
//! disk full) cuts the file back to its length before the write, so no partial record of ours
//! stays, drops the records and logs one error per outage. Both are counted ([`AuditStats`]); the
//! next successful write starts with a `gap` record naming how many were lost, chained like any
//! other record, so a loss is explicit and itself tamper-evident.

//! # What the chain proves, and what it does not
//!
//! Editing, deleting, moving or inserting a record shows up in [`verify`]. An attacker who can
//! write the file can however rewrite everything after some point with freshly computed hashes;
//! a hash chain alone cannot detect that. The mitigation is to ship the latest hash
//! ([`AuditLog::head`]) off the machine regularly (monitoring, a ticket, another host's log): a
//! rewritten log no longer contains a shipped `(seq, hash)` pair.

mod chain;
mod verify;
mod writer;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

pub use verify::{Break, BreakKind, GapSeen, VerifyReport, continues_from, verify};
pub use writer::{AuditLog, AuditStats, Durability, FileSink, Reopened, Sink};

/// The hash algorithm (摘要算法) of the chain and of payload digests.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Algorithm {
    /// SM3 (GB/T 32905), the national standard hash (国密).
    Sm3,
    /// SHA-256.
    Sha256,
}

impl Algorithm {
    /// Lowercase hex digest of `bytes`: what an [`AuditEntry`] carries instead of a payload.
    pub fn digest_hex(self, bytes: &[u8]) -> String {
        chain::hash_parts(self, &[bytes])
    }

    /// The name on disk and in configuration: `sm3` or `sha256`.
    pub fn as_str(self) -> &'static str {
        match self {
            Algorithm::Sm3 => "sm3",
            Algorithm::Sha256 => "sha256",
        }
    }

    /// The algorithm named `name` (`sm3` or `sha256`).
    pub fn parse(name: &str) -> Option<Algorithm> {
        match name {
            "sm3" => Some(Algorithm::Sm3),
            "sha256" => Some(Algorithm::Sha256),
            _ => None,
        }
    }
}

impl std::fmt::Display for Algorithm {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One exchange through the gateway (审计记录), as recorded.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuditEntry {
    /// When the request arrived.
    #[serde(with = "chain::rfc3339")]
    pub time: DateTime<Utc>,
    /// The gateway's request id.
    pub request_id: String,
    /// The calling partner.
    pub partner: String,
    /// The accepting region code (受理地), or the calling partner's province.
    pub from: Option<String>,
    /// The handling platform's name (办理地平台).
    pub to: Option<String>,
    /// The handling region code.
    pub to_region: Option<String>,
    /// How the request was routed.
    pub route_kind: Option<String>,
    /// The matter (事项) code.
    pub matter: Option<String>,
    /// The operation within the matter.
    pub operation: Option<String>,
    /// HTTP method.
    pub method: String,
    /// The endpoint with ids left out, e.g. `/v1/applications/{id}`; never the raw path.
    pub path_kind: String,
    /// Digest (hex) of the request payload.
    pub request_digest: Option<String>,
    /// Digest (hex) of the response payload.
    pub response_digest: Option<String>,
    /// HTTP status returned to the caller; 499 when the caller closed the connection first.
    pub status: u16,
    /// Problem slug when the exchange failed.
    pub problem: Option<String>,
    /// Time spent in the gateway, microseconds.
    pub latency_us: u64,
}

/// Failures to open or read an audit log.
#[derive(Debug, thiserror::Error)]
pub enum AuditError {
    /// The file could not be opened, read or written.
    #[error("audit log {path}: {source}")]
    Io {
        /// The file.
        path: String,
        /// The cause.
        source: std::io::Error,
    },
    /// The writer thread could not be started.
    #[error("audit log: cannot start the writer thread: {0}")]
    Thread(std::io::Error),
    /// The file's last line is not an audit record: refusing to append after it.
    #[error(
        "audit log {path}: line {line} is not an audit record ({reason}); nothing was written. Run `tongban audit verify {path}`, keep the file as evidence and move it aside before starting with the audit log enabled"
    )]
    InvalidTail {
        /// The file.
        path: String,
        /// 1-based line number.
        line: u64,
        /// What is wrong with it.
        reason: String,
    },
}

#[cfg(test)]
pub(crate) mod testing {
    //! Shared test helpers: entries, a log on disk, an in-memory sink that can run out of space.
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use std::io;
    use std::path::Path;
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::sync::{Arc, Mutex};
    use std::time::Duration;

    use chrono::DateTime;

    use super::{Algorithm, AuditEntry, AuditLog, Sink};

    /// Long enough never to fire unless the writer is stuck.
    pub(crate) const WAIT: Duration = Duration::from_secs(30);

    /// Exchange number `n`, its time `n` seconds after a fixed instant.
    pub(crate) fn entry(n: u64) -> AuditEntry {
        AuditEntry {
            time: DateTime::from_timestamp(1_795_330_800 + n as i64, 0).unwrap(),
            request_id: format!("req-{n}"),
            partner: format!("partner-{n}"),
            from: Some("110000".into()),
            to: Some("zhejiang".into()),
            to_region: Some("330000".into()),
            route_kind: Some("region".into()),
            matter: Some("M001".into()),
            operation: Some("submit".into()),
            method: "POST".into(),
            path_kind: "applications.submit".into(),
            request_digest: Some(Algorithm::Sha256.digest_hex(b"{}")),
            response_digest: None,
            status: 201,
            problem: None,
            latency_us: 1000 + n,
        }
    }

    /// Opens the log at `path`, records entries `from..=to`, waits until written, closes it.
    pub(crate) fn write_log(path: &Path, alg: Algorithm, from: u64, to: u64) -> AuditLog {
        let log = AuditLog::open(path, alg, "9.9.9", 64, super::Durability::Written).unwrap();
        (from..=to).for_each(|n| log.record(entry(n)));
        assert!(log.flush(WAIT));
        log
    }

    /// The file's lines, without their `\n`.
    pub(crate) fn lines(path: &Path) -> Vec<String> {
        std::fs::read_to_string(path).unwrap().lines().map(str::to_owned).collect()
    }

    /// A sink in memory; while `full`, appends write half their bytes and fail with ENOSPC.
    #[derive(Clone, Default)]
    pub(crate) struct MemSink {
        pub(crate) data: Arc<Mutex<Vec<u8>>>,
        pub(crate) full: Arc<AtomicBool>,
    }

    impl Sink for MemSink {
        fn append(&mut self, bytes: &[u8]) -> io::Result<()> {
            let mut data = self.data.lock().unwrap();
            if self.full.load(Ordering::SeqCst) {
                data.extend_from_slice(&bytes[..bytes.len() / 2]);
                return Err(io::ErrorKind::StorageFull.into());
            }
            data.extend_from_slice(bytes);
            Ok(())
        }

        fn len(&self) -> io::Result<u64> {
            Ok(self.data.lock().unwrap().len() as u64)
        }

        fn truncate(&mut self, len: u64) -> io::Result<()> {
            self.data.lock().unwrap().truncate(len as usize);
            Ok(())
        }
    }
}
