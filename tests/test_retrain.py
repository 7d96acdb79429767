"""optbias retrain: a finished run trained again here from its recorded spec, every field compared."""

from __future__ import annotations

import json

import pytest

from optbias import cli, data
from optbias.continual import train
from optbias.versioning import retrain as RT


@pytest.fixture(scope="module")
def workdir(tmp_path_factory):
    """A working directory with the frozen subset and one finished tiny run in the pipeline's layout."""
    root = tmp_path_factory.mktemp("run")
    (root / "data/raw").mkdir(parents=True)
    data.fetch("mnist-5k", root / "data/raw/mnist-5k.pt", {})
    spec = {"benchmark": "class_incremental",
            "benchmark_cfg": {"epochs_per_task": 1, "batch_size": 128, "pairs": [[0, 1], [2, 3]]},
            "optimizer": "sgd", "optimizer_cfg": {"type": "sgd", "lr": 0.05}, "seed": 0, "model": {"hidden": [16]},
            "train": {"device": "cpu", "threads": 1, "reset_optimizer": False, "loss_log_every": 2}}
    metrics = root / "data/runs/class_incremental/sgd/seed0/metrics.json"
    train.train_run(spec, root / "data/raw/mnist-5k.pt", metrics, progress=False)
    return root, metrics


def test_a_run_retrained_here_is_identical_and_a_changed_one_is_named(workdir, tmp_path, capsys):
    root, metrics = workdir
    row = RT.retrain(metrics)  # the dataset is found in the run's working directory
    assert row["identical"] and row["differing"] == [] and row["max_abs_R"] == 0.0
    assert row["run"] == "class_incremental/sgd/seed0" and row["dataset"].endswith("data/raw/mnist-5k.pt")
    # A recorded run that no longer matches: one entry of R and the step count changed by hand.
    doc = json.loads(metrics.read_text())
    doc["R"][1][0] += 0.25
    doc["steps"] += 1
    doc["timing"] = {"wall_time_s": 1e9}  # timing is never compared
    changed = tmp_path / "data/runs/class_incremental/sgd/seed0/metrics.json"
    changed.parent.mkdir(parents=True)
    changed.write_text(json.dumps(doc))
    out = tmp_path / "retrain.md"
    code = cli.main(["retrain", str(metrics), str(changed), "--data", str(root / "data/raw/mnist-5k.pt"),
                     "--output", str(out)])
    assert code == 1  # one run differs
    page = out.read_text()
    assert "| `class_incremental/sgd/seed0` | yes | none | 0 |" in page
    assert "| `class_incremental/sgd/seed0` | **no** | R, steps | 0.25 |" in page
    assert "1 of 2 runs identical." in page and "optbias retrain " in page and "--output" in page
    assert "DIFFERS in R, steps" in capsys.readouterr().out


def test_known_answers_of_the_comparison():
    assert RT.max_abs_difference([[1.0, 0.0], [0.5, 0.75]], [[1.0, 0.0], [0.25, 1.0]]) == 0.25
    assert RT.max_abs_difference([[1.0]], [[1.0], [0.5]]) is None  # shapes differ
    row = RT.compare_runs({"R": [[1.0]], "steps": 3, "machine": {"cpu_model": "A"}, "timing": {"s": 1}},
                          {"R": [[1.0]], "steps": 3.0, "machine": {"cpu_model": "B"}, "timing": {"s": 2}})
    assert row["differing"] == ["steps"]  # 3 and 3.0 are different JSON: a float where an int was recorded
    assert "A, " in row["recorded_on"] and "B, " in row["retrained_on"]


def test_bad_input_names_the_fix(tmp_path):
    (tmp_path / "data/runs/x").mkdir(parents=True)
    not_a_run = tmp_path / "data/runs/x/metrics.json"
    not_a_run.write_text(json.dumps({"R": []}))
    with pytest.raises(ValueError, match="is not a run's metrics.json"):
        RT.retrain(not_a_run, tmp_path / "nowhere.pt")
    with pytest.raises(ValueError, match=r"0 dataset files \(\*\.pt\) in .*data/raw; name the run's dataset with --data"):
        RT.find_dataset(not_a_run)
    assert cli.main(["retrain", str(not_a_run)]) == 1  # a known error: one line, not a traceback
