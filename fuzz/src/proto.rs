//! A structure-aware mutator for protobuf inputs (the `onnx` target).
//!
//! libFuzzer's byte mutations rarely get past a protobuf's nesting: a byte
//! inserted anywhere breaks the length prefix of every enclosing message,
//! and a mutated model fails at the wire level, never reaching the importer's
//! logic. This mutator reads the input as a tree of fields (a length-delimited
//! field that parses as a message is taken for one), changes the tree, and
//! writes it back with every length right. Its moves: set a varint to an
//! interesting value; put another of the model's strings (a tensor or node
//! name, so that inputs get rewired) or an op or attribute name into a
//! string; drop, duplicate or swap fields; copy a field from elsewhere in the
//! tree; let libFuzzer mutate one leaf's bytes. One move in four is
//! libFuzzer's own byte-level mutation of the whole input.

/// One field of a message.
#[derive(Debug, Clone)]
struct Field {
    num: u64,
    val: Val,
}

#[derive(Debug, Clone)]
enum Val {
    Varint(u64),
    Fixed64([u8; 8]),
    Fixed32([u8; 4]),
    Bytes(Vec<u8>),
    Msg(Vec<Field>),
}

fn varint(b: &[u8], pos: &mut usize) -> Option<u64> {
    let mut v = 0u64;
    for i in 0..10 {
        let byte = *b.get(*pos)?;
        *pos += 1;
        v |= ((byte & 0x7f) as u64) << (7 * i);
        if byte & 0x80 == 0 {
            return Some(v);
        }
    }
    None
}

/// The fields of `b`, if all of it is a well-formed message.
fn parse(b: &[u8], depth: u32) -> Option<Vec<Field>> {
    let mut pos = 0;
    let mut out = Vec::new();
    while pos < b.len() {
        let key = varint(b, &mut pos)?;
        let num = key >> 3;
        if num == 0 || num > 1 << 20 {
            return None;
        }
        let val = match key & 7 {
            0 => Val::Varint(varint(b, &mut pos)?),
            1 => Val::Fixed64(b.get(pos..pos + 8)?.try_into().ok()?),
            2 => {
                let n = usize::try_from(varint(b, &mut pos)?).ok()?;
                let body = b.get(pos..pos.checked_add(n)?)?;
                pos += n;
                let text = !body.is_empty() && body.iter().all(|c| c.is_ascii_graphic());
                match (text || depth > 8, parse(body, depth + 1)) {
                    (false, Some(m)) if !m.is_empty() => Val::Msg(m),
                    _ => Val::Bytes(body.to_vec()),
                }
            }
            5 => Val::Fixed32(b.get(pos..pos + 4)?.try_into().ok()?),
            _ => return None,
        };
        if key & 7 == 1 {
            pos += 8;
        } else if key & 7 == 5 {
            pos += 4;
        }
        out.push(Field { num, val });
    }
    Some(out)
}

fn put_varint(out: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        out.push(v as u8 | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

fn encode(fields: &[Field], out: &mut Vec<u8>) {
    for f in fields {
        let wire = match f.val {
            Val::Varint(_) => 0,
            Val::Fixed64(_) => 1,
            Val::Bytes(_) | Val::Msg(_) => 2,
            Val::Fixed32(_) => 5,
        };
        put_varint(out, f.num << 3 | wire);
        match &f.val {
            Val::Varint(v) => put_varint(out, *v),
            Val::Fixed64(b) => out.extend_from_slice(b),
            Val::Fixed32(b) => out.extend_from_slice(b),
            Val::Bytes(b) => {
                put_varint(out, b.len() as u64);
                out.extend_from_slice(b);
            }
            Val::Msg(m) => {
                let mut body = Vec::new();
                encode(m, &mut body);
                put_varint(out, body.len() as u64);
                out.extend_from_slice(&body);
            }
        }
    }
}

/// The shim's seeded generator, with a `usize` range.
struct Rng(npukit_shim::XorShift);
impl Rng {
    fn below(&mut self, n: usize) -> usize {
        self.0.below(n.max(1) as u64) as usize
    }
}

/// Paths to every message (as child indices from the root), the root first.
fn messages(fields: &[Field], path: &mut Vec<usize>, out: &mut Vec<Vec<usize>>) {
    out.push(path.clone());
    for (i, f) in fields.iter().enumerate() {
        if let Val::Msg(m) = &f.val {
            path.push(i);
            messages(m, path, out);
            path.pop();
        }
    }
}

fn at<'a>(root: &'a mut Vec<Field>, path: &[usize]) -> &'a mut Vec<Field> {
    let mut m = root;
    for &i in path {
        m = match &mut m[i].val {
            Val::Msg(inner) => inner,
            _ => unreachable!("paths lead to messages"),
        };
    }
    m
}

