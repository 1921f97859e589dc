//! Documents the rules read and write: canonical and native JSON ([`serde_json::Value`]) and
//! native XML ([`Element`]). One trait lets the same compiled rules address either.

use std::borrow::Cow;

use serde_json::{Map, Value};

use super::path::{JsonPath, JsonStep, XmlLeaf, XmlPath};
use crate::wire::xml::Element;

/// A document that compiled paths can read and write.
pub trait Tree: Sized {
    /// The compiled path type for this document kind.
    type Path: std::fmt::Display;

    /// The scalar at a path; objects and arrays are not scalars. XML values are text.
    fn get_value(&self, path: &Self::Path) -> Option<Value>;
    /// The scalar at a path, borrowed where the document holds it as a value already (JSON), so
    /// that values a rule replaces anyway (dates, codes) are never copied.
    fn get_ref(&self, path: &Self::Path) -> Option<Cow<'_, Value>> {
        self.get_value(path).map(Cow::Owned)
    }
    /// Writes a scalar, creating the containers on the way.
    fn set_value(&mut self, path: &Self::Path, value: Value) -> Result<(), String>;
    /// The items of an array (JSON) or the repeated elements (XML) at a path.
    fn items<'a>(&'a self, path: &Self::Path) -> Vec<&'a Self>;
    /// An empty item for `path`, to be filled and then pushed.
    fn new_item(path: &Self::Path) -> Self;
    /// Appends an item to the array or repeated element at a path.
    fn push_item(&mut self, path: &Self::Path, item: Self) -> Result<(), String>;
    /// An object of string values at a path (JSON object, or XML element's children).
    fn get_subtree(&self, path: &Self::Path) -> Option<Map<String, Value>>;
    /// Writes an object of string values at a path.
    fn set_subtree(&mut self, path: &Self::Path, values: Map<String, Value>) -> Result<(), String>;
}

impl Tree for Value {
    type Path = JsonPath;

    fn get_value(&self, path: &JsonPath) -> Option<Value> {
        self.get_ref(path).map(Cow::into_owned)
    }

    fn get_ref(&self, path: &JsonPath) -> Option<Cow<'_, Value>> {
        match json_get(self, path)? {
            Value::Null | Value::Object(_) | Value::Array(_) => None,
            scalar => Some(Cow::Borrowed(scalar)),
        }
    }

    fn set_value(&mut self, path: &JsonPath, value: Value) -> Result<(), String> {
        *json_slot(self, path)? = value;
        Ok(())
    }

    fn items<'a>(&'a self, path: &JsonPath) -> Vec<&'a Value> {
        match json_get(self, path) {
            Some(Value::Array(items)) => items.iter().collect(),
            _ => Vec::new(),
        }
    }

    fn new_item(_path: &JsonPath) -> Value {
        Value::Object(Map::new())
    }

    fn push_item(&mut self, path: &JsonPath, item: Value) -> Result<(), String> {
        let slot = json_slot(self, path)?;
        if slot.is_null() {
            *slot = Value::Array(Vec::new());
        }
        match slot {
            Value::Array(items) => {
                items.push(item);
                Ok(())
            }
            _ => Err(format!("{path} already holds a value that is not an array")),
        }
    }

    fn get_subtree(&self, path: &JsonPath) -> Option<Map<String, Value>> {
        match json_get(self, path)? {
            Value::Object(map) => Some(map.clone()),
            _ => None,
        }
    }

    fn set_subtree(&mut self, path: &JsonPath, values: Map<String, Value>) -> Result<(), String> {
        *json_slot(self, path)? = Value::Object(values);
        Ok(())
    }
}

fn json_get<'a>(mut value: &'a Value, path: &JsonPath) -> Option<&'a Value> {
    for step in path.steps() {
        value = match (step, value) {
            (JsonStep::Key(key), Value::Object(map)) => map.get(key)?,
            (JsonStep::Index(i), Value::Array(items)) => items.get(*i)?,
            // A numeric segment can also be an object key ("/codes/01").
            (JsonStep::Index(i), Value::Object(map)) => map.get(&i.to_string())?,
            _ => return None,
        };
    }
    Some(value)
}

