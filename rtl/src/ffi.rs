//! The C ABI of `csrc/wrapper.cpp`: two plain structs and one function table
//! per built variant. The structs mirror `npu_in` / `npu_out` field for field.

use std::ffi::c_void;
use std::os::raw::c_char;

/// Inputs of one cycle edge (`advance = 1`).
#[repr(C)]
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct NpuIn {
    pub mem_size: u64,
    pub resp_tag: u64,
    pub resp_data: [u32; 16],
    pub port_ready: u8,
    pub resp_valid: u8,
    pub pad: [u8; 6],
}

/// Outputs sampled before the rising edge of a cycle edge.
#[repr(C)]
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct NpuOut {
    pub req_addr: u64,
    pub req_wmask: u64,
    pub req_tag: u64,
    pub ev_err_addr: u64,
    pub req_wdata: [u32; 16],
    pub ev_dispatch_desc: [u32; 8],
    pub ev_issue_index: [u32; 3],
    pub ev_done_index: [u32; 4],
    pub ev_dispatch_index: u32,
    pub ev_issue_opcode: u32,
    pub ev_done_opcode: u32,
    pub ev_fence_index: u32,
    pub ev_fence_seq: u32,
    pub ev_irq_status: u32,
    pub ev_err_desc: u32,
    pub mmio_rdata: u32,
    pub req_valid: u8,
    pub req_write: u8,
    pub req_who: u8,
    pub req_kind: u8,
    pub irq: u8,
    pub ev_resp: u8,
    pub ev_dispatch: u8,
    pub ev_dispatch_unit: u8,
    pub ev_issue: u8,
    pub ev_done: u8,
    pub ev_tok_push: u8,
    pub ev_tok_pop: u8,
    pub ev_fence: u8,
    pub ev_irq: u8,
    pub ev_error: u8,
    pub ev_err_code: u8,
}

/// The functions of one Verilated variant.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Api {
    pub create: unsafe extern "C" fn(*const c_char) -> *mut c_void,
    pub destroy: unsafe extern "C" fn(*mut c_void),
    pub cycle: unsafe extern "C" fn(*mut c_void, *const NpuIn, *mut NpuOut),
    pub mmio_write: unsafe extern "C" fn(*mut c_void, u32, u32),
    pub mmio_read: unsafe extern "C" fn(*mut c_void, u32) -> u32,
    pub irq: unsafe extern "C" fn(*mut c_void) -> u8,
    pub flush: unsafe extern "C" fn(*mut c_void),
}

/// Bytes of a 512-bit port (16 little-endian words).
pub(crate) fn words_to_bytes(w: &[u32; 16]) -> [u8; 64] {
    let mut b = [0u8; 64];
    for (chunk, word) in b.chunks_exact_mut(4).zip(w) {
        chunk.copy_from_slice(&word.to_le_bytes());
    }
    b
}

/// A 512-bit port from bytes (byte 0 in bits 7:0 of word 0).
pub(crate) fn bytes_to_words(b: &[u8; 64]) -> [u32; 16] {
    let mut w = [0u32; 16];
    for (word, chunk) in w.iter_mut().zip(b.chunks_exact(4)) {
        *word = u32::from_le_bytes([chunk[0], chunk[1], chunk[2], chunk[3]]);
    }
    w
}
