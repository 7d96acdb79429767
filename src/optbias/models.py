"""The MLP used by every experiment: small enough for CPUs, with hidden activations exposed.

The probes (effective rank, cross-class similarity, linear probes) read the post-ReLU
activations of each hidden layer, so ``forward_with_hidden`` returns them next to the logits.
"""

from __future__ import annotations

import torch
from torch import nn


class MLP(nn.Module):
    """``in_features -> hidden[0] -> ... -> hidden[-1] -> num_classes`` with ReLU between layers."""

    def __init__(self, in_features: int = 784, hidden: tuple[int, ...] | list[int] = (256, 256),
                 num_classes: int = 10) -> None:
        super().__init__()
        if len(hidden) < 1:
            raise ValueError("MLP needs at least one hidden layer (model.hidden must not be empty)")
        widths = [in_features, *hidden]
        self.hidden_layers = nn.ModuleList(nn.Linear(a, b) for a, b in zip(widths[:-1], widths[1:]))
        self.head = nn.Linear(widths[-1], num_classes)

    def forward_with_hidden(self, x: torch.Tensor) -> tuple[torch.Tensor, list[torch.Tensor]]:
        """Return the logits and the post-ReLU activation of every hidden layer."""
        hidden = []
        for layer in self.hidden_layers:
            x = torch.relu(layer(x))
            hidden.append(x)
        return self.head(x), hidden

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.forward_with_hidden(x)[0]
