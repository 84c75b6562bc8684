//! The energy and area model: a table of per-operation energies and per-block
//! areas (`configs/energy-area.toml`, with its sources; replaceable with
//! `--energy FILE`) applied to a run's counters and its program's traffic.
//!
//! Energy of a run (dynamic only; leakage is not modelled):
//! * `mac`: MACs x (8-bit multiply + 32-bit add);
//! * `array_registers`: bytes moved through the array's pipeline registers x
//!   register energy per byte — per MAC 5 bytes weight-stationary (the
//!   activation passed on, the 32-bit partial sum passed down) or 6 bytes
//!   output-stationary (activation and weight passed on, the accumulator
//!   updated in place), plus per MATMUL `R * R * C` bytes of weight shift-in
//!   (weight-stationary: `R` shifts of the whole weight array) or `4 * C * m`
//!   bytes of results moved to the output registers (output-stationary: a row
//!   of `C` int32 sums per streamed row);
//! * `scratchpad`, `accumulator`: bytes read and written x the SRAM energy per
//!   byte at that memory's capacity;
//! * `activation`: elements through the activation unit x (32-bit multiply + add);
//! * `dram`: bytes on the memory port (LOAD, STORE, descriptor fetch) x DRAM energy per byte.
//!
//! Area of a configuration:
//! * `mac_array`: `R * C` x (8-bit multiplier + 32-bit adder + 48 register bits,
//!   56 with double-buffered weights);
//! * `scratchpad`, `accumulator`: bits x bit-cell area / array efficiency;
//! * `activation`: `C` lanes x (32-bit multiplier + 32-bit adder + 64 register bits);
//! * `control`: the register bits of the fetch buffer, the three unit queues (256
//!   bits per descriptor) and the two DMA beat buffers. Other control logic is
//!   not counted.

use std::path::Path;

use npukit_sim::NpuConfig;
use serde::{Deserialize, Serialize};

use crate::simulate::SimResult;
use crate::sweep::{dataflow, weight_double_buffer};
use crate::ExploreError;

/// The built-in table (the text of `configs/energy-area.toml`).
pub const BUILTIN_TABLE: &str = include_str!("../../configs/energy-area.toml");

/// Per-operation energies, picojoules.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EnergyFigures {
    pub mult_int8_pj: f64,
    pub add_int32_pj: f64,
    pub mult_int32_pj: f64,
    pub register_byte_pj: f64,
    pub dram_byte_pj: f64,
    /// `[capacity bytes, pJ per 64-bit access]`, capacities increasing.
    pub sram_64bit_pj: Vec<[f64; 2]>,
}

/// Per-block areas, square micrometres.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AreaFigures {
    pub mult_int8_um2: f64,
    pub add_int32_um2: f64,
    pub mult_int32_um2: f64,
    pub register_bit_um2: f64,
    pub sram_bit_um2: f64,
    pub sram_array_efficiency: f64,
}

/// The whole table.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EnergyTable {
    pub name: String,
    pub process_nm: f64,
    pub energy_scale: f64,
    pub area_scale: f64,
    pub energy: EnergyFigures,
    pub area: AreaFigures,
}

/// A run's energy by component, nanojoules.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct EnergyBreakdown {
    pub mac_nj: f64,
    pub array_registers_nj: f64,
    pub scratchpad_nj: f64,
    pub accumulator_nj: f64,
    pub activation_nj: f64,
    pub dram_nj: f64,
    pub total_nj: f64,
}

impl EnergyBreakdown {
    /// The components, named, in a fixed order (plots, CSV).
    pub fn parts(&self) -> [(&'static str, f64); 6] {
        [
            ("mac", self.mac_nj),
            ("array registers", self.array_registers_nj),
            ("scratchpad", self.scratchpad_nj),
            ("accumulator", self.accumulator_nj),
            ("activation", self.activation_nj),
            ("dram", self.dram_nj),
        ]
    }
}

/// A configuration's area by block, square millimetres.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct AreaBreakdown {
    pub mac_array_mm2: f64,
    pub scratchpad_mm2: f64,
    pub accumulator_mm2: f64,
    pub activation_mm2: f64,
    pub control_mm2: f64,
    pub total_mm2: f64,
}

