//! `Tokens`: the issue rule of the three unit queues (U1) and the four
//! dependency-token counters (U2). The model is `can_issue`, `pops_now`,
//! `complete_unit` / `issue_unit` and the token-overflow check of
//! `npukit_sim::model`, with the counter mapping of
//! `npukit_sim::event::{waits, signals}`.
//!
//! ```text
//!  queue heads (valid, deps) ──►┌──────────────────────┐──► ready, issue, stall (per unit)
//!  units (active, done, deps) ─►│ counters L->C C->L   │──► pop, push (per counter)
//!                  enable, clear►│          C->S S->C   │──► over (per counter), count
//!                               └──────────────────────┘
//! ```
//!
//! Units are `l` (load), `c` (compute) and `s` (store); counters `lc` (L->C),
//! `cl` (C->L), `cs` (C->S) and `sc` (S->C), the [`npukit_sim::TokenQueue`]
//! order. Every output is decided from the state at the start of the cycle
//! (G1) and this cycle's inputs:
//!
//! * `<u>_ready`: the head's wait flags find every counter they name nonzero
//!   (load WAIT_NEXT on `cl`; compute WAIT_PREV on `lc`, WAIT_NEXT on `sc`;
//!   store WAIT_PREV on `cs`);
//! * `<u>_issue`: the unit is free (idle, or `<u>_done`: completing now), its
//!   head is valid and ready (U1);
//! * `<u>_stall`: free with a valid head that does not issue (P1's token stall);
//! * `pop_<q>`: an issuing head takes a token from `q`; `push_<q>`: a
//!   completing job's signal flags add one (load SIGNAL_NEXT to `lc`; compute
//!   SIGNAL_PREV to `cl`, SIGNAL_NEXT to `cs`; store SIGNAL_PREV to `sc`);
//! * `over_<q>`: a push onto a counter that stays at 255 after this cycle's
//!   pop (the `TOKEN_OVERFLOW` fault of U2; the top names the descriptor).
//!
//! At an edge with `enable` (a simulated cycle without a fault, G3) each
//! counter becomes `count - pop + push`; `clear` (device reset, any edge)
//! zeroes them. `count_<q>` is the counter's value (for inspection).
//!
//! # Ports
//!
//! | Port | Dir | Width | Meaning |
//! |------|-----|-------|---------|
//! | `clock` | in | 1 | clock |
//! | `enable` | in | 1 | this edge is a cycle that happens (no fault, not halted) |
//! | `clear` | in | 1 | device reset at this edge |
//! | `<u>_head` | in | 1 | the unit's queue has a head |
//! | `<u>_deps` | in | 4 | the head's dependency flags (descriptor bits 11:8) |
//! | `<u>_active` | in | 1 | the unit holds a descriptor at the start of the cycle |
//! | `<u>_done` | in | 1 | it completes in this cycle |
//! | `<u>_job` | in | 4 | the dependency flags of the descriptor it holds |
//! | `<u>_ready`, `<u>_issue`, `<u>_stall` | out | 1 | see above |
//! | `pop_<q>`, `push_<q>`, `over_<q>` | out | 1 | see above |
//! | `count_<q>` | out | 9 | the counter (0..=255) |

use rust_hdl::prelude::*;

