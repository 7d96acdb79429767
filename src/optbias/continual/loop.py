"""The one per-task training loop, shared by a single run and by seeds batched in one stacked model.

A job trains S runs (S = 1 for ``train.train_run``; S seeds for ``batched.train_batched``) that
differ at most in their seed. A *stepper* holds their weights and optimizer and knows how to take
one epoch of steps and how to hand back each run's model; everything else is here, once:

* the order of things: check the spec, restore a finished job, seed, load the tasks, build the
  stepper, restore an interrupted job, then task by task: reset (``train.reset_optimizer`` /
  ``train.reset_preconditioner``), the stepper's ``begin_task``, ``epochs_per_task`` epochs, its
  ``end_task`` (a reference regularizer's, ``regularizers``), the divergence check, the row of R
  (and of R_val), the checkpoint and the resume state;
* the loss log of each run, and divergence: a run whose loss or weights turn NaN/inf ends there
  (its numbers, step count and optimizer counters as they were), recorded as ``status: diverged``
  when ``train.on_divergence: record``, else the job stops with the ``DivergenceError``;
* the progress bar, the results (``runio.run_result``) and the outputs (``runio.write_outputs``).

Steppers: ``train.SingleStepper`` (one model, ``engine.run_epoch``) and ``batched.StackedStepper``
(a ``vmap`` over stacked weights). Both draw each run's batches from its own generator, built here
from ``settings.run_batch_seed``.
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, Protocol

import torch
from tqdm.auto import tqdm

from .. import fileio, optim
from ..engine import DivergenceError, LossLog, accuracy, all_finite, make_deterministic, pick_device
from . import runio, settings
from .tasks import Task
from .types import RunMetrics, RunSpec


class Stepper(Protocol):
    """The weights and optimizer of a job's S runs, and how to train and read them."""

    optimizer: torch.optim.Optimizer
    timing: dict[str, Any]  # extra fields of each run's ``timing`` (batched: ``batched_seeds``)

    def epoch(self, x: torch.Tensor, y: torch.Tensor, batch_size: int, generators: list[torch.Generator],
              step: int, after_step: Callable[[Any, int], None]) -> int:
        """One pass over ``x`` (N, features), ``y`` (N,) for every run, each in its generator's order;
        ``after_step(losses, step)`` after every optimizer step, ``losses[s]`` run s's loss (0-d).
        Returns the global step count."""

    def models(self) -> Iterator[tuple[int, torch.nn.Module]]:
        """(s, run s's model holding its current weights), for s = 0 .. S-1."""

    def new_optimizer(self) -> None:
        """Replace the optimizer by a fresh one (``train.reset_optimizer``)."""

    def begin_task(self, i: int, task: Task) -> None:
        """Task i is about to be trained (after any reset): a regularizer's start of task."""

    def end_task(self, i: int) -> None:
        """Task i's epochs are over, before its evaluation and resume state: a regularizer's end of
        task (EWC's importances), so that the state saved after task i holds them."""

    def weights(self) -> dict[str, torch.Tensor]:
        """The weights to save in a resume state."""

    def load_weights(self, saved: dict[str, torch.Tensor]) -> None:
        """Restore what ``weights`` returned."""

    def diagnostics(self, s: int) -> tuple[dict[str, Any], dict[str, float]]:
        """Run s's optimizer (counters, durations): ``engine.optimizer_diagnostics``."""


class AllEnded(Exception):
    """Every run of the job has diverged (recorded): training stops."""


