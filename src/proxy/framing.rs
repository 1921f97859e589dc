//! 请求分帧守卫 (request framing guard): refuses request-smuggling shapes before hyper sees them.
//!
//! hyper's HTTP/1 parser quietly resolves `Content-Length` + `Transfer-Encoding: chunked` (chunked
//! wins) and answers other framing errors with a bare 400/431. [`FramingGuard`] sits between the
//! socket (or TLS stream) and hyper's `TokioIo` and tracks request boundaries on the byte stream:
//!
//! - **Head**: bytes are buffered (at most [`FramingLimits::max_head_bytes`]) and *withheld* from
//!   hyper until `httparse` — the parser hyper uses, so bare-LF line endings and leading empty
//!   lines are accepted exactly as hyper accepts them — sees a complete head. A valid head is
//!   released; an invalid one is refused ([`FramingViolation`]) and never reaches hyper.
//! - **Body**: `Content-Length` bytes, or the chunked framing (sizes, extensions, trailers)
//!   mirrored from hyper's decoder, pass through unchanged so the guard knows where the next head
//!   starts. Bytes after a malformed chunk are never released: hyper sees the body end early and
//!   fails it, so a guard/hyper disagreement can never let an unchecked head through.
//!
//! Decisions: identical repeated `Content-Length` fields are refused too; `Transfer-Encoding` must
//! be exactly one `chunked` (any case); whitespace around a value is not part of it (httparse
//! trims it, so `Content-Length:  5 ` is 5), but `5 5`, `+5`, `1,2` are refused.
//!
//! # Refusal ordering
//! The refusal must follow every response hyper still owes on the connection. Verified against
//! hyper 1.x (`proto/h1/{conn,dispatch}.rs`) and the tests below:
//! - hyper serves one request at a time. While a response is pending it may still read
//!   (`mid_message_detect_eof`); an EOF there is an error that aborts the connection *without*
//!   writing the response. So the guard watches the write side too: it parses the response heads
//!   and bodies hyper writes (1xx, HEAD, 204/304, length, chunked) to know when every released
//!   request has been answered. Until then a read after a violation returns `Pending`, and the
//!   waker is woken when the last response has been written.
//! - Once everything is answered, hyper is idle and the read returns EOF. On an idle connection
//!   hyper treats EOF as a graceful close, flushes its buffer and calls `poll_shutdown`; the guard
//!   writes the refusal there, drains what the client already sent (so closing does not reset the
//!   connection under the refusal), and shuts the inner stream down.
//! - If a response has no length (close-delimited) the refusal is skipped: appending it would
//!   corrupt that response, and the connection closes anyway.
//!
//! After a `101` response, or a 2xx to `CONNECT`, the stream stops being HTTP: the guard then
//! passes bytes through. It waits for the response to such requests before reading further.
//!
//! # hyper settings to use alongside
//! So that the guard always decides first: `max_headers` on
//! `hyper::server::conn::http1::Builder` must be ≥ [`FramingLimits::max_headers`] (hyper's default
//! is 100), and `max_buf_size` (default ~400 KiB) and any `max_header_size` must be ≥
//! [`FramingLimits::max_head_bytes`]. `half_close` may stay at its default. Keep hyper's
//! `header_read_timeout`: hyper polls a read the whole time the guard gathers a head, so it still
//! bounds slow heads (and any wait for a response the guard failed to recognise).

use std::collections::VecDeque;
use std::fmt;
use std::io;
use std::mem::MaybeUninit;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, Waker, ready};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

/// Builds the complete HTTP/1.1 response (status line, headers, body) that refuses a violation.
/// It is called once per refused connection, so it is also the place to log, count and audit.
/// The bytes are what the guard held when it refused: the refused head (up to the head limit)
/// and whatever followed it in the same reads. They are never released to hyper.
pub type Refusal = Arc<dyn Fn(&FramingViolation, &[u8]) -> Vec<u8> + Send + Sync>;

/// Largest read into the head buffer at once.
const READ_CHUNK: usize = 8 * 1024;
/// The buffer capacity an emptied guard keeps (a usual request head fits).
const KEPT_CAPACITY: usize = 2 * 1024;
/// A response head the guard cannot follow beyond this stops response tracking.
const RESPONSE_HEAD_LIMIT: usize = 64 * 1024;
/// At most this much unread request data is discarded before closing a refused connection.
const DRAIN_LIMIT: usize = 256 * 1024;
/// hyper's own ceiling for a body length.
const MAX_CONTENT_LENGTH: u64 = u64::MAX - 2;

/// Bounds on a request head; see the module docs for the matching hyper settings.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FramingLimits {
    /// Most header fields a request may carry.
    pub max_headers: usize,
    /// Most bytes of request line and headers, including the final empty line.
    pub max_head_bytes: usize,
}

impl Default for FramingLimits {
    fn default() -> Self {
        Self { max_headers: 64, max_head_bytes: 16 * 1024 }
    }
}

/// Why a request was refused.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum FramingViolation {
    /// Both `Content-Length` and `Transfer-Encoding: chunked`.
    BothLengthAndChunked,
    /// More than one `Content-Length` field, even with identical values.
    DuplicateContentLength,
    /// A `Content-Length` that is not plain decimal digits (the value as sent).
    InvalidContentLength(String),
    /// A `Transfer-Encoding` other than exactly one `chunked` coding (the value as sent).
    UnsupportedTransferEncoding(String),
    /// `Transfer-Encoding` in an HTTP/1.0 request.
    TransferEncodingInHttp10,
    /// Request line and headers longer than the limit.
    HeadTooLarge {
        /// The limit in bytes.
        limit: usize,
    },
    /// More header fields than the limit.
    TooManyHeaders {
        /// The limit in fields.
        limit: usize,
    },
    /// Not a valid HTTP/1.x head: obs-fold, space before a colon, control characters, a bad
    /// request line (the parser's message).
    MalformedHead(String),
    /// A version other than HTTP/1.0 and HTTP/1.1.
    UnsupportedVersion,
    /// A request target that is not a URI (the target as sent).
    BadTarget(String),
    /// No `Host` in HTTP/1.1, or more than one.
    HostHeader {
        /// How many were sent.
        count: usize,
    },
}

impl FramingViolation {
    /// HTTP status of the refusal: 431 for size limits, 400 otherwise.
    pub fn status(&self) -> u16 {
        match self {
            Self::HeadTooLarge { .. } | Self::TooManyHeaders { .. } => 431,
            _ => 400,
        }
    }

