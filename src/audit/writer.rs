//! The writer: a dedicated thread behind a bounded queue, so recording never blocks or fails a
//! request. Losses are counted and become "gap" records once writing works again.

use std::fs::{File, OpenOptions};
use std::io::{self, BufRead, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, Ordering};
use std::sync::mpsc::{Receiver, SyncSender, TrySendError, sync_channel};
use std::sync::{Arc, Condvar, Mutex, PoisonError};
use std::time::Duration;

use chrono::{DateTime, Utc};

use super::chain::{Chain, Continues, GapFields, Kind, LineError, StartFields, parse_line};
use super::{Algorithm, AuditEntry, AuditError};

/// Records written with one `append`: bounds the memory of a batch, not the throughput.
const MAX_BATCH: usize = 256;

/// Where the writer thread puts its lines (审计输出); tests inject faults through it.
pub trait Sink: Send + 'static {
    /// Writes all of `bytes` at the end and flushes.
    fn append(&mut self, bytes: &[u8]) -> io::Result<()>;
    /// Current length in bytes.
    fn len(&self) -> io::Result<u64>;
    /// Whether nothing was written yet.
    fn is_empty(&self) -> io::Result<bool> {
        Ok(self.len()? == 0)
    }
    /// Cuts back to `len` bytes: removes our own partial write after a failed append.
    fn truncate(&mut self, len: u64) -> io::Result<()>;
    /// After a rotation moved the file away: writes to a file at the original path from now on
    /// and returns where that file's chain ends. `None`: nothing to do (the file is still there).
    fn reopen(&mut self) -> io::Result<Option<Reopened>> {
        Ok(None)
    }
}

/// A sink writing to a new file after a rotation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reopened {
    /// The new file's last record (seq, hash); `None` when it is empty.
    pub tail: Option<(u64, String)>,
}

/// A message to the writer thread.
// Records go by value: boxing them would cost an allocation per exchange for a rare `Reopen`.
#[allow(clippy::large_enum_variant)]
enum Message {
    /// A record to write.
    Entry(AuditEntry),
    /// Reopen the path if the file was moved away.
    Reopen,
}

/// How far a written batch has gone before the writer takes the next one (持久化).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Durability {
    /// On the disk (`fsync`): a power cut loses only records still queued.
    Synced,
    /// Handed to the operating system: a crash of the gateway loses nothing written, a power cut
    /// may lose the last batches.
    Written,
}

/// The real sink: a file opened for appending.
#[derive(Debug)]
pub struct FileSink {
    file: File,
    path: PathBuf,
    durability: Durability,
}

impl FileSink {
    /// Writes to `file`, opened in append mode from `path` (reopened there after a rotation).
    pub fn new(file: File, path: &Path, durability: Durability) -> FileSink {
        FileSink { file, path: path.to_owned(), durability }
    }

    /// Whether the path still names the open file.
    #[cfg(unix)]
    fn still_there(&self) -> io::Result<bool> {
        use std::os::unix::fs::MetadataExt;
        let open = self.file.metadata()?;
        match std::fs::metadata(&self.path) {
            Ok(there) => Ok(there.dev() == open.dev() && there.ino() == open.ino()),
            Err(error) if error.kind() == io::ErrorKind::NotFound => Ok(false),
            Err(error) => Err(error),
        }
    }

    #[cfg(not(unix))]
    fn still_there(&self) -> io::Result<bool> {
        Ok(true)
    }
}

impl Sink for FileSink {
    fn append(&mut self, bytes: &[u8]) -> io::Result<()> {
        self.file.write_all(bytes)?;
        self.file.flush()?;
        // On the writer thread: a slow disk grows the next batch, it never holds up a request.
        match self.durability {
            Durability::Synced => self.file.sync_data(),
            Durability::Written => Ok(()),
        }
    }

    fn len(&self) -> io::Result<u64> {
        Ok(self.file.metadata()?.len())
    }

    fn truncate(&mut self, len: u64) -> io::Result<()> {
        self.file.set_len(len)
    }

    fn reopen(&mut self) -> io::Result<Option<Reopened>> {
        if self.still_there()? {
            return Ok(None);
        }
        let mut file = OpenOptions::new().read(true).append(true).create(true).open(&self.path)?;
        let tail = read_tail(&mut file, &self.path).map_err(|error| io::Error::other(error.to_string()))?;
        self.file = file;
        Ok(Some(Reopened { tail }))
    }
}

