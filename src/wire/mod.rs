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

/// serde_json appends " at line L column C"; the position is reported separately.
fn json_message(error: &serde_json::Error) -> String {
    let text = error.to_string();
    match text.rfind(" at line ") {
        Some(i) => text[..i].to_owned(),
        None => text,
    }
}
