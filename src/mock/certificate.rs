//! Electronic certificate library (电子证照库) of one running mock: certificates in a model of
//! their own, the form that is signed (签名原文) and the demo signing keys (演示密钥).
//!
//! What is signed is the canonical form described in `docs/platforms/pinyin-json.md` §7.2; it is
//! built here from the mock's own data, never from the gateway's mapping files. Each style renders
//! certificates in its own terms; only `pinyin-json` serves them.

use std::collections::HashMap;

use chrono::NaiveDate;
use serde_json::{Map, Value, json};
use sha2::{Digest as _, Sha256};

use super::validate::IdType;

/// Distinguishing identifier (用户标识) of every SM2 signature: the standard's default.
pub(crate) const SM2_DIST_ID: &str = "1234567812345678";

/// Certificate type (证照类型).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum CertKind {
    /// 准予迁入证明.
    HouseholdTransferPermit,
    /// 营业执照.
    BusinessLicense,
}

impl CertKind {
    fn canonical(self) -> &'static str {
        match self {
            CertKind::HouseholdTransferPermit => "household_transfer_permit",
            CertKind::BusinessLicense => "business_license",
        }
    }

    /// Certificate name (证照名称).
    pub(crate) fn name(self) -> &'static str {
        match self {
            CertKind::HouseholdTransferPermit => "准予迁入证明",
            CertKind::BusinessLicense => "营业执照",
        }
    }
}

/// Certificate status (证照状态); not part of what is signed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum CertStatus {
    /// 有效.
    Valid,
    /// 注销.
    Cancelled,
    /// 吊销.
    Revoked,
}

/// One type-specific item (证照信息项).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Field {
    /// 迁出地址.
    MoveFromAddress,
    /// 迁入地址.
    MoveToAddress,
    /// 迁移原因.
    Reason,
    /// 主体名称.
    EnterpriseName,
    /// 统一社会信用代码.
    CreditCode,
    /// 主体类型.
    EnterpriseType,
    /// 经营场所.
    Address,
    /// 经营范围.
    BusinessScope,
}

impl Field {
    fn canonical(self) -> &'static str {
        match self {
            Field::MoveFromAddress => "move_from_address",
            Field::MoveToAddress => "move_to_address",
            Field::Reason => "reason",
            Field::EnterpriseName => "enterprise_name",
            Field::CreditCode => "credit_code",
            Field::EnterpriseType => "enterprise_type",
            Field::Address => "address",
            Field::BusinessScope => "business_scope",
        }
    }
}

/// The canonical name of an id type (证件类型).
fn canonical_id_type(t: IdType) -> &'static str {
    match t {
        IdType::ResidentId => "resident_id",
        IdType::Passport => "passport",
        IdType::HkMacaoPermit => "hk_macao_pass",
        IdType::TaiwanPermit => "taiwan_pass",
        IdType::ForeignPermanentResident => "foreign_permanent_resident",
        IdType::Uscc => "uscc",
    }
}

/// Holder (持证人).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Holder {
    /// 姓名 (法人: 名称).
    pub name: String,
    /// 证件类型.
    pub id_type: IdType,
    /// 证件号码.
    pub id_number: String,
}

/// Signature algorithm (签名算法).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Algorithm {
    /// Ed25519 (RFC 8032), 64-byte signature.
    Ed25519,
    /// SM2 with SM3 (GB/T 32918.2), signature r‖s of 64 bytes.
    Sm2WithSm3,
}

impl Algorithm {
    /// The name platforms write (`Ed25519`, `SM2withSM3`).
    pub(crate) fn name(self) -> &'static str {
        match self {
            Algorithm::Ed25519 => "Ed25519",
            Algorithm::Sm2WithSm3 => "SM2withSM3",
        }
    }
}

/// The demo signing keys (演示签名密钥): derived from their ids, so anyone can list the public keys.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum DemoKey {
    /// `gz-zzk-ed25519-2026`, the current Ed25519 key.
    Ed25519Of2026,
    /// `gz-zzk-sm2-2026`, the current SM2 key.
    Sm2Of2026,
    /// `gz-zzk-ed25519-2019`, a retired Ed25519 key (valid 2019-01-01 to 2021-12-31).
    Ed25519Of2019,
}

