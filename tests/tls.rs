//! Mutual TLS end to end (双向认证), over loopback with a demo PKI from `tongban certs init`'s
//! generator: partners are identified by their client certificates (API keys are ignored) and
//! get only the rights their allow table lists; connections without a certificate, or with one
//! from another CA, never get a handshake; renewed certificate files are served after a reload
//! without a restart; platforms are reached over TLS with their CA pinned and the gateway's
//! client certificate.
#![allow(clippy::unwrap_used, clippy::expect_used)] // a panic in a test is a failed assertion

mod common;

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use common::{Answer, Harness, demo_federation};
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tongban::access::Rights;
use tongban::identity::{IdentifyBy, Identities, Partner, PartnerEntry};
use tongban::tls::{ClientAuth, ClientTlsFiles, ServerTlsFiles};

const GUANGDONG: &str = "guangdong-window";
const HUNAN: &str = "hunan-window";
const STRANGER: &str = "stranger";

fn pki(dir: &Path) {
    tongban::tls::generate_demo_pki(dir, &[GUANGDONG, HUNAN, STRANGER], &["guizhou.platform.tongban.test"], true)
        .unwrap();
}

fn listener_files(dir: &Path) -> ServerTlsFiles {
    ServerTlsFiles {
        cert: dir.join("gateway.pem"),
        key: dir.join("gateway.key"),
        client_ca: Some(dir.join("ca.pem")),
        client_auth: ClientAuth::Required,
        client_crl: Vec::new(),
    }
}

fn partner(name: &str, rights: Rights) -> PartnerEntry {
    let partner = Partner {
        name: name.into(),
        title: name.into(),
        province: None,
        agency: None,
        rate: None,
        operations: Default::default(),
        rights,
    };
    PartnerEntry {
        partner: Arc::new(partner),
        api_keys: vec![format!("{name}-api-key")],
        tls_names: vec![format!("{name}.partner.tongban.test")],
    }
}

/// Guangdong may do everything; Hunan has no allow table, so under mutual TLS it may do nothing.
fn identities() -> Identities {
    Identities::new(
        vec![partner(GUANGDONG, Rights::all()), partner(HUNAN, Rights::none())],
        false,
        IdentifyBy::Certificate,
    )
}

async fn start(pki_dir: &Path) -> Harness {
    let files = listener_files(pki_dir);
    Harness::start_with(demo_federation(), move |federation| {
        federation.server.tls = Some(files.clone());
        federation.identities = identities();
    })
    .await
}

/// A client trusting `ca` and presenting `who`'s certificate (or none).
fn client(ca: &Path, who: Option<(&Path, &str)>) -> Client<tongban::tls::HttpsConnector, Full<Bytes>> {
    let files = ClientTlsFiles {
        ca: ca.to_path_buf(),
        client_cert: who.map(|(dir, name)| dir.join(format!("partner-{name}.pem"))),
        client_key: who.map(|(dir, name)| dir.join(format!("partner-{name}.key"))),
        server_name: None,
    };
    let connector = tongban::tls::platform_connector(&files, Duration::from_secs(5)).unwrap();
    Client::builder(TokioExecutor::new()).build(connector)
}

async fn get(
    client: &Client<tongban::tls::HttpsConnector, Full<Bytes>>,
    address: SocketAddr,
    path: &str,
    headers: &[(&str, &str)],
) -> Result<Answer, String> {
    let mut request = http::Request::get(format!("https://localhost:{}{path}", address.port()));
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    let response = client.request(request.body(Full::new(Bytes::new())).unwrap()).await.map_err(|err| {
        let mut text = err.to_string();
        let mut source = std::error::Error::source(&err);
        while let Some(cause) = source {
            text.push_str(&format!(": {cause}"));
            source = cause.source();
        }
        text
    })?;
    let (parts, body) = response.into_parts();
    let body = body.collect().await.map_err(|err| err.to_string())?.to_bytes();
    Ok(Answer { status: parts.status.as_u16(), headers: parts.headers, body })
}

