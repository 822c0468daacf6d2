#!/usr/bin/env python3
"""Regenerates the runtime's test fixtures: tiny ONNX graphs with the exporter's interface.

Run from anywhere with the setup venv's python (`source scripts/env.sh; python
runtime/tests/data/make_fixtures.py`). Writes next to this file:

  linear/    manifest.json, model_l2.onnx, model_l4.onnx, weights.bin: a linear vector field
             v = a_l * x + b * t + c * k + E[y]  (a_2 = -0.5, a_4 = -1.0, E[null] = 0), whose exact
             ODE solution is known; inputs x f32 [batch,1,4,4], t f32 [batch], k f32 [batch],
             y i64 [batch]; output v f32 [batch,1,4,4]; every float initializer is external data
             in the shared weights.bin.
  nan/       the same interface, but E is NaN: every output is NaN (the Numerical error path).
  decoder.onnx  latents [batch,1,4,4] -> images [batch,3,8,8]: nearest 2x upsampling, the one
             channel repeated three times, then tanh.
  noise.npy, labels.npy               float32 [3,1,4,4] and int64 [3] inputs.
  expected_euler_l4_t4.npy            Euler, 4 steps, length 4, labels.npy, from noise.npy.
  expected_cfg_l2_t8_w3.npy           Euler, 8 steps, length 2, labels.npy, CFG scale 3.
  params.json                         a_l, b, c, E: the test computes the exact solution from it.

The expected outputs are computed here with onnxruntime in float32, a reference independent of
the Rust runtime.
"""

import hashlib
import json
import os

import numpy as np
import onnx
import onnxruntime as ort
from onnx import TensorProto, helper, numpy_helper

HERE = os.path.dirname(os.path.abspath(__file__))
# The exporter aligns to 64 KiB (docs/DESIGN.md §6); the runtime does not depend on it, so the fixtures
# use 64 bytes and stay small.
ALIGN = 64
C, H, W = 1, 4, 4
NUM_CLASSES = 3
T_MAX = 8
CONFIG = {
    "input_size": H,
    "in_channels": C,
    "patch_size": 2,
    "hidden_size": 8,
    "num_heads": 2,
    "mlp_ratio": 4.0,
    "depth": 4,
    "depth_min": 2,
    "group_size": 2,
    "num_classes": NUM_CLASSES,
    "denoise_timesteps": T_MAX,
}
LENGTHS = [2, 4]


def params(nan: bool):
    rng = np.random.default_rng(1234)
    b = (np.linspace(-1.0, 1.0, C * H * W, dtype=np.float32) * 0.5).reshape(1, C, H, W)
    c = np.array(0.1, dtype=np.float32)
    e = (rng.standard_normal((NUM_CLASSES + 1, C * H * W)) * 0.5).astype(np.float32)
    e[NUM_CLASSES] = 0.0  # the null label
    if nan:
        e[:] = np.nan
    a = {l: np.array(-l / 4.0, dtype=np.float32) for l in LENGTHS}
    return a, b, c, e


def write_folder(name: str, nan: bool):
    out = os.path.join(HERE, name)
    os.makedirs(out, exist_ok=True)
    a, b, c, e = params(nan)
    # One shared weights file: every tensor once, 64 KiB aligned.
    tensors = {f"a_l{l}": a[l] for l in LENGTHS}
    tensors.update({"b": b, "c": c, "E": e})
    blob = bytearray()
    where = {}
    for key, value in tensors.items():
        pad = (-len(blob)) % ALIGN
        blob += b"\0" * pad
        raw = np.ascontiguousarray(value).tobytes()
        where[key] = (len(blob), len(raw))
        blob += raw
    with open(os.path.join(out, "weights.bin"), "wb") as f:
        f.write(blob)

    entries = []
    for l in LENGTHS:
        def external(key):
            value = tensors[key]
            t = TensorProto()
            t.name = key
            t.data_type = TensorProto.FLOAT
            t.dims.extend(value.shape)
            t.data_location = TensorProto.EXTERNAL
            offset, length = where[key]
            for k, v in (("location", "weights.bin"), ("offset", str(offset)), ("length", str(length))):
                entry = t.external_data.add()
                entry.key, entry.value = k, v
            return t

        shape4 = numpy_helper.from_array(np.array([-1, 1, 1, 1], dtype=np.int64), "shape_b111")
        shape_img = numpy_helper.from_array(np.array([-1, C, H, W], dtype=np.int64), "shape_bchw")
        nodes = [
            helper.make_node("Mul", ["x", f"a_l{l}"], ["ax"]),
            helper.make_node("Reshape", ["t", "shape_b111"], ["t4"]),
            helper.make_node("Mul", ["t4", "b"], ["bt"]),
            helper.make_node("Reshape", ["k", "shape_b111"], ["k4"]),
            helper.make_node("Mul", ["k4", "c"], ["ck"]),
            helper.make_node("Gather", ["E", "y"], ["ey"], axis=0),
            helper.make_node("Reshape", ["ey", "shape_bchw"], ["e4"]),
            helper.make_node("Add", ["ax", "bt"], ["s1"]),
            helper.make_node("Add", ["s1", "ck"], ["s2"]),
            helper.make_node("Add", ["s2", "e4"], ["v"]),
        ]
        graph = helper.make_graph(
            nodes,
            f"odelt_test_linear_l{l}",
            [
                helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", C, H, W]),
                helper.make_tensor_value_info("t", TensorProto.FLOAT, ["batch"]),
                helper.make_tensor_value_info("k", TensorProto.FLOAT, ["batch"]),
                helper.make_tensor_value_info("y", TensorProto.INT64, ["batch"]),
            ],
            [helper.make_tensor_value_info("v", TensorProto.FLOAT, ["batch", C, H, W])],
            initializer=[external(f"a_l{l}"), external("b"), external("c"), external("E"), shape4, shape_img],
        )
        model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], producer_name="odelt-tests")
        model.ir_version = 8
        path = os.path.join(out, f"model_l{l}.onnx")
        onnx.save_model(model, path)
        onnx.checker.check_model(path, full_check=True)

        used = [f"a_l{l}", "b", "c", "E"]
        h = hashlib.sha256(open(path, "rb").read())
        for key in used:
            offset, length = where[key]
            h.update(bytes(blob[offset : offset + length]))
        entries.append(
            {
                "length": l,
                "file": f"model_l{l}.onnx",
                "parameters": int(sum(tensors[k].size for k in used)),
                "weight_bytes": int(sum(where[k][1] for k in used)),
                "content_hash": h.hexdigest(),
                "engines": [],
                # Made-up latencies (ms per engine call) for the --budget-ms tests.
                "calibration": [
                    {"backend": "ort-cpu", "batch": batch, "threads": 1, "ms_median": ms,
                     "ms_min": ms, "ms_max": ms, "runs": 10}
                    for batch, ms in ((1, 1.0 * l / 2), (8, 4.0 * l / 2))
                ],
            }
        )
    manifest = {
        "format_version": 1,
        "model": CONFIG,
        "source": {"checkpoint": "tests/data/make_fixtures.py", "step": 0},
        "precision": "fp32",
        "io_precision": "fp32",
        "weights_file": "weights.bin",
        "weights_bytes": len(blob),
        "lengths": entries,
    }
    with open(os.path.join(out, "manifest.json"), "w") as f:
        json.dump(manifest, f, indent=2)
        f.write("\n")
    return {"a": {str(l): float(a[l]) for l in LENGTHS}, "b": b.reshape(-1).tolist(), "c": float(c),
            "E": e.tolist()}


