"""Powerpropagation as a reparameterization of the model: train v of ``w = v·|v|^(α−1)``.

Powerprop (Schwarz et al., NeurIPS 2021) writes each ``nn.Linear`` weight as ``w = sign(v)|v|^α``
and trains ``v``. To first order that is a preconditioned optimizer on ``w``: the derivation, and
that optimizer form (``PowerpropSGD``, ``PowerpropAdam``), are in ``optbias.optim.powerprop``.
Here: the parametrization, applying it to a model, and reading the effective weights back as a
plain state_dict (so evaluation and pruning never know which form produced them).
"""

from __future__ import annotations

import re

import torch
from torch import Tensor, nn
from torch.nn.utils import parametrize

from ..optim.powerprop import check_alpha

__all__ = ["PowerProp", "effective_weights", "powerprop_reparametrize", "to_plain_state_dict"]


# --------------------------------------------------------------------------- reparameterization
class PowerProp(nn.Module):
    """Parametrization ``v ↦ w = v·|v|^(α−1)`` for ``torch.nn.utils.parametrize``.

    ``forward`` is computed as ``sign(v)|v|^α`` (same values), because ``v·|v|^(α−1)`` has a
    0·∞ = NaN gradient at ``v = 0`` when 1 < α < 2. α = 1 is the identity, so the plain model
    is recovered bit for bit.
    """

    def __init__(self, alpha: float) -> None:
        super().__init__()
        self.alpha = check_alpha(alpha)

    def forward(self, v: Tensor) -> Tensor:
        if self.alpha == 1.0:
            return v
        return torch.sign(v) * v.abs().pow(self.alpha)

    def right_inverse(self, w: Tensor) -> Tensor:
        """``v = sign(w)|w|^(1/α)``: registering then starts training from the *same* w."""
        if self.alpha == 1.0:
            return w
        return torch.sign(w) * w.abs().pow(1.0 / self.alpha)

    def extra_repr(self) -> str:
        return f"alpha={self.alpha}"


def powerprop_reparametrize(model: nn.Module, alpha: float) -> nn.Module:
    """Reparameterize, in place, the ``weight`` of every ``nn.Linear`` as ``w = v·|v|^(α−1)``.

    Biases stay plain (Schwarz et al., 2021). The effective weights equal the old ones (up to
    rounding of the power round trip), so the reparameterized model starts as the same function.
    Returns ``model`` for chaining.
    """
    alpha = check_alpha(alpha)
    linears = [m for m in model.modules() if isinstance(m, nn.Linear)]
    for module in linears:
        if parametrize.is_parametrized(module, "weight"):
            raise ValueError("model already has a parametrization on a Linear weight; "
                             "powerprop_reparametrize must be applied to a plain model once")
    for module in linears:
        parametrize.register_parametrization(module, "weight", PowerProp(alpha))
    return model


def effective_weights(model: nn.Module) -> dict[str, Tensor]:
    """The weights ``w`` the network actually uses, for every ``nn.Linear``, keyed like a plain
    model's state_dict (``"hidden_layers.0.weight"``); detached copies, whether or not reparametrized."""
    return {f"{name}.weight" if name else "weight": module.weight.detach().clone()
            for name, module in model.named_modules() if isinstance(module, nn.Linear)}


_PARAMETRIZED_KEY = re.compile(r"^(?:(?P<prefix>.*)\.)?parametrizations\.(?P<tensor>[^.]+)\.original\d*$")


def to_plain_state_dict(model: nn.Module) -> dict[str, Tensor]:
    """State dict of the *un*-parametrized model, so pruning/evaluation code can load it into a
    plain ``MLP`` with ``strict=True``: each ``X.parametrizations.T.original`` entry becomes
    ``X.T`` holding the effective tensor; everything else is copied as is."""
    out: dict[str, Tensor] = {}
    for key, value in model.state_dict().items():
        match = _PARAMETRIZED_KEY.match(key)
        if match is None:
            out[key] = value.detach().clone()
            continue
        prefix, tensor_name = match["prefix"], match["tensor"]
        plain_key = f"{prefix}.{tensor_name}" if prefix else tensor_name
        if plain_key not in out:  # a multi-tensor right_inverse stores original0, original1, ...
            module = model.get_submodule(prefix) if prefix else model
            out[plain_key] = getattr(module, tensor_name).detach().clone()
    return out
