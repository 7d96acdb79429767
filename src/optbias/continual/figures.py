"""Figures of the continual-learning runs (seaborn; mean and 95% CI over seeds; PDF + PNG).

Every function takes the loaded inputs (runs' metrics.json, or a summary), the legend order, the
output paths (``.pdf`` and/or ``.png``; the suffix picks the format, each written atomically by
``optbias.plotting.save``) and a title. Each is named like the rule and the script that call it.

A summary entry that did not learn (``learned: false``: mean learning accuracy below chance +
(1 - chance) / 2, the rule of ``optbias.continual.metrics``) has nothing to forget, so its
forgetting (and its retention-like accuracies) is drawn light grey and hatched, with a "did not
learn" label, never in its optimizer's colour as if it were retention.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path

import pandas as pd
from matplotlib.patches import Patch

from ..plotting import CI, palette, plt, save, seed_note, sns
from .metrics import learned_threshold
from .summary import did_not_learn_note
from .types import RunMetrics

# How an entry that did not learn is drawn: light grey, hatched, faded (bars and markers).
NOT_LEARNED = {"facecolor": "0.9", "edgecolor": "0.6", "hatch": "////", "alpha": 0.6}
NOT_LEARNED_TEXT = {"fontsize": 7, "color": "0.35", "style": "italic"}


def _threshold(entries) -> float | None:
    """The learned threshold of a benchmark, from the ``chance_accuracy`` of its summary entries (None if unknown)."""
    chances = [e.get("chance_accuracy") for e in entries if e.get("chance_accuracy") is not None]
    return learned_threshold(chances[0]) if chances else None

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
    Where it records the chance accuracy, the band below the learned threshold (chance + (1 - chance)
    / 2 of held-out learning accuracy) is shaded grey and hatched: a candidate in it did not learn.
    A chosen candidate that did not learn (``selected_learned: false``) is named in the legend.
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
        chances = [e.get("chance_accuracy", {}).get(b) for e in selected.values()]
        chances = [c for c in chances if c is not None]
        if chances:  # below this line a candidate did not learn (the learned rule)
            threshold = learned_threshold(chances[0])
            ax.axhspan(0, threshold, zorder=0, **{**NOT_LEARNED, "alpha": 0.35})
            ax.text(0.01, threshold, f"below {threshold:.2f}: did not learn", transform=ax.get_yaxis_transform(),
                    va="top", **NOT_LEARNED_TEXT)
        ax.set(xscale="log", ylim=(0, 1.02), xlabel="learning rate", title=b,
               ylabel="held-out accuracy on the task being learned\n(mean over tasks; dots: validation seeds)")
    handles, labels = axes[0][-1].get_legend_handles_labels()
    failed = {name for name, entry in selected.items() if entry.get("selected_learned") is False}
    labels = [f"{label} (chosen lr did not learn)" if label in failed else label for label in labels]
    axes[0][-1].legend(handles, labels, title="optimizer (circle: chosen)", bbox_to_anchor=(1.01, 1),
                       loc="upper left", frameon=False)
    fig.suptitle(f"{title}; chosen = best mean over seeds and benchmarks, no diverged seed")
    save(fig, paths)


ABLATION_RETENTION = ("average forgetting", "average accuracy")  # rows not to be read for a variant that did not learn


def shampoo_ablation(by_benchmark: dict, paths: Sequence[str | Path], title: str) -> None:
    """Average forgetting, average accuracy and learning accuracy (on each task just learned) per Shampoo
    variant (mean and 95% CI over seeds): a variant cannot look good by learning less.

    ``by_benchmark``: data/summary/shampoo_ablation.json (``summarize_by_benchmark``), legend in its order.
    A variant with ``learned: false`` on a benchmark (mean learning accuracy < chance + (1 - chance) / 2)
    has its forgetting and accuracy bars drawn light grey and hatched there, labelled "did not learn
    (learning accuracy ..., chance ...)"; the learning-accuracy panels mark that threshold with a
    dotted line. Entries without ``learned`` (older summaries) are drawn as before.
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
        entries = by_benchmark[b]["optimizers"]
        failed = {y for y, name in enumerate(names) if entries.get(name, {}).get("learned") is False}
        if metric in ABLATION_RETENTION and failed:
            _grey_rows(ax, failed)
        threshold = _threshold(entries.values())
        if metric == "learning accuracy" and threshold is not None:
            ax.axvline(threshold, color="0.3", linestyle=":", linewidth=1)
            ax.set_title(f"{ax.get_title()}\n(dotted: learned at \u2265 {threshold:.2f})",
                         fontsize=ax.title.get_fontsize())
        for y, name in enumerate(names):
            entry = entries.get(name, {})
            if entry.get("diverged_seeds"):
                n = len(entry["diverged_seeds"]) + len(entry["seeds"])
                ax.text(0.99, y, f"{len(entry['diverged_seeds'])}/{n} seeds diverged", ha="right", va="center",
                        fontsize=8, color="firebrick")
            if y in failed and metric in ABLATION_RETENTION:
                stat = entry.get(metric.replace(" ", "_")) or {"mean": 0.0}
                end = max([stat["mean"], *(stat.get("ci95") or [])])  # ci95 is None for a single seed
                _label_row(ax, y + (0.3 if entry.get("diverged_seeds") else 0),
                           did_not_learn_note(entry).replace(" (", "\n("), end)
    grid.figure.suptitle(f"{title} ({seed_note(df.rename(columns={'variant': 'optimizer'}))})", y=1.02)
    save(grid.figure, paths)


