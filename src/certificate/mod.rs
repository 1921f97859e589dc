//! Electronic certificates (电子证照) and remote certificate printing (异地打证): "apply nearby,
//! handled remotely, certificate printed where you are".
//!
//! A certificate is fetched from the issuing platform's certificate library (电子证照库) through
//! that platform's adapter (operation `certificate`), verified against the issuer keys its adapter
//! lists ([`verify`]), and only then rendered ([`pdf`], [`template`]) and queued for a window or
//! terminal ([`print`]). The canonical form and the signed bytes are documented in
//! docs/canonical.md.

#[cfg(test)]
#[path = "../../tests/common/pdf_inspect.rs"]
mod inspect;
pub mod pdf;
pub mod print;
pub mod template;
pub mod token;
pub mod verify;

use std::collections::BTreeMap;

use chrono::NaiveDate;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::canonical::IdType;

/// A canonical certificate (规范电子证照), as every issuing platform's answer translates to.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Certificate {
    /// 证照编号, unique within its issuer.
    pub certificate_id: String,
    /// 证照类型: the type chooses the print template.
    #[serde(rename = "type")]
    pub kind: CertificateType,
    /// 持证人.
    pub holder: Holder,
    /// 发证机关.
    pub issuer: Issuer,
    /// 发证日期, `yyyy-MM-dd`.
    pub issued_on: String,
    /// 有效期起, `yyyy-MM-dd`.
    pub valid_from: String,
    /// 有效期止, `yyyy-MM-dd`; absent for a certificate valid without limit (长期).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub valid_until: Option<String>,
    /// 证照状态 as the issuer reports it now; not signed, since it changes after issue.
    pub status: CertificateStatus,
    /// 证照信息: the type's own fields, as strings.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub fields: BTreeMap<String, String>,
    /// 电子签名; absent on an unsigned certificate, which is never printed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub signature: Option<Signature>,
}

/// 证照类型.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CertificateType {
    /// Canonical type code, e.g. `household_transfer_permit` (准予迁入证明).
    pub code: String,
    /// 证照名称 as issued.
    pub name: String,
}

/// 持证人.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Holder {
    /// 姓名 or organisation name.
    pub name: String,
    /// 证件类型.
    pub id_type: IdType,
    /// 证件号码.
    pub id_number: String,
}

/// 发证机关.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Issuer {
    /// 机关名称.
    pub name: String,
    /// 行政区划代码 of the authority (GB/T 2260).
    pub region: String,
}

/// 证照状态.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CertificateStatus {
    /// 有效.
    Valid,
    /// 注销: withdrawn by the issuer.
    Cancelled,
    /// 吊销: revoked as a sanction.
    Revoked,
}

impl CertificateStatus {
    /// The name as written in documents.
    pub fn as_str(self) -> &'static str {
        match self {
            CertificateStatus::Valid => "valid",
            CertificateStatus::Cancelled => "cancelled",
            CertificateStatus::Revoked => "revoked",
        }
    }
}

/// 电子签名 over [`Certificate::signed_bytes`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Signature {
    /// `ed25519` or `sm2_sm3`.
    pub algorithm: verify::Algorithm,
    /// The issuer's key id, looked up in the adapter's `[[certificate_keys]]`.
    pub key_id: String,
    /// Standard base64 of the raw signature (64 bytes for both algorithms).
    pub value: String,
}

/// Why a platform's answer is not a usable certificate.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MalformedCertificate(pub String);

/// Why a verified certificate may not be printed today.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NotPrintable {
    /// 注销 or 吊销.
    Withdrawn(CertificateStatus),
    /// Past its 有效期止.
    Expired {
        /// The last valid day.
        valid_until: String,
    },
    /// Its validity has not begun.
    NotYetValid {
        /// The first valid day.
        valid_from: String,
    },
}

impl Certificate {
    /// Reads a platform's translated answer, checking dates and codes.
    pub fn from_canonical(answer: &Value) -> Result<Certificate, MalformedCertificate> {
        let certificate: Certificate = serde_path_to_error::deserialize(answer).map_err(|error| {
            let path = error.path().to_string();
            MalformedCertificate(format!("{}: {}", crate::proxy::decode::pointer(&path), error.inner()))
        })?;
        for (name, value) in
            [("issued_on", Some(&certificate.issued_on)), ("valid_from", Some(&certificate.valid_from))]
                .into_iter()
                .chain([("valid_until", certificate.valid_until.as_ref())])
        {
            if let Some(value) = value {
                parse_date(value)
                    .ok_or_else(|| MalformedCertificate(format!("/{name}: '{value}' is not a date (yyyy-MM-dd)")))?;
            }
        }
        if certificate.certificate_id.trim().is_empty() {
            return Err(MalformedCertificate("/certificate_id: empty".into()));
        }
        Ok(certificate)
    }

    /// The exact bytes an issuer signs (签名原文): this certificate's canonical JSON without
    /// `signature` and `status`, members sorted by key at every level, no whitespace, absent
    /// members omitted. docs/canonical.md documents the form for issuers.
    pub fn signed_bytes(&self) -> Vec<u8> {
        let mut value = match serde_json::to_value(self) {
            Ok(value) => value,
            // Serialising plain strings and maps cannot fail; an empty text signs nothing valid.
            Err(_) => return Vec::new(),
        };
        if let Some(object) = value.as_object_mut() {
            object.remove("signature");
            object.remove("status");
        }
        // serde_json's Map is a BTreeMap here (no preserve_order): members come out sorted.
        serde_json::to_vec(&value).unwrap_or_default()
    }

