"""Training loop: determinism, same initialization for every optimizer, clear divergence errors."""

from __future__ import annotations

import json

import pytest
import torch

from optbias import data, engine, fileio, models
from optbias.continual import train


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
    path = tmp_path_factory.mktemp("data") / "mnist-5k.pt"
    data.fetch("mnist-5k", path, {})
    return path


def spec(optimizer_cfg, optimizer="opt", benchmark="class_incremental", seed=0, **bench):
    bench_cfg = {"epochs_per_task": 1, "batch_size": 128, "pairs": [[0, 1], [2, 3]], **bench}
    if benchmark == "permuted":
        bench_cfg = {"n_tasks": 2, "epochs_per_task": 1, "batch_size": 256, **bench}
    return {"benchmark": benchmark, "benchmark_cfg": bench_cfg, "optimizer": optimizer,
            "optimizer_cfg": optimizer_cfg, "seed": seed, "model": {"hidden": [16]},
            "train": {"device": "cpu", "threads": 1, "reset_optimizer": False, "loss_log_every": 2}}


def strip_timing(metrics: dict) -> dict:
    return {k: v for k, v in metrics.items() if k != "timing"}


@pytest.mark.parametrize("optimizer_cfg", [{"type": "adam", "lr": 1e-3}, {"type": "shampoo", "lr": 0.05}])
def test_same_seed_gives_identical_metrics_and_checkpoints(dataset, tmp_path, optimizer_cfg):
    s = spec(optimizer_cfg)
    a = train.train_run(s, dataset, tmp_path / "a/metrics.json", tmp_path / "a/checkpoints", progress=False)
    b = train.train_run(s, dataset, tmp_path / "b/metrics.json", tmp_path / "b/checkpoints", progress=False)
    assert strip_timing(a) == strip_timing(b)
    assert strip_timing(json.loads((tmp_path / "a/metrics.json").read_text())) == \
        strip_timing(json.loads((tmp_path / "b/metrics.json").read_text()))
    assert set(a["timing"]) >= {"wall_time_s", "eval_time_s"}
    assert 0 < a["timing"]["eval_time_s"] < a["timing"]["wall_time_s"]  # a part of the run's time (optbias bench)
    if optimizer_cfg["type"] == "shampoo":
        assert a["optimizer_diagnostics"]["root_failures"] == 0 and "root_time_s" in a["timing"]
    for task in (0, 1):
        assert fileio.sha256_file(tmp_path / f"a/checkpoints/task{task}.pt") == \
            fileio.sha256_file(tmp_path / f"b/checkpoints/task{task}.pt")


def test_different_seeds_differ(dataset):
    a = train.train_run(spec({"type": "sgd", "lr": 0.05}, seed=0), dataset, progress=False)
    b = train.train_run(spec({"type": "sgd", "lr": 0.05}, seed=1), dataset, progress=False)
    assert a["loss_curve"]["loss"] != b["loss_curve"]["loss"]


def test_every_optimizer_starts_from_the_same_weights():
    a = models.init_model(3, {"hidden": [16]})
    torch.manual_seed(123)  # global RNG state must not matter
    b = models.init_model(3, {"hidden": [16]})
    assert all(torch.equal(x, y) for x, y in zip(a.state_dict().values(), b.state_dict().values()))
    c = models.init_model(4, {"hidden": [16]})
    assert not torch.equal(a.head.weight, c.head.weight)


def test_checkpoints_load_with_weights_only_and_reproduce_R(dataset, tmp_path):
    result = train.train_run(spec({"type": "sgd", "lr": 0.1}), dataset, checkpoint_dir=tmp_path / "checkpoints",
                             progress=False)
    model = models.init_model(0, {"hidden": [16]})
    model.load_state_dict(torch.load(tmp_path / "checkpoints/task1.pt", weights_only=True))
    from optbias.continual import tasks as tasks_mod

    tasks = tasks_mod.class_incremental(data.load(dataset), [(0, 1), (2, 3)])
    assert [engine.accuracy(model, t.x_test, t.y_test) for t in tasks] == result["R"][-1]


def test_R_rows_are_filled_after_each_task_and_metrics_follow(dataset):
    r = train.train_run(spec({"type": "adam", "lr": 1e-3}, benchmark="permuted"), dataset, progress=False)
    assert len(r["R"]) == 2 and r["tasks"] == ["perm0", "perm1"]
    assert r["R"][0][0] > 0.3  # 16 Adam steps already learn the digits far above chance (0.1)
    assert r["average_forgetting"] == pytest.approx(r["R"][0][0] - r["R"][1][0])
    assert r["steps"] == 2 * 16  # 4000 / 256 rounded up, two tasks


def test_nan_loss_stops_with_a_clear_error(dataset, tmp_path):
    with pytest.raises(engine.DivergenceError, match=r"class_incremental/opt/seed0: the training loss became (nan|inf).*Lower optimizers\.opt\.lr \(now 1e\+30\)"):
        train.train_run(spec({"type": "sgd", "lr": 1e30}), dataset, tmp_path / "metrics.json", progress=False)
    assert not (tmp_path / "metrics.json").exists()


def test_unknown_optimizer_fails_before_training(dataset):
    with pytest.raises(ValueError, match="known types"):
        train.train_run(spec({"type": "lbfgs2", "lr": 1.0}), dataset, progress=False)


def test_reset_optimizer_changes_adam_trajectory(dataset):
    keep = spec({"type": "adam", "lr": 1e-3})
    reset = spec({"type": "adam", "lr": 1e-3})
    reset["train"]["reset_optimizer"] = True
    a = train.train_run(keep, dataset, progress=False)
    b = train.train_run(reset, dataset, progress=False)
    assert a["R"][0] == b["R"][0]  # identical until the first task boundary
    assert a["R"][1] != b["R"][1]


