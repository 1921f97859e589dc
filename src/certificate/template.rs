//! Print templates (证照打印模板): one TOML file per certificate type under the `[printing]`
//! templates directory, so a new type needs a file, not Rust. A template places texts, rules,
//! frames and the verification QR code on an A4 page; texts may hold placeholders such as
//! `{holder.name}` or `{fields.move_to_address}` (docs/operations.md lists them all).
//!
//! Compiled once per configuration load; `tongban check` reports unknown placeholders, shapes off
//! the page and static text the font cannot show, each with file, line and key path.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use serde::Deserialize;

use super::pdf::{self, A4, Align, Item, Page, PdfFont};
use super::{Certificate, parse_date};
use crate::canonical::IdType;
use crate::config::diagnostic::Diagnostics;
use crate::config::source::{KeyPath, SpannedDoc};

/// A template file as written.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawTemplate {
    /// The canonical certificate type it prints, e.g. `household_transfer_permit`.
    #[serde(rename = "type")]
    pub type_code: String,
    /// Document title (PDF metadata), e.g. "准予迁入证明".
    pub title: String,
    /// Texts, each one line.
    #[serde(default)]
    pub text: Vec<RawText>,
    /// Horizontal rules.
    #[serde(default)]
    pub rule: Vec<RawRule>,
    /// Rectangle outlines.
    #[serde(default)]
    pub frame: Vec<RawFrame>,
    /// Where the verification QR code goes; every printed certificate carries one.
    pub qr: RawQr,
}

/// `[[text]]`: one line of text.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawText {
    /// Anchor from the left edge, millimetres.
    pub x_mm: f32,
    /// Baseline from the top edge, millimetres.
    pub y_mm: f32,
    /// Font size in points; default 12.
    #[serde(default = "default_size")]
    pub size_pt: f32,
    /// `left` (default), `center` or `right` of the anchor.
    #[serde(default)]
    pub align: RawAlign,
    /// The text, with `{placeholder}`s.
    pub text: String,
}

/// Alignment as written.
#[derive(Debug, Clone, Copy, Default, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum RawAlign {
    /// Starts at the anchor.
    #[default]
    Left,
    /// Centred on the anchor.
    Center,
    /// Ends at the anchor.
    Right,
}

/// `[[rule]]`: a horizontal line.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawRule {
    /// Start from the left edge, millimetres.
    pub x_mm: f32,
    /// From the top edge, millimetres.
    pub y_mm: f32,
    /// Length, millimetres.
    pub width_mm: f32,
    /// Line thickness in points; default 0.8.
    #[serde(default = "default_thickness")]
    pub thickness_pt: f32,
}

/// `[[frame]]`: a rectangle outline.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawFrame {
    /// Top-left corner from the left edge, millimetres.
    pub x_mm: f32,
    /// Top-left corner from the top edge, millimetres.
    pub y_mm: f32,
    /// Width, millimetres.
    pub width_mm: f32,
    /// Height, millimetres.
    pub height_mm: f32,
    /// Line thickness in points; default 0.8.
    #[serde(default = "default_thickness")]
    pub thickness_pt: f32,
}

/// `[qr]`: the verification code.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawQr {
    /// Top-left corner from the left edge, millimetres.
    pub x_mm: f32,
    /// Top-left corner from the top edge, millimetres.
    pub y_mm: f32,
    /// Side length, millimetres; at least 20 so phones read it.
    pub size_mm: f32,
}

fn default_size() -> f32 {
    12.0
}
fn default_thickness() -> f32 {
    0.8
}

/// A value a placeholder stands for.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Field {
    CertificateId,
    TypeName,
    TypeCode,
    HolderName,
    HolderIdType,
    HolderIdNumber,
    IssuerName,
    IssuerRegion,
    IssuedOn,
    ValidFrom,
    ValidUntil,
    Validity,
    Custom(String),
    PrintNumber,
    PrintLabel,
    PrintSite,
    PrintDate,
    PrintJob,
    VerifyUrl,
}

