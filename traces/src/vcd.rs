//! A Value Change Dump of the model's event stream, for GTKWave or Surfer.
//!
//! Timescale: 1 ns when a cycle is a whole number of nanoseconds at
//! `clock.freq_mhz`, else 1 ps with times rounded to the nearest picosecond.
//! Values are the state at the end of each cycle (after all of its events), so
//! they change only at event cycles; pulses are high for the one cycle of their
//! event and return to 0 at the next cycle.
//!
//! | signal | width | meaning |
//! |--------|-------|---------|
//! | `npu.<unit>.busy` | 1 | executing a descriptor (Issue to Complete; for cmd, a FENCE from Dispatch to Complete) |
//! | `npu.<unit>.opcode` | 8 | opcode of the last descriptor started (kept when idle) |
//! | `npu.<unit>.index` | 32 | its ring index |
//! | `npu.<unit>.queue` | 8 (more if `cmdproc.queue_depth` > 255) | descriptors dispatched, not issued (load, compute, store) |
//! | `npu.mem_req` | 1 | pulse: a request accepted on the memory port |
//! | `npu.mem_write` | 1 | pulse: that request is a write (STORE data or FENCE writeback) |
//! | `npu.mem_who` | 2 | requester of that request (0 cmd, 1 load, 2 compute, 3 store) |
//! | `npu.mem_addr` | 64 | its physical beat address (kept) |
//! | `npu.mem_resp` | 1 | pulse: a response delivered |
//! | `npu.mem_outstanding` | 16 | requests in flight |
//! | `npu.tokens.<queue>` | 8 | dependency-token counters |
//! | `npu.irq` | 1 | pulse: interrupt causes raised |
//! | `npu.irq_status` | 32 | IRQ_STATUS as last reported |
//! | `npu.fence_seq` | 32 | last fence sequence number published |
//! | `npu.error` | 8 | error code the device halted with (0: none) |

use std::io::{self, Write};

use ::vcd::{IdCode, SimulationCommand, TimescaleUnit, Value, Writer};
use npukit_sim::{Engine, Event, NpuConfig, TokenQueue};

use crate::replay::{by_cycle, eng, tok, Replay};

/// How cycles map to VCD time.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct VcdClock {
    pub unit: TimescaleUnit,
    /// Ticks of `unit` per cycle: `num / den`.
    num: u64,
    den: u64,
}

impl VcdClock {
    /// The timescale for `freq_mhz` (see the module docs).
    pub fn new(freq_mhz: u32) -> Self {
        let f = freq_mhz.max(1) as u64;
        if 1000 % f == 0 {
            VcdClock {
                unit: TimescaleUnit::NS,
                num: 1000 / f,
                den: 1,
            }
        } else {
            VcdClock {
                unit: TimescaleUnit::PS,
                num: 1_000_000,
                den: f,
            }
        }
    }

    /// VCD time of the start of `cycle`, in units of [`VcdClock::unit`].
    pub fn time(&self, cycle: u64) -> u64 {
        let t = (cycle as u128 * self.num as u128 + self.den as u128 / 2) / self.den as u128;
        t.min(u64::MAX as u128) as u64
    }
}

const TOKEN_SIGNALS: [&str; 4] = [
    "load_to_compute",
    "compute_to_load",
    "compute_to_store",
    "store_to_compute",
];

