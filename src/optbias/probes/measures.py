"""Probes of learned representations (pure functions: tensors in, numbers out).

These measure the *qualitative* properties that the paper attributes to the optimizer:

* how many directions a representation really uses (``effective_rank``, ``srank``);
* how much the classes overlap (``class_mean_cosine_similarity``, ``mean_off_diagonal``);
* how much task information the frozen features still hold (``linear_probe_accuracy``,
  the "representation forgetting" of PAPER.md);
* how sparse the ReLU activations are (``activation_sparsity``, ``dead_units``).

Every spectral or linear-algebra computation runs in float64, so that results do not depend on
the dtype the network was trained in, and nothing here uses randomness except the seeded
validation split of the linear probe.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor

# Relative slack for "cumulative sum >= (1 - delta) * total" in ``srank``.  A spectrum that hits
# the boundary exactly in real arithmetic (e.g. sigma = 0.7, 0.5, 0.3 with delta = 0.2, where
# 0.7 + 0.5 == 0.8 * 1.5) can miss it by one ulp in floating point; summation error is of order
# n * eps * total, far below this slack for any realistic n.
_SRANK_RTOL = 1e-10


def _matrix(x: Tensor, name: str = "x") -> Tensor:
    if x.ndim != 2:
        raise ValueError(f"{name} must be a 2-D matrix (samples x features), got shape {tuple(x.shape)}")
    return x.detach().to(torch.float64)


def _singular_values(x: Tensor, center: bool) -> Tensor:
    """Singular values (descending, float64); values at round-off level are set to exactly 0.

    The cut-off is the one ``torch.linalg.matrix_rank`` uses (max(m, n) * eps * sigma_max), so
    that a rank-1 matrix has exactly one non-zero singular value.  It changes the effective rank
    by at most ~1e-13 and never changes the zero matrix (all singular values are 0 anyway).
    """
    x = _matrix(x)
    if center:
        x = x - x.mean(dim=0, keepdim=True)
    if x.numel() == 0:
        return x.new_zeros(0)
    s = torch.linalg.svdvals(x)
    cutoff = max(x.shape) * torch.finfo(torch.float64).eps * s.max()
    return torch.where(s > cutoff, s, torch.zeros_like(s))


def erank_of_spectrum(s: Tensor) -> float:
    """Effective rank of a spectrum (non-negative singular values): exp of the entropy of s / sum(s).

    Split out of ``effective_rank`` so that one SVD can serve both erank and srank.
    """
    s = s.detach().to(torch.float64)
    total = s.sum()
    if s.numel() == 0 or total <= 0:
        return 0.0
    p = s / total
    p = p[p > 0]  # 0 * log 0 = 0
    return float(torch.exp(-(p * p.log()).sum()))


def srank_of_spectrum(s: Tensor, delta: float = 0.01) -> int:
    """srank of a spectrum sorted in descending order (see ``srank``)."""
    if not 0.0 <= delta < 1.0:
        raise ValueError(f"delta must be in [0, 1), got {delta}")
    s = s.detach().to(torch.float64)
    total = s.sum()
    if s.numel() == 0 or total <= 0:
        return 0
    target = (1.0 - delta) * total - _SRANK_RTOL * total
    reached = torch.cumsum(s, dim=0) >= target
    return int(torch.nonzero(reached)[0, 0]) + 1


def gram_singular_values(x: Tensor, center: bool = False) -> Tensor:
    """Singular values (descending, float64) from the eigenvalues of the smaller Gram matrix.

    Cheaper than an SVD of the m x n matrix: one product and one symmetric eigendecomposition of
    the smaller side (the probes run on every checkpoint).  The price: singular values below sqrt(max(m, n) * eps) * sigma_max (~1e-7 of
    the largest) drown in the Gram's round-off, so they are set to 0.  That changes the
    effective rank by less than 1e-5 and srank (delta >= 1e-6) not at all; tests/test_probes.py
    checks both against the SVD path.
    """
    x = _matrix(x)
    if center:
        x = x - x.mean(dim=0, keepdim=True)
    if x.numel() == 0:
        return x.new_zeros(0)
    m, n = x.shape
    gram = x.T @ x if m >= n else x @ x.T
    s = torch.linalg.eigvalsh(gram).flip(0).clamp(min=0.0).sqrt()
    cutoff = (max(m, n) * torch.finfo(torch.float64).eps) ** 0.5 * s.max()
    return torch.where(s > cutoff, s, torch.zeros_like(s))


def rank_measures(x: Tensor, delta: float = 0.01, center: bool = False, fast: bool = True) -> dict[str, float]:
    """``{"erank": ..., "srank": ...}`` of ``x`` from one spectrum (``fast``: via the Gram matrix)."""
    s = gram_singular_values(x, center) if fast else _singular_values(x, center)
    return {"erank": erank_of_spectrum(s), "srank": srank_of_spectrum(s, delta)}


def effective_rank(x: Tensor, center: bool = False) -> float:
    """Effective rank of Roy & Vetterli (2007): exp of the entropy of the normalised spectrum.

    With singular values sigma of ``x`` (rows = samples, columns = features),
    ``p_k = sigma_k / sum(sigma)`` and ``erank = exp(-sum_k p_k log p_k)`` (0 log 0 = 0).
    It is a smooth count of the directions a representation uses: n for the n x n identity,
    1 for any rank-1 matrix, and invariant to scaling and to orthogonal rotations.

    The singular values are normalised by their sum, *not* passed through a softmax: some public
    code applies ``softmax(sigma)``, which is a bug (it depends on the scale of ``x`` and pushes
    the result towards the matrix size).

    ``center=True`` subtracts the column (feature) mean first, so that a shared offset common
    to all samples does not count as a direction.  The zero matrix (or an empty one) has no
    spectrum to normalise; we return 0.0 for it, the natural limit "no directions used".
    """
    return erank_of_spectrum(_singular_values(x, center))


def srank(x: Tensor, delta: float = 0.01, center: bool = False) -> int:
    """Smallest k whose top-k singular values hold a (1 - delta) share of the total.

    ``srank = min { k : sum_{i <= k} sigma_i >= (1 - delta) * sum_i sigma_i }`` with sigma sorted
    descending (Kumar et al. 2021; PAPER.md uses delta = 0.01).  Unlike ``effective_rank`` it is an
    integer count of the directions needed to explain almost all of the spectrum.

    The comparison allows a relative slack of 1e-10 of the total, so that a spectrum which meets
    the boundary exactly in real arithmetic is not pushed to k + 1 by round-off.  The zero matrix
    (or an empty one) returns 0.  ``center`` is as in ``effective_rank``.
    """
    if not 0.0 <= delta < 1.0:
        raise ValueError(f"delta must be in [0, 1), got {delta}")
    return srank_of_spectrum(_singular_values(x, center), delta)


def class_mean_cosine_similarity(features: Tensor, labels: Tensor, num_classes: int = 10) -> Tensor:
    """C x C cosine similarities between the class-mean representations (float64).

    This is the paper's Figure B: high, uniform similarities mean overlapping, degenerate
    representations; low, varied ones mean localised representations that interfere less.

    A class with no sample in ``labels`` has no mean, and a class whose mean is the zero vector
    has no direction; rather than invent a value (or divide by zero), its row and column are NaN.
    ``mean_off_diagonal`` ignores those entries.
    """
    f = _matrix(features.reshape(features.shape[0], -1), "features")
    y = labels.detach().reshape(-1).long().to(f.device)
    if y.numel() != f.shape[0]:
        raise ValueError(f"{f.shape[0]} feature rows but {y.numel()} labels")
    if y.numel() and (y.min() < 0 or y.max() >= num_classes):
        raise ValueError(f"labels must lie in [0, {num_classes}), got range [{int(y.min())}, {int(y.max())}]")

    sums = f.new_zeros(num_classes, f.shape[1]).index_add_(0, y, f)
    counts = torch.bincount(y, minlength=num_classes).to(f)
    means = sums / counts.clamp(min=1).unsqueeze(1)
    norms = means.norm(dim=1)
    valid = (counts > 0) & (norms > 0)

    unit = means / torch.where(valid, norms, torch.ones_like(norms)).unsqueeze(1)
    sim = (unit @ unit.T).clamp(-1.0, 1.0)
    invalid = ~valid
    sim[invalid, :] = float("nan")
    sim[:, invalid] = float("nan")
    return sim


def mean_off_diagonal(m: Tensor) -> float:
    """Mean of the off-diagonal entries of a square matrix, ignoring NaNs.

    The diagonal of a similarity matrix is trivially 1, so only cross-class entries summarise
    the overlap.  NaN entries (absent classes) are skipped; with none left the result is NaN.
    """
    m = _matrix(m, "m")
    if m.shape[0] != m.shape[1]:
        raise ValueError(f"m must be square, got shape {tuple(m.shape)}")
    off = ~torch.eye(m.shape[0], dtype=torch.bool, device=m.device)
    return float(m[off].nanmean()) if off.any() else float("nan")


def _ridge_fit(x: Tensor, y: Tensor, num_classes: int, lam: float) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """Closed-form ridge regression on one-hot targets; returns (mean, std, W, b).

    Features are standardised with the statistics of *this* training data (constant features
    get std 1, i.e. become 0).  After standardisation the features have zero mean, so the
    unpenalised bias column has the closed form b = mean of the targets and W solves ridge on
    the centred targets; this is exactly the solution with a bias column that is not shrunk.
    W is computed in the primal form (d x d system) when n >= d, else in the dual (kernel) form
    (n x n system) -- the two are algebraically identical, the smaller one is faster.
    """
    mean = x.mean(dim=0)
    std = x.std(dim=0, unbiased=False)
    std = torch.where(std > 0, std, torch.ones_like(std))
    z = (x - mean) / std
    t = torch.nn.functional.one_hot(y, num_classes).to(z)
    b = t.mean(dim=0)
    t = t - b
    n, d = z.shape
    if n >= d:
        w = torch.linalg.solve(z.T @ z + lam * torch.eye(d, dtype=z.dtype, device=z.device), z.T @ t)
    else:
        w = z.T @ torch.linalg.solve(z @ z.T + lam * torch.eye(n, dtype=z.dtype, device=z.device), t)
    return mean, std, w, b


def _accuracy(fit: tuple[Tensor, Tensor, Tensor, Tensor], seen: Tensor, x: Tensor, y: Tensor) -> float:
    mean, std, w, b = fit
    scores = ((x - mean) / std) @ w + b
    scores[:, ~seen] = -torch.inf  # never predict a class the probe was not trained on
    return float((scores.argmax(dim=1) == y).to(torch.float64).mean())


def _check_probe_inputs(train_x, train_y, test_x, test_y, num_classes, lambdas, val_fraction):
    xtr = _matrix(train_x.reshape(train_x.shape[0], -1), "train_x")
    xte = _matrix(test_x.reshape(test_x.shape[0], -1), "test_x").to(xtr.device)
    ytr = train_y.detach().reshape(-1).long().to(xtr.device)
    yte = test_y.detach().reshape(-1).long().to(xtr.device)
    if ytr.numel() != xtr.shape[0] or yte.numel() != xte.shape[0]:
        raise ValueError("feature rows and labels differ in number")
    if xtr.shape[1] != xte.shape[1]:
        raise ValueError(f"train has {xtr.shape[1]} features, test has {xte.shape[1]}")
    if xte.shape[0] == 0:
        raise ValueError("the test split is empty")
    for y in (ytr, yte):
        if y.min() < 0 or y.max() >= num_classes:
            raise ValueError(f"labels must lie in [0, {num_classes})")
    if not lambdas or min(lambdas) <= 0:
        raise ValueError("lambdas must be a non-empty sequence of positive numbers")
    n = xtr.shape[0]
    n_val = int(round(val_fraction * n))
    if not 0 < n_val < n:
        raise ValueError(f"val_fraction={val_fraction} leaves no validation or no fitting data for n={n}")
    return xtr, ytr, xte, yte, n_val


def _seen(y: Tensor, num_classes: int) -> Tensor:
    return torch.bincount(y, minlength=num_classes) > 0


def _choose(best: tuple[float | None, float], lam: float, acc: float) -> tuple[float | None, float]:
    """Keep the best validation accuracy; ties go to the larger, more regularised lambda."""
    best_lam, best_val = best
    if acc > best_val or (acc == best_val and lam > best_lam):
        return float(lam), acc
    return best


def _linear_probe_reference(xtr, ytr, xte, yte, num_classes, lambdas, val, fit) -> dict[str, float]:
    """The textbook path: one full ridge fit per lambda (also used when n < d, in dual form)."""
    best: tuple[float | None, float] = (None, -1.0)
    for lam in lambdas:
        model = _ridge_fit(xtr[fit], ytr[fit], num_classes, float(lam))
        best = _choose(best, lam, _accuracy(model, _seen(ytr[fit], num_classes), xtr[val], ytr[val]))
    best_lam, best_val = best
    model = _ridge_fit(xtr, ytr, num_classes, best_lam)
    return {"accuracy": _accuracy(model, _seen(ytr, num_classes), xte, yte), "lambda": best_lam,
            "val_accuracy": best_val}


class _Moments:
    """Sufficient statistics of one subset for ridge on standardised features and one-hot targets.

    ``x`` is already centred by a common reference (the full training mean), which keeps the
    raw second moments well conditioned; ``gram`` and ``cross`` are the only O(n d^2) work, and
    the statistics of the fit and validation subsets add up to those of the full split.
    """

    def __init__(self, n: int, total: Tensor, sq_dev: Tensor, gram: Tensor, cross: Tensor, counts: Tensor) -> None:
        self.n, self.total, self.sq_dev, self.gram, self.cross, self.counts = n, total, sq_dev, gram, cross, counts

    @classmethod
    def of(cls, x: Tensor, t: Tensor) -> "_Moments":
        mean = x.mean(dim=0)
        return cls(x.shape[0], x.sum(dim=0), (x - mean).pow(2).sum(dim=0), x.T @ x, x.T @ t, t.sum(dim=0))

    def __add__(self, other: "_Moments") -> "_Moments":
        n = self.n + other.n
        total = self.total + other.total
        # Pooled sum of squared deviations (Chan et al.): exact, no cancellation.
        delta = other.total / other.n - self.total / self.n
        sq_dev = self.sq_dev + other.sq_dev + delta.pow(2) * self.n * other.n / n
        return _Moments(n, total, sq_dev, self.gram + other.gram, self.cross + other.cross, self.counts + other.counts)

    def standardized(self, scale: Tensor) -> tuple[Tensor, Tensor, Tensor, Tensor, Tensor]:
        """(mean, 1/std with 0 for constant features, Z^T Z, Z^T (T - b), b) of the standardised subset."""
        mean = self.total / self.n
        std = (self.sq_dev / self.n).sqrt()
        # A feature constant on this subset (a dead ReLU unit: exactly 0) carries nothing: its
        # standardised column is 0, as in ``_ridge_fit`` (which sets std = 1 and gets x - mean = 0).
        inv = torch.where(std > 1e-12 * scale, 1.0 / std, torch.zeros_like(std))
        b = self.counts / self.n
        centred_gram = self.gram - self.n * torch.outer(mean, mean)
        centred_cross = self.cross - self.n * torch.outer(mean, b)
        return mean, inv, centred_gram * inv[:, None] * inv[None, :], centred_cross * inv[:, None], b


def linear_probe_accuracy(
    train_x: Tensor,
    train_y: Tensor,
    test_x: Tensor,
    test_y: Tensor,
    num_classes: int = 10,
    lambdas: Sequence[float] = (1e-3, 1e-2, 1e-1, 1.0, 10.0, 100.0),
    val_fraction: float = 0.2,
    seed: int = 0,
) -> dict[str, float]:
    """Accuracy of a ridge-regression linear probe on frozen features (representation forgetting).

    PAPER.md defines representation forgetting as the accuracy of a linear probe fit on the
    frozen hidden features of an old task's training split and tested on its test split.  The
    probe is deterministic closed-form ridge regression on one-hot targets (float64, bias
    column, features standardised with training statistics), so it adds no optimizer of its own
    to a study about optimizers.

    Lambda is chosen by accuracy on a held-out ``val_fraction`` of the training split (a seeded
    random permutation; ties go to the larger, more regularised lambda), then the probe is
    refit on the full training split with that lambda and scored on the test split.

    Predictions are restricted to the classes present in the data the probe was fit on (the
    one-hot targets still span ``num_classes``).  In class-incremental MNIST each task has two
    classes; the probe asks whether the features still separate *those* classes, and an
    unrestricted argmax could pick one of the eight classes it never saw.  (With the unshrunk
    bias used here the seen classes' scores sum to 1 and unseen ones score exactly 0, so in exact
    arithmetic the mask changes no prediction; it makes that property a guarantee.)

    Speed (the probes run on every checkpoint): when the fit part has at least as many rows as
    features, the d x d Gram matrices are computed once (fit and validation parts, summed for the
    refit), and one eigendecomposition of the standardised fit Gram serves every lambda:
    W(lambda) = V diag(1 / (e + lambda)) V^T Z^T T.  This is algebraically the solution of
    ``_ridge_fit`` (tests/test_probes.py checks the two paths agree); otherwise the dual form
    of ``_ridge_fit`` is used per lambda.

    Returns ``{"accuracy": test accuracy, "lambda": chosen lambda, "val_accuracy": its
    validation accuracy}``.
    """
    xtr, ytr, xte, yte, n_val = _check_probe_inputs(train_x, train_y, test_x, test_y, num_classes, lambdas,
                                                    val_fraction)
    n, d = xtr.shape
    perm = torch.randperm(n, generator=torch.Generator().manual_seed(seed)).to(xtr.device)
    val, fit = perm[:n_val], perm[n_val:]
    if fit.numel() < d:
        return _linear_probe_reference(xtr, ytr, xte, yte, num_classes, lambdas, val, fit)

    reference = xtr.mean(dim=0)
    scale = reference.abs()  # a constant column c has std ~ 1e-16 |c|: below 1e-12 |c| means constant
    xc = xtr - reference
    t = torch.nn.functional.one_hot(ytr, num_classes).to(xc)
    m_fit, m_val = _Moments.of(xc[fit], t[fit]), _Moments.of(xc[val], t[val])

    mean, inv, gram, cross, b = m_fit.standardized(scale)
    evals, evecs = torch.linalg.eigh(gram)
    evals = evals.clamp(min=0.0)  # a PSD matrix; round-off can make the smallest slightly negative
    rotated = evecs.T @ cross
    z_val = ((xc[val] - mean) * inv) @ evecs  # validation features in the eigenbasis, once
    unseen = ~_seen(ytr[fit], num_classes)
    best: tuple[float | None, float] = (None, -1.0)
    for lam in lambdas:
        scores = z_val @ (rotated / (evals + float(lam))[:, None]) + b
        scores[:, unseen] = -torch.inf  # never predict a class the probe was not trained on
        best = _choose(best, lam, float((scores.argmax(dim=1) == ytr[val]).to(torch.float64).mean()))
    best_lam, best_val = best

    mean, inv, gram, cross, b = (m_fit + m_val).standardized(scale)
    w = torch.linalg.solve(gram + best_lam * torch.eye(d, dtype=gram.dtype, device=gram.device), cross)
    scores = ((xte - reference - mean) * inv) @ w + b
    scores[:, ~_seen(ytr, num_classes)] = -torch.inf
    pred = scores.argmax(dim=1)
    return {"accuracy": float((pred == yte).to(torch.float64).mean()), "lambda": best_lam, "val_accuracy": best_val}


def activation_sparsity(acts: Tensor) -> float:
    """Fraction of activations that are exactly zero.

    For ReLU outputs this is the share of (input, unit) pairs that are switched off; exact zero
    (not a threshold) is the right test because ReLU produces true zeros.
    """
    if acts.numel() == 0:
        raise ValueError("acts is empty")
    return float((acts.detach() == 0).to(torch.float64).mean())


def dead_units(acts: Tensor) -> float:
    """Fraction of units (columns of a samples x units matrix) that are zero on every input.

    A dead ReLU unit gets no gradient and carries no information, so it shrinks the usable
    width of the layer; it is measured on the inputs given (e.g. a test split).
    """
    if acts.ndim != 2 or acts.shape[0] == 0 or acts.shape[1] == 0:
        raise ValueError(f"acts must be a non-empty 2-D matrix (samples x units), got {tuple(acts.shape)}")
    return float((acts.detach() == 0).all(dim=0).to(torch.float64).mean())
