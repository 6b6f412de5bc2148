"""Fuzzing of the inputs that cross a trust boundary (issue 12): topic decoders and dataset manifests.

Property-based (hypothesis), bounded in examples and time so it runs in CI.  The
properties: a decoder given any bytes either returns a valid model or raises
:class:`streamer.schemas.SchemaError` (never another exception, which would stop a
consumer's poll loop); every rejected value makes a dead letter that itself encodes
and decodes; a manifest path either resolves strictly inside the dataset folder or
raises :class:`streamer.dataset.DatasetError`; a manifest of any content loads or
raises ``DatasetError``.  What fuzzing found is pinned below as regression tests.
"""
from __future__ import annotations

import json
import re
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from streamer import schemas
from streamer.dataset import Dataset, DatasetError, safe_path

FUZZ = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture,
                                                                        HealthCheck.too_slow])

JSON = st.recursive(st.none() | st.booleans() | st.integers() | st.floats(allow_nan=True) | st.text(),
                    lambda kids: st.lists(kids, max_size=5) | st.dictionaries(st.text(max_size=12), kids, max_size=5),
                    max_leaves=30)


def _valid_values() -> list[tuple[str, bytes]]:
    from test_observability import _grid, make_event

    t = datetime(2026, 5, 1, 21, tzinfo=timezone.utc)
    ev = make_event("cam-1", _grid().cell_id(2, 2), 3, t)
    cam = schemas.CameraStatus(camera_id="cam-1", state="online", at=t)
    return [(schemas.TOPIC_INDICATORS, schemas.encode(ev)), (schemas.TOPIC_CAMERAS, schemas.encode(cam))]


VALID = _valid_values()


def _decode_or_schema_error(topic: str, value: bytes) -> None:
    try:
        out = schemas.decode(topic, value)
    except schemas.SchemaError as exc:
        dl = schemas.dead_letter(topic, value, str(exc), key="k", partition=0, offset=1)
        assert isinstance(schemas.decode(schemas.TOPIC_DLQ, schemas.encode(dl)), schemas.DeadLetter)
        return
    assert type(out) is schemas.TOPIC_SCHEMAS[topic]
    assert schemas.decode(topic, schemas.encode(out)) == out  # what passes round-trips


TOPICS = st.sampled_from(list(schemas.TOPICS))


@FUZZ
@given(topic=TOPICS, value=st.binary(max_size=2000))
def test_any_bytes_decode_or_raise_schema_error(topic: str, value: bytes) -> None:
    _decode_or_schema_error(topic, value)


@FUZZ
@given(topic=TOPICS, obj=JSON)
def test_any_json_decodes_or_raises_schema_error(topic: str, obj: object) -> None:
    _decode_or_schema_error(topic, json.dumps(obj).encode())


@FUZZ
@given(which=st.sampled_from(range(len(VALID))), data=st.data())
def test_valid_events_with_one_field_changed_decode_or_raise_schema_error(which: int, data: st.DataObject) -> None:
    topic, value = VALID[which]
    obj = json.loads(value)
    field = data.draw(st.sampled_from(sorted(obj)))
    action = data.draw(st.sampled_from(["drop", "replace", "truncate"]))
    if action == "drop":
        del obj[field]
        raw = json.dumps(obj).encode()
    elif action == "replace":  # wrong types, unicode, huge numbers, nesting
        obj[field] = data.draw(JSON | st.text(alphabet=st.characters(codec="utf-8"), max_size=200)
                               | st.integers(min_value=-(10 ** 40), max_value=10 ** 40))
        raw = json.dumps(obj, ensure_ascii=data.draw(st.booleans())).encode()
    else:
        raw = value[:data.draw(st.integers(0, len(value)))]
    _decode_or_schema_error(topic, raw)


@pytest.mark.parametrize("value", [b"[" * 100_000, b'{"a":' * 50_000, b"[" * 5_000 + b"]" * 5_000],
                         ids=["deep-array", "deep-object", "deep-closed"])
def test_regression_deeply_nested_json_is_a_schema_error(value: bytes) -> None:
    """Found by fuzzing: json.loads raised RecursionError, which escaped poll() and stopped the consumer."""
    with pytest.raises(schemas.SchemaError, match="nested too deeply|expected an object"):
        schemas.decode(schemas.TOPIC_INDICATORS, value)