    /// Whether the certificate may be printed on `today` (Beijing date).
    pub fn printable_on(&self, today: NaiveDate) -> Result<(), NotPrintable> {
        if self.status != CertificateStatus::Valid {
            return Err(NotPrintable::Withdrawn(self.status));
        }
        if parse_date(&self.valid_from).is_some_and(|from| today < from) {
            return Err(NotPrintable::NotYetValid { valid_from: self.valid_from.clone() });
        }
        match &self.valid_until {
            Some(until) if parse_date(until).is_some_and(|until| today > until) => {
                Err(NotPrintable::Expired { valid_until: until.clone() })
            }
            _ => Ok(()),
        }
    }
}

/// A canonical date.
pub fn parse_date(text: &str) -> Option<NaiveDate> {
    (text.len() == 10).then(|| NaiveDate::parse_from_str(text, "%Y-%m-%d").ok()).flatten()
}

/// Today in Beijing (UTC+8), the calendar certificates are dated in.
pub fn beijing_today(now: chrono::DateTime<chrono::Utc>) -> NaiveDate {
    now.with_timezone(&crate::mapping::datetime::beijing()).date_naive()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    pub(crate) fn sample() -> Value {
        json!({
            "certificate_id": "GZ-DEMO-0001",
            "type": {"code": "household_transfer_permit", "name": "准予迁入证明"},
            "holder": {"name": "张三", "id_type": "resident_id", "id_number": "11010519491231002X"},
            "issuer": {"name": "贵阳市公安局云岩区分局", "region": "520103"},
            "issued_on": "2026-11-20",
            "valid_from": "2026-11-20",
            "valid_until": "2036-11-19",
            "status": "valid",
            "fields": {"reason": "投靠亲属"},
            "signature": {"algorithm": "ed25519", "key_id": "k1", "value": "AAAA"}
        })
    }

    #[test]
    fn the_signed_bytes_are_sorted_compact_and_leave_out_signature_and_status() {
        let certificate = Certificate::from_canonical(&sample()).unwrap();
        let text = String::from_utf8(certificate.signed_bytes()).unwrap();
        assert_eq!(
            text,
            r#"{"certificate_id":"GZ-DEMO-0001","fields":{"reason":"投靠亲属"},"holder":{"id_number":"11010519491231002X","id_type":"resident_id","name":"张三"},"issued_on":"2026-11-20","issuer":{"name":"贵阳市公安局云岩区分局","region":"520103"},"type":{"code":"household_transfer_permit","name":"准予迁入证明"},"valid_from":"2026-11-20","valid_until":"2036-11-19"}"#
        );
    }

    #[test]
    fn long_term_certificates_leave_valid_until_out() {
        let mut value = sample();
        value.as_object_mut().unwrap().remove("valid_until");
        value.as_object_mut().unwrap().remove("fields");
        let certificate = Certificate::from_canonical(&value).unwrap();
        let text = String::from_utf8(certificate.signed_bytes()).unwrap();
        assert!(!text.contains("valid_until") && !text.contains("fields"), "{text}");
        let far = NaiveDate::from_ymd_opt(2099, 1, 1).unwrap();
        assert_eq!(certificate.printable_on(far), Ok(()));
    }

    #[test]
    fn malformed_answers_name_the_field() {
        let mut value = sample();
        value["issued_on"] = json!("2026/11/20");
        let error = Certificate::from_canonical(&value).unwrap_err();
        assert!(error.0.contains("/issued_on"), "{error:?}");
        let mut value = sample();
        value["holder"]["id_type"] = json!("library_card");
        let error = Certificate::from_canonical(&value).unwrap_err();
        assert!(error.0.contains("holder/id_type"), "{error:?}");
    }

    #[test]
    fn withdrawn_expired_and_future_certificates_are_not_printable() {
        let today = NaiveDate::from_ymd_opt(2026, 11, 22).unwrap();
        let mut value = sample();
        assert_eq!(Certificate::from_canonical(&value).unwrap().printable_on(today), Ok(()));
        value["status"] = json!("cancelled");
        assert_eq!(
            Certificate::from_canonical(&value).unwrap().printable_on(today),
            Err(NotPrintable::Withdrawn(CertificateStatus::Cancelled))
        );
        let mut value = sample();
        value["valid_until"] = json!("2026-11-21");
        assert!(matches!(
            Certificate::from_canonical(&value).unwrap().printable_on(today),
            Err(NotPrintable::Expired { .. })
        ));
        assert_eq!(
            Certificate::from_canonical(&value).unwrap().printable_on(NaiveDate::from_ymd_opt(2026, 11, 21).unwrap()),
            Ok(()),
            "the last day is still valid"
        );
        let mut value = sample();
        value["valid_from"] = json!("2026-12-01");
        assert!(matches!(
            Certificate::from_canonical(&value).unwrap().printable_on(today),
            Err(NotPrintable::NotYetValid { .. })
        ));
    }
}
