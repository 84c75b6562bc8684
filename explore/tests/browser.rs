//! The README's example sweep (`sweeps/example.toml`) writes a report that opens
//! in a browser: headless Chromium loads report.html, and every plot is there,
//! laid out with a non-empty bounding box and drawn marks. Needs Debian's
//! `chromium` (scripts/test.sh installs it; `NPUKIT_CHROMIUM` names another binary).

mod common;

use std::process::Command;

use common::*;
use npukit_explore::Sweep;

fn chromium() -> String {
    if let Ok(c) = std::env::var("NPUKIT_CHROMIUM") {
        return c;
    }
    for c in ["chromium", "chromium-browser", "google-chrome"] {
        if Command::new(c)
            .arg("--version")
            .output()
            .is_ok_and(|o| o.status.success())
        {
            return c.to_string();
        }
    }
    panic!(
        "no Chromium found: install Debian's `chromium` package (scripts/test.sh does) \
         or set NPUKIT_CHROMIUM to a Chromium binary"
    );
}

/// Runs headless Chromium on `url` with `extra` arguments; returns stdout.
fn headless(dir: &std::path::Path, extra: &[String], url: &str) -> String {
    let profile = dir.join(format!("profile-{}", extra.len()));
    let o = Command::new(chromium())
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--disable-dev-shm-usage",
        ])
        .arg(format!("--user-data-dir={}", profile.display()))
        .args(extra)
        .arg(url)
        .output()
        .expect("chromium runs");
    assert!(
        o.status.success(),
        "chromium failed: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    String::from_utf8_lossy(&o.stdout).into_owned()
}

/// The attribute `name` of the start tag that begins at `tag`.
fn attr<'a>(tag: &'a str, name: &str) -> Option<&'a str> {
    let end = tag.find('>')?;
    let head = &tag[..end];
    let key = format!(" {name}=\"");
    let i = head.find(&key)? + key.len();
    let j = head[i..].find('"')?;
    Some(&head[i..i + j])
}

#[test]
fn example_report_renders_in_headless_chromium() {
    let d = tmp("browser");
    let s =
        Sweep::load(&root().join("sweeps/example.toml")).expect("the README's example sweep loads");
    // At least 4 array shapes x 2 dataflows x 3 workloads (the example).
    let distinct = |f: &dyn Fn(&npukit_explore::sweep::Point) -> String| {
        let mut v: Vec<String> = s.points.iter().map(f).collect();
        v.sort();
        v.dedup();
        v.len()
    };
    let shapes = distinct(&|p| format!("{}x{}", p.config.array.rows, p.config.array.cols));
    let dataflows = distinct(&|p| p.config.array.dataflow.name().to_string());
    assert!(
        shapes >= 4 && dataflows >= 2 && s.workloads.len() >= 3,
        "the example has {shapes} shapes, {dataflows} dataflows, {} workloads",
        s.workloads.len()
    );
    let out = d.join("out");
    let o = npukit_explore::run(&s, &options(&out, None)).unwrap();
    assert_eq!(o.summary.failed, 0, "{}", o.markdown);
    let html = out.join("report.html");
    let url = format!("file://{}", html.canonicalize().unwrap().display());

    let dom = headless(&d, &["--dump-dom".into()], &url);
    assert!(
        dom.contains("npukit explore: example"),
        "{}",
        &dom[..dom.len().min(500)]
    );
    let ids = npukit_explore::report::plot_ids(&o.results.workloads);
    assert_eq!(ids.len(), 3 + 3 * 3);
    let figures: Vec<&str> = dom.split("<figure").skip(1).collect();
    assert_eq!(figures.len(), ids.len(), "figures in the DOM");
    for id in &ids {
        let f = figures
            .iter()
            .find(|f| attr(f, "id") == Some(id.as_str()))
            .unwrap_or_else(|| panic!("plot `{id}` missing from the rendered report"));
        let bbox = attr(f, "data-bbox").unwrap_or("none");
        let (w, h) = bbox
            .split_once('x')
            .and_then(|(w, h)| Some((w.parse::<u32>().ok()?, h.parse::<u32>().ok()?)))
            .unwrap_or_else(|| panic!("plot `{id}`: the browser laid out no SVG (bbox {bbox})"));
        assert!(w > 300 && h > 200, "plot `{id}`: bbox {w}x{h}");
        let marks: usize = attr(f, "data-marks")
            .and_then(|m| m.parse().ok())
            .unwrap_or(0);
        let points: usize = attr(f, "data-points")
            .and_then(|m| m.parse().ok())
            .unwrap_or(0);
        assert!(points > 0, "plot `{id}` has no data");
        assert!(
            marks > points,
            "plot `{id}`: {marks} drawn elements for {points} data marks"
        );
    }
    assert!(dom.contains("<table id=\"results\""));
    assert_eq!(dom.matches("<tr").count(), 1 + s.points.len());

    // And it paints: a screenshot of the page is written.
    let shot = d.join("report.png");
    headless(
        &d,
        &[
            format!("--screenshot={}", shot.display()),
            "--window-size=1100,2400".into(),
            "--hide-scrollbars".into(),
        ],
        &url,
    );
    let png = std::fs::read(&shot).expect("screenshot written");
    assert!(
        png.len() > 20_000 && &png[1..4] == b"PNG",
        "{} bytes",
        png.len()
    );
    std::fs::remove_dir_all(&d).ok();
}
