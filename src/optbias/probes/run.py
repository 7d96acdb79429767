"""Probe evaluation of training runs: every probe of ``optbias.probes.measures`` on every per-task checkpoint.

A training run leaves ``fileio.checkpoint_path(checkpoints, i)`` (the model after task i) and ``metrics.json``
(the head-accuracy matrix R and the run's spec). For each checkpoint this module computes, once,
the hidden activations it needs and feeds them to every probe:

* on a fixed **probe set** (a seeded sample of ``probe_set_per_class`` test images per class,
  the same images at every checkpoint and for every optimizer): effective rank and srank of each
  hidden layer's activation matrix, both *uncentered* (the raw post-ReLU matrix, as Roy &
  Vetterli define it) and *centered* (feature means removed, so a shared offset is not a
  direction); the 10 x 10 cosine similarities of the class-mean activations and their mean
  off-diagonal value; activation sparsity and dead units;
* effective rank and srank of every weight matrix (uncentered: a weight matrix has no samples);
* **linear probes** (representation forgetting): for task j and checkpoint i >= j, closed-form
  ridge on the frozen features of task j's training split, scored on its test split: P[i][j],
  next to the head accuracy R[i][j].

Every record carries its metadata (benchmark, optimizer, seed, checkpoint, task, layer), so a
probes.json file can be read on its own. Nothing here trains or draws random numbers except the
seeded probe-set sample and the seeded validation split of the ridge probe.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch

from .. import data, fileio
from ..continual import benchmarks
from ..continual.tasks import Task
from ..continual.types import RunMetrics
from ..fileio import checkpoint_output, checkpoint_path, load_checkpoint, rebuild_command
from ..models import MLP
from . import measures

PAIR_MODES = ("all", "diagonal_and_final", "final")  # the schema's enum of probes.linear_probe_pairs


def linear_probe_pairs(n_tasks: int, mode: str = "all") -> list[tuple[int, int]]:
    """(checkpoint i, task j) pairs to probe, i >= j.

    ``all``: the whole lower triangle; ``diagonal_and_final``: P[j][j] (just learned) and
    P[T-1][j] (after the last task), which is what representation forgetting needs;
    ``final``: only P[T-1][j].
    """
    if mode not in PAIR_MODES:
        raise ValueError(f"linear probe pairs: {mode!r} is not one of {', '.join(PAIR_MODES)}")
    last = n_tasks - 1
    if mode == "all":
        return [(i, j) for i in range(n_tasks) for j in range(i + 1)]
    pairs = {(last, j) for j in range(n_tasks)}
    if mode == "diagonal_and_final":
        pairs |= {(j, j) for j in range(n_tasks)}
    return sorted(pairs)


def probe_set(tasks: Sequence[Task], per_class: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """A fixed, seeded sample of test images: up to ``per_class`` of every class.

    The pool is the test split of each class as the *first* task that holds the class presents
    it: the unpermuted images in permuted MNIST (task 0 holds all ten digits), each pair's own
    images in class-incremental MNIST. The same images are used at every checkpoint, so changes
    across checkpoints are changes of the network, not of the inputs.
    """
    if per_class < 1:
        raise ValueError(f"probes.probe_set_per_class must be >= 1, got {per_class}")
    xs, ys, covered = [], [], set()
    for task in tasks:
        new = [c for c in task.classes if c not in covered]
        if not new:
            continue
        keep = torch.isin(task.y_test, torch.tensor(new, device=task.y_test.device))
        xs.append(task.x_test[keep])
        ys.append(task.y_test[keep])
        covered |= set(new)
    x, y = torch.cat(xs), torch.cat(ys)
    generator = torch.Generator().manual_seed(seed)
    chosen = []
    for c in sorted(covered):
        idx = torch.nonzero(y == c).flatten()
        if idx.numel() == 0:
            raise ValueError(f"class {c} has no test image, so the probe set cannot cover it")
        chosen.append(idx[torch.randperm(idx.numel(), generator=generator)[:per_class]])
    index = torch.cat(chosen)
    return x[index], y[index]


def load_model(path: str | Path, model_cfg: dict) -> MLP:
    """The MLP of a checkpoint (``state_dict`` only, read by ``fileio.load_checkpoint``).

    Raises ``fileio.CheckpointError`` (a ``ValueError``) naming the file and the command that
    rebuilds it when the file is missing, truncated or corrupted, and ``ValueError`` when the
    checkpoint does not match ``model_cfg["hidden"]``.
    """
    state = load_checkpoint(path)
    hidden = model_cfg["hidden"]
    model = MLP(state["hidden_layers.0.weight"].shape[1], hidden, state["head.weight"].shape[0])
    try:
        model.load_state_dict(state)
    except RuntimeError as err:
        raise ValueError(f"{path} does not match model.hidden={hidden} of its run: {err}") from None
    return model.eval()


@torch.no_grad()
def hidden_features(model: MLP, x: torch.Tensor, layers: Sequence[int] | None = None) -> list[torch.Tensor]:
    """Post-ReLU activations (float32) of the hidden layers ``layers`` (default: all) on ``x``."""
    _, hidden = model.forward_with_hidden(x)
    return hidden if layers is None else [hidden[i] for i in layers]


def _representation_records(model: MLP, x: torch.Tensor, y: torch.Tensor, num_classes: int,
                            delta: float) -> list[dict[str, Any]]:
    records = []
    for layer, acts in enumerate(hidden_features(model, x), start=1):
        uncentered = measures.rank_measures(acts, delta, center=False)
        centered = measures.rank_measures(acts, delta, center=True)
        cos = measures.class_mean_cosine_similarity(acts, y, num_classes)
        records.append({
            "layer": layer,
            "width": acts.shape[1],
            "erank": uncentered["erank"],
            "srank": uncentered["srank"],
            "erank_centered": centered["erank"],
            "srank_centered": centered["srank"],
            "cosine_mean_off_diagonal": measures.mean_off_diagonal(cos),
            "cosine_matrix": [[None if v != v else v for v in row] for row in cos.tolist()],  # NaN -> null
            "activation_sparsity": measures.activation_sparsity(acts),
            "dead_units": measures.dead_units(acts),
        })
    return records


def _weight_records(model: MLP, delta: float) -> list[dict[str, Any]]:
    return [{"matrix": name, "shape": list(p.shape), **measures.rank_measures(p, delta)}
            for name, p in model.named_parameters() if p.ndim == 2]


def _probe_layers(n_hidden: int, mode: str) -> list[int]:
    if mode == "last":
        return [n_hidden - 1]
    if mode == "all":
        return list(range(n_hidden))
    raise ValueError(f"probes.linear_probe_layers: {mode!r} is not 'last' or 'all'")


def probe_run(metrics: RunMetrics, dataset_path: str | Path, checkpoint_dir: str | Path, cfg: dict) -> dict[str, Any]:
    """Every probe on every checkpoint of one run; ``cfg`` is the config's ``probes`` block (schema defaults filled).

    ``metrics`` is the run's metrics.json (``RunMetrics``). Raises ``ValueError`` for a diverged run
    or a missing checkpoint. Cost per checkpoint: SVDs of the (probe set x width) activations and
    of every weight matrix, plus one ridge fit per probed (task, layer).
    """
    started = time.perf_counter()
    torch.set_num_threads(int(cfg["threads"]))
    if metrics.get("status", "ok") != "ok":
        raise ValueError(f"{checkpoint_dir}: the run ended with status {metrics.get('status')!r}; nothing to probe")
    spec = metrics["spec"]
    meta = {"benchmark": metrics["benchmark"], "optimizer": metrics["optimizer"], "seed": int(metrics["seed"])}
    tasks = benchmarks.get(spec["benchmark"]).build(data.load(dataset_path), spec["benchmark_cfg"])
    n_tasks = len(tasks)
    paths = [checkpoint_path(checkpoint_dir, i) for i in range(n_tasks)]
    missing = [str(p) for p in paths if not p.exists()]
    if missing:
        raise ValueError(f"missing checkpoints {missing}: rerun the training job of this run with "
                         f"`{rebuild_command(checkpoint_output(paths[0]))}`")

    x_probe, y_probe = probe_set(tasks, int(cfg["probe_set_per_class"]), int(cfg["probe_set_seed"]))
    delta = float(cfg["srank_delta"])
    n_hidden = len(spec["model"]["hidden"])
    probe_layers = _probe_layers(n_hidden, cfg["linear_probe_layers"])
    pair_mode = cfg["linear_probe_pairs"].get(meta["benchmark"], "all")
    pairs = linear_probe_pairs(n_tasks, pair_mode)
    ridge = {"lambdas": [float(v) for v in cfg["ridge_lambdas"]], "val_fraction": float(cfg["ridge_val_fraction"]),
             "seed": int(cfg["ridge_split_seed"])}

    representations, weights, linear = [], [], []
    P = {layer + 1: [[None] * n_tasks for _ in range(n_tasks)] for layer in probe_layers}
    for i, path in enumerate(paths):
        model = load_model(path, spec["model"])
        num_classes = model.head.out_features
        where = {**meta, "checkpoint": i, "after_task": tasks[i].name}
        records = _representation_records(model, x_probe, y_probe, num_classes, delta)
        representations += [{**where, **r} for r in records]
        weights += [{**where, **r} for r in _weight_records(model, delta)]
        for j in [j for (ci, j) in pairs if ci == i]:
            task = tasks[j]
            # One forward pass over train and test of task j gives every probed layer's features.
            feats = hidden_features(model, torch.cat([task.x_train, task.x_test]), probe_layers)
            n_train = len(task.y_train)
            for layer, f in zip(probe_layers, feats):
                out = measures.linear_probe_accuracy(f[:n_train], task.y_train, f[n_train:], task.y_test,
                                                   num_classes=num_classes, lambdas=ridge["lambdas"],
                                                   val_fraction=ridge["val_fraction"], seed=ridge["seed"])
                P[layer + 1][i][j] = out["accuracy"]
                linear.append({**where, "layer": layer + 1, "task": j, "task_name": task.name,
                               "probe_accuracy": out["accuracy"], "head_accuracy": metrics["R"][i][j],
                               "lambda": out["lambda"], "val_accuracy": out["val_accuracy"]})

    return {
        **meta,
        "tasks": [t.name for t in tasks],
        "hidden_layers": list(range(1, n_hidden + 1)),
        "settings": cfg,
        "probe_set": {"size": int(len(y_probe)), "per_class": torch.bincount(y_probe).tolist(),
                      "source": "test split; each class as the first task holding it presents it"},
        "definitions": {
            "erank": "Roy & Vetterli effective rank of the uncentered (raw post-ReLU) activation matrix, "
                     "probe set x units; p = sigma / sum(sigma), no softmax",
            "erank_centered": "the same after subtracting each unit's mean over the probe set",
            "srank": f"smallest k with sum of top-k singular values >= (1 - {delta}) * sum (uncentered)",
            "cosine": "cosine similarity of class-mean activations over the probe set; mean over off-diagonal entries",
            "linear_probe": "closed-form ridge on one-hot targets, standardised features of task j's training split "
                            "at checkpoint i, lambda chosen on a held-out part of that split; test accuracy on task j",
            "pairs": pair_mode,
        },
        "R": metrics["R"],
        "P": {str(k): v for k, v in P.items()},
        "representations": representations,
        "weights": weights,
        "linear_probes": linear,
        "timing": {"probe_time_s": round(time.perf_counter() - started, 3)},
    }


def probe_runs(metrics_paths: Sequence[str | Path], checkpoint_dirs: Sequence[str | Path],
               outputs: Sequence[str | Path], dataset_path: str | Path, cfg: dict) -> None:
    """Probe several runs in one process (one torch import), writing each probes.json atomically."""
    if not len(metrics_paths) == len(checkpoint_dirs) == len(outputs):
        raise ValueError(f"probe: {len(metrics_paths)} metrics files, {len(checkpoint_dirs)} checkpoint directories "
                         f"and {len(outputs)} outputs; give one of each per run, in the same order")
    for metrics_path, ckpt, out in zip(metrics_paths, checkpoint_dirs, outputs):
        result = probe_run(fileio.load_json(metrics_path), dataset_path, ckpt, cfg)
        fileio.atomic_write_json(out, result)
        print(f"{out}: {len(result['representations'])} representation, {len(result['weights'])} weight and "
              f"{len(result['linear_probes'])} linear-probe records in {result['timing']['probe_time_s']:.1f} s")
