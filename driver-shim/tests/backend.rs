//! Backends: the model, the Verilated RTL and the lockstep pair run the same
//! jobs through the same driver, bit-exact and cycle for cycle; a lockstep
//! divergence fails the job loudly; a device from a factory plugs in through
//! the `Device` trait. (`cargo test` builds the shim with the RTL: the
//! dev-dependency on npukit-rtl turns its `verilator` feature on.)
#![allow(clippy::unwrap_used)]

mod common;
use common::*;

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use npukit_rtl::variant;
use npukit_shim::trace::TraceEvent;
use npukit_shim::uapi::{err, param, platform, status, JobStats};
use npukit_shim::{Backend, DeviceFactory, Errno, Options, Shim};
use npukit_sim::{Device, DeviceMemory, ModelDevice, NpuConfig, RunExit};

fn config(name: &str) -> NpuConfig {
    let path = format!("{}/../configs/{name}.toml", env!("CARGO_MANIFEST_DIR"));
    NpuConfig::load(std::path::Path::new(&path)).unwrap()
}

fn require_rtl() {
    assert!(
        variant::verilator_available(),
        "these tests need the Verilated RTL: {}",
        npukit_rtl::RtlError::NoVerilator
    );
}

/// Runs two GEMMs (one of them twice) on `backend`: results, and each job's
/// statistics.
fn gemms(backend: Backend, cfg: &NpuConfig) -> (Vec<Vec<i32>>, Vec<JobStats>) {
    let s = Shim::new(Options {
        backend,
        config: cfg.clone(),
        mem_bytes: 8 << 20,
        ..Options::default()
    })
    .unwrap();
    let f = s.open().unwrap();
    assert_eq!(f.param(param::PLATFORM).unwrap(), backend.platform());
    let (r, c) = (cfg.array.rows as u16, cfg.array.cols as u16);
    // W right after A in the scratchpad (the 4x4 one is 16 KiB).
    let jobs = [
        Gemm::new_at(&f, 12, r, c, 1, 0x1000),
        Gemm::new_at(&f, 5, r, c, 2, 0x1000),
    ];
    let (mut results, mut stats) = (Vec::new(), Vec::new());
    for g in jobs.iter().chain(&jobs[..1]) {
        let seq = g.submit(&f);
        let w = f.wait_job(seq, 120 * SEC).unwrap();
        assert_eq!(w.status, status::OK, "{backend:?}: {w:?}");
        let out = g.result(&f);
        assert_eq!(out, g.expect, "{backend:?}: GEMM bit-exact");
        results.push(out);
        let mut st = JobStats {
            seq,
            ..JobStats::default()
        };
        f.job_stats(&mut st).unwrap();
        stats.push(st);
    }
    (results, stats)
}

#[test]
fn model_rtl_and_lockstep_agree_bit_for_bit_and_cycle_for_cycle() {
    require_rtl();
    let cfg = config("4x4");
    let (rm, sm) = gemms(Backend::Model, &cfg);
    for b in [Backend::Rtl, Backend::Lockstep] {
        let (r, s) = gemms(b, &cfg);
        assert_eq!(r, rm, "{b:?}: outputs");
        // Same jobs, same driver, same device timing: same cycles and counters.
        assert_eq!(s, sm, "{b:?}: job statistics");
    }
    assert!(sm.iter().all(|s| s.cycles > 0 && s.macs > 0), "{sm:?}");
}

#[test]
fn the_default_configuration_runs_on_the_16x16_rtl() {
    require_rtl();
    let s = Shim::new(Options {
        backend: Backend::Rtl,
        mem_bytes: 8 << 20,
        ..Options::default()
    })
    .unwrap();
    let f = s.open().unwrap();
    assert_eq!(f.param(param::ARRAY_ROWS).unwrap(), 16);
    assert_eq!(f.param(param::PLATFORM).unwrap(), platform::RTL);
    Gemm::new(&f, 20, 16, 16, 3).run_and_check(&f);
}

#[test]
fn a_variant_by_name_sets_the_array_shape() {
    require_rtl();
    let s = Shim::new(Options {
        backend: Backend::Lockstep,
        rtl_variant: Some("npu_8x8".into()),
        mem_bytes: 8 << 20,
        ..Options::default()
    })
    .unwrap();
    let f = s.open().unwrap();
    assert_eq!(f.param(param::ARRAY_ROWS).unwrap(), 8);
    assert_eq!(f.param(param::ARRAY_COLS).unwrap(), 8);
    Gemm::new(&f, 9, 8, 8, 4).run_and_check(&f);
}

