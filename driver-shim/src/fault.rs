//! Deterministic fault injection, scripted per job.
//!
//! Jobs are numbered in the order the device accepts them (SUBMIT order over
//! all files of the device, from 1). A script is a list of entries separated
//! by `;`, `,`, newlines or spaces; `#` starts a comment:
//!
//! | entry | effect on the device | seen through the uapi |
//! |---|---|---|
//! | `N:hang` / `N:hang+C` | the device stops making progress (C cycles after job N starts) | the watchdog fires: WAIT status ABORTED, error `DRM_NPUKIT_ERR_HANG`; device reset, next jobs run |
//! | `N:xlat@A` | the page of device address A is unmapped from job N's translation table while it runs | if the job touches that page: status ERROR, `NPU_ERR_XLAT_FAULT`, `fault_addr` = the address the device faulted on |
//! | `N:data@A` | when job N ends, the byte at device address A is corrupted (bit 0 flipped), as an uncorrectable ECC error | status ERROR, `DRM_NPUKIT_ERR_DATA`, `fault_addr` = A |
//! | `N:reset+C` | the device resets itself C cycles after job N starts | status ABORTED, `DRM_NPUKIT_ERR_RESET`; the next jobs run |
//!
//! Instead of a device-wide number, `C/S` names job S (the sequence number
//! SUBMIT returned) of context C: `3/5:hang`. Jobs of several processes on
//! one device (`npukit serve`) are numbered in whatever order they arrive, so
//! a test that scripts faults for its own jobs names them this way. Such an
//! entry is dropped once its job has started.
//!
//! `NPUKIT_FAULTS` holds a script, or `@PATH` to read one from a file.

use npukit_abi::regs;
use npukit_sim::{Device, DeviceMemory, RunExit};

use crate::backend::BackendDevice;

/// A small seeded generator (xorshift64) for the fault campaign
/// (`npukit-campaign`) and the shim's randomized tests: the same seed gives
/// the same faults and ioctls on every machine. Not for anything secret.
#[derive(Debug, Clone, Copy)]
pub struct XorShift(u64);

impl XorShift {
    /// A generator from `seed` (zero, the one state xorshift never leaves, is replaced).
    pub fn new(seed: u64) -> XorShift {
        XorShift(if seed == 0 {
            0x9E37_79B9_7F4A_7C15
        } else {
            seed
        })
    }
    pub fn next_u64(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    /// A value below `n` (> 0).
    pub fn below(&mut self, n: u64) -> u64 {
        self.next_u64() % n
    }
}

/// One scripted fault.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fault {
    /// The device stops making progress `after` cycles into the job.
    Hang { after: u64 },
    /// The page holding this device address is unmapped for the job.
    Xlat { addr: u64 },
    /// An uncorrectable data error at this device address when the job ends.
    Data { addr: u64 },
    /// The device resets itself `after` cycles into the job.
    Reset { after: u64 },
}

/// Which job a fault is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum JobRef {
    /// Device-wide job number, from 1 (SUBMIT order over all files).
    Number(u64),
    /// Job `seq` of context `ctx` (the sequence number SUBMIT returned).
    Context { ctx: u32, seq: u64 },
}

impl From<u64> for JobRef {
    fn from(n: u64) -> Self {
        JobRef::Number(n)
    }
}

impl std::fmt::Display for JobRef {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            JobRef::Number(n) => write!(f, "{n}"),
            JobRef::Context { ctx, seq } => write!(f, "{ctx}/{seq}"),
        }
    }
}

/// A fault for one job.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Injection {
    pub job: JobRef,
    pub fault: Fault,
}

impl Injection {
    /// Is this the fault of job `number`, which is job `seq` of context `ctx`?
    pub fn applies_to(&self, number: u64, ctx: u32, seq: u64) -> bool {
        match self.job {
            JobRef::Number(n) => n == number,
            JobRef::Context { ctx: c, seq: s } => c == ctx && s == seq,
        }
    }
}

impl std::fmt::Display for Fault {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match *self {
            Fault::Hang { after } => write!(f, "hang+{after}"),
            Fault::Xlat { addr } => write!(f, "xlat@{addr:#x}"),
            Fault::Data { addr } => write!(f, "data@{addr:#x}"),
            Fault::Reset { after } => write!(f, "reset+{after}"),
        }
    }
}

