"""Validation (c) of the Shampoo issue: on one MNIST task, Shampoo at its chosen learning rate
reaches a test accuracy within 2 points of AdamW at its chosen learning rate."""

import pytest
import yaml

from conftest import REPO
from optbias import data
from optbias.continual import train


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
    path = tmp_path_factory.mktemp("data") / "mnist-5k.pt"
    data.fetch("mnist-5k", path, {})
    return path


def test_shampoo_is_within_two_points_of_adamw_on_one_task(dataset):
    config = yaml.safe_load((REPO / "config" / "config.yaml").read_text())
    accuracy = {}
    for name in ("adamw", "shampoo"):
        spec = {"benchmark": "permuted", "benchmark_cfg": {"n_tasks": 1, "epochs_per_task": 3, "batch_size": 64},
                "optimizer": name, "optimizer_cfg": config["optimizers"][name], "seed": 0,
                "model": config["model"], "train": {"device": "cpu", "threads": 1, "reset_optimizer": False, "loss_log_every": 10}}
        accuracy[name] = train.train_run(spec, dataset, progress=False)["R"][0][0]
    assert accuracy["adamw"] > 0.85, accuracy  # all ten digits, 4,000 training images, 3 epochs
    assert accuracy["shampoo"] >= accuracy["adamw"] - 0.02, accuracy
