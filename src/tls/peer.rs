//! The peer's identity (对端身份): the names in a verified client certificate, which the gateway
//! maps to a configured partner (`[[partner]] tls_names = [...]`). Only extraction lives here; the
//! certificate has already been verified against `client_ca` by the handshake.

use rustls_pki_types::CertificateDer;
use sha2::{Digest, Sha256};
use x509_cert::Certificate;
use x509_cert::der::Decode;
use x509_cert::ext::pkix::SubjectAltName;
use x509_cert::ext::pkix::name::GeneralName;

use super::TlsError;

/// What a certificate says about its holder.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PeerIdentity {
    /// The subject's common name (CN), if any.
    pub subject_cn: Option<String>,
    /// The subject's organisation (O), if any.
    pub subject_o: Option<String>,
    /// DNS names from the subject alternative names, in certificate order.
    pub dns_names: Vec<String>,
    /// URIs from the subject alternative names, in certificate order.
    pub uris: Vec<String>,
    /// SHA-256 of the certificate's DER encoding: 64 lowercase hex digits, no separators.
    pub fingerprint_sha256: String,
}

impl PeerIdentity {
    /// Every name to match against partners' `tls_names`: SAN DNS names, SAN URIs, then the
    /// subject CN (last, as RFC 6125 prefers SANs).
    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.dns_names.iter().chain(&self.uris).chain(&self.subject_cn).map(String::as_str)
    }
}

/// Reads the identity out of a certificate (DER).
pub fn peer_identity(cert: &CertificateDer<'_>) -> Result<PeerIdentity, TlsError> {
    let bad = |err: x509_cert::der::Error| TlsError::BadPeerCertificate { detail: err.to_string() };
    let parsed = Certificate::from_der(cert.as_ref()).map_err(bad)?;
    let tbs = parsed.tbs_certificate();
    let subject = tbs.subject();
    let subject_cn = subject.common_name().map_err(bad)?.map(String::from);
    let subject_o = subject.organization().map_err(bad)?.map(String::from);
    let (mut dns_names, mut uris) = (Vec::new(), Vec::new());
    if let Some((_critical, SubjectAltName(names))) = tbs.get_extension::<SubjectAltName>().map_err(bad)? {
        for name in names {
            match name {
                GeneralName::DnsName(dns) => dns_names.push(dns.as_str().to_owned()),
                GeneralName::UniformResourceIdentifier(uri) => uris.push(uri.as_str().to_owned()),
                _ => {}
            }
        }
    }
    let fingerprint_sha256 = Sha256::digest(cert.as_ref()).iter().map(|byte| format!("{byte:02x}")).collect();
    Ok(PeerIdentity { subject_cn, subject_o, dns_names, uris, fingerprint_sha256 })
}

/// The identity of the client on a server-side TLS stream: the leaf of the chain the handshake
/// verified, or `None` when the client sent no certificate (optional client auth) or it cannot
/// be parsed (logged).
pub fn peer_of<IO>(stream: &tokio_rustls::server::TlsStream<IO>) -> Option<PeerIdentity> {
    let leaf = stream.get_ref().1.peer_certificates()?.first()?;
    match peer_identity(leaf) {
        Ok(identity) => Some(identity),
        Err(err) => {
            tracing::warn!(error = %err, "A verified client certificate could not be read.");
            None
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use rustls_pki_types::pem::PemObject;

    use super::super::testing::{PARTNER, pki};
    use super::*;

    #[test]
    fn a_partner_certificate_names_the_partner() {
        let dir = tempfile::tempdir().unwrap();
        pki(dir.path());
        let cert = CertificateDer::from_pem_file(dir.path().join(format!("partner-{PARTNER}.pem"))).unwrap();
        let peer = peer_identity(&cert).unwrap();
        assert_eq!(peer.subject_cn.as_deref(), Some(PARTNER));
        assert_eq!(peer.subject_o.as_deref(), Some("tongban demo"));
        assert_eq!(peer.dns_names, vec![format!("{PARTNER}.partner.tongban.test")]);
        assert!(peer.uris.is_empty());
        assert_eq!(peer.fingerprint_sha256.len(), 64);
        assert!(peer.fingerprint_sha256.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b)));
        let names: Vec<&str> = peer.names().collect();
        assert_eq!(names, vec!["gd-window.partner.tongban.test", "gd-window"]);
    }

    #[test]
    fn uris_come_between_dns_names_and_the_cn() {
        let key = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap();
        let mut params = rcgen::CertificateParams::new(vec!["a.test".to_owned()]).unwrap();
        params.subject_alt_names.push(rcgen::SanType::URI("spiffe://tongban/partner/gd".try_into().unwrap()));
        params.distinguished_name = rcgen::DistinguishedName::new();
        params.distinguished_name.push(rcgen::DnType::CommonName, "gd");
        let cert = params.self_signed(&key).unwrap();
        let peer = peer_identity(cert.der()).unwrap();
        assert_eq!(peer.names().collect::<Vec<_>>(), vec!["a.test", "spiffe://tongban/partner/gd", "gd"]);
        assert_eq!(peer.subject_o, None);
    }

    #[test]
    fn garbage_is_an_error() {
        let err = peer_identity(&CertificateDer::from(vec![0x30, 0x03, 0x02, 0x01, 0x00])).unwrap_err();
        assert!(err.to_string().starts_with("the peer certificate cannot be parsed"), "{err}");
    }
}
