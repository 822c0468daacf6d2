"""Independent NumPy (float64) reference of the ODE_t(ODE_l) vector field, docs/DESIGN.md §3.

Reads a checkpoint folder (config.json + model.safetensors, parsed by hand: an 8-byte
little-endian header length, a JSON header, raw little-endian tensor bytes), so it needs
neither torch nor the safetensors package.

    params, cfg = load_checkpoint("ckpt/")
    v = forward(params, cfg, length=4, x=x, t=t, k=k, y=y)   # x [B,C,H,W], t/k [B], y [B]
"""

import json
import math
import struct
from pathlib import Path

import numpy as np


def load_safetensors(path):
    """name -> float64 array; F32, F16 and BF16 tensors."""
    data = Path(path).read_bytes()
    (n,) = struct.unpack("<Q", data[:8])
    header = json.loads(data[8 : 8 + n])
    base = 8 + n
    out = {}
    for name, info in header.items():
        if name == "__metadata__":
            continue
        start, end = info["data_offsets"]
        raw = data[base + start : base + end]
        dtype = info["dtype"]
        if dtype == "F32":
            arr = np.frombuffer(raw, "<f4")
        elif dtype == "F16":
            arr = np.frombuffer(raw, "<f2")
        elif dtype == "BF16":
            arr = (np.frombuffer(raw, "<u2").astype(np.uint32) << 16).view(np.float32)
        else:
            raise ValueError(f"{path}: tensor {name} has unsupported dtype {dtype}")
        out[name] = arr.reshape(info["shape"]).astype(np.float64)
    return out


def load_checkpoint(ckpt):
    ckpt = Path(ckpt)
    cfg = json.loads((ckpt / "config.json").read_text())["model"]
    cfg.setdefault("mlp_ratio", 4.0)
    cfg.setdefault("group_size", 1)
    return load_safetensors(ckpt / "model.safetensors"), cfg


def scalar_embedding(s, dim=256):
    """[cos(s f), sin(s f)], f_j = exp(-ln(10000) j / half)."""
    half = dim // 2
    freqs = np.exp(-math.log(10000.0) * np.arange(half, dtype=np.float64) / half)
    args = s.astype(np.float64)[:, None] * freqs[None, :]
    return np.concatenate([np.cos(args), np.sin(args)], axis=-1)


def linear(x, p, name):
    return x @ p[name + ".weight"].T + p[name + ".bias"]


def silu(x):
    return x / (1.0 + np.exp(-x))


def layer_norm(x, eps=1e-6):
    mu = x.mean(-1, keepdims=True)
    var = ((x - mu) ** 2).mean(-1, keepdims=True)
    return (x - mu) / np.sqrt(var + eps)


def modulate(x, shift, scale):
    return x * (1.0 + scale[:, None, :]) + shift[:, None, :]


def gelu_tanh(x):
    return 0.5 * x * (1.0 + np.tanh(math.sqrt(2.0 / math.pi) * (x + 0.044715 * x**3)))


def softmax(a):
    a = a - a.max(-1, keepdims=True)
    e = np.exp(a)
    return e / e.sum(-1, keepdims=True)


def embedder(p, name, s):
    h = linear(scalar_embedding(s), p, name + ".mlp.0")
    return linear(silu(h), p, name + ".mlp.2")


def patch_embed(p, cfg, x):
    """Conv2d(kernel = stride = P) as a matrix product over patches, tokens row-major."""
    b, c, hgt, _ = x.shape
    ps = cfg["patch_size"]
    side = hgt // ps
    d = cfg["hidden_size"]
    patches = x.reshape(b, c, side, ps, side, ps).transpose(0, 2, 4, 1, 3, 5).reshape(b, side * side, c * ps * ps)
    w = p["x_embedder.proj.weight"].reshape(d, c * ps * ps)
    return patches @ w.T + p["x_embedder.proj.bias"]


def attention(p, pre, x, heads):
    b, n, d = x.shape
    dh = d // heads
    qkv = linear(x, p, pre + ".attn.qkv").reshape(b, n, 3, heads, dh).transpose(2, 0, 3, 1, 4)
    q, k, v = qkv[0], qkv[1], qkv[2]
    a = softmax(q @ k.transpose(0, 1, 3, 2) / math.sqrt(dh))
    o = (a @ v).transpose(0, 2, 1, 3).reshape(b, n, d)
    return linear(o, p, pre + ".attn.proj")


def block(p, cfg, i, x, c):
    pre = f"blocks.{i}"
    mods = np.split(linear(silu(c), p, pre + ".adaLN_modulation.1"), 6, axis=-1)
    shift1, scale1, gate1, shift2, scale2, gate2 = mods
    x = x + gate1[:, None, :] * attention(p, pre, modulate(layer_norm(x), shift1, scale1), cfg["num_heads"])
    h = modulate(layer_norm(x), shift2, scale2)
    h = linear(gelu_tanh(linear(h, p, pre + ".mlp.fc1")), p, pre + ".mlp.fc2")
    return x + gate2[:, None, :] * h


def forward(p, cfg, length, x, t, k, y):
    """v_theta(l, k, t, x, y) in float64: [B, C, H, W]."""
    x = x.astype(np.float64)
    h = patch_embed(p, cfg, x) + p["pos_embed"]
    c = embedder(p, "t_embedder", t) + embedder(p, "d_embedder", k) + p["y_embedder.embedding_table.weight"][y]
    c_l = c + p["l_embedder.embedding_table.weight"][length]
    g = cfg["group_size"]
    r, v = h, np.zeros_like(h)
    for i in range(length):
        b = block(p, cfg, i, r, c_l)
        if (i + 1) % g == 0:
            r = r + b
            v = v + b
        else:
            r = b
    shift, scale = np.split(linear(silu(c), p, "final_layer.adaLN_modulation.1"), 2, axis=-1)
    out = linear(modulate(layer_norm(v), shift, scale), p, "final_layer.linear")
    bsz = x.shape[0]
    ps, ch, side = cfg["patch_size"], cfg["in_channels"], cfg["input_size"] // cfg["patch_size"]
    out = out.reshape(bsz, side, side, ps, ps, ch)
    out = np.einsum("nhwpqc->nchpwq", out)
    return out.reshape(bsz, ch, side * ps, side * ps)
