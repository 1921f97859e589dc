//! Running a plan over `connections` tasks, each with its own HTTP/1.1 keep-alive connection:
//! - **closed loop**: each connection sends its next request as soon as the previous answer is
//!   read in full (the most the target can do);
//! - **open loop** (`rate`): request `i` is due at `start + i / rate`, dealt round robin to the
//!   connections; a connection sends each request at its due time, or at once when it is late.
//!   A request that had to wait for its connection counts its latency from the due time, so a
//!   slow answer shows in the latency of every request it held up, not as requests silently
//!   never sent (no coordinated omission); requests still unsent 2 s ([`GRACE`]) past the
//!   deadline are counted as `not_sent`.
//!
//! The run ends at the deadline, at the request budget, or when asked to stop, whichever comes first.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use anyhow::Context;
use bytes::Bytes;
use hdrhistogram::Histogram;
use http::header::{HOST, HeaderValue};
use http_body_util::{BodyExt, Full};
use hyper::client::conn::http1::SendRequest;
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;
use tokio::time::Instant;

use crate::scenario::Scenario;

/// The highest latency the histograms hold, in microseconds (one hour); higher values saturate.
pub const MAX_LATENCY_US: u64 = 3_600_000_000;
/// How long requests still in flight at the deadline may take to finish.
pub const GRACE: Duration = Duration::from_secs(2);
/// The pause after a failed connect, so a dead target is not hammered in a tight loop.
const RECONNECT_PAUSE: Duration = Duration::from_millis(50);
/// The part of an unexpected answer's body kept as a sample.
const SAMPLE_BYTES: usize = 400;
/// The width of one bucket of the answers-over-time series.
pub const BUCKET: Duration = Duration::from_millis(250);

/// Request failures that got no HTTP answer, by kind.
pub const CONNECT: &str = "connect";
pub const IO: &str = "io";
pub const TIMEOUT: &str = "timeout";
/// Open loop: requests due before the deadline that could not be sent within the grace.
pub const NOT_SENT: &str = "not_sent";

/// What to run.
#[derive(Debug, Clone)]
pub struct Plan {
    /// Where to connect.
    pub addr: SocketAddr,
    /// The `Host` header.
    pub authority: String,
    pub connections: usize,
    pub duration: Duration,
    pub max_requests: u64,
    /// The longest one request may take.
    pub timeout: Duration,
    /// Open loop at this many requests a second; `None` is closed loop.
    pub rate: Option<f64>,
    /// Request numbers start after this one, so runs against the same platform never repeat an id.
    pub first_seq: u64,
    /// Answers so far, for a progress bar.
    pub answered: Arc<AtomicU64>,
}

/// What a run measured.
#[derive(Debug, Clone)]
pub struct Outcome {
    /// Latency of every answered request, in microseconds, from sending to the end of the body.
    pub latency: Histogram<u64>,
    /// Answers by HTTP status.
    pub statuses: BTreeMap<u16, u64>,
    /// Answers the scenario counts as success.
    pub successes: u64,
    /// Requests that got no answer, by kind ([`CONNECT`], [`IO`], [`TIMEOUT`]).
    pub errors: BTreeMap<&'static str, u64>,
    /// The first body seen for each status the scenario does not count as success.
    pub samples: BTreeMap<u16, String>,
    /// TCP connections opened, reconnects included.
    pub connects: u64,
    /// Answers completed in each [`BUCKET`] from the start of the run.
    pub timeline: Vec<u64>,
    /// From the first request to the last answer.
    pub elapsed: Duration,
    /// The run was stopped early (Ctrl-C).
    pub interrupted: bool,
}

impl Outcome {
    /// An empty outcome, ready to be added to.
    pub fn new() -> anyhow::Result<Outcome> {
        Ok(Outcome {
            latency: Histogram::new_with_bounds(1, MAX_LATENCY_US, 3).context("latency histogram")?,
            statuses: BTreeMap::new(),
            successes: 0,
            errors: BTreeMap::new(),
            samples: BTreeMap::new(),
            connects: 0,
            timeline: Vec::new(),
            elapsed: Duration::ZERO,
            interrupted: false,
        })
    }

    /// Requests that got an answer.
    pub fn answered(&self) -> u64 {
        self.statuses.values().sum()
    }

    /// Requests sent or attempted: answered, and failed without an answer.
    pub fn requests(&self) -> u64 {
        self.answered() + self.errors.values().sum::<u64>()
    }

