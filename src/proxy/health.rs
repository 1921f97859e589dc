//! Platform health (平台健康状况): a periodic TCP probe of each platform's address, shown on
//! `/readyz` and as `tongban_platform_up`. A probe only says whether the platform accepts
//! connections; business health shows in the upstream error metrics.

use std::collections::BTreeMap;
use std::sync::{Arc, RwLock};
use std::time::{Duration, SystemTime};

use serde::Serialize;
use tokio::net::TcpStream;
use tokio::sync::watch;

use super::Gateway;

/// How long one probe may take.
const PROBE_TIMEOUT: Duration = Duration::from_secs(1);

/// The last probe of one platform.
#[derive(Debug, Clone, Serialize)]
pub struct PlatformHealth {
    /// Whether it accepted a connection.
    pub up: bool,
    /// When it was probed (seconds since the Unix epoch).
    pub checked_at: u64,
    /// Why it is down.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
}

/// Last known health of every platform.
#[derive(Debug, Default)]
pub struct HealthBoard {
    platforms: RwLock<BTreeMap<String, PlatformHealth>>,
}

impl HealthBoard {
    /// A copy for `/readyz`.
    pub fn snapshot(&self) -> BTreeMap<String, PlatformHealth> {
        self.platforms.read().map(|map| map.clone()).unwrap_or_default()
    }

    fn record(&self, name: &str, health: PlatformHealth) {
        if let Ok(mut map) = self.platforms.write() {
            map.insert(name.to_owned(), health);
        }
    }

    /// Forgets platforms no longer configured.
    pub fn retain(&self, names: &[&str]) {
        if let Ok(mut map) = self.platforms.write() {
            map.retain(|name, _| names.contains(&name.as_str()));
        }
    }
}

/// Probes every platform now.
pub async fn probe_all(gateway: &Gateway) {
    let federation = gateway.federation();
    for adapter in federation.adapters.values() {
        // The origin is scheme://host[:port]; a TCP connect needs host:port.
        let authority = match adapter.origin.parse::<http::Uri>() {
            Ok(uri) => {
                let port = uri.port_u16().unwrap_or(if uri.scheme_str() == Some("https") { 443 } else { 80 });
                format!("{}:{port}", uri.host().unwrap_or_default())
            }
            Err(_) => adapter.origin.clone(),
        };
        let result = tokio::time::timeout(PROBE_TIMEOUT, TcpStream::connect(authority.as_str())).await;
        let (up, detail) = match result {
            Ok(Ok(_)) => (true, None),
            Ok(Err(err)) => (false, Some(err.to_string())),
            Err(_) => (false, Some(format!("no answer within {} s", PROBE_TIMEOUT.as_secs()))),
        };
        let checked_at = SystemTime::now().duration_since(SystemTime::UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0);
        gateway.metrics.platform_up.with_label_values(&[adapter.name.as_str()]).set(i64::from(up));
        gateway.health.record(&adapter.name, PlatformHealth { up, checked_at, detail });
    }
}

/// Probes every `interval` until shutdown.
pub async fn run(gateway: Arc<Gateway>, interval: Duration, mut shutdown: watch::Receiver<bool>) {
    loop {
        probe_all(&gateway).await;
        tokio::select! {
            _ = tokio::time::sleep(interval) => {}
            _ = shutdown.changed() => break,
        }
    }
}
