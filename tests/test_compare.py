"""`optbias compare`: a run against a committed revision, per metric and per verdict (a real git repo)."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from optbias.versioning import compare as cmp


def test_flatten_and_diffs_by_hand():
    assert cmp.flatten({"b": {"sgd": {"acc": 0.5, "ok": True}}, "n": 2}) == {"b/sgd/acc": 0.5, "n": 2.0}
    rows = cmp.diff_metrics({"b": {"x": 0.5, "gone": 0.1}}, {"b": {"x": 0.75, "new": 0.2}})
    assert [(r["metric"], r["difference"]) for r in rows] == [("b/gone", None), ("b/new", None), ("b/x", 0.25)]
    changed = cmp.diff_verdicts({"C1": "SUPPORTED", "S1": "SUPPORTED"}, {"C1": "SUPPORTED", "S1": "NOT SUPPORTED", "D1": "INCONCLUSIVE"})
    assert changed == [{"id": "S1", "reference": "SUPPORTED", "yours": "NOT SUPPORTED"},
                       {"id": "D1", "reference": None, "yours": "INCONCLUSIVE"}]


def _git(root, *args):
    subprocess.run(["git", *args], cwd=root, check=True, capture_output=True,
                   env={"GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@x", "GIT_COMMITTER_NAME": "t",
                        "GIT_COMMITTER_EMAIL": "t@x", "PATH": "/usr/bin:/bin"})


def _write(root, headline, verdicts):
    (root / "data/metrics").mkdir(parents=True, exist_ok=True)
    (root / "paper").mkdir(exist_ok=True)
    (root / cmp.HEADLINE).write_text(json.dumps(headline))
    (root / cmp.VERDICTS).write_text(json.dumps(verdicts))


def test_compare_names_the_verdict_that_differs_and_exits_1(tmp_path):
    _git(tmp_path, "init", "-q")
    _write(tmp_path, {"permuted": {"sgd": {"average_accuracy": 0.664}}}, {"C3a": "SUPPORTED", "S1": "SUPPORTED"})
    (tmp_path / "config").mkdir()
    (tmp_path / cmp.CONFIG).write_text("seeds: [0, 1]\n")
    _git(tmp_path, "add", "-A")
    _git(tmp_path, "commit", "-qm", "reference")
    cli = [sys.executable, "-m", "optbias.cli", "compare"]
    same = subprocess.run(cli, cwd=tmp_path, capture_output=True, text=True)
    assert same.returncode == 0, same.stderr
    assert "permuted/sgd/average_accuracy" in same.stdout and "+0.0000" in same.stdout
    assert "every claim's verdict is the one at HEAD" in same.stdout
    _write(tmp_path, {"permuted": {"sgd": {"average_accuracy": 0.610}}}, {"C3a": "SUPPORTED", "S1": "NOT SUPPORTED"})
    moved = subprocess.run(cli, cwd=tmp_path, capture_output=True, text=True)
    assert moved.returncode == 1
    assert "-0.0540" in moved.stdout and "largest difference: permuted/sgd/average_accuracy -0.0540" in moved.stdout
    assert "1 differ from HEAD" in moved.stdout and "S1: SUPPORTED at HEAD, NOT SUPPORTED here" in moved.stdout
    assert "C3a" not in moved.stdout.split("verdicts:")[1] and "note:" not in moved.stdout
    (tmp_path / cmp.CONFIG).write_text("seeds: [0]\n")  # not at HEAD: a config change, not a machine's
    assert "note: config/config.yaml differs from HEAD" in subprocess.run(cli, cwd=tmp_path, capture_output=True,
                                                                          text=True).stdout


def test_a_missing_file_is_a_one_line_error_naming_the_fix(tmp_path):
    _git(tmp_path, "init", "-q")
    _write(tmp_path, {}, {})
    _git(tmp_path, "add", "-A")
    _git(tmp_path, "commit", "-qm", "reference")
    (tmp_path / cmp.VERDICTS).unlink()
    proc = subprocess.run([sys.executable, "-m", "optbias.cli", "compare"], cwd=tmp_path, capture_output=True, text=True)
    assert proc.returncode == 1 and "Traceback" not in proc.stderr
    assert "optbias compare: error: paper/verdicts.json does not exist: run the pipeline first" in proc.stderr
    with pytest.raises(cmp.CompareError, match="at no-such-rev"):
        cmp.compare(tmp_path, rev="no-such-rev")
