"""StackedShampoo (optim/stacked_shampoo.py): S runs' parameters stacked along a leading dimension take,
run by run, the step Shampoo takes on each run's own parameters, for every option.

Declared tolerances (2026-12-01, before the first comparison ran): in float64, after 25 steps with
roots every 3 steps, every run's weights within 1e-10 of its own Shampoo's and the same per-run
counters; a run whose gradient is not finite, or a batched eigh that fails, changes no other run.
The float32 training of the tiny config is tests/test_batched.py's.
"""

from __future__ import annotations

import pytest
import torch

from optbias import optim
from optbias.optim.shampoo import Shampoo, inverse_root
from optbias.optim.stacked_shampoo import StackedShampoo, inverse_roots

SHAPES = [(6, 5), (6,), (3, 6)]  # a weight, a bias, a second weight: one run's parameters
RUNS = 3
OPTIONS = [
    {},  # the defaults: summed statistics, L^-1/4 G R^-1/4, relative damping, adagrad grafting
    {"statistics": "ema", "beta2": 0.9},
    {"exponent": "half_left"},
    {"exponent": "half_right", "epsilon_mode": "absolute", "epsilon": 1e-3},
    {"grafting": "none"},
    {"grafting": "sgd", "non_2d": "graft"},
    {"grafting": "adam", "non_2d": "graft", "momentum": 0.9, "weight_decay": 1e-2},
    {"max_precond_dim": 5},  # the 6-row sides keep only their diagonals
    {"root_dtype": "float32"},
    {"gradient_factors": True},  # no effect on stacked runs (nothing is attached): the dense path
]


def gradients(steps: int, seed: int = 0) -> list[list[torch.Tensor]]:
    """Per step, the stacked gradients (RUNS, *shape) of every parameter; each run its own."""
    gen = torch.Generator().manual_seed(seed)
    return [[torch.randn(RUNS, *shape, generator=gen, dtype=torch.float64) for shape in SHAPES]
            for _ in range(steps)]


def start(seed: int = 1) -> list[torch.Tensor]:
    gen = torch.Generator().manual_seed(seed)
    return [torch.randn(RUNS, *shape, generator=gen, dtype=torch.float64) for shape in SHAPES]


def run_stacked(options: dict, grads: list[list[torch.Tensor]], params: list[torch.Tensor] | None = None,
                opt: StackedShampoo | None = None) -> tuple[list[torch.Tensor], StackedShampoo]:
    params = params if params is not None else [p.clone() for p in start()]
    opt = opt or StackedShampoo(params, lr=0.05, update_freq=3, **options)
    for step in grads:
        for p, g in zip(params, step):
            p.grad = g.clone()
        opt.step()
    return params, opt


def run_one_by_one(options: dict, grads: list[list[torch.Tensor]]) -> tuple[list[list[torch.Tensor]], list[dict]]:
    """Each run's parameters under its own Shampoo: the reference."""
    out, counters = [], []
    for s in range(RUNS):
        params = [p[s].clone() for p in start()]
        opt = Shampoo(params, lr=0.05, update_freq=3, **options)
        for step in grads:
            for p, g in zip(params, step):
                p.grad = g[s].clone()
            opt.step()
        out.append(params)
        counters.append({k: v for k, v in opt.diagnostics().items() if not k.endswith("_s")})
    return out, counters


def assert_runs_match(stacked: list[torch.Tensor], opt: StackedShampoo, reference: list[list[torch.Tensor]],
                      counters: list[dict], rtol: float = 0.0, atol: float = 1e-10) -> None:
    for s in range(RUNS):
        for p, q in zip(stacked, reference[s]):
            assert torch.allclose(p[s], q, rtol=rtol, atol=atol), (s, (p[s] - q).abs().max())
        own = {k: v for k, v in opt.run_diagnostics(s).items() if not k.endswith("_s")}
        assert own == counters[s], s  # the same keys (gradient-factor counters included) and values