/// Writes `events` as a VCD.
pub fn write_vcd(events: &[(u64, Event)], cfg: &NpuConfig, out: &mut impl Write) -> io::Result<()> {
    let clock = VcdClock::new(cfg.clock.freq_mhz);
    let mut w = Writer::new(out);
    w.version(concat!("npukit-traces ", env!("CARGO_PKG_VERSION")))?;
    w.comment(&format!(
        "npukit model events; 1 cycle = {} MHz clock; values sampled at the end of each cycle",
        cfg.clock.freq_mhz
    ))?;
    w.timescale(1, clock.unit)?;
    let mut s = Signals::default();
    let queue_w = 8.max(32 - cfg.cmdproc.queue_depth.leading_zeros());
    w.add_module("npu")?;
    let mut units = Vec::new();
    for e in Engine::ALL {
        w.add_module(e.name())?;
        let busy = s.add(&mut w, 1, "busy")?;
        let opcode = s.add(&mut w, 8, "opcode")?;
        let index = s.add(&mut w, 32, "index")?;
        let queue = if e == Engine::Cmd {
            None
        } else {
            Some(s.add(&mut w, queue_w, "queue")?)
        };
        w.upscope()?;
        units.push(UnitSigs {
            busy,
            opcode,
            index,
            queue,
        });
    }
    let mem_req = s.add(&mut w, 1, "mem_req")?;
    let mem_write = s.add(&mut w, 1, "mem_write")?;
    let mem_who = s.add(&mut w, 2, "mem_who")?;
    let mem_addr = s.add(&mut w, 64, "mem_addr")?;
    let mem_resp = s.add(&mut w, 1, "mem_resp")?;
    let mem_outstanding = s.add(&mut w, 16, "mem_outstanding")?;
    w.add_module("tokens")?;
    let mut tokens = [0; 4];
    for (t, name) in tokens.iter_mut().zip(TOKEN_SIGNALS) {
        *t = s.add(&mut w, 8, name)?;
    }
    w.upscope()?;
    let irq = s.add(&mut w, 1, "irq")?;
    let irq_status = s.add(&mut w, 32, "irq_status")?;
    let fence_seq = s.add(&mut w, 32, "fence_seq")?;
    let error = s.add(&mut w, 8, "error")?;
    w.upscope()?;
    w.enddefinitions()?;

    w.timestamp(0)?;
    w.begin(SimulationCommand::Dumpvars)?;
    for i in 0..s.sigs.len() {
        s.write(&mut w, i)?;
    }
    w.end()?;
    let pulses = [mem_req, mem_write, mem_resp, irq];

    let mut r = Replay::default();
    let mut last_time = 0u64;
    // The cycle whose pulses are still high.
    let mut pulsed: Option<u64> = None;
    for (c, group) in by_cycle(events) {
        if let Some(p) = pulsed.take() {
            if p + 1 < c {
                for &i in &pulses {
                    s.cur[i] = 0;
                }
                s.flush(&mut w, clock.time(p + 1), &mut last_time)?;
            }
        }
        for &i in &pulses {
            s.cur[i] = 0;
        }
        for (_, e) in group {
            r.apply(c, e);
            match *e {
                Event::MemReq { who, kind, addr } => {
                    s.cur[mem_req] = 1;
                    s.cur[mem_write] = kind.is_write() as u64;
                    s.cur[mem_who] = eng(who) as u64;
                    s.cur[mem_addr] = addr;
                }
                Event::MemResp { .. } => s.cur[mem_resp] = 1,
                Event::Dispatch {
                    unit: Engine::Cmd,
                    index,
                    desc,
                } => {
                    let u = &units[eng(Engine::Cmd)];
                    s.cur[u.opcode] = desc.opcode() as u64;
                    s.cur[u.index] = index.into();
                }
                Event::Issue {
                    unit,
                    index,
                    opcode,
                } => {
                    let u = &units[eng(unit)];
                    s.cur[u.opcode] = opcode as u64;
                    s.cur[u.index] = index.into();
                }
                Event::Irq { .. } => s.cur[irq] = 1,
                _ => {}
            }
        }
        for e in Engine::ALL {
            let u = &units[eng(e)];
            s.cur[u.busy] = r.running[eng(e)].is_some() as u64;
            if let Some(q) = u.queue {
                s.cur[q] = r.queue_depth(e) as u64;
            }
        }
        s.cur[mem_outstanding] = r.outstanding;
        for q in TokenQueue::ALL {
            s.cur[tokens[tok(q)]] = r.tokens[tok(q)].into();
        }
        s.cur[irq_status] = r.irq_status.into();
        s.cur[fence_seq] = r.fence_seq.into();
        s.cur[error] = r.error.map_or(0, |e| e as u64);
        s.flush(&mut w, clock.time(c), &mut last_time)?;
        if pulses.iter().any(|&i| s.cur[i] != 0) {
            pulsed = Some(c);
        }
    }
    if let Some(p) = pulsed {
        for &i in &pulses {
            s.cur[i] = 0;
        }
        s.flush(&mut w, clock.time(p + 1), &mut last_time)?;
    }
    w.flush()
}

