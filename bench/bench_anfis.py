"""Jang's benchmarks for inference.anfis.ANFIS: Mackey-Glass, the two-input sinc, the three-input function.

1. Mackey-Glass (Jang 1993, example 4): tau = 17, x(0) = 1.2, x(t < 0) = 0;
   inputs x(t-18), x(t-12), x(t-6), x(t), output x(t+6), t = 118..1117; the
   first 500 pairs train and the last 500 check; 2 Gaussian MFs per input,
   16 rules, hybrid learning.  Jang reports a checking NDEI of about 0.007.
2. How much the series matters: the same training on series integrated in
   other ways (the issue 15 reporter's plain RK4, this project's earlier
   generator) and from other x(0); a Gaussian-process regressor fitted to the
   same 500 pairs measures how well the training half covers the checking half
   independently of ANFIS.
3. Two-input sinc (example 1): 121 training points on an 11 x 11 grid of
   [-10, 10]^2, 4 MFs per input (16 rules), 250 epochs; RMSE on the training
   points and on 2,000 unseen uniform points.
4. Three-input function (example 2): (1 + x^0.5 + y^-1 + z^-1.5)^2, 216
   training points on {1..6}^3, 125 checking points on {1.5..5.5}^3, 2 MFs
   per input (8 rules), 200 epochs; average percentage error (APE) as Jang.

    .venv/bin/python bench/bench_anfis.py [--epochs 10 100 500] [--png docs/anfis_mackey_glass.png]

Writes the Mackey-Glass learning curves (training and checking NDEI per epoch)
to the PNG.
"""
from __future__ import annotations

import argparse
import itertools
import sys
import time
import warnings
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from inference.anfis import ANFIS  # noqa: E402
from inference.mackey_glass import jang_dataset, mackey_glass, ndei  # noqa: E402


def naive_rk4(style: str, t_max: float = 1200.0, dt: float = 0.1) -> np.ndarray:
    """Mackey-Glass by RK4 with the delayed value interpolated linearly at half steps (second order).

    ``style`` says what the step that ends at t = tau reads from the history jump at t = 0:
    'average' the mean of x(-dt) = 0 and x(0) = 1.2 at the half step and 1.2 at the end (a plain
    implementation, the issue 15 reporter's series); 'end' 0 at the half step and 1.2 at the end
    (this project's generator before issue 15).  The exact treatment is 0 for the whole step.
    """
    lag, steps = int(round(17 / dt)), int(round(t_max / dt))
    x = np.zeros(steps + 1)
    x[0] = 1.2

    def f(xt: float, xd: float) -> float:
        return 0.2 * xd / (1.0 + xd ** 10) - 0.1 * xt

    for k in range(steps):
        d0 = x[k - lag] if k >= lag else 0.0
        d1 = x[k + 1 - lag] if k + 1 >= lag else 0.0
        dh = 0.5 * (d0 + d1) if (k >= lag or style == "average") else 0.0
        k1 = f(x[k], d0)
        k2 = f(x[k] + 0.5 * dt * k1, dh)
        k3 = f(x[k] + 0.5 * dt * k2, dh)
        k4 = f(x[k] + dt * k3, d1)
        x[k + 1] = x[k] + dt / 6.0 * (k1 + 2 * k2 + 2 * k3 + k4)
    return x[::int(round(1 / dt))]


def gp_check_ndei(Xt: np.ndarray, yt: np.ndarray, Xc: np.ndarray, yc: np.ndarray) -> float:
    """Checking NDEI of a Gaussian process fitted to the training pairs (a model-free coverage measure)."""
    from sklearn.gaussian_process import GaussianProcessRegressor
    from sklearn.gaussian_process.kernels import RBF, WhiteKernel, ConstantKernel

    kernel = ConstantKernel(1.0) * RBF([0.5] * Xt.shape[1]) + WhiteKernel(1e-6)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        gp = GaussianProcessRegressor(kernel, normalize_y=True).fit(Xt, yt)
    return ndei(gp.predict(Xc), yc)


def mackey_glass_table(epochs_list: list[int]) -> tuple[ANFIS, tuple]:
    t = time.perf_counter()
    data = jang_dataset()
    Xt, yt, Xc, yc = data
    print(f"Mackey-Glass series (RK4, dt 0.1, t <= 1200) generated in {time.perf_counter() - t:.2f} s; "
          f"500 train / 500 check pairs")
    print(f"{'epochs':>6} {'rules':>5} {'params':>6} {'train NDEI':>10} {'check NDEI':>10} {'kept':>5} {'seconds':>8}")
    model = None
    for epochs in epochs_list:
        model = ANFIS(n_mfs=2).fit(Xt, yt, epochs=epochs, X_check=Xc, y_check=yc)
        print(f"{epochs:>6} {model.n_rules:>5} {model.n_params:>6} {ndei(model.predict(Xt), yt):>10.5f} "
              f"{ndei(model.predict(Xc), yc):>10.5f} {model.best_epoch_ + 1:>5} {model.fit_seconds_:>8.2f}")
    print("Jang 1993 (ANFIS, 16 rules, 104 parameters, 500 epochs): check NDEI ~0.007")
    return model, data


