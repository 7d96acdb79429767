"""Optimizers: one registry (registry.py) plus the algorithms we write ourselves (Shampoo, Powerprop)."""

from .registry import ELEMENTWISE, REGISTRY, OptimizerConfigError, build, check, known, relative_step_cost

__all__ = ["ELEMENTWISE", "REGISTRY", "OptimizerConfigError", "build", "check", "known", "relative_step_cost"]
