"""Powerprop as a reparameterization and as an optimizer on w: the derivation, checked.

The central check (claim 7 of PAPER.md) is an *order of convergence*: training the
reparameterized model with SGD/Adam and the plain model with the derived optimizer, from the
same w and on the same batches, the gap between the two after K steps, relative to the distance
travelled, must shrink like η (slope ≈ 1 in log–log), as the first-order derivation predicts.
"""

from __future__ import annotations

import copy
import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from optbias.models import MLP
from optbias.optim.powerprop import PowerpropAdam, PowerpropSGD, powerprop_jacobian, powerprop_preconditioner
from optbias.powerprop.reparam import PowerProp, effective_weights, powerprop_reparametrize, to_plain_state_dict

SGD_LRS = [1e-2, 5e-3, 2.5e-3, 1.25e-3]
ADAM_LRS = [1e-3, 5e-4, 2.5e-4, 1.25e-4]  # Adam moves every weight by ~lr, so smaller steps
STEPS = 8


def _mlp(seed: int = 0, dtype: torch.dtype = torch.float64) -> MLP:
    torch.manual_seed(seed)
    return MLP(in_features=20, hidden=(16, 16), num_classes=4).to(dtype)


def _batches(k: int = STEPS, seed: int = 100) -> list[tuple[torch.Tensor, torch.Tensor]]:
    gen = torch.Generator().manual_seed(seed)
    return [(torch.randn(32, 20, generator=gen, dtype=torch.float64), torch.randint(0, 4, (32,), generator=gen))
            for _ in range(k)]


def _train(model: nn.Module, opt: torch.optim.Optimizer, batches) -> None:
    for x, y in batches:
        opt.zero_grad()
        F.cross_entropy(model(x), y).backward()
        opt.step()


def _flat(model: nn.Module) -> torch.Tensor:
    """All effective params, in a key order independent of parametrization."""
    sd = to_plain_state_dict(model)
    return torch.cat([sd[k].flatten() for k in sorted(sd)])


def _relative_gap(alpha: float, lr: float, make_ref, make_pp) -> float:
    """||w_reparam − w_precond|| / ||w_reparam − w_0|| after STEPS steps from the same w_0."""
    base = _mlp()
    w0 = _flat(base)
    reparam = powerprop_reparametrize(copy.deepcopy(base), alpha)
    plain = copy.deepcopy(base)
    batches = _batches()
    _train(reparam, make_ref(reparam.parameters(), lr), batches)
    _train(plain, make_pp(plain.parameters(), lr), batches)
    w_ref, w_pp = _flat(reparam), _flat(plain)
    return ((w_ref - w_pp).norm() / (w_ref - w0).norm()).item()


def _order(lrs: list[float], gaps: list[float]) -> float:
    return float(np.polyfit(np.log(lrs), np.log(gaps), 1)[0])


# --------------------------------------------------------------------------- the derivation
@pytest.mark.parametrize("alpha", [1.0, 1.5, 2.0, 3.0])
def test_dw_dv_matches_finite_differences(alpha):
    gen = torch.Generator().manual_seed(0)
    v = torch.randn(200, generator=gen, dtype=torch.float64)
    v = v[v.abs() > 1e-2]  # central differences need |v| > h
    f, h = PowerProp(alpha), 1e-6
    fd = (f(v + h) - f(v - h)) / (2 * h)
    analytic = alpha * v.abs().pow(alpha - 1)
    torch.testing.assert_close(fd, analytic, rtol=1e-7, atol=1e-9)
    # the same derivative written in terms of w (what the optimizers use)
    torch.testing.assert_close(powerprop_jacobian(f(v), alpha), analytic, rtol=1e-12, atol=0.0)
    # forward is v·|v|^(α−1) and right_inverse really inverts it
    torch.testing.assert_close(f(v), v * v.abs().pow(alpha - 1), rtol=1e-14, atol=0.0)
    torch.testing.assert_close(f.right_inverse(f(v)), v, rtol=1e-14, atol=0.0)


@pytest.mark.parametrize("alpha", [1.0, 1.5, 2.0, 3.0])
def test_preconditioner_is_squared_jacobian(alpha):
    w = torch.linspace(-2, 2, 101, dtype=torch.float64)
    v = PowerProp(alpha).right_inverse(w)
    dw_dv = alpha * v.abs().pow(alpha - 1)
    torch.testing.assert_close(powerprop_preconditioner(w, alpha), dw_dv.square(), rtol=1e-12, atol=1e-15)


def test_autograd_is_finite_at_zero_weights():
    """v·|v|^(α−1) written literally has a 0·∞ gradient at v = 0 for 1 < α < 2."""
    v = torch.zeros(3, dtype=torch.float64, requires_grad=True)
    PowerProp(1.5)(v).sum().backward()
    assert torch.equal(v.grad, torch.zeros(3, dtype=torch.float64))