/// The slot at a path, creating objects (and arrays for index steps) on the way.
fn json_slot<'a>(mut value: &'a mut Value, path: &JsonPath) -> Result<&'a mut Value, String> {
    for step in path.steps() {
        if value.is_null() {
            *value = match step {
                JsonStep::Key(_) => Value::Object(Map::new()),
                JsonStep::Index(_) => Value::Array(Vec::new()),
            };
        }
        value = match (step, value) {
            (JsonStep::Key(key), Value::Object(map)) => {
                // Look up before inserting: cloning the key on every write is the hot path's cost.
                if !map.contains_key(key) {
                    map.insert(key.clone(), Value::Null);
                }
                match map.get_mut(key) {
                    Some(slot) => slot,
                    None => return Err(format!("cannot write {path}")),
                }
            }
            (JsonStep::Index(i), Value::Array(items)) => {
                if items.len() <= *i {
                    items.resize(*i + 1, Value::Null);
                }
                &mut items[*i]
            }
            _ => return Err(format!("cannot write {path}: a value on the way is not an object or array")),
        };
    }
    Ok(value)
}

impl Tree for Element {
    type Path = XmlPath;

    fn get_value(&self, path: &XmlPath) -> Option<Value> {
        let element = xml_find(self, path, path.elements())?;
        match path.leaf() {
            XmlLeaf::Text => Some(Value::String(element.text.clone())),
            XmlLeaf::Attribute(name) => element.attribute(name).map(|v| Value::String(v.to_owned())),
        }
    }

    fn set_value(&mut self, path: &XmlPath, value: Value) -> Result<(), String> {
        let element = xml_make(self, path, path.elements())?;
        let text = match value {
            Value::String(s) => s,
            other => other.to_string(),
        };
        match path.leaf() {
            XmlLeaf::Text => element.text = text,
            XmlLeaf::Attribute(name) => element.set_attribute(name, text),
        }
        Ok(())
    }

    fn items<'a>(&'a self, path: &XmlPath) -> Vec<&'a Element> {
        let Some((last, parents)) = path.elements().split_last() else {
            return xml_find(self, path, &[]).into_iter().collect();
        };
        match xml_find(self, path, parents) {
            Some(parent) => parent.children.iter().filter(|child| child.name == *last).collect(),
            None => Vec::new(),
        }
    }

    fn new_item(path: &XmlPath) -> Element {
        let name = path.elements().last().map(String::as_str).or(path.root()).unwrap_or("item");
        Element::new(name)
    }

    fn push_item(&mut self, path: &XmlPath, item: Element) -> Result<(), String> {
        let Some((_, parents)) = path.elements().split_last() else {
            return Err(format!("{path} names the root element, which cannot repeat"));
        };
        xml_make(self, path, parents)?.push_child(item);
        Ok(())
    }

    fn get_subtree(&self, path: &XmlPath) -> Option<Map<String, Value>> {
        let element = xml_find(self, path, path.elements())?;
        let prefix = element_prefix(&element.name);
        let mut map = Map::new();
        for child in element.children.iter().filter(|c| c.children.is_empty()) {
            let key = child.name.strip_prefix(prefix).unwrap_or(&child.name);
            map.insert(key.to_owned(), Value::String(child.text.clone()));
        }
        Some(map)
    }

    fn set_subtree(&mut self, path: &XmlPath, values: Map<String, Value>) -> Result<(), String> {
        let element = xml_make(self, path, path.elements())?;
        // Children live in the parent's namespace: <jq:Form><jq:reason>.
        let prefix = element_prefix(&element.name).to_owned();
        for (key, value) in values {
            // A key becomes an element name: anything but a plain name would write markup.
            if !crate::wire::xml::is_name(&key) || key.contains(':') {
                return Err(format!("'{key}' cannot be an XML element name"));
            }
            let mut child = Element::new(if prefix.is_empty() { key } else { format!("{prefix}{key}") });
            child.text = match value {
                Value::String(s) => s,
                other => other.to_string(),
            };
            element.push_child(child);
        }
        Ok(())
    }
}

