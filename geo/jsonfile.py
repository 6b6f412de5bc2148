"""Read a JSON model file into a pydantic model, with one style of error message.

Every stage that keeps a format in a JSON file (dataset manifests and ground
truth, concept models, co-occurrence matrices, ANFIS models, forecasts, GeoJSON
areas) describes it with a pydantic model beside the code that owns it and reads
it with :func:`read_model`.  The stage passes its own error type, so callers keep
catching what they caught; the message is always made here:

* ``PATH: cannot read WHAT: REASON`` (missing or unreadable file),
* ``PATH: not JSON: REASON at line L column C`` (the bytes are not JSON),
* otherwise one line per problem, ``PATH: LOCATION: WHAT WAS WRONG``, with the
  location written as a JSON path (``clips[0].concept``) and a missing field as
  ``PATH: missing field LOCATION``; a problem with the whole document (a format
  tag, checked before the fields by a before-validator that calls
  :func:`check_tag`) has no location.

This module is in ``geo`` because ``geo`` is the bottom package every stage may
import (tests/test_layering.py); it imports no stage.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any, Sequence, TypeVar, Union

from pydantic import BaseModel, ValidationError

M = TypeVar("M", bound=BaseModel)

#: problems listed one per line before the rest are counted
MAX_PROBLEMS = 10


def json_location(loc: Sequence[Union[str, int]]) -> str:
    """A pydantic error location as a JSON path: ``('clips', 0, 'concept')`` -> ``clips[0].concept``."""
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        elif part.isidentifier():
            out += f".{part}" if out else part
        else:
            out += f"[{part!r}]"
    return out


def _problem(error: dict) -> str:
    where = json_location(error["loc"])
    if error["type"] == "missing":
        return f"missing field {where}"
    msg = error["msg"]
    if error["type"] == "value_error":  # a validator's own words, without pydantic's "Value error, "
        msg = str(error["ctx"]["error"])
    return f"{where}: {msg}" if where else msg


def format_validation_error(path: Union[str, Path], exc: ValidationError) -> str:
    """One line per problem, each ``PATH: LOCATION: WHAT WAS WRONG``; invalid JSON as ``PATH: not JSON: ...``."""
    errors = exc.errors(include_url=False)
    if errors and errors[0]["type"] == "json_invalid":
        return f"{path}: not JSON: {errors[0]['ctx']['error']}"
    lines = [f"{path}: {_problem(e)}" for e in errors[:MAX_PROBLEMS]]
    if len(errors) > MAX_PROBLEMS:
        lines.append(f"{path}: ... and {len(errors) - MAX_PROBLEMS} more problem(s)")
    return "\n".join(lines)


def check_tag(data: Any, key: str, expected: object, message: str) -> Any:
    """For a model's before-validator: refuse a document whose ``key`` is not ``expected``, before its fields.

    ``message`` may name ``{found!r}`` and ``{expected!r}``; anything but a JSON object passes through, for
    pydantic to refuse.
    """
    if isinstance(data, dict) and data.get(key) != expected:
        raise ValueError(message.format(found=data.get(key), expected=expected))
    return data


def read_model(path: Union[str, Path], model: type[M], error: type[Exception] = ValueError,
               what: str = "file") -> M:
    """Read ``path`` and validate it as ``model``; any problem raises ``error`` with a message made here.

    ``what`` names the file in the message for a file that cannot be read (``cannot read concept model``).
    """
    path = Path(path)
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise error(f"{path}: cannot read {what}: {exc.strerror or exc}") from None
    try:
        return model.model_validate_json(data)
    except ValidationError as exc:
        raise error(format_validation_error(path, exc)) from None
