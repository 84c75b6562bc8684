//! Code generation: DRAM layout, per-layer steps, token scheduling, and the
//! [`Compiled`] result.
//!
//! **Device-memory layout.** The command ring sits at [`RING_BASE`], with room
//! for `cmdproc.max_ring` descriptors (the most `npukit_sim::run` can use). Then,
//! each at a 64-byte aligned address: the network input, every layer's weights
//! (pre-tiled), every layer's bias, the intermediate activations, and the output.
//! An activation that feeds a layer is stored *panel-major* for that layer: one
//! packed row-major `M x kc` panel per K chunk (the last one narrower), panel
//! after panel, so the input rows of a step are one contiguous LOAD (or one 2-D
//! LOAD when M is tiled). The network output is plain row-major (one panel).
//! See [`TensorPlacement::offset`]. Weights of a layer are stored as `kc x nc`
//! blocks, packed row-major, ordered by N chunk then K chunk: the `g` K chunks
//! of one step are one contiguous LOAD.
//!
//! **Program.** For each layer and M tile, for each N chunk and K group (a
//! step, see [`crate::tiling`]; N outside K or K outside N): LOAD the input
//! panels (when first needed), the bias, the weight group; MATMUL per K chunk
//! into the output tile (the first one overwrites unless the tile was
//! preloaded with the bias); after the last K group of a tile, ACT into int8
//! staging and STORE, or STORE the int32 tile. The loads of steps `i + 1` and `i + 2` are placed before the compute
//! of step `i` (software pipelining) unless they touch what a step in between
//! uses; the scheduler
//! (`sched.rs`) derives every token from the byte ranges each
//! descriptor touches. Consecutive layers place their local buffers at opposite
//! ends of the scratchpad and accumulator, so one layer's weights can be
//! prefetched while the previous layer finishes. The program ends with a FENCE
//! (IRQ, sequence number [`FENCE_SEQ`]).

use std::ops::Range;

use npukit_abi::desc::{Act, Dma, Matmul, Op};
use npukit_abi::program::Program;
use npukit_abi::DESC_BYTES;
use npukit_sim::{DeviceMemory, NpuConfig};

use crate::quant::{lower, LoweredLayer, LoweredOutput};
use crate::sched::{conflict, token_balance, Access, Pending, Sched, Space};
use crate::tensor::{DType, Tensor};
use crate::tiling::{plan, LayerDims, Strategy, Tiling, SCRATCH_BYTES};
use crate::workload::Workload;
use crate::CompileError;

/// Device address of the command ring.
pub const RING_BASE: u64 = 0x1000;
/// Alignment of every tensor in device memory.
pub const ALIGN: u64 = 64;
/// Sequence number published by the final FENCE.
pub const FENCE_SEQ: u32 = 1;
/// Knobs of [`compile_with`]; the defaults are what [`compile`] uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CompileOptions {
    /// Loop structures the tiler may choose from.
    pub strategy: Strategy,
    /// How many steps ahead of the compute the loads are placed in the ring
    /// (0: no software pipelining). Default 2.
    pub lookahead: usize,
}

impl Default for CompileOptions {
    fn default() -> Self {
        CompileOptions {
            strategy: Strategy::Auto,
            lookahead: 2,
        }
    }
}

/// Where a 2-D tensor lives in device memory.
///
/// Its columns are cut into panels of `panel_cols` columns (the last one
/// narrower); each panel is a packed row-major block `rows x width`, and the
/// panels follow each other. Element `(r, c)` of a tensor with `rows` rows is at
/// `addr + (p * panel_cols * rows + r * width(p) + c % panel_cols) * elem_bytes`
/// with `p = c / panel_cols` ([`TensorPlacement::offset`]). With
/// `panel_cols == shape[1]` (every graph output) this is plain row-major with
/// rows `row_stride` bytes apart.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TensorPlacement {
    pub name: String,
    pub addr: u64,
    pub shape: Vec<usize>,
    pub dtype: DType,
    /// Bytes between the rows of a full panel (`panel_cols * elem_bytes`).
    pub row_stride: u64,
    /// Columns per panel.
    pub panel_cols: usize,
}

