"""Sequential training on a continual-learning benchmark, filling the accuracy matrix R task by task.

One run = one (benchmark, optimizer, seed). The whole dataset lives on the device (CUDA when
present), batches are drawn with a seeded generator (``settings.batch_seed``: the seed and the
optional ``train.batch_order``), and the initial weights depend on the seed only, so every
optimizer starts from the same point: any difference in the solution is the optimizer's doing.
After each task the model is evaluated on every task's test split (row i of R) and a checkpoint
(state_dict only) is written atomically.
"""

from __future__ import annotations

import json
import math
import platform
import time
from pathlib import Path

import torch
from tqdm.auto import tqdm

from .. import data, fileio, optim
from ..engine import (DivergenceError, LossLog, accuracy, all_finite, device_name, machine, make_deterministic,
                      optimizer_diagnostics, pick_device, run_epoch)
from ..models import init_model
from . import benchmarks, metrics, resume, settings
from .tasks import Task, split_validation
from .types import RunMetrics, RunSpec


def train_run(spec: RunSpec, dataset_path: str | Path, metrics_path: str | Path | None = None,
              checkpoint_dir: str | Path | None = None, progress: bool = True,
              resume_path: str | Path | None = None) -> RunMetrics:
    """Train one run described by ``spec`` and return its metrics (``RunMetrics``, the metrics.json).

    With ``checkpoint_dir``, writes the state_dict after each task i to
    ``fileio.checkpoint_path(checkpoint_dir, i)``; with ``metrics_path``, writes the metrics JSON
    there last, so its presence means the run completed. Cost: T tasks x epochs x ceil(N/batch)
    optimizer steps, plus T x T test evaluations.

    With ``resume_path`` (``optbias.continual.resume``), saves the resume state there after every
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
    train_cfg = spec["train"]  # complete: the schema fills every default
    bench_cfg = spec["benchmark_cfg"]
    seed = int(spec["seed"])
    where = f"{spec['benchmark']}/{spec['optimizer']}/seed{seed}"
    optim.check(spec["optimizer"], spec["optimizer_cfg"])  # fail before loading anything heavy
    settings.check(spec["optimizer"], spec["optimizer_cfg"], train_cfg)
    reset_preconditioner = settings.resets_preconditioner(train_cfg)
    device = pick_device(train_cfg["device"])
    key = resume.run_key(spec, dataset_path, device) if resume_path is not None else None
    saved = resume.load(resume_path, key) if resume_path is not None else None
    if saved is not None and saved.get("result") is not None:  # finished before the job was stopped
        print(f"{where}: finished earlier, restored from {resume_path} (not trained again)", flush=True)
        return write_outputs(json.loads(saved["result"]), saved["checkpoints"], metrics_path, checkpoint_dir)
    make_deterministic(seed, int(train_cfg["threads"]), device)
    started = time.perf_counter()

    tasks, val_tasks = load_tasks(spec, dataset_path, device)
    model = init_model(seed, spec["model"]).to(device)
    make_optimizer = lambda: optim.build(spec["optimizer_cfg"], model.parameters(), spec["optimizer"],  # noqa: E731
                                          model=model)
    optimizer = make_optimizer()

    epochs = int(bench_cfg["epochs_per_task"])
    batch_size = int(bench_cfg["batch_size"])
    generator = torch.Generator().manual_seed(settings.run_batch_seed(spec))
    hint = (f"Lower optimizers.{spec['optimizer']}.lr (now {spec['optimizer_cfg'].get('lr')}) in the config, "
            "or check the optimizer's settings.")
    log = LossLog(int(train_cfg["loss_log_every"]), where, hint)
    ckpt_dir = Path(checkpoint_dir) if checkpoint_dir is not None else None
    if ckpt_dir is not None:
        ckpt_dir.mkdir(parents=True, exist_ok=True)

    R: list[list[float]] = []
    R_val: list[list[float]] = []
    checkpoints: list[dict[str, torch.Tensor]] = []  # the state_dict after each finished task (CPU)
    step, spent = 0, 0.0
    if saved is not None:  # continue after the last completed task, exactly where it left off
        model.load_state_dict(saved["model"])
        resume.restore_optimizer(optimizer, saved["optimizer"])
        generator.set_state(saved["generator"])
        resume.set_rng_states(saved["rng"], device)
        log.curve = saved["loss_curve"]
        log.window = list(saved["loss_window"].to(device).unbind()) if saved["loss_window"] is not None else []
        R, R_val, checkpoints, step, spent = (saved["R"], saved["R_val"], saved["checkpoints"], saved["step"],
                                              saved["spent_s"])
        for i, state_dict in enumerate(checkpoints if ckpt_dir is not None else []):  # a failed job's were removed
            fileio.atomic_torch_save(state_dict, fileio.checkpoint_path(ckpt_dir, i))
        print(f"{where}: resumed from {resume_path} after {len(R)} of {len(tasks)} tasks", flush=True)
    status, error = "ok", None
    total = sum(epochs * math.ceil(len(t.y_train) / batch_size) for t in tasks)
    bar = tqdm(total=total, initial=step, disable=not progress, mininterval=2.0, desc=where)
    try:
        for i, task in enumerate(tasks):
            if i < len(R):  # completed before a resume
                continue
            if i > 0 and train_cfg["reset_optimizer"]:
                getattr(optimizer, "close", lambda: None)()  # its hooks on the model (Shampoo's gradient_factors)
                optimizer = make_optimizer()
            if i > 0 and reset_preconditioner:  # statistics only; settings.check made sure it has the method
                optimizer.reset_preconditioner()
            model.train()
            for epoch in range(epochs):
                def after_step(loss: torch.Tensor, step: int, i: int = i, epoch: int = epoch) -> None:
                    log.add(loss, step, i, f"task {i} ({task.name}), epoch {epoch}")
                    bar.update()

                step = run_epoch(model, optimizer, task.x_train, task.y_train, batch_size, generator, step,
                                 after_step)
            if not all_finite(model):
                raise DivergenceError(f"{where}: the weights hold NaN or inf after task {i} ({task.name}). {hint}")
            model.eval()
            R.append([accuracy(model, t.x_test, t.y_test) for t in tasks])
            R_val.extend([[accuracy(model, t.x_test, t.y_test) for t in val_tasks]] if val_tasks else [])
            bar.set_postfix(task=i, acc_current=f"{R[-1][i]:.3f}", acc_first=f"{R[-1][0]:.3f}")
            if ckpt_dir is not None:  # kept for the resume state too: a failed job's checkpoints are removed
                checkpoints.append({k: v.detach().cpu().clone() for k, v in model.state_dict().items()})
                fileio.atomic_torch_save(checkpoints[-1], fileio.checkpoint_path(ckpt_dir, i))
            if resume_path is not None and i < len(tasks) - 1:  # after the last task, the final save below
                resume.save(resume_path, {
                    "key": key, "model": model.state_dict(), "optimizer": optimizer.state_dict(),
                    "generator": generator.get_state(), "rng": resume.rng_states(device),
                    "loss_curve": log.curve, "loss_window": torch.stack(log.window).cpu() if log.window else None,
                    "R": R, "R_val": R_val, "checkpoints": checkpoints, "step": step,
                    "spent_s": spent + time.perf_counter() - started, "result": None})
    except DivergenceError as err:
        if train_cfg.get("on_divergence", "fail") != "record":
            raise
        status, error = "diverged", str(err)
    finally:
        bar.close()
    counters, durations = optimizer_diagnostics(optimizer)
    result = run_result(spec, tasks, status, error, R, R_val if val_tasks else None, log.curve, step, counters,
                        device, {"wall_time_s": round(spent + time.perf_counter() - started, 3), **durations})
    if resume_path is not None:  # a rerun of the job restores this run instead of training it again
        resume.save(resume_path, {"key": key, "result": json.dumps(result), "checkpoints": checkpoints})
    return write_outputs(result, checkpoints, metrics_path, None)


def load_tasks(spec: RunSpec, dataset_path: str | Path, device: torch.device) -> tuple[list[Task], list[Task]]:
    """The run's tasks on ``device``, and their held-out parts when ``train.validation_fraction > 0``
    (else an empty list). The split depends on the task only, never on the seed: every optimizer and
    seed sees the same one. Raises ``DataError`` when the dataset fails its checksum."""
    tasks = benchmarks.get(spec["benchmark"]).build(data.load(dataset_path), spec["benchmark_cfg"])
    val_tasks: list[Task] = []
    val_fraction = float(spec["train"].get("validation_fraction", 0.0))
    if val_fraction > 0:
        tasks, val_tasks = map(list, zip(*(split_validation(t, val_fraction, k) for k, t in enumerate(tasks))))
        val_tasks = [t.to(device) for t in val_tasks]
    return [t.to(device) for t in tasks], val_tasks


def run_result(spec: RunSpec, tasks: list[Task], status: str, error: str | None, R: list[list[float]],
               R_val: list[list[float]] | None, curve: dict, steps: int, counters: dict, device: torch.device,
               timing: dict[str, float]) -> RunMetrics:
    """A run's metrics.json (``RunMetrics``) from what its training recorded. ``R``: the rows of the
    tasks trained (T x T when ``status`` is ok); ``R_val``: the held-out rows, or None when nothing
    was held out; ``timing``: wall time and durations, the only fields that differ between two runs
    of the same spec on the same device."""
    result: RunMetrics = {
        "benchmark": spec["benchmark"],
        "optimizer": spec["optimizer"],
        "seed": int(spec["seed"]),
        "spec": spec,
        "tasks": [t.name for t in tasks],
        "status": status,
        "error": error,
        "R": R,
        **(metrics.summarize(R) if status == "ok" else {}),
        "loss_curve": curve,
        "steps": steps,
        "optimizer_diagnostics": counters,
        "device": device_name(device),
        "torch_version": torch.__version__,
        "platform": platform.machine(),
        "machine": machine(),  # which machine made these numbers (docs/reproducibility.md)
        "timing": timing,
    }
    if R_val is not None:
        result["R_val"] = R_val
        # The sweep's selection score: accuracy on the task being learned, on held-out data.
        result["validation_score"] = (sum(R_val[i][i] for i in range(len(tasks))) / len(tasks)
                                      if status == "ok" else None)
    return result


def write_outputs(result: RunMetrics, checkpoints: list[dict[str, torch.Tensor]], metrics_path: str | Path | None,
                  checkpoint_dir: str | Path | None) -> RunMetrics:
    """Write a run's checkpoints (when ``checkpoint_dir``), then its metrics.json (last: its presence
    means the run completed); return ``result``."""
    if checkpoint_dir is not None:
        for i, state_dict in enumerate(checkpoints):
            fileio.atomic_torch_save(state_dict, fileio.checkpoint_path(checkpoint_dir, i))
    if metrics_path is not None:
        fileio.atomic_write_json(metrics_path, result)
    return result


def describe(result: RunMetrics) -> str:
    """One line for a job's log: the run, its headline metrics, time and device (or how it ended)."""
    where = f"{result['benchmark']}/{result['optimizer']}/seed{result['seed']}"
    if result["status"] != "ok":
        return f"{result['status']}: {result['error']}"  # the error names the run
    return (f"{where}: average accuracy {result['average_accuracy']:.4f}, average forgetting "
            f"{result['average_forgetting']:.4f}, BWT {result['bwt']:.4f}, {result['timing']['wall_time_s']:.1f} s "
            f"on {result['device']}")


