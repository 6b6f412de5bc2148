"""The CNN-LSTM grid forecaster of the design notes, sized from the grid.

Per day, a VGG-style CNN (3x3 convolutions 32, 32, pool, 64, 64, pool, 128,
128, pool, 256, 256, two 1x1 convolutions of 256, batch norm, dropout) turns
the (C, H, W) incident map into a feature vector; three stacked LSTM cells
(500, 500, H*W) carry the days through time (H*W counts the cells inside
the city: cells outside it are never scored); per cell, a classifier (hotspot
tomorrow) and a regressor (count tomorrow) read the cell's T hidden values of
the last LSTM, joined by the cell's static features.

Two departures, both for CPU budgets and both configurable:

* ``width`` scales every CNN channel count (1.0 = the design's 32..256); the CNN
  output is average-pooled to 4x4 before the first LSTM so its input size does
  not grow with the city.
* The third LSTM has ``min(H*W, lstm3_max)`` units; when the grid has more cells
  a linear layer maps them to H*W values per day (an LSTM of 6,000 units would
  hold 160 M weights).

The heads are anchored on the cell's long-run rate, the strongest predictor
known for daily cells: ``logit = a_k * log(rate_k + eps) + b_k + residual_k``
where the residual MLP (T hidden values + static features) starts at zero, so
training begins from the historical-average ranking and moves away from it
only as far as the data pays for.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, field

import torch
from torch import nn

RATE_EPS = 1e-4


@dataclass
class ModelConfig:
    """Shape and size of the network (stored in checkpoints)."""

    in_channels: int
    rows: int
    cols: int
    n_features: int
    n_targets: int
    n_cells: int                          # cells inside the city (the heads' cells)
    history: int = 30                     # T, days per window
    width: float = 1.0                    # CNN channel multiplier (1.0 = design)
    lstm: tuple[int, int] = (500, 500)    # first two LSTM cells
    lstm3_max: int = 1024                 # cap of the third LSTM's units (H*W when smaller)
    head_hidden: int = 64
    dropout: float = 0.2
    rate_index: list[int] = field(default_factory=list)  # feature rows holding log1p(10*rate) per target

    def to_dict(self) -> dict:
        return asdict(self)


def _conv(cin: int, cout: int, k: int = 3) -> list[nn.Module]:
    return [nn.Conv2d(cin, cout, k, padding=k // 2), nn.BatchNorm2d(cout), nn.ReLU(inplace=True)]


class DayEncoder(nn.Module):
    """VGG-style CNN over one day's (C, H, W) map -> a feature vector."""

    def __init__(self, cin: int, width: float, dropout: float) -> None:
        super().__init__()
        w = [max(4, int(round(c * width))) for c in (32, 64, 128, 256)]
        layers: list[nn.Module] = []
        layers += _conv(cin, w[0]) + _conv(w[0], w[0]) + [nn.MaxPool2d(2, ceil_mode=True)]
        layers += _conv(w[0], w[1]) + _conv(w[1], w[1]) + [nn.MaxPool2d(2, ceil_mode=True)]
        layers += _conv(w[1], w[2]) + _conv(w[2], w[2]) + [nn.MaxPool2d(2, ceil_mode=True)]
        layers += _conv(w[2], w[3]) + _conv(w[3], w[3])
        layers += _conv(w[3], w[3], 1) + _conv(w[3], w[3], 1) + [nn.Dropout2d(dropout)]
        layers += [nn.AdaptiveAvgPool2d(4)]
        self.net = nn.Sequential(*layers)
        self.out_dim = w[3] * 16

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x).flatten(1)


class CNNLSTMForecaster(nn.Module):
    """Maps a sequence of daily maps to per-cell hotspot logits and counts for each following day."""

    def __init__(self, cfg: ModelConfig) -> None:
        super().__init__()
        self.cfg = cfg
        cells = cfg.n_cells
        self.encoder = DayEncoder(cfg.in_channels, cfg.width, cfg.dropout)
        self.lstm1 = nn.LSTM(self.encoder.out_dim, cfg.lstm[0], batch_first=True)
        self.lstm2 = nn.LSTM(cfg.lstm[0], cfg.lstm[1], batch_first=True)
        h3 = min(cells, cfg.lstm3_max)
        self.lstm3 = nn.LSTM(cfg.lstm[1], h3, batch_first=True)
        self.expand = nn.Linear(h3, cells) if h3 < cells else nn.Identity()
        self.drop = nn.Dropout(cfg.dropout)
        k = cfg.n_targets
        self.head = nn.Sequential(
            nn.Linear(cfg.history + cfg.n_features, cfg.head_hidden), nn.ReLU(inplace=True),
            nn.Dropout(cfg.dropout), nn.Linear(cfg.head_hidden, cfg.head_hidden), nn.ReLU(inplace=True),
            nn.Linear(cfg.head_hidden, 2 * k))
        nn.init.zeros_(self.head[-1].weight)
        nn.init.zeros_(self.head[-1].bias)
        # anchor: logit ~ log(rate) (P(at least one) ~ rate for small rates), count ~ rate
        self.a = nn.Parameter(torch.ones(k))
        self.b = nn.Parameter(torch.zeros(k))
        self.ca = nn.Parameter(torch.ones(k))
        self.cb = nn.Parameter(torch.zeros(k))

    def sequence(self, maps: torch.Tensor) -> torch.Tensor:
        """(B, L, C, H, W) daily maps -> (B, L, N) last-LSTM outputs per day and city cell."""
        b, l = maps.shape[:2]
        z = self.encoder(maps.flatten(0, 1)).view(b, l, -1)
        z, _ = self.lstm1(z)
        z, _ = self.lstm2(self.drop(z))
        z, _ = self.lstm3(self.drop(z))
        return self.expand(z)

    def heads(self, hidden: torch.Tensor, features: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Per-cell heads.

        hidden: (B, T, N) the T last-LSTM outputs before each target day;
        features: (B, F, N) the target day's cell features (days before it only).
        Returns hotspot logits and counts, each (B, K, N).
        """
        x = torch.cat([hidden, features], dim=1).transpose(1, 2)   # (B, N, T+F)
        r = self.head(x).transpose(1, 2)                             # (B, 2K, N)
        k = self.cfg.n_targets
        # features hold log1p(10 * rate); recover the rate for the anchor
        rate = torch.expm1(features[:, self.cfg.rate_index]).clamp_min(0) / 10.0
        lr = torch.log(rate + RATE_EPS)
        logit = self.a[None, :, None] * lr + self.b[None, :, None] + r[:, :k]
        count = nn.functional.softplus(self.ca[None, :, None] * lr + self.cb[None, :, None] + r[:, k:])
        return logit, count

    def forward(self, maps: torch.Tensor, features: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """maps: (B, L, C, H, W) with L >= T; features: (B, L-T+1, F, N), one per window.

        Output j predicts the day after maps[:, j : j+T]; returns (B, L-T+1, K, N) logits and counts.
        """
        t = self.cfg.history
        seq = self.sequence(maps)                                  # (B, L, N)
        win = seq.unfold(1, t, 1)                                  # (B, L-T+1, N, T)
        b, j, n, _ = win.shape
        hidden = win.permute(0, 1, 3, 2).reshape(b * j, t, n)
        logit, count = self.heads(hidden, features.reshape(b * j, -1, n))
        return logit.view(b, j, -1, n), count.view(b, j, -1, n)