impl TensorPlacement {
    fn layout(&self) -> TensorLayout {
        TensorLayout {
            addr: self.addr,
            rows: self.shape[0],
            cols: self.shape[1],
            eb: self.dtype.bytes(),
            panel: self.panel_cols,
        }
    }

    /// Device address of element `(r, c)`.
    pub fn offset(&self, r: usize, c: usize) -> u64 {
        self.layout().offset(r, c)
    }

    /// Bytes the tensor occupies.
    pub fn bytes(&self) -> u64 {
        (self.shape[0] * self.shape[1] * self.dtype.bytes()) as u64
    }
}

/// A panel-major tensor in device memory (see [`TensorPlacement`]).
#[derive(Debug, Clone, Copy)]
struct TensorLayout {
    addr: u64,
    rows: usize,
    cols: usize,
    eb: usize,
    panel: usize,
}

impl TensorLayout {
    fn width(&self, p: usize) -> usize {
        self.panel.min(self.cols - p * self.panel)
    }

    fn offset(&self, r: usize, c: usize) -> u64 {
        let p = c / self.panel;
        self.addr
            + ((p * self.panel * self.rows + r * self.width(p) + c % self.panel) * self.eb) as u64
    }

    fn bytes(&self) -> usize {
        self.rows * self.cols * self.eb
    }

    /// The tensor's bytes laid out from row-major values.
    fn pack(&self, bytes_of: impl Fn(usize, usize) -> Vec<u8>) -> Vec<u8> {
        let mut out = vec![0u8; self.bytes()];
        for r in 0..self.rows {
            for c in 0..self.cols {
                let o = (self.offset(r, c) - self.addr) as usize;
                out[o..o + self.eb].copy_from_slice(&bytes_of(r, c));
            }
        }
        out
    }
}

/// How one layer was compiled.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LayerSchedule {
    pub name: String,
    /// Ring indices from the layer's first to its last descriptor. Ranges of
    /// consecutive layers can overlap a little: the next layer's first weight
    /// loads are issued before this layer's last MATMULs.
    pub descs: Range<usize>,
    /// Useful multiply-accumulates, `M x K x N`.
    pub macs: u64,
    /// Bytes the layer's LOADs and STOREs move.
    pub dram_bytes: u64,
    pub tiling: Tiling,
}

/// A compiled workload: the program and everything needed to run it.
#[derive(Debug, Clone, PartialEq)]
pub struct Compiled {
    pub program: Program,
    /// Memory segments to write before running (input, weights, biases). The
    /// ring itself is written by whoever starts the program.
    pub image: Vec<(u64, Vec<u8>)>,
    pub ring_base: u64,
    /// Device memory the program needs (a multiple of 4096).
    pub mem_bytes: u64,
    pub inputs: Vec<TensorPlacement>,
    pub outputs: Vec<TensorPlacement>,
    pub layers: Vec<LayerSchedule>,
    /// Compute descriptors added only to carry a token from the store unit to
    /// the load unit.
    pub relays: usize,
}

impl Compiled {
    /// Useful multiply-accumulates of the whole program.
    pub fn macs(&self) -> u64 {
        self.layers.iter().map(|l| l.macs).sum()
    }
}

/// Writes the memory image (input, weights, biases) into device memory.
pub fn load_image<M: DeviceMemory + ?Sized>(c: &Compiled, mem: &mut M) -> Result<(), CompileError> {
    if mem.size() < c.mem_bytes {
        return Err(CompileError::MemoryTooSmall {
            needed: c.mem_bytes,
            size: mem.size(),
        });
    }
    for (addr, bytes) in &c.image {
        mem.write(*addr, bytes);
    }
    Ok(())
}