def write_decoder():
    nodes = [
        helper.make_node("Resize", ["latents", "", "scales"], ["up"], mode="nearest"),
        helper.make_node("Concat", ["up", "up", "up"], ["rgb"], axis=1),
        helper.make_node("Tanh", ["rgb"], ["images"]),
    ]
    graph = helper.make_graph(
        nodes,
        "odelt_test_decoder",
        [helper.make_tensor_value_info("latents", TensorProto.FLOAT, ["batch", C, H, W])],
        [helper.make_tensor_value_info("images", TensorProto.FLOAT, ["batch", 3, 2 * H, 2 * W])],
        initializer=[numpy_helper.from_array(np.array([1, 1, 2, 2], dtype=np.float32), "scales")],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], producer_name="odelt-tests")
    model.ir_version = 8
    onnx.checker.check_model(model, full_check=True)
    onnx.save_model(model, os.path.join(HERE, "decoder.onnx"))


def euler(session, x0, labels, length_steps, cfg=None):
    """Plain Euler over the graph, t from 0 to 1, shortcut level k = log2 T (T ≤ T_max)."""
    steps = length_steps
    k = float(int(np.log2(steps))) if steps <= T_MAX and steps & (steps - 1) == 0 else float(np.log2(T_MAX))
    x = x0.copy()
    n = x.shape[0]
    grid = np.linspace(0.0, 1.0, steps + 1)
    null = np.full(n, NUM_CLASSES, dtype=np.int64)
    for t0, t1 in zip(grid[:-1], grid[1:]):
        feed = {"x": x, "t": np.full(n, t0, dtype=np.float32), "k": np.full(n, k, dtype=np.float32)}
        vc = session.run(["v"], dict(feed, y=labels))[0]
        if cfg is not None:
            vu = session.run(["v"], dict(feed, y=null))[0]
            v = vu + np.float32(cfg) * (vc - vu)
        else:
            v = vc
        x = (x + np.float32(t1 - t0) * v).astype(np.float32)
    return x


def main():
    p = write_folder("linear", nan=False)
    write_folder("nan", nan=True)
    write_decoder()
    with open(os.path.join(HERE, "params.json"), "w") as f:
        json.dump(p, f, indent=1)
        f.write("\n")
    rng = np.random.default_rng(7)
    noise = rng.standard_normal((3, C, H, W)).astype(np.float32)
    labels = np.array([0, 1, 2], dtype=np.int64)
    np.save(os.path.join(HERE, "noise.npy"), noise)
    np.save(os.path.join(HERE, "labels.npy"), labels)
    s4 = ort.InferenceSession(os.path.join(HERE, "linear", "model_l4.onnx"), providers=["CPUExecutionProvider"])
    s2 = ort.InferenceSession(os.path.join(HERE, "linear", "model_l2.onnx"), providers=["CPUExecutionProvider"])
    np.save(os.path.join(HERE, "expected_euler_l4_t4.npy"), euler(s4, noise, labels, 4))
    np.save(os.path.join(HERE, "expected_cfg_l2_t8_w3.npy"), euler(s2, noise, labels, 8, cfg=3.0))


if __name__ == "__main__":
    main()
