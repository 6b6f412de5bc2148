"""The batch incident forecast: daily maps, a CNN-LSTM with per-cell heads, baselines and scores.

Modules: :mod:`.data` (incident maps and leak-free cell features), :mod:`.model`
(the network), :mod:`.train` (fit, predict, checkpoints), :mod:`.baselines`
(yesterday, historical average, KDE of the last 30 days), the zoo
(:mod:`.count365`, :mod:`.prospective` hotspotting, and :mod:`.logistic`,
:mod:`.random_forest`, :mod:`.gradient_boosting` on :mod:`.tabular` lag
features, and the grid self-exciting point process :mod:`.sepp`), all behind
:mod:`.registry`, :mod:`.evaluate`
(AUROC, AP, hit rate, PAI, Brier over the cells inside the city as pure
functions), :mod:`.backtest` (train before a date, score from it, against the
baselines) and :mod:`.output` (the per-day forecast file the map service merges).
"""
