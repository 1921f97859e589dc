//! SVG plots of a run: latency by percentile and throughput over time.
//!
//! Only plotters' SVG backend is used: it writes `<text>` elements and leaves fonts to the viewer, so
//! no font files or font crates are needed. Every input, including empty histograms, empty timelines,
//! a single sample and all-zero values, yields a complete SVG document.

use std::ops::Range;
use std::time::Duration;

use anyhow::anyhow;
use hdrhistogram::Histogram;
use plotters::coord::Shift;
use plotters::coord::ranged1d::{KeyPointHint, NoDefaultFormatting, ValueFormatter};
use plotters::coord::types::RangedCoordf64;
use plotters::prelude::*;

/// One measured leg of a run (e.g. "direct", "tongban", "nginx").
pub struct Series<'a> {
    /// The leg's name, shown in the legend.
    pub label: &'a str,
    /// Latencies in microseconds.
    pub latency: &'a Histogram<u64>,
    /// Answers completed per bucket, bucket i covering [i*bucket, (i+1)*bucket) from the leg's start.
    pub timeline: &'a [u64],
    /// The width of one timeline bucket.
    pub bucket: Duration,
}

/// The size of every plot, in pixels.
const SIZE: (u32, u32) = (900, 500);

/// Line colours, one per series in order (Tableau 10, which stays readable for most colour-blind viewers).
const PALETTE: [RGBColor; 10] = [
    RGBColor(31, 119, 180),
    RGBColor(255, 127, 14),
    RGBColor(44, 160, 44),
    RGBColor(214, 39, 40),
    RGBColor(148, 103, 189),
    RGBColor(140, 86, 75),
    RGBColor(227, 119, 194),
    RGBColor(127, 127, 127),
    RGBColor(188, 189, 34),
    RGBColor(23, 190, 207),
];

/// The most nines the latency plot's x axis reaches (99.99999%). Past about 15 nines `1 - 10^-x` rounds to 1
/// in f64, so labels and quantiles would break; a run with more answers has its tail drawn at this edge.
const MAX_NINES: f64 = 7.0;

/// Points sampled along each latency curve: enough for a smooth line, few enough for a small file.
const LATENCY_POINTS: u32 = 400;