impl std::fmt::Display for Injection {
    /// The script entry (`N:kind` or `C/S:kind`), as [`parse`] reads it.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}:{}", self.job, self.fault)
    }
}

/// A script entry that does not parse.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("fault script entry {entry:?}: {problem} (expected N:hang[+C], N:xlat@ADDR, N:data@ADDR or N:reset+C, with N a job number or CONTEXT/SEQ)")]
pub struct FaultParseError {
    pub entry: String,
    pub problem: String,
}

fn num(s: &str) -> Option<u64> {
    let s = s.trim().replace('_', "");
    match s.strip_prefix("0x").or_else(|| s.strip_prefix("0X")) {
        Some(h) => u64::from_str_radix(h, 16).ok(),
        None => s.parse().ok(),
    }
}

/// Parses a fault script.
pub fn parse(script: &str) -> Result<Vec<Injection>, FaultParseError> {
    let mut out = Vec::new();
    for line in script.lines() {
        let line = line.split('#').next().unwrap_or("");
        for entry in line.split([';', ',', ' ', '\t']).filter(|e| !e.is_empty()) {
            let bad = |p: &str| FaultParseError {
                entry: entry.to_string(),
                problem: p.to_string(),
            };
            let (job, what) = entry.split_once(':').ok_or_else(|| bad("no ':'"))?;
            let job = match job.split_once('/') {
                Some((c, q)) => JobRef::Context {
                    ctx: num(c)
                        .and_then(|c| u32::try_from(c).ok())
                        .filter(|&c| c >= 1)
                        .ok_or_else(|| bad("the context must be a number from 1 to 2^32-1"))?,
                    seq: num(q)
                        .filter(|&q| q >= 1)
                        .ok_or_else(|| bad("the sequence number must be 1 or more"))?,
                },
                None => JobRef::Number(
                    num(job)
                        .filter(|&j| j >= 1)
                        .ok_or_else(|| bad("the job number must be 1 or more"))?,
                ),
            };
            let (kind, arg) = match what.find(['@', '+']) {
                Some(i) => (&what[..i], Some((&what[i..i + 1], &what[i + 1..]))),
                None => (what, None),
            };
            let arg_num = |want: &str| -> Result<u64, FaultParseError> {
                match arg {
                    Some((sep, v)) if sep == want => {
                        num(v).ok_or_else(|| bad(&format!("{v:?} is not a number")))
                    }
                    _ => Err(bad(&format!("{kind} needs {want}VALUE"))),
                }
            };
            let fault = match kind {
                "hang" => Fault::Hang {
                    after: if arg.is_some() { arg_num("+")? } else { 0 },
                },
                "xlat" => Fault::Xlat {
                    addr: arg_num("@")?,
                },
                "data" => Fault::Data {
                    addr: arg_num("@")?,
                },
                "reset" => Fault::Reset {
                    after: arg_num("+")?,
                },
                _ => return Err(bad("unknown fault kind")),
            };
            out.push(Injection { job, fault });
        }
    }
    Ok(out)
}

/// The script from `NPUKIT_FAULTS` (inline, or `@PATH`), empty if unset.
pub fn from_env() -> Result<Vec<Injection>, FaultParseError> {
    let Ok(v) = std::env::var("NPUKIT_FAULTS") else {
        return Ok(Vec::new());
    };
    match v.strip_prefix('@') {
        Some(path) => {
            let text = std::fs::read_to_string(path).map_err(|e| FaultParseError {
                entry: v.clone(),
                problem: format!("cannot read {path}: {e}"),
            })?;
            parse(&text)
        }
        None => parse(&v),
    }
}

/// A device with a fault line: it can be made to hang (stop making progress
/// while simulated time goes on) or to reset itself, at a given cycle.
/// Otherwise it is the inner device, unchanged.
pub struct FaultDevice {
    inner: Box<dyn BackendDevice>,
    /// Cycles that passed while frozen (the inner device did not see them).
    frozen_cycles: u64,
    frozen: bool,
    hang_at: Option<u64>,
    reset_at: Option<u64>,
}

impl std::fmt::Debug for FaultDevice {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FaultDevice")
            .field("frozen", &self.frozen)
            .field("hang_at", &self.hang_at)
            .field("reset_at", &self.reset_at)
            .finish_non_exhaustive()
    }
}

impl FaultDevice {
    pub fn new(inner: Box<dyn BackendDevice>) -> Self {
        FaultDevice {
            inner,
            frozen_cycles: 0,
            frozen: false,
            hang_at: None,
            reset_at: None,
        }
    }

