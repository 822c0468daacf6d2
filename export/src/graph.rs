//! A small ONNX graph builder over the `onnx-protobuf` messages: nodes named by path
//! (`blocks.3/attn/qkv`), whose output tensor carries the node's name; inline constants for
//! shapes and scalars; external initializers that point into the shared `weights.bin`.

use std::collections::{HashMap, HashSet};

use onnx_protobuf::attribute_proto::AttributeType;
use onnx_protobuf::tensor_shape_proto::{dimension, Dimension};
use onnx_protobuf::type_proto::{self, Value};
use onnx_protobuf::{
    AttributeProto, GraphProto, ModelProto, NodeProto, OperatorSetIdProto, StringStringEntryProto,
    TensorProto, TensorShapeProto, TypeProto, ValueInfoProto,
};

use crate::elem::Elem;
use crate::error::{Error, Result};
use crate::external::ExternalRef;
use crate::weights::StoredTensor;

/// ONNX IR version 8 is the one that opset 17 shipped with; older consumers (TensorRT's ONNX
/// parser) accept it.
pub const IR_VERSION: i64 = 8;
/// Opset 17: the first with `LayerNormalization`.
pub const OPSET: i64 = 17;
/// ONNX Runtime's contrib operators (Attention, FastGelu): CPU and CUDA providers.
pub const CONTRIB_DOMAIN: &str = "com.microsoft";

/// A dimension of a graph input or output.
#[derive(Debug, Clone)]
pub enum Dim {
    Fixed(i64),
    Symbolic(&'static str),
}

/// One node attribute.
pub enum Attr {
    Int(i64),
    Float(f32),
    Ints(Vec<i64>),
}

/// An external initializer a graph references: where its bytes lie in `weights.bin`.
#[derive(Debug, Clone)]
pub struct ExternalUse {
    pub offset: u64,
    pub length: u64,
    pub numel: u64,
}

#[derive(Default)]
pub struct GraphBuilder {
    nodes: Vec<NodeProto>,
    initializers: Vec<TensorProto>,
    inputs: Vec<ValueInfoProto>,
    outputs: Vec<ValueInfoProto>,
    /// Every tensor name defined so far (inputs, initializers, node outputs).
    defined: HashSet<String>,
    /// Inline constants by content key, so that equal constants are shared.
    constants: HashMap<String, String>,
    externals: Vec<ExternalUse>,
    weights_file: String,
    /// True once a node from [`CONTRIB_DOMAIN`] is added: the model then imports that domain.
    uses_contrib: bool,
    /// The first broken invariant (a name defined twice, an undefined input, …). Builder
    /// calls stay infallible so graph code reads like the model; `finish` reports it.
    fault: Option<String>,
}

impl GraphBuilder {
    pub fn new(weights_file: &str) -> Self {
        Self {
            weights_file: weights_file.to_string(),
            ..Self::default()
        }
    }

    /// Records a broken invariant; the first one is what `finish` returns.
    pub fn fault(&mut self, message: String) {
        self.fault.get_or_insert(message);
    }

    fn define(&mut self, name: &str) {
        if !self.defined.insert(name.to_string()) {
            self.fault(format!("tensor name {name} defined twice"));
        }
    }

    pub fn is_defined(&self, name: &str) -> bool {
        self.defined.contains(name)
    }

    pub fn input(&mut self, name: &str, elem: Elem, dims: &[Dim]) -> String {
        self.define(name);
        self.inputs.push(value_info(name, elem, dims));
        name.to_string()
    }

    pub fn output(&mut self, name: &str, elem: Elem, dims: &[Dim]) {
        if !self.defined.contains(name) {
            self.fault(format!("graph output {name} is not computed"));
        }
        self.outputs.push(value_info(name, elem, dims));
    }

    /// Adds a node with one output, named like the node.
    pub fn node(&mut self, name: &str, op: &str, inputs: &[&str], attrs: Vec<(&str, Attr)>) -> String {
        self.node_multi(name, op, inputs, &[name.to_string()], attrs);
        name.to_string()
    }

    /// Adds a node of ONNX Runtime's [`CONTRIB_DOMAIN`] with one output, named like the node.
    pub fn contrib(&mut self, name: &str, op: &str, inputs: &[&str], attrs: Vec<(&str, Attr)>) -> String {
        self.node_multi(name, op, inputs, &[name.to_string()], attrs);
        if let Some(node) = self.nodes.last_mut() {
            node.domain = CONTRIB_DOMAIN.to_string();
        }
        self.uses_contrib = true;
        name.to_string()
    }

