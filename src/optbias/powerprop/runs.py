"""The Powerprop sparsity experiment: one task (all ten digits), several methods, pruning.

A *method* is an optimizer entry of the registry, optionally applied to a Powerprop
reparameterized model (``reparam_alpha``)::

    sgd:        {optimizer: {type: sgd},                       lrs: [...]}
    reparam-a2: {optimizer: {type: sgd}, reparam_alpha: 2,     lrs: [...]}   # SGD on v
    ppsgd-a2:   {optimizer: {type: powerprop_sgd, alpha: 2},   lrs: [...]}   # its optimizer form on w

Every method starts from the same w (the seed's ``init_model``; the reparameterization maps
v = sign(w)|w|^(1/α)), sees the same batches, and is saved as a *plain* state_dict of effective
weights, so evaluation and pruning (``optbias.powerprop.sparsity``) never know which form produced it.

Learning rates are chosen per method before any sparsity number is computed, by the rule of
``optbias.continual.sweep``: train once per candidate and validation seed, holding out a stratified
part of the training split; the mean held-out accuracy over the seeds picks the lr (ties: the
smaller; a diverged run scores 0 and makes its candidate ineligible).
Several trainings run in one process (one per lr, or one per seed) to keep the pipeline short.
"""

from __future__ import annotations

import copy
import time
from pathlib import Path
from typing import Any

import torch

from .. import data, fileio, optim
from ..continual import sweep
from ..continual.tasks import Task, permuted, split_validation
from ..engine import DivergenceError, LossLog, accuracy, all_finite, make_deterministic, pick_device, run_epoch
from ..models import MLP, init_model, mlp
from . import sparsity
from .reparam import powerprop_reparametrize, to_plain_state_dict

TASK_NAME = "all-digits"


def form(method: dict) -> str:
    """``reparameterized`` (trained on v), ``powerprop optimizer`` (on w) or ``baseline``."""
    if method.get("reparam_alpha") is not None:
        return "reparameterized"
    return "powerprop optimizer" if str(method["optimizer"].get("type", "")).startswith("powerprop") else "baseline"


def single_task(dataset_path: str | Path) -> Task:
    """All ten digits of the dataset's train/test splits as one task (pixels scaled to [0, 1])."""
    (task,) = permuted(data.load(dataset_path), n_tasks=1)  # task 0 is the identity permutation
    return Task(TASK_NAME, task.classes, task.x_train, task.y_train, task.x_test, task.y_test)


def build(method: dict, lr: float, seed: int, model_cfg: dict, name: str = "method") -> tuple[MLP, torch.optim.Optimizer]:
    """The seed's initial model (reparameterized if the method says so) and its optimizer."""
    model = init_model(seed, model_cfg)
    alpha = method.get("reparam_alpha")
    if alpha is not None:
        powerprop_reparametrize(model, float(alpha))
    entry = {**method["optimizer"], "lr": float(lr)}
    return model, optim.build(entry, model.parameters(), name, model=model)


def fit(model: torch.nn.Module, optimizer: torch.optim.Optimizer, task: Task, epochs: int, batch_size: int,
        seed: int, where: str) -> list[float]:
    """Plain minibatch training; batches come from ``seed + 1`` as in ``optbias.continual.train``.

    Returns the loss curve (means over 10-step windows); raises ``DivergenceError`` on NaN/inf.
    """
    generator = torch.Generator().manual_seed(seed + 1)
    log = LossLog(10, where, "Lower this method's candidate learning rates in the powerprop config.")
    model.train()
    step = 0
    for epoch in range(epochs):
        step = run_epoch(model, optimizer, task.x_train, task.y_train, batch_size, generator, step,
                         lambda loss, step, epoch=epoch: log.add(loss, step, 0, f"epoch {epoch}"))
    if not all_finite(model):
        raise DivergenceError(f"{where}: the weights hold NaN or inf after training")
    model.eval()
    return log.curve["loss"]


