//! [`Ctl`]: the compute unit's descriptor control (`ctl` in `Compute`), a
//! `#[hdl_gen]` block: the descriptor register, the cycle counter, the
//! latency computed at issue (rules C1-C3 of docs/timing.md), `busy`,
//! `done` and `free`.
//!
//! * A descriptor is accepted at an `enable` edge with `issue` when the unit
//!   is free (idle, or `done` in this cycle); an issue while busy is ignored.
//!   The edge latches `d = desc`, `cnt = 1` and `lat` = the descriptor's
//!   latency; in the following cycles `cnt` counts until `cnt == lat`, the
//!   completion cycle (`done`). A frozen edge (`enable = 0`) changes nothing;
//!   `clear` drops the descriptor (`busy = 0`) at any edge.
//! * Latency (rules C1-C3, truncated to 32 bits): MATMUL `so + R + C - 2 + M`
//!   weight-stationary (`so` = `R`, or the input `iso` with weight
//!   double-buffering, rule C1b), `ceil(M / R) * max(R, C) + R + C + 1`
//!   output-stationary (C1c); ACT `rows * ceil(cols / C) + 2`; ADD and MAX
//!   `ceil(len / C) + 2`; anything else 1.
//!
//! `#[hdl_gen]` has no division (and rust-hdl's simulator multiplies only
//! 16 x 16 bits), so the one ceiling division (`len` or `cols` by `C`, or `M`
//! by `R`) is a multiplication by a per-variant reciprocal ([`Recip`]:
//! `floor(x / d) = floor(x * m / 2^(32 + l))` for every 32-bit `x`, with
//! `l = ceil(log2 d)` and `m = ceil(2^(32 + l) / d) < 2^33`, Granlund and
//! Montgomery 1994) written as six 16 x 16 products of `x` and the
//! constant's 16-bit digits. The products are emitted as Verilog `*` on
//! 16-bit operands in a 64-bit context, so the Verilog computes the same
//! values.
//!
//! The logic is two `always @(*)` blocks, as in [`crate::regs`]: the outputs
//! from the registers alone, and the next state from the inputs. `issue` and
//! `iso` depend (through `Compute` and the top) on `done` and `free`; in one
//! block Verilator would see a combinational loop.

use rust_hdl::prelude::*;

/// The constants of `x -> ceil(x / d)` for 32-bit `x` (see the module
/// documentation): `m` in three 16-bit digits (`m2` is 0 or 1) and the
/// shift `16 + l` applied after the product's low 16 bits are dropped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Recip {
    pub m0: u16,
    pub m1: u16,
    pub m2: u16,
    pub shift: u32,
}

impl Recip {
    /// The constants for divisor `d` (`1..=65536`).
    pub fn new(d: u32) -> Recip {
        let d = d.max(1) as u128;
        let l = 128 - (d - 1).leading_zeros();
        let m = (1u128 << (32 + l)).div_ceil(d);
        Recip {
            m0: m as u16,
            m1: (m >> 16) as u16,
            m2: (m >> 32) as u16,
            shift: 16 + l,
        }
    }

    /// `ceil(x / d)` exactly as [`Ctl`] computes it.
    pub fn ceil_div(&self, x: u32) -> u32 {
        if x == 0 {
            return 0;
        }
        let y = x - 1;
        let (y0, y1) = ((y & 0xFFFF) as u64, (y >> 16) as u64);
        let (m0, m1, m2) = (self.m0 as u64, self.m1 as u64, self.m2 as u64);
        let hi = ((y0 * m0) >> 16)
            + y0 * m1
            + y1 * m0
            + ((y1 * m1) << 16)
            + ((y0 * m2) << 16)
            + ((y1 * m2) << 32);
        ((hi >> self.shift) as u32).wrapping_add(1)
    }
}

