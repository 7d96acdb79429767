"""The Powerprop sparsity experiment: one task (all ten digits), several methods, pruning.

A *method* is an optimizer entry of the registry, optionally applied to a Powerprop
reparameterized model (``reparam_alpha``)::

    sgd:        {optimizer: {type: sgd},                       lrs: [...]}
    reparam-a2: {optimizer: {type: sgd}, reparam_alpha: 2,     lrs: [...]}   # SGD on v
    ppsgd-a2:   {optimizer: {type: powerprop_sgd, alpha: 2},   lrs: [...]}   # its optimizer form on w

Every method starts from the same w (the seed's ``init_model``; the reparameterization maps
v = sign(w)|w|^(1/α)), sees the same batches, and is saved as a *plain* state_dict of effective
weights, so evaluation and pruning (``optbias.sparsity``) never know which form produced it.

Learning rates are chosen per method before any sparsity number is computed, by the rule of
``optbias.sweep``: train once per candidate on a validation seed, holding out a stratified part
of the training split; the held-out accuracy picks the lr (ties: the smaller; diverged: 0).
Several trainings run in one process (one per lr, or one per seed) to keep the pipeline short.
"""

from __future__ import annotations

import copy
import math
import time
from pathlib import Path
from typing import Any

import torch

from . import benchmarks, data, fileio, optim, sparsity, sweep
from .benchmarks import Task
from .models import MLP
from .stats import bootstrap_ci
from .powerprop import powerprop_reparametrize, to_plain_state_dict
from .train import DivergenceError, LossLog, accuracy, init_model, make_deterministic, pick_device, run_epoch

TASK_NAME = "all-digits"


class PowerpropConfigError(ValueError):
    """The ``powerprop`` config block names something unusable; the message says what to fix."""


def check_config(cfg: dict) -> None:
    """Fail at parse time if a method cannot build its optimizer (unknown type, missing alpha, ...)."""
    methods = cfg.get("methods", {})
    if not methods:
        raise PowerpropConfigError("powerprop.methods: at least one method is needed")
    for name, method in methods.items():
        if "lr" in method.get("optimizer", {}):
            raise PowerpropConfigError(f"powerprop.methods.{name}.optimizer: remove lr; list candidates under "
                                       f"powerprop.methods.{name}.lrs and the validation rule picks one")
        entry = {**method.get("optimizer", {}), "lr": method["lrs"][0]}
        try:
            optim.check(f"(powerprop.methods.{name}.optimizer)", entry)
        except optim.OptimizerConfigError as err:
            raise PowerpropConfigError(str(err)) from None
        alpha = method.get("reparam_alpha")
        if alpha is not None and not (isinstance(alpha, (int, float)) and math.isfinite(alpha) and alpha >= 1):
            raise PowerpropConfigError(f"powerprop.methods.{name}.reparam_alpha must be a number >= 1, got {alpha!r}")
    fractions = cfg.get("prune_fractions", [])
    if any(not 0 <= f <= 1 for f in fractions) or list(fractions) != sorted(fractions):
        raise PowerpropConfigError(f"powerprop.prune_fractions must be increasing values in [0, 1], got {fractions}")


def form(method: dict) -> str:
    """``reparameterized`` (trained on v), ``powerprop optimizer`` (on w) or ``baseline``."""
    if method.get("reparam_alpha") is not None:
        return "reparameterized"
    return "powerprop optimizer" if str(method["optimizer"].get("type", "")).startswith("powerprop") else "baseline"


def single_task(dataset_path: str | Path) -> Task:
    """All ten digits of the dataset's train/test splits as one task (pixels scaled to [0, 1])."""
    (task,) = benchmarks.permuted(data.load(dataset_path), n_tasks=1)  # task 0 is the identity permutation
    return Task(TASK_NAME, task.classes, task.x_train, task.y_train, task.x_test, task.y_test)


def build(method: dict, lr: float, seed: int, model_cfg: dict, name: str = "method") -> tuple[MLP, torch.optim.Optimizer]:
    """The seed's initial model (reparameterized if the method says so) and its optimizer."""
    model = init_model(seed, model_cfg)
    alpha = method.get("reparam_alpha")
    if alpha is not None:
        powerprop_reparametrize(model, float(alpha))
    entry = {**method["optimizer"], "lr": float(lr)}
    return model, optim.build(entry, model.parameters(), name)


