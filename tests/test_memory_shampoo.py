"""Memory Shampoo against what it must reduce to (Shampoo at p = 0, OWM at p = 1 without Shampoo's
factors), the closed form of its memory, the damping of visited input directions, a resume round
trip, the registry, and bad options."""

from __future__ import annotations

import copy

import pytest
import torch

from optbias.optim import registry
from optbias.optim.memory_shampoo import MemoryShampoo
from optbias.optim.owm import OWM
from optbias.optim.shampoo import Shampoo


def mlp(seed: int = 0, bias: bool = True) -> torch.nn.Sequential:
    torch.manual_seed(seed)
    return torch.nn.Sequential(torch.nn.Linear(6, 5, bias=bias), torch.nn.ReLU(),
                               torch.nn.Linear(5, 3, bias=bias)).double()


def batches(k: int, seed: int = 1) -> list[tuple[torch.Tensor, torch.Tensor]]:
    g = torch.Generator().manual_seed(seed)
    return [(torch.randn(4, 6, generator=g, dtype=torch.float64), torch.randint(0, 3, (4,), generator=g))
            for _ in range(k)]


def train(model: torch.nn.Module, opt: torch.optim.Optimizer, data) -> None:
    for x, y in data:
        opt.zero_grad()
        torch.nn.functional.cross_entropy(model(x), y).backward()
        opt.step()


def built(model: torch.nn.Module, cls: type, **options) -> torch.optim.Optimizer:
    opt = cls(model.parameters(), **options)
    if hasattr(opt, "attach"):
        opt.attach(model)
    return opt


@pytest.mark.parametrize("options", [{}, {"grafting": "adam", "momentum": 0.5, "update_freq": 3},
                                     {"exponent": "half_left", "epsilon_mode": "absolute", "epsilon": 1e-3}])
def test_at_power_zero_it_is_shampoo_bit_for_bit(options):
    data = batches(7)
    a, b = mlp(), mlp()
    train(a, built(a, MemoryShampoo, lr=0.05, memory_power=0, **options), data)
    train(b, built(b, Shampoo, lr=0.05, **options), data)
    for p, q in zip(a.parameters(), b.parameters()):
        assert torch.equal(p, q)


def test_at_power_one_without_shampoo_factors_or_grafting_it_is_owm():
    data = batches(7)
    a, b = mlp(bias=False), mlp(bias=False)
    train(a, built(a, MemoryShampoo, lr=0.3, memory_power=1, memory_alpha=0.4, shampoo_factors=False,
                   grafting="none", update_freq=1), data)
    train(b, built(b, OWM, lr=0.3, alpha=0.4), data)
    for p, q in zip(a.parameters(), b.parameters()):
        torch.testing.assert_close(p, q, rtol=0, atol=1e-10)


def test_the_memory_is_the_sum_of_batch_mean_inputs_and_its_root_the_closed_form():
    data, power, alpha = batches(5), 0.5, 0.2
    model = mlp()
    opt = built(model, MemoryShampoo, lr=0.01, memory_power=power, memory_alpha=alpha, update_freq=1)
    train(model, opt, data)
    means = torch.stack([x.mean(0) for x, _ in data])  # the first layer's inputs are the data
    s = means.T @ means
    torch.testing.assert_close(opt.state[model[0].weight]["memory"], s, rtol=0, atol=1e-12)
    values, vectors = torch.linalg.eigh(s)
    closed = (vectors * (alpha / (values.clamp_min(0) + alpha)) ** power) @ vectors.T
    torch.testing.assert_close(opt.state[model[0].weight]["memory_root"], closed, rtol=0, atol=1e-10)


def test_a_visited_input_direction_is_damped_by_the_knob_and_an_unvisited_one_is_not():
    """With one stored input direction u (|u| = 1) seen K times at scale c, M u = (alpha / (K c^2 + alpha))^p u
    and M v = v for v orthogonal to u."""
    model = torch.nn.Linear(3, 2, bias=False).double()
    opt = MemoryShampoo(model.parameters(), lr=0.0, memory_power=0.5, memory_alpha=1.0, update_freq=1)
    opt.attach(model)
    x = torch.tensor([[3.0, 0.0, 0.0]], dtype=torch.float64)  # u = e1, c = 3
    for _ in range(4):
        opt.zero_grad()
        model(x).sum().backward()
        opt.step()
    root = opt.state[model.weight]["memory_root"]
    assert float(root[0, 0]) == pytest.approx((1.0 / (4 * 9.0 + 1.0)) ** 0.5, rel=1e-12)
    torch.testing.assert_close(root[1:, 1:], torch.eye(2, dtype=torch.float64))


