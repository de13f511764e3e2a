"""Shared pieces of the learning tests: train on one fixed batch, measure the fall of the loss as
the mean of the last k steps against the mean of the first k (never one step against one step),
optionally under bfloat16 autocast, so that the same code serves the tests and the margin
benchmark (``benchmarks/bench_learning_margins.py``).

A learning test asserts behaviour with margin: its thresholds sit at most half-way between "did
not learn" and the worst value measured over CPU kinds, 1 and 2 threads, fp32 and bf16 and seeds.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import torch
from torch import Tensor, nn


@contextlib.contextmanager
def precision(bf16: bool) -> Iterator[None]:
    """bfloat16 autocast on the CPU when ``bf16``, else nothing."""
    if bf16:
        with torch.autocast("cpu", dtype=torch.bfloat16):
            yield
    else:
        yield


@contextlib.contextmanager
def threads(n: int | None) -> Iterator[None]:
    """``n`` intra-op threads inside the block (``None``: leave the setting alone)."""
    before = torch.get_num_threads()
    if n is not None:
        torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def total_loss(out: dict[str, Tensor]) -> Tensor:
    """The sum of a model's ``loss_*`` terms, in float32."""
    return sum(v.float() for k, v in out.items() if k.startswith("loss_"))


def train_steps(
    model: nn.Module,
    step_inputs: Callable[[], tuple],
    steps: int,
    optimizer: torch.optim.Optimizer,
    bf16: bool = False,
) -> list[float]:
    """``steps`` optimiser steps on ``model(*step_inputs())``; the total loss of each step."""
    history = []
    for _ in range(steps):
        with precision(bf16):
            loss = total_loss(model(*step_inputs()))
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        history.append(loss.item())
    return history


def fall(history: list[float], k: int) -> float:
    """Mean of the last ``k`` losses over the mean of the first ``k``: 1 = no learning."""
    if len(history) < 2 * k:
        raise ValueError(f"need at least {2 * k} steps to compare the first and last {k}, got {len(history)}")
    first = sum(history[:k]) / k
    last = sum(history[-k:]) / k
    return last / first


@dataclass(frozen=True)
class Bound:
    """One asserted bound of a learning test: ``value < limit`` (``upper``) or ``value > limit``."""

    limit: float
    upper: bool

    def holds(self, value: float) -> bool:
        return value < self.limit if self.upper else value > self.limit

    def __str__(self) -> str:
        return f"{'<' if self.upper else '>'} {self.limit:g}"


def below(limit: float) -> Bound:
    return Bound(limit, upper=True)


def above(limit: float) -> Bound:
    return Bound(limit, upper=False)


def check(measured: dict[str, float], bounds: dict[str, Bound]) -> None:
    """Assert every bound, reporting all measured values in the message."""
    failed = [f"{k} = {measured[k]:.4g} (wants {b})" for k, b in bounds.items() if not b.holds(measured[k])]
    assert not failed, f"{'; '.join(failed)}; all measured: {measured}"