    /// Adds another task's tally.
    pub fn merge(&mut self, other: Outcome) -> anyhow::Result<()> {
        self.latency.add(&other.latency).context("merging latency histograms")?;
        for (status, count) in other.statuses {
            *self.statuses.entry(status).or_default() += count;
        }
        for (kind, count) in other.errors {
            *self.errors.entry(kind).or_default() += count;
        }
        for (status, body) in other.samples {
            self.samples.entry(status).or_insert(body);
        }
        self.successes += other.successes;
        self.connects += other.connects;
        if self.timeline.len() < other.timeline.len() {
            self.timeline.resize(other.timeline.len(), 0);
        }
        for (sum, count) in self.timeline.iter_mut().zip(other.timeline) {
            *sum += count;
        }
        Ok(())
    }

    /// Counts one answer in its time bucket.
    fn count_in_timeline(&mut self, since_start: Duration) {
        let bucket = usize::try_from(since_start.as_nanos() / BUCKET.as_nanos()).unwrap_or(usize::MAX).min(1 << 20);
        if self.timeline.len() <= bucket {
            self.timeline.resize(bucket + 1, 0);
        }
        self.timeline[bucket] += 1;
    }
}

/// What the connection tasks share.
struct Shared {
    plan: Plan,
    host: HeaderValue,
    scenario: Arc<dyn Scenario>,
    /// Closed loop: requests issued so far; each task takes the next number for its next request.
    issued: AtomicU64,
    started: Instant,
    deadline: Instant,
    stop: Arc<AtomicBool>,
}

/// Runs the plan, in closed or open loop. Setting `stop` ends it early; requests in flight then
/// finish (within [`GRACE`]).
pub async fn execute(plan: Plan, scenario: Arc<dyn Scenario>, stop: Arc<AtomicBool>) -> anyhow::Result<Outcome> {
    let host = HeaderValue::from_str(&plan.authority).context("the target's host is not a valid Host header")?;
    let started = Instant::now();
    let shared = Arc::new(Shared {
        started,
        deadline: started + plan.duration,
        plan,
        host,
        scenario,
        issued: AtomicU64::new(0),
        stop: stop.clone(),
    });
    let mut tasks = tokio::task::JoinSet::new();
    for slot in 0..shared.plan.connections {
        let shared = shared.clone();
        tasks.spawn(async move { connection(&shared, slot).await });
    }
    let mut outcome = Outcome::new()?;
    while let Some(joined) = tasks.join_next().await {
        outcome.merge(joined.context("a connection task failed")??)?;
    }
    outcome.elapsed = started.elapsed();
    outcome.interrupted = stop.load(Ordering::Relaxed);
    Ok(outcome)
}

/// The next request of connection `slot`: its sequence number and when it is due.
/// Request 0 is the pre-flight check (see `main`); the run's requests are 1..=max_requests.
fn next_request(shared: &Shared, slot: usize, round: u64) -> Option<(u64, Instant)> {
    match shared.plan.rate {
        None => {
            let n = shared.issued.fetch_add(1, Ordering::Relaxed) + 1;
            (n <= shared.plan.max_requests).then(Instant::now).map(|now| (shared.plan.first_seq + n, now))
        }
        Some(rate) => {
            // Request i (from 0) is due at start + i / rate, on connection i mod connections.
            let i = round * shared.plan.connections as u64 + slot as u64;
            let due = shared.started + Duration::from_secs_f64(i as f64 / rate);
            (i < shared.plan.max_requests && due < shared.deadline).then_some((shared.plan.first_seq + i + 1, due))
        }
    }
}

