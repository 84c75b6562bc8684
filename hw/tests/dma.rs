//! `DmaUnit` against the model, cycle by cycle.
//!
//! Each case runs one LOAD or STORE on the model (`ModelDevice`, through MMIO
//! and a one-descriptor ring, local memory first filled by LOADs), and the same
//! descriptor on the block alone under rust-hdl's simulator, driven by a small
//! port model that plays the top level: the same `DramTiming` (grant when it
//! can accept, responses after the latency, in order), device memory (reads
//! sampled and writes applied at acceptance, M4) and local memory. The memory
//! requests and responses (cycle relative to the issue, kind, address), the
//! completion cycle, the fault (cycle, code, index, address) and the final
//! device and local memories must be identical.

mod common;
use common::{settle, Rng};
use npukit_abi::desc::{Descriptor, Dma, Op};
use npukit_abi::{regs, xlat, ErrorCode};
use npukit_hw::dma::DmaUnit;
use npukit_sim::dram::DramTiming;
use npukit_sim::run;
use npukit_sim::spad::LocalMem;
use npukit_sim::{Device, DeviceMemory, Engine, Event, MemKind, ModelDevice, NpuConfig, VecMemory};
use rust_hdl::prelude::*;

/// What is observed of one unit, relative to its issue cycle.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Obs {
    Req(u64, MemKind, u64),
    Resp(u64, MemKind, u64),
    Done(u64),
    Fault(u64, ErrorCode, u32, u64),
}

/// Translation setup of a case.
#[derive(Debug, Clone)]
struct Xlat {
    base: u64,
    pages: u32,
    entries: Vec<u64>,
}

#[derive(Debug, Clone)]
struct Case {
    store: bool,
    beat: u32,
    latency: u32,
    rate: u32,
    max_out: u32,
    mem_size: u64,
    dma: Dma,
    xlat: Option<Xlat>,
    seed: u64,
}

const SPAD: u32 = 16384;
const ACC: u32 = 4096;
const RING: u64 = 0x100;
const INDEX: u32 = 0;

fn config(c: &Case) -> NpuConfig {
    let mut cfg = NpuConfig::default();
    cfg.array.rows = 4;
    cfg.array.cols = 4;
    cfg.memory.spad_bytes = SPAD;
    cfg.memory.acc_bytes = ACC;
    cfg.dma.beat_bytes = c.beat;
    cfg.dram.latency = c.latency;
    cfg.dram.bytes_per_cycle = c.rate;
    cfg.dram.max_outstanding = c.max_out;
    cfg.dram.size_bytes = c.mem_size;
    cfg
}

/// Device memory of the case: random bytes, then the translation table.
fn memory(c: &Case) -> VecMemory {
    let mut mem = VecMemory::new(c.mem_size as usize);
    let mut rng = Rng(c.seed ^ 0xA5A5_5A5A_1234_4321);
    for b in mem.bytes_mut().iter_mut() {
        *b = rng.next() as u8;
    }
    if let Some(x) = &c.xlat {
        for (i, e) in x.entries.iter().enumerate() {
            let at = x.base + i as u64 * 8;
            if at + 8 <= c.mem_size {
                mem.write(at, &e.to_le_bytes());
            }
        }
    }
    mem
}

fn load(local: u32, dram: u64, row_bytes: u16, acc: bool) -> Descriptor {
    Descriptor::new(Op::Load(Dma {
        local,
        dram,
        rows: 1,
        row_bytes,
        dram_stride: 0,
        local_stride: 0,
        acc,
    }))
}

/// The model's run: (observations, device memory and local memory before the
/// descriptor starts, and after).
#[allow(clippy::unwrap_used)]
fn run_model(c: &Case) -> (Vec<Obs>, VecMemory, LocalMem, VecMemory, LocalMem) {
    let cfg = config(c);
    cfg.validate().unwrap();
    let mut dev = ModelDevice::with_sink(&cfg, Vec::new());
    let mut mem = memory(c);
    // Fill local memory with the bytes at 0x1000 (scratchpad) and 0x6000 (acc).
    let fill = [
        load(0, 0x1000, SPAD as u16, false),
        load(0, 0x6000, ACC as u16, true),
    ];
    run::start(&mut dev, &mut mem, RING, &fill).unwrap();
    run::wait_idle(&mut dev, &mut mem, 100_000).unwrap();
    if let Some(x) = &c.xlat {
        dev.mmio_write(regs::XLAT_BASE_LO, x.base as u32);
        dev.mmio_write(regs::XLAT_BASE_HI, (x.base >> 32) as u32);
        dev.mmio_write(regs::XLAT_PAGES, x.pages);
        dev.mmio_write(regs::CONTROL, regs::CONTROL_XLAT_EN);
    }
    let d = if c.store {
        Descriptor::new(Op::Store(c.dma))
    } else {
        Descriptor::new(Op::Load(c.dma))
    };
    run::start(&mut dev, &mut mem, RING, &[d]).unwrap();
    let mem0 = mem.clone();
    let local0 = dev.local().clone();
    let first = dev.sink().len();
    let until = dev.cycle() + 20_000;
    dev.run_until(&mut mem, until, true);
    let unit = if c.store { Engine::Store } else { Engine::Load };
    let events = &dev.sink()[first..];
    let t0 = events
        .iter()
        .find_map(|(t, e)| matches!(e, Event::Issue { unit: u, .. } if *u == unit).then_some(*t))
        .unwrap_or_else(|| panic!("the model never issued the descriptor: {events:?}"));
    let mut obs = vec![];
    for (t, e) in events.iter().filter(|(t, _)| *t >= t0) {
        let r = t - t0;
        match e {
            Event::MemReq { who, kind, addr } if *who == unit => {
                obs.push(Obs::Req(r, *kind, *addr))
            }
            Event::MemResp { who, kind, addr } if *who == unit => {
                obs.push(Obs::Resp(r, *kind, *addr))
            }
            Event::Complete { unit: u, .. } if *u == unit => obs.push(Obs::Done(r)),
            Event::Error { code, index, addr } => obs.push(Obs::Fault(r, *code, *index, *addr)),
            _ => {}
        }
    }
    let local = dev.local().clone();
    (obs, mem0, local0, mem, local)
}

