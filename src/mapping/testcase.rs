//! Test cases inside mapping files (映射自测用例): an input, a direction, and the expected output
//! or error. `tongban check` and `cargo test` run every one.

use serde_json::Value;

use super::raw::{Direction, MessageKind};
use super::{Mapping, NativeDoc};
use crate::wire::xml::{self, Element};

/// A test document, already parsed.
#[derive(Debug, Clone)]
pub enum TestDoc {
    /// JSON (canonical, or native JSON).
    Json(Value),
    /// Native XML.
    Xml(Element),
}

/// One compiled test case.
#[derive(Debug, Clone)]
pub struct TestCase {
    /// Its name.
    pub name: String,
    /// Request or response.
    pub message: MessageKind,
    /// Direction of the translation.
    pub direction: Direction,
    /// The input.
    pub input: TestDoc,
    /// The expected document, or a fragment of the expected error.
    pub expected: Result<TestDoc, String>,
    /// Line and column in the mapping file.
    pub position: (usize, usize),
    /// Key path, e.g. `test[2]`.
    pub key_path: String,
}

/// A failed test case, formatted like a diagnostic.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TestFailure {
    /// `file:line:col: test[i]: 'name' …`.
    pub message: String,
}

impl Mapping {
    /// Runs every test case of this mapping.
    pub fn run_tests(&self) -> Vec<TestFailure> {
        self.tests.iter().filter_map(|case| self.run_test(case).err()).collect()
    }

    fn run_test(&self, case: &TestCase) -> Result<(), TestFailure> {
        let fail = |detail: String| TestFailure {
            message: format!(
                "{}:{}:{}: {}: test '{}' failed: {detail}",
                self.file, case.position.0, case.position.1, case.key_path, case.name
            ),
        };
        let actual: Result<TestDoc, String> = match (case.direction, &case.input) {
            (Direction::ToNative, TestDoc::Json(canonical)) => {
                self.to_native(case.message, canonical).map(native_to_test).map_err(|e| e.to_string())
            }
            (Direction::ToCanonical, TestDoc::Json(native)) => self
                .to_canonical(case.message, &NativeDoc::Json(native.clone()))
                .map(TestDoc::Json)
                .map_err(|e| e.to_string()),
            (Direction::ToCanonical, TestDoc::Xml(native)) => self
                .to_canonical(case.message, &NativeDoc::Xml(native.clone()))
                .map(TestDoc::Json)
                .map_err(|e| e.to_string()),
            (Direction::ToNative, TestDoc::Xml(_)) => Err("a to-native test takes canonical JSON as input".to_owned()),
        };
        match (&case.expected, actual) {
            (Ok(expected), Ok(actual)) => compare(expected, &actual, &self.namespaces).map_err(fail),
            (Ok(_), Err(error)) => Err(fail(format!("expected a document, got the error: {error}"))),
            (Err(fragment), Err(error)) if error.contains(fragment.as_str()) => Ok(()),
            (Err(fragment), Err(error)) => {
                Err(fail(format!("expected an error containing '{fragment}', got: {error}")))
            }
            (Err(fragment), Ok(actual)) => Err(fail(format!(
                "expected an error containing '{fragment}', got the document {}",
                show(&actual, &self.namespaces)
            ))),
        }
    }
}

fn native_to_test(doc: NativeDoc) -> TestDoc {
    match doc {
        NativeDoc::Json(value) => TestDoc::Json(value),
        NativeDoc::Xml(element) => TestDoc::Xml(element),
    }
}

fn show(doc: &TestDoc, namespaces: &xml::Namespaces) -> String {
    match doc {
        TestDoc::Json(value) => value.to_string(),
        TestDoc::Xml(element) => xml::to_string(element, namespaces),
    }
}

fn compare(expected: &TestDoc, actual: &TestDoc, namespaces: &xml::Namespaces) -> Result<(), String> {
    match (expected, actual) {
        (TestDoc::Json(e), TestDoc::Json(a)) => {
            let mut differences = Vec::new();
            json_diff("", e, a, &mut differences);
            if differences.is_empty() { Ok(()) } else { Err(differences.join("; ")) }
        }
        (TestDoc::Xml(e), TestDoc::Xml(a)) if normalized(e) == normalized(a) => Ok(()),
        _ => Err(format!("\n    expected: {}\n    actual:   {}", show(expected, namespaces), show(actual, namespaces))),
    }
}

/// Attribute order carries no meaning in XML.
fn normalized(element: &Element) -> Element {
    let mut copy = element.clone();
    copy.attributes.sort();
    copy.children = copy.children.iter().map(normalized).collect();
    copy
}

/// Lists up to eight differing paths between two JSON documents.
pub fn json_diff(at: &str, expected: &Value, actual: &Value, out: &mut Vec<String>) {
    if out.len() >= 8 {
        return;
    }
    match (expected, actual) {
        (Value::Object(e), Value::Object(a)) => {
            for (key, value) in e {
                let path = format!("{at}/{key}");
                match a.get(key) {
                    Some(other) => json_diff(&path, value, other, out),
                    None => out.push(format!("{path}: expected {value}, missing")),
                }
            }
            for (key, value) in a {
                if !e.contains_key(key) {
                    out.push(format!("{at}/{key}: not expected, got {value}"));
                }
            }
        }
        (Value::Array(e), Value::Array(a)) if e.len() == a.len() => {
            for (index, (x, y)) in e.iter().zip(a).enumerate() {
                json_diff(&format!("{at}/{index}"), x, y, out);
            }
        }
        _ if expected == actual => {}
        _ => out.push(format!("{}: expected {expected}, got {actual}", if at.is_empty() { "/" } else { at })),
    }
}
