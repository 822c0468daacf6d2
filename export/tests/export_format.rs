//! Round trips of tiny random checkpoints through the exporter: the export folder's layout
//! (docs/DESIGN.md §6) and its failure modes (§9).

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use odelt_export::{export, graph_file, testing, Error, ExportOptions, Ops, ALIGNMENT};
use odelt_format::{Manifest, ModelConfig};
use onnx_protobuf::tensor_proto::{DataLocation, DataType};
use onnx_protobuf::{Message, ModelProto};
use safetensors::Dtype;
use sha2::{Digest, Sha256};

fn load(path: &Path) -> ModelProto {
    ModelProto::parse_from_bytes(&std::fs::read(path).unwrap()).unwrap()
}

/// name → (offset, length, data type) of every external initializer of a graph.
fn externals(model: &ModelProto) -> BTreeMap<String, (u64, u64, i32)> {
    let graph = model.graph.as_ref().unwrap();
    graph
        .initializer
        .iter()
        .filter(|t| t.data_location.enum_value() == Ok(DataLocation::EXTERNAL))
        .map(|t| {
            let get = |k: &str| t.external_data.iter().find(|e| e.key == k).unwrap().value.clone();
            assert_eq!(get("location"), "weights.bin");
            (
                t.name.clone(),
                (
                    get("offset").parse().unwrap(),
                    get("length").parse().unwrap(),
                    t.data_type,
                ),
            )
        })
        .collect()
}

fn tiny_checkpoint(dir: &Path) -> std::path::PathBuf {
    let ckpt = dir.join("ckpt");
    testing::write_random_checkpoint(&ckpt, &ModelConfig::tiny(), 3).unwrap();
    ckpt
}

fn leftovers(parent: &Path) -> Vec<String> {
    std::fs::read_dir(parent)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with('.'))
        .collect()
}

#[test]
fn round_trip_layout_sharing_and_hashes() {
    let dir = tempfile::tempdir().unwrap();
    let ckpt = tiny_checkpoint(dir.path());
    let out = dir.path().join("out");
    let manifest = export(&ckpt, &out, &ExportOptions::default()).unwrap();
    assert_eq!(Manifest::read(&out).unwrap(), manifest);
    assert_eq!(manifest.model, ModelConfig::tiny());
    assert_eq!(manifest.source.step, 1000);
    assert_eq!(
        (manifest.precision.as_str(), manifest.io_precision.as_str()),
        ("fp32", "fp32")
    );
    let lengths: Vec<u32> = manifest.lengths.iter().map(|e| e.length).collect();
    assert_eq!(lengths, vec![2, 4], "all valid lengths by default");
    let weights = std::fs::read(out.join("weights.bin")).unwrap();
    assert_eq!(weights.len() as u64, manifest.weights_bytes);

    let mut by_length = BTreeMap::new();
    for entry in &manifest.lengths {
        assert_eq!(entry.file, graph_file(entry.length));
        let bytes = std::fs::read(out.join(&entry.file)).unwrap();
        let model = load(&out.join(&entry.file));
        assert_eq!(model.opset_import[0].version, 17);
        let graph = model.graph.as_ref().unwrap();
        let inputs: Vec<&str> = graph.input.iter().map(|i| i.name.as_str()).collect();
        assert_eq!(inputs, ["x", "t", "k", "y"]);
        assert_eq!(graph.output[0].name, "v");
        assert!(graph.node.iter().any(|n| n.name == "blocks.1/attn/proj"));
        let blocks: BTreeSet<&str> = graph
            .node
            .iter()
            .filter_map(|n| n.name.strip_prefix("blocks.")?.split('/').next())
            .collect();
        assert_eq!(blocks.len() as u32, entry.length, "only the first l blocks");

        let ext = externals(&model);
        let row = format!("l_embedder.row{}", entry.length);
        assert!(ext.contains_key(&row), "length row folded in");
        for (name, (offset, _, _)) in &ext {
            if *name != row {
                assert_eq!(offset % ALIGNMENT, 0, "{name} at {offset} is not 64 KiB aligned");
            }
        }
        // content hash = SHA-256(graph bytes + referenced ranges in initializer order)
        let mut hasher = Sha256::new();
        hasher.update(&bytes);
        let mut total = 0;
        for t in &graph.initializer {
            if let Some((offset, length, _)) = ext.get(&t.name) {
                hasher.update(&weights[*offset as usize..(*offset + *length) as usize]);
                total += length;
            }
        }
        let hash: String = hasher.finalize().iter().map(|b| format!("{b:02x}")).collect();
        assert_eq!(hash, entry.content_hash);
        assert_eq!(total, entry.weight_bytes);
        by_length.insert(entry.length, ext);
    }

    // Each tensor stored once: a name has one range in every graph, and distinct stored
    // tensors do not overlap.
    let mut all: BTreeMap<String, (u64, u64)> = BTreeMap::new();
    for ext in by_length.values() {
        for (name, (offset, length, _)) in ext {
            let prev = all.insert(name.clone(), (*offset, *length));
            assert!(
                prev.is_none() || prev == Some((*offset, *length)),
                "{name} stored twice"
            );
        }
    }
    // The rows are views of one stored table (L+1 rows), which starts 64 KiB aligned.
    let d = ModelConfig::tiny().hidden_size as u64;
    let starts: BTreeSet<u64> = by_length
        .iter()
        .map(|(l, ext)| {
            let (offset, length, _) = ext[&format!("l_embedder.row{l}")];
            assert_eq!(length, d * 4);
            offset - *l as u64 * d * 4
        })
        .collect();
    assert_eq!(starts.len(), 1, "rows of one table: {starts:?}");
    let table_start = *starts.first().unwrap();
    assert_eq!(table_start % ALIGNMENT, 0);
    let table = "l_embedder.embedding_table.weight".to_string();
    let mut ranges: Vec<(u64, u64, &String)> = all
        .iter()
        .filter(|(n, _)| !n.starts_with("l_embedder.row"))
        .map(|(n, (o, l))| (*o, *l, n))
        .collect();
    ranges.push((table_start, 5 * d * 4, &table));
    ranges.sort();
    for pair in ranges.windows(2) {
        assert!(
            pair[0].0 + pair[0].1 <= pair[1].0,
            "{} overlaps {}",
            pair[0].2,
            pair[1].2
        );
    }
    // The short graph references a subset of the long graph's bytes (its own row aside).
    let (short, long) = (&by_length[&2], &by_length[&4]);
    for (name, range) in short {
        if name != "l_embedder.row2" {
            assert_eq!(long.get(name), Some(range), "{name}");
        }
    }
    assert!(manifest.lengths[0].parameters < manifest.lengths[1].parameters);
}

