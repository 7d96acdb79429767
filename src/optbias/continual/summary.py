"""Per-optimizer summaries of a benchmark's runs: mean and bootstrap 95% CI over seeds.

These JSON files are what the README tables, DVC metrics and the claims audit read, so that no
number is recomputed (or retyped) downstream.
"""

from __future__ import annotations

from collections.abc import Sequence

from ..stats import bootstrap_ci, seed_stat
from .metrics import summarize
from .types import RunMetrics

SCALARS = ("average_accuracy", "average_forgetting", "bwt", "mean_accuracy_old_tasks", "learning_accuracy")


def derived(key: str, R: list[list[float]]) -> float | None:
    """A scalar of ``metrics.summarize`` that a run's metrics.json does not hold (an older run), from its R."""
    return summarize(R).get(key)


def summarize_runs(runs: Sequence[RunMetrics], order: Sequence[str]) -> dict:
    """Per optimizer (in ``order``, then any other): ``seed_stat`` of every scalar metric over the
    finished seeds, the per-seed R matrices and the final accuracy per task with its 95% CI.

    ``runs``: the runs' metrics.json contents (``RunMetrics``) of one benchmark.
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
        # The per-seed accuracy matrices, in `seeds` order: the claims audit pairs optimizers by seed.
        entry["R_per_seed"] = [r["R"] for r in group]
        n_tasks = len(group[0]["R"]) if group else 0
        entry["final_accuracy_per_task"] = []
        for j in range(n_tasks):
            mean, low, high = bootstrap_ci([r["R"][-1][j] for r in group])
            entry["final_accuracy_per_task"].append({"task": group[0]["tasks"][j], "mean": mean, "ci95": [low, high]})
        out["optimizers"][name] = entry
    return out


def summarize_by_benchmark(runs: Sequence[RunMetrics], order: Sequence[str]) -> dict:
    """``summarize_runs`` for each benchmark present in ``runs``."""
    benchmarks = sorted({r["benchmark"] for r in runs})
    return {b: summarize_runs([r for r in runs if r["benchmark"] == b], order) for b in benchmarks}


def _cell(entry: dict | None) -> str:
    if not entry:
        return "n/a"
    low, high = entry["ci95"]
    return f"{entry['mean']:.3f} [{low:.3f}, {high:.3f}]"


def ablation_table(by_benchmark: dict) -> str:
    """A Markdown table: one row per variant; forgetting, accuracy and learning accuracy per benchmark (mean [95% CI])."""
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
            cells += [_cell(entry.get(k)) for k in ("average_forgetting", "average_accuracy", "learning_accuracy")]
        lines.append("| " + " | ".join(cells) + " |")
    n_seeds = {len(v["seeds"]) for b in benchmarks for v in by_benchmark[b]["optimizers"].values()}
    lines.append("")
    lines.append(f"Mean over the seeds that finished ({', '.join(map(str, sorted(n_seeds)))} per cell) with bootstrap "
                 "95% CIs; diverged seeds are counted in the variant's name.")
    return "\n".join(lines) + "\n"
