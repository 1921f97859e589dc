//! Signature verification (验签) of certificates against the issuer keys an adapter lists.
//!
//! Ed25519 (ed25519-dalek, strict verification) and SM2 with SM3 (GM/T 0003, RustCrypto `sm2`,
//! default distinguishing id `1234567812345678`). A key is trusted only inside its validity
//! period, both on the day the certificate was issued and on the day it is verified: a retired
//! key no longer vouches for anything it signed.

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use chrono::NaiveDate;
use serde::{Deserialize, Serialize};
use sm2::dsa::signature::Verifier;

use super::{Certificate, parse_date};
use crate::config::diagnostic::Diagnostics;
use crate::config::source::{KeyPath, SpannedDoc};

/// The distinguishing id (用户身份标识) of GM/T 0009 when the parties agree on none.
pub const SM2_DEFAULT_DISTID: &str = "1234567812345678";

/// A signature algorithm (签名算法).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Algorithm {
    /// Ed25519 (RFC 8032).
    Ed25519,
    /// SM2 signature with SM3 digest (国密 SM2/SM3).
    Sm2Sm3,
}

impl Algorithm {
    /// The name as written in files and documents.
    pub fn as_str(self) -> &'static str {
        match self {
            Algorithm::Ed25519 => "ed25519",
            Algorithm::Sm2Sm3 => "sm2_sm3",
        }
    }
}

/// One `[[certificate_keys]]` entry of an adapter: a public key of the issuer's certificate library.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawIssuerKey {
    /// The key id certificates name in their signature, e.g. `gz-zzk-ed25519-2026`.
    pub id: String,
    /// `ed25519` or `sm2_sm3`.
    pub algorithm: Algorithm,
    /// Standard base64: the 32-byte Ed25519 key, or the 65-byte uncompressed SM2 point (04‖x‖y).
    pub public_key: String,
    /// First day the key is trusted, `yyyy-MM-dd`.
    pub valid_from: String,
    /// Last day the key is trusted, `yyyy-MM-dd`; absent for no end (not recommended).
    #[serde(default)]
    pub valid_until: Option<String>,
}

#[derive(Clone)]
enum PublicKey {
    Ed25519(ed25519_dalek::VerifyingKey),
    Sm2(Box<sm2::dsa::VerifyingKey>),
}

impl std::fmt::Debug for PublicKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            PublicKey::Ed25519(_) => "Ed25519(..)",
            PublicKey::Sm2(_) => "Sm2(..)",
        })
    }
}

/// A compiled issuer key.
#[derive(Debug, Clone)]
pub struct IssuerKey {
    /// Key id.
    pub id: String,
    /// Algorithm.
    pub algorithm: Algorithm,
    /// First trusted day.
    pub valid_from: NaiveDate,
    /// Last trusted day.
    pub valid_until: Option<NaiveDate>,
    key: PublicKey,
}

impl IssuerKey {
    /// Builds a key from its algorithm and public key bytes.
    pub fn new(
        id: &str,
        algorithm: Algorithm,
        public_key: &[u8],
        valid_from: NaiveDate,
        valid_until: Option<NaiveDate>,
    ) -> Result<IssuerKey, String> {
        let key = match algorithm {
            Algorithm::Ed25519 => {
                let bytes: [u8; 32] = public_key
                    .try_into()
                    .map_err(|_| format!("an Ed25519 public key has 32 bytes, this one {}", public_key.len()))?;
                PublicKey::Ed25519(
                    ed25519_dalek::VerifyingKey::from_bytes(&bytes)
                        .map_err(|_| "not a valid Ed25519 public key (not a curve point)".to_owned())?,
                )
            }
            Algorithm::Sm2Sm3 => PublicKey::Sm2(Box::new(
                sm2::dsa::VerifyingKey::from_sec1_bytes(SM2_DEFAULT_DISTID, public_key).map_err(|_| {
                    format!(
                        "not a valid SM2 public key; write the uncompressed point (65 bytes, 04‖x‖y), this one has {} bytes",
                        public_key.len()
                    )
                })?,
            )),
        };
        Ok(IssuerKey { id: id.to_owned(), algorithm, valid_from, valid_until, key })
    }

    fn trusted_on(&self, day: NaiveDate) -> bool {
        day >= self.valid_from && self.valid_until.is_none_or(|until| day <= until)
    }

    fn period(&self) -> String {
        match self.valid_until {
            Some(until) => format!("{} to {until}", self.valid_from),
            None => format!("from {}", self.valid_from),
        }
    }
}

/// The keys of one issuer (签发机构公钥).
#[derive(Debug, Clone, Default)]
pub struct IssuerKeys {
    keys: Vec<IssuerKey>,
}