/// The writer's counters (审计计数), for metrics.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct AuditStats {
    /// Exchange records written.
    pub written: u64,
    /// Records dropped because the queue was full.
    pub dropped_queue_full: u64,
    /// Records dropped because writing failed (e.g. disk full).
    pub dropped_write_failed: u64,
}

/// State shared by the handles and the writer thread.
struct Shared {
    written: AtomicU64,
    dropped_queue_full: AtomicU64,
    dropped_write_failed: AtomicU64,
    /// Earliest and latest `time` (µs) of records dropped since the last good write.
    lost_since: AtomicI64,
    lost_until: AtomicI64,
    /// Messages queued (the start record counts as the first) and processed, for `flush`.
    queued: AtomicU64,
    processed: Mutex<u64>,
    progress: Condvar,
    /// The last record written: (seq, hash).
    head: Mutex<(u64, String)>,
    /// A reopen was asked for (read by the writer after every batch, so asking never blocks).
    reopen_requested: AtomicBool,
}

impl Shared {
    fn note_lost(&self, time: DateTime<Utc>) {
        let micros = time.timestamp_micros();
        self.lost_since.fetch_min(micros, Ordering::Relaxed);
        self.lost_until.fetch_max(micros, Ordering::Relaxed);
    }

    fn mark_processed(&self, count: u64) {
        *self.processed.lock().unwrap_or_else(PoisonError::into_inner) += count;
        self.progress.notify_all();
    }
}

/// The audit log (审计日志) handle: cheap to clone, shared by all requests.
#[derive(Clone)]
pub struct AuditLog {
    queue: SyncSender<Message>,
    shared: Arc<Shared>,
    algorithm: Algorithm,
}

impl std::fmt::Debug for AuditLog {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AuditLog").field("stats", &self.stats()).finish_non_exhaustive()
    }
}

impl AuditLog {
    /// The chain's algorithm, also used for payload digests.
    pub fn algorithm(&self) -> Algorithm {
        self.algorithm
    }

    /// Opens (or creates) the log at `path` and starts the writer thread; writes a "start" record
    /// naming `version`. An existing log's chain is continued; a torn last line (crash mid-write)
    /// is closed with `\n` and left for [`super::verify`] to report. Refuses a file whose last
    /// line is not an audit record, rather than appending after it. `capacity`: queue length.
    pub fn open(
        path: &Path,
        algorithm: Algorithm,
        version: &str,
        capacity: usize,
        durability: Durability,
    ) -> Result<AuditLog, AuditError> {
        let io = |source| AuditError::Io { path: path.display().to_string(), source };
        let mut file = OpenOptions::new().read(true).append(true).create(true).open(path).map_err(io)?;
        let tail = read_tail(&mut file, path)?;
        AuditLog::with_sink(FileSink::new(file, path, durability), tail, algorithm, version, capacity)
    }

    /// Starts a writer on `sink`, continuing after `existing_tail` (seq, hash of the last record),
    /// or as a new file when `None`. `capacity` is the queue length (at least 1).
    pub fn with_sink(
        sink: impl Sink,
        existing_tail: Option<(u64, String)>,
        algorithm: Algorithm,
        version: &str,
        capacity: usize,
    ) -> Result<AuditLog, AuditError> {
        let chain = Chain::new(algorithm, existing_tail);
        let shared = Arc::new(Shared {
            written: AtomicU64::new(0),
            dropped_queue_full: AtomicU64::new(0),
            dropped_write_failed: AtomicU64::new(0),
            lost_since: AtomicI64::new(i64::MAX),
            lost_until: AtomicI64::new(i64::MIN),
            queued: AtomicU64::new(1),
            processed: Mutex::new(0),
            progress: Condvar::new(),
            head: Mutex::new((chain.seq, chain.hash.clone())),
            reopen_requested: AtomicBool::new(false),
        });
        let (queue, receiver) = sync_channel(capacity.max(1));
        let worker = Worker {
            sink: Box::new(sink),
            chain,
            version: version.to_owned(),
            start_pending: true,
            continues: None,
            failing: false,
            lost_failed: 0,
            accounted_queue_full: 0,
            restore_len: None,
            shared: Arc::clone(&shared),
        };
        std::thread::Builder::new()
            .name("tongban-audit".into())
            .spawn(move || worker.run(receiver))
            .map_err(AuditError::Thread)?;
        Ok(AuditLog { queue, shared, algorithm })
    }

