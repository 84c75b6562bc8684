//! `UnitQueue`: one unit's descriptor queue (load, compute or store), between
//! dispatch (rules F2-F4, the command processor pushes a validated descriptor
//! and its ring index) and issue (rule U1, the unit takes the head). The model
//! is `ModelDevice`'s per-unit `VecDeque` of `cmdproc.queue_depth` entries.
//!
//! ```text
//!  push, push_index, push_desc ──►┌───────────────────┐──► valid, room, count
//!                          pop  ──►│ depth entries     │
//!                 enable, clear ──►│ (ring of slots)   │──► head_index, head_desc
//!                                  └───────────────────┘
//! ```
//!
//! Outputs come from the state at the start of the cycle (G1): `valid` (the
//! queue has a head), `room` (fewer than `depth` entries: dispatch may push,
//! F2), `count`, and the head's ring index and raw descriptor (unspecified
//! when empty). At an edge with `enable` (a simulated cycle without a fault,
//! G3) `pop` removes the head (the unit issues it; only when `valid`) and
//! `push` appends an entry (only with `room` at the start of the cycle); both
//! may happen in one cycle. `clear` (device reset) empties the queue at any
//! edge.
//!
//! # Ports
//!
//! | Port | Dir | Width | Meaning |
//! |------|-----|-------|---------|
//! | `clock` | in | 1 | clock |
//! | `enable` | in | 1 | this edge is a cycle that happens (no fault, not halted) |
//! | `clear` | in | 1 | device reset at this edge |
//! | `push` | in | 1 | dispatch appends `push_index`, `push_desc` |
//! | `push_index` | in | 32 | the descriptor's ring index |
//! | `push_desc` | in | 256 | the raw (validated) descriptor |
//! | `pop` | in | 1 | the unit issues the head |
//! | `valid` | out | 1 | the queue has a head |
//! | `room` | out | 1 | fewer than `depth` entries |
//! | `count` | out | 9 | entries (0..=depth) |
//! | `head_index`, `head_desc` | out | 32, 256 | the head |

use rust_hdl::prelude::*;

/// The largest queue (`cmdproc.queue_depth`).
pub const MAX_DEPTH: u32 = 256;

/// One unit queue. See the module documentation.
#[derive(LogicBlock, Debug)]
pub struct UnitQueue {
    pub clock: Signal<In, Clock>,
    pub enable: Signal<In, Bit>,
    pub clear: Signal<In, Bit>,
    pub push: Signal<In, Bit>,
    pub push_index: Signal<In, Bits<32>>,
    pub push_desc: Signal<In, Bits<256>>,
    pub pop: Signal<In, Bit>,
    pub valid: Signal<Out, Bit>,
    pub room: Signal<Out, Bit>,
    pub count: Signal<Out, Bits<9>>,
    pub head_index: Signal<Out, Bits<32>>,
    pub head_desc: Signal<Out, Bits<256>>,
    /// The slots' contents.
    index: Vec<DFF<Bits<32>>>,
    desc: Vec<DFF<Bits<256>>>,
    /// Slot numbers, to compare the pointers with.
    slot: Vec<Constant<Bits<8>>>,
    last: Constant<Bits<8>>,
    depth: Constant<Bits<9>>,
    /// Head slot, next free slot, entries.
    rd: DFF<Bits<8>>,
    wr: DFF<Bits<8>>,
    n: DFF<Bits<9>>,
    /// The pointers after this cycle's pop and push.
    rd_next: Signal<Local, Bits<8>>,
    wr_next: Signal<Local, Bits<8>>,
}

impl UnitQueue {
    /// A queue of `depth` entries (1..=256).
    pub fn new(depth: u32) -> Result<Self, String> {
        if !(1..=MAX_DEPTH).contains(&depth) {
            return Err(format!(
                "cmdproc.queue_depth {depth} must be 1 to {MAX_DEPTH}"
            ));
        }
        let d = depth as usize;
        Ok(UnitQueue {
            clock: Default::default(),
            enable: Default::default(),
            clear: Default::default(),
            push: Default::default(),
            push_index: Default::default(),
            push_desc: Default::default(),
            pop: Default::default(),
            valid: Default::default(),
            room: Default::default(),
            count: Default::default(),
            head_index: Default::default(),
            head_desc: Default::default(),
            index: (0..d).map(|_| Default::default()).collect(),
            desc: (0..d).map(|_| Default::default()).collect(),
            slot: (0..d).map(|i| Constant::new((i as u64).into())).collect(),
            last: Constant::new((depth as u64 - 1).into()),
            depth: Constant::new((depth as u64).into()),
            rd: Default::default(),
            wr: Default::default(),
            n: Default::default(),
            rd_next: Default::default(),
            wr_next: Default::default(),
        })
    }
}

impl Logic for UnitQueue {
    #[hdl_gen]
    fn update(&mut self) {
        dff_setup!(self, clock, rd, wr, n);
        for i in 0..self.desc.len() {
            self.index[i].clock.next = self.clock.val();
            self.desc[i].clock.next = self.clock.val();
            self.index[i].d.next = self.index[i].q.val();
            self.desc[i].d.next = self.desc[i].q.val();
        }
        self.valid.next = self.n.q.val().any();
        self.room.next = self.n.q.val() < self.depth.val();
        self.count.next = self.n.q.val();
        self.head_index.next = 0.into();
        self.head_desc.next = 0.into();
        for i in 0..self.desc.len() {
            if self.rd.q.val() == self.slot[i].val() {
                self.head_index.next = self.index[i].q.val();
                self.head_desc.next = self.desc[i].q.val();
            }
        }
        self.rd_next.next = self.rd.q.val() + 1_u64;
        if self.rd.q.val() == self.last.val() {
            self.rd_next.next = 0.into();
        }
        self.wr_next.next = self.wr.q.val() + 1_u64;
        if self.wr.q.val() == self.last.val() {
            self.wr_next.next = 0.into();
        }
        if self.enable.val() {
            if self.pop.val() {
                self.rd.d.next = self.rd_next.val();
            }
            if self.push.val() {
                self.wr.d.next = self.wr_next.val();
                for i in 0..self.desc.len() {
                    if self.wr.q.val() == self.slot[i].val() {
                        self.index[i].d.next = self.push_index.val();
                        self.desc[i].d.next = self.push_desc.val();
                    }
                }
            }
            if self.push.val() & !self.pop.val() {
                self.n.d.next = self.n.q.val() + 1_u64;
            }
            if self.pop.val() & !self.push.val() {
                self.n.d.next = self.n.q.val() - 1_u64;
            }
        }
        if self.clear.val() {
            self.rd.d.next = 0.into();
            self.wr.d.next = 0.into();
            self.n.d.next = 0.into();
        }
    }
}
