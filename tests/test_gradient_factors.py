"""Shampoo's statistics and direction from a linear layer's gradient factors (optim/gradient_factors.py):
the capture gives D and X with D^T X = the weight's gradient, the check rejects anything else, and
Shampoo with ``gradient_factors`` on follows the dense float64 reference (tests/test_shampoo.py's
RefShampoo) to 1e-9 and its own dense path in float32 to a stated tolerance."""

from __future__ import annotations

import copy

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from optbias import optim
from optbias.optim.gradient_factors import GradientFactors, factored_cost, matches, sign_probe
from optbias.optim.shampoo import Shampoo
from test_shampoo import RefShampoo


def linear_problem(batch: int = 4, m: int = 10, n: int = 12, seed: int = 0, dtype=torch.float64):
    """One bias-free linear layer (m x n) on a fixed batch: batch < m, n, so the factored path pays
    (factored_cost(10, 12, 4) = (5280, 3376))."""
    gen = torch.Generator().manual_seed(seed)
    x = torch.randn(batch, n, generator=gen, dtype=dtype)
    y = torch.randn(batch, m, generator=gen, dtype=dtype)
    torch.manual_seed(seed)
    layer = torch.nn.Linear(n, m, bias=False).to(dtype)
    return layer, x, y


def test_captured_factors_multiply_to_the_gradient():
    layer, x, y = linear_problem()
    capture = GradientFactors(layer)
    loss = ((layer(x) - y) ** 2).sum()
    loss.backward()
    d, xs = capture.take(layer.weight)
    assert d.shape == (4, 10) and xs.shape == (4, 12)
    torch.testing.assert_close(d.T @ xs, layer.weight.grad, rtol=1e-12, atol=1e-12)
    assert torch.equal(xs, x)
    assert capture.take(layer.weight) is None, "take forgets what it returned"


def test_two_passes_before_a_step_stack_to_the_accumulated_gradient():
    layer, x, y = linear_problem()
    capture = GradientFactors(layer)
    for part in (slice(0, 2), slice(2, 4)):  # gradient accumulation over two half batches
        ((layer(x[part]) - y[part]) ** 2).sum().backward()
    d, xs = capture.take(layer.weight)
    assert d.shape == (4, 10)
    torch.testing.assert_close(d.T @ xs, layer.weight.grad, rtol=1e-12, atol=1e-12)


def test_passes_without_gradients_or_without_backward_are_not_used():
    layer, x, y = linear_problem()
    capture = GradientFactors(layer)
    with torch.no_grad():
        layer(x)  # evaluation
    assert capture.take(layer.weight) is None
    layer(x)  # a forward whose backward never runs: incomplete record
    assert capture.take(layer.weight) is None
    capture.close()
    ((layer(x) - y) ** 2).sum().backward()
    assert capture.take(layer.weight) is None, "close() removes the hooks"


def test_the_check_accepts_the_gradient_and_rejects_a_changed_one():
    layer, x, y = linear_problem(dtype=torch.float32)
    capture = GradientFactors(layer)
    ((layer(x) - y) ** 2).sum().backward()
    d, xs = capture.take(layer.weight)
    grad, probe = layer.weight.grad, sign_probe(12, torch.float32, torch.device("cpu"))
    assert set(probe.tolist()) <= {-1.0, 1.0} and torch.equal(probe, sign_probe(12, torch.float32, probe.device))
    assert matches(grad, d, xs, probe)
    assert not matches(0.99 * grad, d, xs, probe), "a clipped (rescaled) gradient"
    assert not matches(grad + 0.01 * layer.weight.detach(), d, xs, probe), "an L2 term in the loss"
    assert not matches(grad, d[:2], xs[:2], probe), "a missed pass"
    assert not matches(grad, d, xs[:, :8], probe), "wrong shapes"
    assert not matches(grad.double(), d.double(), xs.double(), probe), "factors of another dtype (autocast)"


