"""A training run's input and output: its tasks, its results, its checkpoints and its resume state.

Tasks: ``load_tasks`` builds the run's benchmark on the device, with held-out parts for the sweep.
Results: ``run_result`` assembles a run's metrics.json (``RunMetrics``); ``write_outputs`` writes
the checkpoints, then the metrics.json, last, so its presence means the run completed.

Resume state: what a killed or preempted job needs to continue where it was. After each task, the
training loop (``optbias.continual.loop``) saves one file (atomically, ``fileio.atomic_torch_save``)
holding

* the key it was saved under (``run_key`` of every run of the job): the spec, the dataset's SHA-256,
  the training code's (``CODE_SHA256``), torch's version and the device; a state saved under another
  key is never resumed;
* the weights and the optimizer's state_dict, every run's batch-order generator state, torch's
  global RNG state (CPU, and CUDA when the run is on a GPU) and numpy's legacy global one (which a
  library optimizer may draw from: pytorch_optimizer's Kron does);
* the rows of R (and of R_val) so far, the loss curves, the loss logs' open windows, the step
  count, the wall time spent so far, and the checkpoint of every finished task;
* once the job's runs have finished, their metrics.json texts as well (``results``): a rerun of the
  job restores the finished runs from here instead of training them again.

Where: next to the run's directory, ``<run dir>.resume.pt`` (``data/runs/permuted/sgd/seed0`` ->
``data/runs/permuted/sgd/seed0.resume.pt``); a job whose seeds are batched keeps one state for all
of them, ``<first run dir>.batched.pt`` (``batched_state_path``). That file is no output of any
rule, so Snakemake's removal of a failed job's outputs leaves it in place;
``optbias.continual.train.train_runs`` deletes it once every run of the job is complete.

Why it is exact: training draws randomness only from the batch-order generators (and torch's and
numpy's global RNGs, saved too), and every number that goes on is restored bit for bit. So a resumed
run's metrics.json and checkpoints equal an uninterrupted run's byte for byte on the same machine and
thread count, timing aside (tests/test_resume.py).
"""

from __future__ import annotations

import json
import platform
from pathlib import Path
from typing import Any

import numpy as np
import torch

from .. import data, fileio, imports
from ..engine import device_name, machine
from . import benchmarks, metrics
from .tasks import Task, split_validation
from .types import RunMetrics, RunSpec


def state_path(metrics_path: str | Path) -> Path:
    """Where the run that writes ``<run dir>/metrics.json`` keeps its resume state: ``<run dir>.resume.pt``."""
    run_dir = Path(metrics_path).parent
    return run_dir.with_name(run_dir.name + ".resume.pt")


def batched_state_path(metrics_paths: list[str | Path]) -> Path:
    """A batched job's one resume state: beside its first run's directory, ``<run dir>.batched.pt``."""
    run_dir = Path(metrics_paths[0]).parent
    return run_dir.with_name(run_dir.name + ".batched.pt")


FORMAT = 2  # the layout of a state file; a state of another format is not used
# The hash of the training code this process imported (``imports.code_sha256`` of ``imports.TRAINING``'s
# closure), taken when the module is imported, so that an edit during a long job is not recorded as the
# code that ran; each run records it, and the training rules take the same value as their param `code`.
CODE_SHA256 = imports.code_sha256((imports.TRAINING,))


def run_key(spec: dict[str, Any], dataset_path: str | Path, device: torch.device) -> dict[str, Any]:
    """What a state must have been saved under to be resumed: the spec (canonical JSON), the
    dataset's SHA-256 (the spec does not say which split of which data), the SHA-256 of the training
    code (``imports.code_sha256``: a state saved by other code must not be continued), the torch
    version, the device and the state format."""
    return {"format": FORMAT, "spec": json.dumps(spec, sort_keys=True),
            "dataset_sha256": fileio.sha256_file(dataset_path), "code_sha256": CODE_SHA256,
            "torch": str(torch.__version__), "device": str(device)}


def save(path: str | Path, state: dict[str, Any]) -> None:
    """Write ``state`` (tensors, and dicts, lists and numbers of them) atomically to ``path``."""
    fileio.atomic_torch_save(state, path)


