"""The two Powerprop figures: weight-magnitude histograms and accuracy under magnitude pruning.

Both read the per-method results of rule ``powerprop_method`` (histograms are precomputed
there, from the plain effective-weight state_dicts), never the checkpoints themselves.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from ..plotting import CI, palette, plt, save, sns


def magnitude_histograms(results: Sequence[dict], order: Sequence[str], paths: Sequence[str | Path], title: str) -> None:
    """One panel per method: the distribution of log10|w| of all Linear weights, summed over seeds,
    shown as a fraction of weights per bin on a log y-axis (zeros and underflow noted)."""
    by_name = {r["method"]: r for r in results}
    colours = palette(order)
    ncols = min(3, len(order))
    nrows = int(np.ceil(len(order) / ncols))
    fig, axes = plt.subplots(nrows, ncols, figsize=(4.2 * ncols, 2.9 * nrows), squeeze=False, sharex=True, sharey=True)
    for ax, name in zip(axes.flat, order):
        runs = [r for r in by_name[name]["runs"] if r["status"] == "ok"]
        if not runs:
            ax.set_title(f"{name} (diverged)")
            continue
        edges = np.asarray(runs[0]["histogram"]["edges_log10"])
        counts = np.sum([r["histogram"]["counts"] for r in runs], axis=0)
        under = sum(r["histogram"]["underflow"] for r in runs)
        total = counts.sum() + under + sum(r["histogram"]["overflow"] for r in runs)
        ax.stairs(counts / total, edges, fill=True, color=colours[name], alpha=0.8)
        ax.set_yscale("log")
        threshold = np.mean([np.log10(r["max_abs_weight"] * by_name[name]["sparsity_threshold"]) for r in runs])
        ax.axvline(threshold, color="k", linestyle="--", linewidth=0.8)
        sparse = np.mean([r["sparsity_fraction"] for r in runs])
        ax.set_title(f"{name}: {100 * sparse:.2f}% below 1e-3·max", fontsize=9)
        if under:
            ax.text(0.02, 0.95, f"{under / total:.1e} below 1e-8 or 0", transform=ax.transAxes, fontsize=7, va="top")
    for ax in axes.flat[len(order):]:
        ax.set_visible(False)
    for ax in axes[-1]:
        ax.set_xlabel("log10 |w|")
    for ax in axes[:, 0]:
        ax.set_ylabel("fraction of weights")
    n_seeds = {len([r for r in by_name[n]["runs"] if r["status"] == "ok"]) for n in order}
    fig.suptitle(f"{title}\n(all Linear weights, {'/'.join(map(str, sorted(n_seeds)))} seeds pooled; "
                 "dashed: 1e-3 x max|w|)", fontsize=10)
    fig.tight_layout()
    save(fig, paths)


def pruning_curves(results: Sequence[dict], order: Sequence[str], paths: Sequence[str | Path], title: str) -> None:
    """Test accuracy after global magnitude pruning (no retraining) against the pruned fraction,
    per method: mean and Student-t 95% CI over seeds. Levels are evenly spaced on the x-axis."""
    rows = [{"method": r["method"], "seed": run["seed"], "fraction": float(p), "accuracy": acc}
            for r in results for run in r["runs"] if run["status"] == "ok" for p, acc in run["pruned_accuracy"].items()]
    df = pd.DataFrame(rows)
    levels = sorted(df["fraction"].unique())
    df["level"] = df["fraction"].map({f: i for i, f in enumerate(levels)})
    fig, ax = plt.subplots(figsize=(7, 4.2))
    sns.lineplot(data=df, x="level", y="accuracy", hue="method", hue_order=list(order), palette=palette(order),
                 errorbar=CI, seed=0, n_boot=2000, marker="o", ax=ax)
    ax.set_xticks(range(len(levels)), [f"{100 * f:g}%" for f in levels])
    n = df.groupby("method")["seed"].nunique()
    ax.set(ylim=(0, 1.02), xlabel="weights pruned (global magnitude, no retraining)", ylabel="test accuracy",
           title=f"{title}\n(mean and 95% CI over {n.min() if n.min() == n.max() else f'{n.min()}-{n.max()}'} seeds)")
    ax.axhline(0.1, color="grey", linewidth=0.6, linestyle=":")
    ax.legend(title="method", bbox_to_anchor=(1.01, 1), loc="upper left", frameon=False)
    save(fig, paths)
