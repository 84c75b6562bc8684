//! Text assembly format for command streams: [`assemble`] and [`disassemble`].
//!
//! One descriptor per line: the mnemonic, then `field=value` pairs and bare flag
//! words, in any order, separated by whitespace:
//!
//! ```text
//! .equ WEIGHTS 0x10_0000
//! LOAD local=0x0 dram=WEIGHTS+0x40 rows=4 row_bytes=16 dram_stride=64 signal_next
//! MATMUL a=0x0 w=0x100 out=0x0 m=4 k=16 n=16 accumulate wait_prev   ; a comment
//! FENCE seq=1 irq writeback=0x2000                                  # another
//! ```
//!
//! * Mnemonics, field names and flag words are case-insensitive; constant names
//!   are case-sensitive.
//! * Field names are those of the Rust structs in [`crate::desc`]: `dram` is the
//!   whole 64-bit address of LOAD/STORE, `writeback` the FENCE writeback address.
//!   A value has no spaces in it.
//! * Opcode flags: `acc` (LOAD, STORE), `accumulate` (MATMUL, ADD), `relu` (ACT),
//!   `irq` (FENCE). ACT's BIAS and PER_CHANNEL and FENCE's WRITEBACK flags are
//!   not written: they are set by giving the `bias` / `qtab` / `writeback` field.
//!   With `qtab` (per-channel requantisation) the table holds every column's
//!   multiplier and shift, so `multiplier` and `shift` are not given. Dependency flags
//!   `wait_prev`, `wait_next`, `signal_prev`, `signal_next` are accepted only
//!   where the opcode's unit may use them (none on NOP and FENCE).
//! * Missing fields: sizes (`rows`, `row_bytes`, `m`, `k`, `n`, `cols`, `len`),
//!   multipliers (`multiplier`, `a_mult`, `b_mult`) and FENCE's `seq` are
//!   required (`multiplier` unless `qtab` is given), because a default of 0 is
//!   never what was meant; `dram_stride` and `local_stride` default to
//!   `row_bytes` (rows packed); `bias`, `qtab` and `writeback` absent mean "none"; everything else (addresses, `shift`, zero
//!   points) defaults to 0. An explicit 0 is always accepted, so programs that
//!   exercise the device's own checks can be written: the assembler checks the
//!   encoding, [`Program::validate`](crate::program::Program::validate) checks
//!   the device limits.
//! * Values: decimal, `0x` hex, `0b` binary, with `_` separators anywhere after
//!   the first digit; a constant name; or a sum of those with `+` and `-` (a
//!   leading `-` negates). The result must fit the field: unsigned fields take
//!   `0..=2^w-1`, signed ones (`multiplier`, `zero_point`, `a_zp`, `b_zp`,
//!   `a_mult`, `b_mult`) take `-2^(w-1)..=2^(w-1)-1`.
//! * `.equ NAME VALUE` defines a constant for the lines after it; `NAME` is
//!   `[A-Za-z_][A-Za-z0-9_]*` and may be defined once.
//! * `#` and `;` start a comment that runs to the end of the line; blank lines
//!   are ignored.
//!
//! [`disassemble`] writes the canonical form: upper-case mnemonic, every field
//! in [`LAYOUTS`](crate::desc::LAYOUTS) order (addresses in hex, sizes and signed
//! values in decimal; `bias`/`qtab`/`writeback` only when present, `multiplier`
//! and `shift` only without `qtab`), then the opcode
//! flag, then the dependency flags in bit order. `assemble(disassemble(p)) == p`
//! for every program whose descriptors decode.

use alloc::collections::BTreeMap;
use alloc::format;
use alloc::string::{String, ToString};
use alloc::vec::Vec;
use core::fmt::{self, Write as _};

use crate::desc::{deps, flags, Act, Add, Dma, Fence, Matmul, Max, Op, Opcode};
use crate::program::Program;
use crate::Descriptor;

/// An assembly error, with the 1-based line and column (in characters) where
/// it was found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AsmError {
    pub line: usize,
    pub column: usize,
    pub message: String,
}

impl fmt::Display for AsmError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "line {}, column {}: {}",
            self.line, self.column, self.message
        )
    }
}

#[cfg(feature = "std")]
impl std::error::Error for AsmError {}

/// How a field is written by the disassembler.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Radix {
    Hex,
    Dec,
}

/// What a missing field becomes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Missing {
    Zero,
    Required,
    /// The field is an `Option`: absent is `None`.
    Absent,
    /// The value of `row_bytes` (DMA strides: packed rows).
    RowBytes,
}

#[derive(Debug, Clone, Copy)]
struct Field {
    name: &'static str,
    min: i128,
    max: i128,
    radix: Radix,
    missing: Missing,
}

const fn unsigned(name: &'static str, bits: u32, radix: Radix, missing: Missing) -> Field {
    Field {
        name,
        min: 0,
        max: (1i128 << bits) - 1,
        radix,
        missing,
    }
}

const fn signed(name: &'static str, bits: u32, missing: Missing) -> Field {
    Field {
        name,
        min: -(1i128 << (bits - 1)),
        max: (1i128 << (bits - 1)) - 1,
        radix: Radix::Dec,
        missing,
    }
}

const fn addr(name: &'static str, bits: u32) -> Field {
    unsigned(name, bits, Radix::Hex, Missing::Zero)
}

const fn size(name: &'static str, bits: u32) -> Field {
    unsigned(name, bits, Radix::Dec, Missing::Required)
}

/// Most fields of any opcode (ACT has nine).
const MAX_FIELDS: usize = 9;