@pytest.mark.parametrize("schema", [[], {}, 1.5, None, True])
def test_regression_schema_field_of_the_wrong_type_is_a_schema_error(schema: object) -> None:
    """Found by fuzzing: {"schema": []} raised TypeError (unhashable) out of decode()."""
    with pytest.raises(schemas.SchemaError, match="unknown or missing schema"):
        schemas.decode(schemas.TOPIC_INDICATORS, json.dumps({"schema": schema}).encode())


@pytest.mark.parametrize("number", ['"INFINITY"', "Infinity", "-Infinity", "NaN", '"nan"'])
def test_regression_non_finite_numbers_are_a_schema_error(number: str) -> None:
    """Found by fuzzing: a non-finite stream time passed validation and re-encoded as null (invalid)."""
    topic, value = VALID[0]
    text = re.sub(r'"stream_end_s":[0-9.]+', f'"stream_end_s":{number}', value.decode())
    assert text != value.decode()
    with pytest.raises(schemas.SchemaError, match="finite"):
        schemas.decode(topic, text.encode())


def test_huge_value_is_a_schema_error_not_a_hang() -> None:
    huge = json.dumps({"schema": "imminence.indicator/1", "event_id": "x" * 5_000_000}).encode()
    with pytest.raises(schemas.SchemaError):
        schemas.decode(schemas.TOPIC_INDICATORS, huge)
    dl = schemas.dead_letter(schemas.TOPIC_INDICATORS, huge, "too big")
    assert len(dl.payload) == schemas.MAX_DLQ_PAYLOAD


# -- dataset manifests ---------------------------------------------------------------------------
PATHISH = st.lists(st.sampled_from(["..", ".", "", "a", "b.mp4", "/", "//", "\x00", "~", "é", "a/..", "\\", " "]),
                   max_size=6).map("/".join) | st.text(max_size=40)


@FUZZ
@given(relative=PATHISH)
def test_manifest_paths_stay_inside_the_dataset_or_are_refused(tmp_path: Path, relative: str) -> None:
    root = tmp_path / "ds"
    root.mkdir(exist_ok=True)
    try:
        full = safe_path(root, relative)
    except DatasetError:
        return
    assert full.is_relative_to(root.resolve()) and full != root.resolve()


@pytest.mark.parametrize("relative", ["a\x00b", "", ".", "a/..", "x/../../y", "/etc/passwd", "../ds-evil/x"])
def test_regression_manifest_paths_refused(tmp_path: Path, relative: str) -> None:
    """Found by fuzzing: NUL raised a bare ValueError; "", "." and "a/.." named the folder itself."""
    (tmp_path / "ds").mkdir()
    with pytest.raises(DatasetError):
        safe_path(tmp_path / "ds", relative)


def test_a_symlink_out_of_the_dataset_is_refused(tmp_path: Path) -> None:
    (tmp_path / "ds").mkdir()
    (tmp_path / "secret.mp4").write_bytes(b"x")
    (tmp_path / "ds" / "cam.mp4").symlink_to(tmp_path / "secret.mp4")
    with pytest.raises(DatasetError, match="escapes"):
        safe_path(tmp_path / "ds", "cam.mp4")


MANIFEST_OBJ = st.fixed_dictionaries({"schema": st.just("imminence.dataset/1") | st.text(max_size=5),
                                      "name": JSON, "videos": st.lists(
                                          st.fixed_dictionaries({"file": PATHISH, "camera_id": st.text(max_size=8),
                                                                 "position": JSON, "start": JSON}), max_size=3)})


@FUZZ
@given(content=st.binary(max_size=300) | MANIFEST_OBJ.map(lambda o: json.dumps(o).encode())
       | st.just(b"[" * 100_000) | st.just(b"\xff\xfe{}"))
def test_any_manifest_loads_or_raises_dataset_error(tmp_path: Path, content: bytes) -> None:
    root = tmp_path / "fz"
    root.mkdir(exist_ok=True)
    (root / "manifest.json").write_bytes(content)
    try:
        ds = Dataset(root)
    except DatasetError:
        return
    for v in ds.videos:
        assert ds.video_path(v).is_relative_to(root.resolve())


@pytest.mark.parametrize("content", [b"\xff\xfe{}", b"[" * 100_000], ids=["not-utf8", "deep"])
def test_regression_unreadable_manifest_is_a_dataset_error(tmp_path: Path, content: bytes) -> None:
    """Found by fuzzing: a non-UTF-8 manifest raised UnicodeDecodeError, a deep one RecursionError."""
    (tmp_path / "manifest.json").write_bytes(content)
    with pytest.raises(DatasetError):
        Dataset(tmp_path)
