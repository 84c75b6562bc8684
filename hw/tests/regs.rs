//! `Regs` (the MMIO register file, counters, IRQ, error latch and watchdog)
//! against the rules, edge by edge under rust-hdl's simulator on random
//! stimulus, and its Verilog alone under Verilator's linter.
//!
//! The reference is written from the register map (`npukit_abi::regs`), the
//! model's register accesses (`ModelDevice::mmio_read/mmio_write`: W1C, RUN
//! 0->1, BAD_RING, the ring registers ignored while running) and counter
//! mapping (`npukit_sim::Counters::by_offset`), and the rules G2 (reads are
//! the state at the end of the last cycle), G3 (a fault halts, latches ERR_*
//! and raises IRQ_ERROR; nothing but PERF_CYCLES counts), P1 (the counters)
//! and E2 (the watchdog fires at `p + w` while busy).

#![allow(clippy::unwrap_used, clippy::needless_range_loop)]

mod common;
use common::{edge, settle, Clocked, Rng};
use npukit_abi::regs as r;
use npukit_abi::ErrorCode;
use npukit_hw::gen::Params;
use npukit_hw::regs::Regs;
use npukit_sim::{Counters, NpuConfig};
use rust_hdl::prelude::*;

impl Clocked for Regs {
    fn clock(&mut self) -> &mut Signal<In, Clock> {
        &mut self.clock
    }
}

/// The inputs of one edge (a cycle, or an MMIO write when `!advance`).
#[derive(Debug, Clone, Copy, Default)]
struct Inputs {
    advance: bool,
    mmio_we: bool,
    addr: u32,
    wdata: u32,
    halt: bool,
    f_code: u8,
    f_desc: u32,
    f_addr: u64,
    go: bool,
    grant: bool,
    resp: bool,
    rd: bool,
    rd_len: u8,
    wr: bool,
    wr_len: u8,
    busy: [bool; 3],
    tstall: [bool; 3],
    mstall: [bool; 2],
    macs: bool,
    job_macs: u64,
    done_n: u8,
    fence_done: bool,
    fence_irq: bool,
    fence_seqv: u32,
    head: u32,
    fetch_ptr: u32,
    work: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Fault {
    code: u8,
    desc: u32,
    addr: u64,
}

/// The register file as the rules describe it.
#[derive(Debug, Clone, Default)]
struct Ref {
    now: u64,
    reset_cycle: u64,
    last_progress: u64,
    control: u32,
    irq_status: u32,
    irq_mask: u32,
    ring_base: u64,
    ring_size: u32,
    tail: u32,
    xlat_base: u64,
    xlat_pages: u32,
    watchdog: u32,
    fence_seq: u32,
    error: Option<Fault>,
    c: Counters,
    inflight: u32,
    /// A BAD_RING raised by an MMIO write, to report at the next cycle edge,
    /// with IRQ_STATUS then.
    mev: Option<(Fault, u32)>,
}

/// What the block must say besides `mmio_rdata`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Outputs {
    irq: bool,
    run: bool,
    running: bool,
    xlat_en: bool,
    halted: bool,
    ring_base: u64,
    ring_size: u32,
    tail: u32,
    xlat_base: u64,
    xlat_pages: u32,
    inflight: u32,
    clear: bool,
    flush: bool,
    wd: bool,
    /// `ev_irq` with `ev_irq_status`, and `ev_error` with `ev_err_*`.
    ev_irq: Option<u32>,
    ev_error: Option<Fault>,
    /// `ev_err_*` whatever `ev_error`.
    ev_err: Fault,
}

fn set_lo(v: &mut u64, lo: u32) {
    *v = (*v & !0xFFFF_FFFF) | lo as u64;
}
fn set_hi(v: &mut u64, hi: u32) {
    *v = (*v & 0xFFFF_FFFF) | (hi as u64) << 32;
}

impl Ref {
    fn run(&self) -> bool {
        self.control & r::CONTROL_RUN != 0
    }
    fn running(&self) -> bool {
        self.run() && self.error.is_none()
    }
    /// Work left: the ring to fetch (while running) or work held elsewhere.
    fn pending(&self, i: &Inputs) -> bool {
        (self.running() && i.fetch_ptr != self.tail) || i.work
    }
    fn busy(&self, i: &Inputs) -> bool {
        self.error.is_none() && (self.pending(i) || self.inflight != 0)
    }
    /// E2: WATCHDOG = w > 0, still busy after this cycle's response, `now >= p + w`.
    fn wd(&self, i: &Inputs) -> bool {
        self.watchdog != 0
            && (self.pending(i) || self.inflight.wrapping_sub(i.resp as u32) != 0)
            && self.now >= self.last_progress + self.watchdog as u64
    }
    fn counters(&self) -> Counters {
        Counters {
            cycles: self.now - self.reset_cycle,
            ..self.c
        }
    }

