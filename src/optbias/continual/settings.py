"""The optional train settings that change a run beyond its seed: batch order and preconditioner resets.

Two keys of a run's ``train`` block (``RunSpec["train"]``) that most runs do not have. They are
absent from every spec that does not use them, never filled with a default, so that the spec of
every existing run, which Snakemake compares as the training rules' params, stays the same text:

* ``batch_order`` (an integer >= 1; absent means 0): which batch order the run draws. The initial
  weights depend on the seed only (``optbias.models.init_model``), so a run with ``batch_order: 1``
  starts from the same weights as its ``batch_order``-less twin and differs from it in the order of
  its minibatches only: the noise floor of claim 9 (config ``noise_floor``, the ``<name>-reorder``
  runs of ``optbias.config``).
* ``reset_preconditioner: true`` (absent means false): at every task boundary (before task i > 0)
  call the optimizer's ``reset_preconditioner()`` (Shampoo's: ``optim/shampoo.py``), which forgets
  the Kronecker factor statistics only, unlike ``reset_optimizer``, which rebuilds the whole optimizer.

This module imports no torch: the config check (``optbias.config.check``, run when the Snakefile
is parsed) uses it as the training loops (``train.py``, ``batched.py``) do.
"""

from __future__ import annotations

from typing import Any

from .. import optim

# The generator of run (seed, k) is seeded seed + 1 + BATCH_ORDER_STRIDE * k. k = 0 is every run's
# historical seed + 1 (unchanged). The stride is a prime larger than any seed the configs use
# (0-4, validation seeds 1000-1001), so no other seed's batch order is met: seed + 1 + stride * k
# equals seed' + 1 for no pair of seeds below the stride.
BATCH_ORDER_STRIDE = 1_000_003
RESET_METHOD = "reset_preconditioner"  # the optimizer method the setting reset_preconditioner calls


def batch_order(train: dict[str, Any]) -> int:
    """The batch order of a run's ``train`` settings: ``train["batch_order"]``, or 0 when absent.

    Raises ``ValueError`` naming the fix when the value is not an integer >= 0 (a boolean is not).
    """
    value = train.get("batch_order", 0)
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise ValueError(f"train.batch_order is {value!r}; give an integer >= 1 (another batch order from the "
                         "same seed), or leave it out for the seed's own order")
    return value


def batch_seed(seed: int, order: int = 0) -> int:
    """The seed of the batch-order generator of a run with ``seed`` and batch order ``order``:
    ``seed + 1 + BATCH_ORDER_STRIDE * order`` (``seed + 1`` when ``order`` is 0, as every run before
    batch orders existed). The one rule that ``train.train_run`` and ``batched.train_batched`` use.
    Raises ``ValueError`` for a negative ``order``."""
    if order < 0:
        raise ValueError(f"batch order {order} is negative; give an integer >= 0")
    return int(seed) + 1 + BATCH_ORDER_STRIDE * int(order)


def run_batch_seed(spec: dict[str, Any]) -> int:
    """``batch_seed`` of a run spec: its seed and its ``train.batch_order`` (0 when absent)."""
    return batch_seed(int(spec["seed"]), batch_order(spec["train"]))


def resets_preconditioner(train: dict[str, Any]) -> bool:
    """Whether a run's ``train`` settings ask for ``reset_preconditioner`` (absent means false).
    Raises ``ValueError`` when the value is not true or false."""
    value = train.get("reset_preconditioner", False)
    if not isinstance(value, bool):
        raise ValueError(f"train.reset_preconditioner is {value!r}; set it to true or false")
    return value


def check(name: str, optimizer_cfg: dict[str, Any], train: dict[str, Any]) -> None:
    """Check the optional settings of one optimizer entry's runs before anything trains.

    ``name``: the entry's name (in the message); ``optimizer_cfg``: its registry entry
    (``{"type": ..., "lr": ...}``); ``train``: its runs' train settings. Raises ``ValueError``
    naming the key and the fix for a bad ``batch_order`` or ``reset_preconditioner``, and when
    ``reset_preconditioner`` is set for an optimizer type without a ``reset_preconditioner()``
    method (a registry type is looked up in its source, without importing torch).
    """
    batch_order(train)
    if resets_preconditioner(train) and not optim.has_method(optimizer_cfg.get("type"), RESET_METHOD):
        raise ValueError(f"{name}: train.reset_preconditioner is true, but optimizer type "
                         f"{optimizer_cfg.get('type')!r} has no {RESET_METHOD}() method (shampoo has one); "
                         "remove the setting, or use train.reset_optimizer: true to rebuild the whole optimizer")