    /// Problem type slug, as in `urn:tongban:problem:<slug>`.
    pub fn slug(&self) -> &'static str {
        match self {
            Self::HeadTooLarge { .. } | Self::TooManyHeaders { .. } => "headers-too-large",
            Self::MalformedHead(_) | Self::BadTarget(_) | Self::HostHeader { .. } => "malformed-request",
            Self::UnsupportedVersion => "unsupported-http-version",
            _ => "request-framing",
        }
    }

    /// Short, fixed title for the problem document.
    pub fn title(&self) -> &'static str {
        match self {
            Self::HeadTooLarge { .. } | Self::TooManyHeaders { .. } => "Request headers too large",
            Self::MalformedHead(_) | Self::BadTarget(_) | Self::HostHeader { .. } => "Malformed request",
            Self::UnsupportedVersion => "Unsupported HTTP version",
            _ => "Ambiguous request framing",
        }
    }

    /// What is wrong, naming the header, and how to fix it.
    pub fn detail(&self) -> String {
        match self {
            Self::BothLengthAndChunked => "The request has both Content-Length and Transfer-Encoding: chunked, so \
                servers may disagree about where it ends. Send only one of them."
                .into(),
            Self::DuplicateContentLength => {
                "The request has more than one Content-Length header. Send exactly one.".into()
            }
            Self::InvalidContentLength(value) => format!(
                "Content-Length {value:?} is not a plain decimal number of bytes. Send digits only, \
                 e.g. Content-Length: 42."
            ),
            Self::UnsupportedTransferEncoding(value) => format!(
                "Transfer-Encoding {value:?} is not supported: only a single `chunked` coding is accepted. \
                 Send Transfer-Encoding: chunked, or a Content-Length."
            ),
            Self::TransferEncodingInHttp10 => "Transfer-Encoding is not defined for HTTP/1.0. Send a Content-Length, \
                or send the request as HTTP/1.1."
                .into(),
            Self::HeadTooLarge { limit } => {
                format!("The request line and headers exceed {limit} bytes. Send fewer or smaller headers.")
            }
            Self::TooManyHeaders { limit } => {
                format!("The request has more than {limit} header fields. Send at most {limit}.")
            }
            Self::MalformedHead(error) => format!(
                "The request head is not valid HTTP/1.1 ({error}). Send each header on one line as `Name: value`, \
                 with no space before the colon, no folded continuation lines and no control characters."
            ),
            Self::UnsupportedVersion => {
                "Only HTTP/1.1 and HTTP/1.0 are served here. Send the request line as `METHOD /path HTTP/1.1`.".into()
            }
            Self::BadTarget(target) => format!(
                "The request target {target:?} is not a URI. Send a path such as /v1/matters?region=520102, \
                 percent-encoding anything else."
            ),
            Self::HostHeader { count: 0 } => {
                "An HTTP/1.1 request needs a Host header (RFC 9112 §3.2). Send exactly one.".into()
            }
            Self::HostHeader { .. } => {
                "The request has more than one Host header, so servers may disagree about its target. Send exactly one."
                    .into()
            }
        }
    }
}

impl fmt::Display for FramingViolation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.detail())
    }
}

impl std::error::Error for FramingViolation {}

/// A complete `application/problem+json` refusal in the gateway's problem shape, with
/// `x-request-id` and `connection: close`.
pub fn refusal_response(violation: &FramingViolation, request_id: &str) -> Vec<u8> {
    let status = violation.status();
    let body = serde_json::json!({
        "type": format!("urn:tongban:problem:{}", violation.slug()),
        "title": violation.title(),
        "status": status,
        "detail": violation.detail(),
        "request_id": request_id,
        "side": "downstream",
        "retryable": false,
    })
    .to_string();
    let reason = if status == 431 { "Request Header Fields Too Large" } else { "Bad Request" };
    format!(
        "HTTP/1.1 {status} {reason}\r\ncontent-type: application/problem+json\r\ncontent-length: {}\r\n\
         x-request-id: {request_id}\r\nconnection: close\r\n\r\n{body}",
        body.len()
    )
    .into_bytes()
}

/// [`refusal_response`] with a fixed request id (tests, tools).
pub fn default_refusal(violation: &FramingViolation, _held: &[u8]) -> Vec<u8> {
    refusal_response(violation, "framing")
}

/// Wraps `stream` in a [`FramingGuard`]; hand the result to `hyper_util::rt::TokioIo::new`.
pub fn guarded<S>(stream: S, limits: FramingLimits, refusal: Refusal) -> FramingGuard<S>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    FramingGuard {
        inner: stream,
        limits,
        refusal,
        reading: Reading::Head,
        pending: Vec::new(),
        release: 0,
        switching: false,
        responses: Responses::default(),
        refused: None,
        drained: 0,
        read_waker: None,
    }
}

/// IO wrapper that only lets well-framed requests through to hyper; see the module docs.
pub struct FramingGuard<S> {
    inner: S,
    limits: FramingLimits,
    refusal: Refusal,
    reading: Reading,
    /// Bytes read from `inner` that hyper has not been given yet.
    pending: Vec<u8>,
    /// How many leading bytes of `pending` are checked and may go to hyper.
    release: usize,
    /// The last admitted request may switch protocols (CONNECT or Upgrade).
    switching: bool,
    responses: Responses,
    refused: Option<Refused>,
    drained: usize,
    read_waker: Option<Waker>,
}

struct Refused {
    violation: FramingViolation,
    response: Vec<u8>,
    written: usize,
}

enum Reading {
    Head,
    Body(Framing),
    /// Wait for the response: it decides whether the stream stays HTTP.
    Await,
    /// Release nothing more; hyper sees EOF.
    Cut,
    PassThrough,
    Refused,
}

impl<S> FramingGuard<S> {
    /// The violation this connection was refused for, if any.
    pub fn violation(&self) -> Option<&FramingViolation> {
        self.refused.as_ref().map(|refused| &refused.violation)
    }

    fn refuse(&mut self, violation: FramingViolation) {
        let response = (self.refusal)(&violation, &self.pending);
        self.refused = Some(Refused { violation, response, written: 0 });
        // The refused bytes are never released.
        self.pending = Vec::new();
        self.reading = Reading::Refused;
    }

    fn admit(&mut self, head: Admitted) {
        self.release = head.len;
        self.responses.expect.push_back(head.kind);
        self.switching = matches!(head.kind, Kind::Connect | Kind::Upgrade);
        self.reading = match head.body {
            Some(framing) => Reading::Body(framing),
            None => self.after_message(),
        };
    }

    fn after_message(&self) -> Reading {
        if self.switching { Reading::Await } else { Reading::Head }
    }
}

