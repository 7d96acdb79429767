"""Figures of the continual-learning runs (seaborn; mean and 95% CI over seeds; PDF + PNG).

Every function takes the loaded inputs (runs' metrics.json, or a summary), the legend order, the
output paths (``.pdf`` and/or ``.png``; the suffix picks the format, each written atomically by
``optbias.plotting.save``) and a title. Each is named like the rule and the script that call it.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import pandas as pd

from ..plotting import CI, palette, plt, save, seed_note, sns
from .types import RunMetrics

def accuracy_table(runs: Sequence[RunMetrics]) -> pd.DataFrame:
    """One row per (run, i, j): accuracy on task j after training on task i."""
    rows = []
    for run in runs:
        for i, row in enumerate(run["R"]):
            for j, acc in enumerate(row):
                rows.append({"benchmark": run["benchmark"], "optimizer": run["optimizer"], "seed": run["seed"],
                             "after_task": i, "task": j, "task_name": run["tasks"][j], "accuracy": acc})
    return pd.DataFrame(rows)


def final_accuracy(runs: Sequence[RunMetrics], order: Sequence[str], paths: Sequence[str | Path],
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
           title=f"{title}\n({seed_note(last)})")
    ax.legend(title="optimizer", bbox_to_anchor=(1.01, 1), loc="upper left", frameon=False)
    save(fig, paths)


def first_task_accuracy(runs: Sequence[RunMetrics], order: Sequence[str], paths: Sequence[str | Path],
                        title: str) -> None:
    """Accuracy on task 1 after each task: how fast each optimizer forgets the first task."""
    df = accuracy_table(runs)
    first = df[df["task"] == 0].assign(tasks_trained=lambda d: d["after_task"] + 1)
    fig, ax = plt.subplots(figsize=(6.5, 4))
    sns.lineplot(data=first, x="tasks_trained", y="accuracy", hue="optimizer", hue_order=order,
                 palette=palette(order), errorbar=CI, seed=0, n_boot=2000, marker="o", ax=ax)
    ax.set(ylim=(0, 1.02), xlabel="tasks trained", ylabel="test accuracy on task 1",
           title=f"{title}\n({seed_note(first)})")
    ax.set_xticks(sorted(first["tasks_trained"].unique()))
    ax.legend(title="optimizer", bbox_to_anchor=(1.01, 1), loc="upper left", frameon=False)
    save(fig, paths)


def accuracy_matrices(runs: Sequence[RunMetrics], order: Sequence[str], paths: Sequence[str | Path],
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
    fig.suptitle(f"{title} ({seed_note(df, 'mean')})")
    save(fig, paths)


def lr_sweep(selected: dict, paths: Sequence[str | Path], title: str) -> None:
    """Validation score against learning rate, one line per swept optimizer (mean over validation
    seeds), one dot per seed (a diverged seed at 0), one panel per benchmark; a circle marks the choice.

    ``selected``: data/sweep/selected.json (``optbias.continual.sweep.select``); legend in its order.
    """
    rows = [{"optimizer": name, "lr": c["lr"], "benchmark": b, "score": score}
            for name, entry in selected.items() for c in entry["candidates"] for b, score in c["per_benchmark"].items()]
    seeds = [{"optimizer": name, "lr": c["lr"], "benchmark": b, "score": score}
             for name, entry in selected.items() for c in entry["candidates"]
             for b, per_seed in c.get("per_seed", {}).items() for score in per_seed.values()]
    df, dots = pd.DataFrame(rows), pd.DataFrame(seeds)
    names = list(selected)
    benchmarks = sorted(df["benchmark"].unique())
    fig, axes = plt.subplots(1, len(benchmarks), figsize=(5.5 * len(benchmarks) + 1.5, 4), squeeze=False, sharey=True)
    for ax, b in zip(axes[0], benchmarks):
        sns.lineplot(data=df[df["benchmark"] == b], x="lr", y="score", hue="optimizer", hue_order=names,
                     palette=palette(names), marker="o", ax=ax, legend=ax is axes[0][-1])
        if len(dots):
            sns.scatterplot(data=dots[dots["benchmark"] == b], x="lr", y="score", hue="optimizer", hue_order=names,
                            palette=palette(names), s=12, alpha=0.6, ax=ax, legend=False)
        for name in names:
            ax.scatter([selected[name]["selected_lr"]], [df[(df.benchmark == b) & (df.optimizer == name) &
                        (df.lr == selected[name]["selected_lr"])]["score"].iloc[0]],
                       s=160, facecolors="none", edgecolors=palette(names)[name], linewidths=2, zorder=5)
        ax.set(xscale="log", ylim=(0, 1.02), xlabel="learning rate", title=b,
               ylabel="held-out accuracy on the task being learned\n(mean over tasks; dots: validation seeds)")
    axes[0][-1].legend(title="optimizer (circle: chosen)", bbox_to_anchor=(1.01, 1), loc="upper left", frameon=False)
    fig.suptitle(f"{title}; chosen = best mean over seeds and benchmarks, no diverged seed")
    save(fig, paths)


def shampoo_ablation(by_benchmark: dict, paths: Sequence[str | Path], title: str) -> None:
    """Average forgetting, average accuracy and learning accuracy (on each task just learned) per Shampoo
    variant (mean and 95% CI over seeds): a variant cannot look good by learning less.

    ``by_benchmark``: data/summary/shampoo_ablation.json (``summarize_by_benchmark``), legend in its order.
    """
    rows = []
    for b, summary in by_benchmark.items():
        for name in summary["order"]:
            entry = summary["optimizers"][name]
            for metric in ("average_forgetting", "average_accuracy", "learning_accuracy"):
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
    grid.figure.suptitle(f"{title} ({seed_note(df.rename(columns={'variant': 'optimizer'}))})", y=1.02)
    save(grid.figure, paths)


BUDGET_METRICS = {"average_forgetting": "average forgetting",
                  "mean_accuracy_old_tasks": "final accuracy on old tasks",
                  "learning_accuracy": "learning accuracy\n(each task just learned)"}


def budget_sensitivity(summary: dict, paths: Sequence[str | Path], title: str) -> None:
    """Forgetting, accuracy on old tasks and learning accuracy against epochs per task: one row per
    benchmark, one column per metric, one line per optimizer (mean and 95% CI over seeds); a dashed
    line at the budget the budget rule chose.

    ``summary``: data/summary/budget_sensitivity.json (``optbias.continual.budget.summarize_budget``).
    """
    rows = []
    for b, entry in summary.items():
        for e, at in entry["epochs"].items():
            for name, opt in at["optimizers"].items():
                for metric in BUDGET_METRICS:
                    for seed, value in zip(opt["seeds"], opt.get(metric, {}).get("per_seed", [])):
                        rows.append({"benchmark": b, "epochs": int(e), "optimizer": name, "seed": seed,
                                     "metric": metric, "value": value})
    df = pd.DataFrame(rows)
    benchmarks = list(summary)
    order = list(next(iter(summary.values()))["order"]) if summary else []
    fig, axes = plt.subplots(len(benchmarks), len(BUDGET_METRICS), figsize=(4.2 * len(BUDGET_METRICS) + 1.8,
                                                                            3.4 * len(benchmarks)), squeeze=False)
    for r, b in enumerate(benchmarks):
        for c, (metric, label) in enumerate(BUDGET_METRICS.items()):
            ax = axes[r][c]
            part = df[(df.benchmark == b) & (df.metric == metric)]
            sns.lineplot(data=part, x="epochs", y="value", hue="optimizer", hue_order=order, palette=palette(order),
                         errorbar=CI, seed=0, n_boot=2000, marker="o", ax=ax, legend=(r == 0 and c == 2))
            chosen = summary[b].get("selected_epochs")
            if chosen is not None:
                ax.axvline(chosen, color="0.4", linestyle="--", linewidth=1)
            ax.set(xscale="log", ylim=(0, 1.02), xlabel="epochs per task (log scale)", ylabel=label,
                   title=f"{b}: {label.splitlines()[0]}")
            ax.set_xticks(summary[b]["grid"], [str(e) for e in summary[b]["grid"]])
            ax.minorticks_off()
    if benchmarks:
        axes[0][-1].legend(title="optimizer", bbox_to_anchor=(1.01, 1), loc="upper left", frameon=False)
    fig.suptitle(f"{title} ({seed_note(df)}; dashed: the budget the rule chose)")
    fig.tight_layout()
    save(fig, paths)
