//! The lane pipeline's control (`LaneCtl`, `LaneAddr`:
//! `hw/src/compute/lanectl.rs`) in rust-hdl's simulator against the walk of
//! rules C2 and C3 written out here (row by row, lane group by lane group;
//! element by element), for random ACT, ADD and MAX descriptors on several
//! lane counts: every read cycle's addresses and valid bits per lane, every
//! write's address and enable two cycles later, no read or write otherwise;
//! the MATMUL pointer steps; frozen edges and `clear`; and the generated
//! Verilog's lint.

mod common;
use common::{Clocked, Rng};

use npukit_hw::compute::ComputeParams;
use npukit_hw::compute::{latency, LaneAddr, LaneCtl};
use npukit_sim::Dataflow;
use rust_hdl::prelude::*;

impl Clocked for LaneCtl {
    fn clock(&mut self) -> &mut Signal<In, Clock> {
        &mut self.clock
    }
}

fn params(cols: u32) -> ComputeParams {
    ComputeParams {
        rows: 4,
        cols,
        spad_bytes: 256,
        acc_bytes: 256,
        beat_bytes: 8,
        dataflow: Dataflow::WeightStationary,
        weight_double_buffer: false,
    }
}

/// What one lane reads in a read cycle (ACT: accumulator, bias, table
/// entry; ADD / MAX: the two operands), `None` where it reads nothing.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
struct Reads {
    acc: Option<u32>,
    bias: Option<u32>,
    tab: Option<u32>,
    ea: Option<u32>,
    eb: Option<u32>,
}

/// One write of a lane: (byte address and int8 for the scratchpad, or word
/// address for the accumulators).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Write {
    Spad(u32),
    Acc(u32),
}

/// The rules' walk: per read cycle, per lane, what it reads and where its
/// result goes.
fn walk(c: u32, d: &[u32; 8]) -> Vec<Vec<(Reads, Option<Write>)>> {
    let op = d[0] & 0xFF;
    let (f1, f2) = ((d[0] >> 13) & 1 == 1, (d[0] >> 14) & 1 == 1);
    let mut cycles = Vec::new();
    match op {
        4 => {
            let (rows, cols) = (d[4] & 0xFFFF, d[4] >> 16);
            for row in 0..rows {
                for g in 0..cols.div_ceil(c) {
                    cycles.push(
                        (0..c)
                            .map(|l| {
                                let e = g * c + l;
                                if e >= cols {
                                    return (Reads::default(), None);
                                }
                                let idx = row * cols + e;
                                let r = Reads {
                                    acc: Some(d[1].wrapping_add(4 * idx)),
                                    bias: f1.then(|| d[3].wrapping_add(4 * e)),
                                    tab: f2.then(|| d[7].wrapping_add(8 * e)),
                                    ..Reads::default()
                                };
                                (r, Some(Write::Spad(d[2].wrapping_add(idx))))
                            })
                            .collect(),
                    );
                }
            }
        }
        5 | 6 => {
            let len = d[4];
            for k in 0..len.div_ceil(c) {
                cycles.push(
                    (0..c)
                        .map(|l| {
                            let i = k * c + l;
                            if i >= len {
                                return (Reads::default(), None);
                            }
                            let r = Reads {
                                ea: Some(d[1].wrapping_add(i)),
                                eb: Some(d[2].wrapping_add(i)),
                                ..Reads::default()
                            };
                            let w = if op == 5 {
                                Write::Acc(d[3].wrapping_add(4 * i))
                            } else {
                                Write::Spad(d[3].wrapping_add(i))
                            };
                            (r, Some(w))
                        })
                        .collect(),
                );
            }
        }
        _ => {}
    }
    cycles
}

struct Bench {
    lc: LaneCtl,
    la: Vec<LaneAddr>,
}

impl Bench {
    fn new(c: u32) -> Bench {
        let mut lc = LaneCtl::new(c);
        lc.connect_all();
        let la = (0..c)
            .map(|l| {
                let mut a = LaneAddr::new(l);
                a.connect_all();
                a
            })
            .collect();
        Bench { lc, la }
    }

