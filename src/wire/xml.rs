//! A minimal XML document model (XML 文档模型) for platform payloads:
//! elements, attributes, text. No mixed content, no DTDs.
//!
//! Parsing decodes the whole body with the adapter's configured [`Charset`]
//! first, then reads the `&str` with quick-xml's namespace-aware reader.
//! Element and attribute names are rewritten to the prefixes the mapping
//! declares in [`Namespaces`], so mappings never depend on the prefixes a
//! platform happens to choose (`ns0:`, `tns:`, a default namespace...).

use std::borrow::Cow;

use quick_xml::XmlVersion;
use quick_xml::escape::resolve_xml_entity;
use quick_xml::events::{BytesStart, Event};
use quick_xml::name::ResolveResult;
use quick_xml::reader::NsReader;

use crate::wire::charset::{Charset, CharsetError};

/// Deepest element nesting [`parse`] accepts (最大嵌套深度); the root is level 1.
pub const MAX_DEPTH: usize = 64;

/// Largest input [`parse`] accepts, in bytes (最大报文长度).
pub const MAX_INPUT_BYTES: usize = 64 * 1024 * 1024;

/// Most elements [`parse`] builds from one document (最大元素个数); bounds
/// memory, since `<a/>` costs 4 bytes on the wire and ~100 in the tree.
pub const MAX_ELEMENTS: usize = 1_000_000;

/// Most attributes on one element (最大属性个数): real documents carry a handful, and the
/// duplicate check per attribute stays cheap.
pub const MAX_ATTRIBUTES: usize = 256;

/// Characters XML 1.0 does not allow anywhere (its `Char` production): control characters
/// other than tab, newline and carriage return, and U+FFFE/U+FFFF.
fn forbidden_char(c: char) -> bool {
    (c < '\u{20}' && !matches!(c, '\t' | '\n' | '\r')) || matches!(c, '\u{FFFE}' | '\u{FFFF}')
}

/// An XML element (XML 元素): its name, attributes in document order, child
/// elements and text.
///
/// Names are `local` or `prefix:local` with the prefixes of [`Namespaces`].
/// `text` is the unescaped concatenation of all character data directly
/// inside the element, or `""` when that is whitespace only.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Element {
    /// Element name (元素名), `local` or `prefix:local`.
    pub name: String,
    /// Attributes (属性) as (name, unescaped value), in document order.
    pub attributes: Vec<(String, String)>,
    /// Child elements (子元素) in document order.
    pub children: Vec<Element>,
    /// Text content (文本内容), unescaped.
    pub text: String,
}

/// Namespace bindings a mapping declares (命名空间绑定): prefix → URI.
///
/// Names in the DOM are written `prefix:local` using THESE prefixes, whatever
/// prefixes the document itself used. An empty prefix stands for the default
/// namespace: elements in it are named by their local name alone.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Namespaces {
    /// (prefix, URI) pairs; the first binding wins when a prefix or URI repeats.
    pub bindings: Vec<(String, String)>,
}

impl Namespaces {
    /// The prefix bound to a namespace URI (命名空间前缀), if any.
    pub fn prefix_for(&self, uri: &str) -> Option<&str> {
        self.bindings.iter().find(|(_, u)| u == uri).map(|(p, _)| p.as_str())
    }

    /// The namespace URI bound to a prefix, if any.
    pub fn uri_for(&self, prefix: &str) -> Option<&str> {
        self.bindings.iter().find(|(p, _)| p == prefix).map(|(_, u)| u.as_str())
    }
}

/// Why a document could not be parsed (XML 解析错误).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum XmlError {
    /// The bytes are not valid in the configured charset (字符编码错误).
    #[error("{0}")]
    Charset(#[from] CharsetError),
    /// Malformed XML (语法错误); line and column are 1-based, the column counted in characters.
    #[error("XML syntax error at line {line}, column {column}: {message}")]
    Syntax {
        /// 1-based line.
        line: usize,
        /// 1-based column, in characters.
        column: usize,
        /// What is wrong.
        message: String,
    },
    /// Elements nested deeper than [`MAX_DEPTH`] (嵌套过深).
    #[error("XML nested deeper than {limit} elements")]
    TooDeep {
        /// The nesting limit.
        limit: usize,
    },
    /// A DOCTYPE declaration, refused so no entity is ever expanded (禁止 DTD).
    #[error("XML DOCTYPE declarations are not accepted")]
    Doctype,
    /// A prefix used without an `xmlns:prefix` declaration in scope (未声明的命名空间前缀).
    #[error("XML namespace prefix `{prefix}` is not declared")]
    UnboundPrefix {
        /// The undeclared prefix.
        prefix: String,
    },
    /// No root element (缺少根元素).
    #[error("XML document has no root element")]
    NoRoot,
    /// Content after the root element (根元素之后有多余内容).
    #[error("XML document has content after the root element")]
    TrailingContent,
    /// The document exceeds [`MAX_INPUT_BYTES`] or [`MAX_ELEMENTS`] (报文过大).
    #[error("XML document too large: more than {limit} {what}")]
    TooLarge {
        /// "bytes" or "elements".
        what: &'static str,
        /// The limit exceeded.
        limit: usize,
    },
}

impl Element {
    /// A new element with no attributes, children or text.
    pub fn new(name: impl Into<String>) -> Element {
        Element { name: name.into(), ..Element::default() }
    }

    /// The first child with that name (子元素).
    pub fn child(&self, name: &str) -> Option<&Element> {
        self.children.iter().find(|c| c.name == name)
    }

    /// The first child with that name, mutably.
    pub fn child_mut(&mut self, name: &str) -> Option<&mut Element> {
        self.children.iter_mut().find(|c| c.name == name)
    }

