//! Logging (日志): tracing with text or JSON lines, every line passed through [`mask`] so that
//! resident ID numbers (居民身份证号), phone numbers and names (姓名) never reach a log in the clear
//! (个人信息脱敏).
//!
//! [`init`] installs the gateway's global subscriber; [`capture`] builds one for tests that assert
//! on what was logged. Both format through the same layer and write through
//! [`MaskingMakeWriter`], so what a test captures is byte for byte what the gateway would log
//! (timestamps aside).
//!
//! # Capturing logs in tests
//!
//! - Per test, on one thread: `let _guard = tracing::subscriber::set_default(subscriber);`. The
//!   default is thread-local: under `#[tokio::test]` (a current-thread runtime by default) every
//!   task spawned by the test runs on the test's thread and is captured; work moved to other
//!   threads (`spawn_blocking`, a multi-thread runtime, `std::thread::spawn`) is not.
//! - Across threads: the subscriber can be made the process-wide default with
//!   `tracing::subscriber::set_global_default`, once per test binary (keep the [`CapturedLogs`] in
//!   a `static OnceLock`). Tests of that binary then share one buffer: assert on the absence of
//!   personal data, and find a test's own lines by a unique marker such as its request id.
//!
//! tracing caches per call site (callsite) whether any subscriber is interested in it, process
//! wide; a call site first reached on a thread without a subscriber would otherwise be cached as
//! "never" and go silent in a capture too. [`capture`] prevents that by keeping an inert second
//! subscriber registered, which makes tracing ask the current thread's subscriber at every event.

use std::io::{self, IsTerminal, Write};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, OnceLock, PoisonError};

use tracing::subscriber::Interest;
use tracing::{Dispatch, Event, Metadata, Subscriber, span};
use tracing_subscriber::filter::{LevelFilter, filter_fn};
use tracing_subscriber::fmt::MakeWriter;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::registry::LookupSpan;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::{EnvFilter, Layer};

use crate::observe::mask::{mask, mask_tracing_json};

/// The format of log lines (日志格式), as configured: human-readable text, or one JSON object per
/// line for a log collector (日志采集).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    /// `2026-05-01T10:00:00.000000Z  INFO Request answered. request_id=… status=200`.
    #[default]
    Text,
    /// `{"timestamp":"…","level":"INFO","message":"Request answered.","request_id":"…",…}`.
    Json,
}

/// Installs the global subscriber, writing to stderr through a [`MaskingMakeWriter`]:
///
/// - the filter comes from `RUST_LOG` (`info` when it is unset or invalid);
/// - [`LogFormat::Text`]: one line per event, coloured (ANSI) only when stderr is a terminal;
/// - [`LogFormat::Json`]: one object per line with the event's fields flattened beside
///   `timestamp`, `level`, `target` and `message` (`request_id`, `route`, …); the fields of the
///   enclosing span, if any, are under `span`.
///
/// May be called again, e.g. once early with the default format and once the configuration is
/// read: the first call installs the subscriber, later calls switch the format of the events that
/// follow (filter and writer stay). Does nothing but that if a global subscriber not installed
/// here is already in place.
pub fn init(format: LogFormat) {
    static INSTALLED: OnceLock<()> = OnceLock::new();
    static FORMAT_IS_JSON: AtomicBool = AtomicBool::new(false);
    FORMAT_IS_JSON.store(format == LogFormat::Json, Ordering::Relaxed);
    INSTALLED.get_or_init(|| {
        let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
        let ansi = io::stderr().is_terminal();
        let _ = switchable(&FORMAT_IS_JSON, io::stderr, ansi).with(filter).try_init();
    });
}

