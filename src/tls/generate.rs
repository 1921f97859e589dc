//! The demo PKI (演示证书) behind `tongban certs init [--out DIR]`: one CA, the gateway's server
//! and client certificates, a client certificate per partner and a server certificate per
//! platform host. ECDSA P-256 throughout. For demos and tests only: the CA key sits next to the
//! certificates it signs.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use rcgen::{
    BasicConstraints, CertificateParams, CertificateRevocationListParams, CertifiedIssuer, DistinguishedName, DnType,
    ExtendedKeyUsagePurpose, IsCa, Issuer, KeyIdMethod, KeyPair, KeyUsagePurpose, PKCS_ECDSA_P256_SHA256,
    RevocationReason, RevokedCertParams, SerialNumber,
};

use sha2::{Digest, Sha256};

use super::TlsError;

const DAY: Duration = Duration::from_secs(24 * 60 * 60);
/// The CA lives ten years.
const CA_DAYS: u32 = 3650;
/// Leaves live 825 days, the longest validity many TLS clients still accept.
const LEAF_DAYS: u32 = 825;
/// A demo revocation list announces its successor within 30 days.
const CRL_DAYS: u32 = 30;
/// The organisation (O) in every demo certificate.
const ORGANISATION: &str = "tongban demo";

/// What `generate_demo_pki` wrote.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DemoPki {
    /// Every file written, certificates and keys, CA first.
    pub files: Vec<PathBuf>,
}

/// One leaf certificate to issue.
struct Leaf {
    /// File stem: `<stem>.pem` and `<stem>.key`.
    stem: String,
    common_name: String,
    /// DNS names and IP addresses (rcgen tells them apart).
    names: Vec<String>,
    usage: ExtendedKeyUsagePurpose,
}

/// Writes a demo PKI into `out` (created if needed):
/// - `ca.pem`/`ca.key`: "tongban demo CA" (OU "demo <key id>"), 10 years, may only sign certificates;
/// - `gateway.pem`/`gateway.key`: the listener's certificate (localhost, 127.0.0.1,
///   gateway.tongban.test);
/// - `gateway-client.pem`/`.key`: the gateway's client certificate for platforms that require one;
/// - `partner-<name>.pem`/`.key`: a client certificate per partner (CN = name, O = "tongban demo",
///   SAN `<name>.partner.tongban.test`);
/// - `platform-<host>.pem`/`.key`: a server certificate per platform host (the host and 127.0.0.1);
/// - `crl.pem`: the CA's revocation list, empty ([`revoke_demo_partners`] rewrites it).
///
/// Existing files are only overwritten with `force`; otherwise the first one found is named in
/// the error and nothing is written. Keys are written with mode 0600 on Unix.
pub fn generate_demo_pki(
    out: &Path,
    partners: &[&str],
    platform_hosts: &[&str],
    force: bool,
) -> Result<DemoPki, TlsError> {
    let mut leaves = vec![
        Leaf {
            stem: "gateway".into(),
            common_name: "tongban gateway".into(),
            names: vec!["localhost".into(), "127.0.0.1".into(), "gateway.tongban.test".into()],
            usage: ExtendedKeyUsagePurpose::ServerAuth,
        },
        Leaf {
            stem: "gateway-client".into(),
            common_name: "tongban gateway".into(),
            names: vec!["gateway.tongban.test".into()],
            usage: ExtendedKeyUsagePurpose::ClientAuth,
        },
    ];
    for &partner in partners {
        check_name("partner", partner)?;
        leaves.push(Leaf {
            stem: format!("partner-{partner}"),
            common_name: partner.into(),
            names: vec![format!("{partner}.partner.tongban.test")],
            usage: ExtendedKeyUsagePurpose::ClientAuth,
        });
    }
    for &host in platform_hosts {
        check_name("platform host", host)?;
        let mut names = vec![host.to_owned()];
        if host != "127.0.0.1" {
            names.push("127.0.0.1".into());
        }
        leaves.push(Leaf {
            stem: format!("platform-{host}"),
            common_name: host.into(),
            names,
            usage: ExtendedKeyUsagePurpose::ServerAuth,
        });
    }

    let stems = std::iter::once("ca").chain(leaves.iter().map(|leaf| leaf.stem.as_str()));
    let mut files: Vec<PathBuf> =
        stems.flat_map(|stem| [out.join(format!("{stem}.pem")), out.join(format!("{stem}.key"))]).collect();
    files.push(out.join(CRL_FILE));
    if !force && let Some(existing) = files.iter().find(|path| path.exists()) {
        return Err(TlsError::Exists { path: existing.clone() });
    }

    // Everything is generated before anything is written, so a failure leaves no half PKI.
    let since_epoch = since_epoch()?;
    // rcgen's own date type, reached through arithmetic so its crate (time) need not be a dependency.
    let now = rcgen::date_time_ymd(1970, 1, 1) + since_epoch;
    let ca_key = KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256).map_err(generated("the CA key"))?;
    let mut ca_params = demo_ca_params(&ca_key);
    ca_params.not_before = now - DAY;
    ca_params.not_after = now + DAY * CA_DAYS;
    let ca = CertifiedIssuer::self_signed(ca_params, ca_key).map_err(generated("the CA certificate"))?;
    let mut contents = vec![ca.pem(), ca.key().serialize_pem()];
    for leaf in &leaves {
        let mut params = CertificateParams::new(leaf.names.clone()).map_err(generated(&leaf.stem))?;
        params.distinguished_name = distinguished_name(&leaf.common_name);
        params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        params.extended_key_usages = vec![leaf.usage.clone()];
        params.use_authority_key_identifier_extension = true;
        params.not_before = now - DAY;
        params.not_after = now + DAY * LEAF_DAYS;
        let key = KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256).map_err(generated(&leaf.stem))?;
        let cert = params.signed_by(&key, &*ca).map_err(generated(&leaf.stem))?;
        contents.push(cert.pem());
        contents.push(key.serialize_pem());
    }
    contents.push(revocation_list(&ca, since_epoch, Vec::new())?);

    std::fs::create_dir_all(out).map_err(|source| TlsError::Write { path: out.to_owned(), source })?;
    for (path, text) in files.iter().zip(&contents) {
        let secret = path.extension().is_some_and(|ext| ext == "key");
        write_file(path, text.as_bytes(), secret)?;
    }
    tracing::info!(out = %out.display(), files = files.len(), "Demo PKI written.");
    Ok(DemoPki { files })
}