def _grey_rows(ax: plt.Axes, rows: set[int]) -> None:
    """Grey out what a horizontal bar plot drew at the category rows ``rows`` (y = 0, 1, ...): the
    bars light grey and hatched, their error bars and seed dots faded."""
    def row_of(y: float) -> int | None:
        if not math.isfinite(y):
            return None
        k = round(y)
        return k if abs(y - k) < 0.45 else None

    for patch in ax.patches:
        if row_of(patch.get_y() + patch.get_height() / 2) in rows:
            patch.set(**NOT_LEARNED)
    for line in ax.lines:  # an error bar and its caps: one line, NaN-separated, at one row
        ys = {row_of(y) for y in line.get_ydata() if math.isfinite(y)}
        if len(ys) == 1 and ys <= rows:
            line.set(color="0.6", alpha=0.6)
    for points in ax.collections:
        offsets = points.get_offsets()
        if len(offsets) and {row_of(y) for y in offsets[:, 1]} <= rows:
            points.set(alpha=0.2)


def _label_row(ax: plt.Axes, y: float, text: str, end: float) -> None:
    """Write ``text`` on horizontal-bar row ``y``, just right of the bar (which ends at ``end``, its CI
    included), or over the right end of the panel with a white background when the bar is long."""
    if end < 0.4:
        ax.text(max(end, 0.0) + 0.02, y, text, ha="left", va="center", **NOT_LEARNED_TEXT)
    else:
        ax.text(0.99, y, text, ha="right", va="center", bbox={"facecolor": "white", "alpha": 0.8, "linewidth": 0},
                **NOT_LEARNED_TEXT)


BUDGET_METRICS = {"average_forgetting": "average forgetting",
                  "mean_accuracy_old_tasks": "final accuracy on old tasks",
                  "learning_accuracy": "learning accuracy\n(each task just learned)"}


BUDGET_RETENTION = ("average_forgetting", "mean_accuracy_old_tasks")  # not drawn as retention when not learned


def _not_learned_points(ax: plt.Axes, part: pd.DataFrame, order: Sequence[str]) -> None:
    """The mean over seeds of each (optimizer, epochs) in ``part`` (rows of budget runs that did not
    learn) as a light-grey hatched square edged in the optimizer's colour, labelled "did not learn"."""
    colours = palette(order)
    top: dict[int, float] = {}  # one label per budget, above its highest grey marker
    for (name, epochs), cell in part.groupby(["optimizer", "epochs"]):
        mean = float(cell["value"].mean())
        ax.scatter([epochs], [mean], marker="s", s=70, linewidths=1.5, zorder=4, clip_on=False,
                   **{**NOT_LEARNED, "edgecolor": colours.get(name, "0.6")})
        top[int(epochs)] = max(mean, top.get(int(epochs), mean))
    for epochs, y in top.items():
        ax.annotate("did not learn", (epochs, y), xytext=(0, 7), textcoords="offset points", ha="center",
                    **NOT_LEARNED_TEXT)