def fit(model: torch.nn.Module, optimizer: torch.optim.Optimizer, task: Task, epochs: int, batch_size: int,
        seed: int, where: str) -> list[float]:
    """Plain minibatch training; batches come from ``seed + 1`` as in ``optbias.train``.

    Returns the loss curve (means over 10-step windows); raises ``DivergenceError`` on NaN/inf.
    """
    generator = torch.Generator().manual_seed(seed + 1)
    log = LossLog(10, where, "Lower this method's candidate learning rates in the powerprop config.")
    model.train()
    step = 0
    for epoch in range(epochs):
        step = run_epoch(model, optimizer, task.x_train, task.y_train, batch_size, generator, step,
                         lambda loss, step, epoch=epoch: log.add(loss, step, 0, f"epoch {epoch}"))
    if not all(torch.isfinite(p).all() for p in model.parameters()):
        raise DivergenceError(f"{where}: the weights hold NaN or inf after training")
    model.eval()
    return log.curve["loss"]


@torch.no_grad()
def evaluate(state_dict: dict[str, torch.Tensor], model_cfg: dict, task: Task, prune_fractions: list[float],
             relative_threshold: float, histogram: dict | None = None) -> dict[str, Any]:
    """Test accuracy, near-zero fraction, accuracy after global magnitude pruning, |w| histogram.

    Works on a plain state_dict only, loaded into a fresh plain MLP (``strict=True``).
    """
    model = MLP(task.x_test.shape[1], model_cfg.get("hidden", [256, 256]), 10).to(task.x_test.device)

    def acc(sd: dict[str, torch.Tensor]) -> float:
        model.load_state_dict(sd, strict=True)
        model.eval()
        return accuracy(model, task.x_test, task.y_test)

    magnitudes = sparsity.weight_magnitudes(state_dict)
    return {
        "test_accuracy": acc(state_dict),
        "sparsity_fraction": sparsity.fraction_below(magnitudes, relative_threshold),
        "max_abs_weight": float(magnitudes.max()),
        "pruned_accuracy": {f"{p:g}": acc(sparsity.global_magnitude_prune(state_dict, p)) for p in prune_fractions},
        "histogram": sparsity.log10_histogram(magnitudes, **(histogram or {})),
    }


def _setup(cfg: dict, seed: int) -> torch.device:
    device = pick_device(cfg.get("device", "auto"))
    make_deterministic(seed, int(cfg.get("threads", 1)), device)
    return device


def sweep_method(name: str, method: dict, cfg: dict, model_cfg: dict, dataset_path: str | Path) -> dict:
    """Train once per candidate lr on the validation seed with a held-out split; pick the lr."""
    seed = int(cfg["validation_seed"])
    device = _setup(cfg, seed)
    fit_task, val_task = benchmarks.split_validation(single_task(dataset_path), float(cfg["validation_fraction"]), 0)
    fit_task, val_task = fit_task.to(device), val_task.to(device)
    runs = []
    for lr in method["lrs"]:
        started = time.perf_counter()
        model, opt = build(method, lr, seed, model_cfg, name)
        model.to(device)
        status, score, error = "ok", None, None
        try:
            fit(model, opt, fit_task, int(cfg["epochs"]), int(cfg["batch_size"]), seed, f"powerprop sweep {name} lr={lr:g}")
            score = accuracy(model, val_task.x_test, val_task.y_test)
        except DivergenceError as err:
            status, error = "diverged", str(err)
        runs.append({"optimizer": name, "benchmark": TASK_NAME, "spec": {"optimizer_cfg": {"lr": float(lr)}},
                     "status": status, "validation_score": score, "error": error,
                     "wall_time_s": round(time.perf_counter() - started, 3)})
    (selection,) = sweep.select(runs, {}).values()
    return {"method": name, "method_cfg": method, "seed": seed, "validation_fraction": cfg["validation_fraction"],
            "selected_lr": selection["selected_lr"], "edge_of_grid": selection["edge_of_grid"],
            "candidates": selection["candidates"],
            "runs": [{k: r[k] for k in ("status", "validation_score", "error")} | {"lr": r["spec"]["optimizer_cfg"]["lr"]}
                     for r in runs],
            "timing": {"wall_time_s": sum(r["wall_time_s"] for r in runs)}}


