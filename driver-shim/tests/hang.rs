//! Hang: a job scripted to hang is aborted by the watchdog, its WAIT reports
//! aborted, the device is reset, and the jobs of other contexts submitted
//! before and after it complete correctly: nothing lost.
#![allow(clippy::unwrap_used)]

mod common;
use common::*;

use npukit_shim::uapi::{err, param, status};
use npukit_shim::{Fault, Injection};

#[test]
fn hung_job_is_aborted_and_others_complete() {
    let s = shim_with(|o| o.watchdog_cycles = 500_000);
    let a = s.open().unwrap();
    let b = s.open().unwrap();
    let c = s.open().unwrap();
    let ga = Gemm::new(&a, 8, 16, 16, 1);
    let gb = Gemm::new(&b, 8, 16, 16, 2);
    let gc = Gemm::new(&c, 8, 16, 16, 3);
    assert_eq!(b.param(param::WATCHDOG_CYCLES).unwrap(), 500_000);
    // Jobs: 1 = a (before), 2 = b (hangs 20 cycles in), 3 = c and 4 = a (queued
    // behind it), 5 = c (submitted while the device is hung).
    s.inject(Injection {
        job: 2.into(),
        fault: Fault::Hang { after: 20 },
    });
    let before = ga.submit(&a);
    let hung = gb.submit(&b);
    let after_c = gc.submit(&c);
    let after_a = ga.submit(&a);

    // Drive the device into the hang (the wait gives up before the watchdog
    // fires), then submit one more job while the device is hung.
    let mut late = None;
    for _ in 0..1000 {
        match b.wait_job(hung, 0) {
            Err(npukit_shim::Errno::ETIMEDOUT) => {
                if s.cycle() > 1000 {
                    late = Some(gc.submit(&c));
                    break;
                }
            }
            other => panic!("the hung job ended too early: {other:?}"),
        }
    }
    let late = late.expect("the device reached the hang");
    let w = b.wait_job(hung, 30 * SEC).unwrap();
    assert_eq!(w.status, status::ABORTED);
    assert_eq!(w.error_code, err::HANG);
    let mut js = npukit_shim::uapi::JobStats {
        seq: hung,
        ..Default::default()
    };
    b.job_stats(&mut js).unwrap();
    assert!(
        js.cycles >= 500_000,
        "aborted after the watchdog period: {js:?}"
    );

    assert_eq!(a.wait_job(before, 30 * SEC).unwrap().status, status::OK);
    assert_eq!(c.wait_job(after_c, 30 * SEC).unwrap().status, status::OK);
    assert_eq!(a.wait_job(after_a, 30 * SEC).unwrap().status, status::OK);
    assert_eq!(c.wait_job(late, 30 * SEC).unwrap().status, status::OK);
    assert_eq!(ga.result(&a), ga.expect);
    assert_eq!(gc.result(&c), gc.expect);
    // The hung job's context works again once the device is reset.
    gb.run_and_check(&b);
}

#[test]
fn hang_from_the_first_cycle_and_a_short_wait_times_out_first() {
    let s = shim_with(|o| o.watchdog_cycles = 1 << 31);
    let f = s.open().unwrap();
    let g = Gemm::new(&f, 8, 16, 16, 4);
    s.inject(Injection {
        job: 1.into(),
        fault: Fault::Hang { after: 0 },
    });
    let seq = g.submit(&f);
    // A wait whose deadline passes before the watchdog fires: ETIMEDOUT, and
    // the job is still pending.
    assert_eq!(
        f.wait_job(seq, 0).err(),
        Some(npukit_shim::Errno::ETIMEDOUT)
    );
    let w = f.wait_job(seq, 60 * SEC).unwrap();
    assert_eq!((w.status, w.error_code), (status::ABORTED, err::HANG));
    g.run_and_check(&f);
}

#[test]
fn watchdog_zero_is_off_and_a_hung_job_just_times_out() {
    let s = shim_with(|o| o.watchdog_cycles = 0);
    let f = s.open().unwrap();
    let g = Gemm::new(&f, 8, 16, 16, 5);
    s.inject(Injection {
        job: 1.into(),
        fault: Fault::Hang { after: 0 },
    });
    let seq = g.submit(&f);
    assert_eq!(
        f.wait_job(seq, 50_000_000).err(),
        Some(npukit_shim::Errno::ETIMEDOUT)
    );
    assert!(
        s.cycle() > 1_000_000,
        "simulated time went on: {}",
        s.cycle()
    );
    let mut js = npukit_shim::uapi::JobStats {
        seq,
        ..Default::default()
    };
    assert_eq!(f.job_stats(&mut js), Err(npukit_shim::Errno::EBUSY));
}
