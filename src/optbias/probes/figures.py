"""Figures of the probes (seaborn; mean and 95% CI over seeds; PDF + PNG), drawn with ``optbias.plotting``.

* ``cosine_heatmaps``: the paper's Figure B, one 10 x 10 cross-class cosine heatmap per optimizer;
* ``effective_rank_curves``: effective rank of each hidden layer against tasks seen;
* ``probe_vs_head``: linear-probe vs head accuracy on old tasks after the last task;
* ``paper_figure``: class-incremental accuracy per pair (left) next to the heatmaps (right).

Each function takes the loaded probes.json files (and, for the paper figure, metrics.json files).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import seaborn as sns

from ..continual.figures import accuracy_table
from ..plotting import CI, palette, save, seed_note

CMAP = "magma"


def representation_table(runs: Sequence[dict]) -> pd.DataFrame:
    """One row per (run, checkpoint, hidden layer) with every scalar probe (no cosine matrix)."""
    rows = [{k: v for k, v in rec.items() if k != "cosine_matrix"} for run in runs for rec in run["representations"]]
    return pd.DataFrame(rows).assign(tasks_seen=lambda d: d["checkpoint"] + 1)


def final_cosine_means(runs: Sequence[dict], order: Sequence[str], layer: int) -> dict[str, np.ndarray]:
    """Mean over seeds of each optimizer's cross-class cosine matrix at the final checkpoint."""
    out = {}
    for name in order:
        mats = []
        for run in (r for r in runs if r["optimizer"] == name):
            last = len(run["tasks"]) - 1
            rec = next(x for x in run["representations"] if x["checkpoint"] == last and x["layer"] == layer)
            mats.append(np.array(rec["cosine_matrix"], dtype=float))  # None (absent class) -> nan
        if mats:
            out[name] = np.nanmean(np.stack(mats), axis=0)
    return out


def _draw_heatmaps(axes, means: dict[str, np.ndarray], order: Sequence[str], vmin: float, vmax: float) -> None:
    for k, (ax, name) in enumerate(zip(axes, order)):
        m = means[name]
        off = m[~np.eye(len(m), dtype=bool)]
        sns.heatmap(m, vmin=vmin, vmax=vmax, cmap=CMAP, square=True, cbar=False, ax=ax,
                    xticklabels=range(len(m)), yticklabels=range(len(m)) if k == 0 else False)
        ax.set_title(f"{name}\nmean off-diag {np.nanmean(off):.2f}", fontsize=9)
        ax.tick_params(labelsize=7, length=0)
        ax.set_xlabel("class")
    axes[0].set_ylabel("class")


def _heatmap_scale(means: dict[str, np.ndarray]) -> tuple[float, float]:
    low = min(float(np.nanmin(m)) for m in means.values())
    return (min(0.0, low), 1.0)


def _last_layer(runs: Sequence[dict]) -> int:
    return max(runs[0]["hidden_layers"])


def cosine_heatmaps(runs: Sequence[dict], order: Sequence[str], paths: Sequence[str | Path], title: str) -> None:
    """Figure B: one heatmap per optimizer, final checkpoint, last hidden layer, shared colour scale."""
    layer = _last_layer(runs)
    means = final_cosine_means(runs, order, layer)
    order = [n for n in order if n in means]
    vmin, vmax = _heatmap_scale(means)
    fig, axes = plt.subplots(1, len(order), figsize=(2.6 * len(order) + 1, 3.1), squeeze=False,
                             constrained_layout=True)
    _draw_heatmaps(axes[0], means, order, vmin, vmax)
    fig.colorbar(plt.cm.ScalarMappable(norm=plt.Normalize(vmin, vmax), cmap=CMAP), ax=axes[0].tolist(), shrink=0.8,
                 label="cosine similarity of class means")
    df = representation_table(runs)
    fig.suptitle(f"{title} (hidden layer {layer}, final model, {seed_note(df, 'mean')})")
    save(fig, paths)


def effective_rank_curves(runs: Sequence[dict], order: Sequence[str], paths: Sequence[str | Path],
                          title: str) -> None:
    """Effective rank of each hidden layer against tasks seen; rows = benchmarks, columns = layer x centering."""
    df = representation_table(runs)
    long = df.melt(id_vars=["benchmark", "optimizer", "seed", "tasks_seen", "layer"],
                   value_vars=["erank", "erank_centered"], var_name="variant", value_name="effective rank")
    benchmarks = sorted(long["benchmark"].unique())
    panels = [(layer, v) for v in ("erank", "erank_centered") for layer in sorted(long["layer"].unique())]
    fig, axes = plt.subplots(len(benchmarks), len(panels), figsize=(3.6 * len(panels) + 1.5, 3.2 * len(benchmarks)),
                             squeeze=False, constrained_layout=True)
    for r, b in enumerate(benchmarks):
        for c, (layer, variant) in enumerate(panels):
            ax = axes[r][c]
            sub = long[(long["benchmark"] == b) & (long["layer"] == layer) & (long["variant"] == variant)]
            sns.lineplot(data=sub, x="tasks_seen", y="effective rank", hue="optimizer", hue_order=order,
                         palette=palette(order), errorbar=CI, seed=0, n_boot=2000, marker="o", ax=ax,
                         legend=(r == 0 and c == len(panels) - 1))
            ax.set_xticks(sorted(sub["tasks_seen"].unique()))
            kind = "centered" if variant == "erank_centered" else "uncentered"
            ax.set_title(f"{b}\nhidden layer {layer}, {kind}", fontsize=9)
            ax.set(xlabel="tasks seen",
                   ylabel="effective rank (probe set)" if c == 0 else "")
    if axes[0][-1].get_legend() is not None:
        sns.move_legend(axes[0][-1], "upper left", bbox_to_anchor=(1.01, 1), frameon=False, title="optimizer")
    fig.suptitle(f"{title} ({seed_note(df)})")
    save(fig, paths)


