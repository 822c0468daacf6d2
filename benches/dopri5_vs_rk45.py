"""odelt's Dopri5 against scipy's RK45 on the same ONNX graph: evaluations and global error.

Both integrate the sampling ODE dx/dt = v(x, t, k, y) from t = 0 to 1 with the same graph
(model_l{L}.onnx of an export, ONNX Runtime CPU) at the plain-flow level k = log2 T_max, from
the same fixed noise x0 [B, C, H, W] (float32, seeded) and labels y = 0, 1, …, B−1, as one system
of B·C·H·W components. Both control the step with the same error norm: the RMS over all
components of err_i / (atol + rtol · max(|y0_i|, |y1_i|)), accepting a step when it is ≤ 1.
The global error of each solution is measured against a reference solution of scipy's DOP853 at
rtol = atol = --ref-tol: the max |x − x_ref| over all components (and the RMS, reported).

    scripts/setup.sh --bench; source scripts/env.sh
    ~/.cache/odelt/venv-scipy1.17.1-ort1.31.1/bin/python benches/dopri5_vs_rk45.py \\
        --engines DIR [--length 12] [--batch 3] [--tols 1e-2,1e-3,1e-4]

Prints one JSON line per tolerance (nfe and errors of both, their ratios) and a summary line.
Exits 1 when at some tolerance odelt's error exceeds --max-err-ratio × RK45's (default 1.01:
odelt's state is float32, scipy's float64, so equal step sequences differ in rounding) or its
evaluations exceed --max-nfe-ratio × RK45's (the goal), 2 on bad usage.
"""
import argparse
import json
import math
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
import onnxruntime as ort
from scipy.integrate import solve_ivp


def field(engines, length, labels, level, threads):
    """v(t, x) on flattened float64 states, through ONNX Runtime in float32."""
    so = ort.SessionOptions()
    so.intra_op_num_threads = threads
    sess = ort.InferenceSession(str(engines / f"model_l{length}.onnx"), so, providers=["CPUExecutionProvider"])
    batch = len(labels)
    k = np.full(batch, level, np.float32)

    def f(t, x, shape):
        xs = x.astype(np.float32).reshape(shape)
        (v,) = sess.run(["v"], {"x": xs, "t": np.full(batch, t, np.float32), "k": k, "y": labels})
        return v.astype(np.float64).ravel()

    return f


def odelt_dopri5(odelt, engines, length, tol, noise, labels, threads, out):
    cmd = [
        str(odelt), "sample", "--engines", str(engines), "--length", str(length), "--solver", "dopri5",
        "--rtol", repr(tol), "--atol", repr(tol), "--n", str(len(labels)), "--noise", str(noise),
        "--labels", str(labels_path(noise)), "--npy", str(out), "--json", "--threads", str(threads),
    ]
    run = subprocess.run(cmd, capture_output=True, text=True)
    if run.returncode != 0:
        sys.exit(f"odelt sample failed ({run.returncode}): {run.stderr.strip()}")
    report = json.loads(run.stdout.strip().splitlines()[-1])
    return report, np.load(out).astype(np.float64).ravel()


def labels_path(noise):
    return noise.with_name("labels.npy")


def errors(x, ref):
    d = x - ref
    return float(np.abs(d).max()), float(math.sqrt(np.mean(d * d)))


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--engines", required=True, type=Path, help="export folder (manifest.json, model_l*.onnx)")
    ap.add_argument("--odelt", type=Path, default=Path(__file__).resolve().parent.parent / "target/release/odelt")
    ap.add_argument("--length", type=int, default=12)
    ap.add_argument("--batch", type=int, default=3)
    ap.add_argument("--tols", default="1e-2,1e-3,1e-4", help="rtol = atol values, comma-separated")
    ap.add_argument("--ref-tol", type=float, default=1e-7, help="DOP853 reference tolerance")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--max-nfe-ratio", type=float, default=1.05)
    ap.add_argument("--max-err-ratio", type=float, default=1.01)
    args = ap.parse_args()
    try:
        tols = [float(t) for t in args.tols.split(",")]
        manifest = json.loads((args.engines / "manifest.json").read_text())
    except (ValueError, OSError) as e:
        print(f"dopri5_vs_rk45: {e}", file=sys.stderr)
        sys.exit(2)
    if not args.odelt.is_file():
        print(f"dopri5_vs_rk45: no odelt binary at {args.odelt} (cargo build --release)", file=sys.stderr)
        sys.exit(2)
    cfg = manifest["model"]
    level = int(math.log2(cfg["denoise_timesteps"]))
    shape = (args.batch, cfg["in_channels"], cfg["input_size"], cfg["input_size"])
    x0 = np.random.default_rng(args.seed).standard_normal(shape).astype(np.float32)
    labels = (np.arange(args.batch) % cfg["num_classes"]).astype(np.int64)
    f = field(args.engines, args.length, labels, level, args.threads)

    def rhs(t, x):
        return f(t, x, shape)

    ref = solve_ivp(rhs, (0.0, 1.0), x0.astype(np.float64).ravel(), method="DOP853", rtol=args.ref_tol, atol=args.ref_tol)
    assert ref.success, ref.message
    x_ref = ref.y[:, -1]
    # The reference's own error: DOP853 at ten times the tolerance.
    check = solve_ivp(rhs, (0.0, 1.0), x0.astype(np.float64).ravel(), method="DOP853", rtol=10 * args.ref_tol, atol=10 * args.ref_tol)
    ref_err = errors(check.y[:, -1], x_ref)[0]

    failed = []
    with tempfile.TemporaryDirectory() as tmp:
        noise = Path(tmp) / "x0.npy"
        np.save(noise, x0)
        np.save(labels_path(noise), labels)
        for tol in tols:
            rk = solve_ivp(rhs, (0.0, 1.0), x0.astype(np.float64).ravel(), method="RK45", rtol=tol, atol=tol)
            assert rk.success, rk.message
            rk_max, rk_rms = errors(rk.y[:, -1], x_ref)
            report, x = odelt_dopri5(args.odelt, args.engines, args.length, tol, noise, labels, args.threads, Path(tmp) / "x1.npy")
            od_max, od_rms = errors(x, x_ref)
            row = {
                "tol": tol,
                "rk45_nfe": int(rk.nfev),
                "rk45_err_max": rk_max,
                "rk45_err_rms": rk_rms,
                "odelt_nfe": report["nfe"],
                "odelt_err_max": od_max,
                "odelt_err_rms": od_rms,
                "nfe_ratio": report["nfe"] / rk.nfev,
                "err_ratio": od_max / rk_max,
            }
            print(json.dumps(row), flush=True)
            if row["nfe_ratio"] > args.max_nfe_ratio or row["err_ratio"] > args.max_err_ratio:
                failed.append(tol)
    summary = {
        "length": args.length,
        "batch": args.batch,
        "level": level,
        "reference": f"DOP853 rtol=atol={args.ref_tol:g}, {int(ref.nfev)} nfe, own error {ref_err:.1e}",
        "goal": f"odelt err_max <= {args.max_err_ratio} x rk45 err_max and nfe <= {args.max_nfe_ratio} x rk45 nfe",
        "failed_tols": failed,
    }
    print(json.dumps(summary))
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
