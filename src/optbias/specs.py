"""Run specs: what determines each training run and Powerprop method, as pure functions of the config.

The training rules pass these dicts to their jobs as ``params`` (workflow/rules/continual.smk and
powerprop.smk, through the thin wrappers of workflow/rules/common.smk). Snakemake reruns a job when
its params change, so a spec holds everything a run's result depends on and nothing else: a change
here reruns exactly the runs it touches. The shape of a training spec is
``optbias.continual.types.RunSpec``.

Every function takes a config that the Snakefile has validated (``optbias.config.validate``: the
schema's defaults filled in, names checked) and returns fresh containers, except that the config's
own blocks (``benchmarks.<b>``, ``model``, an optimizer entry) appear in a spec as they are, not as
copies: never modify a returned spec. Nothing here imports torch, so parsing the Snakefile stays fast.

This module sits above ``optbias.config`` (it expands entries with it) and nothing in the library
imports it.
"""

from __future__ import annotations

import json
from typing import Any

from . import config as _config
from . import optim
from .continual import benchmarks, knobs


def lr_label(lr: Any) -> str:
    """A learning rate as it appears in sweep paths and wildcards: ``float(lr)`` in ``%g`` form.

    ``0.1``, ``"0.1"`` and ``1e-1`` all give ``"0.1"``; ``1e-05`` gives ``"1e-05"``. Raises
    ``ValueError`` (or ``TypeError``) for a value ``float`` does not accept.
    """
    return f"{float(lr):g}"


def job_seeds(config: dict, seeds: list, seed: Any = None) -> list[int]:
    """The seeds one training job runs, in order, as ints.

    With ``seed_jobs: together`` a job trains every seed of ``seeds`` and ``seed`` is ignored; with
    ``seed_jobs: separate`` a job trains only its own ``seed`` (its wildcard, text or int). Raises
    ``ValueError`` when a separate job is not given its seed.
    """
    if config["seed_jobs"] == "together":
        return [int(s) for s in seeds]
    if seed is None:
        raise ValueError("seed_jobs: separate: a training job trains its own seed, and none was given")
    return [int(seed)]


def run_spec(config: dict, benchmark: str, optimizer: str, seed: Any) -> dict:
    """One run of ``optimizer`` (an entry of ``optbias.config.optimizer_entries``: headline optimizer,
    ablation variant or noise-floor control) on ``benchmark`` with ``seed``: a ``RunSpec``.

    Keys, in this order: benchmark, benchmark_cfg (the config's block), optimizer, optimizer_cfg
    (the expanded entry), seed (int), model, train (``optbias.config.train_overrides``: the
    ``train`` block plus a variant's overrides, or a control's ``batch_order``). Raises ``KeyError``
    for a benchmark or optimizer the config does not have.
    """
    return {
        "benchmark": benchmark,
        "benchmark_cfg": config["benchmarks"][benchmark],
        "optimizer": optimizer,
        "optimizer_cfg": _config.optimizer_entries(config)[optimizer],
        "seed": int(seed),
        "model": config["model"],
        "train": _config.train_overrides(config, optimizer),
    }


def sweep_spec(config: dict, benchmark: str, optimizer: str, lr: Any, seed: Any) -> dict:
    """A run of the learning-rate sweep: ``run_spec`` with three changes only, the entry's ``lr``
    set to ``float(lr)``, and in ``train`` the sweep's ``validation_fraction`` (a held-out part of
    each task's training split) and ``on_divergence: record``.

    ``seed`` is a validation seed (``sweep.seeds``). Raises ``KeyError`` when the config has no
    ``sweep`` block, and as ``run_spec`` does.
    """
    spec = run_spec(config, benchmark, optimizer, seed)
    spec["optimizer_cfg"] = {**spec["optimizer_cfg"], "lr": float(lr)}
    spec["train"] = {**spec["train"], "validation_fraction": config["sweep"]["validation_fraction"],
                     "on_divergence": "record"}
    return spec


def knob_spec(config: dict, benchmark: str, optimizer: str, value: Any, seed: Any) -> dict:
    """A run of the retention rule (``optbias.continual.knobs``): ``run_spec`` with the entry's knob
    (``knobs.<optimizer>.option``) set to ``float(value)``, and in ``train`` the sweep's
    ``validation_fraction`` and ``on_divergence: record``, as a learning-rate sweep run has.

    ``seed`` is a validation seed (``sweep.seeds``). Raises ``KeyError`` when the config has no
    ``knobs`` entry for ``optimizer`` or no ``sweep`` block, and as ``run_spec`` does.
    """
    spec = run_spec(config, benchmark, optimizer, seed)
    spec["optimizer_cfg"] = knobs.with_option(spec["optimizer_cfg"], config["knobs"][optimizer]["option"], value)
    spec["train"] = {**spec["train"], "validation_fraction": config["sweep"]["validation_fraction"],
                     "on_divergence": "record"}
    return spec


def budget_spec(config: dict, benchmark: str, optimizer: str, epochs: Any, seed: Any, validation: bool) -> dict:
    """A run at another training budget: ``run_spec`` with the benchmark's ``epochs_per_task`` set to
    ``int(epochs)`` and ``on_divergence: record`` in ``train``.

    With ``validation``, a run that the budget rule scores: ``train`` also gets the budget block's
    ``validation_fraction`` (and ``seed`` is one of ``budget.validation_seeds``). Without, a run of
    the forgetting-against-budget experiment, on the test split. Raises ``KeyError`` when
    ``validation`` is set and the config has no ``budget`` block, and as ``run_spec`` does.
    """
    spec = run_spec(config, benchmark, optimizer, seed)
    spec["benchmark_cfg"] = {**spec["benchmark_cfg"], "epochs_per_task": int(epochs)}
    extra = {"validation_fraction": config["budget"]["validation_fraction"]} if validation else {}
    spec["train"] = {**spec["train"], **extra, "on_divergence": "record"}
    return spec


