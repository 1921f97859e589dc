//! A small strict XML tree for the XML styles, built on quick-xml's namespace-aware reader, and
//! helpers that read it the strict way: unknown children and attributes are refused, single
//! elements may occur once, and every message names the node by its path.

use std::borrow::Cow;

use quick_xml::NsReader;
use quick_xml::XmlVersion;
use quick_xml::escape::{escape, resolve_xml_entity};
use quick_xml::events::{BytesStart, Event};
use quick_xml::name::ResolveResult;

use super::validate::{Reject, RejectKind};

/// One element: resolved namespace, local name, attributes (unprefixed only), children, text.
#[derive(Debug, Clone, Default)]
pub(crate) struct Element {
    pub ns: Option<String>,
    pub name: String,
    pub attrs: Vec<(String, String)>,
    /// Attributes carrying a namespace prefix (other than `xmlns`), kept to refuse them.
    pub prefixed_attrs: Vec<String>,
    pub children: Vec<Element>,
    pub text: String,
}

/// A parsed document: the declared encoding (if any) and the root element.
#[derive(Debug, Clone)]
pub(crate) struct Document {
    pub encoding: Option<String>,
    pub root: Element,
}

fn xml_error(e: impl std::fmt::Display) -> Reject {
    Reject::malformed(format!("XML 格式错误（{e}）"))
}

fn element(reader: &NsReader<&[u8]>, start: &BytesStart<'_>) -> Result<Element, Reject> {
    let (resolved, local) = reader.resolver().resolve_element(start.name());
    let ns = match resolved {
        ResolveResult::Bound(ns) => Some(ns.into_inner().to_owned()),
        ResolveResult::Unbound => None,
        ResolveResult::Unknown(p) => {
            return Err(Reject::malformed(format!("未声明的命名空间前缀 {p}")));
        }
    };
    let name = local.as_ref().to_owned();
    let mut el = Element { ns, name, ..Element::default() };
    for attr in start.attributes() {
        let attr = attr.map_err(xml_error)?;
        let key = attr.key.as_ref().to_owned();
        if key == "xmlns" || key.starts_with("xmlns:") {
            continue;
        }
        let value = attr.normalized_value(XmlVersion::Implicit1_0).map_err(xml_error)?.into_owned();
        if key.contains(':') {
            el.prefixed_attrs.push(key);
        } else {
            el.attrs.push((key, value));
        }
    }
    Ok(el)
}

fn attach(stack: &mut [Element], root: &mut Option<Element>, el: Element) -> Result<(), Reject> {
    match stack.last_mut() {
        Some(parent) => {
            parent.children.push(el);
            Ok(())
        }
        None if root.is_none() => {
            *root = Some(el);
            Ok(())
        }
        None => Err(Reject::malformed("XML 只能有一个根元素")),
    }
}

fn push_text(stack: &mut [Element], text: &str) -> Result<(), Reject> {
    match stack.last_mut() {
        Some(el) => {
            el.text.push_str(text);
            Ok(())
        }
        None if text.trim().is_empty() => Ok(()),
        None => Err(Reject::malformed("根元素之外不能有文本")),
    }
}

/// Deepest element nesting accepted; real documents here are four levels deep.
const MAX_DEPTH: usize = 64;

/// Parses a document (already decoded to Unicode). DTDs are refused.
pub(crate) fn parse(text: &str) -> Result<Document, Reject> {
    let mut reader = NsReader::from_str(text);
    let mut stack: Vec<Element> = Vec::new();
    let mut root: Option<Element> = None;
    let mut encoding = None;
    loop {
        match reader.read_event().map_err(xml_error)? {
            Event::Start(e) => {
                let el = element(&reader, &e)?;
                if stack.is_empty() && root.is_some() {
                    return Err(Reject::malformed("XML 只能有一个根元素"));
                }
                // Bounded depth keeps the recursive checks (and dropping the tree) off the
                // edge of the stack.
                if stack.len() >= MAX_DEPTH {
                    return Err(Reject::malformed("XML 元素嵌套过深"));
                }
                stack.push(el);
            }
            Event::Empty(e) => {
                let el = element(&reader, &e)?;
                attach(&mut stack, &mut root, el)?;
            }
            Event::End(_) => {
                let el = stack.pop().ok_or_else(|| Reject::malformed("XML 结束标签不匹配"))?;
                attach(&mut stack, &mut root, el)?;
            }
            Event::Text(t) => push_text(&mut stack, &t.xml10_content())?,
            Event::CData(c) => push_text(&mut stack, &c.xml10_content())?,
            Event::GeneralRef(r) => {
                let resolved: Cow<'_, str> = match r.resolve_char_ref().map_err(xml_error)? {
                    Some(ch) => Cow::Owned(ch.to_string()),
                    None => Cow::Borrowed(
                        resolve_xml_entity(&r).ok_or_else(|| Reject::malformed(format!("未定义的实体 &{};", &*r)))?,
                    ),
                };
                push_text(&mut stack, &resolved)?;
            }
            Event::Decl(d) => {
                if let Some(enc) = d.encoding() {
                    encoding = Some(enc.map_err(xml_error)?.into_owned());
                }
            }
            Event::DocType(_) => return Err(Reject::malformed("不接受 DOCTYPE 声明")),
            Event::Comment(_) | Event::PI(_) => {}
            Event::Eof => break,
        }
    }
    if !stack.is_empty() {
        return Err(Reject::malformed("XML 元素未闭合"));
    }
    let root = root.ok_or_else(|| Reject::malformed("报文为空或没有根元素"))?;
    Ok(Document { encoding, root })
}

