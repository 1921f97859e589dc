//! Strict JSON reading for the JSON styles: every field is typed, and a field the reader never
//! asked for is an unknown field (未定义字段), reported with its full path.

use serde_json::{Map, Value};

use super::validate::Reject;

/// Parses a body as a JSON object (UTF-8).
pub(crate) fn parse_object(body: &[u8]) -> Result<Value, Reject> {
    let text = std::str::from_utf8(body).map_err(|_| Reject::malformed("报文不是合法的 UTF-8"))?;
    let value: Value =
        serde_json::from_str(text).map_err(|e| Reject::malformed(format!("报文不是合法的 JSON（{e}）")))?;
    if value.is_object() { Ok(value) } else { Err(Reject::malformed("报文必须是 JSON 对象")) }
}

/// Joins a parent path and a key: `applicant` + `name` → `applicant.name`.
pub(crate) fn join(path: &str, key: &str) -> String {
    if path.is_empty() { key.to_owned() } else { format!("{path}.{key}") }
}

/// One JSON object being read; remembers which keys were read.
pub(crate) struct Obj<'a> {
    map: &'a Map<String, Value>,
    path: String,
    known: Vec<&'static str>,
}

impl<'a> Obj<'a> {
    /// Wraps a value that must be an object.
    pub(crate) fn new(value: &'a Value, path: &str) -> Result<Self, Reject> {
        match value {
            Value::Object(map) => Ok(Obj { map, path: path.to_owned(), known: Vec::new() }),
            _ => Err(Reject::invalid(if path.is_empty() { "(根)" } else { path }, "必须是 JSON 对象")),
        }
    }

    /// The full path of one of this object's fields.
    pub(crate) fn field(&self, key: &str) -> String {
        join(&self.path, key)
    }

    fn get(&mut self, key: &'static str) -> Option<&'a Value> {
        self.known.push(key);
        match self.map.get(key) {
            None | Some(Value::Null) => None,
            Some(v) => Some(v),
        }
    }

    /// A string field; absent or `null` is `None`.
    pub(crate) fn str(&mut self, key: &'static str) -> Result<Option<String>, Reject> {
        match self.get(key) {
            None => Ok(None),
            Some(Value::String(s)) => Ok(Some(s.clone())),
            Some(_) => Err(Reject::invalid(&self.field(key), "必须是字符串")),
        }
    }

    /// An integer field (a JSON integer, not a string or a fraction), as decimal text.
    pub(crate) fn int(&mut self, key: &'static str) -> Result<Option<String>, Reject> {
        match self.get(key) {
            None => Ok(None),
            Some(Value::Number(n)) if n.is_i64() || n.is_u64() => Ok(Some(n.to_string())),
            Some(_) => Err(Reject::invalid(&self.field(key), "必须是整数")),
        }
    }

    /// A nested object field.
    pub(crate) fn obj(&mut self, key: &'static str) -> Result<Option<Obj<'a>>, Reject> {
        let path = self.field(key);
        self.get(key).map(|v| Obj::new(v, &path)).transpose()
    }

    /// An array field.
    pub(crate) fn arr(&mut self, key: &'static str) -> Result<Option<&'a Vec<Value>>, Reject> {
        match self.get(key) {
            None => Ok(None),
            Some(Value::Array(a)) => Ok(Some(a)),
            Some(_) => Err(Reject::invalid(&self.field(key), "必须是数组")),
        }
    }

    /// A free-form string map (表单): any keys, string values.
    pub(crate) fn string_map(&mut self, key: &'static str) -> Result<Vec<(String, String)>, Reject> {
        let path = self.field(key);
        match self.get(key) {
            None => Ok(Vec::new()),
            Some(Value::Object(map)) => map
                .iter()
                .map(|(k, v)| match v {
                    Value::String(s) => Ok((k.clone(), s.clone())),
                    _ => Err(Reject::invalid(&join(&path, k), "表单值必须是字符串")),
                })
                .collect(),
            Some(_) => Err(Reject::invalid(&path, "必须是 JSON 对象")),
        }
    }

    /// Ends reading: any key that was never asked for is unknown.
    pub(crate) fn finish(self) -> Result<(), Reject> {
        match self.map.keys().find(|k| !self.known.contains(&k.as_str())) {
            Some(k) => Err(Reject::unknown(&join(&self.path, k))),
            None => Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn reads_strictly() {
        let v = json!({"a": "x", "n": 5, "f": 1.5, "o": {"b": null}, "extra": 1});
        let mut o = Obj::new(&v, "").expect("object");
        assert_eq!(o.str("a").ok().flatten().as_deref(), Some("x"));
        assert_eq!(o.int("n").ok().flatten().as_deref(), Some("5"));
        assert!(o.int("f").is_err());
        let mut inner = o.obj("o").ok().flatten().expect("nested");
        assert_eq!(inner.str("b").ok().flatten(), None);
        assert!(inner.finish().is_ok());
        let err = o.finish().expect_err("extra is unknown");
        assert_eq!(err.field.as_deref(), Some("extra"));
    }
}
