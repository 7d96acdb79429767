"""Semantic checks of a workflow config, on top of the JSON schema that Snakemake validates.

The schema catches misspelt keys and wrong types; this module catches names that only the
library knows: datasets, benchmarks and optimizer types with their hyperparameters. Both run
when the Snakefile is parsed, so a bad config stops before any job starts.
"""

from __future__ import annotations

from . import benchmarks, data, optim


class ConfigError(ValueError):
    """The config names something the library does not know; the message lists the valid names."""


def check(config: dict) -> None:
    dataset = config.get("dataset")
    if dataset not in data.SOURCES:
        raise ConfigError(f"dataset: unknown dataset {dataset!r}; known datasets: {', '.join(sorted(data.SOURCES))}")
    for name in config.get("benchmarks", {}):
        if name not in benchmarks.BENCHMARKS:
            raise ConfigError(
                f"benchmarks: unknown benchmark {name!r}; known benchmarks: {', '.join(sorted(benchmarks.BENCHMARKS))}"
            )
    for name, entry in config.get("optimizers", {}).items():
        try:
            optim.check(name, entry)
        except optim.OptimizerConfigError as err:
            raise ConfigError(str(err)) from None
