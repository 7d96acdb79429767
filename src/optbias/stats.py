"""Seed-level statistics: the mean over seeds and its Student-t confidence interval.

Every experiment here runs 2-5 seeds, so an interval must be honest at small n. A percentile
bootstrap of the mean is not: at n = 3 it is [min, max] of the seeds, and on normal data its
nominal 95% interval covers the mean about 76% of the time (83% at n = 5). The Student-t interval
has exact coverage on normal data at every n >= 2, so that is what this module computes:

* ``t_interval``: the mean of one value per seed, ``mean ± t_{1-α/2, n-1} · s / √n`` (Student 1908;
  ``s`` is the sample standard deviation, ``ddof = 1``). For runs paired by seed (same
  initialization, same batches), pass the per-seed differences (``paired_interval``).
* ``welch_interval``: a difference of two means from unpaired samples (unequal variances), with
  the Welch–Satterthwaite degrees of freedom (Welch 1947; Satterthwaite 1946).
* ``bonferroni_level``: the per-case level that holds the chance of any false alarm among ``k``
  cases at ``1 - level`` (Bonferroni; Holm 1979 shares its first step).
* ``seed_stat``: the one shape every summary writes for a statistic over seeds,
  ``{"mean", "ci95": [low, high] | None, "per_seed"[, "seeds"]}``.

Intervals are in the units of the values (accuracies and forgetting in [0, 1], ranks in
dimensions, ...). Every function is deterministic: nothing is resampled.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
from scipy import stats as _scipy_stats


def _check_level(level: float) -> None:
    if not (isinstance(level, (int, float)) and 0.0 < level < 1.0):
        raise ValueError(f"level must be a number strictly between 0 and 1 (e.g. 0.95), got {level!r}")


def _as_sample(values: Sequence[float], what: str, minimum: int = 2) -> np.ndarray:
    x = np.asarray(values, dtype=np.float64)
    if x.ndim != 1:
        raise ValueError(f"{what}: expected one number per seed (a flat sequence), got shape {x.shape}")
    if x.size < minimum:
        raise ValueError(f"{what} needs at least {minimum} values (one per seed) to estimate a spread, got {x.size}")
    if not np.all(np.isfinite(x)):
        raise ValueError(f"{what}: the values must be finite, got {x.tolist()}")
    return x


def t_quantile(level: float, df: float) -> float:
    """``t_{(1 + level)/2, df}``: the two-sided critical value of Student's t with ``df`` degrees of
    freedom (e.g. 4.302652729911275 for level 0.95, df 2). Raises ``ValueError`` on a level outside
    (0, 1) or ``df <= 0``."""
    _check_level(level)
    if not df > 0:
        raise ValueError(f"degrees of freedom must be positive, got {df!r}")
    return float(_scipy_stats.t.ppf(0.5 + level / 2.0, df))


def t_interval(values: Sequence[float], level: float = 0.95) -> tuple[float, float, float]:
    """``(mean, low, high)``: the Student-t ``level`` interval of the mean of ``values``.

    ``values``: one number per seed (n >= 2), in any unit; the interval is in the same unit. The
    interval is ``mean ± t_{1-α/2, n-1} · s / √n`` with ``α = 1 - level`` and ``s`` the sample
    standard deviation (``ddof = 1``); its coverage is exactly ``level`` when the values are
    independent draws from a normal distribution. Values that are all equal give ``[mean, mean]``.
    Raises ``ValueError`` with fewer than two values (one seed has no spread to estimate), a
    non-finite value, or a level outside (0, 1).
    """
    _check_level(level)
    x = _as_sample(values, "t_interval")
    mean = float(x.mean())
    half = t_quantile(level, x.size - 1) * float(x.std(ddof=1)) / math.sqrt(x.size)
    return mean, mean - half, mean + half


def paired_interval(a: Sequence[float], b: Sequence[float], level: float = 0.95) -> tuple[float, float, float]:
    """``(mean(a - b), low, high)``: ``t_interval`` of the per-seed differences ``a[i] - b[i]``.

    For runs paired by seed (``a[i]`` and ``b[i]`` share a seed): the seed's shared variation
    cancels, so this is tighter than ``welch_interval`` on the same numbers. Raises ``ValueError``
    when the lengths differ, and as ``t_interval`` does.
    """
    x, y = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    if x.shape != y.shape:
        raise ValueError(f"paired_interval needs one value of each side per seed, got {x.size} and {y.size}")
    return t_interval((x - y).tolist(), level)


def welch_interval(a: Sequence[float], b: Sequence[float], level: float = 0.95) -> tuple[float, float, float]:
    """``(mean(a) - mean(b), low, high)`` for two unpaired samples (Welch 1947).

    ``a`` and ``b``: one number per seed each (n_a, n_b >= 2; they may differ). With
    ``v = s_a²/n_a + s_b²/n_b``, the interval is ``d ± t_{1-α/2, ν} · √v`` where ``ν`` is the
    Welch–Satterthwaite degrees of freedom ``v² / ((s_a²/n_a)²/(n_a-1) + (s_b²/n_b)²/(n_b-1))``.
    Two constant samples give ``[d, d]``. Use it only when the runs cannot be paired by seed (some
    are missing); for paired runs ``paired_interval`` is tighter. Raises ``ValueError`` when a side
    has fewer than two values, on a non-finite value, or a level outside (0, 1).
    """
    _check_level(level)
    x, y = _as_sample(a, "welch_interval (a)"), _as_sample(b, "welch_interval (b)")
    diff = float(x.mean() - y.mean())
    va, vb = float(x.var(ddof=1)) / x.size, float(y.var(ddof=1)) / y.size
    v = va + vb
    if v == 0.0:
        return diff, diff, diff
    df = v * v / (va * va / (x.size - 1) + vb * vb / (y.size - 1))
    half = t_quantile(level, df) * math.sqrt(v)
    return diff, diff - half, diff + half


def bonferroni_level(level: float, k: int) -> float:
    """The per-case confidence level ``1 - (1 - level) / k`` for a family of ``k`` cases.

    If each of ``k`` intervals has this level, the chance that any of them misses its true value is
    at most ``1 - level`` (Bonferroni's inequality; no independence needed). The claims audit uses
    it to declare a claim NOT SUPPORTED: with k cases, a single case whose adjusted interval lies
    on the wrong side is a false alarm with probability at most 0.05 under the claim. ``k = 1``
    returns ``level``. Raises ``ValueError`` on ``k < 1`` or a level outside (0, 1).
    """
    _check_level(level)
    if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or k < 1:
        raise ValueError(f"k must be a positive integer (the number of cases), got {k!r}")
    return 1.0 - (1.0 - level) / int(k)


def seed_stat(values: Sequence[float], seeds: Sequence[int] | None = None) -> dict:
    """``{"mean", "ci95": [low, high] | None, "per_seed"[, "seeds"]}`` of one value per seed.

    ``ci95`` is the Student-t 95% interval of the mean (``t_interval``), in the values' unit; with a
    single value it is ``None``: one seed has no spread, so no interval can be estimated (readers
    show the mean alone with "n = 1"); it is ``None`` too when a value is not finite (NaN), and the
    mean is then NaN. ``per_seed`` keeps the values (and ``seeds`` the seed of
    each, in the same order, when given) so that two optimizers can be paired by seed. Every summary
    writes its statistics in this shape, so the claims audit and the paper read them one way.
    Raises ``ValueError`` on an empty ``values``, on ``seeds`` of another length, and as
    ``t_interval`` does.
    """
    values = list(values)
    if not values:
        raise ValueError("seed_stat needs at least one value (one per seed), got none")
    if seeds is not None and len(seeds) != len(values):
        raise ValueError(f"seed_stat: {len(values)} values but {len(seeds)} seeds")
    if len(values) == 1 or not np.all(np.isfinite(np.asarray(values, dtype=np.float64))):
        # One seed: no spread. A NaN (e.g. a cosine of a layer whose units all died): no interval,
        # and the mean is NaN, so that no reader mistakes it for a number.
        mean, ci = float(np.mean(np.asarray(values, dtype=np.float64))), None
    else:
        mean, low, high = t_interval(values)
        ci = [low, high]
    out = {"mean": mean, "ci95": ci, "per_seed": values}
    if seeds is not None:
        out["seeds"] = list(seeds)
    return out
