//! Outbound TLS to a platform (上游传输安全): only the CA configured for that platform is trusted
//! (no system roots), optionally with the gateway's own client certificate, and optionally
//! verifying a fixed name instead of the URL's host.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use hyper_util::client::legacy::connect::HttpConnector;
use rustls::ClientConfig;
use rustls_pki_types::ServerName;

use super::{PROTOCOL_VERSIONS, TlsError, crypto_provider, read_identity, read_roots};

/// The connector for platform clients: TLS for `https` URLs, plain TCP for `http` URLs, so one
/// client type serves both kinds of platform.
pub type HttpsConnector = hyper_rustls::HttpsConnector<HttpConnector>;

/// The files behind TLS to one platform.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientTlsFiles {
    /// The CA certificate(s) the platform's certificate must chain to: the *only* roots trusted
    /// for this platform.
    pub ca: PathBuf,
    /// The gateway's client certificate, for platforms that require one (with `client_key`).
    pub client_cert: Option<PathBuf>,
    /// The key of `client_cert`.
    pub client_key: Option<PathBuf>,
    /// The name sent as SNI and checked in the platform's certificate instead of the URL's host
    /// (for platforms reached by IP address or an internal name).
    pub server_name: Option<String>,
}

impl ClientTlsFiles {
    /// The parsed `server_name`, if one is set.
    pub fn server_name(&self) -> Result<Option<ServerName<'static>>, TlsError> {
        self.server_name
            .as_ref()
            .map(|name| {
                ServerName::try_from(name.trim_start_matches('[').trim_end_matches(']').to_owned())
                    .map_err(|_| TlsError::BadServerName { name: name.clone() })
            })
            .transpose()
    }
}

/// Builds the TLS configuration for one platform: TLS 1.2/1.3, the pinned suites, ALPN
/// "http/1.1", the platform's CA as the only root, and the client certificate if given.
/// `server_name` is checked here so a bad value fails at load time, not at the first request.
pub fn client_config(files: &ClientTlsFiles) -> Result<Arc<ClientConfig>, TlsError> {
    files.server_name()?;
    let roots = read_roots(&files.ca, "ca")?;
    let builder = ClientConfig::builder_with_provider(crypto_provider())
        .with_protocol_versions(PROTOCOL_VERSIONS)?
        .with_root_certificates(roots);
    let mut config = match (&files.client_cert, &files.client_key) {
        (Some(cert), Some(key)) => builder.with_client_cert_resolver(read_identity(cert, key)?),
        (None, None) => builder.with_no_client_auth(),
        (Some(_), None) => return Err(TlsError::HalfClientIdentity { given: "client_cert" }),
        (None, Some(_)) => return Err(TlsError::HalfClientIdentity { given: "client_key" }),
    };
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}

/// A connector using `config` for `https` URLs and plain TCP for `http` URLs. With a
/// `server_name`, every TLS connection sends and verifies that name instead of the URL's host.
/// `connect_timeout` bounds the TCP connect (the TLS handshake falls under the request timeout).
pub fn https_connector(
    config: Arc<ClientConfig>,
    server_name: Option<ServerName<'static>>,
    connect_timeout: Duration,
) -> HttpsConnector {
    let mut http = HttpConnector::new();
    // The HTTPS layer decides by scheme; the TCP layer must let https URLs through.
    http.enforce_http(false);
    http.set_connect_timeout(Some(connect_timeout));
    http.set_nodelay(true);
    // Built directly rather than through hyper-rustls' builder, which panics on a config that
    // already carries ALPN protocols.
    let resolver: Arc<dyn hyper_rustls::ResolveServerName + Send + Sync> = match server_name {
        Some(name) => Arc::new(hyper_rustls::FixedServerNameResolver::new(name)),
        None => Arc::new(hyper_rustls::DefaultServerNameResolver::default()),
    };
    hyper_rustls::HttpsConnector::new(http, config, false, resolver)
}

