//! Transport security (传输安全): TLS for the public listener (with mutual TLS for partners),
//! pinned-root TLS towards each platform, the peer's identity from its certificate, and a demo
//! PKI for `tongban certs init`.
//!
//! Every config uses the *ring* provider with TLS 1.2 and 1.3 only and a pinned list of AEAD
//! cipher suites; see [`crypto_provider`].

pub mod client;
pub mod generate;
pub mod peer;
pub mod server;

use std::path::{Path, PathBuf};
use std::sync::{Arc, LazyLock};

use rustls::crypto::CryptoProvider;
use rustls::crypto::ring::cipher_suite;
use rustls::sign::{CertifiedKey, SingleCertAndKey};
use rustls::{InconsistentKeys, RootCertStore, SupportedProtocolVersion};
use rustls_pki_types::pem::{self, PemObject};
use rustls_pki_types::{CertificateDer, CertificateRevocationListDer, PrivateKeyDer};

pub use client::{ClientTlsFiles, HttpsConnector, client_config, https_connector, platform_connector};
pub use generate::{DemoPki, generate_demo_pki, revoke_demo_partners};
pub use peer::{PeerIdentity, peer_identity, peer_of};
pub use server::{ClientAuth, ServerTlsFiles, TlsAcceptor, server_config};

/// The protocol versions offered and accepted: TLS 1.3 and 1.2, nothing older.
pub static PROTOCOL_VERSIONS: &[&SupportedProtocolVersion] = &[&rustls::version::TLS13, &rustls::version::TLS12];

/// What went wrong setting up TLS; every message names the file and, where there is one, the fix.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    /// A file could not be read.
    #[error("{}: cannot read the file: {source} (check the path and the file's permissions)", path.display())]
    Read {
        /// The file.
        path: PathBuf,
        /// The cause.
        source: std::io::Error,
    },
    /// A file is not valid PEM.
    #[error("{}: not valid PEM: {detail}", path.display())]
    Pem {
        /// The file.
        path: PathBuf,
        /// The parser's complaint.
        detail: String,
    },
    /// A certificate file holds no certificate.
    #[error("{}: no certificate found (PEM 'CERTIFICATE' expected)", path.display())]
    NoCertificate {
        /// The file.
        path: PathBuf,
    },
    /// A certificate file holds something that is not a usable certificate.
    #[error("{}: the certificate cannot be parsed: {detail}", path.display())]
    BadCertificate {
        /// The file.
        path: PathBuf,
        /// The parser's complaint.
        detail: String,
    },
    /// A key file holds no private key.
    #[error(
        "{}: no private key found (PEM 'PRIVATE KEY', 'RSA PRIVATE KEY' or 'EC PRIVATE KEY' expected)",
        path.display()
    )]
    NoPrivateKey {
        /// The file.
        path: PathBuf,
    },
    /// A private key was found but cannot be used.
    #[error("{}: the private key cannot be used: {detail} (RSA, ECDSA P-256/P-384 or Ed25519 expected)", path.display())]
    BadPrivateKey {
        /// The file.
        path: PathBuf,
        /// Why.
        detail: String,
    },
    /// The certificate and the private key are not a pair.
    #[error(
        "{}: the certificate does not match the private key in {} (point both at the same pair, or regenerate them)",
        cert.display(), key.display()
    )]
    KeyMismatch {
        /// The certificate file.
        cert: PathBuf,
        /// The key file.
        key: PathBuf,
    },
    /// A client certificate was given without its key, or the other way round.
    #[error("client_cert and client_key must be given together (only {given} is set)")]
    HalfClientIdentity {
        /// Which of the two was set.
        given: &'static str,
    },
    /// A CA file holds no certificate.
    #[error("{role} {} holds no certificate (PEM 'CERTIFICATE' expected)", path.display())]
    EmptyCa {
        /// Which setting pointed at it, e.g. "client_ca".
        role: &'static str,
        /// The file.
        path: PathBuf,
    },
    /// A CRL file holds no revocation list.
    #[error("client_crl {}: no revocation list found (PEM 'X509 CRL' expected)", path.display())]
    NoCrl {
        /// The file.
        path: PathBuf,
    },
    /// A revocation list cannot be parsed.
    #[error("client_crl {}: the revocation list cannot be parsed: {detail}", path.display())]
    BadCrl {
        /// The file.
        path: PathBuf,
        /// The parser's complaint.
        detail: String,
    },
    /// A CA certificate cannot serve as a trust anchor.
    #[error("{role} {}: a certificate cannot be used as a trust anchor: {detail}", path.display())]
    BadCa {
        /// Which setting pointed at it.
        role: &'static str,
        /// The file.
        path: PathBuf,
        /// Why.
        detail: String,
    },
    /// Client certificates are asked for but no CA to check them is configured.
    #[error(
        "client_auth is {mode} but no client_ca is set (set client_ca to the CA that signs partner certificates, or client_auth = \"off\")"
    )]
    ClientCaMissing {
        /// "required" or "optional".
        mode: &'static str,
    },
    /// The configured server name is neither a DNS name nor an IP address.
    #[error("server_name {name:?} is not a valid DNS name or IP address")]
    BadServerName {
        /// The configured value.
        name: String,
    },
    /// A name given to the demo PKI cannot be used in a file name and a DNS name.
    #[error("{what} {name:?} may only hold letters, digits, '-' and '.'")]
    BadName {
        /// "partner" or "platform host".
        what: &'static str,
        /// The name.
        name: String,
    },
    /// A demo PKI file exists already.
    #[error("{} already exists; pass --force to overwrite the demo PKI", path.display())]
    Exists {
        /// The first existing file.
        path: PathBuf,
    },
    /// A file could not be written.
    #[error("{}: cannot write: {source}", path.display())]
    Write {
        /// The file.
        path: PathBuf,
        /// The cause.
        source: std::io::Error,
    },
    /// Generating a demo certificate failed.
    #[error("generating {what} failed: {detail}")]
    Generate {
        /// What was being generated.
        what: String,
        /// rcgen's complaint.
        detail: String,
    },
    /// A peer certificate cannot be parsed.
    #[error("the peer certificate cannot be parsed: {detail}")]
    BadPeerCertificate {
        /// The parser's complaint.
        detail: String,
    },
    /// rustls refused a configuration (should not happen with the pinned versions and suites).
    #[error("TLS configuration: {0}")]
    Rustls(#[from] rustls::Error),
}

