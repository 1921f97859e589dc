//! Compiled mapping plans (映射计划) and how they apply, in both directions.
//!
//! A plan is a list of rules with every path, date format and code table already compiled;
//! applying it walks the rules once and never parses mapping text.

use std::borrow::Cow;
use std::sync::Arc;

use serde_json::Value;

use super::datetime::DateCodec;
use super::path::JsonPath;
use super::raw::ValueType;
use super::table::CodeTable;
use super::tree::Tree;

/// No path, one path, or several joined with a separator.
#[derive(Debug, Clone)]
pub enum Paths<P> {
    /// The side has no path (constant rules).
    None,
    /// One path.
    One(P),
    /// Several paths joined by the rule's separator.
    Many(Vec<P>),
}

/// A compiled condition.
#[derive(Debug, Clone)]
pub struct Condition<P> {
    /// Which document and path to test.
    pub subject: Subject<P>,
    /// The test.
    pub test: Test,
}

/// The value a condition tests.
#[derive(Debug, Clone)]
pub enum Subject<P> {
    /// A canonical path.
    Canonical(JsonPath),
    /// A native path.
    Native(P),
}

/// A condition's test.
#[derive(Debug, Clone)]
pub enum Test {
    /// The value equals this text.
    Equals(String),
    /// The value is absent or differs from this text.
    NotEquals(String),
    /// The value is present (`true`) or absent (`false`).
    Exists(bool),
}

/// One compiled field rule.
#[derive(Debug, Clone)]
pub struct Rule<P> {
    /// Canonical side.
    pub canonical: Paths<JsonPath>,
    /// Native side.
    pub native: Paths<P>,
    /// Fixed value towards the side that has a path.
    pub constant: Option<Value>,
    /// Canonical value used when the source is absent.
    pub default: Option<Value>,
    /// Refuse the document when the source is absent.
    pub required: bool,
    /// Date format of the native side.
    pub date: Option<DateCodec>,
    /// Code table.
    pub table: Option<Arc<CodeTable>>,
    /// Join/split separator.
    pub separator: Option<String>,
    /// Apply only when this holds.
    pub when: Option<Condition<P>>,
    /// Rules for each item of an array or repeated element.
    pub each: Option<Vec<Rule<P>>>,
    /// Copy a whole object of string values.
    pub subtree: bool,
    /// Canonical value type.
    pub canonical_type: Option<ValueType>,
    /// Native value type (JSON only).
    pub native_type: Option<ValueType>,
}

/// A translation failure, naming the path in the document that was being read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MapError {
    /// A required value is absent.
    #[error("{path} is required but missing")]
    Missing {
        /// Path of the absent value.
        path: String,
    },
    /// A date or time in the wrong format.
    #[error("{path}: '{value}' is not {expected}")]
    BadDate {
        /// Path of the value.
        path: String,
        /// The value.
        value: String,
        /// What was expected.
        expected: String,
    },
    /// A code not in the table.
    #[error("{path}: '{value}' is not a known code in table '{table}'; use one of: {known}")]
    UnknownCode {
        /// Path of the value.
        path: String,
        /// The table.
        table: String,
        /// The code.
        value: String,
        /// Known codes.
        known: String,
    },
    /// A value of the wrong type.
    #[error("{path}: '{value}' is not a valid {expected}")]
    BadType {
        /// Path of the value.
        path: String,
        /// The value.
        value: String,
        /// The expected type.
        expected: &'static str,
    },
    /// A joined value did not split into the expected number of parts.
    #[error("{path}: expected {expected} parts separated by '{separator}', found {found}")]
    Split {
        /// Path of the value.
        path: String,
        /// Parts expected.
        expected: usize,
        /// Parts found.
        found: usize,
        /// The separator.
        separator: String,
    },
    /// The document's shape does not fit the path.
    #[error("{path}: {detail}")]
    Shape {
        /// Path being written or read.
        path: String,
        /// What went wrong.
        detail: String,
    },
}