/// A demo key could not sign (cannot happen with the fixed demo secrets; tests pin them).
#[derive(Debug, thiserror::Error)]
#[error("demo key {0} cannot sign")]
pub(crate) struct SignError(&'static str);

impl DemoKey {
    /// Key id (密钥标识).
    pub(crate) fn id(self) -> &'static str {
        match self {
            DemoKey::Ed25519Of2026 => "gz-zzk-ed25519-2026",
            DemoKey::Sm2Of2026 => "gz-zzk-sm2-2026",
            DemoKey::Ed25519Of2019 => "gz-zzk-ed25519-2019",
        }
    }

    pub(crate) fn algorithm(self) -> Algorithm {
        match self {
            DemoKey::Ed25519Of2026 | DemoKey::Ed25519Of2019 => Algorithm::Ed25519,
            DemoKey::Sm2Of2026 => Algorithm::Sm2WithSm3,
        }
    }

    /// The secret: SHA-256 of `tongban demo 贵州省电子证照库 <id>` (Ed25519 seed / SM2 scalar).
    fn secret(self) -> [u8; 32] {
        Sha256::digest(format!("tongban demo 贵州省电子证照库 {}", self.id()).as_bytes()).into()
    }

    fn sm2(self) -> Result<sm2::dsa::SigningKey, SignError> {
        sm2::dsa::SigningKey::from_slice(SM2_DIST_ID, &self.secret()).map_err(|_| SignError(self.id()))
    }

    /// The public key: Ed25519 32 bytes, SM2 uncompressed SEC1 (65 bytes, `04‖x‖y`). Only tests
    /// need it: callers get the public keys from the style document.
    #[cfg(test)]
    pub(crate) fn public_key(self) -> Result<Vec<u8>, SignError> {
        match self.algorithm() {
            Algorithm::Ed25519 => {
                Ok(ed25519_dalek::SigningKey::from_bytes(&self.secret()).verifying_key().to_bytes().to_vec())
            }
            Algorithm::Sm2WithSm3 => Ok(self.sm2()?.verifying_key().to_sec1_bytes().into_vec()),
        }
    }

    fn sign(self, message: &[u8]) -> Result<Vec<u8>, SignError> {
        match self.algorithm() {
            Algorithm::Ed25519 => {
                use ed25519_dalek::Signer as _;
                Ok(ed25519_dalek::SigningKey::from_bytes(&self.secret()).sign(message).to_bytes().to_vec())
            }
            Algorithm::Sm2WithSm3 => {
                use sm2::dsa::signature::Signer as _;
                // RFC 6979 nonces: the same certificate always gets the same signature.
                let signature: sm2::dsa::Signature = self.sm2()?.try_sign(message).map_err(|_| SignError(self.id()))?;
                Ok(signature.to_bytes().to_vec())
            }
        }
    }
}

/// A certificate's signature (签名).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Seal {
    pub key: DemoKey,
    /// Raw signature bytes (签名值).
    pub value: Vec<u8>,
}

/// One certificate (电子证照).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Certificate {
    /// 证照编号.
    pub id: String,
    pub kind: CertKind,
    pub holder: Holder,
    /// 发证机关.
    pub issuer: String,
    /// 发证机关区划.
    pub issuer_region: String,
    /// 发证日期.
    pub issued_on: NaiveDate,
    /// 有效期起.
    pub valid_from: NaiveDate,
    /// 有效期止; `None` is 长期.
    pub valid_until: Option<NaiveDate>,
    pub status: CertStatus,
    /// 证照信息, each item at most once; an absent item is omitted.
    pub fields: Vec<(Field, String)>,
    /// `None`: an unsigned certificate.
    pub seal: Option<Seal>,
}

fn day(d: NaiveDate) -> String {
    d.format("%Y-%m-%d").to_string()
}

/// Rebuilds every object with its members in key order, whatever map serde_json is built with.
fn sorted(value: Value) -> Value {
    match value {
        Value::Object(map) => {
            let mut members: Vec<(String, Value)> = map.into_iter().map(|(k, v)| (k, sorted(v))).collect();
            members.sort_by(|a, b| a.0.cmp(&b.0));
            Value::Object(members.into_iter().collect())
        }
        Value::Array(items) => Value::Array(items.into_iter().map(sorted).collect()),
        other => other,
    }
}

impl Certificate {
    /// The canonical form without `signature` and `status` (签名原文的对象).
    pub(crate) fn canonical(&self) -> Value {
        let fields: Map<String, Value> =
            self.fields.iter().map(|(f, v)| (f.canonical().to_owned(), Value::String(v.clone()))).collect();
        let mut doc = json!({
            "certificate_id": self.id,
            "type": {"code": self.kind.canonical(), "name": self.kind.name()},
            "holder": {
                "name": self.holder.name,
                "id_type": canonical_id_type(self.holder.id_type),
                "id_number": self.holder.id_number,
            },
            "issuer": {"name": self.issuer, "region": self.issuer_region},
            "issued_on": day(self.issued_on),
            "valid_from": day(self.valid_from),
        });
        if let Value::Object(map) = &mut doc {
            if let Some(until) = self.valid_until {
                map.insert("valid_until".to_owned(), Value::String(day(until)));
            }
            // An empty `fields` is left out, as every other absent member.
            if !fields.is_empty() {
                map.insert("fields".to_owned(), Value::Object(fields));
            }
        }
        sorted(doc)
    }