/// The *ring* provider with the cipher suites pinned: TLS 1.3 suites, and for TLS 1.2 only ECDHE
/// with AES-GCM or ChaCha20-Poly1305. ring's default has nothing weaker today; the explicit
/// list keeps a future default from widening it.
pub fn crypto_provider() -> Arc<CryptoProvider> {
    static PROVIDER: LazyLock<Arc<CryptoProvider>> = LazyLock::new(|| {
        Arc::new(CryptoProvider {
            cipher_suites: vec![
                cipher_suite::TLS13_AES_256_GCM_SHA384,
                cipher_suite::TLS13_AES_128_GCM_SHA256,
                cipher_suite::TLS13_CHACHA20_POLY1305_SHA256,
                cipher_suite::TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384,
                cipher_suite::TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256,
                cipher_suite::TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256,
                cipher_suite::TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384,
                cipher_suite::TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256,
                cipher_suite::TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256,
            ],
            ..rustls::crypto::ring::default_provider()
        })
    });
    PROVIDER.clone()
}

/// Reads a whole file, naming it in the error.
fn read(path: &Path) -> Result<Vec<u8>, TlsError> {
    std::fs::read(path).map_err(|source| TlsError::Read { path: path.to_owned(), source })
}

fn pem_error(path: &Path, err: pem::Error) -> TlsError {
    TlsError::Pem { path: path.to_owned(), detail: err.to_string() }
}

/// Every certificate in a PEM file, in order (leaf first for a chain); at least one.
fn read_certs(path: &Path) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let certs = CertificateDer::pem_slice_iter(&read(path)?)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|err| pem_error(path, err))?;
    if certs.is_empty() {
        return Err(TlsError::NoCertificate { path: path.to_owned() });
    }
    Ok(certs)
}

/// The first private key in a PEM file (PKCS#8, PKCS#1 or SEC1).
fn read_key(path: &Path) -> Result<PrivateKeyDer<'static>, TlsError> {
    match PrivateKeyDer::from_pem_slice(&read(path)?) {
        Ok(key) => Ok(key),
        Err(pem::Error::NoItemsFound) => Err(TlsError::NoPrivateKey { path: path.to_owned() }),
        Err(err) => Err(pem_error(path, err)),
    }
}

/// Loads a certificate chain and its key, checking that they belong together (here rather than
/// in rustls so the message can name both files).
fn read_identity(cert: &Path, key: &Path) -> Result<Arc<SingleCertAndKey>, TlsError> {
    let chain = read_certs(cert)?;
    let signing_key = crypto_provider()
        .key_provider
        .load_private_key(read_key(key)?)
        .map_err(|err| TlsError::BadPrivateKey { path: key.to_owned(), detail: err.to_string() })?;
    let certified = CertifiedKey::new(chain, signing_key);
    match certified.keys_match() {
        // Unknown: the key cannot tell its public half; rustls accepts that too.
        Ok(()) | Err(rustls::Error::InconsistentKeys(InconsistentKeys::Unknown)) => {
            Ok(Arc::new(SingleCertAndKey::from(certified)))
        }
        Err(rustls::Error::InconsistentKeys(InconsistentKeys::KeyMismatch)) => {
            Err(TlsError::KeyMismatch { cert: cert.to_owned(), key: key.to_owned() })
        }
        Err(err) => Err(TlsError::BadCertificate { path: cert.to_owned(), detail: err.to_string() }),
    }
}

