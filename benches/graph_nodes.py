"""Nodes per graph and per block of an export, as written and after ONNX Runtime's optimizer
(CPU provider, all optimizations: what `odelt engines build --backend ort-cpu` saves).

    source scripts/env.sh
    python benches/graph_nodes.py --engines DIR [--engines DIR2 ...]

Prints one JSON line per graph: ops (the export's manifest), length, nodes and nodes per block
(plain and optimized), and the optimized graph's operator counts.
"""
import argparse
import collections
import json
import tempfile
from pathlib import Path

import onnx
import onnxruntime as ort


def optimized(path, out):
    so = ort.SessionOptions()
    so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    so.optimized_model_filepath = str(out)
    so.add_session_config_entry("session.optimized_model_external_initializers_file_name", "optimized.bin")
    so.log_severity_level = 3
    ort.InferenceSession(str(path), so, providers=["CPUExecutionProvider"])
    return onnx.load(str(out), load_external_data=False)


def counts(model, length):
    nodes = model.graph.node
    in_blocks = sum(1 for n in nodes if n.name.startswith("blocks."))
    ops = collections.Counter((n.domain + "." if n.domain else "") + n.op_type for n in nodes)
    return len(nodes), round(in_blocks / length, 2), dict(ops.most_common())


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--engines", required=True, type=Path, action="append")
    args = ap.parse_args()
    for export in args.engines:
        manifest = json.loads((export / "manifest.json").read_text())
        for entry in manifest["lengths"]:
            length = entry["length"]
            path = export / entry["file"]
            plain, plain_per_block, _ = counts(onnx.load(str(path), load_external_data=False), length)
            with tempfile.TemporaryDirectory() as tmp:
                opt, opt_per_block, ops = counts(optimized(path, Path(tmp) / "optimized.onnx"), length)
            print(json.dumps({
                "ops": manifest.get("ops", "standard"),
                "length": length,
                "nodes": plain,
                "nodes_per_block": plain_per_block,
                "optimized_nodes": opt,
                "optimized_nodes_per_block": opt_per_block,
                "optimized_ops": ops,
            }))


if __name__ == "__main__":
    main()
