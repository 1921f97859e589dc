//! Raw mapping files (映射文件) as partners write them, before compilation.
//!
//! A mapping file describes one operation of one platform: how a canonical request becomes the
//! platform's native request and back, and how its native answer becomes canonical and back.
//! Every rule is read in both directions, so the same file serves calls to the platform and
//! calls from it (native ingress). See docs/onboarding.md for the full language.

use std::collections::BTreeMap;

use serde::Deserialize;

/// The wire format of the native side.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum WireFormat {
    /// JSON documents.
    Json,
    /// XML documents.
    Xml,
}

impl WireFormat {
    /// Lowercase name as written in files.
    pub fn name(self) -> &'static str {
        match self {
            WireFormat::Json => "json",
            WireFormat::Xml => "xml",
        }
    }
}

/// A whole mapping file.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawMappingFile {
    /// Native wire format: `json` or `xml`; must match the adapter that uses the mapping.
    pub format: WireFormat,
    /// What the mapping is for, shown by `tongban check`.
    #[serde(default)]
    pub description: Option<String>,
    /// XML namespace prefixes used in paths: prefix → URI. Documents may use other prefixes for
    /// the same URI; they are matched by URI.
    #[serde(default)]
    pub namespaces: BTreeMap<String, String>,
    /// The request: canonical ↔ native. Absent for operations whose request has no body.
    #[serde(default)]
    pub request: Option<RawMessage>,
    /// The answer: native ↔ canonical.
    #[serde(default)]
    pub response: Option<RawMessage>,
    /// Code tables local to this file (shared tables live in mappings/tables/).
    #[serde(default, rename = "table")]
    pub tables: Vec<RawTable>,
    /// Test cases, run by `tongban check` and `cargo test`.
    #[serde(default, rename = "test")]
    pub tests: Vec<RawTest>,
}

/// One message (request or response): an ordered list of field rules.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawMessage {
    /// Field rules, applied in order; rules with `when` run after all others.
    pub fields: Vec<RawField>,
}

/// One path or several (for `separator` joins and splits).
#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
pub enum OneOrMany {
    /// A single path.
    One(String),
    /// Several paths joined with `separator`.
    Many(Vec<String>),
}

/// Value types for coercion.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ValueType {
    /// A JSON string.
    String,
    /// A JSON integer.
    Integer,
    /// A JSON number.
    Number,
    /// A JSON boolean (`true`/`false`, also `1`/`0` when read).
    Boolean,
}

/// One field rule.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawField {
    /// Path in the canonical document (JSON), or several paths joined by `separator`.
    #[serde(default)]
    pub canonical: Option<OneOrMany>,
    /// Path in the native document (JSON or XML), or several paths joined by `separator`.
    #[serde(default)]
    pub native: Option<OneOrMany>,
    /// A fixed value written on the side that has a path, in the direction towards that side.
    #[serde(default)]
    pub constant: Option<toml::Value>,
    /// A canonical value used when the source is absent.
    #[serde(default)]
    pub default: Option<toml::Value>,
    /// Refuse the document when the source is absent (and no default applies).
    #[serde(default)]
    pub required: bool,
    /// Native date/time format: a pattern such as `yyyyMMdd` or `epoch_millis`.
    #[serde(default)]
    pub date: Option<String>,
    /// Name of a code table (值域代码表) translating canonical codes to native codes.
    #[serde(default)]
    pub table: Option<String>,
    /// Joins several paths into one value, or splits one value into several.
    #[serde(default)]
    pub separator: Option<String>,
    /// Only apply this rule when the condition holds.
    #[serde(default)]
    pub when: Option<RawCondition>,
    /// The paths name arrays (JSON) or repeated elements (XML); these rules map each item.
    #[serde(default)]
    pub each: Option<Vec<RawField>>,
    /// Copy a whole object (JSON) or element's children (XML) of string values, e.g. form fields.
    #[serde(default)]
    pub subtree: bool,
    /// Type of the canonical value (default: as produced).
    #[serde(default, rename = "type")]
    pub canonical_type: Option<ValueType>,
    /// Type of the native value in JSON (XML values are always text).
    #[serde(default)]
    pub native_type: Option<ValueType>,
    /// A note for readers; ignored by the engine.
    #[serde(default)]
    pub note: Option<String>,
}

/// A condition on a canonical or native value.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawCondition {
    /// Canonical path to test.
    #[serde(default)]
    pub canonical: Option<String>,
    /// Native path to test.
    #[serde(default)]
    pub native: Option<String>,
    /// Holds when the value equals this.
    #[serde(default)]
    pub equals: Option<toml::Value>,
    /// Holds when the value is absent or differs from this.
    #[serde(default)]
    pub not_equals: Option<toml::Value>,
    /// Holds when the value is present (`true`) or absent (`false`).
    #[serde(default)]
    pub exists: Option<bool>,
}

/// A code table (值域代码表): canonical code → native code, read both ways.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawTable {
    /// Name used by `table = "…"` in field rules.
    pub name: String,
    /// What the table encodes, e.g. "性别 GB/T 2261.1-2003".
    #[serde(default)]
    pub description: Option<String>,
    /// canonical code = native code; one-to-one so it reads both ways.
    pub values: BTreeMap<String, toml::Value>,
    /// Native code written for a canonical code not in the table (otherwise an error).
    #[serde(default)]
    pub native_default: Option<String>,
    /// Canonical code produced for a native code not in the table (otherwise an error).
    #[serde(default)]
    pub canonical_default: Option<String>,
}

/// A file of shared code tables (mappings/tables/*.toml).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawTableFile {
    /// The tables.
    #[serde(rename = "table")]
    pub tables: Vec<RawTable>,
}

/// Which message a test exercises.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum MessageKind {
    /// The request message.
    Request,
    /// The response message.
    Response,
}

/// The direction of a translation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Direction {
    /// Canonical → native.
    ToNative,
    /// Native → canonical.
    ToCanonical,
}

/// A test case inside a mapping file.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawTest {
    /// A name shown when the test fails.
    pub name: String,
    /// `request` or `response`.
    pub message: MessageKind,
    /// `to-native` or `to-canonical`.
    pub direction: Direction,
    /// The input document: a TOML table (for JSON) or a string of JSON or XML.
    pub input: toml::Value,
    /// The expected output document, in the same forms.
    #[serde(default)]
    pub expected: Option<toml::Value>,
    /// Instead of `expected`: a fragment the translation error must contain.
    #[serde(default)]
    pub expected_error: Option<String>,
}
