//! Tiling: how one layer `Y[M x N] = X[M x K] W[K x N]` is cut to fit the
//! array, the scratchpad and the accumulator memory.
//!
//! * **K** is cut into chunks of `kc = min(K, rows)` (one fold's depth); folds
//!   of one output tile accumulate in the accumulator (MATMUL ACCUMULATE).
//! * **N** is cut into chunks of `nc = min(N, cols)` (one fold's width).
//! * **M** is cut into tiles of `mt` rows, the rows one MATMUL streams; the
//!   `mt x nc` int32 output tile must fit the accumulator memory.
//! * A **step** is one weight LOAD: `g` consecutive k-chunks of one n-chunk
//!   (stored contiguously in device memory, pre-tiled), and the `g` MATMULs
//!   that use them. The input rows are held as one packed `mt x kc` panel per
//!   k-chunk, either *resident* (all of `mt x K`, loaded with the steps of the
//!   first n-chunk and reused for every other n-chunk) or *streamed* (the `g`
//!   panels of each step loaded with the step).
//! * **Loop order** within an M tile: *n-outer* finishes one output tile (all
//!   its K groups) before the next, so one or two accumulator tiles suffice;
//!   *k-outer* keeps the output tiles of a group of `n_group` N chunks in the
//!   accumulator and runs all of the group's N chunks for each K group, so the
//!   input streams through once per N group, interleaved with the weights,
//!   instead of being front-loaded (one group of all N chunks: once per M tile).
//!   Smaller groups trade input traffic for taller M tiles (fewer folds).
//! * Buffers are double-buffered when they fit (input panels, weights, int8
//!   output staging, int32 output tiles, bias vectors), so the loads of step
//!   `i + 1` overlap the MATMULs of step `i`; weights (and streamed inputs)
//!   can be triple-buffered, so loads run two steps ahead and ride out the
//!   port time of an output tile's STORE.
//!
//! [`plan`] tries every combination of loop order, `mt` (halving from the
//! largest that fits), resident or streamed input, `g`, and buffer counts, scores each with a
//! closed-form estimate of its cycles ([`estimate`]), and keeps the best.

use npukit_sim::NpuConfig;

/// Bytes reserved at the bottom of the scratchpad for relay scratch.
pub const SCRATCH_BYTES: u32 = 4;

/// The shape of a layer as the tiler sees it.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct LayerDims {
    pub m: usize,
    pub k: usize,
    pub n: usize,
    /// Output is requantised to int8 (ACT + int8 staging); otherwise int32
    /// stored from the accumulator.
    pub int8_out: bool,
    /// ACT adds a per-column bias vector (held in the accumulator memory).
    pub act_bias: bool,
    /// ACT requantises per column (`PER_CHANNEL`) with a table of 8-byte
    /// entries held next to the bias vector.
    pub qtab: bool,
    /// int32 output with a bias: the output tile is preloaded with the bias rows.
    pub preload: bool,
    /// Widest K chunk (at most the array's rows).
    pub k_chunk: usize,
    /// Number of K chunks.
    pub chunks: usize,
    /// M tiles of at least this many rows are cut to a multiple of it (an
    /// output image row, so gathers stay few 2-D transfers); 1 for none.
    pub m_align: usize,
    /// Input panels are gathered with one LOAD per `x_desc_rows` rows of a
    /// tile (strided windows); 0 when a panel is one or two LOADs.
    pub x_desc_rows: usize,
    /// Gathered (non-pointwise) input: every K chunk of a tile is at least one
    /// LOAD, plus `x_fill_descs` (on average) for padding.
    pub x_gathered: bool,
    pub x_fill_descs: f64,
}

impl LayerDims {
    /// Accumulator bytes of one ACT parameter slot of `nc` columns: the bias
    /// vector and the per-channel table (0 when ACT needs neither).
    pub fn act_slot_bytes(&self, nc: usize) -> usize {
        nc * (4 * usize::from(self.act_bias) + 8 * usize::from(self.qtab))
    }

