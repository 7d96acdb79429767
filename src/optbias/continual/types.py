"""The contracts between the continual-learning stages: what a run is given and what it records.

A ``RunSpec`` is built from the config by ``optbias.specs`` (``run_spec`` and its sweep and budget
variants, which the training rules call through workflow/rules/common.smk), and is everything that
determines a run: a change in it, and only in it, reruns the run.
A ``RunMetrics`` is what ``optbias.continual.train.train_run`` returns and writes as the run's
``metrics.json``; the summaries, figures, probes, weight distances and DVC tracking read it.
Both are plain JSON objects (TypedDicts), so a metrics file on disk is exactly this shape.
"""

from __future__ import annotations

from typing import Any, Literal, NotRequired, Required, TypedDict


class TrainSettings(TypedDict, total=False):
    """The config's ``train`` block, complete (the schema fills every default), plus what the sweep
    and the ablation set. ``train_run`` raises ``KeyError`` on a block without the required keys."""

    device: Required[str]       # "auto" (CUDA when present), "cpu", "cuda[:k]"
    threads: Required[int]      # torch threads: CPU results depend on it, so it is fixed
    reset_optimizer: Required[bool]  # a fresh optimizer at every task boundary
    loss_log_every: Required[int]    # steps per loss-curve window
    validation_fraction: float  # hold out this part of every task's training split (the sweep)
    on_divergence: Literal["fail", "record"]  # record: a NaN loss ends the run as status "diverged"
    batch_seeds: Literal["auto"] | bool  # seeds of a job as one stacked model (continual/batched.py)
    # The optional settings of continual/settings.py, absent (never defaulted) from the runs without them:
    batch_order: int            # k >= 1: another batch order from the same seed (noise_floor controls)
    reset_preconditioner: bool  # the optimizer's reset_preconditioner() at every task boundary (Shampoo)


class RunSpec(TypedDict):
    """One run: (benchmark, optimizer, seed) with the settings of each."""

    benchmark: str              # a name of optbias.continual.benchmarks.BENCHMARKS
    benchmark_cfg: dict[str, Any]  # the config's benchmarks.<benchmark> block
    optimizer: str              # the config's name of the entry (legend label), e.g. "adam-1e-3"
    optimizer_cfg: dict[str, Any]  # the registry entry: {"type": ..., "lr": ..., hyperparameters}
    seed: int                   # initial weights (init_model) and batch order (settings.run_batch_seed: seed + 1)
    model: dict[str, Any]       # {"hidden": [widths]}
    train: TrainSettings


class LossCurve(TypedDict):
    step: list[int]             # global step at the end of each window
    task: list[int]             # task index being learned
    loss: list[float]           # mean training loss over the window


class RunMetrics(TypedDict):
    """A run's ``metrics.json``. Accuracies are fractions in [0, 1]; times are seconds.

    ``R[i][j]`` is the test accuracy on task j after training task i (T x T, T = len(tasks)).
    The scalar metrics are those of ``optbias.continual.metrics.summarize`` and are present only
    when ``status == "ok"``.
    """

    benchmark: str
    optimizer: str
    seed: int
    spec: RunSpec
    tasks: list[str]            # task names in training order, e.g. "0/1" or "perm3"
    status: Literal["ok", "diverged"]
    error: str | None           # the divergence message when status is "diverged"
    R: list[list[float]]        # rows for the tasks trained before a divergence
    average_accuracy: NotRequired[float]        # mean_j R[T-1][j]
    forgetting: NotRequired[list[float]]        # per task j: max_{i<T-1} R[i][j] - R[T-1][j]
    average_forgetting: NotRequired[float]
    bwt: NotRequired[float]                     # backward transfer
    final_accuracy: NotRequired[list[float]]    # R[T-1]
    mean_accuracy_old_tasks: NotRequired[float | None]  # mean_{j<T-1} R[T-1][j]; None when T = 1
    loss_curve: LossCurve
    steps: int                  # optimizer steps taken
    optimizer_diagnostics: dict[str, Any]  # deterministic counters the optimizer reports (Shampoo)
    device: str                 # "cpu" or the GPU's name
    torch_version: str
    platform: str               # platform.machine()
    machine: NotRequired[dict[str, str | int]]  # engine.machine(): CPU model, BLAS, torch build, threads
    code_sha256: NotRequired[str]  # imports.code_sha256 of the training code (absent: a run made before it was recorded)
    # wall_time_s (the run's share of its job's training and evaluation), eval_time_s (of which in the
    # evaluations and checkpoints after each task) and the optimizer's durations (seconds): the only fields that differ between two runs
    # of the same spec on the same machine; batched_seeds (S) when the run was trained in a batched job
    timing: dict[str, float | int]
    R_val: NotRequired[list[list[float]]]       # held-out accuracies (sweep runs only)
    validation_score: NotRequired[float | None]  # the sweep's score: mean_i R_val[i][i]; None if diverged
