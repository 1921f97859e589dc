//! The canonical exchange model (规范交换模型): what every platform's native format translates to
//! and from. Documented for callers in docs/canonical.md.

pub mod ids;
pub mod validate;

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

/// Handling mode (办理模式).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Mode {
    /// 全程网办: fully online.
    Online,
    /// 异地代收代办: a window in one region accepts for another region and forwards.
    ProxyAcceptance,
    /// 多地联办: several places each handle a part.
    MultiSite,
}

impl Mode {
    /// The name as written in documents and config.
    pub fn as_str(self) -> &'static str {
        match self {
            Mode::Online => "online",
            Mode::ProxyAcceptance => "proxy_acceptance",
            Mode::MultiSite => "multi_site",
        }
    }
}

/// Kind of applicant (申请人类型).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ApplicantKind {
    /// 自然人.
    NaturalPerson,
    /// 法人 (and other organisations).
    LegalPerson,
}

/// Identity document type (证件类型).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum IdType {
    /// 居民身份证 (GB 11643).
    ResidentId,
    /// 护照.
    Passport,
    /// 港澳居民来往内地通行证.
    HkMacaoPass,
    /// 台湾居民来往大陆通行证.
    TaiwanPass,
    /// 外国人永久居留身份证.
    ForeignPermanentResident,
    /// 统一社会信用代码 (GB 32100), for legal persons.
    Uscc,
}

/// Gender per GB/T 2261.1 (性别).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Gender {
    /// 男 (1).
    Male,
    /// 女 (2).
    Female,
    /// 未知的性别 (0).
    Unknown,
    /// 未说明的性别 (9).
    Unspecified,
}

/// A matter reference (事项): catalogue code and name.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MatterRef {
    /// 事项编码.
    pub code: String,
    /// 事项名称.
    pub name: String,
}

/// A legal person's legal representative (法定代表人).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LegalRepresentative {
    /// Name.
    pub name: String,
    /// Identity document type.
    #[serde(default)]
    pub id_type: Option<IdType>,
    /// Identity document number.
    #[serde(default)]
    pub id_number: Option<String>,
}

/// The applicant (申请人).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Applicant {
    /// Natural or legal person.
    pub kind: ApplicantKind,
    /// The person's name, or the organisation's name.
    pub name: String,
    /// Identity document type.
    pub id_type: IdType,
    /// Identity document number.
    pub id_number: String,
    /// Gender (natural persons).
    #[serde(default)]
    pub gender: Option<Gender>,
    /// Birth date, `yyyy-MM-dd` (natural persons).
    #[serde(default)]
    pub birth_date: Option<String>,
    /// Phone number.
    #[serde(default)]
    pub phone: Option<String>,
    /// Address.
    #[serde(default)]
    pub address: Option<String>,
    /// Unified social credit code (legal persons).
    #[serde(default)]
    pub uscc: Option<String>,
    /// Legal representative (legal persons).
    #[serde(default)]
    pub legal_representative: Option<LegalRepresentative>,
}

/// An application material (申请材料).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Material {
    /// 材料名称.
    pub name: String,
    /// Media type, e.g. `application/pdf`.
    pub media_type: String,
    /// SHA-256 of the content, lowercase hex.
    pub sha256: String,
    /// Size in bytes.
    pub size: u64,
    /// The content, base64 (standard alphabet, padded).
    #[serde(default)]
    pub content_base64: Option<String>,
    /// Or a reference (URL) to the content held elsewhere.
    #[serde(default)]
    pub reference: Option<String>,
}

/// An application (申请/办件) as exchanged through the gateway.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Application {
    /// Gateway id, time-ordered (UUIDv7); assigned when absent.
    #[serde(default)]
    pub application_id: Option<String>,
    /// The matter applied for.
    pub matter: MatterRef,
    /// 办理地: region code of the handling authority (GB/T 2260).
    pub handling_region: String,
    /// 收件地: region code where the application was accepted.
    pub accepting_region: String,
    /// Handling mode.
    pub mode: Mode,
    /// The applicant.
    pub applicant: Applicant,
    /// Materials.
    #[serde(default)]
    pub materials: Vec<Material>,
    /// Matter-specific form fields (表单).
    #[serde(default)]
    pub form: Map<String, Value>,
    /// Submission time, ISO 8601 with offset.
    pub submitted_at: String,
}

/// State of an application at the handling platform (办件状态).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum State {
    /// 已接收.
    Received,
    /// 已受理.
    Accepted,
    /// 办理中.
    InProgress,
    /// 需补正.
    SupplementRequired,
    /// 办结 (准予).
    Approved,
    /// 不予受理 / 不予许可.
    Rejected,
    /// 撤回.
    Withdrawn,
}

/// A matter-list entry (通办事项) as answered by `GET /v1/matters`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Matter {
    /// 事项编码.
    pub code: String,
    /// 事项名称.
    pub name: String,
    /// 实施部门.
    #[serde(default)]
    pub department: Option<String>,
}