def budget_sensitivity(summary: dict, paths: Sequence[str | Path], title: str) -> None:
    """Forgetting, accuracy on old tasks and learning accuracy against epochs per task: one row per
    benchmark, one column per metric, one line per optimizer (mean and 95% CI over seeds); a dashed
    line at the budget the budget rule chose.

    ``summary``: data/summary/budget_sensitivity.json (``optbias.continual.budget.summarize_budget``).
    At a budget where an optimizer did not learn (``learned: false``: mean learning accuracy < chance
    + (1 - chance) / 2), its forgetting and old-task accuracy are left out of its coloured line and
    drawn as a light-grey hatched marker (edged in its colour) labelled "did not learn"; the
    learning-accuracy panels mark that threshold with a dotted line.
    """
    rows = []
    for b, entry in summary.items():
        for e, at in entry["epochs"].items():
            for name, opt in at["optimizers"].items():
                for metric in BUDGET_METRICS:
                    for seed, value in zip(opt["seeds"], opt.get(metric, {}).get("per_seed", [])):
                        rows.append({"benchmark": b, "epochs": int(e), "optimizer": name, "seed": seed,
                                     "metric": metric, "value": value, "failed": opt.get("learned") is False})
    df = pd.DataFrame(rows, columns=["benchmark", "epochs", "optimizer", "seed", "metric", "value", "failed"])
    benchmarks = list(summary)
    order = list(next(iter(summary.values()))["order"]) if summary else []
    fig, axes = plt.subplots(len(benchmarks), len(BUDGET_METRICS), figsize=(4.2 * len(BUDGET_METRICS) + 1.8,
                                                                            3.4 * len(benchmarks)), squeeze=False)
    for r, b in enumerate(benchmarks):
        for c, (metric, label) in enumerate(BUDGET_METRICS.items()):
            ax = axes[r][c]
            part = df[(df.benchmark == b) & (df.metric == metric)]
            if metric in BUDGET_RETENTION:  # not read as retention where the optimizer did not learn
                _not_learned_points(ax, part[part.failed], order)
                part = part[~part.failed]
            sns.lineplot(data=part, x="epochs", y="value", hue="optimizer", hue_order=order, palette=palette(order),
                         errorbar=CI, seed=0, n_boot=2000, marker="o", ax=ax, legend=(r == 0 and c == 2))
            threshold = _threshold(opt for at in summary[b]["epochs"].values() for opt in at["optimizers"].values())
            if metric == "learning_accuracy" and threshold is not None:
                ax.axhline(threshold, color="0.3", linestyle=":", linewidth=1)
                ax.text(0.01, threshold, f"learned \u2265 {threshold:.2f}", transform=ax.get_yaxis_transform(),
                        fontsize=7, color="0.3", va="bottom")
            chosen = summary[b].get("selected_epochs")
            if chosen is not None:
                ax.axvline(chosen, color="0.4", linestyle="--", linewidth=1)
            ax.set(xscale="log", ylim=(0, 1.02), xlabel="epochs per task (log scale)", ylabel=label,
                   title=f"{b}: {label.splitlines()[0]}")
            ax.set_xticks(summary[b]["grid"], [str(e) for e in summary[b]["grid"]])
            ax.minorticks_off()
    if benchmarks:
        handles, labels = axes[0][-1].get_legend_handles_labels()
        if df.failed.any():
            handles.append(Patch(**NOT_LEARNED))
            labels.append("did not learn\n(forgetting not retention)")
        axes[0][-1].legend(handles, labels, title="optimizer", bbox_to_anchor=(1.01, 1), loc="upper left",
                           frameon=False)
    fig.suptitle(f"{title} ({seed_note(df)}; dashed: the budget the rule chose)")
    fig.tight_layout()
    save(fig, paths)


def _interval(stat: dict) -> tuple[float, float, float]:
    """(mean, distance to the low end, distance to the high end) of a ``seed_stat`` (0, 0 without a CI)."""
    ci = stat.get("ci95") or [stat["mean"], stat["mean"]]
    low, high = (stat["mean"] if c is None else c for c in ci)
    return stat["mean"], stat["mean"] - low, high - stat["mean"]


