//! One-page PDF rendering (A4 certificates) with an embedded, subset CJK font and a QR code.
//!
//! Text is laid out here rather than with krilla's `simple-text` feature: alignment needs the
//! width of exactly what is drawn, krilla's shaper is private (and panics on a bad face), and
//! CJK, digits and Latin capitals need no complex shaping. Every glyph keeps its source
//! character range, so krilla writes a ToUnicode map and the text stays extractable.
//!
//! The QR code is drawn as filled vector squares: krilla only accepts raw pixels
//! (`CustomImage`) behind its `raster-images` feature, which pulls in PNG/JPEG/GIF/WebP
//! decoders. Vectors are also sharp at any zoom and smaller than a bitmap.

use std::fmt;

use krilla::Document;
use krilla::color::luma;
use krilla::geom::{PathBuilder, Point, Rect};
use krilla::metadata::Metadata;
use krilla::page::PageSettings;
use krilla::paint::{Fill, FillRule, Stroke};
use krilla::surface::Surface;
use krilla::text::{Font, GlyphId, KrillaGlyph};
use skrifa::instance::{LocationRef, Size};
use skrifa::{FontRef, MetadataProvider};

/// A4 portrait, in millimetres (width, height).
pub const A4: (f32, f32) = (210.0, 297.0);

const PT_PER_MM: f32 = 72.0 / 25.4;
/// Light modules around the symbol, as the QR specification requires.
const QR_QUIET_ZONE: usize = 4;
/// Advance for a space the font has no glyph for, in em.
const FALLBACK_SPACE_EM: f32 = 0.25;

/// A parsed CJK font, loaded once and shared (cheap Clone).
#[derive(Clone)]
pub struct PdfFont {
    /// What krilla embeds (and subsets) when rendering.
    font: Font,
    /// The same bytes (shared, not copied), read with skrifa for cmap and advances,
    /// which krilla does not expose.
    data: krilla::Data,
}

impl fmt::Debug for PdfFont {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PdfFont").field("bytes", &self.data.as_ref().len()).finish()
    }
}

impl PdfFont {
    /// Parses an OpenType/TrueType font (first face of a collection).
    pub fn from_bytes(bytes: Vec<u8>) -> Result<PdfFont, String> {
        let data = krilla::Data::from(bytes);
        let face = FontRef::from_index(data.as_ref(), 0).map_err(|e| format!("not an OpenType font: {e}"))?;
        if !face.charmap().has_map() {
            return Err("font has no Unicode character map".to_string());
        }
        if face.metrics(Size::unscaled(), LocationRef::default()).units_per_em == 0 {
            return Err("font has no units-per-em".to_string());
        }
        let font = Font::new(data.clone(), 0).ok_or_else(|| "krilla cannot load the font".to_string())?;
        Ok(PdfFont { font, data })
    }

    /// Characters of `text` with no glyph in the font, deduplicated, in order of first appearance.
    /// Control characters count as missing; ordinary spaces do not.
    pub fn missing(&self, text: &str) -> Vec<char> {
        // `from_bytes` already parsed the face, so this cannot fail; if it did, refuse all text
        // rather than let anything be dropped.
        let Ok(face) = self.face() else { return dedup(text.chars().filter(|c| *c != ' ')) };
        let charmap = face.charmap();
        dedup(text.chars().filter(|&c| c != ' ' && (c.is_control() || !has_glyph(&charmap, c))))
    }

    fn face(&self) -> Result<FontRef<'_>, String> {
        FontRef::from_index(self.data.as_ref(), 0).map_err(|e| e.to_string())
    }
}

fn dedup(chars: impl Iterator<Item = char>) -> Vec<char> {
    let mut out: Vec<char> = Vec::new();
    for c in chars {
        if !out.contains(&c) {
            out.push(c);
        }
    }
    out
}

fn has_glyph(charmap: &skrifa::charmap::Charmap<'_>, c: char) -> bool {
    charmap.map(c).is_some_and(|g| g.to_u32() != 0)
}

/// One page; coordinates are millimetres from the top-left corner.
#[derive(Clone, Debug, PartialEq)]
pub struct Page {
    pub width_mm: f32,
    pub height_mm: f32,
    pub items: Vec<Item>,
}

/// Horizontal alignment of a text relative to its anchor `x_mm`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Align {
    Left,
    Center,
    Right,
}