def train_method(name: str, method: dict, lr: float, cfg: dict, model_cfg: dict, dataset_path: str | Path,
                 checkpoints: list[str | Path]) -> dict:
    """Train one method at its selected lr on every reported seed; save plain state_dicts; evaluate."""
    seeds = [int(s) for s in cfg["seeds"]]
    if len(checkpoints) != len(seeds):
        raise ValueError(f"train_method: {len(seeds)} seeds but {len(checkpoints)} checkpoint paths")
    device = _setup(cfg, seeds[0])
    task = single_task(dataset_path).to(device)
    results = []
    started_all = time.perf_counter()
    for seed, ckpt in zip(seeds, checkpoints):
        _setup(cfg, seed)
        started = time.perf_counter()
        model, opt = build(method, lr, seed, model_cfg, name)
        model.to(device)
        entry: dict[str, Any] = {"seed": seed, "status": "ok", "error": None}
        try:
            entry["loss_curve"] = fit(model, opt, task, int(cfg["epochs"]), int(cfg["batch_size"]), seed,
                                      f"powerprop {name} seed{seed} lr={lr:g}")
        except DivergenceError as err:
            entry.update(status="diverged", error=str(err))
        plain = {k: v.detach().cpu() for k, v in to_plain_state_dict(model).items()}
        fileio.atomic_torch_save(plain, ckpt)
        if entry["status"] == "ok":
            entry.update(evaluate({k: v.to(device) for k, v in plain.items()}, model_cfg, task,
                                  list(cfg["prune_fractions"]), float(cfg["sparsity_threshold"]), cfg.get("histogram")))
        entry["wall_time_s"] = round(time.perf_counter() - started, 3)
        results.append(entry)
    return {
        "method": name,
        "method_cfg": copy.deepcopy(method),
        "form": form(method),
        "lr": float(lr),
        "task": TASK_NAME,
        "prune_fractions": list(cfg["prune_fractions"]),
        "sparsity_threshold": float(cfg["sparsity_threshold"]),
        "runs": [{k: v for k, v in r.items() if k != "wall_time_s"} for r in results],
        "device": str(device),
        "timing": {"wall_time_s": round(time.perf_counter() - started_all, 3),
                   "per_seed_s": [r["wall_time_s"] for r in results]},
    }


def _stat(values: list[float]) -> dict[str, Any]:
    mean, low, high = bootstrap_ci(values)
    return {"mean": mean, "ci95": [low, high], "per_seed": values}


def summarize(results: list[dict], order: list[str]) -> dict:
    """Per method: the selected lr, and per-seed values with mean and bootstrap 95% CI of test
    accuracy, near-zero fraction and accuracy at each pruning level (diverged seeds left out and counted)."""
    by_name = {r["method"]: r for r in results}
    missing = [name for name in order if name not in by_name]
    if missing:
        raise ValueError(f"powerprop summary: no results for {', '.join(missing)}")
    out: dict[str, Any] = {"task": TASK_NAME, "order": list(order), "methods": {}}
    for name in order:
        result = by_name[name]
        ok = [r for r in result["runs"] if r["status"] == "ok"]
        entry: dict[str, Any] = {
            "form": result["form"], "lr": result["lr"],
            "alpha": result["method_cfg"].get("reparam_alpha", result["method_cfg"]["optimizer"].get("alpha")),
            "optimizer": result["method_cfg"]["optimizer"],
            "seeds": [r["seed"] for r in ok],
            "diverged_seeds": [r["seed"] for r in result["runs"] if r["status"] != "ok"],
        }
        if ok:
            entry["test_accuracy"] = _stat([r["test_accuracy"] for r in ok])
            entry["sparsity_fraction"] = _stat([r["sparsity_fraction"] for r in ok])
            entry["pruned_accuracy"] = {p: _stat([r["pruned_accuracy"][p] for r in ok])
                                        for p in ok[0]["pruned_accuracy"]}
        out["methods"][name] = entry
    first = by_name[order[0]]
    out["sparsity_threshold"] = first["sparsity_threshold"]
    out["prune_fractions"] = first["prune_fractions"]
    out["sparsity_definition"] = (f"fraction of Linear weights with |w| < {first['sparsity_threshold']:g} x max|w| "
                                  "(global max over all weight matrices; biases excluded)")
    out["pruning_definition"] = "global one-shot magnitude pruning of Linear weights, no retraining; test accuracy"
    return out
