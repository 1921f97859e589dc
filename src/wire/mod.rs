//! Wire formats (报文格式): native documents as bytes, in JSON or XML and in UTF-8, GBK or GB18030.

pub mod charset;
pub mod xml;

use serde_json::Value;

use self::charset::{Charset, CharsetError};
use self::xml::{Element, Namespaces, XmlError};
use crate::mapping::WireFormat;

/// A parsed native document.
#[derive(Debug, Clone, PartialEq)]
pub enum NativeDoc {
    /// A JSON document.
    Json(Value),
    /// An XML document.
    Xml(Element),
}

/// Why bytes could not be read or written as a native document.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum WireError {
    /// The bytes are not in the expected character encoding.
    #[error(transparent)]
    Charset(#[from] CharsetError),
    /// The text is not JSON.
    #[error("the body is not valid JSON: {message} (line {line}, column {column})")]
    Json {
        /// What serde_json said.
        message: String,
        /// 1-based line.
        line: usize,
        /// 1-based column.
        column: usize,
    },
    /// JSON nested deeper than the limit (嵌套过深): refused before parsing, so depth cannot
    /// exhaust the stack or the parser's time.
    #[error(
        "the JSON body is nested deeper than {limit} levels (at line {line}, column {column}); flatten the document"
    )]
    JsonTooDeep {
        /// The limit.
        limit: usize,
        /// 1-based line of the first bracket past the limit.
        line: usize,
        /// 1-based column.
        column: usize,
    },
    /// The text is not well-formed XML.
    #[error("the body is not valid XML: {0}")]
    Xml(#[from] XmlError),
    /// The document kind does not match the format.
    #[error("a {expected} document was expected")]
    Format {
        /// The format expected.
        expected: &'static str,
    },
}

/// Reads a native document.
pub fn decode(
    bytes: &[u8],
    format: WireFormat,
    charset: Charset,
    namespaces: &Namespaces,
) -> Result<NativeDoc, WireError> {
    match format {
        WireFormat::Json => {
            // Decoding first is also fastest for UTF-8: from_str on checked text beats from_slice.
            let text = charset.decode(bytes)?;
            check_json_depth(text.as_bytes(), MAX_JSON_DEPTH)?;
            serde_json::from_str(&text).map(NativeDoc::Json).map_err(|e| WireError::Json {
                message: json_message(&e),
                line: e.line(),
                column: e.column(),
            })
        }
        WireFormat::Xml => Ok(NativeDoc::Xml(xml::parse(bytes, charset, namespaces)?)),
    }
}

/// Writes a native document.
pub fn encode(doc: &NativeDoc, charset: Charset, namespaces: &Namespaces) -> Result<Vec<u8>, WireError> {
    match doc {
        NativeDoc::Json(value) => {
            let text = value.to_string();
            Ok(charset.encode_strict(&text)?.into_owned())
        }
        NativeDoc::Xml(element) => Ok(xml::write(element, charset, namespaces)),
    }
}

/// Nesting ceiling for native JSON documents (the canonical API's is `[server] max_json_depth`).
pub const MAX_JSON_DEPTH: usize = 64;

/// Refuses JSON text nested deeper than `limit` arrays and objects, in one pass over the bytes
/// (strings skipped, so brackets inside them do not count). Malformed text passes here and is
/// refused by the parser with its own message.
pub fn check_json_depth(text: &[u8], limit: usize) -> Result<(), WireError> {
    let mut depth = 0usize;
    let mut in_string = false;
    let mut escaped = false;
    for (at, &byte) in text.iter().enumerate() {
        if in_string {
            match byte {
                _ if escaped => escaped = false,
                b'\\' => escaped = true,
                b'"' => in_string = false,
                _ => {}
            }
            continue;
        }
        match byte {
            b'"' => in_string = true,
            b'[' | b'{' => {
                depth += 1;
                if depth > limit {
                    let before = &text[..at];
                    let line = before.iter().filter(|&&b| b == b'\n').count() + 1;
                    let line_start = before.iter().rposition(|&b| b == b'\n').map_or(0, |i| i + 1);
                    let column = String::from_utf8_lossy(&before[line_start..]).chars().count() + 1;
                    return Err(WireError::JsonTooDeep { limit, line, column });
                }
            }
            b']' | b'}' => depth = depth.saturating_sub(1),
            _ => {}
        }
    }
    Ok(())
}

/// serde_json appends " at line L column C"; the position is reported separately.
fn json_message(error: &serde_json::Error) -> String {
    let text = error.to_string();
    match text.rfind(" at line ") {
        Some(i) => text[..i].to_owned(),
        None => text,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_depth_counts_brackets_outside_strings() {
        assert!(check_json_depth(br#"{"a":[{"b":"[[[[[[[[{{{{"}]}"#, 3).is_ok());
        assert!(check_json_depth(br#"{"a":"\"[[[["}"#, 1).is_ok());
        let deep = format!("{}{}", "[".repeat(5), "]".repeat(5));
        assert!(check_json_depth(deep.as_bytes(), 5).is_ok());
        assert_eq!(
            check_json_depth(format!("{{\n  \"x\": {deep}}}").as_bytes(), 5),
            Err(WireError::JsonTooDeep { limit: 5, line: 2, column: 12 })
        );
    }
}