def train_runs(specs: list[RunSpec], dataset_path: str | Path, metrics_paths: list[str | Path],
               checkpoint_dirs: list[str | Path] | None = None, progress: bool = True,
               resume_states: bool = True) -> list[RunMetrics]:
    """Train several independent runs one after another in this process; print ``describe`` of each.

    Why: a process pays ~3-4 s of start-up (importing torch and torch.optim's dynamo hooks), as much
    as a whole small run; the workflow trains every seed of one (benchmark, optimizer) in one job
    (unless `seed_jobs: separate`, for a cluster).
    Each run seeds itself (``make_deterministic``), so its results equal those of a run on its own.
    Every spec is checked before the first run starts; each metrics file is written when its run
    ends. Raises ``ValueError`` when the three lists differ in length.

    With ``resume_states`` (the workflow's way), each run keeps its resume state next to its
    directory (``resume.state_path``): a job killed or preempted and run again restores the runs
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
    from . import batched  # here, not at the top: batched builds on this module
    why = batched.plan(specs)
    # Either mode's states: a job interrupted in one mode and completed in the other leaves none behind.
    states = ([resume.state_path(m) for m in metrics_paths] + [batched.state_path(metrics_paths)]
              if resume_states and specs else [None] * (len(specs) + 1))
    if why is None:
        print(f"train: {len(specs)} runs batched in one stacked model (train.batch_seeds)", flush=True)
        results = batched.train_batched(specs, dataset_path, metrics_paths, checkpoint_dirs, progress, states[-1])
        for result in results:
            print(describe(result), flush=True)
    else:
        if len(specs) > 1:
            print(f"train: {len(specs)} runs one after another ({why})", flush=True)
        results = []
        for spec, metrics_path, ckpt, state in zip(specs, metrics_paths, checkpoint_dirs, states):
            results.append(train_run(spec, dataset_path, metrics_path, ckpt, progress=progress, resume_path=state))
            print(describe(results[-1]), flush=True)
    for state in states:
        if state is not None:
            resume.remove(state)
    return results