impl MapError {
    /// The document path the error is about.
    pub fn path(&self) -> &str {
        match self {
            MapError::Missing { path }
            | MapError::BadDate { path, .. }
            | MapError::UnknownCode { path, .. }
            | MapError::BadType { path, .. }
            | MapError::Split { path, .. }
            | MapError::Shape { path, .. } => path,
        }
    }
}

/// Path of an item inside `each`, used to prefix error paths (`/materials/1`).
#[derive(Clone, Copy)]
struct Context<'a> {
    prefix: &'a str,
}

impl Context<'_> {
    fn path(&self, path: &dyn std::fmt::Display) -> String {
        let path = path.to_string();
        if self.prefix.is_empty() {
            path
        } else if path == "." {
            self.prefix.to_owned()
        } else {
            format!("{}/{}", self.prefix, path.trim_start_matches('/'))
        }
    }
}

/// Canonical → native.
pub fn to_native<N: Tree>(rules: &[Rule<N::Path>], canonical: &Value, native: &mut N) -> Result<(), MapError> {
    apply_to_native(rules, canonical, native, Context { prefix: "" })
}

/// Native → canonical.
pub fn to_canonical<N: Tree>(rules: &[Rule<N::Path>], native: &N, canonical: &mut Value) -> Result<(), MapError> {
    apply_to_canonical(rules, native, canonical, Context { prefix: "" })
}

fn holds<N: Tree>(condition: &Condition<N::Path>, canonical: &Value, native: &N) -> bool {
    let value = match &condition.subject {
        Subject::Canonical(path) => canonical.get_ref(path),
        Subject::Native(path) => native.get_ref(path),
    };
    let text = value.as_deref().map(super::table::key_text);
    match &condition.test {
        Test::Equals(expected) => text.as_deref() == Some(expected.as_str()),
        Test::NotEquals(expected) => text.as_deref() != Some(expected.as_str()),
        Test::Exists(present) => text.is_some_and(|t| !t.is_empty()) == *present,
    }
}

fn apply_to_native<N: Tree>(
    rules: &[Rule<N::Path>],
    canonical: &Value,
    native: &mut N,
    cx: Context<'_>,
) -> Result<(), MapError> {
    for rule in rules {
        if let Some(condition) = &rule.when
            && !holds(condition, canonical, native)
        {
            continue;
        }
        if let (Some(each), Paths::One(from), Paths::One(to)) = (&rule.each, &rule.canonical, &rule.native) {
            let items = canonical.items(from);
            if items.is_empty() && rule.required {
                return Err(MapError::Missing { path: cx.path(from) });
            }
            for (index, item) in items.into_iter().enumerate() {
                let prefix = format!("{}/{index}", cx.path(from));
                let mut target = N::new_item(to);
                apply_to_native(each, item, &mut target, Context { prefix: &prefix })?;
                native.push_item(to, target).map_err(|detail| MapError::Shape { path: cx.path(to), detail })?;
            }
            continue;
        }
        if rule.subtree {
            if let (Paths::One(from), Paths::One(to)) = (&rule.canonical, &rule.native) {
                match canonical.get_subtree(from) {
                    Some(values) => native
                        .set_subtree(to, values)
                        .map_err(|detail| MapError::Shape { path: cx.path(to), detail })?,
                    None if rule.required => return Err(MapError::Missing { path: cx.path(from) }),
                    None => {}
                }
            }
            continue;
        }
        let value = match (&rule.canonical, &rule.constant) {
            (Paths::None, Some(constant)) => Some(Cow::Borrowed(constant)),
            (Paths::None, None) => None,
            // A constant with a canonical path is written towards canonical only.
            (_, Some(_)) => continue,
            (paths, None) => read(canonical, paths, rule.separator.as_deref()),
        };
        let value = match value.or_else(|| rule.default.as_ref().map(Cow::Borrowed)) {
            Some(value) => value,
            None if rule.required => return Err(MapError::Missing { path: cx.path(&first(&rule.canonical)) }),
            None => continue,
        };
        let source_path = || cx.path(&first(&rule.canonical));
        let mut value = value;
        if rule.constant.is_none() {
            if let Some(codec) = &rule.date {
                value = Cow::Owned(codec.to_native(&value).map_err(|e| MapError::BadDate {
                    path: source_path(),
                    value: e.value,
                    expected: e.expected,
                })?);
            }
            if let Some(table) = &rule.table {
                value = Cow::Owned(table.to_native(&value).map_err(|e| MapError::UnknownCode {
                    path: source_path(),
                    table: table.name.clone(),
                    value: e.value,
                    known: e.known,
                })?);
            }
        }
        let mut value = value.into_owned();
        if let Some(kind) = rule.native_type {
            value = coerce(value, kind).map_err(|value| MapError::BadType {
                path: source_path(),
                value,
                expected: type_name(kind),
            })?;
        }
        write(native, &rule.native, value, rule.separator.as_deref(), &cx, &source_path)?;
    }
    Ok(())
}

