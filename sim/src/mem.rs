//! Device memory as the device sees it: a flat physical byte space, owned by the
//! caller (a test, the shim's buffer objects, a guest's shared memory) and passed
//! to [`crate::Device::run_until`]. The device checks every physical address against
//! [`DeviceMemory::size`] before it touches memory; out-of-range is a reported fault.

/// The physical memory behind the device's memory port.
pub trait DeviceMemory {
    /// Size in bytes; valid physical addresses are `0..size`.
    fn size(&self) -> u64;
    /// Reads `buf.len()` bytes at `addr`. The caller guarantees the range is valid.
    fn read(&self, addr: u64, buf: &mut [u8]);
    /// Writes `data` at `addr`. The caller guarantees the range is valid.
    fn write(&mut self, addr: u64, data: &[u8]);
}

/// Memory in a `Vec<u8>`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VecMemory {
    bytes: Vec<u8>,
}

impl VecMemory {
    /// `size` zeroed bytes.
    pub fn new(size: usize) -> Self {
        VecMemory {
            bytes: vec![0; size],
        }
    }
    pub fn bytes(&self) -> &[u8] {
        &self.bytes
    }
    pub fn bytes_mut(&mut self) -> &mut [u8] {
        &mut self.bytes
    }
    /// Copies `data` in at `addr`; `None` if it does not fit.
    pub fn store(&mut self, addr: u64, data: &[u8]) -> Option<()> {
        let a = usize::try_from(addr).ok()?;
        self.bytes
            .get_mut(a..a.checked_add(data.len())?)?
            .copy_from_slice(data);
        Some(())
    }
    /// `len` bytes at `addr`; `None` if out of range.
    pub fn load(&self, addr: u64, len: usize) -> Option<&[u8]> {
        let a = usize::try_from(addr).ok()?;
        self.bytes.get(a..a.checked_add(len)?)
    }
}

impl DeviceMemory for VecMemory {
    fn size(&self) -> u64 {
        self.bytes.len() as u64
    }
    fn read(&self, addr: u64, buf: &mut [u8]) {
        let a = addr as usize;
        buf.copy_from_slice(&self.bytes[a..a + buf.len()]);
    }
    fn write(&mut self, addr: u64, data: &[u8]) {
        let a = addr as usize;
        self.bytes[a..a + data.len()].copy_from_slice(data);
    }
}
