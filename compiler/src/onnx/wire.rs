//! A small protobuf wire-format reader and the part of the ONNX schema the
//! importer needs (field numbers from onnx.proto). Hand-written rather than
//! generated: no protoc, no new dependency, and every malformed or truncated
//! input is an error naming the message, the field and the byte offset.

/// A malformed file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WireError {
    pub at: usize,
    pub message: String,
}

type R<T> = Result<T, WireError>;

/// One field: number and value.
#[derive(Debug, Clone, Copy)]
enum Val<'a> {
    Varint(u64),
    Fixed64(u64),
    Bytes(&'a [u8]),
    Fixed32(u32),
}

struct Reader<'a> {
    buf: &'a [u8],
    pos: usize,
    /// Offset of `buf` in the file, for messages.
    base: usize,
    what: &'static str,
}

impl<'a> Reader<'a> {
    fn new(buf: &'a [u8], base: usize, what: &'static str) -> Self {
        Reader {
            buf,
            pos: 0,
            base,
            what,
        }
    }

    fn err(&self, m: String) -> WireError {
        WireError {
            at: self.base + self.pos,
            message: format!("{}: {m}", self.what),
        }
    }

    fn varint(&mut self) -> R<u64> {
        let mut v = 0u64;
        for i in 0..10 {
            let Some(&b) = self.buf.get(self.pos) else {
                return Err(self.err("truncated (a varint runs past the end)".into()));
            };
            self.pos += 1;
            v |= ((b & 0x7f) as u64) << (7 * i);
            if b & 0x80 == 0 {
                return Ok(v);
            }
        }
        Err(self.err("a varint is longer than 10 bytes".into()))
    }

    fn take(&mut self, n: usize) -> R<&'a [u8]> {
        if self.buf.len() - self.pos < n {
            return Err(self.err(format!(
                "truncated (a field needs {n} bytes, {} are left)",
                self.buf.len() - self.pos
            )));
        }
        let s = &self.buf[self.pos..self.pos + n];
        self.pos += n;
        Ok(s)
    }

    /// The next field, or `None` at the end.
    fn next(&mut self) -> R<Option<(u32, Val<'a>, usize)>> {
        if self.pos >= self.buf.len() {
            return Ok(None);
        }
        let key = self.varint()?;
        let field = (key >> 3) as u32;
        let v = match key & 7 {
            0 => Val::Varint(self.varint()?),
            1 => Val::Fixed64(u64::from_le_bytes(
                self.take(8)?.try_into().expect("8 bytes"),
            )),
            2 => {
                let n = self.varint()? as usize;
                let at = self.base + self.pos;
                let b = self.take(n)?;
                return Ok(Some((field, Val::Bytes(b), at)));
            }
            5 => Val::Fixed32(u32::from_le_bytes(
                self.take(4)?.try_into().expect("4 bytes"),
            )),
            t => {
                return Err(self.err(format!(
                    "field {field} has wire type {t}, which protobuf does not define"
                )))
            }
        };
        Ok(Some((field, v, self.base + self.pos)))
    }
}

fn bytes<'a>(v: Val<'a>, r: &Reader<'_>, f: u32) -> R<&'a [u8]> {
    match v {
        Val::Bytes(b) => Ok(b),
        _ => Err(r.err(format!("field {f} should be length-delimited"))),
    }
}

fn string(v: Val<'_>, r: &Reader<'_>, f: u32) -> R<String> {
    String::from_utf8(bytes(v, r, f)?.to_vec())
        .map_err(|_| r.err(format!("field {f} is not UTF-8")))
}

fn int(v: Val<'_>, r: &Reader<'_>, f: u32) -> R<i64> {
    match v {
        Val::Varint(x) => Ok(x as i64),
        _ => Err(r.err(format!("field {f} should be a varint"))),
    }
}

/// Repeated int64: packed or one per field.
fn ints(v: Val<'_>, r: &Reader<'_>, f: u32, at: usize, out: &mut Vec<i64>) -> R<()> {
    match v {
        Val::Varint(x) => out.push(x as i64),
        Val::Bytes(b) => {
            let mut p = Reader::new(b, at, r.what);
            while p.pos < b.len() {
                out.push(p.varint()? as i64);
            }
        }
        _ => return Err(r.err(format!("field {f} should be int64s"))),
    }
    Ok(())
}

