//! The print job store (打证记录库): every print of every certificate, with its document, kept in
//! SQLite so the print-once rule, reprint numbers and verification survive restarts.
//!
//! Print jobs are few (a window prints a handful an hour), so one connection behind a mutex is
//! enough; calls run on the blocking pool.

use std::path::Path;
use std::sync::{Arc, Mutex};

use rusqlite::{Connection, OptionalExtension, params};

/// One print job (打证任务).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PrintJob {
    /// Job id (UUID v7).
    pub job_id: String,
    /// The issuing authority's region code (from the certificate).
    pub issuer_region: String,
    /// The adapter of the issuing platform at the time of printing.
    pub issuer_platform: String,
    /// 证照编号.
    pub certificate_id: String,
    /// Canonical type code.
    pub certificate_type: String,
    /// 证照名称.
    pub certificate_name: String,
    /// The holder's name, masked (张*).
    pub holder_masked: String,
    /// SHA-256 (hex) of the signed bytes printed: the exact content vouched for.
    pub certificate_digest: String,
    /// The issuer key that verified it.
    pub key_id: String,
    /// Window or terminal id.
    pub site: String,
    /// The site's region code.
    pub site_region: String,
    /// Who asked (the clerk or terminal as the caller names them).
    pub requested_by: String,
    /// The calling partner.
    pub partner: String,
    /// Copies to print.
    pub copies: u32,
    /// 1 for the first print, 2… for reprints (补打).
    pub print_number: u32,
    /// Why a reprint was needed.
    pub reprint_reason: Option<String>,
    /// `queued` or `printed`.
    pub state: String,
    /// Epoch milliseconds.
    pub created_at: i64,
    /// Epoch milliseconds of the terminal's confirmation.
    pub printed_at: Option<i64>,
}

/// Job state: waiting for the site.
pub const JOB_QUEUED: &str = "queued";
/// Job state: the site confirmed printing.
pub const JOB_PRINTED: &str = "printed";

/// Store failures.
#[derive(Debug, thiserror::Error)]
pub enum PrintStoreError {
    /// Another print of the same certificate took this number first.
    #[error("print {number} of this certificate was just recorded by another request")]
    NumberTaken {
        /// The number.
        number: u32,
    },
    /// SQLite failed.
    #[error("print store: {0}")]
    Db(String),
}

fn db(error: rusqlite::Error) -> PrintStoreError {
    PrintStoreError::Db(error.to_string())
}

/// The SQLite print job store.
#[derive(Clone)]
pub struct PrintStore {
    conn: Arc<Mutex<Connection>>,
}

impl std::fmt::Debug for PrintStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("PrintStore")
    }
}

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS print_jobs (
    job_id TEXT PRIMARY KEY,
    issuer_region TEXT NOT NULL,
    issuer_platform TEXT NOT NULL,
    certificate_id TEXT NOT NULL,
    certificate_type TEXT NOT NULL,
    certificate_name TEXT NOT NULL,
    holder_masked TEXT NOT NULL,
    certificate_digest TEXT NOT NULL,
    key_id TEXT NOT NULL,
    site TEXT NOT NULL,
    site_region TEXT NOT NULL,
    requested_by TEXT NOT NULL,
    partner TEXT NOT NULL,
    copies INTEGER NOT NULL,
    print_number INTEGER NOT NULL,
    reprint_reason TEXT,
    state TEXT NOT NULL,
    created_at INTEGER NOT NULL,
    printed_at INTEGER,
    document BLOB NOT NULL,
    UNIQUE (issuer_region, certificate_id, print_number)
);
CREATE INDEX IF NOT EXISTS print_jobs_by_site ON print_jobs (site, state, created_at);
";

const COLUMNS: &str = "job_id, issuer_region, issuer_platform, certificate_id, certificate_type, certificate_name, \
     holder_masked, certificate_digest, key_id, site, site_region, requested_by, partner, copies, print_number, \
     reprint_reason, state, created_at, printed_at";