    /// A plain GEMM: K cut into chunks of `min(k, rows)`, panels one LOAD each.
    pub fn gemm(m: usize, k: usize, n: usize, rows: usize) -> LayerDims {
        let kc = k.min(rows);
        LayerDims {
            m,
            k,
            n,
            int8_out: true,
            act_bias: true,
            qtab: false,
            preload: false,
            k_chunk: kc,
            chunks: k.div_ceil(kc),
            m_align: 1,
            x_desc_rows: 0,
            x_gathered: false,
            x_fill_descs: 0.0,
        }
    }
}

/// A layer's tiling and local-memory footprint.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Tiling {
    /// Rows per MATMUL (M tile).
    pub m_tile: usize,
    /// Depth per fold (K chunk), `<=` array rows.
    pub k_chunk: usize,
    /// Width per fold (N chunk), `<=` array cols.
    pub n_chunk: usize,
    /// K chunks per weight LOAD (per step).
    pub k_group: usize,
    /// Loop order within an M tile: K groups outside N chunks. The output
    /// tiles of `n_group` N chunks stay in the accumulator (`acc_bufs` =
    /// `n_group`) while the input panels stream through once per N group.
    pub k_outer: bool,
    /// N chunks per group in k-outer order (1 in n-outer order).
    pub n_group: usize,
    /// (N chunks outside) input rows of an M tile loaded once and reused for
    /// every N chunk.
    pub x_resident: bool,
    pub x_bufs: usize,
    pub w_bufs: usize,
    /// int8 output staging buffers (0 for int32 output).
    pub o_bufs: usize,
    /// int32 output tiles in the accumulator memory.
    pub acc_bufs: usize,
    /// ACT parameter slots (bias vector, per-channel table) in the
    /// accumulator memory (0 when ACT needs neither).
    pub bias_slots: usize,
    /// Scratchpad bytes used.
    pub spad_bytes: usize,
    /// Accumulator bytes used.
    pub acc_bytes: usize,
    /// The estimate that chose it (cycles).
    pub est_cycles: u64,
}

impl Tiling {
    pub fn k_chunks(&self, k: usize) -> usize {
        k.div_ceil(self.k_chunk)
    }

    /// Bytes of one input buffer.
    pub fn x_buf_bytes(&self, k: usize) -> usize {
        if self.x_resident {
            self.m_tile * k
        } else {
            self.m_tile * self.k_group * self.k_chunk
        }
    }

    pub fn w_buf_bytes(&self) -> usize {
        self.k_group * self.k_chunk * self.n_chunk
    }

    pub fn o_buf_bytes(&self) -> usize {
        self.m_tile * self.n_chunk
    }

    pub fn acc_tile_bytes(&self) -> usize {
        self.m_tile * self.n_chunk * 4
    }
}

impl std::fmt::Display for Tiling {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "m_tile {} k_chunk {} n_chunk {} k_group {} {}{} bufs x{} w{} o{} acc{}; spad {} B, acc {} B",
            self.m_tile,
            self.k_chunk,
            self.n_chunk,
            self.k_group,
            if self.k_outer {
                "k-outer"
            } else if self.x_resident {
                "n-outer x-resident"
            } else {
                "n-outer x-streamed"
            },
            if self.k_outer {
                format!(" n_group {}", self.n_group)
            } else {
                String::new()
            },
            self.x_bufs,
            self.w_bufs,
            self.o_bufs,
            self.acc_bufs,
            self.spad_bytes,
            self.acc_bytes
        )
    }
}

/// Cost parameters derived from the configuration.
struct Costs {
    rows: f64,
    cols: f64,
    beat: usize,
    /// Cycles per beat when streaming (bandwidth, outstanding limit, 1/cycle).
    per_beat: f64,
    /// Fixed cycles of one DMA descriptor (latency + completion).
    fixed: f64,
}

impl Costs {
    fn new(cfg: &NpuConfig) -> Self {
        let b = cfg.dma.beat_bytes as f64;
        let d = &cfg.dram;
        let per_beat = (b / d.bytes_per_cycle as f64)
            .max(d.latency as f64 / d.max_outstanding as f64)
            .max(1.0);
        Costs {
            rows: cfg.array.rows as f64,
            cols: cfg.array.cols as f64,
            beat: cfg.dma.beat_bytes as usize,
            per_beat,
            fixed: d.latency as f64 + 1.0,
        }
    }

