"""The one optimizer registry: a config ``type`` name -> one ``OptimizerType`` row (``TYPES``).

A row holds all the library knows about a type: its class as ``"module:Class"``, its step cost for
the scheduler, whether the batched-seed mode can train it (element-wise, or with a stacked class)
and any package it needs besides its own. Adding a registry type is adding one row to ``TYPES``
(and, for the comparison, an entry in the config).

A config entry's ``type`` is either a registry name (the curated types below) or the import path of
any installed optimizer class, ``package.module.Class`` (a dotted name: it contains a ``.``), e.g.
``type: torch.optim.NAdam`` or ``type: pytorch_optimizer.Lion``. Either way the entry's remaining
keys are passed to the constructor, and ``check`` rejects, naming the entry, before any training
starts: an unknown type or import path, a class that is not a ``torch.optim.Optimizer``, unknown
hyperparameters and missing required ones.

Registry types are named, not imported: the Snakefile checks the config when it is parsed, and
reading a constructor's signature from its source file (``constructor_parameters``) imports
nothing, where importing the class imports torch (part of a job's fixed cost: docs/performance.md,
written by ``optbias bench``). Only ``build`` imports the class. An import
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

from . import checks

if TYPE_CHECKING:
    import torch


@dataclass(frozen=True)
class OptimizerType:
    """What the library knows about one registry type (a row of ``TYPES``).

    ``cls``: the optimizer class as ``"module:Class"``, named, not imported (``resolve`` imports it).
    ``step_cost``: a training step's time relative to Adam's, for scheduling only
    (``relative_step_cost``: the priority of a training job); 1 unless measured otherwise.
    ``elementwise``: the step updates every element of every parameter from that element's own
    gradient and state alone (and per-tensor step counts). Stacking S independent runs'
    parameters along a new leading dimension then leaves each run's update unchanged, so the
    class itself takes every run's step at once (the batched-seed mode, optbias.continual.batched).
    ``stacked``: for a type that mixes the elements of a matrix (a preconditioner), the
    ``"module:Class"`` that takes each stacked run's step on its own slice of every stacked
    parameter, with the same options (``build(stacked=True)``); None when there is none.
    ``needs``: a module the type needs besides its own, checked (found, not imported) by ``check``
    before anything runs, and ``needs_why``, the reason the error message gives; None when none.
    ``options``: a torch-free check of the entry's option values as ``"module:function"``
    (``optbias.optim.checks``), run by ``check`` when the config is parsed; None when the
    constructor alone checks them (at the job's start).
    ``forwards_to``: the ``"module:Class"`` whose constructor receives the class's ``**kwargs``
    (a subclass that adds options to its base): its options are accepted too, by name, so that a
    typo is still rejected; None when ``**kwargs`` (if any) takes nothing a config may name.
    ``flops``: the name of the function of ``optbias.perf.flops`` that counts, from below, the matrix
    FLOPs a step adds to the model's forward and backward passes, ``f(options, widths, batch) ->
    float`` (the compute bound of ``optbias bench``); None when not estimated. An element-wise type
    adds none (its work is memory-bound: ``optbias.perf.flops.step`` counts 0). A name, not a module
    path: the training code does not import the FLOP counts, so editing one retrains nothing
    (``optbias.versioning.deps``).
    """

    cls: str
    step_cost: float = 1.0
    elementwise: bool = False
    stacked: str | None = None
    needs: str | None = None
    needs_why: str = ""
    options: str | None = None
    forwards_to: str | None = None
    flops: str | None = None

    @property
    def batchable(self) -> bool:
        """Whether the batched-seed mode can train this type: element-wise, or with a stacked class."""
        return self.elementwise or self.stacked is not None


# The registry: config ``type`` name -> its row; adding a type is adding a row. The step costs only
# order the training jobs (longest first), so they need no update when timings move. Shampoo's is
# a whole run's CPU time against AdamW's at the default width (forward, backward and evaluation
# included); Muon's, SOAP's and PSGD-Kron's scale their optimizer step against Shampoo's
# (optbias.perf.step.step_time) the same way. Current timings: docs/performance.md (optbias bench).
TYPES: dict[str, OptimizerType] = {
    "sgd": OptimizerType("torch.optim.sgd:SGD", elementwise=True),
    # no weight decay: the paper's "Adam" entries (lr 1e-3 and 1e-4)
    "adam": OptimizerType("torch.optim.adam:Adam", elementwise=True),
    # decoupled weight decay (Loshchilov & Hutter)
    "adamw": OptimizerType("torch.optim.adamw:AdamW", elementwise=True),
    # textbook full-matrix Shampoo (Gupta et al. 2018), ours; its stacked class batches the
    # factors, roots and grafting norms of every run
    "shampoo": OptimizerType("optbias.optim.shampoo:Shampoo", step_cost=4.0,
                             stacked="optbias.optim.stacked_shampoo:StackedShampoo", flops="shampoo"),
    # Orthogonal Weight Modification (Zeng et al. 2019): each layer's gradient times alpha (A + alpha I)^-1
    # of its accumulated inputs; needs the model (attach)
    "owm": OptimizerType("optbias.optim.owm:OWM", options="optbias.optim.checks:owm", flops="owm"),
    # ours (paper/designing_an_optimizer.md): Shampoo times an input memory alpha^p (S + alpha I)^-p;
    # scheduled as Shampoo (one more root per layer, not measured separately)
    "memory_shampoo": OptimizerType("optbias.optim.memory_shampoo:MemoryShampoo", step_cost=4.0,
                                    options="optbias.optim.checks:memory_shampoo",
                                    forwards_to="optbias.optim.shampoo:Shampoo",
                                    flops="memory_shampoo"),
    # SGD / Adam on Powerprop's v, written on w (need alpha)
    "powerprop_sgd": OptimizerType("optbias.optim.powerprop:PowerpropSGD"),
    "powerprop_adam": OptimizerType("optbias.optim.powerprop:PowerpropAdam"),
    # diagonal, summed statistics (Duchi et al. 2011): Shampoo's control
    "adagrad": OptimizerType("torch.optim.adagrad:Adagrad", elementwise=True),
    # Muon on hidden weights, AdamW on the rest (Jordan et al. 2024)
    "muon": OptimizerType("optbias.optim.composite:MuonAdamW", step_cost=3.5),
    # Adam in Shampoo's eigenbasis (Vyas et al. 2024)
    "soap": OptimizerType("pytorch_optimizer.optimizer.soap:SOAP", step_cost=5.0),
    # PSGD, Kronecker-factored preconditioner (Li 2015/2018). Kron writes its einsums as
    # "an,bo,no->ab"; without opt_einsum torch contracts them left to right, through a
    # (256, 256, 784, 784) float32 intermediate on the default MLP: 161 GB, a crash.
    "psgd_kron": OptimizerType("pytorch_optimizer.optimizer.psgd:Kron", step_cost=9.0, needs="opt_einsum",
                               needs_why="without it torch.einsum contracts Kron's products in written order "
                                         "(a 161 GB intermediate on the default MLP)"),
}

# What the batched-seed mode can train (``OptimizerType.batchable``), derived from ``TYPES``: the
# element-wise types as they are, Shampoo through its stacked class. SOAP, Muon and PSGD-Kron mix
# the elements of a matrix and have no stacked class.
BATCHABLE: frozenset[str] = frozenset(name for name, row in TYPES.items() if row.batchable)


def relative_step_cost(type_name: str) -> float:
    """A step's cost relative to Adam's (``OptimizerType.step_cost``; 1 for an import path): the
    scheduler's estimate only."""
    row = TYPES.get(type_name)
    return 1.0 if row is None else row.step_cost


class OptimizerConfigError(ValueError):
    """An optimizer entry in the config names an unknown type or hyperparameter."""


def known() -> list[str]:
    """The registry's type names, sorted (what error messages list)."""
    return sorted(TYPES)


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
    module, _, name = TYPES[type_name].cls.partition(":")
    return getattr(importlib.import_module(module), name)


@cache
def constructor_parameters(type_name: str) -> tuple[Parameter, ...]:
    """The constructor's arguments of a registry type, read from source when it can be, else imported;
    of an import path, from the imported class."""
    if is_import_path(type_name):
        return tuple(_parameters_from_import(resolve(type_name)))
    row = TYPES[type_name]
    module, _, name = row.cls.partition(":")
    found = _parameters_from_source(module, name)
    own = found if found is not None else _parameters_from_import(resolve(type_name))
    if row.forwards_to is None:
        return tuple(own)
    base = _parameters_from_source(*row.forwards_to.split(":")) or []
    named = {p.name for p in own}
    return tuple([p for p in own if not p.variadic] + [p for p in base if p.name not in named])


def has_method(type_name: Any, method: str) -> bool:
    """Whether the optimizer class of ``type_name`` (a registry type or an import path) has a method
    named ``method`` (e.g. Shampoo's ``reset_preconditioner``). False for a type that is neither.

    A registry class that defines the method in its own source answers without importing anything
    (the Snakefile's config check stays fast); otherwise the class is imported (with torch, seconds)
    and asked, which also finds inherited methods. Raises ``OptimizerConfigError`` as ``resolve``
    does for an import path that is not an optimizer class.
    """
    if not is_import_path(type_name) and type_name not in TYPES:
        return False
    if not is_import_path(type_name):
        node = _class_from_source(*TYPES[type_name].cls.split(":"))
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


def without_regularizer(entry: dict[str, Any]) -> dict[str, Any]:
    """``entry`` less the reference regularizer's keys (``checks.REGULARIZER_KEYS``): the optimizer's own entry."""
    return {k: v for k, v in entry.items() if k not in checks.REGULARIZER_KEYS}


def check(name: str, entry: dict[str, Any]) -> None:
    """Fail early, naming the bad or missing key and the valid choices, if ``entry`` cannot build an optimizer.

    Raises ``OptimizerConfigError`` (a ``ValueError``). A registry type imports nothing heavy; an
    import path is imported (with torch, seconds, once per process).

    Any entry may also carry a reference regularizer, ``regularizer: ewc | si`` with
    ``regularizer_strength: <number > 0>`` (``checks.regularizer``; trained by
    ``optbias.continual.regularizers``): those two keys are checked here, torch-free, and the rest
    of the entry is checked as the optimizer's.
    """
    try:
        checks.regularizer(entry)
    except ValueError as err:
        raise OptimizerConfigError(f"optimizers.{name}: {err}") from None
    entry = without_regularizer(entry)
    type_name = entry.get("type")
    if is_import_path(type_name):
        problem = _import_path_problem(type_name)
        if problem is not None:
            raise OptimizerConfigError(f"optimizers.{name}: {problem}")
    elif type_name not in TYPES:
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
    row = TYPES.get(type_name)  # None for an import path
    module, why = (row.needs, row.needs_why) if row is not None else (None, "")
    if module is not None and importlib.util.find_spec(module) is None:
        raise OptimizerConfigError(f"optimizers.{name}: {type_name} needs the package {module}, which is not "
                                   f"installed: {why}. Install it: pip install -r requirements.lock (it pins "
                                   f"{module}), or pip install {module}")
    if row is not None and row.options is not None:  # the values, torch-free, before any job
        module_name, _, function = row.options.partition(":")
        try:
            getattr(importlib.import_module(module_name), function)({k: v for k, v in entry.items() if k != "type"})
        except ValueError as err:
            raise OptimizerConfigError(f"optimizers.{name}: {err}") from None
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
    mode): the type's stacked class (``OptimizerType.stacked``), or its own class for an element-wise
    type; ``ValueError`` for a type that is neither (not in ``BATCHABLE``)."""
    check(name, entry)
    entry = without_regularizer(entry)  # the regularizer is the training loop's, not the optimizer's
    kwargs = {k: v for k, v in entry.items() if k != "type"}
    if stacked and entry["type"] not in BATCHABLE:
        raise ValueError(f"optimizer {name!r}: type {entry['type']!r} cannot step stacked runs; "
                         f"the batched-seed mode trains {', '.join(sorted(BATCHABLE))}")
    if stacked and TYPES[entry["type"]].stacked is not None:
        module, _, cls_name = TYPES[entry["type"]].stacked.partition(":")
        optimizer = getattr(importlib.import_module(module), cls_name)(params, **kwargs)
        return optimizer  # no attach: the stacked runs' gradients come from torch.func, not from layers
    optimizer = resolve(entry["type"])(params, **kwargs)
    if model is not None and callable(getattr(optimizer, "attach", None)):
        optimizer.attach(model)
    return optimizer
