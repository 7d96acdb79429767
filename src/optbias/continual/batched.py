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

Divergence: each run keeps its own loss log. A run that diverges ends there, exactly as it would
alone (``on_divergence: record``: status diverged, its R so far, the same step count and error),
while the others go on; once every run has ended, training stops. A diverged run's stacked slice
keeps being updated, but no number of it is read again. With ``on_divergence: fail`` the job stops
with the error of the first run to diverge during training: where several would, that may be
another seed than the one a one-by-one job names (it names the first in seed order).

Resume: after every task, the whole stack's state (weights, optimizer state, generators, logs,
rows of R, checkpoints) is saved to one file (``state_path``). A job killed and run again continues
after the last completed task, and its outputs equal an uninterrupted batched job's byte for byte
(timing aside).
"""

from __future__ import annotations

import copy
import json
import math
import time
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from tqdm.auto import tqdm

from .. import fileio, optim
from ..engine import (DivergenceError, LossLog, accuracy, all_finite, make_deterministic, optimizer_diagnostics,
                      pick_device)
from ..models import init_model
from . import resume, settings
from .train import load_tasks, run_result, write_outputs
from .types import RunMetrics, RunSpec


class AllEnded(Exception):
    """Every run of a batched job has diverged (recorded): training stops."""


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
    (element-wise, or with a stacked class)."""
    if len(specs) < 2:
        return "one run only"
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