fn edge(uut: &mut DmaUnit) {
    record(uut, true);
    uut.clock.next = true.into();
    settle(uut);
    uut.clock.next = false.into();
    settle(uut);
}

fn to_bits512(bytes: &[u8]) -> Bits<512> {
    let mut v: Bits<512> = 0_u64.into();
    for (i, chunk) in bytes.chunks(8).enumerate() {
        let mut w = [0u8; 8];
        w[..chunk.len()].copy_from_slice(chunk);
        v.set_bits::<64>(i * 64, u64::from_le_bytes(w).into());
    }
    v
}

fn from_bits512(v: Bits<512>) -> [u8; 64] {
    let mut out = [0u8; 64];
    for i in 0..8 {
        out[i * 8..i * 8 + 8].copy_from_slice(&v.get_bits::<64>(i * 64).to_u64().to_le_bytes());
    }
    out
}

fn desc_bits(d: &Descriptor) -> Bits<256> {
    let raw = d.encode();
    let mut v: Bits<256> = 0_u64.into();
    for i in 0..4 {
        let mut w = [0u8; 8];
        w.copy_from_slice(&raw[i * 8..i * 8 + 8]);
        v.set_bits::<64>(i * 64, u64::from_le_bytes(w).into());
    }
    v
}

/// Bytes `addr..addr + n` of a local memory side (0 beyond its end).
fn local_bytes(side: &[u8], addr: u64, n: usize) -> Vec<u8> {
    (0..n as u64)
        .map(|i| side.get((addr + i) as usize).copied().unwrap_or(0))
        .collect()
}

/// In flight on the harness's port: (tag, kind, beat address, read data).
type Flight = (Bits<56>, MemKind, u64, Bits<512>);

/// The block's run on the same memories, playing the top level.
#[allow(clippy::unwrap_used)]
fn run_block(c: &Case, mem: VecMemory, local: LocalMem) -> (Vec<Obs>, VecMemory, LocalMem) {
    let mut uut = DmaUnit::new(c.store, c.beat).unwrap();
    uut.connect_all();
    record_new(&uut);
    run_block_on(&mut uut, c, mem, local)
}

/// [`run_block`] on an existing block (idle; its translation cache is not
/// touched).
#[allow(clippy::unwrap_used)]
fn run_block_on(
    uut: &mut DmaUnit,
    c: &Case,
    mut mem: VecMemory,
    mut local: LocalMem,
) -> (Vec<Obs>, VecMemory, LocalMem) {
    let cfg = config(c);
    let b = c.beat as usize;
    let mut dram: DramTiming<Flight> = DramTiming::new(&cfg.dram, c.beat);
    settle(uut);
    if let Some(x) = &c.xlat {
        uut.xlat_en.next = true;
        uut.xlat_base.next = x.base.into();
        uut.xlat_pages.next = (x.pages as u64).into();
    }
    uut.mem_size.next = c.mem_size.into();
    let d = if c.store {
        Descriptor::new(Op::Store(c.dma))
    } else {
        Descriptor::new(Op::Load(c.dma))
    };
    // Cycle 0: the issue.
    uut.enable.next = true;
    uut.issue.next = true;
    uut.desc.next = desc_bits(&d);
    uut.issue_index.next = (INDEX as u64).into();
    settle(uut);
    assert!(!uut.busy.val() && !uut.req_valid.val() && !uut.fault.val());
    edge(uut);
    uut.issue.next = false;
    let mut obs = vec![];
    for t in 1..20_000u64 {
        let resp = dram.deliver(t);
        uut.grant.next = false;
        uut.resp_valid.next = false;
        settle(uut);
        assert!(uut.busy.val(), "cycle {t}: the job vanished");
        let acc = uut.lm_rd_acc.val();
        let addr = uut.lm_rd_addr.val().to_u64();
        uut.lm_rd_data.next = to_bits512(&local_bytes(local.side(acc), addr, b));
        settle(uut);
        assert!(
            !(uut.fault.val() && uut.req_valid.val()),
            "cycle {t}: a request offered in a fault cycle"
        );
        if uut.fault.val() {
            record(uut, false);
            let code = ErrorCode::from_u32(uut.fault_code.val().to_u32()).unwrap();
            obs.push(Obs::Fault(
                t,
                code,
                uut.index.val().to_u32(),
                uut.fault_addr.val().to_u64(),
            ));
            break;
        }
        let done = uut.done.val();
        if done {
            assert!(
                !uut.req_valid.val(),
                "cycle {t}: a request in the completion cycle"
            );
            obs.push(Obs::Done(t));
        }
        if uut.req_valid.val() && dram.can_accept(t) {
            uut.grant.next = true;
            let addr = uut.req_addr.val().to_u64();
            assert_eq!(addr % c.beat as u64, 0, "cycle {t}: unaligned request");
            let tag = uut.req_tag.val();
            let (kind, data) = if uut.req_pte.val() {
                assert_eq!(uut.req_bytes.val().to_u32(), 0);
                (MemKind::Pte, to_bits512(mem.load(addr, b).unwrap()))
            } else if c.store {
                let wdata = from_bits512(uut.req_wdata.val());
                let mask = uut.req_wmask.val().to_u64();
                assert_eq!(
                    mask.checked_shr(b as u32).unwrap_or(0),
                    0,
                    "cycle {t}: mask beyond the beat"
                );
                assert_eq!(mask.count_ones(), uut.req_bytes.val().to_u32());
                for (i, byte) in wdata.iter().enumerate().take(b) {
                    if mask >> i & 1 == 1 {
                        mem.write(addr + i as u64, &[*byte]);
                    }
                }
                (MemKind::Write, 0_u64.into())
            } else {
                (MemKind::Read, to_bits512(mem.load(addr, b).unwrap()))
            };
            dram.accept(t, (tag, kind, addr, data));
            obs.push(Obs::Req(t, kind, addr));
        }
        if let Some((tag, kind, addr, data)) = resp {
            uut.resp_valid.next = true;
            uut.resp_tag.next = tag;
            uut.resp_data.next = data;
            obs.push(Obs::Resp(t, kind, addr));
        }
        settle(uut);
        if uut.lm_wr.val() {
            let n = uut.lm_wr_len.val().to_u64() as usize;
            let at = uut.lm_wr_addr.val().to_u64() as usize;
            let bytes = from_bits512(uut.lm_wr_data.val());
            local.side_mut(uut.lm_wr_acc.val())[at..at + n].copy_from_slice(&bytes[..n]);
        }
        edge(uut);
        if done {
            assert!(!uut.busy.val(), "busy after completion");
            break;
        }
    }
    (obs, mem, local)
}

