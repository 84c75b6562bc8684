//! The generated module `top` has exactly the ports of docs/rtl.md (names,
//! directions, widths): the harness is built against that table.

use std::collections::BTreeMap;
use std::path::Path;

use npukit_hw::gen::{verilog, Params};
use npukit_sim::NpuConfig;

/// (direction, width) per port from the two port tables of docs/rtl.md.
#[allow(clippy::unwrap_used)]
fn documented() -> BTreeMap<String, (String, u32)> {
    let doc = std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("../docs/rtl.md"))
        .unwrap();
    let top = doc.split("## Top-level ports").nth(1).unwrap();
    let top = top.split("## Blocks").next().unwrap();
    let mut ports = BTreeMap::new();
    let mut in_events = false;
    for line in top.lines() {
        if line.starts_with("### Event ports") {
            in_events = true;
        }
        let cells: Vec<&str> = line.split('|').map(str::trim).collect();
        if cells.len() < 4 || !cells[1].starts_with('`') {
            continue;
        }
        let name = cells[1].trim_matches('`').to_string();
        // Port | Dir | Width | Meaning, or (events) Port | Width | Meaning
        let (dir, width) = if in_events {
            ("out".to_string(), cells[2])
        } else {
            (cells[2].to_string(), cells[3])
        };
        ports.insert(name, (dir, width.parse().unwrap()));
    }
    ports
}

/// (direction, width) per port of `module top` in the Verilog text.
#[allow(clippy::unwrap_used)]
fn generated(v: &str) -> BTreeMap<String, (String, u32)> {
    let body = v.split("module top(").nth(1).unwrap();
    let body = body.split("endmodule").next().unwrap();
    let mut ports = BTreeMap::new();
    for line in body.lines().map(str::trim) {
        let dir = if line.starts_with("input wire") {
            "in"
        } else if line.starts_with("output reg") || line.starts_with("output wire") {
            "out"
        } else {
            continue;
        };
        let words: Vec<&str> = line.trim_end_matches(';').split_whitespace().collect();
        let name = words.last().unwrap().to_string();
        let width = match words.iter().find(|w| w.starts_with('[')) {
            Some(r) => r[1..r.find(':').unwrap()].parse::<u32>().unwrap() + 1,
            None => 1,
        };
        ports.insert(name, (dir.to_string(), width));
    }
    ports
}

#[test]
fn top_ports_match_docs() {
    let doc = documented();
    assert!(
        doc.len() > 40,
        "parsed only {} ports from docs/rtl.md",
        doc.len()
    );
    let cfg = NpuConfig::default();
    let v = verilog(&Params::from_config(&cfg)).unwrap();
    let gen = generated(&v);
    assert_eq!(gen, doc, "module top vs docs/rtl.md port tables");
}

#[test]
fn variant_parameters_come_from_the_config() {
    let mut cfg = NpuConfig::default();
    cfg.dma.beat_bytes = 8;
    let p = Params::from_config(&cfg);
    assert_eq!(p.fetch_beats(), 4);
    cfg.dma.beat_bytes = 64;
    assert_eq!(Params::from_config(&cfg).fetch_beats(), 1);
    let v = verilog(&p).unwrap();
    assert!(v.contains("localparam NB = 4;"), "fetch beats for B = 8");
    // the unit queues' depth (the constant of each UnitQueue instance)
    let depth = format!("localparam  depth = 9'b{:b};", cfg.cmdproc.queue_depth);
    for q in ["lq", "cq", "sq"] {
        let at = v.find(&format!("module top${q}(")).unwrap();
        let module = &v[at..at + v[at..].find("endmodule").unwrap()];
        assert!(module.contains(&depth), "{q}: {depth}");
    }
    assert!(!v.contains("DELIBERATELY BROKEN"));
    let broken = Params {
        inject: npukit_hw::gen::Inject::from_name("dispatch-late"),
        ..p
    };
    assert!(verilog(&broken)
        .unwrap()
        .contains("DELIBERATELY BROKEN (fault injected: dispatch-late)"));
    assert!(npukit_hw::gen::Inject::from_name("nonsense").is_none());
}