    /// Queues `entry` without ever blocking; when the queue is full the entry is dropped, counted,
    /// and later reported by a gap record.
    pub fn record(&self, entry: AuditEntry) {
        let time = entry.time;
        match self.queue.try_send(Message::Entry(entry)) {
            Ok(()) => {
                self.shared.queued.fetch_add(1, Ordering::AcqRel);
            }
            Err(TrySendError::Full(_)) => {
                // Times first: the writer reads the counter before the times.
                self.shared.note_lost(time);
                self.shared.dropped_queue_full.fetch_add(1, Ordering::AcqRel);
            }
            Err(TrySendError::Disconnected(_)) => {
                // The writer thread is gone (it panicked): nothing can be written any more.
                self.shared.dropped_write_failed.fetch_add(1, Ordering::Relaxed);
            }
        }
    }

    /// Asks the writer to check whether the file was moved away (a rotation: `mv audit.log
    /// audit.log.1`) and, if so, to write to a new file at the configured path from the next
    /// record on. That file starts with a `start` record naming the moved file's last record
    /// (`continues`). Records queued before the call go to the moved file (with a full queue, some
    /// queued just after may too). Never blocks: with a
    /// full queue (a stuck disk) the request waits for the writer's next batch, and a reload is
    /// never held up by the audit disk. False when the writer is gone.
    pub fn reopen(&self) -> bool {
        self.shared.reopen_requested.store(true, Ordering::Release);
        // Wakes an idle writer; a busy one sees the flag after its batch.
        match self.queue.try_send(Message::Reopen) {
            Ok(()) => {
                self.shared.queued.fetch_add(1, Ordering::AcqRel);
                true
            }
            Err(TrySendError::Full(_)) => true,
            Err(TrySendError::Disconnected(_)) => false,
        }
    }

    /// Waits up to `timeout` until everything queued before the call (and the start record) has
    /// been processed: written, or dropped and counted. True when it has.
    pub fn flush(&self, timeout: Duration) -> bool {
        let target = self.shared.queued.load(Ordering::Acquire);
        let processed = self.shared.processed.lock().unwrap_or_else(PoisonError::into_inner);
        let (processed, _) = self
            .shared
            .progress
            .wait_timeout_while(processed, timeout, |done| *done < target)
            .unwrap_or_else(PoisonError::into_inner);
        *processed >= target
    }

    /// The counters, read without locks.
    pub fn stats(&self) -> AuditStats {
        AuditStats {
            written: self.shared.written.load(Ordering::Relaxed),
            dropped_queue_full: self.shared.dropped_queue_full.load(Ordering::Relaxed),
            dropped_write_failed: self.shared.dropped_write_failed.load(Ordering::Relaxed),
        }
    }

    /// The last record written (seq, hash); before the first write, the tail the log was opened
    /// with (`(0, genesis)` for a new file). Ship it off the machine regularly, so that a log
    /// rewritten with recomputed hashes can be told apart from the real one.
    pub fn head(&self) -> (u64, String) {
        self.shared.head.lock().unwrap_or_else(PoisonError::into_inner).clone()
    }
}

/// The writer thread's state.
struct Worker {
    sink: Box<dyn Sink>,
    chain: Chain,
    version: String,
    start_pending: bool,
    /// After a rotation, until the new file's start record is written: where the old one ended.
    continues: Option<Continues>,
    /// In an outage: log its start once, its end once.
    failing: bool,
    /// Records dropped by failed writes since the last good write.
    lost_failed: u64,
    /// `dropped_queue_full` as of the last good write.
    accounted_queue_full: u64,
    /// A failed append whose partial write could not be cut off yet.
    restore_len: Option<u64>,
    shared: Arc<Shared>,
}

impl Worker {
    fn run(mut self, receiver: Receiver<Message>) {
        let mut batch = Vec::with_capacity(MAX_BATCH);
        self.write(&mut batch);
        self.shared.mark_processed(1);
        // Ends when every handle is dropped and the queue is drained.
        while let Ok(first) = receiver.recv() {
            let (mut next, mut taken, mut reopen) = (Some(first), 0, false);
            while let Some(message) = next.take() {
                taken += 1;
                match message {
                    Message::Entry(entry) => batch.push(entry),
                    // Everything queued before it belongs in the file being left.
                    Message::Reopen => {
                        reopen = true;
                        break;
                    }
                }
                if batch.len() < MAX_BATCH {
                    next = receiver.try_recv().ok();
                }
            }
            self.write(&mut batch);
            if reopen | self.shared.reopen_requested.swap(false, Ordering::AcqRel) {
                self.reopen();
            }
            self.shared.mark_processed(taken);
        }
    }

