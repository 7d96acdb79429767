"""Sequential training on a continual-learning benchmark, filling the accuracy matrix R task by task.

One run = one (benchmark, optimizer, seed). The whole dataset lives on the device (CUDA when
present), batches are drawn with a seeded generator, and the initial weights depend on the seed
only, so every optimizer starts from the same point: any difference in the solution is the
optimizer's doing. After each task the model is evaluated on every task's test split (row i of R)
and a checkpoint (state_dict only) is written atomically.
"""

from __future__ import annotations

from collections.abc import Callable

import math
import os
import platform
import time
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from tqdm.auto import tqdm

from . import benchmarks, data, fileio, metrics, optim
from .models import MLP


class DivergenceError(RuntimeError):
    """The training loss became NaN or inf; the message says where and what to change."""


def pick_device(requested: str = "auto") -> torch.device:
    """``auto`` picks CUDA when present, else the CPU."""
    if requested == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if requested.startswith("cuda") and not torch.cuda.is_available():
        raise RuntimeError(f"train.device is {requested!r} but CUDA is not available; use 'auto' or 'cpu'")
    return torch.device(requested)


def make_deterministic(seed: int, threads: int, device: torch.device | None = None) -> None:
    """Seed, and pin the thread count (CPU results depend on it, so --cores must not change them).

    Deterministic algorithms are switched on for CUDA only: the CPU kernels this project uses are
    deterministic for a fixed thread count, and the switch costs ~1.5 s of imports in every job.
    """
    if device is None or device.type == "cuda":
        # cuBLAS needs this before its first call to give bitwise-reproducible matmuls.
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
        torch.use_deterministic_algorithms(True, warn_only=True)
    torch.set_num_threads(threads)
    torch.manual_seed(seed)


@torch.no_grad()
def accuracy(model: torch.nn.Module, x: torch.Tensor, y: torch.Tensor, batch_size: int = 4096) -> float:
    """Top-1 accuracy over all output classes (no task id: the shared head must pick the digit)."""
    correct = 0
    for start in range(0, len(y), batch_size):
        logits = model(x[start:start + batch_size])
        correct += int((logits.argmax(dim=1) == y[start:start + batch_size]).sum())
    return correct / len(y)


