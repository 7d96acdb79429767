"""What every figure shares: the 95% CI drawn, one colour per name, atomic PDF/PNG saving.

The stage modules (``optbias.continual.figures``, ``optbias.probes.figures``,
``optbias.powerprop.figures``) draw; this module holds only what they must agree on, so that an
optimizer has the same colour and a CI the same meaning in every figure.
"""

from __future__ import annotations

import io
from collections.abc import Sequence
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import seaborn as sns  # noqa: E402

from .fileio import atomic_write_bytes  # noqa: E402
from .stats import t_interval  # noqa: E402


def t_errorbar(values) -> tuple[float, float]:
    """(low, high): the Student-t 95% interval of the mean of ``values`` (one per seed,
    ``optbias.stats.t_interval``), as a seaborn ``errorbar`` callable, so that every figure draws
    the interval that the summaries, the audit and the paper report. No bar (NaN, NaN) for fewer
    than two values or a non-finite one, as ``seed_stat`` gives no interval then (seaborn itself
    does not call this with fewer than two)."""
    x = np.asarray(values, dtype=np.float64)
    if x.size < 2 or not np.all(np.isfinite(x)):
        return float("nan"), float("nan")
    _, low, high = t_interval(x.tolist())
    return low, high


CI = t_errorbar  # seaborn errorbar: Student-t 95% CI of the mean over seeds (n_boot and seed are then unused)


def palette(optimizers: Sequence[str]) -> dict[str, tuple]:
    """One fixed colour per optimizer, in config order, shared by every figure."""
    return dict(zip(optimizers, sns.color_palette("colorblind", len(optimizers))))


def save(fig: plt.Figure, paths: Sequence[str | Path]) -> None:
    """Render each format in memory, then write it atomically: a crash leaves no partial figure."""
    for path in map(Path, paths):
        ext = path.suffix.lstrip(".")
        if ext not in ("pdf", "png"):
            raise ValueError(f"figure outputs must end in .pdf or .png, got {path}")
        buffer = io.BytesIO()
        # Fixed metadata keeps the files byte-identical across reruns.
        metadata = {"CreationDate": None} if ext == "pdf" else {"Software": None}
        fig.savefig(buffer, format=ext, dpi=150, bbox_inches="tight", metadata=metadata)
        atomic_write_bytes(path, buffer.getvalue())
    plt.close(fig)


def seed_note(df: pd.DataFrame, what: str = "mean and 95% CI") -> str:
    """``"<what> over N seeds"`` (or ``N-M seeds`` when optimizers differ); ``df`` has optimizer and seed columns."""
    n = df.groupby("optimizer")["seed"].nunique()
    seeds = f"{n.min()}" if n.min() == n.max() else f"{n.min()}-{n.max()}"
    return f"{what} over {seeds} seeds"
