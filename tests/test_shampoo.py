"""Shampoo against answers we know: an independent float64 numpy reference, closed forms, invariants.

The reference below shares no code with optbias.optim.shampoo: it takes matrix roots through
numpy's SVD (not torch's eigh) and is itself checked by X^(1/p) (A + damping I) = I.
"""

from __future__ import annotations

import copy

import numpy as np
import pytest
import torch

from optbias.optim.shampoo import Shampoo

# --------------------------------------------------------------------------- reference (numpy, float64)


def np_inv_root(a: np.ndarray, power: float) -> np.ndarray:
    """a^(-power) for a symmetric positive definite a, via SVD (for SPD, a = U S U^T)."""
    u, s, _ = np.linalg.svd(a)
    return (u * s ** -power) @ u.T


def np_damping(factor: np.ndarray, eps: float, mode: str) -> float:
    return eps * np.linalg.norm(factor, 2) if mode == "relative" else eps  # spectral norm = lambda_max (PSD)


class RefShampoo:
    """Textbook Shampoo without grafting/momentum, written out for one 2-D weight."""

    def __init__(self, w, lr, eps=1e-6, mode="relative", exponent="quarter", statistics="sum", beta2=0.999,
                 update_freq=1):
        self.w, self.lr, self.eps, self.mode = w.copy(), lr, eps, mode
        self.pl, self.pr = {"quarter": (0.25, 0.25), "half_left": (0.5, None), "half_right": (None, 0.5)}[exponent]
        self.statistics, self.beta2, self.k, self.t = statistics, beta2, update_freq, 0
        m, n = w.shape
        self.L, self.R = np.zeros((m, m)), np.zeros((n, n))
        self.Lr, self.Rr = np.eye(m), np.eye(n)

    def direction(self, g: np.ndarray) -> np.ndarray:
        self.t += 1
        if self.statistics == "sum":
            self.L, self.R = self.L + g @ g.T, self.R + g.T @ g
        else:
            b = self.beta2
            self.L, self.R = b * self.L + (1 - b) * g @ g.T, b * self.R + (1 - b) * g.T @ g
        if (self.t - 1) % self.k == 0:
            eye_m, eye_n = np.eye(len(self.L)), np.eye(len(self.R))
            if self.pl:
                self.Lr = np_inv_root(self.L + np_damping(self.L, self.eps, self.mode) * eye_m, self.pl)
            if self.pr:
                self.Rr = np_inv_root(self.R + np_damping(self.R, self.eps, self.mode) * eye_n, self.pr)
        return self.Lr @ g @ self.Rr

    def step(self, g: np.ndarray) -> None:
        self.w -= self.lr * self.direction(g)


def rand(shape, seed, dtype=torch.float64) -> torch.Tensor:
    return torch.randn(*shape, generator=torch.Generator().manual_seed(seed), dtype=dtype)


def manual_step(opt: torch.optim.Optimizer, p: torch.Tensor, g: torch.Tensor) -> None:
    p.grad = g.clone()
    opt.step()


def cosine(a: torch.Tensor | np.ndarray, b: torch.Tensor | np.ndarray) -> float:
    a, b = np.asarray(a).ravel(), np.asarray(b).ravel()
    return float(a @ b / (np.linalg.norm(a) * np.linalg.norm(b)))


# --------------------------------------------------------------------------- (a) the dense formula


@pytest.mark.parametrize("exponent,statistics,mode,update_freq", [
    ("quarter", "sum", "absolute", 1),
    ("quarter", "sum", "relative", 1),
    ("quarter", "ema", "relative", 1),
    ("half_left", "sum", "relative", 1),
    ("half_right", "ema", "absolute", 1),
    ("quarter", "sum", "relative", 3),  # stale roots at steps 2, 3, 5, 6
])
@pytest.mark.parametrize("shape", [(5, 3), (4, 4)])
def test_ungrafted_steps_match_dense_reference(shape, exponent, statistics, mode, update_freq):
    lr, eps = 0.1, 1e-3
    p = torch.nn.Parameter(rand(shape, 0))
    opt = Shampoo([p], lr=lr, grafting="none", exponent=exponent, statistics=statistics, beta2=0.9,
                  epsilon=eps, epsilon_mode=mode, update_freq=update_freq)
    ref = RefShampoo(p.detach().numpy(), lr, eps, mode, exponent, statistics, 0.9, update_freq)
    for t in range(6):
        g = rand(shape, 100 + t)
        manual_step(opt, p, g)
        ref.step(g.numpy())
        np.testing.assert_allclose(p.detach().numpy(), ref.w, rtol=1e-9, atol=1e-11)


