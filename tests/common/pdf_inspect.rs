//! Test helper: reads back what `pdf::render` wrote, from the PDF bytes alone.
//!
//! The QR code is drawn as vector rectangles, so decoding rasterises the filled paths of each
//! page's content stream (following `cm`, `q`/`Q`, fill colours and Form XObjects) into a grey
//! bitmap and hands that to rqrr. Nothing is re-created from the payload.

use lopdf::content::Content;
use lopdf::{Dictionary, Document, Object, ObjectId};

/// Decompressed content larger than this is refused (the PDFs under test are a few KB).
const MAX_CONTENT: usize = 64 * 1024 * 1024;
/// Form XObjects nested deeper than this are ignored (guards against reference cycles).
const MAX_FORM_DEPTH: usize = 8;
/// Target size of the smallest filled feature (one QR module), in pixels.
const PX_PER_FEATURE: f64 = 6.0;
/// Largest bitmap side, so a hairline fill cannot ask for a gigantic image.
const MAX_SIDE_PX: f64 = 4000.0;

/// All text of all pages, in content order (pieces joined; exact spacing doesn't matter).
pub fn extract_text(pdf: &[u8]) -> Result<String, String> {
    let doc = Document::load_mem(pdf).map_err(|e| format!("cannot parse PDF: {e}"))?;
    let pages: Vec<u32> = doc.get_pages().keys().copied().collect();
    doc.extract_text_with_limit(&pages, MAX_CONTENT).map_err(|e| format!("cannot extract text: {e}"))
}

/// Decodes every QR code drawn in the PDF.
pub fn decode_qr_codes(pdf: &[u8]) -> Result<Vec<String>, String> {
    let doc = Document::load_mem(pdf).map_err(|e| format!("cannot parse PDF: {e}"))?;
    let mut codes = Vec::new();
    for (number, page_id) in doc.get_pages() {
        let content =
            doc.get_page_content_with_limit(page_id, MAX_CONTENT).map_err(|e| format!("page {number}: {e}"))?;
        let resources = page_resources(&doc, page_id)?;
        let mut fills = Vec::new();
        collect_fills(&doc, &content, &resources, GraphicsState::default(), 0, &mut fills)?;
        let Some(bitmap) = rasterise(&fills) else { continue };
        let mut prepared =
            rqrr::PreparedImage::prepare_from_greyscale(bitmap.width, bitmap.height, |x, y| bitmap.pixel(x, y));
        for grid in prepared.detect_grids() {
            let (_, text) =
                grid.decode().map_err(|e| format!("page {number}: QR grid found but not decodable: {e}"))?;
            codes.push(text);
        }
    }
    Ok(codes)
}

/// The page's resource dictionaries, nearest first (resources may be inherited or referenced).
fn page_resources(doc: &Document, page_id: ObjectId) -> Result<Vec<&Dictionary>, String> {
    let (direct, ids) = doc.get_page_resources(page_id).map_err(|e| e.to_string())?;
    let mut dicts: Vec<&Dictionary> = direct.into_iter().collect();
    dicts.extend(ids.into_iter().filter_map(|id| doc.get_dictionary(id).ok()));
    Ok(dicts)
}

/// A filled path in page space (PDF points, y up).
struct FilledPath {
    polygons: Vec<Vec<(f64, f64)>>,
    even_odd: bool,
    /// 0 = black, 255 = white.
    grey: u8,
}

#[derive(Clone, Copy)]
struct GraphicsState {
    ctm: [f64; 6],
    /// Fill colour as lightness in 0..=1.
    fill: f64,
}

impl Default for GraphicsState {
    fn default() -> Self {
        GraphicsState { ctm: [1.0, 0.0, 0.0, 1.0, 0.0, 0.0], fill: 0.0 }
    }
}

impl GraphicsState {
    fn apply(&self, x: f64, y: f64) -> (f64, f64) {
        let [a, b, c, d, e, f] = self.ctm;
        (a * x + c * y + e, b * x + d * y + f)
    }
}

