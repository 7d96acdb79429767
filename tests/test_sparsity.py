"""Sparsity measures on hand-computed state_dicts (optbias.powerprop.sparsity)."""

from __future__ import annotations

import pytest
import torch

from optbias.powerprop import sparsity


def _sd() -> dict[str, torch.Tensor]:
    # 8 weights: |w| = 4, 0.003, 2, 0.001 | 1, 0.5, 0.0039, 3; biases are never touched
    return {
        "a.weight": torch.tensor([[4.0, -0.003], [2.0, 0.001]]),
        "a.bias": torch.tensor([0.0001, -5.0]),
        "b.weight": torch.tensor([[-1.0, 0.5, 0.0039, -3.0]]),
        "b.bias": torch.tensor([0.0]),
    }


def test_prunable_keys_and_magnitudes():
    sd = _sd()
    assert sparsity.prunable_keys(sd) == ["a.weight", "b.weight"]
    m = sparsity.weight_magnitudes(sd)
    assert m.dtype == torch.float64
    torch.testing.assert_close(m, torch.tensor([4, 0.003, 2, 0.001, 1, 0.5, 0.0039, 3], dtype=torch.float64))
    with pytest.raises(ValueError, match="ndim >= 2"):
        sparsity.weight_magnitudes({"bias": torch.zeros(3)})


def test_fraction_below_is_relative_to_the_global_max():
    m = sparsity.weight_magnitudes(_sd())
    # 1e-3 x max = 0.004: 0.003, 0.001 and 0.0039 are below -> 3 of 8
    assert sparsity.fraction_below(m, 1e-3) == 3 / 8
    # strict: |w| = 0.004 exactly is not below 0.004
    assert sparsity.fraction_below(torch.tensor([4.0, 0.004]), 1e-3) == 0.0
    # scale-free
    assert sparsity.fraction_below(1000 * m, 1e-3) == 3 / 8
    # 0.25 x 4 = 1: 0.003, 0.001, 0.5, 0.0039 -> 4 of 8
    assert sparsity.fraction_below(m, 0.25) == 0.5
    assert sparsity.fraction_below(torch.zeros(4)) == 1.0
    with pytest.raises(ValueError):
        sparsity.fraction_below(torch.zeros(0))


def test_global_prune_zeroes_the_smallest_across_layers():
    sd = _sd()
    # 50% of 8 = 4 smallest: 0.001, 0.003, 0.0039, 0.5 (two in a, two in b)
    pruned = sparsity.global_magnitude_prune(sd, 0.5)
    assert torch.equal(pruned["a.weight"], torch.tensor([[4.0, 0.0], [2.0, 0.0]]))
    assert torch.equal(pruned["b.weight"], torch.tensor([[-1.0, 0.0, 0.0, -3.0]]))
    assert torch.equal(pruned["a.bias"], sd["a.bias"]) and torch.equal(pruned["b.bias"], sd["b.bias"])
    # the input is not modified
    assert sd["a.weight"][0, 1] == -0.003
    # 0% is a copy, 100% zeroes every weight; round(0.2 x 8) = 2 smallest
    assert all(torch.equal(a, b) for a, b in zip(sparsity.global_magnitude_prune(sd, 0.0).values(), sd.values()))
    assert all(v.abs().sum() == 0 for k, v in sparsity.global_magnitude_prune(sd, 1.0).items() if k.endswith("weight"))
    two = sparsity.global_magnitude_prune(sd, 0.2)
    assert torch.equal(two["a.weight"], torch.tensor([[4.0, 0.0], [2.0, 0.0]]))
    assert torch.equal(two["b.weight"], sd["b.weight"])
    with pytest.raises(ValueError, match="fraction"):
        sparsity.global_magnitude_prune(sd, 1.5)


def test_global_prune_breaks_ties_by_position():
    sd = {"w": torch.tensor([[1.0, -1.0, 1.0, 2.0]])}
    # 2 of the three |w| = 1 go, the first two in order
    assert torch.equal(sparsity.global_magnitude_prune(sd, 0.5)["w"], torch.tensor([[0.0, 0.0, 1.0, 2.0]]))


def test_log10_histogram_bins_by_decade():
    m = torch.tensor([0.0, 1e-9, 0.002, 0.005, 0.05, 0.5, 1.0, 20.0], dtype=torch.float64)
    h = sparsity.log10_histogram(m, low=-3, high=0, bins=3)
    assert h["edges_log10"] == [-3.0, -2.0, -1.0, 0.0]
    # [-3,-2): 0.002 and 0.005; [-2,-1): 0.05; [-1,0]: 0.5 and 1.0 (the last bin is closed)
    assert h["counts"] == [2, 1, 2]
    assert h["underflow"] == 2 and h["overflow"] == 1  # 0 and 1e-9 below; 20 above
    assert sum(h["counts"]) + h["underflow"] + h["overflow"] == m.numel()
