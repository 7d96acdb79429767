"""A linear layer's weight gradient as a product of two thin matrices, captured with module hooks.

For ``y = x W^T + b`` over a batch of B rows (x: (B, n), y: (B, m), W: (m, n)), backpropagation
forms the weight gradient as one product (Martens & Grosse, "Optimizing neural networks with
Kronecker-factored approximate curvature", ICML 2015, Section 3):

    G = D^T X    (m x n),   D = dLoss/dy  (B x m),   X = x  (B x n).

When B is smaller than m and n, Shampoo's statistics and preconditioned direction are cheaper from
D and X than from G, and exactly equal in exact arithmetic:

    G G^T = D^T (X X^T) D,    G^T G = X^T (D D^T) X,    P G Q = (P D^T)(X Q).

On the default MLP (784-256-256-10, batch 64) that is ~4x fewer FLOPs for the 784 x 256 layer.

Several passes through a weight before one optimizer step (gradient accumulation, a module called
twice, two ``nn.Linear`` sharing a weight) sum their gradients; stacking their rows gives the same
sum, ``[D1; D2]^T [X1; X2] = D1^T X1 + D2^T X2``. Inputs with more dimensions are flattened to rows
(B = every leading dimension), as ``nn.Linear`` does. A pass whose backward never reached the layer
leaves an incomplete record, which is ignored. The capture is only a proposal: ``take`` returns
factors that the caller must check against the gradient autograd accumulated (``matches``), so a
use of the weight outside ``nn.Linear`` (``F.linear``, weight tying with an embedding), an extra
loss term on it, a gradient changed after backward (clipping) or a lost pass fall back to the dense
gradient.
"""

from __future__ import annotations

import weakref
from typing import Any

import torch

MAX_RECORDS = 64  # passes kept per weight between two `take`s; older ones are dropped (then `matches` fails)


class GradientFactors:
    """Records (X, D) of every ``nn.Linear`` of a model on each forward pass with gradients enabled.

    Memory: B x (m + n) floats per layer and pass, held until ``take`` (X is the layer's input,
    which autograd keeps anyway; D is kept past the backward pass; an input that is not contiguous
    is copied by the reshape). ``close()`` removes the hooks; they are also removed when the object
    is garbage-collected.
    """

    def __init__(self, model: torch.nn.Module, weights: set[int] | None = None) -> None:
        """Hook ``model``'s linear layers, or only those whose weight's ``id`` is in ``weights``."""
        self._records: dict[int, list[list[torch.Tensor | None]]] = {}
        records = self._records
        handles = []
        for module in model.modules():
            if not isinstance(module, torch.nn.Linear) or (weights is not None and id(module.weight) not in weights):
                continue

            def forward_hook(module: torch.nn.Module, args: tuple[Any, ...], output: torch.Tensor,
                             key: int = id(module.weight)) -> None:
                if not (torch.is_grad_enabled() and module.weight.requires_grad and output.requires_grad):
                    return
                x = args[0]
                record: list[torch.Tensor | None] = [x.detach().reshape(-1, x.shape[-1]), None]
                entries = records.setdefault(key, [])
                entries.append(record)
                del entries[:-MAX_RECORDS]

                def backward_hook(grad: torch.Tensor, record: list = record) -> None:
                    record[1] = grad.detach().reshape(-1, grad.shape[-1])

                output.register_hook(backward_hook)

            handles.append(module.register_forward_hook(forward_hook))
        self._finalizer = weakref.finalize(self, remove_hooks, handles)

    def take(self, weight: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor] | None:
        """(D (B x m), X (B x n)) of ``weight``'s passes since the last take, rows stacked, or None
        when no complete pass was recorded. Forgets the records either way."""
        entries = [r for r in self._records.pop(id(weight), []) if r[1] is not None]
        if not entries:
            return None
        if len(entries) == 1:
            return entries[0][1], entries[0][0]
        return torch.cat([r[1] for r in entries]), torch.cat([r[0] for r in entries])

    def drop_completed(self) -> None:
        """Forget every pass whose backward has run (an optimizer's ``zero_grad``: their gradient is
        gone); a pass still waiting for its backward is kept."""
        for key, entries in list(self._records.items()):
            entries[:] = [r for r in entries if r[1] is None]
            if not entries:
                del self._records[key]

    def close(self) -> None:
        """Remove the hooks and forget the records."""
        self._finalizer()
        self._records.clear()


