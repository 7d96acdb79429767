"""The compute lower bound of a whole pipeline run, and where the wall time goes above it (``optbias bench``).

The bound: every training run's optimizer steps times the FLOPs of a step (``optbias.perf.flops``,
counted from below: the MLP's forward and backward matrix products plus the optimizer's matrix
work, through its registry row's ``flops``), plus EWC's Fisher pass (one forward and backward pass
over each task's training split), at the float32 matmul peak measured in the same ``optbias bench``
run, divided by the cores:

    bound_s = sum_runs steps * (model_flops + optimizer_flops) / (peak * cores)

Evaluation, data loading, Python and idle cores are outside it, which is the point: the breakdown
splits ``cores * wall`` (core-seconds) into

* the bound itself;
* training above its bound: each run's training time (its ``timing.wall_time_s`` less its
  ``eval_time_s``) less its bound, i.e. the loop and optimizer overhead, memory-bound element-wise
  work, matrix products below the peak, and loading the run's tasks;
* evaluation: the accuracy matrices and the checkpoint written after each task
  (``timing.eval_time_s``; runs written before that field was recorded count it in the line above);
* the fixed cost of the training jobs: their ``benchmarks/`` job time less their runs' time
  (start-up, imports, the metrics written);
* other jobs with a ``benchmarks/`` file (probes, Powerprop, the notebook), which have no bound here;
* idle cores: ``cores * wall`` less all job time (the scheduler, jobs without a ``benchmarks/``
  file such as figures and summaries, and cores left without a job, the tail above all).

Runs are read from ``workdir/data/**/metrics.json`` (every stage's runs: sweep, budget, knobs,
headline, ablation and control) and their ``spec`` (model, batch size, optimizer entry). The widths
of the MLP's input and output are the MNIST shape that every dataset of this pipeline has.
"""

from __future__ import annotations

import json
from collections import defaultdict
from pathlib import Path
from typing import Any

from . import flops

IN_FEATURES, CLASSES = 784, 10  # every dataset of the pipeline: 28 x 28 images, 10 classes
TRAINING_STAGES = ("sweep", "budget", "knobs", "train")  # benchmarks/<stage>/: jobs that train runs


def run_flops(metrics: dict[str, Any]) -> tuple[float, bool]:
    """(FLOPs of one finished run's training, counted from below; whether its optimizer's work is counted).

    ``metrics``: a run's metrics.json (``steps``, ``tasks``, and ``spec`` with ``model.hidden``,
    ``benchmark_cfg.batch_size`` and ``epochs_per_task``, and ``optimizer_cfg``). The last batch of
    an epoch may be short, so of the ``steps`` the T x E last ones (T tasks, E epochs per task) are
    counted at one row: rows >= steps B - T E (B - 1). Counted: rows x the MLP's forward and
    backward per row, the optimizer's matrix work per step (at one row for those last steps), and
    for EWC one forward and backward pass over each task's training split (rows / E). An optimizer
    with no estimate (``flops.step`` None) counts the model alone, and the second value is False.
    """
    spec = metrics["spec"]
    widths = [IN_FEATURES, *spec["model"]["hidden"], CLASSES]
    batch, epochs = int(spec["benchmark_cfg"]["batch_size"]), int(spec["benchmark_cfg"]["epochs_per_task"])
    steps = int(metrics["steps"])
    short = min(steps, len(metrics["tasks"]) * epochs)  # epochs whose last batch may be short
    rows = max(0, steps * batch - short * (batch - 1))
    full, one = flops.step(spec["optimizer_cfg"], widths, batch), flops.step(spec["optimizer_cfg"], widths, 1)
    total = rows * flops.model(widths, 1) + (steps - short) * (full or 0.0) + short * (one or 0.0)
    if spec["optimizer_cfg"].get("regularizer") == "ewc":
        total += rows / epochs * flops.model(widths, 1)
    return total, full is not None