/// The issue rule and the token counters. See the module documentation.
#[derive(LogicBlock, Debug, Default)]
pub struct Tokens {
    pub clock: Signal<In, Clock>,
    pub enable: Signal<In, Bit>,
    pub clear: Signal<In, Bit>,
    pub l_head: Signal<In, Bit>,
    pub c_head: Signal<In, Bit>,
    pub s_head: Signal<In, Bit>,
    pub l_deps: Signal<In, Bits<4>>,
    pub c_deps: Signal<In, Bits<4>>,
    pub s_deps: Signal<In, Bits<4>>,
    pub l_active: Signal<In, Bit>,
    pub c_active: Signal<In, Bit>,
    pub s_active: Signal<In, Bit>,
    pub l_done: Signal<In, Bit>,
    pub c_done: Signal<In, Bit>,
    pub s_done: Signal<In, Bit>,
    pub l_job: Signal<In, Bits<4>>,
    pub c_job: Signal<In, Bits<4>>,
    pub s_job: Signal<In, Bits<4>>,
    pub l_ready: Signal<Out, Bit>,
    pub c_ready: Signal<Out, Bit>,
    pub s_ready: Signal<Out, Bit>,
    pub l_issue: Signal<Out, Bit>,
    pub c_issue: Signal<Out, Bit>,
    pub s_issue: Signal<Out, Bit>,
    pub l_stall: Signal<Out, Bit>,
    pub c_stall: Signal<Out, Bit>,
    pub s_stall: Signal<Out, Bit>,
    pub pop_lc: Signal<Out, Bit>,
    pub pop_cl: Signal<Out, Bit>,
    pub pop_cs: Signal<Out, Bit>,
    pub pop_sc: Signal<Out, Bit>,
    pub push_lc: Signal<Out, Bit>,
    pub push_cl: Signal<Out, Bit>,
    pub push_cs: Signal<Out, Bit>,
    pub push_sc: Signal<Out, Bit>,
    pub over_lc: Signal<Out, Bit>,
    pub over_cl: Signal<Out, Bit>,
    pub over_cs: Signal<Out, Bit>,
    pub over_sc: Signal<Out, Bit>,
    pub count_lc: Signal<Out, Bits<9>>,
    pub count_cl: Signal<Out, Bits<9>>,
    pub count_cs: Signal<Out, Bits<9>>,
    pub count_sc: Signal<Out, Bits<9>>,
    lc: DFF<Bits<9>>,
    cl: DFF<Bits<9>>,
    cs: DFF<Bits<9>>,
    sc: DFF<Bits<9>>,
    // This cycle's decisions (locals, so outputs are never read back).
    lr: Signal<Local, Bit>,
    cr: Signal<Local, Bit>,
    sr: Signal<Local, Bit>,
    li: Signal<Local, Bit>,
    ci: Signal<Local, Bit>,
    si: Signal<Local, Bit>,
    p_lc: Signal<Local, Bit>,
    p_cl: Signal<Local, Bit>,
    p_cs: Signal<Local, Bit>,
    p_sc: Signal<Local, Bit>,
    q_lc: Signal<Local, Bit>,
    q_cl: Signal<Local, Bit>,
    q_cs: Signal<Local, Bit>,
    q_sc: Signal<Local, Bit>,
    // Each counter after this cycle's pop.
    a_lc: Signal<Local, Bits<9>>,
    a_cl: Signal<Local, Bits<9>>,
    a_cs: Signal<Local, Bits<9>>,
    a_sc: Signal<Local, Bits<9>>,
    // The flag bits a unit does not use (named `unused*`, which the lint skips).
    unused_flags: Signal<Local, Bit>,
}