/// Every placeholder but `fields.<name>`, for the operator's error message.
const PLACEHOLDERS: &[(&str, Field)] = &[
    ("certificate_id", Field::CertificateId),
    ("type.name", Field::TypeName),
    ("type.code", Field::TypeCode),
    ("holder.name", Field::HolderName),
    ("holder.id_type", Field::HolderIdType),
    ("holder.id_number", Field::HolderIdNumber),
    ("issuer.name", Field::IssuerName),
    ("issuer.region", Field::IssuerRegion),
    ("issued_on", Field::IssuedOn),
    ("valid_from", Field::ValidFrom),
    ("valid_until", Field::ValidUntil),
    ("validity", Field::Validity),
    ("print.number", Field::PrintNumber),
    ("print.label", Field::PrintLabel),
    ("print.site", Field::PrintSite),
    ("print.date", Field::PrintDate),
    ("print.job", Field::PrintJob),
    ("verify.url", Field::VerifyUrl),
];

impl Field {
    fn parse(name: &str) -> Option<Field> {
        if let Some(field) = name.strip_prefix("fields.") {
            let plain =
                !field.is_empty() && field.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_');
            return plain.then(|| Field::Custom(field.to_owned()));
        }
        PLACEHOLDERS.iter().find(|(known, _)| *known == name).map(|(_, field)| field.clone())
    }

    /// The canonical path of the certificate value, for error messages.
    fn path(&self) -> String {
        let path = match self {
            Field::CertificateId => "/certificate_id",
            Field::TypeName => "/type/name",
            Field::TypeCode => "/type/code",
            Field::HolderName => "/holder/name",
            Field::HolderIdType => "/holder/id_type",
            Field::HolderIdNumber => "/holder/id_number",
            Field::IssuerName => "/issuer/name",
            Field::IssuerRegion => "/issuer/region",
            Field::IssuedOn => "/issued_on",
            Field::ValidFrom => "/valid_from",
            Field::ValidUntil | Field::Validity => "/valid_until",
            Field::Custom(name) => return format!("/fields/{name}"),
            Field::PrintNumber | Field::PrintLabel | Field::PrintSite | Field::PrintDate | Field::PrintJob => {
                "print job"
            }
            Field::VerifyUrl => "[printing] verify_url",
        };
        path.to_owned()
    }
}

#[derive(Debug, Clone)]
enum Piece {
    Literal(String),
    Field(Field),
}

#[derive(Debug, Clone)]
enum Shape {
    Text { x_mm: f32, y_mm: f32, size_pt: f32, align: Align, pieces: Vec<Piece> },
    Fixed(Item),
    Qr { x_mm: f32, y_mm: f32, size_mm: f32 },
}

/// A compiled template.
#[derive(Debug, Clone)]
pub struct Template {
    /// The certificate type printed.
    pub type_code: String,
    /// Document title.
    pub title: String,
    /// The file it came from, for messages.
    pub file: String,
    shapes: Vec<Shape>,
}

/// The facts of one print that a page shows besides the certificate.
#[derive(Debug, Clone)]
pub struct PrintFacts<'a> {
    /// 1 for the first print, 2… for reprints.
    pub number: u32,
    /// The window or terminal id.
    pub site: &'a str,
    /// Beijing date of printing.
    pub date: chrono::NaiveDate,
    /// The job id.
    pub job: &'a str,
    /// The verification URL the QR code carries.
    pub verify_url: &'a str,
}

/// Characters the font lacks, by certificate field.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Unprintable {
    /// `(canonical path or "template", missing characters)`.
    pub missing: Vec<(String, Vec<char>)>,
}

impl std::fmt::Display for Unprintable {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let parts: Vec<String> = self
            .missing
            .iter()
            .map(|(path, chars)| {
                let listed: Vec<String> = chars.iter().map(|c| format!("'{c}' (U+{:04X})", *c as u32)).collect();
                format!("{path}: {}", listed.join(", "))
            })
            .collect();
        write!(f, "the print font has no glyph for {}", parts.join("; "))
    }
}

