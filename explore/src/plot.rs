//! Drawing the report's plots with plotters: one description of a plot
//! ([`Plot`]) drawn twice, to SVG (embedded in report.html; its text is SVG
//! text, rendered by the browser) and to PNG (for slides; its text is
//! rasterised with a TrueType font found on the system, see [`ensure_font`]).

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use plotters::coord::ranged1d::{AsRangedCoord, ValueFormatter};
use plotters::coord::{CoordTranslate, Shift};
use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};

use crate::ExploreError;

/// Plot size in pixels (SVG and PNG).
pub const SIZE: (u32, u32) = (960, 540);

/// A qualitative palette (Tableau 10).
pub const PALETTE: [RGBColor; 10] = [
    RGBColor(0x4e, 0x79, 0xa7),
    RGBColor(0xf2, 0x8e, 0x2b),
    RGBColor(0xe1, 0x57, 0x59),
    RGBColor(0x76, 0xb7, 0xb2),
    RGBColor(0x59, 0xa1, 0x4f),
    RGBColor(0xed, 0xc9, 0x48),
    RGBColor(0xb0, 0x7a, 0xa1),
    RGBColor(0xff, 0x9d, 0xa7),
    RGBColor(0x9c, 0x75, 0x5f),
    RGBColor(0xba, 0xb0, 0xac),
];

pub fn color(i: usize) -> RGBColor {
    PALETTE[i % PALETTE.len()]
}

/// How a series' points are marked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Marker {
    None,
    Filled,
    Hollow,
}

/// One series of an x-y plot.
#[derive(Debug, Clone)]
pub struct Series {
    pub name: String,
    pub points: Vec<(f64, f64)>,
    /// A text beside each point (empty: none).
    pub labels: Vec<String>,
    pub line: bool,
    /// Dash length and gap of the line, pixels; solid when `None`.
    pub dash: Option<(u32, u32)>,
    pub marker: Marker,
    pub color: RGBColor,
}

/// An axis of an x-y plot.
#[derive(Debug, Clone)]
pub struct XyAxis {
    pub label: String,
    pub log: bool,
    /// Fixed range; derived from the data when `None`.
    pub range: Option<(f64, f64)>,
    /// Tick labels as percentages of 1.
    pub percent: bool,
}

/// What a plot shows.
#[derive(Debug, Clone)]
pub enum Kind {
    Xy {
        x: XyAxis,
        y: XyAxis,
        series: Vec<Series>,
    },
    /// Horizontal stacked bars: a bar per category, a segment per part.
    Stacked {
        value_label: String,
        categories: Vec<String>,
        parts: Vec<String>,
        /// `values[category][part]`
        values: Vec<Vec<f64>>,
    },
}

/// A plot of the report.
#[derive(Debug, Clone)]
pub struct Plot {
    /// Element id in report.html and PNG file stem.
    pub id: String,
    pub title: String,
    pub caption: String,
    pub kind: Kind,
}

impl Plot {
    /// How many marks (points, bar segments, line vertices) it draws.
    pub fn marks(&self) -> usize {
        match &self.kind {
            Kind::Xy { series, .. } => series.iter().map(|s| s.points.len()).sum(),
            Kind::Stacked { values, .. } => values.iter().flatten().filter(|v| **v > 0.0).count(),
        }
    }
}

type DrawResult<T = ()> = Result<T, String>;

fn e2s<E: std::fmt::Debug>(e: E) -> String {
    format!("{e:?}")
}

