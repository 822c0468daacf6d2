//! int8 engines for ONNX Runtime's CPU provider: a rewrite of any exported graph
//! (docs/DESIGN.md §11).
//!
//! Every `MatMul` and `Gemm` whose weight is a 2-D fp32 initializer in the export's
//! `weights.bin` becomes one `com.microsoft.DynamicQuantizeMatMul`: int8 weights with a
//! symmetric scale per output channel (column of B), the activation quantized to uint8 per
//! tensor at run time, the bias (`Gemm`'s C, or the `Add` of a bias that follows a `MatMul`)
//! added in fp32 inside the same kernel; a `Gemm` whose C another node computes (the fused
//! graph's adaLN) gets that C added by an `Add` after the kernel. A `com.microsoft.Attention`
//! (the fused graph's, qkv weight in `[in, out]` layout) becomes the same int8 qkv product,
//! a `Split` into q, k and v and a `com.microsoft.MultiHeadAttention` that adds the qkv bias
//! (the form fused graphs were written in before `Attention`, which the rewrite also takes).
//! Everything else — the patch convolution, norms, the attention products of two
//! activations, softmax, the adaLN modulation, gates and residual adds — keeps the export's
//! fp32. The rewrite looks at operators and initializers only, so it applies to whatever
//! graph the exporter emits.
//!
//! Shared weights: the int8 weights and scales of every length are quantized once into one
//! file, `weights.int8.<hash>.bin` (named by its content, 64 KiB-aligned int8 tensors), and
//! every length's engine references its subset, as the fp32 engines reference `weights.bin`.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::Path;

use odelt_export::external::{read_model, ExternalFiles, ExternalRef};
use odelt_export::{attribute, Attr, CONTRIB_DOMAIN};
use odelt_format::atomic::write_atomic;
use odelt_format::Manifest;
use onnx_protobuf::tensor_proto::DataType;
use onnx_protobuf::{AttributeProto, GraphProto, ModelProto, NodeProto, OperatorSetIdProto, TensorProto};

use crate::error::{Error, Result};
use crate::relink::{hex_sha256, ALIGNMENT};

/// Prefix of the shared int8 weights file's name.
pub const FILE_PREFIX: &str = "weights.int8.";
/// Scales are small: packed at this alignment after their weights.
const SCALE_ALIGNMENT: u64 = 64;

/// One fp32 weight as a matrix product uses it: B = W ([K, N]) or, for `Gemm(transB = 1)`,
/// B = Wᵀ of a stored [N, K].
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
struct WeightUse {
    name: String,
    transposed: bool,
}

impl WeightUse {
    fn int8_name(&self) -> String {
        format!("{}{}.int8", self.name, if self.transposed { ".T" } else { "" })
    }
    fn scale_name(&self) -> String {
        format!("{}.scale", self.int8_name())
    }
}

/// Where one quantized weight lies in the int8 file.
#[derive(Debug, Clone)]
struct Stored {
    values: ExternalRef,
    scales: ExternalRef,
    k: i64,
    n: i64,
}

/// The shared int8 weights of an export: the file and what it holds.
#[derive(Debug, Clone)]
pub struct Int8Weights {
    /// The file's name, in the export folder.
    pub file: String,
    pub bytes: u64,
    tensors: HashMap<WeightUse, Stored>,
}

/// Symmetric int8 quantization of B's columns: per column n, scale = max |B[·, n]| / 127 and
/// q = round(B / scale) in [−127, 127]. `w` is B ([K, N], row-major) or, `transposed`, Bᵀ.
/// Returns the int8 values of B in row-major [K, N] and the N scales.
pub fn quantize_columns(w: &[f32], k: usize, n: usize, transposed: bool) -> (Vec<i8>, Vec<f32>) {
    let at = |kk: usize, nn: usize| {
        if transposed {
            w[nn * k + kk]
        } else {
            w[kk * n + nn]
        }
    };
    let mut scales = vec![0f32; n];
    for kk in 0..k {
        for (nn, s) in scales.iter_mut().enumerate() {
            *s = s.max(at(kk, nn).abs());
        }
    }
    for s in &mut scales {
        // An all-zero column (adaLN-Zero before training) quantizes to zeros with any scale.
        *s = if *s > 0.0 { *s / 127.0 } else { 1.0 };
    }
    let mut values = vec![0i8; k * n];
    for kk in 0..k {
        for nn in 0..n {
            values[kk * n + nn] = (at(kk, nn) / scales[nn]).round().clamp(-127.0, 127.0) as i8;
        }
    }
    (values, scales)
}