def series_table(epochs: int) -> dict[str, ANFIS]:
    exact = mackey_glass()
    rows = [("exact (this project)", exact),
            ("plain RK4, issue 15", naive_rk4("average")),
            ("earlier generator", naive_rk4("end")),
            ("exact, x(0) = 1.1", mackey_glass(x0=1.1)),
            ("exact, x(0) = 1.25", mackey_glass(x0=1.25))]
    print(f"\nThe same training ({epochs} epochs) on other series; |dx| = largest difference from the exact series")
    print(f"{'series':<22} {'|dx| t<=600':>11} {'|dx| t<=1123':>12} {'train NDEI':>10} {'check NDEI':>10} "
          f"{'GP check':>8}")
    models = {}
    for name, x in rows:
        Xt, yt, Xc, yc = jang_dataset(x)
        m = ANFIS(n_mfs=2).fit(Xt, yt, epochs=epochs, X_check=Xc, y_check=yc)
        models[name] = m
        d = np.abs(x - exact)
        print(f"{name:<22} {d[:601].max():>11.2e} {d[:1124].max():>12.2e} {ndei(m.predict(Xt), yt):>10.5f} "
              f"{ndei(m.predict(Xc), yc):>10.5f} {gp_check_ndei(Xt, yt, Xc, yc):>8.5f}")
    return models


def sinc_example(epochs: int = 250) -> None:
    def sinc2(X: np.ndarray) -> np.ndarray:
        return np.sinc(X[:, 0] / np.pi) * np.sinc(X[:, 1] / np.pi)  # sin(x)/x * sin(y)/y

    g = np.linspace(-10, 10, 11)
    X = np.array(list(itertools.product(g, g)))
    U = np.random.default_rng(0).uniform(-10, 10, (2000, 2))
    m = ANFIS(n_mfs=4).fit(X, sinc2(X), epochs=epochs)

    def rmse(A: np.ndarray) -> float:
        return float(np.sqrt(np.mean((m.predict(A) - sinc2(A)) ** 2)))

    print(f"\nsinc(x, y), 121 grid points, 4 MFs per input: {m.n_rules} rules, {m.n_params} parameters "
          f"(Jang: 16 rules, 72), {epochs} epochs, {m.fit_seconds_:.2f} s")
    print(f"  training RMSE {rmse(X):.4f}, unseen RMSE (2,000 uniform points) {rmse(U):.4f}")


def three_input_example(epochs: int = 200) -> None:
    def f3(X: np.ndarray) -> np.ndarray:
        return (1 + X[:, 0] ** 0.5 + X[:, 1] ** -1.0 + X[:, 2] ** -1.5) ** 2

    a, b = np.arange(1.0, 7.0), np.arange(1.5, 6.0)
    Xt = np.array(list(itertools.product(a, a, a)))
    Xc = np.array(list(itertools.product(b, b, b)))
    m = ANFIS(n_mfs=2).fit(Xt, f3(Xt), epochs=epochs)  # checking points unseen, not used to pick the epoch

    def ape(A: np.ndarray) -> float:
        return float(100 * np.mean(np.abs(m.predict(A) - f3(A)) / np.abs(f3(A))))

    print(f"\n(1 + x^0.5 + y^-1 + z^-1.5)^2, 216 training / 125 checking points: {m.n_rules} rules, "
          f"{m.n_params} parameters (Jang: 8 rules, 50), {epochs} epochs, {m.fit_seconds_:.2f} s")
    print(f"  APE training {ape(Xt):.3f} %, checking {ape(Xc):.3f} %   (Jang: 0.043 %, 1.066 %)")


def plot(model: ANFIS, data: tuple, others: dict[str, ANFIS], png: Path) -> None:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    Xt, yt, Xc, yc = data
    st, sc = np.std(yt), np.std(yc)
    fig, ax = plt.subplots(1, 3, figsize=(15, 3.8))
    ep = np.arange(1, len(model.history_["train"]) + 1)
    ax[0].plot(ep, np.array(model.history_["train"]) / st, label="training NDEI")
    ax[0].plot(ep, np.array(model.history_["check"]) / sc, label="checking NDEI")
    issue = others.get("plain RK4, issue 15")
    if issue is not None:
        Xi, yi, Xci, yci = jang_dataset(naive_rk4("average"))
        ax[0].plot(ep, np.array(issue.history_["train"]) / np.std(yi), "--", lw=1, label="training, issue 15 series")
        ax[0].plot(ep, np.array(issue.history_["check"]) / np.std(yci), "--", lw=1, label="checking, issue 15 series")
    ax[0].axhline(0.007, color="grey", lw=0.8, ls=":", label="Jang: 0.007")
    ax[0].axvline(model.best_epoch_ + 1, color="k", lw=0.6, ls=":")
    ax[0].set_yscale("log")
    ax[0].set_xlabel("epoch")
    ax[0].set_title("Mackey-Glass learning curves (16 rules)")
    ax[0].legend(fontsize=7)
    ax[1].plot(ep, model.history_["step"])
    ax[1].set_yscale("log")
    ax[1].set_xlabel("epoch")
    ax[1].set_title("premise step size (+10% / -10% rules)")
    t = np.arange(118, 1118)
    ax[2].plot(t[:500], model.predict(Xt) - yt, lw=0.8, label="training")
    ax[2].plot(t[500:], model.predict(Xc) - yc, lw=0.8, label="checking")
    ax[2].set_xlabel("t")
    ax[2].legend(fontsize=7)
    ax[2].set_title("prediction error of x(t+6), kept model")
    fig.tight_layout()
    png.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(png, dpi=80)
    print(f"\nplot: {png}")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--epochs", type=int, nargs="+", default=[10, 100, 500])
    ap.add_argument("--png", default=str(ROOT / "docs" / "anfis_mackey_glass.png"))
    ap.add_argument("--no-series", action="store_true", help="skip the table of other series")
    args = ap.parse_args()
    model, data = mackey_glass_table(args.epochs)
    others = {} if args.no_series else series_table(max(args.epochs))
    sinc_example()
    three_input_example()
    try:
        plot(model, data, others, Path(args.png))
    except ImportError:
        pass
    return 0


if __name__ == "__main__":
    sys.exit(main())
