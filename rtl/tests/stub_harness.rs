//! The harness plumbing on the bring-up stub (`tests/stub/npu_stub.v`: the
//! port list of docs/rtl.md with a scratch register and a cycle counter): the
//! Verilator build, the C++ wrapper, MMIO edges and reads, cycle edges and
//! the VCD trace. Needs Verilator; without it, the test checks the error.

use npukit_abi::regs;
use npukit_rtl::{variant, RtlDevice, RtlError};
use npukit_sim::{Device, NpuConfig, VecMemory};

#[test]
fn stub_mmio_and_cycles() {
    let cfg = NpuConfig::default();
    if !variant::verilator_available() {
        let e = RtlDevice::with_variant("npu_stub", &cfg, Vec::new()).unwrap_err();
        assert_eq!(e, RtlError::NoVerilator);
        assert!(
            e.to_string().contains("apt-get install -y verilator"),
            "{e}"
        );
        return;
    }
    let dir = std::env::temp_dir().join(format!("npukit-stub-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let vcd = dir.join("stub.vcd");
    let mut dev = RtlDevice::with_vcd(&cfg, Some("npu_stub"), Vec::new(), &vcd).unwrap();
    assert_eq!(dev.variant().name, "npu_stub");
    // The variant fixes the shape: 4x4 whatever the caller's config says.
    assert_eq!(dev.config().array.rows, 4);
    assert_eq!(dev.mmio_read(regs::ID), npukit_abi::DEVICE_ID);
    // CLOCK_MHZ comes from the harness's configuration.
    assert_eq!(dev.mmio_read(regs::CLOCK_MHZ), cfg.clock.freq_mhz);
    // An MMIO write edge is not a cycle.
    dev.mmio_write(regs::WATCHDOG, 0xDEAD_BEEF);
    assert_eq!(dev.mmio_read(regs::WATCHDOG), 0xDEAD_BEEF);
    assert_eq!(dev.mmio_read(regs::PERF_CYCLES), 0);
    // Outside the window: ignored and 0.
    dev.mmio_write(0x2000, 1);
    assert_eq!(dev.mmio_read(0x2000), 0);
    let mut mem = VecMemory::new(4096);
    dev.run_until(&mut mem, 1000, true);
    assert_eq!(dev.cycle(), 1000);
    assert_eq!(dev.mmio_read(regs::PERF_CYCLES), 1000);
    assert_eq!(dev.mmio_read(regs::PERF_CYCLES + 4), 0);
    assert!(!dev.irq_pending());
    assert!(dev.sink().is_empty(), "the stub makes no events");
    assert!(dev.violations().is_empty());
    drop(dev);
    let text = std::fs::read_to_string(&vcd).unwrap();
    assert!(text.contains("$var"), "VCD has a header");
    assert!(text.contains("cycles"), "VCD traces internal signals");
    std::fs::remove_dir_all(&dir).ok();
}

#[test]
fn stub_is_never_chosen_for_a_config() {
    // The stub is marked faulty, so a 4x4 config never selects it.
    let mut cfg = NpuConfig::default();
    cfg.array.rows = 4;
    cfg.array.cols = 4;
    cfg.memory.spad_bytes = 16384;
    cfg.memory.acc_bytes = 4096;
    match variant::matching(&cfg) {
        Ok(v) => assert_ne!(v.name, "npu_stub"),
        Err(e) => assert!(!e.to_string().contains("npu_stub is"), "{e}"),
    }
}
