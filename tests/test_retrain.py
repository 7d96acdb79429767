"""optbias retrain: a finished run trained again here from its recorded spec, every field compared."""

from __future__ import annotations

import json

import pytest

from optbias import cli, data
from optbias.continual import train
from optbias.versioning import retrain as RT


@pytest.fixture(scope="module")
def workdir(tmp_path_factory):
    """A working directory with the frozen subset and one finished tiny run in the pipeline's layout.
    Its spec asks for ``device: auto``, as the configs do; it trained on the CPU (no GPU in CI)."""
    root = tmp_path_factory.mktemp("run")
    (root / "data/raw").mkdir(parents=True)
    data.fetch("mnist-5k", root / "data/raw/mnist-5k.pt", {})
    spec = {"benchmark": "class_incremental",
            "benchmark_cfg": {"epochs_per_task": 1, "batch_size": 128, "pairs": [[0, 1], [2, 3]]},
            "optimizer": "sgd", "optimizer_cfg": {"type": "sgd", "lr": 0.05}, "seed": 0, "model": {"hidden": [16]},
            "train": {"device": "cpu", "threads": 1, "reset_optimizer": False, "loss_log_every": 2}}
    metrics = root / "data/runs/class_incremental/sgd/seed0/metrics.json"
    train.train_run(spec, root / "data/raw/mnist-5k.pt", metrics, progress=False)
    doc = json.loads(metrics.read_text())
    doc["spec"]["train"]["device"] = "auto"  # what the configs record; the run says it used the CPU
    metrics.write_text(json.dumps(doc))
    return root, metrics


def write_run(root, name: str, doc: dict):
    path = root / "data/runs/class_incremental" / name / "seed0/metrics.json"
    path.parent.mkdir(parents=True)
    path.write_text(json.dumps(doc))
    return path


def test_a_run_retrained_here_is_identical_and_a_changed_one_is_named(workdir, tmp_path, capsys):
    root, metrics = workdir
    row = RT.retrain(metrics)  # the dataset is found in the run's working directory
    assert row["identical"] and row["differing"] == [] and row["max_abs_R"] == 0.0 and row["note"] == ""
    assert row["run"] == "runs/class_incremental/sgd/seed0" and row["dataset"] == "mnist-5k.pt"
    # A recorded run that no longer matches: one entry of R and the step count changed by hand; and
    # one that cannot be retrained (not JSON): its row says why, and the other runs still count.
    doc = json.loads(metrics.read_text())
    doc["R"][1][0] += 0.25
    doc["steps"] += 1
    doc["timing"] = {"wall_time_s": 1e9}  # timing is never compared
    changed = write_run(tmp_path, "sgd", doc)
    broken = tmp_path / "data/runs/class_incremental/adamw/seed0/metrics.json"
    broken.parent.mkdir(parents=True)
    broken.write_text('{"R": [[0.5')
    out = tmp_path / "retrain.md"
    code = cli.main(["retrain", str(metrics), str(changed), str(broken), "--data", str(root / "data/raw/mnist-5k.pt"),
                     "--output", str(out)])
    assert code == 1  # one run differs
    page = out.read_text()
    assert "| `runs/class_incremental/sgd/seed0` | `mnist-5k.pt` | yes | none | 0 |" in page
    assert "| `runs/class_incremental/sgd/seed0` | `mnist-5k.pt` | **no** | R, steps | 0.25 |" in page
    assert "| `runs/class_incremental/adamw/seed0` | `` | **no** | error: ValueError: " in page
    assert "cannot read it as a run's metrics.json" in page
    assert "1 of 3 runs identical." in page and "optbias retrain " in page and "--output" in page
    printed = capsys.readouterr().out
    assert "retraining runs/class_incremental/sgd/seed0 ..." in printed and "DIFFERS in R, steps" in printed


def test_a_batched_run_says_why_it_differs():
    recorded = {"R": [[1.0]], "loss_curve": [1.0], "timing": {"wall_time_s": 1.0, "batched_seeds": 3}}
    row = RT.compare_runs(recorded, {"R": [[0.999]], "loss_curve": [1.0], "timing": {"wall_time_s": 2.0}})
    assert row["differing"] == ["R"] and row["max_abs_R"] == pytest.approx(0.001)
    assert "batched-seed mode" in row["note"]
    assert "batched-seed mode" in RT.retrain_markdown([{"run": "r", "dataset": "d", **row}], "optbias retrain x")


def test_known_answers_of_the_comparison():
    assert RT.max_abs_difference([[1.0, 0.0], [0.5, 0.75]], [[1.0, 0.0], [0.25, 1.0]]) == 0.25
    assert RT.max_abs_difference([[1.0]], [[1.0], [0.5]]) is None  # shapes differ
    row = RT.compare_runs({"R": [[1.0]], "steps": 3, "machine": {"cpu_model": "A"}, "timing": {"s": 1}},
                          {"R": [[1.0]], "steps": 3.0, "machine": {"cpu_model": "B"}, "timing": {"s": 2}})
    assert row["differing"] == ["steps"]  # 3 and 3.0 are different JSON: a float where an int was recorded
    assert "A, " in row["recorded_on"] and "B, " in row["retrained_on"]


def test_bad_input_names_the_fix(tmp_path, capsys, monkeypatch):
    not_a_run = write_run(tmp_path, "x", {"R": []})
    with pytest.raises(ValueError, match="is not a run's metrics.json"):
        RT.retrain(not_a_run, tmp_path / "nowhere.pt")
    with pytest.raises(ValueError, match=r"^0 dataset files \(\*\.pt\) in .*data/raw; name the run's dataset with --data"):
        RT.find_dataset(not_a_run)
    (tmp_path / "data/raw").mkdir()
    for name in ("mnist-5k.pt", "fashion-mnist.pt"):
        (tmp_path / "data/raw" / name).write_bytes(b"")
    with pytest.raises(ValueError, match=r"^2 dataset files"):
        RT.find_dataset(not_a_run)
    with pytest.raises(ValueError, match="is not under a data/ directory"):
        RT.find_dataset(tmp_path / "metrics.json")
    gpu_run = write_run(tmp_path, "gpu", {"spec": {"train": {}}, "device": "NVIDIA H200"})
    monkeypatch.setattr("torch.cuda.is_available", lambda: False)
    with pytest.raises(ValueError, match=r"trained on a GPU \(NVIDIA H200\); retrain it on a machine with CUDA"):
        RT.retrain(gpu_run, tmp_path / "data/raw/mnist-5k.pt")
    assert cli.main(["retrain", str(tmp_path / "missing/metrics.json")]) == 1  # a row with the error, no traceback
    out = capsys.readouterr().out
    assert "ERROR ValueError: " in out and "missing/metrics.json: cannot read it" in out


def test_a_run_is_retrained_on_the_kind_of_device_it_recorded(workdir, monkeypatch):
    """A spec's ``device: auto`` would pick a GPU where there is one; a run that recorded the CPU is
    retrained on the CPU, and the row compares the recorded spec, not the pinned copy."""
    root, metrics = workdir
    seen = []

    def fake_train_run(spec, dataset, metrics_path, progress):
        seen.append(spec["train"]["device"])
        return json.loads(metrics.read_text())

    monkeypatch.setattr("torch.cuda.is_available", lambda: True)  # as on a GPU machine
    monkeypatch.setattr(RT, "train_run", fake_train_run)
    row = RT.retrain(metrics)
    assert seen == ["cpu"] and row["identical"]
    assert json.loads(metrics.read_text())["spec"]["train"]["device"] == "auto"  # the file is untouched
