"""The reference regularizers (optbias.continual.regularizers: Avalanche 0.6's EWC and SI called from
our loop) against answers computed by hand on a two-task toy problem: EWC's importances, penalty (no
1/2) and SGD step; SI's Omega from a recorded trajectory, its penalty (lambda/2) and the CPU patch;
a vanishing strength; the CE-only loss log; bad options at config time; a whole run."""

from __future__ import annotations

import copy

import pytest
import torch
import torch.nn.functional as F

from conftest import REPO, TINY_CONFIG
from optbias import config as cfgmod
from optbias import optim
from optbias.continual import batched, regularizers, train
from optbias.engine import run_epoch
from optbias.models import init_model

pytest.importorskip("avalanche")  # a dependency (requirements.lock); the import is checked here, once

BATCH = 8
SCHEMA = str(REPO / "workflow/schemas/config.schema.yaml")


def toy_tasks(n: int = 20, count: int = 2) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """``count`` tasks of ``n`` points: x (n, 6), labels in 0..2."""
    g = torch.Generator().manual_seed(3)
    return [(torch.randn(n, 6, generator=g), torch.randint(0, 3, (n,), generator=g)) for _ in range(count)]


def model_and_sgd(lr: float = 0.1) -> tuple[torch.nn.Module, torch.optim.Optimizer]:
    model = init_model(0, {"hidden": [5]}, in_features=6, num_classes=3)
    return model, torch.optim.SGD(model.parameters(), lr=lr)


def regularizer(kind: str, strength: float, model, opt) -> regularizers.Regularizer:
    return regularizers.Regularizer(kind, strength, model, opt, BATCH, torch.device("cpu"))


def train_task(model, opt, reg, t, x, y, epochs=1, after_step=lambda loss, step: None) -> None:
    """Task t as the loop trains it: start_task, epochs of run_epoch with the regularizer, end_task."""
    g = torch.Generator().manual_seed(10 + t)
    if reg is not None:
        reg.start_task(t, x, y)
    step = 0
    for _ in range(epochs):
        step = run_epoch(model, opt, x, y, BATCH, g, step, after_step, regularizer=reg)
    if reg is not None:
        reg.end_task()


def params(model) -> dict[str, torch.Tensor]:
    return {k: p.detach().clone() for k, p in model.named_parameters()}


def perturb(model, scale: float = 0.3) -> None:
    g = torch.Generator().manual_seed(7)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(scale * torch.randn(p.shape, generator=g))


def penalty(reg: regularizers.Regularizer) -> float:
    """What ``penalize`` adds to a loss of 0."""
    return float(reg.penalize(torch.zeros(())).detach())


# ---- EWC -------------------------------------------------------------------------------------------


def hand_fisher(model, x, y) -> dict[str, torch.Tensor]:
    """Mean over unshuffled batches of BATCH rows of the squared batch-mean CE gradient (eval mode)."""
    fisher = {k: torch.zeros_like(p) for k, p in model.named_parameters()}
    starts = range(0, len(y), BATCH)
    for start in starts:
        grads = torch.autograd.grad(F.cross_entropy(model(x[start:start + BATCH]), y[start:start + BATCH]),
                                    list(model.parameters()))
        for k, grad in zip(fisher, grads):
            fisher[k] += grad ** 2
    return {k: f / len(starts) for k, f in fisher.items()}


