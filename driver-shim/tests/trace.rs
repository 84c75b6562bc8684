//! Every ioctl is a trace event on the hardware's timeline: the SUBMIT, the
//! ring pushes it became, the descriptors executing, the interrupt and the
//! job's end, in cycle order; and the combined Perfetto file loads.
#![allow(clippy::unwrap_used)]

mod common;
use common::*;

use npukit_shim::trace::{split, ShimEvent};
use npukit_sim::Event;

#[test]
fn submit_descriptors_irq_and_wait_share_one_timeline() {
    let s = shim_with(|o| o.trace = true);
    let f = s.open().unwrap();
    let g = Gemm::new(&f, 8, 16, 16, 1);
    g.run_and_check(&f);
    let log = s.trace_log().unwrap();
    let log = log.lock().unwrap().clone();
    let (hw, sw) = split(&log);

    let find = |pred: &dyn Fn(&ShimEvent) -> bool| {
        sw.iter().find(|(_, e)| pred(e)).map(|(c, _)| *c).unwrap()
    };
    let submit = find(&|e| {
        matches!(
            e,
            ShimEvent::Ioctl {
                name: "SUBMIT",
                seq: 1,
                errno: 0,
                ..
            }
        )
    });
    let push = find(&|e| {
        matches!(
            e,
            ShimEvent::RingPush {
                job: 1,
                first: 0,
                count: 5,
                ..
            }
        )
    });
    let irq = find(&|e| matches!(e, ShimEvent::Irq { .. }));
    let end = find(&|e| {
        matches!(
            e,
            ShimEvent::JobEnd {
                seq: 1,
                status: 0,
                ..
            }
        )
    });
    let wait = find(&|e| {
        matches!(
            e,
            ShimEvent::Ioctl {
                name: "WAIT",
                seq: 1,
                ..
            }
        )
    });
    assert!(sw.iter().any(|(_, e)| matches!(
        e,
        ShimEvent::Ioctl {
            name: "BO_CREATE",
            ..
        }
    )));
    assert!(hw.len() > 20, "hardware events recorded: {}", hw.len());
    let first_hw = hw.first().unwrap().0;
    let last_hw = hw.last().unwrap().0;
    assert!(
        submit <= push && push <= first_hw,
        "{submit} {push} {first_hw}"
    );
    assert!(
        last_hw <= irq && irq <= end && end <= wait,
        "{last_hw} {irq} {end} {wait}"
    );
    // The log is in time order.
    assert!(log.windows(2).all(|w| w[0].0 <= w[1].0));
    // The interrupt the job ended with is on the hardware side too.
    assert!(
        hw.iter().any(|(_, e)| matches!(e, Event::Irq { .. })),
        "{:?}",
        &hw[hw.len() - 3..]
    );

    let path = std::path::PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("shim-trace.json");
    s.write_trace(&path).unwrap();
    let info = npukit_traces::read::read_perfetto(&std::fs::read(&path).unwrap()).unwrap();
    assert_eq!(info.processes.get(&2).map(String::as_str), Some("driver"));
    assert!(
        info.slices_on(&["load", "compute", "store"]) >= 4,
        "{info:?}"
    );
    assert!(info.slice_names.contains_key("SUBMIT"));
    assert!(info.slice_names.contains_key("job 1 (seq 1)"));
    assert!(info
        .instants
        .iter()
        .any(|i| i.starts_with("ring push job 1")));
}

#[test]
fn tracing_off_records_nothing() {
    let s = shim();
    assert!(s.trace_log().is_none());
    assert!(s
        .write_trace(std::path::Path::new("/nonexistent/x.json"))
        .is_err());
}
