//! The compute unit in rust-hdl's simulator against the model's functions
//! (`npukit_sim::mac`, `npukit_sim::act`): completion exactly at issue + latency,
//! back-to-back issue in the completion cycle, and the memory contents after
//! random descriptor sequences (every opcode and flag, extreme operands).

use npukit_abi::desc::{Act, Add, Descriptor, Matmul, Max, Op};
use npukit_hw::compute::smul::smul32;
use npukit_hw::compute::{bytes_to_bits, latency, requant_tail, sat_add32, Compute, ComputeParams};
use npukit_sim::act;
use npukit_sim::mac;
use npukit_sim::spad::LocalMem;
use npukit_sim::Dataflow;
use rust_hdl::prelude::*;

/// A small deterministic generator (xorshift64*).
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
    fn range(&mut self, lo: u64, hi: u64) -> u64 {
        lo + self.below(hi - lo + 1)
    }
    fn chance(&mut self, pct: u64) -> bool {
        self.below(100) < pct
    }
    /// A byte biased towards the extremes (-128, 127, 0, -1).
    fn byte(&mut self) -> u8 {
        match self.below(8) {
            0 => 0x80,
            1 => 0x7F,
            2 => 0,
            3 => 0xFF,
            _ => self.next() as u8,
        }
    }
    /// A 32-bit value biased towards the extremes.
    fn word(&mut self) -> u32 {
        match self.below(8) {
            0 => 0x8000_0000,
            1 => 0x7FFF_FFFF,
            2 => 0,
            3 => self.range(0, 600) as u32,
            4 => (self.range(0, 600) as u32).wrapping_neg(),
            _ => self.next() as u32,
        }
    }
}

/// A test bench driving `Compute` edge by edge without rust-hdl's threads.
struct Tb {
    u: Compute,
    /// The cycle the next edge simulates.
    t: u64,
}

#[allow(clippy::unwrap_used)]
impl Tb {
    fn new(p: ComputeParams) -> Tb {
        let mut u = Compute::new(p).unwrap();
        u.connect_all();
        let mut tb = Tb { u, t: 0 };
        tb.idle();
        tb.settle();
        tb
    }

    fn settle(&mut self) {
        for _ in 0..1000 {
            self.u.update_all();
            if !self.u.has_changed() {
                return;
            }
        }
        panic!("the compute unit did not settle");
    }

    /// Inputs of a quiet cycle edge.
    fn idle(&mut self) {
        self.u.enable.next = true;
        self.u.clear.next = false;
        self.u.issue.next = false;
        self.u.head_ready.next = false;
        self.u.dma_wr.next = false;
    }

    /// Samples `(busy, done)` before the edge, then applies the edge.
    fn edge(&mut self) -> (bool, bool) {
        self.settle();
        let out = (self.u.busy.val(), self.u.done.val());
        self.u.clock.next = true.into();
        self.settle();
        self.u.clock.next = false.into();
        self.settle();
        self.t += 1;
        self.idle();
        out
    }

    fn dma_write(&mut self, acc: bool, addr: u32, data: &[u8]) {
        let b = self.u.params().beat_bytes as usize;
        for (i, chunk) in data.chunks(b).enumerate() {
            self.u.dma_wr.next = true;
            self.u.dma_wr_acc.next = acc;
            self.u.dma_wr_addr.next = ((addr as usize + i * b) as u64).into();
            self.u.dma_wr_len.next = (chunk.len() as u64).into();
            self.u.dma_wr_data.next = bytes_to_bits::<512>(chunk);
            let (busy, _) = self.edge();
            assert!(!busy);
        }
    }

    fn dma_read(&mut self, acc: bool, addr: u32) -> Vec<u8> {
        self.u.dma_rd_acc.next = acc;
        self.u.dma_rd_addr.next = (addr as u64).into();
        self.settle();
        npukit_hw::compute::bits_to_bytes(&self.u.dma_rd_data.val())
    }