/// Checks that every element is in `ns` (`None`: no namespace) and no attribute is prefixed.
pub(crate) fn check_namespace(el: &Element, ns: Option<&str>, path: &str) -> Result<(), Reject> {
    if el.ns.as_deref() != ns {
        let why = match (ns, el.ns.as_deref()) {
            (None, Some(other)) => format!("元素 {path} 不应使用命名空间（{other}）"),
            (Some(want), None) => format!("元素 {path} 不在命名空间 {want} 中"),
            (Some(want), Some(other)) => {
                format!("元素 {path} 的命名空间 {other} 不是 {want}")
            }
            (None, None) => String::new(),
        };
        return Err(Reject::malformed(why));
    }
    if let Some(a) = el.prefixed_attrs.first() {
        return Err(Reject::new(
            RejectKind::UnknownField,
            Some(&format!("{path}/@{a}")),
            format!("不接受带前缀的属性 {path}/@{a}"),
        ));
    }
    for child in &el.children {
        check_namespace(child, ns, &format!("{path}/{}", child.name))?;
    }
    Ok(())
}

/// An element being read, with its path for messages (`SQR/ZJHM`, `Materials/Material[2]`).
#[derive(Clone, Copy)]
pub(crate) struct Node<'a> {
    pub el: &'a Element,
    path: &'a str,
}

/// Owned path holder so [`Node`] can borrow it.
pub(crate) struct At<'a> {
    el: &'a Element,
    path: String,
}

impl<'a> At<'a> {
    pub(crate) fn new(el: &'a Element, path: impl Into<String>) -> Self {
        At { el, path: path.into() }
    }

    /// The element, for the whole borrow of the document.
    pub(crate) fn el(&self) -> &'a Element {
        self.el
    }

    pub(crate) fn node(&self) -> Node<'_> {
        Node { el: self.el, path: &self.path }
    }
}

impl<'a> Node<'a> {
    /// This node's path.
    pub(crate) fn path(&self) -> &str {
        self.path
    }

    fn child_path(&self, name: &str) -> String {
        if self.path.is_empty() { name.to_owned() } else { format!("{}/{name}", self.path) }
    }

    /// The path of one of this node's attributes (`SQR/@LX`).
    pub(crate) fn attr_path(&self, name: &str) -> String {
        self.child_path(&format!("@{name}"))
    }

    /// Refuses children and attributes not listed, and text mixed with child elements.
    pub(crate) fn allow(&self, children: &[&str], attrs: &[&str]) -> Result<(), Reject> {
        if let Some(c) = self.el.children.iter().find(|c| !children.contains(&c.name.as_str())) {
            return Err(Reject::unknown(&self.child_path(&c.name)));
        }
        if let Some((a, _)) = self.el.attrs.iter().find(|(a, _)| !attrs.contains(&a.as_str())) {
            return Err(Reject::unknown(&self.attr_path(a)));
        }
        if !self.el.children.is_empty() && !self.el.text.trim().is_empty() {
            return Err(Reject::invalid(self.path_or_root(), "元素不能同时包含文本和子元素"));
        }
        Ok(())
    }

    fn path_or_root(&self) -> &str {
        if self.path.is_empty() { &self.el.name } else { self.path }
    }

