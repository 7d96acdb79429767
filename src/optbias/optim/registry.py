"""The one optimizer registry: a config ``type`` name -> a ``torch.optim.Optimizer`` class.

Adding an optimizer is one line here plus one entry under ``optimizers:`` in the config, e.g.
``muon: {type: muon, lr: 0.02}``. The config's remaining keys are passed to the constructor;
``check`` rejects unknown types and unknown hyperparameters before any training starts.
"""

from __future__ import annotations

import inspect
from collections.abc import Iterable
from typing import Any

import torch

from ..powerprop import PowerpropAdam, PowerpropSGD
from .shampoo import Shampoo

REGISTRY: dict[str, type[torch.optim.Optimizer]] = {
    "sgd": torch.optim.SGD,
    "adam": torch.optim.Adam,    # no weight decay: the paper's "Adam" entries (lr 1e-3 and 1e-4)
    "adamw": torch.optim.AdamW,  # decoupled weight decay (Loshchilov & Hutter)
    "shampoo": Shampoo,          # textbook full-matrix Shampoo (Gupta et al. 2018), ours: see shampoo.py
    "powerprop_sgd": PowerpropSGD,    # SGD on Powerprop's v, written on w (needs alpha): see powerprop.py
    "powerprop_adam": PowerpropAdam,  # Adam on Powerprop's v, written on w (needs alpha)
}


# For scheduling only: a training step's CPU time relative to Adam's at the default width, forward,
# backward and evaluation included (measured 2026-11-29: a permuted-MNIST run takes 16 s with
# Shampoo, 4 s with AdamW). Snakemake starts the most expensive jobs first; unlisted types cost 1.
RELATIVE_STEP_COST: dict[str, float] = {"shampoo": 4.0}


def relative_step_cost(type_name: str) -> float:
    return RELATIVE_STEP_COST.get(type_name, 1.0)


class OptimizerConfigError(ValueError):
    """An optimizer entry in the config names an unknown type or hyperparameter."""


def known() -> list[str]:
    return sorted(REGISTRY)


def hyperparameters(type_name: str) -> list[str]:
    """Keyword arguments the optimizer's constructor accepts (everything but ``params``)."""
    signature = inspect.signature(REGISTRY[type_name].__init__)
    return [p for p in signature.parameters if p not in ("self", "params")]


def required(type_name: str) -> list[str]:
    """Hyperparameters without a default (e.g. Powerprop's ``alpha``): the config must set them."""
    signature = inspect.signature(REGISTRY[type_name].__init__)
    return [name for name, p in signature.parameters.items()
            if name not in ("self", "params") and p.default is inspect.Parameter.empty
            and p.kind not in (inspect.Parameter.VAR_POSITIONAL, inspect.Parameter.VAR_KEYWORD)]


def check(name: str, entry: dict[str, Any]) -> None:
    """Fail early, naming the bad or missing key and the valid choices, if ``entry`` cannot build an optimizer."""
    type_name = entry.get("type")
    if type_name not in REGISTRY:
        raise OptimizerConfigError(
            f"optimizers.{name}: unknown optimizer type {type_name!r}; known types: {', '.join(known())}"
        )
    allowed = hyperparameters(type_name)
    unknown = sorted(set(entry) - {"type"} - set(allowed))
    if unknown:
        raise OptimizerConfigError(
            f"optimizers.{name}: {type_name} does not take {', '.join(unknown)}; it takes: {', '.join(allowed)}"
        )
    missing = [key for key in required(type_name) if key not in entry]
    if missing:
        raise OptimizerConfigError(
            f"optimizers.{name}: {type_name} needs {', '.join(missing)} (no default); add e.g. "
            f"`{missing[0]}: ...` to the entry, next to type and lr"
        )


def build(entry: dict[str, Any], params: Iterable[torch.nn.Parameter], name: str = "optimizer") -> torch.optim.Optimizer:
    """Instantiate the optimizer described by a config entry such as ``{type: adam, lr: 1e-3}``."""
    check(name, entry)
    kwargs = {k: v for k, v in entry.items() if k != "type"}
    return REGISTRY[entry["type"]](params, **kwargs)
