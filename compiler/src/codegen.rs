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

use npukit_abi::desc::{Act, Add, Dma, Matmul, Max, Op, QuantEntry, QTAB_ENTRY_BYTES};
use npukit_abi::program::Program;
use npukit_abi::DESC_BYTES;
use npukit_sim::{DeviceMemory, NpuConfig};

use crate::graph::PoolKind;
use crate::lower::{
    lower_graph, panel_width, AddK, Chunk, CopyK, Gemm, Geo, Kernel, PoolK, TensorWeights,
};
use crate::quant::LoweredOutput;
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
    /// Stored space-to-depth (the graph input of a stride-2 first
    /// convolution): the panels hold the `[n][h/2][w/2][4c]` tensor whose
    /// channel `(ry * 2 + rx) * c + ch` at `(y, x)` is element `(2y + ry,
    /// 2x + rx, ch)` of `shape` ([`TensorPlacement::offset`] maps).
    pub space_to_depth: bool,
    /// Stored as its consumer's windows (the graph input of a convolution of
    /// few channels, see [`Im2col`]): row `(img, oy, ox)`, channel
    /// `(ky * kw + kx) * c + ch` is element `(oy * sy + ky * dy - pt,
    /// ox * sx + kx * dx - pl, ch)` of `shape`, or the pad value outside it.
    pub im2col: Option<Im2col>,
}

/// The window geometry of an input stored im2col ([`TensorPlacement::im2col`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Im2col {
    /// Output `[oh, ow]`.
    pub out: [usize; 2],
    /// `[kh, kw]`.
    pub kernel: [usize; 2],
    /// `[sy, sx]`.
    pub stride: [usize; 2],
    /// `[dy, dx]`.
    pub dilation: [usize; 2],
    /// Top and left padding.
    pub pads: [usize; 2],
    /// The value of the window positions outside the image (the input zero point).
    pub pad: i8,
}

impl Im2col {
    /// Output position and kernel tap of the first window that holds input
    /// coordinate `v` along dimension `d` (0: rows, 1: columns).
    pub fn covering(&self, d: usize, v: usize) -> Option<(usize, usize)> {
        (0..self.kernel[d]).find_map(|k| {
            let o = (v + self.pads[d]).checked_sub(k * self.dilation[d])?;
            (o % self.stride[d] == 0 && o / self.stride[d] < self.out[d])
                .then_some((o / self.stride[d], k))
        })
    }

    /// The input coordinate along `d` of output `o`, tap `k` (`None`: padding).
    fn source(&self, d: usize, o: usize, k: usize, size: usize) -> Option<usize> {
        (o * self.stride[d] + k * self.dilation[d])
            .checked_sub(self.pads[d])
            .filter(|&v| v < size)
    }
}

impl TensorPlacement {
    /// Rows of the `[rows, channels]` view: every dimension but the last.
    pub fn rows(&self) -> usize {
        self.shape[..self.shape.len() - 1].iter().product()
    }

    /// Channels (the last dimension).
    pub fn cols(&self) -> usize {
        self.shape[self.shape.len() - 1]
    }

    fn layout(&self) -> TensorLayout {
        let f = if self.space_to_depth { 4 } else { 1 };
        let (rows, cols) = match self.im2col {
            Some(w) => (
                self.shape[0] * w.out[0] * w.out[1],
                w.kernel[0] * w.kernel[1] * self.cols(),
            ),
            None => (self.rows() / f, self.cols() * f),
        };
        TensorLayout {
            addr: self.addr,
            rows,
            cols,
            eb: self.dtype.bytes(),
            panel: self.panel_cols,
            transposed: false,
            phases: None,
        }
    }

    /// Device address of element `(r, c)` (`r`: the row of the `[rows, channels]` view).
    pub fn offset(&self, r: usize, c: usize) -> u64 {
        if self.space_to_depth {
            let [_, h, w, ch] = self.shape[..] else {
                unreachable!("space-to-depth tensors are images")
            };
            let (img, y, x) = (r / (h * w), r / w % h, r % w);
            let r2 = (img * (h / 2) + y / 2) * (w / 2) + x / 2;
            return self.layout().offset(r2, ((y % 2) * 2 + x % 2) * ch + c);
        }
        if let Some(w) = self.im2col {
            // The first window that holds the element (every element is in
            // one: `lower` stores an input im2col only then).
            let [_, h, wd, ch] = self.shape[..] else {
                unreachable!("im2col tensors are images")
            };
            let (img, y, x) = (r / (h * wd), r / wd % h, r % wd);
            let (oy, ky) = w.covering(0, y).expect("every row is in a window");
            let (ox, kx) = w.covering(1, x).expect("every column is in a window");
            let r2 = (img * w.out[0] + oy) * w.out[1] + ox;
            return self.layout().offset(r2, (ky * w.kernel[1] + kx) * ch + c);
        }
        self.layout().offset(r, c)
    }

    /// The tensor's bytes laid out from row-major values (`bytes_of(r, c)`).
    fn pack(&self, bytes_of: impl Fn(usize, usize) -> Vec<u8>) -> Vec<u8> {
        let eb = self.dtype.bytes();
        let mut out = vec![0u8; self.bytes() as usize];
        if let Some(w) = self.im2col {
            let [_, h, wd, ch] = self.shape[..] else {
                unreachable!("im2col tensors are images")
            };
            let l = self.layout();
            let [kh, kw] = w.kernel;
            for r2 in 0..l.rows {
                let (img, oy, ox) = (
                    r2 / (w.out[0] * w.out[1]),
                    r2 / w.out[1] % w.out[0],
                    r2 % w.out[1],
                );
                for c2 in 0..l.cols {
                    let (ky, kx, c) = (c2 / ch / kw, c2 / ch % kw, c2 % ch);
                    debug_assert!(ky < kh);
                    let o = (l.offset(r2, c2) - self.addr) as usize;
                    match (w.source(0, oy, ky, h), w.source(1, ox, kx, wd)) {
                        (Some(y), Some(x)) => {
                            out[o..o + eb].copy_from_slice(&bytes_of((img * h + y) * wd + x, c))
                        }
                        _ => out[o..o + eb].fill(w.pad as u8),
                    }
                }
            }
            return out;
        }
        for r in 0..self.rows() {
            for c in 0..self.cols() {
                let o = (self.offset(r, c) - self.addr) as usize;
                out[o..o + eb].copy_from_slice(&bytes_of(r, c));
            }
        }
        out
    }

    /// Bytes the tensor occupies.
    pub fn bytes(&self) -> u64 {
        self.layout().bytes() as u64
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
    /// Stored transposed, column after column (`[cols][rows]` row-major): the
    /// second operand of a matmul `A B^T` (see `lower::TensorDef::transposed`).
    transposed: bool,
    /// Stored phase-split (`lower::TensorDef::phase_split`): the image's
    /// height and width.
    phases: Option<(usize, usize)>,
}

impl TensorLayout {
    fn width(&self, p: usize) -> usize {
        self.panel.min(self.cols - p * self.panel)
    }

    /// Phase `q` of a phase-split tensor: a plain `n x h/2 x w/2` tensor.
    fn phase(&self, q: usize) -> TensorLayout {
        let rows = self.rows / 4;
        TensorLayout {
            addr: self.addr + (q * rows * self.cols * self.eb) as u64,
            rows,
            phases: None,
            ..*self
        }
    }

    /// Of the pixel in row `r` of a phase-split tensor: its phase and its row there.
    fn phase_of(&self, r: usize) -> (usize, usize) {
        let (h, w) = self.phases.expect("a phase-split tensor");
        let (img, y, x) = (r / (h * w), r / w % h, r % w);
        (
            (y % 2) * 2 + x % 2,
            (img * (h / 2) + y / 2) * (w / 2) + x / 2,
        )
    }

    fn offset(&self, r: usize, c: usize) -> u64 {
        if self.phases.is_some() {
            let (q, r2) = self.phase_of(r);
            return self.phase(q).offset(r2, c);
        }
        if self.transposed {
            return self.addr + ((c * self.rows + r) * self.eb) as u64;
        }
        let p = c / self.panel;
        self.addr
            + ((p * self.panel * self.rows + r * self.width(p) + c % self.panel) * self.eb) as u64
    }