    /// The single child of that name, if present (twice is an error).
    pub(crate) fn child(&self, name: &str) -> Result<Option<At<'a>>, Reject> {
        let mut found = self.el.children.iter().filter(|c| c.name == name);
        let first = found.next();
        if found.next().is_some() {
            return Err(Reject::invalid(&self.child_path(name), "元素只能出现一次"));
        }
        Ok(first.map(|el| At::new(el, self.child_path(name))))
    }

    /// Every child of that name, paths numbered from 1 (`CL[1]`).
    pub(crate) fn children(&self, name: &str) -> Vec<At<'a>> {
        self.el
            .children
            .iter()
            .filter(|c| c.name == name)
            .enumerate()
            .map(|(i, el)| At::new(el, self.child_path(&format!("{name}[{}]", i + 1))))
            .collect()
    }

    /// The trimmed text of this node when it is a plain leaf; empty is `None`.
    pub(crate) fn text(&self) -> Result<Option<String>, Reject> {
        if let Some(c) = self.el.children.first() {
            return Err(Reject::unknown(&self.child_path(&c.name)));
        }
        let t = self.el.text.trim();
        Ok((!t.is_empty()).then(|| t.to_owned()))
    }

    /// The text of a single leaf child without attributes; absent or empty is `None`.
    pub(crate) fn leaf(&self, name: &str) -> Result<Option<String>, Reject> {
        match self.child(name)? {
            None => Ok(None),
            Some(at) => {
                let n = at.node();
                n.allow(&[], &[])?;
                n.text()
            }
        }
    }

    /// An attribute value; empty is `None`.
    pub(crate) fn attr(&self, name: &str) -> Option<String> {
        self.el.attrs.iter().find(|(a, _)| a == name).map(|(_, v)| v.clone()).filter(|v| !v.is_empty())
    }

    /// Form fields (表单): each child is a key, its text the value.
    pub(crate) fn form(&self) -> Result<Vec<(String, String)>, Reject> {
        if !self.el.attrs.is_empty() || !self.el.text.trim().is_empty() {
            return Err(Reject::invalid(self.path_or_root(), "表单元素只能包含字段子元素"));
        }
        let mut out: Vec<(String, String)> = Vec::new();
        for c in &self.el.children {
            let at = At::new(c, self.child_path(&c.name));
            let n = at.node();
            n.allow(&[], &[])?;
            if out.iter().any(|(k, _)| *k == c.name) {
                return Err(Reject::invalid(n.path(), "表单字段重复"));
            }
            out.push((c.name.clone(), n.text()?.unwrap_or_default()));
        }
        Ok(out)
    }
}

/// Escapes text or an attribute value for output.
pub(crate) fn esc(s: &str) -> Cow<'_, str> {
    escape(s)
}

/// A `<name>text</name>` leaf.
pub(crate) fn leaf(name: &str, value: &str) -> String {
    format!("<{name}>{}</{name}>", esc(value))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_namespaces_entities_and_refuses_doctype() {
        let doc = parse(
            r#"<?xml version="1.0" encoding="UTF-8"?>
<a:Root xmlns:a="urn:x" k="v &amp; w"><a:Leaf>1 &lt; 2&#x4E2D;</a:Leaf><a:E/></a:Root>"#,
        )
        .expect("well-formed");
        assert_eq!(doc.encoding.as_deref(), Some("UTF-8"));
        assert_eq!(doc.root.ns.as_deref(), Some("urn:x"));
        assert_eq!(doc.root.attrs, vec![("k".to_owned(), "v & w".to_owned())]);
        assert_eq!(doc.root.children[0].text, "1 < 2中");
        assert!(check_namespace(&doc.root, Some("urn:x"), "Root").is_ok());
        assert!(check_namespace(&doc.root, None, "Root").is_err());
        assert!(parse("<!DOCTYPE x><x/>").is_err());
        assert!(parse("<x><y></x>").is_err());
        assert!(parse("<x/><y/>").is_err());
        assert!(parse("<x>").is_err());
        assert!(parse("").is_err());
        assert!(parse(&"<a>".repeat(100_000)).is_err());
    }

    #[test]
    fn nodes_are_read_strictly() {
        let doc = parse("<R><A>x</A><A>y</A><B k='1'/></R>").expect("well-formed");
        let at = At::new(&doc.root, "");
        let n = at.node();
        assert!(n.child("A").is_err());
        assert_eq!(n.children("A").len(), 2);
        assert!(n.allow(&["A"], &[]).is_err());
        assert!(n.leaf("B").is_err());
        assert_eq!(n.children("A")[1].node().path(), "A[2]");
    }
}
