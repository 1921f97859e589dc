//! nginx as the reference reverse proxy: the tool writes a `proxy_pass` configuration to a
//! simulated platform, tuned as an operator would tune it for this job (upstream keep-alive, no
//! access log, one worker per core), starts `nginx` on it and stops it by its PID.

use std::net::{SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};

use crate::process::Supervised;

/// How long nginx may take to accept connections.
const START_TIMEOUT: Duration = Duration::from_secs(10);
/// Where Debian and the nginx.org packages put the binary, tried after `$PATH`.
const KNOWN_PLACES: [&str; 3] = ["/usr/sbin/nginx", "/usr/local/sbin/nginx", "/usr/local/nginx/sbin/nginx"];

/// A running nginx; dropping it stops it.
pub struct Nginx {
    /// Where it listens.
    pub addr: SocketAddr,
    /// `nginx -v`, for the report.
    pub version: String,
    process: Supervised,
    _dir: tempfile::TempDir,
}

/// The nginx binary: `explicit`, else `nginx` on `$PATH`, else a usual place; `None` when there is none.
pub fn find(explicit: Option<&Path>) -> Option<PathBuf> {
    if let Some(path) = explicit {
        return Some(path.to_path_buf());
    }
    let on_path = std::env::var_os("PATH")
        .map(|paths| std::env::split_paths(&paths).map(|dir| dir.join("nginx")).collect::<Vec<_>>())
        .unwrap_or_default();
    on_path.into_iter().chain(KNOWN_PLACES.iter().map(PathBuf::from)).find(|path| path.is_file())
}

/// The configuration: `listen` proxied to `upstream` with HTTP/1.1 keep-alive on both sides.
pub fn config_text(dir: &Path, listen: SocketAddr, upstream: SocketAddr, workers: usize) -> String {
    let d = dir.display();
    format!(
        "# Written by tongban-load for one run; removed with its directory.\n\
         daemon off;\n\
         master_process on;\n\
         worker_processes {workers};\n\
         pid {d}/nginx.pid;\n\
         error_log {d}/error.log warn;\n\
         events {{\n    worker_connections 20000;\n    multi_accept on;\n}}\n\
         http {{\n\
         \x20   access_log off;\n\
         \x20   client_body_temp_path {d}/client_body;\n\
         \x20   proxy_temp_path {d}/proxy;\n\
         \x20   fastcgi_temp_path {d}/fastcgi;\n\
         \x20   uwsgi_temp_path {d}/uwsgi;\n\
         \x20   scgi_temp_path {d}/scgi;\n\
         \x20   client_body_buffer_size 1m;\n\
         \x20   client_max_body_size 16m;\n\
         \x20   keepalive_requests 1000000;\n\
         \x20   keepalive_timeout 75s;\n\
         \x20   upstream platform {{\n\
         \x20       server {upstream};\n\
         \x20       keepalive 256;\n\
         \x20       keepalive_requests 1000000;\n\
         \x20   }}\n\
         \x20   server {{\n\
         \x20       listen {listen};\n\
         \x20       location / {{\n\
         \x20           proxy_pass http://platform;\n\
         \x20           proxy_http_version 1.1;\n\
         \x20           proxy_set_header Connection \"\";\n\
         \x20       }}\n\
         \x20   }}\n\
         }}\n"
    )
}

impl Nginx {
    /// Starts `bin` proxying to `upstream` on a free loopback port; returns once it accepts connections.
    pub fn start(bin: &Path, upstream: SocketAddr, work_dir: Option<&Path>) -> anyhow::Result<Nginx> {
        let version =
            Command::new(bin).arg("-v").output().with_context(|| format!("cannot run {} -v", bin.display())).map(
                |out| String::from_utf8_lossy(&out.stderr).trim().trim_start_matches("nginx version: ").to_owned(),
            )?;
        let mut builder = tempfile::Builder::new();
        builder.prefix("tongban-load-nginx-");
        let dir = match work_dir {
            Some(parent) => builder.tempdir_in(parent),
            None => builder.tempdir(),
        }
        .context("cannot create nginx's temporary directory")?;
        // nginx cannot report a port it picked, so take a free one and hand it over.
        let listen = TcpListener::bind("127.0.0.1:0")?.local_addr()?;
        let workers = std::thread::available_parallelism().map_or(1, usize::from);
        let config = dir.path().join("nginx.conf");
        std::fs::write(&config, config_text(dir.path(), listen, upstream, workers))?;
        let mut command = Command::new(bin);
        command.arg("-p").arg(dir.path()).arg("-e").arg(dir.path().join("error.log")).arg("-c").arg(&config);
        let mut process = Supervised::spawn("nginx", command, |_| {})?;
        let started = Instant::now();
        loop {
            if std::net::TcpStream::connect_timeout(&listen, Duration::from_millis(200)).is_ok() {
                break;
            }
            if started.elapsed() > START_TIMEOUT {
                let log = std::fs::read_to_string(dir.path().join("error.log")).unwrap_or_default();
                let err = process.failed_to_start(&format!("did not listen on {listen}"));
                bail!("{err:#}\nerror.log:\n{log}");
            }
            // Before the async runtime exists: nothing else runs on this thread.
            #[allow(clippy::disallowed_methods)]
            std::thread::sleep(Duration::from_millis(50));
        }
        Ok(Nginx { addr: listen, version, process, _dir: dir })
    }

    /// Stops nginx (SIGTERM to the master, which stops its workers).
    pub fn stop(&mut self) -> anyhow::Result<()> {
        self.process.stop().map(|_| ())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_configuration_proxies_with_keep_alive_on_both_sides() {
        let text =
            config_text(Path::new("/tmp/run"), "127.0.0.1:4001".parse().unwrap(), "127.0.0.1:4002".parse().unwrap(), 2);
        for expected in [
            "daemon off;",
            "worker_processes 2;",
            "pid /tmp/run/nginx.pid;",
            "access_log off;",
            "server 127.0.0.1:4002;",
            "keepalive 256;",
            "listen 127.0.0.1:4001;",
            "proxy_pass http://platform;",
            "proxy_http_version 1.1;",
            "proxy_set_header Connection \"\";",
        ] {
            assert!(text.contains(expected), "missing {expected:?} in:\n{text}");
        }
        assert_eq!(text.matches('{').count(), text.matches('}').count());
    }

    #[test]
    fn an_explicit_binary_wins() {
        assert_eq!(find(Some(Path::new("/opt/nginx"))), Some(PathBuf::from("/opt/nginx")));
    }
}
