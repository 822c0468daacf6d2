"""The same DiT in PyTorch eager, built from a checkpoint's model.safetensors (names and
forward pass as docs/DESIGN.md §3), timed like `odelt bench`: one forward at length l, batch B.
Also measures the machine's sgemm rate at a DiT-sized product, same threads.

    source scripts/env.sh
    python benches/pytorch_eager.py --checkpoint CKPT --lengths 4,8,12 --batch 1 --threads 2 --runs 10
    python benches/pytorch_eager.py --sgemm --threads 2
    python3 benches/pytorch_eager.py --checkpoint CKPT --lengths 4,8,12 --batch 1,8 --device cuda [--dtype fp16]
    python benches/pytorch_eager.py --checkpoint CKPT --lengths 4,8,12 --compile   # torch.compile

Prints one JSON line per measurement (length, batch, device, dtype, ms_median, ms_min, ms_max)
or, with --sgemm, the GFLOP/s of a [M,K]x[K,N] matmul. On CUDA every timed call ends with
torch.cuda.synchronize(), so a call's time is its GPU work, as odelt's engine call (which
copies v back to the host) is; fp32 is true fp32 (PyTorch's default: no TF32 matrix
products).
"""
import argparse, json, math, statistics, time

import numpy as np
import torch
import torch.nn.functional as F