/// The connector for one platform straight from its files: [`client_config`] plus
/// [`https_connector`] with the configured `server_name`.
pub fn platform_connector(files: &ClientTlsFiles, connect_timeout: Duration) -> Result<HttpsConnector, TlsError> {
    Ok(https_connector(client_config(files)?, files.server_name()?, connect_timeout))
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use std::net::SocketAddr;
    use std::path::Path;
    use std::sync::Arc;

    use bytes::Bytes;
    use http_body_util::{BodyExt, Empty};
    use hyper_util::client::legacy::Client;
    use hyper_util::rt::TokioExecutor;

    use super::super::server::{ClientAuth, ServerTlsFiles, TlsAcceptor};
    use super::super::testing::{PLATFORM, pki, serve_one};
    use super::*;

    const TIMEOUT: Duration = Duration::from_secs(10);

    fn platform(dir: &Path, client_auth: ClientAuth) -> Arc<TlsAcceptor> {
        let files = ServerTlsFiles {
            cert: dir.join(format!("platform-{PLATFORM}.pem")),
            key: dir.join(format!("platform-{PLATFORM}.key")),
            client_ca: Some(dir.join("ca.pem")),
            client_auth,
            client_crl: Vec::new(),
        };
        Arc::new(TlsAcceptor::new(files).unwrap())
    }

    fn files(ca_dir: &Path, with_client_cert: bool) -> ClientTlsFiles {
        ClientTlsFiles {
            ca: ca_dir.join("ca.pem"),
            client_cert: with_client_cert.then(|| ca_dir.join("gateway-client.pem")),
            client_key: with_client_cert.then(|| ca_dir.join("gateway-client.key")),
            server_name: None,
        }
    }

    /// GET `url` through a legacy client on `connector`: the status, or the error chain as text.
    async fn get(connector: HttpsConnector, url: String) -> Result<u16, String> {
        let client = Client::builder(TokioExecutor::new()).build::<_, Empty<Bytes>>(connector);
        match client.get(url.parse().unwrap()).await {
            Ok(response) => {
                let status = response.status().as_u16();
                response.into_body().collect().await.unwrap();
                Ok(status)
            }
            Err(err) => {
                let mut text = err.to_string();
                let mut source = std::error::Error::source(&err);
                while let Some(cause) = source {
                    text.push_str(&format!(": {cause}"));
                    source = cause.source();
                }
                Err(text)
            }
        }
    }

    async fn call(server: Arc<TlsAcceptor>, files: &ClientTlsFiles) -> Result<u16, String> {
        let (address, handshake): (SocketAddr, _) = serve_one(server).await;
        let connector = platform_connector(files, TIMEOUT).unwrap();
        let result = get(connector, format!("https://{address}/")).await;
        // The server's side must have ended too (either way) before the next attempt.
        let _ = handshake.await.unwrap();
        result
    }

    #[tokio::test]
    async fn the_platforms_ca_is_trusted_and_no_other() {
        let (ours, other) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
        pki(ours.path());
        pki(other.path());
        let server = platform(ours.path(), ClientAuth::Off);
        assert_eq!(call(server.clone(), &files(ours.path(), false)).await, Ok(200));
        let err = call(server, &files(other.path(), false)).await.unwrap_err();
        assert!(err.contains("invalid peer certificate: UnknownIssuer"), "{err}");
    }

    #[tokio::test]
    async fn a_platform_requiring_a_client_certificate_gets_the_gateways() {
        let dir = tempfile::tempdir().unwrap();
        pki(dir.path());
        let server = platform(dir.path(), ClientAuth::Required);
        assert_eq!(call(server.clone(), &files(dir.path(), true)).await, Ok(200));
        // Without one the platform refuses (the alert may surface as a closed connection).
        assert!(call(server, &files(dir.path(), false)).await.is_err());
    }

    #[tokio::test]
    async fn server_name_overrides_the_url_host() {
        let dir = tempfile::tempdir().unwrap();
        pki(dir.path());
        let server = platform(dir.path(), ClientAuth::Off);
        let named = |name: &str| ClientTlsFiles { server_name: Some(name.into()), ..files(dir.path(), false) };
        // The URL says 127.0.0.1; the certificate is checked for the configured name instead.
        assert_eq!(call(server.clone(), &named(PLATFORM)).await, Ok(200));
        let err = call(server, &named("elsewhere.tongban.test")).await.unwrap_err();
        assert!(err.contains("certificate not valid for name \"elsewhere.tongban.test\""), "{err}");
    }

    #[tokio::test]
    async fn plain_http_goes_through_the_same_connector() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address = listener.local_addr().unwrap();
        tokio::spawn(async move {
            let (tcp, _) = listener.accept().await.unwrap();
            let service = hyper::service::service_fn(|_request| async {
                Ok::<_, std::convert::Infallible>(hyper::Response::new(Empty::<Bytes>::new()))
            });
            hyper::server::conn::http1::Builder::new()
                .serve_connection(hyper_util::rt::TokioIo::new(tcp), service)
                .await
        });
        let dir = tempfile::tempdir().unwrap();
        pki(dir.path());
        let connector = platform_connector(&files(dir.path(), false), TIMEOUT).unwrap();
        assert_eq!(get(connector, format!("http://{address}/")).await, Ok(200));
    }

    #[test]
    fn configuration_errors_name_the_setting_or_file() {
        let dir = tempfile::tempdir().unwrap();
        pki(dir.path());
        let half = ClientTlsFiles { client_key: None, ..files(dir.path(), true) };
        assert!(client_config(&half).unwrap_err().to_string().contains("only client_cert is set"));
        let bad_name = ClientTlsFiles { server_name: Some("not a name".into()), ..files(dir.path(), false) };
        assert!(client_config(&bad_name).unwrap_err().to_string().contains("\"not a name\" is not a valid"));
        std::fs::write(dir.path().join("empty.pem"), "# nothing here\n").unwrap();
        let empty = ClientTlsFiles { ca: dir.path().join("empty.pem"), ..files(dir.path(), false) };
        let err = client_config(&empty).unwrap_err().to_string();
        assert!(err.contains("ca ") && err.contains("empty.pem holds no certificate"), "{err}");
        let mismatch = ClientTlsFiles { client_key: Some(dir.path().join("ca.key")), ..files(dir.path(), true) };
        let err = client_config(&mismatch).unwrap_err().to_string();
        assert!(err.contains("gateway-client.pem: the certificate does not match the private key in"), "{err}");
    }
}
