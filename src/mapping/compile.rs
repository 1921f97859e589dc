//! Compiles raw mapping files into plans, collecting every error with its file, line and key
//! path. Runs once at load (`serve`, `tongban check`); requests only see the plans.

use std::collections::HashMap;
use std::sync::Arc;

use serde_json::Value;

use super::datetime::DateCodec;
use super::path::{JsonPath, XmlPath};
use super::plan::{Condition, Paths, Rule, Subject, Test};
use super::raw::{
    Direction, MessageKind, OneOrMany, RawCondition, RawField, RawMappingFile, RawMessage, RawTable, RawTableFile,
    RawTest, WireFormat,
};
use super::table::{CodeTable, native_key};
use super::testcase::{TestCase, TestDoc};
use super::{Mapping, Message};
use crate::config::diagnostic::Diagnostics;
use crate::config::source::{KeyPath, SpannedDoc};
use crate::wire::xml::Namespaces;

/// Code tables by name.
#[derive(Debug, Clone, Default)]
pub struct TableRegistry {
    tables: HashMap<String, Arc<CodeTable>>,
}

impl TableRegistry {
    /// Looks a table up.
    pub fn get(&self, name: &str) -> Option<&Arc<CodeTable>> {
        self.tables.get(name)
    }

    /// Sorted table names, for messages.
    pub fn names(&self) -> Vec<&str> {
        let mut names: Vec<&str> = self.tables.keys().map(String::as_str).collect();
        names.sort_unstable();
        names
    }

    /// Adds the tables of a shared tables file.
    pub fn add_file(&mut self, raw: &RawTableFile, doc: &SpannedDoc<'_>, diagnostics: &mut Diagnostics) {
        for (index, table) in raw.tables.iter().enumerate() {
            let at = KeyPath::root().key("table").index(index);
            if let Some(existing) = self.tables.get(&table.name) {
                doc.report(
                    diagnostics,
                    &at.key("name"),
                    format!(
                        "table '{}' is already defined in {}; give this one another name",
                        table.name, existing.defined_in
                    ),
                );
                continue;
            }
            if let Some(compiled) = compile_table(table, doc, &at, diagnostics) {
                self.tables.insert(table.name.clone(), Arc::new(compiled));
            }
        }
    }
}

fn compile_table(
    raw: &RawTable,
    doc: &SpannedDoc<'_>,
    at: &KeyPath,
    diagnostics: &mut Diagnostics,
) -> Option<CodeTable> {
    let mut pairs = Vec::new();
    for (canonical, native) in &raw.values {
        match scalar(native) {
            Some(value) => pairs.push((canonical.clone(), value)),
            None => doc.report(
                diagnostics,
                &at.key("values").key(canonical),
                "a native code must be a string, integer or boolean",
            ),
        }
    }
    match CodeTable::new(
        &raw.name,
        &doc.source().display,
        pairs,
        raw.native_default.clone(),
        raw.canonical_default.clone(),
    ) {
        Ok(table) => Some(table),
        Err(errors) => {
            for error in errors {
                doc.report(diagnostics, &at.key("values"), error);
            }
            None
        }
    }
}

/// TOML scalar → JSON scalar.
fn scalar(value: &toml::Value) -> Option<Value> {
    match value {
        toml::Value::String(s) => Some(Value::String(s.clone())),
        toml::Value::Integer(i) => Some(Value::from(*i)),
        toml::Value::Float(f) => serde_json::Number::from_f64(*f).map(Value::Number),
        toml::Value::Boolean(b) => Some(Value::Bool(*b)),
        _ => None,
    }
}

/// Compiles one mapping file. Returns `None` when any error was reported.
pub fn compile_mapping(
    name: &str,
    raw: &RawMappingFile,
    doc: &SpannedDoc<'_>,
    shared: &TableRegistry,
    diagnostics: &mut Diagnostics,
) -> Option<Mapping> {
    let errors_before = diagnostics.errors().count();
    let mut tables = shared.clone();
    for (index, table) in raw.tables.iter().enumerate() {
        let at = KeyPath::root().key("table").index(index);
        if let Some(compiled) = compile_table(table, doc, &at, diagnostics) {
            tables.tables.insert(table.name.clone(), Arc::new(compiled));
        }
    }
    let namespaces = Namespaces { bindings: raw.namespaces.iter().map(|(p, u)| (p.clone(), u.clone())).collect() };
    if raw.format == WireFormat::Json && !raw.namespaces.is_empty() {
        doc.report(
            diagnostics,
            &KeyPath::root().key("namespaces"),
            "namespaces only apply to format = \"xml\"; remove them",
        );
    }
    let mut compiler = Compiler { doc, tables: &tables, diagnostics, namespaces: &raw.namespaces, format: raw.format };
    let request = raw.request.as_ref().and_then(|m| compiler.message(m, &KeyPath::root().key("request")));
    let response = raw.response.as_ref().and_then(|m| compiler.message(m, &KeyPath::root().key("response")));
    let mut tests = Vec::new();
    for (index, test) in raw.tests.iter().enumerate() {
        let at = KeyPath::root().key("test").index(index);
        let present = match test.message {
            MessageKind::Request => raw.request.is_some(),
            MessageKind::Response => raw.response.is_some(),
        };
        if !present {
            compiler.error(&at.key("message"), "this mapping has no such message; add it or test the other one");
        }
        if let Some(case) = compiler.test(test, &at, &namespaces) {
            tests.push(case);
        }
    }
    if diagnostics.errors().count() > errors_before {
        return None;
    }
    Some(Mapping {
        name: name.to_owned(),
        file: doc.source().display.clone(),
        description: raw.description.clone(),
        format: raw.format,
        namespaces,
        request,
        response,
        tests,
    })
}

