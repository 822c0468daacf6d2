//! Element types of the graphs and of the stored weights.

use onnx_protobuf::tensor_proto::DataType;

/// Element types the graphs use.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Elem {
    F32,
    F16,
    I64,
}

impl Elem {
    pub fn onnx(self) -> DataType {
        match self {
            Elem::F32 => DataType::FLOAT,
            Elem::F16 => DataType::FLOAT16,
            Elem::I64 => DataType::INT64,
        }
    }

    pub fn size(self) -> usize {
        match self {
            Elem::F32 => 4,
            Elem::F16 => 2,
            Elem::I64 => 8,
        }
    }
}
