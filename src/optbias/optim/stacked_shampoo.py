"""Shampoo over stacked runs: S independent copies of one model trained as one (continual/batched.py).

In the batched-seed mode every parameter carries a leading run dimension: a (m, n) weight of one
run is a (S, m, n) tensor, a (n,) bias a (S, n) one. ``StackedShampoo`` takes, for every run s, the
step ``Shampoo`` (optim/shampoo.py) would take on that run's own slice ``p[s]``, with the same
options, and batches the work across runs:

    L[s] <- L[s] + G[s] G[s]^T          one ``baddbmm`` over the stack, (S, m, m)
    R[s] <- R[s] + G[s]^T G[s]          (S, n, n)
    roots: one batched ``eigh`` of the (S, m, m) and (S, n, n) factors every ``update_freq`` steps
    direction[s] = L[s]^-pL G[s] R[s]^-pR                   two ``bmm``
    grafting: each run's direction rescaled to its own grafted norm (a norm per run and layer)

Nothing is shared between runs, so each run's step is Shampoo's in exact arithmetic; in floating
point the batched kernels may round differently. tests/test_stacked_shampoo.py checks every option
against per-run ``Shampoo`` in float64 within 1e-10, and tests/test_batched.py whole runs of the
tiny config in float64 within 1e-6. In float32 no numeric tolerance is claimed: there a whole
Shampoo run reproduces only to its roots' rounding noise, which is as large between the one-by-one
runs' own float32 and float64 roots (tests/test_batched.py records the numbers).

``reset_preconditioner()`` is Shampoo's: every run's factors and roots are dropped at once, and
each run's root schedule restarts from its own step count at the reset.

Per run, as ``Shampoo`` does per parameter: a run whose gradient is not finite skips the step
(its statistics, step count and state stay as they were), a run whose update would not be finite
keeps its weights, and a run whose root fails keeps its last good root. A batched ``eigh`` that
fails, or a root that is not finite, is redone run by run through ``Shampoo``'s own root code
(with its float64 retry), so one bad run never changes another's root. The counters are kept per
run (``run_diagnostics(s)``); ``diagnostics()`` gives their totals.

``gradient_factors`` is accepted and has no effect: the stacked runs' gradients come from
``torch.func`` (continual/batched.py), not from ``nn.Linear`` layers that its hooks could capture,
so every statistic is computed from the dense gradient (the same algorithm: Shampoo's docstring),
and the gradient-factor counters read 0.

Cost per step and 2-D layer: S times Shampoo's dense step (O(S (m^2 n + m n^2)) for the
statistics and the direction, O(S (m^3 + n^3)) per root refresh), in S-times larger kernels.
"""

from __future__ import annotations

import time
from typing import Any

import torch

from .shampoo import EIGEN_FLOOR, EXPONENTS, FACTOR_COUNTERS, ROOT_DTYPES, Shampoo

RUN_COUNTERS = ("root_failures", "root_computations", "root_retries", "nonfinite_updates")


def inverse_roots(factors: torch.Tensor, power: float, epsilon: float, epsilon_mode: str,
                  dtype: torch.dtype) -> torch.Tensor:
    """``shampoo.inverse_root`` of every run's factor at once: (factor[s] + damping[s] I)^(-power).

    Shapes: ``factors`` (S, n, n), or (S, n) for diagonals (sides above max_precond_dim); the result
    has the same shape and dtype as ``factors``. One batched ``eigh`` in ``dtype`` and one batched
    n x n x n product: O(S n^3). Raises ``torch.linalg.LinAlgError`` when eigh fails on any run
    (the caller then redoes the runs one by one). Damping per run: ``epsilon`` (absolute) or
    ``epsilon * lambda_max(factor[s])`` (relative); a run with zero damping gets the identity.
    """
    f = factors.to(dtype)
    if f.ndim == 2:
        eigenvalues, vectors = f, None
    else:
        eigenvalues, vectors = torch.linalg.eigh(f)  # (S, n), (S, n, n)
    eigenvalues = eigenvalues.clamp_min(0)
    if epsilon_mode == "relative":
        damping = epsilon * eigenvalues.max(dim=-1, keepdim=True).values  # (S, 1)
    else:
        damping = torch.full_like(eigenvalues[:, :1], epsilon)
    scaled = (eigenvalues + damping).clamp_min(EIGEN_FLOOR).pow(-power)  # (S, n)
    # Exactly zero damping (nothing observed yet) gives the identity; a NaN damping (a factor that
    # overflowed) must stay NaN, so that the root counts as failed, as in inverse_root.
    if vectors is None:
        root = torch.where(damping == 0, torch.ones_like(scaled), scaled)
    else:
        root = (vectors * scaled[:, None, :]) @ vectors.transpose(1, 2)  # (S, n, n)
        eye = torch.eye(f.shape[-1], dtype=f.dtype, device=f.device).expand_as(root)
        root = torch.where(damping[:, :, None] == 0, eye, root)
    return root.to(factors.dtype)