/// Reads output `name` back from device memory.
pub fn read_output(
    c: &Compiled,
    mem: &dyn DeviceMemory,
    name: &str,
) -> Result<Tensor, CompileError> {
    let p = c
        .outputs
        .iter()
        .chain(&c.inputs)
        .find(|p| p.name == name)
        .ok_or_else(|| CompileError::UnknownOutput(name.to_string()))?;
    if p.addr + p.bytes() > mem.size() {
        return Err(CompileError::MemoryTooSmall {
            needed: p.addr + p.bytes(),
            size: mem.size(),
        });
    }
    let (rows, cols) = (p.shape[0], p.shape[1]);
    let mut bytes = vec![0u8; p.bytes() as usize];
    mem.read(p.addr, &mut bytes);
    let at = |r: usize, c: usize| (p.offset(r, c) - p.addr) as usize;
    Ok(match p.dtype {
        DType::I8 => Tensor::i8(
            p.shape.clone(),
            (0..rows * cols)
                .map(|i| bytes[at(i / cols, i % cols)] as i8)
                .collect(),
        ),
        DType::I32 => Tensor::i32(
            p.shape.clone(),
            (0..rows * cols)
                .map(|i| {
                    let o = at(i / cols, i % cols);
                    i32::from_le_bytes([bytes[o], bytes[o + 1], bytes[o + 2], bytes[o + 3]])
                })
                .collect(),
        ),
    })
}

/// Writes `t` as tensor `name` (an input, or an output) into device memory, in
/// its placement's layout: to run the same program on other inputs.
pub fn write_tensor(
    c: &Compiled,
    mem: &mut dyn DeviceMemory,
    name: &str,
    t: &Tensor,
) -> Result<(), CompileError> {
    let p = c
        .inputs
        .iter()
        .chain(&c.outputs)
        .find(|p| p.name == name)
        .ok_or_else(|| CompileError::UnknownOutput(name.to_string()))?;
    if t.shape != p.shape || t.dtype() != p.dtype {
        return Err(CompileError::Invalid {
            context: format!("tensor {name}"),
            message: format!(
                "is {:?} {}, the program expects {:?} {}",
                t.shape,
                t.dtype(),
                p.shape,
                p.dtype
            ),
        });
    }
    if p.addr + p.bytes() > mem.size() {
        return Err(CompileError::MemoryTooSmall {
            needed: p.addr + p.bytes(),
            size: mem.size(),
        });
    }
    let cols = p.shape[1];
    let bytes = p.layout().pack(|r, col| match &t.data {
        crate::tensor::TensorData::I8(v) => vec![v[r * cols + col] as u8],
        crate::tensor::TensorData::I32(v) => v[r * cols + col].to_le_bytes().to_vec(),
    });
    mem.write(p.addr, &bytes);
    Ok(())
}

fn align_up(x: u64, a: u64) -> u64 {
    x.div_ceil(a) * a
}

/// A LOAD or STORE as one or more descriptors (contiguous transfers longer than
/// a row field holds are split), with their accesses.
fn dma(load: bool, d: Dma) -> Vec<Pending> {
    let local_space = if d.acc { Space::Acc } else { Space::Spad };
    let mk = |d: Dma| {
        let rows = d.rows as u64;
        let rb = d.row_bytes as u64;
        let local = Access {
            space: local_space,
            start: d.local as u64,
            end: d.local as u64 + (rows - 1) * d.local_stride as u64 + rb,
            write: load,
        };
        let dram = Access {
            space: Space::Dram,
            start: d.dram,
            end: d.dram + (rows - 1) * d.dram_stride as u64 + rb,
            write: !load,
        };
        Pending {
            op: if load { Op::Load(d) } else { Op::Store(d) },
            access: vec![local, dram],
        }
    };
    vec![mk(d)]
}

