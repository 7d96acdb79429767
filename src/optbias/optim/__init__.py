"""Optimizers: one registry (registry.py: a row per type) plus the algorithms we write ourselves (Shampoo, Powerprop)."""

from .registry import (BATCHABLE, TYPES, OptimizerConfigError, OptimizerType, build, check, has_method, known,
                       relative_step_cost)

__all__ = ["BATCHABLE", "TYPES", "OptimizerConfigError", "OptimizerType", "build", "check", "has_method", "known",
           "relative_step_cost"]
