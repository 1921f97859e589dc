//! The mapping language (映射语言): declarative, two-way translation between the canonical model
//! and a platform's native documents, compiled once into plans.
//!
//! A partner province describes each operation of its platform in a TOML file under `mappings/`
//! (see docs/onboarding.md). Every rule reads in both directions, so one file serves calls to the
//! platform (canonical → native request, native → canonical answer) and calls from it (native
//! ingress: native → canonical request, canonical → native answer).

pub mod compile;
pub mod datetime;
pub mod path;
pub mod plan;
pub mod raw;
pub mod table;
pub mod testcase;
pub mod tree;

use serde_json::{Map, Value};

use self::path::{JsonPath, XmlPath};
pub use self::plan::MapError;
use self::plan::Rule;
pub use self::raw::{Direction, MessageKind, WireFormat};
use self::testcase::TestCase;
pub use crate::wire::NativeDoc;
use crate::wire::xml::{Element, Namespaces};

/// One message's compiled rules.
#[derive(Debug, Clone)]
pub enum Message {
    /// Rules for a native JSON message.
    Json(Vec<Rule<JsonPath>>),
    /// Rules for a native XML message with its root element.
    Xml {
        /// The root element name.
        root: String,
        /// The rules.
        rules: Vec<Rule<XmlPath>>,
    },
}

/// A compiled mapping file.
#[derive(Debug, Clone)]
pub struct Mapping {
    /// Name relative to `mappings/`, e.g. `pinyin-json/submit.toml`.
    pub name: String,
    /// The file, for messages.
    pub file: String,
    /// What it is for.
    pub description: Option<String>,
    /// Native wire format.
    pub format: WireFormat,
    /// XML namespaces used by paths.
    pub namespaces: Namespaces,
    /// The request rules.
    pub request: Option<Message>,
    /// The response rules.
    pub response: Option<Message>,
    /// In-file test cases.
    pub tests: Vec<TestCase>,
}

impl Mapping {
    /// The rules of one message.
    pub fn message(&self, kind: MessageKind) -> Option<&Message> {
        match kind {
            MessageKind::Request => self.request.as_ref(),
            MessageKind::Response => self.response.as_ref(),
        }
    }

    fn require(&self, kind: MessageKind) -> Result<&Message, MapError> {
        self.message(kind).ok_or_else(|| MapError::Shape {
            path: "/".into(),
            detail: format!(
                "mapping {} has no {} message",
                self.name,
                match kind {
                    MessageKind::Request => "request",
                    MessageKind::Response => "response",
                }
            ),
        })
    }

    /// Canonical → native.
    pub fn to_native(&self, kind: MessageKind, canonical: &Value) -> Result<NativeDoc, MapError> {
        match self.require(kind)? {
            Message::Json(rules) => {
                let mut doc = Value::Object(Map::new());
                plan::to_native(rules, canonical, &mut doc)?;
                Ok(NativeDoc::Json(doc))
            }
            Message::Xml { root, rules } => {
                let mut doc = Element::new(root.as_str());
                plan::to_native(rules, canonical, &mut doc)?;
                Ok(NativeDoc::Xml(doc))
            }
        }
    }

    /// Native → canonical.
    pub fn to_canonical(&self, kind: MessageKind, native: &NativeDoc) -> Result<Value, MapError> {
        let mut canonical = Value::Object(Map::new());
        match (self.require(kind)?, native) {
            (Message::Json(rules), NativeDoc::Json(doc)) => plan::to_canonical(rules, doc, &mut canonical)?,
            (Message::Xml { root, rules }, NativeDoc::Xml(doc)) => {
                if &doc.name != root {
                    return Err(MapError::Shape {
                        path: "/".into(),
                        detail: format!("the document's root element is <{}>, expected <{root}>", doc.name),
                    });
                }
                plan::to_canonical(rules, doc, &mut canonical)?
            }
            (_, _) => {
                return Err(MapError::Shape {
                    path: "/".into(),
                    detail: format!("mapping {} expects a {} document", self.name, self.format.name()),
                });
            }
        }
        Ok(canonical)
    }
}