/// The fp32 external initializers of `weights_file` in `model`, by name: (reference, dims).
fn fp32_weights(model: &ModelProto, weights_file: &str) -> HashMap<String, (ExternalRef, Vec<i64>)> {
    model
        .graph
        .initializer
        .iter()
        .filter(|t| t.data_type == DataType::FLOAT as i32)
        .filter_map(|t| ExternalRef::of(t).map(|r| (t, r)))
        .filter(|(_, r)| r.location == weights_file)
        .map(|(t, r)| (t.name.clone(), (r, t.dims.clone())))
        .collect()
}

fn attr_int(node: &NodeProto, name: &str, default: i64) -> i64 {
    node.attribute
        .iter()
        .find(|a| a.name == name)
        .map_or(default, |a| a.i)
}

fn attr_float(node: &NodeProto, name: &str, default: f32) -> f32 {
    node.attribute
        .iter()
        .find(|a| a.name == name)
        .map_or(default, |a| a.f)
}

/// A matrix product the rewrite turns into `DynamicQuantizeMatMul`.
struct Product {
    weight: WeightUse,
    /// [K, N] of B.
    k: i64,
    n: i64,
    /// `Gemm`'s C when it is a 1-D bias of N.
    bias: Option<String>,
    /// What the node computes after the product.
    then: Then,
}

/// The work of a product's node that follows its int8 product.
enum Then {
    /// None: the product (with its bias) is the node's output.
    Nothing,
    /// `Gemm`'s C when another node computes it (the fused graph's adaLN bias plus one): added
    /// after the int8 product by an `Add`, which broadcasts as Gemm's C does.
    Add(String),
    /// `Attention`'s self-attention over its qkv product: a `Split` into q, k and v, then
    /// `MultiHeadAttention` with the qkv bias and the node's attributes.
    Attention {
        bias: Option<String>,
        attributes: Vec<AttributeProto>,
    },
}

/// `Attention` attributes that `MultiHeadAttention` takes with the same meaning; an
/// `Attention` with any other (a causal mask, rotary embeddings, unequal q, k and v widths)
/// stays fp32.
const SELF_ATTENTION_ATTRIBUTES: [&str; 2] = ["num_heads", "scale"];

/// The product `node` computes with an fp32 weight initializer, if the rewrite can take it.
fn product(node: &NodeProto, weights: &HashMap<String, (ExternalRef, Vec<i64>)>) -> Option<Product> {
    if node.input.len() < 2 {
        return None;
    }
    let (_, dims) = weights.get(&node.input[1])?;
    let &[rows, cols] = dims.as_slice() else {
        return None;
    };
    let plain = WeightUse {
        name: node.input[1].clone(),
        transposed: false,
    };
    match (node.domain.as_str(), node.op_type.as_str()) {
        ("", "MatMul") if node.input.len() == 2 => Some(Product {
            weight: plain,
            k: rows,
            n: cols,
            bias: None,
            then: Then::Nothing,
        }),
        (CONTRIB_DOMAIN, "Attention") => {
            let bias = node.input.get(2).filter(|b| !b.is_empty());
            let self_attention = node.input.len() <= 3
                && cols % 3 == 0
                && node
                    .attribute
                    .iter()
                    .all(|a| SELF_ATTENTION_ATTRIBUTES.contains(&a.name.as_str()));
            self_attention.then(|| Product {
                weight: plain,
                k: rows,
                n: cols,
                bias: None,
                then: Then::Attention {
                    bias: bias.cloned(),
                    attributes: node.attribute.clone(),
                },
            })
        }
        ("", "Gemm") => {
            let transposed = attr_int(node, "transB", 0) == 1;
            let (k, n) = if transposed { (cols, rows) } else { (rows, cols) };
            let c = node.input.get(2).filter(|c| !c.is_empty());
            let plain = attr_int(node, "transA", 0) == 0
                && attr_float(node, "alpha", 1.0) == 1.0
                && (c.is_none() || attr_float(node, "beta", 1.0) == 1.0);
            let stored_bias = c.is_some_and(|c| weights.get(c).is_some_and(|(_, d)| d == &[n]));
            let computed = c.is_some_and(|c| !weights.contains_key(c));
            (plain && (c.is_none() || stored_bias || computed)).then(|| Product {
                weight: WeightUse {
                    name: node.input[1].clone(),
                    transposed,
                },
                k,
                n,
                bias: c.filter(|_| stored_bias).cloned(),
                then: c
                    .filter(|_| computed)
                    .map_or(Then::Nothing, |c| Then::Add(c.clone())),
            })
        }
        _ => None,
    }
}

