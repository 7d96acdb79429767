"""Option checks of registry types that need no torch: ``registry.check`` runs them on a config entry
when the Snakefile is parsed (a bad value stops the run before any job), and the optimizers run the
same checks on their param groups. Each takes a mapping of options, checks only the keys present, and
raises ``ValueError`` naming the option, what it may be, and the fix.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from typing import Any


def is_number(value: Any) -> bool:
    """A finite int or float, not a bool (YAML gives bools for yes/no)."""
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _check(owner: str, options: Mapping[str, Any], rules: dict[str, tuple[Callable[[Any], bool], str]]) -> None:
    for name, (ok, allowed) in rules.items():
        if name in options and not ok(options[name]):
            raise ValueError(f"{owner}: invalid {name}={options[name]!r}; allowed: {allowed}")


def owm(options: Mapping[str, Any]) -> None:
    """OWM's options (optbias.optim.owm): lr >= 0, alpha > 0, alpha_final > 0 or None together with
    schedule_steps >= 1 or None, momentum in [0, 1), fold_bias a bool."""
    _check("OWM", options, {
        "lr": (lambda v: is_number(v) and v >= 0, "a number >= 0"),
        "alpha": (lambda v: is_number(v) and v > 0, "a number > 0 (the damping of A + alpha I)"),
        "alpha_final": (lambda v: v is None or (is_number(v) and v > 0), "a number > 0, or null for a constant alpha"),
        "schedule_steps": (lambda v: v is None or (is_int(v) and v >= 1),
                           "an integer >= 1 (the steps of one task), or null for a constant alpha"),
        "momentum": (lambda v: is_number(v) and 0 <= v < 1, "a number in [0, 1)"),
        "fold_bias": (lambda v: isinstance(v, bool), "true or false"),
    })
    final, steps = options.get("alpha_final"), options.get("schedule_steps")
    if (final is None) != (steps is None):
        raise ValueError("OWM: alpha_final and schedule_steps go together (a decay from alpha to alpha_final over "
                         f"schedule_steps steps); got alpha_final={final!r}, schedule_steps={steps!r}. Set both, "
                         "or neither for a constant alpha")


def memory_shampoo(options: Mapping[str, Any]) -> None:
    """Memory Shampoo's own options (optbias.optim.memory_shampoo): memory_power in [0, 1],
    memory_alpha > 0, shampoo_factors a bool. Shampoo's options are checked by Shampoo."""
    _check("MemoryShampoo", options, {
        "memory_power": (lambda v: is_number(v) and 0 <= v <= 1, "a number in [0, 1] (0: Shampoo, 1: OWM's projector)"),
        "memory_alpha": (lambda v: is_number(v) and v > 0, "a number > 0 (the damping of S + alpha I)"),
        "shampoo_factors": (lambda v: isinstance(v, bool), "true or false"),
    })


# The reference regularizers an optimizer entry may carry (optbias.continual.regularizers): name ->
# what its strength is in Avalanche 0.6.
REGULARIZERS: dict[str, str] = {
    "ewc": "EWCPlugin's ewc_lambda",
    "si": "SynapticIntelligencePlugin's si_lambda",
}
REGULARIZER_KEYS = ("regularizer", "regularizer_strength")


def regularizer(options: Mapping[str, Any]) -> None:
    """The two keys that put a reference regularizer on any optimizer entry: ``regularizer`` one of
    ``REGULARIZERS`` (ewc, si) and ``regularizer_strength`` a number > 0 (its lambda), both or neither.
    Checks nothing when neither is present."""
    if "regularizer" not in options:
        if "regularizer_strength" in options:
            raise ValueError(f"regularizer_strength={options['regularizer_strength']!r} without a regularizer; add "
                             f"`regularizer: {' | '.join(REGULARIZERS)}` to the entry, or remove regularizer_strength")
        return
    kind = options["regularizer"]
    if kind not in REGULARIZERS:
        raise ValueError(f"unknown regularizer {kind!r}; use one of {', '.join(REGULARIZERS)} "
                         "(Avalanche's EWC or Synaptic Intelligence), or remove the key for none")
    strength = options.get("regularizer_strength")
    if not (is_number(strength) and strength > 0):
        what = "is missing" if "regularizer_strength" not in options else f"is {strength!r}"
        raise ValueError(f"regularizer {kind}: regularizer_strength {what}; set it to a number > 0 "
                         f"({REGULARIZERS[kind]}), e.g. `regularizer_strength: 100`")
