"""Optimizers: one registry (registry.py) plus the algorithms we write ourselves (Shampoo, Powerprop)."""

from .registry import (BATCHABLE, ELEMENTWISE, REGISTRY, STACKED, OptimizerConfigError, build, check, has_method,
                       known, relative_step_cost)

__all__ = ["BATCHABLE", "ELEMENTWISE", "REGISTRY", "STACKED", "OptimizerConfigError", "build", "check", "has_method",
           "known", "relative_step_cost"]
