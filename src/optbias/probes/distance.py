"""How far apart two optimizers' solutions are, in function, weights and representation, with floors
(PAPER.md claim 9: different optimizers reach different solutions).

Every run of a seed starts from the same initial weights w_0 (``optbias.models.init_model``), so
two optimizers' final models differ by the optimizers' doing and by the batch order each happened
to draw. The floor separates the two: each headline optimizer is trained again as its control
``<name>-reorder`` (config ``noise_floor``, rule train_control), same entry, seed and w_0, another
batch order (``optbias.continual.settings``). A pair of optimizers further apart than each
optimizer is from its own control differs by more than the noise of the batch order.

Three distances between the FINAL models a and b of two runs of the same seed:

* **function**: the fraction of inputs on which their predictions (argmax of the 10-way head)
  differ, over every task's test split of the benchmark (class-incremental: the test images of
  every pair; permuted: every permutation's test set), in [0, 1]. Not a distance between accuracy
  matrices R: two models can score the same accuracy on a task while predicting differently on
  many of its images (each gets other images wrong), and R's upper triangle is tasks neither
  model was trained on yet; disagreement compares what the two final functions compute.
* **weights**: ||w_a - w_b|| / ||w_0|| over every parameter (``probes.weights.relative_distance``).
* **representation**: |c_a - c_b|, c the mean off-diagonal cosine similarity between the class
  means of the last hidden layer's activations on the fixed probe set (``probes.run.probe_set``
  with the config's ``probes`` settings; ``measures.class_mean_cosine_similarity`` and
  ``mean_off_diagonal``, the quantity of claims 4-5 and the paper's Figure B), in [0, 2].

Each is computed per seed and summarized with ``stats.seed_stat`` (mean, Student-t 95% CI, per-seed
values and seeds).
"""

from __future__ import annotations

import itertools
import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from .. import data
from ..continual import benchmarks
from ..continual.types import RunMetrics
from ..models import MLP, init_model
from ..stats import seed_stat
from . import measures
from .run import hidden_features, load_model, probe_set
from .weights import PAIR_SEPARATOR, final_checkpoint, relative_distance

MEASURES = ("function", "weights", "representation")
DEFINITIONS = {
    "function": "fraction of the test images of every task of the benchmark on which the two final models' "
                "predictions (argmax of the head) differ",
    "weights": "||w_a - w_b|| / ||w_0|| over every parameter of the two final models; w_0 the seed's initial weights",
    "representation": "|c_a - c_b|, c the mean off-diagonal cosine similarity of the class-mean activations of the "
                      "last hidden layer on the fixed probe set",
    "floors": "each headline optimizer against its noise-floor control (same seed and initial weights, another "
              "batch order)",
}


@dataclass
class Solution:
    """What the three distances need of one final model: its predictions on the benchmark's test
    images (``predictions``: (N,) int64 class indices), its ``cosine`` c (a float in [-1, 1]) and
    its parameters (``weights``: the state_dict, name -> tensor)."""

    predictions: torch.Tensor
    cosine: float
    weights: dict[str, torch.Tensor]


@torch.no_grad()
def predictions(model: MLP, x: torch.Tensor, chunk: int = 4096) -> torch.Tensor:
    """The class each input is assigned, argmax of the head's logits: ``x`` (N, features) -> (N,) int64.
    Evaluated ``chunk`` rows at a time (memory: chunk x widest layer floats)."""
    out = [model(x[i:i + chunk]).argmax(dim=1) for i in range(0, len(x), chunk)]
    return torch.cat(out) if out else torch.empty(0, dtype=torch.int64)


def disagreement(a: torch.Tensor, b: torch.Tensor) -> float:
    """The fraction of positions where the predictions ``a`` and ``b`` (both (N,)) differ, in [0, 1].
    Raises ``ValueError`` when the shapes differ or N is 0."""
    if a.shape != b.shape or a.ndim != 1:
        raise ValueError(f"disagreement: predictions of shapes {tuple(a.shape)} and {tuple(b.shape)}; give two (N,) "
                         "vectors over the same inputs")
    if len(a) == 0:
        raise ValueError("disagreement: no inputs to compare on")
    return float((a != b).to(torch.float64).mean())


def last_layer_cosine(model: MLP, x: torch.Tensor, y: torch.Tensor, num_classes: int) -> float:
    """c of one model: the mean off-diagonal cosine similarity between the class means of its last
    hidden layer's post-ReLU activations on ``x`` (N, features) with labels ``y`` (N,).
    Raises ``ValueError`` when no two classes have a mean with a direction (c would be NaN)."""
    acts = hidden_features(model, x, [len(model.hidden_layers) - 1])[0]
    c = measures.mean_off_diagonal(measures.class_mean_cosine_similarity(acts, y, num_classes))
    if math.isnan(c):
        raise ValueError("representation distance: the last hidden layer has a zero class mean for every class but "
                         "at most one on the probe set (a dead layer), so the cosine similarity is undefined")
    return c


def distances(a: Solution, b: Solution, w0: Mapping[str, torch.Tensor]) -> dict[str, float]:
    """The three distances (``MEASURES``) between two solutions of one seed, whose initial weights are ``w0``."""
    return {"function": disagreement(a.predictions, b.predictions),
            "weights": relative_distance(a.weights, b.weights, w0),
            "representation": abs(a.cosine - b.cosine)}


def solution(model: MLP, x_eval: torch.Tensor, x_probe: torch.Tensor, y_probe: torch.Tensor) -> Solution:
    """A model's ``Solution``: predictions on ``x_eval``, c on the probe set (``x_probe``, ``y_probe``), weights."""
    return Solution(predictions(model, x_eval), last_layer_cosine(model, x_probe, y_probe, model.head.out_features),
                    {k: v.detach().clone() for k, v in model.state_dict().items()})