    /// Both memories read through the DMA read port, checked against the
    /// simulation state.
    fn memories(&mut self) -> LocalMem {
        let p = self.u.params();
        let mut m = LocalMem::new(p.spad_bytes, p.acc_bytes);
        let b = p.beat_bytes;
        for acc in [false, true] {
            let size = if acc { p.acc_bytes } else { p.spad_bytes };
            let mut a = 0;
            while a < size {
                let got = self.dma_read(acc, a);
                for i in 0..64u32 {
                    let want = if i < b {
                        m.side(acc).get((a + i) as usize).copied()
                    } else {
                        None
                    };
                    let _ = want;
                    if i >= b {
                        assert_eq!(got[i as usize], 0, "dma_rd_data byte {i} beyond B");
                    } else if a + i < size {
                        m.side_mut(acc)[(a + i) as usize] = got[i as usize];
                    } else {
                        assert_eq!(got[i as usize], 0, "read beyond the memory end");
                    }
                }
                a += b;
            }
        }
        assert_eq!(m.spad, self.u.spad());
        assert_eq!(m.acc, self.u.acc());
        m
    }
}

fn params(rows: u32, cols: u32) -> ComputeParams {
    ComputeParams {
        rows,
        cols,
        spad_bytes: 256,
        acc_bytes: 256,
        beat_bytes: 32,
        dataflow: Dataflow::WeightStationary,
        weight_double_buffer: false,
    }
}

fn words(d: &Descriptor) -> [u32; 8] {
    let b = d.encode();
    let mut w = [0u32; 8];
    for (i, w) in w.iter_mut().enumerate() {
        *w = u32::from_le_bytes([b[4 * i], b[4 * i + 1], b[4 * i + 2], b[4 * i + 3]]);
    }
    w
}

fn with_dataflow(mut p: ComputeParams, dataflow: Dataflow, wdb: bool) -> ComputeParams {
    p.dataflow = dataflow;
    p.weight_double_buffer = wdb;
    p
}

/// Rule C1 (the weight load, with double-buffering, starting at issue).
fn model_latency(p: &ComputeParams, d: &Descriptor) -> u64 {
    let a = npukit_sim::config::ArrayParams {
        rows: p.rows,
        cols: p.cols,
        dataflow: p.dataflow,
        weight_double_buffer: p.weight_double_buffer,
    };
    match &d.op {
        Op::Matmul(m) => mac::fold_latency(&a, m.m as u32, 0),
        Op::Act(a) => act::act_latency(p.cols, a),
        Op::Add(a) => act::elementwise_latency(p.cols, a.len),
        Op::Max(m) => act::elementwise_latency(p.cols, m.len),
        _ => 1,
    }
}

fn model_exec(mem: &mut LocalMem, d: &Descriptor) {
    match &d.op {
        Op::Matmul(m) => mac::matmul(mem, m),
        Op::Act(a) => act::act(mem, a),
        Op::Add(a) => act::add(mem, a),
        Op::Max(m) => act::max(mem, m),
        _ => {}
    }
}