# --------------------------------------------------------------------------- reparameterization
@pytest.mark.parametrize("alpha", [1.0, 1.5, 2.0, 3.0])
def test_reparam_starts_from_the_same_weights_and_function(alpha):
    model = _mlp(dtype=torch.float32)
    before = effective_weights(model)
    x = torch.randn(64, 20)
    out_before = model(x)
    powerprop_reparametrize(model, alpha)
    after = effective_weights(model)
    assert before.keys() == after.keys() == {"hidden_layers.0.weight", "hidden_layers.1.weight", "head.weight"}
    for key in before:
        torch.testing.assert_close(after[key], before[key], rtol=0.0, atol=1e-7)
    torch.testing.assert_close(model(x), out_before, rtol=1e-6, atol=1e-6)
    if alpha == 1.0:  # α = 1 is the plain model, bit for bit
        assert all(torch.equal(after[k], before[k]) for k in before)
        assert torch.equal(model(x), out_before)


def test_reparam_touches_only_linear_weights():
    model = powerprop_reparametrize(_mlp(), 2.0)
    names = {n for n, _ in model.named_parameters()}
    assert names == {f"{m}.{t}" for m in ("hidden_layers.0", "hidden_layers.1", "head")
                     for t in ("bias", "parametrizations.weight.original")}
    with pytest.raises(ValueError, match="already"):
        powerprop_reparametrize(model, 2.0)


def test_to_plain_state_dict_loads_into_plain_mlp():
    model = powerprop_reparametrize(_mlp(), 2.0)
    _train(model, torch.optim.SGD(model.parameters(), lr=0.1), _batches(3))  # move v off its init
    sd = to_plain_state_dict(model)
    plain = MLP(in_features=20, hidden=(16, 16), num_classes=4).double()
    assert sd.keys() == plain.state_dict().keys()
    plain.load_state_dict(sd, strict=True)
    x = torch.randn(64, 20, dtype=torch.float64)
    assert torch.equal(plain(x), model(x))
    # it is a snapshot, not a view of the trained model
    sd["head.weight"].zero_()
    assert model.head.weight.abs().sum() > 0


# --------------------------------------------------------------------------- α = 1 is plain
@pytest.mark.parametrize("weight_decay", [0.0, 0.1])
def test_alpha_one_sgd_is_exactly_sgd(weight_decay):
    batches = _batches()
    ref, ours, rep = _mlp(), _mlp(), powerprop_reparametrize(_mlp(), 1.0)
    _train(ref, torch.optim.SGD(ref.parameters(), lr=0.05, weight_decay=weight_decay), batches)
    _train(ours, PowerpropSGD(ours.parameters(), lr=0.05, alpha=1.0, weight_decay=weight_decay), batches)
    _train(rep, torch.optim.SGD(rep.parameters(), lr=0.05, weight_decay=weight_decay), batches)
    assert (_flat(ours) - _flat(ref)).abs().max() <= 1e-12
    assert (_flat(rep) - _flat(ref)).abs().max() <= 1e-12


def test_alpha_one_adam_is_exactly_adam():
    batches = _batches()
    ref, ours = _mlp(), _mlp()
    _train(ref, torch.optim.Adam(ref.parameters(), lr=1e-2, weight_decay=0.01), batches)
    _train(ours, PowerpropAdam(ours.parameters(), lr=1e-2, alpha=1.0, weight_decay=0.01), batches)
    assert (_flat(ours) - _flat(ref)).abs().max() <= 1e-12


# --------------------------------------------------------------------------- order of equivalence
@pytest.mark.parametrize(("alpha", "weight_decay"), [(2.0, 0.0), (3.0, 0.0), (2.0, 0.1)])
def test_sgd_on_v_matches_powerprop_sgd_to_first_order(alpha, weight_decay):
    gaps = [_relative_gap(
        alpha, lr,
        lambda p, lr: torch.optim.SGD(p, lr=lr, weight_decay=weight_decay),
        lambda p, lr: PowerpropSGD(p, lr=lr, alpha=alpha, weight_decay=weight_decay),
    ) for lr in SGD_LRS]
    slope = _order(SGD_LRS, gaps)
    print(f"SGD alpha={alpha} wd={weight_decay}: gaps={gaps} slope={slope:.3f}")
    assert all(a > b for a, b in zip(gaps, gaps[1:])), gaps
    assert 0.8 <= slope <= 1.2, (slope, gaps)
    assert gaps[-1] < 1e-3, gaps


