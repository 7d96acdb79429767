"""Seeds batched in one process: every seed of one (benchmark, optimizer) trained as one stacked model.

The S runs of a job differ only in their seed: initial weights (``init_model(seed)``) and batch
order (a generator seeded ``settings.run_batch_seed(spec)``, ``train_run``'s rule: ``seed + 1``, or
another order with ``train.batch_order``). Here their weights are stacked along a new leading
dimension (``torch.func.stack_module_state``: a (out, in) weight becomes (S, out, in)), and one
``vmap`` of ``grad_and_value`` over the stack gives each run the gradient of its own loss on its
own minibatch, in the order its own generator draws. For an optimizer whose update is per element
(``elementwise`` in its row of ``optim.registry.TYPES``: SGD, Adam, AdamW, Adagrad), one optimizer
over the stacked tensors then takes exactly the step each run's own optimizer would take. Shampoo,
whose preconditioner mixes the elements of a matrix, has a stacked class of its own (its row's
``stacked``: optim/stacked_shampoo.py): every run's factors, roots and grafting norms, batched.
Either way it is the same algorithm as ``train.train_run``, in exact arithmetic.

In floating point the batched matmuls may round differently from the per-run ones, so the
results equal the one-by-one runs within the tolerance tests/test_batched.py states and checks
(float64: every weight within 1e-10; the default float32: R, loss curve and checkpoints of the
element-wise optimizers; Shampoo's whole runs in float64 within 1e-6, and in float32 no numeric
tolerance, because its roots' rounding noise is as large between float32 and float64 roots). The
per-run results (metrics.json, checkpoints) have the same layout as ``train_run``'s, and are
evaluated by the same code on each run's unstacked weights.

Costs: the same FLOPs as S runs one after another, in S-times larger kernels, which is what keeps
a GPU busy. On one CPU thread `optbias bench` measured it slower (figure 6 of docs/performance.md);
our reading, not measured: the small matmuls already run near the matmul peak there (figure 4), so
nothing is left to gain, and the element-wise passes over S-times larger tensors fit the cache less
well. That is why ``train.batch_seeds: auto`` batches on CUDA only (where the speed-up is not
measured yet).

The per-task loop (resume, checkpoints, evaluation, divergence, progress) is ``loop.train_tasks``,
the same as ``train.train_run``'s; this module holds what differs: ``StackedStepper``.

Divergence: each run keeps its own loss log. A run that diverges ends there, exactly as it would
alone (``on_divergence: record``: status diverged, its R so far, the same step count and error),
while the others go on; once every run has ended, training stops. A diverged run's stacked slice
keeps being updated, but no number of it is read again. With ``on_divergence: fail`` the job stops
with the error of the first run to diverge during training: where several would, that may be
another seed than the one a one-by-one job names (it names the first in seed order).

Resume: after every task, the whole stack's state (weights, optimizer state, generators, logs,
rows of R, checkpoints) is saved to one file (``runio.batched_state_path``). A job killed and run again continues
after the last completed task, and its outputs equal an uninterrupted batched job's byte for byte
(timing aside).
"""

from __future__ import annotations

import copy
import json
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F

from .. import optim
from ..engine import optimizer_diagnostics, pick_device
from ..models import init_model
from . import loop
from .types import RunMetrics, RunSpec


def plan(specs: list[RunSpec]) -> str | None:
    """Why ``specs`` run one after another, or None when they are batched (``train_batched``).

    They are batched when ``train.batch_seeds`` is true, or ``auto`` (the default) on CUDA, and
    ``batchable(specs)`` holds. Raises ``ValueError`` on a ``batch_seeds`` that is not auto, true or false.
    """
    mode = specs[0]["train"].get("batch_seeds", "auto") if specs else "auto"
    if not (mode == "auto" or mode is True or mode is False):  # `is`: 0 == False and 1 == True are no modes
        raise ValueError(f"train.batch_seeds is {mode!r}; set it to auto, true or false in the config")
    if mode is False:
        return "train.batch_seeds is false"
    if mode == "auto" and specs and pick_device(specs[0]["train"]["device"]).type != "cuda":
        return ("train.batch_seeds is auto and the device is the CPU, where batching measured slower "
                "(docs/performance.md); set it to true to batch anyway")
    return batchable(specs)


def batchable(specs: list[RunSpec]) -> str | None:
    """Why ``specs`` cannot be trained as one stacked model, or None when they can: at least two
    runs, with distinct seeds, that differ in nothing else, of an optimizer type in ``optim.BATCHABLE``
    (element-wise, or with a stacked class), and without a reference regularizer."""
    if len(specs) < 2:
        return "one run only"
    if "regularizer" in specs[0]["optimizer_cfg"]:
        return (f"a reference regularizer ({specs[0]['optimizer_cfg']['regularizer']}) is trained one run at a time "
                "(optbias.continual.regularizers)")
    kind = specs[0]["optimizer_cfg"]["type"]
    if kind not in optim.BATCHABLE:
        return (f"optimizer type {kind!r} is neither element-wise nor has a stacked class "
                f"(batched: {', '.join(sorted(optim.BATCHABLE))})")
    rest = [json.dumps({k: v for k, v in s.items() if k != "seed"}, sort_keys=True) for s in specs]
    if len(set(rest)) > 1:
        return "the runs differ in more than their seed"
    if len({int(s["seed"]) for s in specs}) < len(specs):
        return "two runs share a seed"
    return None


