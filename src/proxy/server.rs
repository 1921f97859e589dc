//! Listeners (监听): accept connections and serve HTTP/1.1 with keep-alive, a header read
//! timeout, a cap on open connections, and graceful shutdown.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use hyper::service::service_fn;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::net::TcpListener;
use tokio::sync::watch;

use super::respond::Reply;

/// Slow clients may take this long to send their headers.
const HEADER_READ_TIMEOUT: Duration = Duration::from_secs(30);
/// Open requests get this long to finish at shutdown.
const DRAIN_TIMEOUT: Duration = Duration::from_secs(30);

/// Serves `handler` on `listener` until `shutdown` turns true, then lets open requests finish.
/// At most `max_connections` are open at once: at the cap the listener stops accepting, and
/// new connections wait in the kernel's backlog until one closes.
pub async fn serve<H, F>(listener: TcpListener, handler: H, mut shutdown: watch::Receiver<bool>, max_connections: usize)
where
    H: Fn(hyper::Request<hyper::body::Incoming>, SocketAddr) -> F + Clone + Send + Sync + 'static,
    F: Future<Output = Result<Reply, std::convert::Infallible>> + Send + 'static,
{
    let (closing_tx, closing_rx) = watch::channel(false);
    let connections = Arc::new(tokio::sync::Semaphore::new(0));
    let mut open = 0usize;
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
        let mut closing = closing_rx.clone();
        let done = connections.clone();
        open += 1;
        tokio::spawn(async move {
            let service = service_fn(move |request| handler(request, peer));
            let mut builder = hyper::server::conn::http1::Builder::new();
            builder.timer(TokioTimer::new()).header_read_timeout(HEADER_READ_TIMEOUT).keep_alive(true);
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