# Stated tolerance of root_dtype="float32" against the same float64 reference: float32's eigh has a
# relative backward error of ~1e-7 of lambda_max on these 3x3-5x5 factors; rank-deficient factors
# damped at 1e-3 amplify it (up to ~2e-6 absolute with L^-1/2), so parameters agree to 1e-5 after 6 steps
# (float64 roots: 1e-11). tests/test_shampoo_mnist.py states the tolerance on real MNIST factors.
@pytest.mark.parametrize("exponent,statistics,mode,update_freq", [
    ("quarter", "sum", "absolute", 1),
    ("quarter", "sum", "relative", 1),
    ("half_left", "ema", "relative", 3),
])
def test_float32_roots_match_dense_reference_within_tolerance(exponent, statistics, mode, update_freq):
    lr, eps, shape = 0.1, 1e-3, (5, 3)
    p = torch.nn.Parameter(rand(shape, 0))
    opt = Shampoo([p], lr=lr, grafting="none", exponent=exponent, statistics=statistics, beta2=0.9,
                  epsilon=eps, epsilon_mode=mode, update_freq=update_freq, root_dtype="float32")
    ref = RefShampoo(p.detach().numpy(), lr, eps, mode, exponent, statistics, 0.9, update_freq)
    worst = 0.0
    for t in range(6):
        g = rand(shape, 100 + t)
        manual_step(opt, p, g)
        ref.step(g.numpy())
        np.testing.assert_allclose(p.detach().numpy(), ref.w, rtol=1e-4, atol=1e-5)
        worst = max(worst, float(np.abs(p.detach().numpy() - ref.w).max()))
    assert worst > 1e-12  # the roots really were float32: float64 roots agree to ~1e-15 here
    assert opt.root_retries == 0 and opt.state[p]["L_root"].dtype == torch.float64  # cast back to the factor


def test_failed_float32_root_is_retried_in_float64(monkeypatch):
    real_eigh = torch.linalg.eigh

    def float32_fails(a, *args, **kwargs):
        if a.dtype == torch.float32:
            raise torch.linalg.LinAlgError("simulated: float32 eigh failed to converge")
        return real_eigh(a, *args, **kwargs)

    monkeypatch.setattr(torch.linalg, "eigh", float32_fails)
    results = {}
    for root_dtype in ("float64", "float32"):
        p = torch.nn.Parameter(rand((4, 3), 0))
        opt = Shampoo([p], lr=0.1, grafting="none", update_freq=1, root_dtype=root_dtype)
        for t in range(3):
            manual_step(opt, p, rand((4, 3), 30 + t))
        results[root_dtype] = (p.detach().clone(), opt.diagnostics())
    (p64, d64), (p32, d32) = results["float64"], results["float32"]
    assert torch.equal(p32, p64)  # every float32 root failed, and the float64 retry is the float64 root
    assert d32["root_retries"] == d32["root_computations"] == 6 and d32["root_failures"] == 0
    assert d64["root_retries"] == 0


