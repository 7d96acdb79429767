"""Semantic checks and expansion of a workflow config, on top of the JSON schema.

All of a config's defaults and checks live in two places. The schema
(workflow/schemas/config.schema.yaml) holds the structure, every key's type, default and
description; this module holds what only the library knows: datasets, benchmarks, optimizer types
and their hyperparameters, and the references between config blocks (ablation base, swept
optimizers, Powerprop methods). Both run when the Snakefile is parsed, so a bad config stops
before any job starts, and neither imports torch, so parsing stays fast.

This module sits on top of the library: it imports the registries of the stages, and nothing in
the library imports it.
"""

from __future__ import annotations

import math

from . import data, optim
from .continual import benchmarks


class ConfigError(ValueError):
    """The config names something the library does not know; the message lists the valid names."""


def optimizer_entries(config: dict) -> dict[str, dict]:
    """Every trainable optimizer entry: ``optimizers`` plus the Shampoo ablation's variants.

    A variant is its base entry with the variant's ``optimizer`` overrides applied.
    """
    entries = dict(config["optimizers"])
    ablation = config.get("ablation")
    if ablation:
        base = ablation["base"]
        if base not in config["optimizers"]:
            raise ConfigError(f"ablation.base: {base!r} is not an optimizer; optimizers: {', '.join(config['optimizers'])}")
        for name, variant in ablation["variants"].items():
            if name in entries:
                raise ConfigError(f"ablation.variants.{name}: the name is already used by an optimizer")
            entries[name] = {**config["optimizers"][base], **variant.get("optimizer", {})}
    return entries


def train_overrides(config: dict, name: str) -> dict:
    """The ``train`` settings of one optimizer entry (an ablation variant may override some).

    An ablation variant records a divergence instead of failing the pipeline: that a variant
    (say, Shampoo without grafting) blows up on some seeds is a finding, reported with its count.
    """
    variants = config.get("ablation", {}).get("variants", {})
    if name not in variants:
        return dict(config.get("train", {}))
    return {**config.get("train", {}), "on_divergence": "record", **variants[name].get("train", {})}


def check(config: dict) -> None:
    """Check a schema-validated config for names the library does not know; raises ``ConfigError``."""
    dataset = config.get("dataset")
    if dataset not in data.SOURCES:
        raise ConfigError(f"dataset: unknown dataset {dataset!r}; known datasets: {', '.join(sorted(data.SOURCES))}")
    for name in config.get("benchmarks", {}):
        if name not in benchmarks.BENCHMARKS:
            raise ConfigError(
                f"benchmarks: unknown benchmark {name!r}; known benchmarks: {', '.join(sorted(benchmarks.BENCHMARKS))}"
            )
    entries = optimizer_entries(config)
    for name, entry in entries.items():
        try:
            optim.check(name, entry)
        except optim.OptimizerConfigError as err:
            raise ConfigError(str(err)) from None
    ablation_seeds = config.get("ablation", {}).get("seeds", [])
    extra = [s for s in ablation_seeds if s not in config.get("seeds", [])]
    if extra:  # the base optimizer's ablation runs are its headline runs
        raise ConfigError(f"ablation.seeds: {extra} not in seeds {config.get('seeds')}; the ablation reuses the "
                          "base optimizer's headline runs, so its seeds must be a subset of `seeds`")
    for name in config.get("sweep", {}).get("lrs", {}):
        if name not in entries:
            raise ConfigError(f"sweep.lrs: {name!r} is not an optimizer or ablation variant; known: {', '.join(entries)}")
    if config.get("sweep"):
        _check_validation_seeds("sweep.seeds", config["sweep"]["seeds"], list(config.get("seeds", [])))
    if config.get("budget"):
        check_budget(config)
    if config.get("powerprop"):
        check_powerprop(config["powerprop"])
        _check_validation_seeds("powerprop.validation_seeds", config["powerprop"]["validation_seeds"],
                                list(config["powerprop"]["seeds"]))


def check_budget(config: dict) -> None:
    """Check the ``budget`` block against the rest: one entry per benchmark, experiment seeds among
    ``seeds``, validation seeds not among them. Raises ``ConfigError`` naming the key to fix."""
    budget, seeds = config["budget"], list(config.get("seeds", []))
    names, benches = set(budget["benchmarks"]), set(config.get("benchmarks", {}))
    if names != benches:
        raise ConfigError(f"budget.benchmarks: give exactly the config's benchmarks {sorted(benches)} "
                          f"(missing: {sorted(benches - names)}, unknown: {sorted(names - benches)})")
    extra = [s for s in budget["seeds"] if s not in seeds]
    if extra:  # the experiment reuses the headline runs at the configured budget
        raise ConfigError(f"budget.seeds: {extra} not in seeds {seeds}; the experiment reuses the headline runs at "
                          "the configured budget, so its seeds must be a subset of `seeds`")
    _check_validation_seeds("budget.validation_seeds", budget["validation_seeds"], seeds)
    for name, entry in budget["benchmarks"].items():
        epochs = config["benchmarks"][name]["epochs_per_task"]
        if epochs not in entry["grid"]:
            raise ConfigError(f"benchmarks.{name}.epochs_per_task is {epochs}, not a budget of budget.benchmarks.{name}.grid "
                              f"{entry['grid']}: the budget rule chooses from the grid, so set it to the rule's choice "
                              "(data/budget/selected.json) or add it to the grid")


def _check_validation_seeds(key: str, validation: list[int], reported: list[int]) -> None:
    clash = [s for s in validation if s in reported]
    if clash:
        raise ConfigError(f"{key}: {clash} are reported seeds; choose validation seeds outside {reported}")


def check_powerprop(cfg: dict) -> None:
    """Check the ``powerprop`` block: every method can build its optimizer, alphas and pruning levels are valid.

    Raises ``ConfigError`` naming the method and key (e.g. a missing alpha, an lr set in the entry).
    """
    for name, method in cfg["methods"].items():
        if "lr" in method.get("optimizer", {}):
            raise ConfigError(f"powerprop.methods.{name}.optimizer: remove lr; list candidates under "
                              f"powerprop.methods.{name}.lrs and the validation rule picks one")
        entry = {**method.get("optimizer", {}), "lr": method["lrs"][0]}
        try:
            optim.check(f"(powerprop.methods.{name}.optimizer)", entry)
        except optim.OptimizerConfigError as err:
            raise ConfigError(str(err)) from None
        alpha = method.get("reparam_alpha")
        if alpha is not None and not (isinstance(alpha, (int, float)) and math.isfinite(alpha) and alpha >= 1):
            raise ConfigError(f"powerprop.methods.{name}.reparam_alpha must be a number >= 1, got {alpha!r}")
    fractions = cfg.get("prune_fractions", [])
    if any(not 0 <= f <= 1 for f in fractions) or list(fractions) != sorted(fractions):
        raise ConfigError(f"powerprop.prune_fractions must be increasing values in [0, 1], got {fractions}")