def test_pick_device():
    assert engine.pick_device("cpu") == torch.device("cpu")
    expected = "cuda" if torch.cuda.is_available() else "cpu"
    assert engine.pick_device("auto").type == expected


def test_divergence_can_be_recorded_instead_of_raised(dataset, tmp_path):
    s = spec({"type": "sgd", "lr": 1e30})
    s["train"]["on_divergence"] = "record"
    r = train.train_run(s, dataset, tmp_path / "metrics.json", progress=False)
    assert r["status"] == "diverged" and "loss became" in r["error"]
    assert json.loads((tmp_path / "metrics.json").read_text())["status"] == "diverged"


def test_validation_split_is_held_out_of_training_and_scored(dataset):
    s = spec({"type": "adam", "lr": 1e-3})
    s["train"]["validation_fraction"] = 0.25
    r = train.train_run(s, dataset, progress=False)
    # pairs (0,1) and (2,3): 800 training images each, 200 held out -> 600 trained on
    assert r["steps"] == 2 * 5  # ceil(600 / 128) per task
    assert len(r["R_val"]) == 2 and len(r["R_val"][0]) == 2
    assert r["validation_score"] == pytest.approx((r["R_val"][0][0] + r["R_val"][1][1]) / 2)
    assert r["R_val"][0][0] > 0.7  # five Adam steps already separate 0 from 1 well above chance (0.5)


def test_split_validation_is_stratified_and_disjoint():
    from optbias.continual import tasks as tasks_mod

    y = torch.arange(2).repeat_interleave(50)
    x = torch.arange(100, dtype=torch.float32)[:, None].repeat(1, 3)
    task = tasks_mod.Task("t", (0, 1), x, y, x[:10], y[:10])
    fit, val = tasks_mod.split_validation(task, 0.2, seed=0)
    assert len(fit.y_train) == 80 and len(val.y_test) == 20
    assert torch.bincount(val.y_test).tolist() == [10, 10]
    assert not set(fit.x_train[:, 0].tolist()) & set(val.x_test[:, 0].tolist())
    assert torch.equal(fit.x_test, task.x_test)  # the real test split is untouched


def test_a_recorded_divergence_is_reported_in_one_line_without_crashing(dataset, tmp_path, capsys):
    s = spec({"type": "sgd", "lr": 1e30})
    s["train"]["on_divergence"] = "record"
    (result,) = train.train_runs([s], dataset, [tmp_path / "m.json"], progress=False)
    assert result["status"] == "diverged"
    assert capsys.readouterr().out.startswith("diverged: class_incremental/opt/seed0: the training loss became")


def test_runs_in_one_process_equal_runs_on_their_own(dataset, tmp_path):
    """The workflow trains every seed of an optimizer in one process; nothing may leak between runs."""
    specs = [spec({"type": "shampoo", "lr": 0.05}, seed=s) for s in (0, 1)] + [spec({"type": "sgd", "lr": 0.05}, seed=1)]
    paths = [tmp_path / f"batch/{i}/metrics.json" for i in range(3)]
    batch = train.train_runs(specs, dataset, paths, [p.parent / "checkpoints" for p in paths], progress=False)
    assert [r["seed"] for r in batch] == [0, 1, 1] and all(p.exists() for p in paths)
    for i, s in enumerate(specs):
        alone = train.train_run(s, dataset, None, tmp_path / f"alone/{i}", progress=False)
        assert strip_timing(batch[i]) == strip_timing(alone)
        assert fileio.sha256_file(tmp_path / f"batch/{i}/checkpoints/task1.pt") == \
            fileio.sha256_file(tmp_path / f"alone/{i}/task1.pt")


def test_runs_in_one_process_check_every_spec_first(dataset, tmp_path):
    good, bad = spec({"type": "sgd", "lr": 0.05}), spec({"type": "lion", "lr": 0.05})
    with pytest.raises(Exception, match="lion"):
        train.train_runs([good, bad], dataset, [tmp_path / "a.json", tmp_path / "b.json"], progress=False)
    assert not (tmp_path / "a.json").exists()  # nothing trained before the bad spec was found
    with pytest.raises(ValueError, match="one of each per run"):
        train.train_runs([good, good], dataset, [tmp_path / "a.json"], progress=False)


def test_metrics_record_the_machine_that_made_them(dataset):
    r = train.train_run(spec({"type": "sgd", "lr": 0.05}), dataset, progress=False)
    m = r["machine"]
    assert m["torch_threads"] == 1 and m["torch"] == torch.__version__ and m["cpu_count"] >= 1
    assert m["cpu_model"] and m["cpu_model"] != "unknown" and m["blas"] != "unknown"
    assert m == engine.machine() | {"torch_threads": 1}  # the same machine reports the same


def test_the_configs_shampoo_trains_from_gradient_factors(dataset):
    """train_run hands the model to the optimizer (registry.build(model=...)): with Shampoo's
    gradient_factors on, the updates of the large weights come from the captured factors, and
    the run records how many (optimizer_diagnostics)."""
    entry = {"type": "shampoo", "lr": 0.03, "root_dtype": "float32", "gradient_factors": True}
    s = spec(entry, optimizer="shampoo", batch_size=16)
    s["model"] = {"hidden": [64]}  # batch 16 < 64: the factored path is the cheaper one
    result = train.train_run(s, dataset, progress=False)
    counters = result["optimizer_diagnostics"]
    assert counters["factored_updates"] > 0 and counters["factor_mismatches"] == 0, counters