/// Drawing text on bitmaps needs a TrueType font: `NPUKIT_FONT`, or one of the
/// usual system paths (Debian's fonts-dejavu-core first).
pub fn ensure_font() -> Result<(), ExploreError> {
    static DONE: OnceLock<Result<(), String>> = OnceLock::new();
    DONE.get_or_init(|| {
        let mut candidates: Vec<PathBuf> = vec![];
        if let Some(p) = std::env::var_os("NPUKIT_FONT") {
            candidates.push(p.into());
        }
        for p in [
            "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf",
            "/usr/share/fonts/TTF/DejaVuSans.ttf",
            "/usr/share/fonts/dejavu/DejaVuSans.ttf",
            "/usr/share/fonts/dejavu-sans-fonts/DejaVuSans.ttf",
            "/usr/share/fonts/truetype/liberation/LiberationSans-Regular.ttf",
            "/usr/share/fonts/liberation-sans/LiberationSans-Regular.ttf",
            "/Library/Fonts/Arial.ttf",
            "/System/Library/Fonts/Supplemental/Arial.ttf",
        ] {
            candidates.push(p.into());
        }
        for p in &candidates {
            if let Ok(bytes) = std::fs::read(p) {
                let bytes: &'static [u8] = Box::leak(bytes.into_boxed_slice());
                if plotters::style::register_font("sans-serif", FontStyle::Normal, bytes).is_ok() {
                    return Ok(());
                }
            }
        }
        Err(format!(
            "no TrueType font for the plots; looked at {}. Install one \
             (Debian: apt-get install fonts-dejavu-core) or set NPUKIT_FONT=FILE.ttf",
            candidates
                .iter()
                .map(|p| p.display().to_string())
                .collect::<Vec<_>>()
                .join(", ")
        ))
    })
    .clone()
    .map_err(ExploreError::Font)
}

/// Runs a drawing; a panic inside plotters (it has overflowing arithmetic on
/// some ranges) becomes an error naming the plot instead of ending the run.
fn guarded<T>(p: &Plot, f: impl FnOnce() -> DrawResult<T>) -> Result<T, ExploreError> {
    ensure_font()?;
    match std::panic::catch_unwind(std::panic::AssertUnwindSafe(f)) {
        Ok(r) => r.map_err(|e| ExploreError::Plot(p.id.clone(), e)),
        Err(_) => Err(ExploreError::Plot(
            p.id.clone(),
            "plotters panicked while drawing it".into(),
        )),
    }
}

/// Renders a plot to an SVG document (a string).
pub fn svg(p: &Plot) -> Result<String, ExploreError> {
    guarded(p, || {
        let mut s = String::new();
        {
            let root = SVGBackend::with_string(&mut s, SIZE).into_drawing_area();
            draw(p, &root)?;
            root.present().map_err(e2s)?;
        }
        Ok(s)
    })
}

/// Renders a plot to a PNG file.
pub fn png(p: &Plot, path: &Path) -> Result<(), ExploreError> {
    guarded(p, || {
        let root = BitMapBackend::new(path, SIZE).into_drawing_area();
        draw(p, &root)?;
        root.present().map_err(e2s)
    })
}

fn fmt_num(v: f64) -> String {
    let a = v.abs();
    if a == 0.0 {
        "0".into()
    } else if !(1e-3..1e6).contains(&a) {
        format!("{v:.1e}")
    } else if a >= 100.0 || (v - v.round()).abs() < 1e-9 {
        format!("{v:.0}")
    } else {
        let s = format!("{v:.3}");
        s.trim_end_matches('0').trim_end_matches('.').to_string()
    }
}

/// The data range of an axis with a margin (a factor on log axes).
fn range(vals: impl Iterator<Item = f64>, a: &XyAxis) -> (f64, f64) {
    if let Some(r) = a.range {
        return r;
    }
    let vals: Vec<f64> = vals
        .filter(|v| v.is_finite() && (!a.log || *v > 0.0))
        .collect();
    let lo = vals.iter().copied().fold(f64::INFINITY, f64::min);
    let hi = vals.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    if !lo.is_finite() {
        return if a.log { (0.1, 10.0) } else { (0.0, 1.0) };
    }
    if a.log {
        (lo / 1.6, hi * 1.6)
    } else if hi > lo {
        let m = (hi - lo) * 0.1;
        (lo - m, hi + m)
    } else {
        (
            lo - 1.0_f64.max(lo.abs() * 0.1),
            hi + 1.0_f64.max(hi.abs() * 0.1),
        )
    }
}