impl AreaBreakdown {
    pub fn parts(&self) -> [(&'static str, f64); 5] {
        [
            ("mac array", self.mac_array_mm2),
            ("scratchpad", self.scratchpad_mm2),
            ("accumulator", self.accumulator_mm2),
            ("activation", self.activation_mm2),
            ("control", self.control_mm2),
        ]
    }
}

fn bad(field: &str, problem: &str) -> ExploreError {
    ExploreError::EnergyTable(format!("`{field}` {problem}"))
}

impl EnergyTable {
    /// The built-in table.
    pub fn builtin() -> EnergyTable {
        Self::parse(BUILTIN_TABLE).expect("configs/energy-area.toml is valid (tested)")
    }

    /// Parses and checks a table.
    pub fn parse(text: &str) -> Result<EnergyTable, ExploreError> {
        let t: EnergyTable =
            toml::from_str(text).map_err(|e| ExploreError::EnergyTable(e.to_string()))?;
        t.validate()?;
        Ok(t)
    }

    /// Reads a table file.
    pub fn load(path: &Path) -> Result<EnergyTable, ExploreError> {
        let text = std::fs::read_to_string(path).map_err(|e| ExploreError::io(path, e))?;
        Self::parse(&text).map_err(|e| match e {
            ExploreError::EnergyTable(m) => {
                ExploreError::EnergyTable(format!("{}: {m}", path.display()))
            }
            other => other,
        })
    }

    fn validate(&self) -> Result<(), ExploreError> {
        let e = &self.energy;
        let a = &self.area;
        let positive = [
            ("energy_scale", self.energy_scale),
            ("area_scale", self.area_scale),
            ("energy.mult_int8_pj", e.mult_int8_pj),
            ("energy.add_int32_pj", e.add_int32_pj),
            ("energy.mult_int32_pj", e.mult_int32_pj),
            ("energy.register_byte_pj", e.register_byte_pj),
            ("energy.dram_byte_pj", e.dram_byte_pj),
            ("area.mult_int8_um2", a.mult_int8_um2),
            ("area.add_int32_um2", a.add_int32_um2),
            ("area.mult_int32_um2", a.mult_int32_um2),
            ("area.register_bit_um2", a.register_bit_um2),
            ("area.sram_bit_um2", a.sram_bit_um2),
            ("area.sram_array_efficiency", a.sram_array_efficiency),
        ];
        for (f, v) in positive {
            if !(v.is_finite() && v > 0.0) {
                return Err(bad(f, &format!("= {v}: must be a positive number")));
            }
        }
        if a.sram_array_efficiency > 1.0 {
            return Err(bad("area.sram_array_efficiency", "must be at most 1"));
        }
        let s = &e.sram_64bit_pj;
        if s.len() < 2 {
            return Err(bad(
                "energy.sram_64bit_pj",
                "needs at least two [capacity, pJ] points",
            ));
        }
        if s.iter()
            .any(|[c, p]| !(c.is_finite() && *c > 0.0 && p.is_finite() && *p > 0.0))
        {
            return Err(bad("energy.sram_64bit_pj", "must hold positive numbers"));
        }
        if s.windows(2).any(|w| w[1][0] <= w[0][0]) {
            return Err(bad("energy.sram_64bit_pj", "capacities must increase"));
        }
        Ok(())
    }

    /// SRAM energy per byte accessed, pJ, for a memory of `bytes` capacity
    /// (log-log interpolation of the 64-bit access energies, divided by 8).
    pub fn sram_byte_pj(&self, bytes: f64) -> f64 {
        let pts = &self.energy.sram_64bit_pj;
        let x = bytes.max(1.0).ln();
        let i = pts
            .windows(2)
            .position(|w| x <= w[1][0].ln())
            .unwrap_or(pts.len() - 2);
        let ([c0, e0], [c1, e1]) = (pts[i], pts[i + 1]);
        let slope = (e1.ln() - e0.ln()) / (c1.ln() - c0.ln());
        (e0.ln() + slope * (x - c0.ln())).exp() / 8.0
    }