def load_file(path):
    """safetensors without the safetensors package: u64 header size, JSON header, raw bytes."""
    raw = open(path, "rb").read()
    n = int.from_bytes(raw[:8], "little")
    header = json.loads(raw[8 : 8 + n])
    dtypes = {"F32": np.float32, "F16": np.float16, "F64": np.float64, "I64": np.int64}
    out = {}
    for name, info in header.items():
        if name == "__metadata__":
            continue
        lo, hi = info["data_offsets"]
        if info["dtype"] == "BF16":
            u = np.frombuffer(raw, np.uint16, (hi - lo) // 2, 8 + n + lo).astype(np.uint32) << 16
            arr = u.view(np.float32)
        else:
            arr = np.frombuffer(raw, dtypes[info["dtype"]], offset=8 + n + lo, count=(hi - lo) // np.dtype(dtypes[info["dtype"]]).itemsize)
        out[name] = torch.from_numpy(arr.astype(np.float32).reshape(info["shape"]))
    return out


def sincos(s, dim=256):
    half = dim // 2
    f = torch.exp(-math.log(10000.0) * torch.arange(half, dtype=torch.float32, device=s.device) / half)
    a = s[:, None].float() * f[None]
    return torch.cat([torch.cos(a), torch.sin(a)], dim=-1)


class Dit(torch.nn.Module):
    def __init__(self, cfg, w):
        super().__init__()
        self.cfg, self.w = cfg, w

    def lin(self, x, name):
        return F.linear(x, self.w[name + ".weight"], self.w[name + ".bias"])

    def embed(self, s, name):
        e = sincos(s).to(self.w[name + ".mlp.0.weight"].dtype)
        return self.lin(F.silu(self.lin(e, name + ".mlp.0")), name + ".mlp.2")

    def forward(self, x, t, k, y, l):
        c, w = self.cfg, self.w
        D, P, H = c["hidden_size"], c["patch_size"], c["num_heads"]
        B = x.shape[0]
        h = F.conv2d(x, w["x_embedder.proj.weight"], w["x_embedder.proj.bias"], stride=P)
        h = h.flatten(2).transpose(1, 2) + w["pos_embed"]
        cc = self.embed(t, "t_embedder") + self.embed(k, "d_embedder") + w["y_embedder.embedding_table.weight"][y]
        cl = cc + w["l_embedder.embedding_table.weight"][l]
        sc = F.silu(cl)
        r, v = h, torch.zeros_like(h)
        G = c.get("group_size", 1)
        for i in range(l):
            p = f"blocks.{i}"
            s1, a1, g1, s2, a2, g2 = self.lin(sc, p + ".adaLN_modulation.1").unsqueeze(1).chunk(6, dim=-1)
            z = F.layer_norm(r, (D,), eps=1e-6) * (1 + a1) + s1
            N = z.shape[1]
            qkv = self.lin(z, p + ".attn.qkv").reshape(B, N, 3, H, D // H).permute(2, 0, 3, 1, 4)
            a = F.scaled_dot_product_attention(qkv[0], qkv[1], qkv[2])
            b = r + g1 * self.lin(a.transpose(1, 2).reshape(B, N, D), p + ".attn.proj")
            z = F.layer_norm(b, (D,), eps=1e-6) * (1 + a2) + s2
            b = b + g2 * self.lin(F.gelu(self.lin(z, p + ".mlp.fc1"), approximate="tanh"), p + ".mlp.fc2")
            if (i + 1) % G == 0:
                r, v = r + b, v + b
            else:
                r = b
        shift, scale = self.lin(F.silu(cc), "final_layer.adaLN_modulation.1").unsqueeze(1).chunk(2, dim=-1)
        o = self.lin(F.layer_norm(v, (D,), eps=1e-6) * (1 + scale) + shift, "final_layer.linear")
        C, S = c["in_channels"], c["input_size"] // P
        o = o.reshape(B, S, S, P, P, C)
        return torch.einsum("nhwpqc->nchpwq", o).reshape(B, C, S * P, S * P)


def timed(fns, runs, warmup, device="cpu"):
    """Times each of `fns` `runs` times, calling them round-robin as `odelt bench` calls its
    lengths (a solve's consecutive calls of one length would be faster for both)."""
    sync = torch.cuda.synchronize if device.startswith("cuda") else (lambda: None)
    ts = [[] for _ in fns]
    for i in range(warmup + runs):
        for fn, times in zip(fns, ts):
            t0 = time.perf_counter()
            fn()
            sync()
            if i >= warmup:
                times.append((time.perf_counter() - t0) * 1e3)
    return [(statistics.median(t), min(t), max(t)) for t in ts]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--checkpoint")
    ap.add_argument("--lengths", default="")
    ap.add_argument("--batch", default="1", help="batch sizes, comma-separated")
    ap.add_argument("--device", default="cpu", help="cpu or cuda[:N]")
    ap.add_argument("--dtype", default="fp32", choices=["fp32", "fp16", "bf16"])
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--runs", type=int, default=10)
    ap.add_argument("--warmup", type=int, default=2)
    ap.add_argument("--sgemm", action="store_true")
    ap.add_argument("--compile", action="store_true", help="time torch.compile(model) (inductor) instead of eager")
    ap.add_argument("--mkn", default="256,768,3072", help="sgemm sizes M,K,N (DiT-B fc1 at 256 tokens)")
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    torch.set_grad_enabled(False)
    if a.device.startswith("cuda") and not torch.cuda.is_available():
        raise SystemExit(f"error: --device {a.device}: PyTorch {torch.__version__} sees no CUDA device")
    dev = torch.device(a.device)
    dtype = {"fp32": torch.float32, "fp16": torch.float16, "bf16": torch.bfloat16}[a.dtype]
    if a.sgemm:
        m, k, n = map(int, a.mkn.split(","))
        x, wt = torch.randn(m, k, device=dev, dtype=dtype), torch.randn(k, n, device=dev, dtype=dtype)
        [(med, lo, hi)] = timed([lambda: x @ wt], max(a.runs, 20), 5, a.device)
        print(json.dumps({"sgemm": [m, k, n], "threads": a.threads, "device": a.device, "dtype": a.dtype,
                          "ms_median": med, "gflops_median": 2 * m * k * n / med / 1e6,
                          "gflops_best": 2 * m * k * n / lo / 1e6}))
        return
    cfg = json.load(open(f"{a.checkpoint}/config.json"))["model"]
    weights = {n: w.to(dev, dtype) for n, w in load_file(f"{a.checkpoint}/model.safetensors").items()}
    model = Dit(cfg, weights).eval()
    S, C = cfg["input_size"], cfg["in_channels"]
    lengths = [int(l) for l in a.lengths.split(",") if l] or [cfg["depth"]]
    run = torch.compile(model) if a.compile else model
    for batch in [int(b) for b in a.batch.split(",")]:
        x = torch.randn(batch, C, S, S, device=dev, dtype=dtype)
        t = torch.full((batch,), 0.5, device=dev)
        k = torch.full((batch,), float(int(math.log2(cfg.get("denoise_timesteps", 128)))), device=dev)
        y = torch.zeros(batch, dtype=torch.long, device=dev)
        with torch.inference_mode():
            stats = timed([lambda l=l: run(x, t, k, y, l) for l in lengths], a.runs, a.warmup, a.device)
        for l, (med, lo, hi) in zip(lengths, stats):
            print(json.dumps({"impl": "pytorch-compile" if a.compile else "pytorch-eager", "torch": torch.__version__,
                              "device": a.device, "dtype": a.dtype, "length": l, "batch": batch, "threads": a.threads,
                              "ms_median": med, "ms_min": lo, "ms_max": hi, "runs": a.runs}))


if __name__ == "__main__":
    main()
