"""Resume at task granularity (optbias.continual.runio): an interrupted run continues after its
last completed task, a finished seed is not trained again, and the outputs equal an uninterrupted
run's byte for byte (timing aside). Two ways to interrupt: an exception inside a task (every
optimizer family, fast), and a real SIGKILL of a Snakemake training job (the sequence of issue 16).
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from conftest import REPO, scheduled, snakemake, write_config
from optbias import data, fileio
from optbias.continual import runio, train


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
    path = tmp_path_factory.mktemp("data") / "mnist-5k.pt"
    data.fetch("mnist-5k", path, {})
    return path


def spec(optimizer_cfg, seed=0, reset=False):
    return {"benchmark": "class_incremental", "optimizer": "opt", "optimizer_cfg": optimizer_cfg, "seed": seed,
            "benchmark_cfg": {"epochs_per_task": 2, "batch_size": 128, "pairs": [[0, 1], [2, 3], [4, 5]]},
            "model": {"hidden": [16]},
            # 7 steps per loss window: windows straddle task boundaries, so the open window is resumed too
            "train": {"device": "cpu", "threads": 1, "reset_optimizer": reset, "loss_log_every": 7,
                      "validation_fraction": 0.1}}


def strip_timing(metrics: dict) -> dict:
    return {k: v for k, v in metrics.items() if k != "timing"}


def outputs(run_dir: Path) -> dict[str, str]:
    """Every output file of a run -> its SHA-256, metrics.json without its timing block."""
    found = {p.name: fileio.sha256_file(p) for p in sorted((run_dir / "checkpoints").glob("*.pt"))}
    found["metrics.json"] = json.dumps(strip_timing(fileio.load_json(run_dir / "metrics.json")), sort_keys=True)
    return found


class Stop(Exception):
    """Stands for a kill: raised from inside a task's training."""


def interrupt_after(monkeypatch, epochs: int) -> None:
    """Make train_run's ``run_epoch`` raise ``Stop`` on its call number ``epochs + 1``."""
    calls = {"n": 0}
    real = train.run_epoch

    def counting(*args, **kwargs):
        calls["n"] += 1
        if calls["n"] > epochs:
            raise Stop
        return real(*args, **kwargs)

    monkeypatch.setattr(train, "run_epoch", counting)


