"""Figures from the runs' metrics.json files (seaborn; mean and 95% CI over seeds; PDF + PNG).

Every plotting function takes a tidy DataFrame from ``accuracy_table`` and the output paths
(``.pdf`` and/or ``.png``; the suffix picks the format), each written atomically.
"""

from __future__ import annotations

import io
from collections.abc import Sequence
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import pandas as pd  # noqa: E402
import seaborn as sns  # noqa: E402

from .fileio import atomic_write_bytes  # noqa: E402

CI = ("ci", 95)


def accuracy_table(runs: Sequence[dict]) -> pd.DataFrame:
    """One row per (run, i, j): accuracy on task j after training on task i."""
    rows = []
    for run in runs:
        for i, row in enumerate(run["R"]):
            for j, acc in enumerate(row):
                rows.append({"benchmark": run["benchmark"], "optimizer": run["optimizer"], "seed": run["seed"],
                             "after_task": i, "task": j, "task_name": run["tasks"][j], "accuracy": acc})
    return pd.DataFrame(rows)


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


def _seed_note(df: pd.DataFrame, what: str = "mean and 95% CI") -> str:
    n = df.groupby("optimizer")["seed"].nunique()
    seeds = f"{n.min()}" if n.min() == n.max() else f"{n.min()}-{n.max()}"
    return f"{what} over {seeds} seeds"


def final_accuracy_per_task(df: pd.DataFrame, order: Sequence[str], paths: Sequence[str | Path], title: str) -> None:
    """The paper's left panel: accuracy of the final model on each task, per optimizer."""
    last = df[df["after_task"] == df["after_task"].max()]
    fig, ax = plt.subplots(figsize=(max(6.0, 1.3 * last["task"].nunique() + 2), 4))
    sns.barplot(data=last, x="task_name", y="accuracy", hue="optimizer", hue_order=order, palette=palette(order),
                errorbar=CI, seed=0, n_boot=2000, ax=ax, capsize=0.1, err_kws={"linewidth": 1})
    sns.stripplot(data=last, x="task_name", y="accuracy", hue="optimizer", hue_order=order, dodge=True,
                  palette=palette(order), ax=ax, size=3, color="k", legend=False, alpha=0.6, edgecolor="k",
                  linewidth=0.5)
    ax.set(ylim=(0, 1.02), xlabel="task, in training order", ylabel="test accuracy of the final model",
           title=f"{title}\n({_seed_note(last)})")
    ax.legend(title="optimizer", bbox_to_anchor=(1.01, 1), loc="upper left", frameon=False)
    save(fig, paths)


def first_task_accuracy(df: pd.DataFrame, order: Sequence[str], paths: Sequence[str | Path], title: str) -> None:
    """Accuracy on task 1 after each task: how fast each optimizer forgets the first task."""
    first = df[df["task"] == 0].assign(tasks_trained=lambda d: d["after_task"] + 1)
    fig, ax = plt.subplots(figsize=(6.5, 4))
    sns.lineplot(data=first, x="tasks_trained", y="accuracy", hue="optimizer", hue_order=order,
                 palette=palette(order), errorbar=CI, seed=0, n_boot=2000, marker="o", ax=ax)
    ax.set(ylim=(0, 1.02), xlabel="tasks trained", ylabel="test accuracy on task 1",
           title=f"{title}\n({_seed_note(first)})")
    ax.set_xticks(sorted(first["tasks_trained"].unique()))
    ax.legend(title="optimizer", bbox_to_anchor=(1.01, 1), loc="upper left", frameon=False)
    save(fig, paths)


def accuracy_matrices(df: pd.DataFrame, order: Sequence[str], paths: Sequence[str | Path], title: str) -> None:
    """One heatmap of R (mean over seeds) per optimizer, on a shared 0-1 colour scale."""
    n_tasks = df["task"].nunique()
    fig, axes = plt.subplots(1, len(order), figsize=(2.9 * len(order) + 1, 3.2), squeeze=False,
                             constrained_layout=True)
    for ax, name in zip(axes[0], order):
        mean = (df[df["optimizer"] == name].groupby(["after_task", "task"])["accuracy"].mean()
                .unstack("task").reindex(index=range(n_tasks), columns=range(n_tasks)))
        sns.heatmap(mean, vmin=0, vmax=1, cmap="viridis", square=True, cbar=False, ax=ax,
                    annot=n_tasks <= 5, fmt=".2f", annot_kws={"size": 7})
        ax.set(title=name, xlabel="evaluated on task j", ylabel="after training task i" if ax is axes[0][0] else "")
    fig.colorbar(plt.cm.ScalarMappable(norm=plt.Normalize(0, 1), cmap="viridis"), ax=axes[0].tolist(),
                 shrink=0.8, label="test accuracy R[i][j]")
    fig.suptitle(f"{title} ({_seed_note(df, 'mean')})")
    save(fig, paths)
