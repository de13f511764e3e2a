"""Shared helpers for the mask-loss tests: a spec that fits a small mask for every registered loss,
seeded random inputs, and a reference harness that applies a reference loss to each instance's valid
pixels only. Exposed as a session fixture (``kit``) so hypothesis tests can use it too."""

from __future__ import annotations

import warnings
from collections.abc import Callable

import pytest
import torch
from torch import Tensor, nn

from losslab.losses import LossEquivalenceWarning, create_loss, get_loss_info

# Float64 comparisons against references: the two computations differ only by rounding.
TIGHT = {"rtol": 1e-10, "atol": 1e-12}


class LossKit:
    """Helpers shared by the loss tests."""

    tight = TIGHT

    @staticmethod
    def spec(name: str, size: int = 5) -> str:
        """``name`` with the parameters a ``size``-pixel mask needs: a loss with a ``window`` parameter
        (ssim, default 11) gets an odd window that fits; every other loss keeps its defaults."""
        if "window" in get_loss_info(name).params:
            return f"{name}(window={min(3, size if size % 2 else size - 1)})"
        return name

    @staticmethod
    def create(spec: str, **kwargs) -> nn.Module:
        """``create_loss`` without the equivalence warnings (defaults such as plain ``huber`` warn)."""
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", LossEquivalenceWarning)
            return create_loss(spec, **kwargs)

    @staticmethod
    def inputs(
        seed: int = 0,
        n: int = 3,
        h: int = 6,
        w: int = 7,
        soft: bool = False,
        valid: bool = False,
        dtype: torch.dtype = torch.float64,
        scale: float = 3.0,
    ) -> tuple[Tensor, Tensor, Tensor | None]:
        """Random ``(logits, target, valid)``; every instance has a positive, a negative and a valid pixel."""
        gen = torch.Generator().manual_seed(seed)
        logits = (torch.randn(n, h, w, generator=gen) * scale).to(dtype)
        if soft:
            target = torch.rand(n, h, w, generator=gen).to(dtype)
        else:
            target = (torch.rand(n, h, w, generator=gen) > 0.6).to(dtype)
            target[:, 0, 0], target[:, -1, -1] = 1.0, 0.0
        mask = None
        if valid:
            mask = (torch.rand(n, h, w, generator=gen) > 0.3).to(dtype)
            mask[:, 0, 0], mask[:, -1, -1] = 1.0, 1.0
        return logits, target, mask

    @staticmethod
    def reference_per_instance(
        ref: Callable[[Tensor, Tensor], Tensor], logits: Tensor, target: Tensor, valid: Tensor | None
    ) -> Tensor:
        """``ref`` applied to each instance's valid pixels (1-D tensors), stacked to ``(N,)``."""
        out = []
        for i in range(logits.shape[0]):
            keep = torch.ones(logits[i].shape, dtype=torch.bool) if valid is None else valid[i] != 0
            out.append(ref(logits[i][keep], target[i][keep]))
        return torch.stack(out)

    def assert_matches_reference(
        self,
        loss: nn.Module,
        ref: Callable[[Tensor, Tensor], Tensor],
        logits: Tensor,
        target: Tensor,
        valid: Tensor | None,
        tol: dict | None = None,
    ) -> None:
        """Per-instance values and the gradient w.r.t. the logits agree with ``ref`` on valid pixels."""
        tol = tol or self.tight
        ours_in = logits.clone().requires_grad_(True)
        ref_in = logits.clone().requires_grad_(True)
        loss.reduction = "none"
        ours = loss(ours_in, target, valid)
        theirs = self.reference_per_instance(ref, ref_in, target, valid)
        torch.testing.assert_close(ours, theirs.to(ours.dtype), **tol)
        ours.sum().backward()
        theirs.sum().backward()
        torch.testing.assert_close(ours_in.grad, ref_in.grad, **tol)
        if valid is not None:  # invalid pixels get no gradient at all
            assert torch.all(ours_in.grad[valid == 0] == 0)


@pytest.fixture(scope="session")
def kit() -> LossKit:
    return LossKit()
