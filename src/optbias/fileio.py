"""Checksums, atomic writes and checked reads: an output either exists complete or not at all.

Every file the pipeline writes goes through a temporary file in the same directory and an
``os.replace``, so an interrupted or failed job never leaves a half-written file that looks done.
JSON is written strictly (no NaN or infinity), and a checkpoint that was damaged after it was
written (truncated, corrupted) is refused on reading with the command that rebuilds it.
"""

from __future__ import annotations

import hashlib
import io
import json
import math
import os
import tempfile
import zipfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any


def sha256_file(path: str | Path) -> str:
    """The SHA-256 of a file's bytes, as 64 hex digits (read in 1 MiB chunks)."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def _default_mode() -> int:
    """The mode a plain open() would give a new file (0o666 minus the umask); mkstemp uses 0o600."""
    umask = os.umask(0)
    os.umask(umask)
    return 0o666 & ~umask


def atomic_write_bytes(path: str | Path, payload: bytes) -> None:
    """Write to a temporary file in the same directory, then rename: never a half-written file."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(payload)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, _default_mode())  # figures and the paper stay readable by others, as with open()
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def atomic_write_json(path: str | Path, obj: Any) -> None:
    """``obj`` as JSON (indented, keys sorted: byte-identical for equal objects), written atomically.

    Strict JSON only: a NaN or an infinity anywhere in ``obj`` raises ``ValueError`` naming its
    field (e.g. ``R[2][1]`` or ``optimizers.sgd.forgetting.mean``) and the file is not written.
    Python's default would write ``NaN``, which most JSON readers refuse and which reads as a number.
    """
    try:
        text = json.dumps(obj, indent=2, sort_keys=True, allow_nan=False)
    except ValueError:
        fields = non_finite_fields(obj)
        if not fields:
            raise
        shown = ", ".join(f"{field} = {value}" for field, value in fields[:5])
        more = f" and {len(fields) - 5} more" if len(fields) > 5 else ""
        raise ValueError(f"{path}: not written, JSON has no NaN or infinity: {shown}{more}") from None
    atomic_write_bytes(path, (text + "\n").encode())


def non_finite_fields(obj: Any, prefix: str = "") -> list[tuple[str, float]]:
    """Every NaN or infinite float in nested dicts, lists and tuples, as (field path, value).

    A path joins dict keys with dots and list positions with brackets: ``summary.sgd.R[2][1]``.
    Keys are visited in sorted order, as ``atomic_write_json`` writes them.
    """
    if isinstance(obj, float):
        return [] if math.isfinite(obj) else [(prefix or "(the value)", obj)]
    if isinstance(obj, dict):
        items = sorted(obj.items(), key=lambda kv: str(kv[0]))
        return [hit for key, value in items
                for hit in non_finite_fields(value, f"{prefix}.{key}" if prefix else str(key))]
    if isinstance(obj, (list, tuple)):
        return [hit for i, value in enumerate(obj) for hit in non_finite_fields(value, f"{prefix}[{i}]")]
    return []


def atomic_torch_save(obj: Any, path: str | Path) -> None:
    """``torch.save(obj)`` written atomically; load a state_dict back with ``load_checkpoint(path)``."""
    import torch  # here, not at the top: the summary, figure and paper jobs never load torch

    buffer = io.BytesIO()
    torch.save(obj, buffer)
    atomic_write_bytes(path, buffer.getvalue())


def load_json(path: str | Path) -> Any:
    """The parsed content of one JSON file."""
    return json.loads(Path(path).read_text())


def load_jsons(paths: Sequence[str | Path]) -> list[Any]:
    """The parsed content of each JSON file, in order (e.g. every run's metrics.json of a rule's input)."""
    return [load_json(p) for p in paths]


def checkpoint_path(checkpoint_dir: str | Path, task: int) -> Path:
    """Where a run keeps the model's state_dict after task ``task`` (0-based): ``<dir>/task{task}.pt``."""
    return Path(checkpoint_dir) / f"task{task}.pt"


class CheckpointError(ValueError):
    """A checkpoint that is missing, truncated, corrupted or not a state_dict.

    The message names the file and the command that rebuilds it. A ``ValueError``, so a job ends
    with that one line (``optbias.job``).
    """


def rebuild_command(output: str | Path) -> str:
    """The command that reruns the job writing ``output`` (a declared Snakemake output) and every
    job that depends on it: ``snakemake --cores all --forcerun <output>``."""
    return f"snakemake --cores all --forcerun {output}"


def checkpoint_output(path: str | Path) -> Path:
    """The Snakemake output that holds the checkpoint file ``path``.

    A training run's ``checkpoints/task<i>.pt`` lies in the ``checkpoints`` directory the train rule
    declares as one output; any other checkpoint (Powerprop's ``seed<k>.pt``) is an output itself.
    """
    path = Path(path)
    return path.parent if path.parent.name == "checkpoints" else path


def load_checkpoint(path: str | Path) -> dict[str, Any]:
    """The state_dict saved at ``path`` (parameter name -> tensor), on the CPU.

    Loaded with ``weights_only=True`` (no code runs from the file), after the zip archive's CRC-32
    checksums are verified: torch.load alone reads a file with a flipped byte without complaint.
    Raises ``CheckpointError`` naming the file and the command that rebuilds it when the file is
    missing, truncated or corrupted, or holds anything but a mapping of names to tensors.
    """
    import torch  # here, not at the top: the summary, figure and paper jobs never load torch

    path = Path(path)
    fix = f"rebuild it with `{rebuild_command(checkpoint_output(path))}`"
    if not path.is_file():
        raise CheckpointError(f"checkpoint {path} is missing: {fix}")
    try:
        with zipfile.ZipFile(path) as archive:
            bad = archive.testzip()
        if bad is not None:
            raise ValueError(f"member {bad} fails its CRC-32 checksum")
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # truncated or random bytes: zipfile, OSError, EOFError, RuntimeError, UnpicklingError
        reason = (str(err).strip().splitlines() or [""])[0][:200]
        raise CheckpointError(f"checkpoint {path} cannot be read, it is truncated or corrupted "
                              f"({type(err).__name__}: {reason}): {fix}") from err
    if not (isinstance(state, dict)
            and all(isinstance(k, str) and isinstance(v, torch.Tensor) for k, v in state.items())):
        raise CheckpointError(f"checkpoint {path} holds a {type(state).__name__}, not a state_dict "
                              f"(parameter name -> tensor): {fix}")
    return state
