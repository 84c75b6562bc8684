//! Backends plug in through the `Device` trait: a device built by a factory
//! (as `npukit-rtl`'s RtlDevice will be) runs the same jobs, GET_PARAM
//! reports the platform, and every register access goes through it.
#![allow(clippy::unwrap_used)]

mod common;
use common::*;

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use npukit_shim::uapi::{param, platform};
use npukit_shim::{Backend, DeviceFactory, Options, Shim};
use npukit_sim::{Device, DeviceMemory, ModelDevice, RunExit};

/// A device that forwards to the model and counts register writes.
struct Counting {
    inner: ModelDevice,
    writes: Arc<AtomicU64>,
}

impl Device for Counting {
    fn mmio_read(&mut self, offset: u32) -> u32 {
        self.inner.mmio_read(offset)
    }
    fn mmio_write(&mut self, offset: u32, value: u32) {
        self.writes.fetch_add(1, Ordering::SeqCst);
        self.inner.mmio_write(offset, value)
    }
    fn run_until(&mut self, mem: &mut dyn DeviceMemory, cycle: u64, stop_on_irq: bool) -> RunExit {
        self.inner.run_until(mem, cycle, stop_on_irq)
    }
    fn irq_pending(&self) -> bool {
        self.inner.irq_pending()
    }
    fn cycle(&self) -> u64 {
        self.inner.cycle()
    }
}

#[test]
fn a_device_from_a_factory_runs_jobs_and_reports_its_platform() {
    let writes = Arc::new(AtomicU64::new(0));
    let w = writes.clone();
    let s = Shim::new(Options {
        backend: Backend::Rtl,
        device: Some(DeviceFactory::new(move |cfg, _sink| {
            Ok(Box::new(Counting {
                inner: ModelDevice::new(cfg),
                writes: w.clone(),
            }))
        })),
        ..Options::default()
    })
    .unwrap();
    let f = s.open().unwrap();
    assert_eq!(f.param(param::PLATFORM).unwrap(), platform::RTL);
    Gemm::new(&f, 8, 16, 16, 1).run_and_check(&f);
    assert!(
        writes.load(Ordering::SeqCst) >= 10,
        "ring, table, IRQ mask, RUN, doorbell"
    );
}

#[test]
fn a_factory_error_is_reported() {
    let r = Shim::new(Options {
        device: Some(DeviceFactory::new(|_, _| Err("no Verilator here".into()))),
        ..Options::default()
    });
    assert_eq!(r.unwrap_err().to_string(), "device: no Verilator here");
}

#[test]
fn rtl_and_lockstep_without_a_factory_are_not_available() {
    for b in [Backend::Rtl, Backend::Lockstep] {
        let e = Shim::new(Options {
            backend: b,
            ..Options::default()
        })
        .unwrap_err();
        assert!(e.to_string().contains("not available in this build"), "{e}");
    }
}
