"""Textbook full-matrix Shampoo (Gupta, Koren & Singer, ICML 2018) as a ``torch.optim.Optimizer``.

Why our own: the paper's Example 1 is about what a *non-diagonal* preconditioner does to the solution,
so the preconditioner must be the textbook one, and every ingredient the mechanism ablation varies
(statistics, exponent, epsilon, update frequency, grafting) must be an explicit option.
pytorch_optimizer's ``Shampoo`` writes NaN at lr >= 0.03 (failed SVDs) and its ``ScalableShampoo``
is a different algorithm.

For a 2-D weight W (m x n) with gradient G, Shampoo keeps two Kronecker factors of the
gradient second moment and steps along their inverse fourth roots (Algorithm 1 of the paper):

    L <- L + G G^T  (m x m),    R <- R + G^T G  (n x n),    W <- W - lr * L^(-1/4) G R^(-1/4)

Everything else is an option with the textbook choice (or the common practical one) as default:

* ``statistics``: "sum" (the paper) or "ema" (L <- beta2 L + (1 - beta2) G G^T, no bias correction;
  it is a scalar that grafting removes anyway).
* ``exponent``: "quarter" (the paper); "half_left" = L^(-1/2) G, "half_right" = G R^(-1/2)
  (one-sided, the full-matrix Adagrad exponent on one side only).
* ``epsilon``: damping added to a factor before its root. "absolute" adds epsilon * I (the paper
  starts from L_0 = epsilon * I); "relative" adds epsilon * lambda_max(factor) * I, which makes the
  damping independent of the gradient scale.
* ``update_freq``: roots are recomputed at steps 1, 1 + k, 1 + 2k, ... and the stale roots are used
  in between (statistics are still accumulated at every step); counted from the last
  ``reset_preconditioner()`` when there was one.
* ``grafting``: layer-wise, the Shampoo direction is rescaled to the Frobenius norm of another
  optimizer's direction: "adagrad" (diagonal Adagrad, G / (sqrt(sum G^2) + graft_eps)), "sgd" (G),
  "adam" (bias-corrected Adam), or "none" (the raw Shampoo step). Grafting fixes the step size
  that Shampoo alone gets wrong, so the comparison with Adam is about direction, not scale.
* ``non_2d``: parameters that are not 2-D (biases) get diagonal Adagrad ("adagrad") or the grafted
  optimizer's step ("graft").
* ``max_precond_dim``: a side longer than this keeps only the diagonal of its factor.
* ``momentum`` (heavy ball on the final, grafted direction) and decoupled ``weight_decay``.
* ``root_dtype``: the precision of the eigendecomposition behind every root. "float64" (default)
  matches the dense float64 reference to ~1e-9. "float32" is cheaper on a CPU (the measured
  ratio: figure 1 of docs/performance.md, written by ``optbias bench``) and retries in float64 when the float32 decomposition fails
  or is not finite (counted in ``root_retries``). Its cost in accuracy: eigh's backward error is
  ~sqrt(n) * 6e-8 * lambda_max, comparable to the default relative damping (1e-6 * lambda_max),
  so the roots of the weakest directions move by a few percent. Stated tolerance, tested: on
  MNIST-MLP factors the preconditioned direction is within 1% (relative Frobenius) of the float64
  one (tests/test_shampoo_mnist.py); on small problems the parameters stay within 1e-5 of the
  dense float64 reference (tests/test_shampoo.py).

* ``gradient_factors``: after ``attach(model)``, the weight of each ``nn.Linear`` gets its statistics
  and direction from the layer's input X (B x n) and output gradient D (B x m), G = D^T X
  (optim/gradient_factors.py), wherever that costs fewer multiply-adds than from G (batch B below
  the layer's sides). The same algorithm in exact arithmetic; in float32 the factored and dense runs
  differ by rounding only (tests/test_gradient_factors.py states the tolerances). Captured factors
  are used only when D^T X matches the accumulated gradient up to rounding (else the dense path
  runs, counted in ``factor_mismatches``). Off by default; without ``attach`` it has no effect.

Roots are computed with ``torch.linalg.eigh`` in ``root_dtype`` and cast back to the parameter dtype.
A failed or non-finite root keeps the last good one (identity before the first) and is counted.
A parameter update that would be non-finite is skipped and counted, so the optimizer never writes
NaN or inf into a parameter. ``diagnostics()`` reports the counters (train.py records them).

``reset_preconditioner()`` forgets the factor statistics L and R (and their roots) and keeps
everything else (grafting state, momentum, step count): the ablation's ``shampoo-reset-stats``
(``train.reset_preconditioner``) calls it at every task boundary.
"""