    fn bytes(&self) -> usize {
        self.rows * self.cols * self.eb
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
    /// The operation (`conv2d`, `dense`, `maxpool`, ...).
    pub op: &'static str,
    /// Multiply-accumulates the MAC array performs, `M x K x N` of every
    /// MATMUL (for grouped convolutions this includes the zero weights outside
    /// the groups of a super-group).
    pub macs: u64,
    /// Bytes the layer's LOADs and STOREs move.
    pub dram_bytes: u64,
    /// The tiling of the layer's (first) GEMM; `None` for layers without MATMULs.
    pub tiling: Option<Tiling>,
    /// Its GEMM input is gathered with one LOAD per output row and K chunk
    /// (strided windows, or windows of several pixels), rather than one 2-D
    /// LOAD per K chunk and tile.
    pub row_gathers: bool,
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
    /// The layer (index into `layers`) of every descriptor; `None` for the final FENCE.
    pub desc_layer: Vec<Option<u32>>,
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
    let (rows, cols) = (p.rows(), p.cols());
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
    let cols = p.cols();
    let bytes = p.pack(|r, col| match &t.data {
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
    if let Some(q) = a.qtab {
        access.push(Access::read(
            Space::Acc,
            q as u64,
            a.cols as u64 * QTAB_ENTRY_BYTES as u64,
        ));
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

/// A 2-D transfer of any size: rows and row bytes beyond the descriptor's
/// 16-bit fields are split.
#[allow(clippy::too_many_arguments)]
fn dma2(
    load: bool,
    acc: bool,
    local: usize,
    dram: u64,
    rows: usize,
    rb: usize,
    ds: u64,
    ls: usize,
    out: &mut Vec<Pending>,
) {
    if rows == 0 || rb == 0 {
        return;
    }
    if rows == 1 || (ds == rb as u64 && ls == rb) {
        out.extend(dma_contiguous(load, local as u32, dram, rows * rb, acc));
        return;
    }
    pieces(rows, rb, 32768, |r, c, n, w| {
        out.extend(dma_2d(
            load,
            (local + r * ls + c) as u32,
            dram + r as u64 * ds + c as u64,
            n,
            w,
            ds,
            ls,
            acc,
        ))
    });
}

/// Cuts `rows x rb` bytes into pieces of at most `u16::MAX` rows and `maxb`
/// bytes a row: `f(first row, first byte, rows, bytes)` for each.
fn pieces(rows: usize, rb: usize, maxb: usize, mut f: impl FnMut(usize, usize, usize, usize)) {
    let mut c = 0;
    while c < rb {
        let w = maxb.min(rb - c);
        let mut r = 0;
        while r < rows {
            let n = (u16::MAX as usize).min(rows - r);
            f(r, c, n, w);
            r += n;
        }
        c += w;
    }
}

/// Bytes of each constant fill region in device memory.
const FILL_BYTES: usize = 4096;

/// Constant regions of one byte value each (padding), allocated on first use.
#[derive(Debug, Default)]
struct Fills {
    addrs: Vec<(i8, u64)>,
}

impl Fills {
    fn addr(&self, v: i8) -> u64 {
        self.addrs
            .iter()
            .find(|a| a.0 == v)
            .map(|a| a.1)
            .expect("fill regions are allocated before code generation")
    }
}

/// `rows` rows of `rb` bytes, `ls` apart in the scratchpad, set to the fill value at `fill`.
fn fill2(local: usize, rows: usize, rb: usize, ls: usize, fill: u64, out: &mut Vec<Pending>) {
    if rows == 0 || rb == 0 {
        return;
    }
    pieces(rows, rb, FILL_BYTES, |r, c, n, w| {
        out.extend(dma(
            true,
            Dma {
                local: (local + r * ls + c) as u32,
                dram: fill,
                rows: n as u16,
                row_bytes: w as u16,
                dram_stride: 0,
                local_stride: if n > 1 { ls as u32 } else { w as u32 },
                acc: false,
            },
        ))
    });
}

/// LOADs that gather the packed `m x chunk.w` panel of output pixels
/// `m0 .. m0 + m` for one K chunk into the scratchpad at `local`: strided
/// 2-D LOADs of the pixels whose window lies inside the input, fills from the
/// constant region `fill` for padding.
#[allow(clippy::too_many_arguments)]
fn gather(
    x: &TensorLayout,
    g: &Geo,
    ch: &Chunk,
    cg: usize,
    m0: usize,
    m: usize,
    local: usize,
    fill: u64,
    out: &mut Vec<Pending>,
) {
    if let Some((h, wd)) = x.phases {
        // Kernel position (ky, kx) of a stride-2 window reads input row
        // 2 oy + ky - pt = 2 (oy + dy) + py: row oy + dy of phase row py
        // (and the same for columns), a stride-1 window on that phase.
        debug_assert!((g.sy, g.sx, g.dy, g.dx, g.h, g.w) == (2, 2, 1, 1, h, wd));
        let split = |k: usize, p: usize| {
            let a = k as i64 - p as i64;
            let off = a.div_euclid(2);
            let pad = (-off).max(0);
            (a.rem_euclid(2) as usize, pad as usize, (off + pad) as usize)
        };
        let (py, pt, ky) = split(ch.ky, g.pt);
        let (px, pl, kx) = split(ch.kx, g.pl);
        let g2 = Geo {
            h: h / 2,
            w: wd / 2,
            kh: ky + 1,
            kw: kx + 1,
            sy: 1,
            sx: 1,
            pt,
            pl,
            ..*g
        };
        let ch2 = Chunk { ky, kx, ..*ch };
        let plane = x.phase(py * 2 + px);
        return gather(&plane, &g2, &ch2, cg, m0, m, local, fill, out);
    }
    let w = ch.w;
    let pw = x.width(ch.c0 / x.panel);
    if g.pointwise() {
        dma2(
            true,
            false,
            local,
            x.offset(m0, ch.c0),
            m,
            w,
            pw as u64,
            w,
            out,
        );
        return;
    }
    let per_img = g.oh * g.ow;
    let ls = g.ow * w;
    let end = m0 + m;
    let span = if ch.nkx > 1 { ch.nkx } else { 1 } as i64;
    let mut p = m0;
    while p < end {
        let img = p / per_img;
        let r = p % per_img;
        let (oy, ox) = (r / g.ow, r % g.ow);
        let (ya, yb, xa, xb) = if ox == 0 && end - p >= g.ow {
            let nrows = ((end - p) / g.ow).min(g.oh - oy);
            (oy, oy + nrows, 0, g.ow)
        } else {
            let len = (g.ow - ox).min(end - p);
            (oy, oy + 1, ox, ox + len)
        };
        p = (img * g.oh + yb - 1) * g.ow + xb;
        let at = |oy: usize, ox: usize| local + ((img * g.oh + oy) * g.ow + ox - m0) * w;
        let iy = |oy: usize| (oy * g.sy + ch.ky * g.dy) as i64 - g.pt as i64;
        let valid = |oy: usize| (0..g.h as i64).contains(&iy(oy));
        let va = (ya..yb).find(|&o| valid(o)).unwrap_or(yb);
        let vb = (va..yb).find(|&o| !valid(o)).unwrap_or(yb);
        fill2(at(ya, xa), va - ya, (xb - xa) * w, ls, fill, out);
        fill2(at(vb, xa), yb - vb, (xb - xa) * w, ls, fill, out);
        if va == vb {
            continue;
        }
        let nr = vb - va;
        let ix = |ox: usize| (ox * g.sx + ch.kx * g.dx) as i64 - g.pl as i64;
        let inside = |ox: usize| ix(ox) >= 0 && ix(ox) + span <= g.w as i64;
        let lo = (xa..xb).find(|&o| inside(o)).unwrap_or(xb);
        let hi = (lo..xb).find(|&o| !inside(o)).unwrap_or(xb);
        let pix = |oy: usize, ixv: i64| {
            x.offset((img * g.h + iy(oy) as usize) * g.w + ixv as usize, ch.c0)
        };
        let row_stride = (g.sy * g.w * pw) as u64;
        if lo < hi {
            let n = hi - lo;
            if g.sx * pw == w {
                dma2(
                    true,
                    false,
                    at(va, lo),
                    pix(va, ix(lo)),
                    nr,
                    n * w,
                    row_stride,
                    ls,
                    out,
                );
            } else if nr <= n {
                for oy in va..vb {
                    dma2(
                        true,
                        false,
                        at(oy, lo),
                        pix(oy, ix(lo)),
                        n,
                        w,
                        (g.sx * pw) as u64,
                        w,
                        out,
                    );
                }
            } else {
                for ox in lo..hi {
                    dma2(
                        true,
                        false,
                        at(va, ox),
                        pix(va, ix(ox)),
                        nr,
                        w,
                        row_stride,
                        ls,
                        out,
                    );
                }
            }
        }
        for ox in (xa..lo).chain(hi..xb) {
            fill2(at(va, ox), nr, w, ls, fill, out);
            let (a, b) = (ix(ox).max(0), (ix(ox) + span).min(g.w as i64));
            if span > 1 && a < b {
                let skip = (a - ix(ox)) as usize * cg;
                dma2(
                    true,
                    false,
                    at(va, ox) + skip,
                    pix(va, a),
                    nr,
                    (b - a) as usize * cg,
                    row_stride,
                    ls,
                    out,
                );
            }
        }
    }
}

/// STOREs of an `m x ncols` tile (packed rows `src_stride` bytes apart at
/// local `src`) into columns `col ..` of rows `m0 ..` of `y`, cut at its panels.
#[allow(clippy::too_many_arguments)]
fn store_tile(
    y: &TensorLayout,
    m0: usize,
    m: usize,
    col: usize,
    ncols: usize,
    src: usize,
    src_stride: usize,
    acc: bool,
    out: &mut Vec<Pending>,
) {
    tile_dma(false, y, m0, m, col, ncols, src, src_stride, acc, out);
}

/// Tile rows per transfer into a transposed tensor (see [`tile_dma`]).
const TRANSPOSED_ROWS: usize = 32;

/// LOADs (`load`) or STOREs of the `m x ncols` tile of rows `m0 ..`, columns
/// `col ..` of `t`, packed `local_stride` bytes a row at `local`: one 2-D
/// transfer per panel of `t` the columns cross. A transposed `t` (int8)
/// moves one byte per DMA row (the DMA has no transpose): one transfer per
/// tile column and [`TRANSPOSED_ROWS`] tile rows, one beat per byte. (Whole
/// columns are fewer descriptors, but their bursts of `m` beats hold the
/// memory port long enough to delay the weight LOADs behind them: the K
/// projection of transformer-block then misses the weight-stationary bound
/// of tests/networks.rs; one transfer per tile row meets it but pays a DRAM
/// latency per `ncols` bytes. 32 was the fastest of 16, 24, 32 on 16x16.)
#[allow(clippy::too_many_arguments)]
fn tile_dma(
    load: bool,
    t: &TensorLayout,
    m0: usize,
    m: usize,
    col: usize,
    ncols: usize,
    local: usize,
    local_stride: usize,
    acc: bool,
    out: &mut Vec<Pending>,
) {
    let eb = t.eb;
    if let Some((_, w)) = t.phases {
        // Per output image row, its even and its odd pixels: consecutive
        // pixels of one phase row, every second row of the tile.
        let mut r = m0;
        while r < m0 + m {
            let end = (m0 + m).min((r / w + 1) * w);
            for first in [r, r + 1] {
                if first >= end {
                    continue;
                }
                let (q, r2) = t.phase_of(first);
                let plane = t.phase(q);
                tile_dma_strided(
                    load,
                    &plane,
                    r2,
                    (end - first).div_ceil(2),
                    col,
                    ncols,
                    local + (first - m0) * local_stride,
                    2 * local_stride,
                    acc,
                    out,
                );
            }
            r = end;
        }
        return;
    }
    if t.transposed {
        for r0 in (m0..m0 + m).step_by(TRANSPOSED_ROWS) {
            let rows = TRANSPOSED_ROWS.min(m0 + m - r0);
            for c in col..col + ncols {
                let at = local + (r0 - m0) * local_stride + (c - col) * eb;
                dma2(
                    load,
                    acc,
                    at,
                    t.offset(r0, c),
                    rows,
                    eb,
                    eb as u64,
                    local_stride,
                    out,
                );
            }
        }
        return;
    }
    tile_dma_strided(load, t, m0, m, col, ncols, local, local_stride, acc, out);
}

/// [`tile_dma`] of a plain (not transposed, not phase-split) `t`.
#[allow(clippy::too_many_arguments)]
fn tile_dma_strided(
    load: bool,
    t: &TensorLayout,
    m0: usize,
    m: usize,
    col: usize,
    ncols: usize,
    local: usize,
    local_stride: usize,
    acc: bool,
    out: &mut Vec<Pending>,
) {
    let eb = t.eb;
    let mut c = col;
    while c < col + ncols {
        let p = c / t.panel;
        let end = (col + ncols).min((p + 1) * t.panel);
        dma2(
            load,
            acc,
            local + (c - col) * eb,
            t.offset(m0, c),
            m,
            (end - c) * eb,
            (t.width(p) * eb) as u64,
            local_stride,
            out,
        );
        c = end;
    }
}

/// LOADs of the weight rows `k0..k1`, columns `n0 .. n0 + ncj` of a GEMM
/// whose weights are the runtime tensor `b` (`W[k][n] = b[k][col0 + n]`, or
/// `b[n][col0 + k]` when transposed: then `b` is stored transposed and the
/// block is again a plain 2-D LOAD), packed `ncj` bytes a row at `local`.
#[allow(clippy::too_many_arguments)]
fn tensor_weight_loads(
    b: &TensorLayout,
    w: TensorWeights,
    k0: usize,
    k1: usize,
    n0: usize,
    ncj: usize,
    local: usize,
    out: &mut Vec<Pending>,
) {
    if w.transposed {
        // b^T row-major: row col0 + k, column n.
        let bt = TensorLayout {
            rows: b.cols,
            cols: b.rows,
            panel: b.rows,
            transposed: false,
            ..*b
        };
        tile_dma(
            true,
            &bt,
            w.col0 + k0,
            k1 - k0,
            n0,
            ncj,
            local,
            ncj,
            false,
            out,
        );
    } else {
        tile_dma(
            true,
            b,
            k0,
            k1 - k0,
            w.col0 + n0,
            ncj,
            local,
            ncj,
            false,
            out,
        );
    }
}

/// Device-memory placement of one GEMM's operands.
struct GemmMem<'a> {
    x: &'a TensorLayout,
    y: &'a TensorLayout,
    w_addr: u64,
    /// The weights are a runtime tensor (`w_addr` is unused).
    tensor_w: Option<(TensorLayout, TensorWeights)>,
    b_addr: Option<u64>,
    /// The per-channel requantisation table (8-byte entries, one per column).
    q_addr: Option<u64>,
    fill: u64,
    spad_base: usize,
    acc_base: usize,
}

fn gemm_steps(li: usize, l: &Gemm, t: &Tiling, lm: &GemmMem<'_>, steps: &mut Vec<Step>) {
    let (k, n) = (l.k, l.n);
    let (nc, mt, g) = (t.n_chunk, t.m_tile, t.k_group);
    let ch = &l.chunks;
    let nk = ch.len();
    let nn = n.div_ceil(nc);
    let nq = nk.div_ceil(g);
    let cg = if l.geo.kw > 1 && ch.first().is_some_and(|c| c.nkx > 1) {
        ch[0].w / ch[0].nkx
    } else {
        0
    };
    let rq = match l.output {
        LoweredOutput::Int8(r) => Some(r),
        LoweredOutput::Int32 => None,
    };
    let eb = lm.y.eb;
    let act_bias = rq.is_some() && l.bias.is_some();
    let preload = rq.is_none() && l.bias.is_some();
    let xbuf = t.x_buf_bytes(k);
    let x_off = lm.spad_base;
    let w_off = x_off + t.x_bufs * xbuf;
    let o_off = w_off + t.w_bufs * t.w_buf_bytes();
    let acc_off = lm.acc_base;
    let bias_off = acc_off + t.acc_bufs * t.acc_tile_bytes();
    let slot_bytes = gemm_dims(l).act_slot_bytes(nc);
    // A slot: the bias vector (with a bias), then the per-channel table.
    let qtab_in_slot = if act_bias { nc * 4 } else { 0 };
    let (mut wstep, mut xgrp, mut done, mut started) = (0usize, 0usize, 0usize, 0usize);
    let mut tile_acc = vec![0u32; nn];
    let tiles = l.m.div_ceil(mt);
    let spread = t.x_resident && t.x_bufs >= 2 && tiles > 1;
    let steps_per_tile = nn * nq;
    let (mut deferred, mut per_step) = (Vec::new(), 0usize);
    // All input panels of tile `tm` into its resident buffer.
    let tile_x = |tm: usize| {
        let m0 = tm * mt;
        let m = mt.min(l.m - m0);
        let xb = x_off + (tm % t.x_bufs) * xbuf;
        let mut v = Vec::new();
        for (c, chunk) in ch.iter().enumerate() {
            let mut one = Vec::new();
            gather(
                lm.x,
                &l.geo,
                chunk,
                cg,
                m0,
                m,
                xb + ch[c].k0 * mt,
                lm.fill,
                &mut one,
            );
            v.extend(merge_contiguous(one));
        }
        v
    };
    for tm in 0..tiles {
        let m0 = tm * mt;
        let m = mt.min(l.m - m0);
        let next_x = if spread && tm + 1 < tiles {
            tile_x(tm + 1)
        } else {
            Vec::new()
        };
        let ng = t.n_group.max(1);
        let order: Vec<(usize, usize)> = if t.k_outer {
            (0..nn)
                .step_by(ng)
                .flat_map(|g0| {
                    (0..nq).flat_map(move |q| (g0..nn.min(g0 + ng)).map(move |jn| (jn, q)))
                })
                .collect()
        } else {
            (0..nn)
                .flat_map(|jn| (0..nq).map(move |q| (jn, q)))
                .collect()
        };
        let mut xbase = 0usize;
        for (step_in_tile, (jn, q)) in order.into_iter().enumerate() {
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
            let load_x = if t.x_resident {
                jn == 0
            } else {
                !t.k_outer || jn % ng == 0
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
                    xbase + ch[c].k0 * mt
                } else {
                    xbase + (ch[c].k0 - ch[c0].k0) * mt
                }
            };
            if load_x && !(spread && tm > 0) {
                let mut v = Vec::new();
                for (c, chunk) in ch.iter().enumerate().take(c1).skip(c0) {
                    gather(lm.x, &l.geo, chunk, cg, m0, m, panel(c), lm.fill, &mut v);
                }
                st.loads.extend(merge_contiguous(v));
            }
            // The next M tile's input panels (its own buffer), spread over
            // this tile's steps so the load queue never holds a whole tile's
            // gathers in front of the MATMULs.
            if spread && tm + 1 < tiles {
                let next = &next_x;
                let a = step_in_tile * next.len() / steps_per_tile;
                let b = (step_in_tile + 1) * next.len() / steps_per_tile;
                st.loads.extend(next[a..b].iter().cloned());
            }
            let last = q == nq - 1;
            let bslot = bias_off + (done % t.bias_slots.max(1)) * slot_bytes;
            let qslot = bslot + qtab_in_slot;
            if let (Some(q), true) = (lm.q_addr, last) {
                st.loads.extend(dma_contiguous(
                    true,
                    qslot as u32,
                    q + n0 as u64 * QTAB_ENTRY_BYTES as u64,
                    ncj * QTAB_ENTRY_BYTES as usize,
                    true,
                ));
            }
            let obuf = o_off + (done % t.o_bufs.max(1)) * t.o_buf_bytes();
            if let Some(b) = lm.b_addr {
                let src = b + n0 as u64 * 4;
                if act_bias && last {
                    st.loads
                        .extend(dma_contiguous(true, bslot as u32, src, ncj * 4, true));
                }
                if preload && q == 0 {
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
            let k0 = ch[c0].k0;
            let k1 = ch[c1 - 1].k0 + ch[c1 - 1].w;
            let wbytes = (k1 - k0) * ncj;
            match lm.tensor_w {
                Some((b, tw)) => {
                    tensor_weight_loads(&b, tw, k0, k1, n0, ncj, wbuf, &mut st.loads);
                }
                None => {
                    let wsrc = lm.w_addr + (jn * k * nc + k0 * ncj) as u64;
                    st.loads
                        .extend(dma_contiguous(true, wbuf as u32, wsrc, wbytes, false));
                }
            }
            for (c, chunk) in ch.iter().enumerate().take(c1).skip(c0) {
                st.computes.push(matmul(Matmul {
                    a: panel(c) as u32,
                    w: (wbuf + (chunk.k0 - k0) * ncj) as u32,
                    out: acc_tile,
                    m: m as u16,
                    k: chunk.w as u16,
                    n: ncj as u16,
                    accumulate: c > 0 || preload,
                }));
            }
            let before = deferred.len();
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
                            qtab: lm.q_addr.map(|_| qslot as u32),
                        }));
                        obuf
                    }
                    None => acc_tile as usize,
                };
                let mut v = Vec::new();
                store_tile(
                    lm.y,
                    m0,
                    m,
                    l.col0 + n0,
                    ncj,
                    src,
                    ncj * eb,
                    rq.is_none(),
                    &mut v,
                );
                if lm.y.transposed || lm.y.phases.is_some() {
                    // Many small STOREs: spread them over the next
                    // tile's steps, so they never fill the store queue in
                    // front of the MATMULs behind them in the ring (a
                    // phase-split tile's from the next step on: one step
                    // of an N chunk is not enough to drain them).
                    deferred.extend(v);
                    per_step = deferred.len().div_ceil(nq);
                } else {
                    st.stores.extend(v);
                }
            }
            let added = deferred.len() - before;
            // A deferred STORE reads its tile before a later compute
            // overwrites it (a staging buffer or accumulator tile reused by
            // this step): those go with the previous step.
            if let Some(i) = deferred[..before]
                .iter()
                .rposition(|d| st.computes.iter().any(|c| conflict(&c.access, &d.access)))
            {
                let early: Vec<Pending> = deferred.drain(..=i).collect();
                match steps.last_mut() {
                    Some(prev) => prev.stores.extend(early),
                    None => st.stores.extend(early),
                }
            }
            let ready = if lm.y.phases.is_some() {
                deferred.len() - added
            } else {
                deferred.len()
            };
            let k = per_step.min(ready);
            st.stores.extend(deferred.drain(..k));
            steps.push(st);
        }
    }
    if let Some(st) = steps.last_mut() {
        st.stores.extend(deferred);
    }
}