    fn read(&self, off: u32, i: &Inputs, p: &Params) -> u32 {
        let err = self.error.unwrap_or(Fault {
            code: 0,
            desc: 0,
            addr: 0,
        });
        match off {
            r::ID => npukit_abi::DEVICE_ID,
            r::VERSION => npukit_abi::abi_version(),
            r::CAPS => p.caps(),
            r::ARRAY_SHAPE => p.rows | p.cols << 16,
            r::SPAD_BYTES => p.spad_bytes,
            r::ACC_BYTES => p.acc_bytes,
            r::BEAT_BYTES => p.beat_bytes,
            // not part of a variant: the harness answers it
            r::CLOCK_MHZ => 0,
            r::CONTROL => self.control,
            r::STATUS => {
                (if self.busy(i) { r::STATUS_BUSY } else { 0 })
                    | if self.error.is_some() {
                        r::STATUS_HALTED
                    } else {
                        0
                    }
            }
            r::IRQ_STATUS => self.irq_status,
            r::IRQ_MASK => self.irq_mask,
            r::RING_BASE_LO => self.ring_base as u32,
            r::RING_BASE_HI => (self.ring_base >> 32) as u32,
            r::RING_SIZE => self.ring_size,
            r::RING_HEAD => i.head,
            r::RING_TAIL => self.tail,
            r::FENCE_SEQ => self.fence_seq,
            r::ERR_CODE => err.code as u32,
            r::ERR_DESC => err.desc,
            r::ERR_ADDR_LO => err.addr as u32,
            r::ERR_ADDR_HI => (err.addr >> 32) as u32,
            r::XLAT_BASE_LO => self.xlat_base as u32,
            r::XLAT_BASE_HI => (self.xlat_base >> 32) as u32,
            r::XLAT_PAGES => self.xlat_pages,
            r::WATCHDOG => self.watchdog,
            r::MAX_RING => p.max_ring,
            r::QUEUE_DEPTH => p.queue_depth,
            _ => {
                let c = self.counters();
                if let Some(v) = c.by_offset(off) {
                    v as u32
                } else if let Some(v) = c.by_offset(off.wrapping_sub(4)) {
                    (v >> 32) as u32
                } else {
                    0
                }
            }
        }
    }

    fn outputs(&self, i: &Inputs) -> Outputs {
        let write = !i.advance && i.mmio_we;
        // the events of a cycle edge: a halt raises IRQ_ERROR, a FENCE with
        // IRQ raises IRQ_FENCE; an MMIO-raised BAD_RING is reported instead
        let raised = (if i.halt { r::IRQ_ERROR } else { 0 })
            | if i.fence_done && i.fence_irq {
                r::IRQ_FENCE
            } else {
                0
            };
        let f = Fault {
            code: i.f_code,
            desc: i.f_desc,
            addr: i.f_addr,
        };
        let (ev_irq, ev_error, ev_err) = match self.mev {
            Some((mf, status)) if i.advance => (Some(status), Some(mf), mf),
            _ => (
                (raised != 0).then_some(self.irq_status | raised),
                i.halt.then_some(f),
                f,
            ),
        };
        Outputs {
            irq: self.irq_status & self.irq_mask != 0,
            run: self.run(),
            running: self.running(),
            xlat_en: self.control & r::CONTROL_XLAT_EN != 0,
            halted: self.error.is_some(),
            ring_base: self.ring_base,
            ring_size: self.ring_size,
            tail: self.tail,
            xlat_base: self.xlat_base,
            xlat_pages: self.xlat_pages,
            inflight: self.inflight,
            clear: write && i.addr == r::CONTROL && i.wdata & r::CONTROL_RESET != 0,
            flush: write
                && [r::CONTROL, r::XLAT_BASE_LO, r::XLAT_BASE_HI, r::XLAT_PAGES].contains(&i.addr),
            wd: self.wd(i),
            ev_irq,
            ev_error,
            ev_err,
        }
    }

    fn halt(&mut self, f: Fault) {
        self.error = Some(f);
        self.irq_status |= r::IRQ_ERROR;
        self.inflight = 0;
    }