@pytest.mark.parametrize("options", OPTIONS, ids=lambda o: ",".join(f"{k}={v}" for k, v in o.items()) or "defaults")
def test_every_run_takes_its_own_shampoo_step_in_float64(options):
    grads = gradients(25)
    stacked, opt = run_stacked(options, grads)
    reference, counters = run_one_by_one(options, grads)
    # float32 roots: a batched float32 eigh and a single one may take different LAPACK kernels (on an
    # Intel Xeon here they differ by 1.9e-8 after 25 steps; on an AMD EPYC they agreed to 1e-10), so
    # the runs agree to float32 rounding (eps 1.2e-7), not to float64's. Every float64 option: 1e-10.
    atol = 1e-6 if options.get("root_dtype") == "float32" else 1e-10
    assert_runs_match(stacked, opt, reference, counters, atol=atol)
    assert opt.run_diagnostics(0)["root_computations"] == counters[0]["root_computations"] > 0
    totals = opt.diagnostics()
    assert totals["root_computations"] == sum(c["root_computations"] for c in counters)


def test_a_run_with_a_non_finite_gradient_skips_its_step_alone():
    """Run 1 gets a NaN gradient at step 4 and an inf one at step 9: Shampoo skips those steps (no
    statistics, no step count); the other runs go on as if nothing happened."""
    grads = gradients(20)
    grads[4][0][1, 2, 3] = float("nan")
    grads[9][1][1, 0] = float("inf")
    options = {"grafting": "adam", "non_2d": "graft", "momentum": 0.5}
    stacked, opt = run_stacked(options, grads)
    reference, counters = run_one_by_one(options, grads)
    assert_runs_match(stacked, opt, reference, counters)
    assert [opt.run_diagnostics(s)["nonfinite_updates"] for s in range(RUNS)] == [0, 2, 0]


def test_a_failed_batched_eigh_is_redone_run_by_run(monkeypatch):
    """A batched eigh that raises (as LAPACK does when one run's factor will not converge) is redone
    one run at a time through Shampoo's own root code; every run ends where its own Shampoo does."""
    real = torch.linalg.eigh
    calls = {"batched": 0}

    def eigh(a, *args, **kwargs):
        if a.ndim == 3:
            calls["batched"] += 1
            raise torch.linalg.LinAlgError("batched eigh failed (test)")
        return real(a, *args, **kwargs)

    monkeypatch.setattr(torch.linalg, "eigh", eigh)
    grads = gradients(10)
    stacked, opt = run_stacked({}, grads)
    monkeypatch.setattr(torch.linalg, "eigh", real)
    reference, counters = run_one_by_one({}, grads)
    assert calls["batched"] > 0
    assert_runs_match(stacked, opt, reference, counters)


def test_a_non_finite_batched_root_is_redone_for_that_run_alone(monkeypatch):
    """A batched eigh that returns NaN for run 1 (and finite results for the others) makes run 1's
    root non-finite: only run 1's root is redone (Shampoo's own code), and every run still ends
    where its own Shampoo does."""
    real = torch.linalg.eigh
    redone = {"one": 0}

    def eigh(a, *args, **kwargs):
        values, vectors = real(a, *args, **kwargs)
        if a.ndim == 3:
            vectors = vectors.clone()
            vectors[1] = float("nan")
        else:
            redone["one"] += 1
        return values, vectors

    monkeypatch.setattr(torch.linalg, "eigh", eigh)
    grads = gradients(10)
    stacked, opt = run_stacked({}, grads)
    monkeypatch.setattr(torch.linalg, "eigh", real)
    reference, counters = run_one_by_one({}, grads)
    assert redone["one"] == counters[1]["root_computations"] > 0  # run 1's roots only, one by one
    assert_runs_match(stacked, opt, reference, counters)


@pytest.mark.parametrize("options", [{}, {"grafting": "none"}, {"max_precond_dim": 5}],
                         ids=["defaults", "no-grafting", "diagonal-sides"])
def test_a_factor_that_overflows_fails_its_root_as_in_shampoo(options):
    """One huge but finite gradient entry (1e160, run 1, step 4) overflows run 1's factors to inf:
    eigh gives NaN eigenvalues (the CPU does not raise), so the relative damping is NaN. Shampoo
    counts a failed root and keeps the last good one; so must the stacked run, not take the identity.
    (Found by review: a NaN damping once selected the identity meant for zero damping.) Without
    grafting, run 1's weights reach ~1e158, so they are compared to 1e-10 relative there."""
    grads = gradients(12)
    grads[4][0][1, 2, 3] = 1e160
    stacked, opt = run_stacked(options, grads)
    reference, counters = run_one_by_one(options, grads)
    assert counters[1]["root_failures"] > 0 and counters[0]["root_failures"] == 0
    assert_runs_match(stacked, opt, reference, counters, rtol=1e-10)