/// `m` followed by the current CTM (PDF's row-vector convention: new = m × ctm).
fn concat(m: [f64; 6], ctm: [f64; 6]) -> [f64; 6] {
    [
        m[0] * ctm[0] + m[1] * ctm[2],
        m[0] * ctm[1] + m[1] * ctm[3],
        m[2] * ctm[0] + m[3] * ctm[2],
        m[2] * ctm[1] + m[3] * ctm[3],
        m[4] * ctm[0] + m[5] * ctm[2] + ctm[4],
        m[4] * ctm[1] + m[5] * ctm[3] + ctm[5],
    ]
}

fn numbers(operands: &[Object]) -> Vec<f64> {
    operands.iter().filter_map(|o| o.as_float().ok()).map(f64::from).collect()
}

fn matrix(values: &[f64]) -> Option<[f64; 6]> {
    values.try_into().ok()
}

/// Lightness of a colour given by its component count (Gray, RGB or CMYK).
fn lightness(components: &[f64]) -> Option<f64> {
    match components {
        [g] => Some(*g),
        [r, g, b] => Some(0.299 * r + 0.587 * g + 0.114 * b),
        [c, m, y, k] => Some(1.0 - (0.3 * c + 0.59 * m + 0.11 * y + k).min(1.0)),
        _ => None,
    }
}

/// Walks one content stream, recording every filled path. Strokes, text and images are ignored:
/// a QR code is made of filled areas only.
fn collect_fills(
    doc: &Document,
    content: &[u8],
    resources: &[&Dictionary],
    initial: GraphicsState,
    depth: usize,
    out: &mut Vec<FilledPath>,
) -> Result<(), String> {
    let content = Content::decode(content).map_err(|e| format!("cannot parse content stream: {e}"))?;
    let mut state = initial;
    let mut stack: Vec<GraphicsState> = Vec::new();
    let mut path: Vec<Vec<(f64, f64)>> = Vec::new();
    for op in &content.operations {
        let args = numbers(&op.operands);
        match (op.operator.as_str(), args.as_slice()) {
            ("q", _) => stack.push(state),
            ("Q", _) => state = stack.pop().unwrap_or(initial),
            ("cm", values) => {
                if let Some(m) = matrix(values) {
                    state.ctm = concat(m, state.ctm);
                }
            }
            ("g" | "rg" | "k" | "sc" | "scn", components) => {
                if let Some(l) = lightness(components) {
                    state.fill = l;
                }
            }
            // Selecting a colour space resets the colour to its initial value, black for these.
            ("cs", _) => state.fill = 0.0,
            ("m", [x, y]) => path.push(vec![state.apply(*x, *y)]),
            // Curves are approximated by their end points; QR modules have none.
            ("l", [x, y]) | ("c", [_, _, _, _, x, y]) | ("v" | "y", [_, _, x, y]) => {
                let point = state.apply(*x, *y);
                match path.last_mut() {
                    Some(sub) => sub.push(point),
                    None => path.push(vec![point]),
                }
            }
            ("re", [x, y, w, h]) => path.push(vec![
                state.apply(*x, *y),
                state.apply(x + w, *y),
                state.apply(x + w, y + h),
                state.apply(*x, y + h),
            ]),
            ("f" | "F" | "B" | "b" | "f*" | "B*" | "b*", _) => {
                let even_odd = op.operator.ends_with('*');
                let grey = (state.fill.clamp(0.0, 1.0) * 255.0).round() as u8;
                out.push(FilledPath { polygons: std::mem::take(&mut path), even_odd, grey });
            }
            ("S" | "s" | "n", _) => path.clear(),
            ("Do", _) if depth < MAX_FORM_DEPTH => {
                let Some(name) = op.operands.first().and_then(|o| o.as_name().ok()) else { continue };
                let Some(form) = find_xobject(doc, resources, name) else { continue };
                if form.dict.get(b"Subtype").and_then(Object::as_name).ok() != Some(b"Form".as_slice()) {
                    continue;
                }
                let mut inner = state;
                if let Ok(values) = form.dict.get(b"Matrix").and_then(Object::as_array)
                    && let Some(m) = matrix(&numbers(values))
                {
                    inner.ctm = concat(m, inner.ctm);
                }
                let own = form.dict.get(b"Resources").ok().and_then(|o| doc.dereference(o).ok()).map(|(_, o)| o);
                let mut form_resources: Vec<&Dictionary> = own.and_then(|o| o.as_dict().ok()).into_iter().collect();
                form_resources.extend_from_slice(resources);
                let data = form.get_plain_content_with_limit(MAX_CONTENT).map_err(|e| e.to_string())?;
                collect_fills(doc, &data, &form_resources, inner, depth + 1, out)?;
            }
            _ => {}
        }
    }
    Ok(())
}