/// Something drawn on a page.
#[derive(Clone, Debug, PartialEq)]
pub enum Item {
    /// y_mm is the baseline, measured from the top edge; x_mm is the anchor given by align.
    Text { x_mm: f32, y_mm: f32, size_pt: f32, align: Align, text: String },
    /// Horizontal rule from (x_mm, y_mm) of width_mm.
    Rule { x_mm: f32, y_mm: f32, width_mm: f32, thickness_pt: f32 },
    /// Rectangle outline; (x_mm, y_mm) is its top-left corner.
    Frame { x_mm: f32, y_mm: f32, width_mm: f32, height_mm: f32, thickness_pt: f32 },
    /// QR code (error correction M, 4-module quiet zone) of size_mm square, top-left at (x_mm, y_mm).
    Qr { x_mm: f32, y_mm: f32, size_mm: f32, payload: String },
}

/// Why a page could not be rendered.
#[derive(Debug, PartialEq)]
pub enum RenderError {
    /// Item `item` (index into page.items) has characters the font lacks: never drop them silently.
    MissingGlyphs {
        item: usize,
        chars: Vec<char>,
    },
    Qr(String),
    Pdf(String),
}

impl fmt::Display for RenderError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RenderError::MissingGlyphs { item, chars } => {
                write!(f, "item {item}: the font has no glyph for")?;
                for c in chars {
                    write!(f, " {c:?} (U+{:04X})", u32::from(*c))?;
                }
                Ok(())
            }
            RenderError::Qr(e) => write!(f, "QR code: {e}"),
            RenderError::Pdf(e) => write!(f, "PDF: {e}"),
        }
    }
}

impl std::error::Error for RenderError {}

/// Renders one page. Checks every Text item with `missing` first and refuses before drawing anything.
/// `title` goes into the document metadata. Fonts are embedded as subsets (only the glyphs used).
pub fn render(font: &PdfFont, page: &Page, title: &str) -> Result<Vec<u8>, RenderError> {
    for (index, item) in page.items.iter().enumerate() {
        if let Item::Text { text, .. } = item {
            let chars = font.missing(text);
            if !chars.is_empty() {
                return Err(RenderError::MissingGlyphs { item: index, chars });
            }
        }
    }
    for (index, item) in page.items.iter().enumerate() {
        check_geometry(index, item)?;
    }
    // Encode every QR before drawing, so a payload that does not fit fails without side effects.
    let qr_codes = page
        .items
        .iter()
        .enumerate()
        .filter_map(|(index, item)| match item {
            Item::Qr { payload, .. } => {
                Some(qr_modules(payload).map_err(|e| RenderError::Qr(format!("item {index}: {e}"))))
            }
            _ => None,
        })
        .collect::<Result<Vec<_>, _>>()?;

    let face = font.face().map_err(RenderError::Pdf)?;
    let settings = PageSettings::from_wh(mm(page.width_mm), mm(page.height_mm))
        .ok_or_else(|| RenderError::Pdf(format!("invalid page size {} x {} mm", page.width_mm, page.height_mm)))?;

    let mut document = Document::new();
    document.set_metadata(Metadata::new().title(title.to_string()));
    {
        let mut pdf_page = document.start_page_with(settings);
        let mut surface = pdf_page.surface();
        let mut qr_codes = qr_codes.into_iter();
        for item in &page.items {
            match item {
                Item::Text { x_mm, y_mm, size_pt, align, text } => {
                    draw_text(&mut surface, font, &face, (*x_mm, *y_mm), *size_pt, *align, text);
                }
                Item::Rule { x_mm, y_mm, width_mm, thickness_pt } => {
                    let mut builder = PathBuilder::new();
                    builder.move_to(mm(*x_mm), mm(*y_mm));
                    builder.line_to(mm(x_mm + width_mm), mm(*y_mm));
                    stroke(&mut surface, builder, *thickness_pt);
                }
                Item::Frame { x_mm, y_mm, width_mm, height_mm, thickness_pt } => {
                    let mut builder = PathBuilder::new();
                    if let Some(rect) = Rect::from_xywh(mm(*x_mm), mm(*y_mm), mm(*width_mm), mm(*height_mm)) {
                        builder.push_rect(rect);
                    }
                    stroke(&mut surface, builder, *thickness_pt);
                }
                Item::Qr { x_mm, y_mm, size_mm, .. } => {
                    if let Some(modules) = qr_codes.next() {
                        draw_qr(&mut surface, &modules, mm(*x_mm), mm(*y_mm), mm(*size_mm));
                    }
                }
            }
        }
        surface.finish();
        pdf_page.finish();
    }
    document.finish().map_err(|e| RenderError::Pdf(e.to_string()))
}