/// A contiguous transfer of `len` bytes.
fn dma_contiguous(load: bool, local: u32, dram: u64, len: usize, acc: bool) -> Vec<Pending> {
    const CHUNK: usize = 32768;
    let one = |local: u32, dram: u64, rows: usize, rb: usize| Dma {
        local,
        dram,
        rows: rows as u16,
        row_bytes: rb as u16,
        dram_stride: rb as u32,
        local_stride: rb as u32,
        acc,
    };
    if len <= u16::MAX as usize {
        return dma(load, one(local, dram, 1, len));
    }
    let rows = len / CHUNK;
    let rem = len % CHUNK;
    let mut v = dma(load, one(local, dram, rows, CHUNK));
    if rem > 0 {
        let off = rows * CHUNK;
        v.extend(dma(
            load,
            one(local + off as u32, dram + off as u64, 1, rem),
        ));
    }
    v
}

/// A 2-D transfer; merged into a contiguous one when rows are back to back on
/// both sides.
#[allow(clippy::too_many_arguments)]
fn dma_2d(
    load: bool,
    local: u32,
    dram: u64,
    rows: usize,
    row_bytes: usize,
    dram_stride: u64,
    local_stride: usize,
    acc: bool,
) -> Vec<Pending> {
    if rows == 1 || (dram_stride == row_bytes as u64 && local_stride == row_bytes) {
        return dma_contiguous(load, local, dram, rows * row_bytes, acc);
    }
    dma(
        load,
        Dma {
            local,
            dram,
            rows: rows as u16,
            row_bytes: row_bytes as u16,
            dram_stride: dram_stride as u32,
            local_stride: local_stride as u32,
            acc,
        },
    )
}

fn matmul(m: Matmul) -> Pending {
    let (mm, k, n) = (m.m as u64, m.k as u64, m.n as u64);
    Pending {
        op: Op::Matmul(m),
        access: vec![
            Access::read(Space::Spad, m.a as u64, mm * k),
            Access::read(Space::Spad, m.w as u64, k * n),
            Access::write(Space::Acc, m.out as u64, mm * n * 4),
        ],
    }
}

fn act(a: Act) -> Pending {
    let n = a.rows as u64 * a.cols as u64;
    let mut access = vec![
        Access::read(Space::Acc, a.src as u64, n * 4),
        Access::write(Space::Spad, a.dst as u64, n),
    ];
    if let Some(b) = a.bias {
        access.push(Access::read(Space::Acc, b as u64, a.cols as u64 * 4));
    }
    Pending {
        op: Op::Act(a),
        access,
    }
}

/// One weight group of one output tile and what goes with it.
#[derive(Debug, Default)]
struct Step {
    layer: usize,
    loads: Vec<Pending>,
    computes: Vec<Pending>,
    stores: Vec<Pending>,
}

/// Device-memory placement of one layer's operands.
struct LayerMem {
    x: TensorLayout,
    y: TensorLayout,
    w_addr: u64,
    b_addr: Option<u64>,
    spad_base: u32,
    acc_base: u32,
}

/// Contiguous pieces `(local, device address, bytes)` as few descriptors as
/// possible: adjacent pieces merge into one run, equal pieces at equal
/// distances into one 2-D transfer.
fn coalesce(load: bool, acc: bool, pieces: &[(usize, u64, usize)]) -> Vec<Pending> {
    #[derive(Clone, Copy)]
    struct Run {
        local: usize,
        dram: u64,
        rb: usize,
        rows: usize,
        ds: u64,
        ls: usize,
    }
    let mut runs: Vec<Run> = Vec::new();
    for &(local, dram, len) in pieces {
        if let Some(r) = runs.last_mut() {
            if r.rows == 1 && local == r.local + r.rb && dram == r.dram + r.rb as u64 {
                r.rb += len;
                continue;
            }
            let fits = len <= u16::MAX as usize && r.rows < u16::MAX as usize;
            if fits && len == r.rb && local > r.local && dram > r.dram {
                let (ds, ls) = if r.rows == 1 {
                    (dram - r.dram, local - r.local)
                } else {
                    (r.ds, r.ls)
                };
                let at_stride = dram == r.dram + r.rows as u64 * ds
                    && local == r.local + r.rows * ls
                    && ls >= len
                    && ds <= u32::MAX as u64;
                if at_stride {
                    r.ds = ds;
                    r.ls = ls;
                    r.rows += 1;
                    continue;
                }
            }
        }
        runs.push(Run {
            local,
            dram,
            rb: len,
            rows: 1,
            ds: 0,
            ls: 0,
        });
    }
    let mut out = Vec::new();
    for r in runs {
        if r.rows == 1 {
            out.extend(dma_contiguous(load, r.local as u32, r.dram, r.rb, acc));
        } else {
            out.extend(dma_2d(
                load,
                r.local as u32,
                r.dram,
                r.rows,
                r.rb,
                r.ds,
                r.ls,
                acc,
            ));
        }
    }
    out
}

