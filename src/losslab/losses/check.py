"""The one check of a loss spec, in pure Python: names, parameters, contracts, operators, schedules.

``check_spec`` reads only what the catalogue *knows* about each loss (a ``LossEntry``), never the
loss's code, so it runs in two places with one result:

- under ``create_loss``, against the live registry (``losses.registry.loss_entries``), before any
  module is built;
- before torch is imported, against the shipped snapshot of the registry (``losslab.catalogue``):
  ``losslab train mask_loss=bogus`` is refused in the time Python takes to start.

What it cannot see is left to the build: a parameter *value* a loss's constructor refuses
(``huber(delta=-1)``) and the equivalence warnings.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from losslab.config import suggest
from losslab.grammar import SpecError, Term, format_term, parse_spec
from losslab.losses.schedules import SCHEDULES, Schedule, build_schedule

__all__ = [
    "CONTRACTS",
    "OPERATORS",
    "LossEntry",
    "LossEquivalenceWarning",
    "check_spec",
    "names_for",
    "schedule_of",
]


class LossEquivalenceWarning(UserWarning):
    """A spec is mathematically the same as a simpler one (``create_loss`` warns; a study states it
    once in its notes, and its runs do not repeat it)."""


#: The input contracts. A hybrid spec only sums losses of one contract.
CONTRACTS = ("mask", "regression", "box", "class")

#: Operator name -> one line for ``losslab losses list`` (the modules: ``losses.operators``).
OPERATORS = {
    "log_cosh": "log(cosh(·)) of a pixel loss's per-pixel values, then its reduction",
    "uncropped": "the loss over the whole mask, ignoring the crop (YOLACT's mask_proto_double_loss)",
}


@dataclass(frozen=True)
class LossEntry:
    """What a spec check needs to know of one loss.

    Attributes:
        name: the registry name (``"dice"``).
        contracts: the input contracts it takes (``("mask",)``, ``("mask", "regression")``).
        params: parameter name -> default.
        per_pixel: it has a value per pixel (a ``PixelLoss``): ``log_cosh`` can wrap it.
    """

    name: str
    contracts: tuple[str, ...] = ("mask",)
    params: dict[str, Any] = field(default_factory=dict)
    per_pixel: bool = False


def names_for(losses: Mapping[str, LossEntry], contract: str) -> list[str]:
    """Sorted names of the losses that take ``contract``."""
    return sorted(n for n, e in losses.items() if contract in e.contracts)


def _entry(term: Term, spec: str, contract: str, losses: Mapping[str, LossEntry]) -> LossEntry:
    entry = losses.get(term.name)
    if entry is None:
        valid = names_for(losses, contract)
        near = suggest(term.name, valid) or f" Losses for {contract!r}: {', '.join(valid)}"
        raise SpecError(spec, term.pos, f"unknown loss {term.name!r}.{near}")
    if contract not in entry.contracts:
        raise SpecError(
            spec,
            term.pos,
            f"loss {term.name!r} does not take the {contract!r} contract (it takes {', '.join(entry.contracts)}); "
            f"losses for {contract!r}: {', '.join(names_for(losses, contract))}",
        )
    for key in term.params:
        if key not in entry.params:
            valid = ", ".join(entry.params) or "none"
            raise SpecError(
                spec,
                term.pos,
                f"{term.name} has no parameter {key!r}.{suggest(key, entry.params)} Its parameters: {valid}",
            )
    return entry


def _operator(term: Term, spec: str, contract: str, losses: Mapping[str, LossEntry]) -> bool:
    """Check ``log_cosh(...)`` / ``uncropped(...)``; returns whether the result has per-pixel values."""
    if contract not in ("mask", "regression"):
        raise SpecError(spec, term.pos, f"{term.name}(...) wraps mask losses; the {contract!r} contract has none")
    if term.inner is None:
        example = "log_cosh(pixel_dice(smooth=0.1))" if term.name == "log_cosh" else "uncropped(mse)"
        raise SpecError(spec, term.pos, f"{term.name} wraps a loss, as in {example}; it takes no parameters")
    inner_per_pixel = _term(term.inner, spec, contract, losses)
    if term.name == "log_cosh":
        if not inner_per_pixel:
            raise SpecError(
                spec,
                term.inner.pos,
                f"log_cosh needs a loss with a value per pixel; {format_term(term.inner)} has none (it is "
                "computed from sums over the mask"
                + ("; log_cosh_dice is log-cosh of the region Dice" if term.inner.name == "dice" else "")
                + "). Pixel losses: "
                + ", ".join(n for n in names_for(losses, contract) if losses[n].per_pixel),
            )
        return True
    if term.inner.name == "uncropped":
        raise SpecError(spec, term.inner.pos, "uncropped(...) is already uncropped; wrap the loss once")
    return False


def _term(term: Term, spec: str, contract: str, losses: Mapping[str, LossEntry]) -> bool:
    """Check one term without its weight; returns whether it has per-pixel values."""
    if term.args and term.name in SCHEDULES:
        why = f"{term.name} is a weight schedule: put it in front of a loss with '*', e.g. {term.name}(0, 1)*boundary"
        raise SpecError(spec, term.pos, why)
    if term.args:
        raise SpecError(spec, term.pos, f"{term.name} takes key=value parameters, e.g. huber(delta=2)")
    if term.name in OPERATORS:
        return _operator(term, spec, contract, losses)
    if term.inner is not None:
        ops = ", ".join(OPERATORS)
        raise SpecError(
            spec, term.inner.pos, f"{term.name}(...) takes parameters (key=value), not a loss; operators: {ops}"
        )
    return _entry(term, spec, contract, losses).per_pixel


def schedule_of(term: Term, spec: str, contract: str) -> Schedule:
    """A term's scheduled weight (``ramp(0, 1)`` of ``ramp(0, 1)*boundary``), refused with the position."""
    if contract not in ("mask", "regression"):
        raise SpecError(spec, term.pos, f"weight schedules apply to mask and regression losses, not {contract!r}")
    if term.name not in SCHEDULES:
        near = suggest(term.name, list(SCHEDULES))
        raise SpecError(
            spec,
            term.pos,
            f"unknown weight schedule {term.name!r}.{near} A weight is a number or: {', '.join(SCHEDULES)}",
        )
    if term.inner is not None:
        raise SpecError(spec, term.pos, f"{term.name}(...) takes numbers, e.g. {term.name}(0, 1)")
    try:
        return build_schedule(term.name, term.args, term.params)
    except ValueError as exc:
        raise SpecError(spec, term.pos, str(exc)) from None


def check_spec(spec: str, contract: str, losses: Mapping[str, LossEntry]) -> list[Term]:
    """Parse ``spec`` and check it against the catalogue ``losses``; returns its terms.

    Args:
        spec: a loss spec (``"0.5*mse + bce"``, ``"bce + ramp(0, 1)*boundary"``).
        contract: ``"mask"``, ``"regression"``, ``"box"`` or ``"class"``.
        losses: name -> ``LossEntry`` of every loss that may be named.

    Raises:
        SpecError: a malformed spec, an unknown loss, parameter or schedule (with the closest names),
            a loss that does not take ``contract``, or an operator applied to what it cannot wrap;
            each with the position in the spec.
        ValueError: an unknown contract.
    """
    if contract not in CONTRACTS:
        raise ValueError(f"contract must be one of {CONTRACTS}, got {contract!r}.{suggest(contract, CONTRACTS)}")
    terms = parse_spec(spec)
    for term in terms:
        if term.schedule is not None:
            schedule_of(term.schedule, spec, contract)
        _term(term, spec, contract, losses)
    return terms
