"""OWM against answers we know: the closed form of its projector, the orthogonality limit, the SGD
limit, a dense float64 numpy reference of whole steps, a resume round trip and bad options."""

from __future__ import annotations

import copy

import numpy as np
import pytest
import torch

from optbias.optim.owm import OWM, alpha_at, rls_update


def mlp(seed: int = 0, dtype: torch.dtype = torch.float64) -> torch.nn.Sequential:
    torch.manual_seed(seed)
    return torch.nn.Sequential(torch.nn.Linear(5, 4), torch.nn.ReLU(), torch.nn.Linear(4, 3)).to(dtype)


def batches(k: int, seed: int = 1, dtype: torch.dtype = torch.float64) -> list[tuple[torch.Tensor, torch.Tensor]]:
    g = torch.Generator().manual_seed(seed)
    return [(torch.randn(6, 5, generator=g, dtype=dtype), torch.randint(0, 3, (6,), generator=g)) for _ in range(k)]


def train(model: torch.nn.Module, opt: torch.optim.Optimizer, data) -> None:
    for x, y in data:
        opt.zero_grad()
        torch.nn.functional.cross_entropy(model(x), y).backward()
        opt.step()


def test_after_k_updates_the_projector_is_the_closed_form():
    """P_K = alpha (sum_i x_i x_i^T + alpha I)^-1 after K rank-1 updates from P_0 = I (OWM, Methods)."""
    rng = np.random.default_rng(0)
    xs, alpha = rng.normal(size=(9, 7)), 0.3
    p = torch.eye(7, dtype=torch.float64)
    for x in xs:
        rls_update(p, torch.from_numpy(x), alpha)
    closed = alpha * np.linalg.inv(xs.T @ xs + alpha * np.eye(7))
    np.testing.assert_allclose(p.numpy(), closed, rtol=0, atol=1e-12)


def test_the_optimizer_keeps_one_projector_per_layer_from_its_mean_inputs_with_the_bias_folded():
    model, data = mlp(), batches(5)
    opt = OWM(model.parameters(), lr=0.05, alpha=0.5)
    opt.attach(model)
    inputs = {0: [], 2: []}  # each layer's batch-mean input, recorded independently with a plain hook
    for i in inputs:
        model[i].register_forward_hook(lambda m, a, o, i=i: inputs[i].append(a[0].detach().mean(0))
                                       if torch.is_grad_enabled() else None)
    train(model, opt, data)
    for i, xs in inputs.items():
        folded = torch.stack([torch.cat([x, x.new_ones(1)]) for x in xs])  # (K, n + 1)
        closed = 0.5 * torch.linalg.inv(folded.T @ folded + 0.5 * torch.eye(folded.shape[1], dtype=torch.float64))
        torch.testing.assert_close(opt.state[model[i].weight]["P"], closed, rtol=0, atol=1e-10)


def test_as_alpha_goes_to_zero_a_step_leaves_the_outputs_on_stored_inputs_unchanged():
    """The projected update of [W | b] is orthogonal to every stored [x; 1]: the layer's response to
    them does not move. Measured on the first layer, whose inputs are the data. For x in the span of
    the stored inputs, P x = alpha (A + alpha I)^-1 x = alpha A^+ x + O(alpha^2): the change is first
    order in alpha, so 100x less alpha gives 100x less change."""
    residual = {}
    for alpha in (1e-2, 1e-4, 1e-6):
        model, data = mlp(), batches(3)
        opt = OWM(model.parameters(), lr=0.5, alpha=alpha)
        opt.attach(model)
        train(model, opt, data[:2])  # store two batch means
        stored = torch.stack([x.mean(0) for x, _ in data[:2]])  # (2, 5)
        before = model[0](stored).detach()
        x, y = data[2]
        opt.zero_grad()
        torch.nn.functional.cross_entropy(model(x), y).backward()
        opt._means.take(model[0].weight)  # project with the stored memory only (not this batch's mean)
        opt.step()
        residual[alpha] = float((model[0](stored).detach() - before).abs().max())
    assert residual[1e-4] / residual[1e-2] == pytest.approx(1e-2, rel=0.1), residual
    assert residual[1e-6] / residual[1e-4] == pytest.approx(1e-2, rel=0.1), residual
    assert residual[1e-6] < 1e-6, residual


def test_a_large_alpha_is_sgd():
    model, data = mlp(), batches(4)
    reference = copy.deepcopy(model)
    opt = OWM(model.parameters(), lr=0.1, alpha=1e12)
    opt.attach(model)
    train(model, opt, data)
    train(reference, torch.optim.SGD(reference.parameters(), lr=0.1), data)
    for p, q in zip(model.parameters(), reference.parameters()):
        torch.testing.assert_close(p, q, rtol=0, atol=1e-9)


