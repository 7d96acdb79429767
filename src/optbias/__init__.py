"""optbias: optimizers as inductive biases (a reproduction of Pascanu et al., 2025)."""

__version__ = "0.1.0"
