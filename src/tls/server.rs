//! The public listener's TLS (监听端传输安全): certificate, key and, for mutual TLS, the CA that
//! signs partner certificates. The acceptor reloads from disk without a restart: new handshakes
//! use the new files, open connections keep the session they have.

use std::path::PathBuf;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use arc_swap::ArcSwap;
use rustls::ServerConfig;
use rustls::server::WebPkiClientVerifier;
use tokio::net::TcpStream;

use super::{PROTOCOL_VERSIONS, TlsError, crypto_provider, read_crls, read_identity, read_roots};

/// A client gets this long to complete the TLS handshake.
pub const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// Whether partners must present a client certificate (双向认证).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClientAuth {
    /// Mutual TLS: no valid client certificate, no handshake.
    Required,
    /// A client certificate is asked for and checked if sent; callers without one still connect
    /// (and identify some other way, e.g. an API key).
    Optional,
    /// No client certificate is asked for.
    Off,
}

/// The files behind the listener's TLS.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServerTlsFiles {
    /// The gateway's certificate chain (PEM, leaf first).
    pub cert: PathBuf,
    /// The gateway's private key (PEM).
    pub key: PathBuf,
    /// The CA certificate(s) partner certificates must chain to (PEM); needed unless `client_auth` is `Off`.
    pub client_ca: Option<PathBuf>,
    /// Whether client certificates are required, optional or not asked for.
    pub client_auth: ClientAuth,
    /// Revocation lists (CRL, PEM) of the CAs in `client_ca`: a revoked partner certificate, or
    /// one whose CA has no list here, fails the handshake. Empty: revocation is not checked.
    pub client_crl: Vec<PathBuf>,
}

/// Builds the listener's TLS configuration from its files: TLS 1.2/1.3, the pinned suites,
/// ALPN "http/1.1", and client certificates checked against `client_ca` and, when given, the
/// revocation lists in `client_crl`.
pub fn server_config(files: &ServerTlsFiles) -> Result<Arc<ServerConfig>, TlsError> {
    let provider = crypto_provider();
    let verifier = match (files.client_auth, &files.client_ca) {
        (ClientAuth::Off, _) => WebPkiClientVerifier::no_client_auth(),
        (ClientAuth::Required, None) => return Err(TlsError::ClientCaMissing { mode: "required" }),
        (ClientAuth::Optional, None) => return Err(TlsError::ClientCaMissing { mode: "optional" }),
        (mode, Some(ca)) => {
            let roots = Arc::new(read_roots(ca, "client_ca")?);
            let builder = WebPkiClientVerifier::builder_with_provider(roots, provider.clone());
            let builder = if mode == ClientAuth::Optional { builder.allow_unauthenticated() } else { builder };
            let crls = read_crls(&files.client_crl)?;
            // Partner certificates come straight from the CA: the leaf's status is what matters.
            // A leaf whose CA has no list here is refused (unknown status fails closed).
            let builder =
                if crls.is_empty() { builder } else { builder.with_crls(crls).only_check_end_entity_revocation() };
            builder.build().map_err(|err| TlsError::BadCa {
                role: "client_ca",
                path: ca.clone(),
                detail: err.to_string(),
            })?
        }
    };
    let identity = read_identity(&files.cert, &files.key)?;
    let mut config = ServerConfig::builder_with_provider(provider)
        .with_protocol_versions(PROTOCOL_VERSIONS)?
        .with_client_cert_verifier(verifier)
        .with_cert_resolver(identity);
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    // The server picks the suite from its own order (strongest first), whatever the client prefers.
    config.ignore_client_order = true;
    Ok(Arc::new(config))
}

/// Accepts TLS connections with a configuration that can be swapped while serving.
pub struct TlsAcceptor {
    // Held during a reload so two reloads cannot interleave their read and their swap.
    files: Mutex<ServerTlsFiles>,
    config: ArcSwap<ServerConfig>,
}

impl std::fmt::Debug for TlsAcceptor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TlsAcceptor").field("files", &self.files).finish_non_exhaustive()
    }
}

impl TlsAcceptor {
    /// Loads the files; fails (naming the file) if any is missing or wrong.
    pub fn new(files: ServerTlsFiles) -> Result<TlsAcceptor, TlsError> {
        let config = server_config(&files)?;
        Ok(TlsAcceptor { files: Mutex::new(files), config: ArcSwap::new(config) })
    }

    /// Re-reads the same files. On error the old configuration keeps serving.
    pub fn reload(&self) -> Result<(), TlsError> {
        let files = self.files.lock().unwrap_or_else(PoisonError::into_inner);
        let config = server_config(&files)?;
        self.config.store(config);
        tracing::info!(cert = %files.cert.display(), "TLS certificate reloaded.");
        Ok(())
    }

    /// Switches to other files (a changed configuration) and the configuration already built
    /// from them with [`server_config`] — off the async runtime, since it reads the files.
    pub fn install(&self, files: ServerTlsFiles, config: Arc<ServerConfig>) {
        let mut current = self.files.lock().unwrap_or_else(PoisonError::into_inner);
        self.config.store(config);
        tracing::info!(cert = %files.cert.display(), "TLS configuration switched.");
        *current = files;
    }

