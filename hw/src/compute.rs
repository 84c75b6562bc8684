//! The compute unit (`Compute`): an `R x C` MAC array (weight-stationary as
//! described below; with weight double-buffering or output-stationary as in
//! docs/rtl.md, "The MAC array options", rules C1b and C1c), the
//! activation unit (`C` lanes, 2 pipeline stages) that also runs ADD and MAX,
//! and the two local memories with their DMA ports.
//!
//! # Ports (docs/rtl.md, "Internal interface: Compute")
//!
//! | Port | Dir | Width | Meaning |
//! |------|-----|-------|---------|
//! | `clock` | in | 1 | clock |
//! | `enable` | in | 1 | the device acts at this edge; gates every state change but `clear` |
//! | `clear` | in | 1 | device reset: zero both memories, drop the descriptor and the pipeline (acts even with `enable = 0`) |
//! | `issue` | in | 1 | start `desc` in this cycle (accepted only when free: idle, or `done`) |
//! | `desc` | in | 256 | the raw descriptor, word 0 in bits 31:0 (validated by the command processor) |
//! | `busy` | out | 1 | holds a descriptor at the start of the cycle |
//! | `done` | out | 1 | the descriptor completes in this cycle (`issue + latency`) |
//! | `dma_wr` | in | 1 | write `dma_wr_len` bytes at the edge |
//! | `dma_wr_acc` | in | 1 | into the accumulator memory (else the scratchpad) |
//! | `dma_wr_addr` | in | 32 | local byte address |
//! | `dma_wr_len` | in | 8 | bytes, 1..=B (bytes beyond the memory are dropped) |
//! | `dma_wr_data` | in | 512 | byte 0 goes to `dma_wr_addr` |
//! | `dma_rd_acc` | in | 1 | read from the accumulator memory (else the scratchpad) |
//! | `dma_rd_addr` | in | 32 | local byte address |
//! | `dma_rd_data` | out | 512 | `B` bytes from `dma_rd_addr`, combinational (bytes beyond B, or beyond the memory, read 0) |
//!
//! # Micro-architecture
//!
//! A descriptor issued in cycle `t` is latched at the edge of `t`; a cycle counter
//! `cnt` is `k` in cycle `t + k`, and `done = busy && cnt == latency` (the
//! latency is computed at issue: rules C1-C3; the `#[hdl_gen]` block [`Ctl`],
//! `ctl`, holds the descriptor, `cnt`, the latency, `busy` and `done`). A descriptor issued in cycle `t`
//! reads local memory from `t + 1` on and writes its last bytes at the edge of its
//! completion cycle, so a descriptor issued in the completion cycle of the previous
//! one (U1) sees all of its results.
//!
//! **MATMUL** (`latency = 2R + C + M - 2`):
//! * cycles `k = 1..=R`: weight row `R - k` of W (zero beyond `K` rows or `N`
//!   columns) is read from the scratchpad and shifted into the top row of the
//!   array; every row passes its weights down, so after `R` shifts PE `(r, c)`
//!   holds `W[r][c]`;
//! * cycles `k = R..R+M-1`: row `i = k - R` of A (`K` bytes, zero beyond) is read
//!   and enters a skew buffer where row `r` of the array sees element `r` after
//!   `r + 1` registers; activations move right one PE per cycle and partial sums
//!   down one PE per cycle (PE `(r, c)` processes row `i` in cycle
//!   `t + R + 1 + i + r + c`);
//! * the bottom PE of column `c` produces its result for row `i` in cycle
//!   `t + 2R + i + c`; a deskew buffer delays column `c` by `C - 1 - c` cycles, and
//!   the aligned output row `i` is written (added to the old value with
//!   ACCUMULATE) in cycle `t + 2R + C - 1 + i`; the last row in the completion
//!   cycle.
//!
//! **ACT / ADD / MAX** share one `C`-lane pipeline. Read stage (cycles
//! `k = 1..=latency-2`, one lane group per cycle; ACT walks rows then groups of
//! `C` columns): ACT reads the accumulators and biases and saturates
//! `acc + bias` to 32 bits, and with PER_CHANNEL each lane also reads its
//! column's table entry (`qtab + 8 * j`: multiplier, shift bits 7:0) into
//! per-lane registers; ADD and MAX read their two int8 operands. Stage 2:
//! ACT multiplies by the multiplier (the descriptor's, or the lane's entry) in
//! one [`SMul32`] per lane (32 x 32 -> 64);
//! ADD computes `(a - za) * ma + (b - zb) * mb`; MAX the signed maximum. Write
//! stage (two cycles after the read): ACT rounds, shifts (the descriptor's shift
//! or the lane's, carried along; `floor(p / 2^s)` plus bit `s - 1` of `p`, 0
//! for shifts above 63), adds
//! the zero point and clamps (ReLU) and writes int8 to the scratchpad; ADD writes (or accumulates)
//! int32 to the accumulator memory; MAX writes int8 to the scratchpad.
//! The lane arithmetic and its registers are the `#[hdl_gen]` block [`Lane`]
//! (`lane$<l>`); the walk, the pipeline's valid bits and write addresses are
//! [`LaneCtl`] (`lc`), each lane's memory addresses, valid bits and write
//! enables [`LaneAddr`] (`la$<l>`); this block reads the memories at those
//! addresses and writes the lanes' results.
//!
//! Memories: byte arrays `spad` and `acc` (`reg [7:0] spad [0:spad_bytes-1]`,
//! `accm`) with combinational reads at any address (reads beyond the end return
//! 0, writes beyond it are dropped). Read ports: the DMA port (`B` bytes), one
//! W row (`C` bytes) and one A row (`R` bytes) per cycle for MATMUL, an old
//! output row (`4C` bytes) for ACCUMULATE, `C` accumulators, `C` biases and `C`
//! table entries (`8C` bytes) for ACT, two `C`-byte operand vectors for ADD/MAX and `C` old accumulators for
//! ADD ACCUMULATE. Write ports: one output row (`4C` bytes) or `C` lane results,
//! and the DMA write (1..=B bytes). At one edge the compute write happens before
//! the DMA write (the DMA write wins where both touch the same byte: such a
//! program is racy anyway). `clear` zeroes both memories at one edge
//! (`spad <= '{default: 8'd0}`, an assignment pattern Verilator accepts where a
//! loop of non-blocking array writes is refused).
//!
//! Only a free unit accepts `issue` (idle, or `done` in this cycle); an issue
//! while busy is ignored. A frozen edge (`enable = 0`) changes nothing, so a
//! descriptor completes after exactly `latency` enabled edges.
//!
//! The block's own logic but `ctl`, `lc` and `la$<l>` (the MATMUL control,
//! what enters the skew buffers, the memories and their ports) is a custom
//! Verilog block whose Rust `update()` behaves
//! identically (the generated Verilog is checked against this simulation by
//! `hw/tests/compute_verilog.rs`); its children are `#[hdl_gen]` blocks,
//! simulated and generated from one source: the descriptor control
//! ([`Ctl`], `ctl`), the lane pipeline's control ([`LaneCtl`], `lc`;
//! [`LaneAddr`], `la$<l>`), the PEs ([`Pe`], [`PeDb`],
//! [`PeOs`]: `pe$<r*C+c>`, `pd$<n>`, `po$<n>`), the skew and deskew buffers
//! ([`Delay`]: `sk$<r>`, `skf$<r>`, `wsk$<c>`, `dsk$<c>`) and the lanes
//! ([`Lane`], `lane$<l>`, each with its multiplier [`SMul32`], a one-line
//! custom block).
//!
//! Data results equal the model's bulk computation (`npukit_sim::mac`,
//! `npukit_sim::act`) for every program in which accesses to the same bytes by
//! different units are ordered by tokens and each descriptor's input and output
//! ranges are equal or disjoint (docs/rtl.md, end).