def test_nonfinite_float32_root_is_retried_and_a_double_failure_keeps_the_last_root(monkeypatch):
    """A float32 root that comes back NaN is redone in float64 (one retry); when the float64 retry
    fails too, the last good root stays and one failure is counted."""
    real_eigh, plan = torch.linalg.eigh, []

    def scripted(a, *args, **kwargs):
        mode = plan.pop(0) if plan else "ok"
        if mode == "nan":
            return torch.full_like(a[0], float("nan")), real_eigh(a)[1]
        if mode == "raise":
            raise torch.linalg.LinAlgError("simulated failure")
        return real_eigh(a, *args, **kwargs)

    monkeypatch.setattr(torch.linalg, "eigh", scripted)
    p = torch.nn.Parameter(rand((4, 3), 0))
    opt = Shampoo([p], lr=0.1, grafting="none", update_freq=1, exponent="half_left", root_dtype="float32")
    plan[:] = ["nan", "ok"]  # step 1: float32 NaN, float64 retry fine
    manual_step(opt, p, rand((4, 3), 40))
    assert (opt.root_computations, opt.root_retries, opt.root_failures) == (1, 1, 0)
    good = opt.state[p]["L_root"].clone()
    assert torch.isfinite(good).all() and not torch.equal(good, torch.eye(4, dtype=torch.float64))
    plan[:] = ["nan", "raise"]  # step 2: both attempts fail
    manual_step(opt, p, rand((4, 3), 41))
    assert (opt.root_computations, opt.root_retries, opt.root_failures) == (2, 2, 1)
    assert torch.equal(opt.state[p]["L_root"], good) and torch.isfinite(p).all()


def test_stale_roots_are_used_between_refreshes():
    """update_freq=3: the root from step 1 serves steps 2-3; step 4 recomputes it from 4 steps of statistics."""
    p = torch.nn.Parameter(rand((4, 3), 0))
    opt = Shampoo([p], lr=0.1, grafting="none", update_freq=3)
    roots = []
    for t in range(4):
        manual_step(opt, p, rand((4, 3), 10 + t))
        roots.append(opt.state[p]["L_root"].clone())
    assert torch.equal(roots[0], roots[1]) and torch.equal(roots[1], roots[2])
    assert not torch.allclose(roots[2], roots[3])
    assert opt.root_computations == 4  # two sides at steps 1 and 4


@pytest.mark.parametrize("exponent,mode", [("quarter", "absolute"), ("quarter", "relative"), ("half_left", "relative")])
def test_stored_roots_invert_the_damped_factor(exponent, mode):
    """The stored root X of a factor F satisfies X^(1/p) (F + damping I) = I: no reference decomposition needed."""
    eps = 1e-4
    p = torch.nn.Parameter(rand((5, 3), 0))
    opt = Shampoo([p], lr=0.01, exponent=exponent, epsilon=eps, epsilon_mode=mode, update_freq=1)
    for t in range(3):
        manual_step(opt, p, rand((5, 3), 20 + t))
    state = opt.state[p]
    times = 4 if exponent == "quarter" else 2
    for side in ("L", "R") if exponent == "quarter" else ("L",):
        f, x = state[side].numpy(), state[f"{side}_root"].numpy()
        damped = f + np_damping(f, eps, mode) * np.eye(len(f))
        np.testing.assert_allclose(np.linalg.matrix_power(x, times) @ damped, np.eye(len(f)), atol=1e-8)
    if exponent == "half_left":
        assert "R" not in state  # the unused side keeps no statistics


def test_float32_params_track_the_float64_reference():
    p = torch.nn.Parameter(rand((5, 3), 0, torch.float32))
    opt = Shampoo([p], lr=0.1, grafting="none", update_freq=1)
    ref = RefShampoo(p.detach().double().numpy(), 0.1)
    for t in range(4):
        g = rand((5, 3), 100 + t, torch.float32)
        manual_step(opt, p, g)
        ref.step(g.double().numpy())
    assert p.dtype == torch.float32 and opt.state[p]["L_root"].dtype == torch.float32
    np.testing.assert_allclose(p.detach().numpy(), ref.w, rtol=1e-4, atol=1e-5)


def adagrad_dirs(grads, eps):
    s = np.zeros_like(grads[0])
    for g in grads:
        s = s + g * g
        yield g / (np.sqrt(s) + eps)


def adam_dirs(grads, eps, b1=0.9, b2=0.999):
    m = v = np.zeros_like(grads[0])
    for t, g in enumerate(grads, 1):
        m, v = b1 * m + (1 - b1) * g, b2 * v + (1 - b2) * g * g
        yield (m / (1 - b1 ** t)) / (np.sqrt(v / (1 - b2 ** t)) + eps)