    fn ring_ok(&self, p: &Params) -> bool {
        let size = self.ring_size;
        size.is_power_of_two()
            && size >= 2
            && size <= p.max_ring
            && self.ring_base.is_multiple_of(32)
            && self.tail < size
    }

    /// The edge: a cycle (G3, P1) or an MMIO write (G2).
    fn edge(&mut self, i: &Inputs, p: &Params) {
        if i.advance {
            self.now += 1;
            self.mev = None;
            if i.halt {
                self.halt(Fault {
                    code: i.f_code,
                    desc: i.f_desc,
                    addr: i.f_addr,
                });
            } else if i.go {
                let c = &mut self.c;
                self.inflight = self
                    .inflight
                    .wrapping_add(i.grant as u32)
                    .wrapping_sub(i.resp as u32);
                if i.grant {
                    c.mem_beats += 1;
                    c.dma_rd_bytes += if i.rd { i.rd_len as u64 } else { 0 };
                    c.dma_wr_bytes += if i.wr { i.wr_len as u64 } else { 0 };
                }
                if i.macs {
                    c.macs += i.job_macs;
                }
                if i.done_n > 0 {
                    c.desc_done += i.done_n as u64;
                    self.last_progress = self.now - 1;
                }
                if i.fence_done {
                    self.fence_seq = i.fence_seqv;
                    if i.fence_irq {
                        self.irq_status |= r::IRQ_FENCE;
                    }
                }
                c.load_busy += i.busy[0] as u64;
                c.compute_busy += i.busy[1] as u64;
                c.store_busy += i.busy[2] as u64;
                c.load_token_stall += i.tstall[0] as u64;
                c.compute_token_stall += i.tstall[1] as u64;
                c.store_token_stall += i.tstall[2] as u64;
                c.load_mem_stall += i.mstall[0] as u64;
                c.store_mem_stall += i.mstall[1] as u64;
            }
            return;
        }
        if !i.mmio_we {
            return;
        }
        let (t, v) = (self.now, i.wdata);
        let running = self.run();
        let bad_ring = |s: &mut Ref, desc: u32| {
            let f = Fault {
                code: ErrorCode::BadRing as u8,
                desc,
                addr: s.ring_base,
            };
            s.halt(f);
            s.mev = Some((f, s.irq_status));
        };
        match i.addr {
            r::CONTROL => {
                if v & r::CONTROL_RESET != 0 {
                    // everything but time (and an event still to report)
                    *self = Ref {
                        now: t,
                        reset_cycle: t,
                        last_progress: t,
                        mev: self.mev,
                        ..Ref::default()
                    };
                    return;
                }
                self.control = v & (r::CONTROL_RUN | r::CONTROL_XLAT_EN);
                if !running && v & r::CONTROL_RUN != 0 && self.error.is_none() {
                    self.last_progress = t;
                    if !self.ring_ok(p) {
                        bad_ring(self, self.tail);
                    }
                }
            }
            r::IRQ_STATUS => self.irq_status &= !v,
            r::IRQ_MASK => self.irq_mask = v & (r::IRQ_FENCE | r::IRQ_ERROR),
            r::RING_BASE_LO if !running => {
                set_lo(&mut self.ring_base, v);
                self.tail = 0;
            }
            r::RING_BASE_HI if !running => {
                set_hi(&mut self.ring_base, v);
                self.tail = 0;
            }
            r::RING_SIZE if !running => {
                self.ring_size = v;
                self.tail = 0;
            }
            r::RING_TAIL => {
                self.tail = v;
                self.last_progress = t;
                if running && v >= self.ring_size && self.error.is_none() {
                    bad_ring(self, v);
                }
            }
            r::XLAT_BASE_LO => set_lo(&mut self.xlat_base, v & !7),
            r::XLAT_BASE_HI => set_hi(&mut self.xlat_base, v),
            r::XLAT_PAGES => self.xlat_pages = v,
            r::WATCHDOG => {
                self.watchdog = v;
                self.last_progress = t;
            }
            _ => {}
        }
    }
}