/// Millimetres to PDF points.
fn mm(value: f32) -> f32 {
    value * PT_PER_MM
}

/// Rejects NaN, infinities and non-positive sizes up front; krilla's geometry would otherwise
/// silently drop or mangle such items.
fn check_geometry(index: usize, item: &Item) -> Result<(), RenderError> {
    let (coords, sizes): (Vec<f32>, Vec<f32>) = match item {
        Item::Text { x_mm, y_mm, size_pt, .. } => (vec![*x_mm, *y_mm], vec![*size_pt]),
        Item::Rule { x_mm, y_mm, width_mm, thickness_pt } => (vec![*x_mm, *y_mm], vec![*width_mm, *thickness_pt]),
        Item::Frame { x_mm, y_mm, width_mm, height_mm, thickness_pt } => {
            (vec![*x_mm, *y_mm], vec![*width_mm, *height_mm, *thickness_pt])
        }
        Item::Qr { x_mm, y_mm, size_mm, .. } => (vec![*x_mm, *y_mm], vec![*size_mm]),
    };
    if coords.iter().all(|v| v.is_finite()) && sizes.iter().all(|v| v.is_finite() && *v > 0.0) {
        Ok(())
    } else {
        Err(RenderError::Pdf(format!("item {index} has a non-finite coordinate or a non-positive size")))
    }
}

fn stroke(surface: &mut Surface<'_>, builder: PathBuilder, thickness_pt: f32) {
    if let Some(path) = builder.finish() {
        surface.set_fill(None);
        surface.set_stroke(Some(Stroke { width: thickness_pt, ..Stroke::default() }));
        surface.draw_path(&path);
        surface.set_stroke(None);
    }
}

/// One glyph per character, positioned by the font's advance widths (no kerning).
/// `text` was checked with `missing`, so every non-space character has a glyph.
fn draw_text(
    surface: &mut Surface<'_>,
    font: &PdfFont,
    face: &FontRef<'_>,
    (x_mm, y_mm): (f32, f32),
    size_pt: f32,
    align: Align,
    text: &str,
) {
    let charmap = face.charmap();
    let upem = f32::from(face.metrics(Size::unscaled(), LocationRef::default()).units_per_em);
    let metrics = face.glyph_metrics(Size::unscaled(), LocationRef::default());
    let mut glyphs: Vec<KrillaGlyph> = Vec::with_capacity(text.len());
    let mut lead_em = 0.0;
    for (start, c) in text.char_indices() {
        match charmap.map(c).filter(|g| g.to_u32() != 0) {
            Some(gid) => {
                let advance = metrics.advance_width(gid).unwrap_or(0.0) / upem;
                let range = start..start + c.len_utf8();
                glyphs.push(KrillaGlyph::new(GlyphId::new(gid.to_u32()), advance, 0.0, 0.0, 0.0, range, None));
            }
            // A space without a glyph: widen the previous glyph instead of drawing .notdef.
            None => match glyphs.last_mut() {
                Some(last) => last.x_advance += FALLBACK_SPACE_EM,
                None => lead_em += FALLBACK_SPACE_EM,
            },
        }
    }
    if glyphs.is_empty() {
        return;
    }
    let width_pt = (lead_em + glyphs.iter().map(|g| g.x_advance).sum::<f32>()) * size_pt;
    let anchor = mm(x_mm);
    let left = match align {
        Align::Left => anchor,
        Align::Center => anchor - width_pt / 2.0,
        Align::Right => anchor - width_pt,
    } + lead_em * size_pt;
    surface.set_stroke(None);
    surface.set_fill(Some(Fill::default()));
    surface.draw_glyphs(Point::from_xy(left, mm(y_mm)), &glyphs, font.font.clone(), text, size_pt, false);
}

/// The QR module matrix (true = dark), row-major, side length first.
struct QrModules {
    width: usize,
    dark: Vec<bool>,
}

fn qr_modules(payload: &str) -> Result<QrModules, String> {
    let code = qrcode::QrCode::with_error_correction_level(payload.as_bytes(), qrcode::EcLevel::M)
        .map_err(|e| e.to_string())?;
    let dark = code.to_colors().into_iter().map(|c| c == qrcode::Color::Dark).collect();
    Ok(QrModules { width: code.width(), dark })
}

