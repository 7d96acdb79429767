"""``optbias retrain``: train finished runs again from the specs their metrics.json record, and say
whether the code here reproduces them.

On the same machine and thread count a run is byte-identical (docs/reproducibility.md), so
retraining a run here and comparing every field of its metrics.json tells whether this code trains
the way the code that made it did. That is how a run made at another commit (``make fashion``, run
in a clone of its own) is tied to the code of this checkout. On another CPU the numbers may move
within seed noise, so there "differs" is expected and only the size of max |ΔR| says anything; the
page names the machine of each side.

Compared: every field of metrics.json except ``timing`` (wall time, the one field that differs
between two runs of a spec on the same machine) and the record of where it ran (``machine``,
``platform``, ``torch_version``, shown instead), and the hash of the code that trained it
(``code_sha256``: the point of retraining is to see whether other code gives the same numbers). A run is retrained on the kind of device it
recorded (a spec's ``device: auto`` would otherwise pick a GPU that the run did not use). A run
recorded in the batched-seed mode (``timing.batched_seeds``) is retrained on its own, which matches
the batched mode only within tests/test_batched.py's tolerance; its row says so. Cost: one training
run per run named (for a full-size permuted Shampoo run, minutes).
"""

from __future__ import annotations

import copy
import json
import tempfile
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from ..continual.train import train_run

NOT_COMPARED = ("timing", "machine", "platform", "torch_version", "code_sha256")
WHAT_TO_NAME = "name data/runs/<benchmark>/<optimizer>/seed<N>/metrics.json files"  # the fix, in both read errors


def working_data_dir(path: str | Path) -> Path | None:
    """The nearest ancestor of ``path`` named ``data`` (the working directory's outputs), or None;
    symbolic links are not followed."""
    return next((p for p in Path(path).absolute().parents if p.name == "data"), None)


def find_dataset(metrics_path: str | Path) -> Path:
    """The frozen dataset a run trained on: the one ``data/raw/*.pt`` of the working directory that
    holds ``metrics_path`` (``working_data_dir``). Raises ``ValueError`` when there is none or more
    than one, naming ``--data``."""
    data_dir = working_data_dir(metrics_path)
    if data_dir is None:
        raise ValueError(f"{metrics_path} is not under a data/ directory, so its dataset cannot be found; "
                         "name it with --data PATH (data/raw/<dataset>.pt of the run's working directory)")
    found = sorted((data_dir / "raw").glob("*.pt"))
    if len(found) != 1:
        raise ValueError(f"{len(found)} dataset files (*.pt) in {data_dir / 'raw'}; name the run's dataset with "
                         "--data PATH (data/raw/<dataset>.pt of its working directory)")
    return found[0]


def max_abs_difference(a: Sequence[Sequence[float]], b: Sequence[Sequence[float]]) -> float | None:
    """max |a_ij - b_ij| over two accuracy matrices R (lists of T rows; accuracies, fractions in
    [0, 1]), or None when their shapes differ."""
    if len(a) != len(b) or any(len(x) != len(y) for x, y in zip(a, b)):
        return None
    return max((abs(x - y) for ra, rb in zip(a, b) for x, y in zip(ra, rb)), default=0.0)


def describe_machine(run: dict[str, Any]) -> str:
    """Where a run trained, from its metrics.json's ``machine`` (``engine.machine``) and ``device``:
    e.g. "AMD EPYC, 2 CPUs, AVX512, torch 2.14.1+cu130, 1 thread, cpu"."""
    m = run.get("machine")
    if not isinstance(m, dict):
        return f"unrecorded, torch {run.get('torch_version', '?')}, {run.get('device', '?')}"
    return (f"{m.get('cpu_model', '?')}, {m.get('cpu_count', '?')} CPUs, {m.get('cpu_capability', '?')}, "
            f"torch {m.get('torch', run.get('torch_version', '?'))}, {m.get('torch_threads', '?')} thread"
            f"{'' if m.get('torch_threads') == 1 else 's'}, {run.get('device', '?')}")


def compare_runs(recorded: dict[str, Any], retrained: dict[str, Any]) -> dict[str, Any]:
    """One row of the page: ``identical`` (every compared field equal, in value and JSON type),
    ``differing`` (the names of the compared fields that are not), ``max_abs_R`` (``max_abs_difference``
    of the two R), ``note`` (why a difference is expected, or "") and both machines."""
    keys = sorted((set(recorded) | set(retrained)) - set(NOT_COMPARED))
    differing = [k for k in keys
                 if json.dumps(recorded.get(k), sort_keys=True) != json.dumps(retrained.get(k), sort_keys=True)]
    batched = isinstance(recorded.get("timing"), dict) and "batched_seeds" in recorded["timing"]
    return {"identical": not differing, "differing": differing,
            "max_abs_R": max_abs_difference(recorded.get("R", []), retrained.get("R", [])),
            "note": ("recorded in the batched-seed mode, retrained on its own: equal only within "
                     "tests/test_batched.py's tolerance") if batched else "",
            "recorded_on": describe_machine(recorded), "retrained_on": describe_machine(retrained)}


