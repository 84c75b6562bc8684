//! Observable events, stamped with their cycle. The model emits every one of them
//! through an [`EventSink`]; traces and the lockstep checker consume them. With the
//! default [`NullSink`] no event is even built (`EventSink::ENABLED` is a constant),
//! so an unobserved model pays nothing.

use npukit_abi::desc::deps;
use npukit_abi::{Descriptor, ErrorCode, Opcode, Unit};

/// Who uses the memory port or executes a descriptor.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Engine {
    /// The command processor: descriptor fetch, NOP, FENCE.
    Cmd,
    Load,
    Compute,
    Store,
}

impl Engine {
    pub const ALL: [Engine; 4] = [Engine::Cmd, Engine::Load, Engine::Compute, Engine::Store];
    pub const fn name(self) -> &'static str {
        match self {
            Engine::Cmd => "cmd",
            Engine::Load => "load",
            Engine::Compute => "compute",
            Engine::Store => "store",
        }
    }
}

impl Engine {
    /// The execution unit behind this engine (none for the command processor).
    pub const fn unit(self) -> Option<Unit> {
        match self {
            Engine::Load => Some(Unit::Load),
            Engine::Compute => Some(Unit::Compute),
            Engine::Store => Some(Unit::Store),
            Engine::Cmd => None,
        }
    }
}

impl From<npukit_abi::Unit> for Engine {
    fn from(u: npukit_abi::Unit) -> Self {
        match u {
            npukit_abi::Unit::Load => Engine::Load,
            npukit_abi::Unit::Compute => Engine::Compute,
            npukit_abi::Unit::Store => Engine::Store,
        }
    }
}

/// What a memory-port request is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum MemKind {
    /// Descriptor fetch (read).
    Fetch,
    /// Translation-table entry (read).
    Pte,
    /// LOAD data (read).
    Read,
    /// STORE data (write).
    Write,
    /// FENCE sequence-number writeback (write).
    FenceWrite,
}

impl MemKind {
    pub const fn is_write(self) -> bool {
        matches!(self, MemKind::Write | MemKind::FenceWrite)
    }
}

/// The four dependency-token counters.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum TokenQueue {
    LoadToCompute,
    ComputeToLoad,
    ComputeToStore,
    StoreToCompute,
}

impl TokenQueue {
    pub const ALL: [TokenQueue; 4] = [
        TokenQueue::LoadToCompute,
        TokenQueue::ComputeToLoad,
        TokenQueue::ComputeToStore,
        TokenQueue::StoreToCompute,
    ];
    pub const fn name(self) -> &'static str {
        match self {
            TokenQueue::LoadToCompute => "load->compute",
            TokenQueue::ComputeToLoad => "compute->load",
            TokenQueue::ComputeToStore => "compute->store",
            TokenQueue::StoreToCompute => "store->compute",
        }
    }
}

/// The token counters a descriptor on `unit` waits on.
pub fn waits(unit: Unit, d: u8) -> impl Iterator<Item = TokenQueue> {
    let (prev, next) = match unit {
        Unit::Load => (None, Some(TokenQueue::ComputeToLoad)),
        Unit::Compute => (
            Some(TokenQueue::LoadToCompute),
            Some(TokenQueue::StoreToCompute),
        ),
        Unit::Store => (Some(TokenQueue::ComputeToStore), None),
    };
    let p = if d & deps::WAIT_PREV != 0 { prev } else { None };
    let n = if d & deps::WAIT_NEXT != 0 { next } else { None };
    p.into_iter().chain(n)
}

/// The token counters a descriptor on `unit` signals on completion.
pub fn signals(unit: Unit, d: u8) -> impl Iterator<Item = TokenQueue> {
    let (prev, next) = match unit {
        Unit::Load => (None, Some(TokenQueue::LoadToCompute)),
        Unit::Compute => (
            Some(TokenQueue::ComputeToLoad),
            Some(TokenQueue::ComputeToStore),
        ),
        Unit::Store => (Some(TokenQueue::StoreToCompute), None),
    };
    let p = if d & deps::SIGNAL_PREV != 0 {
        prev
    } else {
        None
    };
    let n = if d & deps::SIGNAL_NEXT != 0 {
        next
    } else {
        None
    };
    p.into_iter().chain(n)
}

/// One observable event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    /// A request accepted on the memory port (physical, beat-aligned address).
    MemReq {
        who: Engine,
        kind: MemKind,
        addr: u64,
    },
    /// Its response (read data or write acknowledge) delivered.
    MemResp {
        who: Engine,
        kind: MemKind,
        addr: u64,
    },
    /// The command processor decoded descriptor `index` and queued it for `unit`
    /// (or, for NOP and FENCE, started it itself).
    Dispatch {
        unit: Engine,
        index: u32,
        desc: Descriptor,
    },
    /// A unit started descriptor `index` (its wait tokens were taken).
    Issue {
        unit: Engine,
        index: u32,
        opcode: Opcode,
    },
    /// A unit finished descriptor `index`.
    Complete {
        unit: Engine,
        index: u32,
        opcode: Opcode,
    },
    /// A token was added to a counter (visible from the next cycle).
    TokenPush { queue: TokenQueue },
    /// A token was taken from a counter.
    TokenPop { queue: TokenQueue },
    /// A FENCE completed and published `seq`.
    Fence { index: u32, seq: u32 },
    /// Interrupt causes were raised; `status` is IRQ_STATUS afterwards.
    Irq { status: u32 },
    /// The device halted.
    Error {
        code: ErrorCode,
        index: u32,
        addr: u64,
    },
}

/// Receives events. Implement it to observe the device.
pub trait EventSink {
    /// `false` lets the device skip building events altogether.
    const ENABLED: bool = true;
    fn event(&mut self, cycle: u64, event: Event);
}

/// Discards everything, at no cost.
#[derive(Debug, Clone, Copy, Default)]
pub struct NullSink;

impl EventSink for NullSink {
    const ENABLED: bool = false;
    #[inline(always)]
    fn event(&mut self, _: u64, _: Event) {}
}

/// Collects events in order.
impl EventSink for Vec<(u64, Event)> {
    fn event(&mut self, cycle: u64, event: Event) {
        self.push((cycle, event));
    }
}