def test_the_check_accepts_the_subnormal_gradients_of_a_large_step(tmp_path):
    """The learning-rate sweep's Shampoo at lr 0.3 (mnist-5k, class-incremental, seed 1000, batch 64,
    784-256-256-10) drives some units' output gradients to ~1e-44, float32 subnormals. Products of
    those err by the subnormals' spacing, and BLAS kernels may flush them to zero, so a bound
    relative to the terms alone rejected factors that were exactly the gradient (at 3 epochs per task,
    82 of 360 updates; those inspected had D^T X == grad bit for bit). The check's absolute term
    accepts them; without it this test fails."""
    from optbias import data
    from optbias.continual import train as continual_train

    dataset = tmp_path / "mnist-5k.pt"
    data.fetch("mnist-5k", dataset, {})
    spec = {"benchmark": "class_incremental", "benchmark_cfg": {"batch_size": 64, "epochs_per_task": 1},
            "model": {"hidden": [256, 256]}, "optimizer": "shampoo", "seed": 1000,
            "optimizer_cfg": {"type": "shampoo", "lr": 0.3, "root_dtype": "float32", "gradient_factors": True},
            "train": {"device": "cpu", "threads": 1, "reset_optimizer": False, "loss_log_every": 10,
                      "on_divergence": "record", "validation_fraction": 0.1}}
    counters = continual_train.train_run(spec, dataset, progress=False)["optimizer_diagnostics"]
    assert counters["factored_updates"] > 100 and counters["factor_mismatches"] == 0, counters


def test_factored_cost_counts_multiply_adds():
    # m = n = 2, b = 1, both sides: dense 2*4*2 + 2*4*2 = 32; factored 2*1*4 + 2*4 + 2*4 + 4 + 4 + 2*4 = 40
    assert factored_cost(2, 2, 1) == (32, 40)
    # one side (half_left): dense 2 m^2 n; factored b^2(m+n) + 2bm^2 + mnb + mn + 2b(m+n)
    m, n, b = 3, 5, 2
    assert factored_cost(m, n, b, right=False) == (2 * m * m * n, b * b * 8 + 2 * b * 9 + 30 + 15 + 2 * b * 8)
    dense, factored = factored_cost(256, 784, 64)  # the default MLP's first layer at batch 64
    assert dense == 2 * 256 * 784 * 1040 and 3.5 < dense / factored < 4.5


@pytest.mark.parametrize("exponent,statistics,update_freq", [
    ("quarter", "sum", 1), ("quarter", "ema", 3), ("half_left", "sum", 2), ("half_right", "sum", 1)])
def test_factored_steps_match_the_dense_float64_reference(exponent, statistics, update_freq):
    layer, x, y = linear_problem()
    ref = RefShampoo(layer.weight.detach().numpy(), lr=0.1, exponent=exponent, statistics=statistics,
                     update_freq=update_freq)
    opt = optim.build({"type": "shampoo", "lr": 0.1, "grafting": "none", "exponent": exponent,
                       "statistics": statistics, "update_freq": update_freq, "gradient_factors": True},
                      layer.parameters(), model=layer)
    for _ in range(6):
        opt.zero_grad()
        ((layer(x) - y) ** 2).sum().backward()
        ref.step(layer.weight.grad.numpy().copy())
        opt.step()
    np.testing.assert_allclose(layer.weight.detach().numpy(), ref.w, rtol=1e-9, atol=1e-9)
    assert opt.diagnostics()["factored_updates"] == 6 and opt.diagnostics()["factor_mismatches"] == 0


def mlp(seed: int = 0) -> tuple[torch.nn.Module, torch.Tensor, torch.Tensor]:
    gen = torch.Generator().manual_seed(seed)
    x, y = torch.randn(16, 40, generator=gen), torch.randint(0, 5, (16,), generator=gen)
    torch.manual_seed(seed)
    model = torch.nn.Sequential(torch.nn.Linear(40, 32), torch.nn.ReLU(), torch.nn.Linear(32, 5))
    return model, x, y


def train(model, opt, x, y, steps: int, extra=None) -> None:
    for _ in range(steps):
        opt.zero_grad()
        loss = F.cross_entropy(model(x), y) + (extra(model) if extra else 0)
        loss.backward()
        opt.step()


