"""Hand-computed checks of the representation probes (optbias.probes.measures)."""

from __future__ import annotations

import math

import pytest
import torch

from optbias.probes.measures import (
    activation_sparsity,
    class_mean_cosine_similarity,
    dead_units,
    effective_rank,
    erank_of_spectrum,
    gram_singular_values,
    linear_probe_accuracy,
    mean_off_diagonal,
    rank_measures,
    srank,
    srank_of_spectrum,
)


def _rotation(n: int, seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    q, _ = torch.linalg.qr(torch.randn(n, n, generator=g, dtype=torch.float64))
    return q


# --- effective rank -------------------------------------------------------------------------


@pytest.mark.parametrize("n", [1, 2, 5, 17])
def test_effective_rank_of_identity_is_n(n):
    assert effective_rank(torch.eye(n)) == pytest.approx(n, abs=1e-9)


def test_effective_rank_of_rank_one_matrix_is_one():
    u = torch.tensor([1.0, -2.0, 3.0, 0.5])
    v = torch.tensor([2.0, 0.0, 1.0])
    assert effective_rank(torch.outer(u, v)) == pytest.approx(1.0, abs=1e-9)


def test_effective_rank_of_diag_3_1_by_hand():
    # sigma = (3, 1), p = (0.75, 0.25): no softmax, just sigma / sum(sigma).
    expected = math.exp(-(0.75 * math.log(0.75) + 0.25 * math.log(0.25)))
    assert effective_rank(torch.diag(torch.tensor([3.0, 1.0]))) == pytest.approx(expected, abs=1e-12)
    # A softmax over sigma would give exp(H(softmax(3, 1))) instead; make sure we are not that.
    q = torch.softmax(torch.tensor([3.0, 1.0], dtype=torch.float64), 0)
    softmax_value = math.exp(-float((q * q.log()).sum()))
    assert abs(effective_rank(torch.diag(torch.tensor([3.0, 1.0]))) - softmax_value) > 0.1


def test_effective_rank_is_invariant_to_scale_and_rotation():
    g = torch.Generator().manual_seed(1)
    scales = torch.tensor([5.0, 3, 2, 1, 0.5, 0.1], dtype=torch.float64)
    x = torch.randn(30, 6, generator=g, dtype=torch.float64) * scales
    base = effective_rank(x)
    assert 1.0 < base < 6.0
    assert effective_rank(1e-3 * x) == pytest.approx(base, rel=1e-10)
    assert effective_rank(1e4 * x) == pytest.approx(base, rel=1e-10)
    assert effective_rank(x @ _rotation(6)) == pytest.approx(base, rel=1e-10)  # rotate features
    assert effective_rank(_rotation(30, seed=2) @ x) == pytest.approx(base, rel=1e-10)  # rotate samples


def test_effective_rank_center_removes_a_shared_offset():
    # Rows are c + a_i * v: an offset shared by all samples plus rank-1 variation.  Uncentred the
    # matrix has rank 2 (c and v are independent); centring removes c and leaves rank 1.
    # (float64: in float32 the rounding of x itself would leave ~1e-7 of a second direction.)
    c = torch.tensor([4.0, 1.0, -2.0, 0.0], dtype=torch.float64)
    v = torch.tensor([0.0, 1.0, 1.0, 3.0], dtype=torch.float64)
    a = torch.tensor([-1.5, 0.2, 0.7, 2.0, -0.4], dtype=torch.float64)
    x = c + a[:, None] * v
    assert effective_rank(x) > 1.05
    assert effective_rank(x, center=True) == pytest.approx(1.0, abs=1e-9)
    assert srank(x, center=True) == 1


def test_effective_rank_of_zero_matrix_is_zero():
    assert effective_rank(torch.zeros(4, 3)) == 0.0
    assert effective_rank(torch.ones(5, 3), center=True) == 0.0  # a constant matrix centres to 0
    assert srank(torch.zeros(4, 3)) == 0


def test_effective_rank_rejects_non_matrices():
    with pytest.raises(ValueError):
        effective_rank(torch.ones(3))


# --- srank ----------------------------------------------------------------------------------


def test_srank_on_constructed_spectra():
    assert srank(torch.eye(4), delta=0.01) == 4
    assert srank(torch.diag(torch.tensor([98.0, 1.0])), delta=0.01) == 2  # 98/99 = 0.9899 < 0.99
    assert srank(torch.diag(torch.tensor([100.0, 1.0])), delta=0.01) == 1  # 100/101 = 0.9901 >= 0.99
    assert srank(torch.diag(torch.tensor([1000.0, 1.0])), delta=0.01) == 1  # 1000/1001 >= 0.99
    assert srank(torch.diag(torch.tensor([1000.0, 1.0])), delta=0.0) == 2  # delta 0: everything


def test_srank_at_the_exact_boundary():
    # 99 / (99 + 1) = 0.99 exactly: the top singular value alone suffices.
    assert srank(torch.diag(torch.tensor([99.0, 1.0])), delta=0.01) == 1
    # 0.7 + 0.5 = 0.8 * 1.5 in real arithmetic, but in float64 0.7 + 0.5 < 0.8 * 1.5 by one ulp;
    # the tolerance must still give k = 2, not 3.
    s = torch.tensor([0.7, 0.5, 0.3], dtype=torch.float64)
    assert float(s[:2].sum()) < 0.8 * float(s.sum())  # the naive comparison would fail
    assert srank(torch.diag(s), delta=0.2) == 2
    # Just above the boundary in real arithmetic it is 3.
    assert srank(torch.diag(s), delta=0.19) == 3


def test_srank_is_rotation_invariant_and_validates_delta():
    x = torch.diag(torch.tensor([5.0, 3.0, 1.0, 0.01], dtype=torch.float64))
    assert srank(_rotation(4) @ x @ _rotation(4, seed=3)) == srank(x) == 3
    with pytest.raises(ValueError):
        srank(x, delta=1.0)


# --- class-mean cosine similarity -----------------------------------------------------------


def test_cosine_similarity_of_orthogonal_class_means():
    feats = torch.eye(3).repeat_interleave(2, dim=0) * 2.0  # two samples per class, class c on e_c
    labels = torch.tensor([0, 0, 1, 1, 2, 2])
    sim = class_mean_cosine_similarity(feats, labels, num_classes=3)
    assert torch.allclose(sim, torch.eye(3, dtype=torch.float64), atol=1e-12)
    assert mean_off_diagonal(sim) == pytest.approx(0.0, abs=1e-12)


def test_cosine_similarity_identical_and_opposite_means():
    # Class 0 mean = (1, 1), class 1 mean = (2, 2) (same direction), class 2 mean = (-1, -1).
    feats = torch.tensor([[0.0, 2.0], [2.0, 0.0], [2.0, 2.0], [-1.0, -1.0]])
    labels = torch.tensor([0, 0, 1, 2])
    sim = class_mean_cosine_similarity(feats, labels, num_classes=3)
    expected = torch.tensor([[1.0, 1.0, -1.0], [1.0, 1.0, -1.0], [-1.0, -1.0, 1.0]], dtype=torch.float64)
    assert torch.allclose(sim, expected, atol=1e-12)


def test_cosine_similarity_missing_and_zero_classes_are_nan():
    # Class 1 has no samples; class 2's mean is exactly zero ((1, 0) and (-1, 0) cancel).
    feats = torch.tensor([[1.0, 0.0], [0.0, 1.0], [1.0, 0.0], [-1.0, 0.0]])
    labels = torch.tensor([0, 3, 2, 2])
    sim = class_mean_cosine_similarity(feats, labels, num_classes=4)
    assert sim.shape == (4, 4)
    for c in (1, 2):
        assert torch.isnan(sim[c]).all() and torch.isnan(sim[:, c]).all()
    assert sim[0, 0] == pytest.approx(1.0) and sim[3, 3] == pytest.approx(1.0)
    assert sim[0, 3] == pytest.approx(0.0, abs=1e-12)
    assert mean_off_diagonal(sim) == pytest.approx(0.0, abs=1e-12)  # only (0,3) and (3,0) remain


def test_mean_off_diagonal_by_hand():
    m = torch.tensor([[1.0, 0.2, 0.4], [0.6, 1.0, float("nan")], [0.8, 0.0, 1.0]])
    # Off-diagonal, NaN dropped: 0.2, 0.4, 0.6, 0.8, 0.0 -> 2.0 / 5 = 0.4
    assert mean_off_diagonal(m) == pytest.approx(0.4)
    assert mean_off_diagonal(torch.tensor([[1.0, -0.5], [0.3, 1.0]])) == pytest.approx(-0.1)


# --- linear probe ---------------------------------------------------------------------------


def _clusters(n_per_class: int, classes, dim: int, seed: int, spread: float = 0.3):
    """Gaussian blobs around 10 class centres that are fixed per dim; seed draws the noise."""
    centres = 3.0 * torch.randn(10, dim, generator=torch.Generator().manual_seed(1234))
    g = torch.Generator().manual_seed(seed)
    y = torch.tensor(classes).repeat_interleave(n_per_class)
    x = centres[y] + spread * torch.randn(len(y), dim, generator=g)
    return x, y


def test_linear_probe_separable_features_score_100_percent():
    xtr, ytr = _clusters(40, range(10), dim=20, seed=0)
    xte, yte = _clusters(20, range(10), dim=20, seed=1)
    out = linear_probe_accuracy(xtr, ytr, xte, yte)
    assert out["accuracy"] == 1.0
    assert out["val_accuracy"] == 1.0
    assert out["lambda"] in (1e-3, 1e-2, 1e-1, 1.0, 10.0, 100.0)


def test_linear_probe_dual_form_when_fewer_samples_than_features():
    # n = 60 < d = 200 takes the kernel path; the data are still separable.
    xtr, ytr = _clusters(6, range(10), dim=200, seed=0)
    xte, yte = _clusters(10, range(10), dim=200, seed=1)
    assert linear_probe_accuracy(xtr, ytr, xte, yte)["accuracy"] == 1.0


def test_linear_probe_random_labels_score_near_chance():
    g = torch.Generator().manual_seed(5)
    x = torch.randn(2500, 20, generator=g)
    y = torch.randint(0, 10, (2500,), generator=g)  # independent of x
    out = linear_probe_accuracy(x[:2000], y[:2000], x[2000:], y[2000:])
    assert 0.05 <= out["accuracy"] <= 0.2


def test_linear_probe_is_deterministic():
    g = torch.Generator().manual_seed(7)
    x = torch.randn(300, 15, generator=g)
    y = torch.randint(0, 10, (300,), generator=g)
    a = linear_probe_accuracy(x[:200], y[:200], x[200:], y[200:], seed=3)
    b = linear_probe_accuracy(x[:200], y[:200], x[200:], y[200:], seed=3)
    assert a == b
    assert set(a) == {"accuracy", "lambda", "val_accuracy"}
    assert all(type(v) is float for v in a.values())


def test_linear_probe_two_class_task_predicts_only_seen_classes():
    # A class-incremental task: only digits 4 and 5, overlapping enough to make errors.
    xtr, ytr = _clusters(50, [4, 5], dim=8, seed=0, spread=6.0)
    xte, yte = _clusters(50, [4, 5], dim=8, seed=1, spread=6.0)
    out = linear_probe_accuracy(xtr, ytr, xte, yte, num_classes=10)
    assert 0.6 < out["accuracy"] < 1.0
    # Black-box check of "predicts only 4 or 5": label every test point 4, then every one 5.
    # The two accuracies are the shares predicted 4 and predicted 5; they sum to 1 iff no
    # prediction falls on one of the eight classes absent from training.
    a4 = linear_probe_accuracy(xtr, ytr, xte, torch.full_like(yte, 4))["accuracy"]
    a5 = linear_probe_accuracy(xtr, ytr, xte, torch.full_like(yte, 5))["accuracy"]
    assert 0.0 < a4 < 1.0 and 0.0 < a5 < 1.0
    assert a4 + a5 == pytest.approx(1.0, abs=1e-12)


def test_probe_scoring_masks_classes_unseen_in_training():
    # With an unshrunk bias, ridge scores of the seen classes sum to 1 and unseen classes score
    # 0, so the fitted probe never prefers an unseen class; the mask makes that a guarantee.
    # Check the mask itself with scores that do favour an unseen class (class 0).
    from optbias.probes.measures import _accuracy

    x = torch.zeros(2, 3, dtype=torch.float64)
    w = torch.zeros(3, 3, dtype=torch.float64)
    b = torch.tensor([5.0, 1.0, 2.0], dtype=torch.float64)
    fit = (torch.zeros(3), torch.ones(3), w, b)
    seen = torch.tensor([False, True, True])
    assert _accuracy(fit, seen, x, torch.tensor([2, 2])) == 1.0  # class 2 wins among {1, 2}
    assert _accuracy(fit, torch.ones(3, dtype=torch.bool), x, torch.tensor([2, 2])) == 0.0  # unmasked: 0


def test_linear_probe_rejects_bad_labels():
    x = torch.randn(20, 3)
    with pytest.raises(ValueError):
        linear_probe_accuracy(x, torch.full((20,), 10), x, torch.zeros(20, dtype=torch.long))


# --- activation sparsity and dead units -----------------------------------------------------


def test_activation_sparsity_and_dead_units_by_hand():
    acts = torch.tensor(
        [
            [0.0, 1.0, 0.0, 2.0],
            [0.0, 0.0, 0.0, 3.0],
            [0.0, 0.5, 0.0, 0.0],
        ]
    )
    # Zeros: 3 + 1 + 3 + 1 = 8 of 12 entries; columns 0 and 2 are zero on every row: 2 of 4.
    assert activation_sparsity(acts) == pytest.approx(8 / 12)
    assert dead_units(acts) == pytest.approx(0.5)
    assert activation_sparsity(torch.relu(-torch.ones(2, 3))) == 1.0
    assert dead_units(torch.ones(2, 3)) == 0.0


# --- one spectrum for erank and srank; the Gram-matrix fast path ------------------------------


def test_known_diagonal_spectrum_closed_form():
    # sigma = (4, 2, 1, 1): p = (1/2, 1/4, 1/8, 1/8), H = 1.75 ln 2, erank = 2 ** 1.75.
    x = torch.diag(torch.tensor([4.0, 2.0, 1.0, 1.0]))
    for center_free in (effective_rank(x), rank_measures(x)["erank"], rank_measures(x, fast=False)["erank"]):
        assert center_free == pytest.approx(2 ** 1.75, abs=1e-9)
    # srank, delta = 0.2: cumulative shares 0.5, 0.75, 0.875 -> k = 3; delta = 0.3: 0.75 >= 0.7 -> k = 2.
    assert srank_of_spectrum(torch.tensor([4.0, 2.0, 1.0, 1.0]), delta=0.2) == 3
    assert rank_measures(x, delta=0.3)["srank"] == 2
    assert erank_of_spectrum(torch.tensor([1.0, 1.0, 1.0])) == pytest.approx(3.0)


@pytest.mark.parametrize("n", [1, 3, 40])
def test_fast_path_identity_and_rank_one(n):
    assert rank_measures(torch.eye(n)) == {"erank": pytest.approx(n, abs=1e-9), "srank": n}
    u = torch.linspace(-1, 2, 7, dtype=torch.float64)
    v = torch.linspace(0.5, 3, n, dtype=torch.float64)
    assert rank_measures(torch.outer(u, v)) == {"erank": pytest.approx(1.0, abs=1e-9), "srank": 1}


@pytest.mark.parametrize("shape", [(500, 64), (30, 100), (64, 64)])
@pytest.mark.parametrize("center", [False, True])
def test_fast_path_matches_the_svd(shape, center):
    g = torch.Generator().manual_seed(sum(shape))
    # A decaying spectrum with non-negative (ReLU-like) entries, as in the probe-set activations.
    x = torch.relu(torch.randn(*shape, generator=g, dtype=torch.float64) @
                   torch.diag(torch.logspace(0, -3, shape[1], dtype=torch.float64)) + 0.1)
    fast, exact = rank_measures(x, center=center), rank_measures(x, center=center, fast=False)
    assert fast["erank"] == pytest.approx(exact["erank"], rel=1e-6)
    assert fast["srank"] == exact["srank"]
    s_exact = torch.linalg.svdvals(x - x.mean(0) if center else x)
    assert torch.allclose(gram_singular_values(x, center)[:10], s_exact[:10], rtol=1e-8)


def test_fast_path_centered_constant_matrix_is_zero():
    assert rank_measures(torch.ones(6, 4), center=True) == {"erank": 0.0, "srank": 0}


# --- the fast ridge path agrees with one full ridge fit per lambda ----------------------------


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_fast_linear_probe_equals_reference_path(seed):
    from optbias.probes.measures import _check_probe_inputs, _linear_probe_reference

    g = torch.Generator().manual_seed(seed)
    n, d = 600, 24
    y = torch.randint(0, 10, (n + 200,), generator=g)
    centres = torch.randn(10, d, generator=g)
    x = torch.relu(centres[y] + 1.5 * torch.randn(n + 200, d, generator=g))  # noisy: not separable
    x[:, 3] = 0.0  # a dead unit
    x[:, 5] = 0.7  # a constant unit
    lambdas = (1e-2, 1.0, 30.0, 1000.0)
    fast = linear_probe_accuracy(x[:n], y[:n], x[n:], y[n:], lambdas=lambdas, seed=seed)
    xtr, ytr, xte, yte, n_val = _check_probe_inputs(x[:n], y[:n], x[n:], y[n:], 10, lambdas, 0.2)
    perm = torch.randperm(n, generator=torch.Generator().manual_seed(seed))
    reference = _linear_probe_reference(xtr, ytr, xte, yte, 10, lambdas, perm[:n_val], perm[n_val:])
    assert fast == reference
    assert 0.3 < fast["accuracy"] < 1.0  # a real, imperfect probe: agreement is not trivial


def test_linear_probe_on_shuffled_labels_of_separable_features_is_near_chance():
    xtr, ytr = _clusters(200, range(10), dim=20, seed=0)
    xte, yte = _clusters(100, range(10), dim=20, seed=1)
    assert linear_probe_accuracy(xtr, ytr, xte, yte)["accuracy"] == 1.0
    shuffled = ytr[torch.randperm(len(ytr), generator=torch.Generator().manual_seed(0))]
    assert 0.03 <= linear_probe_accuracy(xtr, shuffled, xte, yte)["accuracy"] <= 0.2  # chance: 0.1


# --------------------------------------------------------------------------- weight distance (claim 9)
def test_relative_weight_distance_on_a_hand_computed_case():
    from optbias.probes.weights import relative_distance

    w0 = {"w": torch.tensor([[0.0, 6.0]]), "b": torch.tensor([8.0])}   # ||w0|| = 10
    a = {"w": torch.tensor([[3.0, 0.0]]), "b": torch.tensor([1.0])}
    b = {"w": torch.tensor([[0.0, 4.0]]), "b": torch.tensor([1.0])}    # a - b = (3, -4, 0): norm 5
    assert relative_distance(a, b, w0) == pytest.approx(0.5)
    assert relative_distance(a, a, w0) == 0.0
    assert relative_distance(w0, {k: torch.zeros_like(v) for k, v in w0.items()}, w0) == pytest.approx(1.0)
    with pytest.raises(ValueError, match="does not hold the same parameters"):
        relative_distance(a, {"w": b["w"]}, w0)


def test_weight_distances_pair_runs_by_seed_from_their_common_initialization(tmp_path):
    from optbias import models
    from optbias.probes.weights import weight_distances

    model = {"hidden": [4]}
    runs, dirs = [], []
    for opt, seeds, shift in (("sgd", [0, 1], 0.0), ("adam", [0, 1], 0.5), ("shampoo", [1], 0.0)):
        for seed in seeds:
            w0 = models.init_model(seed, model).state_dict()
            final = {k: v + shift for k, v in w0.items()}  # sgd and shampoo end at w0, adam moved by 0.5
            d = tmp_path / opt / f"seed{seed}"
            d.mkdir(parents=True)
            torch.save(final, d / "task1.pt")
            runs.append({"benchmark": "permuted", "optimizer": opt, "seed": seed, "status": "ok",
                         "R": [[1.0, 0.0], [1.0, 1.0]], "spec": {"model": model}})
            dirs.append(d)
    out = weight_distances(runs, dirs, ["sgd", "adam", "shampoo"])["permuted"]
    assert list(out["pairs"]) == ["sgd~adam", "sgd~shampoo", "adam~shampoo"]
    # One common seed: the value, and no interval (one seed has no spread to estimate).
    assert out["pairs"]["sgd~shampoo"] == {"mean": 0.0, "ci95": None, "per_seed": [0.0], "seeds": [1]}
    for seed, value in zip([0, 1], out["pairs"]["sgd~adam"]["per_seed"]):
        w0 = models.init_model(seed, model).state_dict()
        n = sum(v.numel() for v in w0.values())
        norm0 = float(torch.sqrt(sum((v.double() ** 2).sum() for v in w0.values())))
        assert value == pytest.approx(0.5 * n ** 0.5 / norm0)  # ||0.5 * 1|| / ||w0||
    assert out["from_init"]["sgd"]["per_seed"] == [0.0, 0.0]
    assert out["pairs"]["sgd~adam"]["per_seed"] == out["from_init"]["adam"]["per_seed"]
