//! A byte memory with many combinational read ports and byte-masked write
//! ports ([`ByteMem`]): the compute unit's scratchpad and accumulator memory.
//!
//! Built like rust-hdl's own `RAM` and `ROM` widgets: a block whose Verilog is
//! a `Verilog::Custom` body (`reg [7:0] mem [0:size-1]` and the ports around
//! it) and whose Rust [`Logic::update`] is its simulation. Unlike `RAM` its
//! reads are combinational, it has as many read and write ports as it is
//! built with, its writes are byte-masked, and `clear` zeroes it at one edge.
//!
//! # Ports
//!
//! | Port | Dir | Width | Meaning |
//! |------|-----|-------|---------|
//! | `clock` | in | 1 | clock |
//! | `clear` | in | 1 | zero every byte at the edge (no write happens at that edge) |
//! | `rd_addr$<k>` | in | 32 | read port `k`: byte address |
//! | `rd_data$<k>` | out | 512 | bytes `rd_addr + i` for `i < n_k` (byte `i` in bits `8i+7:8i`), combinational; a byte at or beyond `size` reads 0, as do bits `8 n_k` and up |
//! | `wr_addr$<k>` | in | 32 | write port `k`: byte address |
//! | `wr_mask$<k>` | in | 64 | byte enables: bit `i` (`i < m_k`) writes byte `i` of `wr_data` at `wr_addr + i` at the edge (dropped at or beyond `size`) |
//! | `wr_data$<k>` | in | 512 | write data, byte `i` in bits `8i+7:8i` |
//!
//! `n_k` and `m_k` (1..=64) are the read and write widths the memory is built
//! with ([`ByteMem::new`]); address sums wrap at 32 bits, like the rest of the
//! compute unit's address arithmetic. When two write ports write the same
//! byte at one edge, the higher-numbered port wins. Mask bits `m_k` and up,
//! and data bits `8 m_k` and up, are ignored.

use std::fmt;

use rust_hdl::prelude::*;

use super::{bits_to_bytes, bytes_to_bits};

/// Widest read or write port in bytes (the data ports are 512 bits wide).
pub const MEM_PORT_BYTES: u32 = 64;

/// A memory shape [`ByteMem::new`] refuses.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MemError(String);

impl fmt::Display for MemError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "byte memory: {}", self.0)
    }
}

impl std::error::Error for MemError {}

/// A byte memory (see the module documentation).
#[derive(LogicBlock)]
pub struct ByteMem {
    pub clock: Signal<In, Clock>,
    pub clear: Signal<In, Bit>,
    pub rd_addr: Vec<Signal<In, Bits<32>>>,
    pub rd_data: Vec<Signal<Out, Bits<512>>>,
    pub wr_addr: Vec<Signal<In, Bits<32>>>,
    pub wr_mask: Vec<Signal<In, Bits<64>>>,
    pub wr_data: Vec<Signal<In, Bits<512>>>,
    _rd_bytes: Vec<u32>,
    _wr_bytes: Vec<u32>,
    _mem: Vec<u8>,
    /// Bumped at every change of `_mem`.
    _version: u64,
    /// Per read port: the address and memory version its output was last
    /// computed for (the conversion to 512 bits is the simulation's cost).
    _seen: Vec<Option<(u32, u64)>>,
}

impl fmt::Debug for ByteMem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ByteMem")
            .field("size", &self._mem.len())
            .field("reads", &self._rd_bytes)
            .field("writes", &self._wr_bytes)
            .finish_non_exhaustive()
    }
}

impl ByteMem {
    /// A zeroed memory of `size` bytes (1..=2^31) with one read port per
    /// entry of `reads` and one write port per entry of `writes`, each the
    /// port's width in bytes (1..=64).
    pub fn new(size: u32, reads: &[u32], writes: &[u32]) -> Result<Self, MemError> {
        if !(1..=1 << 31).contains(&size) {
            return Err(MemError(format!("size {size} is not in 1..=2^31")));
        }
        for (what, ports) in [("read", reads), ("write", writes)] {
            if let Some((k, n)) = ports
                .iter()
                .enumerate()
                .find(|(_, n)| !(1..=MEM_PORT_BYTES).contains(n))
            {
                return Err(MemError(format!(
                    "{what} port {k} is {n} bytes wide (need 1..={MEM_PORT_BYTES})"
                )));
            }
        }
        Ok(ByteMem {
            clock: Default::default(),
            clear: Default::default(),
            rd_addr: (0..reads.len()).map(|_| Signal::default()).collect(),
            rd_data: (0..reads.len()).map(|_| Signal::default()).collect(),
            wr_addr: (0..writes.len()).map(|_| Signal::default()).collect(),
            wr_mask: (0..writes.len()).map(|_| Signal::default()).collect(),
            wr_data: (0..writes.len()).map(|_| Signal::default()).collect(),
            _rd_bytes: reads.to_vec(),
            _wr_bytes: writes.to_vec(),
            _mem: vec![0; size as usize],
            _version: 0,
            _seen: vec![None; reads.len()],
        })
    }

