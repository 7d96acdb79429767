"""``optbias compare`` (``make compare``): your run against the committed one, metric by metric and
claim by claim.

What the artifact promises across machines is the verdicts (docs/reproducibility.md): on the
same machine and thread count a rerun is byte-identical, on another CPU the numbers move within
seed noise. So the comparison has two parts:

* every headline metric (``data/metrics/headline.json``, versioned by DVC as ``dvc metrics``):
  committed value, yours, and the difference;
* every claim's verdict (``paper/verdicts.json``, written by the audit and committed): the claims
  whose verdict differs, by name.

The reference is a git revision (default ``HEAD``: what you cloned). When ``config/config.yaml``
differs from the revision's, the differences are partly the config's doing, and the first line
says so. Exit status 1 when a verdict differs (or a file is missing: one line on stderr), so a
script can tell.
"""

from __future__ import annotations

import json
import subprocess
from collections.abc import Mapping
from pathlib import Path
from typing import Any

HEADLINE = "data/metrics/headline.json"
VERDICTS = "paper/verdicts.json"
CONFIG = "config/config.yaml"


class CompareError(RuntimeError):
    """A file to compare is missing, here or at the reference revision."""


def flatten(tree: Mapping[str, Any], prefix: str = "") -> dict[str, float]:
    """``{"a": {"b": 1.0}}`` -> ``{"a/b": 1.0}``: every number of a nested mapping, by its path."""
    out: dict[str, float] = {}
    for key, value in tree.items():
        path = f"{prefix}/{key}" if prefix else str(key)
        if isinstance(value, Mapping):
            out.update(flatten(value, path))
        elif isinstance(value, (int, float)) and not isinstance(value, bool):
            out[path] = float(value)
    return out


def diff_metrics(reference: Mapping, yours: Mapping) -> list[dict]:
    """One row per metric path in either: reference, yours, yours - reference (None where one lacks it)."""
    ref, new = flatten(reference), flatten(yours)
    rows = []
    for path in sorted(set(ref) | set(new)):
        a, b = ref.get(path), new.get(path)
        rows.append({"metric": path, "reference": a, "yours": b,
                     "difference": None if a is None or b is None else b - a})
    return rows


def diff_verdicts(reference: Mapping[str, str], yours: Mapping[str, str]) -> list[dict]:
    """The claims whose verdict differs (or that only one side has), in claim order."""
    ids = list(reference) + [k for k in yours if k not in reference]
    return [{"id": k, "reference": reference.get(k), "yours": yours.get(k)}
            for k in ids if reference.get(k) != yours.get(k)]


def _git_show(rev: str, path: str, root: Path) -> str:
    proc = subprocess.run(["git", "show", f"{rev}:{path}"], cwd=root, capture_output=True, text=True)
    if proc.returncode != 0:
        raise CompareError(f"{path} at {rev}: {proc.stderr.strip() or 'not found'}; give a revision that has it "
                           "(optbias compare --rev <commit>)")
    return proc.stdout


def _read(path: Path) -> str:
    if not path.exists():
        raise CompareError(f"{path} does not exist: run the pipeline first (make reproduce), or `snakemake {path}`")
    return path.read_text()


def compare(root: str | Path = ".", rev: str = "HEAD") -> int:
    """Print the metric table and the differing verdicts; return 1 when a verdict differs, else 0.

    Raises ``CompareError`` when a file is missing here or at ``rev``.
    """
    root = Path(root)
    config_changed = subprocess.run(["git", "diff", "--quiet", rev, "--", CONFIG], cwd=root).returncode != 0
    if config_changed:
        print(f"note: {CONFIG} differs from {rev}: the differences below are partly the config's, not the machine's")
    rows = diff_metrics(json.loads(_git_show(rev, HEADLINE, root)), json.loads(_read(root / HEADLINE)))
    width = max(len(r["metric"]) for r in rows) if rows else 10
    fmt = lambda v: "-" if v is None else f"{v:.4f}"  # noqa: E731
    print(f"{'metric':{width}s}  {rev:>9s}  {'yours':>9s}  {'yours-' + rev:>12s}")
    for r in rows:
        print(f"{r['metric']:{width}s}  {fmt(r['reference']):>9s}  {fmt(r['yours']):>9s}  "
              f"{'-' if r['difference'] is None else format(r['difference'], '+.4f'):>12s}")
    moved = [r for r in rows if r["difference"] is not None]
    if moved:
        worst = max(moved, key=lambda r: abs(r["difference"]))
        print(f"largest difference: {worst['metric']} {worst['difference']:+.4f} ({len(moved)} metrics compared)")
    changed = diff_verdicts(json.loads(_git_show(rev, VERDICTS, root)), json.loads(_read(root / VERDICTS)))
    if not changed:
        print(f"verdicts: every claim's verdict is the one at {rev}")
        return 0
    print(f"verdicts: {len(changed)} differ from {rev}:")
    for c in changed:
        print(f"  {c['id']}: {c['reference'] or '(absent)'} at {rev}, {c['yours'] or '(absent)'} here")
    return 1