pub mod ctl;
pub mod delay;
pub mod lane;
pub mod lanectl;
pub mod mem;
pub mod pe;
pub mod smul;
mod verilog;

use std::fmt;

use npukit_sim::{Dataflow, NpuConfig};
use rust_hdl::core::bitvec::BitVec;
use rust_hdl::prelude::*;

pub use ctl::Ctl;
pub use delay::Delay;
pub use lane::Lane;
pub use lanectl::{LaneAddr, LaneCtl};
pub use mem::ByteMem;
pub use pe::{Pe, PeDb, PeOs};
pub use smul::SMul32;

const OP_MATMUL: u32 = 3;
const OP_ACT: u32 = 4;
const OP_ADD: u32 = 5;
const OP_MAX: u32 = 6;

/// Width of the DMA data ports in bytes.
pub const DMA_PORT_BYTES: u32 = 64;

/// The hardware parameters the compute unit is built for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ComputeParams {
    /// Array rows `R` (reduction depth of one fold).
    pub rows: u32,
    /// Array columns `C` (output columns of one fold, activation lanes).
    pub cols: u32,
    pub spad_bytes: u32,
    pub acc_bytes: u32,
    /// DMA beat width `B` in bytes.
    pub beat_bytes: u32,
    /// The MAC array's dataflow (docs/timing.md, rule C1).
    pub dataflow: Dataflow,
    /// A second weight bank per PE (rule C1b; weight-stationary only).
    pub weight_double_buffer: bool,
}

impl ComputeParams {
    /// The parameters of a (validated) configuration.
    pub fn from_config(cfg: &NpuConfig) -> Self {
        ComputeParams {
            rows: cfg.array.rows,
            cols: cfg.array.cols,
            spad_bytes: cfg.memory.spad_bytes,
            acc_bytes: cfg.memory.acc_bytes,
            beat_bytes: cfg.dma.beat_bytes,
            dataflow: cfg.array.dataflow,
            weight_double_buffer: cfg.array.weight_double_buffer,
        }
    }

    fn check(&self) -> Result<(), ComputeError> {
        let bad = |field: &'static str, value: u32, need: &'static str| {
            Err(ComputeError { field, value, need })
        };
        if !(1..=256).contains(&self.rows) {
            return bad("rows", self.rows, "1..=256");
        }
        if !(1..=256).contains(&self.cols) {
            return bad("cols", self.cols, "1..=256");
        }
        if self.spad_bytes == 0 {
            return bad("spad_bytes", self.spad_bytes, ">= 1");
        }
        if self.acc_bytes < 4 || !self.acc_bytes.is_multiple_of(4) {
            return bad("acc_bytes", self.acc_bytes, "a multiple of 4, >= 4");
        }
        if !(1..=DMA_PORT_BYTES).contains(&self.beat_bytes) {
            return bad("beat_bytes", self.beat_bytes, "1..=64");
        }
        if self.weight_double_buffer && self.dataflow != Dataflow::WeightStationary {
            return bad("weight_double_buffer", 1, "the weight-stationary dataflow");
        }
        Ok(())
    }

    fn os(&self) -> bool {
        self.dataflow == Dataflow::OutputStationary
    }

    /// Output-stationary tile period `P = max(R, C)` (rule C1c).
    fn period(&self) -> u32 {
        self.rows.max(self.cols)
    }
}

/// A parameter the compute unit cannot be built with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ComputeError {
    pub field: &'static str,
    pub value: u32,
    pub need: &'static str,
}

impl fmt::Display for ComputeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "compute unit: {} = {} is not supported (need {})",
            self.field, self.value, self.need
        )
    }
}

impl std::error::Error for ComputeError {}

/// The registered state of the compute unit (the Verilog `reg`s of the custom
/// block, in the same names without the `_q` suffix). `busy`, `d`, `cnt` and
/// `lat` are a copy of `ctl`'s registers, `sa` and `sb` of `lc`'s (their
/// outputs, [`Compute::sync_ctl`]).
#[derive(Debug, Clone)]
struct State {
    spad: Vec<u8>,
    acc: Vec<u8>,
    busy: bool,
    d: [u32; 8],
    cnt: u32,
    lat: u32,
    sa: u32,
    sb: u32,
    /// Weight-stationary: the cycle (`cnt`) in which the A stream starts; `R`
    /// without weight double-buffering (rule C1b).
    so: u32,
    /// C1b: the weight bank of the MATMUL in execution.
    bank: bool,
    /// C1b weight loader: loading (`lc` = 1..=R in the cycles of its shifts),
    /// W address, K and N of the load, the bank it loads (or loaded last), and
    /// whether it has started a load for the compute-queue head.
    lb: bool,
    lc: u32,
    lw: u32,
    lk: u32,
    ln: u32,
    lbank: bool,
    pf: bool,
    /// C1c: feed step `fq` of tile `fj`, write delay `wd`, write slot `wq` of
    /// tile `wj`.
    fq: u32,
    fj: u32,
    wd: u32,
    wq: u32,
    wj: u32,
    /// Bumped at every memory change (for the DMA read cache).
    version: u64,
}

