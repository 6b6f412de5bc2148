"""Jang's Mackey-Glass benchmark for inference.anfis.ANFIS.

tau = 17; inputs x(t-18), x(t-12), x(t-6), x(t); output x(t+6); t = 118..1117,
the first 500 pairs train and the last 500 check; 2 Gaussian MFs per input,
16 rules, hybrid learning.  The series is integrated with RK4 (dt = 0.1, see
inference/mackey_glass.py).  Jang (1993) reports a checking NDEI of about 0.007.

    .venv/bin/python bench/bench_anfis.py [--epochs 10 100 500]

Prints train/check NDEI, the epoch kept, seconds; writes bench/out/mackey_glass.png.
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from inference.anfis import ANFIS  # noqa: E402
from inference.mackey_glass import jang_dataset, ndei  # noqa: E402


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--epochs", type=int, nargs="+", default=[10, 100, 500])
    ap.add_argument("--out", default=str(Path(__file__).resolve().parent / "out"))
    args = ap.parse_args()
    t = time.perf_counter()
    Xt, yt, Xc, yc = jang_dataset()
    gen_s = time.perf_counter() - t
    print(f"Mackey-Glass series (RK4, dt 0.1, t <= 1200) generated in {gen_s:.2f} s; 500 train / 500 check pairs")
    print(f"{'epochs':>6} {'rules':>5} {'params':>6} {'train NDEI':>10} {'check NDEI':>10} {'kept':>5} {'seconds':>8}")
    model = None
    for epochs in args.epochs:
        model = ANFIS(n_mfs=2).fit(Xt, yt, epochs=epochs, X_check=Xc, y_check=yc)
        print(f"{epochs:>6} {model.n_rules:>5} {model.n_params:>6} {ndei(model.predict(Xt), yt):>10.5f} "
              f"{ndei(model.predict(Xc), yc):>10.5f} {model.best_epoch_ + 1:>5} {model.fit_seconds_:>8.2f}")
    print("Jang 1993 (ANFIS, 16 rules): check NDEI ~0.007")
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        out = Path(args.out)
        out.mkdir(parents=True, exist_ok=True)
        fig, ax = plt.subplots(1, 2, figsize=(11, 3.2))
        ax[0].plot(model.history_["train"], label="training RMSE")
        ax[0].plot(model.history_["check"], label="checking RMSE")
        ax[0].set_yscale("log")
        ax[0].set_xlabel("epoch")
        ax[0].legend()
        ax[1].plot(yc, label="x(t+6)", lw=1)
        ax[1].plot(model.predict(Xc) - yc, label="check error", lw=1)
        ax[1].legend()
        fig.tight_layout()
        fig.savefig(out / "mackey_glass.png", dpi=90)
        print(f"plot: {out / 'mackey_glass.png'}")
    except ImportError:
        pass
    return 0


if __name__ == "__main__":
    sys.exit(main())