impl<S: AsyncRead + AsyncWrite + Unpin> FramingGuard<S> {
    /// One step of the head state: check what is buffered, or read more.
    fn poll_head(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        if !self.pending.is_empty() {
            match inspect(&self.pending, self.limits) {
                Ok(Some(head)) => self.admit(head),
                Ok(None) => {}
                Err(violation) => self.refuse(violation),
            }
            if !matches!(self.reading, Reading::Head) || self.release > 0 {
                return Poll::Ready(Ok(()));
            }
        }
        let room = self.limits.max_head_bytes.saturating_sub(self.pending.len());
        if room == 0 {
            self.refuse(FramingViolation::HeadTooLarge { limit: self.limits.max_head_bytes });
            return Poll::Ready(Ok(()));
        }
        let old = self.pending.len();
        let (polled, read) = if old == 0 {
            // An idle keep-alive connection waits here, so it reads onto the stack and holds no
            // more than the small buffer the last request left (at most `KEPT_CAPACITY`): a
            // ready 8 KiB buffer cost 8 KiB per idle connection (10,000 idle: 80 MB).
            let mut scratch = [MaybeUninit::<u8>::uninit(); READ_CHUNK];
            let mut into = ReadBuf::uninit(&mut scratch[..room.min(READ_CHUNK)]);
            let polled = Pin::new(&mut self.inner).poll_read(cx, &mut into);
            self.pending.extend_from_slice(into.filled());
            (polled, into.filled().len())
        } else {
            self.pending.resize(old + room.min(READ_CHUNK), 0);
            let mut into = ReadBuf::new(&mut self.pending[old..]);
            let polled = Pin::new(&mut self.inner).poll_read(cx, &mut into);
            let read = into.filled().len();
            self.pending.truncate(old + read);
            (polled, read)
        };
        ready!(polled)?;
        if read == 0 {
            // The client closed; a partial head is dropped and hyper sees a plain EOF.
            self.reading = Reading::Cut;
        }
        Poll::Ready(Ok(()))
    }

    /// Reads and discards what the client already sent, so closing does not reset the connection.
    fn drain(&mut self, cx: &mut Context<'_>) {
        let mut scratch = [0u8; 4096];
        while self.drained < DRAIN_LIMIT {
            let mut into = ReadBuf::new(&mut scratch);
            match Pin::new(&mut self.inner).poll_read(cx, &mut into) {
                Poll::Ready(Ok(())) if !into.filled().is_empty() => self.drained += into.filled().len(),
                _ => break,
            }
        }
    }

    fn observe(&mut self, written: &[u8]) {
        self.responses.observe(written);
        if (self.responses.settled() || self.responses.tunnel())
            && let Some(waker) = self.read_waker.take()
        {
            waker.wake();
        }
    }
}

impl<S: AsyncRead + AsyncWrite + Unpin> AsyncRead for FramingGuard<S> {
    fn poll_read(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        loop {
            if this.release > 0 {
                let n = this.release.min(buf.remaining());
                buf.put_slice(&this.pending[..n]);
                this.pending.drain(..n);
                this.release -= n;
                if this.pending.is_empty() && this.pending.capacity() > KEPT_CAPACITY {
                    // A large head or body chunk passed: give the memory back before the
                    // connection goes idle.
                    this.pending = Vec::new();
                }
                return Poll::Ready(Ok(()));
            }
            match &mut this.reading {
                Reading::Head => ready!(this.poll_head(cx))?,
                Reading::Body(framing) if !this.pending.is_empty() => match framing.scan(&this.pending) {
                    Scan::More => this.release = this.pending.len(),
                    Scan::Ended(end) => {
                        this.release = end;
                        this.reading = this.after_message();
                    }
                    Scan::Malformed(at) => {
                        this.pending.truncate(at);
                        this.release = at;
                        this.reading = Reading::Cut;
                    }
                },
                Reading::Body(framing) => {
                    if buf.remaining() == 0 {
                        return Poll::Ready(Ok(()));
                    }
                    // Reading past the body only by a head's worth keeps `pending` bounded.
                    let cap = framing.read_cap(this.limits.max_head_bytes).min(buf.remaining());
                    let mut into = ReadBuf::new(buf.initialize_unfilled_to(cap));
                    ready!(Pin::new(&mut this.inner).poll_read(cx, &mut into))?;
                    let filled = into.filled();
                    let (keep, next) = match framing.scan(filled) {
                        Scan::More => (filled.len(), None),
                        Scan::Ended(end) => {
                            this.pending.extend_from_slice(&filled[end..]);
                            (end, Some(if this.switching { Reading::Await } else { Reading::Head }))
                        }
                        Scan::Malformed(at) => (at, Some(Reading::Cut)),
                    };
                    // An empty read here is the client's EOF mid-body: hyper reports it.
                    let eof = filled.is_empty();
                    buf.advance(keep);
                    if let Some(next) = next {
                        this.reading = next;
                    }
                    if keep > 0 || eof || matches!(this.reading, Reading::Cut) {
                        return Poll::Ready(Ok(()));
                    }
                }
                Reading::Await => {
                    if this.responses.tunnel() {
                        this.reading = Reading::PassThrough;
                    } else if this.responses.settled() {
                        this.reading = Reading::Head;
                    } else {
                        this.read_waker = Some(cx.waker().clone());
                        return Poll::Pending;
                    }
                }
                Reading::Cut => return Poll::Ready(Ok(())),
                Reading::PassThrough if this.pending.is_empty() => return Pin::new(&mut this.inner).poll_read(cx, buf),
                Reading::PassThrough => this.release = this.pending.len(),
                Reading::Refused => {
                    // EOF only once hyper has answered everything it got: then it is idle and
                    // closes gracefully; earlier it would abort the response it owes.
                    if this.responses.settled() {
                        return Poll::Ready(Ok(()));
                    }
                    this.read_waker = Some(cx.waker().clone());
                    return Poll::Pending;
                }
            }
        }
    }
}

impl<S: AsyncRead + AsyncWrite + Unpin> AsyncWrite for FramingGuard<S> {
    fn poll_write(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        let n = ready!(Pin::new(&mut this.inner).poll_write(cx, buf))?;
        this.observe(&buf[..n.min(buf.len())]);
        Poll::Ready(Ok(n))
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        let n = ready!(Pin::new(&mut this.inner).poll_write_vectored(cx, bufs))?;
        let mut left = n;
        for slice in bufs {
            let take = left.min(slice.len());
            this.observe(&slice[..take]);
            left -= take;
            if left == 0 {
                break;
            }
        }
        Poll::Ready(Ok(n))
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        if let Some(refused) = &mut this.refused {
            if refused.written == 0 && !this.responses.at_boundary() {
                // Mid-response or close-delimited: the refusal would corrupt it.
                refused.written = refused.response.len();
            }
            while refused.written < refused.response.len() {
                let n = ready!(Pin::new(&mut this.inner).poll_write(cx, &refused.response[refused.written..]))?;
                if n == 0 {
                    return Poll::Ready(Err(io::ErrorKind::WriteZero.into()));
                }
                refused.written += n;
            }
            ready!(Pin::new(&mut this.inner).poll_flush(cx))?;
            this.drain(cx);
        }
        Pin::new(&mut this.inner).poll_shutdown(cx)
    }
}