fn layer_steps(li: usize, l: &LoweredLayer, t: &Tiling, lm: &LayerMem, steps: &mut Vec<Step>) {
    let (k, n) = (l.k, l.n);
    let (kc, nc, mt, g) = (t.k_chunk, t.n_chunk, t.m_tile, t.k_group);
    debug_assert_eq!(lm.x.panel, kc);
    let nk = k.div_ceil(kc);
    let nn = n.div_ceil(nc);
    let nq = nk.div_ceil(g);
    let rq = match l.output {
        LoweredOutput::Int8(r) => Some(r),
        LoweredOutput::Int32 => None,
    };
    let eb = lm.y.eb;
    let act_bias = rq.is_some() && l.bias.is_some();
    let preload = rq.is_none() && l.bias.is_some();
    let xbuf = t.x_buf_bytes(k);
    let x_off = lm.spad_base as usize;
    let w_off = x_off + t.x_bufs * xbuf;
    let o_off = w_off + t.w_bufs * t.w_buf_bytes();
    let acc_off = lm.acc_base as usize;
    let bias_off = acc_off + t.acc_bufs * t.acc_tile_bytes();
    let kcj = |c: usize| kc.min(k - c * kc);
    // Rotating buffer counters: weight groups, input groups, finished output
    // tiles (ACT staging, bias slots), output tiles started (accumulator).
    let (mut wstep, mut xgrp, mut done, mut started) = (0usize, 0usize, 0usize, 0usize);
    let mut tile_acc = vec![0u32; nn];
    for tm in 0..l.m.div_ceil(mt) {
        let m0 = tm * mt;
        let m = mt.min(l.m - m0);
        let order: Vec<(usize, usize)> = if t.k_outer {
            (0..nq)
                .flat_map(|q| (0..nn).map(move |jn| (jn, q)))
                .collect()
        } else {
            (0..nn)
                .flat_map(|jn| (0..nq).map(move |q| (jn, q)))
                .collect()
        };
        let mut xbase = 0usize;
        for (jn, q) in order {
            let n0 = jn * nc;
            let ncj = nc.min(n - n0);
            let c0 = q * g;
            let c1 = nk.min(c0 + g);
            let mut st = Step {
                layer: li,
                ..Default::default()
            };
            if q == 0 {
                tile_acc[jn] = (acc_off + (started % t.acc_bufs) * t.acc_tile_bytes()) as u32;
                started += 1;
            }
            let acc_tile = tile_acc[jn];
            // Input panels c0..c1 of rows m0..: when first needed.
            let load_x = if t.x_resident {
                jn == 0
            } else {
                !t.k_outer || jn == 0
            };
            if load_x {
                xbase = if t.x_resident {
                    x_off + (tm % t.x_bufs) * xbuf
                } else {
                    xgrp += 1;
                    x_off + ((xgrp - 1) % t.x_bufs) * xbuf
                };
            }
            let panel = |c: usize| {
                if t.x_resident {
                    xbase + c * mt * kc
                } else {
                    xbase + (c - c0) * mt * kc
                }
            };
            if load_x {
                let pieces: Vec<_> = (c0..c1)
                    .map(|c| (panel(c), lm.x.offset(m0, c * kc), m * kcj(c)))
                    .collect();
                st.loads.extend(coalesce(true, false, &pieces));
            }
            let last = q == nq - 1;
            let bslot = bias_off + (done % t.bias_slots.max(1)) * nc * 4;
            let obuf = o_off + (done % t.o_bufs.max(1)) * t.o_buf_bytes();
            if let Some(b) = lm.b_addr {
                let src = b + n0 as u64 * 4;
                if act_bias && last {
                    st.loads
                        .extend(dma_contiguous(true, bslot as u32, src, ncj * 4, true));
                }
                if preload && q == 0 {
                    // The bias row repeated m times (device stride 0).
                    st.loads.extend(dma(
                        true,
                        Dma {
                            local: acc_tile,
                            dram: src,
                            rows: m as u16,
                            row_bytes: (ncj * 4) as u16,
                            dram_stride: 0,
                            local_stride: (ncj * 4) as u32,
                            acc: true,
                        },
                    ));
                }
            }
            let wbuf = w_off + (wstep % t.w_bufs) * t.w_buf_bytes();
            wstep += 1;
            let wbytes: usize = (c0..c1).map(|c| kcj(c) * ncj).sum();
            let wsrc = lm.w_addr + (jn * k * nc + c0 * kc * ncj) as u64;
            st.loads
                .extend(dma_contiguous(true, wbuf as u32, wsrc, wbytes, false));
            for c in c0..c1 {
                st.computes.push(matmul(Matmul {
                    a: panel(c) as u32,
                    w: (wbuf + (c - c0) * kc * ncj) as u32,
                    out: acc_tile,
                    m: m as u16,
                    k: kcj(c) as u16,
                    n: ncj as u16,
                    accumulate: c > 0 || preload,
                }));
            }
            if last {
                done += 1;
                let src = match rq {
                    Some(r) => {
                        st.computes.push(act(Act {
                            src: acc_tile,
                            dst: obuf as u32,
                            bias: act_bias.then_some(bslot as u32),
                            rows: m as u16,
                            cols: ncj as u16,
                            multiplier: r.multiplier,
                            shift: r.shift,
                            zero_point: r.zero_point,
                            relu: r.relu,
                            qtab: None,
                        }));
                        obuf
                    }
                    None => acc_tile as usize,
                };
                // The m x ncj tile into the output's panels.
                let y = lm.y;
                let mut c = n0;
                while c < n0 + ncj {
                    let p = c / y.panel;
                    let end = (n0 + ncj).min((p + 1) * y.panel);
                    st.stores.extend(dma_2d(
                        false,
                        (src + (c - n0) * eb) as u32,
                        y.offset(m0, c),
                        m,
                        (end - c) * eb,
                        (y.width(p) * eb) as u64,
                        ncj * eb,
                        rq.is_none(),
                    ));
                    c = end;
                }
            }
            steps.push(st);
        }
    }
}