struct Compiler<'a, 's> {
    doc: &'a SpannedDoc<'s>,
    tables: &'a TableRegistry,
    diagnostics: &'a mut Diagnostics,
    namespaces: &'a std::collections::BTreeMap<String, String>,
    format: WireFormat,
}

impl Compiler<'_, '_> {
    fn error(&mut self, at: &KeyPath, message: impl Into<String>) {
        self.doc.report(self.diagnostics, at, message);
    }

    fn message(&mut self, raw: &RawMessage, at: &KeyPath) -> Option<Message> {
        let at = at.key("fields");
        match self.format {
            WireFormat::Json => {
                let rules = self.rules(&raw.fields, &at, false, &|text, relative| JsonPath::parse(text, relative))?;
                Some(Message::Json(rules))
            }
            WireFormat::Xml => {
                let rules = self.rules(&raw.fields, &at, false, &|text, relative| XmlPath::parse(text, relative))?;
                let root = self.xml_root(&rules, &at)?;
                Some(Message::Xml { root, rules })
            }
        }
    }

    /// All absolute XML paths of a message must start at the same root element.
    fn xml_root(&mut self, rules: &[Rule<XmlPath>], at: &KeyPath) -> Option<String> {
        let mut root: Option<String> = None;
        for (index, rule) in rules.iter().enumerate() {
            let paths: Vec<&XmlPath> = match &rule.native {
                Paths::None => Vec::new(),
                Paths::One(p) => vec![p],
                Paths::Many(ps) => ps.iter().collect(),
            };
            for path in paths {
                let Some(this) = path.root() else { continue };
                match &root {
                    None => root = Some(this.to_owned()),
                    Some(first) if first != this => {
                        self.error(
                            &at.index(index).key("native"),
                            format!("every native path of a message must start at the same root element: this one starts at '{this}', earlier ones at '{first}'"),
                        );
                        return None;
                    }
                    Some(_) => {}
                }
            }
        }
        if root.is_none() {
            self.error(
                at,
                "an XML message needs at least one native path naming its root element, e.g. '/REQUEST/BODY/XM'",
            );
        }
        root
    }

    fn rules<P: Clone + PrefixCheck>(
        &mut self,
        fields: &[RawField],
        at: &KeyPath,
        relative: bool,
        parse: &dyn Fn(&str, bool) -> Result<P, String>,
    ) -> Option<Vec<Rule<P>>> {
        let mut ok = true;
        let mut rules = Vec::new();
        for (index, field) in fields.iter().enumerate() {
            match self.rule(field, &at.index(index), relative, parse) {
                Some(rule) => rules.push(rule),
                None => ok = false,
            }
        }
        ok.then_some(rules)
    }

    fn paths<P: PrefixCheck>(
        &mut self,
        raw: &Option<OneOrMany>,
        at: &KeyPath,
        relative: bool,
        parse: &dyn Fn(&str, bool) -> Result<P, String>,
    ) -> Option<Paths<P>> {
        let one = |this: &mut Self, text: &str, at: &KeyPath| match parse(text, relative) {
            Ok(path) => {
                for prefix in path.prefixes() {
                    if !this.namespaces.contains_key(prefix) {
                        this.error(at, format!("namespace prefix '{prefix}' is not declared; add it under [namespaces], e.g. {prefix} = \"urn:…\""));
                        return None;
                    }
                }
                Some(path)
            }
            Err(message) => {
                this.error(at, message);
                None
            }
        };
        match raw {
            None => Some(Paths::None),
            Some(OneOrMany::One(text)) => one(self, text, at).map(Paths::One),
            Some(OneOrMany::Many(texts)) => {
                if texts.len() < 2 {
                    self.error(at, "a list of paths needs at least two entries; use a single string for one path");
                    return None;
                }
                let parsed: Vec<Option<P>> =
                    texts.iter().enumerate().map(|(i, t)| one(self, t, &at.index(i))).collect();
                parsed.into_iter().collect::<Option<Vec<P>>>().map(Paths::Many)
            }
        }
    }