    /// A run's energy.
    pub fn energy(&self, cfg: &NpuConfig, r: &SimResult) -> EnergyBreakdown {
        let e = &self.energy;
        let t = &r.traffic;
        let pj = |x: f64| x * self.energy_scale / 1000.0;
        let macs = r.counter("PERF_MACS") as f64;
        let (rows, cols) = (cfg.array.rows as f64, cfg.array.cols as f64);
        let reg_bytes = if dataflow(cfg) == "output-stationary" {
            macs * 6.0 + 4.0 * cols * t.matmul_rows as f64
        } else {
            macs * 5.0 + t.folds as f64 * rows * rows * cols
        };
        let spad = (t.spad_read_bytes + t.spad_write_bytes) as f64;
        let acc = (t.acc_read_bytes + t.acc_write_bytes) as f64;
        let dram = (r.counter("PERF_DMA_RD_BYTES") + r.counter("PERF_DMA_WR_BYTES") + t.fetch_bytes)
            as f64;
        let mut b = EnergyBreakdown {
            mac_nj: pj(macs * (e.mult_int8_pj + e.add_int32_pj)),
            array_registers_nj: pj(reg_bytes * e.register_byte_pj),
            scratchpad_nj: pj(spad * self.sram_byte_pj(cfg.memory.spad_bytes as f64)),
            accumulator_nj: pj(acc * self.sram_byte_pj(cfg.memory.acc_bytes as f64)),
            activation_nj: pj(t.act_elements as f64 * (e.mult_int32_pj + e.add_int32_pj)),
            dram_nj: pj(dram * e.dram_byte_pj),
            total_nj: 0.0,
        };
        b.total_nj = b.parts().iter().map(|p| p.1).sum();
        b
    }