def init_model(seed: int, model_cfg: dict, in_features: int = 784, num_classes: int = 10) -> MLP:
    """Initialize on the CPU from the seed alone, so every optimizer and device starts identically."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return MLP(in_features, model_cfg.get("hidden", [256, 256]), num_classes)


def optimizer_diagnostics(optimizer: torch.optim.Optimizer) -> tuple[dict[str, Any], dict[str, float]]:
    """Split what an optimizer reports about itself into (counters, durations).

    Counters (e.g. Shampoo's root failures) are deterministic; durations (keys ending in ``_s``)
    are not, so they go to the run's ``timing`` block, next to the wall time.
    """
    report = getattr(optimizer, "diagnostics", None)
    everything = dict(report()) if callable(report) else {}
    durations = {k: v for k, v in everything.items() if k.endswith("_s")}
    return {k: v for k, v in everything.items() if k not in durations}, durations


def run_epoch(model: torch.nn.Module, optimizer: torch.optim.Optimizer, x: torch.Tensor, y: torch.Tensor,
              batch_size: int, generator: torch.Generator, step: int,
              after_step: Callable[[torch.Tensor, int], None]) -> int:
    """One pass over (x, y) in a seeded order: the one training step every experiment uses.

    Returns the global step count; ``after_step(loss, step)`` logs (and may raise on a NaN loss)."""
    order = torch.randperm(len(y), generator=generator).to(y.device)
    for start in range(0, len(order), batch_size):
        idx = order[start:start + batch_size]
        loss = F.cross_entropy(model(x[idx]), y[idx])
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        step += 1
        after_step(loss, step)
    return step


class LossLog:
    """Mean training loss over windows of ``every`` steps; raises on a non-finite window."""

    def __init__(self, every: int, where: str, hint: str) -> None:
        self.every, self.where, self.hint = every, where, hint
        self.curve: dict[str, list] = {"step": [], "task": [], "loss": []}
        self.window: list[torch.Tensor] = []

    def add(self, loss: torch.Tensor, step: int, task: int, context: str) -> None:
        self.window.append(loss.detach())
        if len(self.window) < self.every:
            return
        mean_loss = float(torch.stack(self.window).mean())  # one device sync per window, not per step
        self.window.clear()
        if not math.isfinite(mean_loss):
            raise DivergenceError(
                f"{self.where}: the training loss became {mean_loss} at {context}, step {step}. {self.hint}"
            )
        self.curve["step"].append(step)
        self.curve["task"].append(task)
        self.curve["loss"].append(mean_loss)


def train_run(spec: dict, dataset_path: str | Path, metrics_path: str | Path | None = None,
              checkpoint_dir: str | Path | None = None, progress: bool = True) -> dict[str, Any]:
    """Train one run described by ``spec`` and return its metrics.

    ``spec`` keys: benchmark, benchmark_cfg, optimizer, optimizer_cfg, seed, model, train.
    With ``checkpoint_dir``, writes ``task{i}.pt`` there after each task; with ``metrics_path``,
    writes the metrics JSON there last, so its presence means the run completed.

    ``train.validation_fraction > 0`` holds out that (stratified) part of every task's training
    split, trains on the rest and also fills ``R_val`` from the held-out part: the learning-rate
    sweep selects on it, never on the test split. ``train.on_divergence: record`` (the sweep's
    setting) turns a NaN loss into ``status: diverged`` instead of an error.
    """
    train_cfg = spec.get("train", {})
    bench_cfg = spec["benchmark_cfg"]
    seed = int(spec["seed"])
    where = f"{spec['benchmark']}/{spec['optimizer']}/seed{seed}"
    optim.check(spec["optimizer"], spec["optimizer_cfg"])  # fail before loading anything heavy
    device = pick_device(train_cfg.get("device", "auto"))
    make_deterministic(seed, int(train_cfg.get("threads", 1)), device)
    started = time.perf_counter()

    tasks = benchmarks.get(spec["benchmark"]).build(data.load(dataset_path), bench_cfg)
    val_tasks: list[benchmarks.Task] = []
    val_fraction = float(train_cfg.get("validation_fraction", 0.0))
    if val_fraction > 0:
        # The split depends on the task only, not on the run's seed: every optimizer sees the same one.
        tasks, val_tasks = map(list, zip(*(benchmarks.split_validation(t, val_fraction, k)
                                           for k, t in enumerate(tasks))))
        val_tasks = [t.to(device) for t in val_tasks]
    tasks = [t.to(device) for t in tasks]
    model = init_model(seed, spec.get("model", {})).to(device)
    make_optimizer = lambda: optim.build(spec["optimizer_cfg"], model.parameters(), spec["optimizer"])  # noqa: E731
    optimizer = make_optimizer()

    epochs = int(bench_cfg.get("epochs_per_task", 1))
    batch_size = int(bench_cfg.get("batch_size", 64))
    generator = torch.Generator().manual_seed(seed + 1)
    hint = (f"Lower optimizers.{spec['optimizer']}.lr (now {spec['optimizer_cfg'].get('lr')}) in the config, "
            "or check the optimizer's settings.")
    log = LossLog(int(train_cfg.get("loss_log_every", 10)), where, hint)
    ckpt_dir = Path(checkpoint_dir) if checkpoint_dir is not None else None
    if ckpt_dir is not None:
        ckpt_dir.mkdir(parents=True, exist_ok=True)

    R: list[list[float]] = []
    R_val: list[list[float]] = []
    step = 0
    status, error = "ok", None
    total = sum(epochs * math.ceil(len(t.y_train) / batch_size) for t in tasks)
    bar = tqdm(total=total, disable=not progress, mininterval=2.0, desc=where)
    try:
        for i, task in enumerate(tasks):
            if i > 0 and train_cfg.get("reset_optimizer", False):
                optimizer = make_optimizer()
            model.train()
            for epoch in range(epochs):
                def after_step(loss: torch.Tensor, step: int, i: int = i, epoch: int = epoch) -> None:
                    log.add(loss, step, i, f"task {i} ({task.name}), epoch {epoch}")
                    bar.update()

                step = run_epoch(model, optimizer, task.x_train, task.y_train, batch_size, generator, step,
                                 after_step)
            if not all(torch.isfinite(p).all() for p in model.parameters()):
                raise DivergenceError(f"{where}: the weights hold NaN or inf after task {i} ({task.name}). {hint}")
            model.eval()
            R.append([accuracy(model, t.x_test, t.y_test) for t in tasks])
            R_val.extend([[accuracy(model, t.x_test, t.y_test) for t in val_tasks]] if val_tasks else [])
            bar.set_postfix(task=i, acc_current=f"{R[-1][i]:.3f}", acc_first=f"{R[-1][0]:.3f}")
            if ckpt_dir is not None:
                fileio.atomic_torch_save({k: v.detach().cpu() for k, v in model.state_dict().items()},
                                         ckpt_dir / f"task{i}.pt")
    except DivergenceError as err:
        if train_cfg.get("on_divergence", "fail") != "record":
            raise
        status, error = "diverged", str(err)
    finally:
        bar.close()
    counters, durations = optimizer_diagnostics(optimizer)

    result = {
        "benchmark": spec["benchmark"],
        "optimizer": spec["optimizer"],
        "seed": seed,
        "spec": spec,
        "tasks": [t.name for t in tasks],
        "status": status,
        "error": error,
        "R": R,
        **(metrics.summarize(R) if status == "ok" else {}),
        "loss_curve": log.curve,
        "steps": step,
        "optimizer_diagnostics": counters,
        "device": str(device) if device.type == "cpu" else torch.cuda.get_device_name(device),
        "torch_version": torch.__version__,
        "platform": platform.machine(),
        # The only fields that differ between two runs of the same seed on the same device.
        "timing": {"wall_time_s": round(time.perf_counter() - started, 3), **durations},
    }
    if val_tasks:
        result["R_val"] = R_val
        # The sweep's selection score: accuracy on the task being learned, on held-out data.
        result["validation_score"] = (sum(R_val[i][i] for i in range(len(tasks))) / len(tasks)
                                      if status == "ok" else None)
    if metrics_path is not None:
        fileio.atomic_write_json(metrics_path, result)
    return result


def train_runs(specs: list[dict], dataset_path: str | Path, metrics_paths: list[str | Path],
               checkpoint_dirs: list[str | Path] | None = None, progress: bool = True,
               report: Callable[[dict[str, Any]], None] | None = None) -> list[dict[str, Any]]:
    """Train several independent runs one after another in this process.

    Why: a process pays ~3-4 s of start-up (importing torch and torch.optim's dynamo hooks), as much
    as a whole small run; the workflow trains every seed of one (benchmark, optimizer) in one job.
    Each run seeds itself (``make_deterministic``), so its results equal those of a run on its own.
    Every spec is checked before the first run starts; each metrics file is written when its run
    ends, and ``report`` (if given) sees its result then.
    """
    checkpoint_dirs = list(checkpoint_dirs) if checkpoint_dirs else [None] * len(specs)
    if not (len(specs) == len(metrics_paths) == len(checkpoint_dirs)):
        raise ValueError(f"train: {len(specs)} specs, {len(metrics_paths)} metrics paths and "
                         f"{len(checkpoint_dirs)} checkpoint directories; give one of each per run, in the same order")
    for spec in specs:
        optim.check(spec["optimizer"], spec["optimizer_cfg"])
    results = []
    for spec, metrics_path, ckpt in zip(specs, metrics_paths, checkpoint_dirs):
        results.append(train_run(spec, dataset_path, metrics_path, ckpt, progress=progress))
        if report is not None:
            report(results[-1])
    return results