    /// Adds a node with one output named `output` (graph outputs).
    pub fn node_to(&mut self, name: &str, op: &str, inputs: &[&str], output: &str, attrs: Vec<(&str, Attr)>) {
        self.node_multi(name, op, inputs, &[output.to_string()], attrs);
    }

    /// Adds a node with `n` outputs named `{name}:{i}`.
    pub fn node_n(
        &mut self,
        name: &str,
        op: &str,
        inputs: &[&str],
        n: usize,
        attrs: Vec<(&str, Attr)>,
    ) -> Vec<String> {
        let outputs: Vec<String> = (0..n).map(|i| format!("{name}:{i}")).collect();
        self.node_multi(name, op, inputs, &outputs, attrs);
        outputs
    }

    fn node_multi(
        &mut self,
        name: &str,
        op: &str,
        inputs: &[&str],
        outputs: &[String],
        attrs: Vec<(&str, Attr)>,
    ) {
        if let Some(input) = inputs
            .iter()
            .find(|i| !i.is_empty() && !self.defined.contains(**i))
        {
            self.fault(format!("node {name}: input {input} is not defined"));
        }
        for output in outputs {
            self.define(output);
        }
        let mut node = NodeProto::new();
        node.name = name.to_string();
        node.op_type = op.to_string();
        node.input = inputs.iter().map(|s| s.to_string()).collect();
        node.output = outputs.to_vec();
        node.attribute = attrs
            .into_iter()
            .map(|(name, value)| attribute(name, value))
            .collect();
        self.nodes.push(node);
    }

    /// An inline f32 or f16 scalar (rank 0), shared between nodes that use the same value.
    pub fn scalar(&mut self, value: f32, elem: Elem) -> String {
        if elem == Elem::I64 {
            self.fault(format!("scalar {value}: scalar() is for floats"));
        }
        let key = format!("{elem:?}:{:08x}", value.to_bits());
        if let Some(name) = self.constants.get(&key) {
            return name.clone();
        }
        let name = match elem {
            Elem::F16 => format!("const.f16.{value}"),
            _ => format!("const.{value}"),
        };
        let raw = match elem {
            Elem::F16 => half::f16::from_f32(value).to_le_bytes().to_vec(),
            Elem::F32 | Elem::I64 => value.to_le_bytes().to_vec(),
        };
        self.inline(&name, elem, &[], raw);
        self.constants.insert(key, name.clone());
        name
    }

    /// An inline i64 vector (shapes, axes), shared between nodes that use the same value.
    pub fn ints(&mut self, values: &[i64]) -> String {
        let key = format!("i64:{values:?}");
        if let Some(name) = self.constants.get(&key) {
            return name.clone();
        }
        let shown: Vec<String> = values.iter().map(i64::to_string).collect();
        let name = format!("const.i64[{}]", shown.join(","));
        let raw = values.iter().flat_map(|v| v.to_le_bytes()).collect();
        self.inline(&name, Elem::I64, &[values.len() as i64], raw);
        self.constants.insert(key, name.clone());
        name
    }

    /// An inline f32 tensor: small computed constants (frequencies, LayerNorm's unit scale).
    pub fn floats(&mut self, name: &str, dims: &[i64], values: &[f32]) -> String {
        if dims.iter().product::<i64>() as usize != values.len() {
            self.fault(format!(
                "constant {name}: dims {dims:?} hold {} values",
                values.len()
            ));
        }
        let raw = values.iter().flat_map(|v| v.to_le_bytes()).collect();
        self.inline(name, Elem::F32, dims, raw);
        name.to_string()
    }

    fn inline(&mut self, name: &str, elem: Elem, dims: &[i64], raw: Vec<u8>) {
        self.define(name);
        let mut tensor = TensorProto::new();
        tensor.name = name.to_string();
        tensor.data_type = elem.onnx() as i32;
        tensor.dims = dims.to_vec();
        tensor.raw_data = raw;
        self.initializers.push(tensor);
    }

    /// References a tensor stored in the weights file (once per graph, under its own name).
    pub fn external(&mut self, stored: &StoredTensor) -> String {
        self.external_view(&stored.name, stored, 0, &stored.dims)
    }