@pytest.mark.parametrize("optimizer_cfg, reset", [
    ({"type": "sgd", "lr": 0.05, "momentum": 0.9}, False),
    ({"type": "adamw", "lr": 1e-3, "weight_decay": 1e-2}, False),
    ({"type": "shampoo", "lr": 0.05, "update_freq": 3}, False),
    ({"type": "shampoo", "lr": 0.05, "update_freq": 3}, True),  # the ablation's reset variant
    ({"type": "shampoo", "lr": 0.05, "update_freq": 3, "root_dtype": "float32", "gradient_factors": True},
     True),  # the config's Shampoo: hooks on the model, re-attached by each reset optimizer
    ({"type": "adagrad", "lr": 0.01}, False),
    ({"type": "muon", "lr": 0.01}, False),  # a composite: Muon and AdamW share one state_dict
    ({"type": "soap", "lr": 3e-3, "precondition_frequency": 3}, False),
    # Kron also draws from numpy's global RNG (when to rebalance its factors), restored by resume too
    ({"type": "psgd_kron", "lr": 1e-3, "balance_prob": 0.5}, False),  # needs opt_einsum: in requirements.lock
    # issue 33: their memory (OWM's projectors, Memory Shampoo's S and its root) lives in the state
    ({"type": "owm", "lr": 0.1, "alpha": 0.5}, False),
    ({"type": "memory_shampoo", "lr": 0.05, "update_freq": 3, "memory_power": 0.5}, True),
    # the reference regularizers: EWC's importances and saved weights per past task, SI's Omega,
    # theta* and running sums live in the state too (the regularizer follows a reset optimizer)
    ({"type": "sgd", "lr": 0.05, "regularizer": "ewc", "regularizer_strength": 100.0}, True),
    ({"type": "adamw", "lr": 1e-3, "regularizer": "si", "regularizer_strength": 100.0}, False),
])
def test_a_run_interrupted_mid_task_resumes_to_identical_outputs(dataset, tmp_path, monkeypatch, optimizer_cfg, reset):
    s = spec(optimizer_cfg, reset=reset)
    if optimizer_cfg.get("gradient_factors"):  # batch 16 < width 64: the factored path is the cheaper one
        s["model"], s["benchmark_cfg"]["batch_size"] = {"hidden": [64]}, 16
    whole = tmp_path / "whole/seed0"
    result = train.train_run(s, dataset, whole / "metrics.json", whole / "checkpoints", progress=False)
    if optimizer_cfg.get("gradient_factors"):
        assert result["optimizer_diagnostics"]["factored_updates"] > 0, result["optimizer_diagnostics"]

    run = tmp_path / "resumed/seed0"
    state = runio.state_path(run / "metrics.json")
    assert state == tmp_path / "resumed/seed0.resume.pt"  # outside the run's directory (a job output)
    with monkeypatch.context() as patch:
        interrupt_after(patch, epochs=3)  # task 0 done (2 epochs), stopped inside task 1's second epoch
        with pytest.raises(Stop):
            train.train_run(s, dataset, run / "metrics.json", run / "checkpoints", progress=False, resume_path=state)
    assert not (run / "metrics.json").exists() and torch.load(state, weights_only=True)["done"] == 1
    (run / "checkpoints/task0.pt").unlink()  # as Snakemake removes a failed job's outputs

    with monkeypatch.context() as patch:
        interrupt_after(patch, epochs=4)  # the rest takes exactly 4 epochs: one more would be retraining
        resumed = train.train_run(s, dataset, run / "metrics.json", run / "checkpoints", progress=False,
                                  resume_path=state)
    assert outputs(run) == outputs(whole)
    assert resumed["timing"]["wall_time_s"] > 0


@pytest.mark.parametrize("optimizer_cfg", [
    {"type": "sgd", "lr": 0.05, "regularizer": "ewc", "regularizer_strength": 100.0},
    {"type": "sgd", "lr": 0.05, "regularizer": "si", "regularizer_strength": 100.0},
])
def test_a_regularized_run_interrupted_in_its_third_task_keeps_both_past_tasks(dataset, tmp_path, monkeypatch,
                                                                               optimizer_cfg):
    """EWC's state holds one importance and anchor per past task, SI's the path ratios summed over
    them: a resume after two tasks must restore both, not only the last."""
    s = spec(optimizer_cfg)
    whole = tmp_path / "whole/seed0"
    train.train_run(s, dataset, whole / "metrics.json", whole / "checkpoints", progress=False)
    run = tmp_path / "resumed/seed0"
    state = runio.state_path(run / "metrics.json")
    with monkeypatch.context() as patch:
        interrupt_after(patch, epochs=5)  # tasks 0 and 1 done (2 epochs each), stopped inside task 2
        with pytest.raises(Stop):
            train.train_run(s, dataset, run / "metrics.json", run / "checkpoints", progress=False, resume_path=state)
    saved = torch.load(state, weights_only=True)
    assert saved["done"] == 2
    if optimizer_cfg["regularizer"] == "ewc":  # one importance per past task in the saved weights
        assert {k.split("/")[2] for k in saved["weights"] if k.startswith("regularizer/importances/")} == {"0", "1"}
    for f in (run / "checkpoints").glob("*"):
        f.unlink()
    with monkeypatch.context() as patch:
        interrupt_after(patch, epochs=2)  # task 2 again, whole: one more epoch would be retraining
        train.train_run(s, dataset, run / "metrics.json", run / "checkpoints", progress=False, resume_path=state)
    assert outputs(run) == outputs(whole)


