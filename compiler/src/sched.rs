//! Dependency-token scheduling.
//!
//! The code generator hands operations to [`Sched`] in *program order*: the
//! order of a sequential machine that would give the intended result. Each
//! operation says which byte ranges it reads and writes in the scratchpad, the
//! accumulator memory and device memory. The scheduler turns that into the
//! token flags of the three-unit chain (load <-> compute <-> store):
//!
//! * **Hazards.** An operation must start after every earlier operation on
//!   another unit whose accesses conflict with its own (read-after-write,
//!   write-after-read, write-after-write on overlapping bytes). Operations on
//!   the same unit are ordered by the unit itself (it runs one descriptor at a
//!   time, in order).
//! * **Knowledge.** Each operation carries, per unit, the highest index (in that
//!   unit's order) known to have completed when it starts: what its own unit's
//!   previous operation knew, plus what every producer it waits for knew. A
//!   hazard already covered by that knowledge needs no token.
//! * **Tokens.** A remaining hazard on a neighbouring unit becomes a token: the
//!   latest conflicting producer gets SIGNAL towards the consumer's unit, the
//!   consumer gets WAIT from it. Because the waited-for producer index grows
//!   strictly along each consumer unit, the k-th WAIT on a counter is served by
//!   the k-th SIGNAL, so every token pushed is consumed, by the intended
//!   consumer.
//! * **Relays.** Load and store are not neighbours. A load that must wait for a
//!   store (it reads device memory the store wrote, or overwrites scratchpad
//!   bytes the store reads), or the reverse, gets a relay: a one-byte MAX on a
//!   private scratch byte in the compute unit, which waits for the store and
//!   signals the load.
//!
//! The ring order is the program order, and every token's producer comes before
//! its consumer in it. The device dispatches in ring order into bounded queues,
//! so by induction over the ring every descriptor issues: the program is
//! deadlock-free for any queue depth, and race-free by the hazard rule.

use npukit_abi::desc::{deps, Fence, Max, Op};
use npukit_abi::{Descriptor, Unit};

/// A local or device memory.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Space {
    Spad,
    Acc,
    Dram,
}

/// A byte range an operation reads or writes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Access {
    pub space: Space,
    pub start: u64,
    pub end: u64,
    pub write: bool,
}

impl Access {
    pub fn read(space: Space, start: u64, len: u64) -> Self {
        Access {
            space,
            start,
            end: start + len,
            write: false,
        }
    }

    pub fn write(space: Space, start: u64, len: u64) -> Self {
        Access {
            space,
            start,
            end: start + len,
            write: true,
        }
    }

    pub fn conflicts(&self, o: &Access) -> bool {
        self.space == o.space && (self.write || o.write) && self.start < o.end && o.start < self.end
    }
}

/// Whether two access lists conflict.
pub(crate) fn conflict(a: &[Access], b: &[Access]) -> bool {
    a.iter().any(|x| b.iter().any(|y| x.conflicts(y)))
}

/// An operation waiting to be scheduled.
#[derive(Debug, Clone)]
pub(crate) struct Pending {
    pub op: Op,
    pub access: Vec<Access>,
}

#[derive(Debug, Clone)]
struct Rec {
    ring: usize,
    access: Vec<Access>,
    know: [i64; 3],
}

const NONE: i64 = -1;

fn ui(u: Unit) -> usize {
    u as usize
}

/// The scheduler: descriptors in ring order with their token flags.
#[derive(Debug, Clone)]
pub(crate) struct Sched {
    pub descs: Vec<Descriptor>,
    /// The layer each descriptor belongs to (`None` for the final FENCE).
    pub layer_of: Vec<Option<usize>>,
    recs: Vec<Rec>,
    units: [Vec<usize>; 3],
    scratch: u32,
    pub relays: usize,
}

impl Sched {
    /// `scratch`: a scratchpad byte nothing else touches, for relays.
    pub fn new(scratch: u32) -> Self {
        Sched {
            descs: Vec::new(),
            layer_of: Vec::new(),
            recs: Vec::new(),
            units: Default::default(),
            scratch,
            relays: 0,
        }
    }

