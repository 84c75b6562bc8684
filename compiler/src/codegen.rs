//! Code generation: DRAM layout, per-layer steps, token scheduling, and the
//! [`Compiled`] result.
//!
//! **Device-memory layout.** The command ring sits at [`RING_BASE`], with room
//! for `cmdproc.max_ring` descriptors (the most `npukit_sim::run` can use). Then,
//! each at a 64-byte aligned address: the network input, every layer's weights
//! (pre-tiled), every layer's bias, the intermediate activations, and the output.
//! Activations are row-major with rows padded to 16 bytes (`row_stride`), so a
//! fold's slice of a row never straddles two beats needlessly. Weights of a
//! layer are stored as `kc x nc` blocks, packed row-major, ordered by N chunk
//! then K chunk: the `g` K chunks of one step are one contiguous LOAD.
//!
//! **Program.** For each layer, M tile, N chunk and K group (a step, see
//! [`crate::tiling`]): LOAD the input panels (if not resident yet), the bias
//! (once per N chunk), the weight group; MATMUL per K chunk into the output
//! tile (the first one overwrites unless the tile was preloaded with the bias);
//! after the last K group, ACT into int8 staging and STORE, or STORE the int32
//! tile. The loads of step `i + 1` are placed before the compute of step `i`
//! (software pipelining) unless they touch what step `i` uses; the scheduler
//! ([`crate::sched`]) derives every token from the byte ranges each
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
use crate::tiling::{plan, LayerDims, Tiling, SCRATCH_BYTES};
use crate::workload::Workload;
use crate::CompileError;

/// Device address of the command ring.
pub const RING_BASE: u64 = 0x1000;
/// Alignment of every tensor in device memory.
pub const ALIGN: u64 = 64;
/// Alignment of activation row strides in device memory.
pub const ROW_ALIGN: u64 = 16;
/// Sequence number published by the final FENCE.
pub const FENCE_SEQ: u32 = 1;

/// Where a tensor lives in device memory: `shape[0]` rows of `shape[1]`
/// elements, row `r` at `addr + r * row_stride`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TensorPlacement {
    pub name: String,
    pub addr: u64,
    pub shape: Vec<usize>,
    pub dtype: DType,
    pub row_stride: u64,
}