fn drive(uut: &mut Regs, i: &Inputs) {
    uut.advance.next = i.advance;
    uut.mmio_we.next = i.mmio_we;
    uut.mmio_addr.next = (i.addr as u64).into();
    uut.mmio_wdata.next = (i.wdata as u64).into();
    uut.halt.next = i.halt;
    uut.f_code.next = (i.f_code as u64).into();
    uut.f_desc.next = (i.f_desc as u64).into();
    uut.f_addr.next = i.f_addr.into();
    uut.go.next = i.go;
    uut.grant.next = i.grant;
    uut.resp.next = i.resp;
    uut.rd.next = i.rd;
    uut.rd_len.next = (i.rd_len as u64).into();
    uut.wr.next = i.wr;
    uut.wr_len.next = (i.wr_len as u64).into();
    uut.busy_l.next = i.busy[0];
    uut.busy_c.next = i.busy[1];
    uut.busy_s.next = i.busy[2];
    uut.tstall_l.next = i.tstall[0];
    uut.tstall_c.next = i.tstall[1];
    uut.tstall_s.next = i.tstall[2];
    uut.mstall_l.next = i.mstall[0];
    uut.mstall_s.next = i.mstall[1];
    uut.macs.next = i.macs;
    uut.job_macs.next = i.job_macs.into();
    uut.done_n.next = (i.done_n as u64).into();
    uut.fence_done.next = i.fence_done;
    uut.fence_irq.next = i.fence_irq;
    uut.fence_seqv.next = (i.fence_seqv as u64).into();
    uut.head.next = (i.head as u64).into();
    uut.fetch_ptr.next = (i.fetch_ptr as u64).into();
    uut.work.next = i.work;
}

fn observed(uut: &Regs) -> Outputs {
    let err = Fault {
        code: uut.ev_err_code.val().to_u32() as u8,
        desc: uut.ev_err_desc.val().to_u32(),
        addr: uut.ev_err_addr.val().to_u64(),
    };
    Outputs {
        irq: uut.irq.val(),
        run: uut.run.val(),
        running: uut.running.val(),
        xlat_en: uut.xlat_en.val(),
        halted: uut.halted.val(),
        ring_base: uut.ring_base.val().to_u64(),
        ring_size: uut.ring_size.val().to_u32(),
        tail: uut.tail.val().to_u32(),
        xlat_base: uut.xlat_base.val().to_u64(),
        xlat_pages: uut.xlat_pages.val().to_u32(),
        inflight: uut.inflight.val().to_u32(),
        clear: uut.clear.val(),
        flush: uut.flush.val(),
        wd: uut.wd.val(),
        ev_irq: uut.ev_irq.val().then(|| uut.ev_irq_status.val().to_u32()),
        ev_error: uut.ev_error.val().then_some(err),
        ev_err: err,
    }
}

fn read(uut: &mut Regs, off: u32) -> u32 {
    uut.mmio_addr.next = (off as u64).into();
    settle(uut);
    uut.mmio_rdata.val().to_u32()
}

fn params() -> Params {
    Params::from_config(&NpuConfig::default())
}

fn new_block(p: &Params) -> Regs {
    let mut uut = Regs::new(p).unwrap();
    uut.connect_all();
    settle(&mut uut);
    uut
}

/// Every register offset, both words of every counter, and offsets that name
/// nothing (unaligned, in the gaps, past the map).
fn offsets() -> Vec<u32> {
    let mut v: Vec<u32> = r::REGISTERS.iter().map(|x| x.offset).collect();
    v.extend(r::PERF_COUNTERS.iter().map(|o| o + 4));
    v.extend([
        0x001, 0x022, 0x070, 0x0FC, 0x101, 0x106, 0x170, 0x174, 0xFFC,
    ]);
    v
}

/// An edge as the top drives it: `halt` and `go` follow the halt state (the
/// device acts only while not halted), and the watchdog firing is a fault.
fn random_inputs(rng: &mut Rng, m: &Ref, p: &Params, head: u32) -> Inputs {
    let mut i = Inputs {
        advance: rng.chance(75),
        grant: rng.chance(40),
        resp: rng.chance(30),
        rd_len: rng.below(65) as u8,
        wr_len: rng.below(65) as u8,
        job_macs: rng.below(1 << 40),
        done_n: if rng.chance(20) {
            1 + rng.below(5) as u8
        } else {
            0
        },
        fence_done: rng.chance(5),
        fence_irq: rng.chance(50),
        fence_seqv: rng.next() as u32,
        head,
        // mostly no fetch left, so the watchdog can see an idle device
        fetch_ptr: if rng.chance(80) {
            m.tail
        } else {
            rng.below(8) as u32
        },
        work: rng.chance(40),
        f_code: 1 + rng.below(14) as u8,
        f_desc: rng.next() as u32,
        f_addr: rng.next(),
        ..Default::default()
    };
    i.mmio_we = !i.advance || rng.chance(10);
    i.rd = rng.chance(50);
    i.wr = !i.rd && rng.chance(50);
    i.macs = rng.chance(10);
    for k in 0..3 {
        i.busy[k] = rng.chance(50);
        i.tstall[k] = rng.chance(30);
    }
    i.mstall = [rng.chance(20), rng.chance(20)];
    if i.advance {
        let acts = m.error.is_none();
        i.halt = acts && (rng.chance(1) || m.wd(&i));
        i.go = acts && !i.halt;
    } else {
        i.grant = false;
        let (addr, wdata) = random_write(rng, m, p);
        i.addr = addr;
        i.wdata = wdata;
    }
    i
}