def runs_bound(workdir: str | Path, peak: float, window: tuple[float, float] | None = None) -> dict[str, Any]:
    """The bound and the measured time of every run under ``workdir/data`` (seconds on one core).

    ``peak``: float32 matmul FLOP/s of one core (``optbias.perf.step.matmul_peak``); ``window``:
    (start, end) in seconds since the epoch: only runs whose metrics.json was written inside it (one
    minute of slack) count, as for the job times (``runlog.stage_times``), so that runs of an
    earlier invocation or another config are neither in the bound nor in the time. Returns ``runs``,
    ``bound_s`` (sum of FLOPs / peak), ``train_s`` (runs' time outside evaluation), ``eval_s``,
    ``eval_recorded`` (runs with ``eval_time_s``), ``not_estimated`` (optimizer types whose step
    counts the model alone), ``threads`` and ``devices`` (the values the runs trained with: the
    breakdown assumes 1 and cpu) and ``by_type``: per optimizer type, its runs, steps, ``bound_s``,
    ``train_s`` and their ratio (``ratio``: the training time over the bound)."""
    out: dict[str, Any] = {"runs": 0, "bound_s": 0.0, "train_s": 0.0, "eval_s": 0.0, "eval_recorded": 0,
                           "not_estimated": set(), "threads": set(), "devices": set()}
    by_type: dict[str, dict[str, float]] = defaultdict(lambda: {"runs": 0, "steps": 0, "bound_s": 0.0, "train_s": 0.0})
    for path in sorted(Path(workdir, "data").rglob("metrics.json")):
        if window is not None and not window[0] - 60 <= path.stat().st_mtime <= window[1] + 60:
            continue
        metrics = json.loads(path.read_text())
        if "spec" not in metrics or "steps" not in metrics:  # a summary, not a run
            continue
        out["threads"].add(int(metrics["spec"].get("train", {}).get("threads", 1)))
        out["devices"].add(str(metrics.get("device", "cpu")))
        total, estimated = run_flops(metrics)
        timing = metrics.get("timing", {})
        evaluation = float(timing.get("eval_time_s", 0.0))
        train = float(timing.get("wall_time_s", 0.0)) - evaluation
        kind = metrics["spec"]["optimizer_cfg"]["type"]
        if not estimated:
            out["not_estimated"].add(kind)
        row = by_type[kind]
        row["runs"] += 1
        row["steps"] += int(metrics["steps"])
        row["bound_s"] += total / peak
        row["train_s"] += train
        out["runs"] += 1
        out["bound_s"] += total / peak
        out["train_s"] += train
        out["eval_s"] += evaluation
        out["eval_recorded"] += "eval_time_s" in timing
    for row in by_type.values():
        row["ratio"] = row["train_s"] / row["bound_s"] if row["bound_s"] > 0 else None
    out["by_type"] = dict(sorted(by_type.items(), key=lambda kv: -kv[1]["train_s"]))
    for key in ("not_estimated", "threads", "devices"):
        out[key] = sorted(out[key])
    return out


def breakdown(runs: dict[str, Any], times: dict[str, Any], wall_s: float, cores: int) -> dict[str, Any]:
    """Split ``cores * wall_s`` core-seconds into the bound and the gaps above it (module docstring).

    ``runs``: ``runs_bound``'s result; ``times``: ``optbias.perf.runlog.stage_times`` of the same run
    (job seconds per stage); ``wall_s``: the run's Snakemake wall time; ``cores``: the cores it ran on.
    Returns ``bound_wall_s`` (the bound on ``cores`` cores), ``ratio`` (wall time over that bound)
    and ``parts``: label -> core-seconds, summing to ``cores * wall_s``. Raises ``ValueError`` when
    the bound is 0 (no run with a step count under the working directory), or when a run trained on
    more than one thread or off the CPU (the breakdown's unit is one CPU core per job)."""
    if runs["bound_s"] <= 0:
        raise ValueError("no training run with a step count under data/: run `make reproduce` first")
    if runs["threads"] != [1] or runs["devices"] != ["cpu"]:
        raise ValueError(f"the runs trained on threads {runs['threads']} and devices {runs['devices']}: the breakdown "
                         "counts one core per job and the CPU's matmul peak, so it holds for train.threads 1 on the "
                         "CPU only (the default config)")
    training_jobs = sum(times["stages"].get(s, {}).get("job_s", 0.0) for s in TRAINING_STAGES)
    run_s = runs["train_s"] + runs["eval_s"]
    parts = {
        "compute bound (training steps at the matmul peak)": runs["bound_s"],
        "training above its bound (loop, optimizer overhead, element-wise work, loading the tasks)":
            runs["train_s"] - runs["bound_s"],
        "evaluation (accuracy matrices) and checkpoints": runs["eval_s"],
        "fixed cost of the training jobs (start-up, imports, data, writing)": training_jobs - run_s,
        "other jobs (probes, Powerprop, notebook)": times["job_s"] - training_jobs,
        "idle cores (scheduler, jobs without a benchmark file, the tail)": cores * wall_s - times["job_s"],
    }
    return {"bound_wall_s": runs["bound_s"] / cores, "ratio": wall_s * cores / runs["bound_s"], "parts": parts,
            "cores": cores, "wall_s": wall_s}