impl Template {
    /// Lays out one page for a verified certificate.
    pub fn page(&self, certificate: &Certificate, print: &PrintFacts<'_>, font: &PdfFont) -> Result<Page, Unprintable> {
        let mut items = Vec::with_capacity(self.shapes.len());
        let mut missing: Vec<(String, Vec<char>)> = Vec::new();
        for shape in &self.shapes {
            match shape {
                Shape::Text { x_mm, y_mm, size_pt, align, pieces } => {
                    let mut text = String::new();
                    for piece in pieces {
                        match piece {
                            Piece::Literal(literal) => text.push_str(literal),
                            Piece::Field(field) => {
                                let value = value_of(field, certificate, print);
                                let lacking = font.missing(&value);
                                if !lacking.is_empty() {
                                    let path = field.path();
                                    match missing.iter_mut().find(|(p, _)| *p == path) {
                                        Some((_, chars)) => {
                                            for c in lacking {
                                                if !chars.contains(&c) {
                                                    chars.push(c);
                                                }
                                            }
                                        }
                                        None => missing.push((path, lacking)),
                                    }
                                }
                                text.push_str(&value);
                            }
                        }
                    }
                    items.push(Item::Text { x_mm: *x_mm, y_mm: *y_mm, size_pt: *size_pt, align: *align, text });
                }
                Shape::Fixed(item) => items.push(item.clone()),
                Shape::Qr { x_mm, y_mm, size_mm } => items.push(Item::Qr {
                    x_mm: *x_mm,
                    y_mm: *y_mm,
                    size_mm: *size_mm,
                    payload: print.verify_url.to_owned(),
                }),
            }
        }
        if !missing.is_empty() {
            return Err(Unprintable { missing });
        }
        Ok(Page { width_mm: A4.0, height_mm: A4.1, items })
    }

