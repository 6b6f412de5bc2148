"""JSON model files are read one way (geo.jsonfile): each stage keeps its error type, the message is one formatter's.

For several formats: a missing key, a wrong type and broken JSON each give one line per
problem, ``PATH: missing field LOCATION`` / ``PATH: LOCATION: what was wrong`` /
``PATH: not JSON: ... line L column C``, with the location written as a JSON path.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Callable

import pytest
from pydantic import BaseModel, ValidationError

from detectors.concepts.classifiers import FORMAT as CONCEPTS_FORMAT
from detectors.concepts.classifiers import ConceptModel, ConceptModelError
from detectors.cooccurrence import FORMAT as COOC_FORMAT
from detectors.cooccurrence import VERSION as COOC_VERSION
from detectors.cooccurrence import load_matrices
from geo.jsonfile import MAX_PROBLEMS, format_validation_error, json_location, read_model
from inference.anfis import ANFIS, ANFISError
from inference.anfis import FORMAT as ANFIS_FORMAT
from inference.anfis import VERSION as ANFIS_VERSION
from streamer.dataset import MANIFEST, Dataset, DatasetError

VIDEO = {"file": "cam1.mp4", "camera_id": "cam1", "position": {"lon": -79.38, "lat": 43.65},
         "start": "2026-05-01T21:00:00Z"}
ANFIS_DOC = {"format": ANFIS_FORMAT, "version": ANFIS_VERSION, "input_names": ["a"], "output_name": "y",
             "x_min": [0.0], "x_range": [1.0], "centres": [[0.0, 1.0]], "sigmas": [[0.5, 0.5]],
             "rules": [[0], [1]], "consequents": [[1.0, 0.0], [0.0, 1.0]]}
COOC_DOC = {"format": COOC_FORMAT, "version": COOC_VERSION, "concepts": ["a", "b"],
            "matrices": {"default": {"window": 2, "alpha": 1.0, "counts": [[1, 0], [0, 1]],
                                     "matrix": [[0.5, 0.5], [0.5, 0.5]]}}}


def _manifest(path: Path) -> None:
    Dataset(path.parent)


# format: (file name, loader, stage error, a good document, break one key, the key's location, mistype one, its location)
FORMATS: dict[str, tuple] = {
    "dataset manifest": (
        MANIFEST, _manifest, DatasetError, {"schema": "imminence.dataset/1", "videos": [VIDEO]},
        lambda d: d["videos"][0].pop("camera_id"), "videos[0].camera_id",
        lambda d: d["videos"][0]["position"].update(lat="north"), "videos[0].position.lat"),
    "ANFIS model": (
        "m.json", ANFIS.load, ANFISError, ANFIS_DOC,
        lambda d: d.pop("consequents"), "consequents",
        lambda d: d["centres"][0].__setitem__(1, "wide"), "centres[0][1]"),
    "co-occurrence matrices": (
        "cooc.json", load_matrices, ValueError, COOC_DOC,
        lambda d: d["matrices"]["default"].pop("alpha"), "matrices.default.alpha",
        lambda d: d["matrices"]["default"].update(window=[2]), "matrices.default.window"),
    "concept model": (
        "concepts.json", ConceptModel.load, ConceptModelError, {"format": CONCEPTS_FORMAT},
        None, "feature_version", None, None),
}


def _write(tmp_path: Path, name: str, doc: dict | str) -> Path:
    (tmp_path / "cam1.mp4").write_bytes(b"x")
    path = tmp_path / name
    path.write_text(doc if isinstance(doc, str) else json.dumps(doc))
    return path


def _message(loader: Callable, error: type[Exception], path: Path) -> list[str]:
    with pytest.raises(error) as exc:
        loader(path)
    lines = str(exc.value).splitlines()
    assert all(line.startswith(f"{path}: ") for line in lines), lines
    return lines


@pytest.mark.parametrize("fmt", ["dataset manifest", "ANFIS model", "co-occurrence matrices"])
def test_the_good_documents_load(tmp_path: Path, fmt: str) -> None:
    name, loader, _, good, *_ = FORMATS[fmt]
    loader(_write(tmp_path, name, good))


@pytest.mark.parametrize("fmt", sorted(FORMATS))
def test_missing_key_and_wrong_type_one_line_each(tmp_path: Path, fmt: str) -> None:
    name, loader, error, good, drop, dropped, mistype, mistyped = FORMATS[fmt]
    doc = json.loads(json.dumps(good))
    if drop is None:  # a document with only its format tag: every required field is named
        lines = _message(loader, error, _write(tmp_path, name, doc))
        assert f"{tmp_path / name}: missing field {dropped}" in lines
        return
    drop(doc)
    mistype(doc)
    lines = _message(loader, error, _write(tmp_path, name, doc))
    assert len(lines) == 2, lines
    assert f"missing field {dropped}" in "\n".join(lines)
    assert any(line.startswith(f"{tmp_path / name}: {mistyped}: Input should be") for line in lines), lines


@pytest.mark.parametrize("fmt", sorted(FORMATS))
def test_broken_json_names_line_and_column(tmp_path: Path, fmt: str) -> None:
    name, loader, error, *_ = FORMATS[fmt]
    path = _write(tmp_path, name, '{"format": 1,\n  "version" 2}')
    (line,) = _message(loader, error, path)
    assert line.startswith(f"{path}: not JSON: ") and line.endswith("at line 2 column 13"), line


@pytest.mark.parametrize("fmt", sorted(FORMATS))
def test_missing_file_says_cannot_read(tmp_path: Path, fmt: str) -> None:
    name, loader, error, *_ = FORMATS[fmt]
    if fmt == "dataset manifest":
        (tmp_path / "ds").mkdir()
        tmp_path = tmp_path / "ds"
    (line,) = _message(loader, error, tmp_path / name)
    assert "cannot read" in line and "No such file" in line


def test_a_wrong_format_tag_is_one_line_before_any_field(tmp_path: Path) -> None:
    path = _write(tmp_path, "m.json", {"format": "something.else", "version": "?"})
    assert _message(ANFIS.load, ANFISError, path) == [
        f"{path}: not an ANFIS model file (format 'something.else', expected {ANFIS_FORMAT!r})"]


def test_format_validation_error_of_a_plain_model() -> None:
    class Plain(BaseModel):
        a: int

    with pytest.raises(ValidationError) as exc:
        Plain.model_validate_json(b'{"a": "x", "b": 1}')
    assert format_validation_error("f.json", exc.value) == \
        "f.json: a: Input should be a valid integer, unable to parse string as an integer"


def test_locations_are_json_paths_and_long_lists_are_cut(tmp_path: Path) -> None:
    assert json_location(("clips", 3, "concept")) == "clips[3].concept"
    assert json_location(("frames", "12", 0)) == "frames['12'][0]"
    assert json_location(("matrices", "event:robbery", "window")) == "matrices['event:robbery'].window"
    assert json_location(()) == ""

    class Many(BaseModel):
        xs: list[int]

    path = tmp_path / "many.json"
    path.write_text(json.dumps({"xs": ["no"] * (MAX_PROBLEMS + 5)}))
    with pytest.raises(ValueError) as exc:
        read_model(path, Many)
    lines = str(exc.value).splitlines()
    assert len(lines) == MAX_PROBLEMS + 1 and lines[0].startswith(f"{path}: xs[0]: ")
    assert lines[-1] == f"{path}: ... and 5 more problem(s)"
