"""Per-optimizer summaries of a benchmark's runs: mean and Student-t 95% CI over seeds (``optbias.stats``).

These JSON files are what the README tables, DVC metrics and the claims audit read, so that no
number is recomputed (or retyped) downstream.

Each optimizer's entry also says whether it learned at all (``learned``, with the
``chance_accuracy`` it was judged against), by the rule declared in ``optbias.continual.metrics``:
mean learning accuracy over seeds >= chance + (1 - chance) / 2 (0.75 on class-incremental pairs,
0.55 on permuted MNIST). The forgetting of an entry that did not learn is not retention, and the
tables and figures say "did not learn" instead of showing it as such.
"""

from __future__ import annotations

from collections.abc import Sequence

from ..stats import seed_stat
from .benchmarks import BENCHMARKS
from .metrics import learned, summarize
from .types import RunMetrics

SCALARS = ("average_accuracy", "average_forgetting", "bwt", "mean_accuracy_old_tasks", "learning_accuracy")


def derived(key: str, R: list[list[float]]) -> float | None:
    """A scalar of ``metrics.summarize`` that a run's metrics.json does not hold (an older run), from its R."""
    return summarize(R).get(key)


def chance_of(runs: Sequence[RunMetrics]) -> float | None:
    """The chance accuracy of a run set's tasks (1 / classes per task; 0.5 on class-incremental
    pairs, 0.1 on permuted), from each run's ``benchmark`` and ``spec.benchmark_cfg``
    (``optbias.continual.benchmarks.BenchmarkSpec.chance_accuracy``).

    None when it cannot be known: no run, a benchmark that is not in the registry, or a run
    without ``spec.benchmark_cfg`` or with one that lacks a key the task count needs (hand-made
    test runs; a run's metrics.json always holds the full config). Raises ``ValueError`` when the
    runs of the set disagree on it (runs of different benchmark configs must not be summarized together).
    """
    chances = set()
    for run in runs:
        cfg = (run.get("spec") or {}).get("benchmark_cfg")
        if run.get("benchmark") not in BENCHMARKS or cfg is None:
            return None
        try:
            chances.add(BENCHMARKS[run["benchmark"]].chance_accuracy(cfg))
        except KeyError:  # e.g. a permuted config without n_tasks
            return None
    if len(chances) > 1:
        raise ValueError(f"the runs of one optimizer have different chance accuracies {sorted(chances)}: "
                         "they are runs of different benchmark configs")
    return chances.pop() if chances else None


def learned_flag(learning_accuracy: dict | None, chance: float | None) -> bool | None:
    """``metrics.learned`` on an entry's ``learning_accuracy`` (a ``seed_stat``, judged on its
    per-seed values, i.e. on their mean) against ``chance``; None (not judged) when the chance is
    unknown or no seed finished."""
    if chance is None or not learning_accuracy or not learning_accuracy.get("per_seed"):
        return None
    return learned(learning_accuracy["per_seed"], chance)


def summarize_runs(runs: Sequence[RunMetrics], order: Sequence[str]) -> dict:
    """Per optimizer (in ``order``, then any other): ``seed_stat`` of every scalar metric over the
    finished seeds, the per-seed R matrices and the final accuracy per task with its 95% CI.

    ``runs``: the runs' metrics.json contents (``RunMetrics``) of one benchmark. Returns
    {benchmark, order, optimizers: {name: {seeds, diverged_seeds, <scalar>: seed_stat (fractions in
    [0, 1]; bwt in [-1, 1]), chance_accuracy, learned, R_per_seed: [T x T per seed],
    final_accuracy_per_task: [{task, mean, ci95}]}}}.

    ``chance_accuracy`` (``chance_of``: 1 / classes per task) and ``learned`` (the rule of
    ``optbias.continual.metrics``: mean learning accuracy over the finished seeds >= chance +
    (1 - chance) / 2, i.e. 0.75 on pairs, 0.55 on permuted) say whether the entry's forgetting can
    be read as retention; ``learned`` is None (not judged) when the chance is unknown (runs without
    ``spec.benchmark_cfg``) or no seed finished. Raises ``ValueError`` when one optimizer's runs
    disagree on the chance accuracy.
    """
    by_optimizer: dict[str, list[dict]] = {name: [] for name in order}
    for run in runs:
        by_optimizer.setdefault(run["optimizer"], []).append(run)
    # JSON objects are written with sorted keys, so the legend order travels as its own list.
    out: dict = {"benchmark": runs[0]["benchmark"] if runs else None, "order": list(by_optimizer), "optimizers": {}}
    for name, group in by_optimizer.items():
        # Statistics cover the runs that finished; diverged runs (recorded, e.g. in the ablation)
        # are listed, never averaged in as zeros or silently dropped.
        diverged = sorted(r["seed"] for r in group if r.get("status", "ok") != "ok")
        group = sorted((r for r in group if r.get("status", "ok") == "ok"), key=lambda r: r["seed"])
        entry = {"seeds": [r["seed"] for r in group], "diverged_seeds": diverged}
        for key in SCALARS:
            # Runs trained before learning_accuracy was recorded: the same number, from their R.
            values = [r[key] if key in r else derived(key, r["R"]) for r in group]
            values = [v for v in values if v is not None]
            if values:
                entry[key] = seed_stat(values)
        # Whether it learned at all: a run set at chance has nothing to forget (metrics' learned rule).
        entry["chance_accuracy"] = chance_of(by_optimizer[name])
        entry["learned"] = learned_flag(entry.get("learning_accuracy"), entry["chance_accuracy"])
        # The per-seed accuracy matrices, in `seeds` order: the claims audit pairs optimizers by seed.
        entry["R_per_seed"] = [r["R"] for r in group]
        n_tasks = len(group[0]["R"]) if group else 0
        entry["final_accuracy_per_task"] = []
        for j in range(n_tasks):
            stat = seed_stat([r["R"][-1][j] for r in group])  # ci95 None with one seed
            entry["final_accuracy_per_task"].append({"task": group[0]["tasks"][j], "mean": stat["mean"], "ci95": stat["ci95"]})
        out["optimizers"][name] = entry
    return out