    /// Compiles a template file; errors go to `diagnostics`. Static text is checked against the
    /// font here, so a template that cannot print fails `tongban check`, not a window clerk.
    pub fn compile(
        raw: &RawTemplate,
        doc: &SpannedDoc<'_>,
        font: Option<&PdfFont>,
        diagnostics: &mut Diagnostics,
    ) -> Option<Template> {
        let before = diagnostics.errors().count();
        let root = KeyPath::root();
        let code_ok = !raw.type_code.is_empty()
            && raw.type_code.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_');
        if !code_ok {
            doc.report(
                diagnostics,
                &root.key("type"),
                format!("'{}' is not a canonical certificate type code; use lowercase letters, digits and '_', e.g. business_license", raw.type_code),
            );
        }
        let mut shapes = Vec::new();
        let on_page = |x: f32, y: f32| (0.0..=A4.0).contains(&x) && (0.0..=A4.1).contains(&y);
        let off_page = "lies off the A4 page (210 × 297 mm, measured from the top-left corner)";
        for (index, text) in raw.text.iter().enumerate() {
            let at = root.key("text").index(index);
            if !on_page(text.x_mm, text.y_mm) {
                doc.report(diagnostics, &at, format!("the text anchor ({}, {}) {off_page}", text.x_mm, text.y_mm));
            }
            if !(4.0..=96.0).contains(&text.size_pt) {
                doc.report(diagnostics, &at.key("size_pt"), "a font size between 4 and 96 points is printable");
            }
            match parse_pieces(&text.text) {
                Ok(pieces) => {
                    if let Some(font) = font {
                        let literal: String = pieces
                            .iter()
                            .filter_map(|p| match p {
                                Piece::Literal(l) => Some(l.as_str()),
                                Piece::Field(_) => None,
                            })
                            .collect();
                        let lacking = font.missing(&literal);
                        if !lacking.is_empty() {
                            let listed: Vec<String> =
                                lacking.iter().map(|c| format!("'{c}' (U+{:04X})", *c as u32)).collect();
                            doc.report(
                                diagnostics,
                                &at.key("text"),
                                format!(
                                    "the print font has no glyph for {}; reword or use a font that has them",
                                    listed.join(", ")
                                ),
                            );
                        }
                    }
                    let align = match text.align {
                        RawAlign::Left => Align::Left,
                        RawAlign::Center => Align::Center,
                        RawAlign::Right => Align::Right,
                    };
                    shapes.push(Shape::Text { x_mm: text.x_mm, y_mm: text.y_mm, size_pt: text.size_pt, align, pieces });
                }
                Err(message) => doc.report(diagnostics, &at.key("text"), message),
            }
        }
        for (index, rule) in raw.rule.iter().enumerate() {
            if !on_page(rule.x_mm, rule.y_mm) || !on_page(rule.x_mm + rule.width_mm, rule.y_mm) || rule.width_mm <= 0.0
            {
                doc.report(
                    diagnostics,
                    &root.key("rule").index(index),
                    format!("the rule {off_page} or has no length"),
                );
            }
            shapes.push(Shape::Fixed(Item::Rule {
                x_mm: rule.x_mm,
                y_mm: rule.y_mm,
                width_mm: rule.width_mm,
                thickness_pt: rule.thickness_pt,
            }));
        }
        for (index, frame) in raw.frame.iter().enumerate() {
            let inside =
                on_page(frame.x_mm, frame.y_mm) && on_page(frame.x_mm + frame.width_mm, frame.y_mm + frame.height_mm);
            if !inside || frame.width_mm <= 0.0 || frame.height_mm <= 0.0 {
                doc.report(diagnostics, &root.key("frame").index(index), format!("the frame {off_page} or is empty"));
            }
            shapes.push(Shape::Fixed(Item::Frame {
                x_mm: frame.x_mm,
                y_mm: frame.y_mm,
                width_mm: frame.width_mm,
                height_mm: frame.height_mm,
                thickness_pt: frame.thickness_pt,
            }));
        }
        let qr = &raw.qr;
        if !on_page(qr.x_mm, qr.y_mm) || !on_page(qr.x_mm + qr.size_mm, qr.y_mm + qr.size_mm) {
            doc.report(diagnostics, &root.key("qr"), format!("the QR code {off_page}"));
        }
        if qr.size_mm < 20.0 {
            doc.report(
                diagnostics,
                &root.key("qr").key("size_mm"),
                "make the QR code at least 20 mm so phones read it",
            );
        }
        shapes.push(Shape::Qr { x_mm: qr.x_mm, y_mm: qr.y_mm, size_mm: qr.size_mm });
        if diagnostics.errors().count() > before {
            return None;
        }
        Some(Template {
            type_code: raw.type_code.clone(),
            title: raw.title.clone(),
            file: doc.source().display.clone(),
            shapes,
        })
    }
}

/// `持证人：{holder.name}` → literal and field pieces.
fn parse_pieces(text: &str) -> Result<Vec<Piece>, String> {
    let mut pieces = Vec::new();
    let mut rest = text;
    while let Some(open) = rest.find(['{', '}']) {
        if rest[open..].starts_with('}') {
            return Err("a '}' without its '{'; placeholders look like {holder.name}".into());
        }
        if open > 0 {
            pieces.push(Piece::Literal(rest[..open].to_owned()));
        }
        let after = &rest[open + 1..];
        let Some(close) = after.find('}') else {
            return Err("a '{' without its '}'; placeholders look like {holder.name}".into());
        };
        let name = after[..close].trim();
        let field = Field::parse(name).ok_or_else(|| {
            let known: Vec<&str> = PLACEHOLDERS.iter().map(|(n, _)| *n).collect();
            format!(
                "unknown placeholder '{{{name}}}'; use one of {}, or fields.<name> for a type's own field",
                known.join(", ")
            )
        })?;
        pieces.push(Piece::Field(field));
        rest = &after[close + 1..];
    }
    if !rest.is_empty() {
        pieces.push(Piece::Literal(rest.to_owned()));
    }
    Ok(pieces)
}

