"""Orthogonal Weight Modification (OWM; Zeng, Chen, Cui & Yu, "Continual learning of context-dependent
processing in neural networks", Nature Machine Intelligence 1, 364-372, 2019; arXiv:1810.01256).

Each linear layer keeps a projector P built from the inputs it has seen, over every task and never
reset, and steps along its gradient multiplied by P from the input side:

    P = alpha (A + alpha I)^-1,    A = sum_i xbar_i xbar_i^T,    W <- W - lr * G P

with ``xbar_i`` the layer's input averaged over batch i (the paper's recursive least squares form,
Methods, with the layer's mean input per batch as in the authors' code). P starts as I and is
updated batch by batch by Sherman-Morrison, without any inverse:

    k = P xbar,    P <- P - k k^T / (alpha + xbar^T k)

so after K batches at a constant alpha it equals the closed form above exactly (in exact arithmetic;
tests/test_owm.py). For a torch ``nn.Linear`` (W of shape (m, n), y = x W^T + b) the bias is folded
in as an input of 1 (``fold_bias``, the authors' TensorFlow code): xbar is [mean x; 1], of length
n + 1, and the projected direction of [W | b] is [G | g_b] P.

Reading it as a preconditioner (the point of this project): P is a one-sided Kronecker
preconditioner on accumulated *input* statistics at exponent -1, where Shampoo's right factor is
one on accumulated *gradient* statistics at exponent -1/4 (optbias.optim.shampoo). As alpha -> 0,
G P is orthogonal to every stored input (the layer's response to old inputs stops changing:
tests/test_owm.py); as alpha -> infinity, P -> I and OWM is SGD.

Options:

* ``alpha`` (> 0): the damping, OWM's one knob between plasticity (large) and retention (small).
* ``alpha_final`` and ``schedule_steps``: alpha decays geometrically from ``alpha`` to
  ``alpha_final`` over every period of ``schedule_steps`` steps, restarting at each period (the
  authors' within-task schedule, alpha * (alpha_final / alpha)^lambda with lambda the fraction of
  the period done; set ``schedule_steps`` to the steps of one task). Both None (default): constant.
  With a schedule P is no longer exactly the closed form: each update uses the alpha of its step.
* ``momentum``: heavy ball on the projected direction (the authors' disjoint-MNIST code, 0.9).
* ``fold_bias``: fold each layer's bias into its projector (default), or step it by plain SGD.

A parameter outside every attached ``nn.Linear`` steps by SGD (with momentum). P is kept in the
optimizer state (``state_dict``), so a resumed run continues with the same memory; it must never be
rebuilt between tasks (``train.reset_optimizer: true`` would erase the memory). Cost per step and layer: one rank-1 update of an (n+1) x (n+1)
matrix and one (m, n+1) x (n+1, n+1) product; memory (n+1)^2 floats.
"""

from __future__ import annotations

import weakref
from collections.abc import Callable, Iterable
from typing import Any

import torch

from . import checks
from .base import evaluate_closure
from .gradient_factors import MAX_RECORDS, remove_hooks


def validate(group: dict[str, Any]) -> None:
    """Raise ValueError naming the first bad OWM option, what it may be, and the fix (``checks.owm``)."""
    checks.owm(group)


def alpha_at(group: dict[str, Any], step: int) -> float:
    """The damping at ``step`` (1-based): ``alpha`` when constant, else
    alpha * (alpha_final / alpha)^lambda with lambda = ((step - 1) mod schedule_steps) / schedule_steps."""
    if group["alpha_final"] is None:
        return float(group["alpha"])
    fraction = ((step - 1) % group["schedule_steps"]) / group["schedule_steps"]
    return float(group["alpha"]) * (group["alpha_final"] / group["alpha"]) ** fraction


def rls_update(projector: torch.Tensor, x: torch.Tensor, alpha: float) -> None:
    """In place, P <- P - (P x)(P x)^T / (alpha + x^T P x): Sherman-Morrison for adding x x^T to A
    in P = alpha (A + alpha I)^-1 (OWM, Methods). Shapes: ``projector`` (n, n) symmetric, ``x`` (n,).
    The result is re-symmetrized, (P + P^T) / 2, against drift in float32."""
    k = projector @ x  # (n,)
    projector.sub_(torch.outer(k, k), alpha=1.0 / (alpha + float(x @ k)))
    projector.copy_((projector + projector.T) / 2)


class InputMeans:
    """Records the batch-mean input of every hooked ``nn.Linear`` on each forward pass with gradients
    enabled (evaluation under ``no_grad`` records nothing). ``take(weight)`` returns the means
    since the last take, (passes, n), or None; at most ``MAX_RECORDS`` (the newest) are kept. Memory: n floats per layer and pass. The hooks go
    with ``close()`` or when the object is garbage-collected."""

    def __init__(self, layers: Iterable[torch.nn.Linear]) -> None:
        self._means: dict[int, list[torch.Tensor]] = {}
        means, handles = self._means, []
        for layer in layers:
            def hook(module: torch.nn.Module, args: tuple[Any, ...], output: torch.Tensor,
                     key: int = id(layer.weight)) -> None:
                if torch.is_grad_enabled() and module.weight.requires_grad:
                    x = args[0].detach()
                    entries = means.setdefault(key, [])
                    entries.append(x.reshape(-1, x.shape[-1]).mean(0))
                    del entries[:-MAX_RECORDS]  # passes that never reached a step: keep the newest only
            handles.append(layer.register_forward_hook(hook))
        self._finalizer = weakref.finalize(self, remove_hooks, handles)

    def take(self, weight: torch.Tensor) -> torch.Tensor | None:
        entries = self._means.pop(id(weight), [])
        return torch.stack(entries) if entries else None

    def close(self) -> None:
        """Remove the hooks and forget the recorded means."""
        self._finalizer()
        self._means.clear()