/// Merges LOADs that continue each other (the panels of consecutive K chunks
/// of a pointwise GEMM) into fewer descriptors.
fn merge_contiguous(v: Vec<Pending>) -> Vec<Pending> {
    let simple = v.iter().all(|p| match p.op {
        Op::Load(d) => {
            d.rows == 1
                || d.local_stride == d.row_bytes as u32 && d.dram_stride == d.row_bytes as u32
        }
        _ => false,
    });
    if !simple || v.len() < 2 {
        return v;
    }
    let pieces: Vec<(usize, u64, usize)> = v
        .iter()
        .map(|p| match p.op {
            Op::Load(d) => (
                d.local as usize,
                d.dram,
                d.rows as usize * d.row_bytes as usize,
            ),
            _ => unreachable!("checked above"),
        })
        .collect();
    coalesce(true, false, &pieces)
}

fn elementwise(op: Op) -> Pending {
    let access = match op {
        Op::Add(a) => vec![
            Access::read(Space::Spad, a.a as u64, a.len as u64),
            Access::read(Space::Spad, a.b as u64, a.len as u64),
            Access::write(Space::Acc, a.dst as u64, a.len as u64 * 4),
        ],
        Op::Max(m) => vec![
            Access::read(Space::Spad, m.a as u64, m.len as u64),
            Access::read(Space::Spad, m.b as u64, m.len as u64),
            Access::write(Space::Spad, m.dst as u64, m.len as u64),
        ],
        _ => unreachable!("only ADD and MAX"),
    };
    Pending { op, access }
}