fn draw<DB: DrawingBackend>(p: &Plot, root: &DrawingArea<DB, Shift>) -> DrawResult {
    root.fill(&WHITE).map_err(e2s)?;
    match &p.kind {
        Kind::Xy { x, y, series } => {
            let xr = range(series.iter().flat_map(|s| s.points.iter().map(|q| q.0)), x);
            let yr = range(series.iter().flat_map(|s| s.points.iter().map(|q| q.1)), y);
            let split = if x.log {
                (xr.0 * xr.1).sqrt()
            } else {
                (xr.0 + xr.1) / 2.0
            };
            let (p, s) = (p, split);
            match (x.log, y.log) {
                (false, false) => xy(root, p, s, xr.0..xr.1, yr.0..yr.1, x, y, series),
                (true, false) => xy(
                    root,
                    p,
                    s,
                    (xr.0..xr.1).log_scale(),
                    yr.0..yr.1,
                    x,
                    y,
                    series,
                ),
                (false, true) => xy(
                    root,
                    p,
                    s,
                    xr.0..xr.1,
                    (yr.0..yr.1).log_scale(),
                    x,
                    y,
                    series,
                ),
                (true, true) => xy(
                    root,
                    p,
                    s,
                    (xr.0..xr.1).log_scale(),
                    (yr.0..yr.1).log_scale(),
                    x,
                    y,
                    series,
                ),
            }
        }
        Kind::Stacked {
            value_label,
            categories,
            parts,
            values,
        } => stacked(root, p, value_label, categories, parts, values),
    }
}

#[allow(clippy::too_many_arguments)]
fn xy<DB, XR, YR>(
    root: &DrawingArea<DB, Shift>,
    p: &Plot,
    x_split: f64,
    xr: XR,
    yr: YR,
    xa: &XyAxis,
    ya: &XyAxis,
    series: &[Series],
) -> DrawResult
where
    DB: DrawingBackend,
    XR: AsRangedCoord<Value = f64>,
    YR: AsRangedCoord<Value = f64>,
    XR::CoordDescType: ValueFormatter<f64>,
    YR::CoordDescType: ValueFormatter<f64>,
{
    let mut chart = ChartBuilder::on(root)
        .caption(&p.title, ("sans-serif", 22))
        .margin(12)
        .x_label_area_size(48)
        .y_label_area_size(72)
        .build_cartesian_2d(xr, yr)
        .map_err(e2s)?;
    let fx = |v: &f64| {
        if xa.percent {
            format!("{:.0}%", v * 100.0)
        } else {
            fmt_num(*v)
        }
    };
    let fy = |v: &f64| {
        if ya.percent {
            format!("{:.0}%", v * 100.0)
        } else {
            fmt_num(*v)
        }
    };
    chart
        .configure_mesh()
        .x_desc(xa.label.as_str())
        .y_desc(ya.label.as_str())
        .x_label_formatter(&fx)
        .y_label_formatter(&fy)
        .label_style(("sans-serif", 13))
        .axis_desc_style(("sans-serif", 15))
        .max_light_lines(1)
        .light_line_style(RGBColor(0xf2, 0xf2, 0xf2))
        .draw()
        .map_err(e2s)?;
    for s in series {
        let c = s.color;
        let style = ShapeStyle {
            color: c.to_rgba(),
            filled: false,
            stroke_width: 2,
        };
        let filled = s.marker == Marker::Filled;
        let mstyle = ShapeStyle {
            color: c.to_rgba(),
            filled,
            stroke_width: 2,
        };
        let msize = if s.marker == Marker::None { 0 } else { 4 };
        let line = s.line && s.points.len() > 1;
        // The legend shows the line (if any) and the marker (if any).
        let legend = move |(x, y): (i32, i32)| {
            EmptyElement::at((x, y))
                + PathElement::new(if line { vec![(0, 0), (18, 0)] } else { vec![] }, style)
                + Circle::new((9, 0), msize, mstyle)
        };
        let ann = match (line, s.dash) {
            (true, Some((size, gap))) => chart
                .draw_series(DashedLineSeries::new(
                    s.points.iter().copied(),
                    size,
                    gap,
                    style,
                ))
                .map_err(e2s)?,
            (true, None) => chart
                .draw_series(LineSeries::new(s.points.iter().copied(), style))
                .map_err(e2s)?,
            (false, _) => chart
                .draw_series(s.points.iter().map(|&q| Circle::new(q, msize, mstyle)))
                .map_err(e2s)?,
        };
        ann.label(&s.name).legend(legend);
        if line && msize > 0 {
            chart
                .draw_series(s.points.iter().map(|&q| Circle::new(q, msize, mstyle)))
                .map_err(e2s)?;
        }
        if !s.labels.is_empty() {
            chart
                .draw_series(
                    s.points
                        .iter()
                        .zip(&s.labels)
                        .enumerate()
                        .map(|(i, (&q, l))| {
                            // Labels of points on the right half extend to the left;
                            // every other one sits below its point, so neighbours clash less.
                            let (dx, h) = if q.0 > x_split {
                                (-6, HPos::Right)
                            } else {
                                (6, HPos::Left)
                            };
                            let (dy, v) = if i % 2 == 0 {
                                (-5, VPos::Bottom)
                            } else {
                                (5, VPos::Top)
                            };
                            let font = ("sans-serif", 12).into_font().color(&c).pos(Pos::new(h, v));
                            EmptyElement::at(q) + Text::new(l.clone(), (dx, dy), font)
                        }),
                )
                .map_err(e2s)?;
        }
    }
    legend(&mut chart)
}