    /// The size in bytes.
    pub fn size(&self) -> u32 {
        self._mem.len() as u32
    }

    /// The width in bytes of each read port.
    pub fn read_widths(&self) -> &[u32] {
        &self._rd_bytes
    }

    /// The width in bytes of each write port.
    pub fn write_widths(&self) -> &[u32] {
        &self._wr_bytes
    }

    /// The contents (simulation only).
    pub fn contents(&self) -> &[u8] {
        &self._mem
    }

    /// The byte at `a` (0 at or beyond the end), as a read port sees it.
    pub fn byte(&self, a: u32) -> u8 {
        self._mem.get(a as usize).copied().unwrap_or(0)
    }

    fn edge(&mut self) {
        if self.clear.val() {
            self._mem.iter_mut().for_each(|b| *b = 0);
            self._version += 1;
            return;
        }
        for k in 0..self._wr_bytes.len() {
            let mask = self.wr_mask[k].val().to_u64();
            if mask & mask_below(self._wr_bytes[k]) == 0 {
                continue;
            }
            let addr = self.wr_addr[k].val().to_u32();
            let data = bits_to_bytes(&self.wr_data[k].val());
            for i in 0..self._wr_bytes[k] {
                if (mask >> i) & 1 == 1 {
                    if let Some(b) = self._mem.get_mut(addr.wrapping_add(i) as usize) {
                        *b = data[i as usize];
                    }
                }
            }
            self._version += 1;
        }
    }
}

/// The low `n` bits set (`n` <= 64).
fn mask_below(n: u32) -> u64 {
    if n >= 64 {
        u64::MAX
    } else {
        (1u64 << n) - 1
    }
}

impl Logic for ByteMem {
    fn update(&mut self) {
        if self.clock.pos_edge() {
            self.edge();
        }
        for k in 0..self._rd_bytes.len() {
            let addr = self.rd_addr[k].val().to_u32();
            let key = Some((addr, self._version));
            if self._seen[k] == key {
                continue;
            }
            let bytes: Vec<u8> = (0..self._rd_bytes[k])
                .map(|i| self.byte(addr.wrapping_add(i)))
                .collect();
            self.rd_data[k].next = bytes_to_bits::<512>(&bytes);
            self._seen[k] = key;
        }
    }

    fn connect(&mut self) {
        for d in &mut self.rd_data {
            d.connect();
        }
    }

    fn hdl(&self) -> Verilog {
        Verilog::Custom(self.body())
    }
}

impl ByteMem {
    /// The module body.
    fn body(&self) -> String {
        let size = self.size();
        let mut s = String::new();
        let mut line = |l: String| {
            s.push_str(&l);
            s.push('\n');
        };
        line(format!("reg [7:0] mem [0:{}];\ninteger i;", size - 1));
        line(format!(
            "initial for (i = 0; i < {size}; i = i + 1) mem[i] = 8'd0;"
        ));
        line("always @(*) begin".into());
        for (k, &n) in self._rd_bytes.iter().enumerate() {
            line(format!("  rd_data${k} = 512'd0;"));
            for i in 0..n {
                let a = format!("rd_addr${k} + 32'd{i}");
                line(format!(
                    "  rd_data${k}[{}:{}] = (({a}) < 32'd{size}) ? mem[{a}] : 8'd0;",
                    8 * i + 7,
                    8 * i
                ));
            }
        }
        line("end".into());
        line("always @(posedge clock) begin".into());
        line("  if (clear) mem <= '{default: 8'd0};".into());
        line("  else begin".into());
        for (k, &m) in self._wr_bytes.iter().enumerate() {
            for i in 0..m {
                let a = format!("wr_addr${k} + 32'd{i}");
                line(format!(
                    "    if (wr_mask${k}[{i}] && (({a}) < 32'd{size})) mem[{a}] <= wr_data${k}[{}:{}];",
                    8 * i + 7,
                    8 * i
                ));
            }
        }
        line("  end".into());
        line("end".into());
        let mut unused: Vec<String> = Vec::new();
        for (k, &m) in self._wr_bytes.iter().enumerate() {
            if m < MEM_PORT_BYTES {
                unused.push(format!("wr_mask${k}[63:{m}]"));
                unused.push(format!("wr_data${k}[511:{}]", 8 * m));
            }
        }
        if !unused.is_empty() {
            line(format!("wire unused_ok = ^{{{}}};", unused.join(", ")));
        }
        s
    }
}