def test_ewc_importance_is_the_mean_of_squared_batch_gradients_and_the_penalty_has_no_half():
    (x0, y0), (x1, y1) = toy_tasks()
    model, opt = model_and_sgd()
    reg = regularizer("ewc", 3.0, model, opt)
    train_task(model, opt, reg, 0, x0, y0, epochs=2)
    fisher, theta_star = hand_fisher(model, x0, y0), params(model)  # 20 rows: batches of 8, 8 and 4
    for k in fisher:
        torch.testing.assert_close(reg.plugin.importances[0][k].data, fisher[k], rtol=1e-6, atol=1e-10)
        torch.testing.assert_close(reg.plugin.saved_params[0][k].data, theta_star[k], rtol=0, atol=0)
    assert max(float(f.max()) for f in fisher.values()) > 0

    reg.start_task(1, x1, y1)
    assert penalty(reg) == 0  # at theta* itself
    perturb(model)
    expected = 3.0 * sum(float((fisher[k] * (p - theta_star[k]) ** 2).sum()) for k, p in model.named_parameters())
    assert expected > 1e-4
    assert penalty(reg) == pytest.approx(expected, rel=1e-5)  # lambda * sum F d^2, not lambda/2


def test_ewc_step_of_run_epoch_is_sgd_on_the_loss_plus_the_penalty():
    (x0, y0), (x1, y1) = toy_tasks()
    x1, y1 = x1[:BATCH], y1[:BATCH]  # one batch: one step
    model, opt = model_and_sgd(lr=0.1)
    reg = regularizer("ewc", 5.0, model, opt)
    train_task(model, opt, reg, 0, x0, y0)
    fisher, theta_star = hand_fisher(model, x0, y0), params(model)
    perturb(model)
    before = params(model)
    grads = torch.autograd.grad(F.cross_entropy(model(x1), y1), list(model.parameters()))
    expected = {k: before[k] - 0.1 * (g + 2 * 5.0 * fisher[k] * (before[k] - theta_star[k]))
                for k, g in zip(before, grads)}
    reg.start_task(1, x1, y1)
    assert run_epoch(model, opt, x1, y1, BATCH, torch.Generator().manual_seed(0), 0, lambda loss, at: None,
                     regularizer=reg) == 1
    for k, p in model.named_parameters():
        torch.testing.assert_close(p.detach(), expected[k], rtol=0, atol=1e-6)
    assert any(not torch.allclose(expected[k], before[k] - 0.1 * g, atol=1e-5) for k, g in zip(before, grads))


def test_ewc_over_three_tasks_sums_one_penalty_per_past_task_with_its_own_fisher_and_weights():
    tasks = toy_tasks(count=3)
    model, opt = model_and_sgd()
    reg = regularizer("ewc", 2.0, model, opt)
    fishers, stars = [], []
    for t, (x, y) in enumerate(tasks[:2]):
        train_task(model, opt, reg, t, x, y, epochs=2)
        fishers.append(hand_fisher(model, x, y))  # at theta*_t, the weights at the end of task t
        stars.append(params(model))
    assert sorted(reg.plugin.importances) == sorted(reg.plugin.saved_params) == [0, 1]
    for t in (0, 1):
        for k in fishers[t]:
            torch.testing.assert_close(reg.plugin.importances[t][k].data, fishers[t][k], rtol=1e-6, atol=1e-10)
            torch.testing.assert_close(reg.plugin.saved_params[t][k].data, stars[t][k], rtol=0, atol=0)
    assert any(not torch.equal(stars[0][k], stars[1][k]) for k in stars[0])  # two distinct anchors

    reg.start_task(2, *tasks[2])
    perturb(model)
    per_task = [2.0 * sum(float((fishers[t][k] * (p.detach() - stars[t][k]) ** 2).sum())
                          for k, p in model.named_parameters()) for t in (0, 1)]
    assert min(per_task) > 1e-4
    assert penalty(reg) == pytest.approx(sum(per_task), rel=1e-5)  # task 0's term is kept, not replaced