/// What enters the skew buffers (see [`State::feed`]).
struct Feed {
    a: Vec<u8>,
    f: Vec<bool>,
    w: Vec<u8>,
}

/// The memory reads of one lane (see [`State::lane_reads`]).
struct LaneReads {
    acc: u32,
    bias: u32,
    qm: u32,
    qs: u8,
    ea: u8,
    eb: u8,
    old: u32,
}

impl State {
    fn new(p: &ComputeParams) -> Self {
        State {
            spad: vec![0; p.spad_bytes as usize],
            acc: vec![0; p.acc_bytes as usize],
            busy: false,
            d: [0; 8],
            cnt: 0,
            lat: 0,
            sa: 0,
            sb: 0,
            so: p.rows,
            bank: false,
            lb: false,
            lc: 0,
            lw: 0,
            lk: 0,
            ln: 0,
            lbank: false,
            pf: false,
            fq: 0,
            fj: 0,
            wd: 0,
            wq: 0,
            wj: 0,
            version: 0,
        }
    }

    fn sp8(&self, a: u32) -> u8 {
        self.spad.get(a as usize).copied().unwrap_or(0)
    }

    fn ac8(&self, a: u32) -> u8 {
        self.acc.get(a as usize).copied().unwrap_or(0)
    }

    fn ac32(&self, a: u32) -> u32 {
        u32::from_le_bytes([
            self.ac8(a),
            self.ac8(a.wrapping_add(1)),
            self.ac8(a.wrapping_add(2)),
            self.ac8(a.wrapping_add(3)),
        ])
    }

    fn op(&self) -> u32 {
        self.d[0] & 0xFF
    }

    fn flag(&self, bit: u32) -> bool {
        (self.d[0] >> (12 + bit)) & 1 == 1
    }

    /// What enters the skew buffers at this edge: per array row the A byte
    /// and its flag (C1b: the bank bit; C1c: the first-operand flag), per
    /// column the W byte (C1c only).
    fn feed(&self, p: &ComputeParams) -> Feed {
        let (rows, cols) = (p.rows, p.cols);
        let (mk, mm_n, mm_m) = (self.d[4] >> 16, self.d[5] & 0xFFFF, self.d[4] & 0xFFFF);
        let mm = self.busy && self.op() == OP_MATMUL;
        if p.os() {
            let base = self.fj.wrapping_mul(rows);
            let feed = mm && self.fq < mk && base < mm_m;
            let first = mm && self.fq == 0 && base < mm_m.wrapping_add(rows);
            let a = (0..rows)
                .map(|r| {
                    let row = base.wrapping_add(r);
                    if feed && row < mm_m {
                        self.sp8(
                            self.d[1]
                                .wrapping_add(row.wrapping_mul(mk))
                                .wrapping_add(self.fq),
                        )
                    } else {
                        0
                    }
                })
                .collect();
            let w = (0..cols)
                .map(|c| {
                    if feed && c < mm_n {
                        self.sp8(
                            self.d[2]
                                .wrapping_add(self.fq.wrapping_mul(mm_n))
                                .wrapping_add(c),
                        )
                    } else {
                        0
                    }
                })
                .collect();
            return Feed {
                a,
                f: vec![first; rows as usize],
                w,
            };
        }
        let stream = self.stream();
        let a = (0..rows)
            .map(|r| {
                if stream && r < mk {
                    self.sp8(self.sa.wrapping_add(r))
                } else {
                    0
                }
            })
            .collect();
        Feed {
            a,
            f: vec![stream && self.bank; rows as usize],
            w: Vec::new(),
        }
    }

    /// The unit accepts an issue in this cycle (idle, or completing).
    fn free(&self) -> bool {
        !self.busy || self.cnt == self.lat
    }

    /// C1b: the weight loader starts a load for the head `desc` in this
    /// cycle (the head is ready and a MATMUL, no load started for it yet,
    /// the loader idle or in its last shift, the unit free or running a
    /// MATMUL).
    fn loader_start(&self, p: &ComputeParams, head_ready: bool, desc: &[u32; 8]) -> bool {
        let mm = self.busy && self.op() == OP_MATMUL;
        p.weight_double_buffer
            && head_ready
            && desc[0] & 0xFF == OP_MATMUL
            && !self.pf
            && (!self.lb || self.lc == p.rows)
            && (self.free() || mm)
    }

    /// C1b: the A stream offset `so` of a MATMUL issued in this cycle (`R`
    /// when its load starts now, else the shifts its load has left, at
    /// least 1).
    fn issue_offset(&self, p: &ComputeParams, ls: bool) -> u32 {
        if ls {
            p.rows
        } else if self.lb {
            let left = p.rows.wrapping_sub(self.lc);
            if left == 0 {
                1
            } else {
                left
            }
        } else {
            1
        }
    }

    /// Weight-stationary: a row of A enters the skew buffer at this edge.
    fn stream(&self) -> bool {
        let mm_m = self.d[4] & 0xFFFF;
        let mm = self.busy && self.op() == OP_MATMUL;
        mm && self.cnt >= self.so && self.cnt < self.so.wrapping_add(mm_m)
    }

    /// C1a: an output row leaves the deskew buffers at this edge.
    fn row_out_ws(&self, p: &ComputeParams) -> bool {
        let mm = self.busy && self.op() == OP_MATMUL;
        mm && self.cnt >= self.so.wrapping_add(p.rows + p.cols - 1)
    }

    /// What `Compute` reads from the memories for a lane at the addresses
    /// of its [`LaneAddr`] (the inputs of [`Lane`]).
    fn lane_reads(&self, la: &LaneAddr) -> LaneReads {
        let u = |s: &Signal<Out, Bits<32>>| s.val().to_u32();
        let qa = u(&la.qta);
        LaneReads {
            acc: if la.aok.val() {
                self.ac32(u(&la.asrc))
            } else {
                0
            },
            bias: if la.bok.val() {
                self.ac32(u(&la.abia))
            } else {
                0
            },
            qm: if la.qok.val() { self.ac32(qa) } else { 0 },
            qs: if la.qok.val() {
                self.ac8(qa.wrapping_add(4))
            } else {
                0
            },
            ea: if la.eok.val() {
                self.sp8(u(&la.eaa))
            } else {
                0
            },
            eb: if la.eok.val() {
                self.sp8(u(&la.eba))
            } else {
                0
            },
            old: self.ac32(u(&la.wav)),
        }
    }