#[test]
fn fused_and_standard_forms_keep_weights_in_plain_matrix_products() {
    let dir = tempfile::tempdir().unwrap();
    let ckpt = tiny_checkpoint(dir.path());
    for (ops, per_block, contrib) in [(Ops::Fused, 21, true), (Ops::Standard, 45, false)] {
        let out = dir.path().join(ops.name());
        let options = ExportOptions {
            ops,
            ..ExportOptions::default()
        };
        let manifest = export(&ckpt, &out, &options).unwrap();
        assert_eq!(manifest.ops, ops.name());
        let model = load(&out.join(graph_file(4)));
        let domains: Vec<&str> = model.opset_import.iter().map(|o| o.domain.as_str()).collect();
        assert_eq!(
            domains.contains(&"com.microsoft"),
            contrib,
            "{ops:?}: {domains:?}"
        );
        let graph = model.graph.as_ref().unwrap();
        let in_block = graph
            .node
            .iter()
            .filter(|n| n.name.starts_with("blocks.1/"))
            .count();
        // Fused: 20 nodes at run time and the bias Add of initializers that ONNX Runtime folds.
        assert_eq!(in_block, per_block, "{ops:?}: nodes in block 1");
        // Every weight matrix is input 1 of a MatMul or Gemm, or of the fused form's Attention
        // (the products int8 rewriting quantizes).
        for name in externals(&model)
            .keys()
            .filter(|n| n.ends_with(".weight") && n.contains("blocks."))
        {
            let users: Vec<(&str, usize)> = graph
                .node
                .iter()
                .flat_map(|n| {
                    n.input
                        .iter()
                        .enumerate()
                        .filter(|(_, i)| *i == name)
                        .map(|(at, _)| (n.op_type.as_str(), at))
                })
                .collect();
            let qkv_in_attention = ops == Ops::Fused && name.ends_with(".attn.qkv.weight");
            let expected = if name.contains(".adaLN_modulation.") {
                "Gemm"
            } else if qkv_in_attention {
                "Attention"
            } else {
                "MatMul"
            };
            assert_eq!(users, [(expected, 1)], "{ops:?}: {name}");
        }
    }
}

