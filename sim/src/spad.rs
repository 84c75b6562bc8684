//! Scratchpad (int8) and accumulator memory (int32), both byte-addressed.
//!
//! Each memory has two ports in hardware: a DMA port (LOAD writes, STORE reads)
//! and a compute port (MATMUL, ACT, ADD, MAX). They never contend, so the model
//! needs no arbitration here: data moves in bulk, and the timing rules of the DMA
//! and compute units alone decide when. Programs must order accesses to the same
//! bytes by different units with dependency tokens; if they do not, the data
//! result is unspecified (timing is still exact).

/// The two local memories.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LocalMem {
    pub spad: Vec<u8>,
    /// Accumulator memory as bytes (little-endian int32 at 4-byte aligned addresses).
    pub acc: Vec<u8>,
}

impl LocalMem {
    pub fn new(spad_bytes: u32, acc_bytes: u32) -> Self {
        LocalMem {
            spad: vec![0; spad_bytes as usize],
            acc: vec![0; acc_bytes as usize],
        }
    }

    /// The memory a DMA descriptor addresses.
    pub fn side_mut(&mut self, acc: bool) -> &mut [u8] {
        if acc {
            &mut self.acc
        } else {
            &mut self.spad
        }
    }

    pub fn side(&self, acc: bool) -> &[u8] {
        if acc {
            &self.acc
        } else {
            &self.spad
        }
    }

    /// The int32 at accumulator byte address `addr` (4-aligned, in range).
    #[inline]
    pub fn acc_get(&self, addr: usize) -> i32 {
        i32::from_le_bytes([
            self.acc[addr],
            self.acc[addr + 1],
            self.acc[addr + 2],
            self.acc[addr + 3],
        ])
    }

    #[inline]
    pub fn acc_set(&mut self, addr: usize, v: i32) {
        self.acc[addr..addr + 4].copy_from_slice(&v.to_le_bytes());
    }

    #[inline]
    pub fn spad_i8(&self, addr: usize) -> i8 {
        self.spad[addr] as i8
    }
}