def stacked_loss(base: torch.nn.Module):
    """``f(params, buffers, x, y) -> loss`` of one run (``x``: (B, features), ``y``: (B,)): the model
    ``base`` called with the given weights, mean cross-entropy, as ``engine.run_epoch`` computes it.
    ``vmap`` of its ``grad_and_value`` maps it over the stacked runs."""
    def loss(params: dict[str, torch.Tensor], buffers: dict[str, torch.Tensor], x: torch.Tensor,
             y: torch.Tensor) -> torch.Tensor:
        return F.cross_entropy(torch.func.functional_call(base, (params, buffers), (x,)), y)
    return loss


def run_epoch_batched(params: dict[str, torch.Tensor], buffers: dict[str, torch.Tensor], grad_fn,
                      optimizer: torch.optim.Optimizer, x: torch.Tensor, y: torch.Tensor, batch_size: int,
                      generators: list[torch.Generator], step: int, after_step) -> int:
    """One pass over (x, y) for every stacked run: ``engine.run_epoch`` for S runs at once.

    ``params``/``buffers``: name -> (S, ...) stacked tensors (the optimizer's parameters);
    ``grad_fn``: ``vmap(grad_and_value(stacked_loss(base)))``; ``x``: (N, features), ``y``: (N,);
    ``generators``: one per run (CPU), each drawing its run's order exactly as ``run_epoch`` does.
    Every minibatch is (S, b, features): run s's rows ``order_s[start:start + b]``. Calls
    ``after_step(losses, step)`` with the S losses, shape (S,). Returns the global step count.
    """
    orders = torch.stack([torch.randperm(len(y), generator=g) for g in generators]).to(y.device)  # (S, N)
    frozen = {k: v.detach() for k, v in params.items()}  # views: the optimizer updates them in place
    for start in range(0, orders.shape[1], batch_size):
        idx = orders[:, start:start + batch_size]  # (S, b)
        grads, losses = grad_fn(frozen, buffers, x[idx], y[idx])  # name -> (S, ...), (S,)
        optimizer.zero_grad(set_to_none=True)
        for name, p in params.items():
            p.grad = grads[name]
        optimizer.step()
        step += 1
        after_step(losses, step)
    return step


class StackedStepper:
    """The S runs' weights stacked along a new leading dimension, and one optimizer over them
    (``loop.Stepper``): ``run_epoch_batched`` steps them, run s's model (``models``) is evaluated."""

    def __init__(self, specs: list[RunSpec], device: torch.device) -> None:
        self.spec, S = specs[0], len(specs)
        self.timing = {"batched_seeds": S}
        self.run_models = [init_model(int(s["seed"]), self.spec["model"]).to(device) for s in specs]
        self.params, self.buffers = torch.func.stack_module_state(self.run_models)  # name -> (S, ...)
        base = copy.deepcopy(self.run_models[0]).to("meta")  # the architecture only, for functional_call
        self.grad_fn = torch.func.vmap(torch.func.grad_and_value(stacked_loss(base)))
        self.optimizer = self._build()

    def _build(self) -> torch.optim.Optimizer:
        return optim.build(self.spec["optimizer_cfg"], list(self.params.values()), self.spec["optimizer"],
                           stacked=True)

    def epoch(self, x: torch.Tensor, y: torch.Tensor, batch_size: int, generators: list[torch.Generator],
              step: int, after_step: Callable[[Any, int], None]) -> int:
        return run_epoch_batched(self.params, self.buffers, self.grad_fn, self.optimizer, x, y, batch_size,
                                 generators, step, after_step)

    def models(self) -> Iterator[tuple[int, torch.nn.Module]]:
        for s, model in enumerate(self.run_models):
            with torch.no_grad():
                for name, p in model.named_parameters():
                    p.copy_(self.params[name][s])
            yield s, model

    def new_optimizer(self) -> None:
        self.optimizer = self._build()

    def begin_task(self, i: int, task: Any) -> None:
        """Nothing: stacked runs carry no regularizer (``batchable``)."""

    def end_task(self, i: int) -> None:
        """Nothing: stacked runs carry no regularizer (``batchable``)."""

    def weights(self) -> dict[str, torch.Tensor]:
        return {k: v.detach() for k, v in self.params.items()}

    def load_weights(self, saved: dict[str, torch.Tensor]) -> None:
        with torch.no_grad():
            for name, p in self.params.items():
                p.copy_(saved[name].to(p.device))

    def diagnostics(self, s: int) -> tuple[dict[str, Any], dict[str, float]]:
        return optimizer_diagnostics(self.optimizer, run=s)


def train_batched(specs: list[RunSpec], dataset_path: str | Path, metrics_paths: list[str | Path],
                  checkpoint_dirs: list[str | Path | None], progress: bool = True,
                  resume_path: str | Path | None = None) -> list[RunMetrics]:
    """Train the S runs of ``specs`` (``batchable(specs)`` is None) together; return their metrics, in order.

    Writes what ``train.train_run`` writes for each run: a checkpoint per task (when its
    ``checkpoint_dirs`` entry is set), then its metrics.json (``metrics_paths``; last, when the
    whole job is done). Each run's ``timing`` holds the job's wall time divided by S and
    ``batched_seeds: S``. Cost: that of the S runs one after another (T tasks x epochs x
    ceil(N/batch) steps each), in batched kernels; memory S times one run's weights and state.

    Raises ``ValueError`` when ``batchable`` refuses the specs, and what ``train_run`` raises otherwise
    (``DivergenceError`` of the first run to diverge unless divergence is recorded).
    """
    why = batchable(specs)
    if why is not None:
        raise ValueError(f"train_batched: these runs cannot be trained as one stacked model: {why}")
    label = f"{specs[0]['benchmark']}/{specs[0]['optimizer']} ({len(specs)} seeds batched)"
    return loop.train_tasks(specs, StackedStepper, dataset_path, metrics_paths, checkpoint_dirs, progress,
                            resume_path, label)