/// Weights as `kc x nc` blocks, N chunk major, each block row-major.
fn pretile(l: &LoweredLayer, kc: usize, nc: usize) -> Vec<u8> {
    let (k, n) = (l.k, l.n);
    let mut out = Vec::with_capacity(k * n);
    for n0 in (0..n).step_by(nc) {
        let ncj = nc.min(n - n0);
        for k0 in (0..k).step_by(kc) {
            let kcj = kc.min(k - k0);
            for kk in k0..k0 + kcj {
                out.extend(
                    l.weights[kk * n + n0..kk * n + n0 + ncj]
                        .iter()
                        .map(|&w| w as u8),
                );
            }
        }
    }
    out
}

fn layer_dims(l: &LoweredLayer) -> LayerDims {
    let int8_out = matches!(l.output, LoweredOutput::Int8(_));
    LayerDims {
        m: l.m,
        k: l.k,
        n: l.n,
        int8_out,
        act_bias: int8_out && l.bias.is_some(),
        preload: !int8_out && l.bias.is_some(),
    }
}

fn config_summary(cfg: &NpuConfig) -> String {
    format!(
        "{}x{} array, {} B scratchpad, {} B accumulator",
        cfg.array.rows, cfg.array.cols, cfg.memory.spad_bytes, cfg.memory.acc_bytes
    )
}