/// A random valid descriptor whose input and output ranges are equal or disjoint.
fn random_desc(rng: &mut Rng, p: &ComputeParams, kind: u64) -> Descriptor {
    let (sb, ab) = (p.spad_bytes as u64, p.acc_bytes as u64);
    let op = match kind {
        0 => {
            let m = rng.range(1, 6);
            let k = rng.range(1, p.rows as u64);
            let n = rng.range(1, p.cols as u64);
            // A in the low half, W in the high half of the scratchpad.
            let a = rng.range(0, sb / 2 - m * k);
            let w = rng.range(sb / 2, sb - k * n);
            let out = 4 * rng.range(0, ab / 4 - m * n);
            Op::Matmul(Matmul {
                a: a as u32,
                w: w as u32,
                out: out as u32,
                m: m as u16,
                k: k as u16,
                n: n as u16,
                accumulate: rng.chance(50),
            })
        }
        1 => {
            let rows = rng.range(1, 3);
            let cols = rng.range(1, 2 * p.cols as u64 + 1);
            let src = 4 * rng.range(0, ab / 4 - rows * cols);
            let bias = 4 * rng.range(0, ab / 4 - cols);
            let dst = rng.range(0, sb - rows * cols);
            let shift = match rng.below(4) {
                0 => 0,
                1 => 62,
                _ => rng.range(0, 62),
            };
            // PER_CHANNEL: a table of random entries (any shift 0..=255).
            let qtab = rng
                .chance(40)
                .then(|| 4 * rng.range(0, ab / 4 - 2 * cols) as u32);
            let per_tensor = qtab.is_none();
            Op::Act(Act {
                src: src as u32,
                dst: dst as u32,
                bias: if rng.chance(50) {
                    Some(bias as u32)
                } else {
                    None
                },
                rows: rows as u16,
                cols: cols as u16,
                multiplier: if per_tensor { rng.word() as i32 } else { 0 },
                shift: if per_tensor { shift as u8 } else { 0 },
                zero_point: rng.byte() as i8,
                relu: rng.chance(50),
                qtab,
            })
        }
        2 => {
            let len = rng.range(1, 3 * p.cols as u64 + 1);
            let a = rng.range(0, sb - len);
            let b = rng.range(0, sb - len);
            let dst = 4 * rng.range(0, ab / 4 - len);
            Op::Add(Add {
                a: a as u32,
                b: b as u32,
                dst: dst as u32,
                len: len as u32,
                a_zp: rng.byte() as i8,
                b_zp: rng.byte() as i8,
                a_mult: match rng.below(4) {
                    0 => i16::MIN,
                    1 => i16::MAX,
                    _ => rng.next() as i16,
                },
                b_mult: rng.next() as i16,
                accumulate: rng.chance(50),
            })
        }
        _ => {
            let len = rng.range(1, 3 * p.cols as u64 + 1);
            // Three disjoint slots; dst equal to a, to b, or its own slot.
            let slot = sb / 3;
            let base = [0, slot, 2 * slot];
            let a = base[0] + rng.range(0, slot - len);
            let b = base[1] + rng.range(0, slot - len);
            let dst = match rng.below(3) {
                0 => a,
                1 => b,
                _ => base[2] + rng.range(0, slot - len),
            };
            Op::Max(Max {
                a: a as u32,
                b: b as u32,
                dst: dst as u32,
                len: len as u32,
            })
        }
    };
    Descriptor { deps: 0, op }
}

/// Runs `descs` (with the given idle gaps before each; gap 0 issues in the
/// previous descriptor's completion cycle) from random memories, checking
/// completion cycles and the final memories against the model.
fn run_program(p: ComputeParams, seed: u64, descs: &[(Descriptor, u64)]) {
    let mut rng = Rng(seed | 1);
    let mut tb = Tb::new(p);
    let mut model = LocalMem::new(p.spad_bytes, p.acc_bytes);
    for b in model.spad.iter_mut() {
        *b = rng.byte();
    }
    for b in model.acc.iter_mut() {
        *b = rng.byte();
    }
    tb.dma_write(false, 0, &model.spad.clone());
    tb.dma_write(true, 0, &model.acc.clone());
    let mut pending: Option<u64> = None; // completion cycle of the descriptor in flight
    for (n, (d, gap)) in descs.iter().enumerate() {
        // Run to the completion cycle of the previous descriptor (or idle).
        if let Some(c) = pending {
            while tb.t < c {
                let (busy, done) = tb.edge();
                assert!(busy && !done, "#{n}: early completion at {}", tb.t - 1);
            }
            if *gap > 0 {
                let (busy, done) = tb.edge();
                assert!(busy && done, "#{n}: no completion at {c}");
                for _ in 1..*gap {
                    let (busy, done) = tb.edge();
                    assert!(!busy && !done);
                }
                pending = None;
            }
        }
        let w = words(d);
        let lat = model_latency(&p, d);
        assert_eq!(latency(&p, &w) as u64, lat, "{d:?}");
        let bytes: Vec<u8> = w.iter().flat_map(|x| x.to_le_bytes()).collect();
        tb.u.issue.next = true;
        tb.u.head_ready.next = true;
        tb.u.desc.next = bytes_to_bits::<256>(&bytes);
        let t0 = tb.t;
        let (busy, done) = tb.edge();
        if let Some(c) = pending {
            assert_eq!(c, t0);
            assert!(
                busy && done,
                "#{n}: back-to-back issue not in a completion cycle"
            );
        } else {
            assert!(!busy && !done);
        }
        model_exec(&mut model, d);
        pending = Some(t0 + lat);
    }
    if let Some(c) = pending {
        while tb.t < c {
            let (busy, done) = tb.edge();
            assert!(busy && !done, "early completion at {}", tb.t - 1);
        }
        let (busy, done) = tb.edge();
        assert!(busy && done, "no completion at {c}");
        let (busy, done) = tb.edge();
        assert!(!busy && !done);
    }
    let got = tb.memories();
    assert_eq!(got.spad, model.spad, "scratchpad after {descs:?}");
    assert_eq!(got.acc, model.acc, "accumulators after {descs:?}");
}

