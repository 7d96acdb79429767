"""Sequential training on a continual-learning benchmark, filling the accuracy matrix R task by task.

One run = one (benchmark, optimizer, seed). The whole dataset lives on the device (CUDA when
present), batches are drawn with a seeded generator (``settings.batch_seed``: the seed and the
optional ``train.batch_order``), and the initial weights depend on the seed only, so every
optimizer starts from the same point: any difference in the solution is the optimizer's doing.
After each task the model is evaluated on every task's test split (row i of R) and a checkpoint
(state_dict only) is written atomically.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import torch

from .. import optim
from ..engine import optimizer_diagnostics, run_epoch
from ..models import init_model
from . import batched, loop, regularizers, runio, settings
from .tasks import Task
from .types import RunMetrics, RunSpec

REGULARIZER = "regularizer/"  # the prefix of a regularizer's state among the weights of a resume state


class SingleStepper:
    """One run's model and optimizer (``loop.Stepper`` with S = 1): ``engine.run_epoch`` steps it.

    With ``regularizer`` in the optimizer entry, also its reference regularizer (``regularizers``,
    EWC or SI): told when each task begins and ends, applied at every step, its state (under keys
    ``regularizer/...``) part of ``weights`` and so of the resume state."""

    timing: dict[str, Any] = {}

    def __init__(self, spec: RunSpec, device: torch.device) -> None:
        self.spec = spec
        self.model = init_model(int(spec["seed"]), spec["model"]).to(device)
        self.optimizer = self._build()
        self.regularizer = regularizers.from_entry(spec["optimizer_cfg"], self.model, self.optimizer,
                                                   int(spec["benchmark_cfg"]["batch_size"]), device)

    def _build(self) -> torch.optim.Optimizer:
        return optim.build(self.spec["optimizer_cfg"], self.model.parameters(), self.spec["optimizer"],
                           model=self.model)

    def epoch(self, x: torch.Tensor, y: torch.Tensor, batch_size: int, generators: list[torch.Generator],
              step: int, after_step: Callable[[Any, int], None]) -> int:
        self.model.train()
        return run_epoch(self.model, self.optimizer, x, y, batch_size, generators[0], step,
                         lambda loss, at: after_step((loss,), at), regularizer=self.regularizer)

    def models(self) -> Iterator[tuple[int, torch.nn.Module]]:
        yield 0, self.model

    def new_optimizer(self) -> None:
        getattr(self.optimizer, "close", lambda: None)()  # its hooks on the model (Shampoo's gradient_factors)
        self.optimizer = self._build()
        if self.regularizer is not None:
            self.regularizer.use_optimizer(self.optimizer)

    def begin_task(self, i: int, task: Task) -> None:
        if self.regularizer is not None:
            self.regularizer.start_task(i, task.x_train, task.y_train)

    def end_task(self, i: int) -> None:
        if self.regularizer is not None:
            self.regularizer.end_task()

    def weights(self) -> dict[str, torch.Tensor]:
        if self.regularizer is None:
            return self.model.state_dict()
        return {**self.model.state_dict(),
                **{REGULARIZER + k: v for k, v in self.regularizer.state_dict().items()}}

    def load_weights(self, saved: dict[str, torch.Tensor]) -> None:
        self.model.load_state_dict({k: v for k, v in saved.items() if not k.startswith(REGULARIZER)})
        if self.regularizer is not None:
            self.regularizer.load_state_dict({k[len(REGULARIZER):]: v for k, v in saved.items()
                                              if k.startswith(REGULARIZER)})

    def diagnostics(self, s: int) -> tuple[dict[str, Any], dict[str, float]]:
        return optimizer_diagnostics(self.optimizer)


def train_run(spec: RunSpec, dataset_path: str | Path, metrics_path: str | Path | None = None,
              checkpoint_dir: str | Path | None = None, progress: bool = True,
              resume_path: str | Path | None = None) -> RunMetrics:
    """Train one run described by ``spec`` and return its metrics (``RunMetrics``, the metrics.json).

    With ``checkpoint_dir``, writes the state_dict after each task i to
    ``fileio.checkpoint_path(checkpoint_dir, i)``; with ``metrics_path``, writes the metrics JSON
    there last, so its presence means the run completed. Cost: T tasks x epochs x ceil(N/batch)
    optimizer steps, plus T x T test evaluations.

    With ``resume_path`` (``optbias.continual.runio``), saves the resume state there after every
    task and when the run ends, and starts from it when it holds a state of this spec: after the
    last completed task, or, for a finished run, with no training at all. The outputs equal those
    of an uninterrupted run byte for byte on the same machine, except ``timing``. The caller
    removes the file once it no longer needs it (``train_runs`` does, when its job is complete).

    ``train.batch_order: k`` (k >= 1; absent: 0) draws the batches from another seeded order
    (``settings.batch_seed``), from the same initial weights. ``train.reset_preconditioner: true``
    calls the optimizer's ``reset_preconditioner()`` before every task but the first (Shampoo: its
    factor statistics and roots start again, its grafting state, momentum and step count go on);
    ``train.reset_optimizer: true`` instead builds a new optimizer there.

    ``train.validation_fraction > 0`` holds out that (stratified) part of every task's training
    split, trains on the rest and also fills ``R_val`` from the held-out part: the learning-rate
    sweep selects on it, never on the test split. ``train.on_divergence: record`` (the sweep's
    setting) turns a NaN loss into ``status: diverged`` instead of an error.

    Raises ``DivergenceError`` on a NaN/inf loss or weights (unless recorded), ``DataError`` when
    the dataset fails its checksum, ``OptimizerConfigError`` on a bad optimizer entry, ``ValueError``
    on a bad ``batch_order`` or a ``reset_preconditioner`` that the optimizer type cannot do
    (``settings.check``), before anything is loaded.
    """
    where = f"{spec['benchmark']}/{spec['optimizer']}/seed{int(spec['seed'])}"
    return loop.train_tasks([spec], lambda specs, device: SingleStepper(specs[0], device), dataset_path,
                            [metrics_path], [checkpoint_dir], progress, resume_path, where)[0]


def train_runs(specs: list[RunSpec], dataset_path: str | Path, metrics_paths: list[str | Path],
               checkpoint_dirs: list[str | Path] | None = None, progress: bool = True,
               resume_states: bool = True) -> list[RunMetrics]:
    """Train several independent runs one after another in this process; print ``runio.describe`` of each.

    Why: a process pays a fixed start-up cost (importing torch and torch.optim's dynamo hooks),
    comparable to a whole small run (docs/performance.md); the workflow trains every seed of one (benchmark, optimizer) in one job
    (unless `seed_jobs: separate`, for a cluster).
    Each run seeds itself (``make_deterministic``), so its results equal those of a run on its own.
    Every spec is checked before the first run starts; each metrics file is written when its run
    ends. Raises ``ValueError`` when the three lists differ in length.

    With ``resume_states`` (the workflow's way), each run keeps its resume state next to its
    directory (``runio.state_path``): a job killed or preempted and run again restores the runs
    that had finished and continues the interrupted one after its last completed task. The states
    are deleted once every run of the job is complete.

    When ``batched.plan(specs)`` allows it (``train.batch_seeds``: true, or auto on CUDA, for an
    element-wise optimizer), the runs are trained together as one stacked model instead
    (``batched.train_batched``, one resume state for the job); otherwise the first line of the
    log says why they run one after another.
    """
    checkpoint_dirs = list(checkpoint_dirs) if checkpoint_dirs else [None] * len(specs)
    if not (len(specs) == len(metrics_paths) == len(checkpoint_dirs)):
        raise ValueError(f"train: {len(specs)} specs, {len(metrics_paths)} metrics paths and "
                         f"{len(checkpoint_dirs)} checkpoint directories; give one of each per run, in the same order")
    for spec in specs:
        optim.check(spec["optimizer"], spec["optimizer_cfg"])
        settings.check(spec["optimizer"], spec["optimizer_cfg"], spec["train"])
    why = batched.plan(specs)
    # Either mode's states: a job interrupted in one mode and completed in the other leaves none behind.
    states = ([runio.state_path(m) for m in metrics_paths] + [runio.batched_state_path(metrics_paths)]
              if resume_states and specs else [None] * (len(specs) + 1))
    if why is None:
        print(f"train: {len(specs)} runs batched in one stacked model (train.batch_seeds)", flush=True)
        results = batched.train_batched(specs, dataset_path, metrics_paths, checkpoint_dirs, progress, states[-1])
        for result in results:
            print(runio.describe(result), flush=True)
    else:
        if len(specs) > 1:
            print(f"train: {len(specs)} runs one after another ({why})", flush=True)
        results = []
        for spec, metrics_path, ckpt, state in zip(specs, metrics_paths, checkpoint_dirs, states):
            results.append(train_run(spec, dataset_path, metrics_path, ckpt, progress=progress, resume_path=state))
            print(runio.describe(results[-1]), flush=True)
    for state in states:
        if state is not None:
            runio.remove(state)
    return results