#[test]
fn fp16_export_stores_matrix_products_in_half() {
    let dir = tempfile::tempdir().unwrap();
    let ckpt = tiny_checkpoint(dir.path());
    let out32 = dir.path().join("fp32");
    let out16 = dir.path().join("fp16");
    let m32 = export(&ckpt, &out32, &ExportOptions::default()).unwrap();
    let m16 = export(
        &ckpt,
        &out16,
        &ExportOptions {
            fp16: true,
            ..Default::default()
        },
    )
    .unwrap();
    assert_eq!(m16.precision, "fp16");
    assert_eq!(m16.io_precision, "fp32");
    assert!(m16.weights_bytes < m32.weights_bytes);
    let model = load(&out16.join(graph_file(4)));
    let ext = externals(&model);
    let f16 = DataType::FLOAT16 as i32;
    let f32 = DataType::FLOAT as i32;
    for name in [
        "blocks.3.attn.qkv.weight",
        "blocks.3.mlp.fc2.bias",
        "final_layer.linear.weight",
        "x_embedder.proj.weight",
    ] {
        assert_eq!(ext[name].2, f16, "{name}");
    }
    for name in [
        "blocks.3.adaLN_modulation.1.weight",
        "pos_embed",
        "t_embedder.mlp.0.weight",
        "l_embedder.row4",
    ] {
        assert_eq!(ext[name].2, f32, "{name}");
    }
    let graph = model.graph.as_ref().unwrap();
    let norms: Vec<_> = graph
        .node
        .iter()
        .filter(|n| n.op_type == "LayerNormalization")
        .collect();
    assert_eq!(norms.len(), 2 * 4 + 1);
    for n in norms {
        let stash = n.attribute.iter().find(|a| a.name == "stash_type").unwrap();
        assert_eq!(stash.i, 1, "{}", n.name);
    }
    // I/O stays fp32 unless asked.
    let elem = |v: &onnx_protobuf::ValueInfoProto| match &v.type_.value {
        Some(onnx_protobuf::type_proto::Value::TensorType(t)) => t.elem_type,
        _ => panic!(),
    };
    assert_eq!(elem(&graph.input[0]), f32);
    assert_eq!(elem(&graph.output[0]), f32);
    let out16io = dir.path().join("fp16io");
    let m = export(
        &ckpt,
        &out16io,
        &ExportOptions {
            fp16: true,
            fp16_io: true,
            ..Default::default()
        },
    )
    .unwrap();
    assert_eq!(m.io_precision, "fp16");
    let graph = load(&out16io.join(graph_file(2))).graph.unwrap();
    assert_eq!(elem(&graph.input[0]), f16);
    assert_eq!(elem(&graph.output[0]), f16);
    assert_eq!(elem(&graph.input[1]), f32, "t stays fp32");
}

#[test]
fn selected_lengths_store_only_the_blocks_they_use() {
    let dir = tempfile::tempdir().unwrap();
    let ckpt = tiny_checkpoint(dir.path());
    let all = export(&ckpt, &dir.path().join("all"), &ExportOptions::default()).unwrap();
    let short = dir.path().join("short");
    let m = export(
        &ckpt,
        &short,
        &ExportOptions {
            lengths: Some(vec![2, 2]),
            ..Default::default()
        },
    )
    .unwrap();
    assert_eq!(m.lengths.len(), 1);
    assert!(m.weights_bytes < all.weights_bytes);
    assert!(short.join("model_l2.onnx").exists() && !short.join("model_l4.onnx").exists());
}

#[test]
fn half_precision_checkpoints_are_read() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = ModelConfig::tiny();
    let tensors = testing::random_tensors(&cfg, 5);
    for dtype in [Dtype::BF16, Dtype::F16] {
        let ckpt = dir.path().join(format!("{dtype:?}"));
        testing::write_checkpoint(&ckpt, &cfg, 9, &tensors, dtype).unwrap();
        let m = export(
            &ckpt,
            &dir.path().join(format!("out{dtype:?}")),
            &ExportOptions::default(),
        )
        .unwrap();
        assert_eq!(m.source.step, 9);
    }
}

#[test]
fn invalid_length_names_the_valid_ones() {
    let dir = tempfile::tempdir().unwrap();
    let ckpt = tiny_checkpoint(dir.path());
    let out = dir.path().join("out");
    let err = export(
        &ckpt,
        &out,
        &ExportOptions {
            lengths: Some(vec![2, 3]),
            ..Default::default()
        },
    )
    .unwrap_err();
    assert!(err.is_input());
    assert!(
        err.to_string().contains("length 3") && err.to_string().contains("2, 4"),
        "{err}"
    );
    let err = export(
        &ckpt,
        &out,
        &ExportOptions {
            lengths: Some(vec![]),
            ..Default::default()
        },
    )
    .unwrap_err();
    assert!(err.is_input() && err.to_string().contains("2, 4"), "{err}");
    let err = export(
        &ckpt,
        &out,
        &ExportOptions {
            fp16_io: true,
            ..Default::default()
        },
    )
    .unwrap_err();
    assert!(err.is_input() && err.to_string().contains("--fp16"), "{err}");
    assert!(!out.exists());
    assert!(leftovers(dir.path()).is_empty());
}

