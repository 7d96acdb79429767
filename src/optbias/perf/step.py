"""Shampoo's cost, as ratios from one run (not a timed test): ``optbias perf-shampoo``.

Prints, at the default width and batch size:
* Shampoo training-step time / AdamW training-step time (the target is <= 2x);
* the fraction of Shampoo's step time spent recomputing roots (eigh);
* the achieved FLOP/s of Shampoo's matrix work / this device's float32 matmul peak (measured);
  the FLOP counts are ``optbias.perf.flops``'s.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable

import torch
import torch.nn.functional as F

from ..engine import pick_device
from ..models import MLP
from ..optim import registry as optim
from . import flops


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def step_time(entry: dict | Callable[[Iterable[torch.Tensor]], torch.optim.Optimizer], hidden: list[int], batch: int,
              steps: int, device: torch.device) -> tuple[float, object]:
    """Mean seconds per training step (forward, backward, optimizer step) after 3 warm-up steps.

    ``entry``: a registry entry (``{"type": ..., "lr": ...}``) or a function params -> optimizer
    (a peer implementation). The batch is one fixed random (batch, 784) input with random labels.
    """
    torch.manual_seed(0)
    model = MLP(784, hidden, 10).to(device)
    opt = entry(model.parameters()) if callable(entry) else optim.build(entry, model.parameters(), model=model)
    x, y = torch.rand(batch, 784, device=device), torch.randint(0, 10, (batch,), device=device)

    def one_step() -> None:
        loss = F.cross_entropy(model(x), y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    for _ in range(3):
        one_step()
    _sync(device)
    if hasattr(opt, "root_time_s"):
        opt.root_time_s = 0.0
    start = time.perf_counter()
    for _ in range(steps):
        one_step()
    _sync(device)
    return (time.perf_counter() - start) / steps, opt


def matmul_peak(device: torch.device, n: int = 2048, repeats: int = 5) -> float:
    """Measured float32 matmul FLOP/s on this device (the best of a few n x n products)."""
    a, b = torch.rand(n, n, device=device), torch.rand(n, n, device=device)
    a @ b
    best = float("inf")
    for _ in range(repeats):
        _sync(device)
        start = time.perf_counter()
        a @ b
        _sync(device)
        best = min(best, time.perf_counter() - start)
    return 2 * n**3 / best


def report(hidden: list[int], batch: int = 64, steps: int = 60, threads: int = 1,
           shampoo_lr: float = 0.05, update_freq: int = 10, peak_n: int = 2048) -> dict[str, float]:
    """Shampoo's and AdamW's step times (ms) on the MLP, their ratio, the root share and the FLOP bound,
    measured side by side in one process on ``threads`` threads (``optbias perf-shampoo``)."""
    torch.set_num_threads(threads)
    device = pick_device("auto")
    hidden = list(hidden)
    adamw_s, _ = step_time({"type": "adamw", "lr": 1e-3}, hidden, batch, steps, device)
    shampoo_s, opt = step_time({"type": "shampoo", "lr": shampoo_lr, "update_freq": update_freq}, hidden, batch,
                               steps, device)
    peak = matmul_peak(device, peak_n)
    widths = [784, *hidden, 10]
    shampoo_matrix = flops.shampoo({}, widths, batch, roots=False)  # dense statistics and products
    return {
        "device": str(device) if device.type == "cpu" else torch.cuda.get_device_name(device),
        "threads": threads,
        "adamw_step_ms": 1e3 * adamw_s,
        "shampoo_step_ms": 1e3 * shampoo_s,
        "shampoo_over_adamw": shampoo_s / adamw_s,
        "root_fraction": opt.root_time_s / (shampoo_s * steps),
        "matmul_peak_gflops": peak / 1e9,
        "shampoo_matrix_gflops": shampoo_matrix / shampoo_s / 1e9,
        "shampoo_matrix_flops_over_peak": shampoo_matrix / shampoo_s / peak,
        # Even at equal efficiency, Shampoo's matrix work alone makes a step this many times an
        # SGD step's FLOPs (roots excluded): the floor under shampoo_over_adamw at this width and batch.
        "flop_lower_bound_ratio": (flops.model(widths, batch) + shampoo_matrix) / flops.model(widths, batch),
    }
