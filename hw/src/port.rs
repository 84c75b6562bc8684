//! `Port`: the memory-port arbiter (rule M1) and the request the top offers on
//! `req_*` (the port contract of `docs/rtl.md`). The model is the grant loop of
//! `ModelDevice::plan` (command processor > store > load).
//!
//! ```text
//!  cp_*    (fence write, its PTE read, fetch) ──►┌──────────┐──► req_* (valid, write, addr, wdata,
//!  store_* (data beat or PTE read)          ──►│ priority │        wmask, who, kind, tag)
//!  load_*  (data beat or PTE read)          ──►│ and mux  │──► g_cp, g_store, g_load
//!                                  go, ready ─►└──────────┘──► denied_store, denied_load
//! ```
//!
//! Combinational, decided from this cycle's inputs:
//!
//! * the first requester in the order command processor, store, load that
//!   offers is chosen; it is granted (`g_<who>`) when the port is `ready`
//!   (M2, computed by the harness); every other offering DMA unit, and the
//!   chosen one when the port is not ready, is denied (`denied_<unit>`, P1's
//!   memory stall);
//! * `req_valid` is `go` (the cycle happens: no fault, G3) and some offer;
//!   the request fields are the chosen requester's: `req_addr` aligned down
//!   to the beat (`B` bytes), `req_tag` = the requester's own 56 bits in
//!   63:8, the kind in 4:2 and who in 1:0; writes are a FENCE writeback
//!   (kind 4) or a STORE beat (kind 3). With no request every field is zero.
//!
//! # Ports
//!
//! | Port | Dir | Width | Meaning |
//! |------|-----|-------|---------|
//! | `go`, `ready` | in | 1 | the cycle happens; the port can accept (`port_ready`) |
//! | `<who>_req` | in | 1 | the requester offers (`cp`, `store`, `load`) |
//! | `<who>_kind` | in | 3 | `MemKind` code |
//! | `<who>_addr` | in | 64 | physical address (exact; aligned here) |
//! | `<who>_own` | in | 56 | the requester's part of the tag |
//! | `cp_wdata`, `store_wdata` | in | 512 | write data placed in the beat |
//! | `cp_wmask`, `store_wmask` | in | 64 | byte enables |
//! | `req_*` | out | | the harness port of `docs/rtl.md` |
//! | `g_cp`, `g_store`, `g_load` | out | 1 | granted (before `go`) |
//! | `denied_store`, `denied_load` | out | 1 | offered and not granted |

use rust_hdl::prelude::*;

/// `MemKind` codes on `req_kind`.
pub const KIND_WRITE: u64 = 3;
pub const KIND_FENCE_WRITE: u64 = 4;

/// The port arbiter and request mux. See the module documentation.
#[derive(LogicBlock, Debug)]
pub struct Port {
    pub go: Signal<In, Bit>,
    pub ready: Signal<In, Bit>,
    pub cp_req: Signal<In, Bit>,
    pub cp_kind: Signal<In, Bits<3>>,
    pub cp_addr: Signal<In, Bits<64>>,
    pub cp_own: Signal<In, Bits<56>>,
    pub cp_wdata: Signal<In, Bits<512>>,
    pub cp_wmask: Signal<In, Bits<64>>,
    pub store_req: Signal<In, Bit>,
    pub store_kind: Signal<In, Bits<3>>,
    pub store_addr: Signal<In, Bits<64>>,
    pub store_own: Signal<In, Bits<56>>,
    pub store_wdata: Signal<In, Bits<512>>,
    pub store_wmask: Signal<In, Bits<64>>,
    pub load_req: Signal<In, Bit>,
    pub load_kind: Signal<In, Bits<3>>,
    pub load_addr: Signal<In, Bits<64>>,
    pub load_own: Signal<In, Bits<56>>,
    pub req_valid: Signal<Out, Bit>,
    pub req_write: Signal<Out, Bit>,
    pub req_addr: Signal<Out, Bits<64>>,
    pub req_wdata: Signal<Out, Bits<512>>,
    pub req_wmask: Signal<Out, Bits<64>>,
    pub req_who: Signal<Out, Bits<2>>,
    pub req_kind: Signal<Out, Bits<3>>,
    pub req_tag: Signal<Out, Bits<64>>,
    pub g_cp: Signal<Out, Bit>,
    pub g_store: Signal<Out, Bit>,
    pub g_load: Signal<Out, Bit>,
    pub denied_store: Signal<Out, Bit>,
    pub denied_load: Signal<Out, Bit>,
    align: Constant<Bits<64>>,
    who_store: Constant<Bits<2>>,
    who_load: Constant<Bits<2>>,
    kind_write: Constant<Bits<3>>,
    kind_fence_write: Constant<Bits<3>>,
    // The chosen requester's fields.
    kind: Signal<Local, Bits<3>>,
    who: Signal<Local, Bits<2>>,
    own: Signal<Local, Bits<56>>,
    any: Signal<Local, Bit>,
}