    /// What unit `u` knows complete when its next operation starts.
    fn knowledge(&self, u: Unit) -> [i64; 3] {
        let list = &self.units[ui(u)];
        match list.last() {
            None => [NONE; 3],
            Some(&r) => {
                let mut k = self.recs[r].know;
                k[ui(u)] = list.len() as i64 - 1;
                k
            }
        }
    }

    /// Appends `p` (on behalf of `layer`); returns its ring index.
    pub fn push(&mut self, p: &Pending, layer: usize) -> usize {
        self.push_inner(p.op, &p.access, [NONE; 3], Some(layer))
    }

    fn push_inner(
        &mut self,
        op: Op,
        access: &[Access],
        mut need: [i64; 3],
        layer: Option<usize>,
    ) -> usize {
        let unit = Descriptor::new(op)
            .opcode()
            .unit()
            .expect("only unit operations are scheduled");
        let know0 = self.knowledge(unit);
        for a in Unit::ALL {
            if a == unit {
                continue;
            }
            let list = &self.units[ui(a)];
            let lo = (know0[ui(a)] + 1) as usize;
            if let Some(idx) = (lo..list.len())
                .rev()
                .find(|&i| conflict(&self.recs[list[i]].access, access))
            {
                need[ui(a)] = need[ui(a)].max(idx as i64);
            }
        }
        // Load and store are not neighbours: relay through the compute unit.
        let far = match unit {
            Unit::Load => Some(Unit::Store),
            Unit::Store => Some(Unit::Load),
            Unit::Compute => None,
        };
        if let Some(f) = far {
            if need[ui(f)] > know0[ui(f)] {
                let mut rneed = [NONE; 3];
                rneed[ui(f)] = need[ui(f)];
                let s = self.scratch;
                let relay = Op::Max(Max {
                    a: s,
                    b: s,
                    dst: s,
                    len: 1,
                });
                self.push_inner(relay, &[], rneed, layer);
                self.relays += 1;
                let c = ui(Unit::Compute);
                need[c] = need[c].max(self.units[c].len() as i64 - 1);
            }
            need[ui(f)] = NONE;
        }
        let mut know = know0;
        let mut flags = 0u8;
        for a in Unit::ALL {
            let ai = ui(a);
            if a == unit || need[ai] <= know[ai] {
                continue;
            }
            let producer = self.units[ai][need[ai] as usize];
            let (signal, wait) = if a < unit {
                (deps::SIGNAL_NEXT, deps::WAIT_PREV)
            } else {
                (deps::SIGNAL_PREV, deps::WAIT_NEXT)
            };
            let pd = &mut self.descs[self.recs[producer].ring];
            assert_eq!(
                pd.deps & signal,
                0,
                "a producer signals one consumer per direction"
            );
            pd.deps |= signal;
            flags |= wait;
            let pk = self.recs[producer].know;
            for (k, p) in know.iter_mut().zip(pk) {
                *k = (*k).max(p);
            }
            know[ai] = know[ai].max(need[ai]);
        }
        let ring = self.descs.len();
        self.descs.push(Descriptor { deps: flags, op });
        self.layer_of.push(layer);
        self.recs.push(Rec {
            ring,
            access: access.to_vec(),
            know,
        });
        self.units[ui(unit)].push(self.recs.len() - 1);
        ring
    }

    /// Appends the final FENCE (raise the interrupt, publish `seq`).
    pub fn fence(&mut self, seq: u32) {
        self.descs.push(Descriptor::new(Op::Fence(Fence {
            seq,
            writeback: None,
            irq: true,
        })));
        self.layer_of.push(None);
    }
}

/// Signals minus waits on each token counter, in [`npukit_sim::TokenQueue::ALL`]
/// order (load->compute, compute->load, compute->store, store->compute). A
/// well-formed program has all zeros.
pub fn token_balance(descs: &[Descriptor]) -> [i64; 4] {
    let mut bal = [0i64; 4];
    for d in descs {
        let Some(unit) = d.opcode().unit() else {
            continue;
        };
        let has = |f: u8| i64::from(d.deps & f != 0);
        match unit {
            Unit::Load => {
                bal[0] += has(deps::SIGNAL_NEXT);
                bal[1] -= has(deps::WAIT_NEXT);
            }
            Unit::Compute => {
                bal[0] -= has(deps::WAIT_PREV);
                bal[1] += has(deps::SIGNAL_PREV);
                bal[2] += has(deps::SIGNAL_NEXT);
                bal[3] -= has(deps::WAIT_NEXT);
            }
            Unit::Store => {
                bal[2] -= has(deps::WAIT_PREV);
                bal[3] += has(deps::SIGNAL_PREV);
            }
        }
    }
    bal
}

