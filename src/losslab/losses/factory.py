"""``create_loss``: from a spec string to a ready ``nn.Module``, and the hybrid that sums terms."""

from __future__ import annotations

import warnings

from torch import Tensor, nn

from losslab.config import suggest
from losslab.grammar import SpecError, Term, format_spec, format_term, parse_spec
from losslab.losses._base import REDUCTIONS, MaskInputs, MaskLoss, PixelLoss, reduce
from losslab.losses.operators import OPERATORS, LogCosh, Uncropped
from losslab.losses.registry import CONTRACTS, get_loss_info, list_losses
from losslab.losses.schedules import SCHEDULES, Schedule, build_schedule

__all__ = [
    "HybridLoss",
    "LossEquivalenceWarning",
    "WeightedSum",
    "create_loss",
    "loss_terms",
    "loss_with_terms",
]


class LossEquivalenceWarning(UserWarning):
    """A spec is mathematically the same as a simpler one."""


class HybridLoss(MaskLoss):
    """A weighted sum of mask losses that share one ``MaskInputs``: the sigmoid, the per-pixel
    BCE and the region sums are computed once for all terms. A weight is a number or a
    ``Schedule`` of training progress (``ramp(0, 1)*boundary``), evaluated at ``self.progress``
    (``set_progress``; 0 until the trainer sets it).

    Shape:
        as ``MaskLoss``: ``(N, H, W)`` or ``(N, 1, H, W)`` in, scalar or ``(N,)`` out.
    """

    def __init__(self, terms: list[tuple[float | Schedule, MaskLoss, str]], reduction: str = "mean"):
        super().__init__(reduction=reduction)
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

    def __init__(self, terms: list[tuple[float, nn.Module, str]]):
        super().__init__()
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


def _resolve_term(term: Term, spec: str, contract: str) -> tuple[dict, object]:
    try:
        info = get_loss_info(term.name)
    except ValueError:
        near = suggest(term.name, list_losses(contract=contract))
        raise SpecError(spec, term.pos, f"unknown loss {term.name!r}.{near}") from None
    if contract not in info.contracts:
        ok = ", ".join(list_losses(contract=contract))
        raise SpecError(
            spec,
            term.pos,
            f"loss {term.name!r} does not take the {contract!r} contract (it takes {', '.join(info.contracts)}); "
            f"losses for {contract!r}: {ok}",
        )
    for key in term.params:
        if key not in info.params:
            valid = ", ".join(info.params) or "none"
            raise SpecError(
                spec,
                term.pos,
                f"{term.name} has no parameter {key!r}.{suggest(key, info.params)} Its parameters: {valid}",
            )
    params = {**info.params, **term.params}
    return params, info


def _build_operator(term: Term, spec: str, reduction: str, contract: str, crop: bool) -> nn.Module:
    cls, _ = OPERATORS[term.name]
    if term.inner is None:
        example = "log_cosh(pixel_dice(smooth=0.1))" if term.name == "log_cosh" else "uncropped(mse)"
        raise SpecError(spec, term.pos, f"{term.name} wraps a loss, as in {example}; it takes no parameters")
    inner = _build_term(term.inner, spec, reduction, contract, crop)
    if cls is LogCosh:
        if not isinstance(inner, PixelLoss):
            raise SpecError(
                spec,
                term.inner.pos,
                f"log_cosh needs a loss with a value per pixel; {format_term(term.inner)} has none (it is "
                "computed from sums over the mask"
                + ("; log_cosh_dice is log-cosh of the region Dice" if term.inner.name == "dice" else "")
                + "). Pixel losses: "
                + ", ".join(n for n in list_losses(contract=contract) if issubclass(get_loss_info(n).cls, PixelLoss)),
            )
        if term.inner.name == "bce" and not term.inner.inner:
            _warn_same(format_term(term), "log_cosh_bce", "log_cosh_bce is log(cosh(·)) of each pixel's BCE")
        return LogCosh(inner, reduction=reduction)
    if isinstance(inner, Uncropped):
        raise SpecError(spec, term.inner.pos, "uncropped(...) is already uncropped; wrap the loss once")
    if not crop:
        _warn_same(
            format_term(term), format_term(term.inner), "this model has no crop: every term already sees the whole mask"
        )
    return Uncropped(inner, crop=crop, reduction=reduction)


