"""Claim 7 as an output: the reparameterized model and its optimizer form share a trajectory.

From the same w₀ (the configured MLP, seed-initialized, in float64) and on the same real
minibatches, K steps of SGD (or Adam) on v of ``w = v|v|^(α−1)`` are compared with K steps of
``PowerpropSGD`` (or ``PowerpropAdam``) on w. The first-order derivation (``optbias.optim.powerprop``)
leaves an O(η²) error per step, so the gap after K steps relative to the distance travelled,

    gap(η) = ‖w_reparam − w_optimizer‖ / ‖w_reparam − w₀‖,

should shrink like η: the fitted slope of log gap against log η should be ≈ 1. For α = 1 all
three (torch's optimizer on the plain model, on the α = 1 reparameterization, and ours) must
agree exactly, which ``alpha_one_max_abs_diff`` records.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from ..engine import make_deterministic
from ..models import init_model
from ..optim.powerprop import PowerpropAdam, PowerpropSGD
from .reparam import powerprop_reparametrize, to_plain_state_dict
from .runs import single_task

Factory = Callable[[list[nn.Parameter], float, float], torch.optim.Optimizer]

FORMS: dict[str, tuple[Factory, Factory]] = {
    # name -> (optimizer on v of the reparameterized model, our optimizer on w of the plain model)
    "sgd": (lambda p, lr, a: torch.optim.SGD(p, lr=lr), lambda p, lr, a: PowerpropSGD(p, lr=lr, alpha=a)),
    "adam": (lambda p, lr, a: torch.optim.Adam(p, lr=lr), lambda p, lr, a: PowerpropAdam(p, lr=lr, alpha=a)),
}


def flat(model: nn.Module) -> torch.Tensor:
    """Every effective parameter (weights and biases) in one vector, in a fixed key order."""
    sd = to_plain_state_dict(model)
    return torch.cat([sd[k].flatten() for k in sorted(sd)])


def _steps(model: nn.Module, opt: torch.optim.Optimizer, batches: Sequence[tuple[torch.Tensor, torch.Tensor]]) -> None:
    for x, y in batches:
        opt.zero_grad()
        F.cross_entropy(model(x), y).backward()
        opt.step()


def relative_gap(base: nn.Module, alpha: float, lr: float, form: str,
                 batches: Sequence[tuple[torch.Tensor, torch.Tensor]]) -> float:
    """``gap(η)`` after ``len(batches)`` steps from ``base``'s weights (``base`` is not modified)."""
    return trajectory_gaps(base, alpha, lr, form, batches)[0]


def trajectory_gaps(base: nn.Module, alpha: float, lr: float, form: str,
                    batches: Sequence[tuple[torch.Tensor, torch.Tensor]]) -> tuple[float, float]:
    """(relative, absolute) gap: ‖w_reparam − w_optimizer‖ over ‖w_reparam − w₀‖, and alone.

    The absolute gap is the O(η²) error itself (slope ≈ 2); the relative one divides out the O(η)
    distance travelled (slope ≈ 1)."""
    on_v, on_w = FORMS[form]
    w0 = flat(base)
    reparam = powerprop_reparametrize(copy.deepcopy(base), alpha)
    plain = copy.deepcopy(base)
    _steps(reparam, on_v(list(reparam.parameters()), lr, alpha), batches)
    _steps(plain, on_w(list(plain.parameters()), lr, alpha), batches)
    w_ref, w_opt = flat(reparam), flat(plain)
    absolute = float((w_ref - w_opt).norm())
    return absolute / float((w_ref - w0).norm()), absolute


def loglog_slope(lrs: Sequence[float], gaps: Sequence[float]) -> float:
    """Least-squares slope of log gap against log η: the observed order of agreement."""
    return float(np.polyfit(np.log(np.asarray(lrs, float)), np.log(np.asarray(gaps, float)), 1)[0])