impl Logic for Tokens {
    #[hdl_gen]
    fn update(&mut self) {
        dff_setup!(self, clock, lc, cl, cs, sc);
        // U1: the heads' waits (deps bit 0 WAIT_PREV, bit 1 WAIT_NEXT).
        self.lr.next = !self.l_deps.val().get_bit(1) | self.cl.q.val().any();
        self.cr.next = (!self.c_deps.val().get_bit(0) | self.lc.q.val().any())
            & (!self.c_deps.val().get_bit(1) | self.sc.q.val().any());
        self.sr.next = !self.s_deps.val().get_bit(0) | self.cs.q.val().any();
        self.li.next =
            (!self.l_active.val() | self.l_done.val()) & self.l_head.val() & self.lr.val();
        self.ci.next =
            (!self.c_active.val() | self.c_done.val()) & self.c_head.val() & self.cr.val();
        self.si.next =
            (!self.s_active.val() | self.s_done.val()) & self.s_head.val() & self.sr.val();
        self.l_ready.next = self.lr.val();
        self.c_ready.next = self.cr.val();
        self.s_ready.next = self.sr.val();
        self.l_issue.next = self.li.val();
        self.c_issue.next = self.ci.val();
        self.s_issue.next = self.si.val();
        self.l_stall.next =
            (!self.l_active.val() | self.l_done.val()) & self.l_head.val() & !self.li.val();
        self.c_stall.next =
            (!self.c_active.val() | self.c_done.val()) & self.c_head.val() & !self.ci.val();
        self.s_stall.next =
            (!self.s_active.val() | self.s_done.val()) & self.s_head.val() & !self.si.val();
        // Pops by the issuing heads, pushes by the completing jobs (deps bit 2
        // SIGNAL_PREV, bit 3 SIGNAL_NEXT).
        self.p_lc.next = self.ci.val() & self.c_deps.val().get_bit(0);
        self.p_cl.next = self.li.val() & self.l_deps.val().get_bit(1);
        self.p_cs.next = self.si.val() & self.s_deps.val().get_bit(0);
        self.p_sc.next = self.ci.val() & self.c_deps.val().get_bit(1);
        self.q_lc.next = self.l_done.val() & self.l_job.val().get_bit(3);
        self.q_cl.next = self.c_done.val() & self.c_job.val().get_bit(2);
        self.q_cs.next = self.c_done.val() & self.c_job.val().get_bit(3);
        self.q_sc.next = self.s_done.val() & self.s_job.val().get_bit(2);
        self.pop_lc.next = self.p_lc.val();
        self.pop_cl.next = self.p_cl.val();
        self.pop_cs.next = self.p_cs.val();
        self.pop_sc.next = self.p_sc.val();
        self.push_lc.next = self.q_lc.val();
        self.push_cl.next = self.q_cl.val();
        self.push_cs.next = self.q_cs.val();
        self.push_sc.next = self.q_sc.val();
        self.a_lc.next = self.lc.q.val();
        self.a_cl.next = self.cl.q.val();
        self.a_cs.next = self.cs.q.val();
        self.a_sc.next = self.sc.q.val();
        if self.p_lc.val() {
            self.a_lc.next = self.lc.q.val() - 1_u64;
        }
        if self.p_cl.val() {
            self.a_cl.next = self.cl.q.val() - 1_u64;
        }
        if self.p_cs.val() {
            self.a_cs.next = self.cs.q.val() - 1_u64;
        }
        if self.p_sc.val() {
            self.a_sc.next = self.sc.q.val() - 1_u64;
        }
        // U2: a counter holds at most 255 tokens.
        self.over_lc.next = self.q_lc.val() & (self.a_lc.val() >= 255_u64);
        self.over_cl.next = self.q_cl.val() & (self.a_cl.val() >= 255_u64);
        self.over_cs.next = self.q_cs.val() & (self.a_cs.val() >= 255_u64);
        self.over_sc.next = self.q_sc.val() & (self.a_sc.val() >= 255_u64);
        self.count_lc.next = self.lc.q.val();
        self.count_cl.next = self.cl.q.val();
        self.count_cs.next = self.cs.q.val();
        self.count_sc.next = self.sc.q.val();
        if self.enable.val() {
            self.lc.d.next = self.a_lc.val();
            self.cl.d.next = self.a_cl.val();
            self.cs.d.next = self.a_cs.val();
            self.sc.d.next = self.a_sc.val();
            if self.q_lc.val() {
                self.lc.d.next = self.a_lc.val() + 1_u64;
            }
            if self.q_cl.val() {
                self.cl.d.next = self.a_cl.val() + 1_u64;
            }
            if self.q_cs.val() {
                self.cs.d.next = self.a_cs.val() + 1_u64;
            }
            if self.q_sc.val() {
                self.sc.d.next = self.a_sc.val() + 1_u64;
            }
        }
        self.unused_flags.next = self.l_deps.val().xor()
            ^ self.c_deps.val().xor()
            ^ self.s_deps.val().xor()
            ^ self.l_job.val().xor()
            ^ self.c_job.val().xor()
            ^ self.s_job.val().xor();
        if self.clear.val() {
            self.lc.d.next = 0.into();
            self.cl.d.next = 0.into();
            self.cs.d.next = 0.into();
            self.sc.d.next = 0.into();
        }
    }
}