#[tokio::test]
async fn partners_are_identified_by_certificate_and_get_only_their_rights() {
    let dir = tempfile::tempdir().unwrap();
    pki(dir.path());
    let harness = start(dir.path()).await;
    let address = harness.running.public;
    let ca = dir.path().join("ca.pem");

    // Guangdong's certificate names a partner with every right.
    let guangdong = client(&ca, Some((dir.path(), GUANGDONG)));
    let answer = get(&guangdong, address, "/v1/matters?region=520102", &[]).await.unwrap();
    assert_eq!(answer.status, 200, "{}", answer.text());
    assert_eq!(answer.json()["region"], "520102");

    // Hunan is identified too, but has no allow table: deny by default under mutual TLS.
    let hunan = client(&ca, Some((dir.path(), HUNAN)));
    let answer = get(&hunan, address, "/v1/matters?region=520102", &[]).await.unwrap();
    assert_eq!(answer.status, 403, "{}", answer.text());
    assert_eq!(answer.json()["partner"], HUNAN);
    assert_eq!(answer.json()["missing_right"]["value"], "matters");

    // An API key does not change who the certificate says the caller is.
    let answer =
        get(&hunan, address, "/v1/matters?region=520102", &[("x-api-key", "guangdong-window-api-key")]).await.unwrap();
    assert_eq!(answer.status, 403, "API keys are ignored under mutual TLS");

    // A certificate from the right CA whose names no partner lists: 401 naming the names.
    let stranger = client(&ca, Some((dir.path(), STRANGER)));
    let answer = get(&stranger, address, "/v1/matters?region=520102", &[]).await.unwrap();
    assert_eq!(answer.status, 401, "{}", answer.text());
    let detail = answer.json()["detail"].as_str().unwrap().to_owned();
    assert!(detail.contains("stranger.partner.tongban.test") && detail.contains("tls_names"), "{detail}");
    harness.stop().await;
}

#[tokio::test]
async fn connections_without_a_certificate_from_the_partner_ca_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    pki(dir.path());
    let other = tempfile::tempdir().unwrap();
    pki(other.path());
    let harness = start(dir.path()).await;
    let address = harness.running.public;
    let ca = dir.path().join("ca.pem");
    let failures = || harness.running.gateway.metrics.tls_handshake_failures.with_label_values(&[] as &[&str]).get();

    // No client certificate: no handshake, no answer.
    let anonymous = client(&ca, None);
    let error = get(&anonymous, address, "/v1/matters?region=520102", &[]).await.unwrap_err();
    assert!(error.to_lowercase().contains("certificate"), "{error}");

    // A certificate from another CA with a partner's own name: refused all the same.
    let forged = client(&ca, Some((other.path(), GUANGDONG)));
    assert!(get(&forged, address, "/v1/matters?region=520102", &[]).await.is_err());
    assert_eq!(failures(), 2, "both refusals are counted");

    // Plain HTTP to the TLS listener gets no HTTP answer either.
    let mut stream = tokio::net::TcpStream::connect(address).await.unwrap();
    stream.write_all(b"GET /v1/matters?region=520102 HTTP/1.1\r\nhost: x\r\n\r\n").await.unwrap();
    let mut answer = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(5), stream.read_to_end(&mut answer)).await;
    assert!(!answer.starts_with(b"HTTP/1.1 200"), "{}", String::from_utf8_lossy(&answer));
    harness.stop().await;
}

#[tokio::test]
async fn renewed_certificates_are_served_after_a_reload_without_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    pki(dir.path());
    let harness = start(dir.path()).await;
    let address = harness.running.public;
    let old_ca = dir.path().join("old-ca.pem");
    std::fs::copy(dir.path().join("ca.pem"), &old_ca).unwrap();
    let before = client(&old_ca, Some((dir.path(), GUANGDONG)));
    assert_eq!(get(&before, address, "/v1/matters?region=520102", &[]).await.unwrap().status, 200);

    // A new PKI over the same paths (a renewal with a new CA), then a reload.
    pki(dir.path());
    let answer = harness.admin("POST", "/admin/reload", Vec::new()).await;
    assert_eq!(answer.status, 200, "{}", answer.text());

    let renewed = client(&dir.path().join("ca.pem"), Some((dir.path(), GUANGDONG)));
    assert_eq!(get(&renewed, address, "/v1/matters?region=520102", &[]).await.unwrap().status, 200);
    // A client still trusting the old CA does not accept the renewed listener certificate.
    let stale = client(&old_ca, Some((dir.path(), GUANGDONG)));
    assert!(get(&stale, address, "/v1/matters?region=520102", &[]).await.is_err());

    // A broken key is refused by the reload; the renewed files keep serving.
    std::fs::write(dir.path().join("gateway.key"), "not a key").unwrap();
    let answer = harness.admin("POST", "/admin/reload", Vec::new()).await;
    assert!(answer.status >= 400, "{} {}", answer.status, answer.text());
    assert!(answer.text().contains("gateway.key"), "the refusal names the file: {}", answer.text());
    let again = client(&dir.path().join("ca.pem"), Some((dir.path(), GUANGDONG)));
    assert_eq!(get(&again, address, "/v1/matters?region=520102", &[]).await.unwrap().status, 200);
    harness.stop().await;
}