    /// Queues the int32 `v` (plus the old value with ACCUMULATE, flag 0) for
    /// the accumulator memory at `a`.
    fn write_acc32(&self, ac_w: &mut Vec<(u32, u8)>, a: u32, v: u32) {
        let v = if self.flag(0) {
            v.wrapping_add(self.ac32(a))
        } else {
            v
        };
        for (b, byte) in v.to_le_bytes().into_iter().enumerate() {
            ac_w.push((a.wrapping_add(b as u32), byte));
        }
    }
}

/// Latency of a descriptor (raw words) on an `R x C` unit, as the hardware
/// computes it at issue (rules C1-C3; 1 for anything else), for a MATMUL
/// whose weight load starts at its issue.
pub fn latency(p: &ComputeParams, d: &[u32; 8]) -> u32 {
    latency_with(p, d, p.rows)
}

/// [`latency`] of a weight-stationary MATMUL whose A stream starts `so`
/// cycles after its issue (`R`, or less with weight double-buffering: C1b).
pub fn latency_with(p: &ComputeParams, d: &[u32; 8], so: u32) -> u32 {
    let (r, c) = (p.rows as u64, p.cols as u64);
    let lo = (d[4] & 0xFFFF) as u64;
    let hi = (d[4] >> 16) as u64;
    let v = match d[0] & 0xFF {
        OP_MATMUL if p.os() => lo.div_ceil(r) * p.period() as u64 + r + c + 1,
        OP_MATMUL => so as u64 + r + c - 2 + lo,
        OP_ACT => lo * hi.div_ceil(c) + 2,
        OP_ADD | OP_MAX => (d[4] as u64).div_ceil(c) + 2,
        _ => 1,
    };
    v as u32
}

/// Requantisation tail on a 64-bit product (rounding shift, zero point, clamp),
/// exactly as the write stage computes it: the rounding shift in 66 bits (so
/// `p + 2^(shift-1)` cannot overflow), 0 for every shift above 63 (a table's
/// shift is data: any 0..=255 is defined, see `npukit_sim::act`).
pub fn requant_tail(p: u64, shift: u32, zp: u8, relu: bool) -> u8 {
    let p = p as i64;
    let r = match shift {
        0 => p,
        1..=63 => ((p as i128 + (1i128 << (shift - 1))) >> shift) as i64,
        _ => 0,
    };
    let y = r.wrapping_add(zp as i8 as i64);
    let lo = if relu { zp as i8 as i64 } else { -128 };
    let y = if y < lo {
        lo
    } else if y > 127 {
        127
    } else {
        y
    };
    y as u8
}

/// `sat32(a + b)` on two's-complement 32-bit values.
pub fn sat_add32(a: u32, b: u32) -> u32 {
    (a as i32 as i64 + b as i32 as i64).clamp(i32::MIN as i64, i32::MAX as i64) as u32
}

/// The compute unit (see the module documentation).
#[derive(LogicBlock)]
pub struct Compute {
    pub clock: Signal<In, Clock>,
    pub enable: Signal<In, Bit>,
    pub clear: Signal<In, Bit>,
    pub issue: Signal<In, Bit>,
    pub desc: Signal<In, Bits<256>>,
    /// `desc` is the compute queue's head and every counter it waits on is
    /// nonzero (the weight loader of rule C1b may start on it).
    pub head_ready: Signal<In, Bit>,
    pub busy: Signal<Out, Bit>,
    pub done: Signal<Out, Bit>,
    pub dma_wr: Signal<In, Bit>,
    pub dma_wr_acc: Signal<In, Bit>,
    pub dma_wr_addr: Signal<In, Bits<32>>,
    pub dma_wr_len: Signal<In, Bits<8>>,
    pub dma_wr_data: Signal<In, Bits<512>>,
    pub dma_rd_acc: Signal<In, Bit>,
    pub dma_rd_addr: Signal<In, Bits<32>>,
    pub dma_rd_data: Signal<Out, Bits<512>>,
    /// The descriptor control: descriptor register, cycle counter, latency,
    /// `busy`, `done` (rules C1-C3).
    pub ctl: Ctl,
    /// The weight-stationary array, row-major: PE `(r, c)` is `pe[r * C + c]`
    /// (empty in the other variants).
    pub pe: Vec<Pe>,
    /// The same with two weight banks (weight double-buffering).
    pub pd: Vec<PeDb>,
    /// The output-stationary array.
    pub po: Vec<PeOs>,
    /// The skew buffer of array row `r` (`r + 1` stages; the last feeds PE
    /// `(r, 0)`), and beside it the bank bit (C1b) or first-operand flag
    /// (C1c; empty without either).
    pub sk: Vec<Delay<8>>,
    pub skf: Vec<Delay<1>>,
    /// C1c: the skew buffer of column `c` (`c + 1` stages, into PE `(0, c)`).
    pub wsk: Vec<Delay<8>>,
    /// Weight-stationary: the deskew buffer of column `c < C - 1`
    /// (`C - 1 - c` stages after the bottom PE).
    pub dsk: Vec<Delay<32>>,
    /// The activation / ADD / MAX lanes.
    pub lane: Vec<Lane>,
    /// The lane pipeline's control and each lane's addresses.
    pub lc: LaneCtl,
    pub la: Vec<LaneAddr>,
    _p: ComputeParams,
    _st: State,
    _rd_cache: Option<(bool, u32, u64)>,
}

impl fmt::Debug for Compute {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Compute")
            .field("params", &self._p)
            .finish_non_exhaustive()
    }
}

/// The bytes of a wide value, byte 0 in bits 7:0.
pub fn bits_to_bytes<const N: usize>(b: &Bits<N>) -> Vec<u8> {
    (0..N / 8)
        .map(|i| (0..8).fold(0u8, |acc, j| acc | ((b.get_bit(8 * i + j) as u8) << j)))
        .collect()
}

