//! Isolation: a job that addresses another context's BO faults with the
//! address reported, and the other context's data is untouched.
#![allow(clippy::unwrap_used)]

mod common;
use common::*;

use npukit_abi::program::Program;
use npukit_abi::ErrorCode;
use npukit_shim::uapi::status;

#[test]
fn store_into_another_contexts_bo_faults_and_leaves_it_untouched() {
    let s = shim();
    let victim = s.open().unwrap();
    let attacker = s.open().unwrap();
    let secret = victim.create_bo(4096, 0).unwrap();
    let pattern: Vec<u8> = (0..4096u32).map(|i| (i * 7) as u8).collect();
    victim.bo_write(secret.handle, 0, &pattern).unwrap();

    // The attacker knows the victim's device address and writes there.
    let own = attacker.create_bo(4096, 0).unwrap();
    let mut p = Program::default();
    p.load_2d(0, own.device_addr, 1, 64, 64);
    p.store_2d(0, secret.device_addr + 0x40, 1, 64, 64);
    let bytes = p.encode();
    let cmd = attacker.create_bo(4096, 0).unwrap();
    attacker.bo_write(cmd.handle, 0, &bytes).unwrap();
    let seq = attacker
        .submit_job(cmd.handle, 0, bytes.len() as u64, &[own.handle])
        .unwrap();
    let w = attacker.wait_job(seq, 30 * SEC).unwrap();
    assert_eq!(w.status, status::ERROR);
    assert_eq!(w.error_code, ErrorCode::XlatFault as u32);
    assert_eq!(w.fault_addr, secret.device_addr + 0x40);
    assert_eq!(w.fault_desc, 1, "the STORE, second descriptor of the job");

    let mut now = vec![0u8; 4096];
    victim.bo_read(secret.handle, 0, &mut now).unwrap();
    assert_eq!(now, pattern, "victim data untouched");
    // Both contexts keep working.
    Gemm::new(&victim, 8, 16, 16, 1).run_and_check(&victim);
    Gemm::new(&attacker, 8, 16, 16, 2).run_and_check(&attacker);
}

#[test]
fn load_from_another_contexts_bo_faults_and_reads_nothing() {
    let s = shim();
    let victim = s.open().unwrap();
    let attacker = s.open().unwrap();
    let secret = victim.create_bo(4096, 0).unwrap();
    victim.bo_write(secret.handle, 0, &[0x5A; 4096]).unwrap();
    let out = attacker.create_bo(4096, 0).unwrap();
    let mut p = Program::default();
    p.load_2d(0, secret.device_addr, 1, 16, 16);
    p.store_2d(0, out.device_addr, 1, 16, 16);
    let bytes = p.encode();
    let cmd = attacker.create_bo(4096, 0).unwrap();
    attacker.bo_write(cmd.handle, 0, &bytes).unwrap();
    let seq = attacker
        .submit_job(cmd.handle, 0, bytes.len() as u64, &[out.handle])
        .unwrap();
    let w = attacker.wait_job(seq, 30 * SEC).unwrap();
    assert_eq!(
        (w.status, w.error_code),
        (status::ERROR, ErrorCode::XlatFault as u32)
    );
    assert_eq!(w.fault_addr, secret.device_addr);
    assert_eq!(w.fault_desc, 0);
    let mut got = [0u8; 16];
    attacker.bo_read(out.handle, 0, &mut got).unwrap();
    assert_eq!(got, [0; 16], "nothing leaked into the attacker's BO");
}

#[test]
fn device_address_zero_and_freed_bos_fault() {
    let s = shim();
    let f = s.open().unwrap();
    let gone = f.create_bo(4096, 0).unwrap();
    let out = f.create_bo(4096, 0).unwrap();
    let cmds = [f.create_bo(4096, 0).unwrap(), f.create_bo(4096, 0).unwrap()];
    f.gem_close(&npukit_shim::uapi::DrmGemClose {
        handle: gone.handle,
        pad: 0,
    })
    .unwrap();
    for (addr, cmd) in [0u64, gone.device_addr].into_iter().zip(cmds) {
        let mut p = Program::default();
        p.load_2d(0, addr, 1, 16, 16);
        let bytes = p.encode();
        f.bo_write(cmd.handle, 0, &bytes).unwrap();
        let seq = f.submit_job(cmd.handle, 0, 32, &[out.handle]).unwrap();
        let w = f.wait_job(seq, 30 * SEC).unwrap();
        assert_eq!((w.status, w.fault_addr), (status::ERROR, addr));
        assert_eq!(w.error_code, ErrorCode::XlatFault as u32);
    }
}

#[test]
fn readonly_bo_cannot_be_written_by_the_device() {
    let s = shim();
    let f = s.open().unwrap();
    let ro = f.create_bo(4096, npukit_shim::uapi::BO_READONLY).unwrap();
    let mut p = Program::default();
    p.store_2d(0, ro.device_addr, 1, 16, 16);
    let bytes = p.encode();
    let cmd = f.create_bo(4096, 0).unwrap();
    f.bo_write(cmd.handle, 0, &bytes).unwrap();
    let seq = f.submit_job(cmd.handle, 0, 32, &[ro.handle]).unwrap();
    let w = f.wait_job(seq, 30 * SEC).unwrap();
    assert_eq!(w.error_code, ErrorCode::XlatWrite as u32);
    assert_eq!(w.fault_addr, ro.device_addr);
}

#[test]
fn a_mapping_keeps_its_bo_until_munmap_so_stale_pointers_hit_nobody() {
    let s = shim();
    let a = s.open().unwrap();
    let b = s.open().unwrap();
    let bo = a.create_bo(8192, 0).unwrap();
    let p = a.mmap(bo.mmap_offset, 8192).unwrap();
    a.gem_close(&npukit_shim::uapi::DrmGemClose {
        handle: bo.handle,
        pad: 0,
    })
    .unwrap();
    // The memory is still held: a new BO of another context lands elsewhere,
    // and writing through the stale pointer does not reach it.
    let other = b.create_bo(8192, 0).unwrap();
    assert_ne!(other.device_addr, bo.device_addr);
    unsafe { std::ptr::write_bytes(p, 0xEE, 8192) };
    let mut got = vec![0u8; 8192];
    b.bo_read(other.handle, 0, &mut got).unwrap();
    assert!(got.iter().all(|&x| x == 0));
    // A partial munmap keeps the rest held; the last page releases it.
    assert!(s.munmap(p, 4096));
    let small = b.create_bo(4096, 0).unwrap();
    assert_ne!(small.device_addr, bo.device_addr);
    assert!(s.munmap(unsafe { p.add(4096) }, 4096));
    let reuse = b.create_bo(8192, 0).unwrap();
    assert_eq!(
        reuse.device_addr, bo.device_addr,
        "freed after the last munmap"
    );
    let mut z = vec![1u8; 8192];
    b.bo_read(reuse.handle, 0, &mut z).unwrap();
    assert!(z.iter().all(|&x| x == 0), "zeroed for its new owner");
    assert!(!s.munmap(std::ptr::null_mut(), 4096));
}