    /// Follows a rotation: a new file at the path, opened with a start record that names where
    /// the moved file's chain ended.
    fn reopen(&mut self) {
        // A partial write the last failure could not cut off is cut now, in the file it is in.
        if let Some(len) = self.restore_len
            && self.sink.truncate(len).is_ok()
        {
            self.restore_len = None;
        }
        match self.sink.reopen() {
            Ok(None) => {}
            Ok(Some(Reopened { tail })) => {
                // A second rotation before this file's start record could be written: the link
                // still points at the last file that has records.
                let left = match (&self.continues, self.start_pending) {
                    (Some(pending), true) => pending.clone(),
                    _ => Continues { seq: self.chain.seq, hash: self.chain.hash.clone() },
                };
                tracing::info!(left_at_seq = left.seq, "The audit log was moved away; writing a new file at its path.");
                self.chain = Chain::new(self.chain.alg, tail);
                self.restore_len = None;
                self.start_pending = true;
                self.continues = Some(left);
                // The start record now, so the new file says at once where it comes from.
                self.write(&mut Vec::new());
            }
            Err(error) => tracing::error!(
                %error,
                "The audit log was moved away but its path cannot be opened again; records go on into the moved file."
            ),
        }
    }

    /// Writes a pending start record, a gap record if anything was lost, then `entries`; all of
    /// them or, on failure, none (the entries are dropped and counted).
    fn write(&mut self, entries: &mut Vec<AuditEntry>) {
        let count = entries.len() as u64;
        let queue_full = self.shared.dropped_queue_full.load(Ordering::Acquire);
        let lost = queue_full - self.accounted_queue_full + self.lost_failed;
        let mut chain = self.chain.clone();
        let result = self
            .seal(&mut chain, lost, entries)
            .map_err(io::Error::other)
            .and_then(|text| if text.is_empty() { Ok(()) } else { self.append(text.as_bytes()) });
        match result {
            Ok(()) => {
                if lost > 0 {
                    // A drop racing with this write may lose its time (not its count) from the next gap.
                    self.shared.lost_since.store(i64::MAX, Ordering::Relaxed);
                    self.shared.lost_until.store(i64::MIN, Ordering::Relaxed);
                    tracing::warn!(lost, "Audit records were lost; a gap record in the audit log says so.");
                }
                if self.failing {
                    tracing::warn!("The audit log is writable again.");
                }
                *self.shared.head.lock().unwrap_or_else(PoisonError::into_inner) = (chain.seq, chain.hash.clone());
                self.chain = chain;
                self.start_pending = false;
                self.continues = None;
                self.failing = false;
                self.accounted_queue_full = queue_full;
                self.lost_failed = 0;
                self.shared.written.fetch_add(count, Ordering::Relaxed);
            }
            Err(error) => {
                for entry in entries.iter() {
                    self.shared.note_lost(entry.time);
                }
                self.lost_failed += count;
                self.shared.dropped_write_failed.fetch_add(count, Ordering::Relaxed);
                if !self.failing {
                    tracing::error!(%error, "Cannot write the audit log; audit records are dropped and counted until it works again. Requests are not affected.");
                    self.failing = true;
                }
            }
        }
        entries.clear();
    }

    fn seal(&self, chain: &mut Chain, lost: u64, entries: &[AuditEntry]) -> Result<String, serde_json::Error> {
        let now = Utc::now();
        let mut text = String::new();
        if self.start_pending {
            let continues = self.continues.clone();
            text += &chain.seal(Kind::Start, StartFields { time: now, version: &self.version, continues })?;
        }
        if lost > 0 {
            let time = |micros| DateTime::from_timestamp_micros(micros).unwrap_or(now);
            let since = time(self.shared.lost_since.load(Ordering::Relaxed));
            let until = time(self.shared.lost_until.load(Ordering::Relaxed));
            text += &chain.seal(Kind::Gap, GapFields { time: now, lost, since, until })?;
        }
        for entry in entries {
            text += &chain.seal(Kind::Exchange, entry)?;
        }
        Ok(text)
    }