// Field tables, in LAYOUTS order (the `_lo`/`_hi` halves of a 64-bit address
// are one field here). `build` and `values` index them by position.
const DMA_FIELDS: &[Field] = &[
    addr("local", 32),
    addr("dram", 64),
    size("rows", 16),
    size("row_bytes", 16),
    unsigned("dram_stride", 32, Radix::Dec, Missing::RowBytes),
    unsigned("local_stride", 32, Radix::Dec, Missing::RowBytes),
];
const MATMUL_FIELDS: &[Field] = &[
    addr("a", 32),
    addr("w", 32),
    addr("out", 32),
    size("m", 16),
    size("k", 16),
    size("n", 16),
];
const ACT_FIELDS: &[Field] = &[
    addr("src", 32),
    addr("dst", 32),
    unsigned("bias", 32, Radix::Hex, Missing::Absent),
    size("rows", 16),
    size("cols", 16),
    signed("multiplier", 32, Missing::Required),
    unsigned("shift", 8, Radix::Dec, Missing::Zero),
    signed("zero_point", 8, Missing::Zero),
    unsigned("qtab", 32, Radix::Hex, Missing::Absent),
];
/// Positions in [`ACT_FIELDS`] of the per-tensor scale and of the table.
const ACT_MULTIPLIER: usize = 5;
const ACT_SHIFT: usize = 6;
const ACT_QTAB: usize = 8;
const ADD_FIELDS: &[Field] = &[
    addr("a", 32),
    addr("b", 32),
    addr("dst", 32),
    size("len", 32),
    signed("a_zp", 8, Missing::Zero),
    signed("b_zp", 8, Missing::Zero),
    signed("a_mult", 16, Missing::Required),
    signed("b_mult", 16, Missing::Required),
];
const MAX_OP_FIELDS: &[Field] = &[
    addr("a", 32),
    addr("b", 32),
    addr("dst", 32),
    size("len", 32),
];
const FENCE_FIELDS: &[Field] = &[
    size("seq", 32),
    unsigned("writeback", 64, Radix::Hex, Missing::Absent),
];

/// Dependency flag words, in bit order.
const DEP_FLAGS: &[(&str, u8)] = &[
    ("wait_prev", deps::WAIT_PREV),
    ("wait_next", deps::WAIT_NEXT),
    ("signal_prev", deps::SIGNAL_PREV),
    ("signal_next", deps::SIGNAL_NEXT),
];

/// Every opcode-flag word of any opcode, to tell "wrong opcode" from "unknown".
const ALL_OP_FLAGS: &[&str] = &["acc", "accumulate", "relu", "irq"];

/// The assembly view of one opcode: its fields and its opcode-flag words.
fn fields(op: Opcode) -> &'static [Field] {
    match op {
        Opcode::Nop => &[],
        Opcode::Load | Opcode::Store => DMA_FIELDS,
        Opcode::Matmul => MATMUL_FIELDS,
        Opcode::Act => ACT_FIELDS,
        Opcode::Add => ADD_FIELDS,
        Opcode::Max => MAX_OP_FIELDS,
        Opcode::Fence => FENCE_FIELDS,
    }
}

fn op_flags(op: Opcode) -> &'static [(&'static str, u8)] {
    match op {
        Opcode::Nop | Opcode::Max => &[],
        Opcode::Load | Opcode::Store => &[("acc", flags::ACC)],
        Opcode::Matmul | Opcode::Add => &[("accumulate", flags::ACCUMULATE)],
        Opcode::Act => &[("relu", flags::RELU)],
        Opcode::Fence => &[("irq", flags::IRQ)],
    }
}

fn allowed_deps(op: Opcode) -> u8 {
    op.unit().map_or(0, |u| u.allowed_deps())
}

/// Assembles `src` into a program. Stops at the first error.
pub fn assemble(src: &str) -> Result<Program, AsmError> {
    let mut consts = Consts::new();
    let mut program = Program::new();
    for (i, raw) in src.lines().enumerate() {
        let line = i + 1;
        let code = match raw.find(['#', ';']) {
            Some(at) => &raw[..at],
            None => raw,
        };
        let toks = tokens(code);
        let Some(&(col, head)) = toks.first() else {
            continue;
        };
        let err = LineErr { line };
        if head.starts_with('.') {
            directive(col, head, &toks[1..], &mut consts, &err)?;
        } else {
            let opcode = Opcode::ALL
                .iter()
                .copied()
                .find(|o| o.mnemonic().eq_ignore_ascii_case(head))
                .ok_or_else(|| {
                    let all: Vec<&str> = Opcode::ALL.iter().map(|o| o.mnemonic()).collect();
                    err.at(
                        col,
                        format!(
                            "unknown mnemonic `{head}` (expected one of {})",
                            all.join(", ")
                        ),
                    )
                })?;
            program.push(instruction(opcode, col, &toks[1..], &consts, &err)?);
        }
    }
    Ok(program)
}

/// Builds errors for one line.
struct LineErr {
    line: usize,
}

impl LineErr {
    fn at(&self, column: usize, message: String) -> AsmError {
        AsmError {
            line: self.line,
            column,
            message,
        }
    }
}

/// Constants defined with `.equ`: value and defining line.
type Consts = BTreeMap<String, (i128, usize)>;

/// A directive line: `head` at `col`, then `args`.
fn directive(
    col: usize,
    head: &str,
    args: &[(usize, &str)],
    consts: &mut Consts,
    err: &LineErr,
) -> Result<(), AsmError> {
    if !head.eq_ignore_ascii_case(".equ") {
        return Err(err.at(
            col,
            format!("unknown directive `{head}` (the only one is .equ)"),
        ));
    }
    let (&(ncol, name), &(vcol, value)) = match (args.first(), args.get(1)) {
        (Some(n), Some(v)) => (n, v),
        _ => return Err(err.at(col, "expected `.equ NAME VALUE`".to_string())),
    };
    if let Some(&(xcol, extra)) = args.get(2) {
        return Err(err.at(
            xcol,
            format!("unexpected `{extra}` after `.equ NAME VALUE`"),
        ));
    }
    if !is_ident(name) {
        return Err(err.at(
            ncol,
            format!("bad constant name `{name}` (letters, digits and _)"),
        ));
    }
    if let Some(&(_, at)) = consts.get(name) {
        return Err(err.at(
            ncol,
            format!("constant `{name}` already defined on line {at}"),
        ));
    }
    let v = eval(value, vcol, consts, err)?;
    consts.insert(name.to_string(), (v, err.line));
    Ok(())
}

