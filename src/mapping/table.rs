//! Code tables (值域代码表): canonical codes ↔ native codes, such as gender per GB/T 2261.1 or
//! identity document types. Tables are one-to-one so that every mapping reads both ways; shared
//! tables live in `mappings/tables/*.toml`, and a mapping file may add its own.

use std::collections::HashMap;

use serde_json::Value;

/// A compiled code table.
#[derive(Debug, Clone)]
pub struct CodeTable {
    /// The table's name.
    pub name: String,
    /// Where it was defined (file), for messages.
    pub defined_in: String,
    to_native: HashMap<String, Value>,
    to_canonical: HashMap<String, String>,
    native_default: Option<Value>,
    canonical_default: Option<String>,
}

/// A code the table does not know, in either direction.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnknownCode {
    /// The value looked up.
    pub value: String,
    /// The codes that would have been accepted.
    pub known: String,
}

impl CodeTable {
    /// Builds a table from `(canonical, native)` pairs; returns the duplicated native codes as
    /// errors because a many-to-one table cannot be read back.
    pub fn new(
        name: &str,
        defined_in: &str,
        pairs: impl IntoIterator<Item = (String, Value)>,
        native_default: Option<String>,
        canonical_default: Option<String>,
    ) -> Result<CodeTable, Vec<String>> {
        let mut to_native = HashMap::new();
        let mut to_canonical: HashMap<String, String> = HashMap::new();
        let mut errors = Vec::new();
        for (canonical, native) in pairs {
            let key = native_key(&native);
            if let Some(previous) = to_canonical.get(&key) {
                errors.push(format!(
                    "native code '{key}' is given for both '{previous}' and '{canonical}'; a code table must be one-to-one so it reads both ways: give each canonical code its own native code"
                ));
                continue;
            }
            to_canonical.insert(key, canonical.clone());
            to_native.insert(canonical, native);
        }
        if let Some(default) = &canonical_default
            && !to_native.contains_key(default)
        {
            errors.push(format!(
                    "canonical_default '{default}' is not one of the table's canonical codes; add it to values or pick an existing code"
                ));
        }
        if !errors.is_empty() {
            return Err(errors);
        }
        Ok(CodeTable {
            name: name.to_owned(),
            defined_in: defined_in.to_owned(),
            to_native,
            to_canonical,
            native_default: native_default.map(Value::String),
            canonical_default,
        })
    }

    /// Canonical code → native code.
    pub fn to_native(&self, canonical: &Value) -> Result<Value, UnknownCode> {
        let key = key_text(canonical);
        match self.to_native.get(key.as_ref()).or(self.native_default.as_ref()) {
            Some(native) => Ok(native.clone()),
            None => Err(UnknownCode { value: key.into_owned(), known: sorted(self.to_native.keys().cloned()) }),
        }
    }

    /// Native code → canonical code.
    pub fn to_canonical(&self, native: &Value) -> Result<Value, UnknownCode> {
        let key = key_text(native);
        match self.to_canonical.get(key.as_ref()).or(self.canonical_default.as_ref()) {
            Some(canonical) => Ok(Value::String(canonical.clone())),
            None => Err(UnknownCode { value: key.into_owned(), known: sorted(self.to_canonical.keys().cloned()) }),
        }
    }
}

/// Native codes are compared as text: `1` and `"1"` are the same code.
pub fn native_key(value: &Value) -> String {
    key_text(value).into_owned()
}

/// The text of a code without allocating when it already is text (the common case).
pub fn key_text(value: &Value) -> std::borrow::Cow<'_, str> {
    match value {
        Value::String(s) => std::borrow::Cow::Borrowed(s.as_str()),
        other => std::borrow::Cow::Owned(other.to_string()),
    }
}

fn sorted(keys: impl Iterator<Item = String>) -> String {
    let mut keys: Vec<String> = keys.collect();
    keys.sort();
    keys.join(", ")
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn gender() -> CodeTable {
        let pairs = [("male", json!("1")), ("female", json!("2"))].map(|(c, n)| (c.to_owned(), n));
        CodeTable::new("gender", "t.toml", pairs, None, None).unwrap()
    }

    #[test]
    fn reads_both_ways_and_compares_numbers_as_text() {
        let table = gender();
        assert_eq!(table.to_native(&json!("female")).unwrap(), json!("2"));
        assert_eq!(table.to_canonical(&json!(1)).unwrap(), json!("male"));
        let err = table.to_canonical(&json!("9")).unwrap_err();
        assert_eq!(err, UnknownCode { value: "9".into(), known: "1, 2".into() });
    }

    #[test]
    fn many_to_one_tables_are_refused() {
        let pairs = [("male", json!("1")), ("female", json!("1"))].map(|(c, n)| (c.to_owned(), n));
        let errors = CodeTable::new("g", "t.toml", pairs, None, None).unwrap_err();
        assert!(errors[0].contains("native code '1' is given for both"), "{errors:?}");
    }
}