fn random_program(p: ComputeParams, seed: u64, kinds: &[u64], n: usize) {
    let mut rng = Rng(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1);
    let descs: Vec<(Descriptor, u64)> = (0..n)
        .map(|_| {
            let kind = kinds[rng.below(kinds.len() as u64) as usize];
            (random_desc(&mut rng, &p, kind), rng.below(3))
        })
        .collect();
    run_program(p, seed, &descs);
}

#[test]
fn act_lane_arithmetic_equals_requantize() {
    let mut rng = Rng(0x1234_5678);
    for i in 0..200_000u64 {
        let (acc, bias, mult) = (rng.word(), rng.word(), rng.word());
        // Every shift a table entry can hold (a descriptor's own is <= 62).
        let shift = (i % 256) as u8;
        let zp = rng.byte();
        let relu = i % 2 == 0;
        let x = sat_add32(acc, bias);
        let got = requant_tail(smul32(x, mult), shift as u32, zp, relu);
        let want = act::requantize(acc as i32, bias as i32, mult as i32, shift, zp as i8, relu);
        assert_eq!(
            got as i8, want,
            "acc {acc:#x} bias {bias:#x} mult {mult:#x} shift {shift} zp {zp} relu {relu}"
        );
    }
}

#[test]
fn matmul_4x4_random() {
    for seed in 1..=30 {
        random_program(params(4, 4), seed, &[0], 4);
    }
}

#[test]
fn matmul_non_square() {
    for seed in 1..=10 {
        random_program(params(3, 5), 10 + seed, &[0], 4);
        random_program(params(5, 2), 20 + seed, &[0], 4);
        random_program(params(1, 1), 30 + seed, &[0], 3);
    }
}

/// Output-stationary (rule C1c) and weight-double-buffered (C1b, weights
/// loaded at issue) MATMULs: latency and data as the model.
#[test]
fn matmul_other_dataflows_random() {
    for (df, wdb) in [
        (Dataflow::OutputStationary, false),
        (Dataflow::WeightStationary, true),
    ] {
        for seed in 1..=15 {
            random_program(with_dataflow(params(4, 4), df, wdb), 400 + seed, &[0], 5);
        }
        for seed in 1..=6 {
            random_program(with_dataflow(params(3, 5), df, wdb), 420 + seed, &[0], 4);
            random_program(with_dataflow(params(5, 2), df, wdb), 440 + seed, &[0], 4);
            random_program(with_dataflow(params(1, 1), df, wdb), 460 + seed, &[0], 3);
            random_program(
                with_dataflow(params(4, 4), df, wdb),
                480 + seed,
                &[0, 1, 2, 3],
                8,
            );
        }
    }
}

/// Rule C1b: the next MATMUL presented as the queue head with its tokens
/// ready (`head_ready`) from cycle `h` while the current one runs has its
/// weights loaded from `p = max(h, p_prev + R)`; it issues when the current
/// one completes (`t`) and takes `max(1, p + R - t) + R + C + M - 2`.
#[test]
fn matmul_weight_prefetch() {
    let mut rng = Rng(0xDB0F);
    for (r, c) in [(4u32, 4u32), (3, 5), (5, 2), (1, 1), (8, 8)] {
        let p = with_dataflow(params(r, c), Dataflow::WeightStationary, true);
        let (rr, cc) = (r as u64, c as u64);
        for _ in 0..12 {
            let (mut tb, mut model) = random_bench(p, &mut rng);
            let n = 4;
            let descs: Vec<Descriptor> = (0..n).map(|_| random_desc(&mut rng, &p, 0)).collect();
            let m_of = |d: &Descriptor| match &d.op {
                Op::Matmul(m) => m.m as u64,
                _ => unreachable!(),
            };
            // The first issues alone (its load starts at issue).
            let (mut t, mut prev_p) = (tb.t, tb.t);
            issue(&mut tb, &descs[0]);
            model_exec(&mut model, &descs[0]);
            let mut done_at = t + model_latency(&p, &descs[0]);
            for d in &descs[1..] {
                // Presented as head from a random cycle of the current run.
                let h = t + 1 + rng.below(done_at - t);
                while tb.t < done_at {
                    if tb.t >= h {
                        let w = words(d);
                        let bytes: Vec<u8> = w.iter().flat_map(|x| x.to_le_bytes()).collect();
                        tb.u.head_ready.next = true;
                        tb.u.desc.next = bytes_to_bits::<256>(&bytes);
                    }
                    let (busy, done) = tb.edge();
                    assert!(busy && !done);
                }
                let pl = h.max(prev_p + rr);
                let (busy, done) = issue(&mut tb, d);
                assert!(busy && done, "issues in the completion cycle");
                t = done_at;
                let want = (pl + rr).saturating_sub(t).max(1) + rr + cc + m_of(d) - 2;
                assert_eq!(want, mac::matmul_latency_db(r, c, m_of(d) as u32, t - pl));
                model_exec(&mut model, d);
                done_at = t + want;
                prev_p = pl;
            }
            while tb.t < done_at {
                let (busy, done) = tb.edge();
                assert!(busy && !done, "early completion at {}", tb.t - 1);
            }
            let (busy, done) = tb.edge();
            assert!(busy && done, "completion at {done_at}");
            let got = tb.memories();
            assert_eq!(got.acc, model.acc, "{r}x{c}");
        }
    }
}