    fn rule<P: Clone + PrefixCheck>(
        &mut self,
        raw: &RawField,
        at: &KeyPath,
        relative: bool,
        parse: &dyn Fn(&str, bool) -> Result<P, String>,
    ) -> Option<Rule<P>> {
        let errors_before = self.diagnostics.errors().count();
        let canonical_parse = |text: &str, rel: bool| JsonPath::parse(text, rel);
        // A bad path does not stop the other keys from being checked: every error is reported.
        let canonical =
            self.paths(&raw.canonical, &at.key("canonical"), relative, &canonical_parse).unwrap_or(Paths::None);
        let native = self.paths(&raw.native, &at.key("native"), relative, parse).unwrap_or(Paths::None);
        let paths_failed = self.diagnostics.errors().count() > errors_before;

        let native_has = has_path(&native);
        if !paths_failed && !has_path(&canonical) && !native_has {
            self.error(at, "a rule needs 'canonical', 'native', or both");
        }
        if !paths_failed && raw.constant.is_some() && has_path(&canonical) == native_has {
            self.error(
                &at.key("constant"),
                "a constant is written to the one side that has a path: give either 'canonical' or 'native', not both",
            );
        }
        if !paths_failed && raw.constant.is_none() && (has_path(&canonical) != native_has) {
            self.error(at, "a rule with only one side needs 'constant'; otherwise give both 'canonical' and 'native'");
        }
        if (many_paths(&canonical) || many_paths(&native)) && raw.separator.is_none() {
            self.error(at, "a list of paths is joined or split by 'separator'; add separator = \"…\"");
        }
        if many_paths(&canonical) && many_paths(&native) {
            self.error(at, "only one side may list several paths");
        }
        if raw.date.is_some() && raw.table.is_some() {
            self.error(&at.key("table"), "'date' and 'table' cannot be combined in one rule; split it into two fields");
        }
        if raw.native_type.is_some() && self.format == WireFormat::Xml {
            self.error(&at.key("native_type"), "native_type only applies to JSON; XML values are always text");
        }
        let constant = self.value(&raw.constant, &at.key("constant"));
        let default = self.value(&raw.default, &at.key("default"));
        let date = match &raw.date {
            Some(format) => match DateCodec::compile(format) {
                Ok(codec) => Some(codec),
                Err(message) => {
                    self.error(&at.key("date"), message);
                    None
                }
            },
            None => None,
        };
        let table = match &raw.table {
            Some(name) => match self.tables.get(name) {
                Some(table) => Some(table.clone()),
                None => {
                    let names = self.tables.names();
                    let known = if names.is_empty() {
                        "(none; define them in mappings/tables/)".to_owned()
                    } else {
                        names.join(", ")
                    };
                    self.error(&at.key("table"), format!("no code table named '{name}'; known tables: {known}"));
                    None
                }
            },
            None => None,
        };
        let when = match &raw.when {
            Some(condition) => self.condition(condition, &at.key("when"), relative, parse),
            None => None,
        };
        let each = match &raw.each {
            Some(fields) => {
                if !paths_failed && !matches!((&canonical, &native), (Paths::One(_), Paths::One(_))) {
                    self.error(&at.key("each"), "'each' needs one canonical path and one native path naming the list");
                }
                self.rules(fields, &at.key("each"), true, parse)
            }
            None => None,
        };
        if raw.subtree && (raw.each.is_some() || date.is_some() || table.is_some() || raw.separator.is_some()) {
            self.error(&at.key("subtree"), "subtree copies values as they are; remove each, date, table and separator");
        }
        // A date in epoch form is a number in JSON unless the mapping says otherwise.
        let native_type = raw.native_type.or_else(|| {
            (self.format == WireFormat::Json && date.as_ref().is_some_and(DateCodec::native_is_number))
                .then_some(super::raw::ValueType::Integer)
        });
        if self.diagnostics.errors().count() > errors_before {
            return None;
        }
        Some(Rule {
            canonical,
            native,
            constant,
            default,
            required: raw.required,
            date,
            table,
            separator: raw.separator.clone(),
            when,
            each,
            subtree: raw.subtree,
            canonical_type: raw.canonical_type,
            native_type,
        })
    }

    fn value(&mut self, raw: &Option<toml::Value>, at: &KeyPath) -> Option<Value> {
        let value = raw.as_ref()?;
        let converted = scalar(value);
        if converted.is_none() {
            self.error(at, "must be a string, number or boolean");
        }
        converted
    }