def retention_plasticity(summaries: dict, knobs: dict, order: Sequence[str], paths: Sequence[str | Path],
                         title: str) -> None:
    """Issue 33's figure: what each optimizer keeps against what it learns.

    Left, permuted: learning accuracy against average forgetting, one point per optimizer (mean and
    Student-t 95% CI over seeds, both axes). Middle, class-incremental: average accuracy after the
    last pair per optimizer, with its CI. Below, one panel per benchmark, the retention rule's sweeps
    (``knobs``: data/knobs/selected.json ``knobs``): per tuned optimizer, one curve through its
    candidates in grid order, held-out retention score (average accuracy after the last task)
    against held-out learning accuracy, each point labelled with its value, the chosen one circled.
    ``summaries``: benchmark -> data/summary/<benchmark>.json; an optimizer whose entry did not learn
    (``learned: false``) is drawn hollow and named so. Raises ``KeyError`` on a summary without
    those metrics.
    """
    colours = palette(list(order) + [n for n in knobs if n not in order])
    fig, axes = plt.subplots(2, 2, figsize=(14, 10))
    (permuted, incremental), sweep_axes = axes
    for k, name in enumerate(order):
        entry = summaries.get("permuted", {}).get("optimizers", {}).get(name)
        if entry is None:
            continue
        x, *xerr = _interval(entry["average_forgetting"])
        y, *yerr = _interval(entry["learning_accuracy"])
        hollow = entry.get("learned") is False
        permuted.errorbar(x, y, xerr=[[xerr[0]], [xerr[1]]], yerr=[[yerr[0]], [yerr[1]]], fmt="o", ms=7,
                          color=colours[name], mfc="white" if hollow else colours[name], capsize=3)
        permuted.annotate(name + (" (did not learn)" if hollow else ""), (x, y), xytext=(5, 4 if k % 2 else -11),
                          textcoords="offset points", fontsize=8)
    permuted.set(xlabel="average forgetting (lower keeps more)", ylabel="learning accuracy (mean over tasks)",
                 title="permuted: plasticity against forgetting")
    names = [n for n in order if n in summaries.get("class_incremental", {}).get("optimizers", {})]
    for k, name in enumerate(names):
        entry = summaries["class_incremental"]["optimizers"][name]
        y, *err = _interval(entry["average_accuracy"])
        hollow = entry.get("learned") is False
        incremental.barh(k, y, xerr=[[err[0]], [err[1]]], color=colours[name], capsize=3,
                         **({k2: v for k2, v in NOT_LEARNED.items() if k2 != "alpha"} if hollow else {}))
    incremental.set_yticks(range(len(names)), [n + (" (did not learn)" if summaries["class_incremental"]["optimizers"][n]
                                                     .get("learned") is False else "") for n in names])
    incremental.invert_yaxis()
    incremental.set(xlim=(0, 1), xlabel="average accuracy after the last pair", title="class-incremental: what is kept")
    benchmarks = sorted({b for e in knobs.values() for c in e["candidates"] for b in c["per_benchmark"]})
    for ax, b in zip(sweep_axes, benchmarks[:2]):  # one panel per benchmark: each knob's curve through its grid
        for name, entry in knobs.items():
            xs = [c["learning_accuracy"][b] for c in entry["candidates"]]
            ys = [c["per_benchmark"][b] for c in entry["candidates"]]
            ax.plot(xs, ys, "-", marker="o", color=colours[name], label=f"{name} ({entry['option']})")
            for c, x, y in zip(entry["candidates"], xs, ys):
                ax.annotate(f"{c['value']:g}", (x, y), xytext=(4, -9), textcoords="offset points", fontsize=7,
                            color=colours[name])
                if c["value"] == entry["selected_value"]:
                    ax.scatter([x], [y], s=160, facecolors="none", edgecolors=colours[name], linewidths=2, zorder=5)
        ax.set(xlabel="held-out learning accuracy", ylabel="held-out average accuracy after the last task")
        ax.set_title(f"{b}: the retention rule's candidates (circle: chosen; diverged: 0)", fontsize=10)
        ax.legend(fontsize=7, frameon=False, loc="best")
    for ax in sweep_axes[len(benchmarks[:2]):]:
        ax.axis("off")
    fig.suptitle(f"{title}; error bars: Student-t 95% CI over seeds")
    save(fig, paths)
