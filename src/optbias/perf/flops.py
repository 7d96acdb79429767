"""FLOPs of one training step, counted from below: the compute lower bound of a run (``optbias bench``).

A step of the MLP (widths ``[n_in, *hidden, n_classes]``, batch B) costs at least its matrix
products: 2 B a b FLOPs per a -> b layer forward, twice that backward (the input and the weight
gradient), less the input gradient of the first layer, which autograd does not form (the data needs
none): 6 B sum(a b) - 2 B n_in h_1 (``model``; tests/test_perf.py checks it against torch's own
FLOP counter on a real step). An optimizer adds what its registry row names
(``OptimizerType.flops``, the name of a function here, called with the entry's options, the widths
and B: ``step``). Element-wise types (SGD, Adam, Adagrad) add O(parameters) memory-bound work and are counted
as 0; Muon, SOAP and PSGD-Kron are not estimated (their bound is the model's alone, so still a lower
bound). Every count below is a matrix product or a dense factorization, at 2 FLOPs per
multiply-add; element-wise work and the grafting are left out (Shampoo's check of its gradient
factors, ``factored_cost``, is counted: it is a product), so each is a lower bound for this
implementation. A symmetric product (G G^T, V diag(s) V^T) is counted as a full one, as computed here;
an implementation that formed only half would need half.

A weight of layer a -> b is the matrix W (m, n) = (b, a). Roots are amortized over ``update_freq``
steps: per n x n matrix and refresh, the Householder reduction to tridiagonal form (4/3 n^3, the
least any dense symmetric eigensolver does; Golub & Van Loan, Alg. 8.3.1) and forming
V diag(s) V^T (2 n^3); the back-transformation and the tridiagonal solve are not counted.

Shampoo's cost rule (``factored_cost``), exponents and defaults are read from its module, so this
one imports torch.
"""

from __future__ import annotations

import inspect
from collections.abc import Mapping
from typing import Any

from ..optim import registry
from ..optim.gradient_factors import factored_cost
from ..optim.memory_shampoo import MemoryShampoo
from ..optim.owm import OWM
from ..optim.shampoo import EXPONENTS, Shampoo

ROOT_FLOPS_PER_N3 = 4 / 3 + 2  # tridiagonal reduction + recomposition, per refresh


def defaults(cls: type) -> dict[str, Any]:
    """The keyword defaults of an optimizer class's constructor."""
    return {k: p.default for k, p in inspect.signature(cls).parameters.items()
            if p.default is not inspect.Parameter.empty}


def layers(widths: list[int]) -> list[tuple[int, int]]:
    """The weights (m, n) = (out, in) of an MLP with these widths."""
    return [(b, a) for a, b in zip(widths[:-1], widths[1:])]


def model(widths: list[int], batch: int) -> float:
    """Forward + backward matrix FLOPs of one step of the MLP on ``batch`` rows:
    6 B sum(a b) - 2 B n_in h_1 (no input gradient for the first layer)."""
    return 6.0 * batch * sum(m * n for m, n in layers(widths)) - 2.0 * batch * widths[0] * widths[1]


def shampoo(options: Mapping[str, Any], widths: list[int], batch: int, roots: bool = True) -> float:
    """FLOPs Shampoo adds per step (Gupta et al. 2018, Alg. 1): per 2-D weight and matrix side (a
    side wider than ``max_precond_dim`` is diagonal: no matrix work), the statistic and the
    preconditioning product (from the gradient factors when ``gradient_factors`` is on and that is
    cheaper, as the optimizer chooses), and, with ``roots``, the side's root every ``update_freq`` steps."""
    o = {**defaults(Shampoo), **options}
    left_used, right_used = (power is not None for power in EXPONENTS[o["exponent"]])
    total = 0.0
    for m, n in layers(widths):
        left, right = left_used and m <= o["max_precond_dim"], right_used and n <= o["max_precond_dim"]
        dense, factored = factored_cost(m, n, batch, left, right)
        # the optimizer's own rule: factors only when cheaper and no used side is diagonal
        factors_ok = o["gradient_factors"] and factored < dense and left == left_used and right == right_used
        total += 2 * (factored if factors_ok else dense)
        total += roots * ROOT_FLOPS_PER_N3 * (left * m ** 3 + right * n ** 3) / o["update_freq"]
    return total


def memory_shampoo(options: Mapping[str, Any], widths: list[int], batch: int) -> float:
    """FLOPs Memory Shampoo adds per step (optbias.optim.memory_shampoo): Shampoo's (unless
    ``shampoo_factors`` is off) and, per weight with ``memory_power`` > 0, the rank-1 update of S
    (2 n^2), the product of the direction with the memory's root (2 m n^2) and the root every
    ``update_freq`` steps."""
    o = {**defaults(Shampoo), **defaults(MemoryShampoo), **options}
    total = shampoo(o, widths, batch) if o["shampoo_factors"] else 0.0
    if o["memory_power"] > 0:
        freq = o["update_freq"]
        total += sum(2 * n * n + 2 * m * n * n + ROOT_FLOPS_PER_N3 * n ** 3 / freq for m, n in layers(widths))
    return total


def owm(options: Mapping[str, Any], widths: list[int], batch: int) -> float:
    """FLOPs OWM adds per step (Zeng et al. 2019, eqs. 8-9; optbias.optim.owm): per linear layer with
    inputs of width n' (n + 1 with the bias folded), the recursive least-squares update of P from the
    batch's mean input (k = P x: 2 n'^2; P -= k k^T / (alpha + x.k): 2 n'^2) and the projected
    gradient G P (2 m n'^2)."""
    fold = {**defaults(OWM), **options}["fold_bias"]
    return sum(4 * (n + fold) ** 2 + 2 * m * (n + fold) ** 2 for m, n in layers(widths))


def step(entry: Mapping[str, Any], widths: list[int], batch: int) -> float | None:
    """Matrix FLOPs an optimizer step of config ``entry`` adds to the MLP's forward and backward passes
    (``widths`` ``[n_in, *hidden, n_classes]``, ``batch`` rows), by the function of this module its
    registry row names (``OptimizerType.flops``): 0 for an element-wise type, None when the type has
    no estimate (an import path, Muon, SOAP, PSGD-Kron). A regularizer's keys are not options."""
    row = registry.TYPES.get(entry["type"])
    if row is None:
        return None
    if row.flops is None:
        return 0.0 if row.elementwise else None
    options = {k: v for k, v in registry.without_regularizer(dict(entry)).items() if k != "type"}
    return float(globals()[row.flops](options, list(widths), int(batch)))