/// Runs a case on both sides and compares; returns the observations.
fn check(c: &Case) -> Vec<Obs> {
    let (want, mem0, local0, mem1, local1) = run_model(c);
    let (got, mem2, local2) = run_block(c, mem0, local0);
    assert_eq!(got, want, "case {c:#x?}");
    assert!(
        mem2.bytes() == mem1.bytes(),
        "device memory differs: {c:#x?}"
    );
    assert!(local2 == local1, "local memory differs: {c:#x?}");
    got
}

fn random_case(rng: &mut Rng, seed: u64) -> Case {
    let store = rng.chance(50);
    let beat = rng.pick(&[8u32, 16, 32, 64]);
    let latency = 8 + rng.below(8) as u32;
    let rate = rng.pick(&[beat, beat / 2, beat / 8, 2 * beat]);
    let max_out = rng.pick(&[1u32, 2, 3, 16]);
    let mem_size = 0x10000u64;
    let acc = rng.chance(25);
    let side = if acc { ACC } else { SPAD } as u64;
    let rows = 1 + rng.below(3) as u16;
    let longest = if rng.chance(20) { 300 } else { 80 };
    let mut row_bytes = 1 + rng.below(longest) as u16;
    let mut local_stride = row_bytes as u32 + rng.below(24) as u32;
    if acc {
        row_bytes = row_bytes.div_ceil(4) * 4;
        local_stride = local_stride.div_ceil(4) * 4;
    }
    let dram_stride = rng.below(400) as u32;
    let extent_local = (rows as u64 - 1) * local_stride as u64 + row_bytes as u64;
    let mut local = rng.below(side - extent_local + 1) as u32;
    if acc {
        local &= !3;
    }
    let extent = (rows as u64 - 1) * dram_stride as u64 + row_bytes as u64;
    let xlat = if rng.chance(40) {
        let pages = 1 + rng.below(16) as u32;
        // The table: 8-aligned, sometimes so close to the end that reads of
        // its last entries fall outside memory.
        let base = if rng.chance(20) {
            mem_size - 8 * rng.below(pages as u64)
        } else {
            0x8000 + 8 * rng.below(0x100)
        };
        let entries = (0..pages + 2)
            .map(|_| {
                let top = if rng.chance(10) { 20 } else { 15 };
                let page = rng.below(top) << 12;
                match rng.below(10) {
                    0 => page,                          // not valid
                    1 => xlat::pte(page, true) | 0x100, // reserved bit
                    2 => xlat::pte(page, false),
                    _ => xlat::pte(page, true),
                }
            })
            .collect();
        Some(Xlat {
            base,
            pages: pages.saturating_sub(rng.below(2) as u32),
            entries,
        })
    } else {
        None
    };
    // Mostly in range; sometimes running past the end of memory (or of the
    // translated space).
    let space = match &xlat {
        Some(x) if rng.chance(85) => (x.pages as u64) << 12,
        Some(x) => (x.entries.len() as u64) << 12,
        None => mem_size,
    };
    let dram = if rng.chance(10) {
        space.saturating_sub(rng.below(extent + 64))
    } else {
        rng.below(space.saturating_sub(extent).max(1))
    };
    Case {
        store,
        beat,
        latency,
        rate: rate.max(1),
        max_out,
        mem_size,
        dma: Dma {
            local,
            dram,
            rows,
            row_bytes,
            dram_stride,
            local_stride,
            acc,
        },
        xlat,
        seed,
    }
}

#[test]
fn isolated_load_d4() {
    // D4: n beats alone on the port request in t+1..t+n and complete in t+n+L+1.
    for store in [false, true] {
        let c = Case {
            store,
            beat: 16,
            latency: 10,
            rate: 16,
            max_out: 16,
            mem_size: 0x10000,
            dma: Dma {
                local: 3,
                dram: 0x2005,
                rows: 2,
                row_bytes: 30,
                dram_stride: 64,
                local_stride: 40,
                acc: false,
            },
            xlat: None,
            seed: 1,
        };
        let (want, mem0, local0, _, _) = run_model(&c);
        let n = 6; // 0x2005..0x2023: 3 beats; 0x2045..0x2063: 3 beats
        let reqs: Vec<u64> = want
            .iter()
            .filter_map(|o| match o {
                Obs::Req(t, ..) => Some(*t),
                _ => None,
            })
            .collect();
        assert_eq!(reqs, (1..=n).collect::<Vec<u64>>());
        assert!(want.contains(&Obs::Done(n + 10 + 1)));
        let (got, _, _) = run_block(&c, mem0, local0);
        assert_eq!(got, want);
    }
}

#[test]
fn translated_beats_and_faults() {
    // Pages 0 and 1 mapped (page 1 read-only), page 2 invalid; a STORE
    // through page 1 faults XLAT_WRITE, a LOAD crossing into page 2 faults
    // XLAT_FAULT in the cycle after the entry arrived.
    for (store, dram) in [
        (false, 0xFF0u64),
        (true, 0xFF0),
        (false, 0x1FF0),
        (true, 0x20),
    ] {
        let c = Case {
            store,
            beat: 32,
            latency: 9,
            rate: 32,
            max_out: 4,
            mem_size: 0x10000,
            dma: Dma {
                local: 0,
                dram,
                rows: 1,
                row_bytes: 64,
                dram_stride: 0,
                local_stride: 0,
                acc: false,
            },
            xlat: Some(Xlat {
                base: 0x9000,
                pages: 3,
                entries: vec![xlat::pte(0x4000, true), xlat::pte(0x7000, false), 0x5000],
            }),
            seed: 2,
        };
        check(&c);
    }
}

