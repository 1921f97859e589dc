//! `tongban mock`: simulated provincial platforms, standalone.

use std::net::SocketAddr;
use std::process::ExitCode;

use crate::mock::{MockServer, demo_platforms, find};

/// Runs the chosen platforms until Ctrl-C.
pub async fn run(names: Vec<String>, listen: Option<SocketAddr>, list: bool) -> ExitCode {
    if list {
        for platform in demo_platforms() {
            println!(
                "{:<10} {:<6} {:<14} {:<22} {}",
                platform.name,
                platform.region,
                platform.style.as_str(),
                platform.default_listen,
                platform.title
            );
        }
        return ExitCode::SUCCESS;
    }
    let platforms: Vec<_> = if names.is_empty() {
        demo_platforms().iter().collect()
    } else {
        let mut chosen = Vec::new();
        for name in &names {
            match find(name) {
                Some(platform) => chosen.push(platform),
                None => {
                    eprintln!("error: no simulated platform named '{name}' (see tongban mock --list)");
                    return ExitCode::FAILURE;
                }
            }
        }
        chosen
    };
    if listen.is_some() && platforms.len() != 1 {
        eprintln!("error: --listen needs exactly one --adapter");
        return ExitCode::FAILURE;
    }
    let mut servers = Vec::new();
    for platform in platforms {
        let address = match listen.map(Ok).unwrap_or_else(|| platform.default_listen.parse()) {
            Ok(address) => address,
            Err(err) => {
                eprintln!("error: bad address for {}: {err}", platform.name);
                return ExitCode::FAILURE;
            }
        };
        match MockServer::start(platform, address).await {
            Ok(server) => {
                println!("{} ({}) listening on http://{}", platform.name, platform.title, server.local_addr());
                servers.push(server);
            }
            Err(err) => {
                eprintln!("error: cannot start {} on {address}: {err}", platform.name);
                return ExitCode::FAILURE;
            }
        }
    }
    let _ = tokio::signal::ctrl_c().await;
    for server in servers {
        server.shutdown().await;
    }
    ExitCode::SUCCESS
}