/// `2026-11-20` → `2026年11月20日`, as Chinese certificates print dates.
fn chinese_date(date: &str) -> String {
    use chrono::Datelike;
    match parse_date(date) {
        Some(d) => format!("{}年{}月{}日", d.year(), d.month(), d.day()),
        None => date.to_owned(),
    }
}

fn id_type_name(id_type: IdType) -> &'static str {
    match id_type {
        IdType::ResidentId => "居民身份证",
        IdType::Passport => "护照",
        IdType::HkMacaoPass => "港澳居民来往内地通行证",
        IdType::TaiwanPass => "台湾居民来往大陆通行证",
        IdType::ForeignPermanentResident => "外国人永久居留身份证",
        IdType::Uscc => "统一社会信用代码",
    }
}

fn value_of(field: &Field, certificate: &Certificate, print: &PrintFacts<'_>) -> String {
    match field {
        Field::CertificateId => certificate.certificate_id.clone(),
        Field::TypeName => certificate.kind.name.clone(),
        Field::TypeCode => certificate.kind.code.clone(),
        Field::HolderName => certificate.holder.name.clone(),
        Field::HolderIdType => id_type_name(certificate.holder.id_type).to_owned(),
        Field::HolderIdNumber => certificate.holder.id_number.clone(),
        Field::IssuerName => certificate.issuer.name.clone(),
        Field::IssuerRegion => certificate.issuer.region.clone(),
        Field::IssuedOn => chinese_date(&certificate.issued_on),
        Field::ValidFrom => chinese_date(&certificate.valid_from),
        Field::ValidUntil => certificate.valid_until.as_deref().map(chinese_date).unwrap_or_else(|| "长期".to_owned()),
        Field::Validity => match &certificate.valid_until {
            Some(until) => format!("{} 至 {}", chinese_date(&certificate.valid_from), chinese_date(until)),
            None => format!("{} 起长期有效", chinese_date(&certificate.valid_from)),
        },
        Field::Custom(name) => certificate.fields.get(name).cloned().unwrap_or_default(),
        Field::PrintNumber => print.number.to_string(),
        Field::PrintLabel if print.number <= 1 => String::new(),
        Field::PrintLabel => format!("补打（第{}次打印）", print.number),
        Field::PrintSite => print.site.to_owned(),
        Field::PrintDate => chinese_date(&print.date.format("%Y-%m-%d").to_string()),
        Field::PrintJob => print.job.to_owned(),
        Field::VerifyUrl => print.verify_url.to_owned(),
    }
}

/// Every template by certificate type, with the font they print in.
#[derive(Debug, Clone)]
pub struct Templates {
    /// The CJK font, parsed once.
    pub font: PdfFont,
    by_type: HashMap<String, Arc<Template>>,
}

impl Templates {
    /// A set from compiled templates.
    pub fn new(font: PdfFont, templates: Vec<Template>) -> Templates {
        Templates { font, by_type: templates.into_iter().map(|t| (t.type_code.clone(), Arc::new(t))).collect() }
    }

    /// The template of a certificate type.
    pub fn get(&self, type_code: &str) -> Option<&Arc<Template>> {
        self.by_type.get(type_code)
    }

    /// Type codes with a template, sorted.
    pub fn types(&self) -> Vec<&str> {
        let sorted: BTreeMap<&str, ()> = self.by_type.keys().map(|k| (k.as_str(), ())).collect();
        sorted.into_keys().collect()
    }

    /// Renders a certificate to PDF bytes.
    pub fn render(&self, certificate: &Certificate, print: &PrintFacts<'_>) -> Result<Vec<u8>, RenderFailure> {
        let template = self
            .get(&certificate.kind.code)
            .ok_or_else(|| RenderFailure::NoTemplate { type_code: certificate.kind.code.clone() })?;
        let page = template.page(certificate, print, &self.font).map_err(RenderFailure::Unprintable)?;
        let title = format!("{} {}", template.title, certificate.certificate_id);
        pdf::render(&self.font, &page, &title).map_err(|error| match error {
            // Checked above per field; the renderer checks again so nothing slips through.
            pdf::RenderError::MissingGlyphs { chars, .. } => {
                RenderFailure::Unprintable(Unprintable { missing: vec![("template".into(), chars)] })
            }
            other => RenderFailure::Pdf(other.to_string()),
        })
    }
}

