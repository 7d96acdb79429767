"""``optbias pull`` (``make pull``): fetch the versioned data and checkpoints, then trust them.

DVC's checkout gives every file the time of the checkout, in no particular order
(treeverse/dvc#8602), so Snakemake would see inputs newer than outputs and retrain everything.
Once ``dvc status`` confirms that the pulled files are what dvc.lock records for the current code
and config, ``snakemake --touch --forceall`` rewrites their timestamps in DAG order: afterwards Snakemake
reruns only what is really missing or out of date (e.g. a deleted figure), never the training.
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


def pull(root: str | Path = ".", remote: str | None = None, force: bool = False) -> None:
    """``dvc pull``; check ``dvc status``; ``snakemake --touch`` so nothing pulled is recomputed."""
    root = Path(root)
    if not (root / "dvc.yaml").is_file():
        raise PullError(f"no dvc.yaml in {root.resolve()}: run `optbias pull` from the repository root")
    dvc, snakemake = [sys.executable, "-m", "dvc"], [sys.executable, "-m", "snakemake"]
    _run([*dvc, "pull", *(["--remote", remote] if remote else [])], root)
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
