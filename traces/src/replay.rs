//! Replaying a recorded event stream: the state every writer needs (unit queues,
//! the descriptor each unit runs, token counters, outstanding memory requests),
//! rebuilt from the events alone, and the descriptor slices (issue to completion)
//! derived from it.
//!
//! The model emits events inside a cycle in a fixed order (memory grant, memory
//! response, completions, issues, token pushes, dispatch, fence), so a completion
//! and the next issue on the same unit can share a cycle. Writers that sample
//! levels (queue depth, outstanding requests) sample them at the end of each
//! cycle, after all of that cycle's events: the same point at which the model's
//! counters are updated.

use std::collections::VecDeque;

use npukit_abi::{Descriptor, ErrorCode, Opcode};
use npukit_sim::{Engine, Event, TokenQueue};

/// Index of an engine in [`Engine::ALL`].
pub(crate) fn eng(e: Engine) -> usize {
    e as usize
}

/// Index of a token counter in [`TokenQueue::ALL`].
pub(crate) fn tok(q: TokenQueue) -> usize {
    q as usize
}

/// One descriptor's execution on a unit: from Issue to Complete (for the command
/// processor's NOP and FENCE, from Dispatch to Complete).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Slice {
    pub unit: Engine,
    /// Ring index.
    pub index: u32,
    pub opcode: Opcode,
    /// The descriptor, from its Dispatch event (`None` if the stream began after it).
    pub desc: Option<Descriptor>,
    /// Cycle of the Dispatch event, if it is in the stream.
    pub dispatch: Option<u64>,
    /// Cycle of the Issue event (Dispatch for the command processor).
    pub start: u64,
    /// Cycle of the Complete event, or of the last event when `finished` is false.
    pub end: u64,
    /// False when the stream ended (or the device halted) before Complete.
    pub finished: bool,
}

impl Slice {
    /// Cycles the unit was busy with it: `end - start`, the model's busy-counter rule
    /// (a unit counts as busy in its issue cycle and not in its completion cycle).
    pub fn cycles(&self) -> u64 {
        self.end - self.start
    }
}

/// A descriptor dispatched and not yet issued.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Queued {
    pub index: u32,
    pub desc: Descriptor,
    pub cycle: u64,
}

/// A descriptor executing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Running {
    pub index: u32,
    pub opcode: Opcode,
    pub desc: Option<Descriptor>,
    pub dispatch: Option<u64>,
    pub start: u64,
}

impl Running {
    fn finish(self, unit: Engine, end: u64, finished: bool) -> Slice {
        Slice {
            unit,
            index: self.index,
            opcode: self.opcode,
            desc: self.desc,
            dispatch: self.dispatch,
            start: self.start,
            end,
            finished,
        }
    }
}

/// The device state visible through events.
#[derive(Debug, Clone, Default)]
pub(crate) struct Replay {
    /// Per engine (in [`Engine::ALL`] order): dispatched, not issued. Always empty for Cmd.
    pub queued: [VecDeque<Queued>; 4],
    /// Per engine: the descriptor executing.
    pub running: [Option<Running>; 4],
    /// Token counters, in [`TokenQueue::ALL`] order.
    pub tokens: [u32; 4],
    /// Memory requests accepted and not yet answered.
    pub outstanding: u64,
    /// The error the device halted with.
    pub error: Option<ErrorCode>,
    /// IRQ_STATUS as last reported.
    pub irq_status: u32,
    /// The last published fence sequence number.
    pub fence_seq: u32,
}

impl Replay {
    /// Applies one event; returns the slice it completes, if any.
    pub fn apply(&mut self, cycle: u64, e: &Event) -> Option<Slice> {
        match *e {
            Event::MemReq { .. } => self.outstanding += 1,
            Event::MemResp { .. } => self.outstanding = self.outstanding.saturating_sub(1),
            Event::Dispatch { unit, index, desc } => {
                if unit == Engine::Cmd {
                    self.running[eng(unit)] = Some(Running {
                        index,
                        opcode: desc.opcode(),
                        desc: Some(desc),
                        dispatch: Some(cycle),
                        start: cycle,
                    });
                } else {
                    self.queued[eng(unit)].push_back(Queued { index, desc, cycle });
                }
            }
            Event::Issue {
                unit,
                index,
                opcode,
            } => {
                let q = &mut self.queued[eng(unit)];
                // Units issue in dispatch order, so this is the queue head; a stream
                // that starts mid-run may lack the Dispatch.
                let found = q
                    .iter()
                    .position(|x| x.index == index)
                    .and_then(|p| q.remove(p));
                self.running[eng(unit)] = Some(Running {
                    index,
                    opcode,
                    desc: found.map(|x| x.desc),
                    dispatch: found.map(|x| x.cycle),
                    start: cycle,
                });
            }
            Event::Complete {
                unit,
                index,
                opcode,
            } => {
                let r = match self.running[eng(unit)].take() {
                    Some(r) if r.index == index => r,
                    other => {
                        // No matching start in the stream: a zero-length slice.
                        self.running[eng(unit)] = other;
                        Running {
                            index,
                            opcode,
                            desc: None,
                            dispatch: None,
                            start: cycle,
                        }
                    }
                };
                return Some(r.finish(unit, cycle, true));
            }
            Event::TokenPush { queue } => self.tokens[tok(queue)] += 1,
            Event::TokenPop { queue } => {
                self.tokens[tok(queue)] = self.tokens[tok(queue)].saturating_sub(1)
            }
            Event::Fence { seq, .. } => self.fence_seq = seq,
            Event::Irq { status } => self.irq_status = status,
            Event::Error { code, .. } => {
                self.error = Some(code);
                // The halt drops every request in flight without a response.
                self.outstanding = 0;
            }
        }
        None
    }