def test_ewc_fisher_pass_is_not_recorded_by_an_optimizer_that_hooks_the_model():
    """OWM's projector takes every forward pass's input mean; the Fisher pass after task 0 is not a
    training step, so the projector after task 1's first step equals the unregularized run's (the
    first layer's inputs are the data, so its projector does not depend on the weights)."""
    (x0, y0), (x1, y1) = toy_tasks()
    projectors = []
    for kind in (None, "ewc"):
        model = init_model(0, {"hidden": [5]}, in_features=6, num_classes=3)
        opt = optim.build({"type": "owm", "lr": 0.1, "alpha": 0.5}, model.parameters(), model=model)
        reg = None if kind is None else regularizer(kind, 1.0, model, opt)
        train_task(model, opt, reg, 0, x0, y0, epochs=2)
        if reg is not None:
            reg.start_task(1, x1, y1)
        run_epoch(model, opt, x1[:BATCH], y1[:BATCH], BATCH, torch.Generator().manual_seed(0), 0,
                  lambda loss, at: None, regularizer=reg)
        projectors.append(opt.state[model.hidden_layers[0].weight]["P"].clone())
    torch.testing.assert_close(projectors[1], projectors[0], rtol=0, atol=1e-7)


# ---- SI --------------------------------------------------------------------------------------------


def test_si_omega_is_the_clamped_path_integral_and_the_penalty_has_half_lambda():
    (x0, y0), (x1, y1) = toy_tasks()
    model, opt = model_and_sgd(lr=0.5)
    reg = regularizer("si", 4.0, model, opt)
    start = params(model)
    path = {k: torch.zeros_like(p) for k, p in start.items()}
    previous = dict(start)

    def record(loss, step):  # after optimizer.step(): this step's gradient, the weights after it
        for k, p in model.named_parameters():
            path[k] += p.grad * (p.detach() - previous[k])
            previous[k] = p.detach().clone()

    train_task(model, opt, reg, 0, x0, y0, epochs=3, after_step=record)
    end = params(model)
    theta_star, omega = reg.plugin.ewc_data
    for k in end:
        hand = torch.clamp(-path[k] / ((end[k] - start[k]) ** 2 + regularizers.SI_EPS), max=1e-3)
        torch.testing.assert_close(omega[k].data, hand.flatten(), rtol=1e-4, atol=1e-9)
        torch.testing.assert_close(theta_star[k].data, end[k].flatten(), rtol=0, atol=0)
    flat = torch.cat([omega[k].data for k in end])
    # 0 everywhere on the CPU without regularizers.patch_si (aliased weights). With c = 1 the raw
    # ratio is of order 1/lr for SGD, so Avalanche's clamp at 1e-3 is what most weights get.
    assert float(flat.max()) == pytest.approx(1e-3)

    reg.start_task(1, x1, y1)
    perturb(model)
    expected = 4.0 / 2 * sum(float((omega[k].data * (p.detach().flatten() - end[k].flatten()) ** 2).sum())
                             for k, p in model.named_parameters())
    assert expected > 0
    assert penalty(reg) == pytest.approx(expected, rel=1e-5)


def test_si_over_three_tasks_sums_each_tasks_path_ratio_and_restarts_the_path():
    tasks = toy_tasks(count=3)
    model, opt = model_and_sgd(lr=0.5)
    reg = regularizer("si", 50.0, model, opt)
    cum = {k: torch.zeros_like(p) for k, p in model.named_parameters()}
    for t, (x, y) in enumerate(tasks[:2]):
        start = params(model)
        path = {k: torch.zeros_like(p) for k, p in start.items()}
        previous = dict(start)

        def record(loss, step):  # the gradient of the penalized loss (task 1) times the step
            for k, p in model.named_parameters():
                path[k] += p.grad * (p.detach() - previous[k])
                previous[k] = p.detach().clone()

        train_task(model, opt, reg, t, x, y, epochs=2, after_step=record)
        end = params(model)
        for k in cum:
            cum[k] += path[k] / ((end[k] - start[k]) ** 2 + regularizers.SI_EPS)
    theta_star, omega = reg.plugin.ewc_data
    for k in cum:
        torch.testing.assert_close(reg.plugin.syn_data["cum_trajectory"][k].data, cum[k].flatten(),
                                   rtol=1e-4, atol=1e-6)
        torch.testing.assert_close(omega[k].data, torch.clamp(-cum[k], max=1e-3).flatten(), rtol=1e-4, atol=1e-9)
        torch.testing.assert_close(theta_star[k].data, end[k].flatten(), rtol=0, atol=0)

    reg.start_task(2, *tasks[2])
    perturb(model)
    expected = 50.0 / 2 * sum(float((omega[k].data * (p.detach().flatten() - end[k].flatten()) ** 2).sum())
                              for k, p in model.named_parameters())
    assert penalty(reg) == pytest.approx(expected, rel=1e-5)  # one anchor: the last task's weights