/// A platform behind TLS: terminates with the platform's certificate (requiring a client
/// certificate from `client_ca` when given) and forwards the bytes to the simulated platform.
/// Returns its address, the backend slot to fill once the platform runs, and the names of the
/// client certificates it saw.
async fn tls_platform(
    dir: &Path,
    client_ca: Option<&Path>,
) -> (SocketAddr, Arc<std::sync::OnceLock<SocketAddr>>, Arc<std::sync::Mutex<Vec<String>>>) {
    let files = ServerTlsFiles {
        cert: dir.join("platform-guizhou.platform.tongban.test.pem"),
        key: dir.join("platform-guizhou.platform.tongban.test.key"),
        client_ca: client_ca.map(Path::to_path_buf),
        client_auth: if client_ca.is_some() { ClientAuth::Required } else { ClientAuth::Off },
        client_crl: Vec::new(),
    };
    let acceptor = Arc::new(tongban::tls::TlsAcceptor::new(files).unwrap());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    let backend = Arc::new(std::sync::OnceLock::new());
    let seen = Arc::new(std::sync::Mutex::new(Vec::new()));
    let (slot, names) = (backend.clone(), seen.clone());
    tokio::spawn(async move {
        // Bounded: the test makes a handful of connections.
        for _ in 0..16 {
            let Ok((tcp, _)) = listener.accept().await else { return };
            let (acceptor, slot, names) = (acceptor.clone(), slot.clone(), names.clone());
            tokio::spawn(async move {
                let Ok(mut tls) = acceptor.accept(tcp).await else { return };
                if let Some(peer) = tongban::tls::peer_of(&tls) {
                    names.lock().unwrap().extend(peer.names().map(str::to_owned));
                }
                let Some(backend) = slot.get().copied() else { return };
                let mut upstream = tokio::net::TcpStream::connect(backend).await.unwrap();
                let _ = tokio::io::copy_bidirectional(&mut tls, &mut upstream).await;
            });
        }
    });
    (address, backend, seen)
}

/// The demo federation with Guizhou reached at `platform` over TLS with `tls`.
async fn through_tls(platform: SocketAddr, backend: &std::sync::OnceLock<SocketAddr>, tls: ClientTlsFiles) -> Harness {
    let tls = Arc::new(tls);
    let harness = Harness::start_with(demo_federation(), move |federation| {
        *federation = federation.map_adapters(|adapter| {
            if adapter.name == "guizhou" {
                adapter.origin = format!("https://127.0.0.1:{}", platform.port());
                adapter.tls = Some(tls.clone());
            }
        });
    })
    .await;
    let mock = harness.mocks["guizhou"].local_addr();
    backend.set(mock).unwrap();
    harness
}

