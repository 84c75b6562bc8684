//! A small ordered JSON value for trace output. `serde_json::Map` orders its keys
//! by name or by insertion depending on a crate feature that any other crate in
//! the build may turn on; golden files need one order, so objects here keep the
//! order in which they were built.

use serde::ser::{Serialize, SerializeMap, SerializeSeq, Serializer};

#[derive(Debug, Clone, PartialEq)]
pub(crate) enum J {
    U(u64),
    I(i64),
    F(f64),
    B(bool),
    S(String),
    Arr(Vec<J>),
    Obj(Obj),
}

/// An object with keys in insertion order.
#[derive(Debug, Clone, PartialEq, Default)]
pub(crate) struct Obj(pub Vec<(&'static str, J)>);

impl Obj {
    pub fn new() -> Self {
        Obj(Vec::new())
    }
    pub fn with(mut self, k: &'static str, v: impl Into<J>) -> Self {
        self.0.push((k, v.into()));
        self
    }
    pub fn push(&mut self, k: &'static str, v: impl Into<J>) {
        self.0.push((k, v.into()));
    }
}

impl From<u64> for J {
    fn from(v: u64) -> Self {
        J::U(v)
    }
}
impl From<u32> for J {
    fn from(v: u32) -> Self {
        J::U(v.into())
    }
}
impl From<u16> for J {
    fn from(v: u16) -> Self {
        J::U(v.into())
    }
}
impl From<u8> for J {
    fn from(v: u8) -> Self {
        J::U(v.into())
    }
}
impl From<i64> for J {
    fn from(v: i64) -> Self {
        J::I(v)
    }
}
impl From<i32> for J {
    fn from(v: i32) -> Self {
        J::I(v.into())
    }
}
impl From<i16> for J {
    fn from(v: i16) -> Self {
        J::I(v.into())
    }
}
impl From<i8> for J {
    fn from(v: i8) -> Self {
        J::I(v.into())
    }
}
impl From<f64> for J {
    fn from(v: f64) -> Self {
        J::F(v)
    }
}
impl From<bool> for J {
    fn from(v: bool) -> Self {
        J::B(v)
    }
}
impl From<&str> for J {
    fn from(v: &str) -> Self {
        J::S(v.to_owned())
    }
}
impl From<String> for J {
    fn from(v: String) -> Self {
        J::S(v)
    }
}
impl From<Obj> for J {
    fn from(v: Obj) -> Self {
        J::Obj(v)
    }
}
impl Serialize for J {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            J::U(v) => s.serialize_u64(*v),
            J::I(v) => s.serialize_i64(*v),
            J::F(v) => s.serialize_f64(*v),
            J::B(v) => s.serialize_bool(*v),
            J::S(v) => s.serialize_str(v),
            J::Arr(v) => {
                let mut q = s.serialize_seq(Some(v.len()))?;
                for x in v {
                    q.serialize_element(x)?;
                }
                q.end()
            }
            J::Obj(o) => o.serialize(s),
        }
    }
}

impl Serialize for Obj {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut m = s.serialize_map(Some(self.0.len()))?;
        for (k, v) in &self.0 {
            m.serialize_entry(k, v)?;
        }
        m.end()
    }
}
