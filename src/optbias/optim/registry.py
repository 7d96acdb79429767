"""The one optimizer registry: a config ``type`` name -> the optimizer class, as ``"module:Class"``.

A config entry's ``type`` is either a registry name (the curated types below) or the import path of
any installed optimizer class, ``package.module.Class`` (a dotted name: it contains a ``.``), e.g.
``type: torch.optim.NAdam`` or ``type: pytorch_optimizer.Lion``. Either way the entry's remaining
keys are passed to the constructor, and ``check`` rejects, naming the entry, before any training
starts: an unknown type or import path, a class that is not a ``torch.optim.Optimizer``, unknown
hyperparameters and missing required ones.

Registry types are named, not imported: the Snakefile checks the config when it is parsed, and
reading a constructor's signature from its source file (``constructor_parameters``) costs
milliseconds, where importing torch costs seconds. Only ``build`` imports the class. An import
path is imported by ``check`` (at parse time, only when the config uses one): whether a class
derives from ``torch.optim.Optimizer``, through whatever chain of bases and re-exports, only the
imported class can say.
"""

from __future__ import annotations

import ast
import importlib
import importlib.util
import inspect
import sys
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
    "adagrad": "torch.optim.adagrad:Adagrad",  # diagonal, summed statistics (Duchi et al. 2011): Shampoo's control
    "muon": "optbias.optim.composite:MuonAdamW",  # Muon on hidden weights, AdamW on the rest (Jordan et al. 2024)
    "soap": "pytorch_optimizer.optimizer.soap:SOAP",  # Adam in Shampoo's eigenbasis (Vyas et al. 2024)
    "psgd_kron": "pytorch_optimizer.optimizer.psgd:Kron",  # PSGD, Kronecker-factored preconditioner (Li 2015/2018)
}

# Modules a type needs besides its own, checked (found, not imported) before anything runs:
# type -> (module, why). pytorch_optimizer's Kron writes its einsums as "an,bo,no->ab"; without
# opt_einsum torch contracts them left to right, through a (256, 256, 784, 784) intermediate on the
# default MLP: 161 GB, a crash.
NEEDS: dict[str, tuple[str, str]] = {
    "psgd_kron": ("opt_einsum", "without it torch.einsum contracts Kron's products in written order "
                                "(a 161 GB intermediate on the default MLP)"),
}


# For scheduling only: a training step's CPU time relative to Adam's at the default width, forward,
# backward and evaluation included (measured 2026-11-29: a permuted-MNIST run takes 16 s with
# Shampoo, 4 s with AdamW). Snakemake starts the most expensive jobs first; unlisted types cost 1.
# muon, soap, psgd_kron: their optimizer step alone against Shampoo's (optbias.optim.perf.step_time,
# default MLP, batch 64, one thread: AdamW 4 ms, Shampoo 31, Muon 27, SOAP 40, PSGD-Kron 71),
# scaled as Shampoo's (step ratio 8, run ratio 4).
RELATIVE_STEP_COST: dict[str, float] = {"shampoo": 4.0, "muon": 3.5, "soap": 5.0, "psgd_kron": 9.0}


# Types whose step updates every element of every parameter from that element's own gradient and
# state alone (and per-tensor step counts): stacking S independent runs' parameters along a new
# leading dimension leaves each run's update unchanged, so one optimizer over the stacked tensors
# takes every run's step at once (optbias.continual.batched). Shampoo, Muon, SOAP and PSGD-Kron mix
# elements within a matrix (their preconditioners), so they are not listed; Shampoo has a stacked
# class instead (STACKED, below).
ELEMENTWISE: frozenset[str] = frozenset({"sgd", "adam", "adamw", "adagrad"})
# Types whose stacked runs need a class of their own, which takes each run's step on its slice of
# every stacked parameter (same options; continual/batched.py builds it with ``build(stacked=True)``).
STACKED: dict[str, str] = {
    "shampoo": "optbias.optim.stacked_shampoo:StackedShampoo",  # batched factors, roots and grafting norms
}
# What the batched-seed mode can train: the element-wise types as they are, and the STACKED ones.
BATCHABLE: frozenset[str] = ELEMENTWISE | frozenset(STACKED)