fn strings(fields: &[Field], out: &mut Vec<Vec<u8>>) {
    for f in fields {
        match &f.val {
            Val::Bytes(b) if is_name(b) => out.push(b.clone()),
            Val::Msg(m) => strings(m, out),
            _ => {}
        }
    }
}

/// Names an ONNX mutation may write into a string besides the ops the
/// importer knows (`SUPPORTED_OPS`): an op it does not, attribute names and
/// values, domains.
const WORDS: &[&str] = &[
    "Sigmoid",
    "kernel_shape",
    "strides",
    "pads",
    "dilations",
    "group",
    "axis",
    "auto_pad",
    "SAME_UPPER",
    "NOTSET",
    "transA",
    "transB",
    "alpha",
    "beta",
    "min",
    "max",
    "ceil_mode",
    "count_include_pad",
    "ai.onnx",
    "com.microsoft",
    "",
];

const VARINTS: &[u64] = &[
    0,
    1,
    2,
    3,
    4,
    7,
    8,
    16,
    64,
    65,
    127,
    128,
    255,
    256,
    1 << 16,
    1 << 20,
    1 << 26,
    1 << 31,
    1 << 32,
    1 << 40,
    1 << 62,
    u64::MAX,
    u64::MAX - 1,
    i64::MIN as u64,
];

/// Leaves (non-message fields) by path to their message and index.
fn leaves(fields: &[Field], path: &mut Vec<usize>, out: &mut Vec<(Vec<usize>, usize)>) {
    for (i, f) in fields.iter().enumerate() {
        if let Val::Msg(m) = &f.val {
            path.push(i);
            leaves(m, path, out);
            path.pop();
        } else {
            out.push((path.clone(), i));
        }
    }
}

/// A random one of the leaves `ls` whose value `want` accepts.
fn pick(
    tree: &mut Vec<Field>,
    ls: &[(Vec<usize>, usize)],
    rng: &mut Rng,
    want: impl Fn(&Val) -> bool,
) -> Option<(Vec<usize>, usize)> {
    let ok: Vec<_> = ls
        .iter()
        .filter(|(p, i)| want(&at(tree, p)[*i].val))
        .collect();
    ok.get(rng.below(ok.len())).map(|&l| l.clone())
}

/// A short printable string (a name, an op type, an attribute name).
fn is_name(b: &[u8]) -> bool {
    b.len() <= 64 && b.iter().all(|c| c.is_ascii_graphic())
}

