"""Powerpropagation as an optimizer on w: ``PowerpropSGD`` and ``PowerpropAdam`` (registry types).

Powerprop (Schwarz et al., NeurIPS 2021) writes each weight as ``w = v·|v|^(α−1)``
(= ``sign(v)|v|^α``) and trains ``v``. The paper's point (Pascanu et al., 2025) is that this
is really an *optimizer* choice: the network computes the same function of ``w`` either way,
only the update rule differs. This module is the optimizer form; ``optbias.powerprop.reparam`` is the reparameterization, and
``optbias.powerprop.equivalence`` compares the two.

Derivation (elementwise; ``g_w = ∂L/∂w``, ``η`` the learning rate)
-----------------------------------------------------------------
The map ``w = sign(v)|v|^α`` has derivative ``dw/dv = α|v|^(α−1)``; inverting it,
``|v| = |w|^(1/α)``, so the same derivative in terms of ``w`` is ``J(w) = α|w|^((α−1)/α)``.

*SGD on v.* The chain rule gives ``g_v = J·g_w``, and one step moves ``Δv = −η·J·g_w``.
Pushing that step through the map to first order, ``Δw ≈ J·Δv = −η·J²·g_w`` with
``J² = α²|w|^(2−2/α)``. So SGD on v is, up to ``O(η²)`` per step, SGD on w with the diagonal,
magnitude-dependent preconditioner ``α²|w|^(2−2/α)``. It vanishes as ``|w| → 0`` for α > 1
(small weights stop moving, hence sparsity) and is exactly 1 for α = 1 (plain SGD).
Weight decay ``λ`` applied to v (what ``torch.optim.SGD`` does on the reparameterized model)
adds ``J·λv = λα·w``, i.e. a decay of ``λα`` on w, *not* preconditioned.

*Adam on v.* ``g_v = J·g_w (+ λv)`` is computable from w alone since ``v = sign(w)|w|^(1/α)``.
Adam keeps its moments on ``g_v`` and proposes ``Δv``; to first order ``Δw ≈ J·Δv``.

The residual of both first-order maps is ``½·(d²w/dv²)·Δv² = O(η²)`` per step, so after a fixed
number of steps the gap between the two trajectories, relative to the distance travelled, is
``O(η)``: ``tests/test_powerprop.py`` checks that order numerically.

Only 2-D parameters (``nn.Linear`` weights) are reparameterized / preconditioned; biases are
trained plainly in both forms, as in Schwarz et al. (2021).
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from typing import Any

import torch
from torch import Tensor

from .base import PerParameterOptimizer

__all__ = ["PowerpropAdam", "PowerpropSGD", "check_alpha", "powerprop_jacobian", "powerprop_preconditioner"]


def check_alpha(alpha: float) -> float:
    """Powerprop needs α ≥ 1: below 1 the map is not differentiable at 0 and *grows* small weights."""
    try:
        value = float(alpha)
    except (TypeError, ValueError):
        raise ValueError(f"powerprop alpha must be a real number >= 1, got {alpha!r}") from None
    if not math.isfinite(value) or value < 1.0:
        raise ValueError(f"powerprop alpha must be a finite number >= 1, got {alpha!r}")
    return value


def powerprop_jacobian(w: Tensor, alpha: float) -> Tensor:
    """``dw/dv = α|v|^(α−1)`` written in terms of w: ``α|w|^((α−1)/α)`` (no v needed)."""
    alpha = check_alpha(alpha)
    return alpha * w.abs().pow((alpha - 1.0) / alpha)


def powerprop_preconditioner(w: Tensor, alpha: float) -> Tensor:
    """The diagonal preconditioner of SGD-on-v seen from w: ``α²|w|^(2−2/α) = (dw/dv)²``."""
    alpha = check_alpha(alpha)
    return alpha**2 * w.abs().pow(2.0 - 2.0 / alpha)


# --------------------------------------------------------------------------- optimizers on w
def _check_common(lr: float, weight_decay: float) -> None:
    if not (isinstance(lr, (int, float)) and math.isfinite(lr) and lr >= 0.0):
        raise ValueError(f"learning rate must be a finite number >= 0, got {lr!r}")
    if not (isinstance(weight_decay, (int, float)) and math.isfinite(weight_decay) and weight_decay >= 0.0):
        raise ValueError(f"weight_decay must be a finite number >= 0, got {weight_decay!r}")


def _is_powerprop(p: Tensor, alpha: float) -> bool:
    """Matrices (Linear weights) get the Powerprop geometry; vectors (biases) stay plain."""
    return p.ndim >= 2 and alpha != 1.0


class _PowerpropOptimizer(PerParameterOptimizer):
    """What both Powerprop optimizers share: validated param groups (the step is the base class's)."""

    def add_param_group(self, param_group: dict[str, Any]) -> None:
        """Validate per-group overrides too (``__init__`` also adds its groups through here)."""
        super().add_param_group(param_group)
        group = self.param_groups[-1]
        group["alpha"] = check_alpha(group["alpha"])
        _check_common(group["lr"], group["weight_decay"])
        self._check_group(group)

    @staticmethod
    def _check_group(group: dict[str, Any]) -> None:
        """Checks of a subclass's own hyperparameters (none by default)."""



class PowerpropSGD(_PowerpropOptimizer):
    """SGD on w that is, to first order, SGD on v of Powerprop's ``w = v|v|^(α−1)``.

    For 2-D params: ``Δw = −η(α²|w|^(2−2/α)·g_w + λα·w)``; 1-D params (biases): plain
    ``Δw = −η(g + λw)``. ``weight_decay=λ`` matches ``torch.optim.SGD(weight_decay=λ)`` on the
    reparameterized model (decay on v, see the module docstring). α may differ per param group.
    Cost: a few elementwise passes per parameter, as SGD.
    """

    def __init__(self, params: Iterable[Any], lr: float, alpha: float, weight_decay: float = 0.0) -> None:
        _check_common(lr, weight_decay)
        super().__init__(params, dict(lr=lr, alpha=check_alpha(alpha), weight_decay=weight_decay))

    def _update(self, p: Tensor, group: dict[str, Any]) -> None:
        lr, alpha, wd = group["lr"], group["alpha"], group["weight_decay"]
        if _is_powerprop(p, alpha):
            direction = powerprop_preconditioner(p, alpha) * p.grad
            decay = wd * alpha
        else:
            direction, decay = p.grad, wd
        if decay:
            direction = direction.add(p, alpha=decay)
        p.add_(direction, alpha=-lr)


class PowerpropAdam(_PowerpropOptimizer):
    """Adam on w that is, to first order, ``torch.optim.Adam`` on v of Powerprop.

    For 2-D params, each step forms ``g_v = J·g_w + λ·v`` with ``J = α|w|^((α−1)/α)`` and
    ``v = sign(w)|w|^(1/α)``, runs Adam's moment update and bias correction on ``g_v`` exactly
    as torch does, and moves ``Δw = J·Δv``. 1-D params (biases) get plain Adam.
    ``weight_decay`` is torch Adam's L2 term (on v for weights, on the bias for biases).
    State: two moments per parameter, as Adam.
    """

    def __init__(self, params: Iterable[Any], lr: float, alpha: float,
                 betas: tuple[float, float] = (0.9, 0.999), eps: float = 1e-8,
                 weight_decay: float = 0.0) -> None:
        _check_common(lr, weight_decay)
        defaults = dict(lr=lr, alpha=check_alpha(alpha), betas=tuple(betas), eps=eps,
                        weight_decay=weight_decay)
        self._check_group(defaults)
        super().__init__(params, defaults)

    @staticmethod
    def _check_group(group: dict[str, Any]) -> None:
        betas, eps = group["betas"], group["eps"]
        if len(betas) != 2 or not all(isinstance(b, (int, float)) and 0.0 <= b < 1.0 for b in betas):
            raise ValueError(f"betas must be two numbers in [0, 1), got {betas!r}")
        if not (isinstance(eps, (int, float)) and math.isfinite(eps) and eps >= 0.0):
            raise ValueError(f"eps must be a finite number >= 0, got {eps!r}")

    def _update(self, p: Tensor, group: dict[str, Any]) -> None:
        lr, alpha, wd, eps = group["lr"], group["alpha"], group["weight_decay"], group["eps"]
        beta1, beta2 = group["betas"]
        powerprop = _is_powerprop(p, alpha)
        if powerprop:
            jac = powerprop_jacobian(p, alpha)
            grad = jac * p.grad
            if wd:
                grad = grad.add(torch.sign(p) * p.abs().pow(1.0 / alpha), alpha=wd)
        else:
            grad = p.grad.add(p, alpha=wd) if wd else p.grad

        state = self.state[p]
        if not state:
            state["step"] = 0
            state["exp_avg"] = torch.zeros_like(p)
            state["exp_avg_sq"] = torch.zeros_like(p)
        state["step"] += 1
        t, m, s = state["step"], state["exp_avg"], state["exp_avg_sq"]
        m.lerp_(grad, 1.0 - beta1)
        s.mul_(beta2).addcmul_(grad, grad, value=1.0 - beta2)
        step_size = lr / (1.0 - beta1**t)
        denom = (s.sqrt() / math.sqrt(1.0 - beta2**t)).add_(eps)
        if powerprop:
            p.add_(jac * (m / denom), alpha=-step_size)
        else:
            p.addcdiv_(m, denom, value=-step_size)
