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

use crate::adapter::Adapter;
use crate::config::load::UpstreamSettings;
use crate::problem::GatewayError;

type HttpClient = Client<HttpConnector, Full<Bytes>>;

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

/// Pooled clients, one per connect timeout (pools are per host inside each).
pub struct Upstream {
    settings: UpstreamSettings,
    clients: RwLock<HashMap<Duration, HttpClient>>,
}

impl Upstream {
    /// A client with the given pool settings.
    pub fn new(settings: UpstreamSettings) -> Upstream {
        Upstream { settings, clients: RwLock::new(HashMap::new()) }
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
        let client = self.client(adapter.connect_timeout);
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