def train_tasks(specs: list[RunSpec], build: Callable[[list[RunSpec], torch.device], Stepper],
                dataset_path: str | Path, metrics_paths: list[str | Path | None],
                checkpoint_dirs: list[str | Path | None], progress: bool, resume_path: str | Path | None,
                label: str) -> list[RunMetrics]:
    """Train the S runs of ``specs`` task by task with the stepper ``build(specs, device)`` returns;
    write and return their metrics, in order.

    Writes, per run, a checkpoint after each task (``fileio.checkpoint_path``, when its
    ``checkpoint_dirs`` entry is set) and its metrics.json (``metrics_paths``, when set; last, once
    the whole job is done). With ``resume_path``, saves the resume state there after every task but
    the last and once the job has ended (``runio``), and starts from it when it holds a state of
    these specs. ``label`` names the job in the log and the progress bar. Cost: T tasks x epochs x
    ceil(N/batch) optimizer steps per run, plus T x T test evaluations per run.

    Raises ``DivergenceError`` (unless divergence is recorded), ``DataError`` when the dataset fails
    its checksum, ``OptimizerConfigError`` on a bad optimizer entry and ``ValueError`` on a bad
    ``train`` block (``settings.check``), the last two before anything is loaded.
    """
    first, S = specs[0], len(specs)
    train_cfg, bench_cfg = first["train"], first["benchmark_cfg"]  # complete: the schema fills every default
    wheres = [f"{s['benchmark']}/{s['optimizer']}/seed{int(s['seed'])}" for s in specs]
    for spec in specs:  # fail before loading anything heavy
        optim.check(spec["optimizer"], spec["optimizer_cfg"])
        settings.check(spec["optimizer"], spec["optimizer_cfg"], spec["train"])
    reset_preconditioner = settings.resets_preconditioner(train_cfg)
    device = pick_device(train_cfg["device"])
    key = {"runs": [runio.run_key(s, dataset_path, device) for s in specs]} if resume_path is not None else None
    saved = runio.load(resume_path, key) if resume_path is not None else None
    if saved is not None and saved.get("results") is not None:  # finished before the job was stopped
        print(f"{label}: finished earlier, restored from {resume_path} (not trained again)", flush=True)
        return [runio.write_outputs(json.loads(r), c, m, d) for r, c, m, d in
                zip(saved["results"], saved["checkpoints"], metrics_paths, checkpoint_dirs)]
    make_deterministic(int(first["seed"]), int(train_cfg["threads"]), device)  # steppers draw from generators
    started = time.perf_counter()

    tasks, val_tasks = runio.load_tasks(first, dataset_path, device)
    stepper = build(specs, device)
    epochs, batch_size = int(bench_cfg["epochs_per_task"]), int(bench_cfg["batch_size"])
    generators = [torch.Generator().manual_seed(settings.run_batch_seed(spec)) for spec in specs]
    hint = (f"Lower optimizers.{first['optimizer']}.lr (now {first['optimizer_cfg'].get('lr')}) in the config, "
            "or check the optimizer's settings.")
    logs = [LossLog(int(train_cfg["loss_log_every"]), where, hint) for where in wheres]
    for ckpt in checkpoint_dirs:
        if ckpt is not None:
            Path(ckpt).mkdir(parents=True, exist_ok=True)
    R: list[list[list[float]]] = [[] for _ in specs]  # R[s]: run s's rows so far
    R_val: list[list[list[float]]] = [[] for _ in specs]
    checkpoints: list[list[dict[str, torch.Tensor]]] = [[] for _ in specs]  # after each finished task (CPU)
    ended: dict[int, dict[str, Any]] = {}  # run index -> {"error", "step", "diagnostics"}: diverged (recorded)
    step, spent, done, eval_s = 0, 0.0, 0, 0.0  # eval_s: seconds in evaluate, for optbias bench's breakdown
    if saved is not None:  # continue after the last completed task, exactly where it left off
        stepper.load_weights(saved["weights"])
        runio.restore_optimizer(stepper.optimizer, saved["optimizer"])
        for g, state in zip(generators, saved["generators"]):
            g.set_state(state)
        runio.set_rng_states(saved["rng"], device)
        for log, curve, window in zip(logs, saved["loss_curves"], saved["loss_windows"]):
            log.curve = curve
            log.window = list(window.to(device).unbind()) if window is not None else []
        R, R_val, checkpoints, step, spent, done = (saved["R"], saved["R_val"], saved["checkpoints"], saved["step"],
                                                    saved["spent_s"], saved["done"])
        eval_s = saved.get("eval_s", 0.0)  # a state saved before the field existed: evaluation time from here on
        ended = {int(k): v for k, v in saved["ended"].items()}
        for s, ckpt in enumerate(checkpoint_dirs):  # a failed job's checkpoints were removed
            for i, state_dict in enumerate(checkpoints[s] if ckpt is not None else []):
                fileio.atomic_torch_save(state_dict, fileio.checkpoint_path(ckpt, i))
        print(f"{label}: resumed from {resume_path} after {done} of {len(tasks)} tasks", flush=True)

    def end(s: int, err: DivergenceError, at: int) -> None:
        """Run s diverged: record it (its numbers stop here, its optimizer's counters too), or stop
        the job. ``at``: its step count (at the start of the epoch the loss diverged in)."""
        if train_cfg.get("on_divergence", "fail") != "record":
            raise err
        ended[s] = {"error": str(err), "step": at, "diagnostics": list(stepper.diagnostics(s))}

    total = sum(epochs * math.ceil(len(t.y_train) / batch_size) for t in tasks)
    bar = tqdm(total=total, initial=step, disable=not progress, mininterval=2.0, desc=label)
    try:
        for i, task in enumerate(tasks):
            if i < done:  # completed before a resume (a saved state always has a run left: see the breaks)
                continue
            if i > 0 and train_cfg["reset_optimizer"]:
                stepper.new_optimizer()
            if i > 0 and reset_preconditioner:  # statistics only; settings.check made sure it has the method
                stepper.optimizer.reset_preconditioner()
            stepper.begin_task(i, task)
            for epoch in range(epochs):
                def after_step(losses: Any, at: int, i: int = i, epoch: int = epoch) -> None:
                    for s, log in enumerate(logs):
                        if s not in ended:
                            try:
                                log.add(losses[s], at, i, f"task {i} ({task.name}), epoch {epoch}")
                            except DivergenceError as err:
                                end(s, err, epoch_start)
                    bar.update()
                    if len(ended) == S:
                        raise AllEnded

                epoch_start = step
                try:
                    step = stepper.epoch(task.x_train, task.y_train, batch_size, generators, step, after_step)
                except AllEnded:  # every run diverged (recorded): nothing left to train
                    break
            if len(ended) < S:
                stepper.end_task(i)
                evaluating = time.perf_counter()
                evaluate(stepper, i, tasks, val_tasks, ended, R, R_val, checkpoints, checkpoint_dirs,
                         lambda s, why: end(s, DivergenceError(f"{wheres[s]}: {why}. {hint}"), step))
                eval_s += time.perf_counter() - evaluating
            if len(ended) == S:
                break
            done = i + 1
            bar.set_postfix(task=i, acc_current=", ".join(f"{R[s][-1][i]:.3f}" for s in range(S) if s not in ended))
            if resume_path is not None and i < len(tasks) - 1:  # after the last task, the final save below
                runio.save(resume_path, {
                    "key": key, "weights": stepper.weights(), "optimizer": stepper.optimizer.state_dict(),
                    "generators": [g.get_state() for g in generators], "rng": runio.rng_states(device),
                    "loss_curves": [log.curve for log in logs],
                    "loss_windows": [torch.stack(log.window).cpu() if log.window else None for log in logs],
                    "R": R, "R_val": R_val, "checkpoints": checkpoints, "step": step, "done": done,
                    "ended": {str(k): v for k, v in ended.items()},
                    "spent_s": spent + time.perf_counter() - started, "eval_s": eval_s, "results": None})
    finally:
        bar.close()
    wall = round((spent + time.perf_counter() - started) / S, 3)
    results = []
    for s, spec in enumerate(specs):  # a diverged run's counters as they were when it ended
        counters, durations = ended[s]["diagnostics"] if s in ended else stepper.diagnostics(s)
        status, error = ("diverged", ended[s]["error"]) if s in ended else ("ok", None)
        at = ended[s]["step"] if s in ended else step
        results.append(runio.run_result(spec, tasks, status, error, R[s], R_val[s] if val_tasks else None,
                                        logs[s].curve, at, counters, device,
                                        {"wall_time_s": wall, "eval_time_s": round(eval_s / S, 3), **stepper.timing,
                                         **durations}))
    if resume_path is not None:  # a rerun of the job restores these runs instead of training them again
        runio.save(resume_path, {"key": key, "results": [json.dumps(r) for r in results],
                                 "checkpoints": checkpoints})
    return [runio.write_outputs(r, [], m, None) for r, m in zip(results, metrics_paths)]