#[test]
fn act_random() {
    for seed in 1..=40 {
        random_program(params(4, 4), 100 + seed, &[1], 5);
    }
    for seed in 1..=10 {
        random_program(params(2, 3), 150 + seed, &[1], 5);
    }
}

#[test]
fn add_max_random() {
    for seed in 1..=30 {
        random_program(params(4, 4), 200 + seed, &[2, 3], 6);
    }
    for seed in 1..=10 {
        random_program(params(3, 3), 250 + seed, &[2, 3], 6);
    }
}

#[test]
fn mixed_back_to_back() {
    for seed in 1..=30 {
        random_program(params(4, 4), 300 + seed, &[0, 1, 2, 3], 8);
    }
}

/// Loads random memories into a fresh bench and the model.
fn random_bench(p: ComputeParams, rng: &mut Rng) -> (Tb, LocalMem) {
    let mut tb = Tb::new(p);
    let mut model = LocalMem::new(p.spad_bytes, p.acc_bytes);
    model.spad.iter_mut().for_each(|b| *b = rng.byte());
    model.acc.iter_mut().for_each(|b| *b = rng.byte());
    tb.dma_write(false, 0, &model.spad.clone());
    tb.dma_write(true, 0, &model.acc.clone());
    (tb, model)
}

fn issue(tb: &mut Tb, d: &Descriptor) -> (bool, bool) {
    let bytes: Vec<u8> = words(d).iter().flat_map(|x| x.to_le_bytes()).collect();
    tb.u.issue.next = true;
    tb.u.head_ready.next = true;
    tb.u.desc.next = bytes_to_bits::<256>(&bytes);
    tb.edge()
}

/// With `enable = 0` nothing changes (G3): completion comes after exactly
/// `latency` enabled edges, DMA writes at frozen edges are dropped, and the data
/// equal the model's.
#[test]
fn enable_low_freezes_the_unit() {
    let p = params(4, 4);
    for seed in 1..=12u64 {
        let mut rng = Rng(seed * 7919);
        let (mut tb, mut model) = random_bench(p, &mut rng);
        let d = random_desc(&mut rng, &p, seed % 4);
        let lat = model_latency(&p, &d);
        issue(&mut tb, &d);
        model_exec(&mut model, &d);
        let mut active = 1u64;
        loop {
            let freeze = rng.chance(30);
            if freeze {
                tb.u.enable.next = false;
                // A DMA write at a frozen edge must be dropped.
                tb.u.dma_wr.next = true;
                tb.u.dma_wr_acc.next = rng.chance(50);
                tb.u.dma_wr_addr.next = rng.below(200).into();
                tb.u.dma_wr_len.next = 32u64.into();
                tb.u.dma_wr_data.next = bytes_to_bits::<512>(&[0x5A; 64]);
            }
            let (busy, done) = tb.edge();
            assert!(busy, "seed {seed}: idle before completion");
            assert_eq!(
                done,
                active == lat,
                "seed {seed}: done after {active} enabled edges"
            );
            if !freeze {
                if done {
                    break;
                }
                active += 1;
            }
        }
        let (busy, _) = tb.edge();
        assert!(!busy);
        let got = tb.memories();
        assert_eq!(got, model, "seed {seed}: {d:?}");
    }
}