/// A register write biased towards the interesting values.
fn random_write(rng: &mut Rng, m: &Ref, p: &Params) -> (u32, u32) {
    let addr = rng.pick(&[
        r::CONTROL,
        r::CONTROL,
        r::CONTROL,
        r::IRQ_STATUS,
        r::IRQ_MASK,
        r::RING_BASE_LO,
        r::RING_BASE_HI,
        r::RING_SIZE,
        r::RING_TAIL,
        r::RING_TAIL,
        r::XLAT_BASE_LO,
        r::XLAT_BASE_HI,
        r::XLAT_PAGES,
        r::WATCHDOG,
        r::WATCHDOG,
        r::ID,
        r::STATUS,
        r::PERF_CYCLES,
        0x0FC,
    ]);
    // doorbells while running (the other half of BAD_RING)
    let addr = if m.running() && rng.chance(30) {
        r::RING_TAIL
    } else {
        addr
    };
    let wdata = match addr {
        r::CONTROL => {
            let reset = if rng.chance(15) { r::CONTROL_RESET } else { 0 };
            // mostly start only a ring that is set up (else BAD_RING halts)
            let run = if m.ring_ok(p) || rng.chance(20) {
                r::CONTROL_RUN
            } else {
                0
            };
            (rng.next() as u32 & !(r::CONTROL_RESET | r::CONTROL_RUN)) | reset | run
        }
        r::RING_SIZE => {
            if rng.chance(80) {
                1 << rng.below(13)
            } else {
                rng.below(5000) as u32
            }
        }
        r::RING_BASE_LO => rng.next() as u32 & if rng.chance(80) { !31 } else { !0 },
        r::RING_TAIL => {
            if m.running() && rng.chance(25) {
                m.ring_size.wrapping_add(rng.below(100) as u32)
            } else if rng.chance(85) && m.ring_size > 0 {
                rng.below(m.ring_size as u64) as u32
            } else {
                rng.next() as u32
            }
        }
        r::WATCHDOG => {
            if rng.chance(20) {
                0
            } else {
                1 + rng.below(12) as u32
            }
        }
        r::IRQ_STATUS | r::IRQ_MASK => rng.below(16) as u32,
        _ => rng.next() as u32,
    };
    (addr, wdata)
}

#[test]
fn random_edges_match_the_rules() {
    let p = params();
    let mut uut = new_block(&p);
    let mut m = Ref::default();
    let mut rng = Rng(0x5EED_0F2E_65D0_0D11);
    let all = offsets();
    // wd, fault, BAD_RING by RUN, BAD_RING by TAIL, irq line, reset, BAD_RING reported
    let mut seen = [0u32; 7];
    let mut head = 0u32;
    for step in 0..30000 {
        if rng.chance(10) {
            head = rng.below(64) as u32;
        }
        let i = random_inputs(&mut rng, &m, &p, head);
        drive(&mut uut, &i);
        settle(&mut uut);
        let want = m.outputs(&i);
        assert_eq!(
            observed(&uut),
            want,
            "step {step}, inputs {i:?}, reference {m:?}"
        );
        // G2: reads return the state at the end of the last edge
        let picks: Vec<u32> = if step % 250 == 0 {
            all.clone()
        } else {
            (0..4).map(|_| rng.pick(&all)).collect()
        };
        for off in picks {
            assert_eq!(
                read(&mut uut, off),
                m.read(off, &i, &p),
                "step {step}: read {off:#05x}, inputs {i:?}, reference {m:?}"
            );
        }
        uut.mmio_addr.next = (i.addr as u64).into();
        settle(&mut uut);
        seen[0] += (i.advance && want.wd && m.error.is_none()) as u32;
        seen[1] += i.halt as u32;
        seen[4] += want.irq as u32;
        seen[5] += want.clear as u32;
        seen[6] += (i.advance && m.mev.is_some()) as u32;
        let before = m.error;
        m.edge(&i, &p);
        if before.is_none() && !i.advance {
            if let Some(f) = m.error {
                seen[if i.addr == r::CONTROL { 2 } else { 3 }] += 1;
                assert_eq!(f.code, ErrorCode::BadRing as u8);
            }
        }
        edge(&mut uut);
    }
    assert!(
        seen.iter().all(|&n| n > 3),
        "watchdog, faults, both BAD_RINGs, the IRQ line, resets and reported BAD_RINGs all occur: {seen:?}"
    );
}

