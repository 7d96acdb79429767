"""Shampoo's reset_preconditioner (optim/shampoo.py) and the train setting that calls it at every task
boundary (train.reset_preconditioner, the ablation's shampoo-reset-stats).

Known answers: after a reset, L, R and their roots are exactly those of a fresh optimizer that saw
the gradients since the reset (roots recomputed at the first step after it, then every update_freq
steps), while the grafting state, momentum buffer and step count equal those of the optimizer that
was never reset. The stacked class (batched seeds) does the same per run, within StackedShampoo's
declared float64 tolerance (1e-10), and across a state_dict round trip.
"""

from __future__ import annotations

import copy
import re

import pytest
import torch

from optbias import data, fileio
from optbias.continual import runio, settings, train
from optbias.optim.shampoo import Shampoo
from optbias.optim.stacked_shampoo import StackedShampoo

FACTOR_KEYS = ("L", "R", "L_root", "R_root")


def parameters(seed: int = 0) -> list[torch.Tensor]:
    """A 2-D weight (5, 4) and a bias (5,), float64."""
    gen = torch.Generator().manual_seed(seed)
    return [torch.randn(5, 4, generator=gen, dtype=torch.float64), torch.randn(5, generator=gen, dtype=torch.float64)]


def gradient_steps(n: int, seed: int) -> list[list[torch.Tensor]]:
    gen = torch.Generator().manual_seed(seed)
    return [[torch.randn(5, 4, generator=gen, dtype=torch.float64), torch.randn(5, generator=gen, dtype=torch.float64)]
            for _ in range(n)]


def step(optimizer: torch.optim.Optimizer, params: list[torch.Tensor], grads: list[torch.Tensor]) -> None:
    for p, g in zip(params, grads):
        p.grad = g.clone()
    optimizer.step()


@pytest.mark.parametrize("options", [
    {"update_freq": 3},  # adagrad grafting (the config's)
    {"update_freq": 3, "grafting": "adam", "momentum": 0.5, "statistics": "ema", "beta2": 0.9},
    {"update_freq": 1, "max_precond_dim": 4},  # a diagonal L (5 rows > 4)
])
def test_after_a_reset_the_factors_are_a_fresh_optimizers_and_the_rest_is_kept(options):
    before, after = gradient_steps(4, seed=1), gradient_steps(4, seed=2)
    reset_params, kept_params = parameters(), parameters()
    reset = Shampoo([p.requires_grad_() for p in reset_params], lr=0.1, **options)
    kept = Shampoo([p.requires_grad_() for p in kept_params], lr=0.1, **options)
    for grads in before:
        step(reset, reset_params, grads)
        step(kept, kept_params, grads)
    reset.reset_preconditioner()
    (w, b), (kw, kb) = reset_params, kept_params
    assert not set(FACTOR_KEYS) & set(reset.state[w])  # forgotten
    kept_state = {k: v for k, v in kept.state[kw].items() if k not in FACTOR_KEYS}
    assert {k: v for k, v in reset.state[w].items() if k != "factor_start"}.keys() == kept_state.keys()
    for key, value in kept_state.items():  # step count, grafting state, momentum: as if never reset
        assert torch.equal(torch.as_tensor(reset.state[w][key]), torch.as_tensor(value)), key
    assert reset.state[w]["factor_start"] == 4
    for key, value in kept.state[kb].items():  # the bias's own diagonal Adagrad is no Kronecker factor
        assert torch.equal(torch.as_tensor(reset.state[b][key]), torch.as_tensor(value)), key

    fresh_params = [p.detach().clone().requires_grad_() for p in reset_params]
    fresh = Shampoo(fresh_params, lr=0.1, **options)
    computations = reset.root_computations
    for grads in after:  # spans a refresh on the fresh optimizer's schedule (steps 1 and 4 after the reset)
        step(reset, reset_params, grads)
        step(kept, kept_params, grads)
        step(fresh, fresh_params, grads)
        for key in FACTOR_KEYS:
            if key in fresh.state[fresh_params[0]]:
                assert torch.equal(reset.state[w][key], fresh.state[fresh_params[0]][key]), key
        assert not torch.equal(reset.state[w]["L"], kept.state[kw]["L"])  # the reset did something
    assert reset.root_computations - computations == fresh.root_computations
    assert reset.state[w]["step"] == kept.state[kw]["step"] == 8
    graft_keys = [k for k in ("adagrad_sum", "graft_v") if k in kept.state[kw]]
    assert graft_keys
    for key in graft_keys:  # the same gradients went in: the grafting accumulators stay equal
        assert torch.equal(reset.state[w][key], kept.state[kw][key]), key