impl Port {
    /// The arbiter for `beat_bytes`-byte beats (a power of two, 8..=64).
    pub fn new(beat_bytes: u32) -> Result<Self, String> {
        if !(8..=64).contains(&beat_bytes) || !beat_bytes.is_power_of_two() {
            return Err(format!(
                "dma.beat_bytes {beat_bytes} must be a power of two in 8..=64"
            ));
        }
        Ok(Port {
            go: Default::default(),
            ready: Default::default(),
            cp_req: Default::default(),
            cp_kind: Default::default(),
            cp_addr: Default::default(),
            cp_own: Default::default(),
            cp_wdata: Default::default(),
            cp_wmask: Default::default(),
            store_req: Default::default(),
            store_kind: Default::default(),
            store_addr: Default::default(),
            store_own: Default::default(),
            store_wdata: Default::default(),
            store_wmask: Default::default(),
            load_req: Default::default(),
            load_kind: Default::default(),
            load_addr: Default::default(),
            load_own: Default::default(),
            req_valid: Default::default(),
            req_write: Default::default(),
            req_addr: Default::default(),
            req_wdata: Default::default(),
            req_wmask: Default::default(),
            req_who: Default::default(),
            req_kind: Default::default(),
            req_tag: Default::default(),
            g_cp: Default::default(),
            g_store: Default::default(),
            g_load: Default::default(),
            denied_store: Default::default(),
            denied_load: Default::default(),
            align: Constant::new((!(beat_bytes as u64 - 1)).into()),
            who_store: Constant::new(2_u64.into()),
            who_load: Constant::new(1_u64.into()),
            kind_write: Constant::new(KIND_WRITE.into()),
            kind_fence_write: Constant::new(KIND_FENCE_WRITE.into()),
            kind: Default::default(),
            who: Default::default(),
            own: Default::default(),
            any: Default::default(),
        })
    }
}

impl Logic for Port {
    #[hdl_gen]
    fn update(&mut self) {
        self.g_cp.next = false;
        self.g_store.next = false;
        self.g_load.next = false;
        self.req_write.next = false;
        self.req_addr.next = 0.into();
        self.req_wdata.next = 0.into();
        self.req_wmask.next = 0.into();
        self.kind.next = 0.into();
        self.who.next = 0.into();
        self.own.next = 0.into();
        // M1: command processor > store > load.
        if self.cp_req.val() {
            self.g_cp.next = self.ready.val();
            self.kind.next = self.cp_kind.val();
            self.own.next = self.cp_own.val();
            self.req_addr.next = self.cp_addr.val() & self.align.val();
            if self.cp_kind.val() == self.kind_fence_write.val() {
                self.req_write.next = true;
                self.req_wdata.next = self.cp_wdata.val();
                self.req_wmask.next = self.cp_wmask.val();
            }
        } else if self.store_req.val() {
            self.g_store.next = self.ready.val();
            self.kind.next = self.store_kind.val();
            self.who.next = self.who_store.val();
            self.own.next = self.store_own.val();
            self.req_addr.next = self.store_addr.val() & self.align.val();
            if self.store_kind.val() == self.kind_write.val() {
                self.req_write.next = true;
                self.req_wdata.next = self.store_wdata.val();
                self.req_wmask.next = self.store_wmask.val();
            }
        } else if self.load_req.val() {
            self.g_load.next = self.ready.val();
            self.kind.next = self.load_kind.val();
            self.who.next = self.who_load.val();
            self.own.next = self.load_own.val();
            self.req_addr.next = self.load_addr.val() & self.align.val();
        }
        self.denied_store.next = self.store_req.val() & !self.g_store.val();
        self.denied_load.next = self.load_req.val() & !self.g_load.val();
        self.any.next = self.cp_req.val() | self.store_req.val() | self.load_req.val();
        self.req_valid.next = self.go.val() & self.any.val();
        self.req_who.next = self.who.val();
        self.req_kind.next = self.kind.val();
        self.req_tag.next = (bit_cast::<64, 56>(self.own.val()) << 8_u64)
            | (bit_cast::<64, 3>(self.kind.val()) << 2_u64)
            | bit_cast::<64, 2>(self.who.val());
        if !self.req_valid.val() {
            self.req_write.next = false;
            self.req_addr.next = 0.into();
            self.req_wdata.next = 0.into();
            self.req_wmask.next = 0.into();
            self.req_who.next = 0.into();
            self.req_kind.next = 0.into();
            self.req_tag.next = 0.into();
        }
    }
}
