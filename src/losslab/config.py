"""Flat, typed configuration with checked ``key=value`` overrides.

Every configurable object in losslab (a model preset, the trainer, a study) is a dataclass.
``apply_overrides`` returns a copy with some fields replaced, rejecting unknown keys with the
closest valid names and coercing strings from the command line to the field's type.
"""

from __future__ import annotations

import dataclasses
import difflib
import json
import types
import typing
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any, TypeVar

T = TypeVar("T")

#: What ``amp`` may be (``losslab.precision`` says what each means on a device).
AMP_VALUES = (False, True, "bf16")

__all__ = [
    "AMP_VALUES",
    "apply_overrides",
    "check_amp",
    "closest",
    "config_to_dict",
    "format_seconds",
    "lookup",
    "parse_kv",
    "read_yaml",
    "suggest",
]


def closest(name: str, valid: Iterable[str], n: int = 3) -> list[str]:
    """The valid names closest to ``name`` (``difflib``), best first."""
    return difflib.get_close_matches(name, list(valid), n=n, cutoff=0.5)


def suggest(name: str, valid: Iterable[str]) -> str:
    """A ``" Did you mean 'x'?"`` sentence, or an empty string when nothing is close."""
    near = closest(name, valid)
    return f" Did you mean {' or '.join(repr(c) for c in near)}?" if near else ""


def lookup(table: Mapping[str, T], name: str, what: str, listing: str) -> T:
    """``table[name]``; an unknown name raises ``ValueError`` with the closest names, then ``listing``.

    Example: ``lookup(_MODELS, "yolact_tin", "model", "Presets: ...")`` raises
    ``unknown model 'yolact_tin'. Did you mean 'yolact_tiny'? Presets: ...``.
    """
    try:
        return table[name]
    except KeyError:
        raise ValueError(f"unknown {what} {name!r}.{suggest(name, table)} {listing}") from None


def parse_kv(items: Iterable[str]) -> dict[str, str]:
    """Parse ``["a=1", "b=x"]`` from the command line into ``{"a": "1", "b": "x"}``."""
    out: dict[str, str] = {}
    for item in items:
        if "=" not in item:
            raise ValueError(f"override {item!r} is not of the form key=value")
        key, value = item.split("=", 1)
        out[key.strip()] = value.strip()
    return out


def _coerce(value: Any, hint: Any, key: str) -> Any:
    """Convert ``value`` (often a string from the CLI) to the type ``hint``."""
    origin = typing.get_origin(hint)
    args = typing.get_args(hint)
    if origin in (typing.Union, types.UnionType):
        is_none = value is None or (isinstance(value, str) and value.lower() in ("none", "null"))
        if is_none and type(None) in args:
            return None
        errors = []
        for arg in args:
            if arg is type(None):
                continue
            try:
                return _coerce(value, arg, key)
            except (TypeError, ValueError) as exc:
                errors.append(str(exc))
        raise ValueError(f"{key}: cannot read {value!r} as {hint}")
    if hint is Any:
        return value
    if origin in (tuple, list):
        if isinstance(value, str):
            text = value.strip()
            value = json.loads(text.replace("(", "[").replace(")", "]")) if text[:1] in "[(" else text.split(",")
        if not isinstance(value, (list, tuple)):
            value = [value]
        if origin is tuple and args and args[-1] is not Ellipsis:
            if len(args) != len(value):
                raise ValueError(f"{key}: expected {len(args)} values, got {len(value)} ({value!r})")
            return tuple(_coerce(v, a, key) for v, a in zip(value, args, strict=True))
        inner = args[0] if args else Any
        seq = [_coerce(v, inner, key) for v in value]
        return tuple(seq) if origin is tuple else seq
    if hint is bool:
        if isinstance(value, bool):
            return value
        if isinstance(value, (int, float)) and value in (0, 1):
            return bool(value)
        if isinstance(value, str) and value.lower() in ("true", "1", "yes", "on", "false", "0", "no", "off"):
            return value.lower() in ("true", "1", "yes", "on")
        raise ValueError(f"{key}: expected true or false, got {value!r}")
    if hint is int:
        if isinstance(value, bool):
            raise ValueError(f"{key}: expected an integer, got {value!r}")
        if isinstance(value, float) and value.is_integer():
            return int(value)
        if isinstance(value, (int, str)):
            try:
                return int(value)
            except ValueError:
                try:
                    f = float(value)
                except ValueError:
                    f = float("nan")
                if f.is_integer():
                    return int(f)
        raise ValueError(f"{key}: expected an integer, got {value!r}")
    if hint is float:
        if isinstance(value, bool):
            raise ValueError(f"{key}: expected a number, got {value!r}")
        try:
            return float(value)
        except (TypeError, ValueError):
            raise ValueError(f"{key}: expected a number, got {value!r}") from None
    if hint is str:
        if isinstance(value, (dict, list)):
            raise ValueError(f"{key}: expected a string, got {value!r}")
        return str(value)
    if origin is dict or hint is dict:
        if isinstance(value, str):
            value = json.loads(value)
        if not isinstance(value, dict):
            raise ValueError(f"{key}: expected a mapping, got {value!r}")
        return dict(value)
    return value


