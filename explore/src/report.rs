//! The report of a sweep: the plots (see [`plots`]), `report.html` (one
//! self-contained file: the plots as inline SVG, a table of every point, no
//! external resources), a PNG of each plot under `plots/`, and `summary.md`,
//! a Markdown summary for terminals.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use crate::plot::{color, Kind, Marker, Plot, Series, XyAxis};
use crate::results::{Results, Row};

/// The plot ids the report of `workloads` holds, in order.
pub fn plot_ids(workloads: &[String]) -> Vec<String> {
    let mut ids: Vec<String> = ["cycles", "utilisation", "roofline"]
        .map(String::from)
        .to_vec();
    for w in workloads {
        for p in ["layers", "energy", "pareto"] {
            ids.push(format!("{p}-{}", slug(w)));
        }
    }
    ids
}

/// A workload name as an id part: lowercase letters, digits and `-`.
pub fn slug(s: &str) -> String {
    s.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() {
                c.to_ascii_lowercase()
            } else {
                '-'
            }
        })
        .collect()
}

fn axis(label: &str, log: bool) -> XyAxis {
    XyAxis {
        label: label.into(),
        log,
        range: None,
        percent: false,
    }
}

/// The settings of a row other than the array shape, as a label.
fn non_shape_label(res: &Results, r: &Row) -> String {
    crate::sweep::settings_label(&r.settings, &res.axes, false)
}

/// Series of `(PEs, value)` per workload and non-shape settings.
fn by_array_size(res: &Results, value: impl Fn(&Row) -> f64) -> Vec<Series> {
    let mut groups: BTreeMap<(usize, String), Vec<&Row>> = BTreeMap::new();
    for r in res.rows.iter().filter(|r| r.ok()) {
        let w = res
            .workloads
            .iter()
            .position(|w| *w == r.workload)
            .unwrap_or(0);
        groups
            .entry((w, non_shape_label(res, r)))
            .or_default()
            .push(r);
    }
    let variants: Vec<String> = {
        let mut v: Vec<String> = groups.keys().map(|k| k.1.clone()).collect();
        v.sort();
        v.dedup();
        v
    };
    groups
        .into_iter()
        .map(|((w, rest), mut rows)| {
            rows.sort_by_key(|r| (r.config.peak_macs_per_cycle(), r.index));
            let vi = variants.iter().position(|v| *v == rest).unwrap_or(0);
            Series {
                name: if rest.is_empty() {
                    res.workloads[w].clone()
                } else {
                    format!("{} {rest}", res.workloads[w])
                },
                points: rows
                    .iter()
                    .map(|r| (r.config.peak_macs_per_cycle() as f64, value(r)))
                    .collect(),
                labels: vec![],
                line: true,
                dash: [None, Some((8, 5)), Some((2, 4))][vi % 3],
                marker: [Marker::Filled, Marker::Hollow, Marker::Filled][vi % 3],
                color: color(w),
            }
        })
        .collect()
}

