"""Resume state of a training run: what a killed or preempted run needs to continue where it was.

After each task, ``train_run`` saves one file (atomically, ``fileio.atomic_torch_save``) holding

* the run's spec, as canonical JSON: a state saved for another spec is never resumed;
* the model's and the optimizer's state_dicts, the batch-order generator's state, torch's global
  RNG state (CPU, and CUDA when the run is on a GPU) and numpy's legacy global one (which a library
  optimizer may draw from: pytorch_optimizer's Kron does);
* the rows of R (and of R_val) so far, the loss curve, the loss log's open window, the step count,
  the wall time spent so far, and the checkpoint of every finished task;
* once the run has finished, its metrics.json text as well (``result``): a rerun of the job
  restores the finished seeds from here instead of training them again.

Where: next to the run's directory, ``<run dir>.resume.pt`` (``data/runs/permuted/sgd/seed0`` ->
``data/runs/permuted/sgd/seed0.resume.pt``). That file is no output of any rule, so Snakemake's
removal of a failed job's outputs leaves it in place; ``optbias.continual.train.train_runs``
deletes it once every run of the job is complete.

Why it is exact: training draws randomness only from the batch-order generator (and torch's and
numpy's global RNGs, saved too), and every number that goes on is restored bit for bit. So a resumed run's
metrics.json and checkpoints equal an uninterrupted run's byte for byte on the same machine and
thread count, timing aside (tests/test_resume.py).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import torch

from .. import fileio


def state_path(metrics_path: str | Path) -> Path:
    """Where the run that writes ``<run dir>/metrics.json`` keeps its resume state: ``<run dir>.resume.pt``."""
    run_dir = Path(metrics_path).parent
    return run_dir.with_name(run_dir.name + ".resume.pt")


def spec_key(spec: dict[str, Any]) -> str:
    """The spec as canonical JSON (keys sorted): two specs are the same run exactly when these agree."""
    return json.dumps(spec, sort_keys=True)


def save(path: str | Path, state: dict[str, Any]) -> None:
    """Write ``state`` (tensors, and dicts, lists and numbers of them) atomically to ``path``."""
    fileio.atomic_torch_save(state, path)


def load(path: str | Path, spec: dict[str, Any]) -> dict[str, Any] | None:
    """The resume state at ``path`` for ``spec``, or None when there is none to use.

    A state written for another spec (the config changed since), or one that cannot be read (a
    file from another torch version, say), is not used: the run starts from task 0, and a line
    says why. Loaded with ``weights_only=True``.
    """
    path = Path(path)
    if not path.is_file():
        return None
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # noqa: BLE001 -- any unreadable state means: start over
        print(f"resume: ignoring {path}, which cannot be read ({type(err).__name__}: {err}); starting from task 0",
              flush=True)
        return None
    if state.get("spec") != spec_key(spec):
        print(f"resume: ignoring {path}, which was saved for another spec (the config changed); starting from task 0",
              flush=True)
        return None
    return state


def rng_states(device: torch.device) -> dict[str, torch.Tensor]:
    """The global RNG states: torch's on the CPU, and on the device when it is a GPU; numpy's legacy
    one (MT19937) as tensors, so that ``torch.load(weights_only=True)`` reads it back."""
    kind, key, pos, has_gauss, gauss = np.random.get_state()
    states = {"cpu": torch.get_rng_state(), "numpy_key": torch.from_numpy(key.astype(np.int64)),
              "numpy_rest": torch.tensor([pos, has_gauss, gauss], dtype=torch.float64)}
    if device.type == "cuda":
        states["cuda"] = torch.cuda.get_rng_state(device)
    return states


def set_rng_states(states: dict[str, torch.Tensor], device: torch.device) -> None:
    """Restore what ``rng_states`` returned (numpy's too, when the state holds it)."""
    torch.set_rng_state(states["cpu"])
    if "numpy_key" in states:
        pos, has_gauss, gauss = states["numpy_rest"].tolist()
        np.random.set_state(("MT19937", states["numpy_key"].numpy().astype(np.uint32), int(pos), int(has_gauss), gauss))
    if "cuda" in states and device.type == "cuda":
        torch.cuda.set_rng_state(states["cuda"], device)


def restore_optimizer(optimizer: torch.optim.Optimizer, saved: dict[str, Any]) -> None:
    """Load ``saved`` (an optimizer state_dict) into ``optimizer``, keeping every state tensor's dtype.

    ``Optimizer.load_state_dict`` casts floating-point state to its parameter's dtype; statistics
    kept in another precision (float64, say) would lose bits. So the state is loaded, then every
    tensor is put back exactly as saved, on the parameter's device.
    """
    optimizer.load_state_dict(saved)
    params = [p for group in optimizer.param_groups for p in group["params"]]
    for index, entries in saved["state"].items():
        param = params[int(index)]
        for key, value in entries.items():
            if isinstance(value, torch.Tensor) and key != "step":
                optimizer.state[param][key] = value.to(param.device).clone()


def remove(path: str | Path) -> None:
    """Delete a resume state (a run's job is complete); no error when there is none."""
    Path(path).unlink(missing_ok=True)