    /// The signed bytes (签名原文): the canonical form, compact, members sorted, non-ASCII as is.
    pub(crate) fn signed_bytes(&self) -> Vec<u8> {
        // `Value`'s Display is `serde_json::to_string`: no whitespace, minimal escapes.
        self.canonical().to_string().into_bytes()
    }

    /// Signs the certificate as it is now with a demo key, replacing any signature.
    pub(crate) fn sign(&mut self, key: DemoKey) -> Result<(), SignError> {
        let value = key.sign(&self.signed_bytes())?;
        self.seal = Some(Seal { key, value });
        Ok(())
    }
}

/// Signs, or serves the certificate unsigned (and says so) when the key cannot sign.
pub(crate) fn signed(mut cert: Certificate, key: DemoKey) -> Certificate {
    if let Err(e) = cert.sign(key) {
        tracing::error!(certificate = %cert.id, error = %e, "Demo certificate left unsigned.");
    }
    cert
}

/// All certificates of one platform instance (证照库).
#[derive(Debug, Default)]
pub(crate) struct CertificateStore {
    by_id: HashMap<String, Certificate>,
}

impl CertificateStore {
    /// The library a platform starts with: the demo certificates of §7.4 on 贵州, none elsewhere.
    pub(crate) fn for_platform(platform_name: &str) -> Self {
        let mut store = CertificateStore::default();
        if platform_name == "guizhou" {
            for cert in guizhou_demo() {
                store.insert(cert);
            }
        }
        store
    }

    pub(crate) fn get(&self, id: &str) -> Option<&Certificate> {
        self.by_id.get(id)
    }

    /// Adds a certificate; `false` (and nothing changes) when its id is already taken.
    pub(crate) fn insert(&mut self, cert: Certificate) -> bool {
        if self.by_id.contains_key(&cert.id) {
            return false;
        }
        self.by_id.insert(cert.id.clone(), cert);
        true
    }

    /// Changes a certificate's status; `None` when the certificate is unknown.
    pub(crate) fn set_status(&mut self, id: &str, status: CertStatus) -> Option<&Certificate> {
        let cert = self.by_id.get_mut(id)?;
        cert.status = status;
        Some(cert)
    }
}

fn date(y: i32, m: u32, d: u32) -> NaiveDate {
    // Only called with the fixed dates below, which exist; the tests pin them.
    NaiveDate::from_ymd_opt(y, m, d).unwrap_or_default()
}

/// The demo certificates of 贵州 (`docs/platforms/pinyin-json.md` §7.4).
fn guizhou_demo() -> Vec<Certificate> {
    let holder =
        Holder { name: "张三".to_owned(), id_type: IdType::ResidentId, id_number: "11010519491231002X".to_owned() };
    let transfer = |id: &str| Certificate {
        id: id.to_owned(),
        kind: CertKind::HouseholdTransferPermit,
        holder: holder.clone(),
        issuer: "贵阳市公安局云岩区分局".to_owned(),
        issuer_region: "520103".to_owned(),
        issued_on: date(2026, 11, 20),
        valid_from: date(2026, 11, 20),
        valid_until: Some(date(2036, 11, 19)),
        status: CertStatus::Valid,
        fields: vec![
            (Field::MoveFromAddress, "北京市西城区复兴门内大街100号".to_owned()),
            (Field::MoveToAddress, "贵州省贵阳市云岩区中华北路1号".to_owned()),
            (Field::Reason, "投靠亲属".to_owned()),
        ],
        seal: None,
    };
    let licence = Certificate {
        id: "GZ-DEMO-SM2-0001".to_owned(),
        kind: CertKind::BusinessLicense,
        holder: holder.clone(),
        issuer: "贵阳市云岩区市场监督管理局".to_owned(),
        issuer_region: "520103".to_owned(),
        issued_on: date(2026, 11, 20),
        valid_from: date(2026, 11, 20),
        valid_until: None,
        status: CertStatus::Valid,
        fields: vec![
            (Field::EnterpriseName, "贵阳市云岩区张三便利店".to_owned()),
            (Field::CreditCode, "92520103MA6DL9P27T".to_owned()),
            (Field::EnterpriseType, "个体工商户".to_owned()),
            (Field::Address, "贵州省贵阳市云岩区中华北路1号".to_owned()),
            (Field::BusinessScope, "日用百货零售".to_owned()),
        ],
        seal: None,
    };

    let mut tampered = signed(transfer("GZ-DEMO-TAMPERED"), DemoKey::Ed25519Of2026);
    // Changed after signing: the signature is over 张三.
    tampered.holder.name = "李四".to_owned();

    let mut old = transfer("GZ-DEMO-OLDKEY");
    old.issued_on = date(2020, 6, 1);
    old.valid_from = date(2020, 6, 1);
    old.valid_until = Some(date(2030, 5, 31));

    let mut cancelled = signed(transfer("GZ-DEMO-CANCELLED"), DemoKey::Ed25519Of2026);
    cancelled.status = CertStatus::Cancelled;

    let mut expired = transfer("GZ-DEMO-EXPIRED");
    expired.issued_on = date(2026, 1, 10);
    expired.valid_from = date(2026, 1, 10);
    expired.valid_until = Some(date(2026, 2, 18));

    vec![
        signed(transfer("GZ-DEMO-0001"), DemoKey::Ed25519Of2026),
        signed(licence, DemoKey::Sm2Of2026),
        tampered,
        transfer("GZ-DEMO-UNSIGNED"),
        signed(old, DemoKey::Ed25519Of2019),
        cancelled,
        signed(expired, DemoKey::Ed25519Of2026),
    ]
}

