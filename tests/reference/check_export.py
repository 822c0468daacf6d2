"""Checks an odelt export against the NumPy reference (docs/DESIGN.md §3, §6).

For every graph in each export folder's manifest:
- onnx.checker.check_model(path, full_check=True);
- the manifest's content_hash = SHA-256(graph bytes + referenced weights.bin ranges, in
  initializer order), weight_bytes and parameters recomputed from the graph;
- ONNX Runtime (CPU, all optimizations) against dit_numpy.forward at batch 1 and 3, random
  x and t, k in {2, 7}, labels including the null label: max|ort - ref| <= tol * max|ref|
  (fp32 exports: --tol; fp16 exports: --fp16-tol, reported either way);
- with --fusions, the ONNX Runtime-optimized model (extended level) is saved and the fused
  operators it contains are listed.

    python tests/reference/check_export.py --checkpoint CKPT --export DIR [--export DIR16 ...]

Exits non-zero on the first failed check; prints one line per graph and check.
"""

import argparse
import collections
import hashlib
import json
import sys
import tempfile
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort

sys.path.insert(0, str(Path(__file__).resolve().parent))
import dit_numpy  # noqa: E402


def check_hash(export, entry, model):
    graph_bytes = (export / entry["file"]).read_bytes()
    h = hashlib.sha256(graph_bytes)
    total = 0
    params = 0
    with open(export / "weights.bin", "rb") as f:
        for init in model.graph.initializer:
            if init.data_location != onnx.TensorProto.EXTERNAL:
                continue
            ext = {e.key: e.value for e in init.external_data}
            assert ext["location"] == "weights.bin", ext
            f.seek(int(ext["offset"]))
            data = f.read(int(ext["length"]))
            assert len(data) == int(ext["length"]), f"{init.name}: range past the end of weights.bin"
            h.update(data)
            total += len(data)
            params += int(np.prod(init.dims))
    assert h.hexdigest() == entry["content_hash"], f"{entry['file']}: content_hash mismatch"
    assert total == entry["weight_bytes"], f"{entry['file']}: weight_bytes {entry['weight_bytes']} != {total}"
    assert params == entry["parameters"], f"{entry['file']}: parameters {entry['parameters']} != {params}"


def fusions(path):
    """Operator counts of the ONNX Runtime-optimized model (extended level, CPU)."""
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "optimized.onnx"
        so = ort.SessionOptions()
        so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_EXTENDED
        so.optimized_model_filepath = str(out)
        so.add_session_config_entry("session.optimized_model_external_initializers_file_name", "optimized.bin")
        ort.InferenceSession(str(path), so, providers=["CPUExecutionProvider"])
        model = onnx.load(str(out), load_external_data=False)
    return collections.Counter(
        (n.domain + "." if n.domain else "") + n.op_type for n in model.graph.node
    )


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--checkpoint", required=True, type=Path)
    ap.add_argument("--export", required=True, type=Path, action="append")
    ap.add_argument("--tol", type=float, default=1e-5, help="fp32: max abs error / max |v|")
    ap.add_argument("--fp16-tol", type=float, default=5e-2, help="fp16: max abs error / max |v|")
    ap.add_argument("--fusions", action="store_true", help="list fused operators after ORT optimization")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()

    params, cfg = dit_numpy.load_checkpoint(args.checkpoint)
    rng = np.random.default_rng(args.seed)
    worst = {}
    checks = 0
    for export in args.export:
        manifest = json.loads((export / "manifest.json").read_text())
        fp16 = manifest["precision"] == "fp16"
        io_dtype = np.float16 if manifest.get("io_precision", "fp32") == "fp16" else np.float32
        tol = args.fp16_tol if fp16 else args.tol
        for entry in manifest["lengths"]:
            length = entry["length"]
            path = export / entry["file"]
            onnx.checker.check_model(str(path), full_check=True)
            model = onnx.load(str(path), load_external_data=False)
            check_hash(export, entry, model)
            sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
            for batch in (1, 3):
                for k in (2.0, 7.0):
                    c, s = cfg["in_channels"], cfg["input_size"]
                    x = rng.standard_normal((batch, c, s, s)).astype(np.float32)
                    t = rng.uniform(0, 1, batch).astype(np.float32)
                    kk = np.full(batch, k, np.float32)
                    y = rng.integers(0, cfg["num_classes"] + 1, batch).astype(np.int64)
                    y[0] = cfg["num_classes"]  # the null label
                    (v,) = sess.run(["v"], {"x": x.astype(io_dtype), "t": t, "k": kk, "y": y})
                    assert v.dtype == io_dtype and v.shape == x.shape, (v.dtype, v.shape)
                    ref = dit_numpy.forward(params, cfg, length, x.astype(io_dtype).astype(np.float64), t, kk, y)
                    rel = float(np.abs(v.astype(np.float64) - ref).max() / np.abs(ref).max())
                    key = (manifest["precision"], length)
                    worst[key] = max(worst.get(key, 0.0), rel)
                    ok = rel <= tol
                    print(
                        f"{'ok  ' if ok else 'FAIL'} {manifest['precision']} l={length} batch={batch} k={k:g}: "
                        f"max|err|/max|v| = {rel:.3e} (max|v| = {np.abs(ref).max():.3g}, tol {tol:g})"
                    )
                    if not ok:
                        sys.exit(1)
                    checks += 1
            if args.fusions:
                counts = fusions(path)
                fused = {op: n for op, n in sorted(counts.items()) if op.startswith("com.microsoft.")}
                plain = {
                    op: counts[op]
                    for op in ("LayerNormalization", "MatMul", "Gemm", "Softmax", "Tanh", "Add", "Mul", "Transpose")
                    if op in counts
                }
                print(f"fusions {manifest['precision']} l={length}: {fused or 'none'}; remaining {plain}")
    for (precision, length), rel in sorted(worst.items()):
        print(f"worst {precision} l={length}: {rel:.3e}")
    print(f"{checks} passed, 0 failed")


if __name__ == "__main__":
    main()
