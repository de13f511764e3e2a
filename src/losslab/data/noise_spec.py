"""The ``label_noise`` spec: which corruption the training masks get, in the loss grammar's style.

A spec is ``none`` or a ``+``-joined list of corruptions, applied in the order written::

    none
    dilate(px=2)                  each instance grown by a random 0..2 px
    erode(px=2)                   each instance shrunk by a random 0..2 px
    boundary(px=2)                each instance grown or shrunk (a coin flip) by a random 0..2 px
    shift(px=3)                   each mask moved by up to 3 px in a random direction
    simplify(tol=2)               each outline as a Douglas-Peucker polygon with tolerance 2 px
    drop(p=0.1)                   each instance left unannotated with probability 0.1
    boundary(px=2) + drop(p=0.1)  both, in this order

The text is parsed by ``losslab.grammar`` (one grammar for both kinds of spec) without
weights; this module checks the names and parameters. ``losslab.data.noise`` applies the result.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from losslab.config import suggest
from losslab.grammar import SpecError, Term, parse_spec

__all__ = ["NOISES", "NoiseKind", "NoiseOp", "check_label_noise", "format_label_noise", "parse_label_noise"]

_WHAT = "label_noise spec"


def _pixels(value: Any) -> int:
    ok = isinstance(value, int | float) and not isinstance(value, bool) and float(value).is_integer()
    if not ok or value < 0:
        raise ValueError("must be a whole number of pixels >= 0")
    return int(value)


def _tolerance(value: Any) -> float:
    if not isinstance(value, int | float) or isinstance(value, bool) or not value >= 0:
        raise ValueError("must be a number of pixels >= 0")
    return float(value)


def _probability(value: Any) -> float:
    if not isinstance(value, int | float) or isinstance(value, bool) or not 0 <= value <= 1:
        raise ValueError("must be a probability between 0 and 1")
    return float(value)


@dataclass(frozen=True)
class NoiseKind:
    """One corruption the spec can name.

    Attributes:
        name: the name in specs (``"dilate"``).
        params: parameter name -> checker returning the value in its type (all are required).
        description: one line (``losslab data noise --help``, the report).
        random: whether it draws per instance (``simplify`` is deterministic).
    """

    name: str
    params: dict[str, Callable[[Any], Any]]
    description: str
    random: bool = True


NOISES: dict[str, NoiseKind] = {
    k.name: k
    for k in (
        NoiseKind("none", {}, "clean masks", random=False),
        NoiseKind("dilate", {"px": _pixels}, "each instance grown by a random 0..px pixels"),
        NoiseKind("erode", {"px": _pixels}, "each instance shrunk by a random 0..px pixels"),
        NoiseKind("boundary", {"px": _pixels}, "each instance grown or shrunk (coin flip) by a random 0..px pixels"),
        NoiseKind("shift", {"px": _pixels}, "each mask moved by up to px pixels in a random direction"),
        NoiseKind(
            "simplify",
            {"tol": _tolerance},
            "each outline as a Douglas-Peucker polygon with tolerance tol pixels",
            random=False,
        ),
        NoiseKind("drop", {"p": _probability}, "each instance left unannotated with probability p"),
    )
}


@dataclass(frozen=True)
class NoiseOp:
    """One checked corruption of a spec: ``NoiseOp("dilate", {"px": 2})``."""

    name: str
    params: Mapping[str, Any] = field(default_factory=dict)

    def __str__(self) -> str:
        args = ", ".join(f"{k}={v:g}" if isinstance(v, float) else f"{k}={v}" for k, v in self.params.items())
        return f"{self.name}({args})" if args else self.name


def _resolve(term: Term, spec: str) -> NoiseOp:
    kind = NOISES.get(term.name)
    if kind is None:
        near = suggest(term.name, NOISES)
        raise SpecError(spec, term.pos, f"unknown label noise {term.name!r}.{near} Known: {', '.join(NOISES)}", _WHAT)
    if term.inner is not None:
        msg = f"{term.name}(...) takes parameters such as px=2, not another term; join corruptions with '+'"
        raise SpecError(spec, term.inner.pos, msg, _WHAT)
    if term.args:
        example = ", ".join(f"{k}=..." for k in kind.params)
        raise SpecError(spec, term.pos, f"{term.name} takes key=value parameters: {term.name}({example})", _WHAT)
    params = {}
    for key, value in term.params.items():
        if key not in kind.params:
            valid = ", ".join(kind.params) or "none"
            msg = f"{term.name} has no parameter {key!r}.{suggest(key, kind.params)} Its parameters: {valid}"
            raise SpecError(spec, term.pos, msg, _WHAT)
        try:
            params[key] = kind.params[key](value)
        except ValueError as exc:
            raise SpecError(spec, term.pos, f"{term.name}: {key} {exc}, got {value!r}", _WHAT) from None
    missing = [k for k in kind.params if k not in params]
    if missing:
        example = ", ".join(f"{k}=..." for k in kind.params)
        raise SpecError(spec, term.pos, f"{term.name} needs {', '.join(missing)}: {term.name}({example})", _WHAT)
    return NoiseOp(term.name, params)


def parse_label_noise(spec: str) -> tuple[NoiseOp, ...]:
    """The checked corruptions of a ``label_noise`` spec, in order; ``"none"`` gives ``()``.

    Raises:
        SpecError: (a ``ValueError``) a malformed spec, an unknown name (with the closest names) or a
            bad parameter value (naming the parameter), with the position in the spec.
    """
    if not isinstance(spec, str):
        raise ValueError(f"a {_WHAT} is a string such as 'boundary(px=2)', got {type(spec).__name__}")
    terms = parse_spec(spec, what=_WHAT, item="noise", weights=False)
    ops = [_resolve(t, spec) for t in terms]
    if len(ops) > 1 and any(op.name == "none" for op in ops):
        pos = next(t.pos for t in terms if t.name == "none")
        raise SpecError(spec, pos, "'none' cannot be combined with a corruption; leave it out", _WHAT)
    return tuple(op for op in ops if op.name != "none")


def format_label_noise(ops: Iterable[NoiseOp]) -> str:
    """The canonical spec of ``ops``: ``"boundary(px=2) + drop(p=0.1)"``, ``"none"`` when empty."""
    return " + ".join(str(op) for op in ops) or "none"


def check_label_noise(items: Iterable[tuple[str, Any]], where: str) -> None:
    """Parse every ``label_noise`` value among ``(key, value)`` pairs (a study's config and grid).

    Raises:
        ValueError: ``"{where}: bad label_noise ..."`` with the parser's message.
    """
    for key, value in items:
        if key != "label_noise" or value is None:
            continue
        try:
            parse_label_noise(value)
        except ValueError as exc:
            raise ValueError(f"{where}: bad label_noise {value!r}: {exc}") from None