fn find_xobject<'a>(doc: &'a Document, resources: &[&'a Dictionary], name: &[u8]) -> Option<&'a lopdf::Stream> {
    resources.iter().find_map(|res| {
        let (_, xobjects) = doc.dereference(res.get(b"XObject").ok()?).ok()?;
        let (_, object) = doc.dereference(xobjects.as_dict().ok()?.get(name).ok()?).ok()?;
        object.as_stream().ok()
    })
}

struct Bitmap {
    width: usize,
    height: usize,
    pixels: Vec<u8>,
}

impl Bitmap {
    fn pixel(&self, x: usize, y: usize) -> u8 {
        self.pixels.get(y * self.width + x).copied().unwrap_or(255)
    }
}

/// Paints the filled paths, in order, onto a white bitmap covering them plus a margin. The
/// resolution gives the smallest filled feature about `PX_PER_FEATURE` pixels.
fn rasterise(fills: &[FilledPath]) -> Option<Bitmap> {
    let points = || fills.iter().flat_map(|f| f.polygons.iter().flatten());
    let (min_x, max_x) = points().fold((f64::MAX, f64::MIN), |(lo, hi), p| (lo.min(p.0), hi.max(p.0)));
    let (min_y, max_y) = points().fold((f64::MAX, f64::MIN), |(lo, hi), p| (lo.min(p.1), hi.max(p.1)));
    if min_x > max_x || min_y > max_y {
        return None;
    }
    let feature = fills
        .iter()
        .flat_map(|f| &f.polygons)
        .filter_map(|poly| {
            let (x0, x1) = poly.iter().fold((f64::MAX, f64::MIN), |(lo, hi), p| (lo.min(p.0), hi.max(p.0)));
            let (y0, y1) = poly.iter().fold((f64::MAX, f64::MIN), |(lo, hi), p| (lo.min(p.1), hi.max(p.1)));
            let size = (x1 - x0).min(y1 - y0);
            (size > 1e-3).then_some(size)
        })
        .fold(f64::MAX, f64::min);
    if feature == f64::MAX {
        return None;
    }
    // Room for a quiet zone in case the code was drawn without a light background.
    let margin = 4.0 * feature;
    let (left, top) = (min_x - margin, max_y + margin);
    let span = (max_x - min_x).max(max_y - min_y) + 2.0 * margin;
    let scale = (PX_PER_FEATURE / feature).min(MAX_SIDE_PX / span);
    let width = ((max_x - min_x + 2.0 * margin) * scale).ceil() as usize;
    let height = ((max_y - min_y + 2.0 * margin) * scale).ceil() as usize;
    let mut bitmap = Bitmap { width, height, pixels: vec![255; width * height] };

    for fill in fills {
        for row in 0..height {
            // Sample at pixel centres; page y grows upwards, bitmap rows downwards.
            let y = top - (row as f64 + 0.5) / scale;
            let mut crossings: Vec<(f64, i32)> = Vec::new();
            for poly in &fill.polygons {
                for (i, &(x0, y0)) in poly.iter().enumerate() {
                    let (x1, y1) = poly[(i + 1) % poly.len()];
                    if (y0 <= y) != (y1 <= y) {
                        let x = x0 + (y - y0) * (x1 - x0) / (y1 - y0);
                        crossings.push((x, if y1 > y0 { 1 } else { -1 }));
                    }
                }
            }
            crossings.sort_by(|a, b| a.0.total_cmp(&b.0));
            let mut winding = 0;
            for pair in crossings.windows(2) {
                winding += pair[0].1;
                let inside = if fill.even_odd { winding % 2 != 0 } else { winding != 0 };
                if !inside {
                    continue;
                }
                let first = ((pair[0].0 - left) * scale - 0.5).ceil().max(0.0) as usize;
                let end = (((pair[1].0 - left) * scale - 0.5).ceil().max(0.0) as usize).min(width);
                for col in first..end {
                    bitmap.pixels[row * width + col] = fill.grey;
                }
            }
        }
    }
    Some(bitmap)
}