fn row_to_job(row: &rusqlite::Row<'_>) -> rusqlite::Result<PrintJob> {
    Ok(PrintJob {
        job_id: row.get(0)?,
        issuer_region: row.get(1)?,
        issuer_platform: row.get(2)?,
        certificate_id: row.get(3)?,
        certificate_type: row.get(4)?,
        certificate_name: row.get(5)?,
        holder_masked: row.get(6)?,
        certificate_digest: row.get(7)?,
        key_id: row.get(8)?,
        site: row.get(9)?,
        site_region: row.get(10)?,
        requested_by: row.get(11)?,
        partner: row.get(12)?,
        copies: row.get(13)?,
        print_number: row.get(14)?,
        reprint_reason: row.get(15)?,
        state: row.get(16)?,
        created_at: row.get(17)?,
        printed_at: row.get(18)?,
    })
}

impl PrintStore {
    /// Opens (or creates) the store at `path`.
    pub fn open(path: &Path) -> Result<PrintStore, PrintStoreError> {
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).map_err(|e| PrintStoreError::Db(format!("{}: {e}", dir.display())))?;
        }
        let conn = Connection::open(path).map_err(|e| PrintStoreError::Db(format!("{}: {e}", path.display())))?;
        conn.busy_timeout(std::time::Duration::from_secs(5)).map_err(db)?;
        conn.pragma_update_and_check(None, "journal_mode", "WAL", |row| row.get::<_, String>(0)).map_err(db)?;
        conn.pragma_update(None, "synchronous", "FULL").map_err(db)?;
        conn.execute_batch(SCHEMA).map_err(db)?;
        Ok(PrintStore { conn: Arc::new(Mutex::new(conn)) })
    }

    fn with<T>(&self, f: impl FnOnce(&mut Connection) -> Result<T, PrintStoreError>) -> Result<T, PrintStoreError> {
        let mut conn = self.conn.lock().map_err(|_| PrintStoreError::Db("connection lock poisoned".into()))?;
        f(&mut conn)
    }

    /// The highest print number of a certificate so far (0: never printed).
    pub fn last_print_number(&self, issuer_region: &str, certificate_id: &str) -> Result<u32, PrintStoreError> {
        self.with(|conn| {
            conn.query_row(
                "SELECT COALESCE(MAX(print_number), 0) FROM print_jobs WHERE issuer_region = ?1 AND certificate_id = ?2",
                params![issuer_region, certificate_id],
                |row| row.get(0),
            )
            .map_err(db)
        })
    }

    /// Records a job and its document; a number already taken is refused, never overwritten.
    pub fn insert(&self, job: &PrintJob, document: &[u8]) -> Result<(), PrintStoreError> {
        self.with(|conn| {
            let result = conn.execute(
                &format!("INSERT INTO print_jobs ({COLUMNS}, document) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17, ?18, ?19, ?20)"),
                params![
                    job.job_id,
                    job.issuer_region,
                    job.issuer_platform,
                    job.certificate_id,
                    job.certificate_type,
                    job.certificate_name,
                    job.holder_masked,
                    job.certificate_digest,
                    job.key_id,
                    job.site,
                    job.site_region,
                    job.requested_by,
                    job.partner,
                    job.copies,
                    job.print_number,
                    job.reprint_reason,
                    job.state,
                    job.created_at,
                    job.printed_at,
                    document,
                ],
            );
            match result {
                Ok(_) => Ok(()),
                Err(rusqlite::Error::SqliteFailure(e, _)) if e.code == rusqlite::ErrorCode::ConstraintViolation => {
                    Err(PrintStoreError::NumberTaken { number: job.print_number })
                }
                Err(e) => Err(db(e)),
            }
        })
    }

    /// One job.
    pub fn get(&self, job_id: &str) -> Result<Option<PrintJob>, PrintStoreError> {
        self.with(|conn| {
            conn.query_row(&format!("SELECT {COLUMNS} FROM print_jobs WHERE job_id = ?1"), params![job_id], row_to_job)
                .optional()
                .map_err(db)
        })
    }

    /// A job's document.
    pub fn document(&self, job_id: &str) -> Result<Option<Vec<u8>>, PrintStoreError> {
        self.with(|conn| {
            conn.query_row("SELECT document FROM print_jobs WHERE job_id = ?1", params![job_id], |row| row.get(0))
                .optional()
                .map_err(db)
        })
    }

    /// A site's jobs in a state, oldest first, at most `limit`.
    pub fn for_site(&self, site: &str, state: Option<&str>, limit: usize) -> Result<Vec<PrintJob>, PrintStoreError> {
        self.with(|conn| {
            let mut statement = conn
                .prepare_cached(&format!(
                    "SELECT {COLUMNS} FROM print_jobs WHERE site = ?1 AND (?2 IS NULL OR state = ?2) ORDER BY created_at, job_id LIMIT ?3"
                ))
                .map_err(db)?;
            let rows = statement
                .query_map(params![site, state, i64::try_from(limit).unwrap_or(i64::MAX)], row_to_job)
                .map_err(db)?;
            rows.collect::<Result<Vec<_>, _>>().map_err(db)
        })
    }

    /// Marks a job printed; answers the job as it now stands (unchanged when already printed).
    pub fn mark_printed(&self, job_id: &str, at_ms: i64) -> Result<Option<PrintJob>, PrintStoreError> {
        self.with(|conn| {
            conn.execute(
                "UPDATE print_jobs SET state = ?2, printed_at = ?3 WHERE job_id = ?1 AND state = ?4",
                params![job_id, JOB_PRINTED, at_ms, JOB_QUEUED],
            )
            .map_err(db)?;
            conn.query_row(&format!("SELECT {COLUMNS} FROM print_jobs WHERE job_id = ?1"), params![job_id], row_to_job)
                .optional()
                .map_err(db)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn job(number: u32) -> PrintJob {
        PrintJob {
            job_id: format!("job-{number}"),
            issuer_region: "520103".into(),
            issuer_platform: "guizhou".into(),
            certificate_id: "GZ-DEMO-0001".into(),
            certificate_type: "household_transfer_permit".into(),
            certificate_name: "准予迁入证明".into(),
            holder_masked: "张*".into(),
            certificate_digest: "00".into(),
            key_id: "k".into(),
            site: "GD-WINDOW-01".into(),
            site_region: "440106".into(),
            requested_by: "clerk".into(),
            partner: "anonymous".into(),
            copies: 1,
            print_number: number,
            reprint_reason: (number > 1).then(|| "损毁".into()),
            state: JOB_QUEUED.into(),
            created_at: i64::from(number),
            printed_at: None,
        }
    }

    #[test]
    fn numbers_are_unique_per_certificate_and_survive_reopening() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("prints.sqlite");
        let store = PrintStore::open(&path).unwrap();
        assert_eq!(store.last_print_number("520103", "GZ-DEMO-0001").unwrap(), 0);
        store.insert(&job(1), b"%PDF-1").unwrap();
        let mut twin = job(1);
        twin.job_id = "other".into();
        assert!(matches!(store.insert(&twin, b"x"), Err(PrintStoreError::NumberTaken { number: 1 })));
        store.insert(&job(2), b"%PDF-2").unwrap();
        drop(store);
        let store = PrintStore::open(&path).unwrap();
        assert_eq!(store.last_print_number("520103", "GZ-DEMO-0001").unwrap(), 2);
        assert_eq!(store.document("job-2").unwrap().as_deref(), Some(&b"%PDF-2"[..]));
        assert_eq!(store.get("job-1").unwrap().unwrap(), job(1));
        assert_eq!(store.get("nope").unwrap(), None);
    }

    #[test]
    fn a_site_sees_its_queue_and_printing_is_confirmed_once() {
        let dir = tempfile::tempdir().unwrap();
        let store = PrintStore::open(&dir.path().join("p.sqlite")).unwrap();
        store.insert(&job(1), b"a").unwrap();
        store.insert(&job(2), b"b").unwrap();
        let queued = store.for_site("GD-WINDOW-01", Some(JOB_QUEUED), 10).unwrap();
        assert_eq!(queued.iter().map(|j| j.print_number).collect::<Vec<_>>(), vec![1, 2]);
        assert!(store.for_site("elsewhere", None, 10).unwrap().is_empty());
        let printed = store.mark_printed("job-1", 100).unwrap().unwrap();
        assert_eq!((printed.state.as_str(), printed.printed_at), (JOB_PRINTED, Some(100)));
        let again = store.mark_printed("job-1", 200).unwrap().unwrap();
        assert_eq!(again.printed_at, Some(100), "the first confirmation stands");
        assert_eq!(store.for_site("GD-WINDOW-01", Some(JOB_QUEUED), 10).unwrap().len(), 1);
        assert_eq!(store.mark_printed("nope", 1).unwrap(), None);
    }
}
