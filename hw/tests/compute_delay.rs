//! The skew / deskew line ([`Delay`], a `#[hdl_gen]` block) in rust-hdl's
//! simulator: its output is its input `n` enabled edges earlier, and an edge
//! with `en` low changes nothing.

mod common;
use common::Rng;

use std::collections::VecDeque;

use npukit_hw::compute::Delay;
use rust_hdl::prelude::*;

fn settle(l: &mut Delay<32>) {
    for _ in 0..100 {
        l.update_all();
        if !l.has_changed() {
            return;
        }
    }
    panic!("the line did not settle");
}

#[test]
fn output_is_the_input_n_enabled_edges_ago() {
    let mut rng = Rng(0xDE1A_0001);
    for n in [1usize, 2, 3, 7, 16] {
        let mut l = Delay::<32>::new(n);
        assert_eq!(l.stages(), n);
        l.connect_all();
        settle(&mut l);
        // The stages start at zero.
        let mut want: VecDeque<u32> = std::iter::repeat_n(0, n).collect();
        for step in 0..300 {
            let en = !rng.chance(25);
            let d = rng.next() as u32;
            l.en.next = en;
            l.d.next = (d as u64).into();
            settle(&mut l);
            assert_eq!(
                l.q.val().to_u32(),
                want[0],
                "n {n} step {step}: before the edge"
            );
            l.clock.next = true.into();
            settle(&mut l);
            l.clock.next = false.into();
            settle(&mut l);
            if en {
                want.pop_front();
                want.push_back(d);
            }
            assert_eq!(l.q.val().to_u32(), want[0], "n {n} step {step}");
        }
    }
}