/// A wide value from bytes (byte 0 in bits 7:0; missing bytes are zero).
pub fn bytes_to_bits<const N: usize>(bytes: &[u8]) -> Bits<N> {
    if N <= 64 {
        let mut v = 0u64;
        for (i, &b) in bytes.iter().enumerate().take(N.div_ceil(8)) {
            v |= (b as u64) << (8 * i);
        }
        if N < 64 {
            v &= (1u64 << N) - 1;
        }
        Bits::<N>::from(v)
    } else {
        let mut a = [false; N];
        for (i, bit) in a.iter_mut().enumerate() {
            *bit = bytes.get(i / 8).is_some_and(|b| (b >> (i % 8)) & 1 == 1);
        }
        Bits::Long(BitVec::from(a))
    }
}

/// The eight little-endian words of a descriptor bus.
pub fn desc_words(b: &Bits<256>) -> [u32; 8] {
    let by = bits_to_bytes(b);
    let mut w = [0u32; 8];
    for (i, w) in w.iter_mut().enumerate() {
        *w = u32::from_le_bytes([by[4 * i], by[4 * i + 1], by[4 * i + 2], by[4 * i + 3]]);
    }
    w
}

impl Compute {
    /// A compute unit for these parameters.
    pub fn new(p: ComputeParams) -> Result<Self, ComputeError> {
        p.check()?;
        let (r, c) = (p.rows as usize, p.cols as usize);
        Ok(Compute {
            clock: Default::default(),
            enable: Default::default(),
            clear: Default::default(),
            issue: Default::default(),
            desc: Default::default(),
            head_ready: Default::default(),
            busy: Default::default(),
            done: Default::default(),
            dma_wr: Default::default(),
            dma_wr_acc: Default::default(),
            dma_wr_addr: Default::default(),
            dma_wr_len: Default::default(),
            dma_wr_data: Default::default(),
            dma_rd_acc: Default::default(),
            dma_rd_addr: Default::default(),
            dma_rd_data: Default::default(),
            ctl: Ctl::new(p.rows, p.cols, p.os(), p.weight_double_buffer),
            pe: (0..r * c)
                .filter(|_| !p.os() && !p.weight_double_buffer)
                .map(|_| Pe::default())
                .collect(),
            pd: (0..r * c)
                .filter(|_| p.weight_double_buffer)
                .map(|_| PeDb::default())
                .collect(),
            po: (0..r * c)
                .filter(|_| p.os())
                .map(|_| PeOs::default())
                .collect(),
            sk: (0..r).map(|i| Delay::new(i + 1)).collect(),
            skf: (0..r)
                .filter(|_| p.os() || p.weight_double_buffer)
                .map(|i| Delay::new(i + 1))
                .collect(),
            wsk: (0..c)
                .filter(|_| p.os())
                .map(|j| Delay::new(j + 1))
                .collect(),
            dsk: (0..c.saturating_sub(1))
                .filter(|_| !p.os())
                .map(|j| Delay::new(c - 1 - j))
                .collect(),
            lane: (0..c).map(|_| Lane::default()).collect(),
            lc: LaneCtl::new(p.cols),
            la: (0..p.cols).map(LaneAddr::new).collect(),
            _p: p,
            _st: State::new(&p),
            _rd_cache: None,
        })
    }

    /// The parameters this unit was built with.
    pub fn params(&self) -> ComputeParams {
        self._p
    }

    /// The scratchpad contents (simulation only).
    pub fn spad(&self) -> &[u8] {
        &self._st.spad
    }

    /// The accumulator memory contents (simulation only).
    pub fn acc(&self) -> &[u8] {
        &self._st.acc
    }

    /// Copies `ctl`'s registers (its outputs) into the state view.
    fn sync_ctl(&mut self) {
        let st = &mut self._st;
        st.busy = self.ctl.busy.val();
        st.cnt = self.ctl.cnt.val().to_u32();
        st.lat = self.ctl.lat.val().to_u32();
        let d = self.ctl.d.val();
        for (i, w) in st.d.iter_mut().enumerate() {
            *w = d.get_bits::<32>(32 * i).to_u32();
        }
        st.sa = self.lc.sa.val().to_u32();
        st.sb = self.lc.sb.val().to_u32();
    }

    /// Drives the lane pipeline control `lc` and the lanes' address blocks
    /// `la$<l>` from `ctl`'s descriptor and the MATMUL's pointer steps.
    fn drive_lane_ctl(&mut self) {
        let p = self._p;
        let st = &self._st;
        let desc = desc_words(&self.desc.val());
        let w = |v: u32| Bits::<32>::from(v as u64);
        let (mm_sa, mm_sb) = if p.os() {
            (false, false)
        } else {
            (st.stream(), st.row_out_ws(&p))
        };
        let lc = &mut self.lc;
        lc.clock.next = self.clock.val();
        lc.enable.next = self.enable.val();
        lc.clear.next = self.clear.val();
        lc.start.next = self.issue.val() && self.ctl.free.val();
        lc.start_mm.next = desc[0] & 0xFF == OP_MATMUL;
        lc.start_a.next = w(desc[1]);
        lc.start_c.next = w(desc[3]);
        lc.busy.next = st.busy;
        lc.op.next = Bits::<8>::from(st.op() as u64);
        lc.w2.next = w(st.d[2]);
        lc.w3.next = w(st.d[3]);
        lc.w4.next = w(st.d[4]);
        lc.mn.next = Bits::<16>::from((st.d[5] & 0xFFFF) as u64);
        lc.cnt.next = w(st.cnt);
        lc.lat.next = w(st.lat);
        lc.mm_sa.next = mm_sa;
        lc.mm_sb.next = mm_sb;
        let (sa, sb, sg) = (lc.sa.val(), lc.sb.val(), lc.sg.val());
        let (v2, wa2, wn2) = (lc.v2.val(), lc.wa2.val(), lc.wn2.val());
        for la in &mut self.la {
            la.op.next = Bits::<8>::from(st.op() as u64);
            la.f1.next = st.flag(1);
            la.f2.next = st.flag(2);
            la.w1.next = w(st.d[1]);
            la.w2.next = w(st.d[2]);
            la.w3.next = w(st.d[3]);
            la.w4.next = w(st.d[4]);
            la.w7.next = w(st.d[7]);
            la.sa.next = sa;
            la.sb.next = sb;
            la.sg.next = sg;
            la.v2.next = v2;
            la.wa2.next = wa2;
            la.wn2.next = wn2;
        }
    }