#[test]
fn random_cases_match_model() {
    let mut rng = Rng(0x0DDB_A11C_AFE0_F00D);
    let cases = std::env::var("NPUKIT_HW_DMA_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(300u64);
    // Coverage: completed jobs, data beats, PTE reads, memory stalls (a
    // request not in the cycle after the previous one), and each fault.
    let (mut done, mut beats, mut ptes) = (0, 0, 0);
    let mut faults = std::collections::BTreeMap::new();
    for i in 0..cases {
        let c = random_case(&mut rng, i);
        for o in check(&c) {
            match o {
                Obs::Done(_) => done += 1,
                Obs::Req(_, MemKind::Pte, _) => ptes += 1,
                Obs::Req(..) => beats += 1,
                Obs::Fault(_, code, ..) => *faults.entry(code as u32).or_insert(0) += 1,
                Obs::Resp(..) => {}
            }
        }
    }
    eprintln!(
        "{cases} cases: {done} completed, {beats} beats, {ptes} PTE reads, faults {faults:?}"
    );
    if cases >= 300 {
        assert!(done >= cases / 3 && beats >= 5 * cases && ptes >= cases / 4);
        for code in [
            ErrorCode::AddrRange,
            ErrorCode::XlatFault,
            ErrorCode::XlatWrite,
        ] {
            assert!(
                faults.contains_key(&(code as u32)),
                "no {code} fault in {faults:?}"
            );
        }
    }
}

/// A device reset in the middle of a job (responses in flight, translation
/// cached) leaves the unit idle with an empty cache: the next job behaves as
/// on a new device.
#[test]
#[allow(clippy::unwrap_used)]
fn clear_drops_the_job_and_the_cache() {
    let c = Case {
        store: false,
        beat: 16,
        latency: 6,
        rate: 16,
        max_out: 16,
        mem_size: 0x10000,
        dma: Dma {
            local: 0,
            dram: 0x10,
            rows: 1,
            row_bytes: 200,
            dram_stride: 0,
            local_stride: 0,
            acc: false,
        },
        xlat: Some(Xlat {
            base: 0x9000,
            pages: 2,
            entries: vec![xlat::pte(0x3000, true), xlat::pte(0x5000, true)],
        }),
        seed: 3,
    };
    let (want, mem0, local0, _, _) = run_model(&c);
    let mut uut = DmaUnit::new(false, 16).unwrap();
    uut.connect_all();
    // A first run, cut short by a reset once the entry is cached and beats
    // are in flight.
    let (first, _, _) = run_block_on(&mut uut, &c, mem0.clone(), local0.clone());
    assert_eq!(first, want);
    uut.enable.next = true;
    uut.issue.next = true;
    uut.desc.next = desc_bits(&Descriptor::new(Op::Load(c.dma)));
    settle(&mut uut);
    edge(&mut uut);
    uut.issue.next = false;
    for _ in 0..3 {
        settle(&mut uut);
        assert!(
            uut.req_valid.val() && !uut.req_pte.val(),
            "cached: no PTE read"
        );
        uut.grant.next = true;
        settle(&mut uut);
        edge(&mut uut);
        uut.grant.next = false;
    }
    uut.enable.next = false;
    uut.clear.next = true;
    settle(&mut uut);
    edge(&mut uut);
    uut.clear.next = false;
    uut.enable.next = true;
    settle(&mut uut);
    assert!(!uut.busy.val() && !uut.done.val() && !uut.req_valid.val() && !uut.fault.val());
    // The same job again: from a PTE read, exactly as the model's fresh run.
    let (again, _, _) = run_block_on(&mut uut, &c, mem0, local0);
    assert_eq!(again, want);
    assert!(matches!(again.first(), Some(Obs::Req(1, MemKind::Pte, _))));
}

#[test]
fn bad_beat_width_is_refused() {
    for b in [0, 4, 24, 128] {
        let e = DmaUnit::new(false, b).err();
        assert!(
            e.is_some_and(|e| e.to_string().contains("beat_bytes")),
            "{b}"
        );
    }
}

/// Verilator lint of the block's Verilog: clean, with no waiver.
#[test]
fn verilog_lints_clean() {
    for (store, beat) in [(false, 8), (true, 64), (false, 32)] {
        let mut uut = DmaUnit::new(store, beat).unwrap();
        uut.connect_all();
        let v = generate_verilog(&uut);
        if let Err(log) = common::verilator_lint(&v, &format!("dma-{store}-{beat}")) {
            panic!("verilator lint failed (store {store}, B {beat}): {log}");
        }
    }
}

// ---- Programs: both units, several descriptors, the command processor's
// ---- traffic replayed from the model.

/// An observation of a program run, in absolute model cycles.
#[derive(Debug, Clone, PartialEq, Eq)]
enum PObs {
    Req(u64, Engine, MemKind, u64),
    Resp(u64, Engine, MemKind, u64),
    Done(u64, Engine, u32),
    Fault(u64, ErrorCode, u32, u64),
}

impl PObs {
    /// Order within a cycle does not matter: sort by a canonical key.
    fn key(&self) -> (u64, u8, u8, u8, u64) {
        match *self {
            PObs::Req(t, w, k, a) => (t, 0, w as u8, k as u8, a),
            PObs::Resp(t, w, k, a) => (t, 1, w as u8, k as u8, a),
            PObs::Done(t, w, i) => (t, 2, w as u8, 0, i as u64),
            PObs::Fault(t, c, i, a) => (t, 3, c as u8, i as u8, a),
        }
    }
}

#[derive(Debug, Clone)]
struct Prog {
    base: Case,
    /// (is_store, transfer) in ring order.
    descs: Vec<(bool, Dma)>,
    /// MMIO writes between cycles: (cycles after the start, register, value).
    /// Each empties the translation caches; XLAT_PAGES and CONTROL.XLAT_EN
    /// may also change the translation of the job in progress.
    writes: Vec<(u64, u32, u32)>,
}

fn prog_desc(store: bool, d: Dma) -> Descriptor {
    if store {
        Descriptor::new(Op::Store(d))
    } else {
        Descriptor::new(Op::Load(d))
    }
}

/// The model's run of a program: its events from the start, the start cycle,
/// memories before and after.
#[allow(clippy::unwrap_used, clippy::type_complexity)]
fn run_model_prog(
    p: &Prog,
) -> (
    Vec<(u64, Event)>,
    u64,
    u64,
    VecMemory,
    LocalMem,
    VecMemory,
    LocalMem,
) {
    let c = &p.base;
    let cfg = config(c);
    cfg.validate().unwrap();
    let mut dev = ModelDevice::with_sink(&cfg, Vec::new());
    let mut mem = memory(c);
    let fill = [
        load(0, 0x1000, SPAD as u16, false),
        load(0, 0x6000, ACC as u16, true),
    ];
    run::start(&mut dev, &mut mem, RING, &fill).unwrap();
    run::wait_idle(&mut dev, &mut mem, 100_000).unwrap();
    if let Some(x) = &c.xlat {
        dev.mmio_write(regs::XLAT_BASE_LO, x.base as u32);
        dev.mmio_write(regs::XLAT_BASE_HI, (x.base >> 32) as u32);
        dev.mmio_write(regs::XLAT_PAGES, x.pages);
        dev.mmio_write(regs::CONTROL, regs::CONTROL_XLAT_EN);
    }
    let descs: Vec<Descriptor> = p.descs.iter().map(|&(s, d)| prog_desc(s, d)).collect();
    run::start(&mut dev, &mut mem, RING, &descs).unwrap();
    let mem0 = mem.clone();
    let local0 = dev.local().clone();
    let first = dev.sink().len();
    let start = dev.cycle();
    for &(at, reg, value) in &p.writes {
        if dev.run_until(&mut mem, start + at, true) == npukit_sim::RunExit::Cycle {
            dev.mmio_write(reg, value);
        }
    }
    let until = start + 30_000;
    dev.run_until(&mut mem, until, true);
    let events = dev.sink()[first..].to_vec();
    let end = events.last().map_or(start, |e| e.0) + 2;
    let local = dev.local().clone();
    (events, start, end, mem0, local0, mem, local)
}

fn model_obs(events: &[(u64, Event)]) -> Vec<PObs> {
    let dma = |w: &Engine| matches!(w, Engine::Load | Engine::Store);
    let mut obs: Vec<PObs> = events
        .iter()
        .filter_map(|(t, e)| match e {
            Event::MemReq { who, kind, addr } if dma(who) => {
                Some(PObs::Req(*t, *who, *kind, *addr))
            }
            Event::MemResp { who, kind, addr } if dma(who) => {
                Some(PObs::Resp(*t, *who, *kind, *addr))
            }
            Event::Complete { unit, index, .. } if dma(unit) => Some(PObs::Done(*t, *unit, *index)),
            Event::Error { code, index, addr } => Some(PObs::Fault(*t, *code, *index, *addr)),
            _ => None,
        })
        .collect();
    obs.sort_by_key(PObs::key);
    obs
}

/// In flight on the program harness's port: (requester, tag, kind, address, data).
type PFlight = (Engine, Bits<56>, MemKind, u64, Bits<512>);

/// Both units on the same memories, with the command processor's requests
/// and the issue cycles replayed from the model's events; the port model
/// grants command processor > store > load (M1).
#[allow(clippy::unwrap_used)]
fn run_block_prog(
    p: &Prog,
    events: &[(u64, Event)],
    start: u64,
    end: u64,
    mut mem: VecMemory,
    mut local: LocalMem,
) -> (Vec<PObs>, VecMemory, LocalMem) {
    let c = &p.base;
    let cfg = config(c);
    let b = c.beat as usize;
    let mut dram: DramTiming<PFlight> = DramTiming::new(&cfg.dram, c.beat);
    // units[0]: load, units[1]: store.
    let mut units = [
        DmaUnit::new(false, c.beat).unwrap(),
        DmaUnit::new(true, c.beat).unwrap(),
    ];
    let who = [Engine::Load, Engine::Store];
    for u in units.iter_mut() {
        u.connect_all();
        record_new(u);
        if let Some(x) = &c.xlat {
            u.xlat_en.next = true;
            u.xlat_base.next = x.base.into();
            u.xlat_pages.next = (x.pages as u64).into();
        }
        u.mem_size.next = c.mem_size.into();
        u.enable.next = true;
        settle(u);
    }
    let mut obs = vec![];
    for t in start..end {
        // MMIO writes before this cycle: an edge without `enable`.
        for &(_, reg, value) in p.writes.iter().filter(|w| start + w.0 == t) {
            for u in units.iter_mut() {
                match reg {
                    regs::XLAT_PAGES => u.xlat_pages.next = (value as u64).into(),
                    regs::CONTROL => u.xlat_en.next = value & regs::CONTROL_XLAT_EN != 0,
                    _ => {}
                }
                u.enable.next = false;
                u.tlb_flush.next = true;
                u.grant.next = false;
                u.resp_valid.next = false;
                u.issue.next = false;
                settle(u);
                edge(u);
                u.enable.next = true;
                u.tlb_flush.next = false;
            }
        }
        let resp = dram.deliver(t);
        for u in units.iter_mut() {
            u.grant.next = false;
            u.resp_valid.next = false;
            u.issue.next = false;
            settle(u);
        }
        let st = &mut units[1];
        let (acc, addr) = (st.lm_rd_acc.val(), st.lm_rd_addr.val().to_u64());
        st.lm_rd_data.next = to_bits512(&local_bytes(local.side(acc), addr, b));
        settle(st);
        // Faults: store before load (G3).
        if let Some(u) = [&units[1], &units[0]].into_iter().find(|u| u.fault.val()) {
            record(&units[0], false);
            record(&units[1], false);
            let code = ErrorCode::from_u32(u.fault_code.val().to_u32()).unwrap();
            obs.push(PObs::Fault(
                t,
                code,
                u.index.val().to_u32(),
                u.fault_addr.val().to_u64(),
            ));
            break;
        }
        for (i, u) in units.iter().enumerate() {
            if u.done.val() {
                assert!(!u.req_valid.val(), "cycle {t}: request while completing");
                obs.push(PObs::Done(t, who[i], u.index.val().to_u32()));
            }
        }
        let cmd = events.iter().any(|(et, e)| {
            *et == t
                && matches!(
                    e,
                    Event::MemReq {
                        who: Engine::Cmd,
                        ..
                    }
                )
        });
        if cmd {
            assert!(dram.can_accept(t), "cycle {t}: the port model diverged");
            dram.accept(
                t,
                (Engine::Cmd, 0_u64.into(), MemKind::Fetch, 0, 0_u64.into()),
            );
        } else if dram.can_accept(t) {
            if let Some(i) = [1, 0].into_iter().find(|&i| units[i].req_valid.val()) {
                let u = &mut units[i];
                u.grant.next = true;
                let addr = u.req_addr.val().to_u64();
                let tag = u.req_tag.val();
                let (kind, data) = if u.req_pte.val() {
                    (MemKind::Pte, to_bits512(mem.load(addr, b).unwrap()))
                } else if i == 1 {
                    let wdata = from_bits512(u.req_wdata.val());
                    let mask = u.req_wmask.val().to_u64();
                    for (j, byte) in wdata.iter().enumerate().take(b) {
                        if mask >> j & 1 == 1 {
                            mem.write(addr + j as u64, &[*byte]);
                        }
                    }
                    (MemKind::Write, 0_u64.into())
                } else {
                    (MemKind::Read, to_bits512(mem.load(addr, b).unwrap()))
                };
                dram.accept(t, (who[i], tag, kind, addr, data));
                obs.push(PObs::Req(t, who[i], kind, addr));
            }
        }
        if let Some((w, tag, kind, addr, data)) = resp {
            if let Some(i) = who.iter().position(|&x| x == w) {
                let u = &mut units[i];
                u.resp_valid.next = true;
                u.resp_tag.next = tag;
                u.resp_data.next = data;
                obs.push(PObs::Resp(t, w, kind, addr));
            }
        }
        for (et, e) in events.iter().filter(|(et, _)| *et == t) {
            if let Event::Issue { unit, index, .. } = e {
                if let Some(i) = who.iter().position(|x| x == unit) {
                    let u = &mut units[i];
                    assert!(
                        !u.busy.val() || u.done.val(),
                        "cycle {et}: issue to a busy unit"
                    );
                    let (s, d) = p.descs[*index as usize];
                    u.issue.next = true;
                    u.desc.next = desc_bits(&prog_desc(s, d));
                    u.issue_index.next = (*index as u64).into();
                }
            }
        }
        for u in units.iter_mut() {
            settle(u);
        }
        let ld = &units[0];
        if ld.lm_wr.val() {
            let n = ld.lm_wr_len.val().to_u64() as usize;
            let at = ld.lm_wr_addr.val().to_u64() as usize;
            let bytes = from_bits512(ld.lm_wr_data.val());
            local.side_mut(ld.lm_wr_acc.val())[at..at + n].copy_from_slice(&bytes[..n]);
        }
        for u in units.iter_mut() {
            edge(u);
        }
    }
    obs.sort_by_key(PObs::key);
    (obs, mem, local)
}

fn check_prog(p: &Prog) -> Vec<PObs> {
    let (events, start, end, mem0, local0, mem1, local1) = run_model_prog(p);
    let want = model_obs(&events);
    let (got, mem2, local2) = run_block_prog(p, &events, start, end, mem0, local0);
    if got != want {
        let n = got.iter().zip(&want).take_while(|(a, b)| a == b).count();
        panic!(
            "first difference at observation {n}: block {:?}, model {:?}\nprogram {p:#x?}",
            got.get(n),
            want.get(n)
        );
    }
    assert!(
        mem2.bytes() == mem1.bytes(),
        "device memory differs: {p:#x?}"
    );
    assert!(local2 == local1, "local memory differs: {p:#x?}");
    got
}

fn random_prog(rng: &mut Rng, seed: u64) -> Prog {
    let base = random_case(rng, seed);
    let n = 2 + rng.below(5) as usize;
    // Transfers near the first one, so that translations are reused across
    // descriptors; each with its own shape.
    let descs = (0..n)
        .map(|_| {
            let mut c = random_case(rng, seed);
            c.dma.dram = if rng.chance(60) {
                base.dma.dram + rng.below(512)
            } else {
                c.dma.dram
            };
            (c.store, c.dma)
        })
        .collect();
    let xlat = base.xlat.clone().filter(|_| rng.chance(70));
    let mut writes = vec![];
    if let Some(x) = &xlat {
        let mut at = 0;
        while rng.chance(60) {
            at += 1 + rng.below(60);
            let w = match rng.below(3) {
                0 => (regs::XLAT_PAGES, x.pages),
                1 => (regs::XLAT_PAGES, rng.below(x.pages as u64 + 2) as u32),
                _ => {
                    let on = rng.chance(70);
                    let bits = regs::CONTROL_RUN | if on { regs::CONTROL_XLAT_EN } else { 0 };
                    (regs::CONTROL, bits)
                }
            };
            writes.push((at, w.0, w.1));
        }
    }
    Prog {
        base: Case { xlat, ..base },
        descs,
        writes,
    }
}

#[test]
fn random_programs_match_model() {
    let mut rng = Rng(0x005E_ED0F_D1A6_0001);
    let progs = std::env::var("NPUKIT_HW_DMA_PROGS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(80u64);
    let (mut done, mut reqs, mut faults, mut back_to_back) = (0, 0, 0, 0);
    let mut writes = 0;
    for i in 0..progs {
        let p = random_prog(&mut rng, i);
        writes += p.writes.len();
        let obs = check_prog(&p);
        for (j, o) in obs.iter().enumerate() {
            match o {
                PObs::Done(t, w, _) => {
                    done += 1;
                    // The unit's next request in the cycle after its
                    // completion: the next descriptor issued while completing.
                    back_to_back += usize::from(
                        obs[j..]
                            .iter()
                            .any(|x| matches!(x, PObs::Req(u, v, ..) if *u == t + 1 && v == w)),
                    );
                }
                PObs::Req(..) => reqs += 1,
                PObs::Fault(..) => faults += 1,
                PObs::Resp(..) => {}
            }
        }
    }
    eprintln!(
        "{progs} programs: {done} completed, {reqs} requests, {faults} faults, \
         {back_to_back} issued in a completion cycle, {writes} MMIO writes"
    );
    if progs >= 80 {
        assert!(done >= progs && reqs >= 10 * progs && faults >= 5 && back_to_back >= 5);
        assert!(writes as u64 >= progs / 4);
    }
}

// ---- The same stimuli on the generated Verilog (Verilator).

/// The block's ports in trace order: (name, width). Inputs first (without
/// the clock), then outputs.
const INPUTS: &[(&str, usize)] = &[
    ("enable", 1),
    ("clear", 1),
    ("tlb_flush", 1),
    ("issue", 1),
    ("desc", 256),
    ("issue_index", 32),
    ("xlat_en", 1),
    ("xlat_base", 64),
    ("xlat_pages", 32),
    ("mem_size", 64),
    ("grant", 1),
    ("resp_valid", 1),
    ("resp_tag", 56),
    ("resp_data", 512),
    ("lm_rd_data", 512),
];
const OUTPUTS: &[(&str, usize)] = &[
    ("busy", 1),
    ("done", 1),
    ("index", 32),
    ("req_valid", 1),
    ("req_pte", 1),
    ("req_addr", 64),
    ("req_wdata", 512),
    ("req_wmask", 64),
    ("req_tag", 56),
    ("req_bytes", 8),
    ("fault", 1),
    ("fault_code", 8),
    ("fault_addr", 64),
    ("lm_wr", 1),
    ("lm_wr_acc", 1),
    ("lm_wr_addr", 32),
    ("lm_wr_len", 8),
    ("lm_wr_data", 512),
    ("lm_rd_acc", 1),
    ("lm_rd_addr", 32),
];

fn words<const N: usize>(v: Bits<N>, out: &mut Vec<u32>) {
    for i in 0..N.div_ceil(32) {
        out.push(v.get_bits::<32>(i * 32).to_u32());
    }
}

fn bit(v: bool, out: &mut Vec<u32>) {
    out.push(v as u32);
}

/// Every port of the block as 32-bit words, in `INPUTS` then `OUTPUTS` order.
fn port_words(u: &DmaUnit) -> Vec<u32> {
    let mut w = vec![];
    bit(u.enable.val(), &mut w);
    bit(u.clear.val(), &mut w);
    bit(u.tlb_flush.val(), &mut w);
    bit(u.issue.val(), &mut w);
    words(u.desc.val(), &mut w);
    words(u.issue_index.val(), &mut w);
    bit(u.xlat_en.val(), &mut w);
    words(u.xlat_base.val(), &mut w);
    words(u.xlat_pages.val(), &mut w);
    words(u.mem_size.val(), &mut w);
    bit(u.grant.val(), &mut w);
    bit(u.resp_valid.val(), &mut w);
    words(u.resp_tag.val(), &mut w);
    words(u.resp_data.val(), &mut w);
    words(u.lm_rd_data.val(), &mut w);
    bit(u.busy.val(), &mut w);
    bit(u.done.val(), &mut w);
    words(u.index.val(), &mut w);
    bit(u.req_valid.val(), &mut w);
    bit(u.req_pte.val(), &mut w);
    words(u.req_addr.val(), &mut w);
    words(u.req_wdata.val(), &mut w);
    words(u.req_wmask.val(), &mut w);
    words(u.req_tag.val(), &mut w);
    words(u.req_bytes.val(), &mut w);
    bit(u.fault.val(), &mut w);
    words(u.fault_code.val(), &mut w);
    words(u.fault_addr.val(), &mut w);
    bit(u.lm_wr.val(), &mut w);
    bit(u.lm_wr_acc.val(), &mut w);
    words(u.lm_wr_addr.val(), &mut w);
    words(u.lm_wr_len.val(), &mut w);
    words(u.lm_wr_data.val(), &mut w);
    bit(u.lm_rd_acc.val(), &mut w);
    words(u.lm_rd_addr.val(), &mut w);
    w
}

type Traces = std::collections::BTreeMap<(bool, u32), Vec<String>>;

thread_local! {
    /// When set, every settled point before an edge (and the fault cycle) is
    /// recorded per block variant: "<edge> <port words in hex>".
    static RECORD: std::cell::RefCell<Option<Traces>> = const { std::cell::RefCell::new(None) };
}

fn record(u: &DmaUnit, edge: bool) {
    RECORD.with(|r| {
        if let Some(t) = r.borrow_mut().as_mut() {
            let mut line = String::from(if edge { "1" } else { "0" });
            for w in port_words(u) {
                line += &format!(" {w:x}");
            }
            t.entry((u.is_store(), u.beat_bytes()))
                .or_default()
                .push(line);
        }
    });
}

/// A new block instance starts here (the testbench starts a new model).
fn record_new(u: &DmaUnit) {
    RECORD.with(|r| {
        if let Some(t) = r.borrow_mut().as_mut() {
            t.entry((u.is_store(), u.beat_bytes()))
                .or_default()
                .push("R".into());
        }
    });
}

/// C++ testbench: replays a trace on the Verilated block, comparing every
/// output word after each evaluation.
fn testbench() -> String {
    let mut set = String::new();
    let mut get = String::new();
    let mut names = String::new();
    for (name, width) in INPUTS {
        let n = width.div_ceil(32);
        if *width > 64 {
            for i in 0..n {
                set += &format!("  top->{name}[{i}] = w[k++];\n");
            }
        } else if *width > 32 {
            set +=
                &format!("  top->{name} = (uint64_t)w[k] | ((uint64_t)w[k + 1] << 32); k += 2;\n");
        } else {
            set += &format!("  top->{name} = w[k++];\n");
        }
    }
    for (name, width) in OUTPUTS {
        let n = width.div_ceil(32);
        for i in 0..n {
            names += &format!("\"{name}[{i}]\", ");
            if *width > 64 {
                get += &format!("  o.push_back(top->{name}[{i}]);\n");
            } else if *width > 32 {
                get += &format!("  o.push_back((uint32_t)(top->{name} >> {}));\n", 32 * i);
            } else {
                get += &format!("  o.push_back(top->{name});\n");
            }
        }
    }
    format!(
        r#"#include "Vdma.h"
#include "verilated.h"
#include <cstdint>
#include <cstdio>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>
static const char* NAMES[] = {{ {names} }};
int main(int argc, char** argv) {{
  Verilated::commandArgs(argc, argv);
  Vdma* top = new Vdma;
  top->clock = 0;
  top->eval();
  std::ifstream f(argv[1]);
  std::string line;
  long n = 0;
  while (std::getline(f, line)) {{
    n++;
    if (line == "R") {{
      delete top;
      top = new Vdma;
      top->clock = 0;
      top->eval();
      continue;
    }}
    std::istringstream s(line);
    int edge;
    s >> edge;
    std::vector<uint32_t> w;
    std::string h;
    while (s >> h) w.push_back((uint32_t)std::stoul(h, nullptr, 16));
    size_t k = 0;
{set}
    top->eval();
    std::vector<uint32_t> o;
{get}
    for (size_t i = 0; i < o.size(); i++) {{
      if (o[i] != w[k + i]) {{
        printf("line %ld: %s is %x, simulation says %x\n", n, NAMES[i], o[i], w[k + i]);
        return 1;
      }}
    }}
    if (edge) {{
      top->clock = 1;
      top->eval();
      top->clock = 0;
      top->eval();
    }}
  }}
  printf("%ld points match\n", n);
  delete top;
  return 0;
}}
"#
    )
}

/// Random cases and programs run under rust-hdl's simulator with every
/// settled point recorded; each trace is then replayed on the Verilated
/// Verilog of that block variant, which must produce the same outputs at
/// every point. This checks the generated Verilog (widths, shifts, part
/// selects) against the simulation the other tests check against the model.
#[test]
#[allow(clippy::unwrap_used)]
fn verilog_matches_simulation() {
    RECORD.with(|r| *r.borrow_mut() = Some(Traces::new()));
    let mut rng = Rng(0x7EA1_F00D_0000_0042);
    let mut n = 0;
    while n < 60 {
        let c = random_case(&mut rng, n);
        if matches!(c.beat, 16 | 64) {
            check(&c);
            n += 1;
        }
    }
    n = 0;
    while n < 25 {
        let p = random_prog(&mut rng, 1000 + n);
        if matches!(p.base.beat, 16 | 64) {
            check_prog(&p);
            n += 1;
        }
    }
    let traces = RECORD.with(|r| r.borrow_mut().take()).unwrap();
    assert_eq!(traces.len(), 4, "both units at B = 16 and 64");
    let dir = std::env::temp_dir().join(format!("npukit-hw-dma-vl-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("tb.cpp"), testbench()).unwrap();
    for ((store, beat), lines) in &traces {
        let mut uut = DmaUnit::new(*store, *beat).unwrap();
        uut.connect_all();
        let name = format!("dma_{store}_{beat}");
        std::fs::write(dir.join(format!("{name}.v")), generate_verilog(&uut)).unwrap();
        std::fs::write(dir.join(format!("{name}.trace")), lines.join("\n") + "\n").unwrap();
        let out = std::process::Command::new("verilator")
            .current_dir(&dir)
            .args([
                "--cc",
                "--exe",
                "--build",
                "-j",
                "2",
                "-Wno-fatal",
                "-Wno-WIDTH",
            ])
            .args(["--prefix", "Vdma", "--top-module", "top", "--Mdir"])
            .arg(format!("obj_{name}"))
            .arg(format!("{name}.v"))
            .arg("tb.cpp")
            .args(["-o", "tb"])
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "verilator build failed:\n{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let run = std::process::Command::new(dir.join(format!("obj_{name}")).join("tb"))
            .arg(dir.join(format!("{name}.trace")))
            .output()
            .unwrap();
        let msg = String::from_utf8_lossy(&run.stdout).to_string();
        assert!(run.status.success(), "{name}: {msg}");
        let points = lines.len();
        assert!(
            msg.contains(&format!("{points} points match")),
            "{name}: {msg}"
        );
        eprintln!("{name}: {msg}");
    }
    let _ = std::fs::remove_dir_all(&dir);
}

/// A valid translation entry for the last page of the 64-bit space: the range
/// check of a beat compares the end address in 65 bits (model and RTL), so it
/// faults `ADDR_RANGE` at `pa` instead of wrapping.
#[test]
fn entry_mapping_the_top_of_the_address_space() {
    let c = Case {
        store: false,
        beat: 16,
        latency: 5,
        rate: 16,
        max_out: 4,
        mem_size: 0x10000,
        dma: Dma {
            local: 0,
            dram: 0xFF0,
            rows: 1,
            row_bytes: 16,
            dram_stride: 0,
            local_stride: 0,
            acc: false,
        },
        xlat: Some(Xlat {
            base: 0x9000,
            pages: 1,
            entries: vec![xlat::pte(0xFFFF_FFFF_FFFF_F000, true)],
        }),
        seed: 5,
    };
    check(&c);
}