struct UnitSigs {
    busy: usize,
    opcode: usize,
    index: usize,
    queue: Option<usize>,
}

/// The declared signals, their current values and the values last written.
#[derive(Default)]
struct Signals {
    sigs: Vec<(IdCode, u32)>,
    cur: Vec<u64>,
    written: Vec<u64>,
}

impl Signals {
    fn add<W: Write>(&mut self, w: &mut Writer<W>, width: u32, name: &str) -> io::Result<usize> {
        let id = w.add_wire(width, name)?;
        self.sigs.push((id, width));
        self.cur.push(0);
        self.written.push(0);
        Ok(self.sigs.len() - 1)
    }

    fn write<W: Write>(&mut self, w: &mut Writer<W>, i: usize) -> io::Result<()> {
        let (id, width) = self.sigs[i];
        let v = self.cur[i];
        self.written[i] = v;
        if width == 1 {
            w.change_scalar(id, v != 0)
        } else {
            let bits = (0..width).rev().map(|b| {
                if b < 64 && (v >> b) & 1 != 0 {
                    Value::V1
                } else {
                    Value::V0
                }
            });
            w.change_vector(id, bits)
        }
    }

    /// Writes every changed signal at `time` (a timestamp only if something
    /// changed; times never go backwards or repeat a written timestamp).
    fn flush<W: Write>(&mut self, w: &mut Writer<W>, time: u64, last: &mut u64) -> io::Result<()> {
        let mut stamped = false;
        for i in 0..self.sigs.len() {
            if self.cur[i] == self.written[i] {
                continue;
            }
            if !stamped {
                if time > *last {
                    w.timestamp(time)?;
                    *last = time;
                }
                stamped = true;
            }
            self.write(w, i)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::read::read_vcd;

    #[test]
    fn clock_picks_ns_when_whole_else_ps() {
        let c = VcdClock::new(1000);
        assert_eq!((c.unit, c.time(7)), (TimescaleUnit::NS, 7));
        let c = VcdClock::new(250);
        assert_eq!((c.unit, c.time(3)), (TimescaleUnit::NS, 12));
        let c = VcdClock::new(300);
        assert_eq!(c.unit, TimescaleUnit::PS);
        assert_eq!(c.time(1), 3333);
        assert_eq!(c.time(2), 6667);
        assert_eq!(c.time(3), 10000);
        let c = VcdClock::new(1200);
        assert_eq!((c.unit, c.time(6)), (TimescaleUnit::PS, 5000));
    }

    #[test]
    fn pulses_last_one_cycle_and_merge_when_consecutive() {
        let req = |c| {
            (
                c,
                Event::MemReq {
                    who: Engine::Store,
                    kind: npukit_sim::MemKind::Write,
                    addr: 0x40,
                },
            )
        };
        let ev = vec![req(3), req(4), req(9)];
        let mut out = Vec::new();
        write_vcd(&ev, &NpuConfig::default(), &mut out).unwrap();
        let v = read_vcd(&out).unwrap();
        assert_eq!(
            v.changes["npu.mem_req"],
            [(0, 0), (3, 1), (5, 0), (9, 1), (10, 0)]
        );
        assert_eq!(v.changes["npu.mem_write"], v.changes["npu.mem_req"]);
        assert_eq!(v.value_at("npu.mem_who", 9), Some(3));
        assert_eq!(v.value_at("npu.mem_addr", 9), Some(0x40));
        assert_eq!(v.value_at("npu.mem_outstanding", 10), Some(3));
    }

    #[test]
    fn empty_stream_and_wide_queues() {
        let mut cfg = NpuConfig::default();
        cfg.cmdproc.queue_depth = 256;
        let mut out = Vec::new();
        write_vcd(&[], &cfg, &mut out).unwrap();
        let v = read_vcd(&out).unwrap();
        assert_eq!(v.widths["npu.load.queue"], 9);
        assert_eq!(v.times, [0]);
    }
}