def test_reset_preconditioner_keeps_the_memory():
    model = mlp()
    opt = built(model, MemoryShampoo, lr=0.01, update_freq=1)
    train(model, opt, batches(3))
    memory = opt.state[model[0].weight]["memory"].clone()
    opt.reset_preconditioner()
    assert "L" not in opt.state[model[0].weight]
    assert torch.equal(opt.state[model[0].weight]["memory"], memory)


def test_resume_from_a_state_dict_continues_exactly():
    data = batches(9)
    model = mlp()
    opt = built(model, MemoryShampoo, lr=0.05, memory_power=0.75, update_freq=2)
    train(model, opt, data[:5])
    saved_model, saved_opt = copy.deepcopy(model.state_dict()), copy.deepcopy(opt.state_dict())
    train(model, opt, data[5:])
    resumed = mlp(seed=3)
    resumed.load_state_dict(saved_model)
    opt2 = built(resumed, MemoryShampoo, lr=0.05, memory_power=0.75, update_freq=2)
    opt2.load_state_dict(saved_opt)
    train(resumed, opt2, data[5:])
    for p, q in zip(model.parameters(), resumed.parameters()):
        assert torch.equal(p, q)


def test_the_registry_builds_both_new_types_attached_to_the_model():
    model = mlp()
    for entry in ({"type": "owm", "lr": 0.1, "alpha": 0.5}, {"type": "memory_shampoo", "lr": 0.01}):
        opt = registry.build(entry, model.parameters(), model=model)
        train(model, opt, batches(2))  # would raise without attach
    with pytest.raises(registry.OptimizerConfigError, match="does not take alpha"):
        registry.check("m", {"type": "memory_shampoo", "alpha": 1.0})


def test_a_step_without_attach_says_what_to_do():
    model = mlp()
    opt = MemoryShampoo(model.parameters())
    with pytest.raises(RuntimeError, match=r"attach\(model\)"):
        train(model, opt, batches(1))


@pytest.mark.parametrize("options, message", [
    ({"memory_power": -0.1}, "invalid memory_power=-0.1"),
    ({"memory_power": 1.5}, "invalid memory_power=1.5"),
    ({"memory_alpha": 0}, "invalid memory_alpha=0"),
    ({"shampoo_factors": 1}, "invalid shampoo_factors=1"),
    ({"exponent": "third"}, "invalid exponent='third'"),  # Shampoo's own options are still checked
])
def test_bad_options_are_named(options, message):
    with pytest.raises(ValueError, match=message):
        MemoryShampoo(mlp().parameters(), **options)


@pytest.mark.parametrize("root_dtype, bound", [("float64", 1e-6), ("float32", 0.03)])  # float64: float32 storage
def test_the_memory_root_of_mnist_inputs_is_within_its_dtypes_error_of_the_solve(mnist_5k, root_dtype, bound):
    """M = alpha (S + alpha I)^-1 at p = 1 (the configured knob), S summed from the batch-mean inputs of
    a permuted-length run (50 epochs of 62 batches of 64 training digits: 3,100 rank-1 terms,
    pixels in [0, 1], lambda_max ~ 1e5), against a float64 solve. The float32 eigendecomposition
    (the configured ``root_dtype``) loses about eps * lambda_max / alpha: 1.5% of M's Frobenius norm
    here, 0.7% after 1,250 steps; a float64 root is exact up to its float32 storage, as in a run."""
    x = torch.load(mnist_5k, weights_only=True)["x_train"].reshape(-1, 784).to(torch.float64) / 255.0
    g = torch.Generator().manual_seed(0)
    means = torch.cat([x[torch.randperm(len(x), generator=g)[:62 * 64]].reshape(62, 64, 784).mean(1) for _ in range(50)])
    memory = means.T @ means  # (784, 784)
    assert len(means) == 3100 and float(torch.linalg.eigvalsh(memory).max()) > 5e4
    state = {"memory": memory.to(torch.float32), "memory_root": torch.eye(784)}
    opt = MemoryShampoo(mlp().parameters(), memory_power=1.0, memory_alpha=1.0, root_dtype=root_dtype)
    opt._refresh_memory(state, 1.0, opt.param_groups[0])
    exact = torch.linalg.solve(state["memory"].double() + torch.eye(784, dtype=torch.float64),
                               torch.eye(784, dtype=torch.float64))
    error = float((state["memory_root"].double() - exact).norm() / exact.norm())
    assert opt.root_failures == 0 and error < bound, error