    /// All children with that name, in order (重复元素).
    pub fn children_named<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a Element> + 'a {
        self.children.iter().filter(move |c| c.name == name)
    }

    /// The first child with that name, or a new empty one appended.
    pub fn child_mut_or_insert(&mut self, name: &str) -> &mut Element {
        match self.children.iter().position(|c| c.name == name) {
            Some(i) => &mut self.children[i],
            None => self.push_child(Element::new(name)),
        }
    }

    /// Appends a child and returns it.
    pub fn push_child(&mut self, child: Element) -> &mut Element {
        let i = self.children.len();
        self.children.push(child);
        &mut self.children[i]
    }

    /// The value of an attribute (属性值).
    pub fn attribute(&self, name: &str) -> Option<&str> {
        self.attributes.iter().find(|(n, _)| n == name).map(|(_, v)| v.as_str())
    }

    /// Sets an attribute: replaces the value in place, or appends it, so the
    /// order of the others is kept.
    pub fn set_attribute(&mut self, name: &str, value: impl Into<String>) {
        let value = value.into();
        match self.attributes.iter_mut().find(|(n, _)| n == name) {
            Some((_, v)) => *v = value,
            None => self.attributes.push((name.to_owned(), value)),
        }
    }
}

/// Parses a whole document (解析 XML).
///
/// `charset` is the adapter's configured encoding and wins over the XML
/// declaration. Comments and processing instructions are skipped; a DOCTYPE
/// is rejected; exactly one root element is required.
pub fn parse(bytes: &[u8], charset: Charset, namespaces: &Namespaces) -> Result<Element, XmlError> {
    if bytes.len() > MAX_INPUT_BYTES {
        return Err(XmlError::TooLarge { what: "bytes", limit: MAX_INPUT_BYTES });
    }
    let text = charset.decode(bytes)?;
    // A GB18030 BOM decodes to U+FEFF (UTF-8's is already stripped).
    let src = text.strip_prefix('\u{FEFF}').unwrap_or(&text);
    // One pass over the text: a NUL or a control character is never data.
    if let Some((at, c)) = src.char_indices().find(|&(_, c)| forbidden_char(c)) {
        let (line, column) = line_column(src, at);
        let message = format!("character U+{:04X} is not allowed in XML 1.0", u32::from(c));
        return Err(XmlError::Syntax { line, column, message });
    }
    Parser { src, namespaces, stack: Vec::with_capacity(16), root: None, elements: 0 }.run()
}

/// An open element and whitespace seen in it before any other text, kept
/// aside (usually borrowed) so pretty-printing costs no allocation.
struct Frame<'i> {
    element: Element,
    pending_ws: Cow<'i, str>,
}

struct Parser<'i, 'n> {
    src: &'i str,
    namespaces: &'n Namespaces,
    stack: Vec<Frame<'i>>,
    root: Option<Element>,
    elements: usize,
}

