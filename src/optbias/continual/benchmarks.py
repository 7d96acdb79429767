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

**Chance accuracy** (``BenchmarkSpec.chance_accuracy``), declared before the runs it judges: the
chance accuracy of a task is 1 / (the number of classes in that task), 1/2 on a class-incremental
pair and 1/10 on a permuted task. It is the floor of the rule that says whether a run set learned
at all (``optbias.continual.metrics.learned``): forgetting is only read as retention above it.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from fractions import Fraction
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

    ``n_tasks`` and ``classes_per_task`` work without data so that the Snakemake DAG can name every
    checkpoint up front and a summary can judge its runs without loading MNIST.
    """

    build: Callable[[dict[str, torch.Tensor], dict], list[Task]]
    n_tasks: Callable[[dict], int]
    passes: Callable[[dict], float]  # passes over the dataset in one run (the scheduler's cost estimate)
    classes_per_task: Callable[[dict], list[int]]  # number of classes of each task, in training order

    def chance_accuracy(self, cfg: dict) -> float:
        """The chance accuracy of this benchmark's tasks under the benchmark config ``cfg``.

        The chance accuracy of one task is 1 / (number of classes in that task): 0.5 on a
        class-incremental pair, 0.1 on a permuted task (all ten digits). The value returned is its
        mean over the tasks, which is the learning accuracy (mean_i R[i][i]) a model that guesses
        uniformly among each task's classes would score; when every task has the same number of
        classes (the paper's configs), it is that task's 1 / n exactly. A fraction in (0, 1].

        Raises ``KeyError`` when ``cfg`` lacks a key the task count needs (``n_tasks`` of
        ``permuted``) and ``ValueError`` on a benchmark with no task or a task with no class.
        """
        counts = [int(n) for n in self.classes_per_task(cfg)]
        if not counts or min(counts) < 1:
            raise ValueError(f"chance accuracy: every task needs at least one class, got classes per task {counts}")
        # Exact fractions, rounded once: 1/2 and 1/10 come out as the floats 0.5 and 0.1.
        return float(sum(Fraction(1, n) for n in counts) / len(counts))


BENCHMARKS: dict[str, BenchmarkSpec] = {
    "class_incremental": BenchmarkSpec(
        build=_class_incremental,
        n_tasks=lambda cfg: len(cfg.get("pairs", DEFAULT_PAIRS)),
        passes=lambda cfg: float(cfg["epochs_per_task"]),  # each pair's share of the data, once per epoch
        classes_per_task=lambda cfg: [len(p) for p in cfg.get("pairs", DEFAULT_PAIRS)],  # 2 per pair
    ),
    "permuted": BenchmarkSpec(
        build=_permuted,
        n_tasks=lambda cfg: int(cfg["n_tasks"]),
        passes=lambda cfg: float(cfg["n_tasks"] * cfg["epochs_per_task"]),  # all data, per task
        classes_per_task=lambda cfg: [10] * int(cfg["n_tasks"]),  # every task: all ten digits
    ),
}


def get(name: str) -> BenchmarkSpec:
    """The benchmark ``name``; raises ``ValueError`` listing the known ones if there is none."""
    if name not in BENCHMARKS:
        raise ValueError(f"unknown benchmark {name!r}; known benchmarks: {', '.join(sorted(BENCHMARKS))}")
    return BENCHMARKS[name]


def chance_accuracy(name: str, cfg: dict) -> float:
    """The chance accuracy of the tasks of benchmark ``name`` under its config ``cfg``
    (``BenchmarkSpec.chance_accuracy``: 1 / classes per task, 0.5 on ``class_incremental`` pairs,
    0.1 on ``permuted``). Raises ``ValueError`` on an unknown benchmark (``get``)."""
    return get(name).chance_accuracy(cfg)