def _schedule(term: Term, spec: str, contract: str) -> Schedule:
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


def _identity(term: Term) -> str:
    """What a term computes, without its weight: ``dice(smooth=1, squared=true)`` and
    ``dice(squared=true, smooth=1)`` are one loss."""
    inner = "" if term.inner is None else _identity(term.inner)
    return f"{term.name}{sorted(term.params.items())!r}({inner})"


def _warn_same(spec: str, equiv: str, why: str) -> None:
    warnings.warn(f"'{spec}' is the same loss as '{equiv}': {why}", LossEquivalenceWarning, stacklevel=4)


def _build_term(term: Term, spec: str, reduction: str, contract: str, crop: bool) -> nn.Module:
    """The module of one term, without its weight (operators build their inner term first)."""
    if term.args and term.name in SCHEDULES:
        why = f"{term.name} is a weight schedule: put it in front of a loss with '*', e.g. {term.name}(0, 1)*boundary"
        raise SpecError(spec, term.pos, why)
    if term.args:
        raise SpecError(spec, term.pos, f"{term.name} takes key=value parameters, e.g. huber(delta=2)")
    if term.name in OPERATORS:
        module = _build_operator(term, spec, reduction, contract, crop)
    else:
        if term.inner is not None:
            ops = ", ".join(OPERATORS)
            raise SpecError(
                spec, term.inner.pos, f"{term.name}(...) takes parameters (key=value), not a loss; operators: {ops}"
            )
        params, info = _resolve_term(term, spec, contract)
        try:
            module = info.cls(**params, reduction=reduction)
        except (TypeError, ValueError) as exc:
            raise SpecError(spec, term.pos, f"bad parameters for {term.name}: {exc}") from None
        # Simplifiers state equivalences on probabilities in [0, 1]; on raw values (regression) they
        # need not hold (Huber with delta >= 1 is not 0.5*mse there).
        if info.simplify is not None and contract == "mask":
            simpler = info.simplify(params)
            if simpler is not None:
                _warn_same(format_term(Term(1.0, term.name, term.params)), *simpler)
    if isinstance(module, MaskLoss):
        module.contract = contract
    return module


def create_loss(spec: str, reduction: str = "mean", contract: str = "mask", crop: bool = True) -> nn.Module:
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
    if contract not in CONTRACTS:
        raise ValueError(f"contract must be one of {CONTRACTS}, got {contract!r}.{suggest(contract, CONTRACTS)}")
    terms = parse_spec(spec)
    built: list[tuple[float | Schedule, nn.Module, str]] = []
    for term in terms:
        if term.name in OPERATORS and contract not in ("mask", "regression"):
            raise SpecError(spec, term.pos, f"{term.name}(...) wraps mask losses; the {contract!r} contract has none")
        weight = term.weight if term.schedule is None else _schedule(term.schedule, spec, contract)
        built.append((weight, _build_term(term, spec, reduction, contract, crop), format_term(term)))
    names = [_identity(t) for t in terms]
    if len(set(names)) != len(names):
        warnings.warn(
            f"'{spec}' names the same loss twice; its weights simply add up",
            LossEquivalenceWarning,
            stacklevel=2,
        )
    if len(built) == 1 and not isinstance(built[0][0], Schedule) and built[0][0] == 1.0:
        loss = built[0][1]
    elif all(isinstance(m, MaskLoss) for _, m, _ in built):
        loss = HybridLoss(built, reduction=reduction)  # type: ignore[arg-type]
        loss.contract = contract
    else:
        loss = WeightedSum(built)
    loss.spec = format_spec(terms)
    return loss


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