@pytest.mark.parametrize(("alpha", "weight_decay"), [(2.0, 0.0), (3.0, 0.0), (2.0, 0.1)])
def test_adam_on_v_matches_powerprop_adam_to_first_order(alpha, weight_decay):
    gaps = [_relative_gap(
        alpha, lr,
        lambda p, lr: torch.optim.Adam(p, lr=lr, weight_decay=weight_decay),
        lambda p, lr: PowerpropAdam(p, lr=lr, alpha=alpha, weight_decay=weight_decay),
    ) for lr in ADAM_LRS]
    slope = _order(ADAM_LRS, gaps)
    print(f"Adam alpha={alpha} wd={weight_decay}: gaps={gaps} slope={slope:.3f}")
    assert all(a > b for a, b in zip(gaps, gaps[1:])), gaps
    assert 0.8 <= slope <= 1.2, (slope, gaps)
    assert gaps[-1] < 1e-3, gaps


def test_order_check_rejects_a_wrong_optimizer():
    """The check has teeth: the α = 3 rule does not track SGD on an α = 2 reparameterization."""
    gaps = [_relative_gap(2.0, lr, lambda p, lr: torch.optim.SGD(p, lr=lr),
                          lambda p, lr: PowerpropSGD(p, lr=lr, alpha=3.0)) for lr in SGD_LRS]
    assert abs(_order(SGD_LRS, gaps)) < 0.2 and min(gaps) > 0.1, gaps


# --------------------------------------------------------------------------- sparsity mechanism
def test_small_weights_get_vanishing_updates():
    # α = 2: preconditioner α²|w|^(2−2/α) = 4|w|; weights 1e-4 and 1, same gradient 1, lr 0.1
    w = nn.Parameter(torch.tensor([[1e-4, 1.0]], dtype=torch.float64))
    w.grad = torch.ones_like(w)
    PowerpropSGD([w], lr=0.1, alpha=2.0).step()
    delta = w.detach() - torch.tensor([[1e-4, 1.0]], dtype=torch.float64)
    torch.testing.assert_close(delta, torch.tensor([[-4e-5, -0.4]], dtype=torch.float64), rtol=1e-12, atol=0.0)
    assert math.isclose(delta[0, 0] / delta[0, 1], 1e-4, rel_tol=1e-10)
    # a bias (1-D) with the same gradient gets the plain step −lr·g, whatever its size
    b = nn.Parameter(torch.tensor([1e-4, 1.0], dtype=torch.float64))
    b.grad = torch.ones_like(b)
    PowerpropSGD([b], lr=0.1, alpha=2.0).step()
    torch.testing.assert_close(b.detach(), torch.tensor([1e-4 - 0.1, 0.9], dtype=torch.float64))
    # a zero weight never moves under α > 1, and the Adam form agrees
    z = nn.Parameter(torch.zeros(2, 2, dtype=torch.float64))
    z.grad = torch.ones_like(z)
    PowerpropAdam([z], lr=0.1, alpha=2.0).step()
    assert torch.equal(z.detach(), torch.zeros(2, 2, dtype=torch.float64))


# --------------------------------------------------------------------------- validation
@pytest.mark.parametrize("alpha", [0.5, 0.0, -1.0, float("nan"), float("inf"), "two", None])
def test_bad_alpha_raises(alpha):
    p = [nn.Parameter(torch.zeros(2, 2))]
    with pytest.raises(ValueError, match="alpha"):
        powerprop_reparametrize(_mlp(), alpha)
    with pytest.raises(ValueError, match="alpha"):
        PowerProp(alpha)
    with pytest.raises(ValueError, match="alpha"):
        PowerpropSGD(p, lr=0.1, alpha=alpha)
    with pytest.raises(ValueError, match="alpha"):
        PowerpropAdam(p, lr=0.1, alpha=alpha)
    with pytest.raises(ValueError, match="alpha"):
        PowerpropSGD([{"params": p, "alpha": alpha}], lr=0.1, alpha=2.0)
    opt = PowerpropAdam(p, lr=0.1, alpha=2.0)
    with pytest.raises(ValueError, match="alpha"):
        opt.add_param_group({"params": [nn.Parameter(torch.zeros(2))], "alpha": alpha})


@pytest.mark.parametrize(("kwargs", "match"), [
    (dict(lr=-0.1), "learning rate"), (dict(lr=float("nan")), "learning rate"),
    (dict(weight_decay=-1.0), "weight_decay"),
    (dict(betas=(0.9, 1.0)), "betas"), (dict(betas=(-0.1, 0.9)), "betas"), (dict(betas=(0.9,)), "betas"),
    (dict(eps=-1e-8), "eps"),
])
def test_bad_optimizer_options_raise(kwargs, match):
    p = [nn.Parameter(torch.zeros(2, 2))]
    options = dict(lr=0.1, alpha=2.0) | kwargs
    with pytest.raises(ValueError, match=match):
        PowerpropAdam(p, **options)
    if not {"betas", "eps"} & kwargs.keys():
        with pytest.raises(ValueError, match=match):
            PowerpropSGD(p, **options)