def relative_step_cost(type_name: str) -> float:
    """A step's cost relative to Adam's (1 for types not measured): the scheduler's estimate only."""
    return RELATIVE_STEP_COST.get(type_name, 1.0)


class OptimizerConfigError(ValueError):
    """An optimizer entry in the config names an unknown type or hyperparameter."""


def known() -> list[str]:
    """The registry's type names, sorted (what error messages list)."""
    return sorted(REGISTRY)


def is_import_path(type_name: object) -> bool:
    """Whether a config ``type`` is an import path (``torch.optim.NAdam``) rather than a registry name."""
    return isinstance(type_name, str) and "." in type_name


@dataclass(frozen=True)
class Parameter:
    """One constructor argument (``self`` and ``params`` excluded)."""

    name: str
    required: bool  # no default, and not *args / **kwargs
    variadic: bool = False  # *args or **kwargs: not a hyperparameter a config key can name


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


def _class_from_source(module: str, name: str, depth: int = 0) -> ast.ClassDef | None:
    """The definition of class ``name`` in ``module``'s source, following ``from X import name``.

    None when the source does not say (no file, too many re-exports). Nothing is imported.
    """
    path = _source_file(module)
    if path is None or depth > 4:
        return None
    tree = ast.parse(path.read_text(encoding="utf-8"))
    for node in tree.body:
        if isinstance(node, ast.ClassDef) and node.name == name:
            return node
    for node in tree.body:  # a re-export: from .sub import Name / from pkg.sub import Name as Name
        if isinstance(node, ast.ImportFrom) and any(a.name == name and a.asname in (None, name) for a in node.names):
            package = module if path.name == "__init__.py" else module.rpartition(".")[0]
            parts = package.split(".")
            base = ".".join(parts[:len(parts) - node.level + 1]) if node.level else ""
            target = ".".join(p for p in (base, node.module or "") if p)
            return _class_from_source(target, name, depth + 1)
    return None


def _parameters_from_source(module: str, name: str, depth: int = 0) -> list[Parameter] | None:
    """``__init__``'s arguments of class ``name`` in ``module``'s source, following ``from X import name``.

    None when the source does not say (no file, an inherited ``__init__``, too many re-exports):
    the caller then imports the class.
    """
    node = _class_from_source(module, name, depth)
    init = None if node is None else next(
        (f for f in node.body if isinstance(f, ast.FunctionDef) and f.name == "__init__"), None)
    return None if init is None else _ast_parameters(init.args)


def _ast_parameters(args: ast.arguments) -> list[Parameter]:
    positional = [*args.posonlyargs, *args.args]
    n_required = len(positional) - len(args.defaults)
    out = [Parameter(a.arg, k < n_required) for k, a in enumerate(positional)]
    if args.vararg:
        out.append(Parameter(args.vararg.arg, False, True))
    out += [Parameter(a.arg, d is None) for a, d in zip(args.kwonlyargs, args.kw_defaults)]
    if args.kwarg:
        out.append(Parameter(args.kwarg.arg, False, True))
    return [p for p in out if p.name not in ("self", "params")]


def _parameters_from_import(cls: type) -> list[Parameter]:
    empty, variadic = inspect.Parameter.empty, (inspect.Parameter.VAR_POSITIONAL, inspect.Parameter.VAR_KEYWORD)
    return [Parameter(name, p.default is empty and p.kind not in variadic, p.kind in variadic)
            for name, p in inspect.signature(cls.__init__).parameters.items() if name not in ("self", "params")]