#[tokio::test]
async fn platforms_are_reached_over_tls_with_their_ca_pinned_and_the_gateway_certificate() {
    let dir = tempfile::tempdir().unwrap();
    pki(dir.path());
    let other = tempfile::tempdir().unwrap();
    pki(other.path());
    let files = |ca: &Path, with_certificate: bool| ClientTlsFiles {
        ca: ca.to_path_buf(),
        client_cert: with_certificate.then(|| dir.path().join("gateway-client.pem")),
        client_key: with_certificate.then(|| dir.path().join("gateway-client.key")),
        server_name: None,
    };
    let ca = dir.path().join("ca.pem");

    // The platform's CA pinned, the gateway's client certificate presented: the call goes through.
    let (platform, backend, seen) = tls_platform(dir.path(), Some(&ca)).await;
    let harness = through_tls(platform, &backend, files(&ca, true)).await;
    let answer = harness.get("/v1/matters?region=520102").await;
    assert_eq!(answer.status, 200, "{}", answer.text());
    assert_eq!(harness.received("guizhou").await.len(), 1);
    assert!(seen.lock().unwrap().iter().any(|name| name == "gateway.tongban.test"), "{:?}", seen.lock().unwrap());
    harness.stop().await;

    // Another CA pinned: the platform's certificate is not trusted, whatever the system trusts.
    let (platform, backend, _) = tls_platform(dir.path(), Some(&ca)).await;
    let harness = through_tls(platform, &backend, files(&other.path().join("ca.pem"), true)).await;
    let answer = harness.get("/v1/matters?region=520102").await;
    assert_eq!(answer.status, 502, "{}", answer.text());
    assert_eq!(answer.json()["type"], "urn:tongban:problem:upstream-unreachable");
    assert!(harness.received("guizhou").await.is_empty());
    harness.stop().await;

    // No client certificate for a platform that requires one: refused by the platform.
    let (platform, backend, _) = tls_platform(dir.path(), Some(&ca)).await;
    let harness = through_tls(platform, &backend, files(&ca, false)).await;
    let answer = harness.get("/v1/matters?region=520102").await;
    assert_eq!(answer.status, 502, "{}", answer.text());
    assert!(harness.received("guizhou").await.is_empty());
    harness.stop().await;
}

#[tokio::test]
async fn a_revoked_partner_certificate_is_refused_and_a_new_list_is_read_on_reload() {
    let dir = tempfile::tempdir().unwrap();
    pki(dir.path());
    tongban::tls::revoke_demo_partners(dir.path(), &[HUNAN]).unwrap();
    let files = ServerTlsFiles { client_crl: vec![dir.path().join("crl.pem")], ..listener_files(dir.path()) };
    let harness = Harness::start_with(demo_federation(), move |federation| {
        federation.server.tls = Some(files.clone());
        federation.identities = identities();
    })
    .await;
    let address = harness.running.public;
    let ca = dir.path().join("ca.pem");
    let failures = || harness.running.gateway.metrics.tls_handshake_failures.with_label_values(&[] as &[&str]).get();
    let matters = "/v1/matters?region=520102";

    // Guangdong is not on the list: served. (Were the list not the CA's own, its status would be
    // unknown and it would be refused too.)
    let guangdong = client(&ca, Some((dir.path(), GUANGDONG)));
    assert_eq!(get(&guangdong, address, matters, &[]).await.unwrap().status, 200);
    // Hunan's certificate is revoked: no handshake.
    let error = get(&client(&ca, Some((dir.path(), HUNAN))), address, matters, &[]).await.unwrap_err();
    assert!(error.to_lowercase().contains("revoked"), "{error}");
    assert_eq!(failures(), 1);

    // A new list without Hunan, then a reload: its certificate identifies it again (403: under
    // mutual TLS it has no rights, but it got past the handshake).
    tongban::tls::revoke_demo_partners(dir.path(), &[]).unwrap();
    let answer = harness.admin("POST", "/admin/reload", Vec::new()).await;
    assert_eq!(answer.status, 200, "{}", answer.text());
    let answer = get(&client(&ca, Some((dir.path(), HUNAN))), address, matters, &[]).await.unwrap();
    assert_eq!(answer.status, 403, "{}", answer.text());

    // A damaged list is refused by the reload, naming the file; the last good list keeps serving.
    std::fs::write(dir.path().join("crl.pem"), "not a revocation list").unwrap();
    let answer = harness.admin("POST", "/admin/reload", Vec::new()).await;
    assert!(answer.status >= 400, "{} {}", answer.status, answer.text());
    assert!(answer.text().contains("crl.pem"), "the refusal names the file: {}", answer.text());
    assert_eq!(get(&guangdong, address, matters, &[]).await.unwrap().status, 200);
    harness.stop().await;
}
