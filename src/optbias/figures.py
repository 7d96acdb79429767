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


def final_accuracy_per_task(runs: Sequence[dict], order: Sequence[str], paths: Sequence[str | Path],
                            title: str) -> None:
    """The paper's left panel: accuracy of the final model on each task, per optimizer."""
    df = accuracy_table(runs)
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


def first_task_accuracy(runs: Sequence[dict], order: Sequence[str], paths: Sequence[str | Path],
                        title: str) -> None:
    """Accuracy on task 1 after each task: how fast each optimizer forgets the first task."""
    df = accuracy_table(runs)
    first = df[df["task"] == 0].assign(tasks_trained=lambda d: d["after_task"] + 1)
    fig, ax = plt.subplots(figsize=(6.5, 4))
    sns.lineplot(data=first, x="tasks_trained", y="accuracy", hue="optimizer", hue_order=order,
                 palette=palette(order), errorbar=CI, seed=0, n_boot=2000, marker="o", ax=ax)
    ax.set(ylim=(0, 1.02), xlabel="tasks trained", ylabel="test accuracy on task 1",
           title=f"{title}\n({_seed_note(first)})")
    ax.set_xticks(sorted(first["tasks_trained"].unique()))
    ax.legend(title="optimizer", bbox_to_anchor=(1.01, 1), loc="upper left", frameon=False)
    save(fig, paths)


def accuracy_matrices(runs: Sequence[dict], order: Sequence[str], paths: Sequence[str | Path],
                      title: str) -> None:
    """One heatmap of R (mean over seeds) per optimizer, on a shared 0-1 colour scale."""
    df = accuracy_table(runs)
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


def lr_sweep(inputs: Sequence[dict], order: Sequence[str] | None, paths: Sequence[str | Path], title: str) -> None:
    """Validation score against learning rate, one line per swept optimizer, one panel per benchmark."""
    (selected,) = inputs
    rows = [{"optimizer": name, "lr": c["lr"], "benchmark": b, "score": score}
            for name, entry in selected.items() for c in entry["candidates"] for b, score in c["per_benchmark"].items()]
    df = pd.DataFrame(rows)
    names = list(order or selected)
    benchmarks = sorted(df["benchmark"].unique())
    fig, axes = plt.subplots(1, len(benchmarks), figsize=(5.5 * len(benchmarks) + 1.5, 4), squeeze=False, sharey=True)
    for ax, b in zip(axes[0], benchmarks):
        sns.lineplot(data=df[df["benchmark"] == b], x="lr", y="score", hue="optimizer", hue_order=names,
                     palette=palette(names), marker="o", ax=ax, legend=ax is axes[0][-1])
        for name in names:
            ax.scatter([selected[name]["selected_lr"]], [df[(df.benchmark == b) & (df.optimizer == name) &
                        (df.lr == selected[name]["selected_lr"])]["score"].iloc[0]],
                       s=160, facecolors="none", edgecolors=palette(names)[name], linewidths=2, zorder=5)
        ax.set(xscale="log", ylim=(0, 1.02), xlabel="learning rate", title=b,
               ylabel="held-out accuracy on the task being learned\n(mean over tasks)")
    axes[0][-1].legend(title="optimizer (circle: chosen)", bbox_to_anchor=(1.01, 1), loc="upper left", frameon=False)
    fig.suptitle(f"{title}; chosen = best mean over benchmarks")
    save(fig, paths)


def shampoo_ablation(inputs: Sequence[dict], order: Sequence[str] | None, paths: Sequence[str | Path],
                     title: str) -> None:
    """Average forgetting and average accuracy per Shampoo variant (mean and 95% CI over seeds)."""
    (by_benchmark,) = inputs
    rows = []
    for b, summary in by_benchmark.items():
        for name in summary["order"]:
            entry = summary["optimizers"][name]
            for metric in ("average_forgetting", "average_accuracy"):
                for seed, value in zip(entry["seeds"], entry.get(metric, {}).get("per_seed", [])):
                    rows.append({"benchmark": b, "variant": name, "seed": seed, "metric": metric.replace("_", " "),
                                 "value": value})
    df = pd.DataFrame(rows)
    names = list(next(iter(by_benchmark.values()))["order"])
    grid = sns.catplot(data=df, kind="bar", x="value", y="variant", order=names, row="metric", col="benchmark",
                       errorbar=CI, seed=0, n_boot=2000, capsize=0.2, height=3.2, aspect=1.4, sharex=False,
                       palette=palette(names), hue="variant", hue_order=names, legend=False)
    grid.map_dataframe(sns.stripplot, x="value", y="variant", order=names, color="k", size=3, alpha=0.6)
    grid.set_titles("{col_name}: {row_name}")
    grid.set(xlim=(0, 1), xlabel="")
    for (metric, b), ax in grid.axes_dict.items():  # a diverged seed is shown, not silently dropped
        for y, name in enumerate(names):
            entry = by_benchmark[b]["optimizers"].get(name, {})
            if entry.get("diverged_seeds"):
                n = len(entry["diverged_seeds"]) + len(entry["seeds"])
                ax.text(0.99, y, f"{len(entry['diverged_seeds'])}/{n} seeds diverged", ha="right", va="center",
                        fontsize=8, color="firebrick")
    grid.figure.suptitle(f"{title} ({_seed_note(df.rename(columns={'variant': 'optimizer'}))})", y=1.02)
    save(grid.figure, paths)
