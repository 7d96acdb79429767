"""Resume state of a training run: what a killed or preempted run needs to continue where it was.

After each task, ``train_run`` saves one file (atomically, ``fileio.atomic_torch_save``) holding

* the key it was saved under (``run_key``): the spec, the dataset's and the library's SHA-256,
  torch's version and the device; a state saved under another key is never resumed;
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
deletes it once every run of the job is complete. (A job whose seeds are batched keeps one state
for all of them instead, ``<first run dir>.batched.pt``: ``optbias.continual.batched``.)

Why it is exact: training draws randomness only from the batch-order generator (and torch's and
numpy's global RNGs, saved too), and every number that goes on is restored bit for bit. So a resumed run's
metrics.json and checkpoints equal an uninterrupted run's byte for byte on the same machine and
thread count, timing aside (tests/test_resume.py).
"""

from __future__ import annotations

import hashlib
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


FORMAT = 1  # the layout of a state file; a state of another format is not used


def run_key(spec: dict[str, Any], dataset_path: str | Path, device: torch.device) -> dict[str, Any]:
    """What a state must have been saved under to be resumed: the spec (canonical JSON), the
    dataset's SHA-256 (the spec does not say which split of which data), the SHA-256 of the library's
    source (training does not rerun when code changes, so `--forcerun train` after a fix must not
    restore the old results), the torch version, the device and the state format."""
    return {"format": FORMAT, "spec": json.dumps(spec, sort_keys=True),
            "dataset_sha256": fileio.sha256_file(dataset_path), "code_sha256": source_sha256(),
            "torch": str(torch.__version__), "device": str(device)}


def source_sha256() -> str:
    """SHA-256 over every .py file of the optbias package (relative path and bytes, in sorted order)."""
    root = Path(__file__).resolve().parents[1]
    digest = hashlib.sha256()
    for path in sorted(root.rglob("*.py")):
        digest.update(str(path.relative_to(root)).encode() + b"\0" + path.read_bytes() + b"\0")
    return digest.hexdigest()


def save(path: str | Path, state: dict[str, Any]) -> None:
    """Write ``state`` (tensors, and dicts, lists and numbers of them) atomically to ``path``."""
    fileio.atomic_torch_save(state, path)


def load(path: str | Path, key: dict[str, Any]) -> dict[str, Any] | None:
    """The resume state at ``path`` saved under ``key`` (``run_key``), or None when there is none to use.

    A state saved under another key (the config, the data, the code, torch or the device changed
    since), or one that cannot be read, is not used: the run starts from task 0, and a line says
    why. Loaded with ``weights_only=True``.
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
    saved = state.get("key") if isinstance(state, dict) else None
    if saved != key:
        changed = [k for k in key if not isinstance(saved, dict) or saved.get(k) != key[k]]
        print(f"resume: ignoring {path}, which was saved for another {', '.join(changed)} "
              "(spec: the config changed); starting from task 0", flush=True)
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
    tensor, also inside lists and dicts (SOAP's and Kron's factors), is put back exactly as saved,
    on the parameter's device. ``step`` stays as ``load_state_dict`` leaves it (on the CPU).
    """
    optimizer.load_state_dict(saved)
    params = [p for group in optimizer.param_groups for p in group["params"]]
    for index, entries in saved["state"].items():
        param = params[int(index)]
        for key, value in entries.items():
            if key != "step":
                optimizer.state[param][key] = _on(value, param.device)


def _on(value: Any, device: torch.device) -> Any:
    """``value`` with every tensor in it (nested in lists, tuples, dicts) copied to ``device``, dtype kept."""
    if isinstance(value, torch.Tensor):
        return value.to(device).clone()
    if isinstance(value, (list, tuple)):
        return type(value)(_on(v, device) for v in value)
    if isinstance(value, dict):
        return {k: _on(v, device) for k, v in value.items()}
    return value


def remove(path: str | Path) -> None:
    """Delete a resume state (a run's job is complete), and any temporary file a kill during a save
    left beside it (``fileio.atomic_write_bytes``'s ``.<name>.*.tmp``); no error when there is none."""
    path = Path(path)
    path.unlink(missing_ok=True)
    for tmp in path.parent.glob(f".{path.name}.*.tmp"):
        tmp.unlink(missing_ok=True)