fn apply_to_canonical<N: Tree>(
    rules: &[Rule<N::Path>],
    native: &N,
    canonical: &mut Value,
    cx: Context<'_>,
) -> Result<(), MapError> {
    // Towards canonical, conditional rules run after the others, so a condition can test any
    // canonical value the file produces (order carries no meaning in a JSON object). Towards
    // native, rules run in file order, which is the element order of XML documents.
    let plain = rules.iter().filter(|rule| rule.when.is_none());
    let conditional = rules.iter().filter(|rule| rule.when.is_some());
    for rule in plain.chain(conditional) {
        if let Some(condition) = &rule.when
            && !holds(condition, canonical, native)
        {
            continue;
        }
        if let (Some(each), Paths::One(to), Paths::One(from)) = (&rule.each, &rule.canonical, &rule.native) {
            let items = native.items(from);
            if items.is_empty() && rule.required {
                return Err(MapError::Missing { path: cx.path(from) });
            }
            for (index, item) in items.into_iter().enumerate() {
                let prefix = format!("{}/{index}", cx.path(from));
                let mut target = Value::new_item(to);
                apply_to_canonical(each, item, &mut target, Context { prefix: &prefix })?;
                canonical.push_item(to, target).map_err(|detail| MapError::Shape { path: cx.path(to), detail })?;
            }
            continue;
        }
        if rule.subtree {
            if let (Paths::One(to), Paths::One(from)) = (&rule.canonical, &rule.native) {
                match native.get_subtree(from) {
                    Some(values) => canonical
                        .set_subtree(to, values)
                        .map_err(|detail| MapError::Shape { path: cx.path(to), detail })?,
                    None if rule.required => return Err(MapError::Missing { path: cx.path(from) }),
                    None => {}
                }
            }
            continue;
        }
        let source_path = || cx.path(&first(&rule.native));
        let value = match (&rule.native, &rule.constant) {
            (Paths::None, Some(constant)) => Some(Cow::Borrowed(constant)),
            (Paths::None, None) => None,
            (_, Some(_)) => continue,
            (paths, None) => read(native, paths, rule.separator.as_deref()),
        };
        let is_default = value.is_none();
        let mut value = match value.or_else(|| rule.default.as_ref().map(Cow::Borrowed)) {
            Some(value) => value,
            None if rule.required => return Err(MapError::Missing { path: source_path() }),
            None => continue,
        };
        // Defaults and constants are already canonical values.
        if rule.constant.is_none() && !is_default {
            if let Some(table) = &rule.table {
                value = Cow::Owned(table.to_canonical(&value).map_err(|e| MapError::UnknownCode {
                    path: source_path(),
                    table: table.name.clone(),
                    value: e.value,
                    known: e.known,
                })?);
            }
            if let Some(codec) = &rule.date {
                value = Cow::Owned(codec.to_canonical(&value).map_err(|e| MapError::BadDate {
                    path: source_path(),
                    value: e.value,
                    expected: e.expected,
                })?);
            }
        }
        let mut value = value.into_owned();
        if let Some(kind) = rule.canonical_type {
            value = coerce(value, kind).map_err(|value| MapError::BadType {
                path: source_path(),
                value,
                expected: type_name(kind),
            })?;
        }
        write(canonical, &rule.canonical, value, rule.separator.as_deref(), &cx, &source_path)?;
    }
    Ok(())
}

