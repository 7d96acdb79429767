"""Weight-sparsity measurements on a plain state_dict: magnitudes, near-zero fraction, pruning.

Powerprop's claim is about the *weights* an optimizer reaches, so every function here takes the
matrices of a plain ``state_dict`` (the Linear weights; biases are a handful of numbers and are
never pruned, as in Schwarz et al. 2021) and nothing model-specific. Reparameterized models are
saved as plain effective-weight state_dicts (``powerprop.to_plain_state_dict``), so the same code
measures every method.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import torch
from torch import Tensor

__all__ = ["fraction_below", "global_magnitude_prune", "log10_histogram", "prunable_keys", "weight_magnitudes"]


def prunable_keys(state_dict: Mapping[str, Tensor]) -> list[str]:
    """The weight matrices (ndim ≥ 2) of a state_dict, in its order; biases are left out."""
    return [k for k, v in state_dict.items() if v.ndim >= 2]


def weight_magnitudes(state_dict: Mapping[str, Tensor], keys: Sequence[str] | None = None) -> Tensor:
    """All ``|w|`` of the given (default: prunable) tensors, flattened into one float64 vector."""
    keys = prunable_keys(state_dict) if keys is None else list(keys)
    if not keys:
        raise ValueError("no weight matrices to measure: the state_dict has no tensor with ndim >= 2")
    return torch.cat([state_dict[k].detach().abs().flatten().to(torch.float64) for k in keys])


def fraction_below(magnitudes: Tensor, relative_threshold: float = 1e-3) -> float:
    """Fraction of weights with ``|w| < relative_threshold · max|w|`` (the global max).

    A scale-free sparsity measure: multiplying every weight by a constant does not change it.
    All-zero weights count as fully sparse (1.0).
    """
    if magnitudes.numel() == 0:
        raise ValueError("fraction_below needs at least one weight")
    if not relative_threshold > 0:
        raise ValueError(f"relative_threshold must be > 0, got {relative_threshold}")
    top = magnitudes.abs().max()
    if top == 0:
        return 1.0
    return float((magnitudes.abs() < relative_threshold * top).to(torch.float64).mean())


def global_magnitude_prune(state_dict: Mapping[str, Tensor], fraction: float,
                           keys: Sequence[str] | None = None) -> dict[str, Tensor]:
    """Zero the ``round(fraction · n)`` smallest-magnitude weights across all ``keys`` together.

    Global (one threshold for every layer), one shot, no retraining. Ties at the threshold are
    broken by position (a stable sort), so exactly ``k`` weights are zeroed. Returns a new
    state_dict; tensors not in ``keys`` (biases) are copied unchanged.
    """
    if not 0.0 <= fraction <= 1.0:
        raise ValueError(f"pruning fraction must be in [0, 1], got {fraction}")
    keys = prunable_keys(state_dict) if keys is None else list(keys)
    out = {k: v.detach().clone() for k, v in state_dict.items()}
    magnitudes = weight_magnitudes(state_dict, keys)
    k = int(round(fraction * magnitudes.numel()))
    if k == 0:
        return out
    order = torch.sort(magnitudes, stable=True).indices[:k]
    keep = torch.ones(magnitudes.numel(), dtype=torch.bool)
    keep[order] = False
    start = 0
    for key in keys:
        n = out[key].numel()
        out[key] = out[key] * keep[start:start + n].view_as(out[key]).to(out[key].dtype)
        start += n
    return out


def log10_histogram(magnitudes: Tensor, low: float = -8.0, high: float = 1.0,
                    bins: int = 45) -> dict[str, list]:
    """Counts of ``log10|w|`` in ``bins`` equal bins over [low, high]; exact zeros and values
    below ``10^low`` go to ``underflow``, values above ``10^high`` to ``overflow``."""
    if not (high > low and bins >= 1):
        raise ValueError(f"need high > low and bins >= 1, got low={low}, high={high}, bins={bins}")
    m = magnitudes.abs().to(torch.float64).cpu().numpy()
    logs = np.log10(m[m > 0])
    counts, edges = np.histogram(logs, bins=bins, range=(low, high))  # last bin includes `high`
    return {
        "edges_log10": [round(float(e), 10) for e in edges],
        "counts": [int(c) for c in counts],
        "underflow": int((m == 0).sum() + (logs < low).sum()),
        "overflow": int((logs > high).sum()),
    }
