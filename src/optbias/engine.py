"""The one training engine: device, determinism, the training step, evaluation, the loss log.

Every experiment that trains a model trains through ``run_epoch`` and evaluates through
``accuracy``: the continual-learning runs (``optbias.continual.train``) and the Powerprop runs
(``optbias.powerprop.runs``). What differs between them (which tasks, when to evaluate, what to
save) lives with the experiment; what must not differ (batch order from a seeded generator, the
loss, the step, the NaN check, the device, determinism) lives here. Two measurements take a few
fixed steps of their own instead, on purpose: the Powerprop trajectory check
(``optbias.powerprop.equivalence``, float64, a fixed list of batches shared by both forms) and the
step timer ``optbias.perf.step``; both use ``make_deterministic`` and ``pick_device`` from here.
"""

from __future__ import annotations

import math
import os
import platform
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F


class DivergenceError(RuntimeError):
    """The training loss became NaN or inf; the message says where and what to change."""


def pick_device(requested: str = "auto") -> torch.device:
    """``auto`` picks CUDA when present, else the CPU.

    Raises ``RuntimeError`` when ``cuda`` is requested and absent (the message names the fix).
    """
    if requested == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if requested.startswith("cuda") and not torch.cuda.is_available():
        raise RuntimeError(f"train.device is {requested!r} but CUDA is not available; use 'auto' or 'cpu'")
    return torch.device(requested)


def device_name(device: torch.device) -> str:
    """``cpu``, or the GPU's product name (what a run's ``metrics.json`` records)."""
    return str(device) if device.type == "cpu" else torch.cuda.get_device_name(device)


def machine() -> dict[str, str | int]:
    """What tells two runs' machines apart (their numbers agree bit for bit only on the same machine,
    torch build and thread count): CPU model, logical CPUs, the CPU instructions torch uses, its
    BLAS and LAPACK, the torch and Python versions, and the thread count in use."""
    cpu = platform.processor() or "unknown"
    if Path("/proc/cpuinfo").is_file():
        found = re.search(r"^model name\s*:\s*(.+)$", Path("/proc/cpuinfo").read_text(), flags=re.M)
        cpu = found.group(1).strip() if found else cpu
    build = torch.__config__.show()

    def setting(pattern: str) -> str:
        found = re.search(pattern, build)
        return found.group(1).strip() if found else "unknown"

    return {"cpu_model": cpu, "cpu_count": os.cpu_count() or 0,
            "cpu_capability": setting(r"CPU capability usage: (\S+)"),
            "blas": setting(r"BLAS_INFO=([^,]+)"), "lapack": setting(r"LAPACK_INFO=([^,]+)"),
            "torch": torch.__version__, "python": platform.python_version(), "machine": platform.machine(),
            "torch_threads": torch.get_num_threads()}


def make_deterministic(seed: int, threads: int, device: torch.device | None = None) -> None:
    """Seed, and pin the thread count (CPU results depend on it, so --cores must not change them).

    Seeds torch's global RNG and numpy's legacy global one: the project draws from its own
    generators, but a library optimizer may draw from either (pytorch_optimizer's Kron draws
    ``np.random.random()`` every step to decide when to rebalance its factors).

    Deterministic algorithms are switched on for CUDA only: the CPU kernels this project uses are
    deterministic for a fixed thread count, and the switch would add imports to every job's fixed
    cost (that cost: figure 3 of docs/performance.md, written by ``optbias bench``).
    """
    if device is None or device.type == "cuda":
        # cuBLAS needs this before its first call to give bitwise-reproducible matmuls.
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
        torch.use_deterministic_algorithms(True, warn_only=True)
    torch.set_num_threads(threads)
    torch.manual_seed(seed)
    np.random.seed(seed)


@torch.no_grad()
def accuracy(model: torch.nn.Module, x: torch.Tensor, y: torch.Tensor, batch_size: int = 4096) -> float:
    """Top-1 accuracy in [0, 1] over all output classes (no task id: the shared head must pick the digit).

    ``x``: (N, features); ``y``: (N,) integer labels. Evaluated in chunks of ``batch_size`` rows.
    """
    correct = 0
    for start in range(0, len(y), batch_size):
        logits = model(x[start:start + batch_size])  # (chunk, classes)
        correct += int((logits.argmax(dim=1) == y[start:start + batch_size]).sum())
    return correct / len(y)


def all_finite(model: torch.nn.Module) -> bool:
    """Whether every parameter of ``model`` is finite (no NaN, no inf)."""
    return all(torch.isfinite(p).all() for p in model.parameters())


def optimizer_diagnostics(optimizer: torch.optim.Optimizer, run: int | None = None) -> tuple[dict[str, Any],
                                                                                           dict[str, float]]:
    """Split what an optimizer reports about itself into (counters, durations).

    Counters (e.g. Shampoo's root failures) are deterministic; durations (keys ending in ``_s``)
    are not, so they go to the run's ``timing`` block, next to the wall time. ``run``: for an
    optimizer over stacked runs (the batched-seed mode), run ``run``'s own report when the optimizer
    keeps one per run (``run_diagnostics``), else the whole job's.
    """
    report = getattr(optimizer, "diagnostics", None)
    per_run = getattr(optimizer, "run_diagnostics", None)
    if run is not None and callable(per_run):
        report = lambda: per_run(run)  # noqa: E731
    everything = dict(report()) if callable(report) else {}
    durations = {k: v for k, v in everything.items() if k.endswith("_s")}
    return {k: v for k, v in everything.items() if k not in durations}, durations


def run_epoch(model: torch.nn.Module, optimizer: torch.optim.Optimizer, x: torch.Tensor, y: torch.Tensor,
              batch_size: int, generator: torch.Generator, step: int,
              after_step: Callable[[torch.Tensor, int], None], regularizer: Any = None) -> int:
    """One pass over (x, y) in a seeded order: the one training step every experiment uses.

    ``x``: (N, features) and ``y``: (N,) on the model's device; ``generator`` (CPU) draws the order,
    so the batches depend on its seed only. Minibatches of ``batch_size`` rows (the last may be
    shorter), cross-entropy loss, one optimizer step each. Returns the global step count;
    ``after_step(loss, step)`` logs (and may raise ``DivergenceError`` on a NaN loss).

    ``regularizer`` (``optbias.continual.regularizers.Regularizer``; None: nothing else is done):
    its ``before_step()`` before the forward pass, the gradient taken of ``penalize(loss)`` (the
    loss plus its penalty), its ``after_step()`` after the optimizer step, with the gradients still
    in place. ``after_step(loss, step)`` still gets the cross-entropy alone, so that the loss
    curves of regularized and plain runs compare.
    """
    order = torch.randperm(len(y), generator=generator).to(y.device)
    for start in range(0, len(order), batch_size):
        idx = order[start:start + batch_size]
        if regularizer is not None:
            regularizer.before_step()
        loss = F.cross_entropy(model(x[idx]), y[idx])
        optimizer.zero_grad(set_to_none=True)
        (loss if regularizer is None else regularizer.penalize(loss)).backward()
        optimizer.step()
        if regularizer is not None:
            regularizer.after_step()
        step += 1
        after_step(loss, step)
    return step


class LossLog:
    """Mean training loss over windows of ``every`` steps; raises ``DivergenceError`` on a non-finite window.

    ``curve`` holds one entry per window: the global step at its end, the task index, the mean loss.
    """

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