/// Both formats, writing through a [`MaskingMakeWriter`]: each event goes to the one `is_json`
/// chooses when it is emitted. Spans go to both, so that each format has the span fields it needs
/// whatever the switch.
fn switchable<W>(is_json: &'static AtomicBool, writer: W, ansi: bool) -> impl Subscriber + for<'a> LookupSpan<'a>
where
    W: for<'w> MakeWriter<'w> + Clone + Send + Sync + 'static,
{
    let text = fmt_layer(LogFormat::Text, writer.clone(), ansi)
        .with_filter(filter_fn(|meta| meta.is_span() || !is_json.load(Ordering::Relaxed)));
    let json = fmt_layer(LogFormat::Json, writer, false)
        .with_filter(filter_fn(|meta| meta.is_span() || is_json.load(Ordering::Relaxed)));
    tracing_subscriber::registry().with(text).with(json)
}

/// The formatting layer shared by [`init`] and [`capture`], writing to `writer` through a
/// [`MaskingMakeWriter`].
fn fmt_layer<S, W>(format: LogFormat, writer: W, ansi: bool) -> Box<dyn Layer<S> + Send + Sync>
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    W: for<'w> MakeWriter<'w> + Send + Sync + 'static,
{
    match format {
        LogFormat::Text => tracing_subscriber::fmt::layer()
            .with_target(false)
            .with_ansi(ansi)
            .with_writer(MaskingMakeWriter::new(writer))
            .boxed(),
        // `target` after the event's fields is what tells a field called `name` from a span's
        // name for `mask_tracing_json`: keep it.
        LogFormat::Json => tracing_subscriber::fmt::layer()
            .json()
            .flatten_event(true)
            .with_target(true)
            .with_current_span(true)
            .with_span_list(false)
            .with_writer(MaskingMakeWriter::for_tracing_json(writer))
            .boxed(),
    }
}

/// A [`MakeWriter`] that masks personal data (see [`mask`]) in every line before it reaches the
/// inner writer (stderr, a file, a test buffer).
///
/// Each writer it makes buffers until a newline, so that masking sees whole lines even when the
/// formatter writes a line in several `write` calls; whatever is left without a newline is masked
/// and written when the writer is dropped. tracing's formatter makes one writer per event.
#[derive(Debug, Clone, Default)]
pub struct MaskingMakeWriter<M> {
    inner: M,
    /// The lines are tracing's JSON: span names are kept (see `mask_tracing_json`).
    tracing_json: bool,
}

impl<M> MaskingMakeWriter<M> {
    /// Wraps `inner`, e.g. `std::io::stderr`.
    pub fn new(inner: M) -> Self {
        Self { inner, tracing_json: false }
    }

    /// Wraps `inner` for tracing's JSON format, whose span objects end with the span's name
    /// (`"name":"request"}`): that name is kept, everything else masked as by [`new`](Self::new).
    pub fn for_tracing_json(inner: M) -> Self {
        Self { inner, tracing_json: true }
    }
}

impl<'a, M: MakeWriter<'a>> MakeWriter<'a> for MaskingMakeWriter<M> {
    type Writer = MaskingWriter<M::Writer>;

    fn make_writer(&'a self) -> Self::Writer {
        MaskingWriter { inner: self.inner.make_writer(), pending: Vec::new(), tracing_json: self.tracing_json }
    }

    fn make_writer_for(&'a self, meta: &Metadata<'_>) -> Self::Writer {
        MaskingWriter { inner: self.inner.make_writer_for(meta), pending: Vec::new(), tracing_json: self.tracing_json }
    }
}

/// The writer made by [`MaskingMakeWriter`]: buffers up to a newline, masks, writes whole lines.
#[derive(Debug)]
pub struct MaskingWriter<W: Write> {
    inner: W,
    /// Bytes written since the last newline.
    pending: Vec<u8>,
    /// See [`MaskingMakeWriter::for_tracing_json`].
    tracing_json: bool,
}

impl<W: Write> MaskingWriter<W> {
    /// Wraps `inner`.
    pub fn new(inner: W) -> Self {
        Self { inner, pending: Vec::new(), tracing_json: false }
    }