/// The file of the demo CA's revocation list, next to its certificate.
pub const CRL_FILE: &str = "crl.pem";

/// Rewrites `crl.pem` in `out` so that it revokes exactly the certificates of `partners`
/// (`partner-<name>.pem`), signed with the demo CA's key (`ca.key`). A partner left out is no
/// longer revoked. Returns the file written. For the demo PKI only: a real CA publishes its own.
pub fn revoke_demo_partners(out: &Path, partners: &[&str]) -> Result<PathBuf, TlsError> {
    let since_epoch = since_epoch()?;
    let key_path = out.join("ca.key");
    let key_text =
        std::fs::read_to_string(&key_path).map_err(|source| TlsError::Read { path: key_path.clone(), source })?;
    let key = KeyPair::from_pem(&key_text)
        .map_err(|err| TlsError::BadPrivateKey { path: key_path.clone(), detail: err.to_string() })?;
    // The CA's name and key usages follow from its key, as `generate_demo_pki` made them.
    let issuer = Issuer::new(demo_ca_params(&key), key);
    let mut revoked = Vec::new();
    for &partner in partners {
        check_name("partner", partner)?;
        let path = out.join(format!("partner-{partner}.pem"));
        let chain = super::read_certs(&path)?;
        let leaf = webpki::EndEntityCert::try_from(&chain[0])
            .map_err(|err| TlsError::BadCertificate { path: path.clone(), detail: err.to_string() })?;
        revoked.push(RevokedCertParams {
            serial_number: SerialNumber::from_slice(leaf.serial()),
            revocation_time: rcgen::date_time_ymd(1970, 1, 1) + since_epoch,
            reason_code: Some(RevocationReason::Unspecified),
            invalidity_date: None,
        });
    }
    let path = out.join(CRL_FILE);
    write_file(&path, revocation_list(&issuer, since_epoch, revoked)?.as_bytes(), false)?;
    tracing::info!(crl = %path.display(), revoked = partners.len(), "Demo revocation list written.");
    Ok(path)
}