/// One connection's loop: connect, send (back to back, or at each request's due time), reconnect
/// after a failure.
async fn connection(shared: &Shared, slot: usize) -> anyhow::Result<Outcome> {
    let mut tally = Outcome::new()?;
    let mut sender: Option<SendRequest<Full<Bytes>>> = None;
    let last_finish = shared.deadline + GRACE;
    // Open loop sends every request due before the deadline, however late (within the grace):
    // leaving out the late ones would hide exactly the latency a slow target causes.
    let cutoff = if shared.plan.rate.is_some() { last_finish } else { shared.deadline };
    // When this connection was last free to send (open loop: whether a request waited for it).
    let mut free_since = shared.started;
    let mut round = 0;
    loop {
        if shared.stop.load(Ordering::Relaxed) {
            break;
        }
        let Some((seq, due)) = next_request(shared, slot, round) else { break };
        round += 1;
        if Instant::now() >= cutoff {
            // Past the grace with requests still due: they count, as never sent.
            if shared.plan.rate.is_some() {
                *tally.errors.entry(NOT_SENT).or_default() += 1;
                continue;
            }
            break;
        }
        if shared.plan.rate.is_some() {
            tokio::select! {
                _ = tokio::time::sleep_until(due) => {}
                // Asleep until its next due time, a connection still notices Ctrl-C.
                _ = crate::process::stopped(&shared.stop) => break,
            }
        }
        // A connection the server closed is replaced without counting a failed request.
        if let Some(ready) = sender.as_mut()
            && ready.ready().await.is_err()
        {
            sender = None;
        }
        let send = match sender.as_mut() {
            Some(send) => send,
            None => match connect(shared.plan.addr).await {
                Ok(fresh) => {
                    tally.connects += 1;
                    sender.insert(fresh)
                }
                Err(_) => {
                    *tally.errors.entry(CONNECT).or_default() += 1;
                    free_since = Instant::now();
                    if shared.plan.rate.is_none() {
                        tokio::time::sleep_until((Instant::now() + RECONNECT_PAUSE).min(shared.deadline)).await;
                    }
                    continue;
                }
            },
        };
        let mut request = shared.scenario.request(seq).map(Full::new);
        request.headers_mut().insert(HOST, shared.host.clone());
        // Closed loop: now. Open loop: the due time when the request waited for this connection
        // (however late, so no coordinated omission); when the connection was free in time, the
        // moment it was sent, so the timer's own lateness (up to a millisecond) is not counted.
        let now = Instant::now();
        let sent = if free_since > due { due } else { now };
        let limit = now.checked_add(shared.plan.timeout).map_or(last_finish, |limit| limit.min(last_finish));
        let answer = tokio::time::timeout_at(limit, async {
            let response = send.send_request(request).await?;
            let status = response.status();
            let body = response.into_body().collect().await?.to_bytes();
            Ok::<_, hyper::Error>((status, body))
        })
        .await;
        match answer {
            Ok(Ok((status, body))) => {
                let finished = Instant::now();
                let micros = u64::try_from((finished - sent).as_micros()).unwrap_or(MAX_LATENCY_US);
                tally.latency.saturating_record(micros.clamp(1, MAX_LATENCY_US));
                tally.count_in_timeline(finished - shared.started);
                shared.plan.answered.fetch_add(1, Ordering::Relaxed);
                *tally.statuses.entry(status.as_u16()).or_default() += 1;
                if shared.scenario.is_success(status) {
                    tally.successes += 1;
                } else {
                    tally.samples.entry(status.as_u16()).or_insert_with(|| sample(&body));
                }
            }
            Ok(Err(_)) => {
                *tally.errors.entry(IO).or_default() += 1;
                sender = None;
            }
            Err(_) => {
                *tally.errors.entry(TIMEOUT).or_default() += 1;
                sender = None;
            }
        }
        free_since = Instant::now();
    }
    Ok(tally)
}

/// Opens a keep-alive HTTP/1.1 connection; its driver runs as its own task until the sender is dropped.
pub async fn connect(addr: SocketAddr) -> anyhow::Result<SendRequest<Full<Bytes>>> {
    let stream = TcpStream::connect(addr).await?;
    stream.set_nodelay(true)?;
    let (sender, driver) = hyper::client::conn::http1::handshake(TokioIo::new(stream)).await?;
    tokio::spawn(async move {
        let _ = driver.await;
    });
    Ok(sender)
}

/// The start of a body, as text.
fn sample(body: &[u8]) -> String {
    let text = String::from_utf8_lossy(&body[..body.len().min(SAMPLE_BYTES)]).into_owned();
    if body.len() > SAMPLE_BYTES { format!("{text}…") } else { text }
}