@cache
def _locate(path: str) -> tuple[Any, str | None]:
    """Import the object at ``path`` (``package.module.Name``; nested attributes allowed).

    Returns (object, None), or (None, why it cannot be imported). The longest importable module
    prefix is imported, then the rest is read as attributes, so ``torch.optim.NAdam`` and
    ``torch.optim.nadam.NAdam`` both work. Cached: each path is imported once per process.
    """
    parts = path.split(".")
    if not all(part.isidentifier() for part in parts):
        return None, f"{path!r} is not an import path"
    for k in range(len(parts) - 1, 0, -1):
        module = ".".join(parts[:k])
        try:
            found: Any = importlib.import_module(module)
        except ModuleNotFoundError as err:
            if err.name is not None and (module == err.name or module.startswith(err.name + ".")):
                continue  # this prefix is not a module: try a shorter one
            return None, f"importing {module} failed: {err}"
        except Exception as err:  # noqa: BLE001 - a module that fails to import: say how
            return None, f"importing {module} failed: {type(err).__name__}: {err}"
        for depth, attribute in enumerate(parts[k:], start=k):
            if not hasattr(found, attribute):
                return None, f"{'.'.join(parts[:depth])} has no attribute {attribute}"
            found = getattr(found, attribute)
        return found, None
    return None, f"no module named {parts[0]}"


def _import_path_problem(path: str) -> str | None:
    """Why import path ``path`` is not an optimizer class, and the fix (None when it is one). Imports ``path``."""
    found, why = _locate(path)
    if why is not None:
        return (f"cannot import {path}: {why}. Check the spelling (package.module.Class, e.g. torch.optim.NAdam), "
                f"install the package, or use a registry type ({', '.join(known())})")
    torch = sys.modules.get("torch")  # an Optimizer subclass was imported with torch
    if isinstance(found, type) and torch is not None and issubclass(found, torch.optim.Optimizer):
        return None
    what = (f"class {found.__module__}.{found.__qualname__} does not derive from torch.optim.Optimizer"
            if isinstance(found, type) else f"it is a {type(found).__name__}, not a class")
    return (f"{path} is not an optimizer: {what}. Give a torch.optim.Optimizer subclass (e.g. torch.optim.NAdam) "
            f"or a registry type ({', '.join(known())})")


def resolve(type_name: str) -> type[torch.optim.Optimizer]:
    """Import and return the class of ``type_name``: a registry type or an import path (``torch.optim.NAdam``).

    Raises ``OptimizerConfigError`` for an import path that is not an optimizer class.
    """
    if is_import_path(type_name):
        problem = _import_path_problem(type_name)
        if problem is not None:
            raise OptimizerConfigError(problem)
        return _locate(type_name)[0]
    module, _, name = REGISTRY[type_name].partition(":")
    return getattr(importlib.import_module(module), name)


@cache
def constructor_parameters(type_name: str) -> tuple[Parameter, ...]:
    """The constructor's arguments of a registry type, read from source when it can be, else imported;
    of an import path, from the imported class."""
    if is_import_path(type_name):
        return tuple(_parameters_from_import(resolve(type_name)))
    module, _, name = REGISTRY[type_name].partition(":")
    found = _parameters_from_source(module, name)
    return tuple(found if found is not None else _parameters_from_import(resolve(type_name)))


def has_method(type_name: Any, method: str) -> bool:
    """Whether the optimizer class of ``type_name`` (a registry type or an import path) has a method
    named ``method`` (e.g. Shampoo's ``reset_preconditioner``). False for a type that is neither.

    A registry class that defines the method in its own source answers without importing anything
    (the Snakefile's config check stays fast); otherwise the class is imported (with torch, seconds)
    and asked, which also finds inherited methods. Raises ``OptimizerConfigError`` as ``resolve``
    does for an import path that is not an optimizer class.
    """
    if not is_import_path(type_name) and type_name not in REGISTRY:
        return False
    if not is_import_path(type_name):
        node = _class_from_source(*REGISTRY[type_name].split(":"))
        if node is not None and any(isinstance(f, ast.FunctionDef) and f.name == method for f in node.body):
            return True
    return callable(getattr(resolve(type_name), method, None))


