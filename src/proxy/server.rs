//! Listeners (监听): accept connections, run the TLS handshake when the listener has TLS (the
//! client certificate's names travel with every request of the connection), and serve HTTP/1.1
//! with keep-alive, a header read timeout, a cap on open connections, and graceful shutdown.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use hyper::service::service_fn;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpListener;
use tokio::sync::watch;

use super::framing::{self, FramingLimits, Refusal};
use super::respond::Reply;
use crate::identity::ClientCertificate;
use crate::tls::TlsAcceptor;

/// What a listener enforces besides HTTP itself.
#[derive(Clone)]
pub struct ListenerOptions {
    /// Connections open at once.
    pub max_connections: usize,
    /// TLS, when the listener has it.
    pub tls: Option<Arc<TlsAcceptor>>,
    /// The framing guard's limits and refusal, when requests come from outside.
    pub framing: Option<(FramingLimits, Refusal)>,
    /// Counts failed TLS handshakes.
    pub handshake_failures: Option<prometheus::IntCounter>,
}

impl ListenerOptions {
    /// A plain listener with only a connection cap (admin, tests).
    pub fn plain(max_connections: usize) -> ListenerOptions {
        ListenerOptions { max_connections, tls: None, framing: None, handshake_failures: None }
    }
}

/// Slow clients may take this long to send their headers.
const HEADER_READ_TIMEOUT: Duration = Duration::from_secs(30);
/// Open requests get this long to finish at shutdown.
const DRAIN_TIMEOUT: Duration = Duration::from_secs(30);

/// Serves `handler` on `listener` until `shutdown` turns true, then lets open requests finish.
/// At most `max_connections` are open at once: at the cap the listener stops accepting, and
/// new connections wait in the kernel's backlog until one closes.
pub async fn serve<H, F>(
    listener: TcpListener,
    handler: H,
    mut shutdown: watch::Receiver<bool>,
    options: ListenerOptions,
) where
    H: Fn(hyper::Request<hyper::body::Incoming>, SocketAddr) -> F + Clone + Send + Sync + 'static,
    F: Future<Output = Result<Reply, std::convert::Infallible>> + Send + 'static,
{
    let (closing_tx, closing_rx) = watch::channel(false);
    let connections = Arc::new(tokio::sync::Semaphore::new(0));
    let mut open = 0usize;
    let max_connections = options.max_connections;
    let slots = Arc::new(tokio::sync::Semaphore::new(max_connections.clamp(1, tokio::sync::Semaphore::MAX_PERMITS)));
    let mut saturated = false;
    loop {
        // Logged when the cap is first reached, not for every connection while it lasts.
        let full = slots.available_permits() == 0;
        if full && !saturated {
            tracing::warn!(max_connections, "Connection cap reached: new connections wait until one closes.");
        }
        saturated = full;
        let slot = tokio::select! {
            slot = slots.clone().acquire_owned() => slot,
            _ = shutdown.changed() => break,
        };
        // The semaphore is never closed; a failure would only mean no cap.
        let slot = slot.ok();
        let accepted = tokio::select! {
            accepted = listener.accept() => accepted,
            _ = shutdown.changed() => break,
        };
        let (stream, peer): (_, SocketAddr) = match accepted {
            Ok(pair) => pair,
            Err(err) => {
                // Out of file descriptors and the like: wait a moment rather than spin.
                tracing::warn!(error = %err, "Accepting a connection failed.");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        let _ = stream.set_nodelay(true);
        let handler = handler.clone();
        let closing = closing_rx.clone();
        let done = connections.clone();
        let options = options.clone();
        open += 1;
        // Each stage is boxed: a task is as large as its largest state, and it is written in full
        // when spawned, so inline states (the TLS handshake, hyper's connection, a request's
        // pipeline) would cost every idle connection their size (about 8 KiB) in resident memory.
        tokio::spawn(async move {
            // The handshake runs here, not in the accept loop, so a slow client delays no one.
            match &options.tls {
                None => Box::pin(serve_connection(stream, None, handler, peer, closing, options.framing)).await,
                Some(acceptor) => match Box::pin(acceptor.accept(stream)).await {
                    Ok(stream) => {
                        let certificate = crate::tls::peer_of(&stream).map(|peer| {
                            let names = peer.names().map(str::to_owned).collect();
                            Arc::new(ClientCertificate { names, fingerprint: peer.fingerprint_sha256 })
                        });
                        Box::pin(serve_connection(stream, certificate, handler, peer, closing, options.framing)).await;
                    }
                    // Refused certificates and port scans end here; the client sees the alert.
                    Err(err) => {
                        if let Some(counter) = &options.handshake_failures {
                            counter.inc();
                        }
                        tracing::debug!(%peer, error = %err, "TLS handshake failed.");
                    }
                },
            }
            drop(slot);
            done.add_permits(1);
        });
    }
    let _ = closing_tx.send(true);
    // Let every connection finish its current request, but not forever.
    let all = connections.acquire_many(u32::try_from(open).unwrap_or(u32::MAX));
    if tokio::time::timeout(DRAIN_TIMEOUT, all).await.is_err() {
        tracing::warn!("Some connections were still open when the drain time ran out.");
    }
}

/// A connection's byte stream: TCP or TLS, guarded or not.
trait Io: AsyncRead + AsyncWrite + Unpin + Send {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send> Io for T {}

/// Serves HTTP/1.1 on one connection until it closes or the listener drains.
async fn serve_connection<S, H, F>(
    stream: S,
    certificate: Option<Arc<ClientCertificate>>,
    handler: H,
    peer: SocketAddr,
    mut closing: watch::Receiver<bool>,
    framing: Option<(FramingLimits, Refusal)>,
) where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    H: Fn(hyper::Request<hyper::body::Incoming>, SocketAddr) -> F + Clone + Send + Sync + 'static,
    F: Future<Output = Result<Reply, std::convert::Infallible>> + Send + 'static,
{
    let service = service_fn(move |mut request: hyper::Request<hyper::body::Incoming>| {
        if let Some(certificate) = &certificate {
            request.extensions_mut().insert(certificate.clone());
        }
        // Boxed, so an idle connection does not hold room for a request's whole pipeline.
        Box::pin(handler(request, peer))
    });
    let mut builder = hyper::server::conn::http1::Builder::new();
    builder.timer(TokioTimer::new()).header_read_timeout(HEADER_READ_TIMEOUT).keep_alive(true);
    let stream: Box<dyn Io> = match framing {
        Some((limits, refusal)) => {
            // hyper's own limits sit above the guard's, so the guard always decides first.
            builder.max_headers(limits.max_headers.max(100)).max_buf_size(limits.max_head_bytes.max(8192) * 4);
            Box::new(framing::guarded(stream, limits, refusal))
        }
        None => Box::new(stream),
    };
    let connection = builder.serve_connection(TokioIo::new(stream), service);
    tokio::pin!(connection);
    let result = tokio::select! {
        result = connection.as_mut() => result,
        _ = closing.changed() => {
            connection.as_mut().graceful_shutdown();
            connection.await
        }
    };
    if let Err(err) = result {
        tracing::debug!(%peer, error = %err, "Connection ended with an error.");
    }
}
