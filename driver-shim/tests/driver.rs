//! The driver logic through the Rust API: jobs run bit-exact, programs longer
//! than the ring, back-pressure, several contexts, job stats.
#![allow(clippy::unwrap_used)]

mod common;
use common::*;

use npukit_abi::program::Program;
use npukit_shim::uapi::{self, param, status, JobStats};
use npukit_shim::Errno;

#[test]
fn params_describe_the_device() {
    let s = shim();
    let f = s.open().unwrap();
    assert_eq!(
        f.param(param::DEVICE_ID).unwrap(),
        npukit_abi::DEVICE_ID as u64
    );
    assert_eq!(
        f.param(param::ABI_VERSION).unwrap(),
        npukit_abi::abi_version() as u64
    );
    assert_eq!(f.param(param::ARRAY_ROWS).unwrap(), 16);
    assert_eq!(f.param(param::ARRAY_COLS).unwrap(), 16);
    assert_eq!(f.param(param::PLATFORM).unwrap(), uapi::platform::MODEL);
    assert!(f.param(param::MEM_BYTES).unwrap() > 32 << 20);
    assert_eq!(f.param(999), Err(Errno::EINVAL));
}

#[test]
fn gemm_runs_bit_exact_with_stats() {
    let s = shim();
    let f = s.open().unwrap();
    let g = Gemm::new(&f, 8, 16, 16, 1);
    let seq = g.submit(&f);
    assert_eq!(seq, 1);
    let w = f.wait_job(seq, 30 * SEC).unwrap();
    assert_eq!((w.status, w.error_code), (status::OK, 0));
    assert_eq!(g.result(&f), g.expect);
    let mut st = JobStats {
        seq,
        ..JobStats::default()
    };
    f.job_stats(&mut st).unwrap();
    assert_eq!(st.macs, 8 * 16 * 16);
    assert_eq!(st.dma_read_bytes, 8 * 16 + 16 * 16);
    assert_eq!(st.dma_write_bytes, 8 * 16 * 4);
    assert_eq!(st.descs, 5, "4 descriptors and the driver's FENCE");
    assert!(st.cycles > 0 && st.end_cycle == st.start_cycle + st.cycles);
}

#[test]
fn program_longer_than_the_ring_is_fed_as_the_ring_drains() {
    let s = shim_with(|o| o.ring_size = 8);
    let f = s.open().unwrap();
    let g = Gemm::new(&f, 8, 16, 16, 2);
    // 200 NOPs, then the GEMM: 204 descriptors through an 8-entry ring.
    let mut p = Program::default();
    for _ in 0..200 {
        p.nop();
    }
    let gemm = gemm_program(
        g.a.device_addr,
        g.w.device_addr,
        g.out.device_addr,
        8,
        16,
        16,
    );
    for d in gemm.descs() {
        p.push(*d);
    }
    let bytes = p.encode();
    let cmd = f.create_bo(bytes.len() as u64, 0).unwrap();
    f.bo_write(cmd.handle, 0, &bytes).unwrap();
    let seq = f
        .submit_job(cmd.handle, 0, bytes.len() as u64, &g.handles())
        .unwrap();
    let w = f.wait_job(seq, 30 * SEC).unwrap();
    assert_eq!(w.status, status::OK, "{w:?}");
    assert_eq!(g.result(&f), g.expect);
    let mut st = JobStats {
        seq,
        ..JobStats::default()
    };
    f.job_stats(&mut st).unwrap();
    assert_eq!(st.descs, 205);
}

#[test]
fn full_queue_is_ebusy_and_recovers() {
    let s = shim_with(|o| o.max_jobs = 2);
    let f = s.open().unwrap();
    let g = Gemm::new(&f, 8, 16, 16, 3);
    let s1 = g.submit(&f);
    let s2 = g.submit(&f);
    let r = f.submit_job(g.cmd.handle, 0, g.len, &g.handles());
    assert_eq!(r, Err(Errno::EBUSY));
    assert_eq!(f.wait_job(s1, 30 * SEC).unwrap().status, status::OK);
    let s3 = g.submit(&f);
    assert_eq!(s3, 3, "a refused SUBMIT consumes no sequence number");
    assert_eq!(f.wait_job(s2, 30 * SEC).unwrap().status, status::OK);
    assert_eq!(f.wait_job(s3, 30 * SEC).unwrap().status, status::OK);
    assert_eq!(g.result(&f), g.expect);
}

#[test]
fn contexts_interleave_and_each_gets_its_own_result() {
    let s = shim();
    let files: Vec<_> = (0..3).map(|_| s.open().unwrap()).collect();
    let gemms: Vec<_> = files
        .iter()
        .enumerate()
        .map(|(i, f)| Gemm::new(f, 8, 16, 16, 10 + i as u32))
        .collect();
    let seqs: Vec<_> = files.iter().zip(&gemms).map(|(f, g)| g.submit(f)).collect();
    // Wait in reverse order: earlier jobs are driven by the later waits.
    for i in (0..3).rev() {
        let w = files[i].wait_job(seqs[i], 30 * SEC).unwrap();
        assert_eq!(w.status, status::OK);
        assert_eq!(gemms[i].result(&files[i]), gemms[i].expect);
    }
    assert_eq!(s.jobs_accepted(), 3);
}

#[test]
fn wait_with_a_past_timeout_polls_and_eventually_completes() {
    let s = shim();
    let f = s.open().unwrap();
    let g = Gemm::new(&f, 8, 16, 16, 4);
    let seq = g.submit(&f);
    let mut polls = 0;
    loop {
        match f.wait_job(seq, -1) {
            Ok(w) => {
                assert_eq!(w.status, status::OK);
                break;
            }
            Err(e) => assert_eq!(e, Errno::ETIMEDOUT),
        }
        polls += 1;
        assert!(polls < 100_000);
    }
    assert_eq!(g.result(&f), g.expect);
}

#[test]
fn closing_a_file_with_queued_jobs_leaves_others_working() {
    let s = shim();
    let a = s.open().unwrap();
    let b = s.open().unwrap();
    let ga = Gemm::new(&a, 8, 16, 16, 5);
    let gb = Gemm::new(&b, 8, 16, 16, 6);
    ga.submit(&a);
    ga.submit(&a);
    let sb = gb.submit(&b);
    drop(a);
    assert_eq!(b.wait_job(sb, 30 * SEC).unwrap().status, status::OK);
    assert_eq!(gb.result(&b), gb.expect);
}
