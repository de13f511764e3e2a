"""The spec grammar: a weighted sum of named terms in one string, pure Python (no torch).

It sits below ``losslab.data`` and ``losslab.losses``: the loss spec (``losses.factory``), the
label-noise spec (``data.noise_spec``) and the weight schedules all read it, and none of them imports
the other.

Grammar (whitespace is free)::

    spec   := term ("+" term)*
    term   := [number "*"] call ["*" number] | call "*" call
    call   := name ["(" [arg ("," arg)*] ")"] | name "(" call ")"
    arg    := value | key "=" value              (positional values first)
    value  := number | true | false | none | word | 'text' | "text"

Examples: ``"bce"``, ``"0.5*mse + bce"``, ``"huber(delta=2) + 0.5*dice(squared=true)"``, an
operator applied to a term: ``"bce + 0.5*uncropped(mse)"``, ``"log_cosh(pixel_dice(smooth=0.1))"``,
and a weight that is a schedule over training: ``"bce + ramp(0, 1)*boundary"`` (``call "*" call``: the
first call is the weight, ``Term.schedule``). Which names are operators and schedules is the reader's
business (``losslab.losses.factory``); the parser only tells ``name(key=value)`` (parameters) from
``name(other(...))`` (a nested term, without a weight).

Other specs of the same shape without weights (``label_noise``: ``"boundary(px=2) + drop(p=0.1)"``)
reuse this parser through ``parse_spec(..., what=..., item=..., weights=False)``.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from typing import Any

__all__ = ["SpecError", "Term", "format_spec", "format_term", "parse_spec"]

_NUMBER = re.compile(r"[0-9]*\.?[0-9]+(?:[eE][-+]?[0-9]+)?")
_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_NUMBER_VALUE = re.compile(r"[-+]?(?:[0-9]+\.?[0-9]*|\.[0-9]+)(?:[eE][-+]?[0-9]+)?(?![A-Za-z0-9_.])")
_WORD_VALUE = re.compile(r"[-+]?[A-Za-z0-9_.]+")


class SpecError(ValueError):
    """A malformed spec; the message shows the spec with a caret under the error.

    ``what`` names the kind of spec in the message (``"loss spec"``, ``"label_noise spec"``).
    """

    def __init__(self, spec: str, pos: int, message: str, what: str = "loss spec"):
        self.spec = spec
        self.pos = pos
        caret = " " * pos + "^"
        super().__init__(f"{message} at position {pos} of the {what}:\n  {spec}\n  {caret}")


@dataclass
class Term:
    """One ``weight * name(params)`` term of a spec; ``pos`` is where its name starts.

    ``inner`` is the term an operator wraps (``uncropped(mse)``: name ``"uncropped"``, inner ``mse``);
    ``None`` for a plain term. An inner term has weight 1. ``args`` are positional values
    (``ramp(0, 1)``); ``schedule`` is a weight that is itself a call (``ramp(0, 1)*boundary``).
    """

    weight: float
    name: str
    params: dict[str, Any] = field(default_factory=dict)
    pos: int = 0
    inner: Term | None = None
    args: list[Any] = field(default_factory=list)
    schedule: Term | None = None


def _value(text: str) -> Any:
    low = text.lower()
    if low == "true":
        return True
    if low == "false":
        return False
    if low in ("none", "null"):
        return None
    try:
        return int(text)
    except ValueError:
        pass
    try:
        number = float(text)
    except ValueError:
        return text
    if not math.isfinite(number):
        raise ValueError(f"parameter value {text!r} is not a finite number")
    return number


class _Parser:
    def __init__(self, spec: str, what: str = "loss spec", item: str = "loss", weights: bool = True):
        self.s = spec
        self.i = 0
        self.what, self.item, self.weights = what, item, weights

    def error(self, message: str, pos: int | None = None) -> SpecError:
        return SpecError(self.s, self.i if pos is None else pos, message, self.what)

    def ws(self) -> None:
        while self.i < len(self.s) and self.s[self.i].isspace():
            self.i += 1

    def peek(self) -> str:
        self.ws()
        return self.s[self.i] if self.i < len(self.s) else ""

    def expect(self, ch: str) -> None:
        if self.peek() != ch:
            found = repr(self.s[self.i]) if self.i < len(self.s) else "the end"
            raise self.error(f"expected {ch!r}, found {found}")
        self.i += 1

    def match(self, pattern: re.Pattern[str]) -> str | None:
        self.ws()
        m = pattern.match(self.s, self.i)
        if not m:
            return None
        self.i = m.end()
        return m.group(0)

    def term(self) -> Term:
        weight = 1.0
        self.ws()
        start = self.i  # after the blanks, so the caret points at the weight itself
        if not self.weights and (self.peek() in ("-", "*") or _NUMBER.match(self.s, self.i)):
            raise self.error(f"expected a {self.item} name; the terms of a {self.what} take no weight")
        if self.peek() == "-":
            raise self.error("weights must be positive; a loss cannot be subtracted")
        num = self.match(_NUMBER)
        if num is not None:
            weight = float(num)
            if self.peek() != "*":
                raise self.error(f"expected '*' after the weight {num}")
            self.i += 1
        term = self.call()
        if self.peek() == "*" and _NAME.match(self.s[self.i + 1 :].lstrip()):
            if not self.weights:
                raise self.error(f"the terms of a {self.what} take no weight")
            if num is not None:
                raise self.error(
                    f"a scheduled weight takes no number in front; scale the schedule itself, e.g. "
                    f"{term.name}(0, {weight:g})",
                    start,
                )
            self.i += 1
            schedule, term = term, self.call()
            term.schedule = schedule
            if self.peek() == "*":
                raise self.error("a scheduled term takes no further weight")
        if self.peek() == "*":
            if not self.weights:
                raise self.error(f"the terms of a {self.what} take no weight")
            self.i += 1
            num = self.match(_NUMBER)
            if num is None:
                raise self.error("expected a number after '*'")
            weight *= float(num)
        if not math.isfinite(weight):
            raise self.error(f"weight {weight} is not a finite number (a literal beyond ~1.8e308 overflows)", start)
        if weight <= 0:
            raise self.error("weights must be positive", start)
        term.weight = weight
        return term

    def call(self) -> Term:
        """``name``, ``name(key=value, ...)`` or ``name(inner_call)``, without a weight."""
        self.ws()
        pos = self.i
        name = self.match(_NAME)
        if name is None:
            found = repr(self.s[self.i]) if self.i < len(self.s) else "the end"
            raise self.error(f"expected a {self.item} name, found {found}")
        if self.peek() != "(":
            return Term(weight=1.0, name=name, pos=pos)
        self.i += 1
        if self._nested_term_follows():
            self.ws()
            if _NUMBER.match(self.s, self.i):
                raise self.error(f"a term inside {name}(...) takes no weight; put it outside: 0.5*{name}(...)")
            inner = self.call()
            self.expect(")")
            return Term(weight=1.0, name=name, pos=pos, inner=inner)
        params: dict[str, Any] = {}
        args: list[Any] = []
        if self.peek() != ")":
            while True:
                self.ws()
                kpos = self.i
                if not self._keyword_follows():
                    if self.peek() == "=":
                        raise self.error(f"expected a parameter name inside {name}(...)")
                    if params:
                        raise self.error(f"a positional value after key=value inside {name}(...)")
                    args.append(self.value())
                else:
                    key = self.match(_NAME)
                    assert key is not None
                    if key in params:
                        raise self.error(f"parameter {key!r} given twice", kpos)
                    self.expect("=")
                    params[key] = self.value()
                if self.peek() == ",":
                    self.i += 1
                    continue
                break
        self.expect(")")
        return Term(weight=1.0, name=name, params=params, pos=pos, args=args)

    def _keyword_follows(self) -> bool:
        """Whether ``key=`` comes next (else a positional value)."""
        rest = self.s[self.i :]
        m = _NAME.match(rest)
        return m is not None and rest[m.end() :].lstrip().startswith("=")

    def _nested_term_follows(self) -> bool:
        """After ``name(``: whether a term follows (``mse)``, ``dice(``, ``0.5*``) rather than ``key=``."""
        rest = self.s[self.i :].lstrip()
        num = _NUMBER.match(rest)
        if num is not None:  # ``0.5*mse`` is a weighted term; a bare ``2`` is a value without its key
            return rest[num.end() :].lstrip().startswith("*")
        m = _NAME.match(rest)
        return m is not None and not rest[m.end() :].lstrip().startswith("=")

    def value(self) -> Any:
        self.ws()
        if self.i < len(self.s) and self.s[self.i] in "'\"":
            quote = self.s[self.i]
            end = self.s.find(quote, self.i + 1)
            if end < 0:
                raise self.error("unterminated string")
            text = self.s[self.i + 1 : end]
            self.i = end + 1
            return text
        # a number first (``1e-4``, ``-2.5E+3``): the word pattern would stop at the exponent's sign
        m = _NUMBER_VALUE.match(self.s, self.i) or _WORD_VALUE.match(self.s, self.i)
        if not m:
            raise self.error("expected a value")
        start, self.i = self.i, m.end()
        try:
            return _value(m.group(0))
        except ValueError as exc:
            raise self.error(str(exc), start) from None

    def parse(self) -> list[Term]:
        if not self.s.strip():
            raise SpecError(self.s, 0, f"empty {self.what}", self.what)
        terms = [self.term()]
        while self.peek() == "+":
            self.i += 1
            terms.append(self.term())
        self.ws()
        if self.i != len(self.s):
            raise self.error(f"unexpected {self.s[self.i]!r}; terms are joined with '+'")
        return terms


def parse_spec(spec: str, *, what: str = "loss spec", item: str = "loss", weights: bool = True) -> list[Term]:
    """Parse a spec string into its terms.

    Args:
        spec: the text.
        what: the kind of spec, for messages (``"loss spec"``, ``"label_noise spec"``).
        item: what a term names, for messages (``"loss"``, ``"noise"``).
        weights: whether terms may carry a weight (``0.5*mse``); without, every weight is 1.

    Raises:
        SpecError: (a ``ValueError``) naming the position of the first error.
    """
    if not isinstance(spec, str):
        raise ValueError(f"a {what} is a string, got {type(spec).__name__}")
    return _Parser(spec, what, item, weights).parse()


def _fmt_value(v: Any) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if v is None:
        return "none"
    if isinstance(v, float):
        return f"{v:g}"
    return str(v)


def format_term(term: Term) -> str:
    """``Term(0.5, "dice", {"squared": True})`` -> ``"0.5*dice(squared=true)"``; an operator's inner
    term goes inside its parentheses (``"0.5*uncropped(mse)"``)."""
    if term.inner is not None:
        body = f"{term.name}({format_term(term.inner)})"
    else:
        args = [_fmt_value(v) for v in term.args] + [f"{k}={_fmt_value(v)}" for k, v in term.params.items()]
        body = f"{term.name}({', '.join(args)})" if args else term.name
    if term.schedule is not None:
        body = f"{format_term(term.schedule)}*{body}"
    return body if term.weight == 1 else f"{term.weight:g}*{body}"


def format_spec(terms: list[Term]) -> str:
    """The canonical spec string of ``terms`` (what studies and reports store)."""
    return " + ".join(format_term(t) for t in terms)
