"""Validation of the new registry types (issue 15), as Shampoo's (tests/test_shampoo_mnist.py): on
one MNIST task (mnist-5k, all ten digits, 3 epochs, batch 64, the default 784-256-256-10 MLP, seed 0)
each reaches a test accuracy within 2 points of AdamW at the config's rate, and none produces NaN
over its learning-rate grid.

The rates below are each grid's best by held-out accuracy (10% of the task's training split held
out, test split untouched), measured 2026-11-30 (held-out / test accuracy):

* AdamW 1e-3: 0.905 / 0.904
* Adagrad 1e-3 .. 0.1: 0.838, 0.885, **0.900**, 0.888, 0.898 / 0.857, 0.886, 0.902, 0.911, 0.899
* Muon (+ AdamW 1e-3) 3e-3 .. 0.3: 0.860, **0.933**, 0.923, 0.890, 0.853 / 0.876, 0.928, 0.948, 0.919, 0.885
* SOAP 1e-4 .. 3e-2: 0.445, 0.850, 0.893, **0.945**, 0.925, 0.890 / 0.430, 0.834, 0.888, 0.953, 0.923, 0.887
* PSGD-Kron 1e-4 .. 1e-2: 0.808, 0.860, **0.925**, 0.915, 0.810 / 0.796, 0.866, 0.927, 0.924, 0.842

At these rates, trained on the whole split, the test accuracies are: AdamW 0.905, Adagrad 0.924,
Muon 0.949, SOAP 0.955, PSGD-Kron 0.941 (wall time of the run on a shared CPU: 0.7, 5.6, 8.7 and
15 s). The PSGD-Kron grid was measured before numpy's global RNG was seeded (Kron draws from it);
the grid test below re-checks every grid's best.

SOAP and PSGD-Kron are pytorch_optimizer's (already a dependency); its Kron needs opt_einsum
(requirements.lock), without which torch.einsum builds a 161 GB intermediate.
"""

import math

import pytest
import yaml

from conftest import REPO
from optbias import data
from optbias.continual import train

CHOSEN = {"adagrad": {"type": "adagrad", "lr": 1e-2},
          "muon": {"type": "muon", "lr": 1e-2, "adamw_lr": 1e-3},
          "soap": {"type": "soap", "lr": 3e-3},
          "psgd_kron": {"type": "psgd_kron", "lr": 1e-3}}
GRIDS = {"adagrad": [1e-3, 3e-3, 1e-2, 3e-2, 0.1],
         "muon": [3e-3, 1e-2, 3e-2, 0.1, 0.3],
         "soap": [1e-4, 3e-4, 1e-3, 3e-3, 1e-2, 3e-2],
         "psgd_kron": [1e-4, 3e-4, 1e-3, 3e-3, 1e-2]}
NAMES = list(CHOSEN)  # psgd_kron needs opt_einsum: requirements.lock installs it (no skip)


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
    path = tmp_path_factory.mktemp("data") / "mnist-5k.pt"
    data.fetch("mnist-5k", path, {})
    return path


def one_task(dataset, name: str, entry: dict, validation_fraction: float = 0.0) -> dict:
    config = yaml.safe_load((REPO / "config" / "config.yaml").read_text())
    spec = {"benchmark": "permuted", "benchmark_cfg": {"n_tasks": 1, "epochs_per_task": 3, "batch_size": 64},
            "optimizer": name, "optimizer_cfg": entry, "seed": 0, "model": config["model"],
            "train": {"device": "cpu", "threads": 1, "reset_optimizer": False, "loss_log_every": 10,
                      "validation_fraction": validation_fraction, "on_divergence": "record"}}
    return train.train_run(spec, dataset, progress=False)


@pytest.fixture(scope="module")
def adamw_accuracy(dataset):
    config = yaml.safe_load((REPO / "config" / "config.yaml").read_text())
    accuracy = one_task(dataset, "adamw", config["optimizers"]["adamw"])["R"][0][0]
    assert accuracy > 0.85, accuracy  # all ten digits, 4,000 training images, 3 epochs
    return accuracy


@pytest.mark.parametrize("name", NAMES)
def test_a_new_type_is_within_two_points_of_adamw_on_one_task(dataset, adamw_accuracy, name):
    result = one_task(dataset, name, CHOSEN[name])
    assert result["status"] == "ok", result["error"]
    assert result["R"][0][0] >= adamw_accuracy - 0.02, (name, result["R"][0][0], adamw_accuracy)


@pytest.mark.slow
@pytest.mark.parametrize("name", NAMES)
def test_no_rate_of_the_grid_gives_nan(dataset, name):
    """Every rate of the grid trains to the end (no NaN/inf loss or weights), scored on held-out data."""
    scores = {}
    for lr in GRIDS[name]:
        result = one_task(dataset, name, {**CHOSEN[name], "lr": lr}, validation_fraction=0.1)
        assert result["status"] == "ok", (name, lr, result["error"])
        scores[lr] = result["validation_score"]
    assert all(math.isfinite(s) for s in scores.values())
    assert max(scores, key=scores.get) == CHOSEN[name]["lr"], scores  # the rate above is the grid's best
