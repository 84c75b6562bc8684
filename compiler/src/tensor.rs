//! Host-side tensors: what the reference executor returns and what
//! [`crate::read_output`] reads back from device memory.

use serde::{Deserialize, Serialize};

/// Element type of a tensor.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum DType {
    #[serde(rename = "int8")]
    I8,
    #[serde(rename = "int32")]
    I32,
}

impl DType {
    /// Bytes per element.
    pub const fn bytes(self) -> usize {
        match self {
            DType::I8 => 1,
            DType::I32 => 4,
        }
    }

    /// The name used in workload files: `int8`, `int32`.
    pub const fn name(self) -> &'static str {
        match self {
            DType::I8 => "int8",
            DType::I32 => "int32",
        }
    }
}

impl std::fmt::Display for DType {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// The elements of a tensor, row-major.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TensorData {
    I8(Vec<i8>),
    I32(Vec<i32>),
}

/// A dense row-major tensor.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Tensor {
    pub shape: Vec<usize>,
    pub data: TensorData,
}

impl Tensor {
    pub fn i8(shape: Vec<usize>, data: Vec<i8>) -> Self {
        debug_assert_eq!(shape.iter().product::<usize>(), data.len());
        Tensor {
            shape,
            data: TensorData::I8(data),
        }
    }

    pub fn i32(shape: Vec<usize>, data: Vec<i32>) -> Self {
        debug_assert_eq!(shape.iter().product::<usize>(), data.len());
        Tensor {
            shape,
            data: TensorData::I32(data),
        }
    }

    pub fn dtype(&self) -> DType {
        match self.data {
            TensorData::I8(_) => DType::I8,
            TensorData::I32(_) => DType::I32,
        }
    }

    /// Number of elements.
    pub fn len(&self) -> usize {
        match &self.data {
            TensorData::I8(v) => v.len(),
            TensorData::I32(v) => v.len(),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Element `i` (row-major) widened to i32.
    pub fn get(&self, i: usize) -> i32 {
        match &self.data {
            TensorData::I8(v) => v[i] as i32,
            TensorData::I32(v) => v[i],
        }
    }

    /// All elements widened to i32.
    pub fn to_i32(&self) -> Vec<i32> {
        (0..self.len()).map(|i| self.get(i)).collect()
    }

    /// The first element where `self` and `other` differ, as
    /// `(row-major index, self value, other value)`; `None` when they are equal
    /// (shapes and types are compared by `==`).
    pub fn first_difference(&self, other: &Tensor) -> Option<(usize, i32, i32)> {
        (0..self.len().min(other.len()))
            .find(|&i| self.get(i) != other.get(i))
            .map(|i| (i, self.get(i), other.get(i)))
    }
}
