//! Running a whole program the way a minimal driver would: write the descriptors
//! as a ring into device memory, program the ring registers, set RUN, and wait
//! for interrupts until the ring is consumed.

use npukit_abi::{regs, Descriptor, ErrorCode, DESC_BYTES};

use crate::device::{Device, RunExit};
use crate::mem::DeviceMemory;
use crate::model::Counters;

/// Why a program did not run to completion.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RunError {
    #[error("device halted with {code} at descriptor {index}, address {addr:#x}")]
    Device {
        code: ErrorCode,
        index: u32,
        addr: u64,
    },
    #[error("no completion after {cycles} cycles (ring head {head}, tail {tail})")]
    Timeout { cycles: u64, head: u32, tail: u32 },
    #[error(
        "program of {len} descriptors needs a ring of {needed} entries; the device allows {max}"
    )]
    RingTooLarge { len: usize, needed: u32, max: u32 },
    #[error("ring of {bytes} bytes at {base:#x} does not fit in device memory ({size} bytes)")]
    RingOutOfMemory { base: u64, bytes: u64, size: u64 },
    #[error("the program is empty")]
    Empty,
    #[error("the device is busy with earlier work")]
    Busy,
}

/// A finished run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Outcome {
    /// Cycles from setting RUN to the last interrupt.
    pub cycles: u64,
    pub counters: Counters,
}

/// Reads all performance counters through MMIO.
pub fn read_counters(dev: &mut dyn Device) -> Counters {
    let mut c = Counters::default();
    for &off in regs::PERF_COUNTERS {
        let v = dev.mmio_read(off) as u64 | (dev.mmio_read(off + 4) as u64) << 32;
        if let Some(f) = c.field_mut(off) {
            *f = v;
        }
    }
    c
}

/// Writes `descs` as a ring at physical `ring_base` and starts the device on it:
/// ring size is the smallest power of two above the program length, interrupts
/// are unmasked, the other `CONTROL` bits (translation) are kept. A device that
/// finished earlier work is stopped first and its ring reprogrammed from index 0.
pub fn start(
    dev: &mut dyn Device,
    mem: &mut dyn DeviceMemory,
    ring_base: u64,
    descs: &[Descriptor],
) -> Result<(), RunError> {
    if descs.is_empty() {
        return Err(RunError::Empty);
    }
    let max = dev.mmio_read(regs::MAX_RING);
    let needed = (descs.len() as u32 + 1).next_power_of_two().max(2);
    if needed > max || descs.len() >= u32::MAX as usize {
        return Err(RunError::RingTooLarge {
            len: descs.len(),
            needed,
            max,
        });
    }
    let bytes = needed as u64 * DESC_BYTES as u64;
    if ring_base
        .checked_add(bytes)
        .is_none_or(|end| end > mem.size())
    {
        return Err(RunError::RingOutOfMemory {
            base: ring_base,
            bytes,
            size: mem.size(),
        });
    }
    if dev.mmio_read(regs::STATUS) & regs::STATUS_BUSY != 0 {
        return Err(RunError::Busy);
    }
    for (i, d) in descs.iter().enumerate() {
        mem.write(ring_base + (i * DESC_BYTES) as u64, &d.encode());
    }
    let ctl = dev.mmio_read(regs::CONTROL) & !regs::CONTROL_RUN;
    dev.mmio_write(regs::CONTROL, ctl);
    dev.mmio_write(regs::RING_BASE_LO, ring_base as u32);
    dev.mmio_write(regs::RING_BASE_HI, (ring_base >> 32) as u32);
    dev.mmio_write(regs::RING_SIZE, needed);
    dev.mmio_write(regs::IRQ_MASK, regs::IRQ_FENCE | regs::IRQ_ERROR);
    dev.mmio_write(regs::RING_TAIL, descs.len() as u32);
    dev.mmio_write(regs::CONTROL, ctl | regs::CONTROL_RUN);
    Ok(())
}