    /// The device stops making progress from `cycle` on, until it is reset.
    pub fn arm_hang(&mut self, cycle: u64) {
        self.hang_at = Some(cycle);
    }

    /// The device resets itself at `cycle`.
    pub fn arm_reset(&mut self, cycle: u64) {
        self.reset_at = Some(cycle);
    }

    /// Cancels armed faults that have not fired.
    pub fn disarm(&mut self) {
        self.hang_at = None;
        self.reset_at = None;
    }

    pub fn is_frozen(&self) -> bool {
        self.frozen
    }

    /// Why the inner device can no longer be trusted, if so
    /// ([`BackendDevice::lost`]).
    pub fn lost(&self) -> Option<String> {
        self.inner.lost()
    }
}

impl Device for FaultDevice {
    fn mmio_read(&mut self, offset: u32) -> u32 {
        self.inner.mmio_read(offset)
    }

    fn mmio_write(&mut self, offset: u32, value: u32) {
        if offset == regs::CONTROL && value & regs::CONTROL_RESET != 0 {
            self.frozen = false;
            self.hang_at = None;
        }
        self.inner.mmio_write(offset, value);
    }

    fn run_until(&mut self, mem: &mut dyn DeviceMemory, cycle: u64, stop_on_irq: bool) -> RunExit {
        loop {
            let now = self.cycle();
            if stop_on_irq && self.irq_pending() {
                return RunExit::Irq;
            }
            if now >= cycle {
                return RunExit::Cycle;
            }
            if self.frozen {
                self.frozen_cycles += cycle - now;
                return RunExit::Cycle;
            }
            let mut target = cycle;
            if let Some(h) = self.hang_at {
                if h <= now {
                    self.frozen = true;
                    self.hang_at = None;
                    continue;
                }
                target = target.min(h);
            }
            if let Some(r) = self.reset_at {
                if r <= now {
                    self.reset_at = None;
                    self.inner.mmio_write(regs::CONTROL, regs::CONTROL_RESET);
                    // Return at once, as a reset would interrupt the host.
                    return RunExit::Cycle;
                }
                target = target.min(r);
            }
            let before = self.inner.cycle();
            let exit = self
                .inner
                .run_until(mem, target - self.frozen_cycles, stop_on_irq);
            if exit == RunExit::Irq {
                return RunExit::Irq;
            }
            if self.inner.cycle() == before {
                // A device that no longer advances (the lockstep pair after a
                // divergence): return rather than spin; the driver asks `lost`.
                return RunExit::Cycle;
            }
        }
    }

    fn irq_pending(&self) -> bool {
        !self.frozen && self.inner.irq_pending()
    }

    fn cycle(&self) -> u64 {
        self.inner.cycle() + self.frozen_cycles
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_every_kind() {
        let s =
            parse("1:hang; 2:hang+500, 3:xlat@0x10040\n4:data@4096 # c\n5:reset+1_000 7/0x10:hang")
                .unwrap();
        let n = JobRef::Number;
        assert_eq!(
            s.iter().map(|i| (i.job, i.fault)).collect::<Vec<_>>(),
            vec![
                (n(1), Fault::Hang { after: 0 }),
                (n(2), Fault::Hang { after: 500 }),
                (n(3), Fault::Xlat { addr: 0x10040 }),
                (n(4), Fault::Data { addr: 4096 }),
                (n(5), Fault::Reset { after: 1000 }),
                (
                    JobRef::Context { ctx: 7, seq: 16 },
                    Fault::Hang { after: 0 }
                ),
            ]
        );
        // Display writes what parse reads.
        let text: Vec<String> = s.iter().map(|i| i.to_string()).collect();
        assert_eq!(parse(&text.join(" ")).unwrap(), s);
    }

    #[test]
    fn rejects_bad_entries_with_the_entry_named() {
        for bad in [
            "hang",
            "0:hang",
            "x:hang",
            "1:melt",
            "1:xlat",
            "1:xlat+5",
            "1:reset",
            "1:data@zz",
            "0/1:hang",
            "1/0:hang",
            "1/:hang",
            "4294967296/1:hang",
        ] {
            let e = parse(bad).unwrap_err();
            assert_eq!(e.entry, bad);
            assert!(e.to_string().contains(bad));
        }
    }
}