    /// One DMA descriptor of `rows` rows of `row_bytes` (rows assumed to start
    /// 16-byte aligned).
    fn dma(&self, rows: usize, row_bytes: usize) -> f64 {
        let beats = rows * row_bytes.div_ceil(self.beat).max(1);
        beats as f64 * self.per_beat + self.fixed
    }

    fn matmul(&self, m: usize) -> f64 {
        2.0 * self.rows + self.cols + m as f64 - 2.0
    }
}

/// Closed-form estimate of a layer's cycles under a tiling (for choosing
/// between tilings, not a prediction of the model).
pub fn estimate(d: &LayerDims, t: &Tiling, cfg: &NpuConfig) -> u64 {
    let c = Costs::new(cfg);
    let (kc, nc, mt, g) = (t.k_chunk, t.n_chunk, t.m_tile, t.k_group);
    let nk = d.chunks;
    let nn = d.n.div_ceil(nc);
    let nq = nk.div_ceil(g);
    let tiles = d.m.div_ceil(mt);
    let steps = (tiles * nn * nq) as f64;
    // Compute: every fold streams mt rows, plus one ACT per output tile.
    let mut compute = (tiles * nn * nk) as f64 * c.matmul(mt);
    if d.int8_out {
        compute += (tiles * nn) as f64 * (mt as f64 + 2.0);
    }
    // Loads: one weight group per step; the input panels of a group are one
    // LOAD (panel-major activations), once per M tile if resident.
    let w_load = c.dma(1, g * kc * nc);
    let groups = nn.div_ceil(t.n_group.max(1));
    let x_steps = if t.x_resident {
        (tiles * nq) as f64
    } else if t.k_outer {
        (tiles * nq * groups) as f64
    } else {
        steps
    };
    let gather_descs = if d.x_desc_rows > 0 {
        mt.div_ceil(d.x_desc_rows) as f64
    } else if d.x_gathered {
        1.0
    } else {
        0.0
    };
    let x_descs = (g as f64 * (gather_descs + d.x_fill_descs)).max(1.0);
    let x_load = c.dma(1, g * mt * kc) + (x_descs - 1.0) * c.fixed;
    let mut load = steps * w_load + x_steps * x_load;
    let mut descs = steps + x_steps + (tiles * nn * (nk + 1)) as f64;
    for (used, bytes) in [(d.act_bias, nc * 4), (d.qtab, nc * 8)] {
        if used {
            load += (tiles * nn) as f64 * c.dma(1, bytes);
            descs += (tiles * nn) as f64;
        }
    }
    if d.preload {
        load += (tiles * nn) as f64 * c.dma(mt, nc * 4);
        descs += (tiles * nn) as f64;
    }
    // Stores share the port; the descriptor fetches too.
    let out_row = if d.int8_out { nc } else { nc * 4 };
    let store_tile = c.dma(mt, out_row);
    let store = (tiles * nn) as f64 * store_tile;
    let port = load + store - (tiles * nn) as f64 * c.fixed + descs * c.per_beat;
    let first = w_load + x_load;
    // With b weight buffers the loads run up to b - 1 steps ahead; a burst of
    // stores (which have priority on the port) longer than that lead stalls the
    // loads and then the array: once per output tile in n-outer order, once per
    // N group (its output tiles) in k-outer order.
    let c_step = compute / steps;
    let lead = (t.w_bufs as f64 - 1.0) * c_step;
    let (bursts, burst, last) = if t.k_outer {
        let ng = t.n_group.min(nn) as f64;
        (tiles * groups, ng * store_tile, ng * store_tile)
    } else {
        (tiles * nn, store_tile, store_tile)
    };
    // (The last burst is `last`.)
    let mut stall = (bursts - 1) as f64 * (burst + w_load - lead).max(0.0);
    // At most a load queue's worth of LOADs is placed ahead of the compute
    // (codegen): the rest of a streamed input group's gathers are exposed.
    let qd = cfg.cmdproc.queue_depth as f64;
    if !t.x_resident && x_descs > qd {
        stall += x_steps * x_load * (1.0 - qd / x_descs);
    }
    if t.x_resident && !t.k_outer {
        // The first N chunk of an M tile needs all its input rows.
        let port0 =
            (mt * d.k + d.k * nc).div_ceil(c.beat) as f64 * c.per_beat + 2.0 * nq as f64 * c.fixed;
        let compute0 = nk as f64 * c.matmul(mt);
        stall += tiles as f64 * (port0 - compute0).max(0.0);
    }
    let total = if t.w_bufs >= 2 && (t.x_bufs >= 2 || t.x_resident) {
        compute.max(port) + first + last + stall
    } else {
        compute + load + store
    };
    total as u64
}

