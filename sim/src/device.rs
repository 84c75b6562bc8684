//! The Device boundary: what a PCIe accelerator looks like to a kernel driver —
//! a register window, memory reached by DMA, an interrupt line, and a clock.
//! `ModelDevice`, the RTL device and the lockstep pair all implement it.

use crate::mem::DeviceMemory;

/// Why [`Device::run_until`] returned.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RunExit {
    /// The requested cycle was reached.
    Cycle,
    /// The interrupt line is asserted (only when asked to stop on it).
    Irq,
}

/// A simulated NPU.
pub trait Device {
    /// Reads the register at byte `offset`. Unmapped offsets read 0. Takes no
    /// simulated time.
    fn mmio_read(&mut self, offset: u32) -> u32;
    /// Writes the register at byte `offset`; seen by the device from the next
    /// simulated cycle. Writes to read-only or unmapped offsets are ignored.
    fn mmio_write(&mut self, offset: u32, value: u32);
    /// Simulates cycles until the clock reaches `cycle`, or, with `stop_on_irq`,
    /// until the interrupt line is asserted (checked before and after each cycle).
    /// The device reads and writes `mem` through its memory port.
    fn run_until(&mut self, mem: &mut dyn DeviceMemory, cycle: u64, stop_on_irq: bool) -> RunExit;
    /// The interrupt line: `IRQ_STATUS & IRQ_MASK != 0`.
    fn irq_pending(&self) -> bool;
    /// Cycles simulated since creation (the next cycle to simulate).
    fn cycle(&self) -> u64;
}
