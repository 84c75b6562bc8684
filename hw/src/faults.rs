//! `Faults`: the faults of a cycle in the order of rule G3, with the deadlock
//! rule (E1) and the token-overflow fault's descriptor (U2) (docs/timing.md).
//! The model is the fault part of `ModelDevice::plan` and
//! `ModelDevice::deadlocked` (`npukit_sim::model`).
//!
//! ```text
//!  cp_*, disp_*, store_*, load_* ─►┌──────────────────────┐
//!  E1: disp, responding, inflight, │ G3 priority:         │──► any, code, index, addr
//!      active, fence_*, head_*,   ─►│ cp > decode > store  │
//!      q_valid, q_ready, <u>_head  │ > load > E1 > E2 > U2 │
//!  wd, head; over, <u>_job       ─►└──────────────────────┘
//! ```
//!
//! Combinational, from this cycle's plan (everything decided from the state
//! at the start of the cycle, G1). The first of these that holds is the
//! cycle's fault (`any`, with its error code, descriptor ring index and
//! address); none holds: `any` is 0 and the rest are zero:
//!
//! 1. the command processor's request faults (`cp_*`: the FENCE writeback or
//!    its PTE read, or a fetch past the memory);
//! 2. the fetch buffer's head fails decode or validation (`disp_*`);
//! 3. the STORE unit's request faults (`store_*`, at its job's index);
//! 4. the LOAD unit's request faults (`load_*`, at its job's index);
//! 5. E1 deadlock (`DEADLOCK`, address 0): nothing dispatches, no response is
//!    delivered, no request is in flight and no unit is active, the command
//!    processor is blocked (a FENCE in DRAIN, or without a FENCE a decoded
//!    valid head: `head_full` and not `head_bad`), some queue has a head and
//!    no head's tokens are ready; the index is the first such head's in the
//!    order load, compute, store;
//! 6. E2 watchdog (`wd`, from the register file: `WATCHDOG`, at the ring
//!    head `head`);
//! 7. U2 token overflow (`TOKEN_OVERFLOW`): a completing unit pushes onto a
//!    counter that stays full after this cycle's pops (`over`: bit 0 load to
//!    compute, 1 compute to load, 2 compute to store, 3 store to compute);
//!    the index is the pushing unit's job, the first in the order load,
//!    compute, store.
//!
//! # Ports
//!
//! | Port | Dir | Width | Meaning |
//! |------|-----|-------|---------|
//! | `cp_fault`, `cp_code`, `cp_index`, `cp_addr` | in | 1, 8, 32, 64 | the command processor's fault |
//! | `disp_fault`, `disp_code`, `disp_index`, `disp_addr` | in | 1, 8, 32, 64 | the head's decode fault, its ring index |
//! | `store_fault`, `store_code`, `store_addr` | in | 1, 8, 64 | the STORE unit's fault |
//! | `load_fault`, `load_code`, `load_addr` | in | 1, 8, 64 | the LOAD unit's fault |
//! | `l_job`, `c_job`, `s_job` | in | 32 | the ring index of each unit's job |
//! | `disp` | in | 1 | the head dispatches in this cycle (F2) |
//! | `responding` | in | 1 | a response is delivered in this cycle |
//! | `inflight` | in | 32 | memory requests accepted and not yet answered |
//! | `active` | in | 3 | the units executing a job (bit 0 load, 1 compute, 2 store) |
//! | `fence_active`, `fence_draining` | in | 1 | a FENCE is in progress; it drains |
//! | `head_full`, `head_bad` | in | 1 | the fetch buffer's head has arrived; it fails decode |
//! | `q_valid`, `q_ready` | in | 3 | each queue has a head; its tokens are ready (U1) |
//! | `l_head`, `c_head`, `s_head` | in | 32 | each queue head's ring index |
//! | `wd` | in | 1 | the watchdog expires (E2) |
//! | `head` | in | 32 | the ring head (`RING_HEAD`) |
//! | `over` | in | 4 | token overflows (U2) |
//! | `any` | out | 1 | the cycle faults (the device halts, G3) |
//! | `code`, `index`, `addr` | out | 8, 32, 64 | `ERR_CODE`, `ERR_DESC`, `ERR_ADDR` |

use npukit_abi::ErrorCode;
use rust_hdl::prelude::*;