    /// An initializer for a contiguous part of a stored tensor: `numel(dims)` elements from
    /// element `start`.
    pub fn external_view(&mut self, name: &str, stored: &StoredTensor, start: u64, dims: &[i64]) -> String {
        if self.defined.contains(name) {
            return name.to_string();
        }
        self.define(name);
        let numel: u64 = dims.iter().product::<i64>() as u64;
        let elem_size = stored.elem.size() as u64;
        if (start + numel) * elem_size > stored.length {
            self.fault(format!("view {name} exceeds {}", stored.name));
        }
        let offset = stored.offset + start * elem_size;
        let length = numel * elem_size;
        let mut tensor = TensorProto::new();
        tensor.name = name.to_string();
        tensor.data_type = stored.elem.onnx() as i32;
        tensor.dims = dims.to_vec();
        tensor.doc_string = stored.doc.clone();
        ExternalRef {
            location: self.weights_file.clone(),
            offset,
            length,
        }
        .apply_to(&mut tensor);
        self.initializers.push(tensor);
        self.externals.push(ExternalUse {
            offset,
            length,
            numel,
        });
        name.to_string()
    }

    /// The external initializers referenced so far, in first-use order.
    pub fn externals(&self) -> &[ExternalUse] {
        &self.externals
    }

    /// The model, or the first broken invariant met while building it.
    pub fn finish(self, graph_name: &str, doc: &str, metadata: &[(&str, String)]) -> Result<ModelProto> {
        if let Some(fault) = self.fault {
            return Err(Error::Internal(format!("graph {graph_name}: {fault}")));
        }
        let mut graph = GraphProto::new();
        graph.name = graph_name.to_string();
        graph.node = self.nodes;
        graph.initializer = self.initializers;
        graph.input = self.inputs;
        graph.output = self.outputs;
        let mut model = ModelProto::new();
        model.ir_version = IR_VERSION;
        model.opset_import = vec![opset_id("", OPSET)];
        if self.uses_contrib {
            model.opset_import.push(opset_id(CONTRIB_DOMAIN, 1));
        }
        model.producer_name = "odelt-export".into();
        model.producer_version = env!("CARGO_PKG_VERSION").into();
        model.doc_string = doc.to_string();
        model.metadata_props = metadata.iter().map(|(k, v)| entry(k, v)).collect();
        model.graph = protobuf::MessageField::some(graph);
        Ok(model)
    }
}

fn opset_id(domain: &str, version: i64) -> OperatorSetIdProto {
    let mut opset = OperatorSetIdProto::new();
    opset.domain = domain.to_string();
    opset.version = version;
    opset
}

fn entry(key: &str, value: &str) -> StringStringEntryProto {
    let mut e = StringStringEntryProto::new();
    e.key = key.to_string();
    e.value = value.to_string();
    e
}

/// A node attribute as ONNX stores it.
pub fn attribute(name: &str, value: Attr) -> AttributeProto {
    let mut a = AttributeProto::new();
    a.name = name.to_string();
    match value {
        Attr::Int(i) => {
            a.type_ = AttributeType::INT.into();
            a.i = i;
        }
        Attr::Float(f) => {
            a.type_ = AttributeType::FLOAT.into();
            a.f = f;
        }
        Attr::Ints(v) => {
            a.type_ = AttributeType::INTS.into();
            a.ints = v;
        }
    }
    a
}

fn value_info(name: &str, elem: Elem, dims: &[Dim]) -> ValueInfoProto {
    let mut shape = TensorShapeProto::new();
    shape.dim = dims
        .iter()
        .map(|d| {
            let mut dim = Dimension::new();
            dim.value = Some(match d {
                Dim::Fixed(v) => dimension::Value::DimValue(*v),
                Dim::Symbolic(s) => dimension::Value::DimParam(s.to_string()),
            });
            dim
        })
        .collect();
    let mut tensor = type_proto::Tensor::new();
    tensor.elem_type = elem.onnx() as i32;
    tensor.shape = protobuf::MessageField::some(shape);
    let mut ty = TypeProto::new();
    ty.value = Some(Value::TensorType(tensor));
    let mut info = ValueInfoProto::new();
    info.name = name.to_string();
    info.type_ = protobuf::MessageField::some(ty);
    info
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_broken_graph_is_an_internal_error_not_a_panic() {
        let mut g = GraphBuilder::new("weights.bin");
        let x = g.input("x", Elem::F32, &[Dim::Fixed(1)]);
        g.node("relu", "Relu", &[&x, "nowhere"], vec![]);
        g.node("relu", "Relu", &[&x], vec![]);
        g.output("y", Elem::F32, &[Dim::Fixed(1)]);
        let err = g.finish("broken", "", &[]).unwrap_err();
        assert!(!err.is_input(), "{err}");
        // The first fault is the one reported.
        assert!(err.to_string().contains("input nowhere is not defined"), "{err}");
    }
}
