"""Configuration: errors name file, line and key; the example and default configs validate and stay in sync.

``python tests/test_config.py`` rewrites ``configs/default.yaml`` from the models
(every key, its default and a ``(type) meaning`` comment); the test below fails
when a model gains, loses or changes a default that the file does not show.
"""
from __future__ import annotations

import json
import sys
import typing
from pathlib import Path
from typing import Any

import pytest
import yaml
from pydantic import BaseModel, SecretStr

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from imminence.config import ImminenceConfig, load_config  # noqa: E402
from imminence.configfile import ConfigError  # noqa: E402
from streamer.config import CameraConfig  # noqa: E402

DEFAULTS = ROOT / "configs" / "default.yaml"

GOOD = """\
bus:
  bootstrap: "127.0.0.1:9092"
grid:
  bbox: [-79.42, 43.63, -79.36, 43.67]
  cell_size_m: 250
cameras:
  - id: plaza
    source: clip.mp4
    position: {lon: -79.3871, lat: 43.6426}
    fps: 5
    clip_seconds: 2
"""


def write(tmp_path: Path, text: str) -> Path:
    p = tmp_path / "cams.yaml"
    p.write_text(text)
    return p


def test_valid_config_loads(tmp_path: Path) -> None:
    cfg, grid = load_config(write(tmp_path, GOOD))
    assert cfg.cameras[0].fps == 5 and grid.cell_of(lon=-79.3871, lat=43.6426)


@pytest.mark.parametrize("old, new, line, expected", [
    ("    fps: 5", "    fsp: 5", 10, "cameras -> 0 -> fsp: unknown key (did you mean 'fps'?)"),
    ("    fps: 5", "    fps: fast", 10, "cameras -> 0 -> fps: Input should be a valid number"),
    ("    clip_seconds: 2", "    clip_seconds: -1", 11, "cameras -> 0 -> clip_seconds: Input should be greater than 0"),
    ("  bootstrap:", "  bootsrap:", 2, "bus -> bootsrap: unknown key (did you mean 'bootstrap'?)"),
    ("{lon: -79.3871, lat: 43.6426}", "{lon: -79.3871}", 9, "cameras -> 0 -> position: Value error, give lon and lat"),
    ("{lon: -79.3871, lat: 43.6426}", "{lon: -70.0, lat: 43.6426}", 9, "(plaza) -> position: outside the study area"),
])
def test_config_errors_name_file_line_and_key(tmp_path: Path, old: str, new: str, line: int, expected: str) -> None:
    assert old in GOOD
    path = write(tmp_path, GOOD.replace(old, new))
    with pytest.raises(ConfigError) as err:
        load_config(path)
    assert f"{path}:{line}:" in str(err.value), str(err.value)
    assert expected in str(err.value), str(err.value)


