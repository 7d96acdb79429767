"""The small files that DVC versions in git: headline metrics and accuracy curves.

``data/summary/{benchmark}.json`` holds every statistic with CIs and per-seed values: too much for
``dvc metrics diff`` to be readable. The headline keeps the two numbers the paper argues about,
average accuracy and average forgetting, and next to them the learning accuracy (how well each
task was learned before it could be forgotten), as means over seeds, per benchmark and optimizer. The
curves are the data behind the forgetting figures, one small CSV per (benchmark, optimizer), so
``dvc plots diff`` can overlay two commits. Both are derived, never recomputed downstream.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from ..continual.types import RunMetrics
from ..fileio import atomic_write_bytes, atomic_write_json

HEADLINE = ("average_accuracy", "average_forgetting", "learning_accuracy")
CURVE_FIELDS = ("tasks_trained", "first_task_accuracy", "seen_tasks_accuracy")


def headline(summaries: Sequence[dict]) -> dict:
    """``{benchmark: {optimizer: {metric: mean over seeds}}}`` from the per-benchmark summaries."""
    out: dict = {}
    for summary in summaries:
        benchmark = summary["benchmark"]
        if benchmark in out:
            raise ValueError(f"two summaries for benchmark {benchmark!r}: pass each data/summary file once")
        out[benchmark] = {
            name: {key: entry[key]["mean"] for key in HEADLINE if key in entry}
            for name, entry in ((n, summary["optimizers"][n]) for n in summary["order"])
        }
    return out


def curves(runs: Sequence[RunMetrics]) -> dict[tuple[str, str], list[dict]]:
    """Per (benchmark, optimizer), one row per task trained, averaged over seeds.

    ``first_task_accuracy`` after i+1 tasks is mean_seeds R[i][0] (how the first task is
    forgotten); ``seen_tasks_accuracy`` is mean_seeds mean_{j<=i} R[i][j] (accuracy on the tasks
    seen so far; its last value is the average accuracy).
    """
    groups: dict[tuple[str, str], list[list[list[float]]]] = {}
    for run in runs:
        groups.setdefault((run["benchmark"], run["optimizer"]), []).append(run["R"])
    out = {}
    for key, matrices in groups.items():
        n_tasks = {len(R) for R in matrices}
        if len(n_tasks) != 1:
            raise ValueError(f"runs of {key} have different numbers of tasks {sorted(n_tasks)}: rerun them together")
        rows = []
        for i in range(n_tasks.pop()):
            first = sum(R[i][0] for R in matrices) / len(matrices)
            seen = sum(sum(R[i][: i + 1]) / (i + 1) for R in matrices) / len(matrices)
            rows.append({"tasks_trained": i + 1, "first_task_accuracy": first, "seen_tasks_accuracy": seen})
        out[key] = rows
    return out


def to_csv(rows: Sequence[dict], fields: Sequence[str] = CURVE_FIELDS) -> str:
    """A plain CSV (fixed column order, repr-exact floats) that DVC plots read."""
    lines = [",".join(fields)]
    lines += [",".join(repr(row[f]) for f in fields) for row in rows]
    return "\n".join(lines) + "\n"


def write(summaries: Sequence[dict], runs: Sequence[dict], headline_path: str | Path,
          curve_paths: Sequence[str | Path]) -> None:
    """Write ``headline`` and every ``curves`` CSV (``<dir>/{benchmark}/{optimizer}.csv``) atomically.

    ``curve_paths`` are the CSVs the workflow expects; a run whose curve has no path there, or a
    path with no runs, raises ``ValueError``.
    """
    atomic_write_json(headline_path, headline(summaries))
    rows = curves(runs)
    by_path = {Path(p): p for p in curve_paths}
    written = set()
    for (benchmark, optimizer), table in rows.items():
        path = next((p for p in by_path if p.parts[-2:] == (benchmark, f"{optimizer}.csv")), None)
        if path is None:
            raise ValueError(f"track: no output path for the curve of {benchmark}/{optimizer}")
        atomic_write_bytes(path, to_csv(table).encode())
        written.add(path)
    missing = sorted(str(p) for p in set(by_path) - written)
    if missing:
        raise ValueError(f"track: no runs for {', '.join(missing)}")