    /// A configuration's area.
    pub fn area(&self, cfg: &NpuConfig) -> AreaBreakdown {
        let a = &self.area;
        let mm2 = |x: f64| x * self.area_scale / 1e6;
        let (rows, cols) = (cfg.array.rows as f64, cfg.array.cols as f64);
        let pe_bits = if weight_double_buffer(cfg) {
            56.0
        } else {
            48.0
        };
        let sram = |bytes: u32| bytes as f64 * 8.0 * a.sram_bit_um2 / a.sram_array_efficiency;
        let c = &cfg.cmdproc;
        let ctl_bits = (c.fetch_depth as f64 + 3.0 * c.queue_depth as f64) * 256.0
            + 2.0 * cfg.dma.beat_bytes as f64 * 8.0;
        let mut b = AreaBreakdown {
            mac_array_mm2: mm2(rows
                * cols
                * (a.mult_int8_um2 + a.add_int32_um2 + pe_bits * a.register_bit_um2)),
            scratchpad_mm2: mm2(sram(cfg.memory.spad_bytes)),
            accumulator_mm2: mm2(sram(cfg.memory.acc_bytes)),
            activation_mm2: mm2(
                cols * (a.mult_int32_um2 + a.add_int32_um2 + 64.0 * a.register_bit_um2)
            ),
            control_mm2: mm2(ctl_bits * a.register_bit_um2),
            total_mm2: 0.0,
        };
        b.total_mm2 = b.parts().iter().map(|p| p.1).sum();
        b
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::simulate::Traffic;

    fn close(a: f64, b: f64) -> bool {
        (a - b).abs() <= 1e-9 * a.abs().max(b.abs()).max(1.0)
    }

    #[test]
    fn builtin_table_parses() {
        let t = EnergyTable::builtin();
        assert_eq!(t.process_nm, 45.0);
        assert_eq!(t.energy.sram_64bit_pj.len(), 3);
    }

    #[test]
    fn sram_energy_hits_the_table_points_and_interpolates_log_log() {
        let t = EnergyTable::builtin();
        assert!(close(t.sram_byte_pj(8192.0), 10.0 / 8.0));
        assert!(close(t.sram_byte_pj(32768.0), 20.0 / 8.0));
        assert!(close(t.sram_byte_pj(1048576.0), 100.0 / 8.0));
        // 16 KiB is halfway (in log) between 8 and 32 KiB: sqrt(10 * 20) pJ.
        assert!(close(t.sram_byte_pj(16384.0), (200f64).sqrt() / 8.0));
        // Below the first point: the first segment's slope (x4 capacity, x2 energy).
        assert!(close(t.sram_byte_pj(2048.0), 5.0 / 8.0));
    }

    #[test]
    fn energy_of_known_traffic_by_hand() {
        let t = EnergyTable::builtin();
        let cfg = NpuConfig::default(); // 16x16, 256 KiB spad, 64 KiB acc
        let r = SimResult {
            counters: [
                ("PERF_MACS".to_string(), 1000),
                ("PERF_DMA_RD_BYTES".to_string(), 100),
                ("PERF_DMA_WR_BYTES".to_string(), 28),
            ]
            .into(),
            traffic: Traffic {
                folds: 2,
                matmul_rows: 7,
                spad_read_bytes: 10,
                spad_write_bytes: 0,
                acc_read_bytes: 0,
                acc_write_bytes: 8,
                act_elements: 4,
                fetch_bytes: 32,
            },
            ..SimResult::default()
        };
        let e = t.energy(&cfg, &r);
        assert!(close(e.mac_nj, 1000.0 * 0.3 / 1000.0));
        assert!(close(
            e.array_registers_nj,
            (1000.0 * 5.0 + 2.0 * 4096.0) * 0.15 / 1000.0
        ));
        assert!(close(e.dram_nj, 160.0 * 162.5 / 1000.0));
        let mut os = cfg.clone();
        if crate::sweep::get_field(&os, "array.dataflow").is_some() {
            let mut t = toml::Value::try_from(&os).unwrap();
            t["array"]["dataflow"] = "output-stationary".into();
            os = t.try_into().unwrap();
            let e = EnergyTable::builtin().energy(&os, &r);
            assert!(close(
                e.array_registers_nj,
                (1000.0 * 6.0 + 4.0 * 16.0 * 7.0) * 0.15 / 1000.0
            ));
        }
        assert!(close(e.activation_nj, 4.0 * 3.2 / 1000.0));
        assert!(close(
            e.scratchpad_nj,
            10.0 * t.sram_byte_pj(262144.0) / 1000.0
        ));
        assert!(close(
            e.accumulator_nj,
            8.0 * t.sram_byte_pj(65536.0) / 1000.0
        ));
        assert!(close(e.total_nj, e.parts().iter().map(|p| p.1).sum()));
    }

    #[test]
    fn area_grows_with_the_array_and_scales() {
        let t = EnergyTable::builtin();
        let small = t.area(&NpuConfig::default());
        let mut cfg = NpuConfig::default();
        cfg.array.rows = 32;
        cfg.array.cols = 32;
        let big = t.area(&cfg);
        assert!(close(big.mac_array_mm2, 4.0 * small.mac_array_mm2));
        assert!(close(
            small.mac_array_mm2,
            256.0 * (282.0 + 137.0 + 48.0 * 4.522) / 1e6
        ));
        assert!(close(
            small.scratchpad_mm2,
            262144.0 * 8.0 * 0.346 / 0.5 / 1e6
        ));
        let mut half = t.clone();
        half.area_scale = 0.5;
        assert!(close(half.area(&cfg).total_mm2, big.total_mm2 / 2.0));
    }

    #[test]
    fn bad_tables_name_the_field() {
        let bad = BUILTIN_TABLE.replace("dram_byte_pj = 162.5", "dram_byte_pj = -1.0");
        let e = EnergyTable::parse(&bad).unwrap_err().to_string();
        assert!(e.contains("energy.dram_byte_pj"), "{e}");
        let bad = BUILTIN_TABLE.replace("[32768, 20.0], ", "[32768, 20.0], [16384, 1.0], ");
        let e = EnergyTable::parse(&bad).unwrap_err().to_string();
        assert!(e.contains("capacities must increase"), "{e}");
        let bad = BUILTIN_TABLE.replace("mult_int8_pj", "mult_int9_pj");
        let e = EnergyTable::parse(&bad).unwrap_err().to_string();
        assert!(e.contains("mult_int9_pj"), "{e}");
    }
}
