"""Continual-learning metrics on the accuracy matrix R (pure functions, tested by hand).

R[i][j] is the test accuracy on task j after training on tasks 0..i (T x T, as in PAPER.md):

* average accuracy = mean_j R[T-1][j]
* forgetting of task j < T-1 = max_{i < T-1} R[i][j] - R[T-1][j]  (the best it ever was, minus now)
* backward transfer = mean_{j < T-1} (R[T-1][j] - R[j][j])          (negative means forgetting)
* learning accuracy = mean_i R[i][i]                                 (plasticity: each task just learned)

Forgetting only means something for a task that was learned, so every summary that reports
forgetting reports the learning accuracy next to it: an optimizer cannot look good by learning less.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np


def _square(R: Sequence[Sequence[float]] | np.ndarray) -> np.ndarray:
    R = np.asarray(R, dtype=np.float64)
    if R.ndim != 2 or R.shape[0] != R.shape[1] or R.shape[0] == 0:
        raise ValueError(f"the accuracy matrix must be square and non-empty, got shape {R.shape}")
    return R


def average_accuracy(R) -> float:
    """Average accuracy, mean_j R[T-1][j] (Lopez-Paz & Ranzato 2017, ACC): the final model on every task.

    ``R``: (T, T) accuracies in [0, 1], R[i][j] on task j after training task i. Raises
    ``ValueError`` unless R is square and non-empty.
    """
    return float(_square(R)[-1].mean())


def forgetting_per_task(R) -> list[float]:
    """Forgetting of each task j < T-1: max_{i<T-1} R[i][j] - R[T-1][j] (Chaudhry et al. 2018, eq. 2).

    An empty list for a single task. Raises ``ValueError`` unless R is square and non-empty.
    """
    R = _square(R)
    T = R.shape[0]
    return [float(R[: T - 1, j].max() - R[T - 1, j]) for j in range(T - 1)]


def average_forgetting(R) -> float:
    """Mean of ``forgetting_per_task`` over the T-1 old tasks (0 for a single task)."""
    per_task = forgetting_per_task(R)
    return float(np.mean(per_task)) if per_task else 0.0


def backward_transfer(R) -> float:
    """Backward transfer, mean_{j<T-1} (R[T-1][j] - R[j][j]) (Lopez-Paz & Ranzato 2017, BWT); 0 for T = 1.

    Negative when learning later tasks lowered the accuracy on earlier ones.
    """
    R = _square(R)
    T = R.shape[0]
    if T == 1:
        return 0.0
    return float(np.mean([R[T - 1, j] - R[j, j] for j in range(T - 1)]))


def learning_accuracy(R) -> float:
    """Learning accuracy, mean_i R[i][i] (Riemer et al. 2019, LA): accuracy on each task right after
    learning it, averaged over the T tasks. Raises ``ValueError`` unless R is square and non-empty."""
    R = _square(R)
    return float(np.mean(np.diag(R)))


def summarize(R) -> dict[str, float | list[float]]:
    """Every scalar the figures and the audit read from one accuracy matrix."""
    R = _square(R)
    return {
        "average_accuracy": average_accuracy(R),
        "forgetting": forgetting_per_task(R),
        "average_forgetting": average_forgetting(R),
        "bwt": backward_transfer(R),
        "final_accuracy": R[-1].tolist(),
        "mean_accuracy_old_tasks": float(R[-1, :-1].mean()) if len(R) > 1 else None,
        "learning_accuracy": learning_accuracy(R),
    }
