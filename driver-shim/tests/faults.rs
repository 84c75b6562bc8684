//! Deterministic fault injection: each scripted fault has its documented
//! effect on the uapi, the job after it runs normally, and the same script
//! gives the same outcome every time.
#![allow(clippy::unwrap_used)]

mod common;
use common::*;

use npukit_abi::ErrorCode;
use npukit_shim::uapi::{err, status, JobStats, Wait};
use npukit_shim::{Fault, File, Injection, Shim};

fn wait(f: &File, seq: u64) -> Wait {
    f.wait_job(seq, 60 * SEC).unwrap()
}

#[test]
fn xlat_fault_at_an_address_faults_there_and_only_for_that_job() {
    let s = shim();
    let f = s.open().unwrap();
    let g = Gemm::new(&f, 8, 16, 16, 1);
    // Take away W's page for job 1.
    let addr = g.w.device_addr + 0x10;
    s.inject(Injection {
        job: 1.into(),
        fault: Fault::Xlat { addr },
    });
    let w = wait(&f, g.submit(&f));
    assert_eq!(
        (w.status, w.error_code),
        (status::ERROR, ErrorCode::XlatFault as u32)
    );
    assert_eq!(
        w.fault_addr, g.w.device_addr,
        "the first byte of W the LOAD touched"
    );
    assert_eq!(w.fault_desc, 1, "the second LOAD");
    // Job 2 has its translation back.
    g.run_and_check(&f);
}

#[test]
fn data_error_corrupts_the_byte_and_fails_the_job() {
    let s = shim();
    let f = s.open().unwrap();
    let g = Gemm::new(&f, 8, 16, 16, 2);
    let addr = g.out.device_addr + 5;
    s.inject(Injection {
        job: 1.into(),
        fault: Fault::Data { addr },
    });
    let w = wait(&f, g.submit(&f));
    assert_eq!(
        (w.status, w.error_code, w.fault_addr),
        (status::ERROR, err::DATA, addr)
    );
    let got = g.result(&f);
    let mut want = g.expect.clone();
    want[1] ^= 1 << 8; // byte 5 = byte 1 of element 1, bit 0
    assert_eq!(got, want, "exactly one bit flipped");
    g.run_and_check(&f);
}

#[test]
fn device_reset_during_a_job_aborts_it_and_the_next_job_runs() {
    let s = shim();
    let a = s.open().unwrap();
    let b = s.open().unwrap();
    let ga = Gemm::new(&a, 8, 16, 16, 3);
    let gb = Gemm::new(&b, 8, 16, 16, 4);
    s.inject(Injection {
        job: 1.into(),
        fault: Fault::Reset { after: 30 },
    });
    let sa = ga.submit(&a);
    let sb = gb.submit(&b);
    let w = wait(&a, sa);
    assert_eq!((w.status, w.error_code), (status::ABORTED, err::RESET));
    let mut js = JobStats {
        seq: sa,
        ..JobStats::default()
    };
    a.job_stats(&mut js).unwrap();
    assert!(js.cycles >= 30 && js.cycles < 1000, "{js:?}");
    assert_eq!(wait(&b, sb).status, status::OK);
    assert_eq!(gb.result(&b), gb.expect);
    ga.run_and_check(&a);
}

#[test]
fn hang_late_in_a_job_is_caught_by_the_watchdog() {
    let s = shim_with(|o| o.watchdog_cycles = 10_000);
    let f = s.open().unwrap();
    let g = Gemm::new(&f, 8, 16, 16, 5);
    s.inject(Injection {
        job: 2.into(),
        fault: Fault::Hang { after: 100 },
    });
    g.run_and_check(&f);
    let seq = g.submit(&f);
    let w = wait(&f, seq);
    assert_eq!((w.status, w.error_code), (status::ABORTED, err::HANG));
    let mut js = JobStats {
        seq,
        ..JobStats::default()
    };
    f.job_stats(&mut js).unwrap();
    assert!(
        (10_100..10_100 + 64 * 1024).contains(&js.cycles),
        "hang at 100 + watchdog 10000: {js:?}"
    );
    g.run_and_check(&f);
}

/// Runs a script of jobs and returns every WAIT outcome with its stats.
fn outcome(script: &[Injection]) -> Vec<(u32, u32, u64, u64)> {
    let s = Shim::new(npukit_shim::Options {
        watchdog_cycles: 20_000,
        faults: script.to_vec(),
        ..Default::default()
    })
    .unwrap();
    let f = s.open().unwrap();
    let g = Gemm::new(&f, 8, 16, 16, 6);
    (0..5)
        .map(|_| {
            let seq = g.submit(&f);
            let w = wait(&f, seq);
            let mut js = JobStats {
                seq,
                ..JobStats::default()
            };
            f.job_stats(&mut js).unwrap();
            (w.status, w.error_code, w.fault_addr, js.cycles)
        })
        .collect()
}

#[test]
fn the_same_script_gives_the_same_outcome() {
    let script = npukit_shim::fault::parse("2:hang+40; 3:reset+25; 4:xlat@0x0").unwrap();
    let a = outcome(&script);
    let b = outcome(&script);
    assert_eq!(a, b);
    let st: Vec<_> = a.iter().map(|o| (o.0, o.1)).collect();
    assert_eq!(
        st,
        vec![
            (status::OK, 0),
            (status::ABORTED, err::HANG),
            (status::ABORTED, err::RESET),
            (status::OK, 0), // page 0 is never mapped: unmapping it changes nothing
            (status::OK, 0),
        ]
    );
}