from __future__ import annotations

import math
import time
import weakref
from collections.abc import Iterable
from typing import Any

import torch

from .base import PerParameterOptimizer
from .gradient_factors import GradientFactors, factored_cost, matches, sign_probe

STATISTICS = ("sum", "ema")
EXPONENTS: dict[str, tuple[float | None, float | None]] = {  # (power on L, power on R); None: side unused
    "quarter": (0.25, 0.25),
    "half_left": (0.5, None),
    "half_right": (None, 0.5),
}
EPSILON_MODES = ("relative", "absolute")
GRAFTINGS = ("adagrad", "none", "sgd", "adam")
NON_2D = ("adagrad", "graft")
ROOT_DTYPES = {"float64": torch.float64, "float32": torch.float32}
EIGEN_FLOOR = 1e-30  # damped eigenvalues below this (only by underflow) are clamped before the power
COUNTERS = ("root_failures", "root_computations", "root_retries", "root_time_s", "nonfinite_updates")
FACTOR_COUNTERS = ("factored_updates", "factor_mismatches")  # reported only when gradient_factors is on


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def validate(group: dict[str, Any]) -> None:
    """Raise ValueError naming the first bad option and what it may be (configs come from YAML)."""
    unit = lambda v: _is_number(v) and 0 <= v < 1  # noqa: E731
    checks = [
        ("lr", _is_number(group["lr"]) and group["lr"] >= 0, "a number >= 0"),
        ("momentum", unit(group["momentum"]), "a number in [0, 1)"),
        ("weight_decay", _is_number(group["weight_decay"]) and group["weight_decay"] >= 0, "a number >= 0"),
        ("statistics", group["statistics"] in STATISTICS, " or ".join(map(repr, STATISTICS))),
        ("beta2", unit(group["beta2"]), "a number in [0, 1)"),
        ("exponent", group["exponent"] in EXPONENTS, " or ".join(map(repr, EXPONENTS))),
        ("epsilon", _is_number(group["epsilon"]) and group["epsilon"] > 0, "a number > 0"),
        ("epsilon_mode", group["epsilon_mode"] in EPSILON_MODES, " or ".join(map(repr, EPSILON_MODES))),
        ("update_freq", _is_int(group["update_freq"]) and group["update_freq"] >= 1, "an integer >= 1"),
        ("grafting", group["grafting"] in GRAFTINGS, " or ".join(map(repr, GRAFTINGS))),
        ("graft_beta1", unit(group["graft_beta1"]), "a number in [0, 1)"),
        ("graft_beta2", unit(group["graft_beta2"]), "a number in [0, 1)"),
        ("graft_eps", _is_number(group["graft_eps"]) and group["graft_eps"] > 0, "a number > 0"),
        ("non_2d", group["non_2d"] in NON_2D, " or ".join(map(repr, NON_2D))),
        ("max_precond_dim", _is_int(group["max_precond_dim"]) and group["max_precond_dim"] >= 1,
         "an integer >= 1"),
        ("root_dtype", group["root_dtype"] in ROOT_DTYPES, " or ".join(map(repr, ROOT_DTYPES))),
        ("gradient_factors", isinstance(group["gradient_factors"], bool), "true or false"),
    ]
    for name, ok, allowed in checks:
        if not ok:
            raise ValueError(f"Shampoo: invalid {name}={group[name]!r}; allowed: {allowed}")
    if group["non_2d"] == "graft" and group["grafting"] == "none":
        raise ValueError("Shampoo: invalid non_2d='graft' with grafting='none' (no grafted optimizer to use); "
                         "allowed: non_2d='adagrad', or grafting 'adagrad', 'sgd' or 'adam'")