def test_the_si_patch_is_idempotent_and_copies():
    from avalanche.training.plugins import SynapticIntelligencePlugin

    regularizers.patch_si()
    regularizers.patch_si()
    assert SynapticIntelligencePlugin.__dict__["extract_weights"].__func__ is regularizers._copy_weights
    model, opt = model_and_sgd()
    reg = regularizer("si", 1.0, model, opt)
    x, y = toy_tasks()[0]
    reg.start_task(0, x, y)
    stored = reg.plugin.ewc_data[0]["hidden_layers.0.weight"].data
    with torch.no_grad():
        model.hidden_layers[0].weight.add_(1.0)
    assert not torch.equal(stored, model.hidden_layers[0].weight.detach().flatten())  # a copy, not a view


# ---- both ------------------------------------------------------------------------------------------


@pytest.mark.parametrize("kind", ["ewc", "si"])
def test_a_vanishing_strength_gives_the_unregularized_trajectory(kind):
    tasks = toy_tasks()
    finals = []
    for strength in (None, 1e-12):
        model, opt = model_and_sgd()
        reg = None if strength is None else regularizer(kind, strength, model, opt)
        for t, (x, y) in enumerate(tasks):
            train_task(model, opt, reg, t, x, y, epochs=2)
        finals.append(params(model))
    moved = max(float((finals[0][k] - init_model(0, {"hidden": [5]}, 6, 3).state_dict()[k]).abs().max())
                for k in finals[0])
    assert moved > 1e-2
    for k in finals[0]:
        torch.testing.assert_close(finals[1][k], finals[0][k], rtol=0, atol=1e-6)


@pytest.mark.parametrize("kind, strength", [("ewc", 100.0), ("si", 1000.0)])
def test_the_loss_log_gets_the_cross_entropy_not_the_penalized_loss(kind, strength):
    (x0, y0), (x1, y1) = toy_tasks()
    model, opt = model_and_sgd()
    reg = regularizer(kind, strength, model, opt)
    train_task(model, opt, reg, 0, x0, y0, epochs=2)
    seen, logged = [], []
    penalize = reg.penalize

    def spy(loss):
        penalized = penalize(loss)
        seen.append((loss, float(loss), float(penalized)))
        return penalized

    reg.penalize = spy
    train_task(model, opt, reg, 1, x1, y1, epochs=2, after_step=lambda loss, step: logged.append(loss))
    assert [id(loss) for loss in logged] == [id(loss) for loss, _, _ in seen]  # the CE tensors themselves
    assert [float(loss) for loss in logged] == [ce for _, ce, _ in seen]  # not changed in place by the plugin
    assert all(total > ce for _, ce, total in seen[1:])  # the penalty was there (0 at the task's first step)


# ---- options and runs ------------------------------------------------------------------------------