impl<'i> Parser<'i, '_> {
    fn run(mut self) -> Result<Element, XmlError> {
        let mut reader = NsReader::from_str(self.src);
        loop {
            let event = match reader.read_event() {
                Ok(event) => event,
                Err(e) => {
                    let at = usize::try_from(reader.error_position()).unwrap_or(usize::MAX);
                    return Err(self.syntax(at, e.to_string()));
                }
            };
            match event {
                Event::Start(start) => {
                    let element = self.open(&reader, &start)?;
                    self.stack.push(Frame { element, pending_ws: Cow::Borrowed("") });
                }
                Event::Empty(start) => {
                    let element = self.open(&reader, &start)?;
                    self.close(element);
                }
                Event::End(end) => match self.stack.pop() {
                    Some(frame) => self.close(frame.element),
                    // quick-xml reports unmatched end tags itself; stay safe anyway.
                    None => return Err(self.syntax(self.offset_of(&end, 2), "unmatched end tag")),
                },
                Event::Text(text) => {
                    let at = self.offset_of(&text, 0);
                    self.text(text.xml10_content(), at)?;
                }
                Event::CData(cdata) => {
                    let at = self.offset_of(&cdata, 9);
                    self.text(cdata.xml10_content(), at)?;
                }
                Event::GeneralRef(reference) => {
                    let at = self.offset_of(&reference, 1);
                    let chunk = match reference.resolve_char_ref() {
                        Ok(Some(ch)) if forbidden_char(ch) => {
                            let message =
                                format!("character reference to U+{:04X} is not allowed in XML 1.0", u32::from(ch));
                            return Err(self.syntax(at, message));
                        }
                        Ok(Some(ch)) => Cow::Owned(String::from(ch)),
                        Ok(None) => match resolve_xml_entity(&reference) {
                            Some(s) => Cow::Borrowed(s),
                            None => {
                                let message = format!("unknown entity `&{};`", &*reference);
                                return Err(self.syntax(at, message));
                            }
                        },
                        Err(e) => return Err(self.syntax(at, e.to_string())),
                    };
                    self.text(chunk, at)?;
                }
                Event::DocType(_) => return Err(XmlError::Doctype),
                Event::Decl(decl) => {
                    if !self.stack.is_empty() || self.root.is_some() {
                        let at = self.offset_of(&decl, 2);
                        return Err(self.syntax(at, "XML declaration after the start"));
                    }
                }
                Event::Comment(_) | Event::PI(_) => {}
                Event::Eof => break,
            }
        }
        if let Some(frame) = self.stack.last() {
            let message = format!("element `{}` is not closed", frame.element.name);
            return Err(self.syntax(self.src.len(), message));
        }
        self.root.ok_or(XmlError::NoRoot)
    }

    /// Builds an element from a start tag, resolving names through the
    /// reader's in-scope declarations.
    fn open(&mut self, reader: &NsReader<&'i [u8]>, start: &BytesStart<'i>) -> Result<Element, XmlError> {
        if self.stack.is_empty() && self.root.is_some() {
            return Err(XmlError::TrailingContent);
        }
        if self.stack.len() >= MAX_DEPTH {
            return Err(XmlError::TooDeep { limit: MAX_DEPTH });
        }
        self.elements += 1;
        if self.elements > MAX_ELEMENTS {
            return Err(XmlError::TooLarge { what: "elements", limit: MAX_ELEMENTS });
        }
        let at = self.offset_of(start, 1);
        let qname = start.name();
        if !is_name(qname.0) {
            let message = format!("invalid element name `{}`", qname.0);
            return Err(self.syntax(at, message));
        }
        let (resolved, local) = reader.resolver().resolve_element(qname);
        let mut element = Element::new(self.map_name(resolved, local.into_inner(), qname.0)?);
        for (count, attribute) in start.attributes().enumerate() {
            if count >= MAX_ATTRIBUTES {
                return Err(XmlError::TooLarge { what: "attributes on one element", limit: MAX_ATTRIBUTES });
            }
            let attribute = attribute.map_err(|e| self.syntax(at, e.to_string()))?;
            // Declarations are syntax, not data: names are already rewritten.
            if attribute.key.as_namespace_binding().is_some() {
                continue;
            }
            let raw = attribute.key.0;
            if !is_name(raw) {
                return Err(self.syntax(at, format!("invalid attribute name `{raw}`")));
            }
            let (resolved, local) = reader.resolver().resolve_attribute(attribute.key);
            let name = self.map_name(resolved, local.into_inner(), raw)?;
            // quick-xml catches literal duplicates; two prefixes for one
            // namespace (a:x, b:x) only collide once renamed.
            if raw.contains(':') && element.attributes.iter().any(|(n, _)| *n == name) {
                return Err(self.syntax(at, format!("duplicate attribute `{name}`")));
            }
            // Only the five predefined entities: nothing else may expand.
            let value = attribute
                .normalized_value_with(XmlVersion::Implicit1_0, 1, resolve_xml_entity)
                .map_err(|e| self.syntax(at, e.to_string()))?;
            element.attributes.push((name, value.into_owned()));
        }
        Ok(element)
    }

    /// Names an element or attribute with the mapping's prefix for its namespace.
    fn map_name(&self, resolved: ResolveResult<'_>, local: &str, raw: &str) -> Result<String, XmlError> {
        match resolved {
            ResolveResult::Bound(uri) => match self.namespaces.prefix_for(uri.0) {
                Some("") => Ok(local.to_owned()),
                Some(prefix) => {
                    let mut name = String::with_capacity(prefix.len() + 1 + local.len());
                    name.push_str(prefix);
                    name.push(':');
                    name.push_str(local);
                    Ok(name)
                }
                None => Ok(raw.to_owned()),
            },
            ResolveResult::Unbound => Ok(raw.to_owned()),
            ResolveResult::Unknown(prefix) => Err(XmlError::UnboundPrefix { prefix }),
        }
    }

    /// Attaches a finished element to its parent, or makes it the root.
    fn close(&mut self, element: Element) {
        match self.stack.last_mut() {
            Some(parent) => parent.element.children.push(element),
            None => self.root = Some(element),
        }
    }

    /// Appends character data to the open element.
    fn text(&mut self, chunk: Cow<'i, str>, at: usize) -> Result<(), XmlError> {
        let Some(frame) = self.stack.last_mut() else {
            if is_whitespace(&chunk) {
                return Ok(());
            }
            return Err(match self.root {
                Some(_) => XmlError::TrailingContent,
                None => self.syntax(at, "text outside the root element"),
            });
        };
        let text = &mut frame.element.text;
        if !text.is_empty() {
            text.push_str(&chunk);
        } else if is_whitespace(&chunk) {
            // Dropped at the end tag unless real text follows.
            if frame.pending_ws.is_empty() {
                frame.pending_ws = chunk;
            } else {
                frame.pending_ws.to_mut().push_str(&chunk);
            }
        } else {
            let pending = std::mem::take(&mut frame.pending_ws);
            text.reserve(pending.len() + chunk.len());
            text.push_str(&pending);
            text.push_str(&chunk);
        }
        Ok(())
    }

    /// Byte offset of an event in the source, from its borrowed content;
    /// `back` steps over the markup before the content (`<`, `</`, `&`...).
    fn offset_of(&self, part: &str, back: usize) -> usize {
        let base = self.src.as_ptr() as usize;
        let addr = part.as_ptr() as usize;
        if addr >= base && addr <= base + self.src.len() { (addr - base).saturating_sub(back) } else { 0 }
    }

    fn syntax(&self, at: usize, message: impl Into<String>) -> XmlError {
        let (line, column) = line_column(self.src, at);
        XmlError::Syntax { line, column, message: message.into() }
    }
}

/// 1-based line and column (in characters) of a byte offset.
fn line_column(src: &str, at: usize) -> (usize, usize) {
    let mut at = at.min(src.len());
    while !src.is_char_boundary(at) {
        at -= 1;
    }
    let before = src.get(..at).unwrap_or_default();
    let line = before.bytes().filter(|&b| b == b'\n').count() + 1;
    let line_start = before.rfind('\n').map_or(0, |i| i + 1);
    let column = before.get(line_start..).unwrap_or_default().chars().count() + 1;
    (line, column)
}

fn is_whitespace(s: &str) -> bool {
    s.bytes().all(|b| matches!(b, b' ' | b'\t' | b'\n' | b'\r'))
}

