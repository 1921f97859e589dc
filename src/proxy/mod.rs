//! The proxy (代理): listeners, the request pipeline and the upstream client.

pub mod admin;
pub mod body;
pub mod context;
pub mod decode;
pub mod forward;
pub mod pipeline;
pub mod respond;
pub mod route;
pub mod server;
pub mod upstream;

use std::net::SocketAddr;
use std::sync::Arc;

use arc_swap::ArcSwap;
use tokio::net::TcpListener;
use tokio::sync::watch;

use self::upstream::Upstream;
use crate::config::Federation;

/// A running gateway's shared state: the current federation (swappable whole, for reload) and the
/// pooled upstream client.
pub struct Gateway {
    federation: ArcSwap<Federation>,
    /// The upstream client.
    pub upstream: Upstream,
}

impl Gateway {
    /// A gateway for a compiled federation.
    pub fn new(federation: Federation) -> Gateway {
        let upstream = Upstream::new(federation.upstream.clone());
        Gateway { federation: ArcSwap::from_pointee(federation), upstream }
    }

    /// The federation in force; a request keeps the one it started with.
    pub fn federation(&self) -> Arc<Federation> {
        self.federation.load_full()
    }

    /// Replaces the federation atomically.
    pub fn replace(&self, federation: Federation) {
        self.federation.store(Arc::new(federation));
    }
}

/// A started gateway: its addresses and a handle to stop it.
pub struct Running {
    /// Public listener address.
    pub public: SocketAddr,
    /// Admin listener address.
    pub admin: SocketAddr,
    /// The shared state.
    pub gateway: Arc<Gateway>,
    shutdown: watch::Sender<bool>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

impl Running {
    /// Stops accepting, lets open requests finish, and waits for the listeners to end.
    pub async fn shutdown(self) {
        let _ = self.shutdown.send(true);
        for task in self.tasks {
            let _ = task.await;
        }
    }
}

/// Binds both listeners and serves until [`Running::shutdown`].
pub async fn start(federation: Federation, public: TcpListener, admin: TcpListener) -> std::io::Result<Running> {
    let gateway = Arc::new(Gateway::new(federation));
    let (shutdown, watcher) = watch::channel(false);
    let public_addr = public.local_addr()?;
    let admin_addr = admin.local_addr()?;
    let for_public = gateway.clone();
    let public_task = tokio::spawn(server::serve(
        public,
        move |request| pipeline::handle(for_public.clone(), request),
        watcher.clone(),
    ));
    let for_admin = gateway.clone();
    let admin_task =
        tokio::spawn(server::serve(admin, move |request| admin::handle(for_admin.clone(), request), watcher));
    Ok(Running { public: public_addr, admin: admin_addr, gateway, shutdown, tasks: vec![public_task, admin_task] })
}