def evaluate(stepper: Stepper, i: int, tasks: list[Task], val_tasks: list[Task], ended: dict[int, Any],
             R: list[list[list[float]]], R_val: list[list[list[float]]],
             checkpoints: list[list[dict[str, torch.Tensor]]], checkpoint_dirs: list[str | Path | None],
             end: Callable[[int, str], None]) -> None:
    """After task i: for every run still going, end it (``end(s, why)``) when its weights hold NaN/inf, else append
    its row of R (accuracy on every task's test split), of R_val (on the held-out parts) and its
    checkpoint (written atomically when its ``checkpoint_dirs`` entry is set)."""
    for s, model in stepper.models():
        if s in ended:
            continue
        if not all_finite(model):
            end(s, f"the weights hold NaN or inf after task {i} ({tasks[i].name})")
            continue
        model.eval()
        R[s].append([accuracy(model, t.x_test, t.y_test) for t in tasks])
        R_val[s].extend([[accuracy(model, t.x_test, t.y_test) for t in val_tasks]] if val_tasks else [])
        if checkpoint_dirs[s] is not None:  # kept for the resume state too: a failed job's checkpoints are removed
            checkpoints[s].append({k: v.detach().cpu().clone() for k, v in model.state_dict().items()})
            fileio.atomic_torch_save(checkpoints[s][-1], fileio.checkpoint_path(checkpoint_dirs[s], i))