#[cfg(test)]
mod tests {
    use base64::Engine as _;
    use base64::engine::general_purpose::STANDARD;

    use super::*;
    use crate::mock::testutil::{ED25519_2019, ED25519_2026, SM2_2026};

    #[test]
    fn public_keys_are_the_documented_ones() {
        let keys = [
            (DemoKey::Ed25519Of2026, ED25519_2026, 32),
            (DemoKey::Sm2Of2026, SM2_2026, 65),
            (DemoKey::Ed25519Of2019, ED25519_2019, 32),
        ];
        for (key, documented, len) in keys {
            let public = key.public_key().expect("demo key");
            assert_eq!(public.len(), len);
            assert_eq!(STANDARD.encode(&public), documented, "{}", key.id());
        }
        assert_eq!(DemoKey::Sm2Of2026.public_key().expect("demo key")[0], 0x04);
    }

    #[test]
    fn signed_bytes_are_sorted_compact_and_minimally_escaped() {
        let mut cert = guizhou_demo().remove(1);
        cert.fields = vec![(Field::BusinessScope, "a\"b\\c\n\u{1}/é百".to_owned())];
        let text = String::from_utf8(cert.signed_bytes()).expect("UTF-8");
        assert_eq!(
            text,
            concat!(
                r#"{"certificate_id":"GZ-DEMO-SM2-0001","fields":{"business_scope":"a\"b\\c\n\u0001/é百"},"#,
                r#""holder":{"id_number":"11010519491231002X","id_type":"resident_id","name":"张三"},"#,
                r#""issued_on":"2026-11-20","issuer":{"name":"贵阳市云岩区市场监督管理局","region":"520103"},"#,
                r#""type":{"code":"business_license","name":"营业执照"},"valid_from":"2026-11-20"}"#
            )
        );
    }

    #[test]
    fn demo_library_and_status_changes() {
        let mut store = CertificateStore::for_platform("guizhou");
        for id in [
            "GZ-DEMO-0001",
            "GZ-DEMO-SM2-0001",
            "GZ-DEMO-TAMPERED",
            "GZ-DEMO-UNSIGNED",
            "GZ-DEMO-OLDKEY",
            "GZ-DEMO-CANCELLED",
            "GZ-DEMO-EXPIRED",
        ] {
            assert_eq!(store.get(id).map(|c| c.id.as_str()), Some(id));
        }
        let sealed = |id: &str| store.get(id).and_then(|c| c.seal.as_ref()).map(|s| s.key);
        assert_eq!(sealed("GZ-DEMO-0001"), Some(DemoKey::Ed25519Of2026));
        assert_eq!(sealed("GZ-DEMO-SM2-0001"), Some(DemoKey::Sm2Of2026));
        assert_eq!(sealed("GZ-DEMO-OLDKEY"), Some(DemoKey::Ed25519Of2019));
        assert_eq!(sealed("GZ-DEMO-UNSIGNED"), None);
        assert!(CertificateStore::for_platform("yunnan").get("GZ-DEMO-0001").is_none());

        let first = store.get("GZ-DEMO-0001").cloned().expect("demo");
        assert!(!store.insert(first.clone()));
        let changed = store.set_status("GZ-DEMO-0001", CertStatus::Revoked).map(|c| c.status);
        assert_eq!(changed, Some(CertStatus::Revoked));
        assert!(store.set_status("GZ-DEMO-9999", CertStatus::Valid).is_none());
        // The status is not signed: the signature still covers the same bytes.
        let revoked = store.get("GZ-DEMO-0001").expect("demo");
        assert_eq!(revoked.signed_bytes(), first.signed_bytes());
        assert_eq!(revoked.status, CertStatus::Revoked);
    }
}
