//! DRAM timing: latency, bandwidth and the outstanding-request limit of the one
//! device-memory port. This is the single piece of timing code shared by the model
//! and the RTL harness, so both see exactly the same memory.
//!
//! Rules (docs/timing.md, "Memory port"):
//! * At most one request (one beat of `dma.beat_bytes`) is accepted per cycle.
//! * A request is accepted in cycle `t` only if fewer than `max_outstanding`
//!   requests are in flight after the responses due at `t` are delivered, and the
//!   bandwidth credit covers one beat.
//! * Credit: a bucket that starts full at `beat + bytes_per_cycle - 1` bytes, gains
//!   `bytes_per_cycle` each cycle up to that cap, and loses `beat` bytes per accepted
//!   request. While requests are continuous the cap never binds, so the long-run
//!   rate is exactly `bytes_per_cycle`.
//! * The response to a request accepted in cycle `t` is delivered in cycle
//!   `t + latency`, in order.
//!
//! Memory contents are not kept here: the caller reads or writes memory when a
//! request is accepted, and carries any payload with the request.

use std::collections::VecDeque;

use serde::{Deserialize, Serialize};

use crate::config::ConfigError;

/// Device-memory timing parameters.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DramParams {
    /// Cycles from a request's acceptance to its response, >= 1. Default 64.
    pub latency: u32,
    /// Sustained bandwidth in bytes per cycle, >= 1. Default 16.
    pub bytes_per_cycle: u32,
    /// Requests in flight at most, >= 1. Default 16.
    pub max_outstanding: u32,
    /// Device memory size in bytes: a multiple of 4096. Default 256 MiB.
    pub size_bytes: u64,
}

impl Default for DramParams {
    fn default() -> Self {
        DramParams {
            latency: 64,
            bytes_per_cycle: 16,
            max_outstanding: 16,
            size_bytes: 256 << 20,
        }
    }
}

impl DramParams {
    pub fn validate(&self) -> Result<(), ConfigError> {
        let bad = |field, value: u64, problem: &str| ConfigError::Field {
            field,
            value: value.to_string(),
            problem: problem.into(),
        };
        if self.latency == 0 || self.latency > 1_000_000 {
            return Err(bad(
                "dram.latency",
                self.latency as u64,
                "must be 1 to 1000000 cycles",
            ));
        }
        if self.bytes_per_cycle == 0 || self.bytes_per_cycle > 4096 {
            return Err(bad(
                "dram.bytes_per_cycle",
                self.bytes_per_cycle as u64,
                "must be 1 to 4096",
            ));
        }
        if self.max_outstanding == 0 || self.max_outstanding > 1024 {
            return Err(bad(
                "dram.max_outstanding",
                self.max_outstanding as u64,
                "must be 1 to 1024",
            ));
        }
        if self.size_bytes == 0
            || !self.size_bytes.is_multiple_of(4096)
            || self.size_bytes > 1 << 40
        {
            return Err(bad(
                "dram.size_bytes",
                self.size_bytes,
                "must be a nonzero multiple of 4096, at most 1 TiB",
            ));
        }
        Ok(())
    }
}

/// The timing state of the memory port, with a payload `T` carried per request.
#[derive(Debug, Clone, PartialEq)]
pub struct DramTiming<T> {
    latency: u64,
    rate: u64,
    beat: u64,
    cap: u64,
    max_outstanding: usize,
    /// Credit as of the end of cycle `credit_cycle`.
    credit: u64,
    credit_cycle: u64,
    in_flight: VecDeque<(u64, T)>,
}

impl<T> DramTiming<T> {
    pub fn new(p: &DramParams, beat_bytes: u32) -> Self {
        let beat = beat_bytes as u64;
        let rate = p.bytes_per_cycle as u64;
        let cap = beat + rate - 1;
        DramTiming {
            latency: p.latency as u64,
            rate,
            beat,
            cap,
            max_outstanding: p.max_outstanding as usize,
            credit: cap,
            credit_cycle: 0,
            in_flight: VecDeque::new(),
        }
    }

    fn credit_at(&self, now: u64) -> u64 {
        let gained = (now.saturating_sub(self.credit_cycle)).saturating_mul(self.rate);
        self.credit.saturating_add(gained).min(self.cap)
    }

    /// Removes and returns the response due in cycle `now`, if any. Call once per
    /// simulated cycle before [`DramTiming::can_accept`].
    pub fn deliver(&mut self, now: u64) -> Option<T> {
        match self.in_flight.front() {
            Some(&(due, _)) if due <= now => {
                debug_assert_eq!(due, now, "a response was not delivered in its cycle");
                self.in_flight.pop_front().map(|(_, t)| t)
            }
            _ => None,
        }
    }

