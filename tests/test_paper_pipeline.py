"""End-to-end: the shared tiny run (conftest.full_run), with every optimizer the claims name, ends with the
audit and the paper: the extended run's (both claims files, paper.md + extended.md), and, on a copy, the
default's (paper/claims.yaml, paper/paper.md)."""

from __future__ import annotations

import json

import pytest

import yaml

from conftest import REPO, copy_run, scheduled, snakemake, write_config
from test_paper import browser_check

pytestmark = pytest.mark.slow


def test_default_target_ends_with_the_audit_and_the_rendered_paper(full_run, tmp_path):
    workdir, _ = full_run
    audit = json.loads((workdir / "data/audit.json").read_text())
    assert len(audit["claims"]) >= 14 and sum(audit["counts"].values()) == len(audit["claims"])
    ids = [row["id"] for row in audit["claims"]]
    assert {"E1", "E2", "E3a", "E3b", "E4", "ES1", "EB3"} <= set(ids) and len(ids) == len(set(ids))
    assert all(row["verdict"] in ("SUPPORTED", "NOT SUPPORTED", "INCONCLUSIVE") for row in audit["claims"])
    # one- and two-point grids: every selection is at the edge of its grid
    assert next(r for r in audit["claims"] if r["id"] == "S2")["verdict"] == "NOT SUPPORTED"
    page = (workdir / "paper/build/paper.html").read_text()
    assert "{{" not in page and "[claim:" not in page
    assert "The extended run: Muon, SOAP and PSGD-Kron" in page and "Beyond the paper: modern preconditioners" in page
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


def test_the_default_paper_block_audits_and_renders_the_default_claims_alone(full_run, tmp_path_factory):
    """config/config.yaml's paper block on a copy of the shared run: only the audit and the paper rerun,
    the audit has exactly paper/claims.yaml's claims (Adagrad's E1 and E2 among them, none of the
    extended run's), and the page has no extended section."""
    workdir = copy_run(full_run[0], tmp_path_factory.getbasetemp() / "default_paper")
    config = yaml.safe_load((workdir / "config/config.yaml").read_text())
    config["paper"] = yaml.safe_load((REPO / "config/config.yaml").read_text())["paper"]
    write_config(workdir, config)
    proc = snakemake(workdir, "--cores", "2", check=True)
    assert scheduled(proc.stdout + proc.stderr) == {"audit": 1, "paper": 1, "all": 1}
    audit = json.loads((workdir / "data/audit.json").read_text())
    claims = yaml.safe_load((REPO / "paper/claims.yaml").read_text())["claims"]
    assert [row["id"] for row in audit["claims"]] == [c["id"] for c in claims]
    assert {"E1", "E2"} <= {c["id"] for c in claims} and not any(c["id"].startswith(("E3", "E4", "ES", "EB")) for c in claims)
    page = (workdir / "paper/build/paper.html").read_text()
    assert "{{" not in page and "Beyond the paper: modern preconditioners" in page and "The extended run" not in page