def hyperparameters(type_name: str) -> list[str]:
    """Keyword arguments the optimizer's constructor accepts by name (everything but ``params``,
    ``*args`` and ``**kwargs``: a key that only ``**kwargs`` would swallow is rejected, so a typo
    cannot pass unnoticed)."""
    return [p.name for p in constructor_parameters(type_name) if not p.variadic]


def required(type_name: str) -> list[str]:
    """Hyperparameters without a default (e.g. Powerprop's ``alpha``): the config must set them."""
    return [p.name for p in constructor_parameters(type_name) if p.required]


def check(name: str, entry: dict[str, Any]) -> None:
    """Fail early, naming the bad or missing key and the valid choices, if ``entry`` cannot build an optimizer.

    Raises ``OptimizerConfigError`` (a ``ValueError``). A registry type imports nothing heavy; an
    import path is imported (with torch, seconds, once per process).
    """
    type_name = entry.get("type")
    if is_import_path(type_name):
        problem = _import_path_problem(type_name)
        if problem is not None:
            raise OptimizerConfigError(f"optimizers.{name}: {problem}")
    elif type_name not in REGISTRY:
        raise OptimizerConfigError(f"optimizers.{name}: unknown optimizer type {type_name!r}; known types: "
                                   f"{', '.join(known())}; or an installed optimizer class by its import path, "
                                   "e.g. torch.optim.NAdam")
    allowed = hyperparameters(type_name)
    unknown = sorted(set(entry) - {"type"} - set(allowed))
    if unknown:
        raise OptimizerConfigError(
            f"optimizers.{name}: {type_name} does not take {', '.join(unknown)}; remove it, or use what it "
            f"takes: {', '.join(allowed)}"
        )
    module, why = NEEDS.get(type_name, (None, ""))
    if module is not None and importlib.util.find_spec(module) is None:
        raise OptimizerConfigError(f"optimizers.{name}: {type_name} needs the package {module}, which is not "
                                   f"installed: {why}. Install it: pip install -r requirements.lock (it pins "
                                   f"{module}), or pip install {module}")
    missing = [key for key in required(type_name) if key not in entry]
    if missing:
        raise OptimizerConfigError(
            f"optimizers.{name}: {type_name} needs {', '.join(missing)} (no default); add e.g. "
            f"`{missing[0]}: ...` to the entry, next to type and lr"
        )


def build(entry: dict[str, Any], params: Iterable[torch.nn.Parameter], name: str = "optimizer",
          model: torch.nn.Module | None = None, stacked: bool = False) -> torch.optim.Optimizer:
    """Instantiate the optimizer described by a config entry such as ``{type: adam, lr: 1e-3}`` or
    ``{type: torch.optim.NAdam, lr: 1e-3}``; raises ``OptimizerConfigError`` as ``check`` does.

    ``model``: the module ``params`` come from, handed to the optimizer's ``attach(model)`` when it
    has one (Shampoo's ``gradient_factors`` hooks its linear layers); other optimizers ignore it.
    ``stacked``: ``params`` are S runs' parameters stacked along a leading dimension (the batched-seed
    mode): the type's ``STACKED`` class, or its own class for an element-wise type; ``ValueError``
    for a type in neither (``BATCHABLE``)."""
    check(name, entry)
    kwargs = {k: v for k, v in entry.items() if k != "type"}
    if stacked and entry["type"] not in BATCHABLE:
        raise ValueError(f"optimizer {name!r}: type {entry['type']!r} cannot step stacked runs; "
                         f"the batched-seed mode trains {', '.join(sorted(BATCHABLE))}")
    if stacked and entry["type"] in STACKED:
        module, _, cls_name = STACKED[entry["type"]].partition(":")
        optimizer = getattr(importlib.import_module(module), cls_name)(params, **kwargs)
        return optimizer  # no attach: the stacked runs' gradients come from torch.func, not from layers
    optimizer = resolve(entry["type"])(params, **kwargs)
    if model is not None and callable(getattr(optimizer, "attach", None)):
        optimizer.attach(model)
    return optimizer