/// `GET path` on one fresh connection: the status and the body as text (for `/metrics` and the
/// pre-flight request).
pub async fn fetch(
    addr: SocketAddr,
    request: http::Request<Bytes>,
    timeout: Duration,
) -> anyhow::Result<(u16, String)> {
    let mut request = request.map(Full::new);
    let host = HeaderValue::from_str(&addr.to_string())?;
    request.headers_mut().entry(HOST).or_insert(host);
    tokio::time::timeout(timeout, async {
        let mut sender = connect(addr).await?;
        let response = sender.send_request(request).await?;
        let status = response.status().as_u16();
        let body = response.into_body().collect().await?.to_bytes();
        Ok((status, String::from_utf8_lossy(&body).into_owned()))
    })
    .await
    .with_context(|| format!("no answer from {addr} within {} s", timeout.as_secs()))?
}

#[cfg(test)]
pub(crate) mod tests {
    use std::convert::Infallible;

    use http::StatusCode;
    use hyper::body::Incoming;
    use hyper::server::conn::http1;
    use hyper::service::service_fn;
    use tokio::net::TcpListener;

    use super::*;
    use crate::scenario::GatewayNeeds;

    /// `POST /echo`; 202 for even sequence numbers, 429 for odd ones.
    pub(crate) struct Alternating;

