//! The upstream client (上游客户端): pooled keep-alive HTTP/1.1 connections to platforms, with
//! connect and request timeouts and an answer size limit.

use std::collections::HashMap;
use std::sync::RwLock;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full, Limited};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::{TokioExecutor, TokioTimer};

use std::sync::Arc;

use crate::adapter::Adapter;
use crate::config::load::UpstreamSettings;
use crate::problem::GatewayError;
use crate::tls::ClientTlsFiles;

type HttpClient = Client<HttpConnector, Full<Bytes>>;
type HttpsClient = Client<crate::tls::HttpsConnector, Full<Bytes>>;

/// A pooled client: plain HTTP, or TLS with one platform's pinned roots.
#[derive(Clone)]
enum Pooled {
    Plain(HttpClient),
    Tls(HttpsClient),
}

impl Pooled {
    fn request(&self, request: http::Request<Full<Bytes>>) -> hyper_util::client::legacy::ResponseFuture {
        match self {
            Pooled::Plain(client) => client.request(request),
            Pooled::Tls(client) => client.request(request),
        }
    }
}

/// A platform's answer.
#[derive(Debug)]
pub struct Answer {
    /// HTTP status.
    pub status: http::StatusCode,
    /// Headers.
    pub headers: http::HeaderMap,
    /// Body.
    pub body: Bytes,
}

/// A platform's TLS client with the settings it was built from.
type TlsClient = (Arc<ClientTlsFiles>, Duration, HttpsClient);

/// Pooled clients, one per connect timeout (pools are per host inside each), and one per
/// TLS platform (its roots and client certificate are its own).
pub struct Upstream {
    settings: UpstreamSettings,
    clients: RwLock<HashMap<Duration, HttpClient>>,
    tls_clients: RwLock<HashMap<String, TlsClient>>,
}

impl Upstream {
    /// A client with the given pool settings.
    pub fn new(settings: UpstreamSettings) -> Upstream {
        Upstream { settings, clients: RwLock::new(HashMap::new()), tls_clients: RwLock::new(HashMap::new()) }
    }

    /// Forgets TLS clients, so renewed certificate files are read again (on reload).
    pub fn forget_tls_clients(&self) {
        if let Ok(mut clients) = self.tls_clients.write() {
            clients.clear();
        }
    }

    /// The client for one platform: its own TLS client, or the shared plain one.
    async fn pooled(&self, adapter: &Adapter) -> Result<Pooled, GatewayError> {
        let Some(files) = &adapter.tls else { return Ok(Pooled::Plain(self.client(adapter.connect_timeout))) };
        if let Ok(clients) = self.tls_clients.read()
            && let Some((known, timeout, client)) = clients.get(&adapter.name)
            && known == files
            && *timeout == adapter.connect_timeout
        {
            return Ok(Pooled::Tls(client.clone()));
        }
        // Read the PEM files on a blocking thread: the first call after a start or a reload.
        let (owned, timeout) = (files.clone(), adapter.connect_timeout);
        let built = tokio::task::spawn_blocking(move || crate::tls::platform_connector(&owned, timeout)).await;
        let connector = match built {
            Ok(result) => result.map_err(|error| error.to_string()),
            Err(error) => Err(format!("the TLS loading task failed: {error}")),
        };
        let connector = connector.map_err(|error| {
            // The cause names local files: it goes to the operator's log, not to the caller.
            tracing::error!(platform = %adapter.name, error = %error, "TLS to the platform cannot be set up.");
            GatewayError::UpstreamUnreachable {
                adapter: adapter.name.clone(),
                detail: "TLS to this platform cannot be set up (the gateway's log has the cause)".into(),
            }
        })?;
        let client = Client::builder(TokioExecutor::new())
            .pool_idle_timeout(self.settings.pool_idle_timeout)
            .pool_max_idle_per_host(self.settings.pool_max_idle_per_host)
            .pool_timer(TokioTimer::new())
            .build(connector);
        if let Ok(mut clients) = self.tls_clients.write() {
            clients.insert(adapter.name.clone(), (files.clone(), adapter.connect_timeout, client.clone()));
        }
        Ok(Pooled::Tls(client))
    }

    fn client(&self, connect_timeout: Duration) -> HttpClient {
        if let Ok(clients) = self.clients.read()
            && let Some(client) = clients.get(&connect_timeout)
        {
            return client.clone();
        }
        let mut connector = HttpConnector::new();
        connector.set_connect_timeout(Some(connect_timeout));
        connector.set_nodelay(true);
        let client = Client::builder(TokioExecutor::new())
            .pool_idle_timeout(self.settings.pool_idle_timeout)
            .pool_max_idle_per_host(self.settings.pool_max_idle_per_host)
            .pool_timer(TokioTimer::new())
            .build(connector);
        if let Ok(mut clients) = self.clients.write() {
            clients.entry(connect_timeout).or_insert_with(|| client.clone());
        }
        client
    }

    /// Sends a request to a platform and reads the whole answer within the adapter's timeout.
    pub async fn send(&self, adapter: &Adapter, request: http::Request<Full<Bytes>>) -> Result<Answer, GatewayError> {
        let client = self.pooled(adapter).await?;
        let limit = self.settings.response_limit;
        let exchange = async {
            let response = client.request(request).await.map_err(|err| GatewayError::UpstreamUnreachable {
                adapter: adapter.name.clone(),
                detail: describe_client_error(&err),
            })?;
            let (parts, body) = response.into_parts();
            let body = Limited::new(body, limit).collect().await.map_err(|err| {
                if err.is::<http_body_util::LengthLimitError>() {
                    GatewayError::UpstreamBadAnswer {
                        adapter: adapter.name.clone(),
                        detail: format!("the answer is larger than {limit} bytes (upstream.response_limit_bytes)"),
                        status: parts.status.as_u16(),
                    }
                } else {
                    GatewayError::UpstreamUnreachable {
                        adapter: adapter.name.clone(),
                        detail: format!("the answer was cut off: {err}"),
                    }
                }
            })?;
            Ok(Answer { status: parts.status, headers: parts.headers, body: body.to_bytes() })
        };
        match tokio::time::timeout(adapter.request_timeout, exchange).await {
            Ok(result) => result,
            Err(_) => {
                Err(GatewayError::UpstreamTimeout { adapter: adapter.name.clone(), after: adapter.request_timeout })
            }
        }
    }
}

/// The client's error chain as one sentence (its Display alone says little).
fn describe_client_error(err: &hyper_util::client::legacy::Error) -> String {
    let mut text = if err.is_connect() { "connection failed".to_owned() } else { "the connection failed".to_owned() };
    let mut source = std::error::Error::source(err);
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}