    /// The byte pushed into the top of column `c` while weights shift in.
    fn weight_push(&self, c: u32) -> u8 {
        let st = &self._st;
        if self._p.weight_double_buffer {
            let wrow = self._p.rows.wrapping_sub(st.lc);
            return if wrow < st.lk && c < st.ln {
                st.sp8(st.lw.wrapping_add(wrow.wrapping_mul(st.ln)).wrapping_add(c))
            } else {
                0
            };
        }
        let (k, n) = (st.d[4] >> 16, st.d[5] & 0xFFFF);
        let wrow = self._p.rows.wrapping_sub(st.cnt);
        if wrow < k && c < n {
            st.sp8(st.d[2].wrapping_add(wrow.wrapping_mul(n)).wrapping_add(c))
        } else {
            0
        }
    }

    /// Drives the outputs and the children's inputs from the current state.
    #[allow(clippy::needless_range_loop)] // indices mirror the Verilog
    fn drive(&mut self) {
        let (r, c) = (self._p.rows as usize, self._p.cols as usize);
        let clock = self.clock.val();
        let en = self.enable.val();
        self.sync_ctl();
        let iso = if self._p.weight_double_buffer {
            let desc = desc_words(&self.desc.val());
            let ls = self
                ._st
                .loader_start(&self._p, self.head_ready.val(), &desc);
            self._st.issue_offset(&self._p, ls)
        } else {
            0
        };
        let ctl = &mut self.ctl;
        ctl.clock.next = clock;
        ctl.enable.next = en;
        ctl.clear.next = self.clear.val();
        ctl.issue.next = self.issue.val();
        ctl.desc.next = self.desc.val();
        ctl.iso.next = Bits::<32>::from(iso as u64);
        // Skew and deskew buffers (they shift like the block's registers).
        let den = en && !self.clear.val();
        let feed = self._st.feed(&self._p);
        for (i, l) in self.sk.iter_mut().enumerate() {
            l.clock.next = clock;
            l.en.next = den;
            l.d.next = Bits::<8>::from(feed.a[i] as u64);
        }
        for (i, l) in self.skf.iter_mut().enumerate() {
            l.clock.next = clock;
            l.en.next = den;
            l.d.next = Bits::<1>::from(feed.f[i] as u64);
        }
        for (j, l) in self.wsk.iter_mut().enumerate() {
            l.clock.next = clock;
            l.en.next = den;
            l.d.next = Bits::<8>::from(feed.w[j] as u64);
        }
        let last = (r - 1) * c;
        for (j, l) in self.dsk.iter_mut().enumerate() {
            l.clock.next = clock;
            l.en.next = den;
            l.d.next = match (self.pe.get(last + j), self.pd.get(last + j)) {
                (Some(pe), _) => pe.sum.val(),
                (None, Some(pe)) => pe.sum.val(),
                (None, None) => Bits::<32>::from(0u64),
            };
        }
        if self._p.os() {
            self.drive_os();
        } else if self._p.weight_double_buffer {
            self.drive_db();
        }
        let st = &self._st;
        let mm = st.busy && st.op() == OP_MATMUL;
        let wshift = mm && st.cnt >= 1 && st.cnt <= self._p.rows;
        let pushes: Vec<u8> = (0..c as u32).map(|j| self.weight_push(j)).collect();
        let rows_ws = if self.pe.is_empty() { 0 } else { r };
        for i in 0..rows_ws {
            for j in 0..c {
                let n = i * c + j;
                let w_in = if i == 0 {
                    Bits::<8>::from(pushes[j] as u64)
                } else {
                    self.pe[n - c].w_out.val()
                };
                let a_in = if j == 0 {
                    self.sk[i].q.val()
                } else {
                    self.pe[n - 1].a_out.val()
                };
                let psum_in = if i == 0 {
                    Bits::<32>::from(0u64)
                } else {
                    self.pe[n - c].psum_out.val()
                };
                let pe = &mut self.pe[n];
                pe.clock.next = clock;
                pe.en.next = en;
                pe.w_shift.next = wshift;
                pe.w_in.next = w_in;
                pe.a_in.next = a_in;
                pe.psum_in.next = psum_in;
            }
        }
        self.drive_lane_ctl();
        let st = &self._st;
        let op = st.op();
        let rd = self.lc.rd.val();
        let lane_en = en && !self.clear.val();
        for (l, ln) in self.lane.iter_mut().enumerate() {
            let x = st.lane_reads(&self.la[l]);
            ln.clock.next = clock;
            ln.en.next = lane_en;
            ln.ld.next = rd;
            ln.is_act.next = op == OP_ACT;
            ln.is_add.next = op == OP_ADD;
            ln.is_max.next = op == OP_MAX;
            ln.f0.next = st.flag(0);
            ln.f2.next = st.flag(2);
            ln.w5.next = Bits::<32>::from(st.d[5] as u64);
            ln.w6.next = Bits::<32>::from(st.d[6] as u64);
            ln.acc.next = Bits::<32>::from(x.acc as u64);
            ln.bias.next = Bits::<32>::from(x.bias as u64);
            ln.qm.next = Bits::<32>::from(x.qm as u64);
            ln.qs.next = Bits::<8>::from(x.qs as u64);
            ln.ea.next = Bits::<8>::from(x.ea as u64);
            ln.eb.next = Bits::<8>::from(x.eb as u64);
            ln.old.next = Bits::<32>::from(x.old as u64);
        }
        self.busy.next = self.ctl.busy.val();
        self.done.next = self.ctl.done.val();
        let key = (
            self.dma_rd_acc.val(),
            self.dma_rd_addr.val().to_u32(),
            st.version,
        );
        if self._rd_cache != Some(key) {
            let (acc, addr) = (key.0, key.1);
            let bytes: Vec<u8> = (0..self._p.beat_bytes)
                .map(|i| {
                    let a = addr.wrapping_add(i);
                    if acc {
                        st.ac8(a)
                    } else {
                        st.sp8(a)
                    }
                })
                .collect();
            self.dma_rd_data.next = bytes_to_bits::<512>(&bytes);
            self._rd_cache = Some(key);
        }
    }