fn roofline(res: &Results) -> Plot {
    let ok: Vec<&Row> = res.rows.iter().filter(|r| r.ok()).collect();
    let ai = |r: &Row| r.derived.arithmetic_intensity;
    let lo = ok
        .iter()
        .map(|r| ai(r))
        .filter(|v| *v > 0.0)
        .fold(f64::INFINITY, f64::min);
    let hi = ok.iter().map(|r| ai(r)).fold(0.0, f64::max);
    let (x0, x1) = if lo.is_finite() {
        (lo / 4.0, hi * 4.0)
    } else {
        (0.1, 100.0)
    };
    let mut ceilings: Vec<(u64, u32)> = ok
        .iter()
        .map(|r| {
            (
                r.config.peak_macs_per_cycle(),
                r.config.dram.bytes_per_cycle,
            )
        })
        .collect();
    ceilings.sort();
    ceilings.dedup();
    let nw = res.workloads.len();
    let mut series: Vec<Series> = ceilings
        .iter()
        .enumerate()
        .map(|(i, &(peak, bw))| {
            let peak = peak as f64;
            let bw = bw as f64;
            let ridge = peak / bw;
            let mut pts = vec![(x0, (bw * x0).min(peak))];
            if ridge > x0 && ridge < x1 {
                pts.push((ridge, peak));
            }
            pts.push((x1, (bw * x1).min(peak)));
            Series {
                name: format!("ceiling {peak} MAC/cycle, {bw} B/cycle"),
                points: pts,
                labels: vec![],
                line: true,
                dash: Some((8, 5)),
                marker: Marker::None,
                color: color(nw + i),
            }
        })
        .collect();
    for (w, name) in res.workloads.iter().enumerate() {
        let pts: Vec<(f64, f64)> = ok
            .iter()
            .filter(|r| r.workload == *name)
            .map(|r| (ai(r), r.derived.macs_per_cycle))
            .collect();
        series.push(Series {
            name: name.clone(),
            points: pts,
            labels: vec![],
            line: false,
            dash: None,
            marker: Marker::Filled,
            color: color(w),
        });
    }
    Plot {
        id: "roofline".into(),
        title: "Roofline: achieved MAC/cycle vs arithmetic intensity".into(),
        caption: "Each point is a run; dashed lines are the ceilings min(peak MAC/cycle, \
                  DRAM bytes/cycle x intensity) of each array size and bandwidth in the sweep. \
                  Intensity is MACs per byte moved by LOAD and STORE."
            .into(),
        kind: Kind::Xy {
            x: XyAxis {
                range: Some((x0, x1)),
                ..axis("arithmetic intensity (MAC per DRAM byte)", true)
            },
            y: axis("achieved MAC/cycle", true),
            series,
        },
    }
}

fn best<'a>(res: &'a Results, w: &'a str) -> Option<&'a Row> {
    res.rows_of(w)
        .filter(|r| r.ok())
        .min_by_key(|r| (r.sim.cycles, r.index))
}

fn layers(res: &Results, w: &str) -> Plot {
    let b = best(res, w);
    // Bars are drawn bottom-up: reversed, the first layer is on top.
    let (categories, values) = match b {
        Some(r) => (
            r.sim.layers.iter().rev().map(|l| l.name.clone()).collect(),
            r.sim
                .layers
                .iter()
                .rev()
                .map(|l| {
                    vec![
                        l.compute_cycles as f64,
                        l.memory_stall_cycles as f64,
                        l.dependency_stall_cycles as f64,
                    ]
                })
                .collect(),
        ),
        None => (vec![], vec![]),
    };
    Plot {
        id: format!("layers-{}", slug(w)),
        title: format!(
            "Per-layer cycles: {w}{}",
            b.map_or(String::new(), |r| format!(" on {}", r.label))
        ),
        caption: "The point with the fewest cycles. Compute: the compute unit runs the layer; \
                  memory stall: it does not while the layer's LOADs or STOREs move data; \
                  dependency stall: neither (tokens, dispatch, other layers)."
            .into(),
        kind: Kind::Stacked {
            value_label: "cycles".into(),
            categories,
            parts: ["compute", "memory stall", "dependency stall"]
                .map(String::from)
                .to_vec(),
            values,
        },
    }
}

fn energy(res: &Results, w: &str) -> Plot {
    let mut rows: Vec<&Row> = res.rows_of(w).filter(|r| r.ok()).collect();
    rows.reverse();
    let parts: Vec<String> = crate::energy::EnergyBreakdown::default()
        .parts()
        .iter()
        .map(|p| p.0.to_string())
        .collect();
    Plot {
        id: format!("energy-{}", slug(w)),
        title: format!("Energy per run: {w}"),
        caption: format!(
            "Dynamic energy by component (table: {}).",
            res.energy_table.name
        ),
        kind: Kind::Stacked {
            value_label: "energy (uJ)".into(),
            categories: rows.iter().map(|r| r.label.clone()).collect(),
            parts,
            values: rows
                .iter()
                .map(|r| {
                    r.derived
                        .energy
                        .parts()
                        .iter()
                        .map(|p| p.1 / 1000.0)
                        .collect()
                })
                .collect(),
        },
    }
}

