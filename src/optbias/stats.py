"""Seed-level statistics: the mean and a percentile-bootstrap 95% CI (deterministic: seeded).

``seed_stat`` is the one shape every summary uses for a statistic over seeds:
``{"mean", "ci95": [low, high], "per_seed"}`` (plus ``"seeds"`` when given).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np


def bootstrap_ci(values: Sequence[float], level: float = 0.95, n_boot: int = 10_000,
                 seed: int = 0) -> tuple[float, float, float]:
    """Return (mean, low, high) of the mean over ``values`` (one value per seed).

    With a single value the interval collapses to that value: no spread can be estimated.
    """
    x = np.asarray(values, dtype=np.float64)
    if x.size == 0:
        raise ValueError("bootstrap_ci needs at least one value")
    if x.size == 1:
        return float(x[0]), float(x[0]), float(x[0])
    rng = np.random.default_rng(seed)
    means = x[rng.integers(0, x.size, size=(n_boot, x.size))].mean(axis=1)
    alpha = (1.0 - level) / 2.0
    low, high = np.quantile(means, [alpha, 1.0 - alpha])
    return float(x.mean()), float(low), float(high)


def bootstrap_diff_ci(a: Sequence[float], b: Sequence[float], level: float = 0.95, n_boot: int = 10_000,
                      seed: int = 0) -> tuple[float, float, float]:
    """(mean(a) - mean(b), low, high) with a and b resampled independently (unpaired seeds).

    For runs paired by seed, pass the per-seed differences to ``bootstrap_ci`` instead: tighter.
    """
    x, y = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    if x.size == 0 or y.size == 0:
        raise ValueError("bootstrap_diff_ci needs at least one value on each side")
    rng = np.random.default_rng(seed)
    means_x = x[rng.integers(0, x.size, size=(n_boot, x.size))].mean(axis=1)
    means_y = y[rng.integers(0, y.size, size=(n_boot, y.size))].mean(axis=1)
    alpha = (1.0 - level) / 2.0
    low, high = np.quantile(means_x - means_y, [alpha, 1.0 - alpha])
    return float(x.mean() - y.mean()), float(low), float(high)


def seed_stat(values: Sequence[float], seeds: Sequence[int] | None = None) -> dict:
    """``{"mean", "ci95": [low, high], "per_seed"[, "seeds"]}`` of one value per seed (``bootstrap_ci``).

    Every summary writes its statistics in this shape, so the claims audit and the paper read them
    one way; the per-seed values travel with the mean so that two optimizers can be paired by seed.
    Raises ``ValueError`` on an empty ``values``.
    """
    mean, low, high = bootstrap_ci(values)
    out = {"mean": mean, "ci95": [low, high], "per_seed": list(values)}
    if seeds is not None:
        out["seeds"] = list(seeds)
    return out
