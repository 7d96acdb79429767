"""The one optimizer registry: a config ``type`` name -> the optimizer class, as ``"module:Class"``.

Adding an optimizer is one line here plus one entry under ``optimizers:`` in the config, e.g.
``"lion": "pytorch_optimizer.optimizer.lion:Lion",`` and ``lion: {type: lion, lr: 1.0e-4}``. The
config's remaining keys are passed to the constructor; ``check`` rejects unknown types, unknown
hyperparameters and missing required ones before any training starts.

Classes are named, not imported: the Snakefile checks the config when it is parsed, and reading
a constructor's signature from its source file (``constructor_parameters``) costs milliseconds,
where importing torch costs seconds. Only ``build`` imports the class.
"""

from __future__ import annotations

import ast
import importlib
import importlib.util
import inspect
from collections.abc import Iterable
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import torch

REGISTRY: dict[str, str] = {
    "sgd": "torch.optim.sgd:SGD",
    "adam": "torch.optim.adam:Adam",      # no weight decay: the paper's "Adam" entries (lr 1e-3 and 1e-4)
    "adamw": "torch.optim.adamw:AdamW",   # decoupled weight decay (Loshchilov & Hutter)
    "shampoo": "optbias.optim.shampoo:Shampoo",              # textbook full-matrix Shampoo (Gupta et al. 2018), ours
    "powerprop_sgd": "optbias.optim.powerprop:PowerpropSGD",    # SGD on Powerprop's v, written on w (needs alpha)
    "powerprop_adam": "optbias.optim.powerprop:PowerpropAdam",  # Adam on Powerprop's v, written on w (needs alpha)
}


# For scheduling only: a training step's CPU time relative to Adam's at the default width, forward,
# backward and evaluation included (measured 2026-11-29: a permuted-MNIST run takes 16 s with
# Shampoo, 4 s with AdamW). Snakemake starts the most expensive jobs first; unlisted types cost 1.
RELATIVE_STEP_COST: dict[str, float] = {"shampoo": 4.0}


def relative_step_cost(type_name: str) -> float:
    """A step's cost relative to Adam's (1 for types not measured): the scheduler's estimate only."""
    return RELATIVE_STEP_COST.get(type_name, 1.0)


class OptimizerConfigError(ValueError):
    """An optimizer entry in the config names an unknown type or hyperparameter."""


def known() -> list[str]:
    """The registry's type names, sorted (what error messages list)."""
    return sorted(REGISTRY)


@dataclass(frozen=True)
class Parameter:
    """One constructor argument (``self`` and ``params`` excluded)."""

    name: str
    required: bool  # no default, and not *args / **kwargs


def _source_file(module: str) -> Path | None:
    """The source file of ``module`` (dotted), found without importing it or its parents."""
    top, *rest = module.split(".")
    spec = importlib.util.find_spec(top)  # a top-level name: nothing is executed
    if spec is None:
        return None
    if not rest:
        return Path(spec.origin) if spec.origin and spec.origin.endswith(".py") else None
    for root in spec.submodule_search_locations or []:
        base = Path(root).joinpath(*rest)
        for candidate in (base.with_suffix(".py"), base / "__init__.py"):
            if candidate.is_file():
                return candidate
    return None


def _parameters_from_source(module: str, name: str, depth: int = 0) -> list[Parameter] | None:
    """``__init__``'s arguments of class ``name`` in ``module``'s source, following ``from X import name``.

    None when the source does not say (no file, an inherited ``__init__``, too many re-exports):
    the caller then imports the class.
    """
    path = _source_file(module)
    if path is None or depth > 4:
        return None
    tree = ast.parse(path.read_text(encoding="utf-8"))
    for node in tree.body:
        if isinstance(node, ast.ClassDef) and node.name == name:
            init = next((f for f in node.body if isinstance(f, ast.FunctionDef) and f.name == "__init__"), None)
            return None if init is None else _ast_parameters(init.args)
    for node in tree.body:  # a re-export: from .sub import Name / from pkg.sub import Name as Name
        if isinstance(node, ast.ImportFrom) and any(a.name == name and a.asname in (None, name) for a in node.names):
            package = module if path.name == "__init__.py" else module.rpartition(".")[0]
            parts = package.split(".")
            base = ".".join(parts[:len(parts) - node.level + 1]) if node.level else ""
            target = ".".join(p for p in (base, node.module or "") if p)
            return _parameters_from_source(target, name, depth + 1)
    return None


def _ast_parameters(args: ast.arguments) -> list[Parameter]:
    positional = [*args.posonlyargs, *args.args]
    n_required = len(positional) - len(args.defaults)
    out = [Parameter(a.arg, k < n_required) for k, a in enumerate(positional)]
    if args.vararg:
        out.append(Parameter(args.vararg.arg, False))
    out += [Parameter(a.arg, d is None) for a, d in zip(args.kwonlyargs, args.kw_defaults)]
    if args.kwarg:
        out.append(Parameter(args.kwarg.arg, False))
    return [p for p in out if p.name not in ("self", "params")]


def _parameters_from_import(cls: type) -> list[Parameter]:
    empty, variadic = inspect.Parameter.empty, (inspect.Parameter.VAR_POSITIONAL, inspect.Parameter.VAR_KEYWORD)
    return [Parameter(name, p.default is empty and p.kind not in variadic)
            for name, p in inspect.signature(cls.__init__).parameters.items() if name not in ("self", "params")]


def resolve(type_name: str) -> type[torch.optim.Optimizer]:
    """Import and return the class of registry type ``type_name``."""
    module, _, name = REGISTRY[type_name].partition(":")
    return getattr(importlib.import_module(module), name)


@cache
def constructor_parameters(type_name: str) -> tuple[Parameter, ...]:
    """The constructor's arguments of a registry type, read from source when it can be, else imported."""
    module, _, name = REGISTRY[type_name].partition(":")
    found = _parameters_from_source(module, name)
    return tuple(found if found is not None else _parameters_from_import(resolve(type_name)))


def hyperparameters(type_name: str) -> list[str]:
    """Keyword arguments the optimizer's constructor accepts (everything but ``params``)."""
    return [p.name for p in constructor_parameters(type_name)]


def required(type_name: str) -> list[str]:
    """Hyperparameters without a default (e.g. Powerprop's ``alpha``): the config must set them."""
    return [p.name for p in constructor_parameters(type_name) if p.required]


def check(name: str, entry: dict[str, Any]) -> None:
    """Fail early, naming the bad or missing key and the valid choices, if ``entry`` cannot build an optimizer.

    Raises ``OptimizerConfigError`` (a ``ValueError``). Imports nothing heavy.
    """
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
    return resolve(entry["type"])(params, **kwargs)
