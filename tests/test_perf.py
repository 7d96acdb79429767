"""The cost benchmark's FLOP counts on hand-computed cases, and one tiny run of the report."""

import pytest

from optbias.optim import perf


def test_flop_counts_match_hand_computation():
    # 784 -> 10, one weight W (10 x 784): L = G G^T (10x10), R = G^T G (784x784).
    m, n = 10, 784
    stats = 2 * (m * m * n + n * n * m)
    precond = 2 * (m * m * n + m * n * n)
    assert perf.shampoo_flops_per_step([]) == stats + precond
    assert perf.model_flops_per_step([], batch=64) == 6 * 64 * m * n
    assert perf.model_flops_per_step([5], batch=2) == 6 * 2 * (784 * 5 + 5 * 10)


def test_report_prints_ratios_from_one_run():
    out = perf.report(hidden=[8], batch=4, steps=2, threads=1, peak_n=128)
    assert out["shampoo_over_adamw"] == pytest.approx(out["shampoo_step_ms"] / out["adamw_step_ms"])
    assert 0 <= out["root_fraction"] <= 1
    assert out["flop_lower_bound_ratio"] > 1 and out["matmul_peak_gflops"] > 0