    fn condition<P: PrefixCheck>(
        &mut self,
        raw: &RawCondition,
        at: &KeyPath,
        relative: bool,
        parse: &dyn Fn(&str, bool) -> Result<P, String>,
    ) -> Option<Condition<P>> {
        let subject = match (&raw.canonical, &raw.native) {
            (Some(path), None) => match JsonPath::parse(path, relative) {
                Ok(path) => Subject::Canonical(path),
                Err(message) => {
                    self.error(&at.key("canonical"), message);
                    return None;
                }
            },
            (None, Some(path)) => match parse(path, relative) {
                Ok(path) => Subject::Native(path),
                Err(message) => {
                    self.error(&at.key("native"), message);
                    return None;
                }
            },
            _ => {
                self.error(at, "a condition tests exactly one of 'canonical' or 'native'");
                return None;
            }
        };
        let test = match (&raw.equals, &raw.not_equals, raw.exists) {
            (Some(v), None, None) => scalar(v).map(|v| Test::Equals(native_key(&v))),
            (None, Some(v), None) => scalar(v).map(|v| Test::NotEquals(native_key(&v))),
            (None, None, Some(present)) => Some(Test::Exists(present)),
            _ => None,
        };
        match test {
            Some(test) => Some(Condition { subject, test }),
            None => {
                self.error(
                    at,
                    "a condition needs exactly one of 'equals', 'not_equals' or 'exists', with a scalar value",
                );
                None
            }
        }
    }

    fn test(&mut self, raw: &RawTest, at: &KeyPath, namespaces: &Namespaces) -> Option<TestCase> {
        let native_side = |direction: Direction, is_input: bool| match direction {
            Direction::ToNative => !is_input,
            Direction::ToCanonical => is_input,
        };
        let input = self.test_doc(&raw.input, native_side(raw.direction, true), &at.key("input"), namespaces);
        let expected = match (&raw.expected, &raw.expected_error) {
            (Some(doc), None) => {
                self.test_doc(doc, native_side(raw.direction, false), &at.key("expected"), namespaces).map(Ok)
            }
            (None, Some(fragment)) => Some(Err(fragment.clone())),
            _ => {
                self.error(at, "a test needs exactly one of 'expected' or 'expected_error'");
                None
            }
        };
        Some(TestCase {
            name: raw.name.clone(),
            message: raw.message,
            direction: raw.direction,
            input: input?,
            expected: expected?,
            position: self.doc.position(at),
            key_path: at.to_string(),
        })
    }

    fn test_doc(&mut self, raw: &toml::Value, native: bool, at: &KeyPath, namespaces: &Namespaces) -> Option<TestDoc> {
        let parsed = match raw {
            toml::Value::String(text) if native && self.format == WireFormat::Xml => {
                crate::wire::xml::parse(text.as_bytes(), crate::wire::charset::Charset::Utf8, namespaces)
                    .map(TestDoc::Xml)
                    .map_err(|e| format!("the XML does not parse: {e}"))
            }
            toml::Value::String(text) => serde_json::from_str::<Value>(text)
                .map(TestDoc::Json)
                .map_err(|e| format!("the JSON does not parse: {e}")),
            toml::Value::Table(_) if !(native && self.format == WireFormat::Xml) => {
                serde_json::to_value(raw).map(TestDoc::Json).map_err(|e| format!("cannot be read as JSON: {e}"))
            }
            _ => Err(if native && self.format == WireFormat::Xml {
                "an XML document is written as a string, e.g. '''<REQUEST>…</REQUEST>'''".to_owned()
            } else {
                "a document is a TOML table or a string of JSON".to_owned()
            }),
        };
        match parsed {
            Ok(doc) => Some(doc),
            Err(message) => {
                self.error(at, message);
                None
            }
        }
    }
}

/// Paths that may use namespace prefixes.
pub trait PrefixCheck {
    /// Prefixes used by the path.
    fn prefixes(&self) -> Box<dyn Iterator<Item = &str> + '_>;
}

impl PrefixCheck for JsonPath {
    fn prefixes(&self) -> Box<dyn Iterator<Item = &str> + '_> {
        Box::new(std::iter::empty())
    }
}

impl PrefixCheck for XmlPath {
    fn prefixes(&self) -> Box<dyn Iterator<Item = &str> + '_> {
        Box::new(XmlPath::prefixes(self))
    }
}

fn has_path<P>(paths: &Paths<P>) -> bool {
    !matches!(paths, Paths::None)
}

fn many_paths<P>(paths: &Paths<P>) -> bool {
    matches!(paths, Paths::Many(_))
}