/// Output pixels per tile of a non-GEMM kernel: `spad_per` scratchpad and
/// `acc_per` accumulator bytes per pixel must fit half of each memory (the
/// other half belongs to the neighbouring kernels); a tile of at least one
/// output row is cut to whole rows.
fn elem_tile(
    name: &str,
    cfg: &NpuConfig,
    pixels: usize,
    ow: usize,
    spad_per: usize,
    acc_per: usize,
) -> Result<usize, CompileError> {
    let spad = (cfg.memory.spad_bytes - SCRATCH_BYTES) as usize / 2;
    let acc = cfg.memory.acc_bytes as usize / 2;
    let mut m = (spad / spad_per.max(1)).min(pixels).min(u16::MAX as usize);
    if let Some(a) = acc.checked_div(acc_per) {
        m = m.min(a);
    }
    if m == 0 {
        return Err(CompileError::Tiling {
            layer: name.to_string(),
            config: config_summary(cfg),
            message: format!(
                "one pixel needs {spad_per} scratchpad and {acc_per} accumulator bytes; half of \
                 each memory ({spad} and {acc} bytes) is available to a layer"
            ),
        });
    }
    if m >= ow && ow > 1 {
        m = m / ow * ow;
    }
    Ok(m)
}

/// Pooling: per channel panel and tile, one gather per kernel position, MAX
/// into the result (max) or ADD into an accumulator tile then ACT (average).
#[allow(clippy::too_many_arguments)]
fn pool_steps(
    li: usize,
    p: &PoolK,
    x: &TensorLayout,
    y: &TensorLayout,
    mt: usize,
    base: usize,
    acc_base: usize,
    fill: u64,
    steps: &mut Vec<Step>,
) {
    let pix = p.geo.p();
    let npanels = x.cols.div_ceil(x.panel);
    let mut unit = 0usize;
    let mut gbuf = 0usize;
    let pb = x.panel;
    let slot = mt * pb;
    for j in 0..npanels {
        let pw = x.width(j);
        for m0 in (0..pix).step_by(mt) {
            let m = mt.min(pix - m0);
            let len = (m * pw) as u32;
            let r = base + (unit % 2) * slot;
            let acc = acc_base + (unit % 2) * slot * 4;
            unit += 1;
            let kpos = p.geo.kh * p.geo.kw;
            for i in 0..kpos {
                let ch = Chunk {
                    k0: 0,
                    w: pw,
                    ky: i / p.geo.kw,
                    kx: i % p.geo.kw,
                    nkx: 1,
                    c0: j * pb,
                };
                let mut st = Step {
                    layer: li,
                    ..Default::default()
                };
                let direct = p.kind == PoolKind::Max && i == 0;
                let g = if direct {
                    r
                } else {
                    gbuf += 1;
                    base + (2 + gbuf % 2) * slot
                };
                gather(x, &p.geo, &ch, 0, m0, m, g, fill, &mut st.loads);
                match p.kind {
                    PoolKind::Max if !direct => st.computes.push(elementwise(Op::Max(Max {
                        a: r as u32,
                        b: g as u32,
                        dst: r as u32,
                        len,
                    }))),
                    PoolKind::Max => {}
                    PoolKind::Avg => st.computes.push(elementwise(Op::Add(Add {
                        a: g as u32,
                        b: g as u32,
                        dst: acc as u32,
                        len,
                        a_zp: p.zx,
                        b_zp: 0,
                        a_mult: 1,
                        b_mult: 0,
                        accumulate: i > 0,
                    }))),
                }
                if i + 1 == kpos {
                    if let Some(rq) = p.requant {
                        st.computes.push(act(Act {
                            src: acc as u32,
                            dst: r as u32,
                            bias: None,
                            rows: m as u16,
                            cols: pw as u16,
                            multiplier: rq.multiplier,
                            shift: rq.shift,
                            zero_point: rq.zero_point,
                            relu: false,
                            qtab: None,
                        }));
                    }
                    store_tile(y, m0, m, j * pb, pw, r, pw, false, &mut st.stores);
                }
                steps.push(st);
            }
        }
    }
}

