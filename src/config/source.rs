//! Configuration source files (配置文件): raw text kept with a spanned parse tree, so that any
//! key path found invalid by a later validation pass can be reported with its line and column.

use std::ops::Range;
use std::path::{Path, PathBuf};

use serde::de::DeserializeOwned;
use toml::Spanned;
use toml::de::DeTable;

use super::diagnostic::{Diagnostic, Diagnostics, Severity};

/// One segment of a key path inside a TOML document.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KeySegment {
    /// A table key.
    Key(String),
    /// An array index.
    Index(usize),
}

/// A key path such as `request.fields[3].table`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct KeyPath(pub Vec<KeySegment>);

impl KeyPath {
    /// The empty path: the document itself.
    pub fn root() -> KeyPath {
        KeyPath(Vec::new())
    }

    /// This path with a key appended.
    pub fn key(&self, key: &str) -> KeyPath {
        let mut path = self.clone();
        path.0.push(KeySegment::Key(key.to_owned()));
        path
    }

    /// This path with an array index appended.
    pub fn index(&self, index: usize) -> KeyPath {
        let mut path = self.clone();
        path.0.push(KeySegment::Index(index));
        path
    }
}

impl std::fmt::Display for KeyPath {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mut first = true;
        for segment in &self.0 {
            match segment {
                KeySegment::Key(key) => {
                    if !first {
                        f.write_str(".")?;
                    }
                    f.write_str(key)?;
                }
                KeySegment::Index(index) => write!(f, "[{index}]")?,
            }
            first = false;
        }
        Ok(())
    }
}

/// A configuration file's text and the name to report it by.
#[derive(Debug, Clone)]
pub struct SourceFile {
    /// Path used to open the file.
    pub path: PathBuf,
    /// Name shown in diagnostics.
    pub display: String,
    /// The whole text.
    pub text: String,
    line_starts: Vec<usize>,
}

impl SourceFile {
    /// Reads a file; an unreadable file becomes a diagnostic.
    pub fn read(path: &Path) -> Result<SourceFile, Diagnostic> {
        let display = display_path(path);
        match std::fs::read_to_string(path) {
            Ok(text) => Ok(SourceFile::from_text(path.to_path_buf(), display, text)),
            Err(err) => Err(Diagnostic {
                severity: Severity::Error,
                file: display,
                position: None,
                key_path: String::new(),
                message: format!("cannot read the file: {err}; check the path and its permissions"),
            }),
        }
    }

    /// Wraps text already in memory (tests, embedded files).
    pub fn from_text(path: PathBuf, display: String, text: String) -> SourceFile {
        let mut line_starts = vec![0];
        line_starts.extend(text.match_indices('\n').map(|(i, _)| i + 1));
        SourceFile { path, display, text, line_starts }
    }

    /// 1-based line and column of a byte offset.
    pub fn line_column(&self, offset: usize) -> (usize, usize) {
        let line = match self.line_starts.binary_search(&offset) {
            Ok(i) => i,
            Err(i) => i.saturating_sub(1),
        };
        let start = self.line_starts.get(line).copied().unwrap_or(0);
        let column = self.text.get(start..offset.min(self.text.len())).map(|s| s.chars().count()).unwrap_or(0);
        (line + 1, column + 1)
    }

    /// Parses the file into a raw type. Syntax and shape errors become one diagnostic with the
    /// key path serde reached, the line and the message (serde stops at the first one per file).
    pub fn parse<T: DeserializeOwned>(&self) -> Result<(T, SpannedDoc<'_>), Diagnostic> {
        let tree = DeTable::parse(&self.text).map_err(|err| self.toml_error(&err, ""))?;
        let deserializer = toml::de::Deserializer::from(tree.clone());
        match serde_path_to_error::deserialize::<_, T>(deserializer) {
            Ok(value) => Ok((value, SpannedDoc { source: self, tree })),
            Err(err) => {
                let mut path = err.path().to_string();
                if path == "." {
                    path.clear();
                }
                let inner = err.into_inner();
                let mut diagnostic = self.toml_error(&inner, &path);
                if diagnostic.position.is_none() {
                    let doc = SpannedDoc { source: self, tree };
                    diagnostic.position = doc.position_of_str(&path);
                }
                Err(diagnostic)
            }
        }
    }

    fn toml_error(&self, err: &toml::de::Error, key_path: &str) -> Diagnostic {
        Diagnostic {
            severity: Severity::Error,
            file: self.display.clone(),
            position: err.span().map(|span| self.line_column(span.start)),
            key_path: key_path.to_owned(),
            message: tidy_serde_message(err.message()),
        }
    }
}

/// The spanned parse tree of a [`SourceFile`], for locating key paths.
pub struct SpannedDoc<'s> {
    source: &'s SourceFile,
    tree: Spanned<DeTable<'s>>,
}

