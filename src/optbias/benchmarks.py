"""Continual-learning benchmarks built from one fetched dataset.

Both benchmarks return a list of :class:`Task` with tensors ready for training. Pixels are scaled
to [0, 1] here, once, so that training and probes see the same inputs.

* ``class_incremental``: the digit pairs (0,1), (2,3), (4,5), (6,7), (8,9) in that order, one
  shared 10-way head and no task id at test time (labels keep their digit value).
* ``permuted``: T tasks on all ten digits; task 0 is the identity permutation, task t > 0 a fixed
  pixel permutation drawn from ``permutation_seed`` and t.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace

import torch

from .data import stratified_split

DEFAULT_PAIRS: tuple[tuple[int, ...], ...] = ((0, 1), (2, 3), (4, 5), (6, 7), (8, 9))


@dataclass(frozen=True)
class Task:
    name: str
    classes: tuple[int, ...]
    x_train: torch.Tensor
    y_train: torch.Tensor
    x_test: torch.Tensor
    y_test: torch.Tensor

    def to(self, device: torch.device | str) -> "Task":
        return replace(self, x_train=self.x_train.to(device), y_train=self.y_train.to(device),
                       x_test=self.x_test.to(device), y_test=self.y_test.to(device))


def split_validation(task: Task, fraction: float, seed: int) -> tuple[Task, Task]:
    """Hold out a stratified part of a task's training split for model selection.

    Returns (fit, validation): ``fit`` trains on the rest and keeps the real test split;
    ``validation`` carries the held-out examples in its test slots, for evaluation only.
    The test split is never used to choose hyperparameters.
    """
    fit_idx, val_idx = (torch.as_tensor(i) for i in stratified_split(task.y_train.cpu().numpy(), fraction, seed))
    fit = replace(task, x_train=task.x_train[fit_idx], y_train=task.y_train[fit_idx])
    validation = replace(task, x_test=task.x_train[val_idx], y_test=task.y_train[val_idx])
    return fit, validation


def _pixels(x: torch.Tensor) -> torch.Tensor:
    return x.to(torch.float32) / 255.0


def class_incremental(data: dict[str, torch.Tensor], pairs=DEFAULT_PAIRS) -> list[Task]:
    """One task per group of classes; classes never mix across tasks."""
    seen: set[int] = set()
    for group in pairs:
        if seen & set(group):
            raise ValueError(f"class_incremental: classes {sorted(seen & set(group))} appear in two tasks")
        seen |= set(group)
    tasks = []
    for group in pairs:
        group = tuple(int(c) for c in group)
        masks = {split: torch.isin(data[f"y_{split}"], torch.tensor(group)) for split in ("train", "test")}
        tasks.append(Task(
            name="/".join(map(str, group)),
            classes=group,
            x_train=_pixels(data["x_train"][masks["train"]]),
            y_train=data["y_train"][masks["train"]],
            x_test=_pixels(data["x_test"][masks["test"]]),
            y_test=data["y_test"][masks["test"]],
        ))
    return tasks


def permutation(task: int, num_pixels: int, seed: int) -> torch.Tensor:
    """The fixed pixel permutation of task ``task``: the identity for task 0."""
    if task == 0:
        return torch.arange(num_pixels)
    generator = torch.Generator().manual_seed(seed * 100_003 + task)
    return torch.randperm(num_pixels, generator=generator)


def permuted(data: dict[str, torch.Tensor], n_tasks: int = 10, permutation_seed: int = 0) -> list[Task]:
    """``n_tasks`` tasks, each the full dataset under one fixed pixel permutation."""
    if n_tasks < 1:
        raise ValueError(f"permuted: n_tasks must be >= 1, got {n_tasks}")
    x_train, x_test = _pixels(data["x_train"]), _pixels(data["x_test"])
    classes = tuple(int(c) for c in torch.unique(data["y_train"]))
    tasks = []
    for t in range(n_tasks):
        perm = permutation(t, x_train.shape[1], permutation_seed)
        tasks.append(Task(f"perm{t}", classes, x_train[:, perm], data["y_train"], x_test[:, perm], data["y_test"]))
    return tasks


@dataclass(frozen=True)
class BenchmarkSpec:
    """How to build a benchmark from (dataset, benchmark config), and how many tasks it has.

    ``n_tasks`` works without data so that the Snakemake DAG can name every checkpoint up front.
    The config keys are documented in workflow/schemas/config.schema.yaml.
    """

    build: Callable[[dict[str, torch.Tensor], dict], list[Task]]
    n_tasks: Callable[[dict], int]
    passes: Callable[[dict], float]  # passes over the dataset in one run (the scheduler's cost estimate)


BENCHMARKS: dict[str, BenchmarkSpec] = {
    "class_incremental": BenchmarkSpec(
        build=lambda data, cfg: class_incremental(data, [tuple(p) for p in cfg.get("pairs", DEFAULT_PAIRS)]),
        n_tasks=lambda cfg: len(cfg.get("pairs", DEFAULT_PAIRS)),
        passes=lambda cfg: float(cfg.get("epochs_per_task", 1)),  # each pair's share of the data, once per epoch
    ),
    "permuted": BenchmarkSpec(
        build=lambda data, cfg: permuted(data, cfg.get("n_tasks", 10), cfg.get("permutation_seed", 0)),
        n_tasks=lambda cfg: int(cfg.get("n_tasks", 10)),
        passes=lambda cfg: float(cfg.get("n_tasks", 10) * cfg.get("epochs_per_task", 1)),  # all data, per task
    ),
}


def get(name: str) -> BenchmarkSpec:
    if name not in BENCHMARKS:
        raise ValueError(f"unknown benchmark {name!r}; known benchmarks: {', '.join(sorted(BENCHMARKS))}")
    return BENCHMARKS[name]
