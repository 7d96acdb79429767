"""Continual-learning metrics on the accuracy matrix R (pure functions, tested by hand).

R[i][j] is the test accuracy on task j after training on tasks 0..i (T x T, as in PAPER.md):

* average accuracy = mean_j R[T-1][j]
* forgetting of task j < T-1 = max_{i < T-1} R[i][j] - R[T-1][j]  (the best it ever was, minus now)
* backward transfer = mean_{j < T-1} (R[T-1][j] - R[j][j])          (negative means forgetting)
* learning accuracy = mean_i R[i][i]                                 (plasticity: each task just learned)

Forgetting only means something for a task that was learned, so every summary that reports
forgetting reports the learning accuracy next to it: an optimizer cannot look good by learning less.

**The learned rule**, declared before the runs that it decides: a run set (one optimizer or
ablation variant on one benchmark, over its seeds) LEARNED when its mean learning accuracy over
seeds is at least halfway from chance to perfect,

    mean_seeds(learning accuracy) >= chance + LEARNED_FRACTION * (1 - chance),  LEARNED_FRACTION = 1/2,

with chance = 1 / (classes per task) (``optbias.continual.benchmarks.BenchmarkSpec.chance_accuracy``):
0.75 on class-incremental pairs (chance 1/2), 0.55 on permuted MNIST (chance 1/10). A run set that
did not learn has a forgetting near 0 because it had nothing to forget; its forgetting is shown as
"did not learn", never as retention. The same rule flags learning-rate sweep candidates, on their
held-out learning accuracy (``validation_score``).
"""

from __future__ import annotations

from collections.abc import Sequence

import math

import numpy as np

LEARNED_FRACTION = 0.5
"""How far from chance to perfect accuracy a run set's mean learning accuracy must reach to count
as learned: 1/2, so the threshold is chance + (1 - chance) / 2 (0.75 on a pair of classes, 0.55 on
ten). Declared with the rule (module docstring) before the runs it decides; do not tune it on them."""


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


def learned_threshold(chance: float) -> float:
    """The learning accuracy a run set must reach to count as learned: chance + LEARNED_FRACTION * (1 - chance).

    ``chance``: the chance accuracy of the benchmark's tasks, a fraction in (0, 1] (0.5 -> 0.75,
    0.1 -> 0.55). Raises ``ValueError`` outside (0, 1].
    """
    chance = float(chance)
    if not 0.0 < chance <= 1.0:
        raise ValueError(f"chance accuracy must be in (0, 1], got {chance}")
    return chance + LEARNED_FRACTION * (1.0 - chance)


def learned(learning_accuracies: Sequence[float], chance: float) -> bool:
    """The learned rule: whether a run set learned, from its learning accuracies (one per seed).

    ``learning_accuracies``: mean_i R[i][i] of each seed (or a sweep candidate's held-out
    ``validation_score`` per seed, 0 for a diverged seed), fractions in [0, 1]; ``chance``: the
    chance accuracy of the benchmark's tasks (1 / classes per task). True when their mean is
    >= ``learned_threshold(chance)``, i.e. at least halfway from chance to perfect; the comparison
    is exact (0.75 on pairs is learned, 0.749 is not). Pure.

    Raises ``ValueError`` when there is no value, a value is not finite or outside [0, 1], or
    ``chance`` is outside (0, 1].
    """
    values = [float(v) for v in learning_accuracies]
    if not values:
        raise ValueError("learned: no learning accuracy to judge (no finished seed)")
    bad = [v for v in values if not (math.isfinite(v) and 0.0 <= v <= 1.0)]
    if bad:
        raise ValueError(f"learned: learning accuracies must be finite fractions in [0, 1], got {bad}")
    return math.fsum(values) / len(values) >= learned_threshold(chance)