def np_owm(weights, data, lr, alpha, momentum):
    """Dense numpy reference of OWM with the bias folded: layer by layer, P updated with the batch
    mean of [x; 1], then [W | b] -= lr * (momentum buffer of [G | g] P). Returns the final weights."""
    w = [(a.copy(), b.copy()) for a, b in weights]
    p = [np.eye(a.shape[1] + 1) for a, _ in w]
    buf = [np.zeros((a.shape[0], a.shape[1] + 1)) for a, _ in w]
    for x, y in data:
        h0 = x @ w[0][0].T + w[0][1]
        h = np.maximum(h0, 0)
        z = h @ w[1][0].T + w[1][1]
        s = np.exp(z - z.max(1, keepdims=True))
        s /= s.sum(1, keepdims=True)
        dz = (s - np.eye(3)[y]) / len(x)
        dh0 = (dz @ w[1][0]) * (h0 > 0)
        grads = [(dh0.T @ x, dh0.sum(0)), (dz.T @ h, dz.sum(0))]
        for i, inp in enumerate((x, h)):
            xm = np.append(inp.mean(0), 1.0)
            k = p[i] @ xm
            p[i] = p[i] - np.outer(k, k) / (alpha + xm @ k)
            d = np.hstack([grads[i][0], grads[i][1][:, None]]) @ p[i]
            buf[i] = momentum * buf[i] + d
            w[i] = (w[i][0] - lr * buf[i][:, :-1], w[i][1] - lr * buf[i][:, -1])
    return w


def test_whole_steps_match_a_dense_numpy_reference():
    model, data = mlp(), batches(6)
    weights = [(model[i].weight.detach().numpy().copy(), model[i].bias.detach().numpy().copy()) for i in (0, 2)]
    opt = OWM(model.parameters(), lr=0.2, alpha=0.7, momentum=0.9)
    opt.attach(model)
    train(model, opt, data)
    expected = np_owm(weights, [(x.numpy(), y.numpy()) for x, y in data], 0.2, 0.7, 0.9)
    for i, (w, b) in zip((0, 2), expected):
        np.testing.assert_allclose(model[i].weight.detach().numpy(), w, rtol=0, atol=1e-10)
        np.testing.assert_allclose(model[i].bias.detach().numpy(), b, rtol=0, atol=1e-10)


def test_unfolded_biases_step_by_sgd_and_the_projector_covers_the_weight_only():
    model = mlp()
    opt = OWM(model.parameters(), lr=0.1, fold_bias=False)
    opt.attach(model)
    bias_before = model[0].bias.detach().clone()
    x, y = batches(1)[0]
    opt.zero_grad()
    torch.nn.functional.cross_entropy(model(x), y).backward()
    grad = model[0].bias.grad.clone()
    opt.step()
    assert opt.state[model[0].weight]["P"].shape == (5, 5)
    torch.testing.assert_close(model[0].bias.detach(), bias_before - 0.1 * grad, rtol=0, atol=1e-12)


def test_the_schedule_decays_alpha_within_each_period_and_restarts():
    group = {"alpha": 1.0, "alpha_final": 1e-4, "schedule_steps": 4}
    assert [round(alpha_at(group, s), 12) for s in (1, 2, 3, 4, 5)] == [1.0, 0.1, 0.01, 0.001, 1.0]
    assert alpha_at({"alpha": 0.3, "alpha_final": None, "schedule_steps": None}, 7) == 0.3


def test_resume_from_a_state_dict_continues_exactly():
    data = batches(8)
    model = mlp()
    opt = OWM(model.parameters(), lr=0.1, alpha=0.2, momentum=0.5, alpha_final=0.01, schedule_steps=3)
    opt.attach(model)
    train(model, opt, data[:4])
    saved_model, saved_opt = copy.deepcopy(model.state_dict()), copy.deepcopy(opt.state_dict())
    train(model, opt, data[4:])

    resumed = mlp(seed=5)
    resumed.load_state_dict(saved_model)
    opt2 = OWM(resumed.parameters(), lr=0.1, alpha=0.2, momentum=0.5, alpha_final=0.01, schedule_steps=3)
    opt2.attach(resumed)
    opt2.load_state_dict(saved_opt)
    train(resumed, opt2, data[4:])
    for p, q in zip(model.parameters(), resumed.parameters()):
        assert torch.equal(p, q)


def test_a_step_without_attach_says_what_to_do():
    model = mlp()
    with pytest.raises(RuntimeError, match=r"attach\(model\)"):
        OWM(model.parameters()).step()


@pytest.mark.parametrize("options, message", [
    ({"alpha": 0}, "invalid alpha=0"),
    ({"alpha": -1.0}, "invalid alpha=-1.0"),
    ({"alpha_final": 0.0, "schedule_steps": 5}, "invalid alpha_final=0.0"),
    ({"alpha_final": 0.1}, "alpha_final and schedule_steps go together"),
    ({"schedule_steps": 0, "alpha_final": 0.1}, "invalid schedule_steps=0"),
    ({"momentum": 1.0}, "invalid momentum=1.0"),
    ({"fold_bias": "yes"}, "invalid fold_bias='yes'"),
])
def test_bad_options_are_named(options, message):
    with pytest.raises(ValueError, match=message):
        OWM(mlp().parameters(), **options)