fn floats(v: Val<'_>, r: &Reader<'_>, f: u32, out: &mut Vec<f32>) -> R<()> {
    match v {
        Val::Fixed32(x) => out.push(f32::from_bits(x)),
        Val::Bytes(b) => {
            if b.len() % 4 != 0 {
                return Err(r.err(format!("field {f}: packed floats of {} bytes", b.len())));
            }
            out.extend(
                b.chunks_exact(4)
                    .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]])),
            );
        }
        _ => return Err(r.err(format!("field {f} should be floats"))),
    }
    Ok(())
}

/// TensorProto.DataType values the importer knows.
pub mod dtype {
    pub const FLOAT: i64 = 1;
    pub const UINT8: i64 = 2;
    pub const INT8: i64 = 3;
    pub const INT32: i64 = 6;
    pub const INT64: i64 = 7;
    pub const DOUBLE: i64 = 11;

    pub fn name(t: i64) -> &'static str {
        match t {
            1 => "float",
            2 => "uint8",
            3 => "int8",
            4 => "uint16",
            5 => "int16",
            6 => "int32",
            7 => "int64",
            9 => "bool",
            10 => "float16",
            11 => "double",
            16 => "bfloat16",
            _ => "another type",
        }
    }
}

/// TensorProto (dims 1, data_type 2, float_data 4, int32_data 5, int64_data 7,
/// name 8, raw_data 9, double_data 10).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Tensor {
    pub name: String,
    pub dims: Vec<i64>,
    pub data_type: i64,
    pub raw: Vec<u8>,
    pub float_data: Vec<f32>,
    pub int_data: Vec<i64>,
    pub double_data: Vec<f64>,
}

impl Tensor {
    fn parse(b: &[u8], at: usize) -> R<Tensor> {
        let mut r = Reader::new(b, at, "TensorProto");
        let mut t = Tensor::default();
        while let Some((f, v, a)) = r.next()? {
            match f {
                1 => ints(v, &r, f, a, &mut t.dims)?,
                2 => t.data_type = int(v, &r, f)?,
                4 => floats(v, &r, f, &mut t.float_data)?,
                5 | 7 => ints(v, &r, f, a, &mut t.int_data)?,
                8 => t.name = string(v, &r, f)?,
                9 => t.raw = bytes(v, &r, f)?.to_vec(),
                10 => match v {
                    Val::Fixed64(x) => t.double_data.push(f64::from_bits(x)),
                    Val::Bytes(bs) => t.double_data.extend(
                        bs.chunks_exact(8)
                            .map(|c| f64::from_le_bytes(c.try_into().expect("8 bytes"))),
                    ),
                    _ => return Err(r.err("field 10 should be doubles".into())),
                },
                _ => {}
            }
        }
        Ok(t)
    }

    /// The element count of the dims: an error for a negative dimension or
    /// more than [`MAX_ELEMENTS`](crate::workload::MAX_ELEMENTS) elements.
    /// (Found by the `onnx` fuzz target: the product overflowed.)
    pub fn elems(&self) -> Result<usize, String> {
        let max = crate::workload::MAX_ELEMENTS;
        self.dims
            .iter()
            .try_fold(1usize, |n, &d| {
                let d = usize::try_from(d).ok()?;
                n.checked_mul(d).filter(|&n| n <= max)
            })
            .ok_or_else(|| {
                format!(
                    "tensor {} has dims {:?}: a negative dimension, or more than {max} elements",
                    self.name, self.dims
                )
            })
    }

