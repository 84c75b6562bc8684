//! Readers that check written traces: the Perfetto JSON against the trace-event
//! format (and our track layout), and a VCD parsed back with the `vcd` crate.
//! Tests use them; so can anything that wants to look inside a trace file.

use std::collections::{BTreeMap, BTreeSet};
use std::io;

use ::vcd::{Command, IdCode, Parser, ScopeItem, TimescaleUnit, Value};
use serde_json::Value as Json;

/// Why a trace file is not what it should be.
#[derive(Debug, thiserror::Error)]
pub enum ReadError {
    #[error("not JSON: {0}")]
    Json(#[from] serde_json::Error),
    #[error("not a VCD: {0}")]
    Io(#[from] io::Error),
    #[error("trace event {index}: {problem}")]
    Event { index: usize, problem: String },
    #[error("{0}")]
    Format(String),
}

/// What a trace-event JSON file holds.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct PerfettoInfo {
    pub display_time_unit: Option<String>,
    /// Every `process_name`, by pid.
    pub processes: BTreeMap<u64, String>,
    /// Every `thread_name`, by tid.
    pub threads: BTreeMap<u64, String>,
    /// Number of complete slices (`"ph":"X"`) per thread name (or `tid N` when unnamed).
    pub slices: BTreeMap<String, usize>,
    /// Number of slices per slice name.
    pub slice_names: BTreeMap<String, usize>,
    /// Counter tracks as Perfetto names them: `"<name> <arg>"`.
    pub counters: BTreeSet<String>,
    /// Counter samples, all tracks.
    pub counter_samples: usize,
    /// Instant event names, in file order.
    pub instants: Vec<String>,
    /// Largest `ts + dur`, µs.
    pub end_us: f64,
    pub events: usize,
}

impl PerfettoInfo {
    /// Complete slices on the named tracks.
    pub fn slices_on(&self, tracks: &[&str]) -> usize {
        tracks
            .iter()
            .map(|t| self.slices.get(*t).copied().unwrap_or(0))
            .sum()
    }
}

fn num(e: &Json, k: &str) -> Option<f64> {
    e.get(k).and_then(Json::as_f64)
}

/// Parses and checks trace-event JSON: a `{"traceEvents": [...]}` object whose
/// events each have a phase, a pid, and (except metadata) a non-negative `ts`;
/// complete slices a non-negative `dur`; counters numeric args.
pub fn read_perfetto(json: &[u8]) -> Result<PerfettoInfo, ReadError> {
    let root: Json = serde_json::from_slice(json)?;
    let events = root
        .get("traceEvents")
        .and_then(Json::as_array)
        .ok_or_else(|| ReadError::Format("no traceEvents array".into()))?;
    let mut info = PerfettoInfo {
        display_time_unit: root
            .get("displayTimeUnit")
            .and_then(Json::as_str)
            .map(str::to_owned),
        events: events.len(),
        ..PerfettoInfo::default()
    };
    let mut slices_by_tid: BTreeMap<u64, usize> = BTreeMap::new();
    for (index, e) in events.iter().enumerate() {
        let bad = |problem: &str| ReadError::Event {
            index,
            problem: problem.to_owned(),
        };
        let ph = e
            .get("ph")
            .and_then(Json::as_str)
            .ok_or_else(|| bad("no ph"))?;
        let name = e.get("name").and_then(Json::as_str).unwrap_or("");
        let pid = e
            .get("pid")
            .and_then(Json::as_u64)
            .ok_or_else(|| bad("no pid"))?;
        let tid = e.get("tid").and_then(Json::as_u64);
        if ph == "M" {
            let arg = e
                .pointer("/args/name")
                .and_then(Json::as_str)
                .map(str::to_owned);
            match (name, arg) {
                ("process_name", Some(n)) => {
                    info.processes.insert(pid, n);
                }
                ("thread_name", Some(n)) => {
                    info.threads
                        .insert(tid.ok_or_else(|| bad("thread_name without tid"))?, n);
                }
                ("process_name" | "thread_name", None) => return Err(bad("no args.name")),
                _ => {}
            }
            continue;
        }
        let ts = num(e, "ts").ok_or_else(|| bad("no ts"))?;
        if ts.is_nan() || ts < 0.0 {
            return Err(bad("negative ts"));
        }
        match ph {
            "X" => {
                let dur = num(e, "dur").ok_or_else(|| bad("X without dur"))?;
                if dur.is_nan() || dur < 0.0 {
                    return Err(bad("negative dur"));
                }
                let tid = tid.ok_or_else(|| bad("X without tid"))?;
                *slices_by_tid.entry(tid).or_default() += 1;
                *info.slice_names.entry(name.to_owned()).or_default() += 1;
                info.end_us = info.end_us.max(ts + dur);
            }
            "C" => {
                let args = e
                    .get("args")
                    .and_then(Json::as_object)
                    .ok_or_else(|| bad("counter without args"))?;
                for (k, v) in args {
                    if !v.is_number() {
                        return Err(bad("counter arg not a number"));
                    }
                    info.counters.insert(format!("{name} {k}"));
                }
                info.counter_samples += 1;
                info.end_us = info.end_us.max(ts);
            }
            "i" | "I" => {
                info.instants.push(name.to_owned());
                info.end_us = info.end_us.max(ts);
            }
            "B" | "E" | "b" | "e" | "n" | "s" | "t" | "f" => {}
            other => return Err(bad(&format!("unknown phase {other:?}"))),
        }
    }
    for (tid, n) in slices_by_tid {
        let track = info
            .threads
            .get(&tid)
            .cloned()
            .unwrap_or_else(|| format!("tid {tid}"));
        *info.slices.entry(track).or_default() += n;
    }
    Ok(info)
}

/// A VCD parsed back.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct VcdInfo {
    pub timescale: Option<(u32, TimescaleUnit)>,
    /// Every variable, by dotted path (`npu.load.busy`): its width.
    pub widths: BTreeMap<String, u32>,
    /// Every variable's value changes as (time, value), the dump at time 0
    /// included; x and z read as 0.
    pub changes: BTreeMap<String, Vec<(u64, u64)>>,
    /// Timestamps in file order.
    pub times: Vec<u64>,
}