fn pareto(res: &Results, w: &str) -> Plot {
    let rows: Vec<&Row> = res.rows_of(w).filter(|r| r.ok()).collect();
    let pt = |r: &Row| (r.derived.area.total_mm2, r.derived.time_us);
    let mut front: Vec<&Row> = rows.iter().copied().filter(|r| r.derived.pareto).collect();
    front.sort_by(|a, b| pt(a).0.total_cmp(&pt(b).0));
    let others: Vec<&Row> = rows.iter().copied().filter(|r| !r.derived.pareto).collect();
    Plot {
        id: format!("pareto-{}", slug(w)),
        title: format!("Latency vs area: {w}"),
        caption: "Filled red points joined by the line are the Pareto front (no other point \
                  is both smaller and faster); hollow points are dominated."
            .into(),
        kind: Kind::Xy {
            x: axis("area (mm^2)", false),
            y: axis("latency (us)", false),
            series: vec![
                Series {
                    name: "dominated".into(),
                    points: others.iter().map(|r| pt(r)).collect(),
                    labels: vec![],
                    line: false,
                    dash: None,
                    marker: Marker::Hollow,
                    color: color(0),
                },
                Series {
                    name: "Pareto front".into(),
                    points: front.iter().map(|r| pt(r)).collect(),
                    labels: front.iter().map(|r| r.label.clone()).collect(),
                    line: true,
                    dash: None,
                    marker: Marker::Filled,
                    color: color(2),
                },
            ],
        },
    }
}

/// Every plot of the report, in [`plot_ids`] order.
pub fn plots(res: &Results) -> Vec<Plot> {
    let mut v = vec![
        Plot {
            id: "cycles".into(),
            title: "Cycles vs array size".into(),
            caption: "A line per workload and setting of the other axes (solid, dashed and \
                      dotted lines tell the settings apart); shapes with the same number of \
                      processing elements (e.g. 8x32 and 16x16) stand one above the other."
                .into(),
            kind: Kind::Xy {
                x: axis("processing elements (rows x cols)", true),
                y: axis("cycles", true),
                series: by_array_size(res, |r| r.sim.cycles as f64),
            },
        },
        Plot {
            id: "utilisation".into(),
            title: "MAC utilisation vs array size".into(),
            caption: "Useful MACs / (cycles x rows x cols).".into(),
            kind: Kind::Xy {
                x: axis("processing elements (rows x cols)", true),
                y: XyAxis {
                    range: Some((0.0, 1.05)),
                    percent: true,
                    ..axis("MAC utilisation", false)
                },
                series: by_array_size(res, |r| r.derived.mac_utilisation),
            },
        },
        roofline(res),
    ];
    for w in &res.workloads {
        v.push(layers(res, w));
        v.push(energy(res, w));
        v.push(pareto(res, w));
    }
    v
}

fn esc(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

/// Which fold formula a row's estimate uses.
fn formula(r: &Row) -> &'static str {
    if r.dataflow == "output-stationary" {
        "OS"
    } else if crate::sweep::weight_double_buffer(&r.config) {
        "WS-DB"
    } else {
        "WS"
    }
}

