"""Memory Shampoo: Shampoo with a second, remembering input-side preconditioner (ours; the design and its
reasoning: paper/designing_an_optimizer.md).

For a 2-D weight W (m, n) with gradient G the step direction, before grafting, is

    L^-1/4 G R^-1/4 M,    M = alpha^p (S + alpha I)^-p,    S = sum_i xbar_i xbar_i^T  (n x n)

where L^-1/4 G R^-1/4 is Shampoo's direction (optbias.optim.shampoo, every option of Shampoo kept),
xbar_i is the layer's input averaged over batch i, summed over every step of every task and never
decayed or reset (``reset_preconditioner`` forgets L and R only), and the exponent p in [0, 1]
(``memory_power``) is the knob between Shampoo (p = 0) and OWM's projector (p = 1; Zeng et al.
2019, P = alpha (A + alpha I)^-1 with A = S: optbias.optim.owm). In an input direction u with
S u = s u the memory scales the direction by (alpha / (s + alpha))^p: directions that old tasks'
inputs filled (s >> alpha) are damped, by a factor the knob sets, relative to directions no input
has visited (s = 0). Grafting (Shampoo's, layer-wise Frobenius norm, Adagrad by default) then
rescales the whole step to the grafted norm: the memory changes the step's proportions, not its
size, so the damping is relative (were S isotropic, the grafted step would be Shampoo's for every p).
Biases (not 2-D) take Shampoo's rule for vectors and are not protected.

What it reduces to (tests/test_memory_shampoo.py):

* ``memory_power=0``: Shampoo, bit for bit (the memory is skipped).
* ``shampoo_factors=False, memory_power=1, grafting="none", update_freq=1``, on bias-free layers:
  OWM (each layer's weight stepped along G alpha (S + alpha I)^-1), up to rounding. With biases the
  two differ: OWM folds or SGD-steps them, Memory Shampoo steps them by Shampoo's ``non_2d`` rule.

The memory's statistic comes from each attached ``nn.Linear``'s inputs (``attach``, which
``optbias.optim.registry.build`` calls), one rank-1 term per forward pass with gradients enabled;
its root is recomputed on Shampoo's ``update_freq`` schedule, in ``root_dtype``, with the same
fallback to the last good root (counted in ``root_failures``). In float32 (the default config's
``root_dtype``) the root loses about eps * lambda_max(S) / alpha: at p = 1, alpha = 1, after 3,100
steps of MNIST inputs in [0, 1], M is 1.5% off the exact alpha (S + alpha I)^-1 in Frobenius norm
(tests/test_memory_shampoo.py); ``root_dtype: float64`` makes it exact up to storage. State per weight: S and its root,
2 n^2 floats, in ``state_dict`` (a resumed run keeps the memory). Cost per refresh: one n x n
eigendecomposition per layer, as Shampoo's R; per step, one (m, n) x (n, n) product.
"""

from __future__ import annotations

import time
from collections.abc import Iterable
from typing import Any

import torch

from . import checks
from .owm import InputMeans, linear_layers
from .shampoo import ROOT_DTYPES, Shampoo, inverse_root


def validate_memory(group: dict[str, Any]) -> None:
    """Raise ValueError naming the bad memory option, what it may be and the fix (``checks.memory_shampoo``)."""
    checks.memory_shampoo(group)


class MemoryShampoo(Shampoo):
    """Shampoo times an input memory M = alpha^p (S + alpha I)^-p; see the module docstring.

    ``memory_power`` (p, in [0, 1]) is the retention-plasticity knob, ``memory_alpha`` its damping,
    ``shampoo_factors`` whether Shampoo's L and R are used at all; every other option is Shampoo's.
    ``step`` raises ``RuntimeError`` when p > 0 and ``attach(model)`` was not called.
    """

    def __init__(self, params: Iterable[torch.Tensor] | Iterable[dict[str, Any]], lr: float = 1e-3, *,
                 memory_power: float = 0.5, memory_alpha: float = 1.0, shampoo_factors: bool = True,
                 **shampoo_options: Any) -> None:
        """``shampoo_options``: any option of ``Shampoo`` (its defaults otherwise); the registry
        accepts their names for this type (``OptimizerType.forwards_to``)."""
        memory = dict(memory_power=memory_power, memory_alpha=memory_alpha, shampoo_factors=shampoo_factors)
        validate_memory(memory)
        self._memory_options = memory
        self._memory: InputMeans | None = None
        super().__init__(params, lr, **shampoo_options)
        self.defaults.update(memory)

    def add_param_group(self, param_group: dict[str, Any]) -> None:
        for key, value in self._memory_options.items():  # the memory's defaults, as torch does for the others
            param_group.setdefault(key, value)
        super().add_param_group(param_group)
        validate_memory(self.param_groups[-1])

    def attach(self, model: torch.nn.Module) -> None:
        """Shampoo's ``attach`` (gradient factors) and the memory's hooks on ``model``'s linear layers
        whose weight is in a group with ``memory_power`` > 0."""
        super().attach(model)
        if self._memory is not None:
            self._memory.close()
        ids = {id(p) for g in self.param_groups if g["memory_power"] > 0 for p in g["params"]}
        self._memory = InputMeans(linear_layers(model, ids)) if ids else None

    def close(self) -> None:
        """Remove every hook ``attach`` installed."""
        super().close()
        if getattr(self, "_memory", None) is not None:
            self._memory.close()
            self._memory = None

    def _matrix_direction(self, p: torch.Tensor, grad: torch.Tensor, state: dict[str, Any],
                          group: dict[str, Any]) -> torch.Tensor:
        direction = super()._matrix_direction(p, grad, state, group) if group["shampoo_factors"] else grad
        power = group["memory_power"]
        if power == 0:
            return direction  # Shampoo exactly
        if self._memory is None:
            raise RuntimeError("MemoryShampoo builds its memory from each linear layer's inputs: call "
                               "optimizer.attach(model) after building it (optbias.optim.registry.build does)")
        means = self._memory.take(p)  # (passes, n) or None
        if "memory" not in state:
            state["memory"] = grad.new_zeros(grad.shape[1], grad.shape[1])
            state["memory_root"] = torch.eye(grad.shape[1], dtype=grad.dtype, device=grad.device)
        if means is not None:
            state["memory"].addmm_(means.T.to(grad.dtype), means.to(grad.dtype))  # S += sum xbar xbar^T
        if (state["step"] - 1) % group["update_freq"] == 0:  # Shampoo's schedule, never restarted
            self._refresh_memory(state, power, group)
        return direction @ state["memory_root"]

    def _refresh_memory(self, state: dict[str, Any], power: float, group: dict[str, Any]) -> None:
        """M = alpha^p (S + alpha I)^-p; a failed or non-finite root keeps the last good one (counted)."""
        start = time.perf_counter()
        self.root_computations += 1
        alpha = float(group["memory_alpha"])
        for attempt, dtype in enumerate(dict.fromkeys([ROOT_DTYPES[group["root_dtype"]], torch.float64])):
            self.root_retries += attempt > 0
            try:
                root = inverse_root(state["memory"], power, alpha, "absolute", dtype) * alpha ** power
            except RuntimeError:  # torch.linalg.LinAlgError
                continue
            if bool(torch.isfinite(root).all()):
                state["memory_root"].copy_(root)
                break
        else:
            self.root_failures += 1
        self.root_time_s += time.perf_counter() - start