@torch.no_grad()
def evaluate(state_dict: dict[str, torch.Tensor], model_cfg: dict, task: Task, prune_fractions: list[float],
             relative_threshold: float, histogram: dict | None = None) -> dict[str, Any]:
    """Test accuracy, near-zero fraction, accuracy after global magnitude pruning, |w| histogram.

    Works on a plain state_dict only, loaded into a fresh plain MLP (``strict=True``).
    """
    model = mlp(model_cfg, in_features=task.x_test.shape[1]).to(task.x_test.device)

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
    device = pick_device(cfg["device"])
    make_deterministic(seed, int(cfg["threads"]), device)
    return device


def sweep_method(name: str, method: dict, cfg: dict, model_cfg: dict, dataset_path: str | Path) -> dict:
    """Train once per (candidate lr, validation seed) with a held-out split; pick the lr.

    The rule is ``optbias.continual.sweep.select``: mean held-out accuracy over the validation seeds
    (``cfg["validation_seeds"]``), a diverged run scores 0, and a candidate with a diverged seed is
    not eligible. Cost: len(lrs) x len(validation_seeds) trainings of ``cfg["epochs"]`` epochs.
    """
    seeds = [int(s) for s in cfg["validation_seeds"]]
    device = _setup(cfg, seeds[0])
    fit_task, val_task = split_validation(single_task(dataset_path), float(cfg["validation_fraction"]), 0)
    fit_task, val_task = fit_task.to(device), val_task.to(device)
    runs = []
    for lr in method["lrs"]:
        for seed in seeds:
            _setup(cfg, seed)
            started = time.perf_counter()
            model, opt = build(method, lr, seed, model_cfg, name)
            model.to(device)
            status, score, error = "ok", None, None
            try:
                fit(model, opt, fit_task, int(cfg["epochs"]), int(cfg["batch_size"]), seed,
                    f"powerprop sweep {name} lr={lr:g} seed{seed}")
                score = accuracy(model, val_task.x_test, val_task.y_test)
            except DivergenceError as err:
                status, error = "diverged", str(err)
            runs.append({"optimizer": name, "benchmark": TASK_NAME, "seed": seed,
                         "spec": {"optimizer_cfg": {"lr": float(lr)}}, "status": status, "validation_score": score,
                         "error": error, "wall_time_s": round(time.perf_counter() - started, 3)})
    (selection,) = sweep.select(runs, {}).values()
    return {"method": name, "method_cfg": method, "seeds": seeds, "validation_fraction": cfg["validation_fraction"],
            "selected_lr": selection["selected_lr"], "edge_of_grid": selection["edge_of_grid"],
            "selected_has_diverged_seed": selection["selected_has_diverged_seed"],
            "candidates": selection["candidates"],
            "runs": [{k: r[k] for k in ("seed", "status", "validation_score", "error")}
                     | {"lr": r["spec"]["optimizer_cfg"]["lr"]} for r in runs],
            "timing": {"wall_time_s": round(sum(r["wall_time_s"] for r in runs), 3)}}


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


def run_method(name: str, method: dict, cfg: dict, model_cfg: dict, dataset_path: str | Path,
               selected_path: str | Path, checkpoints: list[str | Path], results_path: str | Path) -> None:
    """One method from start to end, in one process (one torch start-up): choose its lr
    (``sweep_method``), write the choice, train every seed at it (``train_method``), write the results.

    Prints one line for the choice and one per seed (the job's log).
    """
    selection = sweep_method(name, method, cfg, model_cfg, dataset_path)
    fileio.atomic_write_json(selected_path, selection)
    lr = selection["selected_lr"]
    scores = ", ".join(f"{c['lr']:g}: {c['score']:.4f}" + ("" if c["eligible"] else " (a seed diverged)")
                       for c in selection["candidates"])
    print(f"{name}: validation accuracy by lr, mean over seeds {selection['seeds']} {{{scores}}} -> lr {lr:g}",
          flush=True)

    result = train_method(name, method, lr, cfg, model_cfg, dataset_path, checkpoints)
    fileio.atomic_write_json(results_path, result)
    for run in result["runs"]:
        if run["status"] == "ok":
            print(f"{name} seed{run['seed']} lr {lr:g}: test accuracy {run['test_accuracy']:.4f}, "
                  f"near-zero fraction {run['sparsity_fraction']:.4f}, pruned {run['pruned_accuracy']}")
        else:
            print(f"{name} seed{run['seed']}: {run['status']}: {run['error']}")