/// The fault priority. See the module documentation.
#[derive(LogicBlock, Debug)]
pub struct Faults {
    pub cp_fault: Signal<In, Bit>,
    pub cp_code: Signal<In, Bits<8>>,
    pub cp_index: Signal<In, Bits<32>>,
    pub cp_addr: Signal<In, Bits<64>>,
    pub disp_fault: Signal<In, Bit>,
    pub disp_code: Signal<In, Bits<8>>,
    pub disp_index: Signal<In, Bits<32>>,
    pub disp_addr: Signal<In, Bits<64>>,
    pub store_fault: Signal<In, Bit>,
    pub store_code: Signal<In, Bits<8>>,
    pub store_addr: Signal<In, Bits<64>>,
    pub load_fault: Signal<In, Bit>,
    pub load_code: Signal<In, Bits<8>>,
    pub load_addr: Signal<In, Bits<64>>,
    pub l_job: Signal<In, Bits<32>>,
    pub c_job: Signal<In, Bits<32>>,
    pub s_job: Signal<In, Bits<32>>,
    pub disp: Signal<In, Bit>,
    pub responding: Signal<In, Bit>,
    pub inflight: Signal<In, Bits<32>>,
    pub active: Signal<In, Bits<3>>,
    pub fence_active: Signal<In, Bit>,
    pub fence_draining: Signal<In, Bit>,
    pub head_full: Signal<In, Bit>,
    pub head_bad: Signal<In, Bit>,
    pub q_valid: Signal<In, Bits<3>>,
    pub q_ready: Signal<In, Bits<3>>,
    pub l_head: Signal<In, Bits<32>>,
    pub c_head: Signal<In, Bits<32>>,
    pub s_head: Signal<In, Bits<32>>,
    pub wd: Signal<In, Bit>,
    pub head: Signal<In, Bits<32>>,
    pub over: Signal<In, Bits<4>>,
    pub any: Signal<Out, Bit>,
    pub code: Signal<Out, Bits<8>>,
    pub index: Signal<Out, Bits<32>>,
    pub addr: Signal<Out, Bits<64>>,
    code_deadlock: Constant<Bits<8>>,
    code_watchdog: Constant<Bits<8>>,
    code_overflow: Constant<Bits<8>>,
    // E1 and U2 of this cycle.
    quiet: Signal<Local, Bit>,
    blocked: Signal<Local, Bit>,
    deadlock: Signal<Local, Bit>,
    dl_index: Signal<Local, Bits<32>>,
    ovf_index: Signal<Local, Bits<32>>,
}

impl Faults {
    /// The fault priority (the same for every variant).
    pub fn new() -> Self {
        Faults {
            cp_fault: Default::default(),
            cp_code: Default::default(),
            cp_index: Default::default(),
            cp_addr: Default::default(),
            disp_fault: Default::default(),
            disp_code: Default::default(),
            disp_index: Default::default(),
            disp_addr: Default::default(),
            store_fault: Default::default(),
            store_code: Default::default(),
            store_addr: Default::default(),
            load_fault: Default::default(),
            load_code: Default::default(),
            load_addr: Default::default(),
            l_job: Default::default(),
            c_job: Default::default(),
            s_job: Default::default(),
            disp: Default::default(),
            responding: Default::default(),
            inflight: Default::default(),
            active: Default::default(),
            fence_active: Default::default(),
            fence_draining: Default::default(),
            head_full: Default::default(),
            head_bad: Default::default(),
            q_valid: Default::default(),
            q_ready: Default::default(),
            l_head: Default::default(),
            c_head: Default::default(),
            s_head: Default::default(),
            wd: Default::default(),
            head: Default::default(),
            over: Default::default(),
            any: Default::default(),
            code: Default::default(),
            index: Default::default(),
            addr: Default::default(),
            code_deadlock: Constant::new((ErrorCode::Deadlock as u64).into()),
            code_watchdog: Constant::new((ErrorCode::Watchdog as u64).into()),
            code_overflow: Constant::new((ErrorCode::TokenOverflow as u64).into()),
            quiet: Default::default(),
            blocked: Default::default(),
            deadlock: Default::default(),
            dl_index: Default::default(),
            ovf_index: Default::default(),
        }
    }
}

impl Default for Faults {
    fn default() -> Self {
        Self::new()
    }
}

impl Logic for Faults {
    #[hdl_gen]
    fn update(&mut self) {
        // E1: nothing moves and the command processor cannot help.
        self.quiet.next = !self.disp.val()
            & !self.responding.val()
            & !self.inflight.val().any()
            & !self.active.val().any();
        self.blocked.next = self.head_full.val() & !self.head_bad.val();
        if self.fence_active.val() {
            self.blocked.next = self.fence_draining.val();
        }
        self.deadlock.next = self.quiet.val()
            & self.blocked.val()
            & self.q_valid.val().any()
            & !(self.q_valid.val() & self.q_ready.val()).any();
        self.dl_index.next = self.s_head.val();
        if self.q_valid.val().get_bit(1) {
            self.dl_index.next = self.c_head.val();
        }
        if self.q_valid.val().get_bit(0) {
            self.dl_index.next = self.l_head.val();
        }
        // U2: the first pushing unit in the order load, compute, store.
        self.ovf_index.next = self.s_job.val();
        if self.over.val().get_bit(1) | self.over.val().get_bit(2) {
            self.ovf_index.next = self.c_job.val();
        }
        if self.over.val().get_bit(0) {
            self.ovf_index.next = self.l_job.val();
        }
        // G3: the first fault in priority order.
        self.any.next = true;
        self.code.next = 0.into();
        self.index.next = 0.into();
        self.addr.next = 0.into();
        if self.cp_fault.val() {
            self.code.next = self.cp_code.val();
            self.index.next = self.cp_index.val();
            self.addr.next = self.cp_addr.val();
        } else if self.disp_fault.val() {
            self.code.next = self.disp_code.val();
            self.index.next = self.disp_index.val();
            self.addr.next = self.disp_addr.val();
        } else if self.store_fault.val() {
            self.code.next = self.store_code.val();
            self.index.next = self.s_job.val();
            self.addr.next = self.store_addr.val();
        } else if self.load_fault.val() {
            self.code.next = self.load_code.val();
            self.index.next = self.l_job.val();
            self.addr.next = self.load_addr.val();
        } else if self.deadlock.val() {
            self.code.next = self.code_deadlock.val();
            self.index.next = self.dl_index.val();
        } else if self.wd.val() {
            self.code.next = self.code_watchdog.val();
            self.index.next = self.head.val();
        } else if self.over.val().any() {
            self.code.next = self.code_overflow.val();
            self.index.next = self.ovf_index.val();
        } else {
            self.any.next = false;
        }
    }
}