fn first<P: std::fmt::Display>(paths: &Paths<P>) -> String {
    match paths {
        Paths::None => "(constant)".to_owned(),
        Paths::One(path) => path.to_string(),
        Paths::Many(paths) => paths.first().map(ToString::to_string).unwrap_or_default(),
    }
}

/// Reads one value, or joins several; absent (or empty-string) values count as missing.
fn read<'d, T: Tree>(doc: &'d T, paths: &Paths<T::Path>, separator: Option<&str>) -> Option<Cow<'d, Value>> {
    match paths {
        Paths::None => None,
        Paths::One(path) => doc.get_ref(path).filter(|v| !matches!(v.as_ref(), Value::String(s) if s.is_empty())),
        Paths::Many(paths) => {
            let parts: Vec<String> = paths
                .iter()
                .map(|p| doc.get_value(p).map(|v| super::table::native_key(&v)).unwrap_or_default())
                .collect();
            if parts.iter().all(String::is_empty) {
                return None;
            }
            Some(Cow::Owned(Value::String(parts.join(separator.unwrap_or("")))))
        }
    }
}

fn write<T: Tree>(
    doc: &mut T,
    paths: &Paths<T::Path>,
    value: Value,
    separator: Option<&str>,
    cx: &Context<'_>,
    source_path: &dyn Fn() -> String,
) -> Result<(), MapError> {
    match paths {
        Paths::None => Ok(()),
        Paths::One(path) => {
            doc.set_value(path, value).map_err(|detail| MapError::Shape { path: cx.path(path), detail })
        }
        Paths::Many(paths) => {
            let text = super::table::native_key(&value);
            let separator = separator.unwrap_or("");
            let parts: Vec<&str> = text.splitn(paths.len(), separator).collect();
            if parts.len() != paths.len() {
                return Err(MapError::Split {
                    path: source_path(),
                    expected: paths.len(),
                    found: parts.len(),
                    separator: separator.to_owned(),
                });
            }
            for (path, part) in paths.iter().zip(parts) {
                if !part.is_empty() {
                    doc.set_value(path, Value::String(part.to_owned()))
                        .map_err(|detail| MapError::Shape { path: cx.path(path), detail })?;
                }
            }
            Ok(())
        }
    }
}

fn type_name(kind: ValueType) -> &'static str {
    match kind {
        ValueType::String => "string",
        ValueType::Integer => "integer",
        ValueType::Number => "number",
        ValueType::Boolean => "boolean",
    }
}

/// Converts a scalar to the declared type; the error carries the offending text.
fn coerce(value: Value, kind: ValueType) -> Result<Value, String> {
    let text = super::table::native_key(&value);
    match kind {
        ValueType::String => Ok(Value::String(text)),
        ValueType::Integer => match &value {
            Value::Number(n) if n.is_i64() || n.is_u64() => Ok(value),
            _ => text.trim().parse::<i64>().map(Value::from).map_err(|_| text),
        },
        ValueType::Number => match &value {
            Value::Number(_) => Ok(value),
            _ => {
                let parsed = text.trim().parse::<f64>().ok().and_then(serde_json::Number::from_f64);
                parsed.map(Value::Number).ok_or(text)
            }
        },
        ValueType::Boolean => match text.as_str() {
            "true" | "1" => Ok(Value::Bool(true)),
            "false" | "0" => Ok(Value::Bool(false)),
            _ => Err(text),
        },
    }
}