/// Pooling schedules that read their input once, for the two common shapes
/// (the generic [`pool_steps`] gathers the input once per kernel position).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum FastPool {
    /// Global average pooling: per channel panel and image, one LOAD of all its
    /// pixels, then ADDs of pixel pairs from the scratchpad into one
    /// accumulator row, ACT.
    GlobalAvg,
    /// Max pooling 3x3, stride 2, padding 1 of an input with even height and
    /// width (output half of each): per panel and tile of `rows` output rows,
    /// one contiguous LOAD of the `2 rows + 1` input rows, MAX of the three
    /// input rows of every output row (`V`), MAX of `V` with itself one pixel
    /// to the right (`H`) and then with `V` one pixel to the left (`H3`, every
    /// pixel: the array has no strided MAX); a STORE of every second pixel of
    /// `H3`, and one of column 0 from `H` (its left neighbour is padding).
    Max3x3s2 { rows: usize },
}

impl FastPool {
    fn choose(p: &PoolK, pb: usize, cfg: &NpuConfig) -> Option<FastPool> {
        let g = &p.geo;
        let half = (cfg.memory.spad_bytes - SCRATCH_BYTES) as usize / 2;
        let global = g.kh == g.h && g.kw == g.w && g.oh == 1 && g.ow == 1 && g.pt == 0 && g.pl == 0;
        if p.kind == PoolKind::Avg && global {
            let f = FastPool::GlobalAvg;
            let (sp, ac) = f.bytes(g, pb);
            return (sp <= half && ac <= cfg.memory.acc_bytes as usize / 2).then_some(f);
        }
        let shape = (g.kh, g.kw, g.sy, g.sx, g.pt, g.pl) == (3, 3, 2, 2, 1, 1)
            && g.oh * 2 == g.h
            && g.ow * 2 == g.w;
        if p.kind != PoolKind::Max || !shape {
            return None;
        }
        // Two units of (2 rows + 1) + 3 rows input rows' worth each.
        let row = g.w * pb;
        let rows = ((half / 2 / row).saturating_sub(1) / 5).min(g.oh);
        (rows >= 1).then_some(FastPool::Max3x3s2 { rows })
    }

    /// Scratchpad and accumulator bytes (two units, double-buffered).
    fn bytes(self, g: &Geo, pb: usize) -> (usize, usize) {
        match self {
            FastPool::GlobalAvg => (2 * (g.h * g.w + 1) * pb, 2 * pb * 4),
            FastPool::Max3x3s2 { rows } => (2 * (5 * rows + 1) * g.w * pb, 0),
        }
    }
}

/// Global average pooling (see [`FastPool::GlobalAvg`]).
fn global_avg_steps(
    li: usize,
    p: &PoolK,
    x: &TensorLayout,
    y: &TensorLayout,
    base: usize,
    acc_base: usize,
    steps: &mut Vec<Step>,
) {
    let g = &p.geo;
    let hw = g.h * g.w;
    let pb = x.panel;
    let rq = p.requant.expect("average pooling has a requantisation");
    let mut unit = 0usize;
    for j in 0..x.cols.div_ceil(pb) {
        let pw = x.width(j);
        for img in 0..g.n {
            let u = unit % 2;
            unit += 1;
            let buf = base + u * (hw + 1) * pb;
            let out = buf + hw * pb;
            let acc = acc_base + u * pb * 4;
            let mut st = Step {
                layer: li,
                ..Default::default()
            };
            st.loads.extend(dma_contiguous(
                true,
                buf as u32,
                x.offset(img * hw, j * pb),
                hw * pw,
                false,
            ));
            for i in (0..hw).step_by(2) {
                let pair = i + 1 < hw;
                st.computes.push(elementwise(Op::Add(Add {
                    a: (buf + i * pw) as u32,
                    b: (buf + (i + usize::from(pair)) * pw) as u32,
                    dst: acc as u32,
                    len: pw as u32,
                    a_zp: p.zx,
                    b_zp: p.zx,
                    a_mult: 1,
                    b_mult: i16::from(pair),
                    accumulate: i > 0,
                })));
            }
            st.computes.push(act(Act {
                src: acc as u32,
                dst: out as u32,
                bias: None,
                rows: 1,
                cols: pw as u16,
                multiplier: rq.multiplier,
                shift: rq.shift,
                zero_point: rq.zero_point,
                relu: false,
                qtab: None,
            }));
            store_tile(y, img, 1, j * pb, pw, out, pw, false, &mut st.stores);
            steps.push(st);
        }
    }
}

fn max_op(a: usize, b: usize, dst: usize, len: usize) -> Pending {
    elementwise(Op::Max(Max {
        a: a as u32,
        b: b as u32,
        dst: dst as u32,
        len: len as u32,
    }))
}