/// The demo CA: its name (with an OU taken from its key, so a certificate from another demo PKI
/// fails as "unknown issuer" rather than as a bad signature under the same name), may only sign
/// certificates and revocation lists.
fn demo_ca_params(key: &KeyPair) -> CertificateParams {
    let mut params = CertificateParams::default();
    params.distinguished_name = distinguished_name("tongban demo CA");
    let key_id: String = Sha256::digest(key.public_key_raw()).iter().take(4).map(|b| format!("{b:02x}")).collect();
    params.distinguished_name.push(DnType::OrganizationalUnitName, format!("demo {key_id}"));
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    params
}

/// A revocation list of `revoked`, valid from now for [`CRL_DAYS`], numbered by the time (a
/// later list always has a larger number), as PEM.
fn revocation_list(
    issuer: &Issuer<'_, KeyPair>,
    since_epoch: Duration,
    revoked: Vec<RevokedCertParams>,
) -> Result<String, TlsError> {
    let now = rcgen::date_time_ymd(1970, 1, 1) + since_epoch;
    let params = CertificateRevocationListParams {
        this_update: now - DAY,
        next_update: now + DAY * CRL_DAYS,
        crl_number: SerialNumber::from(since_epoch.as_secs()),
        issuing_distribution_point: None,
        revoked_certs: revoked,
        key_identifier_method: KeyIdMethod::Sha256,
    };
    let crl = params.signed_by(issuer).map_err(generated("the revocation list"))?;
    crl.pem().map_err(generated("the revocation list"))
}

/// The time since 1970, for validity dates.
fn since_epoch() -> Result<Duration, TlsError> {
    SystemTime::now().duration_since(SystemTime::UNIX_EPOCH).map_err(|err| TlsError::Generate {
        what: "validity dates".into(),
        detail: format!("the system clock is before 1970: {err}"),
    })
}

/// Maps an rcgen failure to an error naming what was being generated.
fn generated(what: &str) -> impl Fn(rcgen::Error) -> TlsError {
    let what = what.to_owned();
    move |err| TlsError::Generate { what: what.clone(), detail: err.to_string() }
}

/// CN plus the demo organisation.
fn distinguished_name(common_name: &str) -> DistinguishedName {
    let mut name = DistinguishedName::new();
    name.push(DnType::CommonName, common_name);
    name.push(DnType::OrganizationName, ORGANISATION);
    name
}

/// Names end up in file names and DNS names: letters, digits, '-' and '.' only.
fn check_name(what: &'static str, name: &str) -> Result<(), TlsError> {
    let usable = !name.is_empty()
        && !name.starts_with(['.', '-'])
        && !name.contains("..")
        && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '.');
    if usable { Ok(()) } else { Err(TlsError::BadName { what, name: name.to_owned() }) }
}