    /// Masks `bytes` (whole lines, or the leftover at the end) and writes them to the inner writer.
    fn write_masked(&mut self, bytes: &[u8]) -> io::Result<()> {
        // The formatter writes UTF-8; anything else is repaired rather than passed unmasked.
        let text = String::from_utf8_lossy(bytes);
        let masked = if self.tracing_json { mask_tracing_json(&text) } else { mask(&text) };
        self.inner.write_all(masked.as_bytes())
    }
}

impl<W: Write> Write for MaskingWriter<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        // The common case: a whole event in one call, nothing pending.
        if self.pending.is_empty() && buf.last() == Some(&b'\n') {
            self.write_masked(buf)?;
            return Ok(buf.len());
        }
        self.pending.extend_from_slice(buf);
        if let Some(last_newline) = self.pending.iter().rposition(|&b| b == b'\n') {
            let rest = self.pending.split_off(last_newline + 1);
            let lines = std::mem::replace(&mut self.pending, rest);
            self.write_masked(&lines)?;
        }
        Ok(buf.len())
    }

    /// Flushes the inner writer; a partial line stays buffered until its newline or the drop.
    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

impl<W: Write> Drop for MaskingWriter<W> {
    fn drop(&mut self) {
        if !self.pending.is_empty() {
            let pending = std::mem::take(&mut self.pending);
            let _ = self.write_masked(&pending);
        }
        let _ = self.inner.flush();
    }
}

/// For tests: a subscriber (not installed anywhere) that writes masked lines, in `format`, without
/// colour and at every level, into a shared buffer; and the handle to read them.
///
/// Use it with `tracing::subscriber::with_default` / `set_default` (this thread), or
/// `set_global_default` (every thread, once per process): see the [module documentation](self).
pub fn capture(format: LogFormat) -> (impl Subscriber + Send + Sync + 'static, CapturedLogs) {
    keep_call_sites_asking();
    let logs = CapturedLogs::default();
    let buffer = Arc::clone(&logs.buffer);
    let writer = move || CaptureWriter(Arc::clone(&buffer));
    let subscriber = tracing_subscriber::registry().with(LevelFilter::TRACE).with(fmt_layer(format, writer, false));
    (subscriber, logs)
}

/// What a [`capture`] subscriber has written: masked log lines.
#[derive(Debug, Clone, Default)]
pub struct CapturedLogs {
    buffer: Arc<Mutex<Vec<u8>>>,
}

impl CapturedLogs {
    /// Everything captured so far.
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.buffer.lock().unwrap_or_else(PoisonError::into_inner)).into_owned()
    }
}

/// Appends to a [`CapturedLogs`] buffer.
struct CaptureWriter(Arc<Mutex<Vec<u8>>>);

impl Write for CaptureWriter {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.0.lock().unwrap_or_else(PoisonError::into_inner).extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// Keeps an inert subscriber registered for the rest of the process.
///
/// While exactly one subscriber is registered, tracing computes a call site's interest from the
/// subscriber of the thread that first reaches it; a thread without one caches "never", process
/// wide, and the call site goes silent for a capturing subscriber on another thread too. With a
/// second subscriber registered, interest is combined from all of them, and this one's
/// "sometimes" makes tracing ask the current thread's subscriber at each event instead.
fn keep_call_sites_asking() {
    static ANCHOR: OnceLock<Dispatch> = OnceLock::new();
    ANCHOR.get_or_init(|| Dispatch::new(Inert));
}

/// A subscriber that records nothing and is "sometimes" interested in everything.
struct Inert;

impl Subscriber for Inert {
    fn register_callsite(&self, _: &'static Metadata<'static>) -> Interest {
        Interest::sometimes()
    }

    fn max_level_hint(&self) -> Option<LevelFilter> {
        Some(LevelFilter::OFF)
    }

    fn enabled(&self, _: &Metadata<'_>) -> bool {
        false
    }

    fn new_span(&self, _: &span::Attributes<'_>) -> span::Id {
        span::Id::from_u64(1)
    }

