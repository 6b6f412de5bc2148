"""Benchmark GMCP solve time for h = 8 clips and k = 10 concepts (issue 3, item 5).

Two kinds of windows:
* realistic: log-weighted edges (the default of label_clips) from detector-like confidences and a co-occurrence
  matrix learned from Markov-chain label sequences (concepts persist across
  clips, some transitions are common), as :func:`detectors.gmcp.label_clips`
  builds them; a fifth of the clips carry a confident wrong detection;
* random dense: W drawn i.i.d. normal (the hard case; no structure).

For HiGHS (in process, persistent model; LP relaxation first, and branch and
bound only for comparison) and CBC (PuLP subprocess) it prints
the median and 95th percentile of the whole call with the model built for it
("build+solve": cache cleared first) and with the model cached ("solve", each
call after a different window, as in a camera worker), the
share of windows proved optimal within the time limit, and the accuracy of the
GMCP labels against the per-clip arg-max on the realistic windows.

Run: .venv/bin/python bench/bench_gmcp.py [--windows N] [--random N] [--time-limit S]
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from detectors.cooccurrence import learn_cooccurrence  # noqa: E402
from detectors.gmcp import clear_model_cache, clip_edge_weights, solve_edges  # noqa: E402

H, K = 8, 10


def markov_sequences(rng, n_seq: int, length: int, k: int = K) -> list[np.ndarray]:
    """Concept labels that persist (stay 75%) and move along a few likely transitions."""
    T = np.full((k, k), 0.02)
    for a in range(k):
        T[a, a] = 0.75
        for b in rng.choice([c for c in range(k) if c != a], size=2, replace=False):
            T[a, b] += 0.10
    T /= T.sum(axis=1, keepdims=True)
    seqs = []
    for _ in range(n_seq):
        s = [int(rng.integers(k))]
        for _ in range(length - 1):
            s.append(int(rng.choice(k, p=T[s[-1]])))
        seqs.append(np.array(s))
    return seqs


def detector_confidences(rng, truth: np.ndarray, k: int = K, wrong_rate: float = 0.2) -> np.ndarray:
    conf = rng.beta(1.2, 6.0, size=(len(truth), k))
    conf[np.arange(len(truth)), truth] = rng.uniform(0.45, 0.95, size=len(truth))
    for i in np.nonzero(rng.random(len(truth)) < wrong_rate)[0]:
        wrong = rng.choice([c for c in range(k) if c != truth[i]])
        conf[i, wrong] = rng.uniform(0.5, 0.95)
    return conf


def pct(v, q):
    return float(np.percentile(v, q)) if len(v) else float("nan")


def run(windows, solver: str, time_limit: float, lp_first: bool = True):
    build, cached, optimal, at_lp = [], [], 0, 0
    labels = []
    for W in windows:  # model built in each call
        clear_model_cache()
        build.append(solve_edges(W, solver=solver, time_limit=time_limit, lp_first=lp_first).solve_ms)
    for W in windows:  # model cached, each call after a different window (as in a camera worker)
        r = solve_edges(W, solver=solver, time_limit=time_limit, lp_first=lp_first)
        cached.append(r.solve_ms)
        optimal += r.optimal
        at_lp += r.stage == "lp"
        labels.append(r.labels)
    return build, cached, optimal, at_lp, labels


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--windows", type=int, default=60, help="realistic windows per solver")
    ap.add_argument("--random", type=int, default=5, help="random dense windows per solver")
    ap.add_argument("--time-limit", type=float, default=2.0)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    rng = np.random.default_rng(args.seed)

    train = markov_sequences(rng, 200, 40)
    cooc = learn_cooccurrence(train, [f"c{i}" for i in range(K)], window=H, alpha=1.0)
    truths = [s[:H] for s in markov_sequences(rng, args.windows, H)]
    confs = [detector_confidences(rng, t) for t in truths]
    realistic = [clip_edge_weights(c, cooc.matrix) for c in confs]  # default: log weighting
    product = [clip_edge_weights(c, cooc.matrix, weighting="product") for c in confs]
    dense = [rng.normal(size=(H, K, H, K)) for _ in range(args.random)]

    rows = []
    acc = {}
    for solver, lp_first, label in (("highs", True, "highs"), ("highs", False, "highs-bb"), ("cbc", False, "cbc")):
        for name, ws in (("realistic", realistic), ("random dense", dense)):
            t0 = time.perf_counter()
            b, c, opt, at_lp, labels = run(ws, solver, args.time_limit, lp_first)
            print(f"  {label:8s} {name:12s} done in {time.perf_counter() - t0:.1f} s", file=sys.stderr)
            rows.append((label, name, len(ws), pct(b, 50), pct(b, 95), pct(c, 50), pct(c, 95), opt / len(ws),
                         at_lp / len(ws)))
            if name == "realistic":
                acc[label] = np.mean([np.mean(l == t) for l, t in zip(labels, truths)])
    _, _, _, _, prod_labels = run(product, "highs", args.time_limit)
    acc["highs, product weighting"] = np.mean([np.mean(l == t) for l, t in zip(prod_labels, truths)])
    argmax_acc = np.mean([np.mean(np.argmax(c, axis=1) == t) for c, t in zip(confs, truths)])

    print(f"\nGMCP h={H} k={K}, time limit {args.time_limit:g} s (times in ms; build+solve = model built in the call)")
    print("highs: LP relaxation first, branch and bound when it is fractional; highs-bb: branch and bound only")
    print(f"{'solver':8s} {'windows':12s} {'n':>4s} {'build+solve p50':>16s} {'p95':>9s} "
          f"{'solve p50':>10s} {'p95':>9s} {'optimal':>8s} {'at LP':>6s}")
    for s, n, cnt, b50, b95, c50, c95, opt, lp in rows:
        print(f"{s:8s} {n:12s} {cnt:4d} {b50:16.1f} {b95:9.1f} {c50:10.1f} {c95:9.1f} {opt:8.0%} {lp:6.0%}")
    print(f"\nclip accuracy on realistic windows: arg-max {argmax_acc:.1%}, "
          + ", ".join(f"GMCP/{s} {a:.1%}" for s, a in acc.items()))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
