"""Solution distances with their noise floors (optbias.probes.distance, rule solution_distance).

Known answers: two hand-built models that disagree on exactly 6 of 10 inputs; a weight difference
of known norm; class means orthogonal in one model (c = 0) and parallel in the other (c = 1). Then
that floors pair each optimizer with its own control on the same seed, and a run compared with
itself (a control whose checkpoint is its optimizer's) is 0 in every measure.
"""

from __future__ import annotations

import copy
import shutil

import pytest
import torch

from optbias import data
from optbias.continual import train
from optbias.models import MLP
from optbias.probes import distance
from optbias.probes.weights import PAIR_SEPARATOR

PROBES = {"probe_set_per_class": 5, "probe_set_seed": 0, "threads": 1}


def two_feature_model(head_rows: dict[int, list[float]], hidden_weight=((1.0, 0.0), (0.0, 1.0))) -> MLP:
    """2 inputs -> 2 hidden units (given weights, no bias, ReLU) -> 10 classes; class k scores
    head_rows[k] . h, every other class -100: the model picks among the classes of ``head_rows``."""
    model = MLP(2, [2], 10)
    with torch.no_grad():
        model.hidden_layers[0].weight.copy_(torch.tensor(hidden_weight))
        model.hidden_layers[0].bias.zero_()
        model.head.weight.zero_()
        model.head.bias.fill_(-100.0)
        for k, row in head_rows.items():
            model.head.weight[k] = torch.tensor(row)
            model.head.bias[k] = 0.0
    return model.eval()


def test_predictions_disagree_on_a_known_fraction():
    a = two_feature_model({0: [1, 0], 1: [0, 1]})  # 0 where x0 > x1, else 1
    b = two_feature_model({0: [1, 0], 2: [0, 1]})  # 0 where x0 > x1, else 2
    x = torch.tensor([[2.0, 1.0]] * 4 + [[1.0, 2.0]] * 6)  # 4 agreed, 6 disputed
    assert distance.predictions(a, x).tolist() == [0] * 4 + [1] * 6
    assert distance.disagreement(distance.predictions(a, x), distance.predictions(b, x)) == pytest.approx(0.6, abs=1e-12)
    assert distance.disagreement(distance.predictions(a, x), distance.predictions(a, x)) == 0.0
    assert distance.disagreement(torch.tensor([0, 1, 2, 3]), torch.tensor([0, 1, 0, 0])) == 0.5
    with pytest.raises(ValueError, match="same inputs"):
        distance.disagreement(torch.tensor([0, 1]), torch.tensor([0, 1, 2]))


def test_the_representation_measure_of_orthogonal_and_parallel_class_means():
    x = torch.tensor([[1.0, 0.0], [2.0, 0.0], [0.0, 1.0], [0.0, 3.0]])
    y = torch.tensor([0, 0, 1, 1])
    apart = two_feature_model({0: [1, 0]})  # identity hidden layer: class means (1.5, 0) and (0, 2)
    together = two_feature_model({0: [1, 0]}, hidden_weight=((1.0, 1.0), (1.0, 1.0)))  # both means along (1, 1)
    assert distance.last_layer_cosine(apart, x, y, 10) == pytest.approx(0.0, abs=1e-12)
    assert distance.last_layer_cosine(together, x, y, 10) == pytest.approx(1.0, abs=1e-12)
    dead = two_feature_model({0: [1, 0]}, hidden_weight=((-1.0, -1.0), (-1.0, -1.0)))  # ReLU kills everything
    with pytest.raises(ValueError, match="dead layer"):
        distance.last_layer_cosine(dead, x, y, 10)


def solution(preds, cosine, shift=0.0):
    """A Solution with given predictions and c, and weights w0 + shift * e_0 (w0 = four ones, norm 2)."""
    weights = {"w": torch.ones(4)}
    weights["w"][0] += shift
    return distance.Solution(torch.tensor(preds), cosine, weights)


def test_the_three_distances_of_two_solutions_by_hand():
    w0 = {"w": torch.ones(4)}
    a, b = solution([0, 1, 2, 3], 0.25), solution([0, 1, 0, 0], 0.75, shift=1.0)
    assert distance.distances(a, b, w0) == pytest.approx({"function": 0.5, "weights": 0.5, "representation": 0.5})