/// Writes a file, keys readable by the owner only.
fn write_file(path: &Path, contents: &[u8], secret: bool) -> Result<(), TlsError> {
    let failed = |source| TlsError::Write { path: path.to_owned(), source };
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    if secret {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    let mut file = options.open(path).map_err(failed)?;
    // The mode above only applies to new files; an overwritten key may have been wider.
    #[cfg(unix)]
    if secret {
        use std::os::unix::fs::PermissionsExt;
        file.set_permissions(std::fs::Permissions::from_mode(0o600)).map_err(failed)?;
    }
    file.write_all(contents).map_err(failed)
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;

    #[test]
    fn writes_every_file_and_refuses_to_overwrite_without_force() {
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join("tls");
        let pki = generate_demo_pki(&out, &["gd-window", "sc-window"], &["api.gd.tongban.test"], false).unwrap();
        let names: Vec<String> =
            pki.files.iter().map(|path| path.file_name().unwrap().to_string_lossy().into_owned()).collect();
        assert_eq!(
            names,
            [
                "ca.pem",
                "ca.key",
                "gateway.pem",
                "gateway.key",
                "gateway-client.pem",
                "gateway-client.key",
                "partner-gd-window.pem",
                "partner-gd-window.key",
                "partner-sc-window.pem",
                "partner-sc-window.key",
                "platform-api.gd.tongban.test.pem",
                "platform-api.gd.tongban.test.key",
                "crl.pem",
            ]
        );
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = |name: &str| std::fs::metadata(out.join(name)).unwrap().permissions().mode() & 0o777;
            assert_eq!(mode("ca.key"), 0o600);
            assert_eq!(mode("partner-gd-window.key"), 0o600);
        }

        let before = std::fs::read(out.join("ca.pem")).unwrap();
        let err = generate_demo_pki(&out, &["gd-window"], &[], false).unwrap_err().to_string();
        assert!(err.contains("ca.pem already exists"), "{err}");
        assert_eq!(std::fs::read(out.join("ca.pem")).unwrap(), before);
        generate_demo_pki(&out, &["gd-window"], &[], true).unwrap();
        assert_ne!(std::fs::read(out.join("ca.pem")).unwrap(), before);
    }

    #[test]
    fn leaves_carry_their_names() {
        let dir = tempfile::tempdir().unwrap();
        generate_demo_pki(dir.path(), &[], &["10.1.2.3"], false).unwrap();
        let read = |name: &str| super::super::read_certs(&dir.path().join(name)).unwrap().remove(0);
        let gateway = super::super::peer_identity(&read("gateway.pem")).unwrap();
        assert_eq!(gateway.dns_names, ["localhost", "gateway.tongban.test"]);
        let platform = super::super::peer_identity(&read("platform-10.1.2.3.pem")).unwrap();
        assert_eq!(platform.subject_cn.as_deref(), Some("10.1.2.3"));
        assert!(platform.dns_names.is_empty());
    }

    #[test]
    fn unusable_names_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        for name in ["", "../etc", "a/b", "-x", "广东"] {
            let err = generate_demo_pki(dir.path(), &[name], &[], false).unwrap_err();
            assert!(matches!(err, TlsError::BadName { what: "partner", .. }), "{name}: {err}");
        }
        assert!(std::fs::read_dir(dir.path()).unwrap().next().is_none());
    }

    #[test]
    fn the_revocation_list_names_exactly_the_revoked_partners() {
        let dir = tempfile::tempdir().unwrap();
        generate_demo_pki(dir.path(), &["gd-window", "sc-window"], &[], false).unwrap();
        let serial = |name: &str| {
            let chain = crate::tls::read_certs(&dir.path().join(format!("partner-{name}.pem"))).unwrap();
            webpki::EndEntityCert::try_from(&chain[0]).unwrap().serial().to_vec()
        };
        let listed = |serial: &[u8]| {
            let pem = std::fs::read(dir.path().join(CRL_FILE)).unwrap();
            let der = rustls_pki_types::CertificateRevocationListDer::from_pem_slice(&pem).unwrap();
            let crl = webpki::CertRevocationList::from(webpki::BorrowedCertRevocationList::from_der(&der).unwrap());
            // Issued under the CA's exact name: a rebuilt name that differed would match nothing.
            let ca = crate::tls::read_certs(&dir.path().join("ca.pem")).unwrap();
            assert_eq!(crl.issuer(), webpki::EndEntityCert::try_from(&ca[0]).unwrap().subject());
            crl.find_serial(serial).unwrap().is_some()
        };
        use rustls_pki_types::pem::PemObject as _;
        // `certs init` writes an empty list.
        assert!(!listed(&serial("gd-window")) && !listed(&serial("sc-window")));
        revoke_demo_partners(dir.path(), &["sc-window"]).unwrap();
        assert!(listed(&serial("sc-window")));
        assert!(!listed(&serial("gd-window")));
        // Each call states the whole list: naming nobody revokes nobody.
        revoke_demo_partners(dir.path(), &[]).unwrap();
        assert!(!listed(&serial("sc-window")));
        // A partner without a certificate is named in the error, and the list is left as it was.
        let error = revoke_demo_partners(dir.path(), &["nobody"]).unwrap_err().to_string();
        assert!(error.contains("partner-nobody.pem"), "{error}");
    }
}