fn instruction(
    opcode: Opcode,
    op_col: usize,
    toks: &[(usize, &str)],
    consts: &Consts,
    err: &LineErr,
) -> Result<Descriptor, AsmError> {
    let name = opcode.mnemonic();
    let fields = fields(opcode);
    let opf = op_flags(opcode);
    let allowed = allowed_deps(opcode);
    let valid_flags = || {
        let words: Vec<&str> = opf
            .iter()
            .map(|f| f.0)
            .chain(DEP_FLAGS.iter().filter(|d| allowed & d.1 != 0).map(|d| d.0))
            .collect();
        if words.is_empty() {
            format!("{name} takes no flags")
        } else {
            format!("flags: {}", words.join(", "))
        }
    };
    let field_names = || {
        if fields.is_empty() {
            format!("{name} takes no fields")
        } else {
            let n: Vec<&str> = fields.iter().map(|f| f.name).collect();
            format!("fields: {}", n.join(", "))
        }
    };

    let mut vals: [Option<i128>; MAX_FIELDS] = [None; MAX_FIELDS];
    let mut of = 0u8;
    let mut dep = 0u8;
    for &(col, tok) in toks {
        if let Some((key, value)) = tok.split_once('=') {
            let Some(idx) = fields.iter().position(|f| f.name.eq_ignore_ascii_case(key)) else {
                let is_flag = opf
                    .iter()
                    .map(|f| f.0)
                    .chain(DEP_FLAGS.iter().map(|d| d.0))
                    .any(|w| w.eq_ignore_ascii_case(key));
                let msg = if key.is_empty() {
                    "expected a field name before `=`".to_string()
                } else if is_flag {
                    format!("`{key}` is a flag and takes no value")
                } else {
                    format!("unknown field `{key}` for {name} ({})", field_names())
                };
                return Err(err.at(col, msg));
            };
            let f = fields[idx];
            if vals[idx].is_some() {
                return Err(err.at(col, format!("duplicate field `{}`", f.name)));
            }
            let vcol = col + key.chars().count() + 1;
            let v = eval(value, vcol, consts, err)?;
            if v < f.min || v > f.max {
                let (lo, hi) = (show(f.min, f.radix), show(f.max, f.radix));
                let msg = format!(
                    "value {} out of range for `{}` ({lo}..={hi})",
                    show(v, f.radix),
                    f.name
                );
                return Err(err.at(vcol, msg));
            }
            vals[idx] = Some(v);
        } else if let Some(&(w, bit)) = opf.iter().find(|f| f.0.eq_ignore_ascii_case(tok)) {
            if of & bit != 0 {
                return Err(err.at(col, format!("duplicate flag `{w}`")));
            }
            of |= bit;
        } else if let Some(&(w, bit)) = DEP_FLAGS.iter().find(|d| d.0.eq_ignore_ascii_case(tok)) {
            if allowed & bit == 0 {
                let unit = match opcode.unit() {
                    Some(u) => format!("the {} unit", u.name()),
                    None => "the command processor".to_string(),
                };
                return Err(err.at(
                    col,
                    format!(
                        "flag `{w}` is not valid for {name}, run by {unit} ({})",
                        valid_flags()
                    ),
                ));
            }
            if dep & bit != 0 {
                return Err(err.at(col, format!("duplicate flag `{w}`")));
            }
            dep |= bit;
        } else if let Some(f) = fields.iter().find(|f| f.name.eq_ignore_ascii_case(tok)) {
            return Err(err.at(
                col,
                format!("`{0}` is a field of {name}: write {0}=VALUE", f.name),
            ));
        } else if ALL_OP_FLAGS.iter().any(|w| w.eq_ignore_ascii_case(tok)) {
            return Err(err.at(
                col,
                format!("flag `{tok}` is not valid for {name} ({})", valid_flags()),
            ));
        } else {
            return Err(err.at(
                col,
                format!("unknown flag `{tok}` for {name} ({})", valid_flags()),
            ));
        }
    }

    let per_channel = opcode == Opcode::Act && vals[ACT_QTAB].is_some();
    if per_channel {
        for i in [ACT_MULTIPLIER, ACT_SHIFT] {
            if vals[i].is_some() {
                let (col, _) = toks
                    .iter()
                    .find(|t| {
                        t.1.split_once('=')
                            .is_some_and(|(k, _)| k.eq_ignore_ascii_case(fields[i].name))
                    })
                    .copied()
                    .unwrap_or((op_col, ""));
                return Err(err.at(
                    col,
                    format!(
                        "`{}` cannot be given with `qtab`: the table holds each column's multiplier and shift",
                        fields[i].name
                    ),
                ));
            }
            vals[i] = Some(0);
        }
    }
    for (i, f) in fields.iter().enumerate() {
        if vals[i].is_some() {
            continue;
        }
        vals[i] = match f.missing {
            Missing::Zero => Some(0),
            Missing::Absent => None,
            Missing::RowBytes => fields
                .iter()
                .position(|g| g.name == "row_bytes")
                .and_then(|j| vals[j]),
            Missing::Required => {
                return Err(err.at(
                    op_col,
                    format!("{name} is missing required field `{}`", f.name),
                ))
            }
        };
    }
    Ok(Descriptor {
        deps: dep,
        op: build(opcode, &vals, of),
    })
}

/// The operation from field values (in-range, defaults resolved, in table order)
/// and opcode flags.
fn build(opcode: Opcode, v: &[Option<i128>; MAX_FIELDS], of: u8) -> Op {
    let g = |i: usize| v[i].unwrap_or(0);
    let dma = || Dma {
        local: g(0) as u32,
        dram: g(1) as u64,
        rows: g(2) as u16,
        row_bytes: g(3) as u16,
        dram_stride: g(4) as u32,
        local_stride: g(5) as u32,
        acc: of & flags::ACC != 0,
    };
    match opcode {
        Opcode::Nop => Op::Nop,
        Opcode::Load => Op::Load(dma()),
        Opcode::Store => Op::Store(dma()),
        Opcode::Matmul => Op::Matmul(Matmul {
            a: g(0) as u32,
            w: g(1) as u32,
            out: g(2) as u32,
            m: g(3) as u16,
            k: g(4) as u16,
            n: g(5) as u16,
            accumulate: of & flags::ACCUMULATE != 0,
        }),
        Opcode::Act => Op::Act(Act {
            src: g(0) as u32,
            dst: g(1) as u32,
            bias: v[2].map(|b| b as u32),
            rows: g(3) as u16,
            cols: g(4) as u16,
            multiplier: g(5) as i32,
            shift: g(6) as u8,
            zero_point: g(7) as i8,
            relu: of & flags::RELU != 0,
            qtab: v[ACT_QTAB].map(|q| q as u32),
        }),
        Opcode::Add => Op::Add(Add {
            a: g(0) as u32,
            b: g(1) as u32,
            dst: g(2) as u32,
            len: g(3) as u32,
            a_zp: g(4) as i8,
            b_zp: g(5) as i8,
            a_mult: g(6) as i16,
            b_mult: g(7) as i16,
            accumulate: of & flags::ACCUMULATE != 0,
        }),
        Opcode::Max => Op::Max(Max {
            a: g(0) as u32,
            b: g(1) as u32,
            dst: g(2) as u32,
            len: g(3) as u32,
        }),
        Opcode::Fence => Op::Fence(Fence {
            seq: g(0) as u32,
            writeback: v[1].map(|a| a as u64),
            irq: of & flags::IRQ != 0,
        }),
    }
}