/// `clear` (at an MMIO edge, `enable = 0`) drops the descriptor in progress and
/// zeroes both memories in one edge; the unit then runs normally.
#[test]
fn clear_drops_the_descriptor_and_zeroes_memories() {
    let p = params(4, 4);
    let mut rng = Rng(42);
    let (mut tb, _) = random_bench(p, &mut rng);
    let d = random_desc(&mut rng, &p, 0);
    issue(&mut tb, &d);
    for _ in 0..3 {
        assert_eq!(tb.edge(), (true, false));
    }
    tb.u.enable.next = false;
    tb.u.clear.next = true;
    assert_eq!(tb.edge(), (true, false));
    assert_eq!(tb.edge(), (false, false));
    let zero = LocalMem::new(p.spad_bytes, p.acc_bytes);
    assert_eq!(tb.memories(), zero);
    // Afterwards: a fresh program from zero memories matches the model.
    let mut model = zero;
    let mut data = vec![0u8; 64];
    data.iter_mut().for_each(|b| *b = rng.byte());
    tb.dma_write(false, 0, &data);
    model.spad[..64].copy_from_slice(&data);
    let d = Descriptor {
        deps: 0,
        op: Op::Add(Add {
            a: 0,
            b: 9,
            dst: 16,
            len: 11,
            a_zp: -128,
            b_zp: 127,
            a_mult: i16::MIN,
            b_mult: -3,
            accumulate: true,
        }),
    };
    let t0 = tb.t;
    issue(&mut tb, &d);
    model_exec(&mut model, &d);
    let lat = model_latency(&p, &d);
    while tb.t < t0 + lat {
        assert_eq!(tb.edge(), (true, false));
    }
    assert_eq!(tb.edge(), (true, true));
    assert_eq!(tb.memories(), model);
}

/// An issue while busy (and not completing) is ignored; the DMA ports write
/// 1..=B bytes anywhere (bytes past the end are dropped) and read B bytes.
#[test]
fn issue_while_busy_is_ignored_and_dma_ports() {
    let p = params(4, 4);
    let mut rng = Rng(7);
    let (mut tb, mut model) = random_bench(p, &mut rng);
    let d = random_desc(&mut rng, &p, 3);
    let lat = model_latency(&p, &d);
    let t0 = tb.t;
    issue(&mut tb, &d);
    model_exec(&mut model, &d);
    let other = random_desc(&mut rng, &p, 0);
    issue(&mut tb, &other);
    while tb.t < t0 + lat {
        assert_eq!(tb.edge(), (true, false));
    }
    assert_eq!(tb.edge(), (true, true));
    assert_eq!(tb.edge(), (false, false));
    assert_eq!(tb.memories(), model);
    for (acc, addr, len) in [
        (false, 250u32, 32u32),
        (true, 3, 1),
        (true, 240, 20),
        (false, 17, 5),
    ] {
        let data: Vec<u8> = (0..len).map(|_| rng.byte()).collect();
        tb.dma_write(acc, addr, &data);
        for (i, &b) in data.iter().enumerate() {
            if let Some(m) = model.side_mut(acc).get_mut(addr as usize + i) {
                *m = b;
            }
        }
    }
    assert_eq!(tb.memories(), model);
}

/// Runs one descriptor on the bench and the model from the given memories.
fn run_one(p: ComputeParams, model: &mut LocalMem, d: &Descriptor) {
    let mut tb = Tb::new(p);
    tb.dma_write(false, 0, &model.spad.clone());
    tb.dma_write(true, 0, &model.acc.clone());
    let t0 = tb.t;
    issue(&mut tb, d);
    model_exec(model, d);
    let lat = model_latency(&p, d);
    while tb.t < t0 + lat {
        assert_eq!(tb.edge(), (true, false), "{d:?}");
    }
    assert_eq!(tb.edge(), (true, true), "{d:?}");
    assert_eq!(tb.edge(), (false, false), "{d:?}");
    assert_eq!(&tb.memories(), model, "{d:?}");
}

