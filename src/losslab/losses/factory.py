"""``create_loss``: from a spec string to a ready ``nn.Module``, and the hybrid that sums terms."""

from __future__ import annotations

import warnings
from typing import Any

from torch import Tensor, nn

from losslab.grammar import SpecError, Term, format_spec, format_term
from losslab.losses._base import REDUCTIONS, MaskInputs, MaskLoss, reduce
from losslab.losses.check import OPERATORS, LossEquivalenceWarning, check_spec, schedule_of
from losslab.losses.operators import LogCosh, Uncropped
from losslab.losses.registry import get_loss_info, loss_entries
from losslab.losses.schedules import Schedule

__all__ = [
    "HybridLoss",
    "LossEquivalenceWarning",
    "WeightedSum",
    "create_loss",
    "loss_terms",
    "loss_with_terms",
]


class HybridLoss(MaskLoss):
    """A weighted sum of mask losses that share one ``MaskInputs``: the sigmoid, the per-pixel
    BCE and the region sums are computed once for all terms. A weight is a number or a
    ``Schedule`` of training progress (``ramp(0, 1)*boundary``), evaluated at ``self.progress``
    (``set_progress``; 0 until the trainer sets it).

    Shape:
        as ``MaskLoss``: ``(N, H, W)`` or ``(N, 1, H, W)`` in, scalar or ``(N,)`` out.
    """

    def __init__(self, terms: list[tuple[float | Schedule, MaskLoss, str]], **base: Any):
        super().__init__(**base)
        self.schedules = [w for w, _, _ in terms]
        self.labels = [label for _, _, label in terms]
        self.terms = nn.ModuleList(m for _, m, _ in terms)
        self.progress = 0.0

    @property
    def weights(self) -> list[float]:
        """Each term's weight now (a schedule's value at ``self.progress``)."""
        return [w(self.progress) if isinstance(w, Schedule) else w for w in self.schedules]

    def set_progress(self, t: float) -> None:
        """Training progress in [0, 1] (the trainer calls this before every step)."""
        self.progress = min(max(float(t), 0.0), 1.0)

    def scheduled_weights(self) -> dict[str, float]:
        """``{"ramp(0, 1)*boundary": 0.25}``: the current value of each scheduled weight, for the log."""
        return {
            label: w(self.progress)
            for w, label in zip(self.schedules, self.labels, strict=True)
            if isinstance(w, Schedule)
        }

    def per_instance(self, x: MaskInputs) -> Tensor:
        total = None
        for w, term in zip(self.weights, self.terms, strict=True):
            v = term.per_instance(x)
            total = w * v if total is None else total + w * v
        return total

    def forward_terms(
        self, logits: Tensor, target: Tensor, valid: Tensor | None = None, area: Tensor | None = None
    ) -> dict[str, Tensor]:
        """Each weighted term reduced on its own, for logging: ``{"0.5*mse": ..., "bce": ...}``."""
        x = self.prepare(logits, target, valid, area)
        if x.n == 0:
            zero = reduce(x.logits.sum(dim=(1, 2)) * 0.0, self.reduction)
            return dict.fromkeys(self.labels, zero)
        return {
            label: reduce(w * term.per_instance(x), self.reduction)
            for label, w, term in zip(self.labels, self.weights, self.terms, strict=True)
        }

    def extra_repr(self) -> str:
        return f"weights={self.schedules}, reduction={self.reduction!r}"


class WeightedSum(nn.Module):
    """A weighted sum of losses of the box, class or regression-free contracts (no shared inputs)."""

    def __init__(self, terms: list[tuple[float, nn.Module, str]], spec: str = ""):
        super().__init__()
        self.spec = spec
        self.weights = [w for w, _, _ in terms]
        self.labels = [label for _, _, label in terms]
        self.terms = nn.ModuleList(m for _, m, _ in terms)

    def forward(self, *args: Tensor, **kwargs: Tensor) -> Tensor:
        total: Tensor | None = None
        for w, term in zip(self.weights, self.terms, strict=True):
            v = w * term(*args, **kwargs)
            total = v if total is None else total + v
        assert total is not None
        return total


def _build_operator(term: Term, spec: str, crop: bool, base: dict[str, Any]) -> nn.Module:
    assert term.inner is not None  # check_spec refused an operator without a term
    inner = _build_term(term.inner, spec, crop, {k: v for k, v in base.items() if k != "spec"})
    if term.name == "log_cosh":
        if term.inner.name == "bce" and not term.inner.inner:
            _warn_same(format_term(term), "log_cosh_bce", "log_cosh_bce is log(cosh(·)) of each pixel's BCE")
        return LogCosh(inner, **base)
    if not crop:
        _warn_same(
            format_term(term), format_term(term.inner), "this model has no crop: every term already sees the whole mask"
        )
    return Uncropped(inner, crop=crop, **base)


def _identity(term: Term) -> str:
    """What a term computes, without its weight: ``dice(smooth=1, squared=true)`` and
    ``dice(squared=true, smooth=1)`` are one loss."""
    inner = "" if term.inner is None else _identity(term.inner)
    return f"{term.name}{sorted(term.params.items())!r}({inner})"


def _warn_same(spec: str, equiv: str, why: str) -> None:
    warnings.warn(f"'{spec}' is the same loss as '{equiv}': {why}", LossEquivalenceWarning, stacklevel=4)