def test_a_reset_before_the_first_step_changes_nothing():
    params, twin = parameters(), parameters()
    a = Shampoo([p.requires_grad_() for p in params], lr=0.1, update_freq=2)
    b = Shampoo([p.requires_grad_() for p in twin], lr=0.1, update_freq=2)
    a.reset_preconditioner()
    for grads in gradient_steps(3, seed=3):
        step(a, params, grads)
        step(b, twin, grads)
    assert all(torch.equal(p, q) for p, q in zip(params, twin))


def test_stacked_runs_reset_as_each_runs_own_shampoo_and_survive_a_state_dict_round_trip():
    runs, options = 3, {"update_freq": 3, "grafting": "adam", "momentum": 0.5}
    own = [parameters(seed=s) for s in range(runs)]
    stacked = [torch.stack([own[s][k] for s in range(runs)]).requires_grad_() for k in range(2)]
    singles = [Shampoo([p.requires_grad_() for p in own[s]], lr=0.1, **options) for s in range(runs)]
    together = StackedShampoo(stacked, lr=0.1, **options)
    gen = torch.Generator().manual_seed(4)
    draws = [[torch.randn(runs, 5, 4, generator=gen, dtype=torch.float64),
              torch.randn(runs, 5, generator=gen, dtype=torch.float64)] for _ in range(9)]
    for n, grads in enumerate(draws):
        if n in (2, 5):  # two task boundaries
            together.reset_preconditioner()
            for single in singles:
                single.reset_preconditioner()
        if n == 4:  # a resume: the state_dict casts factor_start to float64 (torch's rule); still exact
            saved = copy.deepcopy(together.state_dict())
            together = StackedShampoo(stacked, lr=0.1, **options)
            together.load_state_dict(saved)
        step(together, stacked, grads)
        for s, single in enumerate(singles):
            step(single, own[s], [g[s] for g in grads])
    for k in range(2):
        for s in range(runs):
            assert torch.allclose(stacked[k][s], own[s][k], rtol=0, atol=1e-10)
    assert together.run_counters["root_computations"] == [single.root_computations for single in singles]


# ---- the train setting


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
    path = tmp_path_factory.mktemp("data") / "mnist-5k.pt"
    data.fetch("mnist-5k", path, {})
    return path


def spec(optimizer_cfg, **train_extra):
    return {"benchmark": "class_incremental", "optimizer": "opt", "optimizer_cfg": optimizer_cfg, "seed": 0,
            "benchmark_cfg": {"epochs_per_task": 2, "batch_size": 128, "pairs": [[0, 1], [2, 3], [4, 5]]},
            "model": {"hidden": [16]},
            "train": {"device": "cpu", "threads": 1, "reset_optimizer": False, "loss_log_every": 7, **train_extra}}


SHAMPOO = {"type": "shampoo", "lr": 0.05, "update_freq": 3}


def strip_timing(metrics: dict) -> dict:
    return {k: v for k, v in metrics.items() if k != "timing"}


def test_resetting_the_statistics_is_neither_training_on_nor_a_new_optimizer(dataset):
    plain = train.train_run(spec(SHAMPOO), dataset, progress=False)
    stats = train.train_run(spec(SHAMPOO, reset_preconditioner=True), dataset, progress=False)
    whole = train.train_run(spec(SHAMPOO, reset_optimizer=True), dataset, progress=False)
    assert plain["R"][0] == stats["R"][0] == whole["R"][0]  # identical until the first boundary
    assert stats["R"][1] != plain["R"][1] and stats["R"][1] != whole["R"][1]


def test_a_run_with_reset_preconditioner_resumes_to_identical_outputs(dataset, tmp_path, monkeypatch):
    s = spec(SHAMPOO, reset_preconditioner=True)
    whole = tmp_path / "whole/seed0"
    train.train_run(s, dataset, whole / "metrics.json", whole / "checkpoints", progress=False)

    class Stop(Exception):
        pass

    run = tmp_path / "resumed/seed0"
    state = runio.state_path(run / "metrics.json")
    real, calls = train.run_epoch, {"n": 0}

    def stop_in_task_2(*args, **kwargs):  # tasks 0 and 1 done (2 epochs each), stopped inside task 2
        calls["n"] += 1
        if calls["n"] > 5:
            raise Stop
        return real(*args, **kwargs)

    with monkeypatch.context() as patch:
        patch.setattr(train, "run_epoch", stop_in_task_2)
        with pytest.raises(Stop):
            train.train_run(s, dataset, run / "metrics.json", run / "checkpoints", progress=False, resume_path=state)
    assert torch.load(state, weights_only=True)["done"] == 2
    train.train_run(s, dataset, run / "metrics.json", run / "checkpoints", progress=False, resume_path=state)
    assert strip_timing(fileio.load_json(run / "metrics.json")) == strip_timing(fileio.load_json(whole / "metrics.json"))
    for i in range(3):
        assert fileio.sha256_file(run / f"checkpoints/task{i}.pt") == fileio.sha256_file(whole / f"checkpoints/task{i}.pt")


