//! Business envelopes (业务响应外壳): many platforms answer HTTP 200 and put the real outcome in
//! the body (`{"code":0,"msg":…,"data":…}`). The envelope says where the outcome code and message
//! live, which codes mean success, and what each error code means canonically.

use std::collections::{BTreeMap, HashMap};

use serde::Deserialize;

use crate::config::diagnostic::Diagnostics;
use crate::config::source::{KeyPath, SpannedDoc};
use crate::mapping::WireFormat;
use crate::mapping::path::{JsonPath, XmlPath};
use crate::mapping::table::native_key;
use crate::mapping::tree::Tree;
use crate::wire::NativeDoc;

/// What a platform's business error means, canonically (业务结果).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    /// The platform found the request invalid (校验失败): 422.
    Invalid,
    /// The platform refused it for business reasons (不予受理): 422.
    Rejected,
    /// The case or matter does not exist there: 404.
    NotFound,
    /// Already submitted (重复提交): 409.
    Duplicate,
    /// The platform is busy or down for now (系统繁忙); retrying later may work: 503.
    Unavailable,
}

impl Outcome {
    /// The name used in files and problem bodies.
    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Invalid => "invalid",
            Outcome::Rejected => "rejected",
            Outcome::NotFound => "not_found",
            Outcome::Duplicate => "duplicate",
            Outcome::Unavailable => "unavailable",
        }
    }
}

/// An envelope as written in an adapter file.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawEnvelope {
    /// Native path of the outcome code. When absent from an answer, the answer is a success.
    pub code: String,
    /// Values of `code` that mean success.
    #[serde(default)]
    pub success: Vec<toml::Value>,
    /// Native path of a finer error code looked up in `errors` (defaults to `code`).
    #[serde(default)]
    pub error_code: Option<String>,
    /// Native path of the platform's message.
    #[serde(default)]
    pub message: Option<String>,
    /// Error code → canonical outcome.
    #[serde(default)]
    pub errors: BTreeMap<String, Outcome>,
    /// Outcome of an error code not listed in `errors` (default `rejected`).
    #[serde(default)]
    pub default_error: Option<Outcome>,
}

/// A compiled native path in either format.
#[derive(Debug, Clone)]
pub enum NativePath {
    /// JSON.
    Json(JsonPath),
    /// XML.
    Xml(XmlPath),
}

impl NativePath {
    fn compile(text: &str, format: WireFormat) -> Result<NativePath, String> {
        match format {
            WireFormat::Json => JsonPath::parse(text, false).map(NativePath::Json),
            WireFormat::Xml => XmlPath::parse(text, false).map(NativePath::Xml),
        }
    }

    /// Reads a scalar as text.
    pub fn read(&self, doc: &NativeDoc) -> Option<String> {
        let value = match (self, doc) {
            (NativePath::Json(path), NativeDoc::Json(json)) => json.get_value(path),
            (NativePath::Xml(path), NativeDoc::Xml(xml)) => xml.get_value(path),
            _ => None,
        };
        value.map(|v| native_key(&v)).filter(|s| !s.is_empty())
    }
}

/// A compiled envelope.
#[derive(Debug, Clone)]
pub struct Envelope {
    code: NativePath,
    success: Vec<String>,
    error_code: Option<NativePath>,
    message: Option<NativePath>,
    errors: HashMap<String, Outcome>,
    default_error: Outcome,
}

/// A business error found in an answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BusinessError {
    /// The canonical outcome.
    pub outcome: Outcome,
    /// The platform's code.
    pub code: String,
    /// The platform's message, if any.
    pub message: Option<String>,
}

impl RawEnvelope {
    /// Compiles; errors go to `diagnostics`.
    pub fn compile(
        &self,
        format: WireFormat,
        doc: &SpannedDoc<'_>,
        at: &KeyPath,
        diagnostics: &mut Diagnostics,
    ) -> Option<Envelope> {
        let mut path = |text: &str, key: &str| match NativePath::compile(text, format) {
            Ok(path) => Some(path),
            Err(message) => {
                doc.report(diagnostics, &at.key(key), message);
                None
            }
        };
        let code = path(&self.code, "code");
        let error_code = self.error_code.as_ref().map(|p| path(p, "error_code"));
        let message = self.message.as_ref().map(|p| path(p, "message"));
        let mut success = Vec::new();
        for (index, value) in self.success.iter().enumerate() {
            match value {
                toml::Value::String(s) => success.push(s.clone()),
                toml::Value::Integer(i) => success.push(i.to_string()),
                _ => {
                    doc.report(diagnostics, &at.key("success").index(index), "a success code is a string or an integer")
                }
            }
        }
        Some(Envelope {
            code: code?,
            success,
            error_code: error_code.flatten(),
            message: message.flatten(),
            errors: self.errors.iter().map(|(k, v)| (k.clone(), *v)).collect(),
            default_error: self.default_error.unwrap_or(Outcome::Rejected),
        })
    }
}

impl Envelope {
    /// The business error in an answer, if any. A missing code counts as success, so REST-style
    /// platforms can put `code` on their error body only.
    pub fn check(&self, doc: &NativeDoc) -> Option<BusinessError> {
        let code = self.code.read(doc)?;
        if self.success.contains(&code) {
            return None;
        }
        let detail = self.error_code.as_ref().and_then(|p| p.read(doc)).unwrap_or(code);
        Some(BusinessError {
            outcome: self.errors.get(&detail).copied().unwrap_or(self.default_error),
            code: detail,
            message: self.message.as_ref().and_then(|p| p.read(doc)),
        })
    }

    /// Namespace prefixes used by the envelope's XML paths.
    pub fn prefixes(&self) -> Vec<&str> {
        [Some(&self.code), self.error_code.as_ref(), self.message.as_ref()]
            .into_iter()
            .flatten()
            .filter_map(|p| match p {
                NativePath::Xml(x) => Some(x.prefixes().collect::<Vec<_>>()),
                NativePath::Json(_) => None,
            })
            .flatten()
            .collect()
    }
}