    fn record(&self, _: &span::Id, _: &span::Record<'_>) {}

    fn record_follows_from(&self, _: &span::Id, _: &span::Id) {}

    fn event(&self, _: &Event<'_>) {}

    fn enter(&self, _: &span::Id) {}

    fn exit(&self, _: &span::Id) {}
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;

    const RAW: [&str; 4] = ["11010519491231002X", "13800138000", "张三", "0851-85550000"];

    fn emit() {
        tracing::info!(
            request_id = "r1",
            route = "gz/submit",
            id_number = "11010519491231002X",
            phone = "13800138000",
            name = "张三",
            "Submission received."
        );
        tracing::warn!(request_id = "r1", tel = %"0851-85550000", xm = %"张三", "Applicant 13800138000 called.");
        let span = tracing::info_span!("request", request_id = "r1", applicant = "张三");
        span.in_scope(|| tracing::debug!(sfzh = ?"11010519491231002X", "Inside the span."));
    }

    fn assert_masked(text: &str) {
        assert!(text.contains("r1"), "{text}");
        for raw in RAW {
            assert!(!text.contains(raw), "{raw} leaked: {text}");
        }
        assert!(text.contains("110105********002X"), "{text}");
        assert!(text.contains("138****8000"), "{text}");
        assert!(text.contains("张*"), "{text}");
    }

    #[test]
    fn text_capture_is_masked() {
        let (subscriber, logs) = capture(LogFormat::Text);
        tracing::subscriber::with_default(subscriber, emit);
        let text = logs.text();
        assert_eq!(text.lines().count(), 3, "{text}");
        assert_masked(&text);
        assert!(text.contains("request_id=\"r1\""), "{text}");
        assert!(text.contains("0851-****0000"), "{text}");
    }

    #[test]
    fn json_capture_is_masked_and_parses() {
        let (subscriber, logs) = capture(LogFormat::Json);
        tracing::subscriber::with_default(subscriber, emit);
        let text = logs.text();
        assert_masked(&text);
        let lines: Vec<serde_json::Value> = text.lines().map(|line| serde_json::from_str(line).unwrap()).collect();
        assert_eq!(lines.len(), 3, "{text}");
        let first = &lines[0];
        assert_eq!(first["request_id"], "r1");
        assert_eq!(first["route"], "gz/submit");
        assert_eq!(first["level"], "INFO");
        assert_eq!(first["message"], "Submission received.");
        assert_eq!(first["id_number"], "110105********002X");
        assert_eq!(first["phone"], "138****8000");
        assert_eq!(first["name"], "张*");
        assert!(first["timestamp"].is_string());
        assert_eq!(lines[1]["message"], "Applicant 138****8000 called.");
        assert_eq!(lines[1]["xm"], "张*");
        assert_eq!(lines[2]["span"]["request_id"], "r1");
        assert_eq!(lines[2]["span"]["name"], "request");
        assert_eq!(lines[2]["span"]["applicant"], "张*");
    }

    #[test]
    fn coloured_text_is_masked() {
        let logs = CapturedLogs::default();
        let buffer = Arc::clone(&logs.buffer);
        let writer = move || CaptureWriter(Arc::clone(&buffer));
        let subscriber = tracing_subscriber::registry().with(fmt_layer(LogFormat::Text, writer, true));
        tracing::subscriber::with_default(subscriber, emit);
        let text = logs.text();
        assert!(text.contains('\u{1b}'), "not coloured: {text}");
        assert_masked(&text);
    }

    #[test]
    fn lines_split_across_writes_are_masked_whole() {
        let mut out = Vec::new();
        {
            let mut writer = MaskingWriter::new(&mut out);
            for chunk in ["phone=138001", "38000 name=\"张", "三\"\nid=110105194912", "31002X\nxm=张三"] {
                writer.write_all(chunk.as_bytes()).unwrap();
            }
            writer.flush().unwrap();
        }
        assert_eq!(String::from_utf8(out).unwrap(), "phone=138****8000 name=\"张*\"\nid=110105********002X\nxm=张*");
    }

    #[test]
    fn a_multi_byte_character_split_across_writes_survives() {
        let mut out = Vec::new();
        {
            let mut writer = MaskingWriter::new(&mut out);
            let line = "申请人 name=张三\n".as_bytes();
            for byte in line {
                writer.write_all(std::slice::from_ref(byte)).unwrap();
            }
        }
        assert_eq!(String::from_utf8(out).unwrap(), "申请人 name=张*\n");
    }

    /// One call site, first reached on a thread without a subscriber: the capture on this thread
    /// must still see it (tracing's interest cache; see `keep_call_sites_asking`).
    #[test]
    fn a_call_site_first_reached_elsewhere_is_still_captured() {
        fn shared(i: u32) {
            tracing::info!(request_id = "r-shared", i, phone = "13900139000", "From a shared call site.");
        }
        let (subscriber, logs) = capture(LogFormat::Text);
        let _guard = tracing::subscriber::set_default(subscriber);
        std::thread::spawn(|| shared(0)).join().unwrap();
        shared(1);
        let text = logs.text();
        assert!(text.contains("i=1"), "{text}");
        assert!(!text.contains("i=0"), "{text}");
        assert!(text.contains("139****9000") && !text.contains("13900139000"), "{text}");
    }

    #[tokio::test]
    async fn tasks_on_a_current_thread_runtime_are_captured() {
        let (subscriber, logs) = capture(LogFormat::Json);
        let _guard = tracing::subscriber::set_default(subscriber);
        let task = tokio::spawn(async {
            tokio::task::yield_now().await;
            tracing::info!(request_id = "r-task", applicant_name = "贵州山水科技有限公司", "Spawned task.");
        });
        task.await.unwrap();
        let text = logs.text();
        assert!(text.contains("r-task") && text.contains("贵*********"), "{text}");
        assert!(!text.contains("山水"), "{text}");
    }

    #[test]
    fn the_capture_can_be_a_global_default() {
        fn assert_global<S: Subscriber + Send + Sync + 'static>(subscriber: S) -> Dispatch {
            Dispatch::new(subscriber)
        }
        let (subscriber, _logs) = capture(LogFormat::Text);
        let _ = assert_global(subscriber);
    }

    #[test]
    fn the_installed_format_can_be_switched_inside_a_span() {
        static IS_JSON: AtomicBool = AtomicBool::new(false);
        let logs = CapturedLogs::default();
        let buffer = Arc::clone(&logs.buffer);
        let subscriber = switchable(&IS_JSON, move || CaptureWriter(Arc::clone(&buffer)), false);
        tracing::subscriber::with_default(subscriber, || {
            let span = tracing::info_span!("request", request_id = "r1", name = "张三");
            let _entered = span.enter();
            tracing::info!(phone = "13800138000", "As text.");
            IS_JSON.store(true, Ordering::Relaxed);
            tracing::info!(phone = "13800138000", "As JSON.");
        });
        let text = logs.text();
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 2, "{text}");
        assert!(
            lines[0].contains("As text.") && lines[0].contains("request{request_id=\"r1\" name=\"张*\"}"),
            "{text}"
        );
        let json: serde_json::Value = serde_json::from_str(lines[1]).unwrap();
        assert_eq!(json["message"], "As JSON.");
        assert_eq!(json["span"]["request_id"], "r1");
        assert_eq!(json["span"]["name"], "request");
        assert!(lines[1].contains(r#""name":"张*""#), "{text}");
        assert!(!text.contains("张三") && !text.contains("13800138000"), "{text}");
    }

    #[test]
    fn log_format_reads_lowercase() {
        #[derive(serde::Deserialize)]
        struct Config {
            format: LogFormat,
        }
        let text: Config = serde_json::from_str(r#"{"format":"text"}"#).unwrap();
        let json: Config = serde_json::from_str(r#"{"format":"json"}"#).unwrap();
        assert_eq!((text.format, json.format), (LogFormat::Text, LogFormat::Json));
        assert!(serde_json::from_str::<Config>(r#"{"format":"Json"}"#).is_err());
        assert_eq!(LogFormat::default(), LogFormat::Text);
    }
}
