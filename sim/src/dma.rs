//! The DMA engine: two units (load, store) sharing the one memory port.
//!
//! A LOAD or STORE moves `rows` rows of `row_bytes` bytes. Each row is cut into
//! beats at beat-aligned device addresses (a beat never spans two rows, and never a
//! page, since pages are multiples of the beat), so a row of `n` bytes at device
//! address `a` takes `ceil((a % B + n) / B)` beats of `B` bytes. Beats are requested
//! in order, at most one per cycle, each after its translation (see `xlat`).
//!
//! Timing (docs/timing.md, rules D1-D3): a unit issued in cycle `t` offers its
//! first request in `t + 1`; it offers the next beat in the cycle after a grant. A
//! LOAD writes each beat's bytes into local memory in the cycle its response
//! arrives; a STORE reads local memory when its request is granted (the write data
//! travels with the request). The descriptor completes in the cycle after its last
//! response (read data or write acknowledge).

use npukit_abi::desc::Dma;

use crate::xlat::Tlb;

/// One beat to transfer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Beat {
    /// Device address of the first byte.
    pub va: u64,
    /// Bytes in this beat (1..=B).
    pub len: u32,
    /// Local byte address of the first byte.
    pub local: u32,
}

/// A LOAD or STORE in execution.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DmaJob {
    pub index: u32,
    pub deps: u8,
    pub d: Dma,
    row: u16,
    /// Device address of the next byte to request in the current row.
    pos: u64,
    /// Every beat has been granted.
    pub issued_all: bool,
    /// Beats granted whose response has not arrived.
    pub outstanding: u32,
}

impl DmaJob {
    pub fn new(index: u32, deps: u8, d: Dma) -> Self {
        DmaJob {
            index,
            deps,
            d,
            row: 0,
            pos: d.dram,
            issued_all: false,
            outstanding: 0,
        }
    }

    fn row_start(&self, row: u16) -> u64 {
        self.d.dram + row as u64 * self.d.dram_stride as u64
    }

    /// The next beat to request, for a beat width of `beat` bytes.
    pub fn next_beat(&self, beat: u64) -> Beat {
        let start = self.row_start(self.row);
        let end = start + self.d.row_bytes as u64;
        let beat_end = (self.pos & !(beat - 1)) + beat;
        Beat {
            va: self.pos,
            len: (end.min(beat_end) - self.pos) as u32,
            local: self.d.local + self.row as u32 * self.d.local_stride + (self.pos - start) as u32,
        }
    }

    /// Moves past a granted beat.
    pub fn advance(&mut self, b: &Beat) {
        self.outstanding += 1;
        self.pos += b.len as u64;
        if self.pos == self.row_start(self.row) + self.d.row_bytes as u64 {
            self.row += 1;
            if self.row == self.d.rows {
                self.issued_all = true;
            } else {
                self.pos = self.row_start(self.row);
            }
        }
    }

    /// Total beats of the descriptor for beat width `beat` (the timing rules'
    /// closed form).
    pub fn beats(d: &Dma, beat: u64) -> u64 {
        (0..d.rows as u64)
            .map(|r| {
                let a = d.dram + r * d.dram_stride as u64;
                (a % beat + d.row_bytes as u64).div_ceil(beat)
            })
            .sum()
    }
}

/// A DMA unit: its job and its translation cache.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct DmaUnit {
    pub job: Option<DmaJob>,
    pub tlb: Tlb,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn beats_split_rows_at_beat_boundaries() {
        let d = Dma {
            local: 100,
            dram: 30,
            rows: 2,
            row_bytes: 40,
            dram_stride: 64,
            local_stride: 40,
            acc: false,
        };
        let mut j = DmaJob::new(0, 0, d);
        let mut got = vec![];
        while !j.issued_all {
            let b = j.next_beat(32);
            got.push((b.va, b.len, b.local));
            j.advance(&b);
        }
        // row 0: 30..70 -> [30,32) [32,64) [64,70); row 1: 94..134 -> [94,96) [96,128) [128,134)
        assert_eq!(
            got,
            vec![
                (30, 2, 100),
                (32, 32, 102),
                (64, 6, 134),
                (94, 2, 140),
                (96, 32, 142),
                (128, 6, 174)
            ]
        );
        assert_eq!(DmaJob::beats(&d, 32), 6);
        assert_eq!(j.outstanding, 6);
    }
}