/// The descriptor control: see the module documentation.
#[derive(LogicBlock)]
pub struct Ctl {
    pub clock: Signal<In, Clock>,
    /// The device acts at this edge (gates every state change but `clear`).
    pub enable: Signal<In, Bit>,
    /// Device reset: drop the descriptor (at any edge).
    pub clear: Signal<In, Bit>,
    /// Start `desc` in this cycle (accepted only when `free`).
    pub issue: Signal<In, Bit>,
    /// The raw descriptor, word 0 in bits 31:0.
    pub desc: Signal<In, Bits<256>>,
    /// Weight double-buffering: the A stream offset `so` of a MATMUL issued
    /// in this cycle (rule C1b; unused by the other variants).
    pub iso: Signal<In, Bits<32>>,
    /// A descriptor is held at the start of the cycle.
    pub busy: Signal<Out, Bit>,
    /// It completes in this cycle.
    pub done: Signal<Out, Bit>,
    /// The unit accepts an issue in this cycle (`!busy || done`).
    pub free: Signal<Out, Bit>,
    /// The descriptor held, its cycle counter (`k` in cycle `issue + k`) and
    /// latency.
    pub d: Signal<Out, Bits<256>>,
    pub cnt: Signal<Out, Bits<32>>,
    pub lat: Signal<Out, Bits<32>>,
    busy_r: DFF<Bit>,
    d_r: DFF<Bits<256>>,
    cnt_r: DFF<Bits<32>>,
    lat_r: DFF<Bits<32>>,
    // Latency of `desc`.
    op_i: Signal<Local, Bits<8>>,
    lo_i: Signal<Local, Bits<32>>,
    /// The ceiling division: numerator, its reciprocal's digits and shift,
    /// numerator - 1 in 16-bit halves, the product without its low 16 bits,
    /// the quotient.
    dn: Signal<Local, Bits<32>>,
    dm0: Signal<Local, Bits<16>>,
    dm1: Signal<Local, Bits<16>>,
    dm2: Signal<Local, Bits<16>>,
    dsh: Signal<Local, Bits<64>>,
    dx: Signal<Local, Bits<32>>,
    dx0: Signal<Local, Bits<16>>,
    dx1: Signal<Local, Bits<16>>,
    dhi: Signal<Local, Bits<64>>,
    dqs: Signal<Local, Bits<32>>,
    dq: Signal<Local, Bits<32>>,
    dq16: Signal<Local, Bits<16>>,
    ilat: Signal<Local, Bits<32>>,
    /// Rule C1b (the stream offset is the input `iso`); rule C1c.
    db: Constant<Bit>,
    os: Constant<Bit>,
    /// `R`, `R + C - 2`, `R + C + 1`, `max(R, C)`.
    k_r: Constant<Bits<32>>,
    k_rc2: Constant<Bits<32>>,
    k_rc1: Constant<Bits<32>>,
    k_per: Constant<Bits<16>>,
    /// The reciprocals of `C` and `R`.
    c_m0: Constant<Bits<16>>,
    c_m1: Constant<Bits<16>>,
    c_m2: Constant<Bits<16>>,
    c_sh: Constant<Bits<64>>,
    r_m0: Constant<Bits<16>>,
    r_m1: Constant<Bits<16>>,
    r_m2: Constant<Bits<16>>,
    r_sh: Constant<Bits<64>>,
}

impl Ctl {
    /// The control of an `rows x cols` unit (`1..=256` each), output-stationary
    /// (`os`) or weight-stationary, with weight double-buffering (`db`).
    pub fn new(rows: u32, cols: u32, os: bool, db: bool) -> Ctl {
        let k32 = |v: u32| Constant::new(Bits::<32>::from(v as u64));
        let k16 = |v: u16| Constant::new(Bits::<16>::from(v as u64));
        let k64 = |v: u32| Constant::new(Bits::<64>::from(v as u64));
        let (rc, rr) = (Recip::new(cols), Recip::new(rows));
        Ctl {
            clock: Default::default(),
            enable: Default::default(),
            clear: Default::default(),
            issue: Default::default(),
            desc: Default::default(),
            iso: Default::default(),
            busy: Default::default(),
            done: Default::default(),
            free: Default::default(),
            d: Default::default(),
            cnt: Default::default(),
            lat: Default::default(),
            busy_r: Default::default(),
            d_r: Default::default(),
            cnt_r: Default::default(),
            lat_r: Default::default(),
            op_i: Default::default(),
            lo_i: Default::default(),
            dn: Default::default(),
            dm0: Default::default(),
            dm1: Default::default(),
            dm2: Default::default(),
            dsh: Default::default(),
            dx: Default::default(),
            dx0: Default::default(),
            dx1: Default::default(),
            dhi: Default::default(),
            dqs: Default::default(),
            dq: Default::default(),
            dq16: Default::default(),
            ilat: Default::default(),
            db: Constant::new(db),
            os: Constant::new(os),
            k_r: k32(rows),
            k_rc2: k32((rows + cols).wrapping_sub(2)),
            k_rc1: k32(rows + cols + 1),
            k_per: k16(rows.max(cols) as u16),
            c_m0: k16(rc.m0),
            c_m1: k16(rc.m1),
            c_m2: k16(rc.m2),
            c_sh: k64(rc.shift),
            r_m0: k16(rr.m0),
            r_m1: k16(rr.m1),
            r_m2: k16(rr.m2),
            r_sh: k64(rr.shift),
        }
    }
}

impl std::fmt::Debug for Ctl {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Ctl")
            .field("busy", &self.busy_r.q.val())
            .field("cnt", &self.cnt_r.q.val())
            .field("lat", &self.lat_r.q.val())
            .finish_non_exhaustive()
    }
}