/// The series legend, in the upper right corner.
fn legend<'a, DB: DrawingBackend + 'a, CT: CoordTranslate>(
    chart: &mut ChartContext<'a, DB, CT>,
) -> DrawResult {
    chart
        .configure_series_labels()
        .background_style(WHITE.mix(0.85))
        .border_style(RGBColor(0xcc, 0xcc, 0xcc))
        .label_font(("sans-serif", 12))
        .position(SeriesLabelPosition::UpperRight)
        .draw()
        .map_err(e2s)
}

fn stacked<DB: DrawingBackend>(
    root: &DrawingArea<DB, Shift>,
    p: &Plot,
    value_label: &str,
    categories: &[String],
    parts: &[String],
    values: &[Vec<f64>],
) -> DrawResult {
    let n = categories.len().max(1) as i32;
    let max = values
        .iter()
        .map(|v| v.iter().sum::<f64>())
        .fold(0.0, f64::max);
    let max = if max > 0.0 { max * 1.22 } else { 1.0 };
    let longest = categories.iter().map(|c| c.len()).max().unwrap_or(4) as u32;
    let mut chart = ChartBuilder::on(root)
        .caption(&p.title, ("sans-serif", 22))
        .margin(12)
        .x_label_area_size(48)
        .y_label_area_size((longest * 7 + 16).clamp(60, 330))
        .build_cartesian_2d(0.0..max, (0..n).into_segmented())
        .map_err(e2s)?;
    let cat = |v: &SegmentValue<i32>| match v {
        SegmentValue::CenterOf(i) | SegmentValue::Exact(i) => {
            categories.get(*i as usize).cloned().unwrap_or_default()
        }
        SegmentValue::Last => String::new(),
    };
    let fx = |v: &f64| fmt_num(*v);
    chart
        .configure_mesh()
        .disable_y_mesh()
        .x_desc(value_label)
        .y_labels(categories.len().max(1))
        .y_label_formatter(&cat)
        .x_label_formatter(&fx)
        .label_style(("sans-serif", 12))
        .axis_desc_style(("sans-serif", 15))
        .max_light_lines(1)
        .light_line_style(RGBColor(0xf2, 0xf2, 0xf2))
        .draw()
        .map_err(e2s)?;
    for (j, part) in parts.iter().enumerate() {
        let c = color(j);
        let bars = values.iter().enumerate().filter_map(|(i, v)| {
            let start: f64 = v[..j].iter().sum();
            let len = v.get(j).copied().unwrap_or(0.0);
            (len > 0.0).then(|| {
                let mut r = Rectangle::new(
                    [
                        (start, SegmentValue::Exact(i as i32)),
                        (start + len, SegmentValue::Exact(i as i32 + 1)),
                    ],
                    c.filled(),
                );
                r.set_margin(4, 4, 0, 0);
                r
            })
        });
        chart
            .draw_series(bars)
            .map_err(e2s)?
            .label(part)
            .legend(move |(x, y)| Rectangle::new([(x, y - 5), (x + 12, y + 5)], c.filled()));
    }
    legend(&mut chart)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn demo() -> Vec<Plot> {
        vec![
            Plot {
                id: "xy".into(),
                title: "t".into(),
                caption: String::new(),
                kind: Kind::Xy {
                    x: XyAxis {
                        label: "x".into(),
                        log: true,
                        range: None,
                        percent: false,
                    },
                    y: XyAxis {
                        label: "y".into(),
                        log: false,
                        range: Some((0.0, 1.0)),
                        percent: true,
                    },
                    series: vec![Series {
                        name: "a".into(),
                        points: vec![(16.0, 0.2), (64.0, 0.5), (256.0, 0.9)],
                        labels: vec!["p".into(), "q".into(), "r".into()],
                        line: true,
                        dash: None,
                        marker: Marker::Filled,
                        color: color(0),
                    }],
                },
            },
            Plot {
                id: "bars".into(),
                title: "t".into(),
                caption: String::new(),
                kind: Kind::Stacked {
                    value_label: "v".into(),
                    categories: vec!["one".into(), "two".into()],
                    parts: vec!["a".into(), "b".into()],
                    values: vec![vec![1.0, 2.0], vec![3.0, 0.0]],
                },
            },
        ]
    }

    #[test]
    fn svg_has_the_marks_and_png_is_written() {
        for p in demo() {
            let s = svg(&p).unwrap();
            assert!(
                s.starts_with("<svg") && s.contains("</svg>"),
                "{}",
                &s[..80]
            );
            match p.id.as_str() {
                "xy" => assert!(s.matches("<circle").count() >= 3 && s.contains("<polyline")),
                // three bar segments and the background
                _ => assert!(s.matches("<rect").count() > 3),
            }
            assert!(s.contains("\none\n") || p.id == "xy");
            let f = std::env::temp_dir().join(format!(
                "npukit-plot-{}-{}.png",
                std::process::id(),
                p.id
            ));
            png(&p, &f).unwrap();
            let bytes = std::fs::read(&f).unwrap();
            assert_eq!(&bytes[1..4], b"PNG");
            std::fs::remove_file(&f).ok();
        }
    }

    /// No data, one point, equal values and all-zero bars still draw.
    #[test]
    fn degenerate_data_draws() {
        let [xy, bars] = <[Plot; 2]>::try_from(demo()).unwrap();
        for pts in [vec![], vec![(3.0, 3.0)], vec![(1.0, 5.0), (1.0, 5.0)]] {
            let mut p = xy.clone();
            if let Kind::Xy { series, x, y } = &mut p.kind {
                (x.log, y.log, y.range) = (false, true, None);
                series[0].labels = pts.iter().map(|_| "l".to_string()).collect();
                series[0].points = pts;
            }
            svg(&p).unwrap();
        }
        for (cats, vals) in [(2, vec![vec![0.0, 0.0]; 2]), (0, vec![])] {
            let mut p = bars.clone();
            if let Kind::Stacked {
                values, categories, ..
            } = &mut p.kind
            {
                categories.truncate(cats);
                *values = vals;
            }
            svg(&p).unwrap();
        }
    }

    #[test]
    fn ranges_have_margins() {
        let a = XyAxis {
            label: String::new(),
            log: true,
            range: None,
            percent: false,
        };
        let (lo, hi) = range([10.0, 100.0].into_iter(), &a);
        assert!(lo < 10.0 && hi > 100.0 && lo > 0.0);
        let b = XyAxis { log: false, ..a };
        let (lo, hi) = range([5.0, 5.0].into_iter(), &b);
        assert!(lo < 5.0 && hi > 5.0);
    }
}