impl TensorPlacement {
    /// Bytes from `addr` to the end of the last row.
    pub fn extent(&self) -> u64 {
        let rows = self.shape.first().copied().unwrap_or(1) as u64;
        let cols = self.shape.get(1).copied().unwrap_or(1) as u64;
        (rows.max(1) - 1) * self.row_stride + cols * self.dtype.bytes() as u64
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
    if p.addr + p.extent() > mem.size() {
        return Err(CompileError::MemoryTooSmall {
            needed: p.addr + p.extent(),
            size: mem.size(),
        });
    }
    let (rows, cols) = (p.shape[0], p.shape[1]);
    let eb = p.dtype.bytes();
    let mut row = vec![0u8; cols * eb];
    let mut i8s = Vec::new();
    let mut i32s = Vec::new();
    for r in 0..rows {
        mem.read(p.addr + r as u64 * p.row_stride, &mut row);
        match p.dtype {
            DType::I8 => i8s.extend(row.iter().map(|&b| b as i8)),
            DType::I32 => i32s.extend(
                row.chunks_exact(4)
                    .map(|c| i32::from_le_bytes([c[0], c[1], c[2], c[3]])),
            ),
        }
    }
    Ok(match p.dtype {
        DType::I8 => Tensor::i8(p.shape.clone(), i8s),
        DType::I32 => Tensor::i32(p.shape.clone(), i32s),
    })
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
    x_addr: u64,
    x_stride: u64,
    y_addr: u64,
    y_stride: u64,
    w_addr: u64,
    b_addr: Option<u64>,
    spad_base: u32,
    acc_base: u32,
}

fn layer_steps(li: usize, l: &LoweredLayer, t: &Tiling, lm: &LayerMem, steps: &mut Vec<Step>) {
    let (k, n) = (l.k, l.n);
    let (kc, nc, mt, g) = (t.k_chunk, t.n_chunk, t.m_tile, t.k_group);
    let nk = k.div_ceil(kc);
    let nn = n.div_ceil(nc);
    let nq = nk.div_ceil(g);
    let rq = match l.output {
        LoweredOutput::Int8(r) => Some(r),
        LoweredOutput::Int32 => None,
    };
    let act_bias = rq.is_some() && l.bias.is_some();
    let preload = rq.is_none() && l.bias.is_some();
    let xbuf = t.x_buf_bytes(k);
    let x_off = lm.spad_base as usize;
    let w_off = x_off + t.x_bufs * xbuf;
    let o_off = w_off + t.w_bufs * t.w_buf_bytes();
    let acc_off = lm.acc_base as usize;
    let bias_off = acc_off + t.acc_bufs * t.acc_tile_bytes();
    let mut wstep = 0usize;
    let mut tile = 0usize;
    for tm in 0..l.m.div_ceil(mt) {
        let m0 = tm * mt;
        let m = mt.min(l.m - m0);
        let xres = x_off + (tm % t.x_bufs) * xbuf;
        for jn in 0..nn {
            let n0 = jn * nc;
            let ncj = nc.min(n - n0);
            let acc_tile = (acc_off + (tile % t.acc_bufs) * t.acc_tile_bytes()) as u32;
            let bslot = bias_off + (tile % t.bias_slots.max(1)) * nc * 4;
            let obuf = o_off + (tile % t.o_bufs.max(1)) * t.o_buf_bytes();
            for q in 0..nq {
                let c0 = q * g;
                let c1 = nk.min(c0 + g);
                let mut st = Step {
                    layer: li,
                    ..Default::default()
                };
                let wbuf = w_off + (wstep % t.w_bufs) * t.w_buf_bytes();
                let xs = x_off + (wstep % t.x_bufs) * xbuf;
                let panel = |c: usize| {
                    if t.x_resident {
                        xres + c * mt * kc
                    } else {
                        xs + (c - c0) * mt * kc
                    }
                };
                let kcj = |c: usize| kc.min(k - c * kc);
                if !t.x_resident || jn == 0 {
                    for c in c0..c1 {
                        st.loads.extend(dma_2d(
                            true,
                            panel(c) as u32,
                            lm.x_addr + m0 as u64 * lm.x_stride + (c * kc) as u64,
                            m,
                            kcj(c),
                            lm.x_stride,
                            kcj(c),
                            false,
                        ));
                    }
                }
                if let (0, Some(b)) = (q, lm.b_addr) {
                    let src = b + n0 as u64 * 4;
                    if act_bias {
                        st.loads
                            .extend(dma_contiguous(true, bslot as u32, src, ncj * 4, true));
                    }
                    if preload {
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
                if q == nq - 1 {
                    let ydst = lm.y_addr + m0 as u64 * lm.y_stride;
                    match rq {
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
                            }));
                            st.stores.extend(dma_2d(
                                false,
                                obuf as u32,
                                ydst + n0 as u64,
                                m,
                                ncj,
                                lm.y_stride,
                                ncj,
                                false,
                            ));
                        }
                        None => st.stores.extend(dma_2d(
                            false,
                            acc_tile,
                            ydst + n0 as u64 * 4,
                            m,
                            ncj * 4,
                            lm.y_stride,
                            ncj * 4,
                            true,
                        )),
                    }
                }
                steps.push(st);
                wstep += 1;
            }
            tile += 1;
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
            plan(&layer_dims(l), cfg).map_err(|message| CompileError::Tiling {
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
    let x_stride = align_up(input.features as u64, ROW_ALIGN);
    let x_addr = alloc(batch as u64 * x_stride);
    let mut xbytes = vec![0u8; batch * x_stride as usize];
    for r in 0..batch {
        let row = &input.data[r * input.features..(r + 1) * input.features];
        for (d, &s) in xbytes[r * x_stride as usize..].iter_mut().zip(row) {
            *d = s as u8;
        }
    }
    image.push((x_addr, xbytes));
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
    let mut acts = vec![(x_addr, x_stride)];
    for l in &layers {
        let eb = match l.output {
            LoweredOutput::Int8(_) => 1,
            LoweredOutput::Int32 => 4,
        };
        let stride = align_up((l.n * eb) as u64, ROW_ALIGN);
        acts.push((alloc(batch as u64 * stride), stride));
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
            x_addr: acts[li].0,
            x_stride: acts[li].1,
            y_addr: acts[li + 1].0,
            y_stride: acts[li + 1].1,
            w_addr: w_addrs[li],
            b_addr: b_addrs[li],
            spad_base,
            acc_base,
        };
        layer_steps(li, l, t, &lm, &mut steps);
    }

    // Scheduling, software-pipelined by one step.
    let mut s = Sched::new(0);
    if let Some(first) = steps.first() {
        for p in &first.loads {
            s.push(p, first.layer);
        }
    }
    for (i, st) in steps.iter().enumerate() {
        let mut deferred: Vec<&Pending> = Vec::new();
        if let Some(next) = steps.get(i + 1) {
            for p in &next.loads {
                let blocked = st
                    .computes
                    .iter()
                    .chain(&st.stores)
                    .any(|o| conflict(&o.access, &p.access))
                    || deferred.iter().any(|o| conflict(&o.access, &p.access));
                if blocked {
                    deferred.push(p);
                } else {
                    s.push(p, next.layer);
                }
            }
        }
        for p in st.computes.iter().chain(&st.stores) {
            s.push(p, st.layer);
        }
        if let Some(next) = steps.get(i + 1) {
            for p in deferred {
                s.push(p, next.layer);
            }
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
            addr: x_addr,
            shape: vec![batch, input.features],
            dtype: DType::I8,
            row_stride: x_stride,
        }],
        outputs: vec![TensorPlacement {
            name: outputs[0].name.clone(),
            addr: acts[last + 1].0,
            shape: vec![batch, layers[last].n],
            dtype: out_dtype,
            row_stride: acts[last + 1].1,
        }],
        layers: sched,
        relays: s.relays,
    })
}
