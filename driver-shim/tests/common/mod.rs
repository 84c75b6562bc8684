//! Shared helpers of the shim tests: a GEMM job and its CPU reference.
#![allow(dead_code, clippy::unwrap_used)]

pub mod c_examples;

use npukit_abi::desc::deps;
use npukit_abi::desc::Matmul;
use npukit_abi::program::Program;
use npukit_shim::uapi::{status, BoCreate};
use npukit_shim::{File, Options, Shim};

pub const SEC: i64 = 1_000_000_000;

pub fn shim() -> Shim {
    Shim::new(Options::default()).unwrap()
}

pub fn shim_with(f: impl FnOnce(&mut Options)) -> Shim {
    let mut o = Options::default();
    f(&mut o);
    Shim::new(o).unwrap()
}

/// OUT[m x n] (i32) = A[m x k] (i8) * W[k x n] (i8): load A and W into the
/// scratchpad, one MATMUL, store the accumulators.
pub fn gemm_program(a: u64, w: u64, out: u64, m: u16, k: u16, n: u16) -> Program {
    gemm_program_at(a, w, out, m, k, n, 0x4000)
}

/// [`gemm_program`] with W at scratchpad byte `w_local` (A is at 0).
pub fn gemm_program_at(a: u64, w: u64, out: u64, m: u16, k: u16, n: u16, w_local: u32) -> Program {
    let mut p = Program::default();
    p.load_2d(0, a, m, k, k as u32);
    p.load_2d(w_local, w, k, n, n as u32)
        .deps(deps::SIGNAL_NEXT);
    p.matmul(Matmul {
        a: 0,
        w: w_local,
        out: 0,
        m,
        k,
        n,
        accumulate: false,
    })
    .deps(deps::WAIT_PREV | deps::SIGNAL_NEXT);
    p.store_acc(0, out, m, n * 4, n as u32 * 4)
        .deps(deps::WAIT_PREV);
    p
}

pub fn cpu_gemm(a: &[i8], w: &[i8], m: usize, k: usize, n: usize) -> Vec<i32> {
    let mut o = vec![0i32; m * n];
    for i in 0..m {
        for j in 0..n {
            let mut s = 0i32;
            for x in 0..k {
                s = s.wrapping_add(a[i * k + x] as i32 * w[x * n + j] as i32);
            }
            o[i * n + j] = s;
        }
    }
    o
}

/// Deterministic pseudo-random int8 data.
pub fn data(len: usize, seed: u32) -> Vec<i8> {
    let mut x = seed.wrapping_mul(2654435761).wrapping_add(1);
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 17;
            x ^= x << 5;
            x as i8
        })
        .collect()
}

pub fn bytes(v: &[i8]) -> Vec<u8> {
    v.iter().map(|&b| b as u8).collect()
}

/// A GEMM set up in one file: BOs for A, W, OUT and the command stream.
pub struct Gemm {
    pub a: BoCreate,
    pub w: BoCreate,
    pub out: BoCreate,
    pub cmd: BoCreate,
    pub len: u64,
    pub expect: Vec<i32>,
    pub m: usize,
    pub n: usize,
}

impl Gemm {
    pub fn new(f: &File, m: u16, k: u16, n: u16, seed: u32) -> Gemm {
        Self::new_at(f, m, k, n, seed, 0x4000)
    }

    /// [`Gemm::new`] with W at scratchpad byte `w_local` (for small scratchpads).
    pub fn new_at(f: &File, m: u16, k: u16, n: u16, seed: u32, w_local: u32) -> Gemm {
        let av = data(m as usize * k as usize, seed);
        let wv = data(k as usize * n as usize, seed + 7);
        let a = f.create_bo(av.len() as u64, 0).unwrap();
        let w = f.create_bo(wv.len() as u64, 0).unwrap();
        let out = f.create_bo(m as u64 * n as u64 * 4, 0).unwrap();
        f.bo_write(a.handle, 0, &bytes(&av)).unwrap();
        f.bo_write(w.handle, 0, &bytes(&wv)).unwrap();
        let prog = gemm_program_at(
            a.device_addr,
            w.device_addr,
            out.device_addr,
            m,
            k,
            n,
            w_local,
        )
        .encode();
        let cmd = f.create_bo(prog.len() as u64, 0).unwrap();
        f.bo_write(cmd.handle, 0, &prog).unwrap();
        Gemm {
            a,
            w,
            out,
            cmd,
            len: prog.len() as u64,
            expect: cpu_gemm(&av, &wv, m as usize, k as usize, n as usize),
            m: m as usize,
            n: n as usize,
        }
    }

    pub fn handles(&self) -> [u32; 3] {
        [self.a.handle, self.w.handle, self.out.handle]
    }

    pub fn submit(&self, f: &File) -> u64 {
        f.submit_job(self.cmd.handle, 0, self.len, &self.handles())
            .unwrap()
    }

    pub fn result(&self, f: &File) -> Vec<i32> {
        let mut b = vec![0u8; self.m * self.n * 4];
        f.bo_read(self.out.handle, 0, &mut b).unwrap();
        b.chunks_exact(4)
            .map(|c| i32::from_le_bytes([c[0], c[1], c[2], c[3]]))
            .collect()
    }

    /// Submits, waits, and checks the result bit-exact.
    pub fn run_and_check(&self, f: &File) {
        let seq = self.submit(f);
        let w = f.wait_job(seq, 30 * SEC).unwrap();
        assert_eq!(w.status, status::OK, "{w:?}");
        assert_eq!(self.result(f), self.expect);
    }
}