def linear_layers(model: torch.nn.Module, params: set[int]) -> list[torch.nn.Linear]:
    """The ``nn.Linear`` modules of ``model`` whose weight is among ``params`` (ids), in order."""
    return [m for m in model.modules() if isinstance(m, torch.nn.Linear) and id(m.weight) in params]


class OWM(torch.optim.Optimizer):
    """Orthogonal Weight Modification; see the module docstring for the algorithm and options.

    Call ``attach(model)`` after building it (``optbias.optim.registry.build`` does): the projectors
    need each linear layer's inputs. ``step`` raises ``RuntimeError`` without it.
    """

    def __init__(self, params: Iterable[torch.Tensor] | Iterable[dict[str, Any]], lr: float = 0.1, *,
                 alpha: float = 1.0, alpha_final: float | None = None, schedule_steps: int | None = None,
                 momentum: float = 0.0, fold_bias: bool = True) -> None:
        defaults = dict(lr=lr, alpha=alpha, alpha_final=alpha_final, schedule_steps=schedule_steps,
                        momentum=momentum, fold_bias=fold_bias)
        validate(defaults)
        super().__init__(params, defaults)
        self._layers: list[torch.nn.Linear] | None = None
        self._means: InputMeans | None = None

    def add_param_group(self, param_group: dict[str, Any]) -> None:
        super().add_param_group(param_group)
        validate(self.param_groups[-1])

    def attach(self, model: torch.nn.Module) -> None:
        """Hook ``model``'s linear layers whose weight this optimizer trains (a second call replaces the first)."""
        self.close()
        ids = {id(p) for g in self.param_groups for p in g["params"]}
        self._layers = linear_layers(model, ids)
        self._means = InputMeans(self._layers)

    def close(self) -> None:
        """Remove the hooks of ``attach``."""
        if self._means is not None:
            self._means.close()
            self._means = None

    def _group_of(self, p: torch.Tensor) -> dict[str, Any]:
        return next(g for g in self.param_groups if any(q is p for q in g["params"]))

    @torch.no_grad()
    def step(self, closure: Callable[[], torch.Tensor] | None = None) -> torch.Tensor | None:
        """Update each layer's projector with the inputs of this step's passes, then step along the
        projected gradient. Shapes per layer: W (m, n), b (m,), P (n+1, n+1) folded or (n, n)."""
        loss = evaluate_closure(closure)
        if self._means is None:
            raise RuntimeError("OWM projects each linear layer's gradient with that layer's inputs: call "
                               "optimizer.attach(model) after building it (optbias.optim.registry.build does)")
        done: set[int] = set()
        for layer in self._layers:
            weight, bias = layer.weight, layer.bias
            group = self._group_of(weight)
            fold = group["fold_bias"] and bias is not None and bias.requires_grad
            means = self._means.take(weight)
            if weight.grad is None:
                continue
            state = self.state[weight]
            state["step"] = state.get("step", 0) + 1
            grad = weight.grad if not fold else torch.cat(
                [weight.grad, bias.grad[:, None] if bias.grad is not None else weight.grad.new_zeros(len(bias), 1)], 1)
            if "P" not in state:  # P(0) = I
                state["P"] = torch.eye(grad.shape[1], dtype=grad.dtype, device=grad.device)
            alpha = alpha_at(group, state["step"])
            for x in [] if means is None else means:  # one RLS update per pass (batch), then the projection
                x = x.to(grad.dtype)
                rls_update(state["P"], torch.cat([x, x.new_ones(1)]) if fold else x, alpha)
            direction = grad @ state["P"]  # (m, n+1) or (m, n)
            if fold:
                self._apply(weight, direction[:, :-1], group)
                self._apply(bias, direction[:, -1], group, state_of=weight, key="bias_momentum")
                done.add(id(bias))
            else:
                self._apply(weight, direction, group)
            done.add(id(weight))
        for group in self.param_groups:  # everything else: SGD
            for p in group["params"]:
                if p.grad is not None and id(p) not in done:
                    self._apply(p, p.grad, group)
        return loss

    def _apply(self, p: torch.Tensor, direction: torch.Tensor, group: dict[str, Any],
               state_of: torch.Tensor | None = None, key: str = "momentum_buffer") -> None:
        """p <- p - lr * (momentum * buffer + direction), the buffer kept in the state of ``state_of`` (default p)."""
        if group["momentum"] > 0:
            state = self.state[p if state_of is None else state_of]
            if key in state:
                direction = state[key].mul_(group["momentum"]).add_(direction)
            else:
                direction = state[key] = direction.clone()
        p.sub_(direction, alpha=group["lr"])