/// The inverse of [`build`]: field values in table order (`None`: absent option).
fn values(op: &Op) -> [Option<i128>; MAX_FIELDS] {
    let mut v = [None; MAX_FIELDS];
    let mut set = |xs: &[i128]| {
        for (slot, &x) in v.iter_mut().zip(xs) {
            *slot = Some(x);
        }
    };
    match op {
        Op::Nop => {}
        Op::Load(d) | Op::Store(d) => set(&[
            d.local.into(),
            d.dram.into(),
            d.rows.into(),
            d.row_bytes.into(),
            d.dram_stride.into(),
            d.local_stride.into(),
        ]),
        Op::Matmul(m) => set(&[
            m.a.into(),
            m.w.into(),
            m.out.into(),
            m.m.into(),
            m.k.into(),
            m.n.into(),
        ]),
        Op::Act(a) => {
            set(&[
                a.src.into(),
                a.dst.into(),
                0,
                a.rows.into(),
                a.cols.into(),
                a.multiplier.into(),
                a.shift.into(),
                a.zero_point.into(),
            ]);
            v[2] = a.bias.map(i128::from);
            if let Some(q) = a.qtab {
                v[ACT_MULTIPLIER] = None;
                v[ACT_SHIFT] = None;
                v[ACT_QTAB] = Some(q.into());
            }
        }
        Op::Add(a) => set(&[
            a.a.into(),
            a.b.into(),
            a.dst.into(),
            a.len.into(),
            a.a_zp.into(),
            a.b_zp.into(),
            a.a_mult.into(),
            a.b_mult.into(),
        ]),
        Op::Max(m) => set(&[m.a.into(), m.b.into(), m.dst.into(), m.len.into()]),
        Op::Fence(f) => {
            v[0] = Some(f.seq.into());
            v[1] = f.writeback.map(i128::from);
        }
    }
    v
}

/// The canonical line of one descriptor (no newline).
///
/// Dependency flags the descriptor's unit cannot use are written all the same
/// (and rejected by [`assemble`]); bits above the four flags are not written.
pub fn disassemble_one(d: &Descriptor) -> String {
    let opcode = d.opcode();
    let mut s = String::from(opcode.mnemonic());
    for (f, v) in fields(opcode).iter().zip(values(&d.op)) {
        if let Some(v) = v {
            // Writing to a String cannot fail.
            let _ = write!(s, " {}={}", f.name, show(v, f.radix));
        }
    }
    let of = d.op_flags();
    for &(w, bit) in op_flags(opcode).iter().chain(DEP_FLAGS) {
        let set = if DEP_FLAGS.iter().any(|x| x.0 == w) {
            d.deps & bit
        } else {
            of & bit
        };
        if set != 0 {
            s.push(' ');
            s.push_str(w);
        }
    }
    s
}

/// The canonical text of a program: one [`disassemble_one`] line per
/// descriptor, each ending in a newline.
pub fn disassemble(p: &Program) -> String {
    let mut s = String::new();
    for d in p.descs() {
        s.push_str(&disassemble_one(d));
        s.push('\n');
    }
    s
}

fn show(v: i128, radix: Radix) -> String {
    match radix {
        Radix::Hex if v >= 0 => format!("{v:#x}"),
        _ => format!("{v}"),
    }
}

/// Whitespace-separated tokens with their 1-based character column.
fn tokens(s: &str) -> Vec<(usize, &str)> {
    let mut out = Vec::new();
    let mut start: Option<(usize, usize)> = None;
    for (col0, (at, c)) in s.char_indices().enumerate() {
        if c.is_whitespace() {
            if let Some((b, col)) = start.take() {
                out.push((col, &s[b..at]));
            }
        } else if start.is_none() {
            start = Some((at, col0 + 1));
        }
    }
    if let Some((b, col)) = start {
        out.push((col, &s[b..]));
    }
    out
}

