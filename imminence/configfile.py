"""Load YAML configuration, validate it against pydantic models, and point errors at the line.

A wrong key or value stops the process with a message naming the file, the line,
the key path and what was expected, e.g.::

    configs/cameras.yaml:12: cameras -> 0 -> fps: Input should be greater than 0 (got -5)
    configs/cameras.yaml:3: bus -> bootsrap: unknown key (did you mean 'bootstrap'?)

``${VAR}`` and ``${VAR:-default}`` placeholders in string values are filled from
the environment (secrets stay out of YAML); the values are never echoed in errors.
"""
from __future__ import annotations

import difflib
import os
import re
from pathlib import Path
from typing import Any, TypeVar

import yaml
from pydantic import BaseModel, ValidationError

M = TypeVar("M", bound=BaseModel)
_ENV = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}")


class ConfigError(ValueError):
    """Invalid configuration; ``str()`` is the message for the user, one problem per line."""


def _lines(node: yaml.Node, path: tuple = ()) -> dict[tuple, int]:
    """Map every key path in a YAML node tree to its 1-based line number."""
    out = {path: node.start_mark.line + 1}
    if isinstance(node, yaml.MappingNode):
        for k, v in node.value:
            key = k.value
            out[path + (key,)] = k.start_mark.line + 1
            out.update({p: n for p, n in _lines(v, path + (key,)).items() if p != path + (key,)})
    elif isinstance(node, yaml.SequenceNode):
        for i, v in enumerate(node.value):
            out.update(_lines(v, path + (i,)))
    return out


def _substitute(obj: Any, missing: list[str]) -> Any:
    if isinstance(obj, str):
        def repl(m: re.Match) -> str:
            val = os.environ.get(m.group(1), m.group(2))
            if val is None:
                missing.append(m.group(1))
                return ""
            return val
        return _ENV.sub(repl, obj)
    if isinstance(obj, dict):
        return {k: _substitute(v, missing) for k, v in obj.items()}
    if isinstance(obj, list):
        return [_substitute(v, missing) for v in obj]
    return obj


def read_yaml(path: str | Path) -> tuple[dict, dict[tuple, int]]:
    """Parse a YAML mapping; returns the data (env placeholders filled) and key-path line numbers."""
    p = Path(path)
    try:
        text = p.read_text()
    except OSError as exc:
        raise ConfigError(f"{p}: cannot read configuration: {exc.strerror}") from None
    try:
        node = yaml.compose(text, Loader=yaml.SafeLoader)
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"{p}:{mark.line + 1}" if mark else str(p)
        raise ConfigError(f"{where}: not valid YAML: {getattr(exc, 'problem', exc)}") from None
    if data is None:
        data, node = {}, None
    if not isinstance(data, dict):
        raise ConfigError(f"{p}:1: expected a mapping of sections at the top, got {type(data).__name__}")
    missing: list[str] = []
    data = _substitute(data, missing)
    if missing:
        raise ConfigError(f"{p}: environment variable(s) not set: {', '.join(sorted(set(missing)))}")
    return data, (_lines(node) if node is not None else {})


def _known_keys(model: type[BaseModel], loc: tuple) -> list[str]:
    """Field names (and aliases) of the model that ``loc`` points into, for close-match hints."""
    current: Any = model
    for part in loc[:-1]:
        if isinstance(part, int) or current is None:
            continue
        fields = getattr(current, "model_fields", {})
        f = fields.get(part)
        if f is None:
            return []
        ann = f.annotation
        current = _unwrap_model(ann)
    if current is None or not hasattr(current, "model_fields"):
        return []
    names = []
    for name, f in current.model_fields.items():
        names.append(f.alias or name)
    return names


def _unwrap_model(ann: Any) -> Any:
    if isinstance(ann, type) and issubclass(ann, BaseModel):
        return ann
    for arg in getattr(ann, "__args__", ()) or ():
        m = _unwrap_model(arg)
        if m is not None:
            return m
    return None


def format_errors(exc: ValidationError, path: str | Path, lines: dict[tuple, int],
                  model: type[BaseModel] | None = None, prefix: tuple = ()) -> str:
    msgs = []
    for err in exc.errors():
        loc = prefix + tuple(p for p in err["loc"] if not (isinstance(p, str) and "[" in p and p.startswith(("function-", "tagged-union"))))
        # find the closest located ancestor for the line number
        line = None
        for i in range(len(loc), -1, -1):
            if loc[:i] in lines:
                line = lines[loc[:i]]
                break
        where = f"{path}:{line}" if line else f"{path}"
        keys = " -> ".join(str(p) for p in loc) or "<top>"
        if err["type"] == "extra_forbidden":
            hint = ""
            if model is not None and loc and isinstance(loc[-1], str):
                close = difflib.get_close_matches(loc[-1], _known_keys(model, loc[len(prefix):]), n=1)
                if close:
                    hint = f" (did you mean '{close[0]}'?)"
            msgs.append(f"{where}: {keys}: unknown key{hint}")
        else:
            got = err.get("input")
            shown = "" if isinstance(got, (dict, list)) or got is None else f" (got {got!r})"
            msgs.append(f"{where}: {keys}: {err['msg']}{shown}")
    return "\n".join(msgs)


def validate(model: type[M], data: dict, path: str | Path = "<config>",
             lines: dict[tuple, int] | None = None) -> M:
    """Validate ``data`` against ``model``; raise :class:`ConfigError` naming file, line and key."""
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        raise ConfigError(format_errors(exc, path, lines or {}, model)) from None


def load(model: type[M], path: str | Path) -> M:
    """Read and validate one YAML file."""
    data, lines = read_yaml(path)
    return validate(model, data, path, lines)