/// What a request means for its response.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Kind {
    Plain,
    Head,
    Connect,
    Upgrade,
}

struct Admitted {
    len: usize,
    body: Option<Framing>,
    kind: Kind,
}

/// Parses and checks a request head; `Ok(None)` means it is not complete yet.
fn inspect(buf: &[u8], limits: FramingLimits) -> Result<Option<Admitted>, FramingViolation> {
    let too_large = FramingViolation::HeadTooLarge { limit: limits.max_head_bytes };
    let mut headers = vec![httparse::EMPTY_HEADER; limits.max_headers];
    let mut request = httparse::Request::new(&mut headers);
    let len = match request.parse(buf) {
        Ok(httparse::Status::Complete(len)) if len > limits.max_head_bytes => return Err(too_large),
        Ok(httparse::Status::Complete(len)) => len,
        Ok(httparse::Status::Partial) if buf.len() >= limits.max_head_bytes => return Err(too_large),
        Ok(httparse::Status::Partial) => return Ok(None),
        Err(httparse::Error::Version) if names_a_version(buf) => return Err(FramingViolation::UnsupportedVersion),
        Err(httparse::Error::TooManyHeaders) => {
            return Err(FramingViolation::TooManyHeaders { limit: limits.max_headers });
        }
        Err(error) => return Err(FramingViolation::MalformedHead(error.to_string())),
    };
    // The target must be a URI hyper accepts, or hyper would answer a bare 400 itself.
    if let Some(target) = request.path
        && target.parse::<http::Uri>().is_err()
    {
        return Err(FramingViolation::BadTarget(shown(target.as_bytes())));
    }
    let mut lengths = Vec::new();
    let mut codings = Vec::new();
    let mut upgrade = false;
    let mut hosts = 0;
    for header in request.headers.iter() {
        if header.name.eq_ignore_ascii_case("host") {
            hosts += 1;
        } else if header.name.eq_ignore_ascii_case("content-length") {
            lengths.push(header.value);
        } else if header.name.eq_ignore_ascii_case("transfer-encoding") {
            codings.push(header.value);
        } else if header.name.eq_ignore_ascii_case("upgrade") {
            upgrade = true;
        }
    }
    // RFC 9112 §3.2: exactly one Host in HTTP/1.1, at most one in HTTP/1.0.
    if hosts > 1 || (hosts == 0 && request.version == Some(1)) {
        return Err(FramingViolation::HostHeader { count: hosts });
    }
    if !codings.is_empty() {
        if request.version == Some(0) {
            return Err(FramingViolation::TransferEncodingInHttp10);
        }
        if codings.len() > 1 || !codings[0].eq_ignore_ascii_case(b"chunked") {
            let sent: Vec<String> = codings.iter().map(|value| shown(value)).collect();
            return Err(FramingViolation::UnsupportedTransferEncoding(sent.join(", ")));
        }
        if !lengths.is_empty() {
            return Err(FramingViolation::BothLengthAndChunked);
        }
    }
    let body = match lengths.as_slice() {
        [] if codings.is_empty() => None,
        [] => Some(Framing::Chunked(Chunked::default())),
        [value] => match parse_length(value) {
            Some(0) => None,
            Some(length) => Some(Framing::Length(length)),
            None => return Err(FramingViolation::InvalidContentLength(shown(value))),
        },
        _ => return Err(FramingViolation::DuplicateContentLength),
    };
    let kind = match request.method {
        Some("HEAD") => Kind::Head,
        Some("CONNECT") => Kind::Connect,
        _ if upgrade => Kind::Upgrade,
        _ => Kind::Plain,
    };
    Ok(Some(Admitted { len, body, kind }))
}

/// Whether the request line's third word looks like `HTTP/x.y` (else httparse's version error
/// is a malformed request line, e.g. a space in the target).
fn names_a_version(buf: &[u8]) -> bool {
    let start = buf.iter().position(|&byte| byte != b'\r' && byte != b'\n').unwrap_or(buf.len());
    let line = buf[start..].split(|&byte| byte == b'\r' || byte == b'\n').next().unwrap_or_default();
    let words: Vec<&[u8]> = line.split(|&byte| byte == b' ').collect();
    words.len() == 3 && words[2].starts_with(b"HTTP/")
}

/// `1*DIGIT` only: no sign, no list, no inner whitespace (httparse already trimmed the edges).
fn parse_length(value: &[u8]) -> Option<u64> {
    if value.is_empty() {
        return None;
    }
    let mut length: u64 = 0;
    for &byte in value {
        let digit = char::from(byte).to_digit(10)?;
        length = length.checked_mul(10)?.checked_add(u64::from(digit))?;
    }
    (length <= MAX_CONTENT_LENGTH).then_some(length)
}

/// A header value for a message: lossy text, cut to a readable length.
fn shown(value: &[u8]) -> String {
    String::from_utf8_lossy(value).chars().take(64).collect()
}

/// Outcome of scanning body bytes.
#[derive(Debug, PartialEq, Eq)]
enum Scan {
    /// All bytes belong to the body, which goes on.
    More,
    /// The body ends after this many bytes.
    Ended(usize),
    /// The byte at this index breaks the framing.
    Malformed(usize),
}

/// Body framing being followed.
#[derive(Debug)]
enum Framing {
    Length(u64),
    Chunked(Chunked),
}

impl Framing {
    fn scan(&mut self, bytes: &[u8]) -> Scan {
        match self {
            Self::Length(remaining) => match usize::try_from(*remaining) {
                Ok(end) if end <= bytes.len() => Scan::Ended(end),
                _ => {
                    *remaining -= bytes.len() as u64;
                    Scan::More
                }
            },
            Self::Chunked(chunked) => chunked.scan(bytes),
        }
    }

    /// How much to read at once: never more than a head's worth past the known body.
    fn read_cap(&self, slack: usize) -> usize {
        let known = match self {
            Self::Length(remaining) => return usize::try_from(*remaining).unwrap_or(usize::MAX),
            Self::Chunked(Chunked { state: Chunk::Data(remaining), .. }) => *remaining,
            Self::Chunked(_) => 0,
        };
        usize::try_from(known).unwrap_or(usize::MAX).saturating_add(slack.max(1))
    }
}