@pytest.mark.parametrize("grafting", ["adagrad", "sgd", "adam"])
def test_grafting_keeps_shampoo_direction_with_grafted_norm(grafting):
    """Each step is lr * D * |A|_F / |D|_F: Shampoo's direction D, the grafted optimizer's norm |A|_F."""
    lr, eps, shape = 0.05, 1e-8, (5, 3)
    p = torch.nn.Parameter(rand(shape, 0))
    opt = Shampoo([p], lr=lr, grafting=grafting, graft_eps=eps, update_freq=1)
    grads = [rand(shape, 30 + t).numpy() for t in range(4)]
    graft = {"adagrad": adagrad_dirs(grads, eps), "adam": adam_dirs(grads, eps), "sgd": iter(grads)}[grafting]
    ref = RefShampoo(p.detach().numpy(), lr)
    for g, a in zip(grads, graft):
        before = p.detach().clone().numpy()
        manual_step(opt, p, torch.from_numpy(g))
        d = ref.direction(g)
        step = (before - p.detach().numpy()) / lr
        np.testing.assert_allclose(step, d * np.linalg.norm(a) / np.linalg.norm(d), rtol=1e-9, atol=1e-12)
        assert np.linalg.norm(step) == pytest.approx(np.linalg.norm(a), rel=1e-9)


def test_momentum_and_decoupled_weight_decay():
    """p <- p (1 - lr wd) - lr b,  b <- mu b + D (heavy ball on the final direction)."""
    lr, mu, wd = 0.1, 0.9, 0.01
    p = torch.nn.Parameter(rand((4, 3), 0))
    opt = Shampoo([p], lr=lr, momentum=mu, weight_decay=wd, grafting="none", update_freq=1)
    ref, w, buf = RefShampoo(p.detach().numpy(), lr), p.detach().numpy().copy(), 0.0
    for t in range(4):
        g = rand((4, 3), 40 + t)
        manual_step(opt, p, g)
        buf = mu * buf + ref.direction(g.numpy())
        w = w * (1 - lr * wd) - lr * buf
        np.testing.assert_allclose(p.detach().numpy(), w, rtol=1e-9, atol=1e-12)


def test_max_precond_dim_makes_that_side_diagonal():
    """A side above max_precond_dim is preconditioned by (diag(G G^T) + damping)^(-1/4) only."""
    eps = 1e-3
    p = torch.nn.Parameter(rand((5, 3), 0))
    opt = Shampoo([p], lr=1.0, grafting="none", epsilon=eps, max_precond_dim=4, update_freq=1)
    w, l_diag, r = p.detach().numpy().copy(), np.zeros(5), np.zeros((3, 3))
    for t in range(3):
        g = rand((5, 3), 50 + t).numpy()
        manual_step(opt, p, torch.from_numpy(g))
        l_diag, r = l_diag + (g * g).sum(1), r + g.T @ g
        left = (l_diag + eps * l_diag.max()) ** -0.25
        w = w - left[:, None] * g @ np_inv_root(r + np_damping(r, eps, "relative") * np.eye(3), 0.25)
        np.testing.assert_allclose(p.detach().numpy(), w, rtol=1e-9, atol=1e-12)
    assert opt.state[p]["L"].shape == (5,) and opt.state[p]["R"].shape == (3, 3)


# --------------------------------------------------------------------------- (b) closed forms