impl<'s> SpannedDoc<'s> {
    /// The file this tree came from.
    pub fn source(&self) -> &'s SourceFile {
        self.source
    }

    /// Byte span of the value at a key path, or of the nearest ancestor that exists.
    pub fn span_of(&self, path: &KeyPath) -> Range<usize> {
        let mut span = self.tree.span();
        let mut table: Option<&DeTable<'_>> = Some(self.tree.get_ref());
        let mut array: Option<&toml::de::DeArray<'_>> = None;
        for segment in &path.0 {
            let next = match (segment, table, array) {
                (KeySegment::Key(key), Some(t), _) => t.get(key.as_str()),
                (KeySegment::Index(i), _, Some(a)) => a.get(*i),
                _ => None,
            };
            let Some(value) = next else { break };
            span = value.span();
            table = value.get_ref().as_table();
            array = value.get_ref().as_array();
        }
        span
    }

    /// Line and column of a key path.
    pub fn position(&self, path: &KeyPath) -> (usize, usize) {
        self.source.line_column(self.span_of(path).start)
    }

    fn position_of_str(&self, path: &str) -> Option<(usize, usize)> {
        Some(self.position(&parse_key_path(path)))
    }

    /// An error diagnostic at a key path of this file.
    pub fn error(&self, path: &KeyPath, message: impl Into<String>) -> Diagnostic {
        Diagnostic {
            severity: Severity::Error,
            file: self.source.display.clone(),
            position: Some(self.position(path)),
            key_path: path.to_string(),
            message: message.into(),
        }
    }

    /// A warning diagnostic at a key path of this file.
    pub fn warning(&self, path: &KeyPath, message: impl Into<String>) -> Diagnostic {
        Diagnostic { severity: Severity::Warning, ..self.error(path, message) }
    }

    /// Records an error at a key path.
    pub fn report(&self, diagnostics: &mut Diagnostics, path: &KeyPath, message: impl Into<String>) {
        diagnostics.push(self.error(path, message));
    }
}

/// Parses `a.b[3].c` back into segments (for serde's paths).
fn parse_key_path(path: &str) -> KeyPath {
    let mut segments = Vec::new();
    for part in path.split('.').filter(|p| !p.is_empty()) {
        let mut rest = part;
        if let Some(bracket) = rest.find('[') {
            let key = &rest[..bracket];
            if !key.is_empty() {
                segments.push(KeySegment::Key(key.to_owned()));
            }
            rest = &rest[bracket..];
            while let Some(stripped) = rest.strip_prefix('[') {
                let Some(end) = stripped.find(']') else { break };
                if let Ok(index) = stripped[..end].parse() {
                    segments.push(KeySegment::Index(index));
                }
                rest = &stripped[end + 1..];
            }
        } else {
            segments.push(KeySegment::Key(rest.to_owned()));
        }
    }
    KeyPath(segments)
}

/// serde quotes names with backticks; operators read plain quotes more easily.
fn tidy_serde_message(message: &str) -> String {
    message.trim().replace('`', "'")
}

/// Shows a path relative to the working directory when it lies below it.
pub fn display_path(path: &Path) -> String {
    let path = normalize(path);
    let relative =
        std::env::current_dir().ok().and_then(|cwd| path.strip_prefix(normalize(&cwd)).ok().map(Path::to_path_buf));
    let shown = relative.unwrap_or(path);
    shown.to_string_lossy().trim_start_matches("./").to_owned()
}

/// Removes `.` and `dir/..` lexically, so `config/../adapters/a.toml` shows as `adapters/a.toml`.
fn normalize(path: &Path) -> PathBuf {
    use std::path::Component;
    let mut out: Vec<Component<'_>> = Vec::new();
    for component in path.components() {
        match component {
            Component::CurDir => {}
            Component::ParentDir if matches!(out.last(), Some(Component::Normal(_))) => {
                out.pop();
            }
            other => out.push(other),
        }
    }
    out.iter().collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, serde::Deserialize)]
    #[serde(deny_unknown_fields)]
    #[allow(dead_code)]
    struct Field {
        from: String,
        to: String,
    }

    #[derive(Debug, serde::Deserialize)]
    #[serde(deny_unknown_fields)]
    #[allow(dead_code)]
    struct Doc {
        fields: Vec<Field>,
    }

    fn source(text: &str) -> SourceFile {
        SourceFile::from_text(PathBuf::from("m.toml"), "m.toml".into(), text.into())
    }

    #[test]
    fn unknown_key_is_reported_with_line_and_full_path() {
        let file = source("fields = [\n  { from = \"a\", to = \"b\" },\n  { soruce = \"a\", to = \"b\" },\n]\n");
        let err = file.parse::<Doc>().map(|_| ()).unwrap_err();
        assert_eq!(err.to_string(), "m.toml:3:5: fields[1].soruce: unknown field 'soruce', expected 'from' or 'to'");
    }

    #[test]
    fn key_paths_locate_values() {
        let file = source("[a]\nb = [1, { c = 2 }]\n");
        let (_, doc) = file.parse::<toml::Table>().unwrap();
        let path = KeyPath::root().key("a").key("b").index(1).key("c");
        assert_eq!(doc.position(&path), (2, 15));
        assert_eq!(path.to_string(), "a.b[1].c");
        // A missing key falls back to its nearest ancestor.
        assert_eq!(doc.position(&KeyPath::root().key("a").key("zz")), (1, 1));
    }
}