def summarize_by_benchmark(runs: Sequence[RunMetrics], order: Sequence[str]) -> dict:
    """``summarize_runs`` for each benchmark present in ``runs``."""
    benchmarks = sorted({r["benchmark"] for r in runs})
    return {b: summarize_runs([r for r in runs if r["benchmark"] == b], order) for b in benchmarks}


def _cell(entry: dict | None) -> str:
    if not entry:
        return "n/a"
    if entry.get("ci95") is None:  # one seed: no interval
        return f"{entry['mean']:.3f} (n = {len(entry.get('per_seed') or [0])})"
    low, high = entry["ci95"]
    return f"{entry['mean']:.3f} [{low:.3f}, {high:.3f}]"


def did_not_learn_note(entry: dict) -> str:
    """The words that stand in for the forgetting of an entry that did not learn (``learned`` false):
    ``"did not learn (learning accuracy 0.193, chance 0.5)"`` (its mean learning accuracy and the
    chance accuracy of its tasks). Raises ``KeyError`` on an entry without them."""
    return (f"did not learn (learning accuracy {entry['learning_accuracy']['mean']:.3f}, "
            f"chance {entry['chance_accuracy']:.3g})")


def _ablation_cells(entry: dict) -> list[str]:
    """Forgetting, accuracy, learning accuracy; for a variant that did not learn, the note in place of its
    forgetting and its average accuracy struck through, neither to be read as retention."""
    forgetting, accuracy, learning = (_cell(entry.get(k)) for k in ("average_forgetting", "average_accuracy",
                                                                     "learning_accuracy"))
    if entry.get("learned") is False:
        return [did_not_learn_note(entry), f"~~{accuracy}~~", learning]
    return [forgetting, accuracy, learning]


def ablation_table(by_benchmark: dict) -> str:
    """A Markdown table: one row per variant; forgetting, accuracy and learning accuracy per benchmark (mean [95% CI]).

    ``by_benchmark``: ``summarize_by_benchmark``'s output (benchmark -> ``summarize_runs``), rows in
    the first benchmark's ``order``; returns the table and its footnote as Markdown text. A variant
    whose entry has ``learned: false`` (mean learning accuracy < chance + (1 - chance) / 2: 0.75 on
    pairs, 0.55 on permuted) shows "did not learn (learning accuracy 0.193, chance 0.5)" instead of
    its forgetting, its average accuracy struck through, and its learning accuracy as usual.
    """
    benchmarks = list(by_benchmark)
    header = ["variant"] + [f"{b}: {m}" for b in benchmarks for m in ("avg forgetting", "avg accuracy", "learning accuracy")]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    order = by_benchmark[benchmarks[0]]["order"] if benchmarks else []
    for name in order:
        cells = [name]
        for b in benchmarks:
            entry = by_benchmark[b]["optimizers"].get(name, {})
            if entry.get("diverged_seeds"):
                cells[0] += f" ({b}: {len(entry['diverged_seeds'])} of {len(entry['diverged_seeds']) + len(entry['seeds'])} seeds diverged)"
            cells += _ablation_cells(entry)
        lines.append("| " + " | ".join(cells) + " |")
    n_seeds = {len(v["seeds"]) for b in benchmarks for v in by_benchmark[b]["optimizers"].values()}
    lines.append("")
    lines.append(f"Mean over the seeds that finished ({', '.join(map(str, sorted(n_seeds)))} per cell) with Student-t "
                 "95% CIs; diverged seeds are counted in the variant's name. A variant learned when its mean learning "
                 "accuracy is at least halfway from chance to perfect (chance + (1 - chance) / 2: 0.75 on pairs of "
                 "classes, 0.55 on ten); one that did not learn had nothing to forget, so its forgetting is replaced "
                 "by \"did not learn\" and its average accuracy is struck through.")
    return "\n".join(lines) + "\n"