/// Every weight use the rewrite quantizes in the graphs of `manifest`'s lengths, with its
/// fp32 bytes' reference, sorted by name (the int8 file's order).
fn weight_uses(dir: &Path, manifest: &Manifest) -> Result<BTreeMap<WeightUse, (ExternalRef, i64, i64)>> {
    let mut uses = BTreeMap::new();
    for entry in &manifest.lengths {
        let model = read_model(&dir.join(&entry.file))?;
        let weights = fp32_weights(&model, &manifest.weights_file);
        for node in &model.graph.node {
            if let Some(p) = product(node, &weights) {
                let r = weights[&p.weight.name].0.clone();
                uses.insert(p.weight, (r, p.k, p.n));
            }
        }
    }
    Ok(uses)
}

/// Quantizes the weights of every matrix product of every exported length into one file
/// (written atomically, kept when a file of the same content exists).
pub fn quantize_weights(dir: &Path, manifest: &Manifest) -> Result<Int8Weights> {
    let uses = weight_uses(dir, manifest)?;
    let mut files = ExternalFiles::new(dir);
    let mut bytes: Vec<u8> = Vec::new();
    let mut fp32 = Vec::new();
    let mut placed = Vec::new();
    for (weight, (r, k, n)) in uses {
        files.read(&r, &mut fp32)?;
        let w: Vec<f32> = fp32
            .chunks_exact(4)
            .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
            .collect();
        let (values, scales) = quantize_columns(&w, k as usize, n as usize, weight.transposed);
        let values_at = append(&mut bytes, ALIGNMENT, &i8_bytes(&values));
        let scale_bytes: Vec<u8> = scales.iter().flat_map(|s| s.to_le_bytes()).collect();
        let scales_at = append(&mut bytes, SCALE_ALIGNMENT, &scale_bytes);
        placed.push((
            weight,
            values_at,
            values.len() as u64,
            scales_at,
            scale_bytes.len() as u64,
            k,
            n,
        ));
    }
    let file = format!("{FILE_PREFIX}{}.bin", &hex_sha256(&bytes)[..16]);
    let path = dir.join(&file);
    let current = std::fs::metadata(&path).is_ok_and(|m| m.len() == bytes.len() as u64);
    if !current {
        write_atomic(&path, &bytes)?;
    }
    let reference = |offset, length| ExternalRef {
        location: file.clone(),
        offset,
        length,
    };
    let tensors = placed
        .into_iter()
        .map(|(weight, vo, vl, so, sl, k, n)| {
            let stored = Stored {
                values: reference(vo, vl),
                scales: reference(so, sl),
                k,
                n,
            };
            (weight, stored)
        })
        .collect();
    Ok(Int8Weights {
        bytes: bytes.len() as u64,
        file,
        tensors,
    })
}

fn i8_bytes(values: &[i8]) -> Vec<u8> {
    values.iter().map(|v| *v as u8).collect()
}