def _build_term(term: Term, spec: str, crop: bool, base: dict[str, Any]) -> nn.Module:
    """The module of one checked term, without its weight (operators build their inner term first).

    ``base``: what every loss's constructor takes (``reduction``, ``check_inputs``, ``spec``, and
    ``contract`` for mask losses, dropped for the others).

    Raises:
        SpecError: a parameter value the loss's constructor refuses, at the term's position.
    """
    if term.name in OPERATORS:
        return _build_operator(term, spec, crop, base)
    info = get_loss_info(term.name)
    params = {**info.params, **term.params}
    contract = base["contract"]
    if not issubclass(info.cls, MaskLoss):
        base = {k: v for k, v in base.items() if k != "contract"}
    try:
        module = info.cls(**params, **base)
    except (TypeError, ValueError) as exc:
        raise SpecError(spec, term.pos, f"bad parameters for {term.name}: {exc}") from None
    # Simplifiers state equivalences on probabilities in [0, 1]; on raw values (regression) they
    # need not hold (Huber with delta >= 1 is not 0.5*mse there).
    if info.simplify is not None and contract == "mask":
        simpler = info.simplify(params)
        if simpler is not None:
            _warn_same(format_term(Term(1.0, term.name, term.params)), *simpler)
    return module


def create_loss(
    spec: str, reduction: str = "mean", contract: str = "mask", crop: bool = True, check_inputs: bool = True
) -> nn.Module:
    """Build the loss a spec names.

    Args:
        spec: ``"bce"``, ``"0.5*mse + bce"``, ``"huber(delta=2) + 0.5*dice(squared=true)"``, with
            operators ``"bce + 0.5*uncropped(mse)"``, ``"log_cosh(pixel_dice(smooth=0.1))"``
            (``losslab.losses.operators``).
        reduction: ``"mean"`` (over instances), ``"sum"`` or ``"none"`` (per-instance values).
        contract: ``"mask"`` (logits and targets in [0, 1], the default), ``"regression"`` (raw
            values, e.g. depth), ``"box"`` or ``"class"``.
        crop: whether the caller's ``valid`` is a crop (YOLACT's box) that ``uncropped(...)`` undoes;
            a model without one passes ``False`` and ``uncropped(x)`` is ``x`` (with a warning).
        check_inputs: check the input values on every call (finite, in range); a model whose
            inputs are its own passes ``False`` (a NaN then stays a value the trainer skips).

    Returns:
        an ``nn.Module``; mask losses are called as ``loss(logits, target, valid=None)``. The module
        carries ``.spec``, the canonical spec string.

    Raises:
        ValueError: an unknown loss or parameter (with the closest names), a malformed spec (with
            the position), an unknown reduction, a loss that does not take ``contract``, or an
            operator applied to what it cannot wrap (with the reason).
    """
    if reduction not in REDUCTIONS:
        raise ValueError(f"reduction must be one of {REDUCTIONS}, got {reduction!r}")
    terms = check_spec(spec, contract, loss_entries())
    canonical = format_spec(terms)
    base: dict[str, Any] = {"reduction": reduction, "contract": contract, "check_inputs": check_inputs}
    alone = len(terms) == 1 and terms[0].schedule is None and terms[0].weight == 1.0
    built: list[tuple[float | Schedule, nn.Module, str]] = []
    for term in terms:
        weight = term.weight if term.schedule is None else schedule_of(term.schedule, spec, contract)
        module = _build_term(term, spec, crop, {**base, "spec": canonical if alone else format_term(term)})
        built.append((weight, module, format_term(term)))
    names = [_identity(t) for t in terms]
    if len(set(names)) != len(names):
        warnings.warn(
            f"'{spec}' names the same loss twice; its weights simply add up",
            LossEquivalenceWarning,
            stacklevel=2,
        )
    if alone:
        return built[0][1]
    if all(isinstance(m, MaskLoss) for _, m, _ in built):
        return HybridLoss(built, **base, spec=canonical)  # type: ignore[arg-type]
    return WeightedSum(built, spec=canonical)


def loss_with_terms(
    loss: nn.Module, logits: Tensor, target: Tensor, valid: Tensor | None = None, area: Tensor | None = None
) -> tuple[Tensor, dict[str, Tensor]]:
    """A mask loss's value and, for a hybrid, its weighted terms, computed once: the value is the
    sum of the terms (``{}`` for a single loss). With ``reduction="none"`` each is ``(N,)``.

    What models call to train on a hybrid and log every term (``mask/bce``, ``mask/0.5*mse``).
    """
    if isinstance(loss, HybridLoss):
        terms = loss.forward_terms(logits, target, valid, area)
        values = list(terms.values())
        total = values[0]
        for value in values[1:]:
            total = total + value
        return total, terms
    return (loss(logits, target, valid) if area is None else loss(logits, target, valid, area=area)), {}


def loss_terms(loss: nn.Module, logits: Tensor, target: Tensor, valid: Tensor | None = None) -> dict[str, Tensor]:
    """Per-term values of a mask loss for logging (a single loss gives one entry)."""
    if isinstance(loss, HybridLoss):
        return loss.forward_terms(logits, target, valid)
    return {getattr(loss, "spec", "loss"): loss(logits, target, valid)}
