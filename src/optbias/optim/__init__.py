"""Optimizers: one registry (registry.py) plus the algorithms we write ourselves."""

from .registry import REGISTRY, OptimizerConfigError, build, check, known

__all__ = ["REGISTRY", "OptimizerConfigError", "build", "check", "known"]