    /// Appends `bytes` whole or not at all.
    fn append(&mut self, bytes: &[u8]) -> io::Result<()> {
        if let Some(len) = self.restore_len {
            self.sink.truncate(len)?;
            self.restore_len = None;
        }
        let len = self.sink.len()?;
        self.sink.append(bytes).inspect_err(|_| {
            if self.sink.truncate(len).is_err() {
                self.restore_len = Some(len);
            }
        })
    }
}

/// Finds where an existing log's chain ends: (seq, hash) of its last record, `None` when empty.
fn read_tail(file: &mut File, path: &Path) -> Result<Option<(u64, String)>, AuditError> {
    let io = |source| AuditError::Io { path: path.display().to_string(), source };
    let end = file.metadata().map_err(io)?.len();
    if end == 0 {
        return Ok(None);
    }
    let mut last = [0u8; 1];
    file.seek(SeekFrom::Start(end - 1)).and_then(|_| file.read_exact(&mut last)).map_err(io)?;
    let torn = last[0] != b'\n';
    let lines = last_lines(file, end).map_err(io)?;
    let mut invalid = |back: u64, reason: LineError| -> Result<Option<(u64, String)>, AuditError> {
        let line = count_lines(file).map_err(io)? - back;
        Err(AuditError::InvalidTail { path: path.display().to_string(), line, reason: reason.to_string() })
    };
    let tail = match lines.as_slice() {
        [] => None,
        [.., last] => match parse_line(last) {
            Ok(record) => Some((record.seq, record.hash)),
            // Cut short by a crash: continue from the record before it.
            Err(LineError::Incomplete(_)) => match lines.as_slice() {
                [before, _] => match parse_line(before) {
                    Ok(record) => Some((record.seq, record.hash)),
                    Err(reason) => return invalid(1, reason),
                },
                _ => None,
            },
            Err(reason) => return invalid(0, reason),
        },
    };
    if torn {
        // Keep the torn text as evidence, on a line of its own.
        file.write_all(b"\n").map_err(io)?;
        tracing::warn!(path = %path.display(), "The audit log ended in the middle of a record (a crash while writing?). The torn line is kept, `tongban audit verify` reports it; the chain continues from the last complete record.");
    }
    Ok(tail)
}

/// The last two lines (fewer in a short file) of a file of `end` bytes, without their `\n`.
fn last_lines(file: &mut File, end: u64) -> io::Result<Vec<Vec<u8>>> {
    let mut window = 16 * 1024;
    loop {
        let start = end.saturating_sub(window);
        let mut buf = vec![0; usize::try_from(end - start).map_err(io::Error::other)?];
        file.seek(SeekFrom::Start(start))?;
        file.read_exact(&mut buf)?;
        let text = buf.strip_suffix(b"\n").unwrap_or(&buf);
        if start == 0 || text.iter().filter(|&&b| b == b'\n').count() >= 2 {
            let mut lines: Vec<Vec<u8>> = text.rsplitn(3, |&b| b == b'\n').take(2).map(<[u8]>::to_vec).collect();
            lines.reverse();
            return Ok(lines);
        }
        window *= 4;
    }
}