/// Compiles a workload for an NPU configuration.
pub fn compile(w: &Workload, cfg: &NpuConfig) -> Result<Compiled, CompileError> {
    compile_with(w, cfg, &CompileOptions::default())
}

/// [`compile`] with explicit options.
pub fn compile_with(
    w: &Workload,
    cfg: &NpuConfig,
    opts: &CompileOptions,
) -> Result<Compiled, CompileError> {
    cfg.validate()
        .map_err(|e| CompileError::Config(e.to_string()))?;
    let graph = w.graph();
    graph.check_shapes()?;
    let layers = lower(graph)?;
    let input = graph.input()?;
    let outputs = graph.outputs()?;
    let tilings = layers
        .iter()
        .map(|l| {
            plan(&layer_dims(l), cfg, opts.strategy).map_err(|message| CompileError::Tiling {
                layer: l.name.clone(),
                config: config_summary(cfg),
                message,
            })
        })
        .collect::<Result<Vec<_>, _>>()?;

    // Device-memory layout.
    let ring_bytes = cfg.cmdproc.max_ring as u64 * DESC_BYTES as u64;
    let mut cursor = RING_BASE + ring_bytes;
    let mut alloc = |bytes: u64| {
        let a = align_up(cursor, ALIGN);
        cursor = a + bytes;
        a
    };
    let batch = graph.batch;
    let mut image = Vec::new();
    // Each activation is laid out for its consumer: panels of its K chunk.
    let x_layout = |addr: u64, cols: usize, eb: usize, panel: usize| TensorLayout {
        addr,
        rows: batch,
        cols,
        eb,
        panel,
    };
    let mut x0 = x_layout(0, input.features, 1, tilings[0].k_chunk);
    x0.addr = alloc(x0.bytes() as u64);
    image.push((
        x0.addr,
        x0.pack(|r, c| vec![input.data[r * input.features + c] as u8]),
    ));
    let mut w_addrs = Vec::new();
    for (l, t) in layers.iter().zip(&tilings) {
        let bytes = pretile(l, t.k_chunk, t.n_chunk);
        let a = alloc(bytes.len() as u64);
        image.push((a, bytes));
        w_addrs.push(a);
    }
    let mut b_addrs = Vec::new();
    for l in &layers {
        b_addrs.push(l.bias.as_ref().map(|b| {
            let bytes: Vec<u8> = b.iter().flat_map(|v| v.to_le_bytes()).collect();
            let a = alloc(bytes.len() as u64);
            image.push((a, bytes));
            a
        }));
    }
    let mut acts = vec![x0];
    for (i, l) in layers.iter().enumerate() {
        let eb = match l.output {
            LoweredOutput::Int8(_) => 1,
            LoweredOutput::Int32 => 4,
        };
        let panel = tilings.get(i + 1).map_or(l.n, |t| t.k_chunk);
        let mut y = x_layout(0, l.n, eb, panel);
        y.addr = alloc(y.bytes() as u64);
        acts.push(y);
    }
    let mem_bytes = align_up(cursor, 4096);
    if mem_bytes > cfg.dram.size_bytes {
        return Err(CompileError::MemoryTooSmall {
            needed: mem_bytes,
            size: cfg.dram.size_bytes,
        });
    }

    // Steps.
    let mut steps = Vec::new();
    for (li, (l, t)) in layers.iter().zip(&tilings).enumerate() {
        let (spad_base, acc_base) = if li % 2 == 0 {
            (SCRATCH_BYTES, 0)
        } else {
            (
                cfg.memory.spad_bytes - t.spad_bytes as u32,
                cfg.memory.acc_bytes - t.acc_bytes as u32,
            )
        };
        let lm = LayerMem {
            x: acts[li],
            y: acts[li + 1],
            w_addr: w_addrs[li],
            b_addr: b_addrs[li],
            spad_base,
            acc_base,
        };
        layer_steps(li, l, t, &lm, &mut steps);
    }

    // Every operation becomes at least one descriptor: give up early on a
    // program the ring cannot hold.
    let ops: usize = steps
        .iter()
        .map(|st| st.loads.len() + st.computes.len() + st.stores.len())
        .sum();
    if (ops as u64 + 2).next_power_of_two() > cfg.cmdproc.max_ring as u64 {
        return Err(CompileError::RingTooSmall {
            descriptors: ops + 1,
            max_ring: cfg.cmdproc.max_ring,
        });
    }

    // Scheduling, software-pipelined: before the compute of step s, emit the
    // loads of the steps up to s + lookahead, unless one touches what an
    // earlier step not yet emitted uses (buffers still in use, or device
    // memory a previous layer's stores have not written yet).
    let mut s = Sched::new(0);
    let mut pending: Vec<(usize, &Pending)> = Vec::new();
    let mut queued = 0;
    for (i, st) in steps.iter().enumerate() {
        while queued < steps.len() && queued <= i + opts.lookahead {
            pending.extend(steps[queued].loads.iter().map(|p| (queued, p)));
            queued += 1;
        }
        let mut blocked: Vec<&Pending> = Vec::new();
        let mut keep = Vec::new();
        for (j, p) in pending {
            let ok = j == i
                || !(steps[i..j]
                    .iter()
                    .flat_map(|o| o.computes.iter().chain(&o.stores))
                    .any(|o| conflict(&o.access, &p.access))
                    || blocked.iter().any(|o| conflict(&o.access, &p.access)));
            if ok {
                s.push(p, steps[j].layer);
            } else {
                blocked.push(p);
                keep.push((j, p));
            }
        }
        pending = keep;
        for p in st.computes.iter().chain(&st.stores) {
            s.push(p, st.layer);
        }
    }
    s.fence(FENCE_SEQ);

    let program = Program::from(s.descs.clone());
    let len = program.len();
    if (len as u64 + 1).next_power_of_two() > cfg.cmdproc.max_ring as u64 {
        return Err(CompileError::RingTooSmall {
            descriptors: len,
            max_ring: cfg.cmdproc.max_ring,
        });
    }
    program
        .validate(&cfg.limits())
        .map_err(|(i, e)| CompileError::Internal(format!("descriptor {i}: {e}")))?;
    let bal = token_balance(program.descs());
    if bal != [0; 4] {
        return Err(CompileError::Internal(format!("unbalanced tokens {bal:?}")));
    }

    let mut sched = Vec::new();
    for (li, (l, t)) in layers.iter().zip(&tilings).enumerate() {
        let idx: Vec<usize> = (0..len).filter(|&i| s.layer_of[i] == Some(li)).collect();
        let descs = match (idx.first(), idx.last()) {
            (Some(&a), Some(&b)) => a..b + 1,
            _ => 0..0,
        };
        let dram_bytes = idx
            .iter()
            .map(|&i| match program.descs()[i].op {
                Op::Load(d) | Op::Store(d) => d.rows as u64 * d.row_bytes as u64,
                _ => 0,
            })
            .sum();
        sched.push(LayerSchedule {
            name: l.name.clone(),
            descs,
            macs: l.macs(),
            dram_bytes,
            tiling: *t,
        });
    }
    let last = layers.len() - 1;
    let out_dtype = match layers[last].output {
        LoweredOutput::Int8(_) => DType::I8,
        LoweredOutput::Int32 => DType::I32,
    };
    Ok(Compiled {
        program,
        image,
        ring_base: RING_BASE,
        mem_bytes,
        inputs: vec![TensorPlacement {
            name: input.name.clone(),
            addr: x0.addr,
            shape: vec![batch, input.features],
            dtype: DType::I8,
            row_stride: x0.panel as u64,
            panel_cols: x0.panel,
        }],
        outputs: vec![TensorPlacement {
            name: outputs[0].name.clone(),
            addr: acts[last + 1].addr,
            shape: vec![batch, layers[last].n],
            dtype: out_dtype,
            row_stride: (layers[last].n * out_dtype.bytes()) as u64,
            panel_cols: layers[last].n,
        }],
        layers: sched,
        relays: s.relays,
    })
}