/// Appends `data` to `bytes` at the next multiple of `alignment`; returns its offset.
fn append(bytes: &mut Vec<u8>, alignment: u64, data: &[u8]) -> u64 {
    let offset = (bytes.len() as u64).next_multiple_of(alignment);
    bytes.resize(offset as usize, 0);
    bytes.extend_from_slice(data);
    offset
}

fn external_tensor(name: &str, data_type: DataType, dims: Vec<i64>, r: &ExternalRef) -> TensorProto {
    let mut t = TensorProto::new();
    t.name = name.into();
    t.data_type = data_type as i32;
    t.dims = dims;
    r.apply_to(&mut t);
    t
}

/// The bias `Add` that only consumes `output` (a `MatMul`'s), if its other input is a 1-D
/// fp32 initializer of `n`: (the Add's index, the bias).
fn bias_add(
    graph: &GraphProto,
    output: &str,
    n: i64,
    weights: &HashMap<String, (ExternalRef, Vec<i64>)>,
) -> Option<(usize, String)> {
    if graph.output.iter().any(|o| o.name == output) {
        return None;
    }
    let mut consumers = graph
        .node
        .iter()
        .enumerate()
        .filter(|(_, node)| node.input.iter().any(|i| i == output));
    let (index, add) = consumers.next()?;
    if consumers.next().is_some() || add.op_type != "Add" || !add.domain.is_empty() || add.input.len() != 2 {
        return None;
    }
    let bias = if add.input[0] == output {
        &add.input[1]
    } else {
        &add.input[0]
    };
    weights
        .get(bias)
        .is_some_and(|(_, d)| d == &[n])
        .then(|| (index, bias.clone()))
}

/// What [`quantize_graph`] changed.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Rewritten {
    /// Matrix products now in int8.
    pub products: usize,
    /// Bias `Add`s folded into them.
    pub biases_folded: usize,
}

