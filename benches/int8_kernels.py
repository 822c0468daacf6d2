#!/usr/bin/env python3
# python benches/int8_kernels.py [ROUNDS]  (the training venv: numpy, onnx, onnxruntime 1.31.1)
# One DiT-B token linear (M=256 tokens, K=768, N=3072) in ONNX Runtime 1.31.1 CPU, 2 threads:
# fp32 MatMul vs DynamicQuantizeMatMul (int8 per-column) vs MatMulNBits bits=8 (block 32,
# accuracy_level 4: int8 activations). Interleaved rounds, median per-call ms.
import statistics, time, sys
import numpy as np, onnx, onnxruntime as ort
from onnx import helper, TensorProto, numpy_helper
M, K, N = 256, 768, 3072
rng = np.random.default_rng(0)
W = (rng.standard_normal((K, N)) / np.sqrt(K)).astype(np.float32)
A = rng.standard_normal((1, M, K)).astype(np.float32)
def model(nodes, inits, opset_ms=False):
    g = helper.make_graph(nodes, "g", [helper.make_tensor_value_info("a", TensorProto.FLOAT, [1, M, K])],
                          [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)], inits)
    ops = [helper.make_opsetid("", 17), helper.make_opsetid("com.microsoft", 1)]
    return helper.make_model(g, opset_imports=ops, ir_version=8).SerializeToString()
fp32 = model([helper.make_node("MatMul", ["a", "w"], ["y"])], [numpy_helper.from_array(W, "w")])
s = np.abs(W).max(0) / 127
q = np.clip(np.round(W / s), -127, 127).astype(np.int8)
dqmm = model([helper.make_node("DynamicQuantizeMatMul", ["a", "q", "s"], ["y"], domain="com.microsoft")],
             [numpy_helper.from_array(q, "q"), numpy_helper.from_array(s.astype(np.float32), "s")])
# MatMulNBits: B [N, K/block, block] uint8 (bits=8, zero point 128 default), scales [N*K/block]
blk = 32
Wt = W.T.reshape(N, K // blk, blk)
sc = np.abs(Wt).max(2) / 127
qb = (np.clip(np.round(Wt / sc[..., None]), -127, 127) + 128).astype(np.uint8)
nbits = model([helper.make_node("MatMulNBits", ["a", "qb", "sc"], ["y"], domain="com.microsoft", K=K, N=N, bits=8,
                                block_size=blk, accuracy_level=4)],
              [numpy_helper.from_array(qb, "qb"), numpy_helper.from_array(sc.reshape(-1).astype(np.float32), "sc")])
so = ort.SessionOptions(); so.intra_op_num_threads = 2
so.add_session_config_entry("session.force_spinning_stop", "1")
sess = {k: ort.InferenceSession(m, so, providers=["CPUExecutionProvider"]) for k, m in
        [("fp32 MatMul", fp32), ("DynamicQuantizeMatMul", dqmm), ("MatMulNBits 8-bit acc4", nbits)]}
ref = sess["fp32 MatMul"].run(None, {"a": A})[0]
times = {k: [] for k in sess}
for r in range(int(sys.argv[1]) if len(sys.argv) > 1 else 15):
    for k, s_ in sess.items():
        t = time.perf_counter(); s_.run(None, {"a": A}); times[k].append((time.perf_counter() - t) * 1e3)
for k, s_ in sess.items():
    y = s_.run(None, {"a": A})[0]
    print(f"{k:24s} median {statistics.median(times[k]):7.3f} ms  ratio {statistics.median(times[k]) / statistics.median(times['fp32 MatMul']):.3f}"
          f"  rel err {np.abs(y - ref).max() / np.abs(ref).max():.2e}")
