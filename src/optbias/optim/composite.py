"""Muon on the hidden weights, AdamW on the rest, as one optimizer (registry type ``muon``).

Muon (Jordan et al. 2024, https://kellerjordan.github.io/posts/muon/) replaces a 2-D weight's
momentum-SGD update M by its nearest semi-orthogonal matrix (≈ U·Vᵀ of M = U·S·Vᵀ, five quintic
Newton-Schulz iterations), scaled by sqrt(max(1, fan_out/fan_in)). It is meant for the hidden
layers only: biases (1-D) and the output layer are trained by AdamW, as in Jordan's reference
implementation. ``torch.optim.Muon`` refuses anything but 2-D parameters, so a composite is
needed; this adapter makes it one ``torch.optim.Optimizer``, and so one registry entry, one config
line, one state_dict.

Precision of the Newton-Schulz iteration (``ns_dtype``): ``torch.optim.Muon`` runs it in bfloat16,
which is fast on GPUs but emulated on CPUs without bfloat16 units, where it is far slower than the
same products in float32. The default, ``"float32"``, runs the same update with the iteration in
float32 (``Float32Muon``: the same polynomial, rounded less); ``"bfloat16"`` is ``torch.optim.Muon``
itself.

Which parameters Muon gets: the builders pass ``model.parameters()``, a flat list, not names. The
rule is positional: **every 2-D parameter except the last 2-D one** goes to Muon; the last 2-D
parameter (the head's weight) and every parameter of another shape go to AdamW. For
``optbias.models.MLP`` the order is hidden_layers[0].weight, .bias, ..., head.weight, head.bias, so
Muon gets exactly the hidden layers' weights (tests/test_extending.py checks this). A model whose
head is not its last 2-D parameter needs another rule. Param-group dicts are refused.

Cost: the iteration, per m x n hidden weight (m <= n), is five steps of X·Xᵀ, A·A and B·X, i.e.
5 (2 m²n + m³) multiply-adds, against AdamW's O(mn) element-wise update. To time it on a machine,
``optbias.perf.step.step_time`` with a ``muon`` entry (either ``ns_dtype``); the project's measured
figures are in the generated page docs/performance.md (``optbias bench``).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable

import torch

from .base import evaluate_closure

NS_DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16}


def newton_schulz(g: torch.Tensor, coefficients: tuple[float, float, float], steps: int, eps: float,
                  dtype: torch.dtype) -> torch.Tensor:
    """Jordan's quintic Newton-Schulz iteration in ``dtype``: ``g`` (m, n) -> ≈ U·S'·Vᵀ, S' ∈ ~[0.5, 1.5].

    The same arithmetic as ``torch.optim.Muon`` (which fixes ``dtype`` to bfloat16): scale to
    Frobenius norm 1, then ``steps`` times X <- a·X + (b·A + c·A²)·X with A = X·Xᵀ, on the wide
    orientation (m <= n). Returns a tensor of ``dtype`` and shape (m, n).
    """
    a, b, c = coefficients
    x = g.to(dtype)
    tall = g.size(0) > g.size(1)
    x = x.T if tall else x
    x = x / x.norm().clamp(min=eps)
    for _ in range(steps):
        gram = x @ x.T
        x = torch.addmm(x, torch.addmm(gram, gram, gram, beta=b, alpha=c), x, beta=a)
    return x.T if tall else x


def adjusted_lr(lr: float, adjust_lr_fn: str | None, shape: torch.Size) -> float:
    """Muon's per-matrix step size for a (fan_out A, fan_in B) weight, as ``torch.optim.Muon`` scales it:
    None/"original" lr·sqrt(max(1, A/B)) (Jordan), "match_rms_adamw" lr·0.2·sqrt(max(A, B)) (Moonshot),
    "spectral_unclamped" lr·sqrt(A/B) (Bernstein)."""
    fan_out, fan_in = shape[:2]
    ratio = {None: math.sqrt(max(1.0, fan_out / fan_in)), "original": math.sqrt(max(1.0, fan_out / fan_in)),
             "match_rms_adamw": 0.2 * math.sqrt(max(fan_out, fan_in)),
             "spectral_unclamped": math.sqrt(fan_out / fan_in)}[adjust_lr_fn]
    return lr * ratio


class Float32Muon(torch.optim.Muon):
    """``torch.optim.Muon`` with the Newton-Schulz iteration in float32 instead of bfloat16.

    Same constructor, param groups, state (``momentum_buffer``) and update: decoupled decay
    p <- p·(1 - lr·weight_decay), then p <- p - adjusted_lr·NS(Nesterov momentum). With
    ``ns_dtype = torch.bfloat16`` (a subclass) its steps equal ``torch.optim.Muon``'s bit for bit
    (tests/test_extending.py), so float32 is the only difference.
    """

    ns_dtype: torch.dtype = torch.float32

    @torch.no_grad()
    def step(self, closure: Callable[[], torch.Tensor] | None = None) -> torch.Tensor | None:
        loss = evaluate_closure(closure)
        for group in self.param_groups:
            momentum = group["momentum"]
            for p in group["params"]:
                if p.grad is None:
                    continue
                if p.grad.is_sparse:
                    raise RuntimeError("Muon does not support sparse gradients")
                state = self.state[p]
                if "momentum_buffer" not in state:
                    state["momentum_buffer"] = torch.zeros_like(p.grad, memory_format=torch.preserve_format)
                buf = state["momentum_buffer"]
                buf.lerp_(p.grad, 1 - momentum)
                update = p.grad.lerp(buf, momentum) if group["nesterov"] else buf
                update = newton_schulz(update, group["ns_coefficients"], group["ns_steps"], group["eps"], self.ns_dtype)
                p.mul_(1 - group["lr"] * group["weight_decay"])
                p.add_(update.to(p.dtype), alpha=-adjusted_lr(group["lr"], group["adjust_lr_fn"], p.shape))
        return loss


class MuonAdamW(torch.optim.Optimizer):
    """Muon (``Float32Muon`` or ``torch.optim.Muon``) on the hidden 2-D weights, ``torch.optim.AdamW`` on the rest.

    ``params``: a flat iterable of tensors (``model.parameters()``); the split is described in the
    module docstring. Muon's hyperparameters keep their torch names (``lr``, ``weight_decay``,
    ``momentum``, ``nesterov``, ``ns_steps``, ``adjust_lr_fn``), plus ``ns_dtype`` ("float32" or
    "bfloat16", see the module docstring); AdamW's are prefixed ``adamw_``.
    Defaults: Muon as in Jordan's reference (lr 0.02, momentum 0.95, Nesterov, 5 Newton-Schulz
    steps, no weight decay, "original" lr scaling); AdamW as torch's (lr 1e-3, betas (0.9, 0.999),
    eps 1e-8, weight decay 1e-2), the same as the config's ``adamw`` entry.

    The two torch optimizers share this object's ``param_groups`` (Muon's group first, when there
    is one, then AdamW's) and ``state``, so ``state_dict``/``load_state_dict``, ``zero_grad`` and
    resume (``optbias.continual.runio.restore_optimizer``) see one ordinary optimizer.

    Raises ``TypeError`` for param-group dicts, ``ValueError`` for an empty parameter list, an
    unknown ``ns_dtype`` or an invalid hyperparameter (from torch, e.g. a negative lr).
    """

    def __init__(self, params: Iterable[torch.Tensor], lr: float = 0.02, weight_decay: float = 0.0,
                 momentum: float = 0.95, nesterov: bool = True, ns_steps: int = 5, adjust_lr_fn: str | None = None,
                 ns_dtype: str = "float32", adamw_lr: float = 1e-3, adamw_betas: tuple[float, float] = (0.9, 0.999),
                 adamw_eps: float = 1e-8, adamw_weight_decay: float = 1e-2) -> None:
        params = list(params)
        if any(isinstance(p, dict) for p in params):
            raise TypeError("MuonAdamW takes a flat list of parameters (model.parameters()), not param groups: "
                            "it chooses Muon's parameters itself")
        if not params:
            raise ValueError("MuonAdamW got an empty parameter list")
        if ns_dtype not in NS_DTYPES:
            raise ValueError(f"ns_dtype must be one of {', '.join(NS_DTYPES)}, got {ns_dtype!r}")
        matrices = [i for i, p in enumerate(params) if p.ndim == 2]
        head = matrices[-1] if matrices else None
        hidden = set(matrices) - {head}
        muon_params = [p for i, p in enumerate(params) if i in hidden]
        adamw_params = [p for i, p in enumerate(params) if i not in hidden]
        self._children: list[torch.optim.Optimizer] = []
        if muon_params:
            muon = Float32Muon if ns_dtype == "float32" else torch.optim.Muon
            self._children.append(muon(muon_params, lr=lr, weight_decay=weight_decay, momentum=momentum,
                                       nesterov=nesterov, ns_steps=ns_steps, adjust_lr_fn=adjust_lr_fn))
        self._children.append(torch.optim.AdamW(adamw_params, lr=adamw_lr, betas=adamw_betas, eps=adamw_eps,
                                                weight_decay=adamw_weight_decay))
        # The children's group dicts become this optimizer's groups (the same objects, so a change
        # of group["lr"] reaches the child); the children are then pointed at this one's state.
        super().__init__([g for child in self._children for g in child.param_groups], defaults={})
        self._link()

    def _link(self) -> None:
        """Point every child at this optimizer's groups (in order) and state dict."""
        groups = iter(self.param_groups)
        for child in self._children:
            child.param_groups = [next(groups) for _ in child.param_groups]
            child.state = self.state

    def load_state_dict(self, state_dict: dict) -> None:
        """``Optimizer.load_state_dict`` (which replaces the group dicts and the state), then relink."""
        super().load_state_dict(state_dict)
        self._link()

    @torch.no_grad()
    def step(self, closure: Callable[[], torch.Tensor] | None = None) -> torch.Tensor | None:
        """One Muon step on the hidden weights and one AdamW step on the rest; returns the closure's loss."""
        loss = evaluate_closure(closure)
        for child in self._children:
            child.step()
        return loss