mod half {
    use super::Ctl;
    use rust_hdl::prelude::*;

    use crate::halves::{NextState, View};

    // The outputs, from the registers alone.
    impl View for Ctl {
        #[hdl_gen]
        fn update(&mut self) {
            self.busy.next = self.busy_r.q.val();
            self.done.next = self.busy_r.q.val() & (self.cnt_r.q.val() == self.lat_r.q.val());
            self.free.next = !self.busy_r.q.val() | (self.cnt_r.q.val() == self.lat_r.q.val());
            self.d.next = self.d_r.q.val();
            self.cnt.next = self.cnt_r.q.val();
            self.lat.next = self.lat_r.q.val();
        }
    }

    // The next state, from the inputs.
    impl NextState for Ctl {
        #[hdl_gen]
        fn update(&mut self) {
            dff_setup!(self, clock, busy_r, d_r, cnt_r, lat_r);
            // The latency of `desc` (rules C1-C3).
            self.op_i.next = self.desc.val().get_bits::<8>(0);
            self.lo_i.next = bit_cast::<32, 16>(self.desc.val().get_bits::<16>(128));
            // The ceiling division: M by R (output-stationary MATMUL), cols by
            // C (ACT), len by C (ADD, MAX).
            self.dn.next = self.desc.val().get_bits::<32>(128);
            self.dm0.next = self.c_m0.val();
            self.dm1.next = self.c_m1.val();
            self.dm2.next = self.c_m2.val();
            self.dsh.next = self.c_sh.val();
            if self.op_i.val() == 3_u64 {
                self.dn.next = self.lo_i.val();
                self.dm0.next = self.r_m0.val();
                self.dm1.next = self.r_m1.val();
                self.dm2.next = self.r_m2.val();
                self.dsh.next = self.r_sh.val();
            }
            if self.op_i.val() == 4_u64 {
                self.dn.next = bit_cast::<32, 16>(self.desc.val().get_bits::<16>(144));
            }
            self.dx.next = self.dn.val() - 1_u64;
            self.dx0.next = self.dx.val().get_bits::<16>(0);
            self.dx1.next = self.dx.val().get_bits::<16>(16);
            self.dhi.next = (bit_cast::<64, 32>(self.dx0.val() * self.dm0.val()) >> 16_u64)
                + bit_cast::<64, 32>(self.dx0.val() * self.dm1.val())
                + bit_cast::<64, 32>(self.dx1.val() * self.dm0.val())
                + (bit_cast::<64, 32>(self.dx1.val() * self.dm1.val()) << 16_u64)
                + (bit_cast::<64, 32>(self.dx0.val() * self.dm2.val()) << 16_u64)
                + (bit_cast::<64, 32>(self.dx1.val() * self.dm2.val()) << 32_u64);
            self.dqs.next = bit_cast::<32, 64>(self.dhi.val() >> self.dsh.val());
            self.dq.next = self.dqs.val() + 1_u64;
            if self.dn.val() == 0_u64 {
                self.dq.next = bits::<32>(0);
            }
            self.dq16.next = self.dq.val().get_bits::<16>(0);
            self.ilat.next = bits::<32>(1);
            if self.op_i.val() == 3_u64 {
                if self.os.val() {
                    self.ilat.next = (self.dq16.val() * self.k_per.val()) + self.k_rc1.val();
                } else if self.db.val() {
                    self.ilat.next = self.iso.val() + self.k_rc2.val() + self.lo_i.val();
                } else {
                    self.ilat.next = self.k_r.val() + self.k_rc2.val() + self.lo_i.val();
                }
            }
            if self.op_i.val() == 4_u64 {
                self.ilat.next = (self.lo_i.val().get_bits::<16>(0) * self.dq16.val()) + 2_u64;
            }
            if (self.op_i.val() == 5_u64) | (self.op_i.val() == 6_u64) {
                self.ilat.next = self.dq.val() + 2_u64;
            }
            // The registers.
            if self.clear.val() {
                self.busy_r.d.next = false;
            } else if self.enable.val() {
                if self.busy_r.q.val() & !self.done.val() {
                    self.cnt_r.d.next = self.cnt_r.q.val() + 1_u64;
                }
                if self.done.val() {
                    self.busy_r.d.next = false;
                }
                if self.issue.val() & self.free.val() {
                    self.busy_r.d.next = true;
                    self.d_r.d.next = self.desc.val();
                    self.cnt_r.d.next = bits::<32>(1);
                    self.lat_r.d.next = self.ilat.val();
                }
            }
        }
    }
}

crate::halves::logic_from_halves!(Ctl);