    /// [`Compute::drive`] for the double-buffered weight-stationary array.
    #[allow(clippy::needless_range_loop)] // indices mirror the Verilog
    fn drive_db(&mut self) {
        let (r, c) = (self._p.rows as usize, self._p.cols as usize);
        let (clock, en) = (self.clock.val(), self.enable.val());
        let pushes: Vec<u8> = (0..c as u32).map(|j| self.weight_push(j)).collect();
        let st = &self._st;
        for i in 0..r {
            for j in 0..c {
                let n = i * c + j;
                let w_in = if i == 0 {
                    Bits::<8>::from(pushes[j] as u64)
                } else {
                    self.pd[n - c].w_out.val()
                };
                let (a_in, sel_in) = if j == 0 {
                    (self.sk[i].q.val(), self.skf[i].q.val().get_bit(0))
                } else {
                    (self.pd[n - 1].a_out.val(), self.pd[n - 1].sel_out.val())
                };
                let psum_in = if i == 0 {
                    Bits::<32>::from(0u64)
                } else {
                    self.pd[n - c].psum_out.val()
                };
                let pe = &mut self.pd[n];
                pe.clock.next = clock;
                pe.en.next = en;
                pe.w_shift.next = st.lb;
                pe.w_bank.next = st.lbank;
                pe.w_in.next = w_in;
                pe.a_in.next = a_in;
                pe.sel_in.next = sel_in;
                pe.psum_in.next = psum_in;
            }
        }
    }

    /// [`Compute::drive`] for the output-stationary array.
    #[allow(clippy::needless_range_loop)] // indices mirror the Verilog
    fn drive_os(&mut self) {
        let (r, c) = (self._p.rows as usize, self._p.cols as usize);
        let (clock, en) = (self.clock.val(), self.enable.val());
        for i in 0..r {
            for j in 0..c {
                let n = i * c + j;
                let (a_in, f_in) = if j == 0 {
                    (self.sk[i].q.val(), self.skf[i].q.val().get_bit(0))
                } else {
                    (self.po[n - 1].a_out.val(), self.po[n - 1].f_out.val())
                };
                let w_in = if i == 0 {
                    self.wsk[j].q.val()
                } else {
                    self.po[n - c].w_out.val()
                };
                let pe = &mut self.po[n];
                pe.clock.next = clock;
                pe.en.next = en;
                pe.a_in.next = a_in;
                pe.w_in.next = w_in;
                pe.f_in.next = f_in;
            }
        }
    }

    /// The state change at a rising edge (inputs and children's outputs are
    /// those before the edge).
    #[allow(clippy::needless_range_loop)] // indices mirror the Verilog
    fn edge(&mut self) {
        let p = self._p;
        let (rows, cols) = (p.rows, p.cols);
        if self.clear.val() {
            let st = &mut self._st;
            st.spad.iter_mut().for_each(|b| *b = 0);
            st.acc.iter_mut().for_each(|b| *b = 0);
            st.lb = false;
            st.pf = false;
            st.version += 1;
            return;
        }
        if !self.enable.val() {
            return;
        }
        let last = (rows as usize - 1) * cols as usize;
        // The aligned output row: the deskew buffers' ends, and the last
        // column's bottom PE.
        let dout: Vec<u32> = (0..cols as usize)
            .map(|j| {
                match (
                    self.dsk.get(j),
                    self.pe.get(last + j),
                    self.pd.get(last + j),
                ) {
                    (Some(l), _, _) => l.q.val().to_u32(),
                    (None, Some(pe), _) => pe.sum.val().to_u32(),
                    (None, None, Some(pe)) => pe.sum.val().to_u32(),
                    (None, None, None) => 0,
                }
            })
            .collect();
        let outs: Vec<u32> = self.po.iter().map(|pe| pe.o.val().to_u32()).collect();
        let head_ready = self.head_ready.val();
        let lane_out: Vec<(u8, u32)> = self
            .lane
            .iter()
            .map(|l| (l.q8.val().to_u8(), l.q32.val().to_u32()))
            .collect();
        let issue = self.issue.val();
        let desc = desc_words(&self.desc.val());
        let dma = if self.dma_wr.val() {
            Some((
                self.dma_wr_acc.val(),
                self.dma_wr_addr.val().to_u32(),
                self.dma_wr_len.val().to_u32(),
                bits_to_bytes(&self.dma_wr_data.val()),
            ))
        } else {
            None
        };
        self.sync_ctl();
        let old = self._st.clone();
        let st = &mut self._st;
        // Memory writes, applied in order after everything has read `old`.
        let mut sp_w: Vec<(u32, u8)> = Vec::new();
        let mut ac_w: Vec<(u32, u8)> = Vec::new();

        if p.os() {
            Self::edge_os(&p, &old, st, &outs, &mut ac_w);
        } else {
            Self::edge_ws(&p, &old, &dout, &mut ac_w);
        }

        // The lanes' results at their write enables (the read stage and
        // stage 2 are `lc`'s and the lanes' registers).
        for (l, la) in self.la.iter().enumerate() {
            let (q8, q32) = lane_out[l];
            if la.we8.val() {
                sp_w.push((la.wsb.val().to_u32(), q8));
            }
            if la.we32.val() {
                let a = la.wav.val().to_u32();
                for (b, byte) in q32.to_le_bytes().into_iter().enumerate() {
                    ac_w.push((a.wrapping_add(b as u32), byte));
                }
            }
        }

        // Descriptor sequencing (the register, counter and latency are
        // `ctl`'s).
        let free = old.free();
        let is_mm = desc[0] & 0xFF == OP_MATMUL;
        // C1b: the weight loader (start, shifts).
        let ls = old.loader_start(&p, head_ready, &desc);
        if old.lb {
            if old.lc == rows {
                st.lb = false;
            } else {
                st.lc = old.lc.wrapping_add(1);
            }
        }
        if ls {
            st.lb = true;
            st.lc = 1;
            st.lw = desc[2];
            st.lk = desc[4] >> 16;
            st.ln = desc[5] & 0xFFFF;
            st.lbank = !old.lbank;
            st.pf = true;
        }
        if issue && free {
            if p.weight_double_buffer && is_mm {
                st.so = old.issue_offset(&p, ls);
                st.bank = if ls { !old.lbank } else { old.lbank };
                st.pf = false;
            }
            st.fq = 0;
            st.fj = 0;
            st.wd = p.period().wrapping_add(cols).wrapping_add(1);
            st.wq = 0;
            st.wj = 0;
        }

        // DMA write (after the compute writes).
        if let Some((acc, addr, len, data)) = dma {
            for i in 0..DMA_PORT_BYTES {
                if i < len {
                    let w = (addr.wrapping_add(i), data[i as usize]);
                    if acc {
                        ac_w.push(w);
                    } else {
                        sp_w.push(w);
                    }
                }
            }
        }
        if !sp_w.is_empty() || !ac_w.is_empty() {
            st.version += 1;
        }
        for (a, v) in sp_w {
            if let Some(b) = st.spad.get_mut(a as usize) {
                *b = v;
            }
        }
        for (a, v) in ac_w {
            if let Some(b) = st.acc.get_mut(a as usize) {
                *b = v;
            }
        }
    }
}