def load(path: str | Path, key: dict[str, Any]) -> dict[str, Any] | None:
    """The resume state at ``path`` saved under ``key`` (``{"runs": [run_key of each run of the job]}``),
    or None when there is none to use.

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
        print(f"resume: ignoring {path}, which was saved for another {', '.join(_changed(saved, key))} "
              "(spec: the config changed); starting from task 0", flush=True)
        return None
    return state


def _changed(saved: Any, key: dict[str, Any]) -> list[str]:
    """The fields of ``run_key`` in which ``saved`` differs from ``key`` (both: ``{"runs": [run keys]}``),
    or ``["runs"]`` when they do not hold the same number of runs."""
    old = saved.get("runs") if isinstance(saved, dict) else None
    if not isinstance(old, list) or len(old) != len(key["runs"]) or not all(isinstance(o, dict) for o in old):
        return ["runs"]
    return [k for k in key["runs"][0] if any(o.get(k) != new[k] for o, new in zip(old, key["runs"]))]


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


def load_tasks(spec: RunSpec, dataset_path: str | Path, device: torch.device) -> tuple[list[Task], list[Task]]:
    """The run's tasks on ``device``, and their held-out parts when ``train.validation_fraction > 0``
    (else an empty list). The split depends on the task only, never on the seed: every optimizer and
    seed sees the same one. Raises ``DataError`` when the dataset fails its checksum."""
    tasks = benchmarks.get(spec["benchmark"]).build(data.load(dataset_path), spec["benchmark_cfg"])
    val_tasks: list[Task] = []
    val_fraction = float(spec["train"].get("validation_fraction", 0.0))
    if val_fraction > 0:
        tasks, val_tasks = map(list, zip(*(split_validation(t, val_fraction, k) for k, t in enumerate(tasks))))
        val_tasks = [t.to(device) for t in val_tasks]
    return [t.to(device) for t in tasks], val_tasks


def run_result(spec: RunSpec, tasks: list[Task], status: str, error: str | None, R: list[list[float]],
               R_val: list[list[float]] | None, curve: dict, steps: int, counters: dict, device: torch.device,
               timing: dict[str, float]) -> RunMetrics:
    """A run's metrics.json (``RunMetrics``) from what its training recorded. ``R``: the rows of the
    tasks trained (T x T when ``status`` is ok); ``R_val``: the held-out rows, or None when nothing
    was held out; ``timing``: wall time and durations, the only fields that differ between two runs
    of the same spec on the same device."""
    result: RunMetrics = {
        "benchmark": spec["benchmark"],
        "optimizer": spec["optimizer"],
        "seed": int(spec["seed"]),
        "spec": spec,
        "tasks": [t.name for t in tasks],
        "status": status,
        "error": error,
        "R": R,
        **(metrics.summarize(R) if status == "ok" else {}),
        "loss_curve": curve,
        "steps": steps,
        "optimizer_diagnostics": counters,
        "device": device_name(device),
        "torch_version": torch.__version__,
        "platform": platform.machine(),
        "machine": machine(),  # which machine made these numbers (docs/reproducibility.md)
        "code_sha256": CODE_SHA256,  # which code: the training rules' param `code`
        "timing": timing,
    }
    if R_val is not None:
        result["R_val"] = R_val
        # The sweep's selection score: accuracy on the task being learned, on held-out data.
        result["validation_score"] = (sum(R_val[i][i] for i in range(len(tasks))) / len(tasks)
                                      if status == "ok" else None)
    return result


def write_outputs(result: RunMetrics, checkpoints: list[dict[str, torch.Tensor]], metrics_path: str | Path | None,
                  checkpoint_dir: str | Path | None) -> RunMetrics:
    """Write a run's checkpoints (when ``checkpoint_dir``), then its metrics.json (last: its presence
    means the run completed); return ``result``."""
    if checkpoint_dir is not None:
        for i, state_dict in enumerate(checkpoints):
            fileio.atomic_torch_save(state_dict, fileio.checkpoint_path(checkpoint_dir, i))
    if metrics_path is not None:
        fileio.atomic_write_json(metrics_path, result)
    return result


def describe(result: RunMetrics) -> str:
    """One line for a job's log: the run, its headline metrics, time and device (or how it ended)."""
    where = f"{result['benchmark']}/{result['optimizer']}/seed{result['seed']}"
    if result["status"] != "ok":
        return f"{result['status']}: {result['error']}"  # the error names the run
    return (f"{where}: average accuracy {result['average_accuracy']:.4f}, average forgetting "
            f"{result['average_forgetting']:.4f}, BWT {result['bwt']:.4f}, {result['timing']['wall_time_s']:.1f} s "
            f"on {result['device']}")