    /// The response due in cycle `now`, if any, without delivering it.
    pub fn peek_due(&self, now: u64) -> Option<&T> {
        match self.in_flight.front() {
            Some((due, t)) if *due <= now => Some(t),
            _ => None,
        }
    }

    /// Whether a request offered in cycle `now` would be accepted.
    pub fn can_accept(&self, now: u64) -> bool {
        self.in_flight.len() < self.max_outstanding && self.credit_at(now) >= self.beat
    }

    /// The first cycle from `now` on in which a request would be accepted if
    /// nothing is delivered or accepted before it; `None` while the
    /// outstanding limit is reached (only a delivery frees a slot).
    pub fn next_accept(&self, now: u64) -> Option<u64> {
        if self.in_flight.len() >= self.max_outstanding {
            return None;
        }
        let have = self.credit_at(now);
        if have >= self.beat {
            return Some(now);
        }
        // credit_at(t) grows by `rate` per cycle from credit_cycle on.
        let need = self.beat - self.credit;
        Some(self.credit_cycle + need.div_ceil(self.rate))
    }

    /// Accepts a request in cycle `now`; returns the cycle its response is due.
    /// The caller must have checked [`DramTiming::can_accept`].
    pub fn accept(&mut self, now: u64, payload: T) -> u64 {
        debug_assert!(self.can_accept(now));
        self.credit = self.credit_at(now) - self.beat;
        // Credit is refilled at the start of the next cycle.
        self.credit_cycle = now;
        let due = now + self.latency;
        self.in_flight.push_back((due, payload));
        due
    }

    /// Requests accepted and not yet delivered.
    pub fn outstanding(&self) -> usize {
        self.in_flight.len()
    }

    /// The cycle the next response is due.
    pub fn next_due(&self) -> Option<u64> {
        self.in_flight.front().map(|&(d, _)| d)
    }

    /// Drops everything in flight (device reset); credit is kept.
    pub fn clear(&mut self) {
        self.in_flight.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn timing(latency: u32, bpc: u32, max: u32) -> DramTiming<u64> {
        let p = DramParams {
            latency,
            bytes_per_cycle: bpc,
            max_outstanding: max,
            size_bytes: 4096,
        };
        DramTiming::new(&p, 32)
    }

    /// Offers one request every cycle for `cycles` cycles; returns accept cycles.
    fn saturate(d: &mut DramTiming<u64>, cycles: u64) -> Vec<u64> {
        let mut acc = vec![];
        for t in 0..cycles {
            d.deliver(t);
            if d.can_accept(t) {
                d.accept(t, t);
                acc.push(t);
            }
        }
        acc
    }

    /// `next_accept` names exactly the first cycle `can_accept` holds.
    #[test]
    fn next_accept_is_the_first_acceptance() {
        for (bpc, max) in [(1, 4), (5, 2), (12, 3), (16, 16), (32, 1), (100, 2)] {
            let mut d = timing(7, bpc, max);
            for t in 0..400u64 {
                d.deliver(t);
                let want = (t..t + 200).find(|&u| d.can_accept(u));
                let full = d.outstanding() >= max as usize;
                assert_eq!(
                    d.next_accept(t),
                    if full { None } else { want },
                    "bpc {bpc} t {t}"
                );
                if d.can_accept(t) && t % 3 != 1 {
                    d.accept(t, t);
                }
            }
        }
    }

    #[test]
    fn full_rate_is_one_beat_per_cycle() {
        let mut d = timing(10, 32, 64);
        assert_eq!(saturate(&mut d, 20), (0..20).collect::<Vec<_>>());
    }

    #[test]
    fn fractional_bandwidth_is_exact_in_the_long_run() {
        // 12 bytes/cycle with 32-byte beats: 3 beats per 8 cycles after the burst.
        let mut d = timing(1, 12, 64);
        let acc = saturate(&mut d, 8000);
        let bytes = acc.len() as u64 * 32;
        // Initial credit is one beat + 11 bytes; the rest is earned at 12/cycle.
        assert_eq!(bytes, ((43 + 12 * 7999) / 32) * 32);
    }

    #[test]
    fn latency_and_order() {
        let mut d = timing(5, 32, 64);
        assert_eq!(d.accept(0, 100), 5);
        assert_eq!(d.accept(1, 101), 6);
        for t in 0..5 {
            assert_eq!(d.deliver(t), None);
        }
        assert_eq!(d.deliver(5), Some(100));
        assert_eq!(d.deliver(6), Some(101));
    }

    #[test]
    fn outstanding_limit_and_same_cycle_release() {
        // Two outstanding, latency 4: accepts at 0,1 then 4,5 (a response at 4 frees
        // its slot for a request in the same cycle), 8,9...
        let mut d = timing(4, 32, 2);
        assert_eq!(saturate(&mut d, 10), vec![0, 1, 4, 5, 8, 9]);
    }
}