@pytest.mark.parametrize("extra, message", [
    ({"regularizer": "l2", "regularizer_strength": 1.0}, r"unknown regularizer 'l2'; use one of ewc, si"),
    ({"regularizer": "ewc"}, r"regularizer_strength is missing; set it to a number > 0"),
    ({"regularizer": "si", "regularizer_strength": 0}, r"regularizer_strength is 0; set it to a number > 0"),
    ({"regularizer": "si", "regularizer_strength": -1.0}, r"regularizer_strength is -1.0; set it to a number > 0"),
    ({"regularizer": "ewc", "regularizer_strength": "1e2"}, r"regularizer_strength is '1e2'; set it"),
    ({"regularizer_strength": 1.0}, r"regularizer_strength=1.0 without a regularizer; add `regularizer: ewc \| si`"),
])
def test_bad_regularizer_options_are_named_with_the_fix(extra, message):
    entry = {"type": "adamw", "lr": 1e-3, **extra}
    with pytest.raises(optim.OptimizerConfigError, match=r"^optimizers\.ewc: (regularizer \w+: )?" + message):
        optim.check("ewc", entry)
    config = copy.deepcopy(TINY_CONFIG)
    config["optimizers"]["ewc"] = entry
    # at parse time (optbias.config.validate, what the Snakefile calls), before any job
    with pytest.raises(cfgmod.ConfigError, match=r"optimizers\.ewc: (regularizer \w+: )?" + message):
        cfgmod.validate(config, SCHEMA)


def test_a_regularized_entry_checks_its_optimizer_keys_builds_the_optimizer_and_is_not_batched():
    entry = {"type": "adamw", "lr": 1e-3, "weight_decay": 1e-2, "regularizer": "ewc", "regularizer_strength": 100}
    optim.check("ewc", entry)
    with pytest.raises(optim.OptimizerConfigError, match="adamw does not take momentum"):
        optim.check("ewc", {**entry, "momentum": 0.9})
    built = optim.build(entry, init_model(0, {"hidden": [4]}, 6, 3).parameters())
    assert isinstance(built, torch.optim.AdamW) and built.defaults["weight_decay"] == 1e-2
    config = copy.deepcopy(TINY_CONFIG)
    config["optimizers"]["ewc"] = entry
    cfgmod.validate(config, SCHEMA)
    spec = {"optimizer_cfg": entry, "train": {"batch_seeds": True, "device": "cpu"}}
    assert "regularizer (ewc)" in batched.batchable([{**spec, "seed": 0}, {**spec, "seed": 1}])


@pytest.fixture(scope="module")
def dataset(mnist_5k):
    return mnist_5k


def run_spec(optimizer_cfg):
    return {"benchmark": "class_incremental", "optimizer": "reg", "optimizer_cfg": optimizer_cfg, "seed": 0,
            "benchmark_cfg": {"epochs_per_task": 1, "batch_size": 128, "pairs": [[0, 1], [2, 3], [4, 5]]},
            "model": {"hidden": [16]},
            "train": {"device": "cpu", "threads": 1, "reset_optimizer": False, "loss_log_every": 5}}


@pytest.mark.parametrize("kind, strength", [("ewc", 100.0), ("si", 100.0)])
def test_a_regularized_run_trains_end_to_end(dataset, tmp_path, kind, strength):
    base = {"type": "sgd", "lr": 0.05}
    plain = train.train_run(run_spec(base), dataset, tmp_path / "plain/metrics.json", tmp_path / "plain/ckpt",
                            progress=False)
    result = train.train_run(run_spec({**base, "regularizer": kind, "regularizer_strength": strength}), dataset,
                             tmp_path / "reg/metrics.json", tmp_path / "reg/ckpt", progress=False)
    assert result["status"] == "ok" and len(result["R"]) == 3
    assert (tmp_path / "reg/metrics.json").is_file()
    first = [torch.load(tmp_path / f"{d}/ckpt/task0.pt", weights_only=True) for d in ("plain", "reg")]
    last = [torch.load(tmp_path / f"{d}/ckpt/task2.pt", weights_only=True) for d in ("plain", "reg")]
    assert all(torch.equal(first[0][k], first[1][k]) for k in first[0])  # no penalty within the first task
    assert any(not torch.equal(last[0][k], last[1][k]) for k in last[0])  # a penalty afterwards
    assert plain["R"][0] == result["R"][0]