def inverse_root(factor: torch.Tensor, power: float, epsilon: float, epsilon_mode: str,
                 dtype: torch.dtype = torch.float64) -> torch.Tensor:
    """(factor + damping * I)^(-power) via an eigendecomposition in ``dtype``, returned in the factor's dtype.

    Shapes: ``factor`` (n, n), or (n,) for a diagonal; the result has the same shape. Cost: one
    ``eigh`` and one n x n x n product, O(n^3). Raises ``torch.linalg.LinAlgError`` when eigh fails.
    A 1-D ``factor`` is the diagonal of a factor (sides above max_precond_dim). The eigenvalues of a
    PSD factor can come out slightly negative by rounding, so they are clamped to 0 before damping;
    damping then keeps them away from 0. Shifting the eigenvalues is exactly eigh of the damped
    factor (same eigenvectors) and lets relative damping use lambda_max without a second solve.
    A relative damping of an all-zero factor (nothing observed yet) returns the identity.
    """
    f = factor.to(dtype)
    if f.ndim == 1:
        eigenvalues, vectors = f, None
    else:
        eigenvalues, vectors = torch.linalg.eigh(f)
    eigenvalues = eigenvalues.clamp_min(0)
    damping = epsilon * float(eigenvalues.max()) if epsilon_mode == "relative" else epsilon
    if damping == 0:
        return torch.ones_like(factor) if vectors is None else torch.eye(len(f), dtype=factor.dtype, device=f.device)
    scaled = (eigenvalues + damping).clamp_min(EIGEN_FLOOR).pow(-power)
    root = scaled if vectors is None else (vectors * scaled) @ vectors.T
    return root.to(factor.dtype)


def all_finite(x: torch.Tensor) -> bool:
    """``torch.isfinite(x).all()``, from one reduction in the common case.

    A finite sum means every element is finite (an inf or NaN element makes the sum inf or NaN);
    only a non-finite sum (a bad element, or an overflow of finite ones) needs the elementwise check.
    """
    return bool(torch.isfinite(x.sum())) or bool(torch.isfinite(x).all())


def precondition(grad: torch.Tensor, left: torch.Tensor | None, right: torch.Tensor | None) -> torch.Tensor:
    """left @ grad @ right; a 1-D root is a diagonal matrix, None is the identity."""
    out = grad
    if left is not None:
        out = left @ out if left.ndim == 2 else left[:, None] * out
    if right is not None:
        out = out @ right if right.ndim == 2 else out * right[None, :]
    return out


