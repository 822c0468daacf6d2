"""One Algorithm-1 training step of the same DiT in PyTorch eager, for comparison with
`cargo bench --bench train_step`: forward and backward at full length on batch B, the EMA
network's three target forwards on B/8 rows each (two for time consistency, one for length
consistency), AdamW, EMA update. Same FLOPs as odelt's step (which runs all blocks and masks).

    source scripts/env.sh
    odelt train --data synthetic --model fmnist --steps 0 --out /tmp/fm0
    python benches/pytorch_train_step.py --checkpoint /tmp/fm0 --batch 64 --threads 2

Prints one JSON line: ms_median, ms_min, ms_max and samples/s at the median.
"""
import argparse, json, math, os, sys

import torch
import torch.nn.functional as F

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from pytorch_eager import Dit, load_file, timed  # noqa: E402


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--checkpoint", required=True)
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--runs", type=int, default=10)
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    cfg = json.load(open(f"{a.checkpoint}/config.json"))["model"]
    weights = load_file(f"{a.checkpoint}/model.safetensors")
    params = {n: w.clone().requires_grad_(n != "pos_embed") for n, w in weights.items()}
    ema = {n: w.clone() for n, w in weights.items()}
    model, target_model = Dit(cfg, params), Dit(cfg, ema)
    trainable = [p for p in params.values() if p.requires_grad]
    opt = torch.optim.AdamW(trainable, lr=1e-4, betas=(0.9, 0.999), weight_decay=0.1)
    B, S, C, L = a.batch, cfg["input_size"], cfg["in_channels"], cfg["depth"]
    level = float(int(math.log2(cfg.get("denoise_timesteps", 128))))
    part = max(B // 8, 1)

    def step():
        x1 = torch.rand(B, C, S, S) * 2 - 1
        y = torch.randint(cfg["num_classes"], (B,))
        x0 = torch.randn_like(x1)
        t = torch.rand(B)
        k = torch.full((B,), level)
        xt = t.view(B, 1, 1, 1) * x1 + (1 - t.view(B, 1, 1, 1)) * x0
        target = x1 - x0
        with torch.no_grad():
            for _ in range(3):
                target[:part] = target_model(xt[:part], t[:part], k[:part], y[:part], L)
        loss = F.mse_loss(model(xt, t, k, y, L), target)
        opt.zero_grad()
        loss.backward()
        opt.step()
        with torch.no_grad():
            for n, p in params.items():
                ema[n].mul_(0.999).add_(p.detach(), alpha=0.001)

    med, lo, hi = timed(step, a.runs, 2)
    print(json.dumps({"impl": "pytorch-eager", "torch": torch.__version__, "batch": B, "threads": a.threads,
                      "ms_median": med, "ms_min": lo, "ms_max": hi, "samples_per_s": B / med * 1e3}))


if __name__ == "__main__":
    main()
