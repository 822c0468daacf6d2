#!/usr/bin/env python3
"""Checks a Triton model repository written by `odelt triton` against Triton's schema and the
ONNX graphs it serves.

Every `*/config.pbtxt` is parsed with Triton's own `model_config_pb2` (from the tritonclient
package) through protobuf's text_format, which refuses unknown fields and malformed values.
Then each model's inputs and outputs are compared with its ONNX graph as onnxruntime sees it:
names, element types, and shapes (the batch dimension, then `dims`, or `reshape` where given).
Prints one JSON line per model; exits 1 naming the first disagreement.

    python scripts/check_triton_repository.py REPO

Needs the venv of `scripts/setup.sh --kserve`. Used by tests/triton.rs.
"""

import json
import os
import sys

from google.protobuf import text_format
from tritonclient.grpc import model_config_pb2 as pb2

ONNX_TYPES = {
    pb2.TYPE_FP32: "tensor(float)",
    pb2.TYPE_FP16: "tensor(float16)",
    pb2.TYPE_INT64: "tensor(int64)",
}


def graph_of(model_dir, config):
    if config.platform == "tensorrt_plan":
        return os.path.join(model_dir, "onnx", "model.onnx")
    path = os.path.join(model_dir, "1", config.default_model_filename or "model.onnx")
    return os.path.join(path, "model.onnx") if os.path.isdir(path) else path


def check(model_dir):
    import onnxruntime as ort

    name = os.path.basename(model_dir)
    with open(os.path.join(model_dir, "config.pbtxt")) as f:
        try:
            config = text_format.Parse(f.read(), pb2.ModelConfig())
        except text_format.ParseError as e:
            raise SystemExit(f"{name}/config.pbtxt: not a Triton model config: {e}")
    if config.name != name:
        raise SystemExit(f"{name}/config.pbtxt: name '{config.name}' is not the folder's name")
    if config.max_batch_size < 1:
        raise SystemExit(f"{name}: max_batch_size {config.max_batch_size} (batching is expected)")
    session = ort.InferenceSession(graph_of(model_dir, config), providers=["CPUExecutionProvider"])
    for kind, declared, actual in [
        ("input", config.input, session.get_inputs()),
        ("output", config.output, session.get_outputs()),
    ]:
        graph = {t.name: t for t in actual}
        if sorted(graph) != sorted(t.name for t in declared):
            raise SystemExit(
                f"{name}: {kind}s {sorted(t.name for t in declared)} in config.pbtxt, "
                f"{sorted(graph)} in the graph"
            )
        for t in declared:
            g = graph[t.name]
            if ONNX_TYPES.get(t.data_type) != g.type:
                raise SystemExit(
                    f"{name}: {kind} '{t.name}' is {pb2.DataType.Name(t.data_type)} in config.pbtxt, {g.type} in the graph"
                )
            shape = list(t.reshape.shape) if t.HasField("reshape") else list(t.dims)
            if len(g.shape) != 1 + len(shape) or list(g.shape[1:]) != shape or isinstance(g.shape[0], int):
                raise SystemExit(
                    f"{name}: {kind} '{t.name}' is [batch, {', '.join(map(str, shape))}] by config.pbtxt, "
                    f"{g.shape} in the graph"
                )
    return {
        "model": name,
        "platform": config.platform or config.backend,
        "max_batch_size": config.max_batch_size,
        "inputs": [t.name for t in config.input],
        "outputs": [t.name for t in config.output],
        "instances": [
            {"count": g.count, "kind": pb2.ModelInstanceGroup.Kind.Name(g.kind)} for g in config.instance_group
        ],
        "preferred_batch_size": list(config.dynamic_batching.preferred_batch_size),
        "warmup": [w.batch_size for w in config.model_warmup],
        "accelerators": [a.name for a in config.optimization.execution_accelerators.gpu_execution_accelerator],
    }


def main():
    if len(sys.argv) != 2:
        raise SystemExit(__doc__)
    repo = sys.argv[1]
    models = sorted(d for d in os.listdir(repo) if os.path.isfile(os.path.join(repo, d, "config.pbtxt")))
    if not models:
        raise SystemExit(f"{repo}: no model folder with a config.pbtxt")
    for model in models:
        print(json.dumps(check(os.path.join(repo, model))))


if __name__ == "__main__":
    main()