    /// The values as f64 (float, double, integer types), checked against the dims.
    pub fn values(&self) -> Result<Vec<f64>, String> {
        let n = self.elems()?;
        let v: Vec<f64> = if !self.raw.is_empty() {
            let (size, f): (usize, fn(&[u8]) -> f64) = match self.data_type {
                dtype::FLOAT => (4, |c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]) as f64),
                dtype::DOUBLE => (8, |c| f64::from_le_bytes(c.try_into().expect("8 bytes"))),
                dtype::UINT8 => (1, |c| c[0] as f64),
                dtype::INT8 => (1, |c| c[0] as i8 as f64),
                dtype::INT32 => (4, |c| i32::from_le_bytes([c[0], c[1], c[2], c[3]]) as f64),
                dtype::INT64 => (8, |c| {
                    i64::from_le_bytes(c.try_into().expect("8 bytes")) as f64
                }),
                t => {
                    return Err(format!(
                        "tensor {} has type {}, not supported",
                        self.name,
                        dtype::name(t)
                    ))
                }
            };
            if self.raw.len() != n * size {
                return Err(format!(
                    "tensor {} has {} bytes of data, its shape {:?} needs {}",
                    self.name,
                    self.raw.len(),
                    self.dims,
                    n * size
                ));
            }
            self.raw.chunks_exact(size).map(f).collect()
        } else if !self.float_data.is_empty() {
            self.float_data.iter().map(|&x| x as f64).collect()
        } else if !self.double_data.is_empty() {
            self.double_data.clone()
        } else {
            self.int_data
                .iter()
                .map(|&x| match self.data_type {
                    dtype::INT8 => x as i8 as f64,
                    dtype::UINT8 => x as u8 as f64,
                    _ => x as f64,
                })
                .collect()
        };
        if v.len() != n {
            return Err(format!(
                "tensor {} has {} values, its shape {:?} needs {n}",
                self.name,
                v.len(),
                self.dims
            ));
        }
        Ok(v)
    }
}

/// AttributeProto (name 1, f 2, i 3, s 4, t 5, floats 7, ints 8).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Attribute {
    pub name: String,
    pub f: Option<f32>,
    pub i: Option<i64>,
    pub s: Option<Vec<u8>>,
    pub t: Option<Tensor>,
    pub floats: Vec<f32>,
    pub ints: Vec<i64>,
}

impl Attribute {
    fn parse(b: &[u8], at: usize) -> R<Attribute> {
        let mut r = Reader::new(b, at, "AttributeProto");
        let mut a = Attribute::default();
        while let Some((f, v, p)) = r.next()? {
            match f {
                1 => a.name = string(v, &r, f)?,
                2 => match v {
                    Val::Fixed32(x) => a.f = Some(f32::from_bits(x)),
                    _ => return Err(r.err("field 2 should be a float".into())),
                },
                3 => a.i = Some(int(v, &r, f)?),
                4 => a.s = Some(bytes(v, &r, f)?.to_vec()),
                5 => a.t = Some(Tensor::parse(bytes(v, &r, f)?, p)?),
                7 => floats(v, &r, f, &mut a.floats)?,
                8 => ints(v, &r, f, p, &mut a.ints)?,
                _ => {}
            }
        }
        Ok(a)
    }
}

/// NodeProto (input 1, output 2, name 3, op_type 4, attribute 5, domain 7).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Node {
    pub inputs: Vec<String>,
    pub outputs: Vec<String>,
    pub name: String,
    pub op_type: String,
    pub domain: String,
    pub attributes: Vec<Attribute>,
}

impl Node {
    fn parse(b: &[u8], at: usize) -> R<Node> {
        let mut r = Reader::new(b, at, "NodeProto");
        let mut n = Node::default();
        while let Some((f, v, p)) = r.next()? {
            match f {
                1 => n.inputs.push(string(v, &r, f)?),
                2 => n.outputs.push(string(v, &r, f)?),
                3 => n.name = string(v, &r, f)?,
                4 => n.op_type = string(v, &r, f)?,
                5 => n.attributes.push(Attribute::parse(bytes(v, &r, f)?, p)?),
                7 => n.domain = string(v, &r, f)?,
                _ => {}
            }
        }
        Ok(n)
    }

    pub fn attr(&self, name: &str) -> Option<&Attribute> {
        self.attributes.iter().find(|a| a.name == name)
    }
}