/// Latency by percentile: x axis is the percentile on the classic "nines" log scale (0%, 90%, 99%, 99.9%,
/// 99.99%, max), i.e. x = -log10(1 - q) clamped; y = latency in milliseconds (linear). One line per series,
/// legend with the labels, title given.
///
/// Each line ends at its series' highest quantile that is not infinite on this scale (q = 1 - 1/len), where it
/// rises to the histogram's maximum.
pub fn latency_svg(title: &str, series: &[Series<'_>]) -> anyhow::Result<String> {
    let curves: Vec<Vec<(f64, f64)>> = series.iter().map(|s| latency_curve(s.latency)).collect();
    // Whole nines keep the tick labels round; at least one (90%) so the axis never collapses to a point.
    let x_end = curves.iter().flatten().map(|p| p.0).fold(0.0, f64::max).ceil().clamp(1.0, MAX_NINES);
    let y_end = axis_end(curves.iter().flatten().map(|p| p.1));
    let mut ticks = vec![0.0, 2f64.log10()];
    ticks.extend((1..=x_end as u32).map(f64::from));
    let lines = series.iter().zip(curves).map(|(s, c)| (s.label, c)).collect();
    render(
        title,
        Axis { inner: (0.0..x_end).into(), ticks: Some(ticks), label: nines_label, desc: "percentile" },
        Axis::plain(0.0..y_end, "latency (ms)"),
        lines,
        SeriesLabelPosition::UpperLeft,
    )
}

/// Throughput over time: x = seconds since the leg's start, y = answers per second (timeline count / bucket
/// seconds). One line per series, legend, title.
///
/// Each bucket is drawn as a flat step over its whole width, so a one-bucket timeline still shows a line.
/// A series with a zero-width bucket has no defined rate and is left out of the plot (its legend entry stays).
pub fn throughput_svg(title: &str, series: &[Series<'_>]) -> anyhow::Result<String> {
    let curves: Vec<Vec<(f64, f64)>> = series.iter().map(throughput_steps).collect();
    let x_end = curves.iter().flatten().map(|p| p.0).fold(0.0, f64::max);
    // A run with no buckets still gets a one-second axis rather than an empty range.
    let x_end = if x_end > 0.0 { x_end } else { 1.0 };
    let y_end = axis_end(curves.iter().flatten().map(|p| p.1));
    let lines = series.iter().zip(curves).map(|(s, c)| (s.label, c)).collect();
    render(
        title,
        Axis::plain(0.0..x_end, "seconds"),
        Axis::plain(0.0..y_end, "answers per second"),
        lines,
        SeriesLabelPosition::LowerRight,
    )
}

/// Samples a latency histogram as (nines, milliseconds) points; empty when the histogram is.
fn latency_curve(hist: &Histogram<u64>) -> Vec<(f64, f64)> {
    let len = hist.len();
    if len == 0 {
        return Vec::new();
    }
    // The highest quantile with a finite x is 1 - 1/len; beyond MAX_NINES the tail is squeezed onto the edge.
    let q_top = 1.0 - 1.0 / len as f64;
    let x_top = nines(q_top).min(MAX_NINES);
    let mut points: Vec<(f64, f64)> = (0..=LATENCY_POINTS)
        .map(|i| {
            let x = x_top * f64::from(i) / f64::from(LATENCY_POINTS);
            let q = (1.0 - 10f64.powf(-x)).clamp(0.0, q_top);
            (x, micros_to_ms(hist.value_at_quantile(q)))
        })
        .collect();
    points.push((x_top, micros_to_ms(hist.max())));
    if x_top == 0.0 {
        // One sample is every percentile at once: draw it flat across the first decade so it is visible.
        points.push((1.0, micros_to_ms(hist.max())));
    }
    points
}

/// Turns a timeline into (seconds, answers per second) steps; empty when the bucket width is zero.
fn throughput_steps(series: &Series<'_>) -> Vec<(f64, f64)> {
    let width = series.bucket.as_secs_f64();
    if width <= 0.0 {
        return Vec::new();
    }
    let mut points = Vec::with_capacity(series.timeline.len() * 2);
    for (i, &count) in series.timeline.iter().enumerate() {
        let rate = count as f64 / width;
        points.push((i as f64 * width, rate));
        points.push(((i + 1) as f64 * width, rate));
    }
    points
}

/// `-log10(1 - q)`: the number of nines in quantile `q`.
fn nines(q: f64) -> f64 {
    let x = -(1.0 - q).log10();
    // -log10(1) is -0.0, and q = 1 gives infinity; neither belongs on the axis.
    if x.is_finite() { x.max(0.0) } else { MAX_NINES }
}

fn micros_to_ms(micros: u64) -> f64 {
    micros as f64 / 1000.0
}

/// The top of a value axis: a little above the largest value, or 1 when every value is zero (or there are none)
/// so the range is never empty.
fn axis_end(values: impl Iterator<Item = f64>) -> f64 {
    let top = values.filter(|v| v.is_finite()).fold(0.0, f64::max);
    if top > 0.0 { top * 1.1 } else { 1.0 }
}

/// Formats a nines value as its percentile: 0 -> "0%", 0.301 -> "50%", 1 -> "90%", 3 -> "99.9%".
fn nines_label(x: &f64) -> String {
    let percent = 100.0 * (1.0 - 10f64.powf(-x));
    // Two nines need no decimals, each further nine one more.
    let decimals = (x.round() - 2.0).max(0.0) as usize;
    format!("{percent:.decimals$}%")
}

/// Formats a tick value with at most three decimals and no trailing zeros: 200.0 -> "200", 0.25 -> "0.25".
fn number_label(v: &f64) -> String {
    let text = format!("{v:.3}");
    let text = text.trim_end_matches('0').trim_end_matches('.');
    if text.is_empty() || text == "-0" { "0".to_owned() } else { text.to_owned() }
}

/// A linear f64 axis with its own tick labels and, optionally, fixed tick positions.
///
/// plotters' `with_key_points` wrapper loses the f64 label formatter, so the mesh could not draw it; this type
/// does both jobs.
struct Axis {
    inner: RangedCoordf64,
    /// Tick positions; `None` lets plotters choose round numbers.
    ticks: Option<Vec<f64>>,
    label: fn(&f64) -> String,
    desc: &'static str,
}

impl Axis {
    /// An axis with plotters' round-number ticks and plain number labels.
    fn plain(range: Range<f64>, desc: &'static str) -> Axis {
        Axis { inner: range.into(), ticks: None, label: number_label, desc }
    }
}

impl Ranged for Axis {
    type FormatOption = NoDefaultFormatting;
    type ValueType = f64;

    fn map(&self, value: &f64, limit: (i32, i32)) -> i32 {
        self.inner.map(value, limit)
    }

    fn key_points<Hint: KeyPointHint>(&self, hint: Hint) -> Vec<f64> {
        match &self.ticks {
            // Fixed ticks get no light grid lines in between: they would not fall on round percentiles.
            Some(_) if hint.weight().allow_light_points() => Vec::new(),
            Some(ticks) => ticks.clone(),
            None => self.inner.key_points(hint),
        }
    }

    fn range(&self) -> Range<f64> {
        self.inner.range()
    }
}

impl ValueFormatter<f64> for Axis {
    // The trait's default panics; the mesh calls `format_ext`, but nothing may panic here.
    fn format(value: &f64) -> String {
        number_label(value)
    }

    fn format_ext(&self, value: &f64) -> String {
        (self.label)(value)
    }
}

/// Draws titled axes and one labelled line per series, and returns the SVG document.
fn render(
    title: &str,
    x: Axis,
    y: Axis,
    lines: Vec<(&str, Vec<(f64, f64)>)>,
    legend_at: SeriesLabelPosition,
) -> anyhow::Result<String> {
    let mut svg = String::new();
    {
        // The backend writes into `svg` and closes the document when dropped, so it lives in this block.
        let root = SVGBackend::with_string(&mut svg, SIZE).into_drawing_area();
        draw(&root, title, x, y, lines, legend_at)?;
        root.present().map_err(|e| anyhow!("finishing the SVG: {e}"))?;
    }
    Ok(svg)
}

fn draw(
    root: &DrawingArea<SVGBackend<'_>, Shift>,
    title: &str,
    x: Axis,
    y: Axis,
    lines: Vec<(&str, Vec<(f64, f64)>)>,
    legend_at: SeriesLabelPosition,
) -> anyhow::Result<()> {
    // plotters' error type is generic over the backend; its text is all a report needs.
    let fail = |what: &'static str| move |e: DrawingAreaErrorKind<std::io::Error>| anyhow!("{what}: {e}");
    root.fill(&WHITE).map_err(fail("filling the background"))?;
    let (x_desc, y_desc) = (x.desc, y.desc);
    let mut chart = ChartBuilder::on(root)
        .caption(title, ("sans-serif", 22))
        .margin(15)
        // Room for the last x label, which is centred on the axis' end.
        .margin_right(40)
        .x_label_area_size(45)
        .y_label_area_size(70)
        .build_cartesian_2d(x, y)
        .map_err(fail("building the axes"))?;
    chart
        .configure_mesh()
        .x_desc(x_desc)
        .y_desc(y_desc)
        // A few light lines per step guide the eye; plotters' default of ten makes a grey wash.
        .max_light_lines(4)
        .draw()
        .map_err(fail("drawing the axes"))?;
    for (i, (label, points)) in lines.into_iter().enumerate() {
        let color = PALETTE[i % PALETTE.len()];
        chart
            .draw_series(LineSeries::new(points, color.stroke_width(2)))
            .map_err(fail("drawing a series"))?
            .label(label)
            .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], color.stroke_width(2)));
    }
    chart
        .configure_series_labels()
        .position(legend_at)
        .background_style(WHITE.mix(0.8))
        .border_style(BLACK)
        .draw()
        .map_err(fail("drawing the legend"))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn histogram(values: &[u64]) -> Histogram<u64> {
        let mut h = Histogram::<u64>::new(3).unwrap();
        for &v in values {
            h.record(v).unwrap();
        }
        h
    }

    /// A complete document: one root element, closed at the end.
    fn assert_valid(svg: &str) {
        assert!(svg.starts_with("<svg"), "{svg}");
        assert_eq!(svg.matches("<svg").count(), 1);
        assert!(svg.trim_end().ends_with("</svg>"));
        assert!(!svg.contains("NaN") && !svg.contains("inf"), "{svg}");
    }

    /// The text of every `<text>` element.
    fn texts(svg: &str) -> Vec<&str> {
        svg.split("<text")
            .skip(1)
            .filter_map(|t| t.split_once('>'))
            .filter_map(|(_, rest)| rest.split_once("</text>"))
            .map(|(inner, _)| inner.trim())
            .collect()
    }

    #[test]
    fn latency_plot_of_two_series_has_title_labels_and_percentile_ticks() {
        let direct = histogram(&(1..=10_000).collect::<Vec<_>>());
        let tongban = histogram(&(1..=10_000).map(|v| v * 2).collect::<Vec<_>>());
        let series = [
            Series { label: "direct", latency: &direct, timeline: &[], bucket: Duration::from_secs(1) },
            Series { label: "tongban", latency: &tongban, timeline: &[], bucket: Duration::from_secs(1) },
        ];
        let svg = latency_svg("Latency by percentile", &series).unwrap();
        assert_valid(&svg);
        let texts = texts(&svg);
        for expected in ["Latency by percentile", "direct", "tongban", "latency (ms)", "percentile"] {
            assert!(texts.contains(&expected), "{expected} missing from {texts:?}");
        }
        // 10,000 samples reach 99.99%: four nines, plus the 0% and 50% marks.
        for tick in ["0%", "50%", "90%", "99%", "99.9%", "99.99%"] {
            assert!(texts.contains(&tick), "{tick} missing from {texts:?}");
        }
        // The slower leg tops out at 20 ms, so the axis reaches past it.
        assert!(texts.contains(&"20"), "{texts:?}");
        // Grid lines are thinner: the width-2 polylines are the two curves and their two legend marks.
        assert_eq!(svg.matches(r#"stroke-width="2" points"#).count(), 2 + 2, "{svg}");
    }

    #[test]
    fn throughput_plot_shows_the_rate_per_second() {
        let h = histogram(&[]);
        let series =
            [Series { label: "nginx", latency: &h, timeline: &[100, 100], bucket: Duration::from_millis(500) }];
        let svg = throughput_svg("Throughput", &series).unwrap();
        assert_valid(&svg);
        let texts = texts(&svg);
        for expected in ["Throughput", "nginx", "answers per second", "seconds", "200"] {
            assert!(texts.contains(&expected), "{expected} missing from {texts:?}");
        }
        // 200/s with 10% headroom: no tick at or past 250.
        assert!(!texts.contains(&"250"), "{texts:?}");
    }

    #[test]
    fn degenerate_inputs_still_give_a_valid_svg() {
        let empty = histogram(&[]);
        let one = histogram(&[1234]);
        let zeros = histogram(&[0, 0, 0]);
        let cases: [(&[u64], Duration); 5] = [
            (&[], Duration::from_secs(1)),
            (&[7], Duration::from_secs(1)),
            (&[0, 0, 0], Duration::from_millis(100)),
            (&[5, 6], Duration::ZERO),
            (&[u64::MAX, 1], Duration::from_nanos(1)),
        ];
        for hist in [&empty, &one, &zeros] {
            for &(timeline, bucket) in &cases {
                let series = [Series { label: "leg", latency: hist, timeline, bucket }];
                assert_valid(&latency_svg("t", &series).unwrap());
                assert_valid(&throughput_svg("t", &series).unwrap());
            }
        }
        assert_valid(&latency_svg("", &[]).unwrap());
        assert_valid(&throughput_svg("", &[]).unwrap());
    }

    #[test]
    fn huge_histograms_stay_on_the_axis() {
        let mut h = Histogram::<u64>::new(3).unwrap();
        // Ten billion answers are ten nines, past the axis' last one.
        h.record_n(1000, 10_000_000_000).unwrap();
        h.record(u64::MAX / 2).unwrap();
        let series = [Series { label: "big", latency: &h, timeline: &[], bucket: Duration::from_secs(1) }];
        let svg = latency_svg("big", &series).unwrap();
        assert_valid(&svg);
        assert!(texts(&svg).contains(&"99.99999%"));
    }

    #[test]
    fn markup_in_names_is_escaped() {
        let h = histogram(&[10, 20]);
        let series = [Series { label: "a<b & \"c\"", latency: &h, timeline: &[1], bucket: Duration::from_secs(1) }];
        let svg = latency_svg("<title>", &series).unwrap();
        assert!(svg.contains("a&lt;b &amp; &quot;c&quot;") && svg.contains("&lt;title&gt;"), "{svg}");
    }

    #[test]
    fn labels_read_as_percentiles_and_plain_numbers() {
        let labels: Vec<String> = [0.0, 2f64.log10(), 1.0, 2.0, 3.0, 4.0].iter().map(nines_label).collect();
        assert_eq!(labels, ["0%", "50%", "90%", "99%", "99.9%", "99.99%"]);
        let numbers: Vec<String> = [200.0, 0.25, 0.0, -0.0001, 12.5].iter().map(number_label).collect();
        assert_eq!(numbers, ["200", "0.25", "0", "0", "12.5"]);
    }
}