    /// Depth of an engine's queue.
    pub fn queue_depth(&self, e: Engine) -> usize {
        self.queued[eng(e)].len()
    }

    /// The slices still open, closed at `end` and marked unfinished, in engine order.
    pub fn unfinished(&self, end: u64) -> Vec<Slice> {
        Engine::ALL
            .iter()
            .filter_map(|&u| self.running[eng(u)].map(|r| r.finish(u, end.max(r.start), false)))
            .collect()
    }
}

/// Groups a stream by cycle: each item is one cycle's events, in stream order.
pub(crate) fn by_cycle(events: &[(u64, Event)]) -> impl Iterator<Item = (u64, &[(u64, Event)])> {
    let mut rest = events;
    std::iter::from_fn(move || {
        let c = rest.first()?.0;
        let n = rest.iter().take_while(|(t, _)| *t == c).count();
        let (group, tail) = rest.split_at(n);
        rest = tail;
        Some((c, group))
    })
}

/// Every descriptor slice in the stream, ordered by start cycle then engine;
/// descriptors still executing when the stream ends are closed at its last cycle
/// and marked unfinished.
pub fn slices(events: &[(u64, Event)]) -> Vec<Slice> {
    let mut r = Replay::default();
    let mut out: Vec<Slice> = events.iter().filter_map(|(c, e)| r.apply(*c, e)).collect();
    let last = events.last().map_or(0, |(c, _)| *c);
    out.extend(r.unfinished(last));
    out.sort_by_key(|s| (s.start, s.unit, s.end));
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use npukit_abi::desc::{Dma, Op};

    fn load(index: u32) -> Event {
        Event::Dispatch {
            unit: Engine::Load,
            index,
            desc: Descriptor::new(Op::Load(Dma {
                rows: 1,
                row_bytes: 4,
                ..Dma::default()
            })),
        }
    }
    fn issue(index: u32) -> Event {
        Event::Issue {
            unit: Engine::Load,
            index,
            opcode: Opcode::Load,
        }
    }
    fn complete(index: u32) -> Event {
        Event::Complete {
            unit: Engine::Load,
            index,
            opcode: Opcode::Load,
        }
    }

    #[test]
    fn back_to_back_descriptors_share_a_cycle() {
        let ev = vec![
            (1, load(0)),
            (2, load(1)),
            (3, issue(0)),
            (9, complete(0)),
            (9, issue(1)),
            (12, complete(1)),
        ];
        let s = slices(&ev);
        assert_eq!(s.len(), 2);
        assert_eq!(
            (s[0].index, s[0].start, s[0].end, s[0].dispatch),
            (0, 3, 9, Some(1))
        );
        assert_eq!(
            (s[1].index, s[1].start, s[1].end, s[1].dispatch),
            (1, 9, 12, Some(2))
        );
        assert!(s.iter().all(|x| x.finished && x.desc.is_some()));
        let groups: Vec<(u64, usize)> = by_cycle(&ev).map(|(c, g)| (c, g.len())).collect();
        assert_eq!(groups, [(1, 1), (2, 1), (3, 1), (9, 2), (12, 1)]);
    }

    #[test]
    fn a_stream_cut_at_both_ends_still_gives_slices() {
        // Starts after the Dispatch, ends before the Complete.
        let ev = vec![
            (5, issue(7)),
            (8, complete(7)),
            (8, issue(8)),
            (20, load(9)),
        ];
        let s = slices(&ev);
        assert_eq!(s.len(), 2);
        assert_eq!(
            (s[0].start, s[0].end, s[0].desc, s[0].finished),
            (5, 8, None, true)
        );
        assert_eq!((s[1].index, s[1].end, s[1].finished), (8, 20, false));
        let mut r = Replay::default();
        for (c, e) in &ev {
            r.apply(*c, e);
        }
        assert_eq!(r.queue_depth(Engine::Load), 1);
    }

    #[test]
    fn an_error_drops_outstanding_requests() {
        let req = Event::MemReq {
            who: Engine::Load,
            kind: npukit_sim::MemKind::Read,
            addr: 0,
        };
        let mut r = Replay::default();
        r.apply(0, &req);
        r.apply(1, &req);
        assert_eq!(r.outstanding, 2);
        r.apply(
            2,
            &Event::Error {
                code: ErrorCode::AddrRange,
                index: 0,
                addr: 0,
            },
        );
        assert_eq!((r.outstanding, r.error), (0, Some(ErrorCode::AddrRange)));
    }
}