fn is_ident(s: &str) -> bool {
    let mut cs = s.chars();
    matches!(cs.next(), Some(c) if c.is_ascii_alphabetic() || c == '_')
        && cs.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

/// Evaluates `[+|-] term {(+|-) term}`, a term being a number or a constant.
/// `col` is the column of the first character of `expr`.
fn eval(expr: &str, col: usize, consts: &Consts, err: &LineErr) -> Result<i128, AsmError> {
    let mut total: i128 = 0;
    let mut negate = false;
    let mut rest = expr;
    let mut at = col; // column of `rest`
    if let Some(r) = rest.strip_prefix('-') {
        negate = true;
        rest = r;
        at += 1;
    } else if let Some(r) = rest.strip_prefix('+') {
        rest = r;
        at += 1;
    }
    loop {
        let end = rest.find(['+', '-']).unwrap_or(rest.len());
        let term = &rest[..end];
        let v = term_value(term, at, consts, err)?;
        let next = if negate {
            total.checked_sub(v)
        } else {
            total.checked_add(v)
        };
        total = next.ok_or_else(|| err.at(col, format!("value `{expr}` overflows")))?;
        at += term.chars().count();
        match rest[end..].chars().next() {
            None => return Ok(total),
            Some(op) => {
                negate = op == '-';
                rest = &rest[end + 1..];
                at += 1;
            }
        }
    }
}

fn term_value(term: &str, col: usize, consts: &Consts, err: &LineErr) -> Result<i128, AsmError> {
    let Some(first) = term.chars().next() else {
        return Err(err.at(col, "expected a number or constant".to_string()));
    };
    if first.is_ascii_digit() {
        return number(term).ok_or_else(|| err.at(col, format!("bad number `{term}`")));
    }
    if is_ident(term) {
        return consts
            .get(term)
            .map(|&(v, _)| v)
            .ok_or_else(|| err.at(col, format!("unknown constant `{term}`")));
    }
    Err(err.at(col, format!("bad number `{term}`")))
}

/// A non-negative literal: decimal, `0x` hex or `0b` binary, `_` allowed after
/// the prefix. `None` if malformed or too large.
fn number(s: &str) -> Option<i128> {
    let (radix, digits) = if let Some(d) = s.strip_prefix("0x").or_else(|| s.strip_prefix("0X")) {
        (16, d)
    } else if let Some(d) = s.strip_prefix("0b").or_else(|| s.strip_prefix("0B")) {
        (2, d)
    } else {
        (10, s)
    };
    let mut v: i128 = 0;
    let mut any = false;
    for c in digits.chars() {
        if c == '_' {
            continue;
        }
        let d = c.to_digit(radix)?;
        v = v.checked_mul(radix.into())?.checked_add(d.into())?;
        any = true;
    }
    any.then_some(v)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::desc::LAYOUTS;
    use crate::program::strategy;
    use proptest::prelude::*;
    // `prop_oneof!` expands to `vec!`, which is not in the no_std prelude.
    use alloc::vec;

    fn one(line: &str) -> Descriptor {
        let p = assemble(line).unwrap_or_else(|e| panic!("{line}: {e}"));
        assert_eq!(p.len(), 1, "{line}");
        p.descs()[0]
    }

    fn fail(src: &str) -> AsmError {
        match assemble(src) {
            Ok(p) => panic!("{src:?} assembled to {p:?}"),
            Err(e) => e,
        }
    }

    /// Checks line, column and that the message contains every `needle`.
    fn fails_at(src: &str, line: usize, column: usize, needles: &[&str]) {
        let e = fail(src);
        assert_eq!((e.line, e.column), (line, column), "{src:?}: {e}");
        for n in needles {
            assert!(e.message.contains(n), "{src:?}: `{e}` lacks `{n}`");
        }
    }

    #[test]
    fn tables_match_layouts() {
        for l in LAYOUTS {
            // Our names: `_lo`/`_hi` halves merged, FENCE's `addr` is `writeback`.
            let mut expect: Vec<(&str, u32)> = Vec::new();
            for &(name, _, _, width, _) in l.fields {
                let base = name
                    .strip_suffix("_lo")
                    .or_else(|| name.strip_suffix("_hi"));
                match base {
                    Some(b) => {
                        let b = if b == "addr" { "writeback" } else { b };
                        match expect.last_mut() {
                            Some(last) if last.0 == b => last.1 += width as u32,
                            _ => expect.push((b, width as u32)),
                        }
                    }
                    None => expect.push((name, width as u32)),
                }
            }
            let ours: Vec<(&str, u32)> = fields(l.opcode)
                .iter()
                .map(|f| (f.name, (f.max - f.min + 1).trailing_zeros()))
                .collect();
            assert_eq!(ours, expect, "{}", l.opcode);
            // Opcode flags: all but those implied by an optional field.
            let mut expect_flags: Vec<(String, u8)> = l
                .op_flags
                .iter()
                .filter(|f| !["BIAS", "PER_CHANNEL", "WRITEBACK"].contains(&f.0))
                .map(|f| (f.0.to_ascii_lowercase(), f.1))
                .collect();
            expect_flags.sort();
            let mut our_flags: Vec<(String, u8)> = op_flags(l.opcode)
                .iter()
                .map(|f| (f.0.to_string(), f.1))
                .collect();
            our_flags.sort();
            assert_eq!(our_flags, expect_flags, "{}", l.opcode);
        }
        assert!(fields(Opcode::Act).len() <= MAX_FIELDS && fields(Opcode::Add).len() <= MAX_FIELDS);
        let mut dep_names: Vec<String> =
            deps::ALL.iter().map(|d| d.0.to_ascii_lowercase()).collect();
        dep_names.sort();
        let mut ours: Vec<String> = DEP_FLAGS.iter().map(|d| d.0.to_string()).collect();
        ours.sort();
        assert_eq!(ours, dep_names);
    }

    #[test]
    fn load_line() {
        let d = one("LOAD local=0x0 dram=0x1000 rows=4 row_bytes=16 dram_stride=64 local_stride=16 acc wait_next signal_next");
        let dma = Dma {
            local: 0,
            dram: 0x1000,
            rows: 4,
            row_bytes: 16,
            dram_stride: 64,
            local_stride: 16,
            acc: true,
        };
        assert_eq!(
            d,
            Descriptor::new(Op::Load(dma)).with_deps(deps::WAIT_NEXT | deps::SIGNAL_NEXT)
        );
        assert_eq!(
            disassemble_one(&d),
            "LOAD local=0x0 dram=0x1000 rows=4 row_bytes=16 dram_stride=64 local_stride=16 acc wait_next signal_next"
        );
    }

    #[test]
    fn store_line_and_stride_defaults() {
        let d =
            one("store rows=2 row_bytes=8 local=0x40 dram=0xffff_ffff_0000 wait_prev signal_prev");
        let dma = Dma {
            local: 0x40,
            dram: 0xffff_ffff_0000,
            rows: 2,
            row_bytes: 8,
            dram_stride: 8,
            local_stride: 8,
            acc: false,
        };
        assert_eq!(
            d,
            Descriptor::new(Op::Store(dma)).with_deps(deps::WAIT_PREV | deps::SIGNAL_PREV)
        );
        let d = one("STORE rows=2 row_bytes=8 local_stride=32");
        let Op::Store(dma) = d.op else {
            panic!("{d:?}")
        };
        assert_eq!(
            (dma.dram_stride, dma.local_stride, dma.local, dma.dram),
            (8, 32, 0, 0)
        );
    }

    #[test]
    fn matmul_line() {
        let d = one("MATMUL a=0 w=256 out=0 m=4 k=16 n=16 accumulate wait_prev signal_next");
        let m = Matmul {
            a: 0,
            w: 256,
            out: 0,
            m: 4,
            k: 16,
            n: 16,
            accumulate: true,
        };
        assert_eq!(
            d,
            Descriptor::new(Op::Matmul(m)).with_deps(deps::WAIT_PREV | deps::SIGNAL_NEXT)
        );
        assert_eq!(
            disassemble_one(&d),
            "MATMUL a=0x0 w=0x100 out=0x0 m=4 k=16 n=16 accumulate wait_prev signal_next"
        );
    }

    #[test]
    fn act_per_channel_line() {
        let d = one("ACT src=0x40 dst=8 rows=2 cols=8 qtab=0x200 zero_point=5 relu wait_prev");
        let a = Act {
            src: 0x40,
            dst: 8,
            rows: 2,
            cols: 8,
            zero_point: 5,
            relu: true,
            qtab: Some(0x200),
            ..Default::default()
        };
        assert_eq!(d, Descriptor::new(Op::Act(a)).with_deps(deps::WAIT_PREV));
        assert_eq!(d.op_flags(), flags::RELU | flags::PER_CHANNEL);
        // The canonical form has no multiplier and no shift.
        let text = "ACT src=0x40 dst=0x8 rows=2 cols=8 zero_point=5 qtab=0x200 relu wait_prev";
        assert_eq!(disassemble_one(&d), text);
        assert_eq!(one(text), d);
        // qtab=0 is a table at 0, not "none".
        let Op::Act(a) = one("ACT rows=1 cols=1 qtab=0").op else {
            panic!()
        };
        assert_eq!((a.qtab, a.multiplier), (Some(0), 0));
        // A per-tensor scale next to a table is refused, naming the field.
        fails_at(
            "ACT rows=1 cols=1 qtab=0x100 multiplier=3",
            1,
            30,
            &["`multiplier` cannot be given with `qtab`"],
        );
        fails_at(
            "ACT rows=1 cols=1 shift=0 qtab=0x100",
            1,
            19,
            &["`shift` cannot be given with `qtab`"],
        );
        fails_at("ACT rows=1 cols=1 qtab=0x1_0000_0000", 1, 24, &["`qtab`"]);
    }

    #[test]
    fn act_line() {
        let d = one("ACT src=0 dst=512 bias=0x100 rows=4 cols=16 multiplier=1073741824 shift=31 zero_point=-3 relu");
        let a = Act {
            src: 0,
            dst: 512,
            bias: Some(0x100),
            rows: 4,
            cols: 16,
            multiplier: 1 << 30,
            shift: 31,
            zero_point: -3,
            relu: true,
            qtab: None,
        };
        assert_eq!(d, Descriptor::new(Op::Act(a)));
        assert_eq!(
            disassemble_one(&d),
            "ACT src=0x0 dst=0x200 bias=0x100 rows=4 cols=16 multiplier=1073741824 shift=31 zero_point=-3 relu"
        );
        // Without `bias` there is no bias (and no BIAS flag); bias=0 is a bias at 0.
        let d = one("ACT rows=1 cols=1 multiplier=-2147483648");
        let Op::Act(a) = d.op else { panic!() };
        assert_eq!(
            (a.bias, a.multiplier, a.shift, a.zero_point, a.relu),
            (None, i32::MIN, 0, 0, false)
        );
        let Op::Act(a) = one("ACT rows=1 cols=1 multiplier=1 bias=0").op else {
            panic!()
        };
        assert_eq!(a.bias, Some(0));
    }

    #[test]
    fn add_line() {
        let d = one("ADD a=0 b=64 dst=0 len=64 a_zp=-1 b_zp=2 a_mult=300 b_mult=-7 accumulate");
        let a = Add {
            a: 0,
            b: 64,
            dst: 0,
            len: 64,
            a_zp: -1,
            b_zp: 2,
            a_mult: 300,
            b_mult: -7,
            accumulate: true,
        };
        assert_eq!(d, Descriptor::new(Op::Add(a)));
        assert_eq!(
            disassemble_one(&d),
            "ADD a=0x0 b=0x40 dst=0x0 len=64 a_zp=-1 b_zp=2 a_mult=300 b_mult=-7 accumulate"
        );
    }

    #[test]
    fn max_nop_fence_lines() {
        let d = one("MAX a=0 b=64 dst=128 len=64");
        assert_eq!(
            d,
            Descriptor::new(Op::Max(Max {
                a: 0,
                b: 64,
                dst: 128,
                len: 64
            }))
        );
        assert_eq!(disassemble_one(&d), "MAX a=0x0 b=0x40 dst=0x80 len=64");
        assert_eq!(one("NOP"), Descriptor::new(Op::Nop));
        assert_eq!(disassemble_one(&one("nop")), "NOP");
        let d = one("FENCE seq=1 irq writeback=0x2000");
        assert_eq!(
            d,
            Descriptor::new(Op::Fence(Fence {
                seq: 1,
                writeback: Some(0x2000),
                irq: true
            }))
        );
        assert_eq!(disassemble_one(&d), "FENCE seq=1 writeback=0x2000 irq");
        assert_eq!(
            one("Fence seq=9").op,
            Op::Fence(Fence {
                seq: 9,
                writeback: None,
                irq: false
            })
        );
    }

    #[test]
    fn case_insensitive_words() {
        let a = one("matmul A=1 W=2 OUT=4 M=1 K=1 N=1 Accumulate WAIT_PREV");
        let b = one("MATMUL a=1 w=2 out=4 m=1 k=1 n=1 accumulate wait_prev");
        assert_eq!(a, b);
    }

    #[test]
    fn numbers() {
        let Op::Load(d) =
            one("LOAD local=0b1010 dram=0XDEAD_beef rows=1_000 row_bytes=0x_10 dram_stride=007").op
        else {
            panic!()
        };
        assert_eq!(
            (d.local, d.dram, d.rows, d.row_bytes, d.dram_stride),
            (10, 0xdead_beef, 1000, 16, 7)
        );
        let Op::Load(d) = one("LOAD dram=0xffff_ffff_ffff_ffff rows=1 row_bytes=1").op else {
            panic!()
        };
        assert_eq!(d.dram, u64::MAX);
        let Op::Add(a) = one("ADD len=1 a_zp=-128 b_zp=127 a_mult=-32768 b_mult=+32767").op else {
            panic!()
        };
        assert_eq!(
            (a.a_zp, a.b_zp, a.a_mult, a.b_mult),
            (-128, 127, -32768, 32767)
        );
    }

    #[test]
    fn constants() {
        let src = "\
            .equ WEIGHTS 0x10_0000\n\
            .EQU ROW 16\n\
            .equ Off WEIGHTS+ROW*0\n";
        // `*` is not an operator.
        fails_at(src, 3, 18, &["bad number", "ROW*0"]);
        let src = "\
            .equ WEIGHTS 0x10_0000\n\
            .equ ROW 16\n\
            .equ NEG -ROW-1\n\
            LOAD dram=WEIGHTS+0x40 rows=ROW row_bytes=ROW-ROW+8 local=-NEG-17\n\
            ACT rows=1 cols=1 multiplier=NEG zero_point=NEG+ROW\n";
        let p = assemble(src).unwrap();
        let Op::Load(d) = p.descs()[0].op else {
            panic!()
        };
        assert_eq!(
            (d.dram, d.rows, d.row_bytes, d.local),
            (0x10_0040, 16, 8, 0)
        );
        let Op::Act(a) = p.descs()[1].op else {
            panic!()
        };
        assert_eq!((a.multiplier, a.zero_point), (-17, -1));
        // Constants are case-sensitive and defined once, before use.
        fails_at(
            ".equ ROW 16\nMAX len=row",
            2,
            9,
            &["unknown constant `row`"],
        );
        fails_at("MAX len=N\n.equ N 1", 1, 9, &["unknown constant `N`"]);
        fails_at(".equ N 1\n.equ N 2", 2, 6, &["already defined on line 1"]);
        fails_at(".equ 9N 1", 1, 6, &["bad constant name"]);
        fails_at(".equ N", 1, 1, &[".equ NAME VALUE"]);
        fails_at(".equ N 1 2", 1, 10, &["unexpected `2`"]);
        fails_at(".org 0", 1, 1, &["unknown directive `.org`"]);
    }

    #[test]
    fn comments_and_blank_lines() {
        let src = "\
            # a program\n\
            \n\
            \t  \n\
            NOP ; first\n\
            NOP# [1]\n\
            ;; FENCE seq=3\n\
            FENCE seq=2 irq # [2] trailing index\r\n";
        let p = assemble(src).unwrap();
        assert_eq!(p.len(), 3);
        assert_eq!(
            p.descs()[2].op,
            Op::Fence(Fence {
                seq: 2,
                writeback: None,
                irq: true
            })
        );
        assert_eq!(assemble(""), Ok(Program::new()));
    }

    #[test]
    fn error_unknown_mnemonic() {
        fails_at(
            "NOP\n  CONV a=1",
            2,
            3,
            &["unknown mnemonic `CONV`", "MATMUL"],
        );
        fails_at("rows=4", 1, 1, &["unknown mnemonic"]);
    }

    #[test]
    fn error_unknown_field() {
        fails_at(
            "MATMUL a=0 x=1 m=1 k=1 n=1",
            1,
            12,
            &["unknown field `x` for MATMUL", "a, w, out, m, k, n"],
        );
        fails_at("NOP a=1", 1, 5, &["NOP takes no fields"]);
        fails_at("MAX =1 len=1", 1, 5, &["field name before `=`"]);
    }

    #[test]
    fn error_duplicate() {
        fails_at("MAX len=1 a=0 LEN=2", 1, 15, &["duplicate field `len`"]);
        fails_at(
            "ACT rows=1 cols=1 multiplier=1 relu relu",
            1,
            37,
            &["duplicate flag `relu`"],
        );
        fails_at(
            "ADD len=1 a_mult=1 b_mult=1 signal_next signal_next",
            1,
            41,
            &["duplicate flag"],
        );
    }

    #[test]
    fn error_bad_number() {
        fails_at("MAX len=12z", 1, 9, &["bad number `12z`"]);
        fails_at("MAX len=0x", 1, 9, &["bad number `0x`"]);
        fails_at("MAX len=0b102", 1, 9, &["bad number"]);
        fails_at("MAX len=", 1, 9, &["expected a number or constant"]);
        fails_at("MAX len=1+", 1, 11, &["expected a number or constant"]);
        fails_at("MAX len=--1", 1, 10, &["expected a number or constant"]);
        fails_at("MAX len=$1", 1, 9, &["bad number `$1`"]);
        fails_at(
            "MAX len=99999999999999999999999999999999999999999",
            1,
            9,
            &["bad number"],
        );
        fails_at(
            ".equ B 170141183460469231731687303715884105727\nMAX len=B+B",
            2,
            9,
            &["overflows"],
        );
    }

    #[test]
    fn error_flag_not_valid() {
        fails_at(
            "MATMUL m=1 k=1 n=1 acc",
            1,
            20,
            &["flag `acc` is not valid for MATMUL", "accumulate"],
        );
        fails_at(
            "LOAD rows=1 row_bytes=1 wait_prev",
            1,
            25,
            &[
                "`wait_prev` is not valid for LOAD",
                "load unit",
                "acc, wait_next, signal_next",
            ],
        );
        fails_at(
            "STORE rows=1 row_bytes=1 signal_next",
            1,
            26,
            &["not valid for STORE"],
        );
        fails_at("FENCE seq=1 wait_prev", 1, 13, &["command processor"]);
        fails_at("NOP irq", 1, 5, &["NOP takes no flags"]);
        fails_at("MAX len=1 accumulate", 1, 11, &["not valid for MAX"]);
        fails_at("MAX len=1 fast", 1, 11, &["unknown flag `fast`"]);
        fails_at(
            "ACT rows=1 cols=1 multiplier=1 bias",
            1,
            32,
            &["`bias` is a field of ACT"],
        );
        fails_at("FENCE seq=1 writeback", 1, 13, &["`writeback` is a field"]);
        fails_at(
            "ACT rows=1 cols=1 multiplier=1 relu=1",
            1,
            32,
            &["`relu` is a flag and takes no value"],
        );
    }

    #[test]
    fn error_out_of_range() {
        fails_at(
            "LOAD rows=65536 row_bytes=1",
            1,
            11,
            &["value 65536 out of range for `rows` (0..=65535)"],
        );
        fails_at(
            "LOAD local=-4 rows=1 row_bytes=1",
            1,
            12,
            &["value -4", "`local` (0x0..=0xffffffff)"],
        );
        fails_at(
            "LOAD local=0x1_0000_0000 rows=1 row_bytes=1",
            1,
            12,
            &["value 0x100000000"],
        );
        fails_at(
            "ACT rows=1 cols=1 multiplier=1 zero_point=128",
            1,
            43,
            &["`zero_point` (-128..=127)"],
        );
        fails_at(
            "ACT rows=1 cols=1 multiplier=2147483648",
            1,
            30,
            &["`multiplier`"],
        );
        fails_at(
            "ACT rows=1 cols=1 multiplier=1 shift=256",
            1,
            38,
            &["`shift` (0..=255)"],
        );
        fails_at(
            "FENCE seq=1 writeback=0x1_0000_0000_0000_0000",
            1,
            23,
            &["`writeback`"],
        );
    }

    #[test]
    fn error_missing_required() {
        fails_at(
            "  MATMUL m=1 k=1",
            1,
            3,
            &["MATMUL is missing required field `n`"],
        );
        fails_at("LOAD rows=1", 1, 1, &["`row_bytes`"]);
        fails_at("ACT rows=1 cols=1", 1, 1, &["`multiplier`"]);
        fails_at("ADD len=1 a_mult=1", 1, 1, &["`b_mult`"]);
        fails_at("FENCE irq", 1, 1, &["`seq`"]);
        // An explicit zero is the author's call (it is the device that rejects it).
        assert!(assemble("MATMUL m=0 k=0 n=0").is_ok());
    }

    #[test]
    fn error_display_and_columns_count_characters() {
        let e = fail("NOP\nNOP\n  ÉTÉ ");
        assert_eq!(alloc::format!("{e}"), "line 3, column 3: unknown mnemonic `ÉTÉ` (expected one of NOP, LOAD, STORE, MATMUL, ACT, ADD, MAX, FENCE)");
        fails_at("MAX a=é len=1", 1, 7, &["bad number `é`"]);
        fails_at("MAX\u{a0}len=1 é", 1, 11, &["unknown flag `é`"]);
    }

    #[test]
    fn disassembly_is_canonical_and_accepted_back() {
        let src = "\
            .equ W 0x100\n\
            load rows=4 row_bytes=16 signal_next # [0]\n\
            MATMUL w=W m=4 k=16 n=16 wait_prev signal_next\n\
            STORE local=0 dram=0x3000 rows=4 row_bytes=64 acc wait_prev\n\
            FENCE seq=1 writeback=0 irq\n";
        let p = assemble(src).unwrap();
        let text = disassemble(&p);
        assert_eq!(
            text,
            "LOAD local=0x0 dram=0x0 rows=4 row_bytes=16 dram_stride=16 local_stride=16 signal_next\n\
             MATMUL a=0x0 w=0x100 out=0x0 m=4 k=16 n=16 wait_prev signal_next\n\
             STORE local=0x0 dram=0x3000 rows=4 row_bytes=64 dram_stride=64 local_stride=64 acc wait_prev\n\
             FENCE seq=1 writeback=0x0 irq\n"
        );
        assert_eq!(alloc::format!("{p}"), text);
        assert_eq!(assemble(&text), Ok(p.clone()));
        // With index comments, as a listing might add them.
        let listed: String = text
            .lines()
            .enumerate()
            .map(|(i, l)| alloc::format!("{l}  # [{i}]\n"))
            .collect();
        assert_eq!(assemble(&listed), Ok(p));
        assert_eq!(disassemble(&Program::new()), "");
    }

    #[test]
    fn disassembly_of_illegal_deps_is_rejected_back() {
        let d = Descriptor::new(Op::Nop).with_deps(deps::WAIT_PREV | 0x30);
        assert_eq!(disassemble_one(&d), "NOP wait_prev");
        assert!(assemble(&disassemble_one(&d)).is_err());
    }

    /// Random edits of a text: delete a span, insert a fragment, duplicate a span.
    fn mutate(text: &str, edits: &[(u8, usize, usize, String)]) -> String {
        let mut cs: Vec<char> = text.chars().collect();
        for (kind, a, b, ins) in edits {
            let n = cs.len();
            let (a, b) = if n == 0 {
                (0, 0)
            } else {
                (a % (n + 1), b % (n + 1))
            };
            let lo = a.min(b);
            let hi = a.max(b).min(lo + 12);
            match kind % 3 {
                0 => {
                    cs.drain(lo..hi);
                }
                1 => {
                    let at = lo;
                    for (k, c) in ins.chars().enumerate() {
                        cs.insert(at + k, c);
                    }
                }
                _ => {
                    let span: Vec<char> = cs[lo..hi].to_vec();
                    for (k, c) in span.into_iter().enumerate() {
                        cs.insert(hi + k, c);
                    }
                }
            }
        }
        cs.into_iter().collect()
    }

    fn fragment() -> impl Strategy<Value = String> {
        prop_oneof![
            Just(" ".to_string()),
            Just("=".to_string()),
            Just("\n".to_string()),
            Just("-".to_string()),
            Just("+".to_string()),
            Just("#".to_string()),
            Just("0x".to_string()),
            Just("_".to_string()),
            Just(".equ X 1\n".to_string()),
            Just("X".to_string()),
            Just("rows=".to_string()),
            Just("acc".to_string()),
            Just("wait_prev".to_string()),
            Just("99999999999999999999999999999999999999999".to_string()),
            Just("-170141183460469231731687303715884105728".to_string()),
            Just("é".to_string()),
            "[ -~]{1,6}",
            any::<String>(),
        ]
    }

    /// Words that assemble alone or nearly: random sequences of them reach deep
    /// into the parser.
    const SOUP: &[&str] = &[
        "LOAD",
        "store",
        "MATMUL",
        "ACT",
        "ADD",
        "MAX",
        "FENCE",
        "NOP",
        ".equ",
        "A",
        "rows=1",
        "row_bytes=4",
        "m=1",
        "k=1",
        "n=1",
        "len=2",
        "seq=1",
        "multiplier=-1",
        "a_mult=1",
        "b_mult=1",
        "bias=A+4",
        "writeback=0b100",
        "relu",
        "irq",
        "acc",
        "accumulate",
        "signal_next",
        "wait_prev",
        "\n",
        ";",
        "zero_point=-129",
        "dram=A-1",
    ];

    fn soup() -> impl Strategy<Value = String> {
        proptest::collection::vec(proptest::sample::select(SOUP), 0..24).prop_map(|ws| ws.join(" "))
    }

    proptest! {
        #[test]
        fn assemble_inverts_disassemble(p in strategy::program(24)) {
            let text = disassemble(&p);
            prop_assert_eq!(assemble(&text), Ok(p.clone()));
            for d in p.descs() {
                let line = disassemble_one(d);
                let back = assemble(&line).map(|q| q.descs().to_vec());
                prop_assert_eq!(back, Ok(alloc::vec![*d]), "{}", line);
            }
        }

        #[test]
        fn random_programs_round_trip_through_ring_and_text(p in strategy::program(24)) {
            let q = Program::decode(&p.encode()).unwrap();
            prop_assert_eq!(&q, &p);
            prop_assert_eq!(assemble(&disassemble(&q)), Ok(p));
        }

        #[test]
        fn arbitrary_text_never_panics(s in any::<String>(), t in "[ -~\t\n]{0,160}", u in soup()) {
            for src in [s, t, u] {
                if let Ok(p) = assemble(&src) {
                    // Whatever assembles has a canonical form that is a fixed point.
                    prop_assert_eq!(assemble(&disassemble(&p)), Ok(p));
                }
            }
        }

        #[test]
        fn mutated_programs_never_panic(
            p in strategy::program(6),
            edits in proptest::collection::vec((any::<u8>(), any::<usize>(), any::<usize>(), fragment()), 1..6),
        ) {
            let text = mutate(&disassemble(&p), &edits);
            match assemble(&text) {
                Ok(q) => prop_assert_eq!(assemble(&disassemble(&q)), Ok(q)),
                Err(e) => {
                    prop_assert!(e.line >= 1 && e.column >= 1, "{e:?}");
                    prop_assert!(e.line <= text.lines().count().max(1), "{e:?}");
                }
            }
        }
    }
}
