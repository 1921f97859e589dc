//! `tongban serve`: load, start the demo platforms if configured, listen, stop on a signal.

use std::path::PathBuf;
use std::process::ExitCode;

use tokio::net::TcpListener;

use crate::config::load;
use crate::mock::MockServer;

/// Serves until Ctrl-C or SIGTERM.
pub async fn run(config: PathBuf) -> ExitCode {
    let (federation, warnings) = match load(&config) {
        Ok(loaded) => loaded,
        Err(diagnostics) => {
            super::print_diagnostics(&diagnostics);
            eprintln!(
                "the configuration has errors; nothing was started (run `tongban check --config {}`)",
                config.display()
            );
            return ExitCode::FAILURE;
        }
    };
    crate::observe::logging::init(federation.observe.log_format);
    super::print_diagnostics(&warnings);
    let mut mocks = Vec::new();
    for name in &federation.demo_mocks {
        let Some(platform) = crate::mock::find(name) else { continue };
        let listen = match platform.default_listen.parse() {
            Ok(addr) => addr,
            Err(err) => {
                eprintln!("error: simulated platform {name} has a bad address: {err}");
                return ExitCode::FAILURE;
            }
        };
        match MockServer::start(platform, listen).await {
            Ok(server) => mocks.push(server),
            Err(err) => {
                eprintln!(
                    "error: cannot start simulated platform {name} on {listen}: {err} (is another tongban running?)"
                );
                return ExitCode::FAILURE;
            }
        }
    }
    let bind =
        |addr| async move { TcpListener::bind(addr).await.map_err(|err| format!("cannot listen on {addr}: {err}")) };
    let (public, admin) = match (bind(federation.server.listen).await, bind(federation.server.admin_listen).await) {
        (Ok(public), Ok(admin)) => (public, admin),
        (Err(err), _) | (_, Err(err)) => {
            eprintln!("error: {err}");
            return ExitCode::FAILURE;
        }
    };
    let adapters = federation.adapters.len();
    let running = match crate::proxy::start(federation, public, admin).await {
        Ok(running) => running,
        Err(err) => {
            eprintln!("error: {err}");
            return ExitCode::FAILURE;
        }
    };
    tracing::info!(public = %running.public, admin = %running.admin, adapters, "Gateway listening.");
    wait_for_signal(&running.gateway).await;
    tracing::info!("Shutting down: finishing open requests.");
    running.shutdown().await;
    for mock in mocks {
        mock.shutdown().await;
    }
    ExitCode::SUCCESS
}

/// Waits for Ctrl-C or SIGTERM; reloads the configuration on every SIGHUP meanwhile.
async fn wait_for_signal(gateway: &crate::proxy::Gateway) {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        let (Ok(mut terminate), Ok(mut hangup)) = (signal(SignalKind::terminate()), signal(SignalKind::hangup()))
        else {
            let _ = tokio::signal::ctrl_c().await;
            return;
        };
        loop {
            tokio::select! {
                _ = tokio::signal::ctrl_c() => break,
                _ = terminate.recv() => break,
                _ = hangup.recv() => {
                    // Errors are logged and counted by reload; the old configuration keeps serving.
                    let _ = gateway.reload("SIGHUP").await;
                }
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = gateway;
        let _ = tokio::signal::ctrl_c().await;
    }
}