    /// Presents the held descriptor `d` (busy, `cnt`, `lat`) and settles
    /// both blocks.
    fn present(&mut self, held: Option<(&[u32; 8], u32, u32)>) {
        let w = |v: u32| Bits::<32>::from(v as u64);
        let (d, cnt, lat) = match held {
            Some((d, cnt, lat)) => (*d, cnt, lat),
            None => ([0u32; 8], 0, 0),
        };
        let lc = &mut self.lc;
        lc.busy.next = held.is_some();
        lc.op.next = Bits::<8>::from((d[0] & 0xFF) as u64);
        lc.w2.next = w(d[2]);
        lc.w3.next = w(d[3]);
        lc.w4.next = w(d[4]);
        lc.mn.next = Bits::<16>::from((d[5] & 0xFFFF) as u64);
        lc.cnt.next = w(cnt);
        lc.lat.next = w(lat);
        common::settle(lc);
        for la in &mut self.la {
            la.op.next = Bits::<8>::from((d[0] & 0xFF) as u64);
            la.f1.next = (d[0] >> 13) & 1 == 1;
            la.f2.next = (d[0] >> 14) & 1 == 1;
            la.w1.next = w(d[1]);
            la.w2.next = w(d[2]);
            la.w3.next = w(d[3]);
            la.w4.next = w(d[4]);
            la.w7.next = w(d[7]);
            la.sa.next = self.lc.sa.val();
            la.sb.next = self.lc.sb.val();
            la.sg.next = self.lc.sg.val();
            la.v2.next = self.lc.v2.val();
            la.wa2.next = self.lc.wa2.val();
            la.wn2.next = self.lc.wn2.val();
            common::settle(la);
        }
    }

    /// What each lane reads now (only meaningful in a read cycle).
    fn reads(&self) -> Vec<Reads> {
        let u = |s: &Signal<Out, Bits<32>>| s.val().to_u32();
        self.la
            .iter()
            .map(|a| Reads {
                acc: a.aok.val().then(|| u(&a.asrc)),
                bias: a.bok.val().then(|| u(&a.abia)),
                tab: a.qok.val().then(|| u(&a.qta)),
                ea: a.eok.val().then(|| u(&a.eaa)),
                eb: a.eok.val().then(|| u(&a.eba)),
            })
            .collect()
    }

    fn writes(&self) -> Vec<Option<Write>> {
        self.la
            .iter()
            .map(|a| {
                assert!(!(a.we8.val() && a.we32.val()));
                if a.we8.val() {
                    Some(Write::Spad(a.wsb.val().to_u32()))
                } else if a.we32.val() {
                    Some(Write::Acc(a.wav.val().to_u32()))
                } else {
                    None
                }
            })
            .collect()
    }
}

/// An ACT, ADD or MAX (or, now and then, another opcode) with random
/// addresses near the ends of the address space and small shapes.
fn random_desc(rng: &mut Rng) -> [u32; 8] {
    let mut d = [0u32; 8];
    for w in d.iter_mut() {
        *w = match rng.below(4) {
            0 => u32::MAX - rng.below(64) as u32,
            1 => rng.below(64) as u32,
            _ => rng.next() as u32,
        };
    }
    let op = match rng.below(8) {
        0 => 3,
        1 => rng.below(256) as u32,
        n => 4 + (n as u32 % 3),
    };
    d[0] = (d[0] & !0xFF) | op;
    d[4] = match op {
        4 => (rng.below(5) as u32) | ((rng.below(23) as u32) << 16),
        _ => rng.below(70) as u32,
    };
    d
}

/// Issues each descriptor when the previous one completes (or into an idle
/// unit after a gap), with frozen edges, and checks every cycle against
/// [`walk`].
fn check_walk(c: u32, seed: u64, n: usize) {
    let p = params(c);
    let mut rng = Rng(seed);
    let mut b = Bench::new(c);
    b.lc.clear.next = true;
    b.present(None);
    common::edge(&mut b.lc);
    b.lc.clear.next = false;
    let mut reads_seen = 0;
    for _ in 0..n {
        let d = random_desc(&mut rng);
        let lat = latency(&p, &d);
        let expect = walk(c, &d);
        // The issue edge (in an idle cycle: the held descriptor is none).
        b.lc.enable.next = true;
        b.lc.start.next = true;
        b.lc.start_mm.next = d[0] & 0xFF == 3;
        b.lc.start_a.next = Bits::<32>::from(d[1] as u64);
        b.lc.start_c.next = Bits::<32>::from(d[3] as u64);
        b.present(None);
        assert!(!b.lc.rd.val());
        common::edge(&mut b.lc);
        b.lc.start.next = false;
        // Cycles cnt = 1..=lat (plus two, to see the pipeline drain).
        let mut cnt = 1;
        let mut pending: Vec<Vec<Option<Write>>> = vec![vec![None; c as usize]; 2];
        while cnt <= lat + 2 {
            let en = !rng.chance(15);
            let held = (cnt <= lat).then_some((&d, cnt, lat));
            b.lc.enable.next = en;
            b.present(held);
            let k = cnt as usize - 1;
            let rd = held.is_some() && k < expect.len();
            assert_eq!(b.lc.rd.val(), rd, "{d:x?} cnt {cnt} lat {lat}");
            if rd {
                let want: Vec<Reads> = expect[k].iter().map(|x| x.0.clone()).collect();
                assert_eq!(b.reads(), want, "{d:x?} read {k}");
                reads_seen += 1;
            }
            assert_eq!(b.writes(), pending[0], "{d:x?} cnt {cnt}");
            common::edge(&mut b.lc);
            if en {
                pending.remove(0);
                pending.push(if rd {
                    expect[k].iter().map(|x| x.1).collect()
                } else {
                    vec![None; c as usize]
                });
                cnt += 1;
            }
        }
        assert!(pending.iter().flatten().all(|w| w.is_none()));
    }
    assert!(reads_seen > n, "{reads_seen} read cycles");
}