/// ValueInfoProto (name 1, type 2 -> TypeProto.tensor_type 1 -> elem_type 1,
/// shape 2 -> dim 1 -> dim_value 1).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ValueInfo {
    pub name: String,
    pub elem_type: i64,
    /// `None` for a symbolic dimension.
    pub dims: Vec<Option<i64>>,
}

impl ValueInfo {
    fn parse(b: &[u8], at: usize) -> R<ValueInfo> {
        let mut r = Reader::new(b, at, "ValueInfoProto");
        let mut vi = ValueInfo::default();
        while let Some((f, v, p)) = r.next()? {
            match f {
                1 => vi.name = string(v, &r, f)?,
                2 => {
                    let mut ty = Reader::new(bytes(v, &r, f)?, p, "TypeProto");
                    while let Some((f, v, p)) = ty.next()? {
                        if f != 1 {
                            continue;
                        }
                        let mut tt = Reader::new(bytes(v, &ty, f)?, p, "TypeProto.Tensor");
                        while let Some((f, v, p)) = tt.next()? {
                            match f {
                                1 => vi.elem_type = int(v, &tt, f)?,
                                2 => {
                                    let mut sh =
                                        Reader::new(bytes(v, &tt, f)?, p, "TensorShapeProto");
                                    while let Some((f, v, p)) = sh.next()? {
                                        if f != 1 {
                                            continue;
                                        }
                                        let mut d = Reader::new(bytes(v, &sh, f)?, p, "Dimension");
                                        let mut val = None;
                                        while let Some((f, v, _)) = d.next()? {
                                            if f == 1 {
                                                val = Some(int(v, &d, f)?);
                                            }
                                        }
                                        vi.dims.push(val);
                                    }
                                }
                                _ => {}
                            }
                        }
                    }
                }
                _ => {}
            }
        }
        Ok(vi)
    }
}

/// GraphProto (node 1, name 2, initializer 5, input 11, output 12).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Graph {
    pub name: String,
    pub nodes: Vec<Node>,
    pub initializers: Vec<Tensor>,
    pub inputs: Vec<ValueInfo>,
    pub outputs: Vec<ValueInfo>,
}

/// ModelProto (ir_version 1, producer_name 2, graph 7, opset_import 8 -> version 2).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Model {
    pub ir_version: i64,
    pub producer: String,
    pub graph: Graph,
    pub opset: Option<i64>,
}

/// Parses an ONNX file.
pub fn parse_model(b: &[u8]) -> R<Model> {
    let mut r = Reader::new(b, 0, "ModelProto");
    let mut m = Model::default();
    let mut has_graph = false;
    while let Some((f, v, p)) = r.next()? {
        match f {
            1 => m.ir_version = int(v, &r, f)?,
            2 => m.producer = string(v, &r, f)?,
            7 => {
                has_graph = true;
                let gb = bytes(v, &r, f)?;
                let mut g = Reader::new(gb, p, "GraphProto");
                while let Some((f, v, p)) = g.next()? {
                    match f {
                        1 => m.graph.nodes.push(Node::parse(bytes(v, &g, f)?, p)?),
                        2 => m.graph.name = string(v, &g, f)?,
                        5 => m
                            .graph
                            .initializers
                            .push(Tensor::parse(bytes(v, &g, f)?, p)?),
                        11 => m.graph.inputs.push(ValueInfo::parse(bytes(v, &g, f)?, p)?),
                        12 => m.graph.outputs.push(ValueInfo::parse(bytes(v, &g, f)?, p)?),
                        _ => {}
                    }
                }
            }
            8 => {
                let mut o = Reader::new(bytes(v, &r, f)?, p, "OperatorSetIdProto");
                let mut domain = String::new();
                let mut version = None;
                while let Some((f, v, _)) = o.next()? {
                    match f {
                        1 => domain = string(v, &o, f)?,
                        2 => version = Some(int(v, &o, f)?),
                        _ => {}
                    }
                }
                if domain.is_empty() || domain == "ai.onnx" {
                    m.opset = version;
                }
            }
            _ => {}
        }
    }
    if !has_graph {
        return Err(WireError {
            at: b.len(),
            message: "ModelProto: no graph (field 7); not an ONNX model, or truncated".into(),
        });
    }
    Ok(m)
}