#[test]
fn a_configuration_no_variant_matches_is_refused_naming_the_field() {
    let mut cfg = config("8x8");
    cfg.cmdproc.queue_depth = 3;
    for b in [Backend::Rtl, Backend::Lockstep] {
        let e = Shim::new(Options {
            backend: b,
            config: cfg.clone(),
            ..Options::default()
        })
        .unwrap_err()
        .to_string();
        assert!(
            e.contains("no RTL variant matches the configuration"),
            "{e}"
        );
        assert!(
            e.contains("`cmdproc.queue_depth` = 3, but the closest variant npu_8x8 has 8"),
            "{e}"
        );
    }
    // The model runs any valid configuration.
    assert!(Shim::new(Options {
        config: cfg,
        ..Options::default()
    })
    .is_ok());
}

#[test]
fn a_lockstep_divergence_fails_the_job_and_every_later_one() {
    require_rtl();
    // npu_4x4_offbyone dispatches one cycle late: the checker must catch it.
    let s = Shim::new(Options {
        backend: Backend::Lockstep,
        rtl_variant: Some("npu_4x4_offbyone".into()),
        mem_bytes: 8 << 20,
        ..Options::default()
    })
    .unwrap();
    let f = s.open().unwrap();
    let g = Gemm::new_at(&f, 8, 4, 4, 5, 0x1000);
    let first = g.submit(&f);
    let queued = g.submit(&f);
    let w = f.wait_job(first, 60 * SEC).unwrap();
    assert_eq!(
        (w.status, w.error_code),
        (status::ERROR, err::LOST),
        "{w:?}"
    );
    let w = f.wait_job(queued, 60 * SEC).unwrap();
    assert_eq!((w.status, w.error_code), (status::ERROR, err::LOST));
    // The device is gone: new work is refused.
    let mut sub = npukit_shim::uapi::Submit {
        cmd_handle: g.cmd.handle,
        cmd_length: g.len,
        ..Default::default()
    };
    assert_eq!(f.submit(&mut sub), Err(Errno::EIO));
    // GET_PARAM still answers.
    assert_eq!(f.param(param::PLATFORM).unwrap(), platform::LOCKSTEP);
}

/// The hardware events a traced GEMM leaves in the shim's trace, sorted
/// (the order of events within one cycle is not specified).
fn traced_events(backend: Backend) -> Vec<String> {
    let s = Shim::new(Options {
        backend,
        config: config("8x8"),
        mem_bytes: 8 << 20,
        trace: true,
        ..Options::default()
    })
    .unwrap();
    let f = s.open().unwrap();
    Gemm::new(&f, 10, 8, 8, 6).run_and_check(&f);
    let log = s.trace_log().unwrap();
    let log = log.lock().unwrap();
    let mut hw: Vec<String> = log
        .iter()
        .filter_map(|(c, e)| match e {
            TraceEvent::Hw(h) => Some(format!("{c:>8} {h:?}")),
            TraceEvent::Shim(_) => None,
        })
        .collect();
    hw.sort();
    hw
}

#[test]
fn traces_hold_the_same_hardware_events_on_every_backend() {
    require_rtl();
    let model = traced_events(Backend::Model);
    assert!(model.iter().any(|e| e.contains("Complete")), "{model:?}");
    assert_eq!(traced_events(Backend::Rtl), model, "rtl");
    assert_eq!(traced_events(Backend::Lockstep), model, "lockstep");
}

#[test]
fn debugfs_status_says_when_the_device_is_lost() {
    require_rtl();
    let s = Shim::new(Options {
        backend: Backend::Lockstep,
        rtl_variant: Some("npu_4x4_offbyone".into()),
        mem_bytes: 8 << 20,
        ..Options::default()
    })
    .unwrap();
    let status = || npukit_shim::vfs::read(&s, "/sys/kernel/debug/accel/0/status").unwrap();
    assert!(status().contains("device lost: no"), "{}", status());
    let f = s.open().unwrap();
    let g = Gemm::new_at(&f, 8, 4, 4, 5, 0x1000);
    let w = f.wait_job(g.submit(&f), 60 * SEC).unwrap();
    assert_eq!(w.error_code, err::LOST);
    assert!(status().contains("device lost: yes"), "{}", status());
}

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