/// The columns of the results table (HTML and Markdown).
fn table_rows(res: &Results) -> (Vec<&'static str>, Vec<Vec<String>>) {
    let head = vec![
        "#",
        "workload",
        "config",
        "shape",
        "cycles",
        "time (us)",
        "MAC util",
        "MAC/cycle",
        "MAC/byte",
        "energy (uJ)",
        "area (mm^2)",
        "fold est.",
        "fold ratio",
        "roofline est.",
        "roofline ratio",
        "Pareto",
        "status",
    ];
    let rows = res
        .rows
        .iter()
        .map(|r| {
            let d = &r.derived;
            let x = &d.estimates;
            let ok = r.ok();
            let num = |s: String| if ok { s } else { "-".into() };
            vec![
                r.index.to_string(),
                r.workload.clone(),
                r.label.clone(),
                r.shape(),
                num(r.sim.cycles.to_string()),
                num(format!("{:.2}", d.time_us)),
                num(format!("{:.1}%", 100.0 * d.mac_utilisation)),
                num(format!("{:.1}", d.macs_per_cycle)),
                num(format!("{:.2}", d.arithmetic_intensity)),
                num(format!("{:.3}", d.energy.total_nj / 1000.0)),
                format!("{:.3}", d.area.total_mm2),
                if x.fold_cycles > 0 {
                    num(format!("{} ({})", x.fold_cycles, formula(r)))
                } else {
                    "-".into()
                },
                if x.fold_cycles > 0 {
                    num(format!("{:.2}", x.fold_ratio))
                } else {
                    "-".into()
                },
                num(format!("{:.0}", x.roofline_cycles)),
                num(format!("{:.2}", x.roofline_ratio)),
                if d.pareto {
                    "yes".into()
                } else {
                    String::new()
                },
                r.sim.error.clone().unwrap_or_else(|| "ok".into()),
            ]
        })
        .collect();
    (head, rows)
}

const STYLE: &str = "body{font-family:sans-serif;margin:2em auto;max-width:1000px;color:#222}\
figure{margin:1.5em 0}figure svg{max-width:100%;height:auto;border:1px solid #ddd}\
figcaption{font-size:90%;color:#555}table{border-collapse:collapse;font-size:80%}\
td,th{border:1px solid #ccc;padding:2px 6px;text-align:right}td:nth-child(2),td:nth-child(3),\
td:last-child{text-align:left}tr.pareto{background:#fdecec}code{background:#f3f3f3}";

/// Marks each figure with what the browser laid out (its SVG's bounding box and
/// number of drawn elements), so a headless browser's DOM dump shows it.
const SCRIPT: &str = "for(const f of document.querySelectorAll('figure.plot')){\
const s=f.querySelector('svg');let b=null;try{b=s&&s.getBBox();}catch(e){}\
f.dataset.bbox=b?Math.round(b.width)+'x'+Math.round(b.height):'none';\
f.dataset.marks=s?s.querySelectorAll('rect,circle,polyline,path,line,polygon').length:0;}";

/// `report.html` with the given plots' SVGs (in the order of `plots`).
pub fn html(res: &Results, plots: &[Plot], svgs: &[String], summary: &Summary) -> String {
    let mut s = String::new();
    let _ = write!(
        s,
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\
         <title>npukit explore: {}</title><style>{STYLE}</style></head><body>\n",
        esc(&res.sweep)
    );
    let _ = writeln!(s, "<h1>npukit explore: {}</h1>", esc(&res.sweep));
    if !res.description.is_empty() {
        let _ = writeln!(s, "<p>{}</p>", esc(&res.description));
    }
    let _ = writeln!(
        s,
        "<p>{} points: {} workloads x {} configurations{}; {} failed. Axes: {}. \
         Energy and area table: {} ({} nm). Tool: <code>{}</code>.</p>",
        res.rows.len(),
        res.workloads.len(),
        res.rows.len() / res.workloads.len().max(1),
        res.shard.map_or(String::new(), |k| format!(
            " (shard {}/{} of {})",
            k.k, k.n, res.points_total
        )),
        summary.failed,
        if res.axes.is_empty() {
            "none".to_string()
        } else {
            res.axes
                .iter()
                .map(|a| format!("<code>{}</code>", esc(a)))
                .collect::<Vec<_>>()
                .join(", ")
        },
        esc(&res.energy_table.name),
        res.energy_table.process_nm,
        esc(&res.tool)
    );
    for (p, svg) in plots.iter().zip(svgs) {
        let _ = writeln!(
            s,
            "<figure class=\"plot\" id=\"{}\" data-points=\"{}\">\n{}\n<figcaption>{}</figcaption></figure>",
            esc(&p.id),
            p.marks(),
            svg,
            esc(&p.caption)
        );
    }
    let (head, rows) = table_rows(res);
    s.push_str(
        "<h2>Every point</h2>\n<p>Fold est.: the program's MATMULs (folds), one after the other, \
        at their latency by rule C1 of the timing contract for the point's array option (WS: \
        2R+C+M-2; WS-DB: R+C+M-1 for a fold right after another fold, else 2R+C+M-2; OS: \
        ceil(M/R) max(R,C)+R+C+1), nothing else; roofline est.: \
        max(MACs/peak, DRAM bytes/bandwidth) per layer; ratio: measured / estimate.</p>\n\
        <table id=\"results\"><thead><tr>",
    );
    for h in head {
        let _ = write!(s, "<th>{}</th>", esc(h));
    }
    s.push_str("</tr></thead><tbody>\n");
    for (r, cells) in res.rows.iter().zip(rows) {
        let _ = write!(
            s,
            "<tr{}>",
            if r.derived.pareto {
                " class=\"pareto\""
            } else {
                ""
            }
        );
        for c in cells {
            let _ = write!(s, "<td>{}</td>", esc(&c));
        }
        s.push_str("</tr>\n");
    }
    let _ = write!(
        s,
        "</tbody></table>\n<script>{SCRIPT}</script>\n</body></html>\n"
    );
    s
}