def test_worker_command_exits_2_on_a_config_error(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    from test_worker import cli

    path = write(tmp_path, GOOD.replace("    fps: 5", "    fsp: 5"))
    code, _, err = cli(capsys, "worker", "--camera", "plaza", "--config", str(path))
    assert code == 2 and f"{path}:10: cameras -> 0 -> fsp: unknown key (did you mean 'fps'?)" in err


def test_example_cameras_config_validates() -> None:
    cfg, grid = load_config(ROOT / "configs" / "cameras.yaml")
    assert len(cfg.cameras) >= 2 and all(grid.cell_of(lon=c.position.lon, lat=c.position.lat) for c in cfg.cameras)
    for cam in cfg.cameras:  # the example's files exist (relative to the config's folder)
        assert (ROOT / "configs" / cam.source).exists(), cam.source


# -- configs/default.yaml ---------------------------------------------------------------
def _type_name(ann: Any) -> str:
    origin = typing.get_origin(ann)
    args = typing.get_args(ann)
    if origin is typing.Annotated:
        return _type_name(args[0])
    if origin is typing.Literal:
        return "|".join(str(a) for a in args)
    if origin in (typing.Union, getattr(__import__("types"), "UnionType", None)):
        return "|".join("null" if a is type(None) else _type_name(a) for a in args)
    if origin in (list, tuple, dict, set):
        return origin.__name__
    if ann is SecretStr:
        return "secret"
    if isinstance(ann, type):
        return ann.__name__
    return str(ann).replace("typing.", "")


def _meaning(name: str, field: Any) -> str:
    return (field.description or name.replace("_", " ")).replace("\n", " ")


def _render_model(model: type[BaseModel], value: BaseModel, indent: int, out: list[str], comment: bool = False) -> None:
    pad = "  " * indent
    hash_ = "# " if comment else ""
    for name, field in model.model_fields.items():
        key = field.alias or name
        v = getattr(value, name)
        if isinstance(v, BaseModel):
            doc = (type(v).__doc__ or "").strip().splitlines()[0] if type(v).__doc__ else ""
            out.append(f"{pad}{hash_}{key}:  # ({type(v).__name__}) {doc}".rstrip())
            _render_model(type(v), v, indent + 1, out, comment)
            continue
        dumped = value.model_dump(mode="json", by_alias=True)[key] if not isinstance(v, SecretStr) else None
        out.append(f"{pad}{hash_}{key}: {json.dumps(dumped)}  # ({_type_name(field.annotation)}) {_meaning(name, field)}")


def render_default_yaml() -> str:
    """Every key of :class:`ImminenceConfig` with its default and a ``(type) meaning`` comment."""
    cfg = ImminenceConfig()
    out = ["# Every configuration key with its default: generated from the models by `python tests/test_config.py`",
           "# (tests/test_config.py fails when this file and the models disagree). Copy the sections you change.", ""]
    for name, field in ImminenceConfig.model_fields.items():
        v = getattr(cfg, name)
        if isinstance(v, BaseModel):
            out.append(f"{name}:  # {(type(v).__doc__ or '').strip().splitlines()[0] if type(v).__doc__ else ''}".rstrip())
            _render_model(type(v), v, 1, out)
        elif name == "grid":
            out.append("grid: null  # (GridConfig|null) the study area; required as soon as there are cameras, e.g.:")
            from geo.grid import GridConfig

            example = GridConfig(bbox=(-79.42, 43.63, -79.36, 43.67))
            _render_model(GridConfig, example, 1, out, comment=True)
        elif name == "cameras":
            out.append("cameras: []  # (list of CameraConfig) one entry per camera worker, e.g.:")
            cam = CameraConfig(id="lobby", source="rtsp://host/stream", position={"lon": -79.38, "lat": 43.65})
            out.append("  # - id: lobby  # (str) camera id, also the Kafka key of its events")
            sub: list[str] = []
            _render_model(CameraConfig, cam, 2, sub, comment=True)
            out += [line for line in sub if not line.lstrip().startswith("# id:")]
        else:
            out.append(f"{name}: {json.dumps(field.default)}  # ({_type_name(field.annotation)}) {_meaning(name, field)}")
        out.append("")
    return "\n".join(out)


def _keys(obj: Any, prefix: tuple = ()) -> set[tuple]:
    if isinstance(obj, dict):
        keys = set()
        for k, v in obj.items():
            keys.add(prefix + (k,))
            keys |= _keys(v, prefix + (k,))
        return keys
    return set()


def test_default_yaml_matches_the_models() -> None:
    text = DEFAULTS.read_text()
    data = yaml.safe_load(text)
    expected = ImminenceConfig().model_dump(mode="json", by_alias=True)
    missing = _keys(expected) - _keys(data)
    extra = _keys(data) - _keys(expected)
    assert not missing and not extra, (f"configs/default.yaml is out of sync (run `python tests/test_config.py`): "
                                       f"missing {sorted(missing)}, unknown {sorted(extra)}")
    loaded, _ = load_config(DEFAULTS)
    assert loaded.model_dump(mode="json", by_alias=True) == expected
    # every key line carries a "(type) meaning" comment
    for line in text.splitlines():
        if line.strip() and not line.lstrip().startswith("#") and ":" in line:
            assert "# (" in line or line.rstrip().endswith(":") or "  # " in line, line


if __name__ == "__main__":
    DEFAULTS.write_text(render_default_yaml())
    print(f"wrote {DEFAULTS}")
