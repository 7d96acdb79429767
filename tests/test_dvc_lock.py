"""The committed dvc.lock describes the committed results: every output that git tracks (``cache:
false`` in dvc.yaml: the headline metrics and the curves) has, in the lock, the hash of the file
committed next to it. A results commit that forgets to refresh the lock fails here (docs/dvc.md)."""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys

import yaml

from conftest import REPO


def git_tracked_outputs() -> dict[str, str]:
    """path -> stage, for every dvc.yaml output or metric with ``cache: false``."""
    stages = yaml.safe_load((REPO / "dvc.yaml").read_text())["stages"]
    out = {}
    for stage, spec in stages.items():
        for entry in (*spec.get("outs", []), *spec.get("metrics", [])):
            if isinstance(entry, dict):
                (path, options), = entry.items()
                if (options or {}).get("cache") is False:
                    out[path] = stage
    return out


def test_the_lock_records_the_committed_files_of_every_git_tracked_output():
    tracked = git_tracked_outputs()
    assert {"data/metrics/headline.json", "data/metrics/curves"} <= set(tracked)
    lock = yaml.safe_load((REPO / "dvc.lock").read_text())["stages"]
    for path, stage in tracked.items():
        recorded = {o["path"]: o for o in lock[stage].get("outs", [])}
        assert path in recorded, f"dvc.lock has no hash of {path} (stage {stage}): run `make dvc-repro` and commit dvc.lock"
        if (REPO / path).is_file():  # DVC 3 hashes a file's bytes with md5
            md5 = hashlib.md5((REPO / path).read_bytes()).hexdigest()
            assert recorded[path]["md5"] == md5, (
                f"dvc.lock records {path} as {recorded[path]['md5']}, the committed file is {md5}: the results were "
                "committed without their lock; run `make dvc-repro` after the run that made them and commit dvc.lock")
    # Directories (the curves) as DVC itself hashes them: `dvc status` names a git-tracked output it finds changed.
    proc = subprocess.run([sys.executable, "-m", "dvc", "status", "--json"], cwd=REPO, capture_output=True, text=True,
                          timeout=300)
    assert proc.returncode == 0, proc.stderr
    changed = {path: why for items in json.loads(proc.stdout or "{}").values() for item in items
               if isinstance(item, dict) for path, why in item.get("changed outs", {}).items() if path in tracked}
    assert not changed, (f"dvc status: {changed}: the committed lock does not describe these committed outputs; "
                         "run `make dvc-repro` after the run that made them and commit dvc.lock")
