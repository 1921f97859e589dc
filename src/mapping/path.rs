//! Field paths (字段路径) in canonical JSON and in native JSON or XML documents.
//!
//! - JSON paths are JSON-pointer-like: `/applicant/name`, `/materials/0/name`; `~1` and `~0`
//!   escape `/` and `~` as in RFC 6901. Inside `each`, paths are relative to the array item and
//!   `.` means the item itself.
//! - XML paths name elements from the root: `/REQUEST/BODY/SQR/XM`; a last segment `@LX` is an
//!   attribute and `.` the element's own text; names may carry a namespace prefix declared in the
//!   mapping (`/jq:Application/@ref`). Inside `each`, paths are relative to the repeated element.
//!
//! Paths are parsed once when a mapping compiles; applying them never parses text.

use std::fmt;

/// One step of a JSON path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum JsonStep {
    /// An object member.
    Key(String),
    /// An array element.
    Index(usize),
}

/// A compiled JSON path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JsonPath {
    steps: Vec<JsonStep>,
    text: String,
}

impl JsonPath {
    /// Parses `/a/b/0`, or a relative `a/b` and `.` inside `each`.
    pub fn parse(text: &str, relative: bool) -> Result<JsonPath, String> {
        let body = if text == "." && relative {
            ""
        } else if let Some(rest) = text.strip_prefix('/') {
            if relative {
                rest
            } else if rest.is_empty() {
                return Err("the path '/' names the whole document; name a field such as '/applicant/name'".into());
            } else {
                rest
            }
        } else if relative {
            text
        } else {
            return Err(format!("JSON path '{text}' must start with '/', e.g. '/{text}'"));
        };
        let mut steps = Vec::new();
        if !body.is_empty() {
            for raw in body.split('/') {
                if raw.is_empty() {
                    return Err(format!("JSON path '{text}' has an empty segment; remove the doubled '/'"));
                }
                let key = raw.replace("~1", "/").replace("~0", "~");
                match key.parse::<usize>() {
                    Ok(index) if !key.starts_with('+') => steps.push(JsonStep::Index(index)),
                    _ => steps.push(JsonStep::Key(key)),
                }
            }
        }
        Ok(JsonPath { steps, text: text.to_owned() })
    }

    /// The steps from the document (or item) root.
    pub fn steps(&self) -> &[JsonStep] {
        &self.steps
    }

    /// The path as written in the mapping.
    pub fn as_str(&self) -> &str {
        &self.text
    }

    /// True for `.`: the item itself.
    pub fn is_self(&self) -> bool {
        self.steps.is_empty()
    }
}

impl fmt::Display for JsonPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

/// What an XML path ends on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum XmlLeaf {
    /// The text of the last element.
    Text,
    /// An attribute of the last element.
    Attribute(String),
}

/// A compiled XML path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct XmlPath {
    /// The root element name for an absolute path; `None` inside `each`.
    root: Option<String>,
    elements: Vec<String>,
    leaf: XmlLeaf,
    text: String,
}

impl XmlPath {
    /// Parses `/ROOT/A/B`, `/ROOT/A/@attr`, or relative `B`, `@attr`, `.` inside `each`.
    pub fn parse(text: &str, relative: bool) -> Result<XmlPath, String> {
        let body = match (text.strip_prefix('/'), relative) {
            (Some(rest), false) => rest,
            (None, false) => {
                return Err(format!(
                    "XML path '{text}' must start with '/' and the root element, e.g. '/REQUEST/{text}'"
                ));
            }
            (Some(rest), true) => rest,
            (None, true) => text,
        };
        let mut parts: Vec<&str> = if body.is_empty() || body == "." { Vec::new() } else { body.split('/').collect() };
        let mut leaf = XmlLeaf::Text;
        if let Some(last) = parts.last().copied() {
            if let Some(attribute) = last.strip_prefix('@') {
                check_xml_name(attribute, text)?;
                leaf = XmlLeaf::Attribute(attribute.to_owned());
                parts.pop();
            } else if last == "." {
                parts.pop();
            }
        }
        for part in &parts {
            if part.starts_with('@') {
                return Err(format!("XML path '{text}': an attribute ('{part}') can only be the last segment"));
            }
            check_xml_name(part, text)?;
        }
        let mut elements: Vec<String> = parts.iter().map(|p| (*p).to_owned()).collect();
        let root = if relative {
            None
        } else if elements.is_empty() {
            return Err(format!("XML path '{text}' must name the root element, e.g. '/REQUEST/BODY/XM'"));
        } else {
            Some(elements.remove(0))
        };
        Ok(XmlPath { root, elements, leaf, text: text.to_owned() })
    }

    /// The root element of an absolute path.
    pub fn root(&self) -> Option<&str> {
        self.root.as_deref()
    }

    /// Element names below the root (or below the item inside `each`).
    pub fn elements(&self) -> &[String] {
        &self.elements
    }

    /// Text or attribute.
    pub fn leaf(&self) -> &XmlLeaf {
        &self.leaf
    }

    /// The path as written.
    pub fn as_str(&self) -> &str {
        &self.text
    }

    /// Every namespace prefix the path uses.
    pub fn prefixes(&self) -> impl Iterator<Item = &str> {
        let attribute = match &self.leaf {
            XmlLeaf::Attribute(name) => Some(name.as_str()),
            XmlLeaf::Text => None,
        };
        self.root
            .iter()
            .map(String::as_str)
            .chain(self.elements.iter().map(String::as_str))
            .chain(attribute)
            .filter_map(|name| name.split_once(':').map(|(prefix, _)| prefix))
    }
}

impl fmt::Display for XmlPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

fn check_xml_name(name: &str, path: &str) -> Result<(), String> {
    let valid_char = |c: char| c.is_alphanumeric() || matches!(c, '_' | '-' | '.' | ':');
    let starts_well = name.chars().next().is_some_and(|c| c.is_alphabetic() || c == '_');
    if name.is_empty() || !starts_well || !name.chars().all(valid_char) || name.matches(':').count() > 1 {
        return Err(format!(
            "XML path '{path}': '{name}' is not an XML name; use letters, digits, '_', '-', '.' and at most one 'prefix:'"
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_paths_parse_keys_indexes_and_escapes() {
        let path = JsonPath::parse("/materials/0/a~1b", false).unwrap();
        assert_eq!(path.steps(), &[JsonStep::Key("materials".into()), JsonStep::Index(0), JsonStep::Key("a/b".into())]);
        assert!(JsonPath::parse(".", true).unwrap().is_self());
        assert!(JsonPath::parse("name", false).unwrap_err().contains("must start with '/'"));
        assert!(JsonPath::parse("/a//b", false).unwrap_err().contains("empty segment"));
    }

    #[test]
    fn xml_paths_split_root_elements_and_leaf() {
        let path = XmlPath::parse("/jq:Application/jq:Matter/@code", false).unwrap();
        assert_eq!(path.root(), Some("jq:Application"));
        assert_eq!(path.elements(), &["jq:Matter".to_owned()]);
        assert_eq!(path.leaf(), &XmlLeaf::Attribute("code".into()));
        assert_eq!(path.prefixes().collect::<Vec<_>>(), vec!["jq", "jq"]);
        let relative = XmlPath::parse(".", true).unwrap();
        assert!(relative.elements().is_empty() && relative.root().is_none());
        assert!(XmlPath::parse("/A/@x/B", false).is_err());
        assert!(XmlPath::parse("/A/1B", false).is_err());
    }
}