def grafted_run(factored: bool, dtype: torch.dtype, steps: int = 30) -> tuple[list[torch.Tensor], dict]:
    """The grafted default (adagrad grafting, relative damping, biases by Adagrad) on the small MLP,
    batch 16 < widths 40 and 32, roots every 5 steps in ``dtype``; the parameters in float64."""
    model, x, y = mlp()
    model, x = model.to(dtype), x.to(dtype)
    entry = {"type": "shampoo", "lr": 0.03, "update_freq": 5, "gradient_factors": factored,
             "root_dtype": "float64" if dtype == torch.float64 else "float32"}
    opt = optim.build(entry, model.parameters(), model=model)
    train(model, opt, x, y, steps)
    return [p.detach().double() for p in model.parameters()], opt.diagnostics()


def distance(a: list[torch.Tensor], b: list[torch.Tensor]) -> float:
    """The largest relative Frobenius distance between matching parameters."""
    return max(float((p - q).norm() / p.norm()) for p, q in zip(a, b))


def test_factored_training_equals_the_dense_path_in_float64_and_adds_no_float32_error():
    """Stated tolerances, after 30 grafted steps: in float64 the factored run equals the dense one to
    1e-10 (the same algorithm); in float32, where the roots of the weakest directions carry rounding
    of the order of the damping (shampoo.py, root_dtype), the factored run is no farther from the
    float64 run than 2x the dense float32 run is, and within 2% (measured: 0.2% against 1%)."""
    reference, _ = grafted_run(False, torch.float64)
    factored64, counters = grafted_run(True, torch.float64)
    assert distance(reference, factored64) <= 1e-10
    assert counters["factored_updates"] == 30 and counters["factor_mismatches"] == 0  # 40x32 only: 32x5 is cheaper dense
    dense32, counters32 = grafted_run(False, torch.float32)
    factored32, _ = grafted_run(True, torch.float32)
    assert distance(reference, factored32) <= min(2 * distance(reference, dense32), 0.02)
    assert "factored_updates" not in counters32


def test_a_gradient_that_is_not_the_product_takes_the_dense_path_bit_for_bit():
    """An L2 penalty in the loss adds to the weight's gradient: the check rejects the factors, every
    update is the dense one (identical to gradient_factors off) and is counted."""
    l2 = lambda model: 1e-2 * sum((p ** 2).sum() for p in model.parameters())  # noqa: E731
    states = []
    for factored in (False, True):
        model, x, y = mlp()
        opt = optim.build({"type": "shampoo", "lr": 0.03, "gradient_factors": factored}, model.parameters(),
                          model=model)
        train(model, opt, x, y, 5, extra=l2)
        states.append([p.detach().clone() for p in model.parameters()])
    assert all(torch.equal(a, b) for a, b in zip(*states))
    assert opt.diagnostics()["factor_mismatches"] == 5 and opt.diagnostics()["factored_updates"] == 0


def hook_counts(model: torch.nn.Module) -> list[int]:
    return [len(m._forward_hooks) for m in model.modules() if isinstance(m, torch.nn.Linear)]


def test_without_attach_the_option_does_nothing_and_replaced_optimizers_leave_no_hooks():
    model, x, y = mlp()
    opt = Shampoo(model.parameters(), lr=0.03, gradient_factors=True)  # never attached
    train(model, opt, x, y, 2)
    assert opt.diagnostics()["factored_updates"] == 0 and hook_counts(model) == [0, 0]
    for _ in range(3):  # a reset optimizer (train.reset_optimizer) is rebuilt on the same model
        opt = optim.build({"type": "shampoo", "lr": 0.03, "gradient_factors": True}, model.parameters(),
                          model=model)  # the replaced one is freed at once (no reference cycle): no gc here
    assert hook_counts(model) == [1, 1]
    train(model, opt, x, y, 1)
    assert opt.diagnostics()["factored_updates"] == 1
    opt.close()
    assert hook_counts(model) == [0, 0]
    train(model, opt, x, y, 1)  # goes on from the dense gradient
    assert opt.diagnostics()["factored_updates"] == 1


def factored_run(model, x, y, **options) -> Shampoo:
    opt = optim.build({"type": "shampoo", "lr": 0.03, "gradient_factors": True, **options}, model.parameters(),
                      model=model)
    train(model, opt, x, y, 3)
    return opt