def state_path(metrics_paths: list[str | Path]) -> Path:
    """A batched job's one resume state: beside its first run's directory, ``<run dir>.batched.pt``."""
    run_dir = Path(metrics_paths[0]).parent
    return run_dir.with_name(run_dir.name + ".batched.pt")


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
    first, S = specs[0], len(specs)
    train_cfg, bench_cfg = first["train"], first["benchmark_cfg"]
    seeds = [int(s["seed"]) for s in specs]
    wheres = [f"{s['benchmark']}/{s['optimizer']}/seed{seed}" for s, seed in zip(specs, seeds)]
    optim.check(first["optimizer"], first["optimizer_cfg"])
    settings.check(first["optimizer"], first["optimizer_cfg"], train_cfg)
    reset_preconditioner = settings.resets_preconditioner(train_cfg)
    device = pick_device(train_cfg["device"])
    key = ({"batched": [resume.run_key(s, dataset_path, device) for s in specs]}
           if resume_path is not None else None)
    saved = resume.load(resume_path, key) if resume_path is not None else None
    if saved is not None and saved.get("results") is not None:  # finished before the job was stopped
        print(f"{first['benchmark']}/{first['optimizer']}: {S} batched runs finished earlier, restored from "
              f"{resume_path} (not trained again)", flush=True)
        return [write_outputs(json.loads(r), c, m, d) for r, c, m, d in
                zip(saved["results"], saved["checkpoints"], metrics_paths, checkpoint_dirs)]
    make_deterministic(seeds[0], int(train_cfg["threads"]), device)  # the per-element optimizers draw nothing
    started = time.perf_counter()

    tasks, val_tasks = load_tasks(first, dataset_path, device)
    models = [init_model(seed, first["model"]).to(device) for seed in seeds]  # run s's model: evaluation
    params, buffers = torch.func.stack_module_state(models)  # name -> (S, ...), leaves requiring grad
    base = copy.deepcopy(models[0]).to("meta")  # the architecture only, for functional_call
    grad_fn = torch.func.vmap(torch.func.grad_and_value(stacked_loss(base)))
    make_optimizer = lambda: optim.build(first["optimizer_cfg"], list(params.values()), first["optimizer"],  # noqa: E731
                                         stacked=True)
    optimizer = make_optimizer()

    epochs, batch_size = int(bench_cfg["epochs_per_task"]), int(bench_cfg["batch_size"])
    generators = [torch.Generator().manual_seed(settings.run_batch_seed(spec)) for spec in specs]
    hint = (f"Lower optimizers.{first['optimizer']}.lr (now {first['optimizer_cfg'].get('lr')}) in the config, "
            "or check the optimizer's settings.")
    logs = [LossLog(int(train_cfg["loss_log_every"]), where, hint) for where in wheres]
    for ckpt in checkpoint_dirs:
        if ckpt is not None:
            Path(ckpt).mkdir(parents=True, exist_ok=True)
    R: list[list[list[float]]] = [[] for _ in specs]
    R_val: list[list[list[float]]] = [[] for _ in specs]
    checkpoints: list[list[dict[str, torch.Tensor]]] = [[] for _ in specs]
    ended: dict[int, dict[str, Any]] = {}  # run index -> {"error", "step"}: diverged (recorded) runs
    step, spent, done = 0, 0.0, 0
    if saved is not None:
        with torch.no_grad():
            for name, p in params.items():
                p.copy_(saved["params"][name].to(device))
        resume.restore_optimizer(optimizer, saved["optimizer"])
        for g, state in zip(generators, saved["generators"]):
            g.set_state(state)
        resume.set_rng_states(saved["rng"], device)
        for log, curve, window in zip(logs, saved["loss_curves"], saved["loss_windows"]):
            log.curve = curve
            log.window = list(window.to(device).unbind()) if window is not None else []
        R, R_val, checkpoints, step, spent, done = (saved["R"], saved["R_val"], saved["checkpoints"], saved["step"],
                                                    saved["spent_s"], saved["done"])
        ended = {int(k): v for k, v in saved["ended"].items()}
        for s, ckpt in enumerate(checkpoint_dirs):
            for i, state_dict in enumerate(checkpoints[s] if ckpt is not None else []):
                fileio.atomic_torch_save(state_dict, fileio.checkpoint_path(ckpt, i))
        print(f"{first['benchmark']}/{first['optimizer']}: {S} batched runs resumed from {resume_path} after "
              f"{done} of {len(tasks)} tasks", flush=True)

    record = train_cfg.get("on_divergence", "fail") == "record"

    def end(s: int, err: DivergenceError, at: int) -> None:
        """Run s diverged: record it (its numbers stop here, its optimizer's counters too), or stop
        the job. ``at``: its step count, as ``train_run`` reports it (at the start of the epoch the
        loss diverged in)."""
        if not record:
            raise err
        ended[s] = {"error": str(err), "step": at, "diagnostics": list(optimizer_diagnostics(optimizer, run=s))}

    total = sum(epochs * math.ceil(len(t.y_train) / batch_size) for t in tasks)
    bar = tqdm(total=total, initial=step, disable=not progress, mininterval=2.0,
               desc=f"{first['benchmark']}/{first['optimizer']} ({S} seeds batched)")
    try:
        for i, task in enumerate(tasks):
            if i < done:  # completed before a resume (a saved state always has a run left: see the break below)
                continue
            if i > 0 and train_cfg["reset_optimizer"]:
                optimizer = make_optimizer()
            if i > 0 and reset_preconditioner:  # every run's statistics (StackedShampoo inherits the method)
                optimizer.reset_preconditioner()
            for epoch in range(epochs):
                def after_step(losses: torch.Tensor, at: int, i: int = i, epoch: int = epoch) -> None:
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
                    step = run_epoch_batched(params, buffers, grad_fn, optimizer, task.x_train, task.y_train,
                                             batch_size, generators, step, after_step)
                except AllEnded:  # every run diverged (recorded): nothing left to train
                    break
            if len(ended) == S:
                break
            for s, model in enumerate(models):
                if s in ended:
                    continue
                with torch.no_grad():
                    for name, p in model.named_parameters():
                        p.copy_(params[name][s])
                if not all_finite(model):
                    end(s, DivergenceError(f"{wheres[s]}: the weights hold NaN or inf after task {i} ({task.name}). "
                                           f"{hint}"), step)
                    continue
                model.eval()
                R[s].append([accuracy(model, t.x_test, t.y_test) for t in tasks])
                R_val[s].extend([[accuracy(model, t.x_test, t.y_test) for t in val_tasks]] if val_tasks else [])
                if checkpoint_dirs[s] is not None:
                    checkpoints[s].append({k: v.detach().cpu().clone() for k, v in model.state_dict().items()})
                    fileio.atomic_torch_save(checkpoints[s][-1], fileio.checkpoint_path(checkpoint_dirs[s], i))
            done = i + 1
            bar.set_postfix(task=i, acc_current=", ".join(f"{R[s][-1][i]:.3f}" for s in range(S) if s not in ended))
            if resume_path is not None and i < len(tasks) - 1:
                resume.save(resume_path, {
                    "key": key, "params": {k: v.detach() for k, v in params.items()},
                    "optimizer": optimizer.state_dict(), "generators": [g.get_state() for g in generators],
                    "rng": resume.rng_states(device), "loss_curves": [log.curve for log in logs],
                    "loss_windows": [torch.stack(log.window).cpu() if log.window else None for log in logs],
                    "R": R, "R_val": R_val, "checkpoints": checkpoints, "step": step, "done": done,
                    "ended": {str(k): v for k, v in ended.items()},
                    "spent_s": spent + time.perf_counter() - started, "results": None})
    finally:
        bar.close()
    wall = round((spent + time.perf_counter() - started) / S, 3)
    results = []
    for s, spec in enumerate(specs):  # a diverged run's counters as they were when it ended
        counters, durations = (ended[s]["diagnostics"] if s in ended and "diagnostics" in ended[s]
                               else optimizer_diagnostics(optimizer, run=s))
        status, error = ("diverged", ended[s]["error"]) if s in ended else ("ok", None)
        at = ended[s]["step"] if s in ended else step
        results.append(run_result(spec, tasks, status, error, R[s], R_val[s] if val_tasks else None, logs[s].curve,
                                  at, counters, device, {"wall_time_s": wall, "batched_seeds": S, **durations}))
    if resume_path is not None:
        resume.save(resume_path, {"key": key, "results": [json.dumps(r) for r in results], "checkpoints": checkpoints})
    return [write_outputs(r, [], m, None) for r, m in zip(results, metrics_paths)]