#[cfg(test)]
mod tests {
    use super::*;
    use npukit_abi::desc::{Dma, Matmul};

    fn load(local: u64, len: u64) -> Pending {
        Pending {
            op: Op::Load(Dma {
                local: local as u32,
                dram: 0x1000,
                rows: 1,
                row_bytes: len as u16,
                dram_stride: len as u32,
                local_stride: len as u32,
                acc: false,
            }),
            access: vec![
                Access::read(Space::Dram, 0x1000, len),
                Access::write(Space::Spad, local, len),
            ],
        }
    }

    fn mm(a: u64) -> Pending {
        Pending {
            op: Op::Matmul(Matmul {
                a: a as u32,
                w: a as u32,
                out: 0,
                m: 1,
                k: 1,
                n: 1,
                accumulate: false,
            }),
            access: vec![
                Access::read(Space::Spad, a, 1),
                Access::write(Space::Acc, 0, 4),
            ],
        }
    }

    fn store(dram: u64) -> Pending {
        Pending {
            op: Op::Store(Dma {
                local: 0,
                dram,
                rows: 1,
                row_bytes: 4,
                dram_stride: 4,
                local_stride: 4,
                acc: true,
            }),
            access: vec![
                Access::read(Space::Acc, 0, 4),
                Access::write(Space::Dram, dram, 4),
            ],
        }
    }

    #[test]
    fn double_buffering_tokens() {
        let mut s = Sched::new(0);
        // Two buffers at 16 and 32, four tiles.
        s.push(&load(16, 16), 0);
        s.push(&load(32, 16), 0);
        s.push(&mm(16), 0);
        s.push(&load(16, 16), 0); // waits for mm(16): buffer free
        s.push(&mm(32), 0);
        s.push(&load(32, 16), 0);
        s.push(&mm(16), 0);
        s.push(&mm(32), 0);
        let d: Vec<u8> = s.descs.iter().map(|d| d.deps).collect();
        use deps::*;
        assert_eq!(
            d,
            vec![
                SIGNAL_NEXT,
                SIGNAL_NEXT,
                WAIT_PREV | SIGNAL_PREV,
                WAIT_NEXT | SIGNAL_NEXT,
                WAIT_PREV | SIGNAL_PREV,
                WAIT_NEXT | SIGNAL_NEXT,
                WAIT_PREV,
                WAIT_PREV,
            ]
        );
        assert_eq!(token_balance(&s.descs), [0; 4]);
        assert_eq!(s.relays, 0);
    }

    #[test]
    fn load_after_store_gets_a_relay() {
        let mut s = Sched::new(0);
        s.push(&load(16, 16), 0);
        s.push(&mm(16), 0);
        s.push(&store(0x2000), 0);
        // Reads what the store wrote.
        let mut p = load(64, 4);
        p.access[0] = Access::read(Space::Dram, 0x2000, 4);
        s.push(&p, 1);
        assert_eq!(s.relays, 1);
        let ops: Vec<_> = s.descs.iter().map(|d| d.opcode()).collect();
        use npukit_abi::Opcode::*;
        assert_eq!(ops, vec![Load, Matmul, Store, Max, Load]);
        assert_eq!(s.descs[2].deps, deps::WAIT_PREV | deps::SIGNAL_PREV);
        assert_eq!(s.descs[3].deps, deps::WAIT_NEXT | deps::SIGNAL_PREV);
        assert_eq!(s.descs[4].deps, deps::WAIT_NEXT);
        assert_eq!(token_balance(&s.descs), [0; 4]);
        // A second load of the same data is already covered.
        s.push(&p, 1);
        assert_eq!(s.relays, 1);
        assert_eq!(s.descs[5].deps, 0);
    }
}