#[test]
fn missing_or_misshapen_tensor_is_named_and_leaves_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = ModelConfig::tiny();
    let mut tensors = testing::random_tensors(&cfg, 1);
    tensors.retain(|(name, _, _)| name != "blocks.1.mlp.fc2.weight");
    let ckpt = dir.path().join("missing");
    testing::write_checkpoint(&ckpt, &cfg, 1, &tensors, Dtype::F32).unwrap();
    let out = dir.path().join("out");
    let err = export(&ckpt, &out, &ExportOptions::default()).unwrap_err();
    assert!(
        matches!(err, Error::MissingTensor { .. }) && err.is_input(),
        "{err}"
    );
    assert!(err.to_string().contains("blocks.1.mlp.fc2.weight"), "{err}");
    assert!(!out.exists());

    let mut tensors = testing::random_tensors(&cfg, 1);
    let qkv = tensors
        .iter_mut()
        .find(|(n, _, _)| n == "blocks.0.attn.qkv.weight")
        .unwrap();
    qkv.1 = vec![32, 96];
    let ckpt = dir.path().join("shape");
    testing::write_checkpoint(&ckpt, &cfg, 1, &tensors, Dtype::F32).unwrap();
    let err = export(&ckpt, &out, &ExportOptions::default()).unwrap_err();
    assert!(
        err.is_input() && err.to_string().contains("blocks.0.attn.qkv.weight"),
        "{err}"
    );
    assert!(err.to_string().contains("[96, 32]"), "{err}");

    // Corrupt safetensors and a missing folder.
    let ckpt = dir.path().join("corrupt");
    testing::write_random_checkpoint(&ckpt, &cfg, 1).unwrap();
    std::fs::write(ckpt.join("model.safetensors"), b"not a safetensors file").unwrap();
    let err = export(&ckpt, &out, &ExportOptions::default()).unwrap_err();
    assert!(
        err.is_input() && err.to_string().contains("model.safetensors"),
        "{err}"
    );
    let err = export(&dir.path().join("nowhere"), &out, &ExportOptions::default()).unwrap_err();
    assert!(err.is_input() && err.to_string().contains("nowhere"), "{err}");

    // NaN in a tensor.
    let mut tensors = testing::random_tensors(&cfg, 1);
    tensors[5].2[0] = f32::NAN;
    let ckpt = dir.path().join("nan");
    testing::write_checkpoint(&ckpt, &cfg, 1, &tensors, Dtype::F32).unwrap();
    let err = export(&ckpt, &out, &ExportOptions::default()).unwrap_err();
    assert!(err.is_input() && err.to_string().contains(&tensors[5].0), "{err}");

    assert!(!out.exists());
    assert!(leftovers(dir.path()).is_empty(), "{:?}", leftovers(dir.path()));
}

#[test]
fn failed_reexport_keeps_the_previous_export_and_success_replaces_it() {
    let dir = tempfile::tempdir().unwrap();
    let ckpt = tiny_checkpoint(dir.path());
    let out = dir.path().join("out");
    let first = export(
        &ckpt,
        &out,
        &ExportOptions {
            lengths: Some(vec![2]),
            ..Default::default()
        },
    )
    .unwrap();
    std::fs::write(ckpt.join("model.safetensors"), b"garbage").unwrap();
    export(&ckpt, &out, &ExportOptions::default()).unwrap_err();
    assert_eq!(
        Manifest::read(&out).unwrap(),
        first,
        "a failed export leaves the previous one intact"
    );

    testing::write_random_checkpoint(&ckpt, &ModelConfig::tiny(), 4).unwrap();
    let second = export(&ckpt, &out, &ExportOptions::default()).unwrap();
    assert_eq!(Manifest::read(&out).unwrap(), second);
    assert!(out.join("model_l4.onnx").exists());
    assert!(leftovers(dir.path()).is_empty(), "{:?}", leftovers(dir.path()));

    // A folder that is not an export is not overwritten.
    let other = dir.path().join("other");
    std::fs::create_dir(&other).unwrap();
    std::fs::write(other.join("notes.txt"), "mine").unwrap();
    let err = export(&ckpt, &other, &ExportOptions::default()).unwrap_err();
    assert!(
        matches!(err, Error::OutputNotExport(_)) && err.is_input(),
        "{err}"
    );
    assert!(other.join("notes.txt").exists());
}