def expected_cost(config: dict, benchmark: str, optimizer: str, n_runs: int, epochs: Any = None) -> float:
    """A training job's priority: its expected run time in arbitrary units, ``n_runs`` x passes over
    the data (``epochs`` per task when given, else the benchmark's) x the optimizer type's relative
    step cost (``optbias.optim.relative_step_cost``).

    Snakemake starts the highest priority first; longest-first keeps every core busy to the end
    instead of leaving one long job running alone after everything else has finished. Raises
    ``KeyError`` for a benchmark or optimizer the config does not have.
    """
    cfg = config["benchmarks"][benchmark]
    cfg = {**cfg, "epochs_per_task": int(epochs)} if epochs is not None else cfg
    passes = benchmarks.get(benchmark).passes(cfg)
    return n_runs * passes * optim.relative_step_cost(_config.optimizer_entries(config)[optimizer]["type"])


def powerprop_spec(config: dict, method: str) -> dict:
    """Everything that determines one Powerprop method's runs; a change reruns that method only.

    Keys: name (``method``), method (its block of ``powerprop.methods``), cfg (the ``powerprop``
    block without ``methods`` and ``equivalence``: what the other methods' and the equivalence
    study's settings must not touch), model_cfg (the config's ``model``). Raises ``KeyError`` when
    the config has no ``powerprop`` block or no such method.
    """
    powerprop = config["powerprop"]
    return {
        "name": method,
        "method": powerprop["methods"][method],
        "cfg": {k: v for k, v in powerprop.items() if k not in ("methods", "equivalence")},
        "model_cfg": config["model"],
    }


def _swept_lr(config: dict, optimizer: str) -> str | None:
    """The entry's own learning rate as a sweep label when the sweep tries it, else None."""
    lr = _config.optimizer_entries(config)[optimizer].get("lr")
    tried = {lr_label(c) for c in config.get("sweep", {}).get("lrs", {}).get(optimizer, [])}
    return lr_label(lr) if lr is not None and lr_label(lr) in tried else None


def _same_runs(pairs) -> bool:
    """Whether every (spec, spec) pair is the same run: equal as canonical JSON, the form Snakemake's
    params and the resume key compare (so ``1`` and ``1.0`` differ, as they do there)."""
    return all(json.dumps(a, sort_keys=True) == json.dumps(b, sort_keys=True) for a, b in pairs)


def sweep_twin(config: dict, benchmark: str, optimizer: str, epochs: Any) -> str | None:
    """The sweep's learning-rate label (``lr_label``) whose runs are exactly the budget rule's runs of
    the cell (``benchmark``, ``optimizer``, ``epochs``), or None.

    At the configured budget, a swept optimizer's sweep runs at its configured learning rate can
    have the same spec as the budget rule's validation runs (same seeds, held-out fraction and
    divergence handling): the budget rule then reads those instead of training them again. Only a
    whole cell is shared: every budget validation seed must be a sweep seed and each
    ``sweep_spec`` must equal its ``budget_spec(validation=True)`` (``_same_runs``), so that no job
    trains a run another job also writes. None as well when the entry has no ``lr`` or the sweep
    does not try it. Raises ``KeyError`` for an optimizer the config does not have.
    """
    lr = _swept_lr(config, optimizer)
    if lr is None:
        return None
    sweep_seeds = [int(s) for s in config["sweep"].get("seeds", [])]
    validation_seeds = [int(s) for s in config.get("budget", {}).get("validation_seeds", [])]
    same = all(int(seed) in sweep_seeds for seed in validation_seeds) and _same_runs(
        (sweep_spec(config, benchmark, optimizer, lr, seed),
         budget_spec(config, benchmark, optimizer, epochs, seed, validation=True)) for seed in validation_seeds)
    return lr if same else None


def knob_twin(config: dict, benchmark: str, optimizer: str, value: Any) -> str | None:
    """The sweep's learning-rate label (``lr_label``) whose runs are exactly the retention rule's runs of
    the cell (``benchmark``, ``optimizer``, knob ``value``), or None.

    At the configured value of a knob, a swept optimizer's sweep runs at its configured learning rate
    have the same spec as the retention rule's runs (the same validation seeds, held-out fraction and
    divergence handling): the rule then reads those instead of training them again (OWM at its
    configured alpha, in the default). As for ``sweep_twin``, only a whole cell is shared: each seed's
    ``sweep_spec`` must equal its ``knob_spec`` (``_same_runs``). None when the entry has no ``lr``
    or the sweep does not try it. Raises ``KeyError`` for an optimizer the config does not have, or
    whose knob (``knobs``) it does not tune while its lr is swept.
    """
    lr = _swept_lr(config, optimizer)
    if lr is None:
        return None
    seeds = config["sweep"].get("seeds", [])
    same = bool(seeds) and _same_runs((sweep_spec(config, benchmark, optimizer, lr, seed),
                                       knob_spec(config, benchmark, optimizer, value, seed)) for seed in seeds)
    return lr if same else None