/// `jq:` for `jq:Form`, empty for `Form`.
fn element_prefix(name: &str) -> &str {
    match name.find(':') {
        Some(i) => &name[..=i],
        None => "",
    }
}

fn xml_find<'a>(root: &'a Element, path: &XmlPath, elements: &[String]) -> Option<&'a Element> {
    if let Some(expected) = path.root()
        && root.name != expected
    {
        return None;
    }
    let mut element = root;
    for name in elements {
        element = element.child(name)?;
    }
    Some(element)
}

fn xml_make<'a>(root: &'a mut Element, path: &XmlPath, elements: &[String]) -> Result<&'a mut Element, String> {
    if let Some(expected) = path.root() {
        if root.name.is_empty() {
            root.name = expected.to_owned();
        } else if root.name != expected {
            return Err(format!("{path} starts at <{expected}> but the document's root is <{}>", root.name));
        }
    }
    let mut element = root;
    for name in elements {
        element = element.child_mut_or_insert(name);
    }
    Ok(element)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn json_writes_create_containers_and_reads_skip_objects() {
        let mut doc = Value::Null;
        doc.set_value(&JsonPath::parse("/a/b", false).unwrap(), json!("x")).unwrap();
        doc.set_value(&JsonPath::parse("/list/1", false).unwrap(), json!(2)).unwrap();
        assert_eq!(doc, json!({"a": {"b": "x"}, "list": [null, 2]}));
        assert_eq!(doc.get_value(&JsonPath::parse("/a", false).unwrap()), None);
        assert!(doc.set_value(&JsonPath::parse("/a/b/c", false).unwrap(), json!(1)).is_err());
    }

    #[test]
    fn xml_reads_and_writes_attributes_text_and_repeats() {
        let mut doc = Element::default();
        let path = |p: &str| XmlPath::parse(p, false).unwrap();
        doc.set_value(&path("/R/SQR/@LX"), json!("1")).unwrap();
        doc.set_value(&path("/R/SQR/XM"), json!("张三")).unwrap();
        let list = path("/R/CLLB/CL");
        for name in ["a", "b"] {
            let mut item = Element::new_item(&list);
            item.set_value(&XmlPath::parse("CLMC", true).unwrap(), json!(name)).unwrap();
            doc.push_item(&list, item).unwrap();
        }
        assert_eq!(doc.get_value(&path("/R/SQR/@LX")), Some(json!("1")));
        assert_eq!(doc.get_value(&path("/R/SQR/XM")), Some(json!("张三")));
        assert_eq!(doc.items(&list).len(), 2);
        assert_eq!(doc.get_value(&path("/OTHER/SQR/XM")), None);
        assert!(doc.set_value(&path("/OTHER/X"), json!("1")).is_err());
    }

    #[test]
    fn xml_subtrees_keep_the_parent_namespace_prefix() {
        let mut doc = Element::default();
        let form = XmlPath::parse("/jq:A/jq:Form", false).unwrap();
        let values = json!({"reason": "务工"});
        doc.set_subtree(&form, values.as_object().unwrap().clone()).unwrap();
        assert_eq!(doc.children[0].children[0].name, "jq:reason");
        assert_eq!(Value::Object(doc.get_subtree(&form).unwrap()), values);
    }

    #[test]
    fn xml_subtree_keys_that_are_not_names_are_refused() {
        let form = XmlPath::parse("/A/Form", false).unwrap();
        for key in ["reason></Form><HEAD>x</HEAD><Form", "a b", "", "1st", "x:y", "a<b"] {
            let mut doc = Element::default();
            let values = json!({ key: "x" });
            assert!(doc.set_subtree(&form, values.as_object().unwrap().clone()).is_err(), "{key:?}");
        }
    }
}