class Shampoo(PerParameterOptimizer):
    """Full-matrix Shampoo with grafting; see the module docstring for what each option does.

    Counters (totals over all parameters, kept across ``state_dict``/``load_state_dict``):
    ``root_failures``, ``root_computations``, ``root_retries`` (float32 roots redone in float64),
    ``root_time_s`` (seconds in root computations,
    time.perf_counter) and ``nonfinite_updates`` (parameter updates skipped as non-finite); with
    ``gradient_factors`` on, also ``factored_updates`` (2-D updates from the gradient factors) and
    ``factor_mismatches`` (captured factors that did not match the gradient: dense path used).
    """

    def __init__(
        self,
        params: Iterable[torch.Tensor] | Iterable[dict[str, Any]],
        lr: float = 1e-3,
        *,
        momentum: float = 0.0,
        weight_decay: float = 0.0,
        statistics: str = "sum",
        beta2: float = 0.999,
        exponent: str = "quarter",
        epsilon: float = 1e-6,
        epsilon_mode: str = "relative",
        update_freq: int = 10,
        grafting: str = "adagrad",
        graft_beta1: float = 0.9,
        graft_beta2: float = 0.999,
        graft_eps: float = 1e-8,
        non_2d: str = "adagrad",
        max_precond_dim: int = 2048,
        root_dtype: str = "float64",
        gradient_factors: bool = False,
    ) -> None:
        defaults = dict(lr=lr, momentum=momentum, weight_decay=weight_decay, statistics=statistics, beta2=beta2,
                        exponent=exponent, epsilon=epsilon, epsilon_mode=epsilon_mode, update_freq=update_freq,
                        grafting=grafting, graft_beta1=graft_beta1, graft_beta2=graft_beta2, graft_eps=graft_eps,
                        non_2d=non_2d, max_precond_dim=max_precond_dim, root_dtype=root_dtype,
                        gradient_factors=gradient_factors)
        validate(defaults)
        self.root_failures = 0
        self.root_computations = 0
        self.root_retries = 0
        self.root_time_s = 0.0
        self.nonfinite_updates = 0
        self.factored_updates = 0  # 2-D updates computed from gradient factors
        self.factor_mismatches = 0  # captured factors that did not match the gradient (dense path used)
        self._factors: GradientFactors | None = None
        self._model: weakref.ref | None = None  # the model of `attach`, for re-capturing after load_state_dict
        self._probes: dict[int, torch.Tensor] = {}  # the check's probe vector per weight width
        super().__init__(params, defaults)

    def attach(self, model: torch.nn.Module) -> None:
        """Capture the gradient factors of ``model``'s linear layers whose weight is in a group with
        ``gradient_factors`` on (a no-op when none is). Call once, after building the optimizer on
        ``model``'s parameters; a second call replaces the first capture."""
        self._model = weakref.ref(model)
        self._capture()

    def _capture(self) -> None:
        """(Re)install the hooks on the attached model for the groups that have gradient_factors on."""
        Shampoo.close(self)  # the factors' hooks only (a subclass's close may remove more)
        model = self._model() if self._model is not None else None
        weights = {id(p) for g in self.param_groups if g.get("gradient_factors", False) for p in g["params"]}
        self._factors = GradientFactors(model, weights) if model is not None and weights else None

    def close(self) -> None:
        """Remove the hooks ``attach`` installed (a replaced optimizer calls it; also done when the
        optimizer is garbage-collected). Training goes on, from the dense gradient."""
        if self._factors is not None:
            self._factors.close()
            self._factors = None

    def zero_grad(self, set_to_none: bool = True) -> None:
        """``torch.optim.Optimizer.zero_grad``; captured passes whose gradient it discards are forgotten."""
        super().zero_grad(set_to_none)
        if self._factors is not None:
            self._factors.drop_completed()

    def add_param_group(self, param_group: dict[str, Any]) -> None:
        super().add_param_group(param_group)
        validate(self.param_groups[-1])  # per-group overrides get the same checks as the defaults

    def diagnostics(self) -> dict[str, int | float]:
        """The counters, for the run's metrics (the factor counters only when gradient_factors is on)."""
        factored = any(g.get("gradient_factors", False) for g in self.param_groups)
        return {name: getattr(self, name) for name in COUNTERS + (FACTOR_COUNTERS if factored else ())}

    def state_dict(self) -> dict[str, Any]:
        state_dict = super().state_dict()
        state_dict["diagnostics"] = self.diagnostics()
        return state_dict

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        state_dict = dict(state_dict)
        counters = state_dict.pop("diagnostics", {})
        super().load_state_dict(state_dict)
        for name in COUNTERS + FACTOR_COUNTERS:
            if name in counters:
                setattr(self, name, type(getattr(self, name))(counters[name]))
        if self._model is not None:  # the loaded groups decide which weights are captured
            self._capture()


    def reset_preconditioner(self) -> None:
        """Forget the Kronecker factor statistics of every parameter: L, R and their inverse roots.

        Dropped: ``L`` and ``R`` (summed or EMA statistics, or their diagonals) and ``L_root``,
        ``R_root``. The next step recreates them as a fresh optimizer's first step does: zero
        statistics plus that step's G G^T and G^T G, identity roots as the fallback, and the roots
        recomputed at once; the root schedule restarts from the reset (recomputed at the 1st,
        (1 + update_freq)-th, ... step after it), recorded as the step count of the reset,
        ``state["factor_start"]`` (absent: 0). So after a reset the factors and roots are exactly
        those of a fresh optimizer that saw the gradients since the reset.
        Kept: the step count (Adam grafting's bias corrections go on), the grafting state
        (``adagrad_sum``, ``graft_m``, ``graft_v``), the momentum buffer, the diagonal Adagrad sums of
        the parameters that are not 2-D (their own optimizer, not a Kronecker factor) and the counters.
        Everything lives in ``state_dict``, so a resumed run continues exactly. Cost: none (nothing
        is computed). ``reset_optimizer`` (train.py) instead rebuilds the whole optimizer.
        """
        for group in self.param_groups:
            for p in group["params"]:
                state = self.state.get(p)
                if not state:  # never stepped: nothing to forget
                    continue
                dropped = [state.pop(key) for key in ("L", "R", "L_root", "R_root") if key in state]
                if dropped:
                    step = state["step"]  # an int here; StackedShampoo's is a (S,) tensor
                    state["factor_start"] = step.clone() if torch.is_tensor(step) else step

    def _update(self, p: torch.Tensor, group: dict[str, Any]) -> None:
        grad, state = p.grad, self.state[p]
        if not all_finite(grad):  # a blown-up loss must not poison the statistics for good
            self.nonfinite_updates += 1
            if self._factors is not None:
                self._factors.take(p)  # this step's passes, so that the next step does not stack them
            return
        state["step"] = state.get("step", 0) + 1

        if p.ndim == 2:
            direction = self._matrix_direction(p, grad, state, group)
            if group["grafting"] != "none":
                graft_norm, norm = self._graft_direction(grad, state, group).norm(), direction.norm()
                direction = direction * torch.where(norm > 0, graft_norm / norm, torch.zeros_like(norm))
        elif group["non_2d"] == "adagrad":
            direction = self._adagrad_direction(grad, state, group["graft_eps"])
        else:
            direction = self._graft_direction(grad, state, group)

        if group["momentum"] > 0:
            direction = group["momentum"] * state.get("momentum_buffer", torch.zeros_like(p)) + direction
        new_p = p * (1 - group["lr"] * group["weight_decay"]) - group["lr"] * direction
        if not all_finite(new_p):  # skip rather than write NaN/inf into the model
            self.nonfinite_updates += 1
            return
        if group["momentum"] > 0:
            state["momentum_buffer"] = direction
        p.copy_(new_p)

    def _matrix_direction(self, p: torch.Tensor, grad: torch.Tensor, state: dict[str, Any],
                          group: dict[str, Any]) -> torch.Tensor:
        """The direction of a 2-D parameter before grafting: L^-pL G R^-pR (a subclass may add to it)."""
        return self._shampoo_direction(grad, state, group, self._take_factors(p, grad, group))

    def _take_factors(self, p: torch.Tensor, grad: torch.Tensor,
                      group: dict[str, Any]) -> tuple[torch.Tensor, torch.Tensor] | None:
        """(D, X) with D^T X = grad when they were captured, match, and save work; else None (dense path)."""
        if self._factors is None or not group.get("gradient_factors", False):
            return None
        factors = self._factors.take(p)
        if factors is None:
            return None
        d, x = factors
        left, right = (power is not None for power in EXPONENTS[group["exponent"]])
        dense, factored = factored_cost(*grad.shape, len(d), left, right)
        sides = [n for n, used in zip(grad.shape, (left, right)) if used]
        if factored >= dense or max(sides) > group["max_precond_dim"]:  # no saving, or a diagonal side
            return None
        probe = self._probes.get(grad.shape[1])
        if probe is None or probe.dtype != grad.dtype or probe.device != grad.device:
            probe = self._probes[grad.shape[1]] = sign_probe(grad.shape[1], grad.dtype, grad.device)
        if not matches(grad, d, x, probe):
            self.factor_mismatches += 1
            return None
        self.factored_updates += 1
        return d, x

    def _shampoo_direction(self, grad: torch.Tensor, state: dict[str, Any], group: dict[str, Any],
                           factors: tuple[torch.Tensor, torch.Tensor] | None = None) -> torch.Tensor:
        """Accumulate L and R, refresh their roots on schedule, return L^-pL G R^-pR.

        With ``factors`` (D (B x m), X (B x n), G = D^T X): L += D^T (X X^T) D, R += X^T (D D^T) X
        and the direction is (L^-pL D^T)(X R^-pR), the same quantities at O(B (m^2 + n^2 + mn)).
        """
        roots: dict[str, torch.Tensor | None] = {"L": None, "R": None}
        refresh = (state["step"] - state.get("factor_start", 0) - 1) % group["update_freq"] == 0  # since a reset
        for side, power in zip("LR", EXPONENTS[group["exponent"]]):
            if power is None:
                continue
            g = grad if side == "L" else grad.T  # R's statistics are L's statistics of G^T
            if factors is not None:  # g = u^T v with u (B x rows of g), v (B x columns of g)
                u, v = factors if side == "L" else factors[::-1]
                stat = (v @ v.T) @ u  # (B, rows); g g^T = u^T stat, added below without a temporary
            elif g.shape[0] > group["max_precond_dim"]:
                stat = (g * g).sum(dim=1)  # the diagonal of g g^T
            else:
                stat = g @ g.T
            if side not in state:  # roots start as the identity: the fallback if the first root fails
                rows, diagonal = g.shape[0], g.shape[0] > group["max_precond_dim"]
                state[side] = grad.new_zeros(rows if diagonal else (rows, rows))
                eye = grad.new_ones(rows)
                state[f"{side}_root"] = eye if diagonal else torch.diag(eye)
            beta, alpha = (1.0, 1.0) if group["statistics"] == "sum" else (group["beta2"], 1 - group["beta2"])
            if factors is not None:  # statistic <- beta * statistic + alpha * u^T stat
                state[side].addmm_(u.T, stat, beta=beta, alpha=alpha)
            elif beta == 1.0:  # summed statistics
                state[side].add_(stat)
            else:  # EMA: statistic <- beta * statistic + alpha * stat
                state[side].mul_(beta).add_(stat, alpha=alpha)
            if refresh:
                self._refresh_root(state, side, power, group)
            roots[side] = state[f"{side}_root"]
        if factors is not None:
            d, x = factors
            left = d.T if roots["L"] is None else roots["L"] @ d.T  # (m, B)
            right = x if roots["R"] is None else x @ roots["R"]  # (B, n)
            return left @ right
        return precondition(grad, roots["L"], roots["R"])

    def _refresh_root(self, state: dict[str, Any], side: str, power: float, group: dict[str, Any]) -> None:
        """Recompute one root; on failure keep the last good one so training goes on, and count it."""
        start = time.perf_counter()
        self.root_computations += 1
        ok = False
        dtypes = dict.fromkeys([ROOT_DTYPES[group["root_dtype"]], torch.float64])  # a failed float32 root is retried
        for attempt, dtype in enumerate(dtypes):
            self.root_retries += attempt > 0
            try:
                root = inverse_root(state[side], power, group["epsilon"], group["epsilon_mode"], dtype)
                ok = bool(torch.isfinite(root).all())  # also waits for the device, so the timing is honest
            except RuntimeError:  # torch.linalg.LinAlgError is a RuntimeError
                ok = False
            if ok:
                break
        if ok:
            state[f"{side}_root"].copy_(root)
        else:
            self.root_failures += 1
        self.root_time_s += time.perf_counter() - start

    @staticmethod
    def _adagrad_direction(grad: torch.Tensor, state: dict[str, Any], eps: float) -> torch.Tensor:
        if "adagrad_sum" not in state:
            state["adagrad_sum"] = torch.zeros_like(grad)
        state["adagrad_sum"].addcmul_(grad, grad)
        return grad / (state["adagrad_sum"].sqrt() + eps)

    def _graft_direction(self, grad: torch.Tensor, state: dict[str, Any], group: dict[str, Any]) -> torch.Tensor:
        """The step direction (before lr) of the grafted optimizer; its statistics live in ``state``."""
        if group["grafting"] == "sgd":
            return grad
        if group["grafting"] == "adagrad":
            return self._adagrad_direction(grad, state, group["graft_eps"])
        beta1, beta2, step = group["graft_beta1"], group["graft_beta2"], state["step"]
        if "graft_m" not in state:
            state["graft_m"], state["graft_v"] = torch.zeros_like(grad), torch.zeros_like(grad)
        state["graft_m"].mul_(beta1).add_(grad, alpha=1 - beta1)
        state["graft_v"].mul_(beta2).addcmul_(grad, grad, value=1 - beta2)
        m_hat = state["graft_m"] / (1 - beta1 ** step)
        v_hat = state["graft_v"] / (1 - beta2 ** step)
        return m_hat / (v_hat.sqrt() + group["graft_eps"])
