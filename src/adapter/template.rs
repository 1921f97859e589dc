//! Path templates (路径模板): `/api/sb/cx?wbbh={application_id}`, filled from the canonical request.
//! Placeholders are checked against the operation's fields at load; values are percent-encoded.

use serde_json::Value;

#[derive(Debug, Clone)]
enum Part {
    Literal(String),
    Field(String),
}

/// A compiled path template.
#[derive(Debug, Clone)]
pub struct PathTemplate {
    parts: Vec<Part>,
}

/// A placeholder whose value the canonical request does not carry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MissingField(pub String);

impl PathTemplate {
    /// Parses a template; `fields` are the placeholders allowed.
    pub fn parse(text: &str, fields: &[&str]) -> Result<PathTemplate, String> {
        if !text.starts_with('/') {
            return Err(format!("path '{text}' must start with '/'"));
        }
        let mut parts = Vec::new();
        let mut rest = text;
        while let Some(open) = rest.find('{') {
            if open > 0 {
                parts.push(Part::Literal(rest[..open].to_owned()));
            }
            let Some(close) = rest[open..].find('}') else {
                return Err(format!("path '{text}' has an unclosed '{{'"));
            };
            let field = &rest[open + 1..open + close];
            if !fields.contains(&field) {
                return Err(format!(
                    "placeholder '{{{field}}}' is not a field of this operation; use one of: {}",
                    fields.join(", ")
                ));
            }
            parts.push(Part::Field(field.to_owned()));
            rest = &rest[open + close + 1..];
        }
        if !rest.is_empty() {
            parts.push(Part::Literal(rest.to_owned()));
        }
        Ok(PathTemplate { parts })
    }

    /// Fills the template from the canonical request's top-level fields.
    pub fn render(&self, canonical: &Value) -> Result<String, MissingField> {
        let mut out = String::new();
        for part in &self.parts {
            match part {
                Part::Literal(text) => out.push_str(text),
                Part::Field(name) => {
                    let value = match canonical.get(name) {
                        Some(Value::String(s)) if !s.is_empty() => s.clone(),
                        Some(Value::Number(n)) => n.to_string(),
                        _ => return Err(MissingField(name.clone())),
                    };
                    percent_encode(&value, &mut out);
                }
            }
        }
        Ok(out)
    }
}

/// RFC 3986 unreserved characters pass; everything else is %XX of its UTF-8 bytes.
fn percent_encode(value: &str, out: &mut String) {
    for byte in value.bytes() {
        if byte.is_ascii_alphanumeric() || matches!(byte, b'-' | b'_' | b'.' | b'~') {
            out.push(byte as char);
        } else {
            out.push_str(&format!("%{byte:02X}"));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn renders_and_encodes_fields() {
        let template =
            PathTemplate::parse("/cx?wbbh={application_id}&q={region}", &["application_id", "region"]).unwrap();
        let path = template.render(&json!({"application_id": "a b/张", "region": "520102"})).unwrap();
        assert_eq!(path, "/cx?wbbh=a%20b%2F%E5%BC%A0&q=520102");
        assert_eq!(template.render(&json!({"region": "1"})).unwrap_err(), MissingField("application_id".into()));
        assert!(PathTemplate::parse("/x/{nope}", &["region"]).unwrap_err().contains("use one of: region"));
    }
}
