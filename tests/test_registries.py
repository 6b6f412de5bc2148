"""The plug-in registries (KDE kernels, forecasters): the worked examples of docs/extending.md, run as written."""
from __future__ import annotations

import re
import sys
import types
from pathlib import Path

import numpy as np
import pytest

from mapping import kernels
from mapping.config import MapConfig
from mapping.forecast import backtest, registry
from mapping.kde import kde, kernel_stencil

DOC = Path(__file__).resolve().parents[1] / "docs" / "extending.md"


def _example_modules() -> dict[str, str]:
    """The doc's module listings: the ```python blocks that open with a docstring, keyed by the path before them."""
    text = DOC.read_text()
    out = {}
    for m in re.finditer(r"```python\n(\"\"\".*?)```", text, re.S):
        out[re.findall(r"`(mapping/[\w/]+\.py)`", text[:m.start()])[-1]] = m.group(1)
    return out


def _load(path: str, source: str) -> types.ModuleType:
    name = path[:-3].replace("/", ".")
    if name in sys.modules:
        return sys.modules[name]
    mod = types.ModuleType(name)
    mod.__file__ = str(DOC)
    sys.modules[name] = mod
    exec(compile(source, f"{DOC}:{path}", "exec"), mod.__dict__)
    return mod


@pytest.fixture(scope="module")
def examples() -> dict[str, types.ModuleType]:
    mods = _example_modules()
    assert set(mods) == {"mapping/kernels/triangular.py", "mapping/forecast/seasonal.py"}, set(mods)
    return {p: _load(p, src) for p, src in mods.items()}


def test_unknown_names_are_refused_with_the_registered_ones():
    with pytest.raises(ValueError, match=r"kernel must be one of \('gaussian', 'quartic'.*got 'cone'"):
        MapConfig(kernel="cone")
    with pytest.raises(ValueError, match="unknown forecaster 'arima'; known: cnn_lstm, count_365d, gradient_boosting"):
        registry.create("arima")
    with pytest.raises(ValueError, match="already registered"):
        kernels.register("quartic")(lambda d, r: d)


def test_the_documented_kernel_is_a_kernel_and_is_used_by_config_and_kde(examples):
    assert "triangular" in kernels.names()
    assert MapConfig(kernel="triangular").kernel == "triangular"
    K = kernel_stencil(1000.0, 25.0, "triangular")
    assert K.sum() * 25.0 ** 2 == pytest.approx(1.0, rel=2e-3)
    assert K[0, 0] == 0.0  # a corner of the stencil is beyond the radius
    from tests.test_kde import RASTER
    S = kde([3500.0], [1500.0], raster=RASTER, radius=800.0, kernel="triangular")
    Q = kde([3500.0], [1500.0], raster=RASTER, radius=800.0, kernel="quartic")
    assert S.sum() == pytest.approx(Q.sum(), rel=5e-3) and S.max() < Q.max()  # same mass, flatter peak


def test_the_documented_forecaster_runs_in_the_backtest_beside_the_baselines(examples):
    from tests.test_forecast import planted_incidents

    g, inc, hot = planted_incidents()  # four cells hot every third day
    seasonal = examples["mapping/forecast/seasonal.py"].SeasonalNaive(period=3, seasons=4)
    res, fitted = backtest.run(inc, g, "2021-01-01", targets=["robbery"], progress=False,
                               forecasters=[seasonal, "historical_average", "yesterday"])
    sc = res.scores["robbery"]
    assert set(sc) == {"model", "historical_average", "yesterday"} and res.model_name == "seasonal_naive"
    assert fitted is seasonal and res.train_days == 366 and res.test_days == 54
    # the period-3 pattern is exactly what it looks for: far ahead of both on precision, and better calibrated
    assert sc["model"]["ap"] > sc["historical_average"]["ap"] + 0.2, sc
    assert sc["model"]["ap"] > sc["yesterday"]["ap"] + 0.2, sc
    assert backtest.beats_all(sc, ("auroc", "ap", "brier")) == {"auroc": True, "ap": True, "brier": True}
    # and by name, once registered, with its own defaults (weekly period: no edge on this data)
    res7, _ = backtest.run(inc, g, "2021-01-01", targets=["robbery"], progress=False,
                           forecasters=["seasonal_naive", "historical_average"])
    assert res7.scores["robbery"]["model"]["ap"] < sc["model"]["ap"] - 0.2