    /// The configuration new handshakes use now.
    pub fn config(&self) -> Arc<ServerConfig> {
        self.config.load_full()
    }

    /// Runs the server side of the handshake on an accepted connection with the current
    /// configuration, within [`HANDSHAKE_TIMEOUT`].
    pub async fn accept(&self, stream: TcpStream) -> std::io::Result<tokio_rustls::server::TlsStream<TcpStream>> {
        let handshake = tokio_rustls::TlsAcceptor::from(self.config.load_full()).accept(stream);
        // The HTTP header timeout only starts after the handshake; a client stalling here would
        // otherwise hold a connection slot for ever.
        match tokio::time::timeout(HANDSHAKE_TIMEOUT, handshake).await {
            Ok(result) => result,
            Err(_) => Err(std::io::Error::new(std::io::ErrorKind::TimedOut, "the TLS handshake took too long")),
        }
    }

    /// The files to watch for changes: certificate, key, client CA and revocation lists.
    pub fn watched_paths(&self) -> Vec<PathBuf> {
        let files = self.files.lock().unwrap_or_else(PoisonError::into_inner);
        let mut paths = vec![files.cert.clone(), files.key.clone()];
        paths.extend(files.client_ca.clone());
        paths.extend(files.client_crl.iter().cloned());
        paths
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use std::sync::Arc;

    use rustls::ClientConfig;

    use super::super::client::{ClientTlsFiles, client_config};
    use super::super::testing::{PARTNER, gateway_files, get, handshake, pki, serve_one};
    use super::*;

    fn partner_client(dir: &std::path::Path, ca_dir: &std::path::Path) -> Arc<ClientConfig> {
        client_config(&ClientTlsFiles {
            ca: ca_dir.join("ca.pem"),
            client_cert: Some(dir.join(format!("partner-{PARTNER}.pem"))),
            client_key: Some(dir.join(format!("partner-{PARTNER}.key"))),
            server_name: None,
        })
        .unwrap()
    }

    fn anonymous_client(ca_dir: &std::path::Path) -> Arc<ClientConfig> {
        client_config(&ClientTlsFiles {
            ca: ca_dir.join("ca.pem"),
            client_cert: None,
            client_key: None,
            server_name: None,
        })
        .unwrap()
    }

    /// A client config trusting `ca_dir`'s CA, offering only `version`.
    fn client_with_version(
        dir: &std::path::Path,
        version: &'static rustls::SupportedProtocolVersion,
    ) -> Arc<ClientConfig> {
        let mut roots = rustls::RootCertStore::empty();
        roots.add(super::super::read_certs(&dir.join("ca.pem")).unwrap().remove(0)).unwrap();
        let chain = super::super::read_certs(&dir.join(format!("partner-{PARTNER}.pem"))).unwrap();
        let key = super::super::read_key(&dir.join(format!("partner-{PARTNER}.key"))).unwrap();
        let config = ClientConfig::builder_with_provider(crypto_provider())
            .with_protocol_versions(&[version])
            .unwrap()
            .with_root_certificates(roots)
            .with_client_auth_cert(chain, key)
            .unwrap();
        Arc::new(config)
    }

    #[tokio::test]
    async fn mutual_tls_handshake_identifies_the_partner_and_serves_http() {
        let dir = tempfile::tempdir().unwrap();
        pki(dir.path());
        let acceptor = Arc::new(TlsAcceptor::new(gateway_files(dir.path(), ClientAuth::Required)).unwrap());
        let (address, server) = serve_one(acceptor).await;
        let tls = handshake(address, partner_client(dir.path(), dir.path()), server).await.unwrap();
        assert_eq!(tls.get_ref().1.alpn_protocol(), Some(&b"http/1.1"[..]));

        // The server answers with the names it read from the verified client certificate.
        assert_eq!(get(tls).await, (200, format!("{PARTNER}.partner.tongban.test,{PARTNER}")));
    }

    #[tokio::test]
    async fn required_client_auth_refuses_a_client_without_a_certificate() {
        let dir = tempfile::tempdir().unwrap();
        pki(dir.path());
        let acceptor = Arc::new(TlsAcceptor::new(gateway_files(dir.path(), ClientAuth::Required)).unwrap());
        let (address, server) = serve_one(acceptor).await;
        let err = handshake(address, anonymous_client(dir.path()), server).await.unwrap_err();
        assert!(err.contains("no certificates"), "{err}");
    }

    #[tokio::test]
    async fn optional_client_auth_admits_a_client_without_a_certificate() {
        let dir = tempfile::tempdir().unwrap();
        pki(dir.path());
        let acceptor = Arc::new(TlsAcceptor::new(gateway_files(dir.path(), ClientAuth::Optional)).unwrap());
        let (address, server) = serve_one(acceptor).await;
        let tls = handshake(address, anonymous_client(dir.path()), server).await.unwrap();
        assert_eq!(get(tls).await, (200, "anonymous".to_owned()));
    }

    #[tokio::test]
    async fn a_client_certificate_from_another_ca_is_refused() {
        let (ours, theirs) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
        pki(ours.path());
        pki(theirs.path());
        let acceptor = Arc::new(TlsAcceptor::new(gateway_files(ours.path(), ClientAuth::Required)).unwrap());
        let (address, server) = serve_one(acceptor).await;
        // Trusts our server, but presents a partner certificate issued by the other CA.
        let err = handshake(address, partner_client(theirs.path(), ours.path()), server).await.unwrap_err();
        assert!(err.contains("invalid peer certificate: UnknownIssuer"), "{err}");
    }

    // TLS 1.0 and 1.1 cannot be tested here: rustls implements neither, so no client can offer them.
    #[tokio::test]
    async fn tls12_only_and_tls13_only_clients_connect() {
        let dir = tempfile::tempdir().unwrap();
        pki(dir.path());
        let acceptor = Arc::new(TlsAcceptor::new(gateway_files(dir.path(), ClientAuth::Required)).unwrap());
        for version in [&rustls::version::TLS12, &rustls::version::TLS13] {
            let (address, server) = serve_one(acceptor.clone()).await;
            let tls = handshake(address, client_with_version(dir.path(), version), server).await.unwrap();
            assert_eq!(tls.get_ref().1.protocol_version(), Some(version.version));
        }
    }

    #[tokio::test]
    async fn reload_switches_certificates_and_keeps_the_old_config_on_error() {
        let (a, b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
        pki(a.path());
        pki(b.path());
        let acceptor = Arc::new(TlsAcceptor::new(gateway_files(a.path(), ClientAuth::Off)).unwrap());
        let (address, server) = serve_one(acceptor.clone()).await;
        handshake(address, anonymous_client(a.path()), server).await.unwrap();

        // A new gateway certificate from CA B lands on the same paths.
        for name in ["gateway.pem", "gateway.key"] {
            std::fs::copy(b.path().join(name), a.path().join(name)).unwrap();
        }
        acceptor.reload().unwrap();
        let (address, server) = serve_one(acceptor.clone()).await;
        handshake(address, anonymous_client(b.path()), server).await.unwrap();
        let (address, server) = serve_one(acceptor.clone()).await;
        let err = handshake(address, anonymous_client(a.path()), server).await.unwrap_err();
        assert!(err.contains("invalid peer certificate: UnknownIssuer"), "{err}");

        // A broken key: the reload fails, naming the file, and B's certificate keeps serving.
        std::fs::write(a.path().join("gateway.key"), "not a key\n").unwrap();
        let err = acceptor.reload().unwrap_err().to_string();
        assert!(err.contains("gateway.key: no private key found"), "{err}");
        let (address, server) = serve_one(acceptor.clone()).await;
        handshake(address, anonymous_client(b.path()), server).await.unwrap();
    }

    #[test]
    fn watched_paths_follow_the_installed_files() {
        let (a, b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
        pki(a.path());
        pki(b.path());
        let acceptor = TlsAcceptor::new(gateway_files(a.path(), ClientAuth::Required)).unwrap();
        assert_eq!(acceptor.watched_paths().len(), 3);
        let broken = ServerTlsFiles { client_ca: None, ..gateway_files(b.path(), ClientAuth::Required) };
        assert!(server_config(&broken).unwrap_err().to_string().contains("no client_ca is set"));
        assert!(acceptor.watched_paths()[0].starts_with(a.path()));
        let files = gateway_files(b.path(), ClientAuth::Off);
        acceptor.install(files.clone(), server_config(&files).unwrap());
        assert_eq!(
            acceptor.watched_paths(),
            vec![b.path().join("gateway.pem"), b.path().join("gateway.key"), b.path().join("ca.pem")]
        );
    }

    #[test]
    fn errors_name_the_file() {
        let dir = tempfile::tempdir().unwrap();
        pki(dir.path());
        let files = gateway_files(dir.path(), ClientAuth::Required);

        let missing = ServerTlsFiles { cert: dir.path().join("nowhere.pem"), ..files.clone() };
        let err = server_config(&missing).unwrap_err().to_string();
        assert!(err.contains("nowhere.pem: cannot read the file"), "{err}");

        // The platform's key with the gateway's certificate.
        let mismatch = ServerTlsFiles { key: dir.path().join("gateway-client.key"), ..files.clone() };
        let err = server_config(&mismatch).unwrap_err().to_string();
        assert!(err.contains("gateway.pem: the certificate does not match the private key in"), "{err}");
        assert!(err.contains("gateway-client.key"), "{err}");

        std::fs::write(dir.path().join("empty-ca.pem"), "").unwrap();
        let empty = ServerTlsFiles { client_ca: Some(dir.path().join("empty-ca.pem")), ..files.clone() };
        let err = server_config(&empty).unwrap_err().to_string();
        assert!(err.contains("client_ca") && err.contains("empty-ca.pem holds no certificate"), "{err}");

        // A key where the certificate should be.
        let swapped = ServerTlsFiles { cert: dir.path().join("gateway.key"), ..files };
        let err = server_config(&swapped).unwrap_err().to_string();
        assert!(err.contains("gateway.key: no certificate found"), "{err}");
    }
}