def _summaries(values: dict[int, dict[str, float]]) -> dict[str, dict]:
    """seed -> the three distances, as one ``seed_stat`` per measure (seeds in increasing order)."""
    seeds = sorted(values)
    return {m: seed_stat([values[s][m] for s in seeds], seeds) for m in MEASURES}


def compare(solutions: Mapping[str, Mapping[int, Solution]], inits: Mapping[int, Mapping[str, torch.Tensor]],
            order: Sequence[str], controls: Mapping[str, str]) -> dict[str, Any]:
    """One benchmark's entry: the pairs of headline optimizers and each one's floor.

    ``solutions``: optimizer or control name -> seed -> ``Solution``; ``inits``: seed -> w_0;
    ``order``: the headline optimizers in config order; ``controls``: control name -> its headline
    optimizer. A pair (``a~b``, every two of ``order`` present, in order) is compared on the seeds
    both have; a floor (keyed by the headline optimizer) pairs it with its own control on each seed
    both have, never across seeds. Returns {"order", "seeds", "pairs", "floors", "controls"}.
    """
    names = [name for name in order if name in solutions]
    pairs = {}
    for a, b in itertools.combinations(names, 2):
        seeds = sorted(set(solutions[a]) & set(solutions[b]))
        if seeds:
            pairs[f"{a}{PAIR_SEPARATOR}{b}"] = _summaries(
                {s: distances(solutions[a][s], solutions[b][s], inits[s]) for s in seeds})
    floors, used = {}, {}
    for control, headline in controls.items():
        if headline not in names or control not in solutions:
            continue
        seeds = sorted(set(solutions[headline]) & set(solutions[control]))
        if seeds:
            floors[headline] = _summaries(
                {s: distances(solutions[headline][s], solutions[control][s], inits[s]) for s in seeds})
            used[headline] = control
    return {"order": names, "seeds": sorted({s for name in names for s in solutions[name]}),
            "pairs": pairs, "floors": floors, "controls": used, "definitions": DEFINITIONS}


def solution_distances(runs: Sequence[RunMetrics], checkpoint_dirs: Sequence[str | Path], dataset_path: str | Path,
                       order: Sequence[str], controls: Mapping[str, str], probe_cfg: Mapping[str, Any]) -> dict:
    """Per benchmark: every pair of headline optimizers and every optimizer's floor, in three measures.

    ``runs``: the metrics.json contents of the headline and control runs; ``checkpoint_dirs``: their
    checkpoint directories (same order; the final checkpoint of each is read); ``dataset_path``: the
    dataset the runs trained on (the test images and the probe set come from it); ``order``: the
    headline optimizers in config order; ``controls``: control name -> headline optimizer ({}: no
    floors); ``probe_cfg``: the config's ``probes`` block (``probe_set_per_class``,
    ``probe_set_seed``, ``threads``). Runs that did not end ``ok`` are left out.

    Returns {benchmark: ``compare``'s entry}. Cost per run: one forward pass over the benchmark's
    test images (class-incremental: 1,000 on mnist-5k; permuted: T x 1,000) and one over the probe
    set; per pair and seed, vector differences. Raises ``ValueError`` when the lists differ in
    length or a benchmark's runs differ in benchmark settings, and ``fileio.CheckpointError``
    naming the file and the command that rebuilds it for a missing or corrupted checkpoint.
    """
    if len(runs) != len(checkpoint_dirs):
        raise ValueError(f"solution distance: {len(runs)} runs but {len(checkpoint_dirs)} checkpoint directories; "
                         "give one directory per run, in the same order")
    torch.set_num_threads(int(probe_cfg.get("threads", 1)))
    by_benchmark: dict[str, list[tuple[RunMetrics, str | Path]]] = {}
    for run, ckpt in zip(runs, checkpoint_dirs):
        if run.get("status", "ok") == "ok":
            by_benchmark.setdefault(run["benchmark"], []).append((run, ckpt))
    dataset = data.load(dataset_path) if by_benchmark else None
    result = {}
    for benchmark, entries in by_benchmark.items():
        cfgs = {json.dumps(run["spec"]["benchmark_cfg"], sort_keys=True) for run, _ in entries}
        if len(cfgs) > 1:
            raise ValueError(f"solution distance: the runs of {benchmark} differ in their benchmark settings "
                             f"({sorted(cfgs)}); rerun them from one config")
        tasks = benchmarks.get(benchmark).build(dataset, entries[0][0]["spec"]["benchmark_cfg"])
        x_eval = torch.cat([t.x_test for t in tasks])
        x_probe, y_probe = probe_set(tasks, int(probe_cfg["probe_set_per_class"]), int(probe_cfg["probe_set_seed"]))
        solutions: dict[str, dict[int, Solution]] = {}
        inits: dict[int, dict[str, torch.Tensor]] = {}
        for run, ckpt in entries:
            seed, model_cfg = int(run["seed"]), run["spec"]["model"]
            model = load_model(final_checkpoint(run, ckpt), model_cfg)
            solutions.setdefault(run["optimizer"], {})[seed] = solution(model, x_eval, x_probe, y_probe)
            inits.setdefault(seed, init_model(seed, model_cfg).state_dict())
        result[benchmark] = compare(solutions, inits, order, controls)
    return result


def describe(result: dict) -> list[str]:
    """Lines for a job's log: per benchmark, every pair's and floor's mean of each measure."""
    lines = []
    for benchmark, entry in result.items():
        for kind in ("pairs", "floors"):
            for name, stats in entry[kind].items():
                lines.append(f"{benchmark} {kind[:-1]} {name}: " + ", ".join(
                    f"{m} {stats[m]['mean']:.4f}" for m in MEASURES))
    return lines