def test_adam_grafting_in_float32_rounds_as_shampoo_does():
    """Adam grafting's bias corrections 1 - beta^t are Python floats in Shampoo, rounded once to
    float32; the stacked runs compute them in float64 and round once too. On biases (non_2d: graft,
    element-wise, no matmul to round differently) five float32 steps then agree to float32 rounding,
    not to the ~1e-5 relative error of 1 - 0.999 formed in float32. (Found by review.)"""
    gen = torch.Generator().manual_seed(5)
    grads = [torch.randn(RUNS, 7, generator=gen) for _ in range(5)]
    start32 = torch.randn(RUNS, 7, generator=gen)
    options = {"grafting": "adam", "non_2d": "graft"}
    stacked = start32.clone()
    opt = StackedShampoo([stacked], lr=0.05, **options)
    for g in grads:
        stacked.grad = g.clone()
        opt.step()
    for s in range(RUNS):
        own = start32[s].clone()
        ref = Shampoo([own], lr=0.05, **options)
        for g in grads:
            own.grad = g[s].clone()
            ref.step()
        assert torch.allclose(stacked[s], own, rtol=2e-7, atol=0), (s, ((stacked[s] - own) / own).abs().max())


def test_state_dict_round_trip_continues_exactly():
    grads = gradients(16)
    options = {"grafting": "adam", "non_2d": "graft", "momentum": 0.9}
    whole, whole_opt = run_stacked(options, grads)
    half, half_opt = run_stacked(options, grads[:7])
    saved = half_opt.state_dict()
    params = [p.clone() for p in half]
    resumed = StackedShampoo(params, lr=0.05, update_freq=3, **options)
    resumed.load_state_dict(saved)
    run_stacked(options, grads[7:], params, resumed)
    for p, q in zip(whole, params):
        assert torch.equal(p, q)
    assert resumed.run_diagnostics(2) == {**whole_opt.run_diagnostics(2), "root_time_s": resumed.run_diagnostics(2)["root_time_s"]}


def test_batched_roots_equal_the_one_by_one_roots():
    gen = torch.Generator().manual_seed(3)
    a = torch.randn(4, 7, 7, generator=gen, dtype=torch.float64)
    factors = a @ a.transpose(1, 2)
    factors[2] = 0  # nothing observed yet: relative damping gives the identity
    for mode in ("relative", "absolute"):
        roots = inverse_roots(factors, 0.25, 1e-4, mode, torch.float64)
        for s in range(4):
            assert torch.allclose(roots[s], inverse_root(factors[s], 0.25, 1e-4, mode), rtol=0, atol=1e-12)
    diagonals = factors.diagonal(dim1=1, dim2=2)
    roots = inverse_roots(diagonals, 0.5, 1e-4, "relative", torch.float64)
    for s in range(4):
        assert torch.allclose(roots[s], inverse_root(diagonals[s], 0.5, 1e-4, "relative"), rtol=0, atol=1e-12)
    assert torch.equal(roots[2], torch.ones(7, dtype=torch.float64))


def test_the_registry_builds_the_stacked_class_for_stacked_runs_only():
    params = start()
    entry = {"type": "shampoo", "lr": 0.03}
    assert type(optim.build(entry, params, stacked=True)) is StackedShampoo
    assert type(optim.build(entry, [p[0].clone() for p in params])) is Shampoo
    assert type(optim.build({"type": "adamw", "lr": 1e-3}, params, stacked=True)) is torch.optim.AdamW
    assert optim.BATCHABLE == {"sgd", "adam", "adamw", "adagrad", "shampoo"}  # the element-wise types and Shampoo
    with pytest.raises(ValueError, match="'soap' cannot step stacked runs"):
        optim.build({"type": "soap", "lr": 1e-3}, params, stacked=True)
    with pytest.raises(ValueError, match="same leading run dimension"):
        StackedShampoo([torch.zeros(2, 3, 3), torch.zeros(3, 3)], lr=0.1)