def test_a_finished_seed_is_restored_not_retrained_and_states_go_once_the_job_is_complete(dataset, tmp_path,
                                                                                          monkeypatch, capsys):
    specs = [spec({"type": "sgd", "lr": 0.05}, seed=k) for k in (0, 1)]
    whole = [tmp_path / f"whole/seed{k}" for k in (0, 1)]
    train.train_runs(specs, dataset, [d / "metrics.json" for d in whole], [d / "checkpoints" for d in whole],
                     progress=False)
    assert not list(tmp_path.glob("whole/*.resume.pt"))  # removed once the job completed

    runs = [tmp_path / f"job/seed{k}" for k in (0, 1)]
    args = ([d / "metrics.json" for d in runs], [d / "checkpoints" for d in runs])
    with monkeypatch.context() as patch:
        interrupt_after(patch, epochs=6 + 3)  # seed 0 complete (3 tasks x 2 epochs), seed 1 inside task 1
        with pytest.raises(Stop):
            train.train_runs(specs, dataset, *args, progress=False)
    for d in runs:  # what Snakemake does to a failed job's outputs
        (d / "metrics.json").unlink(missing_ok=True)
        for f in (d / "checkpoints").glob("*"):
            f.unlink()
    capsys.readouterr()
    with monkeypatch.context() as patch:
        interrupt_after(patch, epochs=4)  # seed 1's tasks 1 and 2 only: seed 0 and seed 1's task 0 cost nothing
        train.train_runs(specs, dataset, *args, progress=False)
    assert "seed0: finished earlier, restored" in capsys.readouterr().out
    assert [outputs(d) for d in runs] == [outputs(d) for d in whole]
    assert not list(tmp_path.glob("job/*.resume.pt"))


def test_a_state_saved_for_another_spec_is_ignored(dataset, tmp_path, monkeypatch, capsys):
    run = tmp_path / "seed0"
    state = runio.state_path(run / "metrics.json")
    with monkeypatch.context() as patch:
        interrupt_after(patch, epochs=3)
        with pytest.raises(Stop):
            train.train_run(spec({"type": "sgd", "lr": 0.05}), dataset, run / "metrics.json", progress=False,
                            resume_path=state)
    changed = spec({"type": "sgd", "lr": 0.01})
    result = train.train_run(changed, dataset, run / "metrics.json", progress=False, resume_path=state)
    assert "saved for another spec" in capsys.readouterr().out
    assert strip_timing(result) == strip_timing(train.train_run(changed, dataset, progress=False))


def test_a_state_saved_on_other_data_is_ignored(dataset, tmp_path, monkeypatch, capsys):
    """The spec does not say which split of which data: the dataset's SHA-256 is part of the key."""
    other = tmp_path / "other.pt"
    data.fetch("mnist-5k", other, {"test_fraction": 0.3, "split_seed": 1})
    s, run = spec({"type": "sgd", "lr": 0.05}), tmp_path / "seed0"
    state = runio.state_path(run / "metrics.json")
    with monkeypatch.context() as patch:
        interrupt_after(patch, epochs=3)
        with pytest.raises(Stop):
            train.train_run(s, dataset, run / "metrics.json", progress=False, resume_path=state)
    result = train.train_run(s, other, run / "metrics.json", progress=False, resume_path=state)
    assert "saved for another dataset_sha256" in capsys.readouterr().out
    assert strip_timing(result) == strip_timing(train.train_run(s, other, progress=False))


def test_removing_a_state_removes_what_a_kill_during_its_save_left(tmp_path):
    state = tmp_path / "seed0.resume.pt"
    leftovers = [state, tmp_path / ".seed0.resume.pt.x1y2.tmp"]
    for f in leftovers:
        f.write_bytes(b"partial")
    runio.remove(state)
    assert not any(f.exists() for f in leftovers)


# ---- the sequence of issue 16, on a real Snakemake job: force a training job, SIGKILL it mid-task,
# `snakemake -n` schedules it again, and the rerun resumes and ends with the same bytes.