def alpha_one_max_abs_diff(base: nn.Module, lr: float, form: str,
                           batches: Sequence[tuple[torch.Tensor, torch.Tensor]]) -> dict[str, float]:
    """α = 1: max |Δ| between torch's optimizer on the plain model and (a) the same on the α = 1
    reparameterization, (b) our Powerprop optimizer with α = 1. Both should be exactly 0."""
    on_v, on_w = FORMS[form]
    ref, rep, ours = copy.deepcopy(base), powerprop_reparametrize(copy.deepcopy(base), 1.0), copy.deepcopy(base)
    _steps(ref, on_v(list(ref.parameters()), lr, 1.0), batches)
    _steps(rep, on_v(list(rep.parameters()), lr, 1.0), batches)
    _steps(ours, on_w(list(ours.parameters()), lr, 1.0), batches)
    return {"reparam_vs_plain": float((flat(rep) - flat(ref)).abs().max()),
            "optimizer_vs_plain": float((flat(ours) - flat(ref)).abs().max())}


def minibatches(x: torch.Tensor, y: torch.Tensor, steps: int, batch_size: int, seed: int) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """``steps`` seeded minibatches (float64 inputs) drawn without replacement from (x, y)."""
    if steps * batch_size > len(y):
        raise ValueError(f"equivalence: {steps} steps x batch {batch_size} exceed the {len(y)} training examples")
    order = torch.randperm(len(y), generator=torch.Generator().manual_seed(seed))
    return [(x[order[i * batch_size:(i + 1) * batch_size]].double(), y[order[i * batch_size:(i + 1) * batch_size]])
            for i in range(steps)]


def study(x: torch.Tensor, y: torch.Tensor, model_cfg: dict, cfg: dict) -> dict:
    """The equivalence output: gap(η) per form and α, its fitted slope, and the α = 1 differences.

    ``cfg`` keys: alphas, steps, batch_size, seed, threads, and per form ``{form}_lrs``.
    """
    make_deterministic(int(cfg["seed"]), int(cfg["threads"]), torch.device("cpu"))  # runs on the CPU, float64
    base = init_model(int(cfg["seed"]), model_cfg, in_features=x.shape[1]).double()
    batches = minibatches(x, y, int(cfg["steps"]), int(cfg["batch_size"]), int(cfg["seed"]))
    out: dict = {"steps": int(cfg["steps"]), "batch_size": int(cfg["batch_size"]), "seed": int(cfg["seed"]),
                 "dtype": "float64", "model": model_cfg,
                 "gap_definition": "||w_reparam - w_optimizer|| / ||w_reparam - w0|| after `steps` steps",
                 "abs_gap_definition": "||w_reparam - w_optimizer|| after `steps` steps",
                 "forms": {}}
    for form in FORMS:
        lrs = sorted((float(lr) for lr in cfg.get(f"{form}_lrs", [])), reverse=True)
        if not lrs:
            continue
        entry: dict = {"lrs": lrs, "alphas": {}}
        for alpha in cfg["alphas"]:
            both = [trajectory_gaps(base, float(alpha), lr, form, batches) for lr in lrs]
            gaps, abs_gaps = [g[0] for g in both], [g[1] for g in both]
            entry["alphas"][f"{float(alpha):g}"] = {"gaps": gaps, "slope": loglog_slope(lrs, gaps),
                                                     "monotone": all(a > b for a, b in zip(gaps, gaps[1:])),
                                                     "abs_gaps": abs_gaps, "abs_slope": loglog_slope(lrs, abs_gaps)}
        entry["alpha_one"] = alpha_one_max_abs_diff(base, lrs[0], form, batches)
        out["forms"][form] = entry
    return out


def study_dataset(dataset_path: str | Path, model_cfg: dict, cfg: dict) -> dict:
    """``study`` on the training split of the dataset's single ten-digit task; prints one line per case."""
    task = single_task(dataset_path)
    result = study(task.x_train, task.y_train, model_cfg, cfg)
    for form, entry in result["forms"].items():
        for alpha, a in entry["alphas"].items():
            print(f"{form} alpha={alpha}: gaps {['%.2e' % g for g in a['gaps']]} slope {a['slope']:.3f}")
        print(f"{form} alpha=1: {entry['alpha_one']}")
    return result