#[test]
fn act_add_max_walk_as_the_rules() {
    check_walk(4, 0x1A_0004, 150);
    check_walk(1, 0x1A_0001, 60);
    check_walk(3, 0x1A_0003, 120);
    check_walk(5, 0x1A_0005, 120);
}

/// MATMUL: `sa` and `sb` start at words 1 and 3 and step by `K` and `4N`
/// with `mm_sa` / `mm_sb`; other descriptors start them at 0; frozen edges
/// and `clear` (which leaves them) change nothing; a clear drops the valid
/// bits.
#[test]
fn matmul_pointers_and_clear() {
    let mut rng = Rng(0x3A7);
    let mut b = Bench::new(4);
    for _ in 0..200 {
        let mut d = random_desc(&mut rng);
        d[0] = (d[0] & !0xFF) | 3;
        d[4] = rng.next() as u32;
        d[5] = rng.next() as u32;
        b.lc.enable.next = true;
        b.lc.clear.next = false;
        b.lc.start.next = true;
        b.lc.start_mm.next = true;
        b.lc.start_a.next = Bits::<32>::from(d[1] as u64);
        b.lc.start_c.next = Bits::<32>::from(d[3] as u64);
        b.present(None);
        common::edge(&mut b.lc);
        b.lc.start.next = false;
        let (mut sa, mut sb) = (d[1], d[3]);
        for cnt in 1..40 {
            let (en, clr) = (!rng.chance(20), rng.chance(5));
            let (ma, mb) = (rng.chance(50), rng.chance(50));
            b.lc.enable.next = en;
            b.lc.clear.next = clr;
            b.lc.mm_sa.next = ma;
            b.lc.mm_sb.next = mb;
            b.present(Some((&d, cnt, 1000)));
            assert_eq!(b.lc.sa.val().to_u32(), sa);
            assert_eq!(b.lc.sb.val().to_u32(), sb);
            assert!(!b.lc.rd.val() && !b.lc.v2.val());
            common::edge(&mut b.lc);
            if en && !clr {
                if ma {
                    sa = sa.wrapping_add(d[4] >> 16);
                }
                if mb {
                    sb = sb.wrapping_add(4 * (d[5] & 0xFFFF));
                }
            }
        }
        b.lc.mm_sa.next = false;
        b.lc.mm_sb.next = false;
        b.lc.clear.next = false;
        b.lc.enable.next = true;
        // Another opcode starts them at 0.
        b.lc.start.next = true;
        b.lc.start_mm.next = false;
        b.present(None);
        common::edge(&mut b.lc);
        b.lc.start.next = false;
        b.present(None);
        assert_eq!((b.lc.sa.val().to_u32(), b.lc.sb.val().to_u32()), (0, 0));
    }
    // A clear in the middle of an ADD drops the reads in the pipeline.
    let d = [5, 0, 0, 0, 40, 0, 0, 0];
    b.lc.start.next = true;
    b.present(None);
    common::edge(&mut b.lc);
    b.lc.start.next = false;
    b.present(Some((&d, 1, 12)));
    assert!(b.lc.rd.val());
    common::edge(&mut b.lc);
    b.lc.clear.next = true;
    b.present(Some((&d, 2, 12)));
    common::edge(&mut b.lc);
    b.lc.clear.next = false;
    b.present(None);
    assert!(!b.lc.v2.val());
    common::edge(&mut b.lc);
    b.present(None);
    assert!(!b.lc.v2.val() && b.writes().iter().all(|w| w.is_none()));
}

#[test]
fn verilog_lints_clean() {
    let mut lc = LaneCtl::new(5);
    lc.connect_all();
    if let Err(log) = common::verilator_lint(&generate_verilog(&lc), "lanectl") {
        panic!("verilator lint (LaneCtl): {log}");
    }
    let mut la = LaneAddr::new(3);
    la.connect_all();
    if let Err(log) = common::verilator_lint(&generate_verilog(&la), "laneaddr") {
        panic!("verilator lint (LaneAddr): {log}");
    }
}
