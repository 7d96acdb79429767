"""``optbias retrain``: train finished runs again from the specs their metrics.json record, and say
whether the code here reproduces them.

On the same machine and thread count a run is byte-identical (README "Across machines"), so
retraining a run here and comparing every field of its metrics.json tells whether this code trains
the way the code that made it did. That is how a run made at another commit (``make fashion``, run
in a clone of its own) is tied to the code of this checkout. On another CPU the numbers may move
within seed noise; the page says which machine made each side.

Compared: every field of metrics.json except ``timing`` (wall time, the one field that differs
between two runs of a spec on the same machine) and the record of where it ran (``machine``,
``platform``, ``torch_version``, shown instead). Cost: one training run per run named.
"""

from __future__ import annotations

import json
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from ..continual.train import train_run

NOT_COMPARED = ("timing", "machine", "platform", "torch_version")


def find_dataset(metrics_path: str | Path) -> Path:
    """The frozen dataset a run trained on: the one ``data/raw/*.pt`` of the working directory that
    holds ``metrics_path`` (the first ancestor named ``data``). Raises ``ValueError`` when there is
    none or more than one, naming ``--data``."""
    path = Path(metrics_path).resolve()
    data_dir = next((p for p in path.parents if p.name == "data"), None)
    found = sorted((data_dir / "raw").glob("*.pt")) if data_dir is not None else []
    if len(found) != 1:
        where = data_dir / "raw" if data_dir is not None else f"no data/ directory above {metrics_path}"
        raise ValueError(f"optbias retrain: {len(found)} dataset files (*.pt) in {where}; name the run's "
                         "dataset with --data PATH (data/raw/<dataset>.pt of its working directory)")
    return found[0]


def max_abs_difference(a: Sequence[Sequence[float]], b: Sequence[Sequence[float]]) -> float | None:
    """max |a_ij - b_ij| over two accuracy matrices R (lists of rows), or None when their shapes differ."""
    if len(a) != len(b) or any(len(x) != len(y) for x, y in zip(a, b)):
        return None
    return max((abs(x - y) for ra, rb in zip(a, b) for x, y in zip(ra, rb)), default=0.0)


def compare_runs(recorded: dict[str, Any], retrained: dict[str, Any]) -> dict[str, Any]:
    """One row of the page: ``identical`` (every compared field equal, in value and JSON type),
    ``differing`` (the names of the compared fields that are not), ``max_abs_R`` (``max_abs_difference``
    of the two R) and, for both sides, the machine and torch version."""
    keys = sorted((set(recorded) | set(retrained)) - set(NOT_COMPARED))
    differing = [k for k in keys if json.dumps(recorded.get(k), sort_keys=True) != json.dumps(retrained.get(k), sort_keys=True)]
    return {"identical": not differing, "differing": differing,
            "max_abs_R": max_abs_difference(recorded.get("R", []), retrained.get("R", [])),
            "recorded_on": describe_machine(recorded), "retrained_on": describe_machine(retrained)}


def describe_machine(run: dict[str, Any]) -> str:
    """Where a run trained, from its metrics.json's ``machine`` (``engine.machine``) and ``device``:
    e.g. "AMD EPYC, 2 CPUs, AVX512, torch 2.14.1+cu130, 1 thread, cpu"."""
    m = run.get("machine")
    if not isinstance(m, dict):
        return f"unrecorded, torch {run.get('torch_version', '?')}, {run.get('device', '?')}"
    return (f"{m.get('cpu_model', '?')}, {m.get('cpu_count', '?')} CPUs, {m.get('cpu_capability', '?')}, "
            f"torch {m.get('torch', run.get('torch_version', '?'))}, {m.get('torch_threads', '?')} thread"
            f"{'' if m.get('torch_threads') == 1 else 's'}, {run.get('device', '?')}")


def retrain(metrics_path: str | Path, dataset_path: str | Path | None = None) -> dict[str, Any]:
    """Train the run of ``metrics_path`` again, from its ``spec``, on ``dataset_path`` (default:
    ``find_dataset``), in a temporary directory, and compare (``compare_runs``). The row also names
    the run (``run``: benchmark/optimizer/seed) and the dataset file. Raises ``ValueError`` on a
    file that is not a run's metrics.json, and what ``train_run`` raises (``DataError`` when the
    dataset fails its checksum)."""
    recorded = json.loads(Path(metrics_path).read_text())
    if not isinstance(recorded, dict) or "spec" not in recorded:
        raise ValueError(f"optbias retrain: {metrics_path} is not a run's metrics.json (no 'spec'); name "
                         "data/runs/<benchmark>/<optimizer>/seed<N>/metrics.json files")
    dataset = Path(dataset_path) if dataset_path is not None else find_dataset(metrics_path)
    with tempfile.TemporaryDirectory() as tmp:
        retrained = train_run(recorded["spec"], dataset, Path(tmp) / "metrics.json", progress=False)
    spec = recorded["spec"]
    return {"run": f"{spec['benchmark']}/{spec['optimizer']}/seed{spec['seed']}", "metrics": str(metrics_path),
            "dataset": str(dataset), **compare_runs(recorded, retrained)}


def retrain_markdown(rows: Sequence[dict[str, Any]], command: str) -> str:
    """The page ``optbias retrain --output`` writes: one row per run, then how many are identical."""
    lines = ["# Retrained runs", "", f"Generated by `{command}` (`src/optbias/versioning/retrain.py`): each run "
             "trained again from the spec its metrics.json records, and every field compared except "
             f"{', '.join(f'`{k}`' for k in NOT_COMPARED)}.", "",
             "| run | identical | fields that differ | max \\|ΔR\\| | recorded on | retrained on |",
             "|---|---|---|---|---|---|"]
    for r in rows:
        diff = "n/a (shapes differ)" if r["max_abs_R"] is None else f"{r['max_abs_R']:.3g}"
        lines.append(f"| `{r['run']}` | {'yes' if r['identical'] else '**no**'} | "
                     f"{', '.join(r['differing']) or 'none'} | {diff} | {r['recorded_on']} | {r['retrained_on']} |")
    same = sum(r["identical"] for r in rows)
    lines += ["", f"{same} of {len(rows)} run{'s' if len(rows) != 1 else ''} identical.", ""]
    return "\n".join(lines)