def test_floors_pair_each_optimizer_with_its_own_control_on_the_same_seed():
    w0 = {"w": torch.ones(4)}
    base = [0] * 10
    # seed s: the control disagrees with its optimizer on s of 10 inputs; the other seed's control
    # would give another value, so a pairing across seeds shows in the per-seed values.
    solutions = {
        "sgd": {0: solution(base, 0.1), 1: solution(base, 0.1), 2: solution(base, 0.1)},
        "sgd-reorder": {0: solution(base, 0.1), 1: solution([1] + base[1:], 0.3, shift=0.2),
                        2: solution([1, 1] + base[2:], 0.6, shift=0.4)},
        "adam": {0: solution([2] * 10, 0.9), 2: solution([2] * 10, 0.9)},
        "adam-reorder": {1: solution(base, 0.9)},  # adam has no seed 1: no floor for adam
        "shampoo": {0: solution(base, 0.1)},  # no control at all
    }
    inits = {s: w0 for s in (0, 1, 2)}
    controls = {"sgd-reorder": "sgd", "adam-reorder": "adam"}
    entry = distance.compare(solutions, inits, ["sgd", "adam", "shampoo"], controls)
    assert entry["order"] == ["sgd", "adam", "shampoo"] and entry["seeds"] == [0, 1, 2]
    assert list(entry["floors"]) == ["sgd"] and entry["controls"] == {"sgd": "sgd-reorder"}
    floor = entry["floors"]["sgd"]
    assert floor["function"]["seeds"] == [0, 1, 2]
    assert floor["function"]["per_seed"] == pytest.approx([0.0, 0.1, 0.2])
    assert floor["weights"]["per_seed"] == pytest.approx([0.0, 0.1, 0.2])
    assert floor["representation"]["per_seed"] == pytest.approx([0.0, 0.2, 0.5])
    assert list(entry["pairs"]) == [f"sgd{PAIR_SEPARATOR}adam", f"sgd{PAIR_SEPARATOR}shampoo",
                                    f"adam{PAIR_SEPARATOR}shampoo"]
    pair = entry["pairs"][f"sgd{PAIR_SEPARATOR}adam"]
    assert pair["function"]["seeds"] == [0, 2] and pair["function"]["per_seed"] == [1.0, 1.0]
    assert pair["representation"]["per_seed"] == pytest.approx([0.8, 0.8])
    assert set(pair) == set(distance.MEASURES) and {"mean", "ci95", "per_seed", "seeds"} <= set(pair["weights"])


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """Tiny class-incremental runs: sgd and adam on seeds 0 and 1, sgd's control on both (another
    batch order), and a fake control of adam whose checkpoints are adam's own (a distance of 0)."""
    root = tmp_path_factory.mktemp("runs")
    dataset = root / "mnist-5k.pt"
    data.fetch("mnist-5k", dataset, {})
    made = []
    for name, cfg, extra in [("sgd", {"type": "sgd", "lr": 0.05}, {}),
                             ("sgd-reorder", {"type": "sgd", "lr": 0.05}, {"batch_order": 1}),
                             ("adam", {"type": "adam", "lr": 1e-3}, {})]:
        for seed in (0, 1):
            spec = {"benchmark": "class_incremental", "optimizer": name, "optimizer_cfg": cfg, "seed": seed,
                    "benchmark_cfg": {"epochs_per_task": 1, "batch_size": 128, "pairs": [[0, 1], [2, 3]]},
                    "model": {"hidden": [16]},
                    "train": {"device": "cpu", "threads": 1, "reset_optimizer": False, "loss_log_every": 5, **extra}}
            run_dir = root / name / f"seed{seed}"
            made.append((train.train_run(spec, dataset, run_dir / "metrics.json", run_dir / "checkpoints",
                                         progress=False), run_dir / "checkpoints"))
    for metrics, ckpt in [m for m in made if m[0]["optimizer"] == "adam"]:
        twin = root / "adam-reorder" / f"seed{metrics['seed']}" / "checkpoints"
        shutil.copytree(ckpt, twin)
        made.append(({**copy.deepcopy(metrics), "optimizer": "adam-reorder"}, twin))
    return dataset, made


def test_solution_distances_of_trained_runs(runs):
    dataset, made = runs
    result = distance.solution_distances([m for m, _ in made], [c for _, c in made], dataset, ["sgd", "adam"],
                                         {"sgd-reorder": "sgd", "adam-reorder": "adam"}, PROBES)
    entry = result["class_incremental"]
    assert list(result) == ["class_incremental"] and entry["seeds"] == [0, 1]
    assert set(entry["pairs"]) == {f"sgd{PAIR_SEPARATOR}adam"} and set(entry["floors"]) == {"sgd", "adam"}
    for measure in distance.MEASURES:
        assert entry["floors"]["adam"][measure]["per_seed"] == [0.0, 0.0]  # a run against itself
        assert all(v > 0 for v in entry["floors"]["sgd"][measure]["per_seed"])  # another batch order moved it
        assert all(v > 0 for v in entry["pairs"][f"sgd{PAIR_SEPARATOR}adam"][measure]["per_seed"])
    assert all(0 <= v <= 1 for v in entry["pairs"][f"sgd{PAIR_SEPARATOR}adam"]["function"]["per_seed"])
    lines = distance.describe(result)
    assert any(line.startswith("class_incremental floor sgd: function ") for line in lines)
    with pytest.raises(ValueError, match="one directory per run"):
        distance.solution_distances([m for m, _ in made], [], dataset, ["sgd"], {}, PROBES)
