"""End-to-end: the shared tiny run (conftest.full_run), with every optimizer the claims name, ends with the audit and the paper."""

from __future__ import annotations

import json

import pytest

from conftest import snakemake
from test_paper import browser_check

pytestmark = pytest.mark.slow


def test_default_target_ends_with_the_audit_and_the_rendered_paper(full_run, tmp_path):
    workdir, _ = full_run
    audit = json.loads((workdir / "data/audit.json").read_text())
    assert len(audit["claims"]) >= 14 and sum(audit["counts"].values()) == len(audit["claims"])
    assert all(row["verdict"] in ("SUPPORTED", "NOT SUPPORTED", "INCONCLUSIVE") for row in audit["claims"])
    # one- and two-point grids: every selection is at the edge of its grid
    assert next(r for r in audit["claims"] if r["id"] == "S2")["verdict"] == "NOT SUPPORTED"
    page = (workdir / "paper/build/paper.html").read_text()
    assert "{{" not in page and "[claim:" not in page
    for row in audit["claims"]:
        assert f'href="#claim-{row["id"]}"' in page and f'id="claim-{row["id"]}"' in page
    for name in ("report.html", "report.zip"):  # Snakemake's report, both forms (captions parse: test_captions.py)
        report = snakemake(workdir, "--report", str(tmp_path / name), check=True)
        assert (tmp_path / name).stat().st_size > 10_000, report.stderr
        assert "ERROR/" not in report.stdout + report.stderr  # a docutils error renders into the report
    dry = snakemake(workdir, "-n", check=True)
    assert "Nothing to be done" in dry.stdout + dry.stderr
    check = browser_check(page, tmp_path)  # last: skips where Chromium is not installed
    assert check["images"] == check["shown"] >= 6 and check["placeholders"] is False