/// Why no document could be made.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RenderFailure {
    /// No template for the certificate's type.
    NoTemplate {
        /// The type code.
        type_code: String,
    },
    /// The font lacks characters of the certificate.
    Unprintable(Unprintable),
    /// The PDF writer failed.
    Pdf(String),
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn placeholders_are_parsed_and_unknown_ones_named() {
        let pieces = parse_pieces("持证人：{holder.name}（{fields.reason}）").unwrap();
        assert_eq!(pieces.len(), 5);
        assert!(matches!(&pieces[1], Piece::Field(Field::HolderName)));
        assert!(matches!(&pieces[3], Piece::Field(Field::Custom(name)) if name == "reason"));
        let error = parse_pieces("{holder.nmae}").unwrap_err();
        assert!(error.contains("unknown placeholder '{holder.nmae}'") && error.contains("holder.name"), "{error}");
        assert!(parse_pieces("a { b").is_err());
        assert!(parse_pieces("a } b").is_err());
        assert!(parse_pieces("{fields.Bad-Name}").is_err());
    }

    fn font() -> PdfFont {
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/config/fonts/NotoSansHans-Regular.otf");
        PdfFont::from_bytes(std::fs::read(path).unwrap()).unwrap()
    }

    fn compiled(text: &str, font: &PdfFont) -> (Option<Template>, String) {
        let source = crate::config::source::SourceFile::from_text("t.toml".into(), "t.toml".into(), text.into());
        let (raw, doc) = source.parse::<RawTemplate>().unwrap();
        let mut diagnostics = Diagnostics::new();
        let template = Template::compile(&raw, &doc, Some(font), &mut diagnostics);
        (template, diagnostics.to_string())
    }

    #[test]
    fn static_text_the_font_lacks_fails_the_check_and_values_it_lacks_are_named() {
        let font = font();
        let head =
            "type = \"household_transfer_permit\"\ntitle = \"x\"\n[qr]\nx_mm = 150.0\ny_mm = 220.0\nsize_mm = 35.0\n";
        let (template, errors) = compiled(
            &format!("{head}[[text]]\nx_mm = 30.0\ny_mm = 80.0\ntext = \"持证人\u{20000}：{{holder.name}}\"\n"),
            &font,
        );
        assert!(template.is_none());
        assert!(
            errors.contains("t.toml:") && errors.contains("text[0].text") && errors.contains("U+20000"),
            "{errors}"
        );

        let (template, errors) =
            compiled(&format!("{head}[[text]]\nx_mm = 30.0\ny_mm = 80.0\ntext = \"持证人：{{holder.name}}\"\n"), &font);
        let template = template.unwrap_or_else(|| panic!("{errors}"));
        let mut certificate = Certificate::from_canonical(&crate::certificate::tests::sample()).unwrap();
        certificate.holder.name = "张\u{20000}\u{20001}".into();
        let facts = PrintFacts {
            number: 1,
            site: "W",
            date: chrono::NaiveDate::from_ymd_opt(2026, 11, 22).unwrap(),
            job: "j",
            verify_url: "http://127.0.0.1/v1/verify/t",
        };
        let missing = template.page(&certificate, &facts, &font).unwrap_err();
        assert_eq!(missing.missing, vec![("/holder/name".to_owned(), vec!['\u{20000}', '\u{20001}'])]);
        assert!(missing.to_string().contains("'\u{20000}' (U+20000)"), "{missing}");
    }

    #[test]
    fn dates_print_the_chinese_way() {
        assert_eq!(chinese_date("2026-01-05"), "2026年1月5日");
        assert_eq!(chinese_date("bad"), "bad");
    }
}