/// White square (so the quiet zone holds even over other content), then one black path holding
/// a rectangle per horizontal run of dark modules: far fewer path segments than one per module.
fn draw_qr(surface: &mut Surface<'_>, modules: &QrModules, x: f32, y: f32, size: f32) {
    let module = size / (modules.width + 2 * QR_QUIET_ZONE) as f32;
    let origin = (x + module * QR_QUIET_ZONE as f32, y + module * QR_QUIET_ZONE as f32);

    surface.set_stroke(None);
    let mut background = PathBuilder::new();
    if let Some(rect) = Rect::from_xywh(x, y, size, size) {
        background.push_rect(rect);
    }
    if let Some(path) = background.finish() {
        surface.set_fill(Some(Fill { paint: luma::Color::white().into(), ..Fill::default() }));
        surface.draw_path(&path);
    }

    let mut dark = PathBuilder::new();
    for (row, cells) in modules.dark.chunks(modules.width.max(1)).enumerate() {
        let mut col = 0;
        while col < cells.len() {
            if !cells[col] {
                col += 1;
                continue;
            }
            let start = col;
            while col < cells.len() && cells[col] {
                col += 1;
            }
            let rect = Rect::from_xywh(
                origin.0 + module * start as f32,
                origin.1 + module * row as f32,
                module * (col - start) as f32,
                module,
            );
            if let Some(rect) = rect {
                dark.push_rect(rect);
            }
        }
    }
    if let Some(path) = dark.finish() {
        surface.set_fill(Some(Fill { rule: FillRule::NonZero, ..Fill::default() }));
        surface.draw_path(&path);
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use std::sync::OnceLock;

    use super::*;
    use crate::certificate::inspect;

    const FONT_PATH: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/config/fonts/NotoSansHans-Regular.otf");
    const PAYLOAD: &str = "http://127.0.0.1:8080/v1/verify/eyJqIjoiMDE5In0.c2lnbmF0dXJl";

    fn font() -> &'static PdfFont {
        static FONT: OnceLock<PdfFont> = OnceLock::new();
        FONT.get_or_init(|| PdfFont::from_bytes(std::fs::read(FONT_PATH).unwrap()).unwrap())
    }

    fn text(x_mm: f32, y_mm: f32, size_pt: f32, align: Align, text: &str) -> Item {
        Item::Text { x_mm, y_mm, size_pt, align, text: text.to_string() }
    }

    fn certificate() -> Page {
        Page {
            width_mm: A4.0,
            height_mm: A4.1,
            items: vec![
                Item::Frame { x_mm: 10.0, y_mm: 10.0, width_mm: 190.0, height_mm: 277.0, thickness_pt: 1.5 },
                text(105.0, 45.0, 32.0, Align::Center, "营业执照"),
                Item::Rule { x_mm: 30.0, y_mm: 55.0, width_mm: 150.0, thickness_pt: 0.8 },
                text(30.0, 80.0, 14.0, Align::Left, "姓名"),
                text(180.0, 80.0, 14.0, Align::Right, "张三"),
                text(30.0, 95.0, 14.0, Align::Left, "身份证号"),
                text(180.0, 95.0, 14.0, Align::Right, "11010519491231002X"),
                text(30.0, 110.0, 14.0, Align::Left, "编号"),
                text(180.0, 110.0, 14.0, Align::Right, "GZ-DEMO-0001"),
                Item::Qr { x_mm: 150.0, y_mm: 230.0, size_mm: 40.0, payload: PAYLOAD.to_string() },
            ],
        }
    }

    #[test]
    fn certificate_text_is_extractable() {
        let pdf = render(font(), &certificate(), "营业执照 GZ-DEMO-0001").unwrap();
        let text = inspect::extract_text(&pdf).unwrap();
        println!("extracted: {text:?}");
        for expected in ["营业执照", "张三", "11010519491231002X", "GZ-DEMO-0001"] {
            assert!(text.contains(expected), "{expected:?} not in extracted text {text:?}");
        }
    }

    #[test]
    fn qr_decodes_to_exact_payload() {
        let pdf = render(font(), &certificate(), "qr").unwrap();
        assert_eq!(inspect::decode_qr_codes(&pdf).unwrap(), vec![PAYLOAD.to_string()]);
    }

    #[test]
    fn every_drawn_qr_is_decoded_and_none_invented() {
        let mut page = certificate();
        page.items.push(Item::Qr { x_mm: 20.0, y_mm: 230.0, size_mm: 30.0, payload: "GZ-DEMO-0001".to_string() });
        let pdf = render(font(), &page, "two").unwrap();
        let mut codes = inspect::decode_qr_codes(&pdf).unwrap();
        codes.sort();
        assert_eq!(codes, vec!["GZ-DEMO-0001".to_string(), PAYLOAD.to_string()]);

        page.items.retain(|item| !matches!(item, Item::Qr { .. }));
        let pdf = render(font(), &page, "none").unwrap();
        assert_eq!(inspect::decode_qr_codes(&pdf).unwrap(), Vec::<String>::new());
    }

    #[test]
    fn small_qr_still_decodes() {
        let page = Page {
            width_mm: A4.0,
            height_mm: A4.1,
            items: vec![Item::Qr { x_mm: 20.0, y_mm: 20.0, size_mm: 18.0, payload: PAYLOAD.to_string() }],
        };
        let pdf = render(font(), &page, "small").unwrap();
        assert_eq!(inspect::decode_qr_codes(&pdf).unwrap(), vec![PAYLOAD.to_string()]);
    }

    #[test]
    fn title_is_in_metadata() {
        let pdf = render(font(), &certificate(), "营业执照 GZ-DEMO-0001").unwrap();
        let doc = lopdf::Document::load_mem(&pdf).unwrap();
        let info = doc.trailer.get_deref(b"Info", &doc).unwrap().as_dict().unwrap();
        let title = lopdf::decode_text_string(info.get(b"Title").unwrap()).unwrap();
        assert_eq!(title, "营业执照 GZ-DEMO-0001");
    }

    #[test]
    fn pdf_is_small_because_font_is_subset() {
        let pdf = render(font(), &certificate(), "size").unwrap();
        println!("certificate PDF: {} bytes", pdf.len());
        assert!(pdf.len() < 300 * 1024, "PDF is {} bytes", pdf.len());
    }

    #[test]
    fn missing_glyphs_are_refused() {
        let mut page = certificate();
        page.items.insert(3, text(30.0, 130.0, 14.0, Align::Left, "备注 𠀀 张三 𠀀 한"));
        let err = render(font(), &page, "x").err();
        assert_eq!(err, Some(RenderError::MissingGlyphs { item: 3, chars: vec!['𠀀', '한'] }));
        assert!(err.unwrap().to_string().contains("U+20000"));
    }

    #[test]
    fn missing_reports_controls_but_not_spaces() {
        assert_eq!(font().missing("张 三 GZ-0001"), Vec::<char>::new());
        // This font build covers U+3400 (㐀), unlike U+20000.
        assert_eq!(font().missing("㐀"), Vec::<char>::new());
        assert_eq!(font().missing("a\tb\u{7}\t𠀀"), vec!['\t', '\u{7}', '𠀀']);
    }

    #[test]
    fn rendering_is_deterministic() {
        let a = render(font(), &certificate(), "same").unwrap();
        let b = render(font(), &certificate(), "same").unwrap();
        assert!(a == b, "two renders of the same page differ");
    }

    #[test]
    fn font_is_shareable_across_threads() {
        fn assert_send_sync<T: Send + Sync + Clone>() {}
        assert_send_sync::<PdfFont>();
    }

    #[test]
    fn garbage_is_not_a_font() {
        let err = PdfFont::from_bytes(b"not a font".to_vec()).unwrap_err();
        assert!(!err.is_empty());
    }

    #[test]
    fn oversized_qr_payload_is_an_error() {
        let page = Page {
            width_mm: A4.0,
            height_mm: A4.1,
            items: vec![Item::Qr { x_mm: 0.0, y_mm: 0.0, size_mm: 50.0, payload: "x".repeat(5000) }],
        };
        assert!(matches!(render(font(), &page, "x").err(), Some(RenderError::Qr(_))));
    }

    #[test]
    fn non_finite_geometry_is_an_error() {
        let page =
            Page { width_mm: A4.0, height_mm: A4.1, items: vec![text(f32::NAN, 10.0, 12.0, Align::Left, "张三")] };
        assert!(matches!(render(font(), &page, "x").err(), Some(RenderError::Pdf(_))));
    }
}