def _rows(x: torch.Tensor) -> torch.Tensor:
    """Per-run view (S, everything else) of a stacked tensor."""
    return x.reshape(len(x), -1)


def _per_run(mask: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    """A (S,) mask shaped to broadcast against a stacked tensor ``like`` (S, ...)."""
    return mask.reshape(-1, *([1] * (like.ndim - 1)))


def _assign(dst: torch.Tensor, new: torch.Tensor, ok: torch.Tensor, all_ok: bool) -> None:
    """dst[s] <- new[s] for the runs where ``ok`` (S,) holds; the others keep theirs."""
    dst.copy_(new if all_ok else torch.where(_per_run(ok, dst), new, dst))


class StackedShampoo(Shampoo):
    """``Shampoo`` on parameters stacked along a leading run dimension: see the module docstring.

    Same options as ``Shampoo`` (``gradient_factors`` has no effect). Every parameter must have the
    same leading size S (the number of runs). Counters per run: ``run_diagnostics(s)``.
    """

    def __init__(self, params, lr: float = 1e-3, **options: Any) -> None:
        super().__init__(params, lr, **options)
        sizes = {p.shape[0] if p.ndim else 0 for g in self.param_groups for p in g["params"]}
        if len(sizes) != 1 or 0 in sizes:
            raise ValueError(f"StackedShampoo: every parameter needs the same leading run dimension S >= 1; "
                             f"got leading sizes {sorted(sizes)}")
        self.runs = sizes.pop()
        self.run_counters = {name: [0] * self.runs for name in RUN_COUNTERS}

    def _factor_keys(self) -> dict[str, int]:
        """Shampoo's gradient-factor counters, reported (as 0: every update here is dense) where
        Shampoo reports them, so that a run's metrics have the same keys either way."""
        factored = any(g.get("gradient_factors", False) for g in self.param_groups)
        return dict.fromkeys(FACTOR_COUNTERS, 0) if factored else {}

    def diagnostics(self) -> dict[str, int | float]:
        """The counters summed over the runs, and the seconds spent in roots."""
        out: dict[str, int | float] = {name: sum(values) for name, values in self.run_counters.items()}
        out["root_time_s"] = self.root_time_s
        return {**out, **self._factor_keys()}

    def run_diagnostics(self, run: int) -> dict[str, int | float]:
        """Run ``run``'s counters, as ``Shampoo.diagnostics`` reports them for one run; its
        ``root_time_s`` is the batched roots' time divided by the number of runs."""
        out: dict[str, int | float] = {name: values[run] for name, values in self.run_counters.items()}
        out["root_time_s"] = self.root_time_s / self.runs
        return {**out, **self._factor_keys()}

    def state_dict(self) -> dict[str, Any]:
        state_dict = super().state_dict()
        state_dict["run_counters"] = {name: list(values) for name, values in self.run_counters.items()}
        return state_dict

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        state_dict = dict(state_dict)
        counters = state_dict.pop("run_counters", None)
        super().load_state_dict(state_dict)
        if counters is not None:
            self.run_counters = {name: [int(v) for v in counters[name]] for name in RUN_COUNTERS}

    def _count(self, name: str, runs: torch.Tensor) -> None:
        """Add 1 to counter ``name`` of every run where the (S,) mask ``runs`` holds."""
        for s in runs.nonzero().flatten().tolist():
            self.run_counters[name][s] += 1

    def _update(self, p: torch.Tensor, group: dict[str, Any]) -> None:
        grad, state = p.grad, self.state[p]  # (S, ...)
        ok = torch.isfinite(_rows(grad)).all(dim=1)  # (S,): runs whose gradient is finite
        self._count("nonfinite_updates", ~ok)
        if not bool(ok.any()):
            return
        all_ok = bool(ok.all())
        if "step" not in state:
            state["step"] = torch.zeros(self.runs, dtype=torch.int64, device=p.device)
        elif state["step"].device != p.device:  # load_state_dict leaves "step" where it was saved (the CPU)
            state["step"] = state["step"].to(p.device)
        state["step"] += ok.to(torch.int64)

        if p.ndim == 3:  # each run's parameter is 2-D
            direction = self._stacked_direction(grad, state, group, ok, all_ok)
            if group["grafting"] != "none":
                graft_norm = _rows(self._graft(grad, state, group, ok, all_ok)).norm(dim=1)
                norm = _rows(direction).norm(dim=1)
                scale = torch.where(norm > 0, graft_norm / norm, torch.zeros_like(norm))
                direction = direction * _per_run(scale, direction)
        elif group["non_2d"] == "adagrad":
            direction = self._adagrad(grad, state, group["graft_eps"], ok, all_ok)
        else:
            direction = self._graft(grad, state, group, ok, all_ok)

        if group["momentum"] > 0:
            buffer = state.get("momentum_buffer", torch.zeros_like(p))
            direction = group["momentum"] * buffer + direction
        new_p = p * (1 - group["lr"] * group["weight_decay"]) - group["lr"] * direction
        finite = torch.isfinite(_rows(new_p)).all(dim=1)
        self._count("nonfinite_updates", ok & ~finite)  # skipped rather than written as NaN/inf
        ok = ok & finite
        all_ok = bool(ok.all())
        if group["momentum"] > 0:
            if "momentum_buffer" not in state:
                state["momentum_buffer"] = torch.zeros_like(p)
            _assign(state["momentum_buffer"], direction, ok, all_ok)
        _assign(p, new_p, ok, all_ok)

    def _stacked_direction(self, grad: torch.Tensor, state: dict[str, Any], group: dict[str, Any],
                           ok: torch.Tensor, all_ok: bool) -> torch.Tensor:
        """Accumulate every run's L and R (where ``ok``), refresh their roots on schedule, return
        L^-pL G R^-pR per run. ``grad``: (S, m, n); the result has its shape."""
        roots: dict[str, torch.Tensor | None] = {"L": None, "R": None}
        refresh = ok & ((state["step"] - self._factor_start(state) - 1) % group["update_freq"] == 0)  # (S,)
        for side, power in zip("LR", EXPONENTS[group["exponent"]]):
            if power is None:
                continue
            g = grad if side == "L" else grad.transpose(1, 2)  # (S, rows, cols)
            rows, diagonal = g.shape[1], g.shape[1] > group["max_precond_dim"]
            if side not in state:  # roots start as the identity: the fallback if the first root fails
                state[side] = grad.new_zeros((self.runs, rows) if diagonal else (self.runs, rows, rows))
                eye = grad.new_ones(self.runs, rows)
                state[f"{side}_root"] = eye if diagonal else torch.diag_embed(eye)
            beta, alpha = (1.0, 1.0) if group["statistics"] == "sum" else (group["beta2"], 1 - group["beta2"])
            if diagonal:
                new = state[side] * beta + (g * g).sum(dim=2) * alpha
            else:
                new = torch.baddbmm(state[side], g, g.transpose(1, 2), beta=beta, alpha=alpha)
            _assign(state[side], new, ok, all_ok)
            if bool(refresh.any()):
                self._refresh_roots(state, side, power, group, refresh)
            roots[side] = state[f"{side}_root"]
        out = grad
        if roots["L"] is not None:
            out = roots["L"] @ out if roots["L"].ndim == 3 else roots["L"][:, :, None] * out
        if roots["R"] is not None:
            out = out @ roots["R"] if roots["R"].ndim == 3 else out * roots["R"][:, None, :]
        return out

    @staticmethod
    def _factor_start(state: dict[str, Any]) -> torch.Tensor | int:
        """Every run's step count at the last ``reset_preconditioner`` ((S,), like ``state["step"]``), or
        0. ``load_state_dict`` casts every state tensor but "step" to the parameter's dtype (torch's
        rule), so it is cast back here: step counts are integers, exact in float32 below 2^24."""
        start = state.get("factor_start", 0)
        return start.to(dtype=state["step"].dtype, device=state["step"].device) if torch.is_tensor(start) else start

    def _refresh_roots(self, state: dict[str, Any], side: str, power: float, group: dict[str, Any],
                       runs: torch.Tensor) -> None:
        """Recompute the roots of the runs where ``runs`` (S,) holds: batched, then run by run
        (``Shampoo._refresh_root``, with its float64 retry) for any run the batched pass got wrong."""
        start = time.perf_counter()
        index = runs.nonzero().flatten()
        self._count("root_computations", runs)
        redo = index.tolist()
        try:
            roots = inverse_roots(state[side][index], power, group["epsilon"], group["epsilon_mode"],
                                  ROOT_DTYPES[group["root_dtype"]])
            good = torch.isfinite(_rows(roots)).all(dim=1)
            state[f"{side}_root"][index[good]] = roots[good]
            redo = index[~good].tolist()
        except RuntimeError:  # torch.linalg.LinAlgError: some run's eigh failed; redo them all one by one
            pass
        self.root_time_s += time.perf_counter() - start
        for s in redo:
            self._refresh_one(state, side, power, group, s)

    def _refresh_one(self, state: dict[str, Any], side: str, power: float, group: dict[str, Any], s: int) -> None:
        """Run s's root through ``Shampoo._refresh_root`` (the per-parameter path), counted for run s."""
        before = {name: getattr(self, name) for name in ("root_failures", "root_retries", "root_computations")}
        one = {side: state[side][s], f"{side}_root": state[f"{side}_root"][s]}  # views: copy_ writes the stack
        super()._refresh_root(one, side, power, group)
        self.run_counters["root_failures"][s] += self.root_failures - before["root_failures"]
        self.run_counters["root_retries"][s] += self.root_retries - before["root_retries"]
        self.root_computations = before["root_computations"]

    def _adagrad(self, grad: torch.Tensor, state: dict[str, Any], eps: float, ok: torch.Tensor,
                 all_ok: bool) -> torch.Tensor:
        """Diagonal Adagrad's direction; the sums of the runs where ``ok`` holds are updated."""
        if "adagrad_sum" not in state:
            state["adagrad_sum"] = torch.zeros_like(grad)
        _assign(state["adagrad_sum"], torch.addcmul(state["adagrad_sum"], grad, grad), ok, all_ok)
        return grad / (state["adagrad_sum"].sqrt() + eps)

    def _graft(self, grad: torch.Tensor, state: dict[str, Any], group: dict[str, Any], ok: torch.Tensor,
               all_ok: bool) -> torch.Tensor:
        """``Shampoo._graft_direction`` per run: each run's own statistics and step count."""
        if group["grafting"] == "sgd":
            return grad
        if group["grafting"] == "adagrad":
            return self._adagrad(grad, state, group["graft_eps"], ok, all_ok)
        beta1, beta2 = group["graft_beta1"], group["graft_beta2"]
        step = _per_run(state["step"], grad).to(torch.float64)  # bias corrections in float64, as Shampoo's
        if "graft_m" not in state:
            state["graft_m"], state["graft_v"] = torch.zeros_like(grad), torch.zeros_like(grad)
        _assign(state["graft_m"], state["graft_m"] * beta1 + grad * (1 - beta1), ok, all_ok)
        _assign(state["graft_v"], torch.addcmul(state["graft_v"] * beta2, grad, grad, value=1 - beta2), ok, all_ok)
        m_hat = state["graft_m"] / (1 - beta1 ** step).to(grad.dtype)  # Python floats, rounded once
        v_hat = state["graft_v"] / (1 - beta2 ** step).to(grad.dtype)
        return m_hat / (v_hat.sqrt() + group["graft_eps"])
