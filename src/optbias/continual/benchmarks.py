"""Which continual-learning benchmarks exist: their names, task counts and costs (no torch needed).

The Snakefile reads this registry when it is parsed, to check the config and to order jobs by
cost, so it imports nothing heavy; building the tasks' tensors is ``optbias.continual.tasks``.

* ``class_incremental``: the digit pairs (0,1), (2,3), (4,5), (6,7), (8,9) in that order, one
  shared 10-way head and no task id at test time.
* ``permuted``: T tasks on all ten digits under fixed pixel permutations (task 0: the identity).

The config keys of each, and their defaults, are in workflow/schemas/config.schema.yaml. Two
values are the benchmarks' definition rather than config defaults: the paper's five pairs
(``DEFAULT_PAIRS``, when the config gives no ``pairs``) and permutation seed 0 for a benchmark
config built by hand (the schema fills it in a workflow config).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import torch

    from .tasks import Task

DEFAULT_PAIRS: tuple[tuple[int, ...], ...] = ((0, 1), (2, 3), (4, 5), (6, 7), (8, 9))


def _class_incremental(data: dict[str, torch.Tensor], cfg: dict) -> list[Task]:
    from .tasks import class_incremental

    return class_incremental(data, [tuple(p) for p in cfg.get("pairs", DEFAULT_PAIRS)])


def _permuted(data: dict[str, torch.Tensor], cfg: dict) -> list[Task]:
    from .tasks import permuted

    return permuted(data, cfg["n_tasks"], cfg.get("permutation_seed", 0))


@dataclass(frozen=True)
class BenchmarkSpec:
    """How to build a benchmark from (dataset, benchmark config), and how many tasks it has.

    ``n_tasks`` works without data so that the Snakemake DAG can name every checkpoint up front.
    """

    build: Callable[[dict[str, torch.Tensor], dict], list[Task]]
    n_tasks: Callable[[dict], int]
    passes: Callable[[dict], float]  # passes over the dataset in one run (the scheduler's cost estimate)


BENCHMARKS: dict[str, BenchmarkSpec] = {
    "class_incremental": BenchmarkSpec(
        build=_class_incremental,
        n_tasks=lambda cfg: len(cfg.get("pairs", DEFAULT_PAIRS)),
        passes=lambda cfg: float(cfg["epochs_per_task"]),  # each pair's share of the data, once per epoch
    ),
    "permuted": BenchmarkSpec(
        build=_permuted,
        n_tasks=lambda cfg: int(cfg["n_tasks"]),
        passes=lambda cfg: float(cfg["n_tasks"] * cfg["epochs_per_task"]),  # all data, per task
    ),
}


def get(name: str) -> BenchmarkSpec:
    """The benchmark ``name``; raises ``ValueError`` listing the known ones if there is none."""
    if name not in BENCHMARKS:
        raise ValueError(f"unknown benchmark {name!r}; known benchmarks: {', '.join(sorted(BENCHMARKS))}")
    return BENCHMARKS[name]