/// A loose XML Name check: quick-xml accepts `< a>` or `<1a>`; we do not.
/// Any non-ASCII character is allowed, so CJK names (中文标签) pass.
pub(crate) fn is_name(name: &str) -> bool {
    let bytes = name.as_bytes();
    let Some((&first, _)) = bytes.split_first() else {
        return false;
    };
    let first_ok = first.is_ascii_alphabetic() || first == b'_' || first >= 0x80;
    first_ok
        && bytes.last() != Some(&b':')
        && bytes.iter().all(|&b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.' | b':') || b >= 0x80)
}

/// Serializes a document (生成 XML) with `<?xml version="1.0" encoding="LABEL"?>`.
///
/// Declares on the root element `xmlns:p="uri"` for every binding whose
/// prefix appears in an element or attribute name of the tree (and
/// `xmlns="uri"` for an empty-prefix binding if some element name has no
/// prefix). Compact, empty elements as `<A/>`; `&`, `<`, `>` are escaped
/// everywhere, `"` and tab/CR/LF in attributes, CR in text, so the tree
/// parses back unchanged. An element's text is written before its
/// children. Encoded with [`Charset::encode_xml`], so text outside GBK
/// survives as `&#NNNN;`. Names are written as they are and must be valid
/// XML names representable in `charset`.
pub fn write(root: &Element, charset: Charset, namespaces: &Namespaces) -> Vec<u8> {
    let xml = serialize(root, charset.label(), namespaces);
    let encoded = match charset.encode_xml(&xml) {
        Cow::Owned(bytes) => Some(bytes),
        // Same bytes as the String: reuse its buffer instead of copying.
        Cow::Borrowed(_) => None,
    };
    encoded.unwrap_or_else(|| xml.into_bytes())
}

/// Same as [`write()`], but returns the document as a String labelled UTF-8,
/// for tests and logs (日志).
pub fn to_string(root: &Element, namespaces: &Namespaces) -> String {
    serialize(root, Charset::Utf8.label(), namespaces)
}

fn serialize(root: &Element, label: &str, namespaces: &Namespaces) -> String {
    let mut used = vec![false; namespaces.bindings.len()];
    let size = scan(root, namespaces, &mut used);
    let mut out = String::with_capacity(size + 48);
    out.push_str("<?xml version=\"1.0\" encoding=\"");
    out.push_str(label);
    out.push_str("\"?>");
    write_element(&mut out, root, namespaces, &used);
    out
}

/// Marks the bindings the tree uses and estimates the output size.
fn scan(element: &Element, namespaces: &Namespaces, used: &mut [bool]) -> usize {
    let mut size = 2 * element.name.len() + 5 + element.text.len();
    if !used.is_empty() {
        mark_prefix(&element.name, true, namespaces, used);
    }
    for (name, value) in &element.attributes {
        size += name.len() + value.len() + 4;
        if !used.is_empty() {
            mark_prefix(name, false, namespaces, used);
        }
    }
    for child in &element.children {
        size += scan(child, namespaces, used);
    }
    size
}

fn mark_prefix(name: &str, is_element: bool, namespaces: &Namespaces, used: &mut [bool]) {
    let prefix = match name.split_once(':') {
        Some((prefix, _)) => prefix,
        // Unprefixed attributes are in no namespace, whatever the default.
        None if is_element => "",
        None => return,
    };
    // `xml` is predeclared and `xmlns` may never be declared.
    if prefix == "xml" || prefix == "xmlns" {
        return;
    }
    let first = namespaces.bindings.iter().position(|(p, _)| p == prefix);
    if let Some(flag) = first.and_then(|i| used.get_mut(i)) {
        *flag = true;
    }
}

/// Writes an element; `declare` flags the bindings to declare on it (only
/// the root gets any).
fn write_element(out: &mut String, element: &Element, namespaces: &Namespaces, declare: &[bool]) {
    out.push('<');
    out.push_str(&element.name);
    for ((prefix, uri), _) in namespaces.bindings.iter().zip(declare).filter(|(_, used)| **used) {
        let start = out.len();
        out.push_str(" xmlns");
        if !prefix.is_empty() {
            out.push(':');
            out.push_str(prefix);
        }
        // An explicit attribute of the same name wins over the declaration.
        let declared = out.get(start + 1..).unwrap_or_default();
        if element.attributes.iter().any(|(n, _)| n == declared) {
            out.truncate(start);
            continue;
        }
        out.push_str("=\"");
        escape(out, uri, true);
        out.push('"');
    }
    for (name, value) in &element.attributes {
        out.push(' ');
        out.push_str(name);
        out.push_str("=\"");
        escape(out, value, true);
        out.push('"');
    }
    if element.children.is_empty() && element.text.is_empty() {
        out.push_str("/>");
        return;
    }
    out.push('>');
    escape(out, &element.text, false);
    for child in &element.children {
        write_element(out, child, namespaces, &[]);
    }
    out.push_str("</");
    out.push_str(&element.name);
    out.push('>');
}

/// Escapes markup characters; in attributes also `"` and the whitespace that
/// attribute-value normalization would turn into spaces.
fn escape(out: &mut String, s: &str, attribute: bool) {
    let mut last = 0;
    for (i, b) in s.bytes().enumerate() {
        let replacement = match b {
            b'&' => "&amp;",
            b'<' => "&lt;",
            b'>' => "&gt;",
            // A raw CR would be normalized to LF by the reader.
            b'\r' => "&#13;",
            b'"' if attribute => "&quot;",
            b'\t' if attribute => "&#9;",
            b'\n' if attribute => "&#10;",
            _ => continue,
        };
        // `i` is at an ASCII byte, hence a char boundary.
        out.push_str(s.get(last..i).unwrap_or_default());
        out.push_str(replacement);
        last = i + 1;
    }
    out.push_str(s.get(last..).unwrap_or_default());
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const JQ: &str = "http://zwfw.jiuquan.gov.cn/schema/apply/1.0";

    fn jq() -> Namespaces {
        Namespaces { bindings: vec![("jq".to_owned(), JQ.to_owned())] }
    }

    fn none() -> Namespaces {
        Namespaces::default()
    }

    fn el(name: &str, text: &str) -> Element {
        Element { text: text.to_owned(), ..Element::new(name) }
    }

    fn parse_str(s: &str) -> Result<Element, XmlError> {
        parse(s.as_bytes(), Charset::Utf8, &none())
    }

    fn sample() -> Element {
        let mut root = Element::new("Application");
        root.set_attribute("id", "SQ-2024-0001");
        root.set_attribute("备注", "含\"引号\" & <尖括号>\t\n");
        let applicant = root.push_child(Element::new("Applicant"));
        applicant.push_child(el("Name", "张三"));
        applicant.push_child(el("Address", "广东省广州市天河区体育西路1号"));
        applicant.push_child(el("Rare", "𠀀 and 䶮"));
        for n in ["1", "2", "3"] {
            root.push_child(el("Item", n)).set_attribute("seq", n);
        }
        root.push_child(Element::new("Empty"));
        root.push_child(el("Spaced", "  leading and trailing  "));
        root.push_child(el("Markup", "a < b && c > d ]]> \r\n"));
        root
    }

    #[test]
    fn round_trip_every_charset() {
        let tree = sample();
        for charset in [Charset::Utf8, Charset::Gbk, Charset::Gb18030] {
            let bytes = write(&tree, charset, &none());
            let head = format!("<?xml version=\"1.0\" encoding=\"{}\"?>", charset.label());
            assert!(bytes.starts_with(head.as_bytes()), "{charset:?}");
            assert_eq!(parse(&bytes, charset, &none()).unwrap(), tree, "{charset:?}");
        }
    }

    #[test]
    fn gbk_writes_characters_outside_gbk_as_references() {
        let bytes = write(&sample(), Charset::Gbk, &none());
        let text = Charset::Gbk.decode(&bytes).unwrap();
        assert!(text.contains("<Rare>&#131072; and &#19886;</Rare>"), "{text}");
        assert!(text.contains("<Name>张三</Name>"));
        // GB18030 covers all of Unicode: no references needed.
        let bytes = write(&sample(), Charset::Gb18030, &none());
        let text = Charset::Gb18030.decode(&bytes).unwrap();
        assert!(text.contains("<Rare>𠀀 and 䶮</Rare>"), "{text}");
    }

    #[test]
    fn golden_gbk() {
        // 张=D5C5 三=C8FD 男=C4D0
        let bytes = b"<?xml version=\"1.0\" encoding=\"GBK\"?><a x=\"\xC4\xD0\">\xD5\xC5\xC8\xFD</a>";
        let mut expected = el("a", "张三");
        expected.set_attribute("x", "男");
        assert_eq!(parse(bytes, Charset::Gbk, &none()).unwrap(), expected);
        assert_eq!(write(&expected, Charset::Gbk, &none()), bytes);
    }

    #[test]
    fn configured_charset_wins_over_declaration() {
        let utf8 = "<?xml version=\"1.0\" encoding=\"GBK\"?><a>张三</a>";
        assert_eq!(parse_str(utf8).unwrap(), el("a", "张三"));
        let gbk = b"<?xml version=\"1.0\" encoding=\"UTF-8\"?><a>\xD5\xC5\xC8\xFD</a>";
        assert_eq!(parse(gbk, Charset::Gbk, &none()).unwrap(), el("a", "张三"));
    }

    #[test]
    fn wrong_charset_is_a_charset_error() {
        let gbk = b"<a>\xD5\xC5\xC8\xFD</a>";
        assert_eq!(
            parse(gbk, Charset::Utf8, &none()).unwrap_err(),
            XmlError::Charset(CharsetError::Malformed { charset: "UTF-8", offset: 3 })
        );
        let bad_gbk = b"<a>\xD5\xC5\xFF</a>";
        assert_eq!(
            parse(bad_gbk, Charset::Gbk, &none()).unwrap_err(),
            XmlError::Charset(CharsetError::Malformed { charset: "GBK", offset: 5 })
        );
    }

    #[test]
    fn byte_order_marks_are_skipped() {
        let utf8 = b"\xEF\xBB\xBF<a>x</a>";
        assert_eq!(parse(utf8, Charset::Utf8, &none()).unwrap(), el("a", "x"));
        let gb18030 = b"\x84\x31\x95\x33<a>x</a>";
        assert_eq!(parse(gb18030, Charset::Gb18030, &none()).unwrap(), el("a", "x"));
    }

    #[test]
    fn namespaces_are_renamed_to_the_mapping_prefixes() {
        let doc = format!(
            r#"<?xml version="1.0" encoding="UTF-8"?>
<ns0:Application xmlns:ns0="{JQ}" xmlns:other="urn:other" ns0:version="2" lang="zh">
  <ns0:Applicant>
    <ns0:Name>张三</ns0:Name>
    <other:Note other:x="1">n</other:Note>
  </ns0:Applicant>
  <Plain xml:lang="zh"/>
</ns0:Application>"#
        );
        let root = parse(doc.as_bytes(), Charset::Utf8, &jq()).unwrap();
        assert_eq!(root.name, "jq:Application");
        assert_eq!(
            root.attributes,
            vec![("jq:version".to_owned(), "2".to_owned()), ("lang".to_owned(), "zh".to_owned())]
        );
        let applicant = root.child("jq:Applicant").unwrap();
        assert_eq!(applicant.text, "");
        assert_eq!(applicant.child("jq:Name").unwrap().text, "张三");
        // A namespace the mapping does not list keeps the document's prefix.
        let note = applicant.child("other:Note").unwrap();
        assert_eq!(note.attribute("other:x"), Some("1"));
        assert_eq!(root.child("Plain").unwrap().attribute("xml:lang"), Some("zh"));

        // The same document with a default namespace parses the same way.
        let default = format!(
            r#"<Application xmlns="{JQ}" xmlns:j="{JQ}" j:version="2" lang="zh"><Applicant><Name>张三</Name></Applicant></Application>"#
        );
        let root2 = parse(default.as_bytes(), Charset::Utf8, &jq()).unwrap();
        assert_eq!(root2.name, "jq:Application");
        assert_eq!(root2.attribute("jq:version"), Some("2"));
        assert_eq!(root2.child("jq:Applicant").unwrap().child("jq:Name").unwrap().text, "张三");
    }

    #[test]
    fn write_declares_used_prefixes_on_the_root() {
        let mut root = Element::new("jq:Application");
        root.set_attribute("jq:version", "2");
        root.push_child(el("jq:Name", "张三"));
        let namespaces = Namespaces {
            bindings: vec![("unused".to_owned(), "urn:unused".to_owned()), ("jq".to_owned(), JQ.to_owned())],
        };
        let xml = to_string(&root, &namespaces);
        assert_eq!(
            xml,
            format!(
                r#"<?xml version="1.0" encoding="UTF-8"?><jq:Application xmlns:jq="{JQ}" jq:version="2"><jq:Name>张三</jq:Name></jq:Application>"#
            )
        );
        assert_eq!(parse(xml.as_bytes(), Charset::Utf8, &namespaces).unwrap(), root);
        // A prefix used only on an attribute deep down is declared too.
        let mut plain = Element::new("a");
        plain.push_child(Element::new("b")).set_attribute("jq:code", "1");
        let xml = to_string(&plain, &namespaces);
        assert!(xml.contains(&format!(r#"<a xmlns:jq="{JQ}"><b jq:code="1"/></a>"#)), "{xml}");
        assert_eq!(parse(xml.as_bytes(), Charset::Utf8, &namespaces).unwrap(), plain);
    }

    #[test]
    fn default_namespace_binding() {
        let namespaces = Namespaces { bindings: vec![(String::new(), JQ.to_owned())] };
        let doc = format!(r#"<x:a xmlns:x="{JQ}"><x:b/></x:a>"#);
        let root = parse(doc.as_bytes(), Charset::Utf8, &namespaces).unwrap();
        assert_eq!(root.name, "a");
        assert_eq!(root.children[0].name, "b");
        let xml = to_string(&root, &namespaces);
        assert!(xml.ends_with(&format!(r#"<a xmlns="{JQ}"><b/></a>"#)), "{xml}");
        assert_eq!(parse(xml.as_bytes(), Charset::Utf8, &namespaces).unwrap(), root);
        // Attributes alone never pull in the default namespace.
        let mut attr_only = Element::new("p:a");
        attr_only.set_attribute("k", "v");
        assert!(!to_string(&attr_only, &namespaces).contains("xmlns"));
    }

    #[test]
    fn undeclared_prefix_is_an_error() {
        assert_eq!(parse_str("<p:a/>").unwrap_err(), XmlError::UnboundPrefix { prefix: "p".to_owned() });
        assert_eq!(parse_str("<a q:x='1'/>").unwrap_err(), XmlError::UnboundPrefix { prefix: "q".to_owned() });
    }

    #[test]
    fn attributes_keep_order_and_unescape() {
        let root =
            parse_str("<a z='1' y=\"&lt;&amp;&gt;&quot;&apos;&#20013;&#x6587;\" x='a\nb&#10;c\td&#9;'/>").unwrap();
        assert_eq!(
            root.attributes,
            vec![
                ("z".to_owned(), "1".to_owned()),
                ("y".to_owned(), "<&>\"'中文".to_owned()),
                // Literal newlines and tabs normalize to spaces; references do not.
                ("x".to_owned(), "a b\nc d\t".to_owned()),
            ]
        );
        assert!(matches!(parse_str("<a x='1' x='2'/>"), Err(XmlError::Syntax { .. })));
        assert!(matches!(parse_str("<a x=1/>"), Err(XmlError::Syntax { .. })));
        assert!(matches!(parse_str("<a x='&bogus;'/>"), Err(XmlError::Syntax { .. })));
        // Same namespace through two prefixes is the same attribute.
        let doc = format!("<a xmlns:p='{JQ}' xmlns:q='{JQ}' p:x='1' q:x='2'/>");
        assert!(matches!(parse(doc.as_bytes(), Charset::Utf8, &jq()), Err(XmlError::Syntax { .. })));
    }

    #[test]
    fn repeated_elements() {
        let root = parse_str("<list><i>1</i><j/><i>2</i><i>3</i></list>").unwrap();
        let values: Vec<&str> = root.children_named("i").map(|e| e.text.as_str()).collect();
        assert_eq!(values, ["1", "2", "3"]);
        assert_eq!(root.child("i").unwrap().text, "1");
        assert_eq!(root.children.len(), 4);
        assert!(root.child("k").is_none());
    }

    #[test]
    fn cdata_and_text_concatenate() {
        let root = parse_str("<a>x <![CDATA[<b>&amp;</b>]]> y&amp;z</a>").unwrap();
        assert_eq!(root.text, "x <b>&amp;</b> y&z");
        let root = parse_str("<a>  <![CDATA[ c ]]>\n</a>").unwrap();
        assert_eq!(root.text, "   c \n");
        assert_eq!(parse_str("<a><![CDATA[ \n ]]></a>").unwrap().text, "");
    }

    #[test]
    fn entities_and_character_references() {
        let root = parse_str("<a>&lt;&gt;&amp;&quot;&apos;&#24352;&#x4E09;&#x20000;</a>").unwrap();
        assert_eq!(root.text, "<>&\"'张三𠀀");
        assert!(matches!(parse_str("<a>&nbsp;</a>"), Err(XmlError::Syntax { .. })));
        assert!(matches!(parse_str("<a>&#0;</a>"), Err(XmlError::Syntax { .. })));
        assert!(matches!(parse_str("<a>&#xD800;</a>"), Err(XmlError::Syntax { .. })));
        assert!(matches!(parse_str("<a>a & b</a>"), Err(XmlError::Syntax { .. })));
        // A reference to a space is still whitespace-only text.
        assert_eq!(parse_str("<a>&#32;\n</a>").unwrap().text, "");
    }

    #[test]
    fn whitespace_only_text_is_dropped_other_text_is_exact() {
        let doc = "<?xml version=\"1.0\"?>\n<a>\n  <b> x </b>\n  <c>\n  </c>\n  <d>\r\n</d>\n</a>\n";
        let root = parse_str(doc).unwrap();
        assert_eq!(root.text, "");
        assert_eq!(root.child("b").unwrap().text, " x ");
        assert_eq!(root.child("c").unwrap().text, "");
        assert_eq!(root.child("d").unwrap().text, "");
        // Whitespace before real text is part of it; CRLF normalizes to LF.
        let root = parse_str("<a>\r\n  <b/>  z\r\n</a>").unwrap();
        assert_eq!(root.text, "\n    z\n");
    }

    #[test]
    fn comments_and_processing_instructions_are_skipped() {
        let root = parse_str("<!-- head --><?pi x?><a><!-- c -->x<?p?>y</a><!-- tail -->").unwrap();
        assert_eq!(root, el("a", "xy"));
    }

    #[test]
    fn doctype_is_rejected() {
        let doc = "<?xml version=\"1.0\"?><!DOCTYPE a [<!ENTITY e \"boom\">]><a>&e;</a>";
        assert_eq!(parse_str(doc).unwrap_err(), XmlError::Doctype);
        assert_eq!(parse_str("<!DOCTYPE a><a/>").unwrap_err(), XmlError::Doctype);
    }

    #[test]
    fn depth_limit() {
        let nested = |depth: usize| format!("{}{}", "<a>".repeat(depth), "</a>".repeat(depth));
        let mut root = parse_str(&nested(MAX_DEPTH)).unwrap();
        let mut depth = 1;
        while let Some(child) = root.children.pop() {
            root = child;
            depth += 1;
        }
        assert_eq!(depth, MAX_DEPTH);
        assert_eq!(parse_str(&nested(MAX_DEPTH + 1)).unwrap_err(), XmlError::TooDeep { limit: MAX_DEPTH });
        let empty_too_deep = format!("{}<b/>{}", "<a>".repeat(MAX_DEPTH), "</a>".repeat(MAX_DEPTH));
        assert_eq!(parse_str(&empty_too_deep).unwrap_err(), XmlError::TooDeep { limit: MAX_DEPTH });
    }

    fn syntax_at(doc: &str) -> (usize, usize) {
        match parse_str(doc) {
            Err(XmlError::Syntax { line, column, .. }) => (line, column),
            other => panic!("expected a syntax error for {doc:?}, got {other:?}"),
        }
    }

    #[test]
    fn syntax_errors_report_line_and_column() {
        // Mismatched end tag: points at `</c>`, columns count characters.
        assert_eq!(syntax_at("<a>\n  <b>张三\n  </c>\n</a>"), (3, 3));
        assert_eq!(syntax_at("<a>\n<b x='1' x='2'/></a>"), (2, 1));
        assert_eq!(syntax_at("<a>\n  <b"), (2, 3));
        assert_eq!(syntax_at("<a>\n 张三&bogus;</a>"), (2, 4));
        assert_eq!(syntax_at("<a>\n< b/></a>"), (2, 1));
        assert_eq!(syntax_at("<a><1b/></a>"), (1, 4));
        assert_eq!(syntax_at("</a>"), (1, 1));
        let (line, _) = syntax_at("<a>\n<b>\n</b>");
        assert_eq!(line, 3);
        assert!(matches!(syntax_at("x<a/>"), (1, 1)));
        assert!(matches!(syntax_at("<a/>\n<?xml version='1.0'?>"), (2, 1)));
        let message = match parse_str("<a></b>") {
            Err(XmlError::Syntax { message, .. }) => message,
            other => panic!("{other:?}"),
        };
        assert!(message.contains("</a>"), "{message}");
    }

    #[test]
    fn exactly_one_root() {
        for doc in ["", "  \n", "<!-- only a comment -->", "<?pi?>"] {
            assert_eq!(parse_str(doc).unwrap_err(), XmlError::NoRoot, "{doc:?}");
        }
        for doc in ["<a/><b/>", "<a/>x", "<a></a>&amp;", "<a/><![CDATA[x]]>"] {
            assert_eq!(parse_str(doc).unwrap_err(), XmlError::TrailingContent, "{doc:?}");
        }
        assert_eq!(parse_str("\n<a/>\n<!-- c --><?pi?>\n").unwrap(), Element::new("a"));
    }

    #[test]
    fn too_large_input() {
        let big = vec![b' '; MAX_INPUT_BYTES + 1];
        assert_eq!(
            parse(&big, Charset::Utf8, &none()).unwrap_err(),
            XmlError::TooLarge { what: "bytes", limit: MAX_INPUT_BYTES }
        );
    }

    #[test]
    fn writer_escapes_and_compacts() {
        let mut root = el("r", "1 < 2 & 3 > 2\r\n\"q\"");
        root.set_attribute("a", "\"x\" & <y>\t\n\r'");
        root.push_child(Element::new("e"));
        assert_eq!(
            to_string(&root, &none()),
            "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\
             <r a=\"&quot;x&quot; &amp; &lt;y&gt;&#9;&#10;&#13;'\">1 &lt; 2 &amp; 3 &gt; 2&#13;\n\"q\"<e/></r>"
        );
        assert_eq!(parse_str(&to_string(&root, &none())).unwrap(), root);
    }

    #[test]
    fn element_helpers() {
        let mut root = Element::new("root");
        assert!(root.child_mut("a").is_none());
        root.child_mut_or_insert("a").text = "1".to_owned();
        root.child_mut_or_insert("a").text.push('2');
        root.push_child(el("a", "second"));
        root.child_mut("a").unwrap().set_attribute("k", "v");
        assert_eq!(root.children.len(), 2);
        assert_eq!(root.child("a").unwrap().text, "12");
        assert_eq!(root.child("a").unwrap().attribute("k"), Some("v"));
        assert_eq!(root.children_named("a").count(), 2);

        root.set_attribute("x", "1");
        root.set_attribute("y", "2");
        root.set_attribute("x", "3");
        assert_eq!(root.attributes, vec![("x".to_owned(), "3".to_owned()), ("y".to_owned(), "2".to_owned())]);
        assert_eq!(root.attribute("z"), None);
        assert_eq!(jq().prefix_for(JQ), Some("jq"));
        assert_eq!(jq().uri_for("jq"), Some(JQ));
        assert_eq!(jq().uri_for("x"), None);
    }

    // --- property tests ---

    fn xml_char() -> impl Strategy<Value = char> {
        prop_oneof![
            3 => any::<char>().prop_map(|c| if c.is_control() && c != '\t' && c != '\n' { ' ' } else { c }),
            1 => prop::sample::select(vec![
                '<', '>', '&', '"', '\'', ' ', '\t', '\n', ']', ';', '#', '张', '三', '𠀀', '䶮', '\u{E5E5}', '€',
            ]),
        ]
    }

    fn text() -> impl Strategy<Value = String> {
        prop::collection::vec(xml_char(), 0..12).prop_map(|chars| {
            let s: String = chars.into_iter().collect();
            // Whitespace-only text is stored as "" by the parser.
            if is_whitespace(&s) { String::new() } else { s }
        })
    }

    fn value() -> impl Strategy<Value = String> {
        prop::collection::vec(xml_char(), 0..12).prop_map(|chars| chars.into_iter().collect())
    }

    fn name() -> impl Strategy<Value = String> {
        prop::sample::select(vec!["a", "b", "Item", "jq:Item", "姓名", "x-y.z_1"]).prop_map(str::to_owned)
    }

    fn attributes() -> impl Strategy<Value = Vec<(String, String)>> {
        let key = prop::sample::select(vec!["id", "x", "jq:code", "名", "xml:lang"]).prop_map(str::to_owned);
        prop::collection::btree_map(key, value(), 0..3).prop_map(|m| m.into_iter().collect())
    }

    fn tree() -> impl Strategy<Value = Element> {
        let leaf = (name(), attributes(), text()).prop_map(|(name, attributes, text)| Element {
            name,
            attributes,
            children: Vec::new(),
            text,
        });
        leaf.prop_recursive(4, 40, 4, |inner| {
            (name(), attributes(), text(), prop::collection::vec(inner, 0..4))
                .prop_map(|(name, attributes, text, children)| Element { name, attributes, children, text })
        })
    }

    /// Markup-ish fragments, so random documents get past the first byte.
    fn soup() -> impl Strategy<Value = String> {
        let token = prop_oneof![
            prop::sample::select(vec![
                "<a>",
                "</a>",
                "<b x='1'>",
                "</b>",
                "<c/>",
                "<p:d xmlns:p='u'>",
                "</p:d>",
                "<q:e/>",
                "&amp;",
                "&#x4e2d;",
                "&#0;",
                "&bogus;",
                "&",
                "<![CDATA[",
                "]]>",
                "<!--",
                "-->",
                "<?xml version='1.0'?>",
                "<?pi x?>",
                "<!DOCTYPE a>",
                "xmlns='v'",
                " y=\"2\"",
                "'",
                "\"",
                "<",
                ">",
                "/>",
                "=",
                "张三",
                "\n",
                " ",
                "\r",
            ])
            .prop_map(str::to_owned),
            any::<char>().prop_map(String::from),
        ];
        prop::collection::vec(token, 0..40).prop_map(|tokens| tokens.concat())
    }

    fn writable(element: &Element, charset: Charset) -> bool {
        let ok = |name: &str| {
            let prefix_ok = match name.split_once(':') {
                Some((prefix, _)) => prefix == "jq" || prefix == "xml",
                None => true,
            };
            prefix_ok && charset.encode_strict(name).is_ok()
        };
        ok(&element.name)
            && element.attributes.iter().all(|(n, _)| ok(n))
            && element.children.iter().all(|c| writable(c, charset))
    }

    proptest! {
        #[test]
        fn prop_round_trip(tree in tree()) {
            let namespaces = jq();
            for charset in [Charset::Utf8, Charset::Gb18030, Charset::Gbk] {
                let bytes = write(&tree, charset, &namespaces);
                prop_assert_eq!(&parse(&bytes, charset, &namespaces).unwrap(), &tree, "{:?}", charset);
            }
            let xml = to_string(&tree, &namespaces);
            prop_assert_eq!(&parse(xml.as_bytes(), Charset::Utf8, &namespaces).unwrap(), &tree);
        }

        #[test]
        fn prop_arbitrary_bytes_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..256)) {
            for charset in [Charset::Utf8, Charset::Gbk, Charset::Gb18030] {
                let _ = parse(&bytes, charset, &jq());
            }
        }

        #[test]
        fn prop_markup_soup_never_panics(doc in soup()) {
            for charset in [Charset::Utf8, Charset::Gbk, Charset::Gb18030] {
                let Ok(root) = parse(doc.as_bytes(), charset, &jq()) else { continue };
                // Whatever parses writes and parses back the same, if its
                // names can be written: prefixes the mapping binds, characters
                // the charset has.
                if writable(&root, charset) {
                    let again = write(&root, charset, &jq());
                    prop_assert_eq!(parse(&again, charset, &jq()), Ok(root));
                }
            }
        }
    }
}