/// Runs until the device has consumed the ring and gone idle, an error halts
/// it, or `max_cycles` pass. Interrupts are acknowledged as they come.
pub fn wait_idle(
    dev: &mut dyn Device,
    mem: &mut dyn DeviceMemory,
    max_cycles: u64,
) -> Result<u64, RunError> {
    let start = dev.cycle();
    let limit = start.saturating_add(max_cycles);
    loop {
        let exit = dev.run_until(mem, limit, true);
        let status = dev.mmio_read(regs::IRQ_STATUS);
        if status & regs::IRQ_ERROR != 0 || dev.mmio_read(regs::STATUS) & regs::STATUS_HALTED != 0 {
            let code =
                ErrorCode::from_u32(dev.mmio_read(regs::ERR_CODE)).unwrap_or(ErrorCode::None);
            let index = dev.mmio_read(regs::ERR_DESC);
            let addr = dev.mmio_read(regs::ERR_ADDR_LO) as u64
                | (dev.mmio_read(regs::ERR_ADDR_HI) as u64) << 32;
            return Err(RunError::Device { code, index, addr });
        }
        dev.mmio_write(regs::IRQ_STATUS, status);
        let head = dev.mmio_read(regs::RING_HEAD);
        let tail = dev.mmio_read(regs::RING_TAIL);
        if head == tail && dev.mmio_read(regs::STATUS) & regs::STATUS_BUSY == 0 {
            return Ok(dev.cycle() - start);
        }
        if exit == RunExit::Cycle {
            return Err(RunError::Timeout {
                cycles: dev.cycle() - start,
                head,
                tail,
            });
        }
    }
}

/// Runs a whole program: [`start`] then [`wait_idle`] when it fits the largest
/// ring the device allows; otherwise through a [`RingRun`] that refills the ring
/// as the device consumes it. The program should end with a FENCE with IRQ, or
/// the run only ends at `max_cycles`.
pub fn run_program(
    dev: &mut dyn Device,
    mem: &mut dyn DeviceMemory,
    ring_base: u64,
    descs: &[Descriptor],
    max_cycles: u64,
) -> Result<Outcome, RunError> {
    let mut run = RingRun::start(dev, mem, ring_base, descs)?;
    let cycles = run.finish(dev, mem, max_cycles)?;
    Ok(Outcome {
        cycles,
        counters: read_counters(dev),
    })
}

/// The ring a [`RingRun`] uses for a program of `len` descriptors on a device
/// whose largest ring is `max_ring`.
pub fn ring_entries(len: usize, max_ring: u32) -> u32 {
    let first = len.min(max_ring.saturating_sub(1) as usize);
    (first as u32 + 1).next_power_of_two().max(2)
}

/// Cycles simulated between two looks at the ring head while a refill is due.
pub const REFILL_SLICE: u64 = 2048;

/// A program run through a ring that may be smaller than the program, the way
/// a driver feeds a long command stream: the ring (the device's largest, or the
/// smallest power of two above the program) is filled, and every
/// [`REFILL_SLICE`] cycles the descriptors the device has consumed are replaced
/// by the next ones and the tail is advanced. A program that fits is written
/// once, exactly as [`start`] does.
#[derive(Debug, Clone)]
pub struct RingRun<'a> {
    descs: &'a [Descriptor],
    ring_base: u64,
    size: u32,
    /// Program index of the next descriptor to write into the ring.
    written: usize,
    /// Cycles run so far.
    cycles: u64,
    /// Refills that wrote descriptors (each one `RING_TAIL` write).
    refills: u64,
}

impl<'a> RingRun<'a> {
    /// Writes the first part of `descs` at physical `ring_base` and starts the device.
    pub fn start(
        dev: &mut dyn Device,
        mem: &mut dyn DeviceMemory,
        ring_base: u64,
        descs: &'a [Descriptor],
    ) -> Result<Self, RunError> {
        if descs.is_empty() {
            return Err(RunError::Empty);
        }
        let max = dev.mmio_read(regs::MAX_RING);
        let first = descs.len().min(max.saturating_sub(1) as usize);
        if first == 0 {
            return Err(RunError::RingTooLarge {
                len: descs.len(),
                needed: 2,
                max,
            });
        }
        start(dev, mem, ring_base, &descs[..first])?;
        let size = ring_entries(descs.len(), max);
        Ok(RingRun {
            descs,
            ring_base,
            size,
            written: first,
            cycles: 0,
            refills: 0,
        })
    }