def test_rank_one_gradient_gives_the_unit_rank_one_direction():
    """One gradient G = u v^T (sum statistics, absolute eps -> 0, no grafting).

    L = G G^T = |v|^2 u u^T has one non-zero eigenvalue |u|^2 |v|^2 with eigenvector u/|u|, and
    R = G^T G = |u|^2 v v^T likewise with v/|v|. G's columns lie in span(u) and its rows in span(v), so
    only those eigenvalues act on G (the null spaces, damped by eps, are never touched):
        L^(-1/4) G R^(-1/4) = (|u|^2|v|^2 + eps)^(-1/4) * |u||v| (u/|u|)(v/|v|)^T * (|u|^2|v|^2 + eps)^(-1/4)
                            -> (u/|u|)(v/|v|)^T      as eps -> 0.
    The step is the rank-one matrix u v^T scaled to unit Frobenius (and spectral) norm, whatever |u||v| is.
    A second gradient c u v^T gives L = (1 + c^2)|v|^2 u u^T, R = (1 + c^2)|u|^2 v v^T, hence the direction
    c / (1 + c^2)^(1/2) * (u/|u|)(v/|v|)^T.
    """
    gen = torch.Generator().manual_seed(1)
    u, v = 3.0 * torch.randn(5, 1, generator=gen, dtype=torch.float64), torch.randn(4, 1, generator=gen,
                                                                                     dtype=torch.float64)
    unit = (u / u.norm()) @ (v / v.norm()).T
    p = torch.nn.Parameter(torch.zeros(5, 4, dtype=torch.float64))
    opt = Shampoo([p], lr=1.0, grafting="none", epsilon=1e-14, epsilon_mode="absolute", update_freq=1)
    manual_step(opt, p, u @ v.T)
    step1 = -p.detach().clone()
    assert cosine(step1, unit) == pytest.approx(1.0, abs=1e-12)
    torch.testing.assert_close(step1, unit, rtol=1e-6, atol=1e-9)
    c = -0.5
    manual_step(opt, p, c * u @ v.T)
    torch.testing.assert_close(-p.detach() - step1, c / (1 + c * c) ** 0.5 * unit, rtol=1e-6, atol=1e-9)


def test_first_step_is_the_polar_factor():
    """For G = U S V^T (full column rank) and eps -> 0: (G G^T)^(-1/4) G (G^T G)^(-1/4) = U S^(1/2) V^T V S^(-1/2) V^T
    = U V^T, the orthogonal polar factor of G (the same step Muon takes). Checked against numpy's SVD."""
    g = rand((5, 3), 7)
    p = torch.nn.Parameter(torch.zeros(5, 3, dtype=torch.float64))
    opt = Shampoo([p], lr=1.0, grafting="none", epsilon=1e-14, epsilon_mode="absolute")
    manual_step(opt, p, g)
    u, _, vt = np.linalg.svd(g.numpy(), full_matrices=False)
    np.testing.assert_allclose(-p.detach().numpy(), u @ vt, atol=1e-6)


# --------------------------------------------------------------------------- non-2-D parameters


def test_non_2d_params_get_diagonal_adagrad():
    lr, eps = 0.1, 1e-8
    bias = torch.nn.Parameter(rand((6,), 0))
    opt = Shampoo([bias], lr=lr, graft_eps=eps)
    w, grads = bias.detach().numpy().copy(), [rand((6,), 60 + t).numpy() for t in range(3)]
    for g, d in zip(grads, adagrad_dirs(grads, eps)):
        manual_step(opt, bias, torch.from_numpy(g))
        w = w - lr * d
        np.testing.assert_allclose(bias.detach().numpy(), w, rtol=1e-12)
    assert set(opt.state[bias]) == {"step", "adagrad_sum"}


def test_non_2d_graft_uses_the_grafted_optimizer():
    bias = torch.nn.Parameter(rand((6,), 0))
    opt = Shampoo([bias], lr=0.1, grafting="sgd", non_2d="graft")
    g, before = rand((6,), 61), bias.detach().clone()
    manual_step(opt, bias, g)
    torch.testing.assert_close(bias.detach(), before - 0.1 * g)


# --------------------------------------------------------------------------- robustness


def mlp_problem(seed: int = 0):
    gen = torch.Generator().manual_seed(seed)
    x = torch.randn(64, 8, generator=gen)
    y = (x[:, :3].sum(1) > 0).long() + (x[:, 3] > 0.5).long()  # 3 classes
    torch.manual_seed(seed)
    model = torch.nn.Sequential(torch.nn.Linear(8, 16), torch.nn.ReLU(), torch.nn.Linear(16, 3))
    return model, x, y


def train(model, opt, x, y, steps: int, check_finite: bool = False) -> list[float]:
    losses = []
    for _ in range(steps):
        opt.zero_grad()
        loss = torch.nn.functional.cross_entropy(model(x), y)
        loss.backward()
        opt.step()
        losses.append(loss.item())
        if check_finite:
            assert all(torch.isfinite(q).all() for q in model.parameters())
    return losses


