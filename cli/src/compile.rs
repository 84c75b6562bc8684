//! `npukit compile`: compile a workload for a configuration and write the
//! command stream, the memory image and a per-layer schedule summary, without
//! simulating.

use std::fmt::Write as _;
use std::path::Path;

use anyhow::{Context, Result};
use npukit_abi::{asm, Opcode};
use npukit_compiler::Compiled;
use npukit_sim::NpuConfig;

/// The schedule summary: one line per layer.
pub fn schedule_text(name: &str, c: &Compiled, cfg: &NpuConfig) -> String {
    let mut s = String::new();
    let _ = writeln!(
        s,
        "npukit compile: {name} for a {}x{} array ({} B scratchpad, {} B accumulator)",
        cfg.array.rows, cfg.array.cols, cfg.memory.spad_bytes, cfg.memory.acc_bytes
    );
    let _ = writeln!(
        s,
        "  program {} descriptors ({} relays), device memory {} bytes, ring at {:#x}",
        c.program.len(),
        c.relays,
        c.mem_bytes,
        c.ring_base
    );
    let _ = writeln!(
        s,
        "  {:<22} {:<14} {:>7} {:>7} {:>12} {:>11} {:>11}  tiling",
        "layer", "op", "descs", "MATMUL", "MACs", "DRAM bytes", "est cycles"
    );
    let descs = c.program.descs();
    for (i, l) in c.layers.iter().enumerate() {
        let mine = || {
            c.desc_layer
                .iter()
                .enumerate()
                .filter(move |(_, d)| **d == Some(i as u32))
                .map(|(j, _)| j)
        };
        let matmuls = mine()
            .filter(|&j| descs[j].opcode() == Opcode::Matmul)
            .count();
        let _ = writeln!(
            s,
            "  {:<22} {:<14} {:>7} {:>7} {:>12} {:>11} {:>11}  {}",
            l.name,
            l.op,
            mine().count(),
            matmuls,
            l.macs,
            l.dram_bytes,
            l.tiling
                .map_or("-".to_string(), |t| t.est_cycles.to_string()),
            l.tiling.map_or("-".to_string(), |t| t.to_string())
        );
    }
    s
}

pub fn compile(workload: &Path, cfg: &NpuConfig, out: &Path) -> Result<()> {
    let w = crate::load_any(workload)?;
    let c = npukit_compiler::compile(&w, cfg)?;
    std::fs::create_dir_all(out).with_context(|| format!("creating {}", out.display()))?;
    let write = |name: &str, bytes: &[u8]| -> Result<String> {
        let p = out.join(name);
        std::fs::write(&p, bytes).with_context(|| format!("writing {}", p.display()))?;
        Ok(p.display().to_string())
    };
    let mut image = vec![0u8; c.mem_bytes as usize];
    for (addr, bytes) in &c.image {
        image[*addr as usize..*addr as usize + bytes.len()].copy_from_slice(bytes);
    }
    let text = schedule_text(&w.name, &c, cfg);
    print!("{text}");
    let mut places = serde_json::Map::new();
    for p in c.inputs.iter().chain(&c.outputs) {
        places.insert(
            p.name.clone(),
            serde_json::json!({
                "addr": p.addr, "shape": p.shape, "dtype": p.dtype.name(),
                "panel_channels": p.panel_cols, "space_to_depth": p.space_to_depth,
                "im2col": p.im2col.map(|w| serde_json::json!({
                    "out": w.out, "kernel": w.kernel, "stride": w.stride,
                    "dilation": w.dilation, "pads": w.pads, "pad": w.pad,
                })),
            }),
        );
    }
    let meta = serde_json::json!({
        "workload": w.name,
        "descriptors": c.program.len(),
        "ring_base": c.ring_base,
        "mem_bytes": c.mem_bytes,
        "tensors": places,
        "layers": c.layers.iter().map(|l| serde_json::json!({
            "name": l.name, "op": l.op, "first_desc": l.descs.start, "end_desc": l.descs.end,
            "macs": l.macs, "dram_bytes": l.dram_bytes,
            "tiling": l.tiling.map(|t| t.to_string()),
            "est_cycles": l.tiling.map(|t| t.est_cycles),
        })).collect::<Vec<_>>(),
    });
    let files = [
        write("program.bin", &c.program.encode())?,
        write("program.s", asm::disassemble(&c.program).as_bytes())?,
        write("memory.bin", &image)?,
        write("schedule.txt", text.as_bytes())?,
        write(
            "schedule.json",
            (serde_json::to_string_pretty(&meta)? + "\n").as_bytes(),
        )?,
        write("config.toml", cfg.to_toml().as_bytes())?,
    ];
    println!("  wrote {}", files.join(", "));
    println!(
        "  memory.bin is device memory from address 0 (input, weights, constants); program.bin \
         goes into the ring at {:#x}",
        c.ring_base
    );
    Ok(())
}