    /// Descriptors of the program the device has been given so far.
    pub fn written(&self) -> usize {
        self.written
    }

    /// Refills so far: times the ring was topped up after the start (each a
    /// write of `RING_TAIL`); 0 for a program that fits the ring.
    pub fn refills(&self) -> u64 {
        self.refills
    }

    /// Program index of the descriptor the device fetches next (ring head).
    pub fn head(&self, dev: &mut dyn Device) -> usize {
        let in_ring = (self.tail_slot() + self.size - dev.mmio_read(regs::RING_HEAD)) % self.size;
        self.written - in_ring as usize
    }

    fn tail_slot(&self) -> u32 {
        (self.written % self.size as usize) as u32
    }

    /// Tops the ring up with the next descriptors; how many it wrote.
    fn refill(&mut self, dev: &mut dyn Device, mem: &mut dyn DeviceMemory) -> usize {
        let head = dev.mmio_read(regs::RING_HEAD);
        let used = (self.tail_slot() + self.size - head) % self.size;
        let free = (self.size - 1 - used) as usize;
        let n = free.min(self.descs.len() - self.written);
        if n == 0 {
            return 0;
        }
        for i in 0..n {
            let slot = (self.written + i) % self.size as usize;
            mem.write(
                self.ring_base + (slot * DESC_BYTES) as u64,
                &self.descs[self.written + i].encode(),
            );
        }
        self.written += n;
        self.refills += 1;
        dev.mmio_write(regs::RING_TAIL, self.tail_slot());
        n
    }

    /// Runs for at most `max_cycles`, refilling the ring: `Ok(true)` once the
    /// whole program has been consumed and the device is idle, `Ok(false)` when
    /// the cycles ran out first, or when a slice neither advanced the device's
    /// clock nor refilled the ring (a device that no longer runs, such as
    /// a lockstep pair stopped at a divergence).
    pub fn run_for(
        &mut self,
        dev: &mut dyn Device,
        mem: &mut dyn DeviceMemory,
        max_cycles: u64,
    ) -> Result<bool, RunError> {
        let mut left = max_cycles;
        while self.written < self.descs.len() {
            if left == 0 {
                return Ok(false);
            }
            let slice = REFILL_SLICE.min(left);
            let t0 = dev.cycle();
            match wait_idle(dev, mem, slice) {
                Ok(_) | Err(RunError::Timeout { .. }) => {}
                Err(e) => return Err(e),
            }
            let ran = dev.cycle() - t0;
            self.cycles += ran;
            left = left.saturating_sub(ran.max(1));
            if self.refill(dev, mem) == 0 && ran == 0 {
                return Ok(false);
            }
        }
        match wait_idle(dev, mem, left) {
            Ok(n) => {
                self.cycles += n;
                Ok(true)
            }
            Err(RunError::Timeout { cycles, .. }) => {
                self.cycles += cycles;
                Ok(false)
            }
            Err(e) => Err(e),
        }
    }

    /// Runs to the end of the program; a [`RunError::Timeout`] after `max_cycles`.
    pub fn finish(
        &mut self,
        dev: &mut dyn Device,
        mem: &mut dyn DeviceMemory,
        max_cycles: u64,
    ) -> Result<u64, RunError> {
        if self.run_for(dev, mem, max_cycles)? {
            return Ok(self.cycles);
        }
        Err(RunError::Timeout {
            cycles: self.cycles,
            head: dev.mmio_read(regs::RING_HEAD),
            tail: dev.mmio_read(regs::RING_TAIL),
        })
    }

    /// Cycles run so far.
    pub fn cycles(&self) -> u64 {
        self.cycles
    }
}