def forgetting_table(runs: Sequence[dict]) -> pd.DataFrame:
    """Per run and probed layer: mean over old tasks of probe and head accuracy after the last task."""
    rows = []
    for run in runs:
        R = run["R"]
        last = len(R) - 1
        for layer, P in run["P"].items():
            for measure, values in (("linear probe on frozen features", [P[last][j] for j in range(last)]),
                                    ("network's own head", [R[last][j] for j in range(last)])):
                rows.append({"benchmark": run["benchmark"], "optimizer": run["optimizer"], "seed": run["seed"],
                             "layer": int(layer), "measure": measure, "accuracy": float(np.mean(values))})
    return pd.DataFrame(rows)


def probe_vs_head(runs: Sequence[dict], order: Sequence[str], paths: Sequence[str | Path], title: str) -> None:
    """Representation forgetting: is the old tasks' information gone, or only the head's readout?"""
    df = forgetting_table(runs)
    df = df[df["layer"] == df["layer"].max()]
    benchmarks = sorted(df["benchmark"].unique())
    fig, axes = plt.subplots(1, len(benchmarks), figsize=(1.3 * len(order) * len(benchmarks) + 3, 4), squeeze=False,
                             sharey=True, constrained_layout=True)
    measures = ["linear probe on frozen features", "network's own head"]
    for ax, b in zip(axes[0], benchmarks):
        sub = df[df["benchmark"] == b]
        sns.barplot(data=sub, x="optimizer", y="accuracy", order=order, hue="measure", hue_order=measures,
                    palette=["0.35", "0.8"], errorbar=CI, seed=0, n_boot=2000, capsize=0.1, ax=ax,
                    err_kws={"linewidth": 1}, legend=ax is axes[0][-1])
        sns.stripplot(data=sub, x="optimizer", y="accuracy", order=order, hue="measure", hue_order=measures,
                      dodge=True, palette=["k", "k"], size=3, alpha=0.6, legend=False, ax=ax)
        ax.set(ylim=(0, 1.02), title=b, xlabel="",
               ylabel="accuracy on old tasks after the last task\n(mean over tasks)")
        ax.tick_params(axis="x", rotation=30)
    sns.move_legend(axes[0][-1], "upper left", bbox_to_anchor=(1.01, 1), frameon=False, title="")
    fig.suptitle(f"{title} (hidden layer {int(df['layer'].max())}; {seed_note(df)})")
    save(fig, paths)


def paper_figure(runs: Sequence[dict], metrics: Sequence[dict], order: Sequence[str], paths: Sequence[str | Path],
                 title: str) -> None:
    """The paper's class-incremental figure: final accuracy per pair (left), cosine heatmaps (right)."""
    layer = _last_layer(runs)
    means = final_cosine_means(runs, order, layer)
    vmin, vmax = _heatmap_scale(means)
    acc = accuracy_table(metrics)
    last = acc[acc["after_task"] == acc["after_task"].max()]
    n = len(order)
    fig = plt.figure(figsize=(7 + 2.3 * n, 3.8), constrained_layout=True)
    grid = fig.add_gridspec(1, n + 2, width_ratios=[3.2] + [1] * n + [0.08])
    ax = fig.add_subplot(grid[0, 0])
    sns.barplot(data=last, x="task_name", y="accuracy", hue="optimizer", hue_order=order, palette=palette(order),
                errorbar=CI, seed=0, n_boot=2000, ax=ax, capsize=0.1, err_kws={"linewidth": 1})
    sns.stripplot(data=last, x="task_name", y="accuracy", hue="optimizer", hue_order=order, dodge=True,
                  palette=palette(order), ax=ax, size=2.5, legend=False, alpha=0.6, edgecolor="k", linewidth=0.5)
    ax.set(ylim=(0, 1.02), xlabel="digit pair, in training order", ylabel="test accuracy of the final model",
           title=f"accuracy per pair ({seed_note(last)})")
    ax.legend(title="optimizer", loc="upper left", frameon=False, fontsize=8)
    heat_axes = [fig.add_subplot(grid[0, k + 1]) for k in range(n)]
    _draw_heatmaps(heat_axes, means, order, vmin, vmax)
    fig.colorbar(plt.cm.ScalarMappable(norm=plt.Normalize(vmin, vmax), cmap=CMAP), cax=fig.add_subplot(grid[0, -1]),
                 label=f"cosine of class means (hidden layer {layer})")
    fig.suptitle(title)
    save(fig, paths)