/// The number of lines in a file (only for error messages: reads the whole file).
fn count_lines(file: &mut File) -> io::Result<u64> {
    file.seek(SeekFrom::Start(0))?;
    io::BufReader::new(file).split(b'\n').try_fold(0, |lines, line| line.map(|_| lines + 1))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use std::sync::atomic::Ordering;
    use std::sync::mpsc::{Receiver, Sender, channel};

    use super::*;
    use crate::audit::testing::{MemSink, WAIT, entry, lines, write_log};
    use crate::audit::{BreakKind, GapSeen, verify};

    #[test]
    fn writes_a_verifiable_log_with_either_algorithm() {
        let dir = tempfile::tempdir().unwrap();
        for alg in [Algorithm::Sm3, Algorithm::Sha256] {
            let path = dir.path().join(format!("{alg}.log"));
            let log = write_log(&path, alg, 1, 20);
            assert_eq!(log.stats(), AuditStats { written: 20, dropped_queue_full: 0, dropped_write_failed: 0 });
            let report = verify(&path).unwrap();
            assert!(report.is_intact(), "{report}");
            assert_eq!((report.records, report.first_seq, report.last_seq), (21, Some(1), Some(21)));
            assert_eq!((report.algorithms, report.starts), (vec![alg], 1));
            let last = lines(&path).pop().unwrap();
            assert_eq!(log.head(), (21, last[last.len() - 66..last.len() - 2].to_owned()));
            assert!(last.contains(r#""request_id":"req-20""#));
        }
    }

    #[test]
    fn reopening_continues_the_chain() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("audit.log");
        drop(write_log(&path, Algorithm::Sm3, 1, 3));
        // A restart may switch algorithm: the chain goes on, each record names its own.
        let log = write_log(&path, Algorithm::Sha256, 4, 5);
        assert_eq!(log.head().0, 7);
        let report = verify(&path).unwrap();
        assert!(report.is_intact(), "{report}");
        assert_eq!((report.records, report.last_seq, report.starts), (7, Some(7), 2));
        assert_eq!(report.algorithms, vec![Algorithm::Sm3, Algorithm::Sha256]);
        assert!(lines(&path)[4].starts_with(r#"{"seq":5,"kind":"start","alg":"sha256""#));
    }

    #[test]
    fn a_torn_tail_is_kept_and_the_chain_continues() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("audit.log");
        drop(write_log(&path, Algorithm::Sm3, 1, 3));
        let mut file = OpenOptions::new().append(true).open(&path).unwrap();
        file.write_all(br#"{"seq":5,"kind":"exchange","alg":"sm3","time":"2026-11-"#).unwrap();
        drop(write_log(&path, Algorithm::Sm3, 4, 5));
        let report = verify(&path).unwrap();
        assert_eq!(report.breaks.len(), 1, "{report}");
        assert_eq!((report.breaks[0].line, report.breaks[0].kind), (5, BreakKind::Torn));
        assert_eq!((report.records, report.last_seq), (7, Some(7)));
        assert!(lines(&path)[5].starts_with(r#"{"seq":5,"kind":"start""#));
        // Torn again, and closed by that restart, but nothing written after it: still opens.
        file.write_all(b"{\"seq\":8,\"ki\n").unwrap();
        let log = AuditLog::open(&path, Algorithm::Sm3, "9.9.9", 4, Durability::Synced).unwrap();
        assert!(log.flush(WAIT));
        assert_eq!(log.head().0, 8);
    }

    #[test]
    fn refuses_to_append_after_a_line_that_is_no_record() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("audit.log");
        drop(write_log(&path, Algorithm::Sm3, 1, 2));
        let mut file = OpenOptions::new().append(true).open(&path).unwrap();
        file.write_all(b"{\"note\":\"edited by hand\"}\n").unwrap();
        let before = std::fs::read(&path).unwrap();
        let error = AuditLog::open(&path, Algorithm::Sm3, "9.9.9", 4, Durability::Synced).unwrap_err();
        assert!(matches!(error, AuditError::InvalidTail { line: 4, .. }), "{error}");
        assert!(error.to_string().contains("tongban audit verify"), "{error}");
        assert_eq!(std::fs::read(&path).unwrap(), before);
        // A torn line after it changes nothing: still refused, and the file is left as it was.
        file.write_all(br#"{"seq":4,"#).unwrap();
        let before = std::fs::read(&path).unwrap();
        let error = AuditLog::open(&path, Algorithm::Sm3, "9.9.9", 4, Durability::Synced).unwrap_err();
        assert!(matches!(error, AuditError::InvalidTail { line: 4, .. }), "{error}");
        assert_eq!(std::fs::read(&path).unwrap(), before);
    }

    #[test]
    fn a_full_disk_drops_records_then_a_gap_says_so() {
        let sink = MemSink::default();
        let log = AuditLog::with_sink(sink.clone(), None, Algorithm::Sm3, "9.9.9", 64).unwrap();
        (1..=3).for_each(|n| log.record(entry(n)));
        assert!(log.flush(WAIT));
        let good = sink.data.lock().unwrap().clone();
        sink.full.store(true, Ordering::SeqCst);
        (4..=7).for_each(|n| log.record(entry(n)));
        assert!(log.flush(WAIT));
        // Every failed append wrote half a record; the writer cut each one off again.
        assert_eq!(*sink.data.lock().unwrap(), good);
        assert_eq!(log.stats(), AuditStats { written: 3, dropped_queue_full: 0, dropped_write_failed: 4 });
        sink.full.store(false, Ordering::SeqCst);
        log.record(entry(8));
        assert!(log.flush(WAIT));
        assert_eq!(log.stats().written, 4);

        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("audit.log");
        std::fs::write(&path, &*sink.data.lock().unwrap()).unwrap();
        let text = lines(&path);
        assert_eq!(text.len(), 6);
        assert!(text[4].starts_with(r#"{"seq":5,"kind":"gap","#), "{}", text[4]);
        assert!(text[5].contains(r#""request_id":"req-8""#));
        let report = verify(&path).unwrap();
        assert!(report.is_intact(), "{report}");
        let gap = GapSeen { line: 5, lost: 4, since: entry(4).time, until: entry(7).time };
        assert_eq!(report.gaps, vec![gap]);
        assert!(report.to_string().contains("1 gap (4 records lost at line 5, 2026-11-22T07:00:04Z..07:00:07Z)"));
    }

    /// A sink that stops in every append until the test lets it go (drops `go`'s sender).
    struct GatedSink {
        inner: MemSink,
        entered: Sender<()>,
        go: Receiver<()>,
    }

    impl Sink for GatedSink {
        fn append(&mut self, bytes: &[u8]) -> io::Result<()> {
            let _ = self.entered.send(());
            let _ = self.go.recv();
            self.inner.append(bytes)
        }

        fn len(&self) -> io::Result<u64> {
            self.inner.len()
        }

        fn truncate(&mut self, len: u64) -> io::Result<()> {
            self.inner.truncate(len)
        }
    }

    #[test]
    fn a_full_queue_drops_without_blocking_then_a_gap_says_so() {
        let inner = MemSink::default();
        let (entered, writing) = channel();
        let (release, go) = channel::<()>();
        let sink = GatedSink { inner: inner.clone(), entered, go };
        let log = AuditLog::with_sink(sink, None, Algorithm::Sha256, "9.9.9", 1).unwrap();
        writing.recv().unwrap(); // The writer is stuck in the start record.
        log.record(entry(1)); // Fills the queue.
        (2..=4).for_each(|n| log.record(entry(n))); // Would block if record() could.
        assert_eq!(log.stats().dropped_queue_full, 3);
        drop(release);
        assert!(log.flush(WAIT));
        log.record(entry(5));
        assert!(log.flush(WAIT));
        assert_eq!(log.stats(), AuditStats { written: 2, dropped_queue_full: 3, dropped_write_failed: 0 });

        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("audit.log");
        std::fs::write(&path, &*inner.data.lock().unwrap()).unwrap();
        let report = verify(&path).unwrap();
        assert!(report.is_intact(), "{report}");
        assert_eq!(report.gaps, vec![GapSeen { line: 2, lost: 3, since: entry(2).time, until: entry(4).time }]);
        assert_eq!(report.last_seq, Some(4));
    }

    #[test]
    fn a_rotated_log_goes_on_in_a_new_file_that_names_where_the_old_one_ended() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("audit.log");
        let log = write_log(&path, Algorithm::Sm3, 1, 3);
        // Nothing moved: reopening changes nothing.
        assert!(log.reopen());
        assert!(log.flush(WAIT));
        assert_eq!(lines(&path).len(), 4);
        let (seq, hash) = log.head();

        let moved = dir.path().join("audit.log.1");
        std::fs::rename(&path, &moved).unwrap();
        log.record(entry(4)); // queued before the reopen: into the moved file
        assert!(log.reopen());
        log.record(entry(5));
        assert!(log.flush(WAIT));

        let old = lines(&moved);
        assert_eq!(old.len(), 5, "{old:#?}");
        assert!(verify(&moved).unwrap().is_intact());
        let new = lines(&path);
        assert_eq!(new.len(), 2, "{new:#?}");
        let start: serde_json::Value = serde_json::from_str(&new[0]).unwrap();
        assert_eq!((start["seq"].as_u64(), start["kind"].as_str()), (Some(1), Some("start")));
        // It continues from the moved file's last record (entry 4, written after the head above).
        assert_eq!(start["continues"]["seq"].as_u64(), Some(seq + 1));
        let last_old: serde_json::Value = serde_json::from_str(&old[4]).unwrap();
        assert_eq!(start["continues"]["hash"], last_old["hash"]);
        assert_ne!(start["continues"]["hash"].as_str(), Some(hash.as_str()));
        let (before, after) = (verify(&moved).unwrap(), verify(&path).unwrap());
        assert!(after.is_intact());
        assert!(crate::audit::continues_from(&after, &before));
        assert!(!crate::audit::continues_from(&before, &after));
    }
}
