"""Checksums and atomic writes: an output either exists complete or not at all.

Every file the pipeline writes goes through a temporary file in the same directory and an
``os.replace``, so an interrupted or failed job never leaves a half-written file that looks done.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import tempfile
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
    """``obj`` as JSON (indented, keys sorted: byte-identical for equal objects), written atomically."""
    atomic_write_bytes(path, (json.dumps(obj, indent=2, sort_keys=True) + "\n").encode())


def atomic_torch_save(obj: Any, path: str | Path) -> None:
    """``torch.save(obj)`` written atomically; load it back with ``torch.load(path, weights_only=True)``."""
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