/// Counts for the summary line.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Summary {
    pub simulated: usize,
    pub cached: usize,
    pub failed: usize,
}

/// `summary.md`: per workload, a table of its points, its Pareto front and the
/// fastest point.
pub fn markdown(res: &Results, summary: &Summary) -> String {
    let mut s = String::new();
    let _ = writeln!(s, "# npukit explore: {}\n", res.sweep);
    let _ = writeln!(
        s,
        "{} points ({} workloads){}: {} simulated, {} from the cache, {} failed.\n",
        res.rows.len(),
        res.workloads.len(),
        res.shard.map_or(String::new(), |k| format!(
            ", shard {}/{} of {}",
            k.k, k.n, res.points_total
        )),
        summary.simulated,
        summary.cached,
        summary.failed
    );
    let (head, rows) = table_rows(res);
    for w in &res.workloads {
        let _ = writeln!(s, "## {w}\n");
        let cols = [2usize, 4, 5, 6, 9, 10, 11, 12, 13, 14, 15, 16];
        let _ = writeln!(
            s,
            "| {} |",
            cols.iter()
                .map(|&c| head[c])
                .collect::<Vec<_>>()
                .join(" | ")
        );
        let _ = writeln!(s, "|{}", "---|".repeat(cols.len()));
        for (r, cells) in res.rows.iter().zip(&rows) {
            if r.workload == *w {
                let _ = writeln!(
                    s,
                    "| {} |",
                    cols.iter()
                        .map(|&c| cells[c].replace('|', "/"))
                        .collect::<Vec<_>>()
                        .join(" | ")
                );
            }
        }
        let front: Vec<String> = res
            .rows_of(w)
            .filter(|r| r.derived.pareto)
            .map(|r| {
                format!(
                    "{} ({:.3} mm^2, {:.2} us)",
                    r.label, r.derived.area.total_mm2, r.derived.time_us
                )
            })
            .collect();
        let _ = writeln!(
            s,
            "\nPareto front (area, latency): {}",
            if front.is_empty() {
                "none".into()
            } else {
                front.join("; ")
            }
        );
        if let Some(b) = best(res, w) {
            let _ = writeln!(
                s,
                "Fewest cycles: {} ({} cycles, {:.1}% MAC utilisation, {:.3} uJ).",
                b.label,
                b.sim.cycles,
                100.0 * b.derived.mac_utilisation,
                b.derived.energy.total_nj / 1000.0
            );
        }
        s.push('\n');
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slugs_and_ids() {
        assert_eq!(slug("MLP small_2"), "mlp-small-2");
        assert_eq!(
            plot_ids(&["a".into()]),
            vec![
                "cycles",
                "utilisation",
                "roofline",
                "layers-a",
                "energy-a",
                "pareto-a"
            ]
        );
    }

    #[test]
    fn escaping() {
        assert_eq!(esc("<a & \"b\">"), "&lt;a &amp; &quot;b&quot;&gt;");
    }
}