    impl Scenario for Alternating {
        fn name(&self) -> &'static str {
            "alternating"
        }
        fn describe(&self) -> &'static str {
            "test"
        }
        fn needs(&self) -> GatewayNeeds {
            GatewayNeeds::platforms(&[])
        }
        fn request(&self, seq: u64) -> http::Request<Bytes> {
            let mut request = http::Request::new(Bytes::from(seq.to_string()));
            *request.method_mut() = http::Method::POST;
            *request.uri_mut() = http::Uri::from_static("/echo");
            request
        }
        fn is_success(&self, status: StatusCode) -> bool {
            status == StatusCode::ACCEPTED
        }
    }

    /// A tiny in-process server on an ephemeral port; it lives as long as the test's runtime.
    pub(crate) async fn server() -> SocketAddr {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                tokio::spawn(async move {
                    let service = service_fn(|request: http::Request<Incoming>| async move {
                        let body = request.into_body().collect().await.unwrap().to_bytes();
                        let seq: u64 = std::str::from_utf8(&body).unwrap().parse().unwrap();
                        if seq == 1_000_001 {
                            // The one slow answer of the open-loop test: past its deadline.
                            tokio::time::sleep(Duration::from_millis(600)).await;
                        }
                        if seq == 2_000_001 {
                            // Past the deadline and the grace.
                            tokio::time::sleep(Duration::from_millis(2_500)).await;
                        }
                        let status =
                            if seq.is_multiple_of(2) { StatusCode::ACCEPTED } else { StatusCode::TOO_MANY_REQUESTS };
                        let mut response = http::Response::new(Full::new(Bytes::from_static(b"{\"slow\":\"down\"}")));
                        *response.status_mut() = status;
                        Ok::<_, Infallible>(response)
                    });
                    let _ = http1::Builder::new().serve_connection(TokioIo::new(stream), service).await;
                });
            }
        });
        addr
    }

    fn plan(addr: SocketAddr, max_requests: u64) -> Plan {
        Plan {
            addr,
            authority: addr.to_string(),
            connections: 4,
            duration: Duration::from_secs(3),
            max_requests,
            timeout: Duration::from_secs(1),
            rate: None,
            first_seq: 0,
            answered: Arc::default(),
        }
    }

    #[tokio::test]
    async fn a_short_run_stops_at_its_request_budget_and_counts_every_answer() {
        let addr = server().await;
        let outcome = execute(plan(addr, 200), Arc::new(Alternating), Arc::default()).await.unwrap();
        assert_eq!(outcome.requests(), 200);
        assert_eq!(outcome.statuses, BTreeMap::from([(202, 100), (429, 100)]));
        assert_eq!(outcome.successes, 100);
        assert_eq!(outcome.latency.len(), 200);
        assert_eq!(outcome.connects, 4, "one keep-alive connection per task");
        assert!(outcome.errors.is_empty(), "{:?}", outcome.errors);
        assert_eq!(outcome.samples.get(&429).map(String::as_str), Some("{\"slow\":\"down\"}"));
        assert!(outcome.elapsed < Duration::from_secs(3), "the budget, not the deadline, ended it");
        assert_eq!(outcome.timeline.iter().sum::<u64>(), 200, "every answer in the time series");
        assert!(!outcome.interrupted);
    }

    /// Request 1 carries the given number, which the test server answers slowly; the others
    /// carry even numbers (answered 202).
    struct SlowFirst(u64);

    impl Scenario for SlowFirst {
        fn name(&self) -> &'static str {
            "slow-first"
        }
        fn describe(&self) -> &'static str {
            "test"
        }
        fn needs(&self) -> GatewayNeeds {
            GatewayNeeds::platforms(&[])
        }
        fn request(&self, seq: u64) -> http::Request<Bytes> {
            let number = if seq == 1 { self.0 } else { seq * 2 };
            let mut request = http::Request::new(Bytes::from(number.to_string()));
            *request.method_mut() = http::Method::POST;
            request
        }
        fn is_success(&self, status: StatusCode) -> bool {
            // The slow numbers are odd, so their answer is 429.
            status == StatusCode::ACCEPTED || status == StatusCode::TOO_MANY_REQUESTS
        }
    }

    #[tokio::test]
    async fn open_loop_sends_on_schedule_and_counts_latency_from_the_due_time() {
        // One request every 10 ms for 500 ms on one connection: 50 requests, whatever the answers.
        // The first answer takes 600 ms, past the deadline; the requests due meanwhile wait for
        // the connection, are still sent, and their latency counts from when they were due.
        let addr = server().await;
        let mut plan = plan(addr, 1_000_000);
        plan.connections = 1;
        plan.duration = Duration::from_millis(500);
        plan.rate = Some(100.0);
        let answered = plan.answered.clone();
        let outcome = execute(plan, Arc::new(SlowFirst(1_000_001)), Arc::default()).await.unwrap();
        assert_eq!(outcome.requests(), 50, "due times 0, 10, …, 490 ms");
        assert_eq!(outcome.successes, 50);
        assert_eq!(answered.load(Ordering::Relaxed), 50);
        assert_eq!(outcome.timeline.iter().sum::<u64>(), 50);
        // Requests due at 10..=100 ms were sent after 600 ms: at least 500 ms late each.
        let held_up = outcome.latency.count_between(500_000, MAX_LATENCY_US);
        assert!(held_up >= 10, "only {held_up} latencies of 500 ms or more");
    }

    #[tokio::test]
    async fn open_loop_counts_requests_it_could_not_send_in_time() {
        // 10 requests due in the first 100 ms on one connection; the first is answered only after
        // the deadline and the grace: it times out, and the 9 due behind it count as not sent.
        let addr = server().await;
        let mut plan = plan(addr, 1_000_000);
        plan.connections = 1;
        plan.duration = Duration::from_millis(100);
        plan.rate = Some(100.0);
        plan.timeout = Duration::from_secs(10);
        let outcome = execute(plan, Arc::new(SlowFirst(2_000_001)), Arc::default()).await.unwrap();
        assert_eq!(outcome.requests(), 10, "{:?}", outcome.errors);
        assert_eq!(outcome.errors, BTreeMap::from([(TIMEOUT, 1), (NOT_SENT, 9)]));
    }

    #[tokio::test]
    async fn a_dead_target_gives_connect_errors_until_the_deadline() {
        // Bind and drop, so nothing listens on the port.
        let addr = TcpListener::bind("127.0.0.1:0").await.unwrap().local_addr().unwrap();
        let mut plan = plan(addr, 1_000_000);
        plan.duration = Duration::from_millis(300);
        let outcome = execute(plan, Arc::new(Alternating), Arc::default()).await.unwrap();
        assert_eq!(outcome.answered(), 0);
        assert!(outcome.errors.get(CONNECT).copied().unwrap_or(0) >= 4, "{:?}", outcome.errors);
        assert!(outcome.elapsed < Duration::from_secs(2));
    }

    #[tokio::test]
    async fn stop_ends_the_run_early() {
        let addr = server().await;
        let stop = Arc::new(AtomicBool::new(true));
        let mut plan = plan(addr, 1_000_000);
        plan.duration = Duration::from_secs(30);
        let outcome = execute(plan, Arc::new(Alternating), stop).await.unwrap();
        assert!(outcome.interrupted);
        assert_eq!(outcome.requests(), 0);
    }

    #[tokio::test]
    async fn fetch_reads_one_answer() {
        let addr = server().await;
        let mut request = http::Request::new(Bytes::from_static(b"2"));
        *request.method_mut() = http::Method::POST;
        let (status, body) = fetch(addr, request, Duration::from_secs(1)).await.unwrap();
        assert_eq!((status, body.as_str()), (202, "{\"slow\":\"down\"}"));
    }
}