impl IssuerKeys {
    /// Keys from a list.
    pub fn new(keys: Vec<IssuerKey>) -> IssuerKeys {
        IssuerKeys { keys }
    }

    /// Whether no key is configured.
    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }

    /// The key with this id.
    pub fn get(&self, id: &str) -> Option<&IssuerKey> {
        self.keys.iter().find(|key| key.id == id)
    }

    /// Compiles `[[certificate_keys]]`; errors go to `diagnostics`.
    pub fn compile(
        raw: &[RawIssuerKey],
        doc: &SpannedDoc<'_>,
        at: &KeyPath,
        diagnostics: &mut Diagnostics,
    ) -> IssuerKeys {
        let mut keys = Vec::new();
        for (index, raw_key) in raw.iter().enumerate() {
            let at = at.index(index);
            if raw_key.id.trim().is_empty() {
                doc.report(
                    diagnostics,
                    &at.key("id"),
                    "a key needs an id, the one certificates name in their signature",
                );
                continue;
            }
            if raw[..index].iter().any(|other| other.id == raw_key.id) {
                doc.report(
                    diagnostics,
                    &at.key("id"),
                    format!("key id '{}' is listed twice; ids must be unique", raw_key.id),
                );
                continue;
            }
            // Every mistake of the entry is reported, not just the first.
            let from = parse_date(&raw_key.valid_from);
            if from.is_none() {
                doc.report(
                    diagnostics,
                    &at.key("valid_from"),
                    format!("'{}' is not a date; write yyyy-MM-dd", raw_key.valid_from),
                );
            }
            let until = match raw_key.valid_until.as_deref() {
                None => Some(None),
                Some(text) => match parse_date(text) {
                    Some(until) if from.is_none_or(|from| until >= from) => Some(Some(until)),
                    Some(_) => {
                        doc.report(diagnostics, &at.key("valid_until"), "the key's validity ends before it begins");
                        None
                    }
                    None => {
                        doc.report(
                            diagnostics,
                            &at.key("valid_until"),
                            format!("'{text}' is not a date; write yyyy-MM-dd"),
                        );
                        None
                    }
                },
            };
            let bytes = STANDARD.decode(raw_key.public_key.trim()).ok();
            if bytes.is_none() {
                doc.report(
                    diagnostics,
                    &at.key("public_key"),
                    "not standard base64; paste the key as the issuer publishes it",
                );
            }
            let (Some(from), Some(until), Some(bytes)) = (from, until, bytes) else { continue };
            match IssuerKey::new(&raw_key.id, raw_key.algorithm, &bytes, from, until) {
                Ok(key) => keys.push(key),
                Err(message) => doc.report(diagnostics, &at.key("public_key"), message),
            }
        }
        IssuerKeys { keys }
    }
}

/// Why a certificate is refused before anything is printed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum VerifyError {
    /// No signature at all.
    Unsigned,
    /// The signature names a key this issuer's adapter does not list.
    UnknownKey {
        /// The key id named.
        key_id: String,
    },
    /// The key is for another algorithm than the signature says.
    AlgorithmMismatch {
        /// The key id.
        key_id: String,
        /// The key's algorithm.
        key: Algorithm,
        /// The algorithm the certificate claims.
        claimed: Algorithm,
    },
    /// The key was not trusted on the day of issue, or is no longer trusted.
    KeyNotTrusted {
        /// The key id.
        key_id: String,
        /// Its period, for the message.
        period: String,
        /// The day that falls outside it.
        day: NaiveDate,
        /// Which day: "issue" or "verification".
        which: &'static str,
    },
    /// The signature value does not verify: a field changed after signing, or a wrong key.
    BadSignature {
        /// The key id.
        key_id: String,
    },
}

impl std::fmt::Display for VerifyError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            VerifyError::Unsigned => f.write_str("the certificate carries no signature"),
            VerifyError::UnknownKey { key_id } => {
                write!(f, "the certificate is signed with key '{key_id}', which the issuer's adapter does not list")
            }
            VerifyError::AlgorithmMismatch { key_id, key, claimed } => {
                write!(f, "the certificate claims {} but key '{key_id}' is an {} key", claimed.as_str(), key.as_str())
            }
            VerifyError::KeyNotTrusted { key_id, period, day, which } => {
                write!(f, "key '{key_id}' is trusted {period}, not on the {which} day {day}")
            }
            VerifyError::BadSignature { key_id } => write!(
                f,
                "the signature does not match the certificate's content under key '{key_id}': it was changed after signing or signed with another key"
            ),
        }
    }
}