@pytest.mark.parametrize("options", [{}, {"grafting": "none"},
                                     {"grafting": "none", "exponent": "half_left", "epsilon_mode": "absolute",
                                      "update_freq": 1}])
def test_lr_sweep_never_writes_nonfinite_parameters(options):
    for lr in (1e-3, 1e-2, 1e-1, 1.0, 10.0):
        model, x, y = mlp_problem()
        opt = Shampoo(model.parameters(), lr=lr, **options)
        train(model, opt, x, y, steps=15, check_finite=True)


def test_absurd_lr_diverges_cleanly():
    """lr=1e30 blows the logits up to inf, so the loss and gradients turn NaN; those steps are skipped."""
    model, x, y = mlp_problem()
    opt = Shampoo(model.parameters(), lr=1e30, grafting="none")
    losses = train(model, opt, x, y, steps=4, check_finite=True)
    assert not np.isfinite(losses[-1]) and opt.nonfinite_updates > 0


def test_nonfinite_gradient_or_update_is_skipped_and_counted():
    p = torch.nn.Parameter(rand((4, 3), 0, torch.float32))
    before = p.detach().clone()
    opt = Shampoo([p], lr=0.1)
    g = rand((4, 3), 1, torch.float32)
    g[0, 0] = float("nan")
    manual_step(opt, p, g)  # NaN gradient: statistics and parameter untouched
    assert opt.nonfinite_updates == 1 and opt.state[p] == {} and torch.equal(p.detach(), before)
    opt.param_groups[0]["lr"] = 1e39  # overflows float32: the update would be inf
    manual_step(opt, p, rand((4, 3), 2, torch.float32))
    assert opt.nonfinite_updates == 2 and torch.equal(p.detach(), before)


def test_loss_decreases_on_a_toy_problem():
    model, x, y = mlp_problem()
    losses = train(model, Shampoo(model.parameters(), lr=0.05), x, y, steps=40)
    assert losses[-1] < 0.5 * losses[0]


def test_failed_eigh_keeps_last_root_and_is_counted(monkeypatch):
    real_eigh, calls = torch.linalg.eigh, []

    def flaky_eigh(a, *args, **kwargs):
        calls.append(1)
        if len(calls) == 1:
            raise torch.linalg.LinAlgError("simulated: the algorithm failed to converge")
        if len(calls) == 4:
            return torch.full_like(a[0], float("nan")), real_eigh(a)[1]  # a non-finite result, no exception
        return real_eigh(a, *args, **kwargs)

    monkeypatch.setattr(torch.linalg, "eigh", flaky_eigh)
    p = torch.nn.Parameter(rand((4, 3), 0))
    opt = Shampoo([p], lr=0.1, grafting="none", update_freq=1)
    before, g = p.detach().clone(), rand((4, 3), 1)
    manual_step(opt, p, g)  # L's root fails at step 1: the identity stands in, so the step is G R^(-1/4)
    assert opt.root_failures == 1 and opt.root_computations == 2
    assert torch.equal(opt.state[p]["L_root"], torch.eye(4, dtype=torch.float64))
    r = opt.state[p]["R"].numpy()
    expected = before.numpy() - 0.1 * g.numpy() @ np_inv_root(r + np_damping(r, 1e-6, "relative") * np.eye(3), 0.25)
    np.testing.assert_allclose(p.detach().numpy(), expected, rtol=1e-9)
    manual_step(opt, p, rand((4, 3), 2))  # call 3 fine, call 4 (R) returns NaN: R keeps its step-1 root
    r_root = opt.state[p]["R_root"].clone()
    manual_step(opt, p, rand((4, 3), 3))
    assert opt.root_failures == 2 and opt.root_computations == 6
    assert not torch.equal(r_root, opt.state[p]["R_root"])  # and recovers at the next refresh
    assert torch.isfinite(p).all()