impl Compute {
    /// The weight-stationary MATMUL's output rows at an edge (`dout`: the
    /// deskew buffers' ends; the A stream's and the output rows' pointers
    /// step in `lc`, driven by [`State::stream`] and [`State::row_out_ws`]).
    fn edge_ws(p: &ComputeParams, old: &State, dout: &[u32], ac_w: &mut Vec<(u32, u8)>) {
        let mm_n = old.d[5] & 0xFFFF;
        if old.row_out_ws(p) {
            for c in 0..p.cols.min(mm_n) {
                let a = old.sb.wrapping_add(4 * c);
                old.write_acc32(ac_w, a, dout[c as usize]);
            }
        }
    }

    /// The output-stationary MATMUL datapath at an edge (rule C1c): tile
    /// counters (the operands entering the skew buffers are
    /// [`State::feed`]'s), output-row writes from the PEs' output registers
    /// (`outs`, row-major).
    #[allow(clippy::needless_range_loop)] // indices mirror the Verilog
    fn edge_os(
        p: &ComputeParams,
        old: &State,
        st: &mut State,
        outs: &[u32],
        ac_w: &mut Vec<(u32, u8)>,
    ) {
        let (rows, cols, per) = (p.rows, p.cols, p.period());
        let (mm_n, mm_m) = (old.d[5] & 0xFFFF, old.d[4] & 0xFFFF);
        let mm = old.busy && old.op() == OP_MATMUL;
        if !mm {
            return;
        }
        if old.fq.wrapping_add(1) == per {
            st.fq = 0;
            st.fj = old.fj.wrapping_add(1);
        } else {
            st.fq = old.fq.wrapping_add(1);
        }
        if old.wd != 0 {
            st.wd = old.wd.wrapping_sub(1);
            return;
        }
        if old.wq.wrapping_add(1) == per {
            st.wq = 0;
            st.wj = old.wj.wrapping_add(1);
        } else {
            st.wq = old.wq.wrapping_add(1);
        }
        let row = old.wj.wrapping_mul(rows).wrapping_add(old.wq);
        if old.wq < rows && row < mm_m {
            for c in 0..cols {
                if c < mm_n {
                    let v = outs[(old.wq * cols + c) as usize];
                    let a = old.d[3]
                        .wrapping_add(4u32.wrapping_mul(mm_n.wrapping_mul(row).wrapping_add(c)));
                    old.write_acc32(ac_w, a, v);
                }
            }
        }
    }
}

impl Logic for Compute {
    fn update(&mut self) {
        self.drive();
        if self.clock.pos_edge() {
            self.edge();
        }
    }

    fn connect(&mut self) {
        self.busy.connect();
        self.done.connect();
        self.dma_rd_data.connect();
        let ctl = &mut self.ctl;
        ctl.clock.connect();
        ctl.enable.connect();
        ctl.clear.connect();
        ctl.issue.connect();
        ctl.desc.connect();
        ctl.iso.connect();
        for l in &mut self.sk {
            l.clock.connect();
            l.en.connect();
            l.d.connect();
        }
        for l in &mut self.skf {
            l.clock.connect();
            l.en.connect();
            l.d.connect();
        }
        for l in &mut self.wsk {
            l.clock.connect();
            l.en.connect();
            l.d.connect();
        }
        for l in &mut self.dsk {
            l.clock.connect();
            l.en.connect();
            l.d.connect();
        }
        for pe in &mut self.pe {
            pe.clock.connect();
            pe.en.connect();
            pe.w_shift.connect();
            pe.w_in.connect();
            pe.a_in.connect();
            pe.psum_in.connect();
        }
        for pe in &mut self.pd {
            pe.clock.connect();
            pe.en.connect();
            pe.w_shift.connect();
            pe.w_bank.connect();
            pe.w_in.connect();
            pe.a_in.connect();
            pe.sel_in.connect();
            pe.psum_in.connect();
        }
        for pe in &mut self.po {
            pe.clock.connect();
            pe.en.connect();
            pe.a_in.connect();
            pe.w_in.connect();
            pe.f_in.connect();
        }
        let lc = &mut self.lc;
        lc.clock.connect();
        lc.enable.connect();
        lc.clear.connect();
        lc.start.connect();
        lc.start_mm.connect();
        lc.start_a.connect();
        lc.start_c.connect();
        lc.busy.connect();
        lc.op.connect();
        lc.w2.connect();
        lc.w3.connect();
        lc.w4.connect();
        lc.mn.connect();
        lc.cnt.connect();
        lc.lat.connect();
        lc.mm_sa.connect();
        lc.mm_sb.connect();
        for la in &mut self.la {
            la.op.connect();
            la.f1.connect();
            la.f2.connect();
            la.w1.connect();
            la.w2.connect();
            la.w3.connect();
            la.w4.connect();
            la.w7.connect();
            la.sa.connect();
            la.sb.connect();
            la.sg.connect();
            la.v2.connect();
            la.wa2.connect();
            la.wn2.connect();
        }
        for l in &mut self.lane {
            l.clock.connect();
            l.en.connect();
            l.ld.connect();
            l.is_act.connect();
            l.is_add.connect();
            l.is_max.connect();
            l.f0.connect();
            l.f2.connect();
            l.w5.connect();
            l.w6.connect();
            l.acc.connect();
            l.bias.connect();
            l.qm.connect();
            l.qs.connect();
            l.ea.connect();
            l.eb.connect();
            l.old.connect();
        }
    }

    fn hdl(&self) -> Verilog {
        Verilog::Custom(verilog::body(&self._p))
    }
}