def test_a_diagonal_side_takes_the_dense_path_unless_that_side_is_unused():
    model, x, y = mlp()
    opt = factored_run(model, x, y, max_precond_dim=35)  # the 40x32 layer's 40-wide side is diagonal
    assert opt.diagnostics()["factored_updates"] == 0
    model, x, y = mlp()
    opt = factored_run(model, x, y, max_precond_dim=35, exponent="half_left")  # only the 32-wide side is used
    assert opt.diagnostics()["factored_updates"] == 3


def test_three_dimensional_inputs_shared_weights_and_repeated_calls_stack_their_rows():
    layer, x, y = linear_problem()
    capture = GradientFactors(layer)
    seq = x.reshape(2, 2, 12)  # (batch, sequence, features): nn.Linear acts on the last dimension
    (layer(seq) ** 2).sum().backward()  # one call
    ((layer(x[:1]) - y[:1]) ** 2).sum().backward()  # a second call before the step
    d, xs = capture.take(layer.weight)
    assert d.shape == (5, 10) and xs.shape == (5, 12)
    torch.testing.assert_close(d.T @ xs, layer.weight.grad, rtol=1e-12, atol=1e-12)
    shared = torch.nn.Linear(12, 10, bias=False).double()
    shared.weight = layer.weight  # two modules, one weight
    pair = torch.nn.Sequential(layer, torch.nn.Tanh(), torch.nn.Linear(10, 12, bias=False).double(), shared)
    layer.weight.grad = None
    capture = GradientFactors(pair)
    (pair(x) ** 2).sum().backward()
    d, xs = capture.take(layer.weight)
    assert d.shape == (8, 10)
    torch.testing.assert_close(d.T @ xs, layer.weight.grad, rtol=1e-12, atol=1e-12)


def test_stale_or_dropped_passes_never_reach_a_step(monkeypatch):
    """zero_grad forgets passes whose gradient it discards; a skipped non-finite step forgets its
    passes; more than MAX_RECORDS passes before one step fall back to the dense path (counted)."""
    from optbias.optim import gradient_factors

    MAX_RECORDS = 2
    monkeypatch.setattr(gradient_factors, "MAX_RECORDS", MAX_RECORDS)
    model, x, y = mlp()
    opt = factored_run(model, x, y)
    F.cross_entropy(model(x), y).backward()  # a pass whose gradient is then discarded
    train(model, opt, x, y, 1)  # zero_grad, forward, backward, step
    loss = F.cross_entropy(model(x), y) * float("nan")  # a blown-up loss: the step is skipped
    opt.zero_grad()
    loss.backward()
    opt.step()
    assert opt.diagnostics()["nonfinite_updates"] > 0
    train(model, opt, x, y, 1)
    counters = opt.diagnostics()
    assert counters["factored_updates"] == 5 and counters["factor_mismatches"] == 0, counters
    opt.zero_grad()
    for k in range(MAX_RECORDS + 1):  # accumulation over more passes (of 4 rows: factored is cheaper) than are kept
        F.cross_entropy(model(x[4 * k:4 * k + 4]), y[4 * k:4 * k + 4]).backward()
    opt.step()
    assert opt.diagnostics()["factor_mismatches"] == 1


def test_factor_counters_survive_a_state_dict_and_the_loaded_groups_decide_the_hooks():
    model, x, y = mlp()
    opt = factored_run(model, x, y)
    saved = copy.deepcopy(opt.state_dict())
    assert saved["diagnostics"]["factored_updates"] == 3
    fresh = optim.build({"type": "shampoo", "lr": 0.03, "gradient_factors": True}, model.parameters(), model=model)
    fresh.load_state_dict(saved)
    assert fresh.diagnostics()["factored_updates"] == 3 and hook_counts(model) == [2, 2]  # opt's and fresh's
    opt.close()
    for group in saved["param_groups"]:
        group["gradient_factors"] = False
    fresh.load_state_dict(saved)
    assert hook_counts(model) == [0, 0]


def test_the_option_is_validated():
    with pytest.raises(ValueError, match="invalid gradient_factors='yes'; allowed: true or false"):
        Shampoo([torch.zeros(2, 2, requires_grad=True)], gradient_factors="yes")