/// One structural mutation of `tree`; false if there was nothing to do.
fn mutate_tree(tree: &mut Vec<Field>, rng: &mut Rng) -> bool {
    let mut msgs = Vec::new();
    messages(tree, &mut Vec::new(), &mut msgs);
    let mut ls = Vec::new();
    leaves(tree, &mut Vec::new(), &mut ls);
    match rng.below(7) {
        // A varint leaf to an interesting value, or near its own value.
        0 | 1 => {
            let Some((p, i)) = pick(tree, &ls, rng, |v| matches!(v, Val::Varint(_))) else {
                return false;
            };
            let Val::Varint(v) = &mut at(tree, &p)[i].val else {
                return false;
            };
            *v = match rng.below(3) {
                0 => VARINTS[rng.below(VARINTS.len())],
                1 => v.wrapping_add(rng.below(5) as u64).wrapping_sub(2),
                _ => v.wrapping_neg(),
            };
        }
        // A string leaf to another string of the model or a word.
        2 | 3 => {
            let Some((p, i)) = pick(tree, &ls, rng, |v| matches!(v, Val::Bytes(b) if is_name(b)))
            else {
                return false;
            };
            let mut pool = Vec::new();
            strings(tree, &mut pool);
            let new = if rng.below(2) == 0 && !pool.is_empty() {
                pool[rng.below(pool.len())].clone()
            } else {
                let ops = npukit_compiler::onnx::SUPPORTED_OPS;
                let k = rng.below(ops.len() + WORDS.len());
                ops.get(k)
                    .unwrap_or_else(|| &WORDS[k - ops.len()])
                    .as_bytes()
                    .to_vec()
            };
            at(tree, &p)[i].val = Val::Bytes(new);
        }
        // Drop, duplicate or swap fields of one message.
        4 => {
            let p = msgs[rng.below(msgs.len())].clone();
            let m = at(tree, &p);
            if m.is_empty() {
                return false;
            }
            let i = rng.below(m.len());
            match rng.below(3) {
                0 => {
                    m.remove(i);
                }
                1 => {
                    let f = m[i].clone();
                    let j = rng.below(m.len() + 1);
                    m.insert(j, f);
                }
                _ => {
                    let j = rng.below(m.len());
                    m.swap(i, j);
                }
            }
        }
        // A field copied from anywhere into any message.
        5 => {
            let src = msgs[rng.below(msgs.len())].clone();
            let m = at(tree, &src);
            if m.is_empty() {
                return false;
            }
            let f = m[rng.below(m.len())].clone();
            let dst = msgs[rng.below(msgs.len())].clone();
            let m = at(tree, &dst);
            let j = rng.below(m.len() + 1);
            m.insert(j, f);
        }
        // libFuzzer's byte mutations on one bytes leaf (tensor data, names).
        _ => {
            let Some((p, i)) = pick(tree, &ls, rng, |v| matches!(v, Val::Bytes(_))) else {
                return false;
            };
            let Val::Bytes(b) = &mut at(tree, &p)[i].val else {
                return false;
            };
            let len = b.len();
            b.resize(len * 2 + 16, 0);
            let n = libfuzzer_sys::fuzzer_mutate(b, len, len * 2 + 16);
            b.truncate(n);
        }
    }
    true
}

/// The mutator of the `onnx` target: `data[..size]` in, the new size out.
pub fn mutate(data: &mut [u8], size: usize, max_size: usize, seed: u32) -> usize {
    let mut rng = Rng(npukit_shim::XorShift::new(seed as u64 | 1 << 32));
    if rng.below(4) != 0 {
        if let Some(mut tree) = parse(&data[..size], 0) {
            for _ in 0..1 + rng.below(3) {
                mutate_tree(&mut tree, &mut rng);
            }
            let mut out = Vec::new();
            encode(&tree, &mut out);
            if out.len() <= max_size {
                data[..out.len()].copy_from_slice(&out);
                return out.len();
            }
        }
    }
    libfuzzer_sys::fuzzer_mutate(data, size, max_size)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_checked_in_models_read_and_write_back_unchanged() {
        let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/../workloads/onnx");
        for e in std::fs::read_dir(dir).unwrap() {
            let b = std::fs::read(e.unwrap().path()).unwrap();
            let tree = parse(&b, 0).expect("a model parses");
            let mut out = Vec::new();
            encode(&tree, &mut out);
            assert_eq!(out, b);
        }
    }
}