/// Verifies a certificate's signature on `today`; answers the key that vouches for it.
pub fn verify<'k>(
    certificate: &Certificate,
    keys: &'k IssuerKeys,
    today: NaiveDate,
) -> Result<&'k IssuerKey, VerifyError> {
    let signature = certificate.signature.as_ref().ok_or(VerifyError::Unsigned)?;
    let key =
        keys.get(&signature.key_id).ok_or_else(|| VerifyError::UnknownKey { key_id: signature.key_id.clone() })?;
    if key.algorithm != signature.algorithm {
        return Err(VerifyError::AlgorithmMismatch {
            key_id: key.id.clone(),
            key: key.algorithm,
            claimed: signature.algorithm,
        });
    }
    let untrusted =
        |day, which| VerifyError::KeyNotTrusted { key_id: key.id.clone(), period: key.period(), day, which };
    let issued = parse_date(&certificate.issued_on).unwrap_or(NaiveDate::MIN);
    if !key.trusted_on(issued) {
        return Err(untrusted(issued, "issue"));
    }
    if !key.trusted_on(today) {
        return Err(untrusted(today, "verification"));
    }
    let bad = || VerifyError::BadSignature { key_id: key.id.clone() };
    let value = STANDARD.decode(signature.value.trim()).map_err(|_| bad())?;
    let message = certificate.signed_bytes();
    let verified = match &key.key {
        PublicKey::Ed25519(public) => ed25519_dalek::Signature::from_slice(&value)
            .map(|sig| public.verify_strict(&message, &sig).is_ok())
            .unwrap_or(false),
        PublicKey::Sm2(public) => {
            sm2::dsa::Signature::from_slice(&value).map(|sig| public.verify(&message, &sig).is_ok()).unwrap_or(false)
        }
    };
    if verified { Ok(key) } else { Err(bad()) }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::certificate::Signature;
    use ed25519_dalek::Signer as _;

    fn day(text: &str) -> NaiveDate {
        parse_date(text).unwrap()
    }

    fn certificate() -> Certificate {
        Certificate::from_canonical(&crate::certificate::tests::sample()).unwrap()
    }

    struct Issuer {
        keys: IssuerKeys,
        ed: ed25519_dalek::SigningKey,
        sm: sm2::dsa::SigningKey,
    }

    /// Two keys, each trusted 2026-01-01 to 2030-12-31, and the secrets that go with them.
    fn issuer() -> Issuer {
        let ed = ed25519_dalek::SigningKey::from_bytes(&[7; 32]);
        let sm = sm2::dsa::SigningKey::from_slice(SM2_DEFAULT_DISTID, &[9; 32]).unwrap();
        let from = day("2026-01-01");
        let until = Some(day("2030-12-31"));
        let keys = IssuerKeys::new(vec![
            IssuerKey::new("ed", Algorithm::Ed25519, ed.verifying_key().as_bytes(), from, until).unwrap(),
            IssuerKey::new("sm", Algorithm::Sm2Sm3, &sm.verifying_key().to_sec1_bytes(), from, until).unwrap(),
        ]);
        Issuer { keys, ed, sm }
    }

    fn signed(issuer: &Issuer, algorithm: Algorithm, key_id: &str) -> Certificate {
        let mut certificate = certificate();
        let message = certificate.signed_bytes();
        let value = match algorithm {
            Algorithm::Ed25519 => issuer.ed.sign(&message).to_bytes().to_vec(),
            Algorithm::Sm2Sm3 => {
                let signature: sm2::dsa::Signature = issuer.sm.sign(&message);
                signature.to_bytes().to_vec()
            }
        };
        certificate.signature = Some(Signature { algorithm, key_id: key_id.into(), value: STANDARD.encode(value) });
        certificate
    }

    const TODAY: &str = "2026-11-22";

    #[test]
    fn both_algorithms_verify_a_genuine_certificate() {
        let issuer = issuer();
        for (algorithm, key_id) in [(Algorithm::Ed25519, "ed"), (Algorithm::Sm2Sm3, "sm")] {
            let certificate = signed(&issuer, algorithm, key_id);
            let key = verify(&certificate, &issuer.keys, day(TODAY)).unwrap();
            assert_eq!(key.id, key_id);
        }
    }

    #[test]
    fn a_field_changed_after_signing_is_refused_for_both_algorithms() {
        let issuer = issuer();
        for (algorithm, key_id) in [(Algorithm::Ed25519, "ed"), (Algorithm::Sm2Sm3, "sm")] {
            let mut certificate = signed(&issuer, algorithm, key_id);
            certificate.holder.name = "李四".into();
            assert_eq!(
                verify(&certificate, &issuer.keys, day(TODAY)).unwrap_err(),
                VerifyError::BadSignature { key_id: key_id.into() }
            );
            let mut certificate = signed(&issuer, algorithm, key_id);
            certificate.fields.insert("reason".into(), "工作调动".into());
            assert!(matches!(verify(&certificate, &issuer.keys, day(TODAY)), Err(VerifyError::BadSignature { .. })));
        }
    }

    #[test]
    fn the_status_is_not_signed_so_a_cancellation_does_not_break_the_signature() {
        let issuer = issuer();
        let mut certificate = signed(&issuer, Algorithm::Ed25519, "ed");
        certificate.status = crate::certificate::CertificateStatus::Cancelled;
        assert!(verify(&certificate, &issuer.keys, day(TODAY)).is_ok());
    }

    #[test]
    fn a_wrong_key_is_refused_for_both_algorithms() {
        let issuer = issuer();
        let other = Issuer {
            ed: ed25519_dalek::SigningKey::from_bytes(&[8; 32]),
            sm: sm2::dsa::SigningKey::from_slice(SM2_DEFAULT_DISTID, &[10; 32]).unwrap(),
            keys: IssuerKeys::default(),
        };
        for (algorithm, key_id) in [(Algorithm::Ed25519, "ed"), (Algorithm::Sm2Sm3, "sm")] {
            // Signed by someone else's secret under the issuer's key id.
            let certificate = signed(&other, algorithm, key_id);
            assert_eq!(
                verify(&certificate, &issuer.keys, day(TODAY)).unwrap_err(),
                VerifyError::BadSignature { key_id: key_id.into() }
            );
            // A key id the adapter does not list.
            let certificate = signed(&issuer, algorithm, "elsewhere");
            assert_eq!(
                verify(&certificate, &issuer.keys, day(TODAY)).unwrap_err(),
                VerifyError::UnknownKey { key_id: "elsewhere".into() }
            );
        }
        // The right bytes under the other algorithm's key.
        let mut certificate = signed(&issuer, Algorithm::Ed25519, "ed");
        if let Some(signature) = &mut certificate.signature {
            signature.key_id = "sm".into();
        }
        assert!(matches!(verify(&certificate, &issuer.keys, day(TODAY)), Err(VerifyError::AlgorithmMismatch { .. })));
    }

    #[test]
    fn an_expired_key_is_refused_for_both_algorithms() {
        let issuer = issuer();
        for (algorithm, key_id) in [(Algorithm::Ed25519, "ed"), (Algorithm::Sm2Sm3, "sm")] {
            let genuine = signed(&issuer, algorithm, key_id);
            let error = verify(&genuine, &issuer.keys, day("2031-01-01")).unwrap_err();
            assert!(matches!(&error, VerifyError::KeyNotTrusted { which: "verification", .. }), "{error:?}");
            assert!(error.to_string().contains("2026-01-01 to 2030-12-31"), "{error}");
            // Issued before the key's period began: the key could not have signed it.
            let mut early = certificate();
            early.issued_on = "2025-12-31".into();
            let message = early.signed_bytes();
            let value = match algorithm {
                Algorithm::Ed25519 => issuer.ed.sign(&message).to_bytes().to_vec(),
                Algorithm::Sm2Sm3 => {
                    let signature: sm2::dsa::Signature = issuer.sm.sign(&message);
                    signature.to_bytes().to_vec()
                }
            };
            early.signature = Some(Signature { algorithm, key_id: key_id.into(), value: STANDARD.encode(value) });
            assert!(matches!(
                verify(&early, &issuer.keys, day(TODAY)),
                Err(VerifyError::KeyNotTrusted { which: "issue", .. })
            ));
        }
    }

    #[test]
    fn unsigned_and_garbled_signatures_are_refused() {
        let issuer = issuer();
        let mut certificate = signed(&issuer, Algorithm::Sm2Sm3, "sm");
        certificate.signature = None;
        assert_eq!(verify(&certificate, &issuer.keys, day(TODAY)).unwrap_err(), VerifyError::Unsigned);
        for value in ["not base64!", "AAAA", ""] {
            let mut certificate = signed(&issuer, Algorithm::Ed25519, "ed");
            if let Some(signature) = &mut certificate.signature {
                signature.value = value.into();
            }
            assert!(matches!(verify(&certificate, &issuer.keys, day(TODAY)), Err(VerifyError::BadSignature { .. })));
        }
    }

    #[test]
    fn bad_public_keys_are_explained() {
        let from = day("2026-01-01");
        assert!(IssuerKey::new("x", Algorithm::Ed25519, &[1; 31], from, None).unwrap_err().contains("32 bytes"));
        assert!(IssuerKey::new("x", Algorithm::Sm2Sm3, &[4; 65], from, None).unwrap_err().contains("65 bytes"));
    }
}