def label(metrics_path: str | Path) -> str:
    """How the page names a run: its directory relative to the working directory's ``data/``
    (``runs/permuted/sgd/seed0``, ``budget/runs/.../epochs2/seed0``), else the path as given."""
    data_dir = working_data_dir(metrics_path)
    return Path(metrics_path).absolute().parent.relative_to(data_dir).as_posix() if data_dir else str(metrics_path)


def retrain(metrics_path: str | Path, dataset_path: str | Path | None = None) -> dict[str, Any]:
    """Train the run of ``metrics_path`` again, from its ``spec`` with ``train.device`` set to the
    kind of device it recorded, on ``dataset_path`` (default: ``find_dataset``), in a temporary
    directory, and compare (``compare_runs``; the retrained run's ``spec`` is taken as the recorded
    one). The row also names the run (``label``) and the dataset file.

    Raises ``ValueError`` on a file that is not a run's metrics.json (unreadable, not JSON, no
    ``spec``), on a run recorded on a GPU when this machine has none, and as ``find_dataset`` does;
    and what ``train_run`` raises: ``DataError`` when the dataset fails its checksum,
    ``DivergenceError``, ``KeyError`` on a spec that lacks a key this code reads.
    """
    import torch

    try:
        recorded = json.loads(Path(metrics_path).read_text())
    except (OSError, ValueError) as err:
        raise ValueError(f"{metrics_path}: cannot read it as a run's metrics.json ({err}); {WHAT_TO_NAME}") from None
    if not isinstance(recorded, dict) or "spec" not in recorded:
        raise ValueError(f"{metrics_path} is not a run's metrics.json (no 'spec'); {WHAT_TO_NAME}")
    dataset = Path(dataset_path) if dataset_path is not None else find_dataset(metrics_path)
    on_gpu = recorded.get("device", "cpu") != "cpu"
    if on_gpu and not torch.cuda.is_available():
        raise ValueError(f"{metrics_path} was trained on a GPU ({recorded['device']}); retrain it on a machine with CUDA")
    spec = copy.deepcopy(recorded["spec"])
    spec["train"]["device"] = "cuda" if on_gpu else "cpu"
    with tempfile.TemporaryDirectory() as tmp:
        retrained = train_run(spec, dataset, Path(tmp) / "metrics.json", progress=False)
    retrained["spec"] = recorded["spec"]
    return {"run": label(metrics_path), "metrics": str(metrics_path), "dataset": Path(dataset).name,
            **compare_runs(recorded, retrained)}


def retrain_all(metrics_paths: Sequence[str | Path], dataset_path: str | Path | None = None,
                progress: Callable[[str], None] = print) -> list[dict[str, Any]]:
    """``retrain`` each run in turn; a run that cannot be retrained (any error) becomes a row with
    ``error`` (the exception's type and message), not identical, and the others still run.
    ``progress`` gets one line before and one after each run."""
    rows = []
    for path in metrics_paths:
        progress(f"retraining {label(path)} ...")
        try:
            rows.append(retrain(path, dataset_path))
        except Exception as err:  # noqa: BLE001 - reported in its row; the other runs still count
            rows.append({"run": label(path), "metrics": str(path), "dataset": "", "identical": False,
                         "differing": [], "max_abs_R": None, "note": "", "recorded_on": "", "retrained_on": "",
                         "error": f"{type(err).__name__}: {err}"})
        row = rows[-1]
        progress(f"{row['run']}: " + ("identical" if row["identical"] else f"ERROR {row['error']}" if "error" in row
                                      else "DIFFERS in " + ", ".join(row["differing"])))
    return rows


def retrain_markdown(rows: Sequence[dict[str, Any]], command: str) -> str:
    """The page ``optbias retrain --output`` writes: one row per run of ``retrain_all``, then how many
    are identical. ``command``: the command line that made it, quoted at the top."""
    lines = ["# Retrained runs", "", f"Generated by `{command}` (`src/optbias/versioning/retrain.py`): each run "
             "trained again from the spec its metrics.json records, on the kind of device it recorded, and "
             f"every field compared except {', '.join(f'`{k}`' for k in NOT_COMPARED)}.", "",
             "| run | dataset | identical | fields that differ | max \\|ΔR\\| | recorded on | retrained on |",
             "|---|---|---|---|---|---|---|"]
    for r in rows:
        diff = "n/a" if r["max_abs_R"] is None else f"{r['max_abs_R']:.3g}"
        what = f"error: {r['error']}" if "error" in r else ", ".join(r["differing"]) or "none"
        if r.get("note"):
            what += f" ({r['note']})"
        lines.append(f"| `{r['run']}` | `{r['dataset']}` | {'yes' if r['identical'] else '**no**'} | "
                     f"{what.replace('|', '/')} | {diff} | {r['recorded_on']} | {r['retrained_on']} |")
    same = sum(r["identical"] for r in rows)
    lines += ["", f"{same} of {len(rows)} run{'s' if len(rows) != 1 else ''} identical.", ""]
    return "\n".join(lines)