impl VcdInfo {
    /// A variable's value at `time` (its last change at or before it).
    pub fn value_at(&self, path: &str, time: u64) -> Option<u64> {
        let ch = self.changes.get(path)?;
        ch.iter()
            .take_while(|(t, _)| *t <= time)
            .last()
            .map(|c| c.1)
    }

    /// Times at which a variable changed to `value`.
    pub fn times_of(&self, path: &str, value: u64) -> Vec<u64> {
        self.changes.get(path).map_or_else(Vec::new, |ch| {
            ch.iter().filter(|c| c.1 == value).map(|c| c.0).collect()
        })
    }
}

fn collect(
    items: &[ScopeItem],
    prefix: &str,
    ids: &mut BTreeMap<IdCode, Vec<String>>,
    info: &mut VcdInfo,
) {
    for item in items {
        match item {
            ScopeItem::Scope(s) => {
                collect(&s.items, &format!("{prefix}{}.", s.identifier), ids, info)
            }
            ScopeItem::Var(v) => {
                let path = format!("{prefix}{}", v.reference);
                info.widths.insert(path.clone(), v.size);
                info.changes.insert(path.clone(), Vec::new());
                ids.entry(v.code).or_default().push(path);
            }
            _ => {}
        }
    }
}

fn bits(v: impl Iterator<Item = Value>) -> u64 {
    v.fold(0, |a, b| a << 1 | u64::from(b == Value::V1))
}

/// Parses a VCD with the `vcd` crate and collects every value change; fails on
/// a syntax error, a change to an undeclared variable, a vector of the wrong
/// width, or time going backwards.
pub fn read_vcd(text: &[u8]) -> Result<VcdInfo, ReadError> {
    let mut p = Parser::new(text);
    let header = p.parse_header()?;
    let mut info = VcdInfo {
        timescale: header.timescale,
        ..VcdInfo::default()
    };
    let mut ids = BTreeMap::new();
    collect(&header.items, "", &mut ids, &mut info);
    let mut now = 0u64;
    let change = |info: &mut VcdInfo, id: IdCode, width: Option<usize>, v: u64, now| {
        let paths = ids
            .get(&id)
            .ok_or_else(|| ReadError::Format(format!("change to undeclared id {id}")))?;
        for path in paths {
            if let Some(w) = width {
                if info.widths[path] as usize != w {
                    return Err(ReadError::Format(format!(
                        "{path}: {w} bits written to a {}-bit variable",
                        info.widths[path]
                    )));
                }
            }
            if let Some(ch) = info.changes.get_mut(path) {
                ch.push((now, v));
            }
        }
        Ok(())
    };
    for cmd in p {
        match cmd? {
            Command::Timestamp(t) => {
                if t < now {
                    return Err(ReadError::Format(format!(
                        "time goes back from {now} to {t}"
                    )));
                }
                now = t;
                info.times.push(t);
            }
            Command::ChangeScalar(id, v) => {
                change(&mut info, id, None, u64::from(v == Value::V1), now)?
            }
            Command::ChangeVector(id, v) => {
                change(&mut info, id, Some(v.len()), bits(v.iter()), now)?
            }
            _ => {}
        }
    }
    Ok(info)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rejects_what_is_not_a_trace() {
        assert!(matches!(read_perfetto(b"{"), Err(ReadError::Json(_))));
        assert!(matches!(read_perfetto(b"{}"), Err(ReadError::Format(_))));
        let no_ts = br#"{"traceEvents":[{"name":"x","ph":"X","pid":1,"tid":1,"dur":1}]}"#;
        assert!(matches!(
            read_perfetto(no_ts),
            Err(ReadError::Event { index: 0, .. })
        ));
        let neg = br#"{"traceEvents":[{"name":"x","ph":"X","pid":1,"tid":1,"ts":0,"dur":-1}]}"#;
        assert!(read_perfetto(neg).is_err());
        assert!(read_vcd(b"$var wire 1 ! a $end garbage").is_err());
    }

    #[test]
    fn vcd_width_and_time_checks() {
        let head =
            "$scope module m $end\n$var wire 2 ! a $end\n$upscope $end\n$enddefinitions $end\n";
        let ok = format!("{head}#0\nb01 !\n#3\nb10 !\n");
        let v = read_vcd(ok.as_bytes()).unwrap();
        assert_eq!(v.changes["m.a"], [(0, 1), (3, 2)]);
        assert_eq!(v.value_at("m.a", 2), Some(1));
        let wide = format!("{head}#0\nb011 !\n");
        assert!(read_vcd(wide.as_bytes()).is_err());
        let back = format!("{head}#5\nb01 !\n#3\nb10 !\n");
        assert!(read_vcd(back.as_bytes()).is_err());
    }
}