def apply_overrides(cfg: T, overrides: Mapping[str, Any], where: str = "config") -> T:
    """Return a copy of the dataclass ``cfg`` with ``overrides`` applied.

    Args:
        cfg: a dataclass instance.
        overrides: field name to new value; strings are coerced to the field's type.
        where: what ``cfg`` is, for error messages (``"yolact_tiny"``, ``"train"``).

    Raises:
        ValueError: an unknown key (with the closest valid keys) or a value of the wrong type.
    """
    if not dataclasses.is_dataclass(cfg):
        raise TypeError(f"{type(cfg).__name__} is not a dataclass")
    fields = {f.name: f for f in dataclasses.fields(cfg)}
    hints = typing.get_type_hints(type(cfg))
    changes: dict[str, Any] = {}
    for key, value in overrides.items():
        if key not in fields:
            raise ValueError(f"unknown key {key!r} for {where}.{suggest(key, fields)} Valid keys: {', '.join(fields)}")
        changes[key] = _coerce(value, hints[key], key)
    return dataclasses.replace(cfg, **changes)


def config_to_dict(cfg: Any) -> dict[str, Any]:
    """A dataclass as a plain dict (tuples become lists) that JSON and YAML can hold."""
    data = dataclasses.asdict(cfg)
    return json.loads(json.dumps(data, default=str))


def read_yaml(path: str | Path) -> Any:
    """The content of a YAML file (``yaml.safe_load``: no Python tags), or ``None`` for an empty one.

    Raises:
        ValueError: the file cannot be read, is not UTF-8 text, or is not valid YAML; the message
            names the file (and the position).
    """
    import yaml

    path = Path(path)
    try:
        text = path.read_bytes().decode("utf-8")
    except OSError as exc:
        raise ValueError(f"cannot read {path}: {exc.strerror or exc}") from None
    except UnicodeDecodeError as exc:
        raise ValueError(
            f"{path} is not UTF-8 text (byte 0x{exc.object[exc.start]:02x} at offset {exc.start}); save it as UTF-8"
        ) from None
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise ValueError(f"{path}: not valid YAML: {exc}") from None


def format_seconds(seconds: float | None) -> str:
    """``"1:02:03"`` / ``"2:03"``; an empty string for None."""
    if seconds is None:
        return ""
    s = round(seconds)
    h, rem = divmod(s, 3600)
    m, sec = divmod(rem, 60)
    return f"{h}:{m:02d}:{sec:02d}" if h else f"{m}:{sec:02d}"


def check_amp(value: bool | str, key: str = "amp") -> bool | str:
    """``value`` if it is one of ``AMP_VALUES``.

    Raises:
        ValueError: naming the key, the value and the allowed ones.
    """
    if isinstance(value, bool) or value == "bf16":
        return value
    raise ValueError(
        f"{key}={value!r}: expected true (fp16 on CUDA, bf16 on CPUs with native bf16), false or bf16 (forced)"
    )
