"""The step every optimizer written here shares: one in-place update per parameter with a gradient.

torch.optim's convention: ``step(closure)`` re-evaluates the loss with gradients enabled when a
closure is given, and returns it. A subclass defines ``_update(p, group)`` only.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch


def evaluate_closure(closure: Callable[[], torch.Tensor] | None) -> torch.Tensor | None:
    """The loss ``closure()`` returns, evaluated with gradients enabled (inside a ``no_grad`` step),
    or None without a closure: what every ``step(closure)`` here does first."""
    if closure is None:
        return None
    with torch.enable_grad():
        return closure()


class PerParameterOptimizer(torch.optim.Optimizer):
    """A ``torch.optim.Optimizer`` whose step updates each parameter on its own (``_update``).

    Parameters without a gradient are skipped; a sparse gradient raises ``RuntimeError``.
    """

    def _update(self, p: torch.Tensor, group: dict[str, Any]) -> None:
        raise NotImplementedError

    @torch.no_grad()
    def step(self, closure: Callable[[], torch.Tensor] | None = None) -> torch.Tensor | None:
        loss = evaluate_closure(closure)
        for group in self.param_groups:
            for p in group["params"]:
                if p.grad is None:
                    continue
                if p.grad.is_sparse:
                    raise RuntimeError(f"{type(self).__name__} does not support sparse gradients")
                self._update(p, group)
        return loss
