"""The MLP used by every experiment: small enough for CPUs, with hidden activations exposed.

The probes (effective rank, cross-class similarity, linear probes) read the post-ReLU
activations of each hidden layer, so ``forward_with_hidden`` returns them next to the logits.
The width comes from the config's ``model.hidden`` (required by the schema); nothing here has a
default width of its own.
"""

from __future__ import annotations

import torch
from torch import nn

IN_FEATURES = 784   # flattened 28 x 28 MNIST-format images
NUM_CLASSES = 10    # one shared head over the ten digits


class MLP(nn.Module):
    """``in_features -> hidden[0] -> ... -> hidden[-1] -> num_classes`` with ReLU between layers.

    Raises ``ValueError`` when ``hidden`` is empty.
    """

    def __init__(self, in_features: int, hidden: tuple[int, ...] | list[int], num_classes: int) -> None:
        super().__init__()
        if len(hidden) < 1:
            raise ValueError("MLP needs at least one hidden layer (model.hidden must not be empty)")
        widths = [in_features, *hidden]
        self.hidden_layers = nn.ModuleList(nn.Linear(a, b) for a, b in zip(widths[:-1], widths[1:]))
        self.head = nn.Linear(widths[-1], num_classes)

    def forward_with_hidden(self, x: torch.Tensor) -> tuple[torch.Tensor, list[torch.Tensor]]:
        """``x``: (N, in_features). Returns the logits (N, classes) and every hidden layer's
        post-ReLU activation, (N, hidden[k]) for layer k."""
        hidden = []
        for layer in self.hidden_layers:
            x = torch.relu(layer(x))
            hidden.append(x)
        return self.head(x), hidden

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.forward_with_hidden(x)[0]


def mlp(model_cfg: dict, in_features: int = IN_FEATURES, num_classes: int = NUM_CLASSES) -> MLP:
    """An MLP of the config's ``model`` block (``{"hidden": [256, 256]}``), not initialized by any seed."""
    return MLP(in_features, model_cfg["hidden"], num_classes)


def init_model(seed: int, model_cfg: dict, in_features: int = IN_FEATURES, num_classes: int = NUM_CLASSES) -> MLP:
    """Initialize on the CPU from the seed alone, so every optimizer and device starts identically."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return mlp(model_cfg, in_features, num_classes)
