"""The tasks of the continual-learning benchmarks, as tensors ready for training.

Pixels are scaled to [0, 1] here, once, so that training and probes see the same inputs.

* ``class_incremental``: one task per group of classes (the benchmark's: the digit pairs (0,1), ...,
  (8,9)), one shared 10-way head and no task id at test time (labels keep their digit value).
* ``permuted``: T tasks on all ten digits; task 0 is the identity permutation, task t > 0 a fixed
  pixel permutation drawn from ``permutation_seed`` and t.

Which benchmarks exist, and what they cost, is ``optbias.continual.benchmarks``.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import torch

from ..data import stratified_split


@dataclass(frozen=True)
class Task:
    """One task: (N, 784) float32 pixels in [0, 1] and (N,) int64 labels, train and test splits."""

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


def class_incremental(data: dict[str, torch.Tensor], pairs: list[tuple[int, ...]]) -> list[Task]:
    """One task per group of classes (``pairs``: the groups in training order; the benchmark's are
    ``benchmarks.DEFAULT_PAIRS``); classes never mix across tasks. Raises ``ValueError`` when a
    class appears in two groups."""
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