/// Rewrites `model` (a graph of the export, its weights in `weights_file`) so that its matrix
/// products with weight initializers run in int8 from `int8`'s file.
pub fn quantize_graph(model: &mut ModelProto, weights_file: &str, int8: &Int8Weights) -> Result<Rewritten> {
    let weights = fp32_weights(model, weights_file);
    let mut report = Rewritten::default();
    let mut removed = HashSet::new();
    let mut added = HashSet::new();
    let mut new_initializers = Vec::new();
    // Nodes to insert after the node of that index.
    let mut after: HashMap<usize, Vec<NodeProto>> = HashMap::new();
    let graph = model.graph.mut_or_insert_default();
    for index in 0..graph.node.len() {
        let Some(p) = product(&graph.node[index], &weights) else {
            continue;
        };
        let stored = int8.tensors.get(&p.weight).ok_or_else(|| Error::Model {
            path: int8.file.clone(),
            message: format!("holds no int8 weight for {}: quantize again", p.weight.name),
        })?;
        let node = &graph.node[index];
        let mut output = node.output[0].clone();
        let mut bias = p.bias.clone();
        if node.op_type == "MatMul" {
            if let Some((add, b)) = bias_add(graph, &output, p.n, &weights) {
                output = graph.node[add].output[0].clone();
                removed.insert(add);
                bias = Some(b);
                report.biases_folded += 1;
            }
        }
        let (int8_name, scale_name) = (p.weight.int8_name(), p.weight.scale_name());
        if added.insert(int8_name.clone()) {
            new_initializers.push(external_tensor(
                &int8_name,
                DataType::INT8,
                vec![stored.k, stored.n],
                &stored.values,
            ));
            new_initializers.push(external_tensor(
                &scale_name,
                DataType::FLOAT,
                vec![stored.n],
                &stored.scales,
            ));
        }
        let mut q = NodeProto::new();
        q.name = node.name.clone();
        q.op_type = "DynamicQuantizeMatMul".into();
        q.domain = CONTRIB_DOMAIN.into();
        q.input = vec![node.input[0].clone(), int8_name, scale_name];
        if let Some(b) = bias {
            // Zero point absent (symmetric weights), then the bias.
            q.input.extend([String::new(), b]);
        }
        match p.then {
            Then::Nothing => q.output = vec![output],
            Then::Add(c) => {
                let product = format!("{output}/int8_product");
                q.output = vec![product.clone()];
                let mut add = NodeProto::new();
                add.name = format!("{}/add_bias", node.name);
                add.op_type = "Add".into();
                add.input = vec![product, c];
                add.output = vec![output];
                after.insert(index, vec![add]);
            }
            Then::Attention { bias, attributes } => {
                q.name = format!("{}/qkv", node.name);
                q.output = vec![q.name.clone()];
                let mut split = NodeProto::new();
                split.name = format!("{}/unbind", node.name);
                split.op_type = "Split".into();
                split.input = q.output.clone();
                split.output = (0..3).map(|i| format!("{}:{i}", split.name)).collect();
                split.attribute.push(attribute("axis", Attr::Int(-1)));
                let mut mha = NodeProto::new();
                mha.name = format!("{}/mha", node.name);
                mha.op_type = "MultiHeadAttention".into();
                mha.domain = CONTRIB_DOMAIN.into();
                mha.input = split.output.clone();
                mha.input.extend(bias);
                mha.output = vec![output];
                mha.attribute = attributes;
                after.insert(index, vec![split, mha]);
            }
        }
        graph.node[index] = q;
        report.products += 1;
    }
    let nodes = std::mem::take(&mut graph.node);
    for (index, node) in nodes.into_iter().enumerate() {
        if !removed.contains(&index) {
            graph.node.push(node);
        }
        graph.node.extend(after.remove(&index).unwrap_or_default());
    }
    let used: HashSet<&str> = graph
        .node
        .iter()
        .flat_map(|n| n.input.iter().map(String::as_str))
        .collect();
    let unused: HashSet<String> = graph
        .initializer
        .iter()
        .filter(|t| !used.contains(t.name.as_str()))
        .map(|t| t.name.clone())
        .collect();
    graph.initializer.retain(|t| !unused.contains(&t.name));
    let produced: HashSet<&str> = graph
        .node
        .iter()
        .flat_map(|n| n.output.iter().map(String::as_str))
        .collect();
    graph.value_info.retain(|v| produced.contains(v.name.as_str()));
    graph.initializer.extend(new_initializers);
    if report.products > 0 && !model.opset_import.iter().any(|o| o.domain == CONTRIB_DOMAIN) {
        let mut opset = OperatorSetIdProto::new();
        opset.domain = CONTRIB_DOMAIN.into();
        opset.version = 1;
        model.opset_import.push(opset);
    }
    Ok(report)
}

/// Removes the int8 weight files of `dir` that no engine of `manifest` references.
pub fn remove_unreferenced(dir: &Path, manifest: &Manifest) -> Result<()> {
    let referenced: HashSet<&str> = manifest
        .lengths
        .iter()
        .flat_map(|l| &l.engines)
        .filter_map(|e| e.options.get("int8")?.get("weights")?.as_str())
        .collect();
    let entries = std::fs::read_dir(dir).map_err(Error::io(dir))?;
    for entry in entries.flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        if name.starts_with(FILE_PREFIX) && name.ends_with(".bin") && !referenced.contains(name.as_str()) {
            std::fs::remove_file(entry.path()).map_err(Error::io(&entry.path()))?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn columns_quantize_symmetrically_with_their_own_scale() {
        // B = [[1, -0.5], [-2, 0.25]]: column 0 max 2, column 1 max 0.5.
        let b = [1.0, -0.5, -2.0, 0.25];
        let (q, s) = quantize_columns(&b, 2, 2, false);
        assert_eq!(s, vec![2.0 / 127.0, 0.5 / 127.0]);
        assert_eq!(q, vec![64, -127, -127, 64]);
        // The same B stored transposed ([N, K]) gives the same result.
        let (qt, st) = quantize_columns(&[1.0, -2.0, -0.5, 0.25], 2, 2, true);
        assert_eq!((qt, st), (q, s));
        // A zero column stays zero.
        let (qz, sz) = quantize_columns(&[0.0, 1.0], 1, 2, false);
        assert_eq!((qz, sz), (vec![0, 127], vec![1.0, 1.0 / 127.0]));
    }
}