def remove_hooks(handles: list) -> None:
    """Remove each of the module hooks ``handles`` (a finalizer's callback: it holds no reference to its owner)."""
    for handle in handles:
        handle.remove()


def matches(grad: torch.Tensor, d: torch.Tensor, x: torch.Tensor, probe: torch.Tensor, factor: float = 4.0) -> bool:
    """Whether D^T X equals ``grad`` (m x n) up to rounding, tested along ``probe`` (n,) (Freivalds' check).

    Shapes: ``d`` (B, m), ``x`` (B, n), ``probe`` (n,). Compares grad @ r with D^T (X r) entry by
    entry. A length-k float sum carries a rounding error of at most ~k * eps times the sum of the
    magnitudes of its terms (Higham, "Accuracy and Stability of Numerical Algorithms", 2002, Eq. 3.5);
    both sides are such sums of the terms D_bi X_bj r_j, so the bound used is
    ``factor * (n + B) * eps * (|D|^T (|X| |r|))``, in the dtype's eps, plus the same multiple of the
    spacing of subnormal numbers (tiny * eps), the absolute error of an operation that underflows
    (Higham, Chapter 2, the model with underflow; float32 gradients of ~1e-44 occur after large steps,
    and BLAS kernels may flush such inputs to zero, which this term covers for the deep subnormals
    seen; a check that fails on rounding costs only the dense path, never a wrong step). It scales
    with the terms, not
    with |G|: per-example gradients that cancel (late in training) are not rejected. A missed pass,
    an extra loss term or a rescaled gradient moves grad @ r by far more for a probe of random signs
    (fixed per shape by the caller, so the check draws nothing from torch's global generator).
    Cost: O(mn + B(m + n)) instead of the m x B x n product. Factors of another dtype than ``grad``
    (autocast) do not match.
    """
    if d.shape[1] != grad.shape[0] or x.shape[1] != grad.shape[1] or d.shape[0] != x.shape[0]:
        return False
    if not (d.dtype == x.dtype == probe.dtype == grad.dtype):
        return False
    info, k = torch.finfo(grad.dtype), x.shape[1] + x.shape[0]
    error = (grad @ probe - d.T @ (x @ probe)).abs()
    bound = factor * k * info.eps * (d.abs().T @ (x.abs() @ probe.abs()))
    bound += factor * k * info.tiny * info.eps  # underflow: each operation on subnormals errs by up to their spacing
    return bool((error <= bound).all())


def sign_probe(n: int, dtype: torch.dtype, device: torch.device) -> torch.Tensor:
    """A vector of n random signs (+1/-1), the same for every n: the probe of ``matches``."""
    generator = torch.Generator().manual_seed(n)
    return (torch.randint(0, 2, (n,), generator=generator) * 2 - 1).to(dtype=dtype, device=device)


def factored_cost(m: int, n: int, b: int, left: bool = True, right: bool = True) -> tuple[int, int]:
    """Multiply-adds per step of Shampoo's statistics and preconditioned direction for an m x n
    weight, with the left (m x m) and/or right (n x n) factor: (from G, from D and X at batch b).

    From G, per side used: its statistic (m^2 n or n^2 m) and its preconditioning product (the same).
    From D (b x m) and X (b x n), per side used: the b x b Gram of the other factor, its product with
    this side's factor (b^2 (m + n)), the outer product and the root's product with D^T or X
    (2 b m^2 or 2 b n^2); then (.)(.) (mnb) and the check ``matches`` (mn + 2b(m + n)).
    """
    dense = left * 2 * m * m * n + right * 2 * n * n * m
    factored = ((left + right) * b * b * (m + n) + left * 2 * b * m * m + right * 2 * b * n * n
                + m * n * b + m * n + 2 * b * (m + n))
    return dense, factored
