"""Summarises `benches/compare.sh` output (JSON lines on stdin): per implementation and
length the median of the per-repetition medians and the best call, and odelt's speed-up over
each other implementation (median of medians, per-repetition range, best-vs-best)."""
import json
import statistics
import sys
from collections import defaultdict

med, best = defaultdict(dict), defaultdict(lambda: float("inf"))
for line in sys.stdin:
    r = json.loads(line)
    if "length" in r:
        key = (r["impl"], r["length"])
        med[key][r["rep"]] = r["ms_median"]
        best[key] = min(best[key], r["ms_min"])
impls = sorted({i for i, _ in med if i != "odelt"})
for length in sorted({l for _, l in med}):
    o = med[("odelt", length)]
    print(f"l = {length}: odelt {statistics.median(o.values()):.3f} ms (best {best[('odelt', length)]:.3f})")
    for impl in impls:
        other = med[(impl, length)]
        reps = [other[r] / o[r] for r in o if r in other]
        print(f"  {impl:16s} {statistics.median(other.values()):.3f} ms (best {best[(impl, length)]:.3f}): "
              f"speed-up {statistics.median(other.values()) / statistics.median(o.values()):.2f}x "
              f"(per rep {min(reps):.2f}-{max(reps):.2f}x, best-vs-best {best[(impl, length)] / best[('odelt', length)]:.2f}x)")
