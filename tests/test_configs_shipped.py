"""Every root configuration shipped in configs/ validates, grid and camera positions included."""
from __future__ import annotations

from pathlib import Path

import pytest

from imminence.config import load_config

CONFIGS = Path(__file__).resolve().parents[1] / "configs"


@pytest.mark.parametrize("name", ["default.yaml", "cameras.yaml", "demo.yaml", "compose.yaml", "toronto.yaml",
                                  "held-objects.yaml"])
def test_shipped_config_validates(name: str) -> None:
    cfg, grid = load_config(CONFIGS / name)
    for cam in cfg.cameras:  # every camera lies in a cell of the grid
        assert grid is not None and grid.cell_of(**cam.position.model_dump(exclude_none=True)) is not None
