"""``optbias pull`` (``make pull``): fetch the versioned data and checkpoints, then trust them.

DVC's checkout gives every file the time of the checkout, in no particular order
(treeverse/dvc#8602), so Snakemake would see inputs newer than outputs and retrain everything.
Once ``dvc status`` confirms that the pulled files are what dvc.lock records for the current code
and config, ``snakemake --touch --forceall`` rewrites their timestamps in DAG order: afterwards Snakemake
reruns only what is really missing or out of date (e.g. a deleted figure), never the training.

DVC names a cached file by its hash and, by default, trusts a remote: a file corrupted on the remote
is checked out as it is, and ``dvc status`` still reports nothing (DVC 3.67; tests/test_dvc.py shows it). So
the pull refuses a remote without ``verify = true`` (DVC then hashes every file it downloads and
checks out none that differs: the outputs it would fill stay absent, never half-written).
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path


class PullError(RuntimeError):
    """The pull failed, or the pulled outputs do not match the current code and config."""


def _run(args: list[str], root: Path, check: bool = True) -> int:
    print("+", " ".join(args[2:] if args[0] == sys.executable else args), flush=True)
    code = subprocess.run(args, cwd=root).returncode
    if check and code != 0:
        raise PullError(f"`{' '.join(args[2:])}` failed (exit {code}); see its output above")
    return code


def _config_value(dvc: list[str], key: str, root: Path) -> str | None:
    """``dvc config <key>`` (every level merged), or None when it is not set."""
    proc = subprocess.run([*dvc, "config", key], cwd=root, capture_output=True, text=True)
    return proc.stdout.strip() or None if proc.returncode == 0 else None


def pull(root: str | Path = ".", remote: str | None = None, force: bool = False) -> None:
    """``dvc pull`` from ``remote`` (None: the default remote); check ``dvc status``; ``snakemake --touch``
    so nothing pulled is recomputed. Raises ``PullError`` when ``root`` has no dvc.yaml, when no remote
    is named or set, when the remote does not set ``verify = true``, when the pull fails, and when the
    pulled outputs are not what dvc.lock records (unless ``force``)."""
    root = Path(root)
    if not (root / "dvc.yaml").is_file():
        raise PullError(f"no dvc.yaml in {root.resolve()}: run `optbias pull` from the repository root")
    dvc, snakemake = [sys.executable, "-m", "dvc"], [sys.executable, "-m", "snakemake"]
    name = remote or _config_value(dvc, "core.remote", root)
    if name is None:
        raise PullError("no DVC remote named: give one with `optbias pull --remote <name>` or set a default "
                        "(`dvc remote default <name>`); docs/dvc.md")
    if _config_value(dvc, f"remote.{name}.url", root) is None:
        raise PullError(f"no DVC remote named {name!r} (`dvc remote list` shows those set): add it with "
                        f"`dvc remote add {name} <url>` and `dvc remote modify {name} verify true` (docs/dvc.md)")
    if (_config_value(dvc, f"remote.{name}.verify", root) or "false").lower() != "true":
        raise PullError(f"the DVC remote {name!r} does not set `verify = true`, so a file corrupted on it would be "
                        f"checked out unnoticed: run `dvc remote modify {name} verify true` (docs/dvc.md), then pull again")
    if _run([*dvc, "pull", "--remote", name], root, check=False) != 0:
        raise PullError(f"`dvc pull --remote {name}` failed (see its output above). Every file was checked against its "
                        "hash, so none that differs from dvc.lock was written: the outputs it would have filled are "
                        "absent (Snakemake recomputes them). A remote with missing or corrupted files, or a network "
                        "error: mend the remote or push again from a machine that has the results, then pull again")
    if _run([*dvc, "status", "--quiet"], root, check=False) != 0 and not force:
        _run([*dvc, "status"], root, check=False)
        raise PullError(
            "the pulled outputs are not what dvc.lock records for this code and config (see `dvc status` "
            "above), so their timestamps were left alone and Snakemake will recompute them. To use them "
            "anyway: `optbias pull --force`; to recompute: `dvc repro` (or `snakemake`); or check out the "
            "commit whose dvc.lock matches."
        )
    # --forceall: every output, in DAG order, so Snakemake also records provenance for all of them.
    _run([*snakemake, "--cores", "1", "--touch", "--forceall", "--quiet"], root)
