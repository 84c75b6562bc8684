//! [`Delay`]: a shift register of `n >= 1` stages of `W` bits that shifts
//! when `en` is set, as a `#[hdl_gen]` block. `Compute` builds its skew and
//! deskew buffers from it (`sk$<r>`, `skf$<r>`, `wsk$<c>`, `dsk$<c>`: see
//! `compute.rs`).

use rust_hdl::prelude::*;

/// `q` is `d` as it was `n` enabled edges ago (stage `n - 1` of the line).
#[derive(LogicBlock)]
pub struct Delay<const W: usize> {
    pub clock: Signal<In, Clock>,
    /// Shift at this edge.
    pub en: Signal<In, Bit>,
    /// Into stage 0.
    pub d: Signal<In, Bits<W>>,
    /// The last stage.
    pub q: Signal<Out, Bits<W>>,
    /// The stages, `s[0]` first.
    pub s: Vec<DFF<Bits<W>>>,
    _n: usize,
    _last: usize,
}

impl<const W: usize> Delay<W> {
    /// A line of `n` stages (at least one).
    pub fn new(n: usize) -> Self {
        let n = n.max(1);
        Delay {
            clock: Default::default(),
            en: Default::default(),
            d: Default::default(),
            q: Default::default(),
            s: (0..n).map(|_| DFF::default()).collect(),
            _n: n,
            _last: n - 1,
        }
    }

    /// Its number of stages.
    pub fn stages(&self) -> usize {
        self._n
    }
}

impl<const W: usize> Default for Delay<W> {
    fn default() -> Self {
        Self::new(1)
    }
}

impl<const W: usize> std::fmt::Debug for Delay<W> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Delay")
            .field("stages", &self._n)
            .finish_non_exhaustive()
    }
}

impl<const W: usize> Logic for Delay<W> {
    #[hdl_gen]
    fn update(&mut self) {
        for i in 0..self._n {
            self.s[i].clock.next = self.clock.val();
            self.s[i].d.next = self.s[i].q.val();
        }
        if self.en.val() {
            self.s[0].d.next = self.d.val();
            for i in 1..self._n {
                self.s[i].d.next = self.s[i - 1].q.val();
            }
        }
        for i in self._last..self._n {
            self.q.next = self.s[i].q.val();
        }
    }
}