/// Which loop structures [`plan`] may choose from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Strategy {
    /// The best estimate among all of them.
    #[default]
    Auto,
    /// N chunks outside K groups, input rows resident per M tile.
    NOuterResident,
    /// N chunks outside K groups, input panels streamed with every step.
    NOuterStreamed,
    /// K groups outside N chunks, all output tiles in the accumulator.
    KOuter,
}

impl Strategy {
    fn allows(self, k_outer: bool, resident: bool) -> bool {
        match self {
            Strategy::Auto => true,
            Strategy::NOuterResident => !k_outer && resident,
            Strategy::NOuterStreamed => !k_outer && !resident,
            Strategy::KOuter => k_outer,
        }
    }
}

/// Chooses the tiling of a layer for `cfg`; the error says why even the
/// smallest tile does not fit.
pub fn plan(d: &LayerDims, cfg: &NpuConfig, strategy: Strategy) -> Result<Tiling, String> {
    let rows = cfg.array.rows as usize;
    let cols = cfg.array.cols as usize;
    let spad = (cfg.memory.spad_bytes - SCRATCH_BYTES) as usize;
    let acc = cfg.memory.acc_bytes as usize;
    let kc = d.k_chunk.min(rows);
    let nc = d.n.min(cols);
    let nk = d.chunks;
    let nn = d.n.div_ceil(nc);
    let mut gs: Vec<usize> = (0..).map(|i| 1usize << i).take_while(|&g| g < nk).collect();
    gs.push(nk);
    gs.reverse();
    let slot = d.act_slot_bytes(nc);
    let bias_opts: &[usize] = if slot > 0 { &[2, 1] } else { &[0] };
    // k-outer N groups: all N chunks, and halvings down to 2.
    let mut n_groups = vec![nn];
    let mut ng = nn / 2;
    while ng >= 2 {
        n_groups.push(ng);
        ng /= 2;
    }
    let mut best: Option<Tiling> = None;
    for k_outer in [false, true] {
        let acc_opts: Vec<usize> = match (k_outer, d.int8_out) {
            (true, _) => n_groups.clone(),
            (false, true) => vec![1],
            (false, false) => vec![2, 1],
        };
        for (&acc_bufs, &bias_slots) in acc_opts
            .iter()
            .flat_map(|a| bias_opts.iter().map(move |b| (a, b)))
        {
            let bias_bytes = bias_slots * slot;
            if bias_bytes + nc * 4 * acc_bufs > acc {
                continue;
            }
            let mt_max = ((acc - bias_bytes) / (acc_bufs * nc * 4))
                .min(d.m)
                .min(u16::MAX as usize);
            let mut mts = Vec::new();
            let mut mt = mt_max;
            while mt > 0 {
                let mut bal = d.m.div_ceil(d.m.div_ceil(mt));
                if d.m_align > 1 && bal >= d.m_align {
                    bal = bal / d.m_align * d.m_align;
                }
                if !mts.contains(&bal) {
                    mts.push(bal);
                }
                mt /= 2;
            }
            for &mt in &mts {
                let tiles = d.m.div_ceil(mt);
                let residents: &[bool] = if k_outer { &[false] } else { &[true, false] };
                for &resident in residents {
                    if !strategy.allows(k_outer, resident) {
                        continue;
                    }
                    for &g in &gs {
                        let bufs: &[(usize, usize, usize)] = if resident {
                            &[(2, 3, 2), (2, 2, 2), (1, 2, 2), (1, 2, 1), (1, 1, 1)]
                        } else {
                            &[(3, 3, 2), (2, 2, 2), (2, 2, 1), (1, 1, 1)]
                        };
                        for &(xb, wb, ob) in bufs {
                            let xb = if resident && tiles == 1 { 1 } else { xb };
                            let ob = if d.int8_out { ob } else { 0 };
                            let mut t = Tiling {
                                m_tile: mt,
                                k_chunk: kc,
                                n_chunk: nc,
                                k_group: g,
                                k_outer,
                                n_group: if k_outer { acc_bufs } else { 1 },
                                x_resident: resident,
                                x_bufs: xb,
                                w_bufs: wb,
                                o_bufs: ob,
                                acc_bufs,
                                bias_slots,
                                spad_bytes: 0,
                                acc_bytes: acc_bufs * mt * nc * 4 + bias_bytes,
                                est_cycles: 0,
                            };
                            t.spad_bytes = xb * t.x_buf_bytes(d.k)
                                + wb * t.w_buf_bytes()
                                + ob * t.o_buf_bytes();
                            if t.spad_bytes > spad || t.acc_bytes > acc {
                                continue;
                            }
                            t.est_cycles = estimate(d, &t, cfg);
                            if best.is_none_or(|b| t.est_cycles < b.est_cycles) {
                                best = Some(t);
                            }
                        }
                    }
                }
            }
        }
    }
    best.ok_or_else(|| {
        let need_spad = kc + kc * nc + if d.int8_out { nc } else { 0 };
        let need_acc = nc * 4 + slot;
        let what = if strategy == Strategy::Auto {
            String::new()
        } else {
            format!(" with strategy {strategy:?}")
        };
        format!(
            "even the smallest tile{what} (1 row, one {kc}x{nc} weight tile) needs {need_spad} bytes of \
             scratchpad and {need_acc} bytes of accumulator; the configuration has {spad} \
             scratchpad bytes available ({} minus {SCRATCH_BYTES} reserved) and {acc}",
            cfg.memory.spad_bytes
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dims(m: usize, k: usize, n: usize) -> LayerDims {
        LayerDims::gemm(m, k, n, 16)
    }

    #[test]
    fn default_config_keeps_the_batch_in_one_tile() {
        let cfg = NpuConfig::default();
        let t = plan(&dims(64, 784, 256), &cfg, Strategy::Auto).unwrap();
        assert_eq!((t.m_tile, t.k_chunk, t.n_chunk), (64, 16, 16));
        // The input is read once (resident) or once per N group, and the
        // choice is the best estimate of every loop structure.
        assert!(t.x_resident || t.k_outer, "{t}");
        for s in [
            Strategy::NOuterResident,
            Strategy::NOuterStreamed,
            Strategy::KOuter,
        ] {
            let o = plan(&dims(64, 784, 256), &cfg, s).unwrap();
            assert!(t.est_cycles <= o.est_cycles, "{t} vs {s:?}: {o}");
        }
        assert!(t.w_bufs >= 2);
        assert!(t.spad_bytes <= cfg.memory.spad_bytes as usize);
    }

    #[test]
    fn small_memories_force_small_tiles() {
        let mut cfg = NpuConfig::default();
        cfg.array.rows = 4;
        cfg.array.cols = 8;
        cfg.memory.spad_bytes = 256;
        cfg.memory.acc_bytes = 256;
        let d = LayerDims::gemm(100, 300, 70, 4);
        let t = plan(&d, &cfg, Strategy::Auto).unwrap();
        assert!(t.spad_bytes + SCRATCH_BYTES as usize <= 256, "{t}");
        assert!(t.acc_bytes <= 256, "{t}");
        assert_eq!((t.k_chunk, t.n_chunk), (4, 8));
        assert!(t.m_tile < 100);
    }

    #[test]
    fn too_small_is_an_error() {
        let mut cfg = NpuConfig::default();
        cfg.memory.spad_bytes = 256;
        let e = plan(&dims(4, 64, 64), &cfg, Strategy::Auto).unwrap_err();
        assert!(e.contains("smallest tile"), "{e}");
        assert!(e.contains("288 bytes of scratchpad"), "{e}");
    }
}
