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
    assert {"E1", "E5", "E3a", "E3b", "E4", "ES1", "EB3"} <= set(ids) and "E2" not in ids and len(ids) == len(set(ids))
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
    check = browser_check(page, tmp_path)  # fails where Chromium is not installed (make test installs it)
    assert check["images"] == check["shown"] >= 6 and check["placeholders"] is False and check["broken"] == []
    # the page links to the executed notebook, which sits next to it
    assert 'href="explore.html"' in page and (workdir / "paper/build/explore.html").is_file()


def test_the_pipeline_executes_the_explore_notebook(full_run, tmp_path):
    """Rule explore ran the notebook on the tiny run's outputs: every code cell ran without error, the
    injected parameters are the config's, the figures and tables are there, and the HTML shows them
    in headless Chromium."""
    import nbformat

    workdir, _ = full_run
    nb = nbformat.read(workdir / "paper/build/explore.ipynb", as_version=4)
    code = [c for c in nb.cells if c.cell_type == "code"]
    assert all(c.execution_count for c in code) and not [o for c in code for o in c.outputs if o.output_type == "error"]
    injected = next(c for c in code if "injected-parameters" in c.metadata.get("tags", []))
    assert "a = 'shampoo'" in injected.source and "b = 'adagrad'" in injected.source and "root = '.'" in injected.source
    outputs = [o for c in code for o in c.outputs]
    pngs = [o for o in outputs if "image/png" in o.get("data", {})]
    tables = [o for o in outputs if "text/html" in o.get("data", {}) and "<table" in o["data"]["text/html"]]
    assert len(pngs) == 3 and len(tables) >= 7  # 2 headline figures + loss curves; summary, 2 matrices, 2 comparisons, 2 audits
    compare = next(o["data"]["text/html"] for o in outputs if "per-seed a - b" in o.get("data", {}).get("text/html", ""))
    assert "average_forgetting" in compare
    html = (workdir / "paper/build/explore.html").read_text()
    check = browser_check(html, tmp_path)
    assert check == {"images": 3, "shown": 3, "placeholders": False, "broken": []}


def test_the_default_paper_block_audits_and_renders_the_default_claims_alone(full_run, tmp_path_factory):
    """config/config.yaml's paper block on a copy of the shared run: only the audit and the paper rerun,
    the audit has exactly paper/claims.yaml's active claims (Adagrad's E1 and E5 among them, none of the
    extended run's; E2 and the other superseded claims listed apart), and the page has no extended section."""
    workdir = copy_run(full_run[0], tmp_path_factory.getbasetemp() / "default_paper")
    config = yaml.safe_load((workdir / "config/config.yaml").read_text())
    config["paper"] = yaml.safe_load((REPO / "config/config.yaml").read_text())["paper"]
    write_config(workdir, config)
    proc = snakemake(workdir, "--cores", "2", check=True)
    assert scheduled(proc.stdout + proc.stderr) == {"audit": 1, "explore": 1, "paper": 1, "all": 1}
    audit = json.loads((workdir / "data/audit.json").read_text())
    claims = yaml.safe_load((REPO / "paper/claims.yaml").read_text())["claims"]
    active = [c["id"] for c in claims if "superseded_by" not in c]
    assert [row["id"] for row in audit["claims"]] == active  # superseded claims are listed, not audited
    assert [row["id"] for row in audit["superseded"]] == [c["id"] for c in claims if "superseded_by" in c]
    assert {"E1", "E2", "E5"} <= {c["id"] for c in claims} and not any(c["id"].startswith(("E3", "E4", "ES", "EB")) for c in claims)
    page = (workdir / "paper/build/paper.html").read_text()
    assert "{{" not in page and "Beyond the paper: modern preconditioners" in page and "The extended run" not in page
    # Another dataset's committed verdicts (paper.datasets), tabled by paper/datasets.md: only the page reruns.
    other = json.loads((workdir / "paper/verdicts.json").read_text())
    first = next(iter(other))
    other[first] = "INCONCLUSIVE" if other[first] != "INCONCLUSIVE" else "SUPPORTED"
    verdicts = workdir / "fashion_verdicts.json"
    verdicts.write_text(json.dumps(other))
    config["paper"]["source"] = ["paper/paper.md", "paper/datasets.md"]
    config["paper"]["datasets"] = {"Fashion-MNIST": str(verdicts)}
    write_config(workdir, config)
    proc = snakemake(workdir, "--cores", "2", check=True)
    assert scheduled(proc.stdout + proc.stderr) == {"paper": 1, "all": 1}
    page = (workdir / "paper/build/paper.html").read_text()
    assert "the same claims on other data" in page and "<th>Fashion-MNIST</th>" in page
    assert page.count("<td>yes</td>") == len(other) - 1 and page.count("<td>no</td>") == 1