/// Chunked framing states, one for one with hyper's `ChunkedState`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
enum Chunk {
    #[default]
    Start,
    Size,
    SizeLws,
    Extension,
    SizeLf,
    Data(u64),
    DataCr,
    DataLf,
    EndCr,
    Trailer,
    TrailerLf,
    EndLf,
}

#[derive(Debug, Default)]
struct Chunked {
    state: Chunk,
    size: u64,
}

impl Chunked {
    fn scan(&mut self, bytes: &[u8]) -> Scan {
        let mut at = 0;
        while at < bytes.len() {
            if let Chunk::Data(remaining) = self.state {
                let take = usize::try_from(remaining).unwrap_or(usize::MAX).min(bytes.len() - at);
                at += take;
                let left = remaining - take as u64;
                self.state = if left == 0 { Chunk::DataCr } else { Chunk::Data(left) };
                continue;
            }
            let byte = bytes[at];
            let digit = char::from(byte).to_digit(16).map(u64::from);
            let next = match (self.state, byte) {
                (Chunk::Start | Chunk::Size, _) if digit.is_some() => {
                    self.size.checked_mul(16).zip(digit).and_then(|(size, digit)| size.checked_add(digit)).map(|size| {
                        self.size = size;
                        Chunk::Size
                    })
                }
                (Chunk::Size | Chunk::SizeLws, b' ' | b'\t') => Some(Chunk::SizeLws),
                (Chunk::Size | Chunk::SizeLws, b';') => Some(Chunk::Extension),
                (Chunk::Size | Chunk::SizeLws | Chunk::Extension, b'\r') => Some(Chunk::SizeLf),
                (Chunk::Extension, b'\n') => None,
                (Chunk::Extension, _) => Some(Chunk::Extension),
                (Chunk::SizeLf, b'\n') if self.size == 0 => Some(Chunk::EndCr),
                (Chunk::SizeLf, b'\n') => Some(Chunk::Data(self.size)),
                (Chunk::DataCr, b'\r') => Some(Chunk::DataLf),
                (Chunk::DataLf, b'\n') => {
                    self.size = 0;
                    Some(Chunk::Start)
                }
                (Chunk::EndCr, b'\r') => Some(Chunk::EndLf),
                (Chunk::Trailer, b'\r') => Some(Chunk::TrailerLf),
                (Chunk::EndCr | Chunk::Trailer, _) => Some(Chunk::Trailer),
                (Chunk::TrailerLf, b'\n') => Some(Chunk::EndCr),
                (Chunk::EndLf, b'\n') => return Scan::Ended(at + 1),
                _ => None,
            };
            match next {
                Some(state) => self.state = state,
                None => return Scan::Malformed(at),
            }
            at += 1;
        }
        Scan::More
    }
}

/// Follows the responses hyper writes, to know when every admitted request has been answered.
#[derive(Default)]
struct Responses {
    /// Admitted requests whose final response head has not been written yet.
    expect: VecDeque<Kind>,
    head: Vec<u8>,
    /// How much of "\r\n\r\n" ends `head` so far.
    matched: u8,
    writing: Writing,
}

#[derive(Debug, Default)]
enum Writing {
    #[default]
    Head,
    Body(Framing),
    /// No length: the response ends when the connection does.
    UntilClose,
    Tunnel,
    /// Could not follow (never for hyper's own output); stop waiting on responses.
    Lost,
}

impl Responses {
    /// Every admitted request has a complete response.
    fn settled(&self) -> bool {
        match self.writing {
            Writing::Head => self.head.is_empty() && self.expect.is_empty(),
            Writing::Lost => true,
            _ => false,
        }
    }

    /// Between two responses, where more bytes cannot corrupt one.
    fn at_boundary(&self) -> bool {
        matches!(self.writing, Writing::Head) && self.head.is_empty()
    }

    fn tunnel(&self) -> bool {
        matches!(self.writing, Writing::Tunnel)
    }

    fn observe(&mut self, mut bytes: &[u8]) {
        while !bytes.is_empty() {
            match &mut self.writing {
                Writing::Head => {
                    let mut end = None;
                    for (at, &byte) in bytes.iter().enumerate() {
                        self.matched = match (self.matched, byte) {
                            (0 | 2, b'\r') | (1 | 3, b'\n') => self.matched + 1,
                            (_, b'\r') => 1,
                            _ => 0,
                        };
                        if self.matched == 4 {
                            end = Some(at + 1);
                            break;
                        }
                    }
                    let take = end.unwrap_or(bytes.len());
                    if self.head.len() + take > RESPONSE_HEAD_LIMIT {
                        self.head = Vec::new();
                        self.writing = Writing::Lost;
                        continue;
                    }
                    self.head.extend_from_slice(&bytes[..take]);
                    bytes = &bytes[take..];
                    if end.is_some() {
                        self.matched = 0;
                        let head = std::mem::take(&mut self.head);
                        self.writing = self.after_head(&head);
                        self.head = head;
                        self.head.clear();
                    }
                }
                Writing::Body(framing) => match framing.scan(bytes) {
                    Scan::More => bytes = &[],
                    Scan::Ended(end) => {
                        bytes = &bytes[end..];
                        self.writing = Writing::Head;
                    }
                    Scan::Malformed(_) => self.writing = Writing::Lost,
                },
                Writing::UntilClose | Writing::Tunnel | Writing::Lost => bytes = &[],
            }
        }
    }