/// A cycle that happens, with the given extra inputs.
fn cycle(uut: &mut Regs, m: &mut Ref, p: &Params, f: impl Fn(&Ref, &mut Inputs)) -> Outputs {
    let mut i = Inputs {
        advance: true,
        go: m.error.is_none(),
        ..Default::default()
    };
    f(m, &mut i);
    if i.halt {
        i.go = false;
    }
    drive(uut, &i);
    settle(uut);
    let o = observed(uut);
    assert_eq!(o, m.outputs(&i));
    m.edge(&i, p);
    edge(uut);
    o
}

fn write(uut: &mut Regs, m: &mut Ref, p: &Params, addr: u32, wdata: u32) {
    let i = Inputs {
        mmio_we: true,
        addr,
        wdata,
        ..Default::default()
    };
    drive(uut, &i);
    settle(uut);
    assert_eq!(observed(uut), m.outputs(&i));
    m.edge(&i, p);
    edge(uut);
}

#[test]
fn watchdog_fires_at_p_plus_w_and_counters_freeze_on_the_fault() {
    let p = params();
    let mut uut = new_block(&p);
    let mut m = Ref::default();
    for _ in 0..5 {
        cycle(&mut uut, &mut m, &p, |_, _| {});
    }
    // WATCHDOG written before cycle 5: p = 5, so with work pending it fires in 5 + 3
    write(&mut uut, &mut m, &p, r::WATCHDOG, 3);
    let mut fired = None;
    for t in 5..20u64 {
        let o = cycle(&mut uut, &mut m, &p, |m, i| {
            i.work = true;
            i.busy = [true; 3];
            i.grant = true;
            i.resp = true;
            i.halt = i.go && m.wd(i);
            i.f_code = ErrorCode::Watchdog as u8;
        });
        if o.wd && fired.is_none() {
            fired = Some(t);
        }
    }
    assert_eq!(fired, Some(8), "E2: first fires in cycle p + w");
    // the fault cycle counted nothing but PERF_CYCLES (P1, G3)
    assert_eq!(read(&mut uut, r::PERF_LOAD_BUSY), 3);
    assert_eq!(read(&mut uut, r::PERF_MEM_BEATS), 3);
    assert_eq!(read(&mut uut, r::PERF_CYCLES), 20);
    assert_eq!(read(&mut uut, r::ERR_CODE), ErrorCode::Watchdog as u32);
    assert_eq!(read(&mut uut, r::STATUS), r::STATUS_HALTED);
    assert_eq!(read(&mut uut, r::IRQ_STATUS), r::IRQ_ERROR);
    // the line follows the mask; W1C clears only the bits written
    assert!(!uut.irq.val());
    write(&mut uut, &mut m, &p, r::IRQ_MASK, r::IRQ_ERROR);
    assert!(uut.irq.val());
    write(&mut uut, &mut m, &p, r::IRQ_STATUS, r::IRQ_FENCE);
    assert!(uut.irq.val());
    write(&mut uut, &mut m, &p, r::IRQ_STATUS, r::IRQ_ERROR);
    assert!(!uut.irq.val());
    // CONTROL.RESET: counters from zero, PERF_CYCLES counts from the reset
    write(&mut uut, &mut m, &p, r::CONTROL, r::CONTROL_RESET);
    cycle(&mut uut, &mut m, &p, |_, _| {});
    assert_eq!(read(&mut uut, r::PERF_CYCLES), 1);
    assert_eq!(read(&mut uut, r::PERF_LOAD_BUSY), 0);
    assert_eq!(read(&mut uut, r::STATUS), 0);
}

#[test]
fn verilog_lints_clean() {
    let uut = new_block(&params());
    let v = generate_verilog(&uut);
    if let Err(log) = common::verilator_lint(&v, "regs") {
        panic!("verilator lint failed: {log}");
    }
}
