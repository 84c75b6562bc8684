//! Trace writers for the model's recorded event stream (`Vec<(u64, Event)>`, the
//! [`npukit_sim::EventSink`] that collects every event with its cycle).
//!
//! * [`perfetto`]: Chrome/Perfetto trace-event JSON — a track per unit, a slice
//!   per descriptor, counters for queue depth, memory requests in flight, token
//!   counters and MAC utilisation.
//! * [`vcd`]: a Value Change Dump (unit busy, opcode, queue levels, memory port,
//!   tokens, interrupts, errors) for GTKWave or Surfer.
//! * [`stats`]: `stats.json` (every counter, the resolved config, the workload,
//!   derived figures) and [`stats::summarize`], the per-unit figures rebuilt from
//!   events for cross-checking against the counters.
//! * [`replay`]: the descriptor slices (issue to completion) of a stream.
//! * [`read`]: readers that check a written trace (JSON structure, VCD parse-back).
//!
//! Every writer is deterministic: same events and config, same bytes.

mod json;
pub mod perfetto;
pub mod read;
pub mod replay;
pub mod stats;
pub mod vcd;

pub use perfetto::write_perfetto;
pub use replay::{slices, Slice};
pub use stats::{summarize, write_stats_json, EventSummary, RunStats};
pub use vcd::write_vcd;