    /// Where a complete response head leaves the response.
    fn after_head(&mut self, head: &[u8]) -> Writing {
        let mut lines = head.split(|&byte| byte == b'\n').map(|line| line.strip_suffix(b"\r").unwrap_or(line));
        let status = lines
            .next()
            .and_then(|line| line.get(9..12))
            .and_then(|code| std::str::from_utf8(code).ok())
            .and_then(|code| code.parse::<u16>().ok());
        let Some(status) = status else { return Writing::Lost };
        if (100..200).contains(&status) && status != 101 {
            // Interim (100 Continue): the final response is still to come.
            return Writing::Head;
        }
        let kind = self.expect.pop_front().unwrap_or(Kind::Plain);
        if status == 101 || (kind == Kind::Connect && (200..300).contains(&status)) {
            return Writing::Tunnel;
        }
        if kind == Kind::Head || status == 204 || status == 304 {
            return Writing::Head;
        }
        let (mut length, mut coding) = (None, None);
        for line in lines {
            let Some(colon) = line.iter().position(|&byte| byte == b':') else { continue };
            let (name, value) = (line[..colon].trim_ascii(), line[colon + 1..].trim_ascii());
            if name.eq_ignore_ascii_case(b"content-length") {
                length = Some(value);
            } else if name.eq_ignore_ascii_case(b"transfer-encoding") {
                coding = Some(value);
            }
        }
        let last_coding = coding.and_then(|coding| coding.rsplit(|&byte| byte == b',').next());
        match (last_coding, length) {
            (Some(last), _) if last.trim_ascii().eq_ignore_ascii_case(b"chunked") => {
                Writing::Body(Framing::Chunked(Chunked::default()))
            }
            (Some(_), _) | (None, None) => Writing::UntilClose,
            (None, Some(value)) => match parse_length(value) {
                Some(0) => Writing::Head,
                Some(length) => Writing::Body(Framing::Length(length)),
                None => Writing::Lost,
            },
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use std::convert::Infallible;
    use std::net::SocketAddr;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::time::Duration;

    use bytes::Bytes;
    use http_body_util::{BodyExt, Full};
    use hyper::{Request, Response, body::Incoming, server::conn::http1, service::service_fn};
    use hyper_util::rt::{TokioIo, TokioTimer};
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::net::{TcpListener, TcpStream};
    use tokio::sync::mpsc;

    use super::*;

    /// A hyper server behind the guard, built as the gateway builds it; the handler answers
    /// "<path> <body length>".
    struct Server {
        addr: SocketAddr,
        calls: Arc<AtomicUsize>,
        ended: mpsc::UnboundedReceiver<Result<(), String>>,
    }

    async fn start(limits: FramingLimits) -> Server {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let (addr, calls) = (listener.local_addr().unwrap(), Arc::new(AtomicUsize::new(0)));
        let (ended_tx, ended) = mpsc::unbounded_channel();
        let counter = calls.clone();
        tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                let (calls, ended_tx) = (counter.clone(), ended_tx.clone());
                let service = service_fn(move |request: Request<Incoming>| {
                    calls.fetch_add(1, Ordering::SeqCst);
                    async move {
                        let path = request.uri().path().to_owned();
                        let text = match request.into_body().collect().await {
                            Ok(body) => format!("{path} {}", body.to_bytes().len()),
                            Err(error) => format!("{path} error {error}"),
                        };
                        Ok::<_, Infallible>(Response::new(Full::new(Bytes::from(text))))
                    }
                });
                tokio::spawn(async move {
                    let mut builder = http1::Builder::new();
                    builder.timer(TokioTimer::new()).header_read_timeout(Duration::from_secs(30)).keep_alive(true);
                    let io = TokioIo::new(guarded(stream, limits, Arc::new(default_refusal)));
                    let result = builder.serve_connection(io, service).await;
                    let _ = ended_tx.send(result.map_err(|error| error.to_string()));
                });
            }
        });
        Server { addr, calls, ended }
    }

    #[derive(Debug)]
    struct Reply {
        status: u16,
        headers: Vec<(String, String)>,
        body: String,
    }

    impl Reply {
        fn header(&self, name: &str) -> Option<&str> {
            self.headers.iter().find(|(key, _)| key.eq_ignore_ascii_case(name)).map(|(_, value)| value.as_str())
        }
    }

    /// Takes one complete response off the front of `buf`; `bodiless` for a reply to HEAD.
    fn parse_reply(buf: &mut Vec<u8>, bodiless: bool) -> Option<Reply> {
        let mut headers = [httparse::EMPTY_HEADER; 32];
        let mut response = httparse::Response::new(&mut headers);
        let httparse::Status::Complete(len) = response.parse(buf).unwrap() else { return None };
        let headers: Vec<(String, String)> =
            response.headers.iter().map(|h| (h.name.to_owned(), String::from_utf8_lossy(h.value).into())).collect();
        let reply = Reply { status: response.code.unwrap(), headers, body: String::new() };
        let length = reply.header("content-length").filter(|_| !bodiless).map_or(0, |v| v.parse().unwrap());
        let end = len + length;
        let body = String::from_utf8_lossy(buf.get(len..end)?).into_owned();
        buf.drain(..end);
        Some(Reply { body, ..reply })
    }

    /// Reads `count` replies, or with `count == 0` every reply until the server closes (asserted).
    /// Reply number `head_at` answers a HEAD request.
    async fn read_replies(stream: &mut TcpStream, count: usize, head_at: Option<usize>) -> Vec<Reply> {
        let work = async {
            let (mut buf, mut replies, mut chunk) = (Vec::new(), Vec::new(), [0u8; 4096]);
            loop {
                while let Some(reply) = parse_reply(&mut buf, head_at == Some(replies.len())) {
                    replies.push(reply);
                }
                if count > 0 && replies.len() >= count {
                    return replies;
                }
                let n = stream.read(&mut chunk).await.unwrap();
                if n == 0 {
                    assert!(count == 0 && buf.is_empty(), "early EOF: {:?}", String::from_utf8_lossy(&buf));
                    return replies;
                }
                buf.extend_from_slice(&chunk[..n]);
            }
        };
        tokio::time::timeout(Duration::from_secs(5), work).await.expect("safety net: no reply in 5 s")
    }

    async fn connect(server: &Server) -> TcpStream {
        let stream = TcpStream::connect(server.addr).await.unwrap();
        stream.set_nodelay(true).unwrap();
        stream
    }

    /// Sends `raw` on a new connection and reads every reply until the server closes it.
    async fn exchange(server: &Server, raw: &[u8], head_at: Option<usize>) -> Vec<Reply> {
        let mut stream = connect(server).await;
        stream.write_all(raw).await.unwrap();
        read_replies(&mut stream, 0, head_at).await
    }

    fn assert_problem(reply: &Reply, status: u16, slug: &str) {
        assert_eq!(reply.status, status, "{reply:?}");
        assert_eq!(reply.header("content-type"), Some("application/problem+json"));
        assert_eq!(reply.header("connection"), Some("close"));
        let problem: serde_json::Value = serde_json::from_str(&reply.body).unwrap();
        assert_eq!(problem["type"], format!("urn:tongban:problem:{slug}"));
        assert_eq!(problem["status"], status);
        assert!(problem["detail"].as_str().is_some_and(|detail| !detail.is_empty()));
    }

    /// One connection sending `raw`: exactly one refusal, no handler call, a clean hyper shutdown.
    async fn assert_refused_with(limits: FramingLimits, raw: &[u8], status: u16, slug: &str) {
        let mut server = start(limits).await;
        let replies = exchange(&server, raw, None).await;
        assert_eq!(replies.len(), 1, "for {:?}: {replies:?}", String::from_utf8_lossy(raw));
        assert_problem(&replies[0], status, slug);
        assert_eq!(server.calls.load(Ordering::SeqCst), 0);
        assert_eq!(server.ended.recv().await, Some(Ok(())));
    }

    async fn assert_refused(raw: &[u8], status: u16, slug: &str) {
        assert_refused_with(FramingLimits::default(), raw, status, slug).await;
    }

    const BOTH: &[u8] =
        b"POST /a HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n";
    const CHUNKED: &[u8] = b"POST /c HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: Chunked\r\n\r\n\
                             3;name=value\r\nabc\r\n4 ; x\r\ndefg\r\n0\r\nX-Trailer: t\r\n\r\n";

    #[tokio::test]
    async fn length_and_chunked_refused_in_either_order() {
        assert_refused(BOTH, 400, "request-framing").await;
        let swapped =
            b"POST /a HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\ncontent-length: 0\r\n\r\n0\r\n\r\n";
        assert_refused(swapped, 400, "request-framing").await;
    }

    #[tokio::test]
    async fn smuggled_request_is_never_handled() {
        let raw = b"POST /a HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\nContent-Length: 4\r\n\r\n\
                    0\r\n\r\nGET /admin HTTP/1.1\r\nHost: x\r\n\r\n";
        assert_refused(raw, 400, "request-framing").await;
    }

    #[tokio::test]
    async fn duplicate_content_length_refused() {
        for (first, second) in [("5", "6"), ("5", "5")] {
            let raw = format!(
                "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: {first}\r\nContent-Length: {second}\r\n\r\nhello"
            );
            assert_refused(raw.as_bytes(), 400, "request-framing").await;
        }
    }

    #[tokio::test]
    async fn invalid_content_length_refused() {
        for value in ["+5", "1,2", "5, 5", "-1", "5 5", "0x5", "", "99999999999999999999999", "18446744073709551615"] {
            let raw = format!("POST / HTTP/1.1\r\nHost: x\r\nContent-Length: {value}\r\n\r\nhello");
            assert_refused(raw.as_bytes(), 400, "request-framing").await;
        }
    }

    #[tokio::test]
    async fn transfer_encoding_other_than_chunked_refused() {
        for value in ["xchunked", "chunked, gzip", "gzip, chunked", "identity", "chunked\r\nTransfer-Encoding: chunked"]
        {
            let raw = format!("POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: {value}\r\n\r\n0\r\n\r\n");
            assert_refused(raw.as_bytes(), 400, "request-framing").await;
        }
        // A vertical tab is no header value character: httparse rejects the head itself.
        assert_refused(
            b"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\x0b\r\n\r\n0\r\n\r\n",
            400,
            "malformed-request",
        )
        .await;
        assert_refused(b"POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n", 400, "request-framing").await;
    }

    #[tokio::test]
    async fn malformed_heads_refused() {
        let cases: [&[u8]; 4] = [
            b"GET / HTTP/1.1\r\nHost: x\r\nX-Long: a\r\n  folded\r\n\r\n",
            b"GET / HTTP/1.1\r\nHost: x\r\nContent-Length : 0\r\n\r\n",
            b"GET / HTTP/1.1\r\nHost: x\r\nX-Nul: a\0b\r\n\r\n",
            b"GET /a b HTTP/1.1\r\nHost: x\r\n\r\n",
        ];
        for raw in cases {
            assert_refused(raw, 400, "malformed-request").await;
        }
    }

    #[tokio::test]
    async fn oversized_heads_refused_with_431() {
        let headers: String = (0..65).map(|i| format!("X-H{i}: v\r\n")).collect();
        assert_refused(format!("GET / HTTP/1.1\r\nHost: x\r\n{headers}\r\n").as_bytes(), 431, "headers-too-large")
            .await;
        let big = format!("GET / HTTP/1.1\r\nHost: x\r\nX-Big: {}\r\n\r\n", "a".repeat(17 * 1024));
        assert_refused(big.as_bytes(), 431, "headers-too-large").await;
        let limits = FramingLimits { max_headers: 2, max_head_bytes: 64 };
        assert_refused_with(
            limits,
            b"GET / HTTP/1.1\r\nHost: x\r\nA: 1\r\nB: 2\r\nC: 3\r\n\r\n",
            431,
            "headers-too-large",
        )
        .await;
    }

    #[tokio::test]
    async fn other_http_versions_refused() {
        for version in ["HTTP/1.2", "HTTP/2.0", "HTTP/0.9"] {
            let raw = format!("GET / {version}\r\nHost: x\r\n\r\n");
            assert_refused(raw.as_bytes(), 400, "unsupported-http-version").await;
        }
        assert_refused(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n", 400, "unsupported-http-version").await;
    }

    /// hyper (through httparse) accepts bare LF line endings, leading empty lines and whitespace
    /// around a value; so does the guard, so both always agree on where a head ends.
    #[tokio::test]
    async fn bare_lf_and_leading_empty_lines_accepted_like_hyper() {
        let server = start(FramingLimits::default()).await;
        let mut stream = connect(&server).await;
        stream.write_all(b"\r\n\r\nPOST /lf HTTP/1.1\nHost: x\nContent-Length:  3 \n\nabc").await.unwrap();
        let replies = read_replies(&mut stream, 1, None).await;
        assert_eq!((replies[0].status, replies[0].body.as_str()), (200, "/lf 3"));
    }

    #[tokio::test]
    async fn keep_alive_sequence_is_served() {
        let server = start(FramingLimits::default()).await;
        let mut stream = connect(&server).await;
        let requests: [(&[u8], &str); 3] = [
            (b"GET /g HTTP/1.1\r\nHost: x\r\n\r\n", "/g 0"),
            (b"POST /p HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\nhello", "/p 5"),
            (CHUNKED, "/c 7"),
        ];
        for (raw, expected) in requests {
            stream.write_all(raw).await.unwrap();
            let replies = read_replies(&mut stream, 1, None).await;
            assert_eq!((replies[0].status, replies[0].body.as_str()), (200, expected));
        }
        assert_eq!(server.calls.load(Ordering::SeqCst), 3);
    }

    #[tokio::test]
    async fn pipelined_requests_answered_in_order() {
        let server = start(FramingLimits::default()).await;
        let raw = [
            &b"GET /1 HTTP/1.1\r\nHost: x\r\n\r\nPOST /2 HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\n\r\nhi"[..],
            CHUNKED,
            b"HEAD /4 HTTP/1.1\r\nHost: x\r\n\r\nGET /5 HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
        ];
        let replies = exchange(&server, &raw.concat(), Some(3)).await;
        let bodies: Vec<&str> = replies.iter().map(|reply| reply.body.as_str()).collect();
        assert_eq!(bodies, ["/1 0", "/2 2", "/c 7", "", "/5 0"]);
    }

    #[tokio::test]
    async fn refusal_follows_pipelined_responses() {
        let before: [&[u8]; 4] = [
            b"GET /ok HTTP/1.1\r\nHost: x\r\n\r\n",
            b"HEAD /ok HTTP/1.1\r\nHost: x\r\n\r\n",
            b"POST /ok HTTP/1.1\r\nHost: x\r\nContent-Length: 4\r\n\r\nbody",
            b"POST /ok HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nab\r\n0\r\n\r\n",
        ];
        for good in before {
            let mut server = start(FramingLimits::default()).await;
            let replies = exchange(&server, &[good, BOTH].concat(), good.starts_with(b"HEAD").then_some(0)).await;
            assert_eq!(replies.len(), 2, "{replies:?}");
            assert_eq!(replies[0].status, 200);
            assert_problem(&replies[1], 400, "request-framing");
            assert_eq!(server.calls.load(Ordering::SeqCst), 1);
            assert_eq!(server.ended.recv().await, Some(Ok(())));
        }
    }

    /// The bad request arrives in pieces behind a good one, across an interim 100 Continue.
    #[tokio::test]
    async fn refusal_waits_for_the_final_response() {
        let mut server = start(FramingLimits::default()).await;
        let mut stream = connect(&server).await;
        stream
            .write_all(b"POST /slow HTTP/1.1\r\nHost: x\r\nExpect: 100-continue\r\nContent-Length: 4\r\n\r\n")
            .await
            .unwrap();
        stream.write_all(b"ab").await.unwrap();
        let interim = read_replies(&mut stream, 1, None).await;
        assert_eq!(interim[0].status, 100);
        stream.write_all(b"cd").await.unwrap();
        stream.write_all(BOTH).await.unwrap();
        let replies = read_replies(&mut stream, 0, None).await;
        assert_eq!(replies[0].body, "/slow 4");
        assert_problem(&replies[1], 400, "request-framing");
        assert_eq!(server.ended.recv().await, Some(Ok(())));
    }

    #[tokio::test]
    async fn refusal_survives_a_client_still_sending() {
        let server = start(FramingLimits::default()).await;
        let (mut reader, mut writer) = connect(&server).await.into_split();
        let sending = tokio::spawn(async move { writer.write_all(&[BOTH, &vec![b'x'; 4 << 20]].concat()).await });
        let mut got = Vec::new();
        let read = tokio::time::timeout(Duration::from_secs(5), reader.read_to_end(&mut got)).await;
        assert!(read.is_ok(), "safety net: no EOF in 5 s");
        assert_problem(&parse_reply(&mut got, false).unwrap(), 400, "request-framing");
        let _ = sending.await;
        assert_eq!(server.calls.load(Ordering::SeqCst), 0);
    }

    #[tokio::test]
    async fn byte_by_byte_request_is_served() {
        let server = start(FramingLimits::default()).await;
        let mut stream = connect(&server).await;
        for byte in CHUNKED {
            stream.write_all(&[*byte]).await.unwrap();
            stream.flush().await.unwrap();
        }
        let replies = read_replies(&mut stream, 1, None).await;
        assert_eq!((replies[0].status, replies[0].body.as_str()), (200, "/c 7"));
    }

    #[tokio::test]
    async fn malformed_chunk_is_cut_before_anything_after_it() {
        let server = start(FramingLimits::default()).await;
        let raw = b"POST /m HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nabX\r\n\
                    GET /admin HTTP/1.1\r\nHost: x\r\n\r\n";
        let replies = exchange(&server, raw, None).await;
        assert!(replies.iter().all(|reply| reply.status == 200 && reply.body.starts_with("/m error")), "{replies:?}");
        assert_eq!(server.calls.load(Ordering::SeqCst), 1);
    }

    #[test]
    fn chunked_scan_ends_in_the_same_place_however_split() {
        let body = b"3;a=b\r\nabc\r\n10 \r\n0123456789abcdef\r\n0\r\nT: 1\r\nU: 2\r\n\r\nNEXT";
        for split in 0..body.len() {
            let (mut chunked, (first, second)) = (Chunked::default(), body.split_at(split));
            let end = match chunked.scan(first) {
                Scan::Ended(at) => at,
                Scan::More => match chunked.scan(second) {
                    Scan::Ended(at) => split + at,
                    other => panic!("split {split}: {other:?}"),
                },
                Scan::Malformed(at) => panic!("split {split}: malformed at {at}"),
            };
            assert_eq!(end, body.len() - 4, "split {split}");
        }
        for (bad, at) in [(&b"x\r\n"[..], 0), (b"3\nabc", 1), (b"1;a\nb", 3), (b"1\r\nab", 4), (b"1 2\r\n", 2)] {
            assert_eq!(Chunked::default().scan(bad), Scan::Malformed(at), "{:?}", String::from_utf8_lossy(bad));
        }
        assert_eq!(Chunked::default().scan(b"fffffffffffffffff\r\n"), Scan::Malformed(16));
    }

    #[test]
    fn response_tracking_follows_hyper_output() {
        let mut responses = Responses::default();
        responses.expect.extend([Kind::Plain, Kind::Head, Kind::Plain, Kind::Plain]);
        responses.observe(b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\ncontent-length: 3\r\n\r\nab");
        assert!(!responses.at_boundary());
        responses.observe(b"cHTTP/1.1 200 OK\r\ncontent-length: 9\r\n\r\n");
        assert!(responses.at_boundary());
        responses.observe(b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n1\r\na\r\n0\r\n\r\n");
        assert!(responses.at_boundary() && !responses.settled());
        responses.observe(b"HTTP/1.0 200 OK\r\n\r\nuntil close");
        assert!(!responses.at_boundary() && !responses.settled());
        let mut tunnel = Responses::default();
        tunnel.expect.push_back(Kind::Upgrade);
        tunnel.observe(b"HTTP/1.1 101 Switching Protocols\r\nupgrade: x\r\n\r\nraw");
        assert!(tunnel.tunnel());
    }

    #[test]
    fn default_refusal_is_a_complete_response() {
        let mut raw = default_refusal(&FramingViolation::InvalidContentLength("+5".into()), b"");
        let reply = parse_reply(&mut raw, false).unwrap();
        assert!(raw.is_empty());
        assert_problem(&reply, 400, "request-framing");
        assert!(reply.body.contains("Content-Length"));
    }
}