/// 3x3 stride-2 max pooling (see [`FastPool::Max3x3s2`]).
#[allow(clippy::too_many_arguments)]
fn max3x3s2_steps(
    li: usize,
    p: &PoolK,
    x: &TensorLayout,
    y: &TensorLayout,
    rows: usize,
    base: usize,
    fill: u64,
    steps: &mut Vec<Step>,
) {
    let g = &p.geo;
    let pb = x.panel;
    let unit_bytes = (5 * rows + 1) * g.w * pb;
    let mut unit = 0usize;
    for j in 0..x.cols.div_ceil(pb) {
        let pw = x.width(j);
        let rb = g.w * pw;
        for img in 0..g.n {
            for oy0 in (0..g.oh).step_by(rows) {
                let t = rows.min(g.oh - oy0);
                let inb = base + (unit % 2) * unit_bytes;
                unit += 1;
                let vb = inb + (2 * t + 1) * rb;
                let hb = vb + t * rb;
                let h3 = hb + t * rb;
                let mut st = Step {
                    layer: li,
                    ..Default::default()
                };
                // Input rows 2 oy0 - 1 ..= 2 (oy0 + t) - 1; the one above the
                // image is padding.
                let r0 = usize::from(oy0 == 0);
                if r0 == 1 {
                    fill2(inb, 1, rb, rb, fill, &mut st.loads);
                }
                let iy0 = 2 * oy0 + r0 - 1;
                st.loads.extend(dma_contiguous(
                    true,
                    (inb + r0 * rb) as u32,
                    x.offset((img * g.h + iy0) * g.w, j * pb),
                    (2 * t + 1 - r0) * rb,
                    false,
                ));
                for r in 0..t {
                    let v = vb + r * rb;
                    st.computes
                        .push(max_op(inb + 2 * r * rb, inb + (2 * r + 1) * rb, v, rb));
                    st.computes.push(max_op(v, inb + (2 * r + 2) * rb, v, rb));
                }
                let n = t * g.w;
                st.computes.push(max_op(vb, vb + pw, hb, (n - 1) * pw));
                if n > 2 {
                    st.computes.push(max_op(hb + pw, vb, h3 + pw, (n - 2) * pw));
                }
                let m0 = (img * g.oh + oy0) * g.ow;
                let c = j * pb;
                store_tile(y, m0, t * g.ow, c, pw, h3, 2 * pw, false, &mut st.stores);
                // Column 0 of every output row, from H.
                let ystride = if t > 1 {
                    y.offset(m0 + g.ow, c) - y.offset(m0, c)
                } else {
                    0
                };
                st.stores.extend(dma_2d(
                    false,
                    hb as u32,
                    y.offset(m0, c),
                    t,
                    pw,
                    ystride,
                    rb,
                    false,
                ));
                steps.push(st);
            }
        }
    }
}

/// Add: per channel panel and tile, LOAD both inputs, ADD, ACT, STORE.
#[allow(clippy::too_many_arguments)]
fn add_steps(
    li: usize,
    a: &AddK,
    xa: &TensorLayout,
    xb: &TensorLayout,
    y: &TensorLayout,
    mt: usize,
    base: usize,
    acc_base: usize,
    steps: &mut Vec<Step>,
) {
    // The inputs' panels (the output may be a graph output, one panel:
    // the STOREs cut each tile at the output's panels).
    let pb = xa.panel;
    let slot = mt * pb;
    let mut unit = 0usize;
    for j in 0..y.cols.div_ceil(pb) {
        let pw = xa.width(j);
        for m0 in (0..y.rows).step_by(mt) {
            let m = mt.min(y.rows - m0);
            let u = unit % 2;
            unit += 1;
            let (ba, bb, br) = (
                base + u * 3 * slot,
                base + (u * 3 + 1) * slot,
                base + (u * 3 + 2) * slot,
            );
            let acc = acc_base + u * slot * 4;
            let mut st = Step {
                layer: li,
                ..Default::default()
            };
            dma2(
                true,
                false,
                ba,
                xa.offset(m0, j * pb),
                m,
                pw,
                pw as u64,
                pw,
                &mut st.loads,
            );
            dma2(
                true,
                false,
                bb,
                xb.offset(m0, j * pb),
                m,
                pw,
                pw as u64,
                pw,
                &mut st.loads,
            );
            let rq = a.requant;
            st.computes.push(elementwise(Op::Add(Add {
                a: ba as u32,
                b: bb as u32,
                dst: acc as u32,
                len: (m * pw) as u32,
                a_zp: a.za,
                b_zp: a.zb,
                a_mult: a.ma,
                b_mult: a.mb,
                accumulate: false,
            })));
            st.computes.push(act(Act {
                src: acc as u32,
                dst: br as u32,
                bias: None,
                rows: m as u16,
                cols: pw as u16,
                multiplier: rq.multiplier,
                shift: rq.shift,
                zero_point: rq.zero_point,
                relu: rq.relu,
                qtab: None,
            }));
            store_tile(y, m0, m, j * pb, pw, br, pw, false, &mut st.stores);
            steps.push(st);
        }
    }
}

/// Concat: every channel panel of the input through the scratchpad into its
/// channels of the output.
#[allow(clippy::too_many_arguments)]
fn copy_steps(
    li: usize,
    c: &CopyK,
    x: &TensorLayout,
    y: &TensorLayout,
    mt: usize,
    base: usize,
    steps: &mut Vec<Step>,
) {
    let pb = x.panel;
    let mut unit = 0usize;
    for j in 0..x.cols.div_ceil(pb) {
        let pw = x.width(j);
        for m0 in (0..x.rows).step_by(mt) {
            let m = mt.min(x.rows - m0);
            let b = base + (unit % 2) * mt * pb;
            unit += 1;
            let mut st = Step {
                layer: li,
                ..Default::default()
            };
            dma2(
                true,
                false,
                b,
                x.offset(m0, j * pb),
                m,
                pw,
                pw as u64,
                pw,
                &mut st.loads,
            );
            store_tile(y, m0, m, c.col0 + j * pb, pw, b, pw, false, &mut st.stores);
            steps.push(st);
        }
    }
}

/// Weights as blocks of (N chunk, K chunk), N chunk major, each block `w x nc` row-major.
fn pretile(g: &Gemm, nc: usize) -> Vec<u8> {
    let (k, n) = (g.k, g.n);
    let mut out = Vec::with_capacity(k * n);
    for n0 in (0..n).step_by(nc) {
        let ncj = nc.min(n - n0);
        for kk in 0..k {
            out.extend(
                g.weights[kk * n + n0..kk * n + n0 + ncj]
                    .iter()
                    .map(|&w| w as u8),
            );
        }
    }
    out
}

/// Fill LOADs a K chunk's gather needs on average for the padding: one per
/// padded side of its kernel position (rows above or below, columns left or
/// right of the input).
fn fill_descs(g: &Geo) -> f64 {
    let sides = |k: usize, d: usize, s: usize, o: usize, p: usize, n: usize| {
        usize::from(k * d < p) + usize::from((o - 1) * s + k * d >= n + p)
    };
    let rows: usize = (0..g.kh)
        .map(|ky| sides(ky, g.dy, g.sy, g.oh, g.pt, g.h))
        .sum();
    let cols: usize = (0..g.kw)
        .map(|kx| sides(kx, g.dx, g.sx, g.ow, g.pl, g.w))
        .sum();
    rows as f64 / g.kh as f64 + cols as f64 / g.kw as f64
}