/// Every opcode with every flag combination (and the shift extremes), on
/// random memories.
#[test]
fn every_opcode_and_flag_combination() {
    let p = params(4, 4);
    let mut rng = Rng(99);
    let fresh = |rng: &mut Rng| {
        let mut m = LocalMem::new(p.spad_bytes, p.acc_bytes);
        m.spad.iter_mut().for_each(|b| *b = rng.byte());
        m.acc.iter_mut().for_each(|b| *b = rng.byte());
        m
    };
    for accumulate in [false, true] {
        let op = Op::Matmul(Matmul {
            a: 3,
            w: 130,
            out: 8,
            m: 5,
            k: 4,
            n: 3,
            accumulate,
        });
        run_one(p, &mut fresh(&mut rng), &Descriptor { deps: 0xF, op });
        let op = Op::Add(Add {
            a: 1,
            b: 40,
            dst: 4,
            len: 13,
            a_zp: 5,
            b_zp: -128,
            a_mult: 300,
            b_mult: i16::MIN,
            accumulate,
        });
        run_one(p, &mut fresh(&mut rng), &Descriptor { deps: 0, op });
    }
    for relu in [false, true] {
        for bias in [None, Some(200)] {
            for shift in [0u8, 1, 31, 62] {
                let op = Op::Act(Act {
                    src: 12,
                    dst: 77,
                    bias,
                    rows: 3,
                    cols: 6,
                    multiplier: rng.word() as i32,
                    shift,
                    zero_point: -7,
                    relu,
                    qtab: None,
                });
                run_one(p, &mut fresh(&mut rng), &Descriptor { deps: 0, op });
            }
            // PER_CHANNEL, the table in random memory (shifts 0..=255).
            for qtab in [0u32, 100, 208] {
                let op = Op::Act(Act {
                    src: 12,
                    dst: 77,
                    bias,
                    rows: 3,
                    cols: 6,
                    zero_point: -7,
                    relu,
                    qtab: Some(qtab),
                    ..Act::default()
                });
                run_one(p, &mut fresh(&mut rng), &Descriptor { deps: 0, op });
            }
        }
    }
    for dst in [0u32, 100, 200] {
        let op = Op::Max(Max {
            a: 0,
            b: 100,
            dst,
            len: 9,
        });
        run_one(p, &mut fresh(&mut rng), &Descriptor { deps: 0, op });
    }
}

/// -128 x -128 everywhere, accumulation that wraps past i32::MAX, ACT
/// saturation of `acc + bias` and of the int8 output, ReLU at the zero point.
#[test]
fn extremes_wrap_and_saturate() {
    let p = params(4, 4);
    let mut m = LocalMem::new(p.spad_bytes, p.acc_bytes);
    m.spad.iter_mut().for_each(|b| *b = 0x80);
    for i in 0..16 {
        m.acc_set(4 * i, i32::MAX - 3);
    }
    // OUT += 4 * 16384 on top of MAX - 3: wraps.
    let mm = Op::Matmul(Matmul {
        a: 0,
        w: 64,
        out: 0,
        m: 4,
        k: 4,
        n: 4,
        accumulate: true,
    });
    run_one(p, &mut m, &Descriptor { deps: 0, op: mm });
    assert_eq!(m.acc_get(0), (i32::MAX - 3).wrapping_add(4 * 16384));
    // acc + bias saturates both ways; outputs clamp to 127 / -128 / zero point.
    for (i, v) in [i32::MAX, i32::MIN, 5, -5, 1 << 20, -(1 << 20)]
        .iter()
        .enumerate()
    {
        m.acc_set(100 + 4 * i, *v);
        m.acc_set(200 + 4 * i, if i % 2 == 0 { i32::MAX } else { i32::MIN });
    }
    for (multiplier, shift, zero_point, relu) in [
        (i32::MAX, 62, 0, false),
        (i32::MIN, 62, 0, false),
        (i32::MIN, 0, -128, false),
        (1 << 30, 30, 3, true),
        (-1, 1, 127, true),
    ] {
        let a = Act {
            src: 100,
            dst: 0,
            bias: Some(200),
            rows: 1,
            cols: 6,
            multiplier,
            shift,
            zero_point,
            relu,
            qtab: None,
        };
        for op in [Op::Act(a), Op::Act(Act { bias: None, ..a })] {
            run_one(p, &mut m, &Descriptor { deps: 0, op });
        }
    }
}
