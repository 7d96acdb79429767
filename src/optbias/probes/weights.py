"""How far apart the optimizers' final weights are (PAPER.md claim 9, at the level of weights).

Every run of a seed starts from the same weights w_0 (``optbias.models.init_model`` depends on the seed
only), so the distance between two optimizers' final weights is the optimizer's doing. It is
reported relative to ||w_0||, which makes it comparable across widths: 0 means the same weights,
1 a difference as large as the initialization itself. All parameters (weights and biases) count,
flattened in the state_dict's key order. Next to the pairs, each optimizer's own distance from
w_0 says how far it travelled, so a small pairwise distance can be told from "barely moved".
"""

from __future__ import annotations

import itertools
from collections.abc import Mapping, Sequence
from pathlib import Path

import torch

from ..continual.types import RunMetrics
from ..fileio import checkpoint_path, load_checkpoint
from ..models import init_model
from ..stats import seed_stat

PAIR_SEPARATOR = "~"  # "sgd~adamw": the key of a pair in the output, in legend order


def flatten(state_dict: Mapping[str, torch.Tensor]) -> torch.Tensor:
    """All parameters as one float64 vector, in key order."""
    return torch.cat([state_dict[k].detach().reshape(-1).to(torch.float64) for k in state_dict])


def relative_distance(a: Mapping[str, torch.Tensor], b: Mapping[str, torch.Tensor],
                      w0: Mapping[str, torch.Tensor]) -> float:
    """||w_a - w_b|| / ||w_0||, over every parameter; the three must hold the same tensors."""
    for name, other in (("b", b), ("w0", w0)):
        if list(other) != list(a) or any(other[k].shape != a[k].shape for k in a):
            raise ValueError(f"weight distance: {name} does not hold the same parameters as a "
                             f"({list(other)} vs {list(a)}); compare checkpoints of the same model")
    norm0 = float(torch.linalg.vector_norm(flatten(w0)))
    if norm0 == 0:
        raise ValueError("weight distance: ||w_0|| is 0, so a relative distance is undefined")
    return float(torch.linalg.vector_norm(flatten(a) - flatten(b))) / norm0


def final_checkpoint(run: RunMetrics, checkpoint_dir: str | Path) -> Path:
    """The checkpoint written after the run's last task."""
    return checkpoint_path(checkpoint_dir, len(run["R"]) - 1)


def weight_distances(runs: Sequence[RunMetrics], checkpoint_dirs: Sequence[str | Path], order: Sequence[str]) -> dict:
    """Per benchmark: every pair of optimizers (in ``order``) and every optimizer against w_0, per seed.

    ``runs`` are the runs' metrics.json contents, ``checkpoint_dirs`` their checkpoint directories
    (same order). A pair is compared on the seeds both optimizers finished. Raises
    ``fileio.CheckpointError`` naming the file and the command that rebuilds it when a final
    checkpoint is missing, truncated or corrupted.
    """
    if len(runs) != len(checkpoint_dirs):
        raise ValueError(f"weight distance: {len(runs)} runs but {len(checkpoint_dirs)} checkpoint directories")
    finals: dict[str, dict[str, dict[int, dict]]] = {}
    models: dict[int, dict] = {}
    for run, ckpt in zip(runs, checkpoint_dirs):
        if run.get("status", "ok") != "ok":
            continue
        seed = int(run["seed"])
        models.setdefault(seed, run["spec"]["model"])
        weights = load_checkpoint(final_checkpoint(run, ckpt))
        finals.setdefault(run["benchmark"], {}).setdefault(run["optimizer"], {})[seed] = weights
    inits = {seed: init_model(seed, cfg).state_dict() for seed, cfg in models.items()}

    result: dict = {"order": list(order), "relative_to": "||w_0||, the common initial weights of the seed"}
    for benchmark, by_opt in finals.items():
        names = [name for name in order if name in by_opt]
        from_init = {}
        for name in names:
            seeds = sorted(by_opt[name])
            from_init[name] = seed_stat([relative_distance(by_opt[name][s], inits[s], inits[s]) for s in seeds], seeds)
        pairs = {}
        for a, b in itertools.combinations(names, 2):
            seeds = sorted(set(by_opt[a]) & set(by_opt[b]))
            if seeds:
                pairs[f"{a}{PAIR_SEPARATOR}{b}"] = seed_stat(
                    [relative_distance(by_opt[a][s], by_opt[b][s], inits[s]) for s in seeds], seeds)
        result[benchmark] = {"pairs": pairs, "from_init": from_init}
    return result


def describe(result: dict) -> list[str]:
    """One line per benchmark for a job's log: every pair's mean relative distance."""
    return [f"{benchmark}: ||w_a - w_b|| / ||w_0||: " + ", ".join(f"{p} {v['mean']:.3f}" for p, v in entry["pairs"].items())
            for benchmark, entry in result.items() if isinstance(entry, dict)]