KILL_CONFIG = {
    "dataset": "mnist-5k",
    "data": {"test_fraction": 0.2, "split_seed": 0},
    "seeds": [0, 1],
    "model": {"hidden": [32]},
    # 12 epochs per task: a run takes a few seconds, so the kill lands inside a task
    "benchmarks": {"class_incremental": {"epochs_per_task": 12, "batch_size": 64}},
    "train": {"device": "cpu", "threads": 1, "reset_optimizer": False, "loss_log_every": 5},
    "optimizers": {"sgd": {"type": "sgd", "lr": 0.05}},
}

RUNS = "data/runs/class_incremental/sgd"


def run_outputs(workdir: Path) -> dict[str, str]:
    return {f"seed{k}/{name}": digest for k in (0, 1) for name, digest in outputs(workdir / f"{RUNS}/seed{k}").items()}


def summaries(workdir: Path) -> dict[str, str]:
    """Every summary's SHA-256, and every probes.json without its timing block."""
    found = {str(p.relative_to(workdir)): fileio.sha256_file(p) for p in sorted(workdir.glob("data/summary/*.json"))}
    found.update({str(p.relative_to(workdir)): json.dumps(strip_timing(fileio.load_json(p)), sort_keys=True)
                  for p in sorted(workdir.glob("data/probes/**/*.json"))})
    return found


def kill_job_when(proc: subprocess.Popen, workdir: Path, state: Path, tasks_done: int, timeout: float = 300) -> None:
    """SIGKILL the training script Snakemake runs in ``workdir`` as soon as ``state`` records
    ``tasks_done`` tasks, then wait for Snakemake to fail the job (it removes the job's outputs)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        assert proc.poll() is None, "the job ended before it could be killed"
        try:
            if state.is_file() and torch.load(state, weights_only=True).get("done", 0) >= tasks_done:
                break
        except Exception:  # noqa: BLE001 -- replaced between is_file() and load(): look again
            pass
        time.sleep(0.02)
    else:
        raise AssertionError(f"no resume state with {tasks_done} tasks in {timeout} s")
    subprocess.run(["pkill", "-KILL", "-f", f"{workdir}/.snakemake/scripts/.*train.py"], check=True)
    assert proc.wait(timeout=120) != 0


@pytest.mark.slow
def test_a_killed_training_job_is_scheduled_again_and_resumes_to_identical_outputs(tmp_path):
    workdir = tmp_path / "work"
    write_config(workdir, KILL_CONFIG)
    snakemake(workdir, "--cores", "1", check=True)
    before_runs, before_summaries = run_outputs(workdir), summaries(workdir)

    # force the job; kill its process once seed 1 has finished task 1 (seed 0 finished before it)
    cmd = [sys.executable, "-m", "snakemake", "-s", str(REPO / "Snakefile"), "-d", str(workdir), "--cores", "1",
           "--forcerun", "train"]
    with open(tmp_path / "killed.log", "w") as log:
        proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT)
        kill_job_when(proc, workdir, workdir / f"{RUNS}/seed1.resume.pt", tasks_done=2)
    assert not (workdir / f"{RUNS}/seed0/metrics.json").exists()  # Snakemake removed the failed job's outputs
    assert (workdir / f"{RUNS}/seed0.resume.pt").is_file() and (workdir / f"{RUNS}/seed1.resume.pt").is_file()

    dry = snakemake(workdir, "-n", check=True)
    assert scheduled(dry.stdout)["train"] == 1, dry.stdout  # the killed job is not taken as done

    rerun = snakemake(workdir, "--cores", "1", check=True)
    job_log = (workdir / "logs/train/class_incremental/sgd.log").read_text()
    assert "seed0: finished earlier, restored" in job_log, job_log
    resumed = re.search(r"seed1: resumed from .* after (\d) of 5 tasks", job_log)  # killed after 2 or more
    assert resumed and 2 <= int(resumed.group(1)) <= 4, job_log
    assert run_outputs(workdir) == before_runs
    assert summaries(workdir) == before_summaries
    assert not list(workdir.glob(f"{RUNS}/*.resume.pt"))
    assert "Nothing to be done" in snakemake(workdir, "-n", check=True).stdout, rerun.stdout