/// Every certificate revocation list (CRL) in the PEM files, each parsed on its own so that an
/// error names its file; at least one per file.
fn read_crls(paths: &[PathBuf]) -> Result<Vec<CertificateRevocationListDer<'static>>, TlsError> {
    let mut crls = Vec::new();
    for path in paths {
        let found = CertificateRevocationListDer::pem_slice_iter(&read(path)?)
            .collect::<Result<Vec<_>, _>>()
            .map_err(|err| pem_error(path, err))?;
        if found.is_empty() {
            return Err(TlsError::NoCrl { path: path.to_owned() });
        }
        for crl in &found {
            webpki::BorrowedCertRevocationList::from_der(crl)
                .map_err(|err| TlsError::BadCrl { path: path.to_owned(), detail: err.to_string() })?;
        }
        crls.extend(found);
    }
    Ok(crls)
}

/// A root store holding every certificate of a CA file; `role` names the setting in errors.
fn read_roots(path: &Path, role: &'static str) -> Result<RootCertStore, TlsError> {
    let certs = match read_certs(path) {
        Err(TlsError::NoCertificate { path }) => return Err(TlsError::EmptyCa { role, path }),
        other => other?,
    };
    let mut roots = RootCertStore::empty();
    for cert in certs {
        roots.add(cert).map_err(|err| TlsError::BadCa { role, path: path.to_owned(), detail: err.to_string() })?;
    }
    Ok(roots)
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
pub(crate) mod testing {
    //! Helpers shared by the tests of the submodules: a demo PKI and one-shot loopback servers.

    use std::net::SocketAddr;
    use std::path::Path;
    use std::sync::Arc;

    use bytes::Bytes;
    use http_body_util::Full;
    use hyper::service::service_fn;
    use hyper_util::rt::TokioIo;
    use rustls::ClientConfig;
    use rustls_pki_types::ServerName;
    use tokio::net::{TcpListener, TcpStream};

    use super::{ClientAuth, ServerTlsFiles, TlsAcceptor};

    /// The partner the tests' demo PKI issues a client certificate for.
    pub const PARTNER: &str = "gd-window";
    /// The platform host the tests' demo PKI issues a server certificate for.
    pub const PLATFORM: &str = "platform.tongban.test";

    /// A demo PKI in `dir`.
    pub fn pki(dir: &Path) {
        super::generate_demo_pki(dir, &[PARTNER], &[PLATFORM], false).unwrap();
    }

    /// The gateway's listener files from a demo PKI.
    pub fn gateway_files(dir: &Path, client_auth: ClientAuth) -> ServerTlsFiles {
        ServerTlsFiles {
            cert: dir.join("gateway.pem"),
            key: dir.join("gateway.key"),
            client_ca: Some(dir.join("ca.pem")),
            client_auth,
            client_crl: Vec::new(),
        }
    }

    /// Accepts one connection; on a good handshake serves HTTP/1.1 on it, answering every request
    /// with 200 and the names in the client's certificate (or "anonymous"). Returns the address
    /// and the handshake's outcome.
    pub async fn serve_one(acceptor: Arc<TlsAcceptor>) -> (SocketAddr, tokio::task::JoinHandle<std::io::Result<()>>) {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address = listener.local_addr().unwrap();
        let task = tokio::spawn(async move {
            let (tcp, _) = listener.accept().await.unwrap();
            let tls = acceptor.accept(tcp).await?;
            let name = match super::peer_of(&tls) {
                Some(peer) => peer.names().collect::<Vec<_>>().join(","),
                None => "anonymous".to_owned(),
            };
            let service = service_fn(move |_request| {
                let name = name.clone();
                async move { Ok::<_, std::convert::Infallible>(hyper::Response::new(Full::new(Bytes::from(name)))) }
            });
            tokio::spawn(hyper::server::conn::http1::Builder::new().serve_connection(TokioIo::new(tls), service));
            Ok(())
        });
        (address, task)
    }

    /// Sends `GET /` over an established TLS stream with hyper: the status and the body.
    pub async fn get<IO>(tls: IO) -> (u16, String)
    where
        IO: tokio::io::AsyncRead + tokio::io::AsyncWrite + Send + Unpin + 'static,
    {
        use http_body_util::{BodyExt, Empty};
        let (mut sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(tls)).await.unwrap();
        tokio::spawn(connection);
        let request = hyper::Request::get("/").header("host", "localhost").body(Empty::<Bytes>::new()).unwrap();
        let response = sender.send_request(request).await.unwrap();
        let status = response.status().as_u16();
        let body = response.into_body().collect().await.unwrap().to_bytes();
        (status, String::from_utf8(body.to_vec()).unwrap())
    }

    /// Connects with `config` (server name "localhost") and waits for the server's verdict too:
    /// with TLS 1.3 the client finishes before the server has checked the client certificate.
    pub async fn handshake(
        address: SocketAddr,
        config: Arc<ClientConfig>,
        server: tokio::task::JoinHandle<std::io::Result<()>>,
    ) -> Result<tokio_rustls::client::TlsStream<TcpStream>, String> {
        let tcp = TcpStream::connect(address).await.unwrap();
        let connector = tokio_rustls::TlsConnector::from(config);
        let client = connector.connect(ServerName::try_from("localhost").unwrap(), tcp).await;
        let server = server.await.unwrap();
        match (client, server) {
            (Ok(stream), Ok(())) => Ok(stream),
            (Err(err), _) => Err(format!("client: {err}")),
            (_, Err(err)) => Err(format!("server: {err}")),
        }
    }
}