fn gemm_dims(g: &Gemm) -> LayerDims {
    let int8_out = matches!(g.output, LoweredOutput::Int8(_));
    let pointwise = g.geo.pointwise();
    // A phase-split input makes a stride-2 window's gathers stride-1 ones.
    let contiguous = g.geo.sx == 1 || g.x_phases;
    LayerDims {
        m: g.m,
        k: g.k,
        n: g.n,
        int8_out,
        act_bias: int8_out && g.bias.is_some(),
        qtab: int8_out && g.qtab.is_some(),
        preload: !int8_out && g.bias.is_some(),
        k_chunk: g.chunks.iter().map(|c| c.w).max().unwrap_or(1),
        chunks: g.chunks.len(),
        m_align: if pointwise { 1 } else { g.geo.ow },
        x_desc_rows: if pointwise || contiguous { 0 } else { g.geo.ow },
        x_gathered: !pointwise,
        x_fill_descs: if pointwise { 0.0 } else { fill_descs(&g.geo) },
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

/// A first-fit allocator over device memory with reuse of freed blocks.
#[derive(Debug)]
struct Dram {
    top: u64,
    free: Vec<(u64, u64)>,
}

impl Dram {
    fn alloc(&mut self, bytes: u64) -> u64 {
        let bytes = align_up(bytes.max(1), ALIGN);
        if let Some(i) = self.free.iter().position(|&(_, len)| len >= bytes) {
            let (a, len) = self.free[i];
            if len == bytes {
                self.free.remove(i);
            } else {
                self.free[i] = (a + bytes, len - bytes);
            }
            return a;
        }
        let a = align_up(self.top, ALIGN);
        self.top = a + bytes;
        a
    }

    fn release(&mut self, addr: u64, bytes: u64) {
        let bytes = align_up(bytes.max(1), ALIGN);
        self.free.push((addr, bytes));
        self.free.sort_unstable();
        let mut merged: Vec<(u64, u64)> = Vec::new();
        for &(a, l) in &self.free {
            match merged.last_mut() {
                Some(m) if m.0 + m.1 == a => m.1 += l,
                _ => merged.push((a, l)),
            }
        }
        self.free = merged;
    }
}

/// The placement of lowered tensor `t` at `addr`, named `name`.
fn placement_of(
    low: &crate::lower::Lowered,
    pbs: &[usize],
    name: &str,
    t: usize,
    addr: u64,
) -> TensorPlacement {
    let d = &low.tensors[t];
    TensorPlacement {
        name: name.to_string(),
        addr,
        shape: d.dims.clone(),
        dtype: d.dtype,
        row_stride: (pbs[t] * d.dtype.bytes()) as u64,
        panel_cols: pbs[t],
        space_to_depth: d.space_to_depth,
        im2col: d.im2col,
    }
}

/// What one kernel needs, decided before code generation.
enum Plan {
    Gemm(Tiling),
    Tile(usize),
    Pool(FastPool),
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
    let rows = cfg.array.rows as usize;
    let cols = cfg.array.cols as usize;
    let low = lower_graph(graph, rows, cols)?;
    let kernels: Vec<(usize, &Kernel)> = low
        .nodes
        .iter()
        .enumerate()
        .flat_map(|(ni, n)| n.kernels.iter().map(move |k| (ni, k)))
        .collect();
    let pbs: Vec<usize> = low.tensors.iter().map(|t| panel_width(t, rows)).collect();

    // Tiling.
    let mut plans = Vec::new();
    for &(ni, k) in &kernels {
        let name = &low.nodes[ni].name;
        plans.push(match k {
            Kernel::Gemm(g) => {
                let dims = gemm_dims(g);
                // A transposed output leaves through many small STOREs
                // deferred over the following steps; k-outer finishes its
                // output tiles back to back and reuses their staging at
                // once, bunching those STOREs in front of the MATMULs.
                let n_outer = (opts.strategy == Strategy::Auto && low.tensors[g.y].transposed)
                    .then(|| plan(&dims, cfg, Strategy::NOuterResident).ok())
                    .flatten();
                let t = match n_outer {
                    Some(t) => t,
                    None => {
                        plan(&dims, cfg, opts.strategy).map_err(|message| CompileError::Tiling {
                            layer: name.clone(),
                            config: config_summary(cfg),
                            message,
                        })?
                    }
                };
                Plan::Gemm(t)
            }
            Kernel::Pool(p) => {
                let pb = pbs[p.x];
                let acc = if p.kind == PoolKind::Avg { 8 * pb } else { 0 };
                match FastPool::choose(p, pb, cfg) {
                    Some(f) => Plan::Pool(f),
                    None => Plan::Tile(elem_tile(name, cfg, p.geo.p(), p.geo.ow, 4 * pb, acc)?),
                }
            }
            Kernel::Add(a) => {
                let pb = pbs[a.a];
                let t = &low.tensors[a.y];
                Plan::Tile(elem_tile(
                    name,
                    cfg,
                    t.shape.rows(),
                    t.shape.w,
                    6 * pb,
                    8 * pb,
                )?)
            }
            Kernel::Copy(c) => {
                let pb = pbs[c.x];
                let t = &low.tensors[c.x];
                Plan::Tile(elem_tile(name, cfg, t.shape.rows(), t.shape.w, 2 * pb, 0)?)
            }
        });
    }

    // Device-memory layout: ring, constants, input, weights, biases, then the
    // activations, each allocated when its producer starts and freed after its
    // last reader, so dead tensors' memory is reused.
    let ring_bytes = cfg.cmdproc.max_ring as u64 * DESC_BYTES as u64;
    let mut dram = Dram {
        top: RING_BASE + ring_bytes,
        free: Vec::new(),
    };
    let mut image = Vec::new();
    let mut fills = Fills::default();
    for &(_, k) in &kernels {
        let v = match k {
            Kernel::Gemm(g) if !g.geo.pointwise() => g.pad,
            Kernel::Pool(p) => p.pad,
            _ => continue,
        };
        if fills.addrs.iter().all(|a| a.0 != v) {
            let a = dram.alloc(FILL_BYTES as u64);
            image.push((a, vec![v as u8; FILL_BYTES]));
            fills.addrs.push((v, a));
        }
    }
    let layout = |t: usize, addr: u64| {
        let d = &low.tensors[t];
        TensorLayout {
            addr,
            rows: d.shape.rows(),
            cols: d.shape.c,
            eb: d.dtype.bytes(),
            panel: pbs[t],
            transposed: d.transposed,
            phases: d.phase_split.then_some((d.shape.h, d.shape.w)),
        }
    };
    let mut addrs: Vec<Option<u64>> = vec![None; low.tensors.len()];
    let input = graph.input()?;
    let x0 = {
        let mut l = layout(low.input, 0);
        l.addr = dram.alloc(l.bytes() as u64);
        let c = input.shape.c;
        let p = placement_of(&low, &pbs, &input.name, low.input, l.addr);
        image.push((l.addr, p.pack(|r, col| vec![input.data[r * c + col] as u8])));
        addrs[low.input] = Some(l.addr);
        l
    };
    let mut w_addrs = Vec::new();
    for (i, &(_, k)) in kernels.iter().enumerate() {
        w_addrs.push(match (k, &plans[i]) {
            (Kernel::Gemm(g), Plan::Gemm(_)) if g.tensor_weights.is_some() => Some((0, None, None)),
            (Kernel::Gemm(g), Plan::Gemm(t)) => {
                let bytes = pretile(g, t.n_chunk);
                let a = dram.alloc(bytes.len() as u64);
                image.push((a, bytes));
                let mut constant = |bytes: Vec<u8>| {
                    let a = dram.alloc(bytes.len() as u64);
                    image.push((a, bytes));
                    a
                };
                let b = g
                    .bias
                    .as_ref()
                    .map(|b| constant(b.iter().flat_map(|v| v.to_le_bytes()).collect()));
                let q = g.qtab.as_ref().map(|t| {
                    constant(
                        t.iter()
                            .flat_map(|f| {
                                QuantEntry {
                                    multiplier: f.multiplier,
                                    shift: f.shift as u32,
                                }
                                .to_bytes()
                            })
                            .collect(),
                    )
                });
                Some((a, b, q))
            }
            _ => None,
        });
    }
    let mut last_use = vec![0usize; low.tensors.len()];
    for (i, &(_, k)) in kernels.iter().enumerate() {
        for r in k.reads() {
            last_use[r] = i;
        }
    }
    let mut allocs = Vec::with_capacity(kernels.len());
    for (i, &(_, k)) in kernels.iter().enumerate() {
        let y = k.writes();
        if addrs[y].is_none() {
            addrs[y] = Some(dram.alloc(layout(y, 0).bytes() as u64));
        }
        allocs.push(addrs[y]);
        // Free what this kernel read last (not the input, not graph outputs),
        // two kernels later: the next kernel's first tiles overlap this one's
        // last, and a store into memory still being read would wait for it.
        if i >= 2 {
            for &(_, k2) in &kernels[i - 2..i - 1] {
                for r in k2.reads() {
                    let t = &low.tensors[r];
                    if last_use[r] == i - 2 && !t.input && t.outputs.is_empty() {
                        if let Some(a) = addrs[r] {
                            dram.release(a, layout(r, 0).bytes() as u64);
                        }
                    }
                }
            }
        }
    }
    let mem_bytes = align_up(dram.top, 4096);
    if mem_bytes > cfg.dram.size_bytes {
        return Err(CompileError::MemoryTooSmall {
            needed: mem_bytes,
            size: cfg.dram.size_bytes,
        });
    }
    let lay = |t: usize| layout(t, addrs[t].expect("every tensor is placed"));

    // Steps. Consecutive kernels use opposite ends of the local memories.
    let spad = cfg.memory.spad_bytes as usize;
    let accb = cfg.memory.acc_bytes as usize;
    let mut steps = Vec::new();
    for (i, &(ni, k)) in kernels.iter().enumerate() {
        let top = i % 2 == 1;
        match (k, &plans[i]) {
            (Kernel::Gemm(g), Plan::Gemm(t)) => {
                let (spad_base, acc_base) = if top {
                    (spad - t.spad_bytes, accb - t.acc_bytes)
                } else {
                    (SCRATCH_BYTES as usize, 0)
                };
                let (wa, ba, qa) = w_addrs[i].expect("GEMMs have weights");
                let (x, y) = (lay(g.x), lay(g.y));
                let lm = GemmMem {
                    x: &x,
                    y: &y,
                    w_addr: wa,
                    tensor_w: g.tensor_weights.map(|w| (lay(w.t), w)),
                    b_addr: ba,
                    q_addr: qa,
                    fill: if g.geo.pointwise() {
                        0
                    } else {
                        fills.addr(g.pad)
                    },
                    spad_base,
                    acc_base,
                };
                gemm_steps(ni, g, t, &lm, &mut steps);
            }
            (Kernel::Pool(p), &Plan::Pool(f)) => {
                let pb = pbs[p.x];
                let (sp, ac) = f.bytes(&p.geo, pb);
                let (base, acc_base) = if top {
                    (spad - sp, accb - ac)
                } else {
                    (SCRATCH_BYTES as usize, 0)
                };
                let (x, y) = (lay(p.x), lay(p.y));
                match f {
                    FastPool::GlobalAvg => {
                        global_avg_steps(ni, p, &x, &y, base, acc_base, &mut steps)
                    }
                    FastPool::Max3x3s2 { rows } => {
                        let fill = fills.addr(p.pad);
                        max3x3s2_steps(ni, p, &x, &y, rows, base, fill, &mut steps)
                    }
                }
            }
            (k, &Plan::Tile(mt)) => {
                let pb = match k {
                    Kernel::Pool(p) => pbs[p.x],
                    Kernel::Add(a) => pbs[a.a],
                    Kernel::Copy(c) => pbs[c.x],
                    Kernel::Gemm(_) => unreachable!("GEMMs have a GEMM plan"),
                };
                let (sp, ac) = match k {
                    Kernel::Pool(p) if p.kind == PoolKind::Avg => (4 * mt * pb, 2 * mt * pb * 4),
                    Kernel::Pool(_) => (4 * mt * pb, 0),
                    Kernel::Add(_) => (6 * mt * pb, 2 * mt * pb * 4),
                    _ => (2 * mt * pb, 0),
                };
                let (base, acc_base) = if top {
                    (spad - sp, accb - ac)
                } else {
                    (SCRATCH_BYTES as usize, 0)
                };
                match k {
                    Kernel::Pool(p) => {
                        let f = fills.addr(p.pad);
                        pool_steps(
                            ni,
                            p,
                            &lay(p.x),
                            &lay(p.y),
                            mt,
                            base,
                            acc_base,
                            f,
                            &mut steps,
                        )
                    }
                    Kernel::Add(a) => add_steps(
                        ni,
                        a,
                        &lay(a.a),
                        &lay(a.b),
                        &lay(a.y),
                        mt,
                        base,
                        acc_base,
                        &mut steps,
                    ),
                    Kernel::Copy(c) => {
                        copy_steps(ni, c, &lay(c.x), &lay(c.y), mt, base, &mut steps)
                    }
                    Kernel::Gemm(_) => unreachable!("GEMMs have a GEMM plan"),
                }
            }
            _ => return Err(CompileError::Internal("a kernel without its plan".into())),
        }
    }
    let _ = allocs;

    // Scheduling, software-pipelined: before the compute of step s, emit the
    // loads of the steps up to s + lookahead, unless one touches what an
    // earlier step not yet emitted uses (buffers still in use, or device
    // memory a previous layer's stores have not written yet).
    let mut s = Sched::new(0);
    let max_ahead = cfg.cmdproc.queue_depth as usize;
    let mut pending: Vec<(usize, &Pending)> = Vec::new();
    let mut queued = 0;
    for (i, st) in steps.iter().enumerate() {
        while queued < steps.len() && queued <= i + opts.lookahead {
            pending.extend(steps[queued].loads.iter().map(|p| (queued, p)));
            queued += 1;
        }
        let mut blocked: Vec<&Pending> = Vec::new();
        let mut keep = Vec::new();
        // Loads placed ahead of this step's compute, at most a load queue's
        // worth: the command processor dispatches in ring order, so a longer
        // run of loads would hold up the MATMULs behind it.
        let mut ahead = 0usize;
        // A load that reads what the previous step of this layer STOREs
        // (the next layer's input) needs a relay on the compute unit that
        // waits for those STOREs: placed here, it would hold this step's
        // compute until they are done.
        let fresh = match i.checked_sub(1) {
            Some(p) if steps[p].layer == st.layer => &steps[p].stores[..],
            _ => &[][..],
        };
        for (j, p) in pending {
            let ok = j == i
                || ahead < max_ahead
                    && !(steps[i..j]
                        .iter()
                        .flat_map(|o| o.computes.iter().chain(&o.stores))
                        .chain(fresh)
                        .any(|o| conflict(&o.access, &p.access))
                        || blocked.iter().any(|o| conflict(&o.access, &p.access)));
            if ok {
                s.push(p, steps[j].layer);
                ahead += usize::from(j > i);
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
    program
        .validate(&cfg.limits())
        .map_err(|(i, e)| CompileError::Internal(format!("descriptor {i}: {e}")))?;
    let bal = token_balance(program.descs());
    if bal != [0; 4] {
        return Err(CompileError::Internal(format!("unbalanced tokens {bal:?}")));
    }

    let mut sched: Vec<LayerSchedule> = low
        .nodes
        .iter()
        .map(|n| LayerSchedule {
            name: n.name.clone(),
            op: n.op,
            descs: 0..0,
            macs: 0,
            dram_bytes: 0,
            tiling: None,
            row_gathers: false,
        })
        .collect();
    for (i, &(ni, _)) in kernels.iter().enumerate() {
        if let Plan::Gemm(t) = plans[i] {
            sched[ni].tiling.get_or_insert(t);
        }
        if let Kernel::Gemm(g) = kernels[i].1 {
            // `gather`'s test for one 2-D transfer per chunk and block of
            // output rows: the chunk is one kernel position, its whole
            // panel, at a column stride of one pixel (a phase-split input
            // turns stride 2 into 1).
            let (c, pb) = (low.tensors[g.x].shape.c, pbs[g.x]);
            let sx = if g.x_phases { 1 } else { g.geo.sx };
            sched[ni].row_gathers |= !g.geo.pointwise()
                && g.chunks.iter().any(|ch| {
                    let pw = pb.min(c - ch.c0 / pb * pb);
                    ch.nkx > 1 || sx * pw != ch.w
                });
        }
    }
    for (i, d) in program.descs().iter().enumerate() {
        let Some(li) = s.layer_of[i] else { continue };
        let l = &mut sched[li];
        l.descs = if l.descs.is_empty() {
            i..i + 1
        } else {
            l.descs.start.min(i)..l.descs.end.max(i + 1)
        };
        match d.op {
            Op::Load(d) | Op::Store(d) => l.dram_bytes += d.rows as u64 * d.row_bytes as u64,
            Op::Matmul(m) => l.macs += m.m as u64 * m.k as u64 * m.n as u64,
            _ => {}
        }
    }
    let _ = len;
    let placement = |name: &str, t: usize| {
        placement_of(
            &low,
            &pbs,
            name,
            t,
            addrs[t].expect("every tensor is placed"),
        )
    };
    Ok(Compiled {
        program,
        image,
        ring_base: RING_BASE,
        mem_bytes,
        inputs: vec![TensorPlacement {
            addr: x0.addr,
            ..placement(&input.name, low.input)
        }],
        outputs: low
            .outputs
            .iter()
            .map(|(name, t)| placement(name, *t))
            .collect(),
        layers: sched,
        desc_layer: s.layer_of.iter().map(|l| l.map(|v| v as u32)).collect(),
        relays: s.relays,
    })
}