@pytest.mark.parametrize("train_extra, message", [
    ({"reset_preconditioner": True}, "optimizer type 'adam' has no reset_preconditioner() method"),
    ({"reset_preconditioner": "yes"}, "train.reset_preconditioner is 'yes'; set it to true or false"),
    ({"batch_order": -1}, "train.batch_order is -1; give an integer >= 1"),
    ({"batch_order": 1.5}, "train.batch_order is 1.5; give an integer >= 1"),
    ({"batch_order": True}, "train.batch_order is True; give an integer >= 1"),
    ({"batch_order": "1"}, "train.batch_order is '1'; give an integer >= 1"),
])
def test_bad_settings_stop_a_run_before_it_loads_anything(tmp_path, train_extra, message):
    s = spec({"type": "adam", "lr": 1e-3}, **train_extra)
    missing = tmp_path / "no-such-dataset.pt"  # never opened: the check comes first
    with pytest.raises(ValueError, match=re.escape(message)):
        train.train_run(s, missing, progress=False)
    with pytest.raises(ValueError, match=re.escape(message)):  # a job checks every spec before the first run
        train.train_runs([s], missing, [tmp_path / "m.json"], progress=False)
    assert not missing.exists()


def test_the_setting_asks_the_optimizer_class_without_importing_a_registry_type():
    settings.check("x", {"type": "shampoo", "lr": 0.1}, {"reset_preconditioner": True})  # from source
    settings.check("x", {"type": "adam", "lr": 0.1}, {"reset_preconditioner": False})
    with pytest.raises(ValueError, match="use train.reset_optimizer: true to rebuild the whole optimizer"):
        settings.check("x", {"type": "torch.optim.Adam", "lr": 0.1}, {"reset_preconditioner": True})


def test_batched_seeds_reset_the_statistics_as_the_runs_one_by_one_in_float64(dataset, tmp_path, monkeypatch):
    """train_batched calls StackedShampoo's reset_preconditioner at the same boundaries: whole runs in
    float64 agree within tests/test_batched.py's declared float64 tolerance (checkpoints 1e-6, R one
    test image), with the same root counts."""
    from optbias.continual import tasks

    monkeypatch.setattr(tasks, "_pixels", lambda x: x.to(torch.float64) / 255.0)
    default = torch.get_default_dtype()
    torch.set_default_dtype(torch.float64)  # init_model's weights
    try:
        results = {}
        for batch_seeds in (False, True):
            specs = [{**spec({**SHAMPOO, "root_dtype": "float64"}, reset_preconditioner=True, batch_seeds=batch_seeds),
                      "seed": seed} for seed in (0, 1)]
            dirs = [tmp_path / str(batch_seeds) / f"seed{seed}" for seed in (0, 1)]
            results[batch_seeds] = train.train_runs(specs, dataset, [d / "metrics.json" for d in dirs],
                                                    [d / "checkpoints" for d in dirs], progress=False)
    finally:
        torch.set_default_dtype(default)
    for seed, one, both in zip((0, 1), results[False], results[True]):
        assert both["timing"]["batched_seeds"] == 2 and "batched_seeds" not in one["timing"]
        assert both["optimizer_diagnostics"]["root_computations"] == one["optimizer_diagnostics"]["root_computations"]
        for a, b in zip(one["R"], both["R"], strict=True):
            assert b == pytest.approx(a, abs=0.0025)
        for task in range(3):
            a = torch.load(tmp_path / f"False/seed{seed}/checkpoints/task{task}.pt", weights_only=True)
            b = torch.load(tmp_path / f"True/seed{seed}/checkpoints/task{task}.pt", weights_only=True)
            assert all(torch.allclose(a[k], b[k], rtol=0, atol=1e-6) for k in a)
