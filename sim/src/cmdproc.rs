//! The command processor: fetches descriptors from the ring in device memory,
//! decodes them in order and dispatches them to the load, compute and store
//! queues; retires NOP and executes FENCE itself.
//!
//! Timing (docs/timing.md, rules F1-F4): while `CONTROL.RUN` is set and the fetch
//! pointer differs from `RING_TAIL`, the command processor offers one fetch beat
//! per cycle, up to `cmdproc.fetch_depth` descriptors ahead of dispatch. A
//! descriptor whose last beat arrived in cycle `r` is decoded and, if its queue has
//! room at the start of the cycle, dispatched in cycle `r + 1` or later, one
//! descriptor per cycle, in ring order; a unit can issue it from the next cycle.
//! NOP retires in its dispatch cycle. FENCE waits until every queue is empty and
//! every unit idle at the start of a cycle; it then completes in that cycle, or,
//! with WRITEBACK, offers its write from the next cycle and completes in the cycle
//! the write is acknowledged.

use std::collections::VecDeque;

use npukit_abi::{Descriptor, ErrorCode, Limits, DESC_BYTES};

use crate::xlat::Tlb;

/// A halt reason with what the device latches.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Fault {
    pub code: ErrorCode,
    pub index: u32,
    pub addr: u64,
}

/// A descriptor being fetched or waiting for dispatch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FetchEntry {
    pub index: u32,
    /// Physical address of the descriptor.
    pub addr: u64,
    pub beats_total: u8,
    pub beats_issued: u8,
    pub beats_arrived: u8,
    pub bytes: [u8; DESC_BYTES],
    /// Set when the last beat arrives.
    pub decoded: Option<Result<Descriptor, Fault>>,
}

impl FetchEntry {
    /// Bytes of the descriptor carried by each fetch beat.
    pub fn chunk(beat: u64) -> u64 {
        beat.min(DESC_BYTES as u64)
    }

    /// Stores one arrived beat; decodes when complete.
    pub fn arrive(&mut self, data: &[u8], chunk: usize, limits: &Limits) {
        let k = self.beats_arrived as usize;
        self.bytes[k * chunk..(k + 1) * chunk].copy_from_slice(&data[..chunk]);
        self.beats_arrived += 1;
        if self.beats_arrived == self.beats_total {
            let r = Descriptor::decode(&self.bytes).and_then(|d| d.validate(limits).map(|_| d));
            self.decoded = Some(r.map_err(|e| Fault {
                code: e.code,
                index: self.index,
                addr: e.fault_addr.unwrap_or(self.addr),
            }));
        }
    }
}

/// Progress of a FENCE.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FencePhase {
    /// Waiting for every queue and unit to drain.
    Drain,
    /// Offering the sequence-number write.
    Write,
    /// Waiting for the write acknowledge.
    Ack,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FenceOp {
    pub index: u32,
    pub seq: u32,
    pub writeback: Option<u64>,
    pub irq: bool,
    pub phase: FencePhase,
}

/// Command-processor state.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct CmdProc {
    /// Next ring index to dispatch (`RING_HEAD`).
    pub head: u32,
    /// Next ring index to fetch.
    pub fetch_ptr: u32,
    pub fifo: VecDeque<FetchEntry>,
    pub fence: Option<FenceOp>,
    pub tlb: Tlb,
}