def test_bad_options_raise_naming_the_option():
    p = [torch.nn.Parameter(torch.zeros(2, 2))]
    bad = {"lr": -1.0, "momentum": 1.0, "weight_decay": -0.1, "statistics": "mean", "beta2": 1.5,
           "exponent": "third", "epsilon": 0.0, "epsilon_mode": "scaled", "update_freq": 0, "grafting": "rmsprop",
           "graft_beta1": -0.1, "graft_beta2": 1.0, "graft_eps": -1.0, "non_2d": "sgd", "max_precond_dim": 2.5,
           "root_dtype": "float16"}
    for name, value in bad.items():
        with pytest.raises(ValueError, match=rf"invalid {name}="):
            Shampoo(p, **{name: value})
    with pytest.raises(ValueError, match=r"'sum' or 'ema'"):
        Shampoo(p, statistics="mean")
    with pytest.raises(ValueError, match=r"lr='1e-3'"):  # YAML reads 1e-3 (no dot) as a string
        Shampoo(p, lr="1e-3")
    with pytest.raises(ValueError, match=r"invalid non_2d='graft' with grafting='none'"):
        Shampoo(p, non_2d="graft", grafting="none")
    with pytest.raises(ValueError, match=r"invalid update_freq="):  # per-group overrides are checked too
        Shampoo([{"params": p, "update_freq": -2}])


def test_state_dict_round_trip_continues_identically():
    options = dict(lr=0.05, momentum=0.5, grafting="adam", update_freq=2, statistics="ema")
    model_a, x, y = mlp_problem()
    opt_a = Shampoo(model_a.parameters(), **options)
    train(model_a, opt_a, x, y, steps=3)
    saved = copy.deepcopy(opt_a.state_dict())
    model_b = copy.deepcopy(model_a)
    opt_b = Shampoo(model_b.parameters(), **options)
    opt_b.load_state_dict(saved)
    assert opt_b.root_computations == opt_a.root_computations > 0
    train(model_a, opt_a, x, y, steps=4)
    train(model_b, opt_b, x, y, steps=4)
    for a, b in zip(model_a.parameters(), model_b.parameters()):
        assert torch.equal(a, b)
    keys = {"L", "R", "L_root", "R_root", "graft_m", "graft_v", "momentum_buffer"}
    assert keys <= set(opt_b.state[model_b[0].weight])


def test_deterministic_and_counts_root_work():
    runs = []
    for _ in range(2):
        model, x, y = mlp_problem()
        opt = Shampoo(model.parameters(), lr=0.05, update_freq=5)
        train(model, opt, x, y, steps=11)  # roots at steps 1, 6, 11 for 2 weights x 2 sides
        runs.append([q.detach().clone() for q in model.parameters()])
    assert all(torch.equal(a, b) for a, b in zip(*runs))
    d = opt.diagnostics()
    assert d["root_computations"] == 12 and d["root_failures"] == 0 and d["nonfinite_updates"] == 0
    assert 0 < d["root_time_s"] < 10


@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device")
def test_cuda_matches_cpu():
    results = []
    for device in ("cpu", "cuda"):
        p = torch.nn.Parameter(rand((6, 4), 0).to(device))
        opt = Shampoo([p], lr=0.1, momentum=0.9, update_freq=2)
        for t in range(4):
            manual_step(opt, p, rand((6, 4), 70 + t).to(device))
        assert opt.state[p]["L_root"].device == p.device and opt.root_failures == 0
        results.append(p.detach().cpu())
    torch.testing.assert_close(results[0], results[1], rtol=1e-7, atol=1e-9)


def test_all_finite_agrees_with_the_elementwise_check():
    from optbias.optim.shampoo import all_finite

    big = torch.full((4, 4), 3e38)  # every element finite, but the float32 sum overflows to inf
    assert not torch.isfinite(big.sum()) and all_finite(big)
    assert all_finite(torch.zeros(3)) and all_finite(torch.tensor([-1e38, 1e38]))
    for bad in (float("nan"), float("inf"), float("-inf")):
        x = torch.ones(5)
        x[2] = bad
        assert not all_finite(x)
    x = torch.ones(4)
    x[0], x[1] = float("inf"), float("-inf")  # the sum is NaN
    assert not all_finite(x)
